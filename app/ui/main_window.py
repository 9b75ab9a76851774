"""The main window: video, replay timeline, side panels, status bar, menus and shortcuts."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from app.core.overlay import OverlayOptions
from app.ui import engine
from app.ui.banners import BannerArea, NotificationManager
from app.ui.controls import ModelPanel, OverlayPanel, RecordPanel, SourcePanel, format_clock
from app.ui.exports_panel import ExportsPanel
from app.ui.procedure_mode import ProcedureWindow, choose_screen, screen_names
from app.ui.replay_controller import RecordingPanel, ReplayController, ReplayPanel
from app.ui.session_controller import SessionController
from app.ui.session_state import SessionStatus, SourceInfo
from app.ui.settings import AppSettings
from app.ui.settings_dialog import SettingsDialog, SettingsValues
from app.ui.timeline import TimelinePanel
from app.ui.video_view import VideoView

log = logging.getLogger(__name__)

SIDE_PANEL_WIDTH = 330
SHORTCUTS = (
    ("Space", "play / pause (replay)"),
    ("← / →", "step one frame (replay)"),
    ("R", "start / stop recording"),
    ("S", "snapshot: export the annotated frame"),
    ("H", "hide / show every AI overlay"),
    ("F11", "procedure mode (full screen); Esc leaves"),
)
_WARN_STYLE = "QLabel { background: #8a5a00; color: white; padding: 0 6px; font-weight: 600; }"
_OK_STYLE = "QLabel { padding: 0 6px; }"


class MainWindow(QMainWindow):
    """The desktop app's window. It owns the session controller; widgets do no processing.

    Args:
        notifications: the app's notification manager (banners).
        settings: the user's settings (or a test/read-only store).
        procedure_screen: monitor name for procedure mode (None: settings or automatic).
    """

    def __init__(
        self,
        notifications: NotificationManager,
        settings: AppSettings,
        procedure_screen: str | None = None,
    ) -> None:
        super().__init__()
        self.setObjectName("MainWindow")
        self.setWindowTitle("ERCP Assist — research software, not a medical device")
        self.notifications = notifications
        self.settings = settings
        self.procedure_screen = procedure_screen or settings.text("procedure/screen") or None
        config = settings.engine_config()
        for warning in settings.warnings:
            notifications.notify(warning, "warning", "settings")
        self.session = SessionController(
            notifications,
            config,
            OverlayOptions.from_config(config),
            export_dir=settings.export_dir,
            parent=self,
        )
        self.session.source_options = settings.device_options()
        self.procedure: ProcedureWindow | None = None
        self._build()
        self._connect()
        self.session.set_display(self.video)
        geometry = settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1600, 900)

    # -- construction ---------------------------------------------------------------------

    def _build(self) -> None:
        central = QWidget(self)
        central.setObjectName("central")
        row = QHBoxLayout(central)
        row.setContentsMargins(4, 4, 4, 4)
        row.setSpacing(6)
        left = QVBoxLayout()
        left.setSpacing(2)
        self.banners = BannerArea(self.notifications, central)
        left.addWidget(self.banners)
        self.video = VideoView(central)
        self.video.set_placeholder("No source: choose Phantom, a capture device or a file")
        left.addWidget(self.video, 1)
        self.replay_panel = ReplayPanel(central)
        left.addWidget(self.replay_panel)
        self.timeline = TimelinePanel(central)
        left.addWidget(self.timeline)
        row.addLayout(left, 1)

        side = QWidget()
        side.setObjectName("side_panel")
        column = QVBoxLayout(side)
        column.setContentsMargins(0, 0, 0, 0)
        self.source_panel = SourcePanel(side)
        column.addWidget(self.source_panel)
        self.model_panel = ModelPanel(side)
        column.addWidget(self.model_panel)
        self.overlay_panel = OverlayPanel(self.session.options, side)
        column.addWidget(self.overlay_panel)
        self.record_panel = RecordPanel(side)
        column.addWidget(self.record_panel)
        self.recording_panel = RecordingPanel(side)
        column.addWidget(self.recording_panel)
        self.exports_panel = ExportsPanel(side)
        column.addWidget(self.exports_panel, 1)
        scroll = QScrollArea(central)
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFixedWidth(SIDE_PANEL_WIDTH)
        # Leave room for the vertical scroll bar, so the panels wrap instead of being clipped.
        bar_width = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        side.setFixedWidth(SIDE_PANEL_WIDTH - bar_width - 2 * scroll.frameWidth() - 2)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        row.addWidget(scroll)
        self.setCentralWidget(central)

        bar = self.statusBar()
        self.status_labels: dict[str, QLabel] = {}
        # The source's name is in the source panel; the bar keeps to figures and warnings.
        for name in ("fps", "inference", "dropped", "ai", "models", "provider"):
            label = QLabel("", self)
            label.setObjectName(f"status_{name}")
            label.setStyleSheet(_OK_STYLE)
            self.status_labels[name] = label
            bar.addPermanentWidget(label, 1 if name == "models" else 0)
        self.replay = ReplayController(
            self.session, self.replay_panel, self.timeline, self.recording_panel, self
        )
        self._build_menus()

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        self._action(menu, "Open &phantom", lambda: self.open_source("phantom"))
        self._action(
            menu, "Open &file…", self.source_panel.choose_file, QKeySequence.StandardKey.Open
        )
        self._action(menu, "Open &recording…", self.source_panel.choose_recording)
        self._action(menu, "&Refresh capture devices", self.refresh_devices)
        menu.addSeparator()
        self._action(menu, "Load &detector…", lambda: self.model_panel.choose_model("detector"))
        self._action(menu, "Load &classifier…", lambda: self.model_panel.choose_model("classifier"))
        menu.addSeparator()
        self._action(menu, "&Settings…", self.open_settings, QKeySequence("Ctrl+,"))
        menu.addSeparator()
        self._action(menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        view = self.menuBar().addMenu("&View")
        self._action(view, "&Procedure mode (full screen)", self.enter_procedure_mode)
        self._action(view, "&Hide / show AI overlays", self.toggle_ai)
        self.screen_menu = view.addMenu("Procedure &monitor")
        self.screen_menu.aboutToShow.connect(self._fill_screen_menu)
        self._fill_screen_menu()
        helpmenu = self.menuBar().addMenu("&Help")
        self._action(helpmenu, "&Keyboard shortcuts", self.show_shortcuts)
        self._action(helpmenu, "&About", self.show_about)
        # Window-wide keys (buttons and sliders take no focus, so these always reach us).
        for key, slot in (
            ("Space", self.session.toggle_paused),
            (Qt.Key.Key_Left, lambda: self.session.step(-1)),
            (Qt.Key.Key_Right, lambda: self.session.step(1)),
            ("R", self.toggle_recording),
            ("S", self.snapshot),
            ("H", self.toggle_ai),
            ("F11", self.enter_procedure_mode),
        ):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.activated.connect(slot)

    def _fill_screen_menu(self) -> None:
        menu = self.screen_menu
        menu.clear()
        group = QActionGroup(menu)
        for name in [None, *screen_names()]:
            action = QAction(
                "Automatic (another monitor if there is one)" if name is None else name, menu
            )
            action.setCheckable(True)
            action.setChecked(name == self.procedure_screen)
            action.triggered.connect(lambda _=False, n=name: self.set_procedure_screen(n))
            group.addAction(action)
            menu.addAction(action)

    def set_procedure_screen(self, name: str | None) -> None:
        """The monitor procedure mode uses (None: automatic); remembered in the settings."""
        self.procedure_screen = name
        self.settings.set_value("procedure/screen", name)

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(lambda _=False: slot())
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        s = self.session
        self.source_panel.source_requested.connect(self.open_source)
        self.model_panel.load_requested.connect(self.load_model)
        self.model_panel.unload_requested.connect(self._unload_model)
        self.overlay_panel.options_changed.connect(self._options_changed)
        self.record_panel.record_clicked.connect(self.toggle_recording)
        self.record_panel.snapshot_clicked.connect(self.snapshot)
        s.source_changed.connect(self._source_changed)
        s.models_changed.connect(lambda: self.model_panel.set_models(s.models()))
        s.status_changed.connect(self._status_changed)
        s.export_ready.connect(self.exports_panel.add_export)
        s.recording_changed.connect(lambda on: self.record_panel.set_recording(on, 0.0))

    # -- actions --------------------------------------------------------------------------

    def open_source(self, spec: str) -> bool:
        """Open a source by spec (phantom, device:N, a file, a recording folder)."""
        ok = self.session.open_source(spec)
        if ok and not self.settings.read_only:
            self.settings.set_value("source/last", spec)
        return ok

    def load_model(self, role: str, path: str) -> None:
        """Load a model for ``role``; remembered in the settings when it loads."""

        def done(ok: bool) -> None:
            if ok:
                self.settings.set_model_path(role, path)

        self.session.load_model(path, role, on_done=done)

    def _unload_model(self, role: str) -> None:
        self.session.unload_model(role)
        self.settings.set_model_path(role, None)

    def refresh_devices(self) -> None:
        """List the capture devices in the source picker."""
        self.source_panel.set_devices(engine.list_devices())

    def snapshot(self) -> None:
        """Export the annotated frame on screen (S)."""
        self.session.snapshot()

    def toggle_recording(self) -> None:
        """Start or stop recording (R)."""
        self.session.toggle_recording()
        self.record_panel.set_recording(self.session.recording, 0.0)

    def toggle_ai(self) -> None:
        """Hide or show every AI overlay at once (H)."""
        visible = self.session.toggle_ai_visible()
        self.statusBar().showMessage(
            "AI overlays shown" if visible else "AI overlays hidden (H to show)", 3000
        )

    def _options_changed(self, options: OverlayOptions) -> None:
        self.session.set_options(options)

    def open_settings(self) -> SettingsDialog:
        """Open the Settings dialog (non-blocking); applied and saved when accepted."""
        values = SettingsValues(
            self.session.config, self.session.export_dir, self.settings.device_options()
        )
        dialog = SettingsDialog(values, self)
        dialog.accepted.connect(lambda: self.apply_settings(dialog.result_values()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()
        return dialog

    def apply_settings(self, values: SettingsValues | None) -> None:
        """Use and remember new settings."""
        if values is None:
            return
        config = dataclasses.replace(values.config, **self._toggle_fields(self.session.options))
        self.session.set_config(config)
        self.session.export_dir = values.export_dir
        self.session.source_options = dict(values.device)
        self.settings.set_engine_config(config)
        self.settings.export_dir = values.export_dir
        self.settings.set_device_options(values.device)
        self.settings.sync()

    @staticmethod
    def _toggle_fields(options: OverlayOptions) -> dict:
        return {
            "show_heatmap": options.heatmap,
            "show_box": options.box,
            "show_centroid": options.centroid,
            "show_difficulty": options.difficulty,
            "show_cam": options.cam,
            "show_hud": options.hud,
            "heatmap_opacity": options.heatmap_opacity,
        }

    # -- procedure mode -------------------------------------------------------------------

    def enter_procedure_mode(self) -> ProcedureWindow:
        """Show the video alone, full screen on the chosen monitor (Esc leaves)."""
        if self.procedure is not None:
            return self.procedure
        window = ProcedureWindow(self.notifications)
        window.toggle_ai_requested.connect(self.toggle_ai)
        window.snapshot_requested.connect(self.snapshot)
        window.record_requested.connect(self.toggle_recording)
        window.pause_requested.connect(self.session.toggle_paused)
        window.closed.connect(self.leave_procedure_mode)
        self.procedure = window
        self.session.set_display(window.video, minimal=True)
        self.video.set_image(None)
        self.video.set_placeholder("Procedure mode is on (Esc in its window leaves)")
        window.show_on(choose_screen(self.procedure_screen, avoid=self.screen()))
        return window

    def leave_procedure_mode(self) -> None:
        """Back to the main window's video."""
        window, self.procedure = self.procedure, None
        if window is None:
            return
        self.session.set_display(self.video)
        self.video.set_placeholder("No source: choose Phantom, a capture device or a file")
        window.closed.disconnect(self.leave_procedure_mode)
        window.close()
        window.deleteLater()
        self.activateWindow()

    # -- status ---------------------------------------------------------------------------

    def _source_changed(self, info: SourceInfo | None) -> None:
        if info is None:
            self.source_panel.set_current("No source")
            return
        kind = "recording" if info.recording is not None else ("file" if info.seekable else "live")
        count = f", {info.frame_count} frames" if info.frame_count else ""
        self.source_panel.set_current(f"{info.name} ({kind}, {info.fps:g} fps{count})")

    def _status_changed(self, st: SessionStatus) -> None:
        labels = self.status_labels
        labels["fps"].setText(f"display {st.displayed_fps:4.1f} / source {st.source_fps:g} fps")
        if st.ai_state in ("running", "paused") or st.inference_fps:
            p50 = f"{st.latency_p50_ms:.0f}" if st.latency_p50_ms is not None else "–"
            p95 = f"{st.latency_p95_ms:.0f}" if st.latency_p95_ms is not None else "–"
            labels["inference"].setText(
                f"AI {st.inference_fps:4.1f}/s, latency {p50}/{p95} ms (p50/p95)"
            )
        else:
            labels["inference"].setText("AI –")
        labels["dropped"].setText(
            f"AI skipped {st.dropped_frames} fr, {st.dropped_predictions} pred not shown"
        )
        labels["dropped"].setToolTip(
            "Frames the AI skipped because it was busy (every frame was still shown and "
            "recorded), and predictions never drawn (a newer one came first, or stale)"
        )
        ai = labels["ai"]
        if not st.ai_visible:
            ai.setText("AI hidden (H)")
            ai.setStyleSheet(_WARN_STYLE)
        elif st.ai_state == "paused":
            ai.setText("AI paused")
            ai.setToolTip(st.ai_reason)
            ai.setStyleSheet(_WARN_STYLE)
        else:
            ai.setText(
                {"running": "AI live", "saved": "AI: saved predictions"}.get(st.ai_state, "AI off")
            )
            ai.setToolTip(st.ai_reason)
            ai.setStyleSheet(_OK_STYLE)
        short = [m.replace("detector: ", "det ").replace("classifier: ", "cls ") for m in st.models]
        labels["models"].setText(" · ".join(short) if short else "no models loaded")
        labels["models"].setToolTip("\n".join(st.models))
        provider = labels["provider"]
        if st.on_cpu:
            provider.setText("⚠ AI on CPU, not GPU")
            provider.setStyleSheet(_WARN_STYLE)
        else:
            provider.setText(st.provider.split(" (")[0] if st.provider else "")
            provider.setStyleSheet(_OK_STYLE)
        provider.setToolTip(st.provider)
        if st.recording:
            self.record_panel.set_recording(True, st.record_elapsed_s)

    # -- dialogs --------------------------------------------------------------------------

    def show_shortcuts(self) -> None:
        """List the keyboard shortcuts."""
        text = "\n".join(f"{key:>8}   {what}" for key, what in SHORTCUTS)
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "Keyboard shortcuts",
            text,
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_about(self) -> None:
        """What this is (and is not)."""
        models = json.dumps([m.describe().get("name") for m in self.session.models().values()])
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "About ERCP Assist",
            "ERCP Assist marks the ampulla of Vater and estimates cannulation difficulty "
            "(after Kim et al., Sci Rep 2021).\n\nResearch software: not a medical device; "
            f"never the basis of a clinical decision.\n\nModels: {models}",
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # -- shutdown -------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        self.leave_procedure_mode()
        if not self.settings.read_only:
            self.settings.set_value("window/geometry", self.saveGeometry())
            config = dataclasses.replace(
                self.session.config, **self._toggle_fields(self.session.options)
            )
            self.settings.set_engine_config(config)
            self.settings.sync()
        self.session.close()
        super().closeEvent(event)

    def record_elapsed_text(self) -> str:
        """The elapsed-time label of the record panel (for tests)."""
        return self.record_panel.elapsed.text() or format_clock(None)

    def export_paths(self) -> list[Path]:
        """The exports listed in the panel, newest first."""
        return self.exports_panel.paths()
