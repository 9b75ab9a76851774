"""``ercp-train import-kvasir``: convert Kvasir-SEG's kavsir_bboxes.json into a COCO dataset."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from app.core.errors import DatasetError

HELP = "convert Kvasir-SEG (kavsir_bboxes.json) into a COCO box dataset"
log = logging.getLogger(__name__)
_EXTENSIONS = (".jpg", ".jpeg", ".png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the command."""
    parser.add_argument("src", type=Path, help="Kvasir-SEG folder (kavsir_bboxes.json, images/)")
    parser.add_argument("out", type=Path, help="output folder; annotations.json is written there")
    parser.add_argument(
        "--all-boxes",
        action="store_true",
        help="keep images with several boxes (default: single-box images only)",
    )
    parser.add_argument("--category", default="polyp", help="category name (%(default)s)")
    parser.add_argument(
        "--boxes-from-masks",
        action="store_true",
        help="take each box from the segmentation mask (masks/, one box per "
        "connected region) instead of kavsir_bboxes.json: a second annotation "
        "for compare-annotators",
    )


def mask_boxes(mask_path: Path, min_area: int = 64) -> list[dict]:
    """Kvasir-style boxes (xmin, ymin, xmax exclusive, ymax exclusive) of a mask's regions."""
    import cv2

    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DatasetError(f"cannot read mask {mask_path}")
    count, _, stats, _ = cv2.connectedComponentsWithStats((mask > 127).astype("uint8"), 8)
    boxes = []
    for x, y, w, h, area in stats[1:count]:
        if area >= min_area:  # JPEG speckle is not a polyp
            boxes.append({"xmin": int(x), "ymin": int(y), "xmax": int(x + w), "ymax": int(y + h)})
    return boxes


def convert(
    src: Path,
    out: Path,
    *,
    single_box_only: bool = True,
    category: str = "polyp",
    boxes_from_masks: bool = False,
) -> dict:
    """Write ``out/annotations.json`` (COCO) referring to the images in ``src/images``.

    Kvasir boxes are ``xmin, ymin, xmax, ymax`` in pixels; COCO wants ``[x, y, w, h]``. The
    ``xmax``/``ymax`` are taken as exclusive edges (w = xmax - xmin), as Kvasir's own masks show.

    With ``boxes_from_masks`` the boxes come from ``src/masks`` (one per connected region of at
    least 64 pixels) instead: an independent second annotation of the same polyps.

    Returns:
        Counts: ``images`` kept, ``dropped_multi_box``, ``dropped_no_box``, ``missing_image``.

    Raises:
        DatasetError: if the JSON is missing or malformed.
    """
    bbox_file = src / "kavsir_bboxes.json"
    if not bbox_file.is_file():
        raise DatasetError(f"{src}: no kavsir_bboxes.json (is this the Kvasir-SEG folder?)")
    try:
        entries = json.loads(bbox_file.read_text())
    except ValueError as exc:
        raise DatasetError(f"{bbox_file}: not JSON ({exc})") from exc
    image_dir = (src / "images").resolve()
    images, annotations = [], []
    counts = {
        "source_entries": len(entries),
        "images": 0,
        "dropped_multi_box": 0,
        "dropped_no_box": 0,
        "missing_image": 0,
    }
    for stem in sorted(entries):
        entry = entries[stem]
        boxes = entry.get("bbox") or []
        if boxes_from_masks:
            mask = next(
                (
                    src / "masks" / f"{stem}{ext}"
                    for ext in _EXTENSIONS
                    if (src / "masks" / f"{stem}{ext}").is_file()
                ),
                None,
            )
            boxes = mask_boxes(mask) if mask is not None else []
        if not boxes:
            counts["dropped_no_box"] += 1
            continue
        if single_box_only and len(boxes) > 1:
            counts["dropped_multi_box"] += 1
            continue
        path = next(
            (
                image_dir / f"{stem}{ext}"
                for ext in _EXTENSIONS
                if (image_dir / f"{stem}{ext}").is_file()
            ),
            None,
        )
        if path is None:
            counts["missing_image"] += 1
            log.warning("no image file for %s in %s", stem, image_dir)
            continue
        image_id = len(images) + 1
        images.append(
            {
                "id": image_id,
                "file_name": str(path),
                "width": int(entry["width"]),
                "height": int(entry["height"]),
            }
        )
        for b in boxes:
            x0, y0, x1, y1 = (float(b[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    counts["images"] = len(images)
    coco = {
        "info": {
            "description": "Kvasir-SEG boxes (Jha et al., MMM 2020), converted by "
            "ercp-train import-kvasir; research and educational use only",
            "conversion": counts,
        },
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": category}],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "annotations.json").write_text(json.dumps(coco, indent=1))
    return counts


def run(args: argparse.Namespace) -> int:
    """Convert and print what was kept and dropped."""
    counts = convert(
        args.src,
        args.out,
        single_box_only=not args.all_boxes,
        category=args.category,
        boxes_from_masks=args.boxes_from_masks,
    )
    print(
        f"wrote {args.out / 'annotations.json'}: {counts['images']} images kept of "
        f"{counts['source_entries']}; dropped {counts['dropped_multi_box']} with several "
        f"boxes, {counts['dropped_no_box']} without a box, {counts['missing_image']} "
        f"missing files"
    )
    return 0
