"""``ercp-train compare-annotators``: model vs GT, human vs GT, model vs human."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

HELP = "compare a second annotator (and optionally model predictions) with the ground truth"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the command."""
    parser.add_argument("--gt", type=Path, required=True, help="ground-truth COCO JSON / folder")
    parser.add_argument(
        "--other",
        type=Path,
        required=True,
        help="the second annotator's COCO JSON / folder (same images)",
    )
    parser.add_argument(
        "--pred",
        type=Path,
        default=None,
        help="model predictions: COCO results [{image_id|file_name, bbox}] "
        "(evaluate-detect --predictions) or a COCO dataset",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def _key(path: Path | str) -> str:
    return Path(str(path)).name


def _boxes_of_dataset(path: Path) -> tuple[dict[str, tuple], dict[str, tuple[int, int]]]:
    from training.common.data import CocoDataset

    ds = CocoDataset.load(path)
    boxes = {_key(r.path): r.box for r in ds.records if r.box is not None}
    sizes = {_key(r.path): (r.width, r.height) for r in ds.records}
    return boxes, sizes


def load_predictions(path: Path, gt_json: Path) -> dict[str, tuple | None]:
    """Predictions keyed by image file name, from a results list or a COCO dataset."""
    from app.core.errors import DatasetError
    from training.common.data import find_annotation_file

    data = json.loads(Path(path).read_text()) if Path(path).is_file() else None
    if isinstance(data, list):
        gt = json.loads(find_annotation_file(gt_json).read_text())
        names = {img["id"]: _key(img["file_name"]) for img in gt["images"]}
        preds: dict[str, tuple | None] = {}
        for row in data:
            name = _key(row["file_name"]) if "file_name" in row else names.get(row.get("image_id"))
            if name is None:
                raise DatasetError(f"{path}: prediction for unknown image {row!r}")
            preds[name] = tuple(float(v) for v in row["bbox"])
        return preds
    boxes, _ = _boxes_of_dataset(path)
    return dict(boxes)


def compare(
    a: dict[str, tuple | None], b: dict[str, tuple], sizes: dict[str, tuple[int, int]]
) -> dict:
    """Summary of boxes ``a`` (prediction side) against ``b`` (reference) on b's images."""
    from app.core.geometry import evaluate_box, summarize

    metrics = [evaluate_box(a.get(name), box, *sizes[name]) for name, box in sorted(b.items())]
    return summarize(metrics)


def run(args: argparse.Namespace) -> int:
    """Print the comparison table."""
    from app.core.errors import DatasetError

    gt, sizes = _boxes_of_dataset(args.gt)
    other, _ = _boxes_of_dataset(args.other)
    common = sorted(set(gt) & set(other))
    if not common:
        raise DatasetError(f"{args.gt} and {args.other} share no image (matched by file name)")
    gt_c = {k: gt[k] for k in common}
    other_c = {k: other[k] for k in common}
    rows = {"human vs GT": compare(other_c, gt_c, sizes)}
    if args.pred:
        pred = load_predictions(args.pred, args.gt)
        rows["model vs GT"] = compare(pred, gt_c, sizes)
        rows["model vs human"] = compare(pred, other_c, sizes)
    rows["GT vs human"] = compare(gt_c, other_c, sizes)
    if args.json:
        print(
            json.dumps(
                {
                    "images": len(common),
                    "rows": {
                        k: {
                            m: (None if isinstance(v, float) and not math.isfinite(v) else v)
                            for m, v in r.items()
                        }
                        for k, r in rows.items()
                    },
                },
                indent=2,
            )
        )
        return 0
    keys = (
        "miou",
        "precision",
        "recall",
        "centroid_distance",
        "success_iou_0.3",
        "success_iou_0.5",
        "success_cd_0.05",
    )
    print(
        f"{len(common)} images annotated by both ({len(gt) - len(common)} only in GT, "
        f"{len(other) - len(common)} only in the other)"
    )
    print(f"{'':<16}" + "".join(f"{k[:13]:>14}" for k in keys))
    for name, s in rows.items():
        print(f"{name:<16}" + "".join(f"{s[k]:>14.3f}" for k in keys))
    return 0
