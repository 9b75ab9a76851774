"""Detection reports: per-image rows, fold summaries (mean ± std), success plots, worst cases."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from app.core.geometry import (
    CENTROID_THRESHOLDS,
    IOU_THRESHOLDS,
    Box,
    BoxMetrics,
    centroid_success,
    evaluate_box,
    iou_success,
    summarize,
)

#: The figures reported per fold and as mean ± std, in this order.
REPORTED = (
    "miou",
    "precision",
    "recall",
    "centroid_distance",
    "miss_rate",
    "success_iou_0.3",
    "success_iou_0.5",
    "success_cd_0.05",
)


@dataclass(frozen=True)
class ImageResult:
    """One test image's prediction and metrics (boxes in original image pixels)."""

    model: str
    fold: int
    image_id: int | str
    file: str
    width: int
    height: int
    gt: Box | None
    pred: Box | None
    peak: float
    metrics: BoxMetrics | None

    def row(self) -> dict[str, object]:
        """A flat CSV row."""

        def fmt(box):
            return "" if box is None else " ".join(f"{v:.4f}" for v in box)

        m = asdict(self.metrics) if self.metrics else {}
        return {
            "model": self.model,
            "fold": self.fold,
            "image_id": self.image_id,
            "file": self.file,
            "width": self.width,
            "height": self.height,
            "gt_box": fmt(self.gt),
            "pred_box": fmt(self.pred),
            "peak": f"{self.peak:.4f}",
            **{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in m.items()},
        }


def make_result(
    model: str,
    fold: int,
    image_id,
    file: str,
    width: int,
    height: int,
    gt: Box | None,
    pred: Box | None,
    peak: float,
) -> ImageResult:
    """An ImageResult with its metrics (None for an image without a ground-truth box)."""
    metrics = evaluate_box(pred, gt, width, height) if gt is not None else None
    return ImageResult(model, fold, image_id, file, width, height, gt, pred, peak, metrics)


def write_rows(results: Sequence[ImageResult], path: Path) -> Path:
    """Write the per-image CSV."""
    rows = [r.row() for r in results]
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(rows[0]) if rows else ["model"]
    for row in rows:
        fields += [k for k in row if k not in fields]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def summarize_results(results: Sequence[ImageResult]) -> dict[str, dict]:
    """Per model: per-fold figures and their mean ± std (population std over folds)."""
    out: dict[str, dict] = {}
    for model in dict.fromkeys(r.model for r in results):
        mine = [r for r in results if r.model == model and r.metrics is not None]
        folds = sorted({r.fold for r in mine})
        per_fold = {f: summarize([r.metrics for r in mine if r.fold == f]) for f in folds}
        mean = {k: float(np.mean([per_fold[f][k] for f in folds])) for k in REPORTED}
        std = {k: float(np.std([per_fold[f][k] for f in folds])) for k in REPORTED}
        ious = [r.metrics.iou for r in mine]
        dists = [r.metrics.centroid_distance for r in mine]
        out[model] = {
            "folds": {str(f): per_fold[f] for f in folds},
            "mean": mean,
            "std": std,
            "pooled": summarize([r.metrics for r in mine]),
            "iou_curve": dict(
                zip(map(str, IOU_THRESHOLDS), iou_success(ious).tolist(), strict=True)
            ),
            "centroid_curve": dict(
                zip(map(str, CENTROID_THRESHOLDS), centroid_success(dists).tolist(), strict=True)
            ),
        }
    return out


def format_table(summary: Mapping[str, dict]) -> str:
    """A plain-text table: one row per model and fold, plus mean ± std."""
    head = f"{'model':<10} {'fold':>5} " + " ".join(f"{k[:14]:>14}" for k in REPORTED)
    lines = [head]
    for model, s in summary.items():
        for fold, figures in s["folds"].items():
            lines.append(
                f"{model:<10} {fold:>5} " + " ".join(f"{figures[k]:>14.3f}" for k in REPORTED)
            )
        lines.append(
            f"{model:<10} {'mean':>5} "
            + " ".join(f"{s['mean'][k]:>7.3f}±{s['std'][k]:<6.3f}" for k in REPORTED)
        )
    return "\n".join(lines)


def plot_success(summary: Mapping[str, dict], path: Path, title: str = "") -> Path:
    """The paper's Figure 3: success rate vs IoU threshold and vs centroid-distance threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"heatmap": "soft-mask U-Net", "boxreg": "box regression (baseline)"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    for model, s in summary.items():
        style = {"marker": "o", "lw": 2} if model == "heatmap" else {"marker": "s", "ls": "--"}
        axes[0].plot(
            IOU_THRESHOLDS, list(s["iou_curve"].values()), label=labels.get(model, model), **style
        )
        axes[1].plot(
            CENTROID_THRESHOLDS,
            list(s["centroid_curve"].values()),
            label=labels.get(model, model),
            **style,
        )
    axes[0].set(
        xlabel="IoU threshold t",
        ylabel="fraction of images with IoU > t",
        title="IoU success",
        ylim=(0, 1.02),
        xlim=(0, 0.9),
    )
    axes[1].set(
        xlabel="centroid-distance threshold t",
        ylabel="fraction of images with distance < t",
        title="centroid success",
        ylim=(0, 1.02),
        xlim=(0.01, 0.10),
    )
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left" if ax is axes[0] else "upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _draw_box(image: np.ndarray, box: Box | None, colour, thickness: int) -> None:
    if box is None:
        return
    x, y, w, h = box
    cv2.rectangle(
        image,
        (int(round(x)), int(round(y))),
        (int(round(x + w)), int(round(y + h))),
        colour,
        thickness,
        cv2.LINE_AA,
    )


def worst_cases_grid(
    results: Sequence[ImageResult],
    paths: Mapping[str, Path],
    out: Path,
    *,
    model: str = "heatmap",
    count: int = 12,
    tile: int = 220,
    columns: int = 4,
) -> Path | None:
    """A picture grid of the lowest-IoU test images: GT green, prediction red, IoU written."""
    mine = sorted(
        (r for r in results if r.model == model and r.metrics is not None),
        key=lambda r: r.metrics.iou,
    )[:count]
    if not mine:
        return None
    tiles = []
    for r in mine:
        image = cv2.imread(str(paths[str(r.image_id)]), cv2.IMREAD_COLOR)
        if image is None:
            continue
        thick = max(2, int(round(max(image.shape[:2]) / 150)))
        _draw_box(image, r.gt, (60, 220, 60), thick)
        _draw_box(image, r.pred, (40, 40, 255), thick)
        scale = tile / max(image.shape[:2])
        small = cv2.resize(
            image,
            (int(image.shape[1] * scale), int(image.shape[0] * scale)),
            interpolation=cv2.INTER_AREA,
        )
        canvas = np.zeros((tile + 22, tile, 3), np.uint8)
        top = (tile - small.shape[0]) // 2  # centre short images, label right under the tile
        canvas[top : top + small.shape[0], : small.shape[1]] = small
        text = (
            f"IoU {r.metrics.iou:.2f} cd {r.metrics.centroid_distance:.3f}"
            if r.metrics.detected
            else "missed"
        )
        cv2.putText(
            canvas,
            text,
            (4, tile + 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        tiles.append(canvas)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    grid = np.vstack(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), grid)
    return out


def write_json(data, path: Path) -> Path:
    """Write JSON (NaN/inf become null)."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(data), indent=2))
    return path


def _parse_box(text: str) -> Box | None:
    return tuple(float(v) for v in text.split()) if text else None  # type: ignore[return-value]


def read_rows(path: Path) -> list[ImageResult]:
    """Read a ``per_image.csv`` back into ImageResults (metrics recomputed from the boxes)."""
    results = []
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            image_id: int | str = (
                int(row["image_id"]) if row["image_id"].isdigit() else row["image_id"]
            )
            results.append(
                make_result(
                    row["model"],
                    int(row["fold"]),
                    image_id,
                    row["file"],
                    int(row["width"]),
                    int(row["height"]),
                    _parse_box(row["gt_box"]),
                    _parse_box(row["pred_box"]),
                    float(row["peak"]),
                )
            )
    return results
