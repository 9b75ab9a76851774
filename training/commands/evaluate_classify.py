"""``ercp-train evaluate-classify``: evaluate an exported classifier through ONNX Runtime."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = (
    "evaluate an exported difficulty classifier (.onnx) on a labelled dataset through ONNX "
    "Runtime and the app's Classifier"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``evaluate-classify``."""
    parser.add_argument("--model", type=Path, required=True, help="classifier .onnx")
    parser.add_argument(
        "--data", type=Path, required=True, help="dataset folder: COCO JSON, images/, labels.csv"
    )
    parser.add_argument(
        "--detector",
        type=Path,
        default=None,
        help="detector .onnx giving the boxes of a box-region classifier "
        "(default: ground-truth boxes)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the figures."""
    from training.classification.evaluate import evaluate_onnx
    from training.classification.report import confusion_table

    result = evaluate_onnx(args.model, args.data, detector_path=args.detector, limit=args.limit)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    boxes = "" if result["region"] == "field" else f" ({result['boxes']} boxes)"
    print(
        f"{result['model_name']} on {result['data']}: {result['n']} images, task "
        f"{result['task']}, region {result['region']}{boxes}, "
        f"{result['ms_per_image']} ms/image"
    )
    print(
        f"accuracy {result['accuracy']:.3f}  AUC {result['auc']:.3f}  macro P/R/F1 "
        f"{result['macro_precision']:.3f} / {result['macro_recall']:.3f} / "
        f"{result['macro_f1']:.3f}"
    )
    print("\n| class | precision | recall | F1 | support |\n| --- | --- | --- | --- | --- |")
    for name, m in result["per_class"].items():
        print(
            f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
            f"{m['support']} |"
        )
    print()
    print(confusion_table(result["confusion"], result["classes"]))
    return 0
