"""Guard against Qt bindings that miscount references (PySide6 6.12.0 on Python 3.11)."""

from __future__ import annotations

import gc
import sys

import pytest
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QPushButton

pytestmark = pytest.mark.qt

CALLS = 2000


class _Emitter(QObject):
    fired = Signal()


def _refs() -> tuple[int, int]:
    gc.collect()
    return sys.getrefcount(None), sys.getrefcount(True)


def test_python_emit_keeps_refcounts(qapp):
    emitter = _Emitter()
    seen = []
    emitter.fired.connect(lambda: seen.append(1))
    none0, true0 = _refs()
    for _ in range(CALLS):
        emitter.fired.emit()
    none1, true1 = _refs()
    assert len(seen) == CALLS
    # A broken binding loses one reference per call; allow a little noise from the interpreter.
    assert none1 - none0 > -CALLS // 10
    assert true1 - true0 > -CALLS // 10


def test_cpp_signal_to_python_slot_keeps_refcounts(qapp):
    button = QPushButton()
    seen = []
    button.clicked.connect(lambda: seen.append(1))
    none0, true0 = _refs()
    for _ in range(CALLS):
        button.click()
    none1, true1 = _refs()
    button.deleteLater()
    assert len(seen) == CALLS
    assert none1 - none0 > -CALLS // 10
    assert true1 - true0 > -CALLS // 10


def test_timer_slot_keeps_refcounts(qapp):
    timer = QTimer()
    timer.setInterval(0)
    seen = []
    timer.timeout.connect(lambda: seen.append(1))
    none0, _ = _refs()
    timer.start()
    while len(seen) < CALLS // 4:
        qapp.processEvents()
    timer.stop()
    none1, _ = _refs()
    assert none1 - none0 > -len(seen) // 10
