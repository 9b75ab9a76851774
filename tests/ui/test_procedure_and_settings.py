"""Procedure mode (monitor, H, AI paused, Esc), settings (dialog, isolation), hooks, CLI."""

from __future__ import annotations

import sys
import threading

import cv2
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from app.core.config import EngineConfig
from app.core.models import load_model
from app.ui.session_state import LoadedModel
from app.ui.settings import AppSettings
from tests.onnx_fixtures import SlowModel
from tests.ui.conftest import FlakySource, wait_until

pytestmark = pytest.mark.qt


def test_procedure_mode_on_chosen_monitor_with_h_and_esc(qtbot, make_window, detector_path):
    screens = QGuiApplication.screens()
    window = make_window(procedure_screen=screens[-1].name())
    window.load_model("detector", str(detector_path))
    assert window.session.wait_idle(20.0)
    window.session.open_source(FlakySource(good=10_000))
    procedure = window.enter_procedure_mode()
    assert procedure.isVisible() and procedure.isFullScreen()
    assert procedure.screen().name() == screens[-1].name()
    wait_until(qtbot, lambda: procedure.video.painted_frames >= 3, what="video in procedure")
    wait_until(
        qtbot, lambda: (s := window.session.shown()) and s[2] is not None, what="a prediction"
    )
    # Minimal overlay: box yes, no HUD, no heatmap; the main view does not draw meanwhile.
    shown = procedure.video.image()
    frame = window.session.shown()[0]
    assert shown.shape == frame.image.shape
    assert window.video.image() is None
    # H hides every AI overlay: the procedure view then shows the bare frame.
    qtbot.keyClick(procedure, Qt.Key.Key_H)
    assert window.session.ai_visible is False
    wait_until(
        qtbot,
        lambda: np.array_equal(procedure.video.image(), window.session.shown()[0].image),
        what="the bare frame",
    )
    qtbot.keyClick(procedure, Qt.Key.Key_H)
    assert window.session.ai_visible is True
    # Esc leaves; the main window draws again.
    qtbot.keyClick(procedure, Qt.Key.Key_Escape)
    assert window.procedure is None
    wait_until(qtbot, lambda: window.video.image() is not None, what="the main view again")


def test_stale_ai_shows_paused_badge_and_video_keeps_going(qtbot, make_window, detector_path):
    window = make_window()
    slow = SlowModel(load_model(detector_path, providers=["cpu"]), seconds=0.6)
    window.session._models["detector"] = LoadedModel("detector", detector_path, slow)
    window.session.set_config(EngineConfig(stale_ms=250.0))
    window.session.open_source(FlakySource(good=10_000))
    window.session._apply_models()
    wait_until(qtbot, lambda: window.session.pipeline.ai_state.state == "paused", what="AI paused")
    wait_until(
        qtbot,
        lambda: window.session.pipeline.stats().predictions >= 2,
        what="two (late) predictions",
    )
    painted = window.video.painted_frames
    wait_until(
        qtbot, lambda: window.video.painted_frames >= painted + 10, what="video while AI is slow"
    )
    # Every prediction is older than the stale limit when it is ready: never drawn.
    frame = window.session.shown()[0]
    prediction, paused = window.session.choose_prediction(frame)
    assert paused and prediction is None
    assert window.session.shown()[2] is None
    overlay = window.video.image()
    # The badge: an orange strip at the top centre that the bare frame does not have.
    top = overlay[: frame.height // 4, frame.width // 3 : 2 * frame.width // 3]
    assert np.any(np.all(top == (0, 170, 255), axis=-1))
    assert not np.any(np.all(frame.image == (0, 170, 255), axis=-1))
    status = window.session.status()
    assert status.dropped_predictions >= 2  # made, but never drawn
    window._status_changed(status)
    assert window.status_labels["ai"].text() == "AI paused"
    assert "pred not shown" in window.status_labels["dropped"].text()


def test_settings_dialog_applies_and_saves_to_the_given_file(
    qtbot, make_window, settings, tmp_path
):
    window = make_window()
    dialog = window.open_settings()
    dialog.stale_ms.setValue(400)
    dialog.min_peak.override.setChecked(True)
    dialog.min_peak.spin.setValue(0.7)
    dialog.phi_mask.setChecked(False)
    dialog.export_dir.setText(str(tmp_path / "elsewhere"))
    dialog.device_width.setValue(1920)
    dialog.device_fourcc.setText("MJPG")
    dialog.accept()
    config = window.session.config
    assert config.stale_ms == 400.0 and config.min_peak == pytest.approx(0.7)
    assert config.phi_mask is False
    assert window.session.export_dir == tmp_path / "elsewhere"
    assert window.session.source_options == {"width": 1920, "fourcc": "MJPG"}
    reread = AppSettings.at_path(settings.file_name)
    assert reread.engine_config().stale_ms == 400.0
    assert reread.engine_config().phi_mask is False
    assert reread.export_dir == tmp_path / "elsewhere"
    assert reread.device_options() == {"width": 1920, "fourcc": "MJPG"}


def test_settings_dialog_rejects_bad_fourcc(qtbot, make_window):
    window = make_window()
    dialog = window.open_settings()
    dialog.device_fourcc.setText("MJ")
    dialog.accept()
    assert dialog.isVisible() and "FOURCC" in dialog.error.text()
    dialog.reject()


def test_settings_store_is_isolated_and_tolerant(tmp_path):
    # The user's own store resolves into the test's temporary folder.
    assert "ercp-ui-tests-" in AppSettings.user_store().fileName()
    store = AppSettings.at_path(tmp_path / "s.ini")
    store.set_value("engine/overrides", '{"stale_ms": 0, "nope": 1, "smoothing": false}')
    config = store.engine_config()
    assert config.stale_ms == EngineConfig().stale_ms  # out of range: default kept
    assert config.smoothing is False
    assert any("nope" in w for w in store.warnings)
    read_only = AppSettings.at_path(tmp_path / "ro.ini", read_only=True)
    read_only.export_dir = tmp_path / "x"
    read_only.sync()
    assert not (tmp_path / "ro.ini").exists()


def test_excepthooks_route_errors_to_banners(qtbot, make_window, notifications):
    window = make_window()
    hooks_before = (sys.excepthook, threading.excepthook)
    notifications.install_excepthooks()
    assert sys.excepthook is not hooks_before[0]
    try:

        def boom():
            raise RuntimeError("worker exploded")

        thread = threading.Thread(target=boom, name="helper")
        thread.start()
        thread.join()
        try:
            raise ValueError("gui handler failed")
        except ValueError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        wait_until(qtbot, lambda: len(window.banners.banners()) >= 2, what="two banners")
        texts = [b.text() for b in window.banners.banners()]
        assert any("worker exploded" in t for t in texts)
        assert any("gui handler failed" in t for t in texts)
        sources = {n.source for n in notifications.history()}
        assert "thread helper" in sources and "app" in sources
    finally:
        notifications.uninstall_excepthooks()
    assert (sys.excepthook, threading.excepthook) == hooks_before


def test_banner_repeats_coalesce_and_dismiss(qtbot, make_window, notifications):
    window = make_window()
    for _ in range(3):
        notifications.notify("Signal lost: no input", "warning", "signal_lost")
    banners = window.banners.banners()
    assert len(banners) == 1 and "(×3)" in banners[0].text()
    banners[0].close_button.click()
    assert window.banners.banners() == []


def test_gui_command_screenshot(qtbot, tmp_path, detector_path):
    from app.ui.app import GuiOptions, run_gui

    out = tmp_path / "shot.png"
    code = run_gui(
        GuiOptions(
            source="phantom:2",
            detector=str(detector_path),
            screenshot=out,
            quit_after_frames=3,
            size=(960, 540),
            settings_path=tmp_path / "s.ini",
        )
    )
    assert code == 0
    image = cv2.imread(str(out))
    assert image.shape == (540, 960, 3)
    assert image.std() > 5  # not a blank window
    assert not (tmp_path / "s.ini").exists()  # screenshots never write settings
