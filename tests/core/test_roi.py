"""Endoscopic-field detection, tracking and PHI masking on synthetic and phantom frames."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.errors import ConfigError
from app.core.roi import FieldTracker, clip_rect, crop, find_field, mask_outside, whole_frame
from tests.core.videos import processor_frame


def edge_error(found, truth) -> int:
    return max(abs(a - b) for a, b in zip(found, truth, strict=True))


@pytest.mark.parametrize(
    ("size", "window"),
    [((640, 360), "octagon"), ((1280, 720), "rounded"), ((1920, 1080), "octagon"),
     ((320, 180), "rect"), ((854, 480), "rounded")],
)  # fmt: skip
def test_find_field_on_synthetic_processor_frames(size, window):
    image, field, text = processor_frame(*size, window=window, seed=2)
    assert text.any()  # the frame has burned-in text beside the field
    found = find_field(image)
    assert edge_error(found, field) <= 1
    x, y, w, h = found
    ty, tx = np.nonzero(text)
    # No text pixel falls inside the rectangle.
    assert not np.any((tx >= x) & (tx < x + w) & (ty >= y) & (ty < y + h))


def test_find_field_off_centre_and_small_windows():
    for field in [(40, 20, 300, 300), (330, 60, 250, 240), (200, 10, 400, 340)]:
        image, truth, _ = processor_frame(640, 360, field=field, seed=5)
        assert edge_error(find_field(image), truth) <= 1


def test_find_field_falls_back_to_the_whole_frame():
    rng = np.random.default_rng(0)
    cropped = rng.integers(60, 200, (300, 400, 3), dtype=np.uint8)  # an already-cropped image
    assert find_field(cropped) == (0, 0, 400, 300)
    black = np.zeros((90, 160, 3), np.uint8)
    assert find_field(black) == (0, 0, 160, 90)
    only_text, _, _ = processor_frame(640, 360, field=(300, 150, 20, 20), seed=1)
    assert find_field(only_text) == (0, 0, 640, 360)  # nothing field-sized
    # Kvasir-like: image to the edges except dark rounded corners.
    kvasir = rng.integers(80, 220, (360, 400, 3), dtype=np.uint8)
    kvasir[:30, :30] = 0
    kvasir[-30:, -30:] = 0
    assert find_field(kvasir) == (0, 0, 400, 360)
    assert whole_frame(kvasir) == (0, 0, 400, 360)


def test_find_field_grey_input_and_bad_input():
    image, field, _ = processor_frame(640, 360, seed=3)
    assert edge_error(find_field(image.max(axis=2)), field) <= 1
    with pytest.raises(ConfigError):
        find_field(np.zeros((4, 4, 3), np.uint8))


def test_find_field_on_phantom_frames():
    from app.core.phantom import PhantomConfig, PhantomSource

    for window in ("octagon", "rounded"):
        config = PhantomConfig(width=640, height=360, window=window, texture_scale=0.5)
        src = PhantomSource(seed=4, config=config, realtime=False)
        try:
            for _ in range(4):
                frame = src.read()
                assert edge_error(find_field(frame.image), frame.truth["field"]) <= 2
        finally:
            src.close()


def test_mask_outside_blacks_out_the_burned_in_text():
    image, field, text = processor_frame(1280, 720, seed=7)
    assert image[text > 0].min() > 200  # the text is bright before masking
    masked = mask_outside(image, find_field(image))
    assert masked is not image and masked.shape == image.shape
    assert not masked[text > 0].any()  # every text pixel is black
    x, y, w, h = field
    assert np.array_equal(masked[y : y + h, x : x + w], image[y : y + h, x : x + w])
    outside = np.ones(image.shape[:2], bool)
    outside[y : y + h, x : x + w] = False
    assert not masked[outside].any()
    assert image[text > 0].min() > 200  # the input is untouched


def test_mask_outside_and_crop_clip_rectangles():
    image = np.full((10, 20, 3), 255, np.uint8)
    masked = mask_outside(image, (15, -5, 20, 8))
    assert masked[:3, 15:].all() and not masked[3:].any() and not masked[:, :15].any()
    assert crop(image, (15, -5, 20, 8)).shape == (3, 5, 3)
    assert clip_rect((30, 30, 5, 5), 20, 10) == (20, 10, 0, 0)


def test_tracker_ignores_a_dark_moment_but_follows_a_layout_change():
    wide, wide_field, _ = processor_frame(640, 360, seed=1)
    tracker = FieldTracker(interval=2, stable_checks=3)
    assert tracker.update(wide) == wide_field
    dark = np.zeros_like(wide)  # e.g. the scope against the wall, or a flash of no picture
    for _ in range(4):  # two checks of a different result: not enough
        assert tracker.update(dark) == wide_field
    zoomed_field = (180, 40, 280, 280)
    zoomed, _, _ = processor_frame(640, 360, field=zoomed_field, seed=1)
    results = [tracker.update(zoomed) for _ in range(6)]
    assert results[:5] == [wide_field] * 5  # needs 3 agreeing checks, every 2 frames
    assert edge_error(results[5], zoomed_field) <= 1
    assert tracker.switches == 1
    assert edge_error(tracker.roi, zoomed_field) <= 1


def test_tracker_follows_a_size_change_at_once_and_resets():
    tracker = FieldTracker(interval=10)
    small, small_field, _ = processor_frame(640, 360, seed=1)
    big, big_field, _ = processor_frame(1280, 720, seed=1)
    assert tracker.update(small) == small_field
    assert tracker.update(big) == big_field
    tracker.reset()
    assert tracker.roi is None
    assert tracker.update(small) == small_field
    with pytest.raises(ConfigError):
        FieldTracker(interval=0)
