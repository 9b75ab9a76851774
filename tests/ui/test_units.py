"""Small pure pieces of the UI: letterboxing, the video view, parsing, adapters, timeline data."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QRect

from app.core.errors import ModelContractError, SourceError
from app.core.frame import Difficulty, Frame, Prediction
from app.ui import engine
from app.ui.app import parse_size
from app.ui.banners import describe_exception
from app.ui.session_controller import poll_interval_ms
from app.ui.session_state import TimelineSeries
from app.ui.video_view import VideoView, check_frame_image, letterbox_rect

pytestmark = pytest.mark.qt


@pytest.mark.parametrize(
    ("image", "area", "expected"),
    [
        ((1920, 1080), QRect(0, 0, 960, 540), QRect(0, 0, 960, 540)),
        ((1920, 1080), QRect(0, 0, 1000, 1000), QRect(0, 219, 1000, 562)),
        ((640, 480), QRect(10, 20, 1280, 480), QRect(330, 20, 640, 480)),
    ],
)
def test_letterbox_keeps_aspect_and_centres(image, area, expected):
    assert letterbox_rect(*image, area) == expected


def test_check_frame_image_refuses_non_bgr_and_copies_only_when_needed():
    good = np.zeros((4, 6, 3), np.uint8)
    assert check_frame_image(good) is good
    strided = np.zeros((4, 12, 3), np.uint8)[:, ::2]
    fixed = check_frame_image(strided)
    assert fixed.flags.c_contiguous and fixed.shape == (4, 6, 3)
    for bad in (np.zeros((4, 6), np.uint8), np.zeros((4, 6, 3), np.float32)):
        with pytest.raises(SourceError, match="BGR uint8"):
            check_frame_image(bad)


@pytest.mark.parametrize("scaler", ["cv2", "qt"])
def test_video_view_paints_the_frame_letterboxed(qtbot, scaler):
    view = VideoView(scaler=scaler)
    qtbot.addWidget(view)
    view.resize(200, 200)
    view.show()
    image = np.zeros((50, 100, 3), np.uint8)
    image[:, :, 2] = 255  # red in BGR
    view.set_image(image)
    grabbed = view.grab().toImage()
    assert view.painted_frames == 1
    centre = grabbed.pixelColor(100, 100)
    assert (centre.red(), centre.green(), centre.blue()) == (255, 0, 0)
    corner = grabbed.pixelColor(5, 5)  # outside the 200x100 letterboxed picture
    assert (corner.red(), corner.green(), corner.blue()) == (0, 0, 0)
    assert view.image() is image


def test_video_view_rejects_unknown_scaler():
    with pytest.raises(ValueError, match="scaler"):
        VideoView(scaler="magic")


def test_parse_size():
    assert parse_size("1920x1080") == (1920, 1080)
    for bad in ("1920", "axb", "10x10"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)


def test_poll_interval_is_a_quarter_frame_within_limits():
    assert poll_interval_ms(30.0) == 8
    assert poll_interval_ms(60.0) == 4
    assert poll_interval_ms(5.0) == 10
    assert poll_interval_ms(0.0) == 10


def test_describe_exception_keeps_our_messages_and_names_others():
    assert describe_exception(ModelContractError("x.onnx: bad")) == "x.onnx: bad"
    assert describe_exception(KeyError("k")) == "KeyError: 'k'"
    assert describe_exception(RuntimeError()) == "RuntimeError"


def _frame(i: int) -> Frame:
    return Frame(image=np.zeros((8, 8, 3), np.uint8), index=i, t=float(i), position_s=i / 10)


def test_prediction_from_record_round_trips_the_saved_fields():
    record = {
        "frame": 5,
        "t": 0.5,
        "box": [1.0, 2.0, 3.0, 4.0],
        "peak": 0.8,
        "difficulty": {"label": "easy", "probs": {"easy": 0.7, "difficult": 0.3}},
        "latency_ms": 12.0,
        "pred_frame": 4,
    }
    prediction = engine.prediction_from_record(record, _frame(5))
    assert prediction.box == (1.0, 2.0, 3.0, 4.0) and prediction.peak == 0.8
    assert prediction.frame_index == 4
    assert prediction.difficulty == Difficulty("easy", {"easy": 0.7, "difficult": 0.3})
    assert engine.prediction_from_record({"frame": 5, "peak": None}, _frame(5)) is None
    assert engine.prediction_from_record(None, _frame(5)) is None


def test_timeline_series_sorts_by_frame_and_replaces_replayed_points():
    series = TimelineSeries(fps=10.0)
    series.add(3, Prediction(3, 0.0, 0.0, None, 0.2))
    series.add(
        1,
        Prediction(
            1, 0.0, 0.0, None, 0.9, difficulty=Difficulty("easy", {"easy": 0.6, "hard": 0.4})
        ),
    )
    series.add(3, Prediction(3, 0.0, 0.0, None, 0.5))  # replayed after a seek back
    t, peak, probs = series.arrays()
    assert t.tolist() == [0.1, 0.3] and peak.tolist() == [0.9, 0.5]
    assert probs["easy"][0] == 0.6 and np.isnan(probs["easy"][1])
    assert set(probs) == {"easy", "hard"} and len(series) == 2


def test_device_options_go_to_devices_only(monkeypatch):
    seen = {}

    def fake_open(spec, **options):
        seen[spec] = options
        return object()

    monkeypatch.setattr("app.core.sources.open_source", fake_open)
    options = {"width": 1920, "fps": 60.0}
    engine.open_source("device:0", options)
    engine.open_source("/dev/video2", options)
    engine.open_source("phantom", options)
    engine.open_source("/data/folder", options)
    assert seen == {"device:0": options, "/dev/video2": options, "phantom": {}, "/data/folder": {}}
