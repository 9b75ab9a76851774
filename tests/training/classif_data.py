"""A tiny synthetic difficulty dataset (COCO + labels.csv) for the classifier tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np

#: (time_s, technique, failed) per four-class label, cycling through all classes.
CASES = [
    (120.0, "none", 0),  # easy
    (420.0, "none", 0),  # over_5min
    (200.0, "needle_knife", 0),  # additional_technique
    (900.0, "double_guidewire", 1),  # failure
]


def write_tiny_dataset(
    root: Path,
    n_patients: int = 12,
    per_patient: int = 2,
    width: int = 96,
    height: int = 80,
    seed: int = 0,
) -> Path:
    """Write images/, annotations.json and labels.csv; a bright disc marks the papilla and its
    size follows the class, so a model can learn something in a few steps."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations, rows = [], [], []
    k = 0
    for p in range(n_patients):
        case = CASES[p % len(CASES)]
        for _ in range(per_patient):
            k += 1
            img = np.zeros((height, width, 3), np.uint8)
            cv2.ellipse(
                img,
                (width // 2, height // 2),
                (width // 2 - 6, height // 2 - 4),
                0,
                0,
                360,
                (60, 70, 150),
                -1,
            )  # the endoscopic field on a black border
            r = 5 + 3 * (p % len(CASES))
            cx = int(rng.integers(width // 2 - 12, width // 2 + 12))
            cy = int(rng.integers(height // 2 - 8, height // 2 + 8))
            cv2.circle(img, (cx, cy), r, (120, 150, 230), -1)
            noise = rng.integers(0, 12, img.shape, dtype=np.uint8)
            img = cv2.add(img, noise)
            name = f"img_{k:04d}.png"
            cv2.imwrite(str(root / "images" / name), img)
            images.append(
                {
                    "id": k,
                    "file_name": name,
                    "width": width,
                    "height": height,
                    "patient_id": f"P{p:03d}",
                }
            )
            annotations.append(
                {"id": k, "image_id": k, "category_id": 1, "bbox": [cx - r, cy - r, 2 * r, 2 * r]}
            )
            rows.append([name, f"P{p:03d}", case[0], case[1], case[2]])
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "papilla"}],
    }
    (root / "annotations.json").write_text(json.dumps(coco))
    with (root / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["image", "patient_id", "cannulation_time_s", "additional_technique", "failed"]
        )
        writer.writerows(rows)
    return root
