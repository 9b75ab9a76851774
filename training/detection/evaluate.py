"""Evaluation of an exported ONNX detector exactly as the app runs it (ONNX Runtime, app code)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.core.contract import TASK_DETECTOR
from app.core.geometry import summarize
from training.common.data import CocoDataset, find_field, read_image
from training.detection.report import ImageResult, make_result

log = logging.getLogger(__name__)


def select_records(dataset: CocoDataset, split: Path | None, part: str = "test"):
    """The records of ``dataset``, or only those listed under ``part`` in a ``split.json``."""
    if split is None:
        return list(dataset.records)
    ids = json.loads(Path(split).read_text())[part]
    wanted = {str(i) for i in ids}
    chosen = [r for r in dataset.records if str(r.image_id) in wanted]
    if len(chosen) != len(wanted):
        log.warning(
            "%s: %d of the %d %s ids are not in the dataset",
            split,
            len(wanted) - len(chosen),
            len(wanted),
            part,
        )
    return chosen


def evaluate_onnx(
    model_path: Path,
    records: Sequence,
    *,
    min_peak: float | None = None,
    providers: Sequence[str] = ("cpu",),
    crop_field: bool = True,
) -> tuple[list[ImageResult], dict]:
    """Run the app's Detector (``load_model`` + ``Detector.predict``) on every record.

    Each image is read as the app reads frames (BGR), cropped to the endoscopic field with the
    app's ROI finder, and passed through the app's preprocessing, ONNX Runtime and the app's
    heatmap -> box postprocessing with the model's own ``ercp.min_peak`` (unless overridden).

    Returns:
        (per-image results, report): the report has the summary over images with a box, the
        false-positive rate over images without one, the min_peak used, and mean timings.
    """
    from app.core.inference import Detector
    from app.core.models import load_model

    model = load_model(model_path, providers=list(providers), expect_task=TASK_DETECTOR)
    detector = Detector(model, min_peak=min_peak)
    results: list[ImageResult] = []
    timings: dict[str, list[float]] = {}
    false_pos = negatives = 0
    t0 = time.perf_counter()
    for rec in records:
        image = read_image(rec.path)
        roi = find_field(image) if crop_field else None
        det = detector.predict(image, roi)
        for key, value in det.timings_ms.items():
            timings.setdefault(key, []).append(value)
        if rec.box is None:
            negatives += 1
            false_pos += det.box is not None
        results.append(
            make_result(
                "onnx",
                0,
                rec.image_id,
                rec.path.name,
                rec.width,
                rec.height,
                rec.box,
                det.box,
                det.peak,
            )
        )
    scored = [r.metrics for r in results if r.metrics is not None]
    report = {
        "model": str(model_path),
        "model_name": model.info.label,
        "images": len(results),
        "min_peak": detector.min_peak,
        "summary": summarize(scored) if scored else None,
        "negatives": negatives,
        "false_positive_rate": (false_pos / negatives) if negatives else None,
        "timings_ms": {k: float(np.mean(v)) for k, v in timings.items()},
        "seconds": time.perf_counter() - t0,
    }
    return results, report
