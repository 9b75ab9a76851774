"""Evaluation of an exported classifier through ONNX Runtime and the app's own ``Classifier``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import ModelContractError
from training.classification.data import load_difficulty_data
from training.classification.labels import TASK_CLASSES
from training.classification.metrics import classification_metrics
from training.common.data import find_field, read_image

log = logging.getLogger(__name__)


def task_of_classes(classes: tuple[str, ...]) -> str:
    """``"binary"`` or ``"four"`` from a model's ``ercp.classes``.

    Raises:
        ModelContractError: if the classes are neither label set of labels.py.
    """
    for task, names in TASK_CLASSES.items():
        if tuple(classes) == names:
            return task
    raise ModelContractError(
        f"model classes {list(classes)}: expected one of {[list(v) for v in TASK_CLASSES.values()]}"
    )


def evaluate_onnx(
    model_path: str | Path,
    data_dir: str | Path,
    *,
    detector_path: str | Path | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Run an exported classifier on every labelled image, exactly as the app would.

    Each frame goes through ``app.core.roi.find_field`` and ``Classifier.predict``. For a
    box-region model the box is the detector's (``detector_path``, as in the app) or, without a
    detector, the ground-truth box.

    Args:
        model_path: the classifier .onnx.
        data_dir: dataset folder (COCO JSON, images, labels.csv).
        detector_path: optional detector .onnx providing the boxes.
        limit: evaluate only the first N labelled images.

    Returns:
        ``classification_metrics`` plus ``model``, ``data``, ``task``, ``classes``,
        ``region``, ``boxes``, ``ms_per_image`` and ``cam_shape``.
    """
    from app.core.inference import Classifier, Detector
    from app.core.models import load_model

    model = load_model(model_path, providers=["cpu"], expect_task="difficulty")
    classifier = Classifier(model)
    classes = tuple(model.info.classes)
    task = task_of_classes(classes)
    detector = None
    if detector_path is not None:
        detector = Detector(
            load_model(detector_path, providers=["cpu"], expect_task="ampulla-heatmap")
        )
    data = load_difficulty_data(data_dir, task)
    samples = data.samples[:limit] if limit else data.samples
    probs = np.zeros((len(samples), len(classes)), np.float64)
    cam_shape = None
    t0 = time.perf_counter()
    for i, sample in enumerate(samples):
        image = read_image(sample.path)
        roi = find_field(image)
        box = sample.box
        if detector is not None:
            box = detector.predict(image, roi).box
        result = classifier.predict(image, roi, box)
        probs[i] = [result.probs[c] for c in classes]
        if result.cam is not None and cam_shape is None:
            cam_shape = list(result.cam.shape)
    elapsed = time.perf_counter() - t0
    labels = np.array([s.label for s in samples], dtype=np.int64)
    metrics = classification_metrics(labels, probs, classes)
    return {
        "model": str(model_path),
        "model_name": model.info.label,
        "data": str(data_dir),
        "task": task,
        "classes": list(classes),
        "region": model.info.region,
        "boxes": "detector" if detector is not None else "ground truth",
        "ms_per_image": round(1000.0 * elapsed / max(1, len(samples)), 2),
        "cam_shape": cam_shape,
        **metrics,
    }
