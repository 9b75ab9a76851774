"""Phantom duodenoscope: determinism, ground truth that matches the pixels, frame layout, source."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from app.core import phantom as ph
from app.core import phantom_render as pr
from app.core.errors import ConfigError
from app.core.frame import FrameSource
from app.core.phantom import (
    MORPHOLOGIES,
    PhantomConfig,
    PhantomSource,
    PhantomTruth,
    PhantomVideo,
    field_rect,
    render_still,
)
from app.core.phantom_scene import build_scene

SMALL = PhantomConfig(width=320, height=180)


def _window_mask(config: PhantomConfig) -> np.ndarray:
    """Boolean (H, W): inside the endoscopic window, in frame pixels."""
    layout = pr._layout(config)
    x, y, w, h = layout.field
    mask = np.zeros((config.height, config.width), bool)
    mask[y : y + h, x : x + w] = layout.mask[:, :, 0] > 0
    return mask


# --- determinism -------------------------------------------------------------------------------
def test_same_seed_same_pixels_and_truth():
    a, ta = render_still(7, 3, SMALL)
    ph._still_scene.cache_clear()
    b, tb = render_still(7, 3, SMALL)
    assert np.array_equal(a, b)
    assert ta == tb
    c, _ = render_still(7, 4, SMALL)
    assert not np.array_equal(a, c)


def test_video_random_access_equals_sequential():
    seq = PhantomVideo(5, SMALL)
    frames = [seq.frame(i) for i in range(0, 40)]
    fresh = PhantomVideo(5, SMALL)
    img, truth = fresh.frame(39)
    assert np.array_equal(img, frames[39][0])
    assert truth == frames[39][1]
    # consecutive frames differ (the scope moves), but only a little (smooth motion)
    low = [cv2.GaussianBlur(f[0], (0, 0), 4).astype(int) for f in frames]
    d = [np.abs(low[i] - low[i + 1]).mean() for i in range(39)]
    assert min(d) > 0.0
    assert max(d) < 6.0


# --- the box lies on the papilla -----------------------------------------------------------------
def _nodule_pair(seed: int, config: PhantomConfig, index: int):
    """The still ``index`` rendered from its scene with and without the papilla's nodule."""
    k, _ = ph.patient_of(index, seed)
    scene = ph._still_scene(seed, k, False, config)
    bare = build_scene(*ph._still_scene_args(seed, k, False, config), nodule=False)
    layout = pr._layout(config)
    view = pr._View(*_view_of(scene, config, index))
    template = np.zeros((config.height, config.width, 3), np.uint8)
    with_img, box, frac = pr._render_view(scene, view, layout, template)
    without_img, _, _ = pr._render_view(bare, view, layout, template)
    return with_img, without_img, box, frac


def _view_of(scene, config, index):
    """A random but fixed view that keeps the papilla in the window (for the pair test)."""
    rng = np.random.default_rng(1000 + index)
    _, _, fw, fh = field_rect(config.width, config.height)
    zoom = rng.uniform(0.9, 1.5)
    roll = rng.uniform(-0.6, 0.6)
    off = (rng.uniform(-0.3, 0.3) * fw, rng.uniform(-0.3, 0.3) * fh)
    cx, cy = pr._centre_for(scene.papilla_centre, off, zoom, roll, scene.unit, fh)
    tx, ty = rng.uniform(-0.2, 0.2, 2)
    return cx, cy, zoom, roll, tx, ty


@pytest.mark.parametrize("index", [0, 3, 6, 9, 12, 15])
def test_removing_the_nodule_changes_pixels_inside_the_box_only(index):
    config = PhantomConfig(width=320, height=180, bubbles=False)
    with_img, without_img, box, frac = _nodule_pair(11, config, index)
    assert box is not None and frac > 0.99
    diff = np.abs(with_img.astype(np.int32) - without_img.astype(np.int32)).sum(axis=2)
    assert diff.sum() > 0
    x, y, w, h = box
    grown = np.zeros(diff.shape, bool)
    mx, my = 0.15 * w + 1, 0.15 * h + 1
    grown[int(y - my) : int(np.ceil(y + h + my)), int(x - mx) : int(np.ceil(x + w + mx))] = True
    assert diff[grown].sum() / diff.sum() > 0.9  # what changed is in the box
    inner = np.zeros(diff.shape, bool)
    inner[int(y + 0.3 * h) : int(y + 0.7 * h) + 1, int(x + 0.3 * w) : int(x + 0.7 * w) + 1] = True
    assert (diff[inner] > 12).mean() > 0.5  # and the box is not much larger than what changed


def _redness(img: np.ndarray) -> np.ndarray:
    b, g, r = (img[:, :, i].astype(np.float32) for i in range(3))
    return (r - g) / (r + g + 1.0)


def test_papilla_is_redder_than_the_mucosa_around_its_box():
    """Pixel statistics on public renders: the box centre is redder than a ring around the box."""
    config = PhantomConfig(width=320, height=180, bubbles=False)
    window = _window_mask(config)
    yy, xx = np.mgrid[0 : config.height, 0 : config.width]
    diffs = []
    for index in range(0, 60, 2):
        img, truth = render_still(index, 21, config)
        if truth.box is None or truth.visible_fraction < 0.99:
            continue
        x, y, w, h = truth.box
        cx, cy = x + w / 2, y + h / 2
        e = ((xx + 0.5 - cx) / (w / 2)) ** 2 + ((yy + 0.5 - cy) / (h / 2)) ** 2
        red = _redness(img)
        core = (e < 0.5) & window
        ring = (e > 2.0) & (e < 6.0) & window
        if core.sum() < 10 or ring.sum() < 50:
            continue
        diffs.append(red[core].mean() - red[ring].mean())
    assert len(diffs) >= 15
    diffs = np.asarray(diffs)
    assert np.median(diffs) > 0.06
    assert (diffs > 0).mean() >= 0.9


def test_video_box_none_when_the_papilla_is_out_of_view():
    config = PhantomConfig(width=320, height=180, fps=10.0)
    video = PhantomVideo(2, config)
    truths = [video.frame(i)[1] for i in range(0, 600, 3)]
    present = [t.box is not None for t in truths]
    assert 0.2 < np.mean(present) < 0.9  # approaches, holds and out-of-view stretches
    runs = np.flatnonzero(np.diff(np.asarray(present, int)))
    assert len(runs) >= 2  # it leaves and comes back
    for t in truths:
        if t.box is None:
            assert t.visible_fraction < ph.MIN_VISIBLE_FRACTION
        else:
            x, y, w, h = t.box
            fx, fy, fw, fh = t.field
            assert fx - 1e-3 <= x and x + w <= fx + fw + 1e-3
            assert fy - 1e-3 <= y and y + h <= fy + fh + 1e-3


def test_video_out_of_view_frames_show_no_nodule():
    config = PhantomConfig(width=320, height=180, fps=10.0, bubbles=False)
    video = PhantomVideo(2, config)
    bare_scene = video._build_scene(nodule=False)
    template = np.zeros((config.height, config.width, 3), np.uint8)
    checked = 0
    for i in range(0, 600, 7):
        view = video._view(i / config.fps)
        img, box, frac = pr._render_view(video.scene, view, video._layout, template)
        bare, _, _ = pr._render_view(bare_scene, view, video._layout, template)
        changed = (np.abs(img.astype(int) - bare.astype(int)).sum(axis=2) > 12).sum()
        if box is None and frac == 0.0:
            assert changed < 20
            checked += 1
        elif box is not None and frac > 0.99:
            assert changed > 0.3 * box[2] * box[3]
    assert checked >= 5


# --- frame layout ----------------------------------------------------------------------------
@pytest.mark.parametrize("window", ["octagon", "rounded"])
def test_black_outside_the_window_except_text_left_of_it(window):
    config = PhantomConfig(width=320, height=180, window=window)
    img, truth = render_still(1, 0, config)
    x, y, w, h = truth.field
    assert (x, y, w, h) == field_rect(320, 180)
    assert 0 < x and x + w <= 320 and 0 <= y and y + h <= 180
    inside = _window_mask(config)
    lit = img.max(axis=2) > 30
    assert lit[inside].mean() > 0.9  # the picture fills the window
    outside = ~inside
    assert img[outside & (np.arange(320)[None, :] >= x)].max() == 0  # black around the window
    text = lit & outside
    assert text.sum() > 50  # patient and processor text burned in
    assert np.all(np.flatnonzero(text.any(axis=0)) < x)  # only left of the field
    plain, _ = render_still(1, 0, PhantomConfig(width=320, height=180, window=window, text=False))
    assert plain[outside].max() == 0


def test_field_truth_matches_frame_layout_at_720p():
    x, y, w, h = field_rect(1280, 720)
    assert w > h and x > 300 and x + w < 1280 and y > 0
    assert h / 720 > 0.85


# --- truth values ------------------------------------------------------------------------------
def test_truth_json_roundtrip_fields():
    _, truth = render_still(0, 1, SMALL)
    assert isinstance(truth, PhantomTruth)
    js = truth.to_json()
    assert set(js) >= {"box", "morphology", "case", "patient_id", "field"}
    assert js["morphology"] in MORPHOLOGIES
    assert set(js["case"]) >= {"cannulation_time_s", "additional_technique", "failed"}
    assert js["case"]["label_4"] == truth.case.four_class


def test_absent_fraction():
    none = [
        render_still(i, 4, PhantomConfig(width=320, height=180, absent_fraction=1.0))[1]
        for i in range(6)
    ]
    assert all(t.box is None for t in none)
    some = [
        render_still(i, 4, PhantomConfig(width=320, height=180, absent_fraction=0.0))[1]
        for i in range(6)
    ]
    assert sum(t.box is not None for t in some) >= 5


def test_patients_share_cases_over_consecutive_stills():
    groups = [ph.patient_of(i, 9) for i in range(200)]
    ks = [k for k, _ in groups]
    assert ks == sorted(ks)
    sizes = np.bincount(ks)
    assert sizes.min() >= 1 and sizes.max() <= 4 and (sizes > 1).mean() > 0.5
    a, b = render_still(0, 9, SMALL)[1], render_still(1, 9, SMALL)[1]
    if groups[0][0] == groups[1][0]:
        assert a.patient_id == b.patient_id and a.case == b.case


def test_labels_follow_morphology_with_noise():
    rows = [ph._still_patient(123, k) for k in range(3000)]
    classes = np.array([p.case.four_class for p in rows])
    morph = np.array([p.anatomy.morphology for p in rows])
    for c in ("easy", "over_5min", "additional_technique", "failure"):
        assert (classes == c).mean() >= 0.09, c
    difficult = classes != "easy"
    rate = {m: difficult[morph == m].mean() for m in MORPHOLOGIES}
    assert rate["protruding"] < rate["bulging"] < rate["flat"] < rate["diverticulum"]
    assert rate["diverticulum"] - rate["protruding"] > 0.3
    assert 0.1 < rate["protruding"] and rate["diverticulum"] < 0.95  # not separable
    for p in rows[:300]:  # the clinical fields produce exactly the class (precedence)
        c = p.case
        if c.failed:
            assert c.four_class == "failure"
        elif c.additional_technique != "none":
            assert c.four_class == "additional_technique"
        else:
            assert (c.cannulation_time_s > 300) == (c.four_class == "over_5min")


# --- config and source -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"width": 10},
        {"width": 100, "height": 200},
        {"fps": 0.0},
        {"absent_fraction": 1.5},
        {"window": "round"},
        {"texture_scale": 5.0},
        {"width": 320.0},
    ],
)
def test_bad_config_is_a_config_error(kwargs):
    with pytest.raises(ConfigError):
        PhantomConfig(**kwargs)


def test_config_from_dict_rejects_unknown_keys():
    assert PhantomConfig.from_dict({"width": 320, "height": 180}) == SMALL
    with pytest.raises(ConfigError, match="colour"):
        PhantomConfig.from_dict({"colour": 1})


@pytest.mark.parametrize("mode", ["video", "still"])
def test_source_delivers_frames_with_truth(mode):
    src = PhantomSource(seed=3, config=SMALL, mode=mode, realtime=False, max_frames=3)
    assert isinstance(src, FrameSource)
    assert src.fps == 30.0 and src.name
    frames = [src.read() for _ in range(4)]
    assert frames[3] is None
    for i, f in enumerate(frames[:3]):
        assert f.index == i and f.image.shape == (180, 320, 3) and f.image.dtype == np.uint8
        assert f.position_s == pytest.approx(i / 30.0)
        assert f.truth["field"] == list(field_rect(320, 180))
    assert frames[1].t >= frames[0].t
    src.close()
    src.close()
    assert src.read() is None


def test_close_wakes_a_waiting_realtime_read():
    src = PhantomSource(seed=0, config=PhantomConfig(width=320, height=180, fps=0.2))
    assert src.read() is not None  # the first frame is due at once
    timer = threading.Timer(0.2, src.close)
    timer.start()
    try:
        assert src.read() is None  # would wait 5 s for the next one
    finally:
        timer.cancel()


def test_bad_source_arguments():
    with pytest.raises(ConfigError):
        PhantomSource(mode="movie")
    with pytest.raises(ConfigError):
        PhantomSource(seed=-1, config=SMALL)


def test_frames_are_bgr_with_reddish_mucosa():
    img, truth = render_still(2, 5, SMALL)
    inside = _window_mask(SMALL)
    b, g, r = (img[:, :, c][inside].mean() for c in range(3))
    assert r > g > b * 0.8  # BGR order: red dominates, as in the duodenum
    assert cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[inside].mean() > 50
