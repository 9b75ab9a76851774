"""The pipeline: latest-item slots, frame processing, threads that never hold the video back.

Thread leaks are caught by the autouse ``no_thread_leaks`` fixture in tests/core/conftest.py.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.core.config import EngineConfig
from app.core.errors import SignalLostError, SourceError
from app.core.frame import Frame
from app.core.geometry import iou, soft_mask
from app.core.inference import Classifier, Detector
from app.core.pipeline import FrameProcessor, LatestSlot, Pipeline
from tests.onnx_fixtures import SlowModel

BOX = (20.0, 24.0, 16.0, 12.0)


def blob_image(box=BOX) -> np.ndarray:
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 2] = np.round(soft_mask(box, (64, 64)) * 255).astype(np.uint8)
    return image


class ListSource:
    """A finite source of synthetic 64-px frames, optionally paced, with scripted failures."""

    def __init__(self, n, fps=30.0, realtime=False, script=None):
        self.name, self.fps, self.n = "list", fps, n
        self.realtime = realtime
        self.script = dict(script or {})  # read number -> exception to raise
        self.reads = 0
        self.index = 0
        self.closed = threading.Event()
        self.image = blob_image()

    def read(self):
        self.reads += 1
        if self.reads in self.script:
            raise self.script[self.reads]
        if self.index >= self.n or self.closed.is_set():
            return None
        if self.realtime and self.closed.wait(1.0 / self.fps):
            return None
        frame = Frame(self.image, self.index, time.monotonic(), self.index / self.fps)
        self.index += 1
        return frame

    def close(self):
        self.closed.set()


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


# -- LatestSlot ------------------------------------------------------------------------------
def test_slot_keeps_the_newest_and_counts_drops():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.get() is None and slot.take(timeout=0) is None
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken
    assert slot.get() == 2 and slot.take(timeout=0) == 2
    assert slot.take(timeout=0) is None  # nothing new
    assert slot.put(3) is False and slot.drops == 1 and slot.puts == 3


def test_slot_take_waits_for_a_put_and_close_wakes_waiters():
    slot: LatestSlot[str] = LatestSlot()
    got = []
    taker = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    taker.start()
    slot.put("x")
    taker.join(5)
    assert got == ["x"]
    waiter = threading.Thread(target=lambda: got.append(slot.take(timeout=30)))
    waiter.start()
    slot.close()
    waiter.join(5)
    assert not waiter.is_alive() and got == ["x", None]
    assert slot.wait_newer(0, timeout=0) == (1, "x")


# -- FrameProcessor (no threads) -------------------------------------------------------------
class Counting:
    def __init__(self, model):
        self.model, self.calls = model, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def run(self, batch):
        self.calls += 1
        return self.model.run(batch)


def test_processor_runs_detector_every_frame_and_classifier_every_n(detector, classifier):
    det, cls = Counting(detector), Counting(classifier)
    config = EngineConfig(classifier_every=3, roi="full", appear_frames=1)
    processor = FrameProcessor(Detector(det), Classifier(cls), config)
    preds = [processor.process(Frame(blob_image(), i, float(i))) for i in range(7)]
    assert det.calls == 7 and cls.calls == 3  # frames 0, 3, 6
    assert all(p.difficulty is not None for p in preds)
    assert [p.frame_index for p in preds] == list(range(7))
    assert iou(preds[-1].box, BOX) > 0.8 and preds[-1].roi == (0, 0, 64, 64)
    assert {"detector", "classifier", "total"} <= set(preds[0].timings_ms)
    assert "classifier" not in preds[1].timings_ms


def test_processor_uses_the_field_finder(detector):
    processor = FrameProcessor(
        Detector(detector),
        None,
        EngineConfig(appear_frames=1),
        field_finder=lambda image: (8, 8, 48, 48),
    )
    prediction = processor.process(Frame(blob_image(), 0, 0.0))
    assert prediction.roi == (8, 8, 48, 48) and prediction.box is not None


def test_processor_finds_the_field_by_default(detector):
    image = np.zeros((72, 128, 3), np.uint8)
    image[8:64, 32:96] = 90  # a bright window in a black border
    image[20:40, 50:70, 2] = 255
    prediction = FrameProcessor(Detector(detector), None).process(Frame(image, 0, 0.0))
    x, y, w, h = prediction.roi
    assert abs(x - 32) <= 2 and abs(y - 8) <= 2 and abs(w - 64) <= 3 and abs(h - 56) <= 3


# -- Pipeline ----------------------------------------------------------------------------------
def test_every_frame_reaches_the_sinks_and_the_end_is_reported(detector):
    seen = []
    source = ListSource(40)
    with Pipeline(
        source,
        Detector(detector),
        config=EngineConfig(roi="full"),
        frame_sinks=[lambda f, p: seen.append(f.index)],
    ) as pipeline:
        wait_until(lambda: pipeline.source_ended)
        wait_until(lambda: pipeline.latest_prediction() is not None)
        stats = pipeline.stats()
        kinds = [e.kind for e in pipeline.events()]
    assert seen == list(range(40))
    assert stats.frames_captured == 40 and stats.source_ended
    assert kinds == ["source_ended"]
    assert pipeline.latest_frame().index == 39
    assert source.closed.is_set() and not pipeline.running


def test_slow_model_skips_predictions_not_frames(detector):
    """A model at ~7 inferences/s on a 30 fps source: every frame is still displayed."""
    displayed, with_prediction = [], []
    source = ListSource(45, fps=30.0, realtime=True)
    slow = Detector(SlowModel(detector, 0.15))

    def display(frame, prediction):
        displayed.append(frame.index)
        if prediction is not None:
            with_prediction.append(prediction.frame_index <= frame.index)

    config = EngineConfig(roi="full", stale_ms=5000.0)
    with Pipeline(source, slow, config=config, frame_sinks=[display]) as pipeline:
        wait_until(lambda: pipeline.source_ended)
        stats = pipeline.stats()
    assert displayed == list(range(45))
    assert stats.frames_inferred < 45 and stats.dropped_frames > 0
    assert stats.frames_inferred + stats.dropped_frames <= 45
    assert with_prediction and all(with_prediction)  # predictions are never from the future


def test_every_frame_is_recorded_with_a_slow_model(detector, tmp_path):
    from app.core.recording import Recorder

    recorder = Recorder(tmp_path / "rec", fps=30.0, raw=True, overlay=False, queue_frames=64)
    recorder.start()
    source = ListSource(30, realtime=True)
    sink = lambda frame, prediction: recorder.submit(frame, None, prediction)  # noqa: E731
    with Pipeline(
        source,
        Detector(SlowModel(detector, 0.1)),
        config=EngineConfig(roi="full"),
        frame_sinks=[sink],
    ) as pipeline:
        wait_until(lambda: pipeline.source_ended)
    recorder.stop()
    assert recorder.frames_written == 30 and recorder.dropped == 0
    lines = (tmp_path / "rec" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 30


def test_stale_predictions_are_not_returned(detector):
    config = EngineConfig(roi="full", stale_ms=100.0)
    made = []
    with Pipeline(
        ListSource(3), Detector(detector), config=config, on_prediction=made.append
    ) as pipeline:
        wait_until(lambda: made and made[-1].frame_index == 2)  # the last frame is never skipped
        newest = pipeline.take_prediction(timeout=1)
        assert newest is made[-1]
        fresh = newest.frame_t + 0.05
        assert pipeline.latest_prediction(now=fresh) is newest
        assert pipeline.ai_state_at(fresh).state == "running"
        late = newest.frame_t + 0.2
        assert pipeline.latest_prediction(now=late) is None
        state = pipeline.ai_state_at(late)
        assert state.state == "paused" and state.reason == "source ended"


def test_ai_state_off_without_models():
    with Pipeline(ListSource(2)) as pipeline:
        wait_until(lambda: pipeline.source_ended)
        assert pipeline.ai_state.state == "off"
        assert pipeline.latest_prediction() is None
        assert pipeline.latest_frame().index == 1


def test_inference_errors_are_reported_once_and_the_video_goes_on():
    class Broken:
        def infer(self, image, roi):
            raise RuntimeError("model exploded")

    seen = []
    with Pipeline(
        ListSource(20, realtime=True),
        Broken(),
        config=EngineConfig(roi="full"),
        frame_sinks=[lambda f, p: seen.append(f.index)],
    ) as pipeline:
        wait_until(lambda: pipeline.source_ended)
        wait_until(lambda: pipeline.stats().errors > 1)
        events = pipeline.events()
        state = pipeline.ai_state
    assert seen == list(range(20))
    assert [e.kind for e in events].count("inference_error") == 1
    assert state.state == "paused" and "model exploded" in state.reason


def test_signal_loss_is_reported_and_recovered(detector):
    lost = SignalLostError("card: signal lost (blank picture)")
    source = ListSource(10, script={3: lost, 4: lost, 5: lost})
    events = []
    with Pipeline(
        source, Detector(detector), config=EngineConfig(roi="full"), on_event=events.append
    ) as pipeline:
        wait_until(lambda: pipeline.source_ended)
    assert [e.kind for e in events] == ["signal_lost", "signal_restored", "source_ended"]
    assert "blank picture" in events[0].message
    assert pipeline.stats().frames_captured == 10


def test_source_error_ends_capture_with_a_message():
    source = ListSource(10, script={4: SourceError("clip.mp4 is truncated after frame 2")})
    with Pipeline(source) as pipeline:
        wait_until(lambda: pipeline.source_ended)
        events = pipeline.events()
    assert [(e.kind, e.message) for e in events] == [
        ("source_error", "clip.mp4 is truncated after frame 2")
    ]


def test_a_failing_sink_does_not_stop_the_others():
    good = []

    def bad(frame, prediction):
        raise ValueError("disk full")

    with Pipeline(ListSource(5), frame_sinks=[bad, lambda f, p: good.append(f.index)]) as pipeline:
        wait_until(lambda: pipeline.source_ended)
        assert pipeline.stats().sink_errors == 5
    assert good == [0, 1, 2, 3, 4]


def test_close_is_idempotent_and_unblocks_a_waiting_source():
    source = ListSource(1000, fps=0.5, realtime=True)  # a read waits 2 s
    pipeline = Pipeline(source).start()
    time.sleep(0.05)
    started = time.monotonic()
    pipeline.close()
    pipeline.close()
    assert time.monotonic() - started < 1.5
    assert not pipeline.running
    with pytest.raises(RuntimeError, match="closed"):
        pipeline.start()


def test_models_can_be_swapped_and_ai_switched_off(detector):
    source = ListSource(200, fps=100.0, realtime=True)
    with Pipeline(source, config=EngineConfig(roi="full")) as pipeline:
        assert pipeline.ai_state.state == "off"
        pipeline.set_models(Detector(detector), None)
        wait_until(lambda: pipeline.stats().predictions > 0)
        pipeline.set_ai_enabled(False)
        assert pipeline.ai_state.reason == "AI switched off"
        count = pipeline.stats().frames_inferred
        time.sleep(0.1)
        assert pipeline.stats().frames_inferred <= count + 1


def test_a_slow_classifier_does_not_hold_the_detector_back(detector, classifier):
    source = ListSource(60, fps=60.0, realtime=True)
    slow_classifier = Classifier(SlowModel(classifier, 0.2))
    config = EngineConfig(roi="full")
    with Pipeline(source, Detector(detector), slow_classifier, config) as pipeline:
        wait_until(lambda: pipeline.source_ended)
        stats = pipeline.stats()
    # About 5 classifications fit in the second of video; the detector saw far more frames.
    assert stats.frames_inferred > 2 * max(stats.predictions, 1)
    assert stats.dropped_predictions > 0
