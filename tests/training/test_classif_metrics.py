"""Classification figures against scikit-learn, fold summaries and the paper-layout report."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

from app.core.errors import ConfigError, DatasetError
from training.classification.metrics import classification_metrics, summarize_folds
from training.classification.module import class_weights
from training.classification.report import (
    confusion_table,
    macro_table,
    per_class_table,
    plot_confusion,
    plot_roc,
    pm,
)

BIN = ("easy", "difficult")
FOUR = ("easy", "over_5min", "additional_technique", "failure")


def random_case(n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probs


@pytest.mark.parametrize(("classes", "seed"), [(BIN, 0), (BIN, 1), (FOUR, 2), (FOUR, 3)])
def test_metrics_match_sklearn(classes, seed):
    y, probs = random_case(200, len(classes), seed)
    m = classification_metrics(y, probs, classes)
    pred = probs.argmax(axis=1)
    p, r, f, s = precision_recall_fscore_support(
        y, pred, labels=range(len(classes)), zero_division=0
    )
    for i, name in enumerate(classes):
        assert m["per_class"][name]["precision"] == pytest.approx(p[i])
        assert m["per_class"][name]["recall"] == pytest.approx(r[i])
        assert m["per_class"][name]["f1"] == pytest.approx(f[i])
        assert m["per_class"][name]["support"] == s[i]
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f.mean())
    if len(classes) == 2:
        assert m["auc"] == pytest.approx(roc_auc_score(y, probs[:, 1]))
    else:
        assert m["auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    assert np.asarray(m["confusion"]).sum() == 200


def test_never_predicted_class_and_missing_class():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0, 0], [0.8, 0.2, 0, 0], [0.6, 0.4, 0, 0], [0.3, 0.7, 0, 0]])
    m = classification_metrics(y, probs, FOUR)
    assert m["per_class"]["failure"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["per_class"]["easy"]["precision"] == pytest.approx(2 / 3)
    assert not math.isnan(m["auc"])  # classes absent from y_true are left out of the macro


def test_bad_shapes():
    with pytest.raises(DatasetError, match="cannot evaluate"):
        classification_metrics([0, 1], np.zeros((3, 2)), BIN)


def test_summary_and_tables(tmp_path):
    folds = [classification_metrics(*random_case(80, 2, s), BIN) for s in range(5)]
    summary = summarize_folds(folds, BIN)
    accs = [f["accuracy"] for f in folds]
    assert summary["accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert summary["accuracy"]["std"] == pytest.approx(np.std(accs, ddof=1))
    assert np.asarray(summary["confusion"]).sum() == 400
    table = per_class_table([("A", summary), ("B", summary)], BIN)
    lines = table.splitlines()
    assert lines[0] == "| Model | A: easy | A: difficult | B: easy | B: difficult |"
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| Precision",
        "| Recall",
        "| F1 score",
        "| ACC",
        "| AUC",
    ]
    assert pm(summary["accuracy"]) in lines[5]
    single = per_class_table([("A", summary)], BIN).splitlines()[0]
    assert single == "| A | easy | difficult |"
    macro = macro_table([("A", summary)])
    assert "Macro-average F1 score" in macro and pm(summary["macro_f1"]) in macro
    assert "| easy |" in confusion_table(summary["confusion"], BIN)
    roc = plot_roc([random_case(50, 2, 9), random_case(50, 2, 10)], BIN, tmp_path / "r.png", "t")
    roc4 = plot_roc([random_case(60, 4, 9)], FOUR, tmp_path / "r4.png", "t")
    cm = plot_confusion(summary["confusion"], BIN, tmp_path / "c.png", "t")
    for path in (roc, roc4, cm):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pm_formats():
    assert pm({"mean": 0.7191, "std": 0.0814}) == "0.719 ± 0.081"
    assert pm({"mean": math.nan, "std": math.nan}) == "n/a"


def test_class_weights():
    w = class_weights([0, 0, 0, 1], 2)
    assert w == pytest.approx([4 / 6, 4 / 2])
    assert class_weights([0, 1, 2, 3], 4) == pytest.approx([1, 1, 1, 1])
    with pytest.raises(ConfigError, match=r"class\(es\) \[2\]"):
        class_weights([0, 1], 3)
