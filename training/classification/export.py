"""ONNX export of a difficulty classifier: probs (N, C) and the top class's CAM (N, h, w).

The graph takes the contract's uint8 NHWC BGR input, normalises it with the same
``ImageNormalizer`` as training, and returns softmax probabilities plus the class-activation
map of the most probable class (``cam.probs_and_cam``): the exact CAM for ResNet, DenseNet and
MobileNetV3 (global pooling + linear), and the closed-form Grad-CAM for VGG19-bn (see
``cam.py``). ``ercp-train export`` calls :func:`export_checkpoint` for checkpoints whose
hparams say ``task == "classify"``.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from app.core.contract import TASK_CLASSIFIER, InputSpec, build_metadata
from app.core.errors import ExportError
from training.classification.cam import CamExportNet
from training.classification.module import DifficultyModule, load_checkpoint
from training.common.export import ContractWrapper, check_parity, export_onnx, git_revision

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_PROBS = "probs"
OUTPUT_CAM = "cam"
PARITY_ATOL = 1e-4


def build_wrapper(module: DifficultyModule, *, with_cam: bool = True) -> ContractWrapper:
    """uint8 NHWC BGR -> (probs, cam), or -> probs only when ``with_cam`` is False."""
    import torch

    if with_cam:
        inner = CamExportNet(module.model)
    else:
        inner = torch.nn.Sequential(module.model, torch.nn.Softmax(dim=1))
    return ContractWrapper(inner).eval()


def export_module(
    module: DifficultyModule,
    out_path: str | Path,
    *,
    name: str | None = None,
    version: str = "1.0",
    with_cam: bool = True,
    metrics: Any = None,
    source: Any = None,
    parity_n: int = 4,
    opset: int = 17,
) -> tuple[Path, float | None]:
    """Export a trained module under the contract and check parity with PyTorch.

    Args:
        module: the trained classifier.
        out_path: the .onnx file.
        name: ``ercp.name`` (default ``difficulty-<arch>-<label set>``).
        version: ``ercp.version``.
        with_cam: add the ``cam`` output.
        metrics: ``ercp.metrics`` (e.g. the CV summary).
        source: ``ercp.source`` (command, git revision, checkpoint).
        parity_n: random images for the parity check (0 skips it).
        opset: ONNX opset.

    Returns:
        The written path and the parity (max |torch - onnxruntime| over probs and cam).

    Raises:
        ExportError: export, contract or parity (probs and cam within 1e-4) failed.
    """
    hp = module.hparams
    height, width = (int(v) for v in hp["input_size"])
    spec = InputSpec(INPUT_NAME, height, width, "stretch")
    outputs = {"probs": OUTPUT_PROBS, **({"cam": OUTPUT_CAM} if with_cam else {})}
    extra = dict(hp.get("extra") or {})
    meta = build_metadata(
        task=TASK_CLASSIFIER,
        name=name or f"difficulty-{hp['arch']}-{hp['label_set']}",
        version=version,
        input_spec=spec,
        outputs=outputs,
        classes=list(hp["classes"]),
        region=hp["region"],
        trained_on=extra.get("trained_on"),
        metrics=metrics,
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        source=source or {"git": git_revision(), "command": extra.get("command")},
    )
    wrapper = build_wrapper(module.cpu().eval(), with_cam=with_cam)
    path = export_onnx(
        wrapper,
        out_path,
        input_spec=spec,
        output_names=list(outputs.values()),
        metadata=meta,
        opset=opset,
    )
    diff = None
    if parity_n:
        diff = check_parity(wrapper, path, n=parity_n, atol=PARITY_ATOL)
        log.info("parity of probs%s: %.2e", " and cam" if with_cam else "", diff)
    return path, diff


def export_checkpoint(
    ckpt_path: str | Path,
    out_path: str | Path,
    *,
    name: str | None = None,
    version: str = "1.0",
    opset: int = 17,
    source: Any = None,
    options: dict[str, Any] | None = None,
    **more: Any,
) -> dict[str, Any]:
    """Export a ``classify`` checkpoint (``fold_K/checkpoints/best.ckpt``) to ONNX.

    This is the exporter ``ercp-train export`` calls for ``hparams["task"] == "classify"``.

    Args:
        ckpt_path: the Lightning checkpoint.
        out_path: the .onnx file to write.
        name: ``ercp.name`` (default ``difficulty-<arch>-<label set>``).
        version: ``ercp.version``.
        opset: ONNX opset.
        source: ``ercp.source`` additions (e.g. the export command); the git revision and the
            checkpoint are always recorded.
        options: classifier options ``with_cam`` (default True), ``metrics``, ``parity_n``;
            options of other tasks (e.g. the detector's ``min_peak``) are ignored if unset and
            refused if set.
        **more: the same options as keywords.

    Returns:
        ``{"path", "parity", "classes", "region", "outputs"}``.

    Raises:
        ExportError: unreadable checkpoint, a detector-only option, export, contract or
            parity (probs and cam within 1e-4) failure.
    """
    opts = {k: v for k, v in {**(options or {}), **more}.items() if v is not None}
    known = {"with_cam", "metrics", "parity_n"}
    foreign = sorted(set(opts) - known)
    if foreign:
        raise ExportError(
            f"options {foreign} do not apply to a classifier (known: {sorted(known)})"
        )
    try:
        module = load_checkpoint(ckpt_path)
    except (OSError, KeyError, RuntimeError) as exc:
        raise ExportError(f"cannot read checkpoint {ckpt_path}: {exc}") from exc
    extra = module.hparams.get("extra") or {}
    provenance = {
        "git": git_revision(),
        "checkpoint": str(ckpt_path),
        "trained_with": extra.get("command"),
    }
    if isinstance(source, dict):
        provenance.update(source)
    elif source is not None:
        provenance["command"] = source
    opts.setdefault("metrics", _fold_metrics(Path(ckpt_path)))
    path, parity = export_module(
        module, out_path, name=name, version=version, opset=opset, source=provenance, **opts
    )
    with_cam = opts.get("with_cam", True)
    return {
        "path": path,
        "parity": parity if parity is not None else float("nan"),
        "classes": list(module.classes),
        "region": module.hparams["region"],
        "outputs": [OUTPUT_PROBS, OUTPUT_CAM] if with_cam else [OUTPUT_PROBS],
    }


def _fold_metrics(ckpt_path: Path) -> dict | None:
    """The CV summary of the run a fold checkpoint belongs to, when its report.json exists."""
    import json

    for parent in list(ckpt_path.parents)[:4]:
        report = parent / "report.json"
        if report.is_file():
            try:
                result = json.loads(report.read_text(encoding="utf-8"))
            except ValueError:
                return None
            s = result.get("summary", {})
            return {
                "cv_folds": result.get("folds"),
                **{k: s[k]["mean"] for k in ("accuracy", "auc", "macro_f1") if k in s},
            }
    return None
