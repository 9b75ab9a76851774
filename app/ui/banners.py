"""One notification manager for every error and warning, shown as non-modal banners."""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

log = logging.getLogger(__name__)

LEVELS = ("info", "warning", "error")
#: How long an info banner stays before it dismisses itself (warnings and errors stay).
INFO_TIMEOUT_MS = 6000
#: At most this many banners are shown; the oldest gives way.
MAX_BANNERS = 4
_STYLE = {
    "info": ("#1f3a5a", "#9cc8ff"),
    "warning": ("#5a4510", "#ffd27a"),
    "error": ("#5a1818", "#ff9a9a"),
}


@dataclass(frozen=True)
class Notification:
    """One message for the user.

    Attributes:
        level: ``"info"``, ``"warning"`` or ``"error"``.
        message: one line: what happened and, where possible, what to do.
        source: where it came from (``"pipeline"``, ``"thread capture"``, ``"model"``...).
        t: ``time.monotonic()`` when it was raised.
        details: the traceback text for exceptions (logged, not shown in the banner).
    """

    level: str
    message: str
    source: str = ""
    t: float = field(default_factory=time.monotonic)
    details: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """Identical notifications share a banner (with a repeat count)."""
        return self.level, self.message


def describe_exception(exc: BaseException) -> str:
    """One line for a banner: the exception's message, prefixed by its type when not ours."""
    from app.core.errors import ErcpError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, ErcpError) and text:
        return text
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


class NotificationManager(QObject):
    """Collects notifications from any thread and hands them to the GUI thread.

    ``notify`` may be called from worker threads: the ``notification_ready`` signal is then
    delivered through Qt's queued connection to widgets in the GUI thread. The manager also
    installs ``sys.excepthook`` and ``threading.excepthook`` so no exception disappears into
    a log (``install_excepthooks``/``uninstall_excepthooks``).
    """

    notification_ready = Signal(object)

    def __init__(self, parent: QObject | None = None, history: int = 200) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._history: deque[Notification] = deque(maxlen=history)
        self._previous_hooks: tuple[Callable, Callable] | None = None
        self._closed = False

    def notify(
        self, message: str, level: str = "error", source: str = "", details: str = ""
    ) -> Notification:
        """Record a notification and show it as a banner (thread-safe)."""
        if level not in LEVELS:
            raise ValueError(f"notification level {level!r}: expected one of {LEVELS}")
        note = Notification(level, message, source, details=details)
        log_level = {"info": logging.INFO, "warning": logging.WARNING}.get(level, logging.ERROR)
        log.log(log_level, "%s%s", f"[{source}] " if source else "", message)
        if details:
            log.debug("%s", details)
        with self._lock:
            self._history.append(note)
            closed = self._closed
        if not closed:
            try:
                self.notification_ready.emit(note)
            except RuntimeError:  # the QObject was deleted while a thread still reported
                pass
        return note

    def notify_exception(
        self, exc: BaseException, source: str = "", level: str = "error"
    ) -> Notification:
        """A notification for an exception: its message in the banner, the traceback logged."""
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return self.notify(describe_exception(exc), level, source, details)

    def history(self) -> list[Notification]:
        """Every notification so far (the most recent ``history`` of them)."""
        with self._lock:
            return list(self._history)

    # -- exception hooks ------------------------------------------------------------------

    def install_excepthooks(self) -> None:
        """Route uncaught exceptions of the GUI thread and of worker threads to banners."""
        if self._previous_hooks is not None:
            return
        self._previous_hooks = (sys.excepthook, threading.excepthook)
        sys.excepthook = self._sys_hook
        threading.excepthook = self._thread_hook

    def uninstall_excepthooks(self) -> None:
        """Restore the hooks that were installed before ``install_excepthooks``."""
        if self._previous_hooks is None:
            return
        if sys.excepthook == self._sys_hook:
            sys.excepthook = self._previous_hooks[0]
        if threading.excepthook == self._thread_hook:
            threading.excepthook = self._previous_hooks[1]
        self._previous_hooks = None

    def close(self) -> None:
        """Stop emitting (threads may still call ``notify``; it then only logs); idempotent."""
        self.uninstall_excepthooks()
        with self._lock:
            self._closed = True

    def _sys_hook(
        self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(exc_type, KeyboardInterrupt) and self._previous_hooks is not None:
            self._previous_hooks[0](exc_type, exc, tb)
            return
        if exc.__traceback__ is None and tb is not None:
            exc = exc.with_traceback(tb)
        self.notify_exception(exc, source="app")

    def _thread_hook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        name = args.thread.name if args.thread is not None else "worker"
        self.notify_exception(args.exc_value, source=f"thread {name}")


class BannerWidget(QWidget):
    """One banner: a coloured strip with the message, a repeat count and a close button."""

    def __init__(self, note: Notification, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.note = note
        self.count = 1
        background, foreground = _STYLE[note.level]
        self.setObjectName(f"Banner_{note.level}")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(
            f"#Banner_{note.level} {{ background: {background}; border-radius: 4px; }}"
            f"QLabel {{ color: {foreground}; font-weight: 600; }}"
            f"QToolButton {{ color: {foreground}; border: none; font-weight: 700; }}"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label, 1)
        self.close_button = QToolButton(self)
        self.close_button.setText("✕")
        self.close_button.setToolTip("Dismiss")
        self.close_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        layout.addWidget(self.close_button)
        self._refresh()

    def repeat(self) -> None:
        """The same notification came again: count it."""
        self.count += 1
        self._refresh()

    def text(self) -> str:
        """What the banner says."""
        return self.label.text()

    def _refresh(self) -> None:
        prefix = {"info": "", "warning": "Warning: ", "error": "Error: "}[self.note.level]
        suffix = f"  (×{self.count})" if self.count > 1 else ""
        source = f" [{self.note.source}]" if self.note.source else ""
        self.label.setText(f"{prefix}{self.note.message}{suffix}")
        self.label.setToolTip(f"{self.note.level}{source}: {self.note.message}")


class BannerArea(QWidget):
    """A column of banners fed by a NotificationManager; never modal, never blocks video."""

    banners_changed = Signal()

    def __init__(
        self,
        manager: NotificationManager,
        parent: QWidget | None = None,
        max_banners: int = MAX_BANNERS,
        info_timeout_ms: int = INFO_TIMEOUT_MS,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("BannerArea")
        self._max = max_banners
        self._info_timeout_ms = info_timeout_ms
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(4, 4, 4, 0)
        self._layout.setSpacing(3)
        self._banners: list[BannerWidget] = []
        self._manager = manager
        manager.notification_ready.connect(self.show_notification)
        self.setVisible(False)

    def banners(self) -> list[BannerWidget]:
        """The banners shown now, oldest first."""
        return list(self._banners)

    def show_notification(self, note: Notification) -> None:
        """Show ``note`` (or count it on the banner already showing the same message)."""
        for banner in self._banners:
            if banner.note.key == note.key:
                banner.repeat()
                return
        banner = BannerWidget(note, self)
        banner.close_button.clicked.connect(lambda _=False, b=banner: self.dismiss(b))
        self._banners.append(banner)
        self._layout.addWidget(banner)
        while len(self._banners) > self._max:
            self.dismiss(self._banners[0])
        if note.level == "info" and self._info_timeout_ms > 0:
            QTimer.singleShot(self._info_timeout_ms, banner, lambda b=banner: self.dismiss(b))
        self.setVisible(True)
        self.banners_changed.emit()

    def dismiss(self, banner: BannerWidget) -> None:
        """Remove one banner."""
        if banner not in self._banners:
            return
        self._banners.remove(banner)
        self._layout.removeWidget(banner)
        banner.hide()
        banner.deleteLater()
        self.setVisible(bool(self._banners))
        self.banners_changed.emit()

    def clear(self) -> None:
        """Remove every banner."""
        for banner in list(self._banners):
            self.dismiss(banner)
