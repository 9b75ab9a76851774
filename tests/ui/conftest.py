"""GUI test fixtures: offscreen Qt with two monitors, isolated settings, leak checks, fakes."""

from __future__ import annotations

import gc
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

# Before any QApplication exists: offscreen, with two virtual monitors (procedure-mode tests
# pick the second), and settings/config folders that are not the user's.
_SCREENS = {
    "screens": [
        {
            "name": "Main",
            "x": 0,
            "y": 0,
            "width": 1280,
            "height": 720,
            "logicalDpi": 96,
            "logicalBaseDpi": 96,
            "dpr": 1,
        },
        {
            "name": "Procedure",
            "x": 1280,
            "y": 0,
            "width": 1024,
            "height": 576,
            "logicalDpi": 96,
            "logicalBaseDpi": 96,
            "dpr": 1,
        },
    ]
}
_TMP = Path(tempfile.mkdtemp(prefix="ercp-ui-tests-"))
(_TMP / "screens.json").write_text(json.dumps(_SCREENS))
os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={_TMP / 'screens.json'}"

from PySide6.QtCore import QCoreApplication, QEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.core.errors import SignalLostError  # noqa: E402
from app.core.frame import Frame  # noqa: E402
from app.ui.settings import APPLICATION, ORGANIZATION, AppSettings  # noqa: E402


def _user_settings_path() -> Path:
    # Where QSettings(NativeFormat, UserScope) keeps them on Linux; computed by hand because
    # QSettings caches its folders on first use, and that use must see the patched folder.
    root = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(root) / ORGANIZATION / f"{APPLICATION}.conf"


def _user_settings_state(path: Path) -> tuple[str, float | None, int | None]:
    try:
        st = os.stat(path)
    except OSError:
        return str(path), None, None
    return str(path), st.st_mtime, st.st_size


_USER_SETTINGS = _user_settings_path()
_USER_SETTINGS_BEFORE = _user_settings_state(_USER_SETTINGS)
# From here on even a stray default QSettings lands in the temporary folder.
os.environ["XDG_CONFIG_HOME"] = str(_TMP / "config")


@pytest.fixture(scope="session", autouse=True)
def user_settings_untouched():
    """Fails the session if any GUI test wrote the user's real settings file."""
    yield
    after = _user_settings_state(_USER_SETTINGS)
    assert after == _USER_SETTINGS_BEFORE, (
        f"the user's settings file {after[0]} was written by the GUI tests"
    )


def _flush_deletes() -> None:
    app = QApplication.instance()
    for _ in range(3):
        if app is not None:
            app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        gc.collect()


@pytest.fixture(autouse=True)
def no_leaks(qapp):
    """Fails any test that leaves a top-level widget or a Python thread behind."""
    _flush_deletes()
    widgets_before = {id(w) for w in qapp.topLevelWidgets()}
    threads_before = set(threading.enumerate())
    yield
    _flush_deletes()
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        if not extra:
            break
        time.sleep(0.02)
    leaked_threads = [
        t.name for t in threading.enumerate() if t not in threads_before and t.is_alive()
    ]
    leaked_widgets = [
        f"{type(w).__name__}({w.objectName()!r})"
        for w in qapp.topLevelWidgets()
        if id(w) not in widgets_before
    ]
    if leaked_threads or leaked_widgets:
        for w in qapp.topLevelWidgets():
            if id(w) not in widgets_before and w.parent() is None:  # children go with it
                w.close()
                w.deleteLater()
        _flush_deletes()
        pytest.fail(f"test left behind threads {leaked_threads} and widgets {leaked_widgets}")


@pytest.fixture
def settings(tmp_path) -> AppSettings:
    """Settings in a temporary INI file, exporting into ``tmp_path / "exports"``."""
    store = AppSettings.at_path(tmp_path / "settings.ini")
    store.export_dir = tmp_path / "exports"
    store.sync()
    return store


@pytest.fixture
def notifications(qapp):
    from app.ui.banners import NotificationManager

    manager = NotificationManager()
    yield manager
    manager.close()
    manager.deleteLater()


@pytest.fixture
def make_window(qapp, settings, notifications):
    """``make_window()`` builds a MainWindow (closed and deleted after the test)."""
    from app.ui.main_window import MainWindow

    made = []

    def make(**kwargs):
        window = MainWindow(notifications, settings, **kwargs)
        window.resize(1100, 650)
        window.show()
        made.append(window)
        return window

    yield make
    for window in made:
        window.close()
        window.deleteLater()
    made.clear()  # pytest keeps the fixture value (and so this list) for a while
    _flush_deletes()


def small_phantom(seed: int = 0, max_frames: int | None = None):
    """A realtime 256x144 phantom at 30 fps (cheap enough for a shared 2-core machine)."""
    from app.core.phantom import PhantomConfig, PhantomSource

    return PhantomSource(
        seed=seed, config=PhantomConfig(width=256, height=144, fps=30.0), max_frames=max_frames
    )


@pytest.fixture
def phantom():
    return small_phantom()


class FlakySource:
    """A live source that delivers frames, loses its signal for a while, then recovers.

    Frames carry a red square so the fixture detector (heatmap = red channel) finds it.
    """

    def __init__(self, good: int = 10, lost_s: float = 0.4, fps: float = 30.0) -> None:
        self.name = "flaky-capture"
        self.fps = fps
        self.good = good
        self.lost_s = lost_s
        self._index = 0
        self._lost_since: float | None = None
        self._closed = threading.Event()
        self.recovered = False

    def read(self) -> Frame | None:
        if self._closed.wait(1.0 / self.fps):
            return None
        if self._index == self.good and not self.recovered:
            if self._lost_since is None:
                self._lost_since = time.monotonic()
            if time.monotonic() - self._lost_since < self.lost_s:
                raise SignalLostError("capture card reports no input (HDMI unplugged)")
            self.recovered = True
        image = np.full((72, 128, 3), 40, np.uint8)
        image[20:44, 50:74, 2] = 255
        frame = Frame(image=image, index=self._index, t=time.monotonic())
        self._index += 1
        return frame

    def close(self) -> None:
        self._closed.set()


def write_video(
    path: Path, frames: int = 40, fps: float = 10.0, size: tuple[int, int] = (128, 72)
) -> Path:
    """A small MJPG .avi whose frames show their index as a moving red square."""
    import cv2

    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for i in range(frames):
        image = np.full((h, w, 3), 30, np.uint8)
        x = 4 + (i * 2) % (w - 28)
        image[20:44, x : x + 24, 2] = 255
        writer.write(image)
    writer.release()
    return path


def wait_until(qtbot, condition, timeout_ms: int = 8000, what: str = "condition") -> None:
    """``qtbot.waitUntil`` with a message that says what was awaited."""
    try:
        qtbot.waitUntil(lambda: bool(condition()), timeout=timeout_ms)
    except AssertionError as exc:
        raise AssertionError(f"timed out after {timeout_ms} ms waiting for {what}") from exc
