"""Replay: transport controls, the timeline and the recording's manifest, wired to the session."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.ui import engine
from app.ui.controls import format_clock
from app.ui.session_controller import SessionController
from app.ui.session_state import PlaybackState, SourceInfo
from app.ui.timeline import TimelinePanel

SPEEDS = (0.25, 0.5, 1.0, 1.5, 2.0, 4.0)


class ReplayPanel(QWidget):
    """Play/pause (Space), step (← / →), a seek slider and the replay speed."""

    play_toggled = Signal()
    step_requested = Signal(int)
    seek_requested = Signal(int)  # frame index
    speed_requested = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ReplayPanel")
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        self.back_button = QPushButton("◀|", self)
        self.back_button.setToolTip("Step back one frame (←)")
        self.back_button.clicked.connect(lambda _=False: self.step_requested.emit(-1))
        self.play_button = QPushButton("▶ Play", self)
        self.play_button.setObjectName("play_button")
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.clicked.connect(lambda _=False: self.play_toggled.emit())
        self.forward_button = QPushButton("|▶", self)
        self.forward_button.setToolTip("Step forward one frame (→)")
        self.forward_button.clicked.connect(lambda _=False: self.step_requested.emit(1))
        for button in (self.back_button, self.play_button, self.forward_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            row.addWidget(button)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setObjectName("seek_slider")
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.setRange(0, 0)
        self.slider.sliderReleased.connect(lambda: self.seek_requested.emit(self.slider.value()))
        self.slider.actionTriggered.connect(self._slider_action)
        row.addWidget(self.slider, 1)
        self.position = QLabel("0:00 / 0:00", self)
        self.position.setObjectName("replay_position")
        self.position.setMinimumWidth(190)
        row.addWidget(self.position)
        self.speed = QComboBox(self)
        self.speed.setObjectName("speed_combo")
        self.speed.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for value in SPEEDS:
            self.speed.addItem(f"{value:g}×", value)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.currentIndexChanged.connect(
            lambda i: self.speed_requested.emit(float(self.speed.itemData(i)))
        )
        row.addWidget(self.speed)

    def set_state(self, state: PlaybackState) -> None:
        """Show a playback position (without emitting)."""
        self.play_button.setText("▶ Play" if state.paused else "❚❚ Pause")
        count = state.frame_count or 0
        if not self.slider.isSliderDown():
            self.slider.blockSignals(True)
            self.slider.setRange(0, max(count - 1, 0))
            self.slider.setValue(max(state.index, 0))
            self.slider.blockSignals(False)
        total = count / state.fps if count and state.fps > 0 else None
        frame_text = (
            f"frame {max(state.index, 0) + 1}/{count}"
            if count
            else f"frame {max(state.index, 0) + 1}"
        )
        self.position.setText(
            f"{format_clock(state.position_s)} / {format_clock(total)}  {frame_text}"
        )
        i = self.speed.findData(state.speed)
        if i >= 0 and i != self.speed.currentIndex():
            self.speed.blockSignals(True)
            self.speed.setCurrentIndex(i)
            self.speed.blockSignals(False)

    def _slider_action(self, action: int) -> None:
        # Clicks on the groove and keyboard paging (not drags: those seek on release).
        if action in (QSlider.SliderAction.SliderMove, QSlider.SliderAction.SliderNoAction):
            return
        self.seek_requested.emit(self.slider.sliderPosition())


class RecordingPanel(QGroupBox):
    """The manifest of an opened recording, and whether to draw its saved predictions."""

    saved_predictions_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Recording", parent)
        layout = QVBoxLayout(self)
        self.form = QFormLayout()
        layout.addLayout(self.form)
        self.saved = QCheckBox("Draw saved predictions", self)
        self.saved.setToolTip("Unchecked: run the loaded models on the replay instead")
        self.saved.setObjectName("saved_predictions")
        self.saved.setChecked(True)
        self.saved.toggled.connect(self.saved_predictions_toggled)
        layout.addWidget(self.saved)
        self.rows: list[tuple[str, str]] = []

    def set_recording(self, info) -> None:
        """Show the manifest of ``info`` (a RecordingInfo)."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.rows = engine.manifest_summary(info)
        for label, value in self.rows:
            text = QLabel(value, self)
            text.setWordWrap(True)
            text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.form.addRow(label, text)
        self.setTitle(f"Recording: {info.path.name}")


class ReplayController(QObject):
    """Keeps the replay widgets in step with the session.

    Shows the transport controls and timeline only for seekable sources; for a recording
    made by the app, fills the timeline from its saved predictions and shows its manifest.
    """

    def __init__(
        self,
        session: SessionController,
        panel: ReplayPanel,
        timeline: TimelinePanel,
        recording_panel: RecordingPanel,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.panel = panel
        self.timeline = timeline
        self.recording_panel = recording_panel
        self._markers: list[float] = []
        self._source: SourceInfo | None = None
        panel.play_toggled.connect(session.toggle_paused)
        panel.step_requested.connect(session.step)
        panel.seek_requested.connect(session.seek)
        panel.speed_requested.connect(session.set_speed)
        timeline.seek_requested.connect(session.seek_seconds)
        recording_panel.saved_predictions_toggled.connect(session.set_use_saved_predictions)
        session.source_changed.connect(self._source_changed)
        session.playback_changed.connect(self._playback_changed)
        session.timeline_changed.connect(self._timeline_changed)
        session.export_ready.connect(self._export_ready)
        self._source_changed(session.source_info)

    def _source_changed(self, info: SourceInfo | None) -> None:
        self._source = info
        seekable = info is not None and info.seekable
        self.panel.setVisible(seekable)
        self.timeline.setVisible(seekable)
        self.recording_panel.setVisible(info is not None and info.recording is not None)
        self.timeline.clear()
        self._markers = []
        if not seekable:
            return
        duration = info.frame_count / info.fps if info.frame_count and info.fps > 0 else None
        self.timeline.set_duration(duration)
        if info.recording is not None:
            self.recording_panel.set_recording(info.recording)
            t, peak, probs = engine.recording_series(info.recording)
            self.timeline.set_series(t, peak, probs)
            self._markers = engine.recording_snapshots(info.recording)
            self.timeline.set_markers(self._markers)
        state = self.session.playback_state()
        if state is not None:
            self._playback_changed(state)

    def _playback_changed(self, state: PlaybackState) -> None:
        self.panel.set_state(state)
        self.timeline.set_cursor(state.position_s)

    def _timeline_changed(self) -> None:
        info = self._source
        if info is None or not info.seekable or info.recording is not None:
            return
        self.timeline.set_series(*self.session.timeline().arrays())

    def _export_ready(self, record: engine.ExportRecord) -> None:
        info = self._source
        if info is None or not info.seekable or info.fps <= 0:
            return
        self._markers.append(record.frame_index / info.fps)
        self.timeline.set_markers(self._markers)
