"""Calibration of the detector's presence threshold ``min_peak`` on validation heatmap peaks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def calibrate_min_peak(
    positive_peaks: Sequence[float],
    negative_peaks: Sequence[float],
    *,
    target_fpr: float = 0.05,
    target_miss: float = 0.01,
) -> dict:
    """Choose ``min_peak`` from the heatmap peaks of validation images.

    With frames without a papilla (``negative_peaks``): the smallest threshold at which at most
    ``target_fpr`` of those frames still show a detection (peak >= threshold). Without any
    negatives (e.g. Kvasir-SEG, where every image has a polyp) the false-positive rate cannot be
    measured, so the threshold instead keeps ``1 - target_miss`` of the true objects (the
    ``target_miss`` quantile of the positive peaks); the returned ``method`` says which.

    Returns:
        ``{"min_peak", "method", "target_fpr", "fpr", "tpr", "positives", "negatives"}``;
        ``fpr`` is None without negatives.
    """
    if not 0.0 <= target_fpr < 1.0 or not 0.0 <= target_miss < 1.0:
        raise ValueError(
            f"target rates must be in [0, 1), got fpr={target_fpr}, miss={target_miss}"
        )
    pos = np.sort(np.asarray(positive_peaks, dtype=np.float64))
    neg = np.sort(np.asarray(negative_peaks, dtype=np.float64))[::-1]
    if len(neg):
        allowed = int(math.floor(target_fpr * len(neg)))
        # Strictly above the (allowed+1)-th highest negative peak: exactly `allowed` pass.
        threshold = float(np.nextafter(neg[allowed], np.inf)) if allowed < len(neg) else 0.0
        method = f"false-positive rate <= {target_fpr:g} on {len(neg)} frames without the object"
    elif len(pos):
        threshold = float(np.quantile(pos, target_miss, method="lower"))
        method = (
            f"no frames without the object: keeps {1 - target_miss:.0%} of the "
            f"{len(pos)} validation detections (false-positive rate not measured)"
        )
    else:
        threshold, method = 0.5, "no validation peaks: contract default"
    threshold = float(min(max(threshold, 0.0), 1.0))
    return {
        "min_peak": threshold,
        "method": method,
        "target_fpr": target_fpr,
        "fpr": float(np.mean(neg >= threshold)) if len(neg) else None,
        "tpr": float(np.mean(pos >= threshold)) if len(pos) else None,
        "positives": int(len(pos)),
        "negatives": int(len(neg)),
    }
