"""Replay: a video file with play/pause, step, seek, speed and the timeline; a recording."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QPoint, Qt

from tests.ui.conftest import small_phantom, wait_until, write_video

pytestmark = pytest.mark.qt


def _index(window) -> int:
    return window.session.source.index


def test_replay_file_step_seek_speed_and_timeline(qtbot, make_window, tmp_path, detector_path):
    video = write_video(tmp_path / "clip.avi", frames=40, fps=10.0)
    window = make_window()
    window.load_model("detector", str(detector_path))
    assert window.session.wait_idle(20.0)
    assert window.open_source(str(video))
    info = window.session.source_info
    assert info.seekable and info.frame_count == 40
    assert window.replay_panel.isVisible() and window.timeline.isVisible()
    assert window.replay_panel.slider.maximum() == 39
    wait_until(qtbot, lambda: _index(window) >= 2, what="playback")
    wait_until(qtbot, lambda: len(window.session.timeline()) > 0, what="timeline data")

    # Space pauses; → and ← step one frame and show it at once.
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.session.source.paused
    start = _index(window)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert _index(window) == start + 1
    assert window.session.shown()[0].index == start + 1
    qtbot.wait(250)  # the paused source keeps re-delivering it; nothing older comes back
    assert window.session.shown()[0].index == start + 1
    qtbot.keyClick(window, Qt.Key.Key_Left)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert _index(window) == start - 1
    assert window.session.shown()[0].index == start - 1

    # The seek slider jumps (and stays paused).
    window.replay_panel.seek_requested.emit(30)
    assert _index(window) == 30 and window.session.source.paused
    wait_until(qtbot, lambda: window.replay_panel.slider.value() == 30, what="slider update")
    assert "frame 31/40" in window.replay_panel.position.text()

    # Clicking the timeline seeks to the time under the mouse.
    window.timeline.set_duration(4.0)
    qtbot.wait(50)
    point = window.timeline.view_to_widget(1.5).toPoint()
    qtbot.mouseClick(window.timeline.plot.viewport(), Qt.MouseButton.LeftButton, pos=point)
    assert abs(_index(window) - 15) <= 1
    wait_until(
        qtbot,
        lambda: abs(window.timeline.cursor_position() - _index(window) / 10) < 0.11,
        what="the timeline cursor",
    )

    # Speed 0.25x .. 4x.
    combo = window.replay_panel.speed
    combo.setCurrentIndex(combo.findData(4.0))
    assert window.session.source.speed == 4.0
    combo.setCurrentIndex(combo.findData(0.25))
    assert window.session.source.speed == 0.25

    # A snapshot while replaying is marked on the timeline.
    window.snapshot()
    wait_until(qtbot, lambda: window.timeline.marker_times(), what="an export marker")
    assert window.timeline.marker_times() == [pytest.approx(_index(window) / 10.0)]

    # Play again.
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.session.source.paused


def test_recording_replays_with_saved_predictions_and_manifest(
    qtbot, make_window, settings, detector_path, classifier_path
):
    window = make_window()
    window.load_model("detector", str(detector_path))
    window.load_model("classifier", str(classifier_path))
    assert window.session.wait_idle(20.0)
    window.session.open_source(small_phantom(seed=3))
    wait_until(
        qtbot, lambda: (s := window.session.shown()) and s[2] is not None, what="a prediction"
    )
    assert window.session.start_recording()
    qtbot.wait(300)
    window.snapshot()  # goes into the recording's snapshots/ folder
    wait_until(qtbot, lambda: window.session.exports(), what="the snapshot")
    qtbot.wait(500)
    window.session.stop_recording()
    folder = window.session.last_recording
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "closed"
    assert [m["name"] for m in manifest["models"]] == ["test-blob", "test-colour"]
    assert (folder / "snapshots").is_dir()

    assert window.open_source(str(folder))
    info = window.session.source_info
    assert info.recording is not None and info.seekable
    assert window.recording_panel.isVisible()
    rows = dict(window.recording_panel.rows)
    assert rows["status"] == "closed"
    assert "test-blob" in rows["models"] and "test-colour" in rows["models"]
    # The timeline holds the saved predictions, one point per recorded frame.
    curve_x, curve_y = window.timeline.peak_curve.getData()
    assert len(curve_x) == info.frame_count
    assert set(window.timeline.class_curves) == {"easy", "difficult"}
    assert len(window.timeline.marker_times()) == 1
    # Frames are drawn with the saved predictions (the models are not run again).
    window.session.set_paused(True)
    window.session.seek(info.frame_count // 2)
    frame, _, prediction = window.session.shown()
    saved = window.session.source.prediction(frame.index)
    assert prediction is not None and saved is not None
    assert prediction.peak == pytest.approx(saved["peak"])
    assert window.session.status().ai_state == "saved"
    assert window.session.pipeline.stats().frames_inferred == 0
    # Unchecking "saved predictions" runs the loaded models instead.
    window.recording_panel.saved.setChecked(False)
    window.session.set_paused(False)
    wait_until(
        qtbot,
        lambda: window.session.pipeline.stats().frames_inferred > 0,
        what="inference on the replay",
    )


def test_slider_click_seeks(qtbot, make_window, tmp_path):
    video = write_video(tmp_path / "clip.avi", frames=30, fps=10.0)
    window = make_window()
    window.open_source(str(video))
    window.session.set_paused(True)
    slider = window.replay_panel.slider
    qtbot.wait(50)
    # A click on the far right of the groove pages towards it.
    before = window.session.source.index
    qtbot.mouseClick(
        slider, Qt.MouseButton.LeftButton, pos=QPoint(slider.width() - 3, slider.height() // 2)
    )
    assert window.session.source.index > before
