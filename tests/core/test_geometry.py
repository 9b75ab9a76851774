import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import geometry as g
from app.core.errors import InvalidBoxError


@st.composite
def boxes_inside(draw, max_size=160):
    """A box of at least 8 px a side, any aspect ratio, lying inside an image."""
    width = draw(st.integers(16, max_size))
    height = draw(st.integers(16, max_size))
    w = draw(st.floats(8.0, float(width)))
    h = draw(st.floats(8.0, float(height)))
    x = draw(st.floats(0.0, width - w))
    y = draw(st.floats(0.0, height - h))
    return (x, y, w, h), (height, width)


@settings(max_examples=300, deadline=None)
@given(boxes_inside())
def test_soft_mask_round_trips_to_the_box(case):
    box, shape = case
    recovered, peak = g.box_from_heatmap(g.soft_mask(box, shape))
    assert recovered is not None
    assert 0.5 < peak <= 1.0
    assert g.iou(recovered, box) >= 0.97


def test_round_trip_reaches_the_analytic_ceiling():
    # The 0.6 contour lies at 1.0108 sigma, so the recovered box is 1.0108x the true one.
    box = (40.3, 30.7, 60.0, 40.0)
    recovered, _ = g.box_from_heatmap(g.soft_mask(box, (120, 160)))
    scale = math.sqrt(-2 * math.log(0.6))
    expected = 1 / scale**2
    assert g.iou(recovered, box) == pytest.approx(expected, abs=2e-3)
    assert g.box_centre(recovered) == pytest.approx(g.box_centre(box), abs=0.05)


def test_subpixel_edges_beat_whole_pixel_edges_on_coarse_maps():
    # A heatmap at 1/8 of the frame: whole-pixel edges would be off by up to 8 frame px.
    box = (13.0, 21.0, 37.0, 29.0)
    coarse = g.soft_mask(g.scale_box(box, 1 / 8, 1 / 8), (16, 16))
    recovered, _ = g.box_from_heatmap(coarse)
    assert g.iou(g.scale_box(recovered, 8, 8), box) > 0.93


def test_soft_mask_peak_and_sigma():
    mask = g.soft_mask((10, 20, 20, 10), (40, 40))
    assert mask.dtype == np.float32 and mask.shape == (40, 40)
    # The centre (20, 25) is a pixel corner, so the sampled maximum is just below the analytic 1.
    assert 0.99 < mask.max() < 1.0
    # ... one sigma (w/2 = 10 px) to the right of the centre the value is e^-1/2.
    row = mask[24] / mask[24].max()
    assert np.interp(30.0, np.arange(40) + 0.5, row) == pytest.approx(math.exp(-0.5), abs=0.01)


@pytest.mark.parametrize(
    "box, shape, expected",
    [
        ((-20.0, 10.0, 40.0, 20.0), (50, 50), (0.0, None)),  # touches the left border
        ((30.0, 30.0, 40.0, 40.0), (50, 50), (None, 50.0)),  # runs off the bottom-right
    ],
)
def test_boxes_touching_the_border_are_clipped(box, shape, expected):
    recovered, _ = g.box_from_heatmap(g.soft_mask(box, shape))
    x0, y0 = recovered[0], recovered[1]
    x1, y1 = x0 + recovered[2], y0 + recovered[3]
    assert x0 >= 0 and y0 >= 0 and x1 <= shape[1] and y1 <= shape[0]
    low, high = expected
    if low is not None:
        assert x0 == 0.0
    if high is not None:
        assert x1 == high and y1 == high


def test_only_the_component_with_the_peak_is_kept():
    hm = g.soft_mask((10, 10, 12, 12), (64, 64)) + 0.9 * g.soft_mask((40, 40, 12, 12), (64, 64))
    box, peak = g.box_from_heatmap(hm)
    assert box[0] < 20 and box[1] < 20 and box[0] + box[2] < 30
    assert peak == pytest.approx(hm.max())


@pytest.mark.parametrize(
    "heatmap",
    [
        np.zeros((0, 0)),
        np.zeros((8, 8)),
        np.full((8, 8), 0.3),
        np.full((8, 8), np.nan),
        -np.ones((8, 8)),
    ],
    ids=["empty", "zeros", "flat", "nan", "negative"],
)
def test_no_box_for_empty_flat_or_nan_maps(heatmap):
    box, peak = g.box_from_heatmap(heatmap)
    assert box is None
    assert math.isfinite(peak)


def test_nan_pixels_count_as_background():
    hm = g.soft_mask((8, 8, 16, 16), (32, 32))
    hm[0, 0] = np.nan
    box, _ = g.box_from_heatmap(hm)
    assert g.iou(box, (8, 8, 16, 16)) > 0.97


@pytest.mark.parametrize(
    "bad", [(0, 0, 0, 5), (0, 0, 5, -1), (0, 0, float("nan"), 5), (1, 2, 3), "abcd", None]
)
def test_invalid_boxes_raise_value_error(bad):
    with pytest.raises(ValueError):
        g.validate_box(bad)
    with pytest.raises(InvalidBoxError):
        g.iou(bad, (0, 0, 1, 1))


finite_boxes = st.tuples(
    st.floats(-50, 50), st.floats(-50, 50), st.floats(0.5, 80), st.floats(0.5, 80)
)


@given(finite_boxes, finite_boxes)
def test_metrics_are_bounded_and_symmetric(a, b):
    for value in (g.iou(a, b), g.precision(a, b), g.recall(a, b)):
        assert 0.0 <= value <= 1.0 + 1e-9
    assert g.iou(a, b) == pytest.approx(g.iou(b, a))
    assert g.precision(a, b) == pytest.approx(g.recall(b, a))
    assert g.centroid_distance(a, b, 100, 80) == pytest.approx(g.centroid_distance(b, a, 100, 80))
    assert g.iou(a, a) == pytest.approx(1.0)


def test_centroid_distance_is_normalised_by_image_size():
    assert g.centroid_distance((0, 0, 10, 10), (30, 40, 10, 10), 300, 400) == pytest.approx(
        math.hypot(0.1, 0.1)
    )


def test_success_curves_and_summary():
    assert g.IOU_THRESHOLDS == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    assert g.CENTROID_THRESHOLDS[0] == 0.01 and g.CENTROID_THRESHOLDS[-1] == 0.1
    ious = [0.0, 0.35, 0.55, 0.95]
    np.testing.assert_allclose(g.iou_success(ious, [0.0, 0.3, 0.5, 0.9]), [0.75, 0.75, 0.5, 0.25])
    curve = g.iou_success(ious)
    assert np.all(np.diff(curve) <= 0)
    gt = (10, 10, 20, 20)
    metrics = [g.evaluate_box(gt, gt, 100, 100), g.evaluate_box(None, gt, 100, 100)]
    summary = g.summarize(metrics)
    assert summary["miou"] == pytest.approx(0.5)
    assert summary["miss_rate"] == pytest.approx(0.5)
    assert summary["centroid_distance"] == pytest.approx(0.0)
    assert summary["success_cd_0.05"] == pytest.approx(0.5)


def test_clip_box():
    assert g.clip_box((-5, -5, 10, 10), 100, 100) == (0.0, 0.0, 5.0, 5.0)
    assert g.clip_box((200, 0, 10, 10), 100, 100) is None
