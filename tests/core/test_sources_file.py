"""FileSource, ImageFolderSource, Pacer and open_source on real ffmpeg-made files."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from app.core.errors import ConfigError, SourceError
from app.core.frame import FrameSource
from app.core.sources import FileSource, ImageFolderSource, Pacer, open_source

CODECS = ("h264", "hevc", "mjpeg", "mpeg4")


def read_all(source) -> list:
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    return frames


@pytest.mark.parametrize("codec", CODECS)
def test_file_source_reads_every_frame_of_each_codec(test_videos, codec):
    with FileSource(test_videos[codec], realtime=False) as src:
        assert isinstance(src, FrameSource)
        assert src.fps == pytest.approx(30.0)
        assert src.frame_count == 60
        assert src.duration == pytest.approx(2.0)
        assert (src.width, src.height) == (160, 90)
        frames = read_all(src)
        assert src.read() is None  # stays at the end
    assert [f.index for f in frames] == list(range(60))
    assert all(f.image.shape == (90, 160, 3) and f.image.dtype == np.uint8 for f in frames)
    # Presentation times from the file (mkv stores milliseconds).
    assert [f.position_s for f in frames] == pytest.approx([i / 30 for i in range(60)], abs=1e-3)
    ts = [f.t for f in frames]
    assert ts == sorted(ts)
    # testsrc changes every frame: consecutive frames must differ (no duplicated frames).
    assert all(np.any(a.image != b.image) for a, b in zip(frames, frames[1:], strict=False))


@pytest.mark.parametrize("codec", ("h264", "hevc"))
def test_seek_and_step_are_frame_exact(test_videos, codec):
    with FileSource(test_videos[codec], realtime=False) as src:
        reference = [f.image for f in read_all(src)]
        for target in (45, 3, 0, 59, 17):
            assert src.seek(target) == target
            frame = src.read()
            assert frame.index == target
            assert np.array_equal(frame.image, reference[target])
        assert src.seek(10_000) == 59  # clamped
        assert src.seek(-5) == 0
        src.seek(20)
        src.read()
        back = src.step(-1)
        assert back.index == 19 and np.array_equal(back.image, reference[19])
        assert src.paused
        fwd = src.step(+2)
        assert fwd.index == 21 and np.array_equal(fwd.image, reference[21])
        # Paused: read() repeats the current frame.
        assert src.read().index == 21
        assert src.read().index == 21
        src.paused = False
        assert src.read().index == 22
        assert src.position == pytest.approx(22 / 30)


def test_step_at_the_ends_stays_inside(test_videos):
    with FileSource(test_videos["mjpeg"], realtime=False) as src:
        assert src.step(-1).index == 0  # nothing delivered yet: the first frame
        assert src.step(-1).index == 0
        src.seek(59)
        src.read()
        assert src.step(+1).index == 59


def test_speed_is_validated(test_videos):
    with FileSource(test_videos["mjpeg"], realtime=False) as src:
        for bad in (0.0, 0.2, 5.0, float("nan")):
            with pytest.raises(ConfigError, match="speed"):
                src.speed = bad
        src.speed = 0.25
        src.speed = 4.0
        assert src.speed == 4.0
    with pytest.raises(ConfigError):
        FileSource(test_videos["mjpeg"], speed=8.0)


def test_realtime_pacing_follows_fps_and_speed(test_videos):
    # Loose bounds only: pacing can never be faster than the schedule, and 10x slower
    # would mean it is broken even on a busy machine.
    with FileSource(test_videos["mjpeg"], realtime=True) as src:
        start = time.monotonic()
        for _ in range(10):
            src.read()
        paced = time.monotonic() - start
        src.speed = 4.0
        start = time.monotonic()
        for _ in range(12):
            src.read()
        fast = time.monotonic() - start
    assert 9 / 30 * 0.9 <= paced < 3.0
    assert 11 / 120 * 0.9 <= fast < 3.0


def test_pacer_schedule_does_not_accumulate_drift():
    now = [100.0]
    pacer = Pacer(10.0, clock=lambda: now[0])
    pacer.tick()  # anchor at 100.0
    for n in range(1, 50):
        # The consumer is always 30 ms late taking the tick; the schedule must not shift.
        now[0] += pacer.delay() + 0.03
        pacer.tick()
        assert pacer.delay() == pytest.approx(max(0.0, 100.0 + (n + 1) * 0.1 - now[0]))
    # Falling far behind restarts the schedule instead of bursting.
    now[0] += 5.0
    pacer.tick()
    assert pacer.delay() == pytest.approx(0.1)


def test_seek_from_another_thread_while_reading(test_videos):
    src = FileSource(test_videos["h264"], realtime=True, speed=4.0)
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop():
        try:
            while not stop.is_set():
                frame = src.read()
                if frame is None:
                    break
                seen.append(frame.index)
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=loop, name="test-reader")
    reader.start()
    time.sleep(0.1)
    src.seek(50)
    time.sleep(0.05)
    src.paused = True
    time.sleep(0.05)
    stop.set()
    reader.join(2.0)
    alive = reader.is_alive()
    src.close()
    assert not alive and not errors
    assert 50 in seen and seen[seen.index(50) :] == sorted(seen[seen.index(50) :])


def test_close_is_idempotent_and_ends_the_source(test_videos):
    src = FileSource(test_videos["mpeg4"], realtime=False)
    src.close()
    src.close()
    assert src.read() is None  # like every source: closed means ended
    with pytest.raises(SourceError, match="closed"):
        src.seek(3)


def test_close_from_another_thread_ends_a_waiting_read(test_videos):
    src = FileSource(test_videos["mjpeg"], realtime=True, speed=0.25)  # 133 ms per frame
    src.read()
    src.paused = True
    results = []
    reader = threading.Thread(target=lambda: results.append(src.read()), name="test-reader")
    reader.start()
    time.sleep(0.05)
    src.close()
    reader.join(2.0)
    assert not reader.is_alive() and results == [None]


@pytest.mark.parametrize("name", ["truncated_h264", "truncated_mjpeg", "corrupt_mjpeg"])
def test_damaged_file_plays_what_it_can_then_says_why(damaged_videos, name):
    with FileSource(damaged_videos[name], realtime=False) as src:
        frames = []
        with pytest.raises(SourceError) as info:
            while (frame := src.read()) is not None:
                frames.append(frame)
        message = str(info.value)
        assert "truncated or corrupt" in message
        assert f"ended at frame {len(frames)} of 60" in message
        assert "\n" not in message
        assert 0 < len(frames) < 60
        assert src.read() is None  # after the error: the end


@pytest.mark.parametrize("name", ["truncated_h264", "truncated_mjpeg"])
def test_seek_into_the_missing_part_fails_clearly_and_keeps_the_position(damaged_videos, name):
    with FileSource(damaged_videos[name], realtime=False) as src:
        src.seek(5)
        assert src.read().index == 5
        with pytest.raises(SourceError, match=r"cannot seek to frame 50 of 60: .*truncated"):
            src.seek(50)
        frame = src.read()
        assert frame.index == 6 and frame.position_s == pytest.approx(6 / 30, abs=1e-3)


def test_corrupt_h264_never_hangs_and_reports_any_loss(damaged_videos):
    # Whether H.264 conceals the damage depends on where the noise lands; either way every
    # decodable frame comes first, and a loss is reported, not hidden.
    with FileSource(damaged_videos["corrupt_h264"], realtime=False) as src:
        frames = []
        try:
            while (frame := src.read()) is not None:
                frames.append(frame)
        except SourceError as exc:
            assert f"ended at frame {len(frames)} of 60" in str(exc)
            assert 0 < len(frames) < 60
        else:
            assert len(frames) == 60
        assert [f.index for f in frames] == list(range(len(frames)))


def test_unreadable_files_fail_at_open(tmp_path, test_videos):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(SourceError, match="cannot open .*notes.mp4"):
        FileSource(text)
    with pytest.raises(SourceError, match="no such video file"):
        FileSource(tmp_path / "missing.mp4")
    head_cut = tmp_path / "head.mp4"
    head_cut.write_bytes(test_videos["h264"].read_bytes()[:300])
    with pytest.raises(SourceError):
        FileSource(head_cut)


def _write_images(folder, count, size=(48, 64)):
    folder.mkdir(exist_ok=True)
    for i in range(count):
        img = np.full((*size, 3), 10 * i, np.uint8)
        cv2.imwrite(str(folder / f"img{i}.png"), img)


def test_image_folder_natural_order_and_skips(tmp_path):
    folder = tmp_path / "imgs"
    _write_images(folder, 12)
    (folder / "img5.png").write_bytes(b"broken")
    (folder / "readme.txt").write_text("not an image")
    cv2.imwrite(str(folder / "extra.JPG"), np.zeros((48, 64, 3), np.uint8))
    with ImageFolderSource(folder, fps=20.0, realtime=False) as src:
        assert src.frame_count == 13
        names = [p.name for p in src.files]
        assert names[:3] == ["extra.JPG", "img0.png", "img1.png"] and names[-1] == "img11.png"
        frames = read_all(src)
        assert src.skipped == 1
        assert len(frames) == 12
        indices = [f.index for f in frames]
        assert names.index("img5.png") not in indices
        by_name = {names[f.index]: int(f.image[0, 0, 0]) for f in frames}
        assert by_name["img10.png"] == 100 and by_name["img4.png"] == 40
        assert frames[3].position_s == pytest.approx(frames[3].index / 20.0)
        src.seek(names.index("img7.png"))
        assert int(src.read().image[0, 0, 0]) == 70


def test_image_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"x{i}.jpg").write_bytes(b"garbage")
    with pytest.raises(SourceError, match="none of the 3 images"):
        ImageFolderSource(bad)
    with pytest.raises(SourceError, match="no such image folder"):
        ImageFolderSource(tmp_path / "nope")
    with pytest.raises(ConfigError):
        ImageFolderSource(bad, fps=0)


def test_open_source_dispatch(tmp_path, test_videos):
    folder = tmp_path / "imgs"
    _write_images(folder, 3)
    with open_source(str(test_videos["h264"]), realtime=False) as src:
        assert isinstance(src, FileSource) and not src.realtime
    with open_source(str(folder), fps=5) as src:
        assert isinstance(src, ImageFolderSource) and src.fps == 5 and src.realtime
    with open_source(str(folder / "img1.png"), realtime=False) as src:
        assert isinstance(src, ImageFolderSource) and src.frame_count == 1
    with pytest.raises(SourceError, match="expected 'phantom'.*device:N"):
        open_source(str(tmp_path / "nothing-here.mp4"))
    with pytest.raises(SourceError, match="phantom seed"):
        open_source("phantom:abc")
    with pytest.raises(SourceError, match="device spec"):
        open_source("device:")


def test_open_source_phantom():
    from app.core.phantom import PhantomConfig

    small = PhantomConfig(width=320, height=180, texture_scale=0.5)
    src = open_source("phantom:3", realtime=False, phantom_config=small)
    try:
        assert isinstance(src, FrameSource)
        frame = src.read()
        assert frame.index == 0 and frame.truth is not None
        assert frame.image.shape == (180, 320, 3)
        assert "3" in src.name
    finally:
        src.close()
