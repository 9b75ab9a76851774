"""``ercp-train export``: a checkpoint -> a contract ONNX model, dispatched on its task."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from app.core.errors import ExportError

HELP = "export a trained checkpoint (detector or classifier) as a contract ONNX model"
log = logging.getLogger(__name__)

#: checkpoint hparams "task" -> "module:function" with the signature
#: ``export_checkpoint(ckpt, out, *, name, version, opset, source, options) -> dict``.
EXPORTERS: dict[str, str] = {
    "detect": "training.detection.export:export_checkpoint",
    "classify": "training.classification.export:export_checkpoint",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the command."""
    parser.add_argument("ckpt", type=Path, help="checkpoint (.ckpt) from detect / classify")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--name", default=None, help="model name in the metadata")
    parser.add_argument("--model-version", default="1.0", help="model version (%(default)s)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (%(default)s)")
    parser.add_argument(
        "--min-peak",
        type=float,
        default=None,
        help="detector: override the calibrated ercp.min_peak",
    )
    parser.add_argument(
        "--fp16", action="store_true", help="also write <out>.fp16.onnx (GPU variant)"
    )
    parser.add_argument(
        "--int8",
        type=Path,
        default=None,
        metavar="DATA",
        help="also write <out>.int8.onnx, calibrated on images of this dataset",
    )


def checkpoint_task(ckpt: Path) -> str:
    """The ``task`` hyper-parameter stored in a Lightning checkpoint.

    Raises:
        ExportError: if the file is not a checkpoint with a known task.
    """
    import torch

    if not ckpt.is_file():
        raise ExportError(f"checkpoint {ckpt}: no such file")
    try:
        data = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise ExportError(f"{ckpt}: not a Lightning checkpoint ({exc})") from exc
    task = (data.get("hyper_parameters") or {}).get("task") if isinstance(data, dict) else None
    if task not in EXPORTERS:
        raise ExportError(
            f"{ckpt}: hyper-parameter 'task' is {task!r}, expected one of {sorted(EXPORTERS)}"
        )
    return task


def _exporter(task: str):
    module_name, func = EXPORTERS[task].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExportError(f"no exporter for task {task!r} ({exc})") from exc
    return getattr(module, func)


def _int8_images(data: Path, out_path: Path, n: int = 32):
    import numpy as np

    from app.core.inference import prepare_input
    from app.core.models import load_model
    from training.common.data import CocoDataset, find_field, read_image

    spec = load_model(out_path, providers=["cpu"], warmup=False).info.input
    dataset = CocoDataset.load(data)
    for rec in dataset.records[:n]:
        image = read_image(rec.path)
        pixels, _ = prepare_input(image, find_field(image), spec)
        yield np.ascontiguousarray(pixels[None])


def run(args: argparse.Namespace) -> int:
    """Export, check and print the result."""
    from training.common.export import quantize_int8, to_fp16

    task = checkpoint_task(args.ckpt)
    options = {"min_peak": args.min_peak}
    report = _exporter(task)(
        args.ckpt,
        args.out,
        name=args.name,
        version=args.model_version,
        opset=args.opset,
        source={"command": " ".join(["ercp-train", *sys.argv[1:]])},
        options=options,
    )
    print(
        f"wrote {report['path']} ({task}); onnx.checker ok; max |torch - onnxruntime| = "
        f"{report['parity']:.2e}"
        + (f"; min_peak {report['min_peak']:.3f}" if report.get("min_peak") is not None else "")
    )
    if args.fp16:
        fp16 = to_fp16(args.out, args.out.with_suffix(".fp16.onnx"))
        print(f"wrote {fp16} (fp16)")
    if args.int8:
        int8 = quantize_int8(
            args.out, args.out.with_suffix(".int8.onnx"), _int8_images(args.int8, args.out)
        )
        print(f"wrote {int8} (int8)")
    return 0
