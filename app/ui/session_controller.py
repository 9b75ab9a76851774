"""The session controller: owns the engine Pipeline and polls it from a QTimer at display rate.

No Qt signal ever carries a frame. The capture thread overwrites the pipeline's latest-frame
slot; a precise QTimer on the GUI thread looks at the slot, and when a new frame is there it
renders the overlay with the engine's one renderer (``app.core.overlay.render_overlay``) and
hands the result to the video view, which only keeps a reference and calls ``update()``.
Slow work (model loading, exports) runs on one worker thread; its futures are polled by the
same timer, so results come back to the GUI thread without locks.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal

from app.core.config import EngineConfig
from app.core.contract import TASK_CLASSIFIER, TASK_DETECTOR
from app.core.errors import ErcpError
from app.core.frame import Frame, FrameSource, Prediction
from app.core.overlay import HudInfo, OverlayOptions, render_overlay
from app.core.pipeline import Pipeline, PipelineEvent
from app.ui import engine
from app.ui.banners import NotificationManager
from app.ui.session_state import (
    LoadedModel,
    PlaybackState,
    SessionStatus,
    SourceInfo,
    TimelineSeries,
)
from app.ui.video_view import VideoView

log = logging.getLogger(__name__)

ROLES = ("detector", "classifier")
#: How often the figures in the status bar are refreshed.
STATUS_INTERVAL_MS = 500
#: How often the replay position (slider, timeline cursor) is refreshed.
PLAYBACK_INTERVAL_MS = 100
#: Event kinds of the pipeline, as banner levels.
_EVENT_LEVELS = {
    "signal_lost": "warning",
    "signal_restored": "info",
    "source_error": "error",
    "source_ended": "info",
    "inference_error": "error",
    "sink_error": "error",
}


def poll_interval_ms(fps: float) -> int:
    """Timer interval that sees every frame of a ``fps`` source soon after it arrives.

    A frame waits up to one interval before it is drawn, so the interval is also the jitter
    polling adds to the displayed frame interval: a quarter of the source interval (8 ms at
    30 fps) keeps that well inside the 1.5x budget, for ~20 us of work per empty tick.
    """
    if fps <= 0:
        return 10
    return int(max(4, min(10, 1000.0 / (4.0 * fps))))


def minimal_options(options: OverlayOptions) -> OverlayOptions:
    """Procedure mode: box, centroid and difficulty as the user set them; no heatmap/CAM/HUD."""
    return dataclasses.replace(options, heatmap=False, cam=False, hud=False)


@dataclass
class _Shown:
    """The frame on screen, with the pixels and prediction drawn on it (GUI thread only)."""

    frame: Frame
    overlay: np.ndarray
    prediction: Prediction | None


class SessionController(QObject):
    """One source, its pipeline, the loaded models, recording and exports.

    Args:
        notifications: where errors go (banners).
        config: engine settings.
        options: overlay toggles.
        export_dir: where snapshots and recordings are written.
        parent: Qt parent.
    """

    source_changed = Signal(object)  # SourceInfo or None
    models_changed = Signal()
    status_changed = Signal(object)  # SessionStatus
    playback_changed = Signal(object)  # PlaybackState
    export_ready = Signal(object)  # engine.ExportRecord
    recording_changed = Signal(bool)
    timeline_changed = Signal()

    def __init__(
        self,
        notifications: NotificationManager,
        config: EngineConfig | None = None,
        options: OverlayOptions | None = None,
        export_dir: str | Path = "exports",
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.notifications = notifications
        self.config = config or EngineConfig()
        self.options = options or OverlayOptions.from_config(self.config)
        self.export_dir = Path(export_dir)
        self.ai_visible = True
        #: Replaying a recording made by the app draws its saved predictions (True) or runs
        #: the loaded models again (False).
        self.use_saved_predictions = True
        self.source_options: dict[str, Any] = {}
        self._hud_cache = HudInfo()
        self._pipeline: Pipeline | None = None
        self._source_info: SourceInfo | None = None
        self._models: dict[str, LoadedModel] = {}
        self._display: VideoView | None = None
        self._display_minimal = False
        self._shown: _Shown | None = None
        self._recorder: engine.RecordingSink | None = None
        #: The folder of the last recording this session finished.
        self.last_recording: Path | None = None
        self._exports: list[engine.ExportRecord] = []
        self._timeline = TimelineSeries()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ui-worker")
        self._pending: list[tuple[Future, Callable[[Any], None], str]] = []
        self._closed = False
        self._last_status = 0.0
        self._last_playback = 0.0
        self._last_timeline = 0.0
        self._last_playback_state: PlaybackState | None = None
        self._frames_rendered = 0
        # After a step or seek, frames captured before it (still in the slot) are not shown,
        # so the picture never flicks back to where it was.
        self._not_before = 0.0
        # Distinct predictions drawn on the current source, to count the ones never shown.
        self._drawn_predictions = 0
        self._last_drawn: Prediction | None = None
        self._render_ms: deque[float] = deque(maxlen=240)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(poll_interval_ms(30.0))
        self._timer.timeout.connect(self.tick)
        self._timer.start()

    # -- state the UI reads ---------------------------------------------------------------

    @property
    def pipeline(self) -> Pipeline | None:
        """The running pipeline, or None without a source."""
        return self._pipeline

    @property
    def source_info(self) -> SourceInfo | None:
        """The open source, or None."""
        return self._source_info

    @property
    def source(self) -> FrameSource | None:
        """The open FrameSource, or None."""
        return self._pipeline.source if self._pipeline is not None else None

    def models(self) -> dict[str, LoadedModel]:
        """The loaded models by role."""
        return dict(self._models)

    def exports(self) -> list[engine.ExportRecord]:
        """This session's exports, oldest first."""
        return list(self._exports)

    def timeline(self) -> TimelineSeries:
        """Predictions seen on the current source (for a plain video file)."""
        return self._timeline

    @property
    def frames_rendered(self) -> int:
        """Distinct frames rendered for display since construction."""
        return self._frames_rendered

    def render_times_ms(self) -> np.ndarray:
        """Overlay render times of the last frames (ms), for benchmarks."""
        return np.fromiter(self._render_ms, dtype=np.float64)

    def shown(self) -> tuple[Frame, np.ndarray, Prediction | None] | None:
        """The frame on screen, the exact pixels shown and the prediction drawn on it."""
        s = self._shown
        return None if s is None else (s.frame, s.overlay, s.prediction)

    @property
    def recording(self) -> bool:
        """True while recording."""
        return self._recorder is not None

    # -- display --------------------------------------------------------------------------

    def set_display(self, view: VideoView | None, minimal: bool = False) -> None:
        """Draw into ``view`` from now on (None: nowhere); ``minimal`` for procedure mode."""
        self._display = view
        self._display_minimal = minimal
        self._redraw()

    def set_options(self, options: OverlayOptions) -> None:
        """New overlay toggles; the shown frame is redrawn at once (also while paused)."""
        self.options = options
        self._redraw()

    def set_ai_visible(self, visible: bool) -> None:
        """Show or hide every AI overlay at once (the H key)."""
        self.ai_visible = bool(visible)
        self._redraw()

    def toggle_ai_visible(self) -> bool:
        """Flip ``ai_visible``; returns the new value."""
        self.set_ai_visible(not self.ai_visible)
        return self.ai_visible

    def set_config(self, config: EngineConfig) -> None:
        """Apply new engine settings to the running session.

        Thresholds, smoothing and the stale limit apply at once; a change of execution
        providers reloads the models.
        """
        old = self.config
        self.config = config
        if self._pipeline is not None:
            engine.apply_config(self._pipeline, config, *self._inference_stages())
        if old.providers != config.providers or old.intra_op_threads != config.intra_op_threads:
            for role, loaded in list(self._models.items()):
                self.load_model(loaded.path, role)

    def set_use_saved_predictions(self, saved: bool) -> None:
        """For a recording: draw its saved predictions (True) or run the loaded models."""
        self.use_saved_predictions = bool(saved)
        info = self._source_info
        if self._pipeline is not None and info is not None and info.recording is not None:
            self._pipeline.set_ai_enabled(not self.use_saved_predictions)
        self._redraw()

    # -- sources --------------------------------------------------------------------------

    def open_source(self, spec: str | FrameSource) -> bool:
        """Close the current source and open ``spec`` (a spec string or a FrameSource).

        Returns:
            True on success; on failure a banner says why and the session has no source.
        """
        self.close_source()
        recording = None
        try:
            if isinstance(spec, str):
                text = spec
                recording = engine.recording_at(spec)
                if recording is not None:
                    source = engine.recording_source(recording)
                else:
                    source = engine.open_source(spec, self.source_options)
            else:
                source, text = spec, getattr(spec, "name", "source")
        except (ErcpError, OSError, ValueError) as exc:
            self.notifications.notify_exception(exc, source="source")
            self.source_changed.emit(None)
            return False
        pipeline = Pipeline(source, *self._inference_stages(), config=self.config)
        self._pipeline = pipeline
        count = engine.frame_count(source)
        self._source_info = SourceInfo(
            spec=text,
            name=str(getattr(source, "name", text)),
            fps=float(getattr(source, "fps", 0.0) or 0.0),
            seekable=engine.is_seekable(source),
            frame_count=count,
            recording=recording,
        )
        self._timeline = TimelineSeries(self._source_info.fps)
        self._shown = None
        self._drawn_predictions = 0
        self._last_drawn = None
        self._timer.setInterval(poll_interval_ms(self._source_info.fps))
        if recording is not None and self.use_saved_predictions:
            pipeline.set_ai_enabled(False)  # the saved predictions are drawn instead
        pipeline.start()
        log.info("opened source %s (%.1f fps)", self._source_info.name, self._source_info.fps)
        self.source_changed.emit(self._source_info)
        self.timeline_changed.emit()
        return True

    def close_source(self) -> None:
        """Stop recording, stop the pipeline and close the source (idempotent)."""
        if self._recorder is not None:
            self.stop_recording()
        pipeline, self._pipeline = self._pipeline, None
        had_source = self._source_info is not None
        self._source_info = None
        self._shown = None
        self._last_playback_state = None
        if pipeline is not None:
            pipeline.close()
        if self._display is not None:
            self._display.set_image(None)
        if had_source:
            self.source_changed.emit(None)

    # -- playback (seekable sources) ------------------------------------------------------

    def playback_state(self) -> PlaybackState | None:
        """Where a seekable source is, or None."""
        source = self.source
        info = self._source_info
        if source is None or info is None or not info.seekable:
            return None
        index = int(source.index)
        return PlaybackState(
            index=index,
            position_s=max(index, 0) / max(info.fps, 1e-6),
            frame_count=info.frame_count,
            fps=info.fps,
            paused=bool(source.paused),
            speed=float(source.speed),
        )

    def set_paused(self, paused: bool) -> None:
        """Pause or resume a seekable source."""
        source = self.source
        if source is not None and engine.is_seekable(source):
            source.paused = paused
            self._emit_playback(force=True)

    def toggle_paused(self) -> None:
        """Play/pause (Space)."""
        source = self.source
        if source is not None and engine.is_seekable(source):
            self.set_paused(not source.paused)

    def step(self, delta: int) -> None:
        """Pause and move ``delta`` frames (← / →); the new frame is shown at once."""
        source = self.source
        if source is None or not engine.is_seekable(source):
            return
        try:
            self._not_before = time.monotonic()
            frame = source.step(delta)
        except ErcpError as exc:
            self.notifications.notify_exception(exc, source="replay")
            return
        if self._pipeline is not None:
            self._pipeline.reset_smoothing()
        if frame is not None:
            self._present(frame)
        self._emit_playback(force=True)

    def seek(self, index: int) -> None:
        """Jump to frame ``index`` (kept paused if it was paused)."""
        source = self.source
        if source is None or not engine.is_seekable(source):
            return
        try:
            self._not_before = time.monotonic()
            was_paused = bool(source.paused)
            if was_paused:
                # step() from the target shows it at once while staying paused.
                source.seek(max(int(index), 0))
                frame = source.step(0)
                if frame is not None:
                    self._present(frame)
            else:
                source.seek(int(index))
        except ErcpError as exc:
            self.notifications.notify_exception(exc, source="replay")
            return
        if self._pipeline is not None:
            self._pipeline.reset_smoothing()
        self._emit_playback(force=True)

    def seek_seconds(self, seconds: float) -> None:
        """Jump to the frame at ``seconds`` into the source."""
        info = self._source_info
        if info is not None and info.fps > 0:
            self.seek(int(round(seconds * info.fps)))

    def set_speed(self, speed: float) -> None:
        """Replay speed (0.25 .. 4)."""
        source = self.source
        if source is None or not engine.is_seekable(source):
            return
        try:
            source.speed = speed
        except ErcpError as exc:
            self.notifications.notify_exception(exc, source="replay")
        self._emit_playback(force=True)

    # -- models ---------------------------------------------------------------------------

    def load_model(
        self, path: str | Path, role: str, on_done: Callable[[bool], None] | None = None
    ) -> None:
        """Load a model file for ``role`` on the worker thread; a refusal becomes a banner."""
        if role not in ROLES:
            raise ValueError(f"model role {role!r}: expected one of {ROLES}")
        path = Path(path)
        task = TASK_DETECTOR if role == "detector" else TASK_CLASSIFIER
        config = self.config

        def load() -> Any:
            return engine.load_model(path, config, task)

        def done(result: Any) -> None:
            ok = not isinstance(result, BaseException)
            if ok:
                self._models[role] = LoadedModel(role, path, result)
                self._apply_models()
                if not self._models[role].on_gpu:
                    log.info("%s runs on CPU: %s", role, self._models[role].provider_summary)
            else:
                self.notifications.notify_exception(result, source=f"{role} model")
            if on_done is not None:
                on_done(ok)
            self.models_changed.emit()

        self._submit(load, done, f"load {role}")

    def unload_model(self, role: str) -> None:
        """Stop using the model of ``role``."""
        if self._models.pop(role, None) is not None:
            self._apply_models()
            self.models_changed.emit()

    def _inference_stages(self) -> tuple[Any, Any]:
        det = self._models.get("detector")
        cls = self._models.get("classifier")
        return engine.make_stages(
            det.model if det else None, cls.model if cls else None, self.config
        )

    def _apply_models(self) -> None:
        if self._pipeline is not None:
            self._pipeline.set_models(*self._inference_stages())

    # -- snapshot and recording -----------------------------------------------------------

    def snapshot(self) -> bool:
        """Export the frame on screen with its overlay, through the engine's exporter.

        Returns:
            False when there is nothing to export (no frame yet).
        """
        shown = self._shown
        if shown is None:
            self.notifications.notify("Snapshot: no frame on screen yet", "warning", "export")
            return False
        # The exported overlay is the one on screen (minimal in procedure mode).
        frame, prediction = shown.frame, shown.prediction
        overlay = shown.overlay
        models = [m.describe() for m in self._models.values()]
        out_dir = self.export_dir
        if self._recorder is not None:
            # Kept with the recording, so its replay can mark the snapshot on the timeline.
            out_dir = self._recorder.recorder.out_dir / engine.SNAPSHOT_SUBDIR
        phi = self.config.phi_mask

        def export() -> engine.ExportRecord:
            return engine.export_snapshot(out_dir, frame, overlay, prediction, models, phi)

        def done(result: Any) -> None:
            if isinstance(result, BaseException):
                self.notifications.notify_exception(result, source="export")
                return
            self._exports.append(result)
            self.notifications.notify(f"Snapshot saved: {result.overlay.name}", "info", "export")
            self.export_ready.emit(result)

        self._submit(export, done, "export")
        return True

    def start_recording(self) -> bool:
        """Record the source (raw and overlay video + predictions) into the export folder.

        Every captured frame is recorded (by a frame sink on the capture thread), with the
        overlay drawn by the same renderer as the screen.
        """
        if self._recorder is not None:
            return True
        pipeline, info = self._pipeline, self._source_info
        if pipeline is None or info is None:
            self.notifications.notify("Record: open a source first", "warning", "recording")
            return False

        def failed(exc: BaseException) -> None:  # writer thread
            self.notifications.notify_exception(exc, source="recording")

        try:
            self._recorder = engine.start_recorder(
                pipeline,
                self.export_dir,
                info.name,
                info.fps,
                self.config,
                [m.describe() for m in self._models.values()],
                render=lambda frame, _prediction: self.compose(frame, now=frame.t),
                on_error=failed,
            )
        except (ErcpError, OSError, ValueError) as exc:
            self._recorder = None
            self.notifications.notify_exception(exc, source="recording")
            return False
        self.notifications.notify(
            f"Recording to {self._recorder.recorder.out_dir}", "info", "recording"
        )
        self.recording_changed.emit(True)
        return True

    def stop_recording(self) -> None:
        """Finish the recording (idempotent)."""
        sink, self._recorder = self._recorder, None
        if sink is None:
            return
        try:
            where = engine.stop_recorder(self._pipeline, sink)
        except (ErcpError, OSError, ValueError) as exc:
            self.notifications.notify_exception(exc, source="recording")
        else:
            self.last_recording = where
            self.notifications.notify(f"Recording saved: {where}", "info", "recording")
        self.recording_changed.emit(False)

    def toggle_recording(self) -> bool:
        """Start or stop recording (R); returns whether it is recording now."""
        if self._recorder is None:
            return self.start_recording()
        self.stop_recording()
        return False

    # -- the timer ------------------------------------------------------------------------

    def tick(self) -> None:
        """One poll: worker results, pipeline events, a new frame, periodic figures."""
        if self._closed:
            return
        self._collect_results()
        pipeline = self._pipeline
        if pipeline is None:
            self._emit_status()
            return
        for event in pipeline.events():
            self._report(event)
        frame = pipeline.latest_frame()
        if (
            frame is not None
            and (self._shown is None or frame is not self._shown.frame)
            and frame.t >= self._not_before
        ):
            self._present(frame)
        self._emit_status()
        self._emit_playback()

    def _present(self, frame: Frame) -> None:
        """Render the overlay for ``frame`` once and show it."""
        t0 = time.perf_counter()
        overlay, prediction = self.compose(frame)
        self._render_ms.append((time.perf_counter() - t0) * 1000.0)
        self._note_timeline(frame, prediction)
        self._shown = _Shown(frame, overlay, prediction)
        self._frames_rendered += 1
        if prediction is not None and prediction is not self._last_drawn:
            self._last_drawn = prediction
            self._drawn_predictions += 1
        if self._display is not None:
            self._display.set_image(overlay)

    def display_options(self) -> OverlayOptions:
        """The overlay options of what is on screen (minimal in procedure mode)."""
        return minimal_options(self.options) if self._display_minimal else self.options

    def choose_prediction(
        self, frame: Frame, now: float | None = None
    ) -> tuple[Prediction | None, bool]:
        """What to draw on ``frame``: ``(prediction or None, ai_paused)``.

        Thread-safe (the recorder calls it on the capture thread): it reads only immutable
        values and the pipeline's thread-safe accessors.
        """
        if not self.ai_visible:
            return None, False
        info = self._source_info
        source = self.source
        if info is not None and info.recording is not None and self.use_saved_predictions:
            record = source.prediction(frame.index) if hasattr(source, "prediction") else None
            return engine.prediction_from_record(record, frame), False
        pipeline = self._pipeline
        if pipeline is None:
            return None, False
        now = time.monotonic() if now is None else now
        state = pipeline.ai_state_at(now)
        if state.state == "paused":
            return None, True
        if state.state != "running":
            return None, False
        return pipeline.latest_prediction(now), False

    def compose(
        self, frame: Frame, options: OverlayOptions | None = None, now: float | None = None
    ) -> tuple[np.ndarray, Prediction | None]:
        """The pixels to show for ``frame`` and the prediction drawn on them.

        One call of the engine's renderer; thread-safe, like ``choose_prediction``.
        """
        options = options or self.display_options()
        prediction, paused = self.choose_prediction(frame, now)
        hud = self._hud_cache if options.hud else None
        overlay = render_overlay(frame.image, prediction, options, hud=hud, ai_paused=paused)
        return overlay, prediction

    def _note_timeline(self, frame: Frame, prediction: Prediction | None) -> None:
        info = self._source_info
        if prediction is None or info is None or not info.seekable or info.recording is not None:
            return
        if prediction.frame_index != self._timeline.last_index:
            self._timeline.add(prediction.frame_index, prediction)

    def _redraw(self) -> None:
        shown = self._shown
        if shown is not None:
            self._present(shown.frame)

    def _update_hud(self, stats: Any) -> None:
        det = self._models.get("detector")
        cls = self._models.get("classifier")
        provider = det.model.provider_report.chosen_short.upper() if det else None
        names = " + ".join(m.label for m in (det, cls) if m is not None) or None
        fps = self._display.displayed_fps() if self._display is not None else 0.0
        self._hud_cache = HudInfo(
            fps=fps if fps > 0 else None,
            latency_ms=stats.latency_p50_ms if stats is not None else None,
            provider=provider,
            model=names,
        )

    def _fps(self) -> float:
        return self._source_info.fps if self._source_info is not None else 0.0

    def _report(self, event: PipelineEvent) -> None:
        level = _EVENT_LEVELS.get(event.kind, "warning")
        prefix = {
            "signal_lost": "Signal lost: ",
            "signal_restored": "Signal restored: ",
            "source_ended": "",
            "source_error": "Source failed: ",
            "inference_error": "AI error: ",
            "sink_error": "Recorder: ",
        }.get(event.kind, "")
        self.notifications.notify(f"{prefix}{event.message}", level, event.kind)

    def status(self) -> SessionStatus:
        """The figures of the status bar, now."""
        pipeline = self._pipeline
        det = self._models.get("detector")
        cls = self._models.get("classifier")
        loaded = [m for m in (det, cls) if m is not None]
        provider = " / ".join(dict.fromkeys(m.provider_summary for m in loaded))
        on_cpu = bool(loaded) and not all(m.on_gpu for m in loaded)
        models = tuple(f"{m.role}: {m.label}" for m in loaded)
        recorder = self._recorder
        elapsed = recorder.recorder.elapsed_s if recorder is not None else None
        if pipeline is None:
            return SessionStatus(
                provider=provider, on_cpu=on_cpu, models=models, ai_visible=self.ai_visible
            )
        stats = pipeline.stats()
        self._update_hud(stats)
        state = pipeline.ai_state
        ai_state, ai_reason = state.state, state.reason
        info = self._source_info
        if info is not None and info.recording is not None and self.use_saved_predictions:
            ai_state, ai_reason = "saved", "saved predictions of the recording"
        return SessionStatus(
            source_name=self._source_info.name if self._source_info else "",
            source_fps=stats.source_fps,
            displayed_fps=self._display.displayed_fps() if self._display is not None else 0.0,
            capture_fps=stats.capture_fps,
            inference_fps=stats.inference_fps,
            latency_p50_ms=stats.latency_p50_ms,
            latency_p95_ms=stats.latency_p95_ms,
            dropped_frames=stats.dropped_frames,
            dropped_predictions=max(stats.predictions - self._drawn_predictions, 0),
            provider=provider,
            on_cpu=on_cpu,
            models=models,
            ai_state=ai_state,
            ai_reason=ai_reason,
            ai_visible=self.ai_visible,
            recording=recorder is not None,
            record_elapsed_s=elapsed,
        )

    def _emit_status(self) -> None:
        now = time.monotonic()
        if (now - self._last_status) * 1000.0 >= STATUS_INTERVAL_MS:
            self._last_status = now
            self.status_changed.emit(self.status())

    def _emit_playback(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and (now - self._last_playback) * 1000.0 < PLAYBACK_INTERVAL_MS:
            return
        state = self.playback_state()
        if state is None or (not force and state == self._last_playback_state):
            return
        self._last_playback = now
        self._last_playback_state = state
        self.playback_changed.emit(state)
        if len(self._timeline) and not state.paused and now - self._last_timeline >= 0.5:
            self._last_timeline = now  # whole arrays are redrawn: twice a second is plenty
            self.timeline_changed.emit()

    # -- worker ---------------------------------------------------------------------------

    def _submit(self, work: Callable[[], Any], done: Callable[[Any], None], what: str) -> None:
        if self._closed:
            return
        self._pending.append((self._worker.submit(work), done, what))

    def _collect_results(self) -> None:
        if not self._pending:
            return
        still = []
        for future, done, what in self._pending:
            if not future.done():
                still.append((future, done, what))
                continue
            exc = future.exception()
            try:
                done(exc if exc is not None else future.result())
            except Exception as error:  # a bug in a callback must not stop the timer
                self.notifications.notify_exception(error, source=what)
        self._pending = still

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait for the worker's jobs and deliver their results (tests, scripted runs)."""
        deadline = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < deadline:
            for future, _, _ in list(self._pending):
                future.exception(timeout=max(0.0, deadline - time.monotonic()))
            self._collect_results()
        return not self._pending

    def close(self) -> None:
        """Stop the timer, recording, pipeline and worker; idempotent."""
        if self._closed:
            return
        self._timer.stop()
        self.close_source()
        self._closed = True
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        self._display = None
