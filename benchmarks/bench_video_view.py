"""Benchmark: ms per frame to get a BGR frame on screen, for each candidate video fast path.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_video_view.py``

Each variant receives a new BGR uint8 frame, is asked to repaint, and the event loop is
run until the paint has happened (``processEvents``), so the figure includes Qt's paint and
backing-store flush. Variants:

- ``view-cv2-linear``: app.ui.video_view.VideoView painting QImage(Format_BGR888) over the
  numpy buffer; when the view is not the frame's size, cv2.resize (bilinear) to the
  letterboxed size first, then a 1:1 paint. ``view-cv2-nearest``: nearest-neighbour resize.
- ``view-qt-smooth`` / ``view-qt-fast``: the same BGR888 QImage, scaled by QPainter
  (bilinear / nearest).
- ``view-cv2-rgb32`` / ``view-qt-rgb32``: as ``view-cv2-linear`` / ``view-qt-smooth``, but
  the frame (resized first, for cv2) is converted once with cv2 to BGRA and painted as
  ``Format_RGB32``, the backing store's own format. ``view-qt-rgb32`` is the app's default.
- ``qimage-rgb-copy``: cv2.cvtColor to RGB (one extra copy), QImage(Format_RGB888).
- ``qimage-rgb32-copy``: cv2.cvtColor to BGRA (one extra copy), QImage(Format_RGB32), the
  backing store's own format.
- ``pg-imageitem``: pyqtgraph ImageItem in a GraphicsLayoutWidget, fixed levels, RGB input.
- ``pg-rawimage``: pyqtgraph RawImageWidget(scaled=True), RGB input.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from pyqtgraph.widgets.RawImageWidget import RawImageWidget  # noqa: E402
from PySide6.QtCore import QRectF  # noqa: E402
from PySide6.QtGui import QImage, QPainter  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from app.ui.video_view import VideoView, letterbox_rect  # noqa: E402

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def make_frames(width: int, height: int, count: int = 30, seed: int = 0) -> list[np.ndarray]:
    """Distinct BGR frames with texture, so no variant benefits from identical input."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height // 8, width // 8, 3), dtype=np.uint8)
    base = cv2.resize(base, (width, height), interpolation=cv2.INTER_LINEAR)
    frames = []
    for i in range(count):
        f = np.roll(base, shift=i * 7, axis=1).copy()
        cv2.circle(f, (width // 2 + i * 5, height // 2), height // 6, (40, 80, 220), -1)
        frames.append(f)
    return frames


class Variant:
    """One way of putting a frame on screen: a widget and a function that shows a frame."""

    def __init__(self, name: str, widget: QWidget, show: Callable[[np.ndarray], None]) -> None:
        self.name = name
        self.widget = widget
        self.show = show


def build_variants(view_w: int, view_h: int) -> list[Variant]:
    """Every candidate, each in its own top-level widget of the given size."""
    variants = []

    for name, scaler, smooth, rgb32 in (
        ("view-cv2-linear", "cv2", True, False),
        ("view-cv2-nearest", "cv2", False, False),
        ("view-qt-smooth", "qt", True, False),
        ("view-qt-fast", "qt", False, False),
        ("view-cv2-rgb32", "cv2", True, True),
        ("view-qt-rgb32", "qt", True, True),  # the app's default
    ):
        view = VideoView(scaler=scaler, smooth=smooth, rgb32=rgb32)
        variants.append(Variant(name, view, view.set_image))

    rgb = ConvertedView(cv2.COLOR_BGR2RGB, "Format_RGB888")
    variants.append(Variant("qimage-rgb-copy", rgb, rgb.set_image))

    rgb32 = ConvertedView(cv2.COLOR_BGR2BGRA, "Format_RGB32")
    variants.append(Variant("qimage-rgb32-copy", rgb32, rgb32.set_image))

    glw = pg.GraphicsLayoutWidget()
    vb = glw.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
    item = pg.ImageItem(axisOrder="row-major")
    vb.addItem(item)

    def show_item(img: np.ndarray) -> None:
        item.setImage(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), autoLevels=False, levels=None)

    variants.append(Variant("pg-imageitem", glw, show_item))

    raw = RawImageWidget(scaled=True)

    def show_raw(img: np.ndarray) -> None:
        raw.setImage(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), levels=None)

    variants.append(Variant("pg-rawimage", raw, show_raw))

    for v in variants:
        v.widget.resize(view_w, view_h)
        v.widget.show()
    return variants


class ConvertedView(QWidget):
    """Converts each frame with cv2 (one extra copy) and paints it in another QImage format.

    ``Format_RGB32`` on a little-endian machine is B, G, R, 0xFF in memory, i.e. cv2's BGRA.
    """

    def __init__(self, code: int, fmt: str) -> None:
        super().__init__()
        self._code = code
        self._fmt = getattr(QImage.Format, fmt)
        self._img: np.ndarray | None = None

    def set_image(self, image: np.ndarray) -> None:  # noqa: D102
        self._img = cv2.cvtColor(image, self._code)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802, D102 - Qt override
        img = self._img
        if img is None:
            return
        p = QPainter(self)
        q = QImage(img.data, img.shape[1], img.shape[0], img.strides[0], self._fmt)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        p.drawImage(QRectF(letterbox_rect(img.shape[1], img.shape[0], self.rect())), q)
        p.end()


def time_variant(
    app: QApplication, v: Variant, frames: list[np.ndarray], n: int, warmup: int = 10
) -> list[float]:
    """Per-frame milliseconds for ``n`` frames after ``warmup`` frames."""
    times = []
    for i in range(n + warmup):
        t0 = time.perf_counter()
        v.show(frames[i % len(frames)])
        v.widget.repaint()
        app.processEvents()
        dt = (time.perf_counter() - t0) * 1000.0
        if i >= warmup:
            times.append(dt)
    return times


def main(argv: list[str] | None = None) -> int:
    """Print a table of ms/frame per variant, source size and view size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120, help="timed frames per case")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args(argv)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    print(
        f"# bench_video_view  platform={app.platformName()}  python={platform.python_version()}"
        f"  machine={platform.machine()}  cpus={os.cpu_count()}  load={os.getloadavg()[0]:.2f}"
    )
    print(
        f"# command: QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']} "
        f"python benchmarks/bench_video_view.py --frames {args.frames}"
    )
    print(f"{'source':>7} {'view':>10} {'variant':>20} {'median':>8} {'mean ms':>8} {'p95 ms':>8}")
    for size_name in args.sizes:
        w, h = SIZES[size_name]
        frames = make_frames(w, h)
        # 1:1 (full-screen procedure mode) and a scaled main-window video area.
        for view_w, view_h in ((w, h), (1440, 810)):
            variants = build_variants(view_w, view_h)
            try:
                for v in variants:
                    ms = time_variant(app, v, frames, args.frames)
                    p50, p95 = (float(v) for v in np.percentile(ms, [50, 95]))
                    print(
                        f"{size_name:>7} {view_w:>5}x{view_h:<4} {v.name:>20} "
                        f"{p50:8.2f} {statistics.fmean(ms):8.2f} {p95:8.2f}",
                        flush=True,
                    )
            finally:
                for v in variants:
                    v.widget.close()
                    v.widget.deleteLater()
                app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
