"""The overlay renderer: each toggle changes its own pixels and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.frame import Difficulty, Prediction
from app.core.geometry import soft_mask
from app.core.overlay import HudInfo, OverlayOptions, render_overlay

H, W = 240, 320
ROI = (60, 20, 200, 200)
BOX = (140.0, 90.0, 40.0, 30.0)
NOTHING = OverlayOptions(
    heatmap=False, box=False, centroid=False, difficulty=False, cam=False, hud=False
)


def frame() -> np.ndarray:
    image = np.zeros((H, W, 3), np.uint8)
    x, y, w, h = ROI
    image[y : y + h, x : x + w] = (90, 100, 160)
    image[2:12, 2:50] = 255  # "burned-in patient text" outside the field
    return image


def prediction(**changes) -> Prediction:
    roi_box = (BOX[0] - ROI[0], BOX[1] - ROI[1], BOX[2], BOX[3])
    heat = soft_mask(tuple(v / 4 for v in roi_box), (50, 50))  # map at 1/4 of the ROI
    values = dict(
        frame_index=0,
        frame_t=0.0,
        ready_t=0.01,
        box=BOX,
        peak=0.9,
        heatmap=heat,
        roi=ROI,
        difficulty=Difficulty("easy", {"easy": 0.7, "difficult": 0.3}),
        cam=soft_mask((20, 20, 10, 10), (50, 50)),
        cam_region=ROI,
    )
    values.update(changes)
    return Prediction(**values)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.any(a != b, axis=2)


def only(**on) -> OverlayOptions:
    return OverlayOptions(**{**NOTHING.__dict__, **on})


def test_nothing_to_draw_returns_an_equal_copy():
    image = frame()
    out = render_overlay(image, prediction(), NOTHING)
    assert out is not image and np.array_equal(out, image)
    assert np.array_equal(render_overlay(image, None, OverlayOptions()), image)


def test_input_is_never_modified():
    image = frame()
    before = image.copy()
    render_overlay(
        image,
        prediction(),
        OverlayOptions(cam=True),
        HudInfo(30, 40, "CPU", "m 1"),
        phi_mask=True,
        ai_paused=True,
    )
    assert np.array_equal(image, before)


def test_heatmap_tints_only_the_hot_part_of_the_roi():
    image = frame()
    diff = changed(render_overlay(image, prediction(), only(heatmap=True)), image)
    x, y, w, h = ROI
    assert diff[int(BOX[1] + BOX[3] / 2), int(BOX[0] + BOX[2] / 2)]
    outside = diff.copy()
    outside[y : y + h, x : x + w] = False
    assert not outside.any()
    assert not diff[y + 5, x + 5]  # cold corner of the field stays as it was


def test_heatmap_opacity_scales_the_tint():
    image = frame()
    cy, cx = int(BOX[1] + BOX[3] / 2), int(BOX[0] + BOX[2] / 2)

    def delta(opacity):
        out = render_overlay(image, prediction(), only(heatmap=True, heatmap_opacity=opacity))
        return np.abs(out[cy, cx].astype(int) - image[cy, cx]).sum()

    assert delta(0.0) == 0 < delta(0.3) < delta(0.9)


def test_box_and_centroid_toggles():
    image = frame()
    box_only = changed(render_overlay(image, prediction(), only(box=True)), image)
    x, y, w, h = BOX
    assert box_only[int(y), int(x + w / 2)]  # top edge
    assert not box_only[int(y + h / 2), int(x + w / 2)]  # centre untouched without centroid
    cross = changed(render_overlay(image, prediction(), only(centroid=True)), image)
    assert cross[int(y + h / 2), int(x + w / 2)]
    assert not cross[int(y), int(x + 2)]
    none = render_overlay(image, prediction(box=None), only(box=True, centroid=True))
    assert np.array_equal(none, image)


def test_difficulty_panel_top_right():
    image = frame()
    diff = changed(render_overlay(image, prediction(), only(difficulty=True)), image)
    ys, xs = np.nonzero(diff)
    assert xs.min() > W / 2 and ys.max() < H / 2
    no_class = render_overlay(image, prediction(difficulty=None), only(difficulty=True))
    assert np.array_equal(no_class, image)


def test_cam_toggle():
    image = frame()
    diff = changed(render_overlay(image, prediction(), only(cam=True)), image)
    assert diff[ROI[1] + 4 * 25, ROI[0] + 4 * 25]  # CAM peak (map cell 25, 25)
    assert not diff[: ROI[1]].any()


def test_hud_bottom_left_and_paused_badge_top_centre():
    image = frame()
    hud = changed(render_overlay(image, None, only(hud=True), HudInfo(30.0, 41.0, "CPU")), image)
    ys, xs = np.nonzero(hud)
    assert ys.min() > H / 2 and xs.min() < W / 4
    assert HudInfo(30.0, 41.0, "CPU", "net 1.0").text() == "30.0 fps | 41 ms | CPU | net 1.0"
    assert np.array_equal(render_overlay(image, None, only(hud=True), None), image)
    badge = changed(render_overlay(image, None, NOTHING, ai_paused="stale"), image)
    ys, xs = np.nonzero(badge)
    assert ys.max() < H / 3 and xs.min() > W / 8 and xs.max() < 7 * W / 8


def test_phi_mask_blacks_out_everything_outside_the_field():
    image = frame()
    out = render_overlay(image, prediction(), only(heatmap=True), phi_mask=True)
    x, y, w, h = ROI
    outside = out.copy()
    outside[y : y + h, x : x + w] = 0
    assert not outside.any()
    assert out[5, 10].sum() == 0  # the burned-in text is gone
    kept = render_overlay(image, None, NOTHING, roi=ROI, phi_mask=False)
    assert kept[5, 10].sum() > 0


@pytest.mark.parametrize("height", [720, 1080])
def test_text_scales_with_frame_height(height):
    width = height * 16 // 9
    image = np.zeros((height, width, 3), np.uint8)
    out = render_overlay(image, prediction(box=None, heatmap=None), only(difficulty=True))
    ys, xs = np.nonzero(changed(out, image))
    panel_height = ys.max() - ys.min()
    # The panel is ~100 px tall at 720 lines and grows in proportion.
    assert panel_height == pytest.approx(100 * height / 720, rel=0.15)


def test_difficulty_panel_moves_into_a_wide_border():
    image = np.zeros((720, 1280, 3), np.uint8)
    field = (600, 20, 660, 680)  # room on the left only
    out = render_overlay(
        image, prediction(roi=field, box=None, heatmap=None), only(difficulty=True)
    )
    ys, xs = np.nonzero(changed(out, image))
    assert xs.max() < field[0] and ys.max() < 360
