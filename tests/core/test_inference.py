"""The inference stages: crop/resize, heatmap -> frame box, Detector and Classifier."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.contract import InputSpec
from app.core.errors import ModelContractError
from app.core.geometry import box_centre, iou, soft_mask
from app.core.inference import (
    Classifier,
    Detector,
    classifier_region,
    postprocess_heatmap,
    prepare_input,
)
from app.core.models import load_model

STRETCH = InputSpec("image", 64, 64, "stretch")
LETTERBOX = InputSpec("image", 64, 64, "letterbox")


def frame_with_blob(box, shape=(120, 160), roi=None, channel=2, level=255.0):
    """A black frame with a soft mask of ``box`` painted into one channel inside ``roi``."""
    height, width = shape
    image = np.zeros((height, width, 3), np.uint8)
    mask = soft_mask(box, (height, width)) * level
    if roi is not None:
        x, y, w, h = roi
        keep = np.zeros_like(mask)
        keep[y : y + h, x : x + w] = mask[y : y + h, x : x + w]
        mask = keep
    image[..., channel] = np.round(mask).astype(np.uint8)
    return image


def test_prepare_input_stretch_maps_corners_back():
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    pixels, tf = prepare_input(image, (20, 10, 100, 80), STRETCH)
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    assert pixels.flags["C_CONTIGUOUS"]
    assert tf.to_frame((0, 0, 64, 64)) == pytest.approx((20, 10, 100, 80))
    assert tf.rect == (20, 10, 100, 80)


def test_prepare_input_keeps_bgr_pixels_untouched():
    image = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    pixels, tf = prepare_input(image, None, STRETCH)
    np.testing.assert_array_equal(pixels, image)  # no colour conversion, no resampling
    assert tf.to_frame((1, 2, 3, 4)) == pytest.approx((1, 2, 3, 4))


def test_prepare_input_letterbox_pads_and_centres():
    image = np.full((120, 160, 3), 200, np.uint8)
    pixels, tf = prepare_input(image, (0, 0, 160, 80), LETTERBOX)  # 2:1 crop
    assert tf.content == (0, 16, 64, 32)
    assert (pixels[:16] == 0).all() and (pixels[48:] == 0).all()
    assert (pixels[16:48] == 200).all()
    assert tf.to_frame((0, 16, 64, 32)) == pytest.approx((0, 0, 160, 80))


def test_prepare_input_clips_roi_and_rejects_bad_input():
    image = np.zeros((50, 50, 3), np.uint8)
    _, tf = prepare_input(image, (-10, -10, 40, 100), STRETCH)
    assert tf.rect == (0, 0, 30, 50)
    with pytest.raises(ValueError, match="outside"):
        prepare_input(image, (60, 60, 10, 10), STRETCH)
    with pytest.raises(ValueError, match="BGR uint8"):
        prepare_input(np.zeros((50, 50), np.uint8), None, STRETCH)


@pytest.mark.parametrize("spec", [STRETCH, LETTERBOX], ids=["stretch", "letterbox"])
@pytest.mark.parametrize(
    ("box", "roi"),
    [
        ((70.0, 40.0, 30.0, 24.0), (20, 10, 120, 100)),
        ((30.0, 60.0, 20.0, 30.0), None),
        ((100.0, 20.0, 40.0, 20.0), (40, 0, 120, 120)),
    ],
)
def test_soft_mask_round_trips_through_crop_resize_and_heatmap(spec, box, roi):
    """A soft mask placed in a frame comes back as its box in frame pixels."""
    image = frame_with_blob(box, roi=roi)
    pixels, tf = prepare_input(image, roi, spec)
    # The heatmap at 1/4 of the input resolution, like the fixture detector.
    heat = pixels[..., 2].astype(np.float32).reshape(16, 4, 16, 4).mean(axis=(1, 3)) / 255.0
    det = postprocess_heatmap(heat, tf, threshold=0.6, min_peak=0.3)
    assert det.box is not None
    assert iou(det.box, box) > 0.85
    (cx, cy), (gx, gy) = box_centre(det.box), box_centre(box)
    assert abs(cx - gx) < 2.5 and abs(cy - gy) < 2.5
    assert det.rect == tf.rect


def test_detector_end_to_end_with_onnx_model(detector, letterbox_detector_path):
    box, roi = (80.0, 50.0, 28.0, 22.0), (20, 10, 120, 100)
    image = frame_with_blob(box, roi=roi)
    for model in (detector, load_model(letterbox_detector_path, providers=["cpu"])):
        det = Detector(model).predict(image, roi)
        assert det.box is not None and iou(det.box, box) > 0.85
        assert det.peak > 0.8
        assert set(det.timings_ms) == {"preprocess", "detector", "postprocess"}
        assert det.heatmap.dtype == np.float32 and det.heatmap.max() <= 1.0


def test_letterbox_padding_heat_is_ignored():
    image = np.zeros((120, 160, 3), np.uint8)
    _, tf = prepare_input(image, (0, 0, 160, 80), LETTERBOX)
    heat = np.zeros((16, 16), np.float32)
    heat[0, 8] = 1.0  # in the top padding bar
    heat[8, 4] = 0.7  # inside the picture
    det = postprocess_heatmap(heat, tf, 0.6, 0.5)
    assert det.peak == pytest.approx(0.7)
    assert det.heatmap.shape == (8, 16)
    x, y, w, h = det.box
    assert 0 <= y and y + h <= 80


def test_presence_needs_min_peak(detector):
    box = (60.0, 40.0, 30.0, 30.0)
    dim = frame_with_blob(box, level=100.0)  # peak ~0.39
    assert Detector(detector).predict(dim).box is None
    assert Detector(detector).predict(dim).peak == pytest.approx(100 / 255, abs=0.03)
    assert Detector(detector, min_peak=0.3).predict(dim).box is not None


def test_box_threshold_override_changes_the_box(detector):
    image = frame_with_blob((60.0, 40.0, 30.0, 30.0))
    tight = Detector(detector, box_threshold=0.9).predict(image).box
    loose = Detector(detector, box_threshold=0.3).predict(image).box
    assert tight[2] < loose[2] and tight[3] < loose[3]


def test_wrappers_refuse_the_wrong_kind(detector, classifier):
    with pytest.raises(ModelContractError, match="expected a detector"):
        Detector(classifier)
    with pytest.raises(ModelContractError, match="expected a classifier"):
        Classifier(detector)


def test_classifier_on_the_field(classifier):
    image = np.zeros((120, 160, 3), np.uint8)
    image[10:110, 20:140] = (0, 0, 200)  # red field
    result = Classifier(classifier).predict(image, (20, 10, 120, 100), box=(50, 50, 10, 10))
    assert result.region == "field" and result.cam_region == (20, 10, 120, 100)
    assert list(result.probs) == ["easy", "difficult"]
    assert sum(result.probs.values()) == pytest.approx(1.0, abs=1e-6)
    assert result.label == "difficult"  # class 1 follows red
    assert result.cam.shape == (32, 32) and result.cam.max() == pytest.approx(200 / 255, abs=1e-3)


def test_classifier_crops_around_the_box(box_classifier_path):
    model = Classifier(load_model(box_classifier_path, providers=["cpu"]))
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :, 0] = 200  # blue everywhere ...
    image[30:70, 50:90] = (0, 0, 255)  # ... but red around the papilla
    near = model.predict(image, None, box=(62.0, 42.0, 16.0, 16.0))
    assert near.region == "box" and near.cam_region == (54, 34, 32, 32)
    assert near.label == "difficult" and near.cam is None
    no_box = model.predict(image, None, box=None)
    assert no_box.region == "field (no box)" and no_box.cam_region == (0, 0, 160, 120)
    assert no_box.label == "easy"


def test_classifier_region_is_clipped_to_the_field():
    rect, region = classifier_region((5.0, 5.0, 10.0, 10.0), 1.0, (0, 0, 100, 100))
    assert region == "box" and rect == (0, 0, 25, 25)
    assert classifier_region((5.0, 5.0, 10.0, 10.0), None, (0, 0, 100, 100)) == (
        (0, 0, 100, 100),
        "field",
    )


def test_bench_conv_detector_is_a_working_detector(tmp_path):
    from tests.onnx_fixtures import conv_detector_model, save

    model = load_model(
        save(conv_detector_model((64, 64), layers=2), tmp_path / "conv.onnx"), providers=["cpu"]
    )
    box = (20.0, 16.0, 24.0, 20.0)
    det = Detector(model).predict(frame_with_blob(box, shape=(64, 64)))
    assert det.heatmap.shape == (16, 16)
    assert det.box is not None and iou(det.box, box) > 0.8
