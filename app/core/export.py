"""Export one frame: overlay PNG, PHI-masked raw PNG and a JSON sidecar, all-or-nothing."""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.atomic import atomic_write_bytes, atomic_write_png, export_error
from app.core.errors import ExportError
from app.core.frame import Frame, Prediction
from app.core.records import prediction_record
from app.core.roi import Rect, clip_rect, find_field, mask_outside

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """The files one export wrote."""

    overlay: Path
    raw: Path
    sidecar: Path

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        """The three files, overlay first."""
        return self.overlay, self.raw, self.sidecar


def _free_stem(out_dir: Path, stem: str) -> str:
    """``stem``, or ``stem_2``, ``stem_3``... so that an earlier export is never overwritten."""
    candidate, n = stem, 1
    while any(
        (out_dir / f"{candidate}{suffix}").exists()
        for suffix in ("_overlay.png", "_raw.png", ".json")
    ):
        n += 1
        candidate = f"{stem}_{n}"
    return candidate


def export_frame(
    out_dir: str | os.PathLike,
    frame: Frame,
    overlay_image: np.ndarray | None,
    prediction: Prediction | None,
    *,
    models: Sequence[dict[str, Any]] = (),
    phi_mask: bool = True,
    roi: Rect | None = None,
    stem: str | None = None,
) -> ExportResult:
    """Write ``<stem>_overlay.png``, ``<stem>_raw.png`` and ``<stem>.json`` into ``out_dir``.

    Each file is written atomically, and if one fails the ones already written by this call
    are removed, so an export is complete or absent. Earlier exports are never overwritten
    (a taken stem gets a ``_2``, ``_3``... suffix).

    Args:
        out_dir: folder to write to; created if missing.
        frame: the frame shown.
        overlay_image: the rendered overlay as the endoscopist saw it (BGR uint8), or None
            to store the raw frame in its place.
        prediction: the prediction drawn on it, or None.
        models: ``{"name", "version", ...}`` of the models in use, for the sidecar.
        phi_mask: black out everything outside the endoscopic field in both PNGs, where
            processors burn in patient data (default on).
        roi: the field rectangle; defaults to the prediction's, else ``find_field``.
        stem: file-name stem; default ``frame_<index>``.

    Raises:
        ExportError: when the folder cannot be created or a file cannot be written (full or
            read-only disk). Earlier files are intact and no partial file is left.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise export_error("create the export folder", out, exc) from exc
    if not out.is_dir():
        raise export_error("use", out, OSError(errno.ENOTDIR, "not a folder"))
    if roi is None and prediction is not None and prediction.roi is not None:
        roi = tuple(int(v) for v in prediction.roi)  # type: ignore[assignment]
    if roi is None and phi_mask:
        roi = find_field(frame.image)
    if roi is not None:
        roi = clip_rect(roi, frame.width, frame.height)
    raw = frame.image
    shown = overlay_image if overlay_image is not None else frame.image
    if shown.shape[:2] != raw.shape[:2]:
        raise ExportError(
            f"overlay image is {shown.shape[1]}x{shown.shape[0]} but the frame is "
            f"{raw.shape[1]}x{raw.shape[0]}: render the overlay at frame size"
        )
    if phi_mask and roi is not None:
        raw = mask_outside(raw, roi)
        shown = mask_outside(shown, roi)
    stem = _free_stem(out, stem or f"frame_{frame.index:06d}")
    result = ExportResult(
        overlay=out / f"{stem}_overlay.png",
        raw=out / f"{stem}_raw.png",
        sidecar=out / f"{stem}.json",
    )
    sidecar = {
        **prediction_record(frame, prediction),
        "image_size": [frame.width, frame.height],
        "roi": list(roi) if roi is not None else None,
        "phi_mask": bool(phi_mask),
        "models": [
            {k: m.get(k) for k in ("name", "version", "task", "sha256") if k in m} for m in models
        ],
        "files": {"overlay": result.overlay.name, "raw": result.raw.name},
        "exported": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    written: list[Path] = []
    try:
        atomic_write_png(result.raw, raw)
        written.append(result.raw)
        atomic_write_png(result.overlay, shown)
        written.append(result.overlay)
        atomic_write_bytes(result.sidecar, (json.dumps(sidecar, indent=2) + "\n").encode())
        written.append(result.sidecar)
    except ExportError:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    log.info("exported frame %d to %s", frame.index, result.overlay)
    return result
