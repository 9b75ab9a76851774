"""Render docs/overlay_example.png on a phantom frame: `python -m tests.overlay_example [OUT]`.

No trained model is involved: the heatmap is the soft mask of the phantom's ground-truth box
(what a perfect detector would output) and the difficulty probabilities are fixed numbers
leaning towards the phantom case's true label. It shows what the renderer draws, not what a
model predicts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from app.core.frame import Difficulty, Prediction
from app.core.geometry import soft_mask
from app.core.overlay import HudInfo, OverlayOptions, render_overlay
from app.core.phantom import PhantomConfig, PhantomSource
from app.core.roi import find_field


def example(seed: int = 3, index: int = 0, height: int = 720) -> np.ndarray:
    """The overlay on frame ``index`` of phantom video ``seed`` at ``height`` lines."""
    width = height * 16 // 9
    source = PhantomSource(
        seed=seed,
        config=PhantomConfig(width=width, height=height),
        realtime=False,
        max_frames=index + 1,
    )
    frame = None
    for _ in range(index + 1):
        frame = source.read()
    source.close()
    roi = find_field(frame.image)
    x, y, w, h = roi
    box = tuple(frame.truth["box"])
    factor = 4  # heatmaps are usually a fraction of the input resolution
    heat = soft_mask(
        ((box[0] - x) / factor, (box[1] - y) / factor, box[2] / factor, box[3] / factor),
        (h // factor, w // factor),
    )
    label = frame.truth["case"]["label_binary"]
    probs = (
        {"easy": 0.27, "difficult": 0.73}
        if label == "difficult"
        else {"easy": 0.73, "difficult": 0.27}
    )
    prediction = Prediction(
        frame.index,
        frame.t,
        frame.t + 0.048,
        box,
        float(heat.max()),
        heat,
        roi,
        Difficulty(label, probs),
    )
    hud = HudInfo(30.0, 48.0, "CPU", "ground truth (no model)")
    return render_overlay(frame.image, prediction, OverlayOptions(), hud, phi_mask=True)


def main(argv: list[str]) -> int:
    """Write the example PNG (default docs/overlay_example.png)."""
    out = Path(argv[0] if argv else "docs/overlay_example.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), example())
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
