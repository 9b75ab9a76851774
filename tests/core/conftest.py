"""Shared core fixtures: a thread-leak check on every test, test videos made with ffmpeg."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.core import videos

#: How long a test's threads get to finish after it returns (close() joins with timeouts).
THREAD_GRACE_S = 3.0


@pytest.fixture(autouse=True)
def no_thread_leaks():
    """Fail a test that leaves a thread running (napari-style hygiene).

    Threads started during the test get ``THREAD_GRACE_S`` to end after it returns.
    """
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + THREAD_GRACE_S
    while True:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if leaked:
        pytest.fail(f"test left threads running: {sorted(t.name for t in leaked)}")


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    """A session folder of test videos."""
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def test_videos(video_dir) -> dict[str, Path]:
    """One 60-frame 160x90 30 fps testsrc2 video per codec: h264 mp4, hevc mkv, mjpeg avi,
    mpeg4 mov. Skips when ffmpeg is missing."""
    if videos.FFMPEG is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg); it makes the test videos")
    return {
        spec.name: videos.make_video(video_dir / f"{spec.name}{spec.suffix}", spec)
        for spec in videos.VIDEO_SPECS
    }


@pytest.fixture(scope="session")
def damaged_videos(test_videos, video_dir) -> dict[str, Path]:
    """Truncated (cut at 60 %) and corrupt (5 % noise at 40 %) copies of the H.264 and MJPEG
    videos: keys ``truncated_h264``, ``corrupt_mjpeg``..."""
    out = {}
    for name in ("h264", "mjpeg"):
        src = test_videos[name]
        out[f"truncated_{name}"] = videos.truncated_copy(
            src, video_dir / f"truncated_{name}{src.suffix}"
        )
        out[f"corrupt_{name}"] = videos.corrupt_copy(src, video_dir / f"corrupt_{name}{src.suffix}")
    return out
