"""Live capture devices (OpenCV, platform backend) that survive signal loss, and device listing."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.core.errors import ConfigError, SignalLostError
from app.core.frame import Frame

log = logging.getLogger(__name__)

#: The backend names DeviceSource accepts and their OpenCV constants.
BACKENDS: dict[str, int] = {
    "any": cv2.CAP_ANY,
    "v4l2": cv2.CAP_V4L2,
    "dshow": cv2.CAP_DSHOW,
    "msmf": cv2.CAP_MSMF,
    "avfoundation": cv2.CAP_AVFOUNDATION,
}
FOURCCS = ("MJPG", "YUYV")

CaptureFactory = Callable[[Any, int], Any]


def default_backend(platform: str | None = None) -> str:
    """The capture backend for a platform: V4L2, DirectShow (Windows) or AVFoundation (macOS).

    DirectShow rather than Media Foundation on Windows because it opens capture cards fast
    and honours FOURCC requests; pass ``backend="msmf"`` for cards that only MSMF drives.
    """
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return "v4l2"
    if platform.startswith("win"):
        return "dshow"
    if platform == "darwin":
        return "avfoundation"
    return "any"


def fourcc_to_str(code: float) -> str:
    """Decode OpenCV's CAP_PROP_FOURCC value ('' when the backend does not say)."""
    value = int(code)
    if value <= 0:
        return ""
    text = "".join(chr((value >> (8 * k)) & 0xFF) for k in range(4))
    return text if text.isprintable() else ""


@dataclass(frozen=True)
class DeviceInfo:
    """A capture device: its OpenCV index, its node path where the platform has one, a name."""

    index: int
    path: str | None
    name: str

    @property
    def spec(self) -> str:
        """The source spec ``open_source`` takes for it."""
        return f"device:{self.index}"


# -- device listing ------------------------------------------------------------------------

_VIDIOC_QUERYCAP = 0x80685600  # _IOR('V', 0, struct v4l2_capability), 104 bytes
_V4L2_CAP_VIDEO_CAPTURE = 0x00000001
_V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
_V4L2_CAP_DEVICE_CAPS = 0x80000000


def _v4l2_is_capture(dev_path: str) -> bool | None:
    """True/False from VIDIOC_QUERYCAP's device caps; None when the node cannot be queried."""
    try:
        import fcntl
    except ImportError:  # not on Linux
        return None
    try:
        fd = os.open(dev_path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buf = bytearray(104)
        fcntl.ioctl(fd, _VIDIOC_QUERYCAP, buf)
    except OSError:
        return None
    finally:
        os.close(fd)
    capabilities, device_caps = struct.unpack_from("<II", buf, 84)
    caps = device_caps if capabilities & _V4L2_CAP_DEVICE_CAPS else capabilities
    return bool(caps & (_V4L2_CAP_VIDEO_CAPTURE | _V4L2_CAP_VIDEO_CAPTURE_MPLANE))


def _linux_devices(sysfs_root: Path, dev_root: Path) -> list[DeviceInfo]:
    found: list[DeviceInfo] = []
    nodes = []
    for entry in sysfs_root.glob("video*"):
        match = re.fullmatch(r"video(\d+)", entry.name)
        if match:
            nodes.append((int(match.group(1)), entry))
    for index, entry in sorted(nodes):
        dev_path = str(dev_root / entry.name)
        is_capture = _v4l2_is_capture(dev_path)
        if is_capture is None:
            # Without the ioctl, fall back on the node index: UVC devices expose the video
            # stream as index 0 and metadata nodes as 1, 2, ...
            with contextlib.suppress(OSError, ValueError):
                is_capture = int((entry / "index").read_text().strip() or 0) == 0
            if is_capture is None:
                is_capture = True
        if not is_capture:
            continue
        try:
            name = (entry / "name").read_text(errors="replace").strip()
        except OSError:
            name = ""
        found.append(DeviceInfo(index=index, path=dev_path, name=name or entry.name))
    return found


def list_devices(
    max_index: int = 8,
    *,
    platform: str | None = None,
    sysfs_root: str | Path = "/sys/class/video4linux",
    dev_root: str | Path = "/dev",
    capture_factory: CaptureFactory = cv2.VideoCapture,
) -> list[DeviceInfo]:
    """The capture devices attached, with names where the platform gives them.

    On Linux it reads ``/sys/class/video4linux`` (capture nodes only, no device is opened for
    streaming); elsewhere it probes OpenCV indices ``0 .. max_index - 1``.
    """
    platform = platform or sys.platform
    if platform.startswith("linux"):
        root = Path(sysfs_root)
        return _linux_devices(root, Path(dev_root)) if root.is_dir() else []
    api = BACKENDS[default_backend(platform)]
    found = []
    for index in range(max_index):
        cap = capture_factory(index, api)
        try:
            if cap.isOpened():
                found.append(DeviceInfo(index=index, path=None, name=f"camera {index}"))
        finally:
            cap.release()
    return found


# -- signal monitoring ---------------------------------------------------------------------


class SignalMonitor:
    """Tells a live picture from a lost signal: a blank (uniform) or frozen (repeated) image.

    Capture cards without input keep streaming a uniform black or blue picture, or repeat
    the last buffer. Real endoscope video always has structure and sensor noise, so a
    picture that stays uniform for ``blank_s`` or byte-identical for ``frozen_s`` is lost.
    """

    def __init__(
        self, blank_s: float | None = 1.0, frozen_s: float | None = 2.0, blank_std: float = 2.0
    ):
        """Set the thresholds; None disables a check (e.g. for a static test pattern)."""
        self.blank_s = blank_s
        self.frozen_s = frozen_s
        self.blank_std = blank_std
        self._blank_since: float | None = None
        self._frozen_since: float | None = None
        self._previous: np.ndarray | None = None
        self._previous_t = 0.0

    def reset(self) -> None:
        """Forget the history (after a reopen)."""
        self._blank_since = self._frozen_since = None
        self._previous = None

    def check(self, image: np.ndarray, now: float) -> str | None:
        """None while the picture is live, else why it counts as lost."""
        small = cv2.resize(image, (32, 18), interpolation=cv2.INTER_AREA)
        blank = float(small.reshape(-1, small.shape[-1] if small.ndim == 3 else 1).std(0).max())
        if blank < self.blank_std:
            self._blank_since = now if self._blank_since is None else self._blank_since
        else:
            self._blank_since = None
        previous, self._previous = self._previous, image
        previous_t, self._previous_t = self._previous_t, now
        if (
            previous is not None
            and previous.shape == image.shape
            and np.array_equal(previous, image)
        ):
            # Frozen since the first of the identical frames arrived.
            self._frozen_since = previous_t if self._frozen_since is None else self._frozen_since
        else:
            self._frozen_since = None
        blank_for = None if self._blank_since is None else now - self._blank_since
        if self.blank_s is not None and blank_for is not None and blank_for >= self.blank_s:
            return f"blank picture for {blank_for:.1f} s"
        if (
            self.frozen_s is not None
            and self._frozen_since is not None
            and now - self._frozen_since >= self.frozen_s
        ):
            return f"frozen picture for {now - self._frozen_since:.1f} s"
        return None


# -- the device source ---------------------------------------------------------------------


class DeviceSource:
    """A capture card or camera that reports signal loss and reconnects by itself.

    A reader thread owns the ``cv2.VideoCapture`` (some backends want one thread), reads as
    fast as the device delivers and keeps only the newest frame. ``read()`` hands that
    frame over; while the signal is lost it raises ``SignalLostError`` within about a frame
    interval, so the caller's capture loop stays responsive. The reader reopens the device
    with exponential backoff (``backoff_s`` doubling up to ``backoff_max_s``) and resumes
    when the signal returns.

    Attributes:
        actual_width, actual_height, actual_fps, actual_fourcc: what the device gave after
            the last successful open (the request is only a wish on many cards).
        frames_captured, frames_delivered, dropped: frames read from the device, handed out
            by ``read()``, and replaced in the slot before anyone read them.
        signal_losses, reconnects, open_attempts: counters of the loss/recovery cycle.
    """

    def __init__(
        self,
        device: int | str,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
        *,
        backend: str | None = None,
        capture_factory: CaptureFactory = cv2.VideoCapture,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        stall_s: float = 1.0,
        blank_s: float | None = 1.0,
        frozen_s: float | None = 2.0,
        open_timeout_s: float = 5.0,
    ) -> None:
        """Open the device (a failed open is a lost signal, retried in the background).

        ``blank_s``/``frozen_s``: how long a uniform or repeated picture lasts before it
        counts as signal loss (None: never). ``stall_s``: no frame for this long is a loss.

        Raises:
            ConfigError: for an unknown backend or FOURCC, or a non-positive size or rate.
        """
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        self.device = device
        backend = (backend or default_backend()).lower()
        if backend not in BACKENDS:
            raise ConfigError(
                f"unknown capture backend {backend!r}: expected one of {list(BACKENDS)}"
            )
        if fourcc is not None:
            fourcc = fourcc.upper()
            if fourcc not in FOURCCS:
                raise ConfigError(f"unknown FOURCC {fourcc!r}: expected one of {list(FOURCCS)}")
        for label, value in (("width", width), ("height", height), ("fps", fps)):
            if value is not None and not value > 0:
                raise ConfigError(f"device {label} must be > 0, got {value}")
        self.backend = backend
        self.requested = {"width": width, "height": height, "fps": fps, "fourcc": fourcc}
        self.name = f"device:{device}"
        self.fps = float(fps or 30.0)
        self.actual_width: int | None = None
        self.actual_height: int | None = None
        self.actual_fps: float | None = None
        self.actual_fourcc: str | None = None
        self._factory = capture_factory
        self._backoff_s = backoff_s
        self._backoff_max_s = backoff_max_s
        self._stall_s = stall_s
        self._monitor = SignalMonitor(blank_s=blank_s, frozen_s=frozen_s)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._opened_once = threading.Event()
        self._status = "lost"
        self._reason = "not opened yet"
        self._retry_at: float | None = None
        self._slot: tuple[np.ndarray, float] | None = None  # newest frame, not yet read
        self._last_frame_t: float | None = None
        self._index = 0
        self.frames_captured = 0
        self.frames_delivered = 0
        self.dropped = 0
        self.signal_losses = 0
        self.reconnects = 0
        self.open_attempts = 0
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-reader", daemon=True)
        self._thread.start()
        self._opened_once.wait(open_timeout_s)

    # -- state ------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """One of "ok" (frames flow), "lost" (no signal, retrying) or "closed"."""
        return self._status

    @property
    def reason(self) -> str:
        """Why the signal is lost ('' while ok)."""
        return self._reason if self._status == "lost" else ""

    def stats(self) -> dict[str, Any]:
        """Counters and the negotiated format, for logs and manifests."""
        return {
            "status": self._status,
            "frames_captured": self.frames_captured,
            "frames_delivered": self.frames_delivered,
            "dropped": self.dropped,
            "signal_losses": self.signal_losses,
            "reconnects": self.reconnects,
            "open_attempts": self.open_attempts,
            "actual": {
                "width": self.actual_width,
                "height": self.actual_height,
                "fps": self.actual_fps,
                "fourcc": self.actual_fourcc,
            },
            "requested": dict(self.requested),
        }

    def _set_lost(self, reason: str) -> None:
        # Caller holds self._cond.
        if self._status == "ok":
            self.signal_losses += 1
            log.warning("%s: signal lost (%s)", self.name, reason)
        if self._status != "closed":
            self._status = "lost"
            self._reason = reason
        self._cond.notify_all()

    # -- reader thread ----------------------------------------------------------------------
    def _open(self) -> Any | None:
        self.open_attempts += 1
        try:
            cap = self._factory(self.device, BACKENDS[self.backend])
        except Exception as exc:  # a backend may throw instead of returning a closed capture
            log.debug("%s: open raised %s", self.name, exc)
            return None
        if not cap.isOpened():
            cap.release()
            return None
        req = self.requested
        # V4L2 wants the pixel format before the size, and the size before the rate.
        if req["fourcc"]:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*req["fourcc"]))
        if req["width"]:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, float(req["width"]))
        if req["height"]:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, float(req["height"]))
        if req["fps"]:
            cap.set(cv2.CAP_PROP_FPS, float(req["fps"]))
        self.actual_width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
        self.actual_height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
        self.actual_fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
        self.actual_fourcc = fourcc_to_str(cap.get(cv2.CAP_PROP_FOURCC)) or None
        if self.actual_fps and 0 < self.actual_fps <= 1000:
            self.fps = self.actual_fps
        gave = (self.actual_width, self.actual_height, self.actual_fps, self.actual_fourcc)
        log.info("%s opened (%s): %sx%s @ %s fps %s", self.name, self.backend, *gave)
        return cap

    def _wait_backoff(self, delay: float) -> None:
        with self._cond:
            self._retry_at = time.monotonic() + delay
        self._stop.wait(delay)

    def _run(self) -> None:
        cap = None
        delay = self._backoff_s
        try:
            while not self._stop.is_set():
                if cap is None:
                    cap = self._open()
                    self._opened_once.set()
                    if cap is None:
                        with self._cond:
                            self._set_lost("cannot open the device (unplugged or busy)")
                        self._wait_backoff(delay)
                        delay = min(delay * 2, self._backoff_max_s)
                        continue
                    self._monitor.reset()
                    with self._cond:
                        # Open counts as ok; no frame within stall_s makes read() call it lost.
                        self._last_frame_t = time.monotonic()
                        self._retry_at = None
                        if self._status != "closed":
                            self._status, self._reason = "ok", ""
                    if self.frames_captured:
                        self.reconnects += 1
                ok, image = cap.read()
                now = time.monotonic()
                if not ok or image is None or image.size == 0:
                    cap.release()
                    cap = None
                    with self._cond:
                        self._set_lost("the device stopped delivering frames")
                    self._wait_backoff(delay)
                    delay = min(delay * 2, self._backoff_max_s)
                    continue
                self.frames_captured += 1
                verdict = self._monitor.check(image, now)
                with self._cond:
                    if verdict is not None:
                        self._slot = None
                        self._set_lost(verdict)
                        continue
                    delay = self._backoff_s
                    if self._status == "closed":
                        break
                    if self._status == "lost":
                        log.info("%s: signal back", self.name)
                    self._status, self._reason = "ok", ""
                    self._retry_at = None
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = (image, now)
                    self._last_frame_t = now
                    self._cond.notify_all()
        finally:
            if cap is not None:
                cap.release()
            self._opened_once.set()

    # -- FrameSource ------------------------------------------------------------------------
    def _lost_error(self) -> SignalLostError:
        retry = ""
        if self._retry_at is not None and self._retry_at > time.monotonic():
            retry = f"; reopening in {self._retry_at - time.monotonic():.1f} s"
        return SignalLostError(f"{self.name}: signal lost ({self._reason}){retry}")

    def read(self) -> Frame | None:
        """The newest frame from the device; None after ``close()``.

        Waits up to ``stall_s`` for a frame while the signal is good, and about one frame
        interval while it is lost.

        Raises:
            SignalLostError: while the signal is lost (the source keeps retrying).
        """
        interval = min(max(1.0 / self.fps, 0.02), 0.25)
        lost_deadline: float | None = None
        with self._cond:
            while True:
                if self._status == "closed":
                    return None
                if self._status == "ok" and self._slot is not None:
                    image, t = self._slot
                    self._slot = None
                    frame = Frame(image=image, index=self._index, t=t)
                    self._index += 1
                    self.frames_delivered += 1
                    return frame
                now = time.monotonic()
                if self._status == "ok":
                    last = self._last_frame_t if self._last_frame_t is not None else now
                    if now - last >= self._stall_s:
                        self._set_lost(f"no frame for {now - last:.1f} s")
                        raise self._lost_error()
                    timeout = last + self._stall_s - now
                else:
                    if lost_deadline is None:
                        lost_deadline = now + interval
                    if now >= lost_deadline:
                        raise self._lost_error()
                    timeout = lost_deadline - now
                self._cond.wait(timeout)

    def close(self) -> None:
        """Stop the reader and release the device; idempotent."""
        with self._cond:
            already = self._stop.is_set()
            self._status = "closed"
            self._stop.set()
            self._cond.notify_all()
        if already:
            return
        self._thread.join(timeout=2.0)
        if self._thread.is_alive():
            log.warning("%s: the driver did not return within 2 s; leaving its reader", self.name)

    def __enter__(self) -> DeviceSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DeviceSource({self.device!r}, backend={self.backend!r}, status={self._status!r})"
