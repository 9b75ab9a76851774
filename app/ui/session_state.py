"""Values the session controller hands to widgets: models, source, status, playback, timeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


class TimelineSeries:
    """AOV confidence and class probabilities per frame of the source (GUI thread only).

    Keyed by frame index, so replaying a stretch again (after a seek back) replaces its points
    instead of doubling them, and the arrays always come out in time order.
    """

    def __init__(self, fps: float = 30.0) -> None:
        self.fps = max(float(fps), 1e-6)
        self._points: dict[int, tuple[float, dict[str, float]]] = {}
        self._names: dict[str, None] = {}
        self.last_index = -1

    def __len__(self) -> int:
        return len(self._points)

    def add(self, frame_index: int, prediction: Prediction) -> None:
        """Record the prediction made from frame ``frame_index``."""
        probs = dict(prediction.difficulty.probs) if prediction.difficulty is not None else {}
        for name in probs:
            self._names.setdefault(str(name), None)
        self._points[int(frame_index)] = (float(prediction.peak), probs)
        self.last_index = int(frame_index)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """``(t, peak, {class: p})`` sorted by time; NaN where a class was not given."""
        indices = sorted(self._points)
        t = np.asarray(indices, dtype=np.float64) / self.fps
        peak = np.asarray([self._points[i][0] for i in indices], dtype=np.float64)
        probs = {
            name: np.asarray(
                [self._points[i][1].get(name, np.nan) for i in indices], dtype=np.float64
            )
            for name in self._names
        }
        return t, peak, probs
