"""Procedure mode: the video alone, full screen on a chosen monitor, with a minimal overlay."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QGuiApplication,
    QKeySequence,
    QResizeEvent,
    QScreen,
    QShortcut,
)
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.ui.banners import BannerArea, NotificationManager
from app.ui.video_view import VideoView

log = logging.getLogger(__name__)


def screen_names() -> list[str]:
    """The connected monitors, by name, primary first."""
    primary = QGuiApplication.primaryScreen()
    screens = QGuiApplication.screens()
    ordered = [primary, *[s for s in screens if s is not primary]] if primary else screens
    return [s.name() for s in ordered if s is not None]


def choose_screen(name: str | None = None, avoid: QScreen | None = None) -> QScreen | None:
    """The monitor called ``name``; else another one than ``avoid``; else the primary."""
    screens = QGuiApplication.screens()
    for screen in screens:
        if name and screen.name() == name:
            return screen
    others = [s for s in screens if s is not avoid]
    if name is None and avoid is not None and others:
        return others[0]
    return QGuiApplication.primaryScreen()


class ProcedureWindow(QWidget):
    """A frameless full-screen window with only the video and the banners.

    Keys: H hides/shows every AI overlay, Esc leaves, S snapshot, R record, Space pause.
    The window emits the key actions; the main window routes them to the session.
    """

    closed = Signal()
    toggle_ai_requested = Signal()
    snapshot_requested = Signal()
    record_requested = Signal()
    pause_requested = Signal()

    def __init__(self, notifications: NotificationManager, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window | Qt.WindowType.FramelessWindowHint)
        self.setObjectName("ProcedureWindow")
        self.setWindowTitle("ERCP Assist — procedure")
        self.setStyleSheet("#ProcedureWindow { background: black; }")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.video = VideoView(self)
        self.video.set_placeholder("Waiting for video…")
        layout.addWidget(self.video)
        # Floats over the top of the video; not in the layout, so the picture never moves.
        self.banners = BannerArea(notifications, self, max_banners=2)
        self.banners.raise_()
        self.banners.banners_changed.connect(self._place_banners)
        for key, signal in (
            ("H", self.toggle_ai_requested),
            ("S", self.snapshot_requested),
            ("R", self.record_requested),
            ("Space", self.pause_requested),
        ):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(signal.emit)
        leave = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        leave.activated.connect(self.close)

    def show_on(self, screen: QScreen | None) -> None:
        """Show full screen on ``screen`` (None: the primary monitor)."""
        if screen is not None:
            self.setScreen(screen)
            self.setGeometry(screen.geometry())
            log.info(
                "procedure mode on %s (%dx%d)",
                screen.name(),
                screen.geometry().width(),
                screen.geometry().height(),
            )
        self.showFullScreen()
        self.activateWindow()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._place_banners()

    def _place_banners(self) -> None:
        width = max(min(self.width() - 40, 900), 200)
        height = (
            self.banners.heightForWidth(width)
            if self.banners.hasHeightForWidth()
            else self.banners.sizeHint().height()
        )
        self.banners.setGeometry((self.width() - width) // 2, 8, width, max(height, 0))
        self.banners.raise_()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.closed.emit()
        super().closeEvent(event)
