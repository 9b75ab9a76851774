"""COCO box datasets: reading, row-by-row validation, and the app's exact crop-and-resize."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from app.core.contract import InputSpec
from app.core.errors import DatasetError
from app.core.geometry import Box, clip_box
from app.core.inference import Rect, Transform, prepare_input

log = logging.getLogger(__name__)

#: How far (pixels) a box may poke out of its image and still be clipped instead of rejected.
BOX_TOLERANCE_PX = 1.0
_JSON_NAMES = ("annotations.json", "coco.json", "instances.json", "dataset.json")


@dataclass(frozen=True)
class ImageRecord:
    """One usable image of a dataset.

    Attributes:
        image_id: the COCO image id.
        path: the image file.
        box: COCO ``[x, y, w, h]`` in image pixels, or None for an image without the object.
        patient_id: groups images for folds (None: the image is its own group).
        width, height: image size from the JSON.
    """

    image_id: int | str
    path: Path
    box: Box | None
    patient_id: str | None
    width: int
    height: int


@dataclass(frozen=True)
class DatasetProblem:
    """One bad row: where it is and what is wrong with it."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def find_annotation_file(path: Path | str) -> Path:
    """The COCO JSON of a dataset folder (or the file itself).

    Raises:
        DatasetError: if there is none or several candidates.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise DatasetError(f"dataset {path}: no such file or folder")
    for name in _JSON_NAMES:
        if (path / name).is_file():
            return path / name
    candidates = sorted(path.glob("*.json"))
    if len(candidates) == 1:
        return candidates[0]
    raise DatasetError(
        f"dataset {path}: expected a COCO file ({' or '.join(_JSON_NAMES)}), found "
        f"{[c.name for c in candidates] or 'no .json file'}"
    )


def _resolve_image(root: Path, file_name: str) -> Path:
    direct = root / file_name
    if direct.exists():
        return direct
    in_images = root / "images" / file_name
    return in_images if in_images.exists() else direct


class CocoDataset:
    """A validated COCO box dataset: ``records`` are the usable images, ``problems`` the rest.

    Use :meth:`load`. The JSON has ``images`` (``id``, ``file_name``, ``width``, ``height``,
    optional ``patient_id``), ``annotations`` (``image_id``, ``bbox`` ``[x, y, w, h]``,
    ``category_id``) and ``categories``. An image with no annotation is a negative (no papilla).
    Image paths are relative to the JSON's folder (or its ``images/`` subfolder).
    """

    def __init__(
        self,
        json_path: Path,
        records: list[ImageRecord],
        problems: list[DatasetProblem],
        fingerprint: str,
        category: str,
    ) -> None:
        self.json_path = json_path
        self.records = records
        self.problems = problems
        self.fingerprint = fingerprint
        self.category = category

    @classmethod
    def load(cls, path: Path | str, *, allow_negatives: bool = True) -> CocoDataset:
        """Read and validate a dataset; bad rows are skipped and summarised in the log.

        Raises:
            DatasetError: if the file is not COCO JSON or no usable image is left.
        """
        json_path = find_annotation_file(path)
        records, problems, fingerprint, category = _read(json_path)
        if not allow_negatives:
            negatives = [r for r in records if r.box is None]
            problems += [
                DatasetProblem(
                    f"image {r.image_id} ({r.path.name})", "has no box (negatives not allowed here)"
                )
                for r in negatives
            ]
            records = [r for r in records if r.box is not None]
        for problem in problems[:20]:
            log.warning("skipped %s", problem)
        if problems:
            log.warning(
                "%s: skipped %d bad rows (%s); %d images usable",
                json_path,
                len(problems),
                _problem_summary(problems),
                len(records),
            )
        if not records:
            raise DatasetError(
                f"dataset {json_path}: no usable image "
                f"({len(problems)} problems, first: {problems[:1]})"
            )
        return cls(json_path, records, problems, fingerprint, category)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self.records)

    def __getitem__(self, index: int) -> ImageRecord:
        return self.records[index]

    @property
    def patient_ids(self) -> list[str | None] | None:
        """Per-record patient ids, or None when the dataset has none."""
        ids = [r.patient_id for r in self.records]
        return ids if any(i is not None for i in ids) else None

    def describe(self) -> dict:
        """Provenance for model metadata (``ercp.trained_on``)."""
        return {
            "dataset": str(self.json_path.parent.name),
            "file": self.json_path.name,
            "fingerprint": self.fingerprint,
            "images": len(self.records),
            "negatives": sum(r.box is None for r in self.records),
            "category": self.category,
        }


def validate_coco(path: Path | str) -> list[DatasetProblem]:
    """Every problem of a COCO dataset, one per bad row, without raising for bad rows.

    Reported: unreadable JSON, missing keys, duplicate image or annotation ids, a missing image
    file, missing or non-positive image size, an annotation for an unknown image, an unknown
    category, a malformed, zero-size or outside-the-image box, several boxes on one image.

    Raises:
        DatasetError: only if the file itself can't be read as COCO JSON.
    """
    return _read(find_annotation_file(path))[1]


def _problem_summary(problems: Sequence[DatasetProblem]) -> str:
    kinds = Counter(p.message.split(":")[0].split(" (")[0] for p in problems)
    return ", ".join(f"{n} x {k}" for k, n in kinds.most_common(5))


def _read(json_path: Path) -> tuple[list[ImageRecord], list[DatasetProblem], str, str]:
    raw = json_path.read_bytes()
    try:
        coco = json.loads(raw)
    except ValueError as exc:
        raise DatasetError(f"{json_path}: not JSON ({exc})") from exc
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        raise DatasetError(f"{json_path}: expected a COCO object with an 'images' list")
    fingerprint = hashlib.sha256(raw).hexdigest()[:16]
    root = json_path.parent
    problems: list[DatasetProblem] = []
    categories = coco.get("categories") or []
    cat_ids = {c.get("id") for c in categories if isinstance(c, dict)}
    category = ", ".join(str(c.get("name")) for c in categories if isinstance(c, dict)) or "?"

    images: dict[object, dict] = {}
    for row, image in enumerate(coco["images"]):
        where = f"images[{row}]"
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            problems.append(DatasetProblem(where, "missing 'id' or 'file_name'"))
            continue
        where = f"image {image['id']} ({image['file_name']})"
        if image["id"] in images:
            problems.append(
                DatasetProblem(
                    where, f"duplicate image id: already used by {images[image['id']]['file_name']}"
                )
            )
            continue
        w, h = image.get("width"), image.get("height")
        if not isinstance(w, (int, float)) or not isinstance(h, (int, float)) or w <= 0 or h <= 0:
            problems.append(
                DatasetProblem(where, f"missing or bad image size: width={w!r}, height={h!r}")
            )
            images[image["id"]] = {**image, "_bad": True}
            continue
        path = _resolve_image(root, str(image["file_name"]))
        if not path.is_file():
            problems.append(DatasetProblem(where, f"missing file: {path}"))
            images[image["id"]] = {**image, "_bad": True}
            continue
        images[image["id"]] = {**image, "_path": path}

    boxes: dict[object, list[Box]] = {}
    bad_images: set[object] = set()
    seen_ann: set[object] = set()
    for row, ann in enumerate(coco.get("annotations") or []):
        where = f"annotations[{row}]"
        if not isinstance(ann, dict):
            problems.append(DatasetProblem(where, "not an object"))
            continue
        if "id" in ann:
            where = f"annotation {ann['id']}"
            if ann["id"] in seen_ann:
                problems.append(DatasetProblem(where, "duplicate annotation id"))
                continue
            seen_ann.add(ann["id"])
        image_id = ann.get("image_id")
        if image_id not in images:
            problems.append(DatasetProblem(where, f"unknown image_id {image_id!r}"))
            continue
        if images[image_id].get("_bad"):
            continue  # the image row was already reported
        if cat_ids and ann.get("category_id") not in cat_ids:
            problems.append(
                DatasetProblem(
                    where,
                    f"unknown category_id {ann.get('category_id')!r}"
                    f" (categories: {sorted(cat_ids, key=str)})",
                )
            )
            bad_images.add(image_id)
            continue
        box, message = _check_box(ann.get("bbox"), images[image_id])
        if box is None:
            problems.append(DatasetProblem(f"{where} (image {image_id})", message))
            bad_images.add(image_id)
            continue
        boxes.setdefault(image_id, []).append(box)

    records = []
    for image_id, image in images.items():
        if image.get("_bad") or image_id in bad_images:
            continue
        found = boxes.get(image_id, [])
        if len(found) > 1:
            problems.append(
                DatasetProblem(
                    f"image {image_id} ({image['file_name']})",
                    f"several boxes on one image: {len(found)} (expected one papilla per image)",
                )
            )
            continue
        patient = image.get("patient_id")
        records.append(
            ImageRecord(
                image_id,
                image["_path"],
                found[0] if found else None,
                None if patient in (None, "") else str(patient),
                int(image["width"]),
                int(image["height"]),
            )
        )
    return records, problems, fingerprint, category


def _check_box(bbox, image: dict) -> tuple[Box | None, str]:
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        return None, f"malformed bbox {bbox!r}: expected [x, y, w, h]"
    try:
        x, y, w, h = (float(v) for v in bbox)
    except (TypeError, ValueError):
        return None, f"malformed bbox {bbox!r}: expected four numbers"
    if not all(np.isfinite([x, y, w, h])):
        return None, f"malformed bbox {bbox!r}: not finite"
    if w <= 0 or h <= 0:
        return None, f"zero-size box {bbox!r}: width and height must be > 0"
    width, height = float(image["width"]), float(image["height"])
    tol = BOX_TOLERANCE_PX
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        return None, (f"box outside the image: {bbox!r} does not fit in {int(width)}x{int(height)}")
    clipped = clip_box((x, y, w, h), width, height)
    if clipped is None:
        return None, f"box outside the image: {bbox!r}"
    return clipped, ""


# --- the app's preprocessing ------------------------------------------------------------


def _local_find_field(image: np.ndarray) -> Rect:
    """Fallback when ``app.core.roi`` is missing: the bounding box of the non-black area."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    bright = gray > 20
    rows = np.flatnonzero(bright.mean(axis=1) > 0.05)
    cols = np.flatnonzero(bright.mean(axis=0) > 0.05)
    if len(rows) < 2 or len(cols) < 2:
        return 0, 0, image.shape[1], image.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def find_field(image: np.ndarray) -> Rect:
    """The endoscopic field rectangle, exactly as the app finds it (``app.core.roi``)."""
    try:
        from app.core.roi import find_field as app_find_field
    except ImportError:  # the engine's ROI module is not there yet
        return _local_find_field(image)
    return app_find_field(image)


def box_to_input(box: Box, transform: Transform) -> Box | None:
    """Map a frame box into model-input pixels (the inverse of ``Transform.to_frame``)."""
    x, y, w, h = box
    mapped = (
        (x - transform.dx) / transform.sx,
        (y - transform.dy) / transform.sy,
        w / transform.sx,
        h / transform.sy,
    )
    return clip_box(mapped, *transform.input_size)


def read_image(path: Path) -> np.ndarray:
    """Read a BGR uint8 image.

    Raises:
        DatasetError: if the file can't be decoded.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}")
    return image


@dataclass(frozen=True)
class PreparedImage:
    """A record after the app's preprocessing: model-input pixels and the box in them."""

    pixels: np.ndarray
    box: Box | None
    transform: Transform


def prepare_record(
    record: ImageRecord, spec: InputSpec, *, crop_field: bool = True
) -> PreparedImage:
    """Crop to the endoscopic field and resize exactly as the app does; map the box too."""
    image = read_image(record.path)
    if image.shape[:2] != (record.height, record.width):
        raise DatasetError(
            f"image {record.path.name} is {image.shape[1]}x{image.shape[0]}, "
            f"but the JSON says {record.width}x{record.height}"
        )
    roi = find_field(image) if crop_field else None
    pixels, transform = prepare_input(image, roi, spec)
    box = None if record.box is None else box_to_input(record.box, transform)
    return PreparedImage(pixels, box, transform)
