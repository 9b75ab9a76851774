"""Grad-CAM figures of a trained classifier for chosen images (the paper's Fig. 4)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from app.core.contract import InputSpec
from app.core.errors import DatasetError
from training.classification.cam import GradCam
from training.classification.data import Sample, load_difficulty_data, prepare_pixels
from training.classification.module import DifficultyModule
from training.common.data import read_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CamResult:
    """Grad-CAM of one image.

    Attributes:
        name: image file name.
        pixels: the model input (BGR uint8, H x W).
        cam: Grad-CAM map (h, w) in [0, 1] at the feature resolution.
        probs: class probabilities.
        explained: index of the class the map explains.
        truth: true class index, or None when unknown.
    """

    name: str
    pixels: np.ndarray
    cam: np.ndarray
    probs: np.ndarray
    explained: int
    truth: int | None


def overlay(pixels: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """A BGR image with the map upsampled (bilinear) and drawn in the jet colour map."""
    height, width = pixels.shape[:2]
    up = cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap(np.uint8(np.clip(up, 0, 1) * 255), cv2.COLORMAP_JET)
    return cv2.addWeighted(pixels, 1.0 - alpha, heat, alpha, 0.0)


def compute_cams(
    module: DifficultyModule,
    images: Sequence[tuple[str, np.ndarray, int | None]],
    explain: str | None = None,
) -> list[CamResult]:
    """Grad-CAM of model-input images.

    Args:
        module: the trained classifier.
        images: ``(name, pixels BGR uint8 at the model input size, true class or None)``.
        explain: ``None`` (the predicted class), ``"truth"`` (the true class, as in the
            paper's Fig. 4) or a class name.
    """
    classes = module.classes
    if explain not in (None, "truth") and explain not in classes:
        raise DatasetError(f"--explain {explain!r}: expected 'pred', 'truth' or one of {classes}")
    results = []
    with GradCam(module.model) as gradcam:
        for name, pixels, truth in images:
            x = module.normalize(torch.from_numpy(np.ascontiguousarray(pixels))[None])
            target = None
            if explain == "truth" and truth is not None:
                target = [truth]
            elif explain not in (None, "truth"):
                target = [classes.index(explain)]
            probs, maps = gradcam(x, target)
            p = probs[0].numpy()
            explained = int(target[0]) if target is not None else int(np.argmax(p))
            results.append(CamResult(name, pixels, maps[0].numpy(), p, explained, truth))
    return results


def save_figures(results: Sequence[CamResult], classes: Sequence[str], out_dir: Path) -> list[Path]:
    """One PNG per image (input | Grad-CAM overlay) and ``gradcam_grid.png`` with all of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def panel(ax_in, ax_cam, r: CamResult) -> None:
        pred = int(np.argmax(r.probs))
        truth = classes[r.truth] if r.truth is not None else "?"
        ax_in.imshow(cv2.cvtColor(r.pixels, cv2.COLOR_BGR2RGB))
        ax_in.set_title(f"{r.name}\ntrue: {truth}", fontsize=7)
        ax_cam.imshow(cv2.cvtColor(overlay(r.pixels, r.cam), cv2.COLOR_BGR2RGB))
        ax_cam.set_title(
            f"pred: {classes[pred]} ({r.probs[pred]:.2f})\nGrad-CAM of '{classes[r.explained]}'",
            fontsize=7,
        )
        for ax in (ax_in, ax_cam):
            ax.axis("off")

    for r in results:
        fig, axes = plt.subplots(1, 2, figsize=(5.0, 2.8), dpi=120)
        panel(axes[0], axes[1], r)
        fig.tight_layout()
        path = out_dir / f"{Path(r.name).stem}_gradcam.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    cols = min(4, len(results))
    rows = (len(results) + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, 2 * cols, figsize=(2.5 * 2 * cols, 2.8 * rows), dpi=110, squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for i, r in enumerate(results):
        row, col = divmod(i, cols)
        panel(axes[row, 2 * col], axes[row, 2 * col + 1], r)
    fig.tight_layout()
    grid = out_dir / "gradcam_grid.png"
    fig.savefig(grid)
    plt.close(fig)
    written.append(grid)
    return written


def select_samples(data_dir: Path, task: str, names: Sequence[str], per_class: int) -> list[Sample]:
    """The samples named in ``names``, then the first ``per_class`` others of each class.

    Names are labels.csv names or file names.

    Raises:
        DatasetError: a name that is not in the dataset.
    """
    data = load_difficulty_data(data_dir, task)
    by_name = {}
    for s in data.samples:
        by_name.setdefault(s.image, s)
        by_name.setdefault(s.path.name, s)
    chosen = []
    for name in names:
        if name not in by_name and Path(name).name not in by_name:
            raise DatasetError(f"image {name!r} is not in {data_dir}/labels.csv")
        chosen.append(by_name.get(name) or by_name[Path(name).name])
    for c in range(len(data.classes)):
        chosen += [s for s in data.samples if s.label == c and s not in chosen][:per_class]
    return chosen


def prepare_for(module: DifficultyModule, path: Path, box=None) -> np.ndarray:
    """Model-input pixels of an image file, cropped as the model's region says."""
    height, width = (int(v) for v in module.hparams["input_size"])
    spec = InputSpec("image", height, width)
    return prepare_pixels(read_image(path), box, spec, module.hparams["region"])
