"""The main window on the phantom: live video, models, overlay toggles, snapshot, banners."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.ui.banners import BannerArea
from tests.ui.conftest import FlakySource, wait_until

pytestmark = pytest.mark.qt


def _load_models(qtbot, window, detector_path, classifier_path=None):
    window.load_model("detector", str(detector_path))
    if classifier_path is not None:
        window.load_model("classifier", str(classifier_path))
    assert window.session.wait_idle(20.0)
    roles = {"detector"} | ({"classifier"} if classifier_path else set())
    assert set(window.session.models()) == roles


def _wait_prediction(qtbot, window):
    wait_until(
        qtbot,
        lambda: (s := window.session.shown()) is not None and s[2] is not None,
        what="a frame drawn with a prediction",
    )
    return window.session.shown()


def test_phantom_live_with_models_and_toggles(
    qtbot, make_window, phantom, detector_path, classifier_path
):
    window = make_window()
    _load_models(qtbot, window, detector_path, classifier_path)
    assert window.session.open_source(phantom)
    wait_until(qtbot, lambda: window.video.painted_frames >= 5, what="5 painted frames")
    frame, overlay, prediction = _wait_prediction(qtbot, window)
    # The view shows exactly the renderer's output, at frame size.
    assert window.video.image() is overlay
    assert overlay.shape == frame.image.shape
    assert prediction.difficulty is not None

    # The model panel shows name, version and provenance of each model.
    det_text = window.model_panel.labels["detector"].text()
    assert "test-blob" in det_text and "v0.1" in det_text and "tests/onnx_fixtures.py" in det_text
    assert "test-colour" in window.model_panel.labels["classifier"].text()

    # Every toggle reaches the session's overlay options.
    panel = window.overlay_panel
    for name, box in panel.checks.items():
        before = getattr(window.session.options, name)
        box.click()
        assert getattr(window.session.options, name) is (not before)
        box.click()
        assert getattr(window.session.options, name) is before
    panel.opacity.setValue(80)
    assert window.session.options.heatmap_opacity == pytest.approx(0.8)

    # With every AI element off the overlay is the frame plus nothing the AI said.
    for name in ("heatmap", "box", "centroid", "difficulty", "cam", "hud"):
        panel.checks[name].setChecked(False)
    frame, overlay, _ = window.session.shown()
    assert np.array_equal(overlay, frame.image)

    # H hides every AI overlay at once, even with the toggles on.
    for name in ("heatmap", "box", "difficulty", "hud"):
        panel.checks[name].setChecked(True)
    qtbot.keyClick(window, Qt.Key.Key_H)
    assert window.session.ai_visible is False
    frame, overlay, prediction = window.session.shown()
    assert prediction is None
    qtbot.keyClick(window, Qt.Key.Key_H)
    assert window.session.ai_visible is True

    # The status bar says the AI runs on CPU, visibly.
    window._status_changed(window.session.status())
    assert "CPU" in window.status_labels["provider"].text()
    assert "background" in window.status_labels["provider"].styleSheet()
    assert "source 30 fps" in window.status_labels["fps"].text()


def test_snapshot_exports_the_annotated_frame(qtbot, make_window, settings, phantom, detector_path):
    opened = []
    window = make_window()
    window.exports_panel.opener = opened.append
    _load_models(qtbot, window, detector_path)
    window.session.open_source(phantom)
    _wait_prediction(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_S)
    wait_until(qtbot, lambda: window.session.exports(), what="the export")
    record = window.session.exports()[0]
    for path in (record.overlay, record.raw, record.sidecar):
        assert path.is_file() and path.stat().st_size > 0
        assert path.parent == settings.export_dir
    sidecar = json.loads(record.sidecar.read_text())
    assert sidecar["frame"] == record.frame_index
    assert [m["name"] for m in sidecar["models"]] == ["test-blob"]
    assert sidecar["phi_mask"] is True
    # The exported overlay is the image the view showed (PHI-masked outside the field).
    import cv2

    exported = cv2.imread(str(record.overlay))
    x, y, w, h = sidecar["roi"]
    shown = window.session.shown()
    assert exported.shape == shown[1].shape
    assert exported[y : y + h, x : x + w].mean() > 10
    # Listed with a thumbnail; activating it opens the file.
    assert window.export_paths() == [record.overlay]
    assert not window.exports_panel.list.item(0).icon().isNull()
    window.exports_panel.open_item(0)
    assert opened == [record.overlay]


def test_signal_loss_shows_a_banner_and_video_continues(qtbot, make_window):
    window = make_window()
    source = FlakySource(good=6, lost_s=0.5)
    window.session.open_source(source)
    banners: BannerArea = window.banners
    wait_until(
        qtbot,
        lambda: any("Signal lost" in b.text() for b in banners.banners()),
        what="a signal-lost banner",
    )
    text = next(b.text() for b in banners.banners() if "Signal lost" in b.text())
    assert "HDMI unplugged" in text  # the reason is shown
    painted = window.video.painted_frames
    wait_until(
        qtbot,
        lambda: any("Signal restored" in b.text() for b in banners.banners()),
        what="a signal-restored banner",
    )
    wait_until(
        qtbot,
        lambda: window.video.painted_frames > painted + 3,
        what="video after the signal came back",
    )
    assert window.isVisible()


def test_refused_model_is_a_banner_not_a_crash(qtbot, make_window, broken_model_path, phantom):
    window = make_window()
    window.session.open_source(phantom)
    window.load_model("detector", str(broken_model_path("no_metadata")))
    assert window.session.wait_idle(10.0)
    assert window.session.models() == {}
    texts = [b.text() for b in window.banners.banners()]
    assert any("missing ercp.contract" in t for t in texts), texts
    frames = window.video.painted_frames
    wait_until(qtbot, lambda: window.video.painted_frames > frames + 2, what="more video")


def test_unreadable_file_is_a_banner(qtbot, make_window, tmp_path):
    window = make_window()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    assert window.open_source(str(bad)) is False
    assert window.session.source_info is None
    assert any(b.note.level == "error" for b in window.banners.banners())


def test_status_and_record_keys(qtbot, make_window, phantom, settings):
    window = make_window()
    window.session.open_source(phantom)
    wait_until(qtbot, lambda: window.video.painted_frames >= 3, what="video")
    qtbot.keyClick(window, Qt.Key.Key_R)
    assert window.session.recording
    wait_until(
        qtbot,
        lambda: window.record_panel.elapsed.text().startswith("REC"),
        what="the elapsed-time label",
    )
    qtbot.wait(400)
    qtbot.keyClick(window, Qt.Key.Key_R)
    assert not window.session.recording
    folder = window.session.last_recording
    assert folder is not None and (folder / "manifest.json").is_file()
    assert folder.parent == settings.export_dir
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "closed" and manifest["frames_written"] > 0
