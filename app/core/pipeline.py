"""The real-time pipeline: capture -> [latest frame] -> inference -> [latest prediction].

The video path never waits for AI: the capture thread hands every frame to the frame sinks
(display, recorder) and overwrites the one-item frame slot; the inference thread always takes
the newest frame, so a slow model skips frames instead of delaying them. The inference thread
only finds the field, crops/resizes and runs the detector; a postprocess thread turns its
output into a Prediction (box, smoothing, classifier), so the detector runs back to back and
a slow classifier never holds it up. Every hand-over is a one-item slot. Nothing here
imports Qt; the UI polls ``latest_frame()`` / ``latest_prediction()`` from a timer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from app.core.config import EngineConfig
from app.core.errors import SignalLostError, SourceError
from app.core.frame import Difficulty, Frame, FrameSource, Prediction
from app.core.inference import Classifier, Detector, RawDetection, Rect
from app.core.smoothing import Smoother, SmoothingParams

log = logging.getLogger(__name__)

T = TypeVar("T")
#: A frame sink gets every captured frame and the newest non-stale prediction (or None). It is
#: called on the capture thread, so it must not block: store, enqueue or drop.
FrameSink = Callable[[Frame, "Prediction | None"], None]
JOIN_TIMEOUT_S = 3.0


class LatestSlot(Generic[T]):
    """Holds the newest item only. A put overwrites; an overwritten unread item is a drop.

    ``get()`` peeks (any number of readers, e.g. the display). ``take()`` waits for an item
    newer than the last one taken (one consumer, e.g. the inference thread) using a
    Condition, so no one polls with sleep.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._seq = 0
        self._taken = 0
        self._closed = False
        self.puts = 0
        self.drops = 0

    def put(self, item: T) -> bool:
        """Store ``item``; True if it overwrote one that was never taken."""
        with self._cond:
            dropped = self._seq != self._taken
            if dropped:
                self.drops += 1
            self._item = item
            self._seq += 1
            self.puts += 1
            self._cond.notify_all()
            return dropped

    def get(self) -> T | None:
        """The newest item (without taking it), or None if there was none yet."""
        with self._cond:
            return self._item

    @property
    def seq(self) -> int:
        """How many items were ever put."""
        with self._cond:
            return self._seq

    def take(self, timeout: float | None = None) -> T | None:
        """Wait up to ``timeout`` s for an item not taken yet, take it and return it.

        Returns None on timeout or after ``close()``.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq != self._taken or self._closed, timeout):
                return None
            if self._seq == self._taken:
                return None
            self._taken = self._seq
            return self._item

    def wait_newer(self, seq: int, timeout: float | None = None) -> tuple[int, T | None]:
        """Wait until more than ``seq`` items were put; return ``(seq, newest)`` (peek)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > seq or self._closed, timeout)
            return self._seq, self._item

    def close(self) -> None:
        """Wake every waiter; later waits return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass(frozen=True)
class PipelineEvent:
    """Something the UI should tell the user.

    ``kind`` is one of ``signal_lost``, ``signal_restored``, ``source_error``,
    ``source_ended``, ``inference_error``, ``sink_error``.
    """

    kind: str
    message: str
    t: float


@dataclass(frozen=True)
class AiState:
    """Whether AI output is on screen: ``"off"``, ``"running"`` or ``"paused"``, and why."""

    state: str
    reason: str = ""


@dataclass(frozen=True)
class PipelineStats:
    """Live figures over the last ``config.stats_window`` frames / predictions.

    Attributes:
        source_fps: the rate the source declares.
        capture_fps: frames per second actually captured.
        inference_fps: predictions per second.
        latency_p50_ms, latency_p95_ms: capture -> prediction ready (None before any).
        frames_captured: frames read from the source.
        frames_inferred: frames the detector (or, without one, the pipeline) began on.
        predictions: predictions published.
        dropped_frames: captured frames the inference skipped (it was busy); these frames
            were still displayed and recorded.
        dropped_predictions: detector results discarded because the postprocess stage
            (box, smoothing, classifier) was still busy with an earlier one.
        errors: inference errors.
        sink_errors: exceptions raised by frame sinks.
        running: the threads are running.
        source_ended: a finite source delivered its last frame (or failed).
    """

    source_fps: float
    capture_fps: float
    inference_fps: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    frames_captured: int
    frames_inferred: int
    predictions: int
    dropped_frames: int
    dropped_predictions: int
    errors: int
    sink_errors: int
    running: bool
    source_ended: bool


def _rate(times: deque) -> float:
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


@dataclass(frozen=True, eq=False)
class PendingFrame:
    """A frame between the two halves of ``FrameProcessor``: field found, detector run.

    Attributes:
        frame: the frame.
        roi: its endoscopic field.
        raw: the detector's raw output, or None without a detector.
        timings_ms: ``roi``, ``preprocess``, ``detector`` so far.
        started: ``time.perf_counter()`` when processing began.
        processor: the processor that began it (models may be swapped meanwhile).
    """

    frame: Frame
    roi: Rect
    raw: RawDetection | None
    timings_ms: dict[str, float]
    started: float
    processor: FrameProcessor


class FrameProcessor:
    """One frame -> one Prediction: field ROI, detector, classifier every N, smoothing.

    ``process(frame)`` does it all; it is what ``ercp-assist process`` calls, so offline and
    live output are made the same way. The pipeline splits it in two so that the detector
    can run back to back: ``begin`` (field ROI, crop/resize, detector) on the inference
    thread, ``finish`` (heatmap -> box, smoothing, classifier) on the postprocess thread.
    ``begin`` and ``finish`` each keep their own state, so each may run on its own thread,
    but neither may run on two threads at once.

    Args:
        detector: the ampulla detector, or None.
        classifier: the difficulty classifier, or None.
        config: engine settings (ROI mode, classifier cadence, smoothing, thresholds).
        field_finder: ``image -> (x, y, w, h)`` of the endoscopic field; None builds the
            default (``app.core.roi.FieldTracker``) when ``config.roi == "auto"``.
    """

    def __init__(
        self,
        detector: Detector | None = None,
        classifier: Classifier | None = None,
        config: EngineConfig | None = None,
        field_finder: Callable[[np.ndarray], Rect] | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.detector = detector
        self.classifier = classifier
        self.smoother = Smoother(SmoothingParams.from_config(self.config))
        self._field_finder = field_finder
        if field_finder is None and self.config.roi == "auto":
            self._field_finder = _default_field_finder()
        self._count = 0
        self._last_class: tuple[Difficulty, np.ndarray | None, Rect | None] | None = None

    def reset(self) -> None:
        """Forget smoothing and classifier history (after a seek or a source change)."""
        self.smoother.reset()
        self._count = 0
        self._last_class = None

    def find_field(self, image: np.ndarray) -> Rect:
        """The endoscopic field of ``image`` (the whole frame with ``roi = "full"``)."""
        if self._field_finder is None:
            return 0, 0, int(image.shape[1]), int(image.shape[0])
        x, y, w, h = self._field_finder(image)
        return int(x), int(y), int(w), int(h)

    def process(self, frame: Frame) -> Prediction:
        """Run the models on one frame and return its (smoothed) prediction."""
        return self.finish(self.begin(frame))

    def begin(self, frame: Frame) -> PendingFrame:
        """First half: find the field, crop/resize and run the detector."""
        t0 = time.perf_counter()
        roi = self.find_field(frame.image)
        timings = {"roi": (time.perf_counter() - t0) * 1000.0}
        raw = None
        if self.detector is not None:
            raw = self.detector.infer(frame.image, roi)
            timings.update(raw.timings_ms)
        return PendingFrame(frame, roi, raw, timings, t0, self)

    def finish(self, pending: PendingFrame) -> Prediction:
        """Second half: heatmap -> box, smoothing, the classifier every N frames."""
        frame, roi = pending.frame, pending.roi
        timings = dict(pending.timings_ms)
        raw_box, peak, heatmap = None, 0.0, None
        if pending.raw is not None and self.detector is not None:
            det = self.detector.finish(pending.raw)
            raw_box, peak, heatmap = det.box, det.peak, det.heatmap
            timings["postprocess"] = det.timings_ms["postprocess"]
        t1 = time.perf_counter()
        box = self.smoother.box(raw_box)
        timings["smoothing"] = (time.perf_counter() - t1) * 1000.0
        difficulty = cam = cam_region = None
        if self.classifier is not None:
            if self._last_class is None or self._count % self.config.classifier_every == 0:
                result = self.classifier.predict(frame.image, roi, box)
                difficulty = self.smoother.difficulty(result.probs)
                cam, cam_region = result.cam, result.cam_region
                timings.update(result.timings_ms)
                self._last_class = (difficulty, cam, cam_region)
            else:
                difficulty, cam, cam_region = self._last_class
        self._count += 1
        timings["total"] = (time.perf_counter() - pending.started) * 1000.0
        return Prediction(
            frame_index=frame.index,
            frame_t=frame.t,
            ready_t=time.monotonic(),
            box=box,
            peak=peak,
            heatmap=heatmap,
            roi=roi,
            difficulty=difficulty,
            cam=cam,
            cam_region=cam_region,
            timings_ms=timings,
        )


def _default_field_finder() -> Callable[[np.ndarray], Rect] | None:
    """``app.core.roi``'s tracker, adapted to ``image -> rect``; None if it is unavailable."""
    try:
        from app.core import roi as roi_module
    except ImportError:
        log.warning("app.core.roi is not available: models will see the whole frame")
        return None
    tracker_cls = getattr(roi_module, "FieldTracker", None)
    if tracker_cls is not None:
        tracker = tracker_cls()
        for name in ("update", "track", "__call__"):
            method = getattr(tracker, name, None)
            if callable(method):
                return method
    return roi_module.find_field


class Pipeline:
    """Capture, inference and postprocess threads around one frame source.

    The pipeline owns the source: ``close()`` closes it. It runs until closed; a finite source
    that ends leaves the last frame and prediction in place and reports ``source_ended``.

    Args:
        source: any ``FrameSource``.
        detector: the detector, or None (video only).
        classifier: the classifier, or None.
        config: engine settings.
        frame_sinks: callables ``sink(frame, prediction_or_None)`` given every frame on the
            capture thread; they must not block.
        on_event: called with each PipelineEvent (on a worker thread; the UI must hand it to
            its own thread).
        on_prediction: called with each Prediction on the inference thread (keep it cheap).
        field_finder: override of the endoscopic-field finder (tests, fixed layouts).
    """

    def __init__(
        self,
        source: FrameSource,
        detector: Detector | None = None,
        classifier: Classifier | None = None,
        config: EngineConfig | None = None,
        *,
        frame_sinks: Iterable[FrameSink] = (),
        on_event: Callable[[PipelineEvent], None] | None = None,
        on_prediction: Callable[[Prediction], None] | None = None,
        field_finder: Callable[[np.ndarray], Rect] | None = None,
    ) -> None:
        self.source = source
        self.config = config or EngineConfig()
        self._field_finder = field_finder
        self._lock = threading.Lock()
        self._processor = self._make_processor(detector, classifier)
        self._ai_enabled = True
        self._sinks: tuple[FrameSink, ...] = tuple(frame_sinks)
        self._on_event = on_event
        self._on_prediction = on_prediction
        self._frames: LatestSlot[Frame] = LatestSlot()
        self._pending: LatestSlot[PendingFrame] = LatestSlot()
        self._predictions: LatestSlot[Prediction] = LatestSlot()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._closed = False
        self._ended = False
        self._signal_lost: str | None = None
        self._last_error: tuple[float, str] | None = None
        self._events: deque[PipelineEvent] = deque(maxlen=200)
        window = self.config.stats_window
        self._capture_times: deque[float] = deque(maxlen=window)
        self._ready_times: deque[float] = deque(maxlen=window)
        self._latencies: deque[float] = deque(maxlen=window)
        self._frames_captured = 0
        self._frames_inferred = 0
        self._errors = 0
        self._sink_errors = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Pipeline:
        """Start the capture and inference threads (once)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("pipeline is closed; make a new one")
            if self._started:
                return self
            self._started = True
        name = getattr(self.source, "name", "source")
        self._threads = [
            threading.Thread(target=self._capture_loop, name=f"capture[{name}]", daemon=True),
            threading.Thread(target=self._inference_loop, name=f"inference[{name}]", daemon=True),
            threading.Thread(target=self._post_loop, name=f"postprocess[{name}]", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop both threads, close the source and join; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._frames.close()
        self._pending.close()
        try:
            self.source.close()  # unblocks a capture thread waiting in read()
        except Exception as exc:  # closing must not fail the caller
            log.warning("closing %s failed: %s", getattr(self.source, "name", "source"), exc)
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.error("thread %s did not stop within %.0f s", thread.name, JOIN_TIMEOUT_S)

    stop = close

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """True while the threads run."""
        return self._started and not self._closed

    @property
    def source_ended(self) -> bool:
        """True once a finite source delivered its last frame or failed."""
        return self._ended

    # -- models -------------------------------------------------------------------------------
    def _make_processor(self, detector, classifier) -> FrameProcessor | None:
        if detector is None and classifier is None:
            return None
        return FrameProcessor(detector, classifier, self.config, self._field_finder)

    def set_models(self, detector: Detector | None, classifier: Classifier | None) -> None:
        """Swap the models (takes effect from the next inferred frame)."""
        processor = self._make_processor(detector, classifier)
        with self._lock:
            self._processor = processor

    def set_ai_enabled(self, enabled: bool) -> None:
        """Switch inference on or off; video keeps flowing either way."""
        self._ai_enabled = bool(enabled)

    def reset_smoothing(self) -> None:
        """Forget smoothing history (call after a seek)."""
        with self._lock:
            if self._processor is not None:
                self._processor.reset()

    # -- sinks and events ---------------------------------------------------------------------
    def add_frame_sink(self, sink: FrameSink) -> None:
        """Add a frame sink (safe while running)."""
        with self._lock:
            self._sinks = (*self._sinks, sink)

    def remove_frame_sink(self, sink: FrameSink) -> None:
        """Remove a frame sink (safe while running)."""
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)

    def events(self) -> list[PipelineEvent]:
        """Take the events reported since the last call (at most the newest 200)."""
        with self._lock:
            out = list(self._events)
            self._events.clear()
        return out

    def _event(self, kind: str, message: str) -> None:
        event = PipelineEvent(kind, message, time.monotonic())
        log.log(
            logging.INFO if kind in ("source_ended", "signal_restored") else logging.WARNING,
            "%s: %s",
            kind,
            message,
        )
        with self._lock:
            self._events.append(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("on_event callback failed")

    # -- outputs ------------------------------------------------------------------------------
    def latest_frame(self) -> Frame | None:
        """The newest captured frame (None before the first)."""
        return self._frames.get()

    def wait_frame(self, after: int = 0, timeout: float | None = None) -> tuple[int, Frame | None]:
        """Wait until more than ``after`` frames were captured; return ``(count, newest)``."""
        return self._frames.wait_newer(after, timeout)

    def latest_prediction(self, now: float | None = None) -> Prediction | None:
        """The newest prediction, or None if there is none or it is stale.

        Stale means its source frame is older than ``config.stale_ms`` at ``now``
        (``time.monotonic()`` by default).
        """
        prediction = self._predictions.get()
        if prediction is None:
            return None
        now = time.monotonic() if now is None else now
        if prediction.age_ms(now) > self.config.stale_ms:
            return None
        return prediction

    def take_prediction(self, timeout: float | None = None) -> Prediction | None:
        """Wait for a prediction not taken yet (one consumer only; e.g. a writer)."""
        return self._predictions.take(timeout)

    @property
    def ai_state(self) -> AiState:
        """Whether predictions are on screen, and if not, why."""
        return self.ai_state_at()

    def ai_state_at(self, now: float | None = None) -> AiState:
        """``ai_state`` evaluated at monotonic time ``now``."""
        now = time.monotonic() if now is None else now
        if self._processor is None:
            return AiState("off", "no model loaded")
        if not self._ai_enabled:
            return AiState("off", "AI switched off")
        if not self.running:
            return AiState("paused", "pipeline not running")
        if self._signal_lost:
            return AiState("paused", "signal lost")
        latest = self._predictions.get()
        if self._last_error is not None and (
            latest is None or latest.ready_t < self._last_error[0]
        ):
            return AiState("paused", f"inference error: {self._last_error[1]}")
        if latest is None:
            return AiState("paused", "waiting for the first prediction")
        age = latest.age_ms(now)
        if age > self.config.stale_ms:
            if self._ended:
                return AiState("paused", "source ended")
            return AiState(
                "paused", f"prediction {age:.0f} ms old (limit {self.config.stale_ms:.0f} ms)"
            )
        return AiState("running")

    def stats(self) -> PipelineStats:
        """A snapshot of the live figures."""
        with self._lock:
            latencies = list(self._latencies)
            capture_fps = _rate(self._capture_times)
            inference_fps = _rate(self._ready_times)
        p50 = p95 = None
        if latencies:
            p50, p95 = (float(v) for v in np.percentile(latencies, [50, 95]))
        return PipelineStats(
            source_fps=float(getattr(self.source, "fps", 0.0) or 0.0),
            capture_fps=capture_fps,
            inference_fps=inference_fps,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            frames_captured=self._frames_captured,
            frames_inferred=self._frames_inferred,
            predictions=self._predictions.puts,
            dropped_frames=self._frames.drops,
            dropped_predictions=self._pending.drops,
            errors=self._errors,
            sink_errors=self._sink_errors,
            running=self.running,
            source_ended=self._ended,
        )

    # -- threads ------------------------------------------------------------------------------
    def _read(self) -> tuple[bool, Frame | None]:
        """One read from the source: ``(keep_going, frame)``."""
        try:
            frame = self.source.read()
        except SignalLostError as exc:
            if self._stop.is_set():
                return False, None
            if self._signal_lost is None:
                self._signal_lost = str(exc)
                self._event("signal_lost", str(exc))
            # A live source waits inside read(); this only stops a misbehaving one spinning.
            self._stop.wait(0.01)
            return True, None
        except SourceError as exc:
            if not self._stop.is_set():
                self._ended = True
                self._event("source_error", str(exc))
            return False, None
        except Exception as exc:  # a source bug must not kill the app silently
            if not self._stop.is_set():
                self._ended = True
                self._event("source_error", f"{type(exc).__name__}: {exc}")
            return False, None
        if frame is None:
            if not self._stop.is_set():
                self._ended = True
                self._event("source_ended", f"{getattr(self.source, 'name', 'source')} ended")
            return False, None
        if self._signal_lost is not None:
            self._signal_lost = None
            self._event("signal_restored", f"{getattr(self.source, 'name', 'source')} is back")
        return True, frame

    def _capture_loop(self) -> None:
        while not self._stop.is_set():
            keep_going, frame = self._read()
            if not keep_going:
                break
            if frame is None:
                continue
            self._frames.put(frame)
            with self._lock:
                self._frames_captured += 1
                self._capture_times.append(frame.t)
                sinks = self._sinks
            if sinks:
                prediction = self.latest_prediction(frame.t)
                for sink in sinks:
                    try:
                        sink(frame, prediction)
                    except Exception as exc:
                        self._sink_errors += 1
                        self._event("sink_error", f"{getattr(sink, '__name__', sink)}: {exc}")

    def _inference_loop(self) -> None:
        """Newest frame -> field ROI, crop/resize, detector -> the pending slot."""
        while not self._stop.is_set():
            frame = self._frames.take(timeout=0.25)
            if frame is None:
                continue
            with self._lock:
                processor = self._processor
            if processor is None or not self._ai_enabled:
                continue
            try:
                pending = processor.begin(frame)
            except Exception as exc:
                self._inference_failed(exc)
                continue
            with self._lock:
                self._frames_inferred += 1
            self._pending.put(pending)

    def _post_loop(self) -> None:
        """Pending frame -> box, smoothing, classifier -> the latest prediction."""
        while not self._stop.is_set():
            pending = self._pending.take(timeout=0.25)
            if pending is None:
                continue
            try:
                prediction = pending.processor.finish(pending)
            except Exception as exc:
                self._inference_failed(exc)
                continue
            self._predictions.put(prediction)
            with self._lock:
                self._ready_times.append(prediction.ready_t)
                self._latencies.append(prediction.latency_ms)
            if self._on_prediction is not None:
                try:
                    self._on_prediction(prediction)
                except Exception:
                    log.exception("on_prediction callback failed")

    def _inference_failed(self, exc: Exception) -> None:
        with self._lock:
            self._errors += 1
        message = f"{type(exc).__name__}: {exc}"
        first = self._last_error is None or self._last_error[1] != message
        self._last_error = (time.monotonic(), message)
        if first:  # do not flood the user with the same error every frame
            self._event("inference_error", message)
