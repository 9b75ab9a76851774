"""Difficulty datasets: COCO images joined with labels.csv, preprocessed exactly as the app does.

A dataset folder holds the COCO JSON (``training.common.data``), the images and
``labels.csv``. Each labelled image is cropped to the endoscopic field (``region="field"``) or
to the box grown by a margin (``region="box"``: the ground-truth box at training time, where
the app uses the detector's; ``app.core.inference.classifier_region`` computes both), then
resized with ``app.core.inference.prepare_input``. The model-input pixels are cached in one
uint8 array, so cross-validation reads and resizes every image once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from app.core.contract import InputSpec
from app.core.errors import ConfigError, DatasetError
from app.core.geometry import Box
from app.core.inference import classifier_region, prepare_input
from training.classification.labels import (
    ClinicalRecord,
    LabelFileError,
    LabelProblem,
    classes_for,
    derive_label,
    read_labels,
)
from training.common.augment import AugmentConfig, augment
from training.common.data import CocoDataset, ImageRecord, find_field, read_image

log = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"
REGIONS = ("field", "box")
#: The paper's augmentation (flip, shear, rotation) plus colour jitter; no blur, no zoom-out
#: that would cut the papilla off a box crop.
CLASSIFY_AUGMENT = AugmentConfig(
    hflip=0.5,
    vflip=0.5,
    rotate_deg=15.0,
    shear_deg=8.0,
    scale=(0.9, 1.1),
    translate=0.04,
    brightness=0.15,
    contrast=0.15,
    saturation=0.15,
    hue_deg=4.0,
    blur_p=0.0,
)


@dataclass(frozen=True)
class Sample:
    """One labelled image of a difficulty dataset.

    Attributes:
        image: the image as named in labels.csv.
        path: the image file.
        patient_id: the patient (folds never split one).
        label: class index for the task.
        box: ground-truth COCO box in frame pixels, or None.
        record: the validated clinical record.
    """

    image: str
    path: Path
    patient_id: str
    label: int
    box: Box | None
    record: ClinicalRecord


@dataclass(frozen=True)
class DifficultyData:
    """A dataset for one task: samples in labels.csv order, class names and provenance."""

    root: Path
    task: str
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]
    fingerprint: str

    @property
    def labels(self) -> np.ndarray:
        """Class index per sample."""
        return np.array([s.label for s in self.samples], dtype=np.int64)

    @property
    def patients(self) -> list[str]:
        """Patient id per sample."""
        return [s.patient_id for s in self.samples]

    def class_counts(self) -> list[int]:
        """Samples per class."""
        return np.bincount(self.labels, minlength=len(self.classes)).tolist()

    def describe(self) -> dict:
        """Provenance for ``ercp.trained_on`` and reports."""
        return {
            "dataset": self.root.name,
            "fingerprint": self.fingerprint,
            "task": self.task,
            "images": len(self.samples),
            "patients": len(set(self.patients)),
            "class_counts": dict(zip(self.classes, self.class_counts(), strict=True)),
        }


def _record_keys(record: ImageRecord, root: Path) -> list[str]:
    keys = [record.path.name]
    for base in (root, root / "images"):
        try:
            keys.append(record.path.relative_to(base).as_posix())
        except ValueError:
            pass
    return keys


def load_difficulty_data(root: str | Path, task: str) -> DifficultyData:
    """Join a dataset's COCO images with its ``labels.csv`` for ``task`` ("binary" or "four").

    Every labels.csv row must name an image of the COCO file (by file name, or path relative to
    the dataset or its images/ folder) whose patient id, if the COCO file has one, is the same.

    Raises:
        DatasetError: missing files or columns, or no usable rows.
        LabelFileError: bad rows, listed by row, column and value.
    """
    root = Path(root)
    classes = classes_for(task)
    labels_path = root / LABELS_FILE if root.is_dir() else root.parent / LABELS_FILE
    coco = CocoDataset.load(root)
    by_key: dict[str, ImageRecord] = {}
    for record in coco.records:
        for key in _record_keys(record, coco.json_path.parent):
            by_key.setdefault(key, record)
    records = read_labels(labels_path, known_images=by_key.keys())
    problems: list[LabelProblem] = []
    samples = []
    for rec in records:
        image_record = by_key[rec.image]
        if image_record.patient_id is not None and image_record.patient_id != rec.patient_id:
            problems.append(
                LabelProblem(
                    rec.row,
                    "patient_id",
                    rec.patient_id,
                    f"{image_record.patient_id!r} as in the COCO file",
                )
            )
            continue
        samples.append(
            Sample(
                rec.image,
                image_record.path,
                rec.patient_id,
                derive_label(rec, task),
                image_record.box,
                rec,
            )
        )
    if problems:
        raise LabelFileError(labels_path, problems)
    log.info(
        "%s: %d labelled images, %d patients, classes %s",
        root,
        len(samples),
        len({s.patient_id for s in samples}),
        dict(
            zip(
                classes,
                np.bincount([s.label for s in samples], minlength=len(classes)).tolist(),
                strict=True,
            )
        ),
    )
    return DifficultyData(root, task, classes, tuple(samples), coco.fingerprint)


def check_region(region: str, box_margin: float) -> str | dict[str, float]:
    """The ``ercp.region`` value of a region choice.

    Raises:
        ConfigError: unknown region or a negative margin.
    """
    if region not in REGIONS:
        raise ConfigError(f"--region must be one of {', '.join(REGIONS)}, got {region!r}")
    if box_margin < 0:
        raise ConfigError(f"--box-margin must be >= 0, got {box_margin}")
    return "field" if region == "field" else {"box_margin": float(box_margin)}


def prepare_pixels(
    image: np.ndarray, box: Box | None, spec: InputSpec, region: str | dict[str, float]
) -> np.ndarray:
    """Model-input pixels of one BGR frame, exactly as ``app.core.inference.Classifier`` crops.

    Args:
        image: BGR uint8 frame.
        box: the papilla box in frame pixels (ground truth in training), or None.
        spec: model input size.
        region: ``"field"`` or ``{"box_margin": m}``.
    """
    field_rect = find_field(image)
    margin = None if region == "field" else float(region["box_margin"])
    rect, _ = classifier_region(box, margin, field_rect)
    pixels, _ = prepare_input(image, rect, spec)
    return pixels


def prepare_all(
    samples: Sequence[Sample], spec: InputSpec, region: str | dict[str, float]
) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 BGR model inputs of every sample (read and resized once)."""
    out = np.empty((len(samples), spec.height, spec.width, 3), dtype=np.uint8)
    for i, sample in enumerate(samples):
        out[i] = prepare_pixels(read_image(sample.path), sample.box, spec, region)
        if (i + 1) % 500 == 0:
            log.info("prepared %d / %d images", i + 1, len(samples))
    return out


class PixelDataset(Dataset):
    """Cached model-input pixels and labels; augments every access when ``augment_cfg`` is set.

    Items are ``(uint8 (H, W, 3) BGR tensor, label)``; the model's ``ImageNormalizer`` does the
    rest, as the exported graph does.
    """

    def __init__(
        self,
        pixels: np.ndarray,
        labels: np.ndarray,
        indices: Sequence[int],
        augment_cfg: AugmentConfig | None = None,
        seed: int = 0,
    ):
        if len(pixels) != len(labels):
            raise DatasetError(f"{len(pixels)} images but {len(labels)} labels")
        self.pixels = pixels
        self.labels = labels
        self.indices = np.asarray(indices, dtype=np.int64)
        self.augment_cfg = augment_cfg
        self.seed = seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int]:
        index = int(self.indices[item])
        image = self.pixels[index]
        if self.augment_cfg is not None:
            # A fresh stream per access: reproducible under the global seed, and different in
            # every epoch (torch's RNG advances) and every dataloader worker.
            rng = np.random.default_rng([self.seed, index, int(torch.randint(0, 2**31, ()))])
            image, _ = augment(image, None, rng, self.augment_cfg)
        return torch.from_numpy(np.ascontiguousarray(image)), int(self.labels[index])
