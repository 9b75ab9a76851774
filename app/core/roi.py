"""The endoscopic field: find the image window inside the processor's black border, mask PHI."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from app.core.errors import ConfigError

log = logging.getLogger(__name__)

Rect = tuple[int, int, int, int]

#: Detection runs on a copy no wider than this (pixels); the edges are then refined at full
#: resolution.
_WORK_WIDTH = 320


@dataclass(frozen=True)
class FieldParams:
    """Tuning of ``find_field``.

    Attributes:
        border_margin: a frame is taken to have a black border when the median luminance of
            its outer ``border_margin`` fraction (each side) is at most ``max_border_level``.
        max_border_level: see ``border_margin`` (0..255).
        threshold: luminance above the border level that counts as picture.
        text_stroke: opening kernel as a fraction of the frame height; taller than a line
            of burned-in text, so text vanishes even where it touches the field, and far
            smaller than any field.
        min_area: a field smaller than this fraction of the frame is not believed.
        full_frame: a field covering this fraction of both dimensions is the whole frame.
    """

    border_margin: float = 0.01
    max_border_level: float = 40.0
    threshold: float = 18.0
    text_stroke: float = 0.06
    min_area: float = 0.08
    full_frame: float = 0.97


def whole_frame(image: np.ndarray) -> Rect:
    """The rectangle of the whole image."""
    return 0, 0, int(image.shape[1]), int(image.shape[0])


def _luminance(image: np.ndarray) -> np.ndarray:
    # The channel maximum, not Y: dark red mucosa has little green and blue but is picture.
    if image.ndim == 2:
        return image
    return image.max(axis=2)


def _refine_edges(image: np.ndarray, level: float, rect: Rect, pad: int) -> Rect:
    """Snap a coarse rectangle's edges to full-resolution picture pixels within ``pad``.

    Each edge is searched in a strip across it, restricted to the central half of the other
    axis so that text beside the field cannot move it; a column (row) is picture when more
    than a quarter of its strip is brighter than ``level``.
    """
    x, y, w, h = rect
    height, width = image.shape[:2]
    cy0, cy1 = y + h // 4, max(y + h // 4 + 1, y + h - h // 4)
    cx0, cx1 = x + w // 4, max(x + w // 4 + 1, x + w - w // 4)

    def picture(strip: np.ndarray, axis: int) -> np.ndarray:
        return np.flatnonzero((_luminance(strip) > level).mean(axis=axis) > 0.25)

    def edge(lo: int, hi: int, band: tuple[int, int], vertical: bool, first: bool) -> int | None:
        lo, hi = max(0, lo), min(width if vertical else height, hi)
        if hi <= lo:
            return None
        strip = image[band[0] : band[1], lo:hi] if vertical else image[lo:hi, band[0] : band[1]]
        hits = picture(strip, 0 if vertical else 1)
        if hits.size == 0:
            return None
        return lo + int(hits[0]) if first else lo + int(hits[-1]) + 1

    left = edge(x - pad, x + pad, (cy0, cy1), True, True)
    right = edge(x + w - pad, x + w + pad, (cy0, cy1), True, False)
    top = edge(y - pad, y + pad, (cx0, cx1), False, True)
    bottom = edge(y + h - pad, y + h + pad, (cx0, cx1), False, False)
    x0 = x if left is None else left
    x1 = x + w if right is None else right
    y0 = y if top is None else top
    y1 = y + h if bottom is None else bottom
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def find_field(image: np.ndarray, params: FieldParams | None = None) -> Rect:
    """The active image window ``(x, y, w, h)`` inside the black border of a processor frame.

    The window (octagonal, rounded or rectangular) is the largest bright connected region
    after an opening that erases thin burned-in text; its edges are then refined at full
    resolution. A frame without a dark border (already cropped, e.g. Kvasir images) gives
    the whole frame.

    Args:
        image: BGR (or grey) uint8 frame.
        params: tuning; the defaults suit 16:9 processor output from 320 px to 4K.
    """
    p = params or FieldParams()
    if image.ndim not in (2, 3) or image.shape[0] < 8 or image.shape[1] < 8:
        raise ConfigError(f"find_field needs an image of at least 8x8 pixels, got {image.shape}")
    height, width = image.shape[:2]
    scale = min(1.0, _WORK_WIDTH / width)
    small = _luminance(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    sh, sw = small.shape
    margin = max(1, int(round(p.border_margin * max(sh, sw))))
    ring = np.concatenate(
        [small[:margin].ravel(), small[-margin:].ravel(), small[:, :margin].ravel(),
         small[:, -margin:].ravel()]
    )  # fmt: skip
    border = float(np.median(ring))
    if border > p.max_border_level:
        return whole_frame(image)
    level = border + p.threshold
    mask = (small > level).astype(np.uint8)
    k = max(3, int(round(p.text_stroke * sh)) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return whole_frame(image)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    bx, by, bw, bh, area = (int(v) for v in stats[best])
    if area < p.min_area * sh * sw:
        return whole_frame(image)
    coarse = (
        int(np.floor(bx / scale)),
        int(np.floor(by / scale)),
        int(np.ceil(bw / scale)),
        int(np.ceil(bh / scale)),
    )
    rect = _refine_edges(image, level, coarse, pad=int(np.ceil(2 / scale)) + 1)
    x, y, w, h = rect
    if w >= p.full_frame * width and h >= p.full_frame * height:
        return whole_frame(image)
    return rect


def _close(a: Rect, b: Rect, tolerance: float) -> bool:
    """True when every edge of ``b`` is within ``tolerance`` x the size of ``a`` of ``a``'s."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    tx, ty = tolerance * aw, tolerance * ah
    return (
        abs(ax - bx) <= tx
        and abs(ay - by) <= ty
        and abs((ax + aw) - (bx + bw)) <= tx
        and abs((ay + ah) - (by + bh)) <= ty
    )


class FieldTracker:
    """Keeps the field rectangle of a video, re-detecting it every ``interval`` frames.

    A new rectangle replaces the current one only after ``stable_checks`` consecutive checks
    agree on it (hysteresis), so a dark moment never shrinks the field, but a processor zoom
    or layout change is followed within ``interval * stable_checks`` frames. A change of frame
    size is followed at once.
    """

    def __init__(
        self,
        interval: int = 15,
        stable_checks: int = 3,
        tolerance: float = 0.02,
        params: FieldParams | None = None,
    ) -> None:
        """Set up the tracker.

        Raises:
            ConfigError: when ``interval`` or ``stable_checks`` is below 1.
        """
        if interval < 1 or stable_checks < 1:
            raise ConfigError(
                f"FieldTracker needs interval >= 1 and stable_checks >= 1, got {interval}, "
                f"{stable_checks}"
            )
        self.interval = interval
        self.stable_checks = stable_checks
        self.tolerance = tolerance
        self.params = params
        self.switches = 0
        self._roi: Rect | None = None
        self._shape: tuple[int, ...] | None = None
        self._frames = 0
        self._candidate: Rect | None = None
        self._candidate_hits = 0

    @property
    def roi(self) -> Rect | None:
        """The current field rectangle (None before the first frame)."""
        return self._roi

    def reset(self) -> None:
        """Forget the field; the next frame is detected from scratch."""
        self._roi = None
        self._shape = None
        self._candidate = None
        self._candidate_hits = 0
        self._frames = 0

    def update(self, image: np.ndarray) -> Rect:
        """The field rectangle to use for this frame."""
        if self._roi is None or image.shape != self._shape:
            self._roi = find_field(image, self.params)
            self._shape = image.shape
            self._candidate, self._candidate_hits, self._frames = None, 0, 0
            return self._roi
        self._frames += 1
        if self._frames % self.interval:
            return self._roi
        found = find_field(image, self.params)
        if _close(self._roi, found, self.tolerance):
            self._candidate, self._candidate_hits = None, 0
        elif self._candidate is not None and _close(self._candidate, found, self.tolerance):
            self._candidate_hits += 1
            self._candidate = found
        else:
            self._candidate, self._candidate_hits = found, 1
        if self._candidate is not None and self._candidate_hits >= self.stable_checks:
            log.info("endoscopic field changed: %s -> %s", self._roi, self._candidate)
            self._roi = self._candidate
            self._candidate, self._candidate_hits = None, 0
            self.switches += 1
        return self._roi


def clip_rect(roi: Rect, width: int, height: int) -> Rect:
    """``roi`` clipped to an image of ``width`` x ``height`` (may become empty: w or h 0)."""
    x, y, w, h = (int(v) for v in roi)
    x0, y0 = min(max(x, 0), width), min(max(y, 0), height)
    x1, y1 = min(max(x + w, 0), width), min(max(y + h, 0), height)
    return x0, y0, x1 - x0, y1 - y0


def crop(image: np.ndarray, roi: Rect) -> np.ndarray:
    """The part of ``image`` inside ``roi`` (a view, clipped to the image)."""
    x, y, w, h = clip_rect(roi, image.shape[1], image.shape[0])
    return image[y : y + h, x : x + w]


def mask_outside(image: np.ndarray, roi: Rect) -> np.ndarray:
    """A copy of ``image`` that is black outside ``roi``: PHI masking.

    Processors burn patient name, ID and dates into the border beside the field; exports
    must not carry them.
    """
    out = np.zeros_like(image)
    x, y, w, h = clip_rect(roi, image.shape[1], image.shape[0])
    out[y : y + h, x : x + w] = image[y : y + h, x : x + w]
    return out
