"""The values that cross thread boundaries: one Frame type and one Prediction type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from app.core.geometry import Box


@dataclass(frozen=True, eq=False)
class Frame:
    """One video frame as OpenCV delivers it.

    Attributes:
        image: BGR uint8 array (H, W, 3). Never converted in place; colour is converted at
            most once, at the model input or at the screen.
        index: frame number within its source, from 0.
        t: capture time from ``time.monotonic()``, in seconds.
        position_s: position within a recording or file, in seconds (None for live sources).
        truth: ground truth when the source knows it (the phantom), else None.
    """

    image: np.ndarray
    index: int
    t: float
    position_s: float | None = None
    truth: dict | None = None

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class Difficulty:
    """A (smoothed) cannulation-difficulty estimate."""

    label: str
    probs: dict[str, float]


@dataclass(frozen=True, eq=False)
class Prediction:
    """What the models said about one frame, in that frame's pixel coordinates.

    Attributes:
        frame_index: index of the frame the prediction was made from.
        frame_t: that frame's capture time (monotonic seconds).
        ready_t: when the prediction was ready (monotonic seconds).
        box: COCO box in frame pixels, or None when no papilla is present.
        peak: raw heatmap peak, the presence score.
        heatmap: float32 heatmap in [0, 1] covering ``roi`` (any resolution), or None.
        roi: ``(x, y, w, h)`` integer endoscopic-field rectangle the models saw.
        difficulty: class probabilities, or None without a classifier.
        cam: float32 class-activation map in [0, 1] covering ``cam_region``, or None.
        cam_region: ``(x, y, w, h)`` rectangle in frame pixels that the CAM covers.
        timings_ms: per-stage times, e.g. ``{"preprocess": .., "detector": .., "postprocess": ..}``.
    """

    frame_index: int
    frame_t: float
    ready_t: float
    box: Box | None
    peak: float
    heatmap: np.ndarray | None = None
    roi: tuple[int, int, int, int] | None = None
    difficulty: Difficulty | None = None
    cam: np.ndarray | None = None
    cam_region: tuple[int, int, int, int] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def latency_ms(self) -> float:
        """Capture time to prediction ready, in milliseconds."""
        return (self.ready_t - self.frame_t) * 1000.0

    def age_ms(self, now: float) -> float:
        """How old the source frame is at monotonic time ``now``, in milliseconds."""
        return (now - self.frame_t) * 1000.0


@runtime_checkable
class FrameSource(Protocol):
    """Anything that delivers frames: a capture device, a file, the phantom, an image folder.

    ``read()`` blocks until the next frame is due (pacing is the source's job) and returns
    None at the end of a finite source. It raises ``SourceError`` on a failure the caller
    should show; live sources raise ``SignalLostError`` and keep retrying on the next call.
    """

    name: str
    fps: float

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...
