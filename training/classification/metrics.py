"""Classification figures as in the paper: per-class precision/recall/F1, accuracy, AUC, folds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.core.errors import DatasetError

#: Overall figures summarised over folds, in report order.
OVERALL_KEYS: tuple[str, ...] = (
    "accuracy",
    "auc",
    "macro_precision",
    "macro_recall",
    "macro_f1",
)
PER_CLASS_KEYS: tuple[str, ...] = ("precision", "recall", "f1")


def _safe_div(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``(C, C)`` counts; row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return matrix


def auc_score(y_true: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC: binary on the positive class; one-vs-rest macro for more classes.

    A class absent from ``y_true`` (or the only one present) has no AUC; it is left out of the
    macro average, and NaN is returned when no class has one.
    """
    from sklearn.metrics import roc_auc_score

    n_classes = probs.shape[1]
    if n_classes == 2:
        if len(np.unique(y_true)) < 2:
            return math.nan
        return float(roc_auc_score(y_true, probs[:, 1]))
    aucs = []
    for c in range(n_classes):
        positive = y_true == c
        if 0 < positive.sum() < len(y_true):
            aucs.append(roc_auc_score(positive.astype(int), probs[:, c]))
    return float(np.mean(aucs)) if aucs else math.nan


def classification_metrics(
    y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """All figures of one evaluation (one fold, or a whole model on a dataset).

    Args:
        y_true: true class indices.
        probs: ``(N, C)`` predicted probabilities; the prediction is the argmax.
        classes: class names in output order.

    Returns:
        ``{"n", "accuracy", "auc", "macro_precision", "macro_recall", "macro_f1",
        "per_class": {name: {"precision", "recall", "f1", "support"}}, "confusion"}``. A class
        never predicted has precision 0 (as scikit-learn's ``zero_division=0``).

    Raises:
        DatasetError: if shapes disagree or there is nothing to evaluate.
    """
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(probs, dtype=np.float64)
    n_classes = len(classes)
    if p.ndim != 2 or p.shape != (len(y), n_classes) or len(y) == 0:
        raise DatasetError(
            f"cannot evaluate: {len(y)} labels and probabilities of shape {p.shape} for "
            f"{n_classes} classes"
        )
    pred = p.argmax(axis=1)
    matrix = confusion_matrix(y, pred, n_classes)
    per_class = {}
    for c, name in enumerate(classes):
        tp = matrix[c, c]
        precision = _safe_div(tp, matrix[:, c].sum())
        recall = _safe_div(tp, matrix[c, :].sum())
        f1 = _safe_div(2 * precision * recall, precision + recall)
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(matrix[c, :].sum()),
        }
    return {
        "n": int(len(y)),
        "accuracy": _safe_div(np.trace(matrix), matrix.sum()),
        "auc": auc_score(y, p),
        "macro_precision": float(np.mean([v["precision"] for v in per_class.values()])),
        "macro_recall": float(np.mean([v["recall"] for v in per_class.values()])),
        "macro_f1": float(np.mean([v["f1"] for v in per_class.values()])),
        "per_class": per_class,
        "confusion": matrix.tolist(),
    }


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], float)
    if len(arr) == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(len(arr))}


def summarize_folds(folds: Sequence[dict[str, Any]], classes: Sequence[str]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1) over folds of every figure.

    This is the "mean ± std" of the paper's tables; the confusion matrices are summed.
    """
    if not folds:
        raise DatasetError("no folds to summarise")
    summary: dict[str, Any] = {k: _mean_std([f[k] for f in folds]) for k in OVERALL_KEYS}
    summary["per_class"] = {
        name: {k: _mean_std([f["per_class"][name][k] for f in folds]) for k in PER_CLASS_KEYS}
        for name in classes
    }
    summary["confusion"] = np.sum([np.asarray(f["confusion"]) for f in folds], axis=0).tolist()
    summary["folds"] = len(folds)
    return summary
