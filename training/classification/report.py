"""Reports of a cross-validated classifier: the paper's Table 2/3 layouts, ROC, confusion PNGs."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.classification.metrics import PER_CLASS_KEYS

_ROW_NAMES = {"precision": "Precision", "recall": "Recall", "f1": "F1 score"}


def pm(stat: dict[str, float] | None, digits: int = 3) -> str:
    """``"0.719 ± 0.081"`` from ``{"mean", "std"}``; ``"n/a"`` when undefined."""
    if not stat or stat.get("mean") is None or math.isnan(stat["mean"]):
        return "n/a"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def per_class_table(runs: Sequence[tuple[str, dict[str, Any]]], classes: Sequence[str]) -> str:
    """Table 2's layout: a column per (run, class); rows precision, recall, F1, then ACC, AUC.

    Args:
        runs: ``(name, summary)`` pairs; ``summary`` as from ``metrics.summarize_folds``.
        classes: class names, in output order.
    """
    if len(runs) == 1:
        header = [runs[0][0]] + list(classes)
    else:
        header = ["Model"] + [f"{name}: {c}" for name, _ in runs for c in classes]
    rows = []
    for key in PER_CLASS_KEYS:
        rows.append(
            [_ROW_NAMES[key]] + [pm(s["per_class"][c][key]) for _, s in runs for c in classes]
        )
    for key, label in (("accuracy", "ACC"), ("auc", "AUC")):
        row = [label]
        for _, summary in runs:
            row += [pm(summary[key])] + [""] * (len(classes) - 1)
        rows.append(row)
    return _md(header, rows)


def macro_table(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Table 3's layout: a row per run; macro precision, recall, F1, accuracy (and AUC)."""
    header = [
        "Model",
        "Macro-average precision",
        "Macro-average recall",
        "Macro-average F1 score",
        "Accuracy",
        "AUC (one-vs-rest macro)",
    ]
    rows = [
        [
            name,
            pm(s["macro_precision"]),
            pm(s["macro_recall"]),
            pm(s["macro_f1"]),
            pm(s["accuracy"]),
            pm(s["auc"]),
        ]
        for name, s in runs
    ]
    return _md(header, rows)


def confusion_table(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """Summed confusion matrix as markdown; rows are true classes, columns predictions."""
    header = ["true \\ predicted"] + list(classes)
    rows = [[c] + [str(int(v)) for v in row] for c, row in zip(classes, matrix, strict=True)]
    return _md(header, rows)


def render_report(result: dict[str, Any]) -> str:
    """The markdown report of one ``classify`` run (``result`` is its report.json)."""
    classes = result["classes"]
    summary = result["summary"]
    name = result["name"]
    parts = [
        f"# Difficulty classification: {name}",
        "",
        f"- data: `{result['data']}` ({result['n_images']} images, {result['n_patients']} "
        f"patients; class counts {dict(zip(classes, result['class_counts'], strict=True))})",
        f"- {result['folds']}-fold cross-validation, stratified by class and grouped by patient;"
        f" mean ± sample std over folds",
        f"- model `{result['arch']}` at {result['size']} px, region {result['region']}, "
        f"balance {result['balance']}, early stopping on {result['monitor']}",
        f"- training time {result['train_time_s'] / 60:.1f} min (all folds)",
        f"- command: `{result['command']}`",
        "",
        "## Per class (layout of the paper's Table 2)",
        "",
        per_class_table([(name, summary)], classes),
        "",
        "## Macro averages (layout of the paper's Table 3)",
        "",
        macro_table([(name, summary)]),
        "",
        "## Confusion matrix (summed over folds)",
        "",
        confusion_table(summary["confusion"], classes),
        "",
    ]
    return "\n".join(parts)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(
    folds: Sequence[tuple[np.ndarray, np.ndarray]], classes: Sequence[str], out: Path, title: str
) -> Path:
    """ROC curves of out-of-fold predictions.

    Binary: one curve per fold and the pooled one. More classes: one-vs-rest per class on the
    pooled predictions.

    Args:
        folds: per fold ``(y_true, probs)``.
        classes: class names.
        out: the PNG to write.
        title: figure title.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    y_all = np.concatenate([y for y, _ in folds])
    p_all = np.concatenate([p for _, p in folds])
    fig, ax = plt.subplots(figsize=(5.2, 5.0), dpi=110)
    if len(classes) == 2:
        for k, (y, p) in enumerate(folds):
            if len(np.unique(y)) == 2:
                fpr, tpr, _ = roc_curve(y, p[:, 1])
                ax.plot(
                    fpr,
                    tpr,
                    lw=0.8,
                    alpha=0.5,
                    label=f"fold {k + 1} (AUC {roc_auc_score(y, p[:, 1]):.3f})",
                )
        if len(np.unique(y_all)) == 2:
            fpr, tpr, _ = roc_curve(y_all, p_all[:, 1])
            ax.plot(
                fpr,
                tpr,
                lw=2.0,
                color="black",
                label=f"pooled (AUC {roc_auc_score(y_all, p_all[:, 1]):.3f})",
            )
        ax.set_title(f"{title}\nROC, positive class '{classes[1]}'", fontsize=9)
    else:
        for c, name in enumerate(classes):
            positive = (y_all == c).astype(int)
            if 0 < positive.sum() < len(positive):
                fpr, tpr, _ = roc_curve(positive, p_all[:, c])
                ax.plot(
                    fpr,
                    tpr,
                    lw=1.5,
                    label=f"{name} vs rest (AUC {roc_auc_score(positive, p_all[:, c]):.3f})",
                )
        ax.set_title(f"{title}\nROC one-vs-rest, pooled out-of-fold predictions", fontsize=9)
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_confusion(
    matrix: Sequence[Sequence[int]], classes: Sequence[str], out: Path, title: str
) -> Path:
    """Confusion matrix PNG: colour = row-normalised recall, text = count and fraction."""
    plt = _pyplot()
    counts = np.asarray(matrix, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 2.2 + 1.0 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.0, size), dpi=110)
    image = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                f"{int(counts[i, j])}\n{frac[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if frac[i, j] > 0.55 else "black",
            )
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def load_result(run_dir: Path) -> dict[str, Any]:
    """The report.json of a ``classify`` run folder."""
    return json.loads((Path(run_dir) / "report.json").read_text(encoding="utf-8"))


def compare_runs(run_dirs: Sequence[Path], names: Sequence[str] | None = None) -> str:
    """Side-by-side tables of several runs of the same task (e.g. with and without balancing)."""
    results = [load_result(d) for d in run_dirs]
    classes = results[0]["classes"]
    runs = [((names[i] if names else r["name"]), r["summary"]) for i, r in enumerate(results)]
    return "\n\n".join([per_class_table(runs, classes), macro_table(runs)])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.classification.report RUN [RUN ...]``: side-by-side tables."""
    import argparse

    parser = argparse.ArgumentParser(description=compare_runs.__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="classify run folders")
    parser.add_argument("--names", nargs="*", default=None, help="column names, one per run")
    args = parser.parse_args(argv)
    print(compare_runs(args.runs, args.names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
