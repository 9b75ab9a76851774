"""Temporal smoothing: presence hysteresis, box EMA and the difficulty label margin."""

from __future__ import annotations

import pytest

from app.core.config import EngineConfig
from app.core.smoothing import (
    BoxState,
    ProbsState,
    Smoother,
    SmoothingParams,
    step_box,
    step_probs,
)

P = SmoothingParams(
    box_alpha=0.5, probs_alpha=0.5, appear_frames=3, disappear_frames=2, label_margin=0.2
)
BOX = (10.0, 10.0, 20.0, 20.0)


def run_boxes(observations, params=P):
    state, shown = BoxState(), []
    for obs in observations:
        state = step_box(state, obs, params)
        shown.append(state.box if state.visible else None)
    return shown


def test_box_appears_after_k_consecutive_detections():
    shown = run_boxes([BOX, BOX, None, BOX, BOX, BOX])
    assert shown == [None, None, None, None, None, BOX]


def test_box_disappears_after_m_consecutive_misses_and_holds_before():
    shown = run_boxes([BOX] * 3 + [None, BOX, None, None, None])
    assert shown[2:] == [BOX, BOX, BOX, BOX, None, None]


def test_box_follows_by_ema_of_centre_and_size():
    moved = (14.0, 10.0, 24.0, 20.0)  # centre +6 in x, width +4
    shown = run_boxes([BOX] * 3 + [moved])
    x, y, w, h = shown[-1]
    assert x + w / 2 == pytest.approx(20.0 + 3.0) and w == pytest.approx(22.0)
    assert (y, h) == pytest.approx((10.0, 20.0))


def test_box_jumps_to_a_new_place_instead_of_drifting():
    far = (200.0, 200.0, 20.0, 20.0)
    assert run_boxes([BOX] * 3 + [far])[-1] == far


def test_label_changes_only_past_the_margin():
    state = ProbsState()
    state = step_probs(state, [0.6, 0.4], P)
    assert state.label == 0
    state = step_probs(state, [0.4, 0.6], P)  # EMA 0.5/0.5: no lead
    assert state.label == 0
    state = step_probs(state, [0.4, 0.6], P)  # 0.45/0.55: lead 0.1 < 0.2
    assert state.label == 0
    for _ in range(3):
        state = step_probs(state, [0.1, 0.9], P)
    assert state.label == 1
    assert sum(state.probs) == pytest.approx(1.0)


def test_smoothing_off_passes_values_through():
    params = SmoothingParams.from_config(EngineConfig(smoothing=False))
    smoother = Smoother(params)
    assert smoother.box(BOX) == BOX
    assert smoother.box(None) is None
    moved = (12.0, 10.0, 20.0, 20.0)
    assert smoother.box(moved) == moved
    assert smoother.difficulty({"easy": 0.55, "difficult": 0.45}).label == "easy"
    result = smoother.difficulty({"easy": 0.45, "difficult": 0.55})
    assert result.label == "difficult" and result.probs["difficult"] == pytest.approx(0.55)


def test_smoother_reset_forgets():
    smoother = Smoother(P)
    for _ in range(3):
        smoother.box(BOX)
    smoother.reset()
    assert smoother.box(BOX) is None
