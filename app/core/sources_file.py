"""Finite, seekable frame sources: video files (OpenCV FFmpeg backend) and image folders."""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.core.errors import ConfigError, SourceError
from app.core.frame import Frame

log = logging.getLogger(__name__)

#: Replay speed limits (multiples of the file's frame rate).
MIN_SPEED, MAX_SPEED = 0.25, 4.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".ts")
#: cv2.VideoCapture.read() may fail once or twice and then deliver the frames still buffered
#: in the decoder (seen on truncated H.264), so a failure is retried before calling it the end.
_READ_RETRIES = 3


class Pacer:
    """Releases ticks at ``rate`` per second on a fixed schedule, so delays do not accumulate.

    Tick n is due at ``anchor + n / rate``. When the consumer falls behind by more than
    ``max_lag_s`` (it was paused, or slow), the schedule restarts instead of bursting.
    """

    def __init__(
        self,
        rate: float,
        *,
        max_lag_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = float(rate)
        self._max_lag_s = max_lag_s
        self._clock = clock
        self._anchor: float | None = None
        self._ticks = 0

    @property
    def rate(self) -> float:
        """Ticks per second."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        self._rate = float(value)
        self.reset()

    def reset(self) -> None:
        """Restart the schedule at the next tick (after a seek, a speed change or a pause)."""
        self._anchor = None

    def delay(self) -> float:
        """Seconds until the next tick is due (0 if due now); call ``tick()`` when it is taken."""
        if self._anchor is None:
            return 0.0
        due = self._anchor + (self._ticks + 1) / self._rate
        return max(0.0, due - self._clock())

    def tick(self) -> None:
        """Take the next tick (call when it is due)."""
        now = self._clock()
        if self._anchor is None:
            self._anchor, self._ticks = now, 0
            return
        self._ticks += 1
        if now - (self._anchor + self._ticks / self._rate) > self._max_lag_s:
            self._anchor, self._ticks = now, 0


class PlaybackSource:
    """Base of the seekable sources: pacing, speed, pause, seek and step, all thread-safe.

    ``read()`` may run in a capture thread while the GUI thread calls ``seek``/``step``/
    ``speed``/``paused``. Subclasses implement ``_next_image()`` and ``_seek_decoder()``.
    While paused, ``read()`` re-delivers the current frame (same index) once per frame
    interval, so the display and the pipeline stay live and ``stop()`` is never blocked.
    """

    name: str
    fps: float

    def __init__(self, name: str, fps: float, *, realtime: bool, speed: float) -> None:
        self.name = name
        self.fps = float(fps)
        self.realtime = bool(realtime)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._generation = 0
        self._closed = False
        self._paused = False
        self._current: Frame | None = None
        self._cursor = 0  # index of the next frame to decode
        self._speed = self._check_speed(speed)
        self._pacer = Pacer(self.fps * self._speed)

    # -- subclass hooks ---------------------------------------------------------------------
    def _next_image(self) -> tuple[int, np.ndarray] | tuple[int, np.ndarray, float] | None:
        """Decode the frame at ``self._cursor`` (or the next readable one).

        Returns:
            ``(index, image)`` or ``(index, image, position_s)``; None at the end.
        """
        raise NotImplementedError

    def _seek_decoder(self, index: int) -> None:
        """Position the decoder so that ``_next_image()`` returns frame ``index``."""
        raise NotImplementedError

    def _release(self) -> None:
        """Free the decoder."""

    @property
    def frame_count(self) -> int | None:
        """Number of frames, or None when the container does not say."""
        raise NotImplementedError

    # -- playback state ---------------------------------------------------------------------
    @staticmethod
    def _check_speed(speed: float) -> float:
        speed = float(speed)
        if not (MIN_SPEED <= speed <= MAX_SPEED) or math.isnan(speed):
            raise ConfigError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}")
        return speed

    @property
    def speed(self) -> float:
        """Replay speed as a multiple of the frame rate (0.25 .. 4)."""
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        with self._lock:
            self._speed = self._check_speed(value)
            self._pacer.rate = self.fps * self._speed
        self._wake.set()

    @property
    def paused(self) -> bool:
        """True while playback is paused (``read()`` then repeats the current frame)."""
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        with self._lock:
            self._paused = bool(value)
            self._pacer.reset()
        self._wake.set()

    @property
    def index(self) -> int:
        """Index of the frame delivered last (-1 before the first)."""
        current = self._current
        return current.index if current is not None else -1

    @property
    def position(self) -> float:
        """Position of the frame delivered last, in seconds (0 before the first)."""
        return max(self.index, 0) / self.fps

    @property
    def duration(self) -> float | None:
        """Length in seconds, or None when the frame count is unknown."""
        count = self.frame_count
        return None if count is None else count / self.fps

    @property
    def closed(self) -> bool:
        """True after ``close()``."""
        return self._closed

    def _clamp(self, index: int) -> int:
        index = max(0, int(index))
        count = self.frame_count
        if count is not None and count > 0:
            index = min(index, count - 1)
        return index

    def _check_open(self) -> None:
        if self._closed:
            raise SourceError(f"{self.name} is closed; open the source again to read from it")

    def _make_frame(self, index: int, image: np.ndarray, position_s: float | None = None) -> Frame:
        if position_s is None:
            position_s = index / self.fps
        return Frame(image=image, index=index, t=time.monotonic(), position_s=position_s)

    # -- reading ----------------------------------------------------------------------------
    def read(self) -> Frame | None:
        """The next frame, paced at ``fps * speed`` when ``realtime``; None at the end.

        None also after ``close()`` (even one from another thread during the wait), as for
        every source, so that shutting a pipeline down is never an error.

        Raises:
            SourceError: when the file turns out to be truncated or corrupt (after every
                readable frame was delivered).
        """
        while True:
            with self._lock:
                if self._closed:
                    return None
                generation = self._generation
                repeat = self._current if self._paused else None
                decoded = None
                if repeat is None:
                    decoded = self._next_image()
                    if decoded is None:
                        return None
                    self._cursor = decoded[0] + 1
                repeat_due = time.monotonic() + 1.0 / (self.fps * self._speed)
            if not self._wait_until_due(generation, repeat_due if repeat else None):
                continue  # a seek, step, unpause or close arrived: that decides what is next
            with self._lock:
                if self._generation != generation:
                    continue
                if decoded is not None:
                    self._pacer.tick()
                    self._current = self._make_frame(*decoded)
                elif repeat is not None:
                    self._current = Frame(
                        repeat.image, repeat.index, time.monotonic(), repeat.position_s
                    )
                return self._current

    def _wait_until_due(self, generation: int, repeat_due: float | None) -> bool:
        """Sleep until the frame is due; False if the playback state changed meanwhile."""
        while True:
            with self._lock:
                if self._closed or self._generation != generation:
                    return False
                self._wake.clear()
                if repeat_due is not None:
                    if not self._paused:
                        return False
                    delay = repeat_due - time.monotonic()
                else:
                    delay = self._pacer.delay() if self.realtime else 0.0
            if delay <= 0:
                return True
            # Setters set _wake after changing state, so a change is never missed.
            self._wake.wait(delay)

    def seek(self, index: int) -> int:
        """Make frame ``index`` (clamped to the file) the next one ``read()`` delivers.

        Returns:
            The clamped index.
        """
        with self._lock:
            self._check_open()
            index = self._clamp(index)
            self._seek_decoder(index)
            self._cursor = index
            self._current = None
            self._generation += 1
            self._pacer.reset()
        self._wake.set()
        return index

    def step(self, delta: int = 1) -> Frame | None:
        """Pause and move ``delta`` frames from the current one; returns the new current frame.

        Stepping back seeks. Later ``read()`` calls repeat this frame until unpaused.
        """
        with self._lock:
            self._check_open()
            self._paused = True
            target = self._clamp(self.index + int(delta)) if self._current else self._cursor
            if target != self._cursor:
                self._seek_decoder(target)
                self._cursor = target
            decoded = self._next_image()
            self._generation += 1
            self._pacer.reset()
            if decoded is None:
                self._wake.set()
                return self._current
            self._cursor = decoded[0] + 1
            self._current = self._make_frame(*decoded)
            frame = self._current
        self._wake.set()
        return frame

    def close(self) -> None:
        """Release the decoder; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._generation += 1
            self._release()
        self._wake.set()

    def __enter__(self) -> PlaybackSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fps={self.fps:g})"


#: Containers whose header counts the frames exactly; others (mkv, webm, ts) estimate the
#: count from duration * fps, which can be a frame or two off.
_EXACT_COUNT_SUFFIXES = (".mp4", ".mov", ".m4v", ".avi")


def _premature_end_tolerance(path: Path, frame_count: int, fps: float) -> int:
    # One frame of slack even for exact counts: an edit list can hide a frame the header
    # counts, and a false "corrupt" after a full replay would be worse than missing one frame.
    if path.suffix.lower() in _EXACT_COUNT_SUFFIXES:
        return 1
    return max(2, min(int(0.01 * frame_count), int(fps)))


class FileSource(PlaybackSource):
    """A video file read with OpenCV's FFmpeg backend (mp4/mkv/avi/mov; H.264, HEVC, MJPEG...).

    Frame ``position_s`` is the frame's presentation time from the file (``index / fps``
    where the backend gives none); ``index`` counts decoded frames. A file that stops before
    the frame count its container declares raises ``SourceError`` after its last readable
    frame; a clean end returns None.
    """

    def __init__(
        self,
        path: str | Path,
        realtime: bool = True,
        speed: float = 1.0,
        *,
        capture_factory: Callable[..., Any] = cv2.VideoCapture,
    ) -> None:
        """Open ``path`` and decode its first frame.

        Raises:
            SourceError: when the file does not exist, cannot be opened, or has no decodable
                frame.
        """
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"no such video file: {self.path}")
        cap = capture_factory(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise SourceError(
                f"cannot open {self.path}: not a video OpenCV's FFmpeg backend can read "
                "(expected mp4/mkv/avi/mov with H.264, HEVC, MJPEG or MPEG-4), or the file "
                "is truncated or corrupt"
            )
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not (0.5 <= fps <= 1000.0):
            log.warning("%s reports %.3g fps; playing it at 30 fps", self.path, fps)
            fps = 30.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._frame_count = count if count > 0 else None
        self._cap = cap
        self._ended = False
        self.decode_retries = 0
        super().__init__(f"file:{self.path.name}", fps, realtime=realtime, speed=speed)
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise SourceError(
                f"cannot decode any frame of {self.path}: the file is truncated, corrupt or "
                "in a codec this build of OpenCV lacks"
            )
        self._pending: np.ndarray | None = image
        self._pending_pos = self._timestamp()
        self.width, self.height = int(image.shape[1]), int(image.shape[0])

    @property
    def frame_count(self) -> int | None:
        """Frames the container declares (None if it does not say)."""
        return self._frame_count

    def _timestamp(self) -> float | None:
        # The decoded frame's presentation time relative to the stream start, when the
        # backend knows it (it does for mp4/mkv/avi/mov); VFR files need it.
        ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
        return ms / 1000.0 if math.isfinite(ms) and ms >= 0 else None

    def _next_image(self) -> tuple[int, np.ndarray, float | None] | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return self._cursor, image, self._pending_pos
        if self._ended:
            return None
        for attempt in range(_READ_RETRIES):
            ok, image = self._cap.read()
            if ok and image is not None:
                self.decode_retries += attempt
                return self._cursor, image, self._timestamp()
        self._ended = True
        count = self._frame_count
        tolerance = _premature_end_tolerance(self.path, count or 0, self.fps)
        if count is not None and self._cursor < count - tolerance:
            raise SourceError(
                f"video ended at frame {self._cursor} of {count}: {self.path.name} is "
                "truncated or corrupt"
            )
        return None

    def _seek_decoder(self, index: int) -> None:
        # Decode the target now, so that a seek into a damaged part fails here, in the
        # caller's thread, and not later in the capture thread.
        previous = self._cursor
        self._pending = None
        self._ended = False
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, float(index))
        ok, image = self._cap.read()
        position = self._timestamp() if ok else None
        # OpenCV answers a seek past the readable data with the last readable frame.
        landed_early = position is not None and position < (index - 1.5) / self.fps
        if ok and image is not None and not landed_early:
            self._pending, self._pending_pos = image, position
            return
        readable = f" (readable up to {position:.2f} s)" if landed_early else ""
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, float(previous))
        count = f" of {self._frame_count}" if self._frame_count else ""
        raise SourceError(
            f"cannot seek to frame {index}{count}: {self.path.name} is truncated or corrupt "
            f"there{readable}"
        )

    def _release(self) -> None:
        self._pending = None
        self._cap.release()


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_images(folder: str | Path) -> list[Path]:
    """Image files (jpg/png/bmp/tif) directly in ``folder``, in natural order (2 before 10)."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=_natural_key)


class ImageFolderSource(PlaybackSource):
    """The images of a folder, in natural order, as frames at ``fps``.

    An unreadable image is skipped with a warning and counted in ``skipped``; frame indices
    are positions in the sorted file list, so they jump over skipped files.
    """

    def __init__(
        self, path: str | Path, fps: float = 10.0, realtime: bool = True, speed: float = 1.0
    ) -> None:
        """List the images of ``path`` (a folder, or one image file) and read the first one.

        Raises:
            SourceError: when the folder does not exist, holds no images, or none can be read.
            ConfigError: when ``fps`` is not positive.
        """
        self.path = Path(path)
        if not fps > 0:
            raise ConfigError(f"image-folder fps must be > 0, got {fps}")
        if self.path.is_file() and self.path.suffix.lower() in IMAGE_SUFFIXES:
            self.files = [self.path]
        elif self.path.is_dir():
            self.files = list_images(self.path)
        else:
            raise SourceError(f"no such image folder: {self.path}")
        if not self.files:
            raise SourceError(
                f"no images in {self.path}: expected files ending in {', '.join(IMAGE_SUFFIXES)}"
            )
        self.skipped = 0
        self._skipped_files: set[int] = set()
        super().__init__(f"images:{self.path.name}", fps, realtime=realtime, speed=speed)
        if self._next_readable(0, peek=True) is None:
            raise SourceError(f"none of the {len(self.files)} images in {self.path} can be read")

    @property
    def frame_count(self) -> int:
        """Number of image files (readable or not)."""
        return len(self.files)

    @property
    def current_path(self) -> Path | None:
        """The file of the frame delivered last."""
        return self.files[self.index] if self.index >= 0 else None

    def _next_readable(self, start: int, peek: bool = False) -> tuple[int, np.ndarray] | None:
        for index in range(start, len(self.files)):
            image = cv2.imread(str(self.files[index]), cv2.IMREAD_COLOR)
            if image is not None:
                return index, image
            if index not in self._skipped_files and not peek:
                self._skipped_files.add(index)
                self.skipped += 1
                log.warning("skipping unreadable image %s", self.files[index])
        return None

    def _next_image(self) -> tuple[int, np.ndarray] | None:
        return self._next_readable(self._cursor)

    def _seek_decoder(self, index: int) -> None:
        """Nothing to do: images are read by index."""
