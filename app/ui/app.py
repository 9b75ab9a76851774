"""Application setup: QApplication, theme, exception hooks, and ``run_gui`` (the GUI entry)."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEvent, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from app.core.errors import ErcpError
from app.ui.banners import NotificationManager
from app.ui.main_window import MainWindow
from app.ui.settings import APPLICATION, ORGANIZATION, AppSettings

log = logging.getLogger(__name__)

#: How long a ``--screenshot`` run may take before it gives up (model loading included).
SCREENSHOT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class GuiOptions:
    """What ``ercp-assist gui`` was asked to do.

    Attributes:
        source: source spec to open at start (None: the last one, else the phantom).
        detector, classifier: model files (None: the last loaded, else the shipped default).
        procedure: start in procedure mode.
        screen: monitor name for procedure mode.
        screenshot: write a PNG of the window after ``quit_after_frames`` frames and exit.
        quit_after_frames: frames to render before the screenshot (or before quitting).
        size: window size (width, height); with ``screenshot`` offscreen, the screen size too.
        settings_path: keep settings in this INI file instead of the user's.
        read_only_settings: never write settings (automatic with ``screenshot``).
        seek_frame: for a seekable source, pause at this frame before counting frames.
    """

    source: str | None = None
    detector: str | None = None
    classifier: str | None = None
    procedure: bool = False
    screen: str | None = None
    screenshot: Path | None = None
    quit_after_frames: int | None = None
    size: tuple[int, int] | None = None
    settings_path: Path | None = None
    read_only_settings: bool = False
    seek_frame: int | None = None


def parse_size(text: str) -> tuple[int, int]:
    """``"1920x1080"`` -> (1920, 1080).

    Raises:
        ValueError: when the text is not WIDTHxHEIGHT with sensible numbers.
    """
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
    if not (320 <= w <= 7680 and 240 <= h <= 4320):
        raise ValueError(f"size {text!r}: expected 320x240 to 7680x4320")
    return w, h


def offscreen_screens(size: tuple[int, int]) -> None:
    """Before the QApplication exists: give the offscreen platform a screen of ``size``.

    Without this the offscreen screen is 800x800, so full-screen windows could not be
    rendered at a real monitor size for screenshots.
    """
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if QApplication.instance() is not None or platform != "offscreen":
        return
    config = {
        "screens": [
            {
                "name": "Offscreen",
                "x": 0,
                "y": 0,
                "width": size[0],
                "height": size[1],
                "logicalDpi": 96,
                "logicalBaseDpi": 96,
                "dpr": 1,
            }
        ]
    }
    path = Path(tempfile.gettempdir()) / f"ercp-offscreen-{size[0]}x{size[1]}.json"
    path.write_text(json.dumps(config))
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={path}"


def apply_theme(app: QApplication) -> None:
    """A dark Fusion theme: the endoscopy room is dark and the video is the brightest thing."""
    app.setStyle("Fusion")
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: QColor(32, 33, 36),
        QPalette.ColorRole.WindowText: QColor(225, 225, 225),
        QPalette.ColorRole.Base: QColor(22, 23, 25),
        QPalette.ColorRole.AlternateBase: QColor(40, 41, 44),
        QPalette.ColorRole.Text: QColor(225, 225, 225),
        QPalette.ColorRole.Button: QColor(48, 49, 53),
        QPalette.ColorRole.ButtonText: QColor(230, 230, 230),
        QPalette.ColorRole.Highlight: QColor(42, 130, 218),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.ToolTipBase: QColor(48, 49, 53),
        QPalette.ColorRole.ToolTipText: QColor(230, 230, 230),
    }
    for role, colour in colours.items():
        palette.setColor(role, colour)
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(120, 120, 120))
    palette.setColor(
        QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(120, 120, 120)
    )
    app.setPalette(palette)


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (the existing one if there is one), themed."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
        app.setOrganizationName(ORGANIZATION)
        app.setApplicationName(APPLICATION)
        app.setApplicationDisplayName("ERCP Assist")
    apply_theme(app)
    return app


def default_model(role: str) -> str | None:
    """The shipped model file for ``role`` (sha256-checked), or None."""
    from app.core.registry import default_model_path

    path = default_model_path(role)
    return str(path) if path is not None else None


def build_window(options: GuiOptions, notifications: NotificationManager) -> MainWindow:
    """Create the main window, load the models and open the source that ``options`` ask for.

    Model loading is started here and finishes on the worker thread; errors become banners.
    """
    read_only = options.read_only_settings or options.screenshot is not None
    if options.settings_path is not None:
        settings = AppSettings.at_path(options.settings_path, read_only=read_only)
    else:
        settings = AppSettings(read_only=read_only)
    window = MainWindow(notifications, settings, procedure_screen=options.screen)
    if options.size is not None:
        window.resize(*options.size)
    window.refresh_devices()
    for role in ("detector", "classifier"):
        path = getattr(options, role) or settings.model_path(role)
        if not path:
            try:
                path = default_model(role)
            except ErcpError as exc:
                notifications.notify_exception(exc, source=f"{role} model")
                path = None
        if path:
            window.load_model(role, path)
    return window


def _target(window: MainWindow) -> QWidget:
    return window.procedure if window.procedure is not None else window


class ScreenshotTask:
    """Waits for the models and ``frames`` new frames on screen, saves a grab and quits."""

    def __init__(self, app: QApplication, window: MainWindow, path: Path, frames: int) -> None:
        self.app = app
        self.window = window
        self.path = path
        self.frames = max(1, frames)
        self.result = 1
        self._start = time.monotonic()
        self._base: int | None = None
        self._timer = QTimer(window)
        self._timer.timeout.connect(self._check)
        self._timer.start(20)

    def _check(self) -> None:
        session = self.window.session
        if session.wait_idle(0.0) is False:  # models still loading
            if time.monotonic() - self._start < SCREENSHOT_TIMEOUT_S:
                return
        view = (
            self.window.procedure.video if self.window.procedure is not None else self.window.video
        )
        if self._base is None:
            self._base = view.painted_frames
        done = view.painted_frames - self._base >= self.frames
        pipeline = session.pipeline
        # No source, or a finite one that ended: no more frames will come; shoot now.
        stuck = pipeline is None or pipeline.source_ended
        if not done and not stuck and time.monotonic() - self._start < SCREENSHOT_TIMEOUT_S:
            return
        self._timer.stop()
        self.window._status_changed(session.status())  # the figures as of this frame
        self.app.processEvents()
        image = _target(self.window).grab()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(self.path)):
            log.error("could not write the screenshot %s", self.path)
            self.result = 2
        elif not done:
            log.error(
                "screenshot %s taken with only %d of %d frames shown (%s)",
                self.path,
                view.painted_frames - self._base,
                self.frames,
                "no source"
                if pipeline is None
                else "the source ended"
                if pipeline.source_ended
                else "timed out",
            )
            self.result = 1
        else:
            log.info("screenshot %s (%dx%d)", self.path, image.width(), image.height())
            self.result = 0
        self.window.close()


def run_gui(options: GuiOptions) -> int:
    """Open the app and run it until the window closes; returns the exit status.

    With ``options.screenshot`` it renders ``quit_after_frames`` frames (default 30), writes a
    PNG of the window (or of the procedure window) and exits; this works offscreen.
    """
    if options.screenshot is not None and options.size is not None:
        offscreen_screens(options.size)
    app = make_application()
    notifications = NotificationManager()
    notifications.install_excepthooks()
    window = build_window(options, notifications)
    task = None
    try:
        window.show()
        spec = options.source or window.settings.text("source/last") or "phantom"
        if options.screenshot is not None:
            window.session.wait_idle(SCREENSHOT_TIMEOUT_S)  # models before the first frame
        window.open_source(spec)
        if options.seek_frame is not None:
            window.session.set_paused(True)
            window.session.seek(options.seek_frame)
        if options.procedure:
            window.enter_procedure_mode()
            if (
                options.size is not None
                and window.procedure is not None
                and app.platformName() == "offscreen"
            ):
                window.procedure.resize(*options.size)
        if options.screenshot is not None:
            task = ScreenshotTask(
                app, window, Path(options.screenshot), options.quit_after_frames or 30
            )
        elif options.quit_after_frames:
            QuitAfterFrames(window, options.quit_after_frames)
        app.exec()
    finally:
        if window.isVisible():
            window.close()
        # Signal connections to lambdas keep the Python side of a top-level window alive;
        # deleting the C++ side breaks that cycle (and stops every child's timers).
        window.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        notifications.close()
        notifications.deleteLater()
    return task.result if task is not None else 0


class QuitAfterFrames:
    """Closes the window once ``frames`` new frames were shown (automated runs)."""

    def __init__(self, window: MainWindow, frames: int) -> None:
        self.window = window
        self.frames = frames
        self._timer = QTimer(window)
        self._timer.timeout.connect(self._check)
        self._timer.start(50)

    def _check(self) -> None:
        view = self.window.procedure.video if self.window.procedure else self.window.video
        if view.painted_frames >= self.frames:
            self._timer.stop()
            self.window.close()
