"""The Settings dialog: thresholds, smoothing, stale limit, PHI masking, folders, device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.config import EngineConfig
from app.core.errors import ConfigError

#: Provider choices offered: (label, providers tuple).
PROVIDER_CHOICES = (
    ("GPU when available (TensorRT → CUDA → CPU)", ("tensorrt", "cuda", "cpu")),
    ("CUDA → CPU", ("cuda", "cpu")),
    ("CPU only", ("cpu",)),
)


@dataclass(frozen=True)
class SettingsValues:
    """What the dialog edits."""

    config: EngineConfig
    export_dir: Path
    device: dict[str, Any]


class _Optional(QWidget):
    """A number that may be left to the model ("use the model's value")."""

    def __init__(
        self,
        value: float | None,
        low: float,
        high: float,
        step: float,
        label: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.override = QCheckBox(label, self)
        self.spin = QDoubleSpinBox(self)
        self.spin.setRange(low, high)
        self.spin.setSingleStep(step)
        self.spin.setDecimals(3)
        self.spin.setValue(value if value is not None else (low + high) / 2)
        self.override.setChecked(value is not None)
        self.spin.setEnabled(value is not None)
        self.override.toggled.connect(self.spin.setEnabled)
        row.addWidget(self.override)
        row.addWidget(self.spin, 1)

    def value(self) -> float | None:
        return float(self.spin.value()) if self.override.isChecked() else None


class SettingsDialog(QDialog):
    """Edits engine settings, the export folder and capture-device parameters."""

    def __init__(self, values: SettingsValues, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("ERCP Assist — Settings")
        self.setObjectName("SettingsDialog")
        self._base = values.config
        c = values.config
        layout = QVBoxLayout(self)

        ai = QGroupBox("AI", self)
        form = QFormLayout(ai)
        self.stale_ms = QSpinBox(ai)
        self.stale_ms.setRange(50, 5000)
        self.stale_ms.setSuffix(" ms")
        self.stale_ms.setValue(int(c.stale_ms))
        self.stale_ms.setToolTip("A prediction older than this is not drawn; AI shows as paused")
        form.addRow("Stale limit", self.stale_ms)
        self.min_peak = _Optional(c.min_peak, 0.0, 1.0, 0.05, "override", ai)
        form.addRow("Presence threshold", self.min_peak)
        self.box_threshold = _Optional(c.box_threshold, 0.05, 1.0, 0.05, "override", ai)
        form.addRow("Box threshold", self.box_threshold)
        self.classifier_every = QSpinBox(ai)
        self.classifier_every.setRange(1, 100)
        self.classifier_every.setValue(c.classifier_every)
        form.addRow("Classifier every N frames", self.classifier_every)
        self.providers = QComboBox(ai)
        for label, providers in PROVIDER_CHOICES:
            self.providers.addItem(label, providers)
        known = [p for _, p in PROVIDER_CHOICES]
        self.providers.setCurrentIndex(known.index(c.providers) if c.providers in known else 0)
        form.addRow("Execution provider", self.providers)
        layout.addWidget(ai)

        smooth = QGroupBox("Smoothing", self)
        form = QFormLayout(smooth)
        self.smoothing = QCheckBox("Smooth boxes and difficulty over time", smooth)
        self.smoothing.setChecked(c.smoothing)
        form.addRow(self.smoothing)
        self.box_alpha = self._double(c.box_alpha, 0.01, 1.0, 0.05, smooth)
        form.addRow("Box EMA weight", self.box_alpha)
        self.probs_alpha = self._double(c.probs_alpha, 0.01, 1.0, 0.05, smooth)
        form.addRow("Difficulty EMA weight", self.probs_alpha)
        self.appear_frames = self._int(c.appear_frames, 1, 100, smooth)
        form.addRow("Frames before a box appears", self.appear_frames)
        self.disappear_frames = self._int(c.disappear_frames, 1, 100, smooth)
        form.addRow("Frames before it disappears", self.disappear_frames)
        self.label_margin = self._double(c.label_margin, 0.0, 1.0, 0.05, smooth)
        form.addRow("Label change margin", self.label_margin)
        layout.addWidget(smooth)

        export = QGroupBox("Export", self)
        form = QFormLayout(export)
        self.phi_mask = QCheckBox("Black out everything outside the endoscopic field (PHI)", export)
        self.phi_mask.setChecked(c.phi_mask)
        form.addRow(self.phi_mask)
        row = QHBoxLayout()
        self.export_dir = QLineEdit(str(values.export_dir), export)
        browse = QPushButton("Browse…", export)
        browse.clicked.connect(self._browse)
        row.addWidget(self.export_dir, 1)
        row.addWidget(browse)
        form.addRow("Export folder", row)
        layout.addWidget(export)

        device = QGroupBox("Capture device (0 / empty = the device's default)", self)
        form = QFormLayout(device)
        self.device_width = self._int(int(values.device.get("width", 0)), 0, 7680, device)
        form.addRow("Width", self.device_width)
        self.device_height = self._int(int(values.device.get("height", 0)), 0, 4320, device)
        form.addRow("Height", self.device_height)
        self.device_fps = self._double(
            float(values.device.get("fps", 0.0)), 0.0, 240.0, 1.0, device
        )
        form.addRow("Frame rate", self.device_fps)
        self.device_fourcc = QLineEdit(str(values.device.get("fourcc", "")), device)
        self.device_fourcc.setMaxLength(4)
        self.device_fourcc.setPlaceholderText("e.g. MJPG")
        form.addRow("FOURCC", self.device_fourcc)
        layout.addWidget(device)

        self.error = QLabel("", self)
        self.error.setObjectName("settings_error")
        self.error.setStyleSheet("color: #ff7070;")
        self.error.setWordWrap(True)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults,
            self,
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(
            self._restore_defaults
        )
        layout.addWidget(buttons)
        self._result: SettingsValues | None = None

    @staticmethod
    def _int(value: int, low: int, high: int, parent: QWidget) -> QSpinBox:
        spin = QSpinBox(parent)
        spin.setRange(low, high)
        spin.setValue(value)
        return spin

    @staticmethod
    def _double(
        value: float, low: float, high: float, step: float, parent: QWidget
    ) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(parent)
        spin.setRange(low, high)
        spin.setSingleStep(step)
        spin.setDecimals(2)
        spin.setValue(value)
        return spin

    def values(self) -> SettingsValues:
        """The edited settings.

        Raises:
            ConfigError: when a combination is invalid.
        """
        config = self._base.with_changes(
            stale_ms=float(self.stale_ms.value()),
            min_peak=self.min_peak.value(),
            box_threshold=self.box_threshold.value(),
            classifier_every=int(self.classifier_every.value()),
            providers=tuple(self.providers.currentData()),
            smoothing=self.smoothing.isChecked(),
            box_alpha=float(self.box_alpha.value()),
            probs_alpha=float(self.probs_alpha.value()),
            appear_frames=int(self.appear_frames.value()),
            disappear_frames=int(self.disappear_frames.value()),
            label_margin=float(self.label_margin.value()),
            phi_mask=self.phi_mask.isChecked(),
        )
        device: dict[str, Any] = {}
        if self.device_width.value():
            device["width"] = int(self.device_width.value())
        if self.device_height.value():
            device["height"] = int(self.device_height.value())
        if self.device_fps.value():
            device["fps"] = float(self.device_fps.value())
        fourcc = self.device_fourcc.text().strip()
        if fourcc:
            if len(fourcc) != 4:
                raise ConfigError(f"FOURCC {fourcc!r}: expected 4 characters, e.g. MJPG")
            device["fourcc"] = fourcc
        folder = self.export_dir.text().strip()
        if not folder:
            raise ConfigError("export folder: expected a folder path")
        return SettingsValues(config, Path(folder).expanduser(), device)

    def result_values(self) -> SettingsValues | None:
        """The accepted settings, or None if the dialog was cancelled."""
        return self._result

    def accept(self) -> None:  # noqa: D102 - Qt override
        try:
            self._result = self.values()
        except ConfigError as exc:
            self.error.setText(str(exc))
            return
        super().accept()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder", self.export_dir.text())
        if folder:
            self.export_dir.setText(folder)

    def _restore_defaults(self) -> None:
        d = EngineConfig()
        self.stale_ms.setValue(int(d.stale_ms))
        self.min_peak.override.setChecked(False)
        self.box_threshold.override.setChecked(False)
        self.classifier_every.setValue(d.classifier_every)
        self.providers.setCurrentIndex(0)
        self.smoothing.setChecked(d.smoothing)
        self.box_alpha.setValue(d.box_alpha)
        self.probs_alpha.setValue(d.probs_alpha)
        self.appear_frames.setValue(d.appear_frames)
        self.disappear_frames.setValue(d.disappear_frames)
        self.label_margin.setValue(d.label_margin)
        self.phi_mask.setChecked(d.phi_mask)
