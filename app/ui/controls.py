"""Side-panel controls: overlay toggles, source picker, model picker, record and snapshot."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.core.overlay import OverlayOptions

VIDEO_FILTER = (
    "Videos and images (*.mp4 *.mkv *.avi *.mov *.m4v *.webm *.mpg *.ts *.png *.jpg);;All files (*)"
)
MODEL_FILTER = "ONNX models (*.onnx);;All files (*)"
#: Overlay toggles in display order: (OverlayOptions field, label, shortcut hint).
TOGGLES = (
    ("heatmap", "Heatmap"),
    ("box", "Box"),
    ("centroid", "Centroid"),
    ("difficulty", "Difficulty"),
    ("cam", "CAM"),
    ("hud", "HUD"),
)


def format_clock(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a duration."""
    if seconds is None:
        return "--:--"
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class OverlayPanel(QGroupBox):
    """Overlay toggles and the heatmap opacity slider; emits ``options_changed``."""

    options_changed = Signal(object)  # OverlayOptions

    def __init__(self, options: OverlayOptions, parent: QWidget | None = None) -> None:
        super().__init__("Overlay", parent)
        self._options = options
        grid = QGridLayout(self)
        self.checks: dict[str, QCheckBox] = {}
        for i, (name, label) in enumerate(TOGGLES):
            box = QCheckBox(label, self)
            box.setObjectName(f"toggle_{name}")
            box.setChecked(bool(getattr(options, name)))
            box.toggled.connect(self._changed)
            self.checks[name] = box
            grid.addWidget(box, i // 2, i % 2)
        row = (len(TOGGLES) + 1) // 2
        grid.addWidget(QLabel("Heatmap opacity", self), row, 0)
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setObjectName("heatmap_opacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(options.heatmap_opacity * 100))
        self.opacity.valueChanged.connect(self._changed)
        grid.addWidget(self.opacity, row, 1)

    def options(self) -> OverlayOptions:
        """The options as set in the panel."""
        return self._options

    def set_options(self, options: OverlayOptions) -> None:
        """Show ``options`` without emitting."""
        self._options = options
        for name, box in self.checks.items():
            box.blockSignals(True)
            box.setChecked(bool(getattr(options, name)))
            box.blockSignals(False)
        self.opacity.blockSignals(True)
        self.opacity.setValue(round(options.heatmap_opacity * 100))
        self.opacity.blockSignals(False)

    def _changed(self, *_: object) -> None:
        values = {name: box.isChecked() for name, box in self.checks.items()}
        self._options = dataclasses.replace(
            self._options, **values, heatmap_opacity=self.opacity.value() / 100.0
        )
        self.options_changed.emit(self._options)


class SourcePanel(QGroupBox):
    """Choose a source: Phantom, a capture device by name, a video file or a recording."""

    source_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Source", parent)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.combo = QComboBox(self)
        self.combo.setObjectName("source_combo")
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(14)
        self.combo.setToolTip("Phantom or a capture device; pick one and press Open")
        row.addWidget(self.combo, 1)
        self.open_button = QPushButton("Open", self)
        self.open_button.clicked.connect(self._open_selected)
        row.addWidget(self.open_button)
        layout.addLayout(row)
        buttons = QHBoxLayout()
        self.file_button = QPushButton("Open file…", self)
        self.file_button.clicked.connect(self.choose_file)
        buttons.addWidget(self.file_button)
        self.recording_button = QPushButton("Open recording…", self)
        self.recording_button.clicked.connect(self.choose_recording)
        buttons.addWidget(self.recording_button)
        layout.addLayout(buttons)
        self.current = QLabel("No source", self)
        self.current.setObjectName("source_current")
        self.current.setWordWrap(True)
        self.current.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.current)
        self.start_dir = str(Path.home())
        self.set_devices([])

    def set_devices(self, devices: list[Any]) -> None:
        """Fill the picker: Phantom first, then each capture device by name."""
        self.combo.clear()
        self.combo.addItem("Phantom (synthetic duodenoscope)", "phantom")
        for dev in devices:
            spec = dev.spec() if callable(getattr(dev, "spec", None)) else f"device:{dev.index}"
            where = dev.path or f"index {dev.index}"
            self.combo.addItem(f"{dev.name} ({where})", spec)

    def specs(self) -> list[str]:
        """The specs offered in the picker."""
        return [self.combo.itemData(i) for i in range(self.combo.count())]

    def set_current(self, text: str) -> None:
        """Describe the open source."""
        self.current.setText(text)

    def choose_file(self) -> None:
        """Ask for a video file (or image) and request it."""
        path, _ = QFileDialog.getOpenFileName(self, "Open video file", self.start_dir, VIDEO_FILTER)
        if path:
            self.start_dir = str(Path(path).parent)
            self.source_requested.emit(path)

    def choose_recording(self) -> None:
        """Ask for a recording folder (or any image folder) and request it."""
        path = QFileDialog.getExistingDirectory(self, "Open recording folder", self.start_dir)
        if path:
            self.start_dir = str(Path(path).parent)
            self.source_requested.emit(path)

    def _open_selected(self) -> None:
        spec = self.combo.currentData()
        if spec:
            self.source_requested.emit(str(spec))


def _scalar_metrics(metrics: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """Numbers and short strings of a (nested) metrics dict, as ``("held_out miou", 0.62)``.

    Exporters nest figures (held-out results, calibration); the panel shows leaves, not JSON.
    """
    leaves: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            leaves += _scalar_metrics(value, f"{name} ")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "images":
            leaves.append((name, value))
    return leaves


def describe_provenance(info: Any) -> list[str]:
    """Human lines for a model's provenance (dataset, metrics, date, source)."""
    prov = dict(getattr(info, "provenance", {}) or {})
    lines = []
    trained = prov.get("trained_on") or prov.get("ercp.trained_on")
    if isinstance(trained, dict):
        text = (
            trained.get("dataset")
            or trained.get("name")
            or ", ".join(f"{k}={v}" for k, v in trained.items())
        )
        if trained.get("fingerprint"):
            text += f" ({str(trained['fingerprint'])[:12]})"
        lines.append(f"trained on: {text}")
    elif trained:
        lines.append(f"trained on: {trained}")
    metrics = prov.get("metrics")
    if isinstance(metrics, dict) and metrics:
        shown = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in _scalar_metrics(metrics)[:4]
        )
        lines.append(f"metrics: {shown}")
    for key in ("created", "source"):
        if prov.get(key):
            lines.append(f"{key}: {prov[key]}")
    return lines


class ModelPanel(QGroupBox):
    """Loaded models with version, provider and provenance; load or unload each role."""

    load_requested = Signal(str, str)  # role, path
    unload_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Models", parent)
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.labels: dict[str, QLabel] = {}
        self.start_dir = str(Path.home())
        for role in ("detector", "classifier"):
            box = QWidget(self)
            col = QVBoxLayout(box)
            col.setContentsMargins(0, 0, 0, 0)
            label = QLabel("none loaded", box)
            label.setObjectName(f"model_{role}")
            label.setWordWrap(True)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            col.addWidget(label)
            row = QHBoxLayout()
            load = QPushButton("Load…", box)
            load.clicked.connect(lambda _=False, r=role: self.choose_model(r))
            unload = QPushButton("Unload", box)
            unload.clicked.connect(lambda _=False, r=role: self.unload_requested.emit(r))
            row.addWidget(load)
            row.addWidget(unload)
            row.addStretch(1)
            col.addLayout(row)
            self.labels[role] = label
            form.addRow(role.capitalize(), box)

    def set_models(self, models: dict[str, Any]) -> None:
        """Show ``{role: LoadedModel}``."""
        for role, label in self.labels.items():
            loaded = models.get(role)
            if loaded is None:
                label.setText("none loaded")
                label.setToolTip("")
                continue
            info = loaded.model.info
            prov = describe_provenance(info)
            lines = [
                f"<b>{html.escape(info.name)}</b> v{html.escape(info.version)}"
                f" &nbsp;on {html.escape(loaded.provider_short)}",
                *(html.escape(line) for line in prov[:3]),
            ]
            label.setText("<br>".join(lines))
            label.setToolTip(
                "\n".join(
                    [
                        str(loaded.path),
                        f"sha256 {loaded.model.sha256}",
                        f"provider: {loaded.provider_summary}",
                        *prov,
                    ]
                )
            )

    def choose_model(self, role: str) -> None:
        """Ask for an ONNX file for ``role``."""
        path, _ = QFileDialog.getOpenFileName(
            self, f"Load {role} model", self.start_dir, MODEL_FILTER
        )
        if path:
            self.start_dir = str(Path(path).parent)
            self.load_requested.emit(role, path)


class RecordPanel(QGroupBox):
    """Record (R) with the elapsed time, and Snapshot (S)."""

    record_clicked = Signal()
    snapshot_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Record and export", parent)
        layout = QHBoxLayout(self)
        self.record_button = QPushButton("● Record (R)", self)
        self.record_button.setObjectName("record_button")
        self.record_button.setCheckable(True)
        self.record_button.clicked.connect(lambda _=False: self.record_clicked.emit())
        layout.addWidget(self.record_button)
        self.snapshot_button = QPushButton("Snapshot (S)", self)
        self.snapshot_button.setObjectName("snapshot_button")
        self.snapshot_button.clicked.connect(lambda _=False: self.snapshot_clicked.emit())
        layout.addWidget(self.snapshot_button)
        self.elapsed = QLabel("", self)
        self.elapsed.setObjectName("record_elapsed")
        self.elapsed.setMinimumWidth(70)
        layout.addWidget(self.elapsed)

    def set_recording(self, recording: bool, elapsed_s: float | None = None) -> None:
        """Show the recording state and time."""
        self.record_button.setChecked(recording)
        self.record_button.setText("■ Stop (R)" if recording else "● Record (R)")
        self.record_button.setStyleSheet("color: #ff5050; font-weight: 700;" if recording else "")
        self.elapsed.setText(f"REC {format_clock(elapsed_s or 0.0)}" if recording else "")
