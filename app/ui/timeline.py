"""The replay timeline (pyqtgraph): AOV confidence and difficulty probabilities over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

#: Curve colours: confidence first, then one per difficulty class (matching the overlay bars).
PEAK_PEN = pg.mkPen((255, 215, 64), width=2)
CLASS_COLOURS = ((90, 200, 90), (250, 170, 60), (250, 110, 60), (230, 80, 80), (160, 160, 255))
MARKER_BRUSH = pg.mkBrush(80, 200, 255)
Y_TOP = 1.5
MARKER_Y = 1.07


class TimelinePanel(QWidget):
    """A plot of per-frame predictions along the source; clicking it asks to seek there.

    Data are given as whole arrays (``set_series``) a few times per second at most; the
    cursor moves with ``set_cursor``. Levels and the y range are fixed (0..1), so nothing is
    recomputed per update.
    """

    seek_requested = Signal(float)  # seconds

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TimelinePanel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget(self, background=(18, 18, 18))
        self.plot.setObjectName("timeline_plot")
        self.plot.setMinimumHeight(170)
        self.plot.setMaximumHeight(230)
        layout.addWidget(self.plot)
        item = self.plot.getPlotItem()
        item.setMenuEnabled(False)
        item.hideButtons()
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setLabel("bottom", "time", units="s")
        item.setLabel("left", "p")
        self.view = item.getViewBox()
        self.view.setMouseEnabled(x=False, y=False)
        # Headroom above 1 for the legend and the export markers, clear of the curves.
        self.view.setYRange(0.0, Y_TOP, padding=0)
        item.getAxis("left").setTicks([[(v, f"{v:g}") for v in (0.0, 0.5, 1.0)]])
        self.view.enableAutoRange(y=False)
        self.legend = item.addLegend(offset=(6, 4), colCount=4, labelTextSize="8pt")
        self.peak_curve = item.plot([], [], pen=PEAK_PEN, name="AOV confidence")
        self.class_curves: dict[str, pg.PlotDataItem] = {}
        self.markers = pg.ScatterPlotItem(
            size=11, symbol="t", brush=MARKER_BRUSH, pen=pg.mkPen(None), name="exports"
        )
        item.addItem(self.markers)
        self.cursor = pg.InfiniteLine(
            pos=0.0, angle=90, movable=False, pen=pg.mkPen((255, 255, 255), width=1)
        )
        item.addItem(self.cursor)
        self._duration: float | None = None
        self.plot.scene().sigMouseClicked.connect(self._clicked)

    # -- data -----------------------------------------------------------------------------

    def clear(self) -> None:
        """Remove every curve and marker."""
        self.peak_curve.setData([], [])
        for name in list(self.class_curves):
            curve = self.class_curves.pop(name)
            self.legend.removeItem(curve)
            self.plot.getPlotItem().removeItem(curve)
        self.markers.setData([], [])
        self.set_cursor(0.0)

    def set_duration(self, seconds: float | None) -> None:
        """Fix the x range to the source's length (None: follow the data)."""
        self._duration = seconds
        if seconds and seconds > 0:
            self.view.enableAutoRange(x=False)
            self.view.setXRange(0.0, float(seconds), padding=0.01)
        else:
            self.view.enableAutoRange(x=True)

    def set_series(
        self,
        t: Sequence[float],
        peak: Sequence[float],
        probs: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        """Show AOV confidence and class probabilities at times ``t`` (seconds)."""
        t_arr = np.asarray(t, dtype=np.float64)
        self.peak_curve.setData(t_arr, np.asarray(peak, dtype=np.float64), connect="finite")
        probs = probs or {}
        for i, (name, values) in enumerate(probs.items()):
            curve = self.class_curves.get(name)
            if curve is None:
                colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]
                curve = self.plot.getPlotItem().plot(
                    [], [], pen=pg.mkPen(colour, width=1.5), name=f"p({name})"
                )
                self.class_curves[name] = curve
            curve.setData(t_arr, np.asarray(values, dtype=np.float64), connect="finite")
        if not self._duration and t_arr.size:
            self.view.setXRange(0.0, max(float(t_arr[-1]), 1.0), padding=0.01)

    def set_markers(self, times: Sequence[float]) -> None:
        """Markers at exported frames (seconds)."""
        times = np.asarray(list(times), dtype=np.float64)
        self.markers.setData(times, np.full(times.shape, MARKER_Y))

    def marker_times(self) -> list[float]:
        """Where the markers are (seconds)."""
        x, _ = self.markers.getData()
        return [] if x is None else [float(v) for v in x]

    def set_cursor(self, seconds: float) -> None:
        """Move the position line."""
        self.cursor.setValue(float(seconds))

    def cursor_position(self) -> float:
        """Where the position line is (seconds)."""
        return float(self.cursor.value())

    # -- mouse ----------------------------------------------------------------------------

    def view_to_widget(self, seconds: float, value: float = 0.5) -> QPointF:
        """Widget coordinates (of the plot viewport) of a point of the plot; for tests."""
        scene = self.view.mapViewToScene(QPointF(seconds, value))
        return QPointF(self.plot.mapFromScene(scene))

    def _clicked(self, event) -> None:
        pos = event.scenePos()
        if not self.view.sceneBoundingRect().contains(pos):
            return
        seconds = float(self.view.mapSceneToView(pos).x())
        if self._duration:
            seconds = min(max(seconds, 0.0), self._duration)
        self.seek_requested.emit(max(seconds, 0.0))
