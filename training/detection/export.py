"""Export a trained detector checkpoint as a contract ONNX model (``ercp-train export``)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from app.core.contract import TASK_DETECTOR, InputSpec, build_metadata
from app.core.errors import ExportError
from app.core.geometry import BOX_THRESHOLD
from training.common.export import ContractWrapper, check_parity, export_onnx, git_revision
from training.detection.cv import HEATMAP_OUTPUT, INPUT_NAME
from training.detection.module import DetectionModule

log = logging.getLogger(__name__)


class HeatmapHead(torch.nn.Module):
    """The network followed by its sigmoid: normalised NCHW -> heatmap in [0, 1]."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 1, H, W) probabilities."""
        return torch.sigmoid(self.net(x))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_files(ckpt: Path) -> tuple[dict | None, dict | None]:
    """The ``calibration.json`` and ``metrics.json`` that ``detect`` wrote beside a checkpoint.

    ``detect`` stores checkpoints in ``<run>/fold<k>/<kind>/checkpoints/``.
    """
    kind_dir = Path(ckpt).resolve().parent.parent
    return _read_json(kind_dir / "calibration.json"), _read_json(kind_dir / "metrics.json")


def load_wrapper(ckpt: Path) -> tuple[ContractWrapper, DetectionModule]:
    """The exportable model (uint8 NHWC BGR -> heatmap) of a detection checkpoint.

    Raises:
        ExportError: for a baseline (box-regression) checkpoint, which the app cannot run.
    """
    module = DetectionModule.load_from_checkpoint(str(ckpt), map_location="cpu")
    if module.hparams.kind != "heatmap":
        raise ExportError(
            f"{ckpt}: a {module.hparams.kind!r} (box-regression baseline) "
            f"checkpoint; the app only runs heatmap models, export a heatmap one"
        )
    wrapper = ContractWrapper(HeatmapHead(module.net)).eval()
    return wrapper, module


def export_checkpoint(
    ckpt: Path,
    out: Path,
    *,
    name: str | None = None,
    version: str = "1.0",
    opset: int = 17,
    source: dict | None = None,
    options: dict[str, Any] | None = None,
) -> dict:
    """Write ``out`` (.onnx) from a detection checkpoint and check it.

    The metadata follows the contract: ``ercp.min_peak`` is the calibrated threshold that
    ``detect`` stored beside the checkpoint (or ``options["min_peak"]``), ``ercp.trained_on``
    the dataset and its fingerprint, ``ercp.metrics`` the held-out figures and the
    calibration, ``ercp.source`` the command and git revision.

    Args:
        ckpt: a checkpoint written by ``ercp-train detect``.
        out: the ONNX file to write.
        name: model name (default: ``<arch>-<encoder>``).
        version: model version string.
        opset: ONNX opset.
        source: provenance, e.g. ``{"command": ...}``; the git revision is added.
        options: ``min_peak`` (float) to override the calibration.

    Returns:
        ``{"path", "parity", "min_peak", "metadata"}``.

    Raises:
        ExportError: for a baseline checkpoint, a failed export or a parity failure.
    """
    options = options or {}
    wrapper, module = load_wrapper(ckpt)
    hp = module.hparams
    calibration, metrics = run_files(ckpt)
    min_peak = options.get("min_peak")
    if min_peak is None:
        min_peak = calibration["min_peak"] if calibration else 0.5
        if calibration is None:
            log.warning(
                "no calibration.json beside %s: ercp.min_peak = 0.5 (contract default)", ckpt
            )
    spec_size = int(hp.size)

    spec = InputSpec(INPUT_NAME, spec_size, spec_size, "stretch")
    meta = build_metadata(
        task=TASK_DETECTOR,
        name=name or f"{hp.arch}-{hp.encoder}",
        version=version,
        input_spec=spec,
        outputs={"heatmap": HEATMAP_OUTPUT},
        box_threshold=BOX_THRESHOLD,
        min_peak=float(min_peak),
        trained_on=hp.get("dataset"),
        metrics={"held_out": metrics, "calibration": calibration},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        source={
            **(source or {}),
            "git": git_revision(),
            "checkpoint": Path(ckpt).name,
            "arch": hp.arch,
            "encoder": hp.encoder,
            "loss": hp.loss,
        },
    )
    path = export_onnx(
        wrapper, out, input_spec=spec, output_names=[HEATMAP_OUTPUT], metadata=meta, opset=opset
    )
    parity = check_parity(wrapper, path, n=4, atol=1e-4)
    return {"path": str(path), "parity": parity, "min_peak": float(min_peak), "metadata": meta}
