"""DeviceSource against a fake capture card that drops out and comes back; device listing."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from app.cli import main as cli_main
from app.core.errors import ConfigError, SignalLostError
from app.core.frame import FrameSource
from app.core.sources import DeviceInfo, DeviceSource, SignalMonitor, list_devices, open_source
from app.core.sources_device import default_backend, fourcc_to_str

FAST = {"backoff_s": 0.05, "backoff_max_s": 0.2, "stall_s": 0.5, "blank_s": 0.2, "frozen_s": 0.2}


class FakeDevice:
    """A capture card whose cable can be pulled; call it like ``cv2.VideoCapture``.

    ``mode``: "live" (changing frames), "blank" (uniform blue), "frozen" (the same buffer
    again), "stall" (read() blocks in the "driver" until the mode changes). ``plugged``:
    False makes open fail and an open capture's read() return False.
    """

    sizes = ((64, 48), (160, 90))

    def __init__(self, fps: float = 200.0):
        self.fps = fps
        self.plugged = True
        self.mode = "live"
        self.open_times: list[float] = []
        self.apis: list[int] = []
        self._rng = np.random.default_rng(0)
        self._counter = 0

    def __call__(self, device, api):
        self.open_times.append(time.monotonic())
        self.apis.append(api)
        return FakeCapture(self)

    def next_image(self, width, height):
        self._counter += 1
        img = self._rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        img[0, 0] = (self._counter % 256, self._counter // 256 % 256, 0)
        return img


class FakeCapture:
    def __init__(self, device: FakeDevice):
        self.device = device
        self.opened = device.plugged
        self.props = {
            cv2.CAP_PROP_FRAME_WIDTH: 64.0,
            cv2.CAP_PROP_FRAME_HEIGHT: 48.0,
            cv2.CAP_PROP_FPS: 30.0,
            cv2.CAP_PROP_FOURCC: float(cv2.VideoWriter_fourcc(*"YUYV")),
        }
        self._frozen = None

    def isOpened(self):  # noqa: N802 - cv2 API
        return self.opened

    def set(self, prop, value):
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            # Like many cards: only a few sizes; anything else falls back to the smallest.
            w = int(value)
            self.props[prop] = float(w if w in (s[0] for s in FakeDevice.sizes) else 64)
        elif prop == cv2.CAP_PROP_FRAME_HEIGHT:
            h = int(value)
            self.props[prop] = float(h if h in (s[1] for s in FakeDevice.sizes) else 48)
        elif prop == cv2.CAP_PROP_FPS:
            self.props[prop] = min(float(value), 60.0)
        else:
            self.props[prop] = value
        return True

    def get(self, prop):
        return self.props.get(prop, 0.0)

    def read(self):
        dev = self.device
        time.sleep(1.0 / dev.fps)
        if dev.mode == "stall":
            deadline = time.monotonic() + 3.0
            while dev.mode == "stall" and time.monotonic() < deadline:
                time.sleep(0.01)
            return False, None
        if not (self.opened and dev.plugged):
            return False, None
        w, h = int(self.props[cv2.CAP_PROP_FRAME_WIDTH]), int(self.props[cv2.CAP_PROP_FRAME_HEIGHT])
        if dev.mode == "blank":
            img = np.zeros((h, w, 3), np.uint8)
            img[:] = (200, 0, 0)
            return True, img
        if dev.mode == "frozen":
            if self._frozen is None:
                self._frozen = dev.next_image(w, h)
            return True, self._frozen.copy()
        self._frozen = None
        return True, dev.next_image(w, h)

    def release(self):
        self.opened = False


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


class CaptureLoop:
    """A capture thread like the pipeline's: reads, counts frames and losses, stops on demand."""

    def __init__(self, source):
        self.source = source
        self.frames = []
        self.losses = 0
        self.errors: list[BaseException] = []
        self.longest_read = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-capture")

    def _run(self):
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                frame = self.source.read()
                self.frames.append(frame)
            except SignalLostError:
                self.losses += 1
            except BaseException as exc:  # anything else is a bug
                self.errors.append(exc)
                return
            finally:
                self.longest_read = max(self.longest_read, time.monotonic() - start)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(3.0)
        assert not self.thread.is_alive(), "the capture loop hung"


def test_reports_what_the_card_gave_and_delivers_frames():
    fake = FakeDevice()
    with DeviceSource(
        0, width=1920, height=1080, fps=60, fourcc="mjpg", capture_factory=fake, **FAST
    ) as src:
        assert isinstance(src, FrameSource)
        assert src.status == "ok"
        assert (src.actual_width, src.actual_height) == (64, 48)  # the card refused 1080p
        assert src.actual_fps == 60.0 and src.fps == 60.0
        assert src.actual_fourcc == "MJPG"
        assert src.requested == {"width": 1920, "height": 1080, "fps": 60, "fourcc": "MJPG"}
        frames = [src.read() for _ in range(5)]
        assert [f.index for f in frames] == list(range(5))
        assert all(f.image.shape == (48, 64, 3) and f.position_s is None for f in frames)
        assert all(b.t > a.t for a, b in zip(frames, frames[1:], strict=False))
        assert src.frames_delivered == 5 and src.frames_captured >= 5
        assert src.stats()["actual"]["fourcc"] == "MJPG"
    assert src.status == "closed"
    assert fake.apis[0] == cv2.CAP_V4L2 or default_backend() != "v4l2"


def test_drops_out_and_comes_back_without_hanging_the_loop():
    fake = FakeDevice()
    src = DeviceSource(0, capture_factory=fake, **FAST)
    try:
        with CaptureLoop(src) as loop:
            assert wait_for(lambda: len(loop.frames) >= 5)
            fake.plugged = False  # cable pulled
            assert wait_for(lambda: src.status == "lost")
            assert wait_for(lambda: loop.losses >= 3)
            assert "signal lost" in src.reason or src.reason
            seen_while_lost = len(loop.frames)
            time.sleep(0.3)
            assert len(fake.open_times) >= 2  # it keeps trying to reopen
            fake.plugged = True  # cable back
            assert wait_for(lambda: src.status == "ok")
            assert wait_for(lambda: len(loop.frames) >= seen_while_lost + 5)
        assert not loop.errors
        # While lost each read() returned within about a frame interval; 2 s is a loose bound
        # that only a hanging read would break.
        assert loop.longest_read < 2.0
        assert src.signal_losses == 1 and src.reconnects == 1
        indices = [f.index for f in loop.frames]
        assert indices == list(range(len(indices)))  # delivered frames are numbered on
    finally:
        src.close()


def test_lost_message_is_clear():
    fake = FakeDevice()
    fake.plugged = False
    with DeviceSource(3, capture_factory=fake, **FAST) as src:
        assert src.status == "lost"
        expected = r"device:3: signal lost \(cannot open the device"
        with pytest.raises(SignalLostError, match=expected):
            src.read()
        fake.plugged = True
        assert wait_for(lambda: src.status == "ok")
        assert src.read().index == 0


def test_reopen_backoff_doubles_up_to_the_cap():
    fake = FakeDevice()
    fake.plugged = False
    with DeviceSource(0, capture_factory=fake, **FAST):
        assert wait_for(lambda: len(fake.open_times) >= 6, timeout=5.0)
    gaps = np.diff(fake.open_times[:6])
    expected = [0.05, 0.1, 0.2, 0.2, 0.2]
    # Lower bounds only: a wait never ends early; a busy machine may make it longer.
    assert all(g >= 0.9 * e for g, e in zip(gaps, expected, strict=True))


@pytest.mark.parametrize(("mode", "reason"), [("blank", "blank"), ("frozen", "frozen")])
def test_blank_or_frozen_picture_counts_as_lost(mode, reason):
    fake = FakeDevice()
    with DeviceSource(0, capture_factory=fake, **FAST) as src:
        src.read()
        fake.mode = mode
        assert wait_for(lambda: src.status == "lost")
        assert reason in src.reason
        with pytest.raises(SignalLostError, match=reason):
            # Frames already in flight may still come; then the loss is raised.
            for _ in range(100):
                src.read()
        fake.mode = "live"
        assert wait_for(lambda: src.status == "ok")
        assert src.read() is not None
        assert src.signal_losses == 1


def test_stalled_driver_is_reported_and_close_still_returns():
    fake = FakeDevice()
    src = DeviceSource(0, capture_factory=fake, **FAST)
    try:
        src.read()
        fake.mode = "stall"  # read() blocks inside the "driver"
        start = time.monotonic()
        with pytest.raises(SignalLostError, match="no frame for"):
            for _ in range(1000):
                src.read()
        assert time.monotonic() - start < 3.0
        assert src.status == "lost"
    finally:
        fake.mode = "live"
        src.close()
    assert src.read() is None  # closed: the end, not a lost signal
    src.close()  # idempotent


def test_close_from_another_thread_ends_a_read_waiting_on_a_lost_signal():
    fake = FakeDevice()
    fake.plugged = False
    src = DeviceSource(0, capture_factory=fake, **{**FAST, "stall_s": 5.0})
    results = []

    def loop():
        while True:
            try:
                frame = src.read()
            except SignalLostError:
                continue
            results.append(frame)
            return

    reader = threading.Thread(target=loop, name="test-reader")
    reader.start()
    time.sleep(0.1)
    src.close()
    reader.join(2.0)
    assert not reader.is_alive() and results == [None]
    assert src.status == "closed"


def test_open_source_builds_device_sources():
    fake = FakeDevice()
    with open_source("device:2", capture_factory=fake, width=160, height=90, **FAST) as src:
        assert isinstance(src, DeviceSource) and src.device == 2
        assert (src.actual_width, src.actual_height) == (160, 90)
    with open_source("/dev/video5", capture_factory=fake, **FAST) as src:
        assert src.device == "/dev/video5"


def test_bad_device_options():
    with pytest.raises(ConfigError, match="FOURCC"):
        DeviceSource(0, fourcc="H264", capture_factory=FakeDevice())
    with pytest.raises(ConfigError, match="backend"):
        DeviceSource(0, backend="gstreamer", capture_factory=FakeDevice())
    with pytest.raises(ConfigError, match="width"):
        DeviceSource(0, width=0, capture_factory=FakeDevice())


def test_signal_monitor_thresholds():
    mon = SignalMonitor(blank_s=1.0, frozen_s=2.0)
    rng = np.random.default_rng(1)
    live = rng.integers(0, 255, (36, 64, 3), dtype=np.uint8)
    assert mon.check(live, 0.0) is None
    blank = np.full((36, 64, 3), (255, 0, 0), np.uint8)
    assert mon.check(blank, 1.0) is None
    assert mon.check(blank.copy(), 1.5) is None
    assert "blank" in mon.check(blank.copy(), 2.0)
    assert mon.check(rng.integers(0, 255, (36, 64, 3), dtype=np.uint8), 2.1) is None
    still = rng.integers(0, 255, (36, 64, 3), dtype=np.uint8)
    mon.check(still, 3.0)
    assert mon.check(still.copy(), 4.0) is None
    assert "frozen" in mon.check(still.copy(), 5.0)
    noisy = still.copy()
    noisy[0, 0, 0] ^= 1  # one changed pixel is sensor noise: live again
    assert mon.check(noisy, 5.1) is None
    off = SignalMonitor(blank_s=None, frozen_s=None)
    for t in range(5):
        assert off.check(blank.copy(), float(t)) is None


def _fake_sysfs(root, nodes):
    for name, (label, index) in nodes.items():
        node = root / name
        node.mkdir(parents=True)
        (node / "name").write_text(label + "\n")
        if index is not None:
            (node / "index").write_text(f"{index}\n")


def test_list_devices_linux_reads_sysfs_capture_nodes(tmp_path):
    sysfs = tmp_path / "video4linux"
    _fake_sysfs(
        sysfs,
        {
            "video0": ("USB Capture HDMI", 0),
            "video1": ("USB Capture HDMI", 1),  # UVC metadata node
            "video10": ("Integrated Camera", 0),
            "video2": ("Magewell Pro Capture", None),
        },
    )
    found = list_devices(platform="linux", sysfs_root=sysfs, dev_root=tmp_path / "dev")
    assert found == [
        DeviceInfo(0, str(tmp_path / "dev" / "video0"), "USB Capture HDMI"),
        DeviceInfo(2, str(tmp_path / "dev" / "video2"), "Magewell Pro Capture"),
        DeviceInfo(10, str(tmp_path / "dev" / "video10"), "Integrated Camera"),
    ]
    assert found[0].spec == "device:0"
    assert list_devices(platform="linux", sysfs_root=tmp_path / "none") == []


def test_list_devices_elsewhere_probes_indices():
    opened = {0, 2}
    calls = []

    class Probe:
        def __init__(self, index, api):
            calls.append((index, api))
            self.index = index

        def isOpened(self):  # noqa: N802 - cv2 API
            return self.index in opened

        def release(self):
            pass

    found = list_devices(max_index=4, platform="win32", capture_factory=Probe)
    assert [d.index for d in found] == [0, 2]
    assert all(api == cv2.CAP_DSHOW for _, api in calls) and len(calls) == 4


def test_platform_backends_and_fourcc_decoding():
    assert default_backend("linux") == "v4l2"
    assert default_backend("win32") == "dshow"
    assert default_backend("darwin") == "avfoundation"
    assert default_backend("freebsd13") == "any"
    assert fourcc_to_str(cv2.VideoWriter_fourcc(*"MJPG")) == "MJPG"
    assert fourcc_to_str(0) == "" and fourcc_to_str(-1) == ""


def test_devices_command(monkeypatch, capsys):
    import app.core.sources_device as sd

    monkeypatch.setattr(sd, "list_devices", lambda max_index=8: [])
    assert cli_main(["devices"]) == 0
    assert "no capture devices found" in capsys.readouterr().out
    devices = [DeviceInfo(0, "/dev/video0", "USB Capture HDMI")]
    monkeypatch.setattr(sd, "list_devices", lambda max_index=8: devices)
    assert cli_main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "device:0" in out and "/dev/video0" in out and "USB Capture HDMI" in out
    assert cli_main(["devices", "--json"]) == 0
    assert '"name": "USB Capture HDMI"' in capsys.readouterr().out
