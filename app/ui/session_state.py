"""Values the session controller hands to widgets: models, source, status, playback, timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.frame import Prediction


@dataclass(frozen=True)
class LoadedModel:
    """A model the session uses, with what the UI shows about it."""

    role: str
    path: Path
    model: Any  # app.core.models.OnnxModel

    @property
    def label(self) -> str:
        """``name version``."""
        return self.model.info.label

    @property
    def provider_summary(self) -> str:
        """``"CPU"``, ``"CUDA"``... with fallback reasons."""
        return self.model.provider_report.summary()

    @property
    def provider_short(self) -> str:
        """``"CPU"``, ``"CUDA"`` or ``"TensorRT"``, plus "(GPU unavailable)" after a fallback."""
        report = self.model.provider_report
        name = {"tensorrt": "TensorRT"}.get(report.chosen_short, report.chosen_short.upper())
        if report.chosen_short == "cpu" and report.fallbacks:
            name += " (GPU unavailable)"
        return name

    @property
    def on_gpu(self) -> bool:
        """True when the session runs on CUDA or TensorRT."""
        return self.model.provider_report.chosen_short != "cpu"

    def describe(self) -> dict:
        """JSON-ready summary (name, version, task, sha256, provider, provenance)."""
        return self.model.describe()


@dataclass(frozen=True)
class SourceInfo:
    """What the UI needs to know about the open source."""

    spec: str
    name: str
    fps: float
    seekable: bool
    frame_count: int | None
    recording: Any | None = None  # RecordingInfo when a recording made by the app is open


@dataclass(frozen=True)
class SessionStatus:
    """The figures of the status bar, refreshed every ``STATUS_INTERVAL_MS``."""

    source_name: str = ""
    source_fps: float = 0.0
    displayed_fps: float = 0.0
    capture_fps: float = 0.0
    inference_fps: float = 0.0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    dropped_frames: int = 0
    #: Predictions made but never drawn (a newer one came first, or they were stale).
    dropped_predictions: int = 0
    provider: str = ""
    on_cpu: bool = False
    models: tuple[str, ...] = ()
    ai_state: str = "off"
    ai_reason: str = ""
    ai_visible: bool = True
    recording: bool = False
    record_elapsed_s: float | None = None


@dataclass(frozen=True)
class PlaybackState:
    """Position of a seekable source."""

    index: int
    position_s: float
    frame_count: int | None
    fps: float
    paused: bool
    speed: float


@dataclass
class TimelineSeries:
    """AOV confidence and class probabilities seen so far, per source position (GUI thread)."""

    t: list[float] = field(default_factory=list)
    peak: list[float] = field(default_factory=list)
    probs: dict[str, list[float]] = field(default_factory=dict)
    last_index: int = -1

    def add(self, t: float, prediction: Prediction) -> None:
        """Append one prediction (callers pass each prediction once)."""
        self.t.append(t)
        self.peak.append(float(prediction.peak))
        names = set(self.probs)
        if prediction.difficulty is not None:
            names |= set(prediction.difficulty.probs)
        for name in names:
            series = self.probs.setdefault(name, [float("nan")] * (len(self.t) - 1))
            value = prediction.difficulty.probs.get(name) if prediction.difficulty else None
            series.append(float("nan") if value is None else float(value))
