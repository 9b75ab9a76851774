"""The UI's thin adapter over the engine's public API (app.core): the one place that calls it.

Widgets and controllers call these functions instead of reaching into app.core modules, so
an engine API change is absorbed here. Nothing here processes pixels.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.config import EngineConfig
from app.core.errors import ErcpError
from app.core.frame import Difficulty, Frame, FrameSource, Prediction

log = logging.getLogger(__name__)


# -- sources ------------------------------------------------------------------------------


def is_device_spec(spec: str) -> bool:
    """True for ``device:N``, ``device:/dev/...`` and ``/dev/videoN``."""
    text = str(spec).strip()
    return text.startswith("device:") or text.startswith("/dev/video")


def open_source(spec: str, device_options: dict[str, Any] | None = None) -> FrameSource:
    """``app.core.sources.open_source``; the settings' device options go to devices only."""
    from app.core.sources import open_source as _open

    options = (device_options or {}) if is_device_spec(spec) else {}
    return _open(spec, **options)


def list_devices() -> list[Any]:
    """Capture devices (``DeviceInfo``: index, path, name); [] when probing fails."""
    from app.core.sources import list_devices as _list

    try:
        return list(_list())
    except Exception as exc:  # probing hardware must never stop the app
        log.warning("listing capture devices failed: %s", exc)
        return []


def is_seekable(source: object) -> bool:
    """True for sources with seek/step/speed/pause (files, folders, recordings)."""
    return all(hasattr(source, name) for name in ("seek", "step", "speed", "paused"))


def frame_count(source: object) -> int | None:
    """The number of frames of a finite source, or None."""
    try:
        count = getattr(source, "frame_count", None)
    except (ErcpError, OSError):
        return None
    return int(count) if isinstance(count, (int, float)) and count > 0 else None


# -- recordings ---------------------------------------------------------------------------

#: Snapshots taken while recording go into this subfolder of the recording, so that a replay
#: of the recording can mark them on its timeline.
SNAPSHOT_SUBDIR = "snapshots"


def recording_at(path: str | Path) -> Any | None:
    """The ``RecordingInfo`` of a recording folder made by the app, else None.

    Raises:
        SourceError: when the folder has a manifest that cannot be read.
    """
    from app.core import recording

    folder = Path(path)
    if not folder.is_dir() or not (folder / recording.MANIFEST).exists():
        return None
    return recording.open_recording(folder)


def recording_source(info: Any) -> FrameSource:
    """A seekable source replaying a recording (its raw stream when recorded)."""
    return info.open_source()


def prediction_from_record(record: dict | None, frame: Frame) -> Prediction | None:
    """A drawable Prediction from a saved ``predictions.jsonl`` line (no heatmap or CAM)."""
    if not record or record.get("peak") is None:
        return None
    box = record.get("box")
    difficulty = None
    saved = record.get("difficulty")
    if saved:
        difficulty = Difficulty(
            str(saved["label"]), {str(k): float(v) for k, v in saved["probs"].items()}
        )
    return Prediction(
        frame_index=int(record.get("pred_frame", frame.index)),
        frame_t=frame.t,
        ready_t=frame.t,
        box=tuple(float(v) for v in box) if box else None,
        peak=float(record["peak"]),
        difficulty=difficulty,
    )


def recording_series(info: Any) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """Timeline data of a recording: time of each recorded frame, its peak, its class probs."""
    fps = max(float(info.fps), 1e-6)
    t: list[float] = []
    peak: list[float] = []
    probs: dict[str, list[float]] = {}
    for i, record in enumerate(info.predictions):
        t.append(i / fps)
        value = record.get("peak") if record else None
        peak.append(float("nan") if value is None else float(value))
        saved = (record or {}).get("difficulty") or {}
        for name in saved.get("probs", {}):
            probs.setdefault(str(name), [float("nan")] * i)
        for name, series in probs.items():
            p = saved.get("probs", {}).get(name)
            series.append(float("nan") if p is None else float(p))
    return t, peak, probs


def recording_snapshots(info: Any) -> list[float]:
    """Times (s into the recording) of the snapshots taken while it was recorded."""
    folder = Path(info.path) / SNAPSHOT_SUBDIR
    if not folder.is_dir():
        return []
    recorded = {}
    for i, record in enumerate(info.predictions):
        if record and "frame" in record:
            recorded.setdefault(int(record["frame"]), i)
    fps = max(float(info.fps), 1e-6)
    times = []
    for sidecar in sorted(folder.glob("*.json")):
        try:
            frame = int(json.loads(sidecar.read_text(encoding="utf-8"))["frame"])
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("snapshot sidecar %s is unreadable; not marked", sidecar)
            continue
        if frame in recorded:
            times.append(recorded[frame] / fps)
    return times


def manifest_summary(info: Any) -> list[tuple[str, str]]:
    """The facts of a recording's manifest worth showing, as (label, value) rows."""
    m = info.manifest
    models = (
        ", ".join(
            f"{x.get('name', '?')} {x.get('version', '')}".strip() for x in m.get("models", [])
        )
        or "none"
    )
    dropped = m.get("dropped", {}) or {}
    rows = [
        ("source", str(m.get("source", ""))),
        ("started", str(m.get("started", ""))),
        ("status", str(m.get("status", "")) + ("" if info.complete else " (incomplete)")),
        ("frames", f"{info.frame_count} at {info.fps:g} fps"),
        ("streams", "+".join(info.streams)),
        ("models", models),
        ("dropped", ", ".join(f"{k} {v}" for k, v in dropped.items()) or "0"),
        ("app", str(m.get("app_version", ""))),
    ]
    config = m.get("config") or {}
    if config:
        keys = ("stale_ms", "min_peak", "smoothing", "phi_mask", "classifier_every")
        rows.append(("config", ", ".join(f"{k}={config[k]}" for k in keys if k in config)))
    if m.get("error"):
        rows.append(("error", str(m["error"])))
    return rows


class RecordingSink:
    """A pipeline frame sink that records every captured frame with its rendered overlay.

    Runs on the capture thread: ``render`` must be thread-safe and cheap (the overlay
    renderer is a pure function), and ``Recorder.submit`` never blocks.
    """

    def __init__(self, recorder: Any, render: Callable[[Frame, Prediction | None], Any]) -> None:
        self.recorder = recorder
        self._render = render

    def __call__(self, frame: Frame, prediction: Prediction | None) -> None:
        overlay, shown = self._render(frame, prediction)
        self.recorder.submit(frame, overlay, shown)


def start_recorder(
    pipeline: Any,
    out_dir: Path,
    source_name: str,
    fps: float,
    config: EngineConfig,
    models: Sequence[dict],
    render: Callable[[Frame, Prediction | None], Any],
    on_error: Callable[[BaseException], None],
) -> RecordingSink:
    """Start recording what the pipeline captures into a new folder under ``out_dir``.

    Raises:
        ExportError: when the folder cannot be written.
        ConfigError: for an unusable frame rate.
    """
    from app.core.recording import Recorder

    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = Path(out_dir) / f"recording_{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = Path(out_dir) / f"recording_{stamp}_{n}"
    recorder = Recorder(
        folder,
        fps=fps if fps > 0 else 30.0,
        config=config.to_dict(),
        source_name=source_name,
        models=list(models),
        on_error=on_error,
    )
    recorder.start()
    sink = RecordingSink(recorder, render)
    pipeline.add_frame_sink(sink)
    return sink


def stop_recorder(pipeline: Any, sink: RecordingSink) -> Path:
    """Detach and close a recorder; returns its folder."""
    if pipeline is not None:
        pipeline.remove_frame_sink(sink)
    sink.recorder.stop()
    return sink.recorder.out_dir


# -- models -------------------------------------------------------------------------------


def load_model(path: Path, config: EngineConfig, task: str) -> Any:
    """``app.core.models.load_model`` for ``task`` on the configured providers."""
    from app.core.models import load_model as _load

    return _load(path, providers=config.providers, expect_task=task, config=config)


def make_stages(
    detector_model: Any | None, classifier_model: Any | None, config: EngineConfig
) -> tuple[Any | None, Any | None]:
    """The pipeline's Detector and Classifier for the loaded models (None where absent)."""
    from app.core.inference import Classifier, Detector

    detector = None
    if detector_model is not None:
        detector = Detector(
            detector_model, min_peak=config.min_peak, box_threshold=config.box_threshold
        )
    classifier = Classifier(classifier_model) if classifier_model is not None else None
    return detector, classifier


def apply_config(pipeline: Any, config: EngineConfig, detector: Any, classifier: Any) -> None:
    """New settings for a running pipeline: stale limit, thresholds, smoothing, cadence."""
    setter = getattr(pipeline, "set_config", None)
    if callable(setter):
        setter(config)
    else:
        # The pipeline reads ``config`` on every call and builds its frame processor (which
        # owns thresholds and smoothing) from it in set_models.
        pipeline.config = config
    pipeline.set_models(detector, classifier)


# -- exports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportRecord:
    """One snapshot this session exported."""

    overlay: Path
    raw: Path
    sidecar: Path
    frame_index: int
    position_s: float | None
    created: str


def export_snapshot(
    out_dir: Path,
    frame: Frame,
    overlay: np.ndarray,
    prediction: Prediction | None,
    models: Sequence[dict],
    phi_mask: bool,
) -> ExportRecord:
    """``app.core.export.export_frame`` for the frame on screen; returns what it wrote."""
    from app.core.export import export_frame

    now = _dt.datetime.now()
    stem = f"snapshot_{now:%Y%m%d-%H%M%S}_f{frame.index:06d}"
    result = export_frame(
        out_dir, frame, overlay, prediction, models=list(models), phi_mask=phi_mask, stem=stem
    )
    return ExportRecord(
        result.overlay,
        result.raw,
        result.sidecar,
        frame.index,
        frame.position_s,
        now.isoformat(timespec="seconds"),
    )
