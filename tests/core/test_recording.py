"""Recorder, replay and frame export: crash safety, full/read-only disks, atomic writes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import app.core.atomic as atomic
from app.core.errors import ExportError, SourceError
from app.core.frame import Difficulty, Frame, FrameSource, Prediction
from app.core.recording import (
    MANIFEST,
    PREDICTIONS,
    Recorder,
    RecordingSource,
    export_frame,
    open_recording,
    prediction_record,
    sha256_file,
)
from app.core.sources import FileSource
from tests.core.videos import processor_frame

W, H = 96, 64


def marker_image(i: int, width: int = W, height: int = H) -> np.ndarray:
    """A frame whose bright bar's column encodes ``i``: survives lossy codecs."""
    img = np.full((height, width, 3), 30, np.uint8)
    x = 4 + (i * 3) % (width - 12)
    img[:, x : x + 6] = 230
    return img


def marker_of(image: np.ndarray, width: int = W) -> float:
    """The centre column of the bright bar in a decoded frame (see ``marker_image``)."""
    columns = np.flatnonzero(image.mean(axis=(0, 2))[:width] > 130)
    return float(columns.mean()) if columns.size else -1.0


def make_prediction(frame: Frame, lag: int = 1) -> Prediction:
    return Prediction(
        frame_index=max(frame.index - lag, 0),
        frame_t=frame.t - 0.02,
        ready_t=frame.t + 0.01234,
        box=(10.123, 20.456, 30.0, 15.5),
        peak=0.87654,
        roi=(0, 0, W, H),
        difficulty=Difficulty("difficult", {"easy": 0.31234, "difficult": 0.68766}),
    )


def record(out: Path, count: int, **kwargs) -> Recorder:
    kwargs.setdefault("fps", 20.0)
    kwargs.setdefault("segment_seconds", 0.5)
    kwargs.setdefault("queue_frames", 200)
    rec = Recorder(out, source_name="test", config={"stale_ms": 250}, **kwargs).start()
    t0 = time.monotonic()
    for i in range(count):
        frame = Frame(marker_image(i), i, t0 + i / 20.0)
        overlay = 255 - frame.image
        assert rec.submit(frame, overlay, make_prediction(frame) if i % 3 else None)
    rec.stop()
    return rec


# -- prediction_record -----------------------------------------------------------------------


def test_prediction_record_with_and_without_prediction():
    frame = Frame(marker_image(0), 7, t=100.5, position_s=0.25)
    pred = make_prediction(frame, lag=2)
    rec = prediction_record(frame, pred)
    assert rec == {
        "frame": 7,
        "t": 0.25,
        "box": [10.12, 20.46, 30.0, 15.5],
        "peak": 0.8765,
        "difficulty": {"label": "difficult", "probs": {"easy": 0.3123, "difficult": 0.6877}},
        "latency_ms": 32.34,
        "pred_frame": 5,
    }
    json.dumps(rec)
    assert prediction_record(frame, pred, latency_ms=12.345)["latency_ms"] == 12.35
    live = Frame(marker_image(0), 3, t=100.5)
    empty = prediction_record(live, None, t0=100.0)
    assert empty == {
        "frame": 3,
        "t": 0.5,
        "box": None,
        "peak": None,
        "difficulty": None,
        "latency_ms": None,
    }
    absent = Prediction(3, 100.5, 100.52, None, 0.01)
    assert prediction_record(live, absent, t0=100.0)["box"] is None
    assert prediction_record(live, absent)["t"] == 100.5  # no t0: raw monotonic time


# -- Recorder --------------------------------------------------------------------------------


def test_recording_writes_closed_segments_manifest_and_predictions(tmp_path):
    out = tmp_path / "rec"
    models = [{"name": "det", "version": "1.0", "path": "det.onnx", "sha256": "ab" * 32}]
    rec = record(out, 35, models=models)
    assert rec.error is None and rec.frames_written == 35 and rec.dropped == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["status"] == "closed"
    assert manifest["format"] == "ercp-assist-recording"
    assert manifest["source"] == "test" and manifest["fps"] == 20.0
    assert manifest["config"] == {"stale_ms": 250}
    assert manifest["models"] == models
    assert manifest["streams"] == ["raw", "overlay"]
    assert manifest["frames_written"] == 35
    assert manifest["dropped"] == {"queue_full": 0, "not_recording": 0, "index_gaps": 0}
    assert manifest["started"] and manifest["started_monotonic"] > 0 and manifest["app_version"]
    segments = manifest["segments"]
    assert [(s["start"], s["frames"]) for s in segments] == [(0, 10), (10, 10), (20, 10), (30, 5)]
    assert [(s["first_frame"], s["last_frame"]) for s in segments][1] == (10, 19)
    assert segments[0]["files"] == {"raw": "raw_0000.mp4", "overlay": "overlay_0000.mp4"}
    for seg in segments:
        for stream, name in seg["files"].items():
            with FileSource(out / name, realtime=False) as src:
                images = []
                while (f := src.read()) is not None:
                    images.append(f.image)
            assert len(images) == seg["frames"]
            for k, image in enumerate(images):
                i = seg["start"] + k
                decoded = image if stream == "raw" else 255 - image
                assert abs(marker_of(decoded) - marker_of(marker_image(i))) <= 1
    lines = (out / PREDICTIONS).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == list(range(35))
    assert records[0]["box"] is None and records[1]["pred_frame"] == 0
    assert records[1]["t"] == pytest.approx(0.05)  # capture time since the first frame
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*tmp"))


def test_submit_never_blocks_and_counts_drops(tmp_path, monkeypatch):
    real_write = Recorder._write

    def slow_write(self, *args):  # a very slow disk
        time.sleep(0.02)
        return real_write(self, *args)

    monkeypatch.setattr(Recorder, "_write", slow_write)
    rec = Recorder(tmp_path / "rec", fps=30, queue_frames=5, raw=True, overlay=False).start()
    start = time.monotonic()
    accepted = sum(rec.submit(Frame(marker_image(i), i, time.monotonic())) for i in range(100))
    submit_time = time.monotonic() - start
    rec.stop()
    # A blocking submit would wait ~2 s for the writer; 1 s is a loose bound.
    assert submit_time < 1.0
    assert rec.dropped == 100 - accepted > 0
    assert rec.frames_written == accepted
    manifest = json.loads((tmp_path / "rec" / MANIFEST).read_text())
    assert manifest["dropped"]["queue_full"] == rec.dropped
    assert rec.submit(Frame(marker_image(0), 0, 0.0)) is False  # after stop
    assert rec.dropped_not_recording == 1


def test_stop_is_idempotent_and_context_manager(tmp_path):
    with Recorder(tmp_path / "rec", fps=10, overlay=False) as rec:
        rec.submit(Frame(marker_image(0), 0, time.monotonic()))
    rec.stop()
    rec.close()
    assert json.loads((tmp_path / "rec" / MANIFEST).read_text())["status"] == "closed"
    assert rec.elapsed_s > 0
    Recorder(tmp_path / "never", fps=10).stop()  # never started: nothing to do


def _enospc_after(monkeypatch, calls_allowed: int):
    real = os.replace
    count = {"n": 0}

    def replace(src, dst):
        count["n"] += 1
        if count["n"] > calls_allowed:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    return count


def test_full_disk_stops_the_recording_and_keeps_earlier_segments(tmp_path, monkeypatch):
    out = tmp_path / "rec"
    errors = []
    # Manifest writes: 1 at start, then one per closed segment. Allow start + 2 segments.
    _enospc_after(monkeypatch, 3)
    rec = Recorder(
        out, fps=20, segment_seconds=0.5, queue_frames=200, on_error=errors.append
    ).start()
    t0 = time.monotonic()
    for i in range(60):
        rec.submit(Frame(marker_image(i), i, t0 + i / 20))
    deadline = time.monotonic() + 10
    while rec.error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rec.submit(Frame(marker_image(0), 99, t0)) is False
    rec.stop()  # never raises
    assert isinstance(rec.error, ExportError)
    assert errors == [rec.error]
    message = str(rec.error)
    assert "No space left on device" in message and "free some disk space" in message
    monkeypatch.undo()
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["status"] == "recording"  # the last manifest that reached the disk
    assert [s["frames"] for s in manifest["segments"]] == [10, 10]
    info = open_recording(out)
    assert not info.complete and info.frame_count == 20
    with info.open_source(realtime=False) as src:
        assert sum(1 for _ in iter(src.read, None)) == 20
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_nearly_full_disk_is_caught_before_a_segment(tmp_path, monkeypatch):
    import app.core.recording as recording

    class Usage:
        free = 5 << 20

    monkeypatch.setattr(recording.shutil, "disk_usage", lambda path: Usage())
    rec = Recorder(tmp_path / "rec", fps=20, overlay=False).start()
    rec.submit(Frame(marker_image(0), 0, time.monotonic()))
    rec.stop()
    assert rec.error is not None and "only 5 MiB free" in str(rec.error)
    assert not list((tmp_path / "rec").glob("raw_*"))


def test_unwritable_folder_fails_at_start_with_a_clear_message(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a path under a file cannot be created, even as root
    with pytest.raises(ExportError, match="cannot create the recording folder .*file/rec"):
        Recorder(blocker / "rec", fps=30).start()
    out = tmp_path / "rec"
    record(out, 3)
    with pytest.raises(ExportError, match="already holds a recording"):
        Recorder(out, fps=30).start()


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from app.core.frame import Frame
    from app.core.recording import Recorder
    from tests.core.test_recording import marker_image
    rec = Recorder(sys.argv[1], fps=30, segment_seconds=0.2, queue_frames=100).start()
    t0 = time.monotonic()
    i = 0
    while True:
        frame = Frame(marker_image(i), i, time.monotonic())
        rec.submit(frame, 255 - frame.image, None)
        i += 1
        time.sleep(0.01)
    """
)


def test_kill_9_loses_at_most_the_open_segment(tmp_path):
    out = tmp_path / "rec"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(out)], cwd=root, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        segments = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                segments = len(json.loads((out / MANIFEST).read_text())["segments"])
            except (OSError, ValueError):
                segments = 0
            if segments >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        assert segments >= 3
        time.sleep(0.07)  # into the middle of a segment
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stderr.close()
    info = open_recording(out)
    assert not info.complete
    assert len(info.segments) >= 3
    assert [s["start"] for s in info.segments] == [6 * k for k in range(len(info.segments))]
    # Every listed segment opens and holds what the manifest says.
    for seg in info.segments:
        for name in seg["files"].values():
            with FileSource(out / name, realtime=False) as src:
                assert src.frame_count == seg["frames"] == 6
    # Only the segment that was open can be missing from the manifest.
    listed = {name for s in info.segments for name in s["files"].values()}
    unlisted = {p.name for p in out.glob("*.mp4")} - listed
    assert len(unlisted) <= 2 and all(
        name.endswith(f"{len(info.segments):04d}.mp4") for name in unlisted
    )
    assert [p["frame"] for p in info.predictions] == list(range(info.frame_count))
    with info.open_source(realtime=False) as src:
        frames = list(iter(src.read, None))
    assert len(frames) == info.frame_count
    assert abs(marker_of(frames[-1].image) - marker_of(marker_image(info.frame_count - 1))) <= 1


# -- replay ----------------------------------------------------------------------------------


def test_recording_source_seeks_steps_and_plays_across_segments(tmp_path):
    out = tmp_path / "rec"
    record(out, 35)
    info = open_recording(out)
    assert info.complete and info.frame_count == 35 and info.fps == 20.0
    assert info.streams == ("raw", "overlay")
    assert len(info.predictions) == 35 and info.predictions[4]["pred_frame"] == 3
    src = info.open_source(realtime=False)
    assert isinstance(src, (FrameSource, RecordingSource))
    try:
        assert src.frame_count == 35 and src.duration == pytest.approx(1.75)
        frames = list(iter(src.read, None))
        assert [f.index for f in frames] == list(range(35))
        for f in frames:
            assert abs(marker_of(f.image) - marker_of(marker_image(f.index))) <= 1
        for target in (27, 3, 10, 9, 34):
            src.seek(target)
            frame = src.read()
            assert frame.index == target
            assert abs(marker_of(frame.image) - marker_of(marker_image(target))) <= 1
        src.seek(12)
        src.read()
        assert src.step(-3).index == 9  # back across a segment boundary
        assert src.step(+1).index == 10
        assert src.prediction(10) == info.predictions[10]
        src.speed = 2.0
        assert src.speed == 2.0
    finally:
        src.close()
    with info.open_source("overlay", realtime=False) as overlay:
        first = overlay.read()
        assert abs(marker_of(255 - first.image) - marker_of(marker_image(0))) <= 1


def test_open_recording_tolerates_a_torn_predictions_line(tmp_path):
    out = tmp_path / "rec"
    record(out, 12)
    with open(out / PREDICTIONS, "a") as fh:
        fh.write('{"frame": 12, "t": 0.6')  # cut by a crash
    lines = (out / PREDICTIONS).read_text().splitlines()
    lines[3] = "{garbage"
    (out / PREDICTIONS).write_text("\n".join(lines))
    info = open_recording(out)
    assert len(info.predictions) == 12
    assert info.predictions[3] is None and info.predictions[4]["frame"] == 4


def test_open_recording_errors(tmp_path):
    with pytest.raises(SourceError, match="not a recording"):
        open_recording(tmp_path)
    (tmp_path / MANIFEST).write_text('{"format": "something else"}')
    with pytest.raises(SourceError, match="not an ERCP Assist recording"):
        open_recording(tmp_path)
    out = tmp_path / "rec"
    record(out, 12)
    (out / "overlay_0001.mp4").unlink()
    with pytest.raises(SourceError, match="missing its segment overlay_0001.mp4"):
        open_recording(out)
    with pytest.raises(SourceError, match="no 'overlay' stream"):
        out2 = tmp_path / "rec2"
        record(out2, 3, overlay=False)
        open_recording(out2).open_source("overlay")


# -- export ----------------------------------------------------------------------------------


@pytest.fixture
def exam_frame():
    image, field, text = processor_frame(320, 180, seed=3)
    return Frame(image, 42, t=10.0, position_s=1.4), field, text


def test_export_writes_overlay_raw_and_sidecar_with_phi_masked(tmp_path, exam_frame):
    frame, field, text = exam_frame
    overlay = frame.image.copy()
    cv2.rectangle(overlay, (150, 60), (180, 90), (0, 255, 0), 2)
    pred = Prediction(40, 9.9, 10.01, (150.0, 60.0, 31.0, 31.0), 0.9, roi=field,
                      difficulty=Difficulty("easy", {"easy": 0.8, "difficult": 0.2}))  # fmt: skip
    models = [{"name": "det", "version": "2", "sha256": "cd" * 32, "path": "/x/det.onnx"}]
    result = export_frame(tmp_path / "exports", frame, overlay, pred, models=models)
    assert [p.name for p in result.paths] == [
        "frame_000042_overlay.png",
        "frame_000042_raw.png",
        "frame_000042.json",
    ]
    raw = cv2.imread(str(result.raw))
    shown = cv2.imread(str(result.overlay))
    assert not raw[text > 0].any() and not shown[text > 0].any()  # PHI is gone
    x, y, w, h = field
    assert np.array_equal(raw[y : y + h, x : x + w], frame.image[y : y + h, x : x + w])
    assert np.array_equal(shown[y : y + h, x : x + w], overlay[y : y + h, x : x + w])
    sidecar = json.loads(result.sidecar.read_text())
    assert sidecar["frame"] == 42 and sidecar["t"] == 1.4 and sidecar["pred_frame"] == 40
    assert sidecar["box"] == [150.0, 60.0, 31.0, 31.0] and sidecar["peak"] == 0.9
    assert sidecar["difficulty"] == {"label": "easy", "probs": {"easy": 0.8, "difficult": 0.2}}
    assert sidecar["models"] == [{"name": "det", "version": "2", "sha256": "cd" * 32}]
    assert sidecar["roi"] == list(field) and sidecar["phi_mask"] is True
    assert sidecar["image_size"] == [320, 180]


def test_export_without_phi_mask_keeps_the_border_and_never_overwrites(tmp_path, exam_frame):
    frame, field, text = exam_frame
    first = export_frame(tmp_path, frame, None, None, phi_mask=False)
    raw = cv2.imread(str(first.raw))
    assert np.array_equal(raw, frame.image)
    assert json.loads(first.sidecar.read_text())["roi"] is None
    before = first.raw.read_bytes()
    second = export_frame(tmp_path, frame, None, None)  # PHI mask found by find_field
    assert second.raw.name == "frame_000042_2_raw.png"
    assert first.raw.read_bytes() == before
    assert not cv2.imread(str(second.raw))[text > 0].any()
    assert json.loads(second.sidecar.read_text())["roi"] == list(field)


def test_failed_export_leaves_no_partial_files_and_earlier_ones_intact(
    tmp_path, exam_frame, monkeypatch
):
    frame, _, _ = exam_frame
    earlier = export_frame(tmp_path, frame, None, None, stem="earlier")
    contents = {p: p.read_bytes() for p in earlier.paths}
    _enospc_after(monkeypatch, 2)  # raw and overlay succeed, the sidecar fails
    with pytest.raises(ExportError, match="No space left on device.*free some disk space"):
        export_frame(tmp_path, frame, None, None, stem="new")
    monkeypatch.undo()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(p.name for p in earlier.paths)  # no new_* and no temp files
    assert all(p.read_bytes() == data for p, data in contents.items())


def test_export_to_an_unwritable_place(tmp_path, exam_frame):
    frame, _, _ = exam_frame
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot create the export folder"):
        export_frame(blocker / "out", frame, None, None)
    with pytest.raises(ExportError, match="overlay image is 10x10"):
        export_frame(tmp_path, frame, np.zeros((10, 10, 3), np.uint8), None)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "manifest.json"
    atomic.atomic_write_json(target, {"v": 1})
    _enospc_after(monkeypatch, 0)
    with pytest.raises(ExportError, match=r"cannot write .*manifest.json: No space left"):
        atomic.atomic_write_json(target, {"v": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    with pytest.raises(ExportError, match="encode"):
        atomic.atomic_write_png(tmp_path / "x.png", np.zeros((4, 4, 3), np.float64))


def test_sha256_file(tmp_path):
    path = tmp_path / "model.onnx"
    data = os.urandom(3 << 20)  # more than one chunk
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_recordings_are_phi_masked_by_default(tmp_path):
    image, field, text = processor_frame(320, 180, seed=4)
    for phi_mask in (True, False):
        out = tmp_path / f"rec_{phi_mask}"
        rec = Recorder(out, fps=10, phi_mask=phi_mask).start()
        for i in range(3):
            rec.submit(Frame(image, i, time.monotonic()), image.copy(), None)
        rec.stop()
        info = open_recording(out)
        assert info.manifest["phi_mask"] is phi_mask
        for stream in ("raw", "overlay"):
            with info.open_source(stream, realtime=False) as src:
                decoded = src.read().image
            text_level = decoded[text > 0].mean()
            if phi_mask:
                assert text_level < 8  # lossy codec: near black, no readable text
                assert info.segments[0]["roi"] == list(field)
            else:
                assert text_level > 100


def test_a_bad_frame_stops_the_recording_with_an_error_not_a_dead_thread(tmp_path):
    errors = []
    rec = Recorder(tmp_path / "rec", fps=10, overlay=False, on_error=errors.append).start()
    rec.submit(Frame(marker_image(0), 0, time.monotonic()))
    rec.submit(Frame(np.zeros((H, W, 3), np.float64), 1, time.monotonic()))  # not uint8
    rec.stop()
    assert rec.error is not None and errors == [rec.error]
    assert "failed" in str(rec.error)
    assert json.loads((tmp_path / "rec" / MANIFEST).read_text())["status"] == "failed"


def test_a_frame_size_change_starts_a_new_segment(tmp_path):
    rec = Recorder(tmp_path / "rec", fps=10, segment_seconds=10).start()
    t0 = time.monotonic()
    for i in range(6):
        image = marker_image(i) if i < 3 else marker_image(i, 128, 72)
        # An overlay of the wrong size is fitted to the frame, not an error.
        rec.submit(Frame(image, i, t0 + i / 10), np.zeros((10, 10, 3), np.uint8))
    rec.stop()
    info = open_recording(tmp_path / "rec")
    assert [(s["width"], s["height"], s["frames"]) for s in info.segments] == [
        (W, H, 3),
        (128, 72, 3),
    ]
    with info.open_source(realtime=False) as src:
        shapes = [f.image.shape for f in iter(src.read, None)]
    assert shapes == [(H, W, 3)] * 3 + [(72, 128, 3)] * 3


def test_start_fails_cleanly_when_the_manifest_cannot_be_written(tmp_path, monkeypatch):
    _enospc_after(monkeypatch, 0)
    rec = Recorder(tmp_path / "rec", fps=10)
    with pytest.raises(ExportError, match="No space left"):
        rec.start()
    assert not rec.running and rec.submit(Frame(marker_image(0), 0, 0.0)) is False
    rec.stop()
