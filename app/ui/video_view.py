"""The video view: paints the newest BGR frame, letterboxed, with no per-frame copies in Python."""

from __future__ import annotations

import time
from collections import deque

import cv2
import numpy as np
from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.core.errors import SourceError

#: How many paint timestamps are kept for the displayed-fps and frame-interval figures.
INTERVAL_HISTORY = 240


def check_frame_image(image: np.ndarray) -> np.ndarray:
    """Return ``image`` if it can be painted without a copy, else a contiguous copy.

    Raises:
        SourceError: when ``image`` is not an (H, W, 3) uint8 array.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SourceError(
            f"video view: expected a BGR uint8 (H, W, 3) image, found {image.dtype} "
            f"{image.shape}; convert the frame before showing it"
        )
    if not image.flags.c_contiguous:
        image = np.ascontiguousarray(image)
    return image


def letterbox_rect(image_w: int, image_h: int, area: QRect) -> QRect:
    """The largest rectangle with the image's aspect ratio, centred in ``area``."""
    if image_w <= 0 or image_h <= 0 or area.width() <= 0 or area.height() <= 0:
        return QRect()
    scale = min(area.width() / image_w, area.height() / image_h)
    w = max(1, round(image_w * scale))
    h = max(1, round(image_h * scale))
    x = area.x() + (area.width() - w) // 2
    y = area.y() + (area.height() - h) // 2
    return QRect(x, y, w, h)


#: How the frame is scaled to the widget. "qt": QPainter scales while painting; "cv2":
#: cv2.resize to the letterboxed size first, then a 1:1 paint.
SCALERS = ("cv2", "qt")


class VideoView(QWidget):
    """Shows the newest frame. ``set_image`` only keeps a reference and calls ``update()``.

    The QImage is built lazily in ``paintEvent`` over a numpy buffer that the view keeps
    alive for as long as the QImage exists (the QImage shares, not copies, the pixels). By
    default the BGR frame is converted once with OpenCV to BGRA, which is
    ``QImage.Format_RGB32`` in memory: the backing store's own format, so Qt blits it 1:1 or
    scales it (bilinear) on its optimised RGB32 path. ``benchmarks/bench_video_view.py``
    measured that as the fastest path at 1:1 and when scaling, ahead of painting the BGR888
    buffer directly (Qt then converts it internally, slower) and of resizing with OpenCV
    first (docs/benchmarks.md, "GUI"). The other paths stay selectable for the benchmark.

    Args:
        parent: Qt parent.
        scaler: ``"qt"`` (QPainter scales) or ``"cv2"`` (cv2.resize to the letterboxed size,
            then a 1:1 paint).
        smooth: bilinear (True) or nearest-neighbour scaling.
        rgb32: convert to BGRA / ``Format_RGB32`` (True) or paint ``Format_BGR888``.
    """

    def __init__(
        self,
        parent: QWidget | None = None,
        scaler: str = "qt",
        smooth: bool = True,
        rgb32: bool = True,
    ) -> None:
        super().__init__(parent)
        if scaler not in SCALERS:
            raise ValueError(f"video view: scaler {scaler!r} is not one of {SCALERS}")
        self.setObjectName("VideoView")
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 90)
        self._scaler = scaler
        self._smooth = smooth
        self._rgb32 = rgb32
        self._image: np.ndarray | None = None
        # The array the QImage wraps (the frame itself or its resized copy) and the QImage.
        self._shown: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._placeholder = "No video"
        self._new_frame = False
        self._painted_new = 0
        self._paint_times: deque[float] = deque(maxlen=INTERVAL_HISTORY)

    # -- input ----------------------------------------------------------------------------

    def set_image(self, image: np.ndarray | None) -> None:
        """Show ``image`` (BGR uint8, H x W x 3) at the next paint; None shows the placeholder.

        The caller must not write into ``image`` afterwards (frames are never modified in
        place in this project, so this holds by construction).
        """
        self._image = None if image is None else check_frame_image(image)
        self._shown = None
        self._qimage = None
        self._new_frame = image is not None
        self.update()

    def set_placeholder(self, text: str) -> None:
        """The text shown while there is no image."""
        self._placeholder = text
        if self._image is None:
            self.update()

    def image(self) -> np.ndarray | None:
        """The array currently shown (the exact pixels the user sees, before scaling)."""
        return self._image

    # -- figures --------------------------------------------------------------------------

    @property
    def painted_frames(self) -> int:
        """How many distinct frames have been painted since construction."""
        return self._painted_new

    def paint_times(self) -> list[float]:
        """Monotonic times of the last paints of new frames (at most ``INTERVAL_HISTORY``)."""
        return list(self._paint_times)

    def frame_intervals_ms(self) -> np.ndarray:
        """Intervals between the last paints of new frames, in milliseconds."""
        t = np.fromiter(self._paint_times, dtype=np.float64)
        return np.diff(t) * 1000.0 if t.size > 1 else np.zeros(0)

    def displayed_fps(self, window_s: float = 2.0, now: float | None = None) -> float:
        """New frames painted per second over the last ``window_s`` seconds."""
        now = time.monotonic() if now is None else now
        recent = [t for t in self._paint_times if now - t <= window_s]
        if len(recent) < 2:
            return 0.0
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0

    # -- Qt overrides ---------------------------------------------------------------------

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(960, 540)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        try:
            image = self._image
            if image is None:
                painter.fillRect(self.rect(), QColor(0, 0, 0))
                painter.setPen(QColor(160, 160, 160))
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
                return
            target = letterbox_rect(image.shape[1], image.shape[0], self.rect())
            self._fill_borders(painter, target)
            qimage = self._qimage_for(image, target)
            if self._scaler == "qt" and self._smooth:
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(QRectF(target), qimage)
        finally:
            painter.end()
        if self._new_frame:
            self._new_frame = False
            self._painted_new += 1
            self._paint_times.append(time.monotonic())

    def _qimage_for(self, image: np.ndarray, target: QRect) -> QImage:
        size = (target.width(), target.height())
        if (
            self._qimage is not None
            and self._shown is not None
            and (self._scaler == "qt" or (self._shown.shape[1], self._shown.shape[0]) == size)
        ):
            return self._qimage
        shown = image
        if self._scaler == "cv2" and size != (image.shape[1], image.shape[0]):
            interpolation = cv2.INTER_LINEAR if self._smooth else cv2.INTER_NEAREST
            if size[0] < image.shape[1] / 2:
                # Far below the frame size bilinear aliases text and thin lines.
                interpolation = cv2.INTER_AREA
            shown = cv2.resize(image, size, interpolation=interpolation)
        fmt = QImage.Format.Format_BGR888
        if self._rgb32:
            # Format_RGB32 is B, G, R, 0xFF in memory on little-endian machines: cv2's BGRA,
            # and the backing store's own format, so Qt blits without converting.
            shown = cv2.cvtColor(shown, cv2.COLOR_BGR2BGRA)
            fmt = QImage.Format.Format_RGB32
        self._shown = shown
        self._qimage = QImage(shown.data, shown.shape[1], shown.shape[0], shown.strides[0], fmt)
        return self._qimage

    def _fill_borders(self, painter: QPainter, target: QRect) -> None:
        black = QColor(0, 0, 0)
        r = self.rect()
        if target.top() > r.top():
            painter.fillRect(QRect(r.left(), r.top(), r.width(), target.top() - r.top()), black)
        if target.bottom() < r.bottom():
            painter.fillRect(
                QRect(r.left(), target.bottom() + 1, r.width(), r.bottom() - target.bottom()), black
            )
        if target.left() > r.left():
            painter.fillRect(
                QRect(r.left(), target.top(), target.left() - r.left(), target.height()), black
            )
        if target.right() < r.right():
            painter.fillRect(
                QRect(
                    target.right() + 1, target.top(), r.right() - target.right(), target.height()
                ),
                black,
            )
