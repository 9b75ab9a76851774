"""``ercp-train evaluate-detect``: score an exported ONNX detector through the app's own code."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

HELP = "evaluate an exported detector (.onnx) with ONNX Runtime and the app's pre/postprocessing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the command."""
    parser.add_argument("--model", type=Path, required=True, help="the .onnx detector")
    parser.add_argument("--data", type=Path, required=True, help="COCO dataset folder or JSON")
    parser.add_argument(
        "--split",
        type=Path,
        default=None,
        help="a split.json from detect: evaluate only its 'test' images",
    )
    parser.add_argument(
        "--min-peak", type=float, default=None, help="override the model's ercp.min_peak"
    )
    parser.add_argument("--provider", default="cpu", help="cpu, cuda or tensorrt (%(default)s)")
    parser.add_argument("--no-crop-field", action="store_true", help="use the whole frame")
    parser.add_argument("--csv", type=Path, default=None, help="write per-image rows here")
    parser.add_argument(
        "--predictions",
        type=Path,
        default=None,
        help="write COCO-style predictions [{image_id, file_name, bbox, score}]",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the figures (or JSON)."""
    from training.common.data import CocoDataset
    from training.detection.evaluate import evaluate_onnx, select_records
    from training.detection.report import write_rows

    dataset = CocoDataset.load(args.data)
    records = select_records(dataset, args.split)
    results, report = evaluate_onnx(
        args.model,
        records,
        min_peak=args.min_peak,
        providers=[args.provider],
        crop_field=not args.no_crop_field,
    )
    report["data"] = str(dataset.json_path)
    report["split"] = str(args.split) if args.split else None
    if args.csv:
        write_rows(results, args.csv)
    if args.predictions:
        preds = [
            {"image_id": r.image_id, "file_name": r.file, "bbox": list(r.pred), "score": r.peak}
            for r in results
            if r.pred is not None
        ]
        args.predictions.write_text(json.dumps(preds, indent=1))
    if args.json:
        print(json.dumps(_clean(report), indent=2))
        return 0
    s = report["summary"]
    print(
        f"{report['model_name']} on {report['images']} images of {dataset.json_path} "
        f"(min_peak {report['min_peak']:.3f}):"
    )
    if s:
        print(
            f"  mIoU {s['miou']:.3f}  precision {s['precision']:.3f}  recall {s['recall']:.3f}"
            f"  centroid distance {s['centroid_distance']:.4f}  miss rate {s['miss_rate']:.3f}"
        )
        print(
            f"  success: IoU>0.3 {s['success_iou_0.3']:.3f}  IoU>0.5 {s['success_iou_0.5']:.3f}"
            f"  centroid<0.05 {s['success_cd_0.05']:.3f}"
        )
    if report["false_positive_rate"] is not None:
        print(
            f"  false positives on {report['negatives']} frames without the object: "
            f"{report['false_positive_rate']:.3f}"
        )
    t = report["timings_ms"]
    print("  mean ms: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
    return 0
