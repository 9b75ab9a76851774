"""Temporal smoothing of the box and the difficulty probabilities, with anti-flicker hysteresis.

The step functions are pure (state in, state out) so they are tested without threads or
models; ``Smoother`` only holds the current state for the pipeline's inference thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.core.config import EngineConfig
from app.core.frame import Difficulty
from app.core.geometry import Box, iou


@dataclass(frozen=True)
class SmoothingParams:
    """Smoothing constants (see ``EngineConfig`` for their meaning)."""

    box_alpha: float = 0.5
    probs_alpha: float = 0.3
    appear_frames: int = 2
    disappear_frames: int = 3
    label_margin: float = 0.1

    @classmethod
    def from_config(cls, config: EngineConfig) -> SmoothingParams:
        """The constants of ``config``; with smoothing off, every step passes values through."""
        if not config.smoothing:
            return cls(1.0, 1.0, 1, 1, 0.0)
        return cls(
            config.box_alpha,
            config.probs_alpha,
            config.appear_frames,
            config.disappear_frames,
            config.label_margin,
        )


@dataclass(frozen=True)
class BoxState:
    """Presence hysteresis and the smoothed box.

    Attributes:
        visible: whether a box is shown.
        box: the smoothed box (kept while a visible box waits out ``disappear_frames``).
        streak: consecutive frames disagreeing with ``visible`` (detections while hidden,
            misses while visible).
    """

    visible: bool = False
    box: Box | None = None
    streak: int = 0


def _ema_box(old: Box, new: Box, alpha: float) -> Box:
    """EMA of centre and size, so a box grows or shrinks about its centre."""
    ocx, ocy = old[0] + old[2] / 2, old[1] + old[3] / 2
    ncx, ncy = new[0] + new[2] / 2, new[1] + new[3] / 2
    cx, cy = ocx + alpha * (ncx - ocx), ocy + alpha * (ncy - ocy)
    w, h = old[2] + alpha * (new[2] - old[2]), old[3] + alpha * (new[3] - old[3])
    return cx - w / 2, cy - h / 2, w, h


def step_box(state: BoxState, observed: Box | None, params: SmoothingParams) -> BoxState:
    """Advance the box state by one detector result (``observed`` None = no detection).

    A hidden box appears after ``appear_frames`` consecutive detections, starting at the
    latest observation. A visible box follows detections by EMA (it jumps when the new box
    does not overlap it at all: that is a different place, not noise), holds still through up
    to ``disappear_frames - 1`` misses, and disappears at the ``disappear_frames``-th.
    """
    if not state.visible:
        if observed is None:
            return BoxState()
        streak = state.streak + 1
        if streak >= params.appear_frames:
            return BoxState(True, tuple(observed), 0)
        return BoxState(False, None, streak)
    if observed is None:
        streak = state.streak + 1
        if streak >= params.disappear_frames:
            return BoxState()
        return BoxState(True, state.box, streak)
    if state.box is None or iou(state.box, observed) == 0.0:
        return BoxState(True, tuple(observed), 0)
    return BoxState(True, _ema_box(state.box, observed, params.box_alpha), 0)


@dataclass(frozen=True)
class ProbsState:
    """Smoothed class probabilities and the label currently shown."""

    probs: tuple[float, ...] = ()
    label: int = -1


def step_probs(state: ProbsState, observed: Sequence[float], params: SmoothingParams) -> ProbsState:
    """Advance the probability state by one classifier result (in class order).

    Probabilities follow an EMA (renormalised). The shown label changes only when another
    class leads it by at least ``label_margin``; the first result shows its top class.
    """
    obs = [float(p) for p in observed]
    if not state.probs or len(state.probs) != len(obs):
        probs = obs
    else:
        a = params.probs_alpha
        probs = [old + a * (new - old) for old, new in zip(state.probs, obs, strict=True)]
    total = sum(probs)
    if total > 0 and math.isfinite(total):
        probs = [p / total for p in probs]
    top = max(range(len(probs)), key=probs.__getitem__)
    label = state.label if 0 <= state.label < len(probs) else top
    if top != label and probs[top] - probs[label] >= params.label_margin:
        label = top
    return ProbsState(tuple(probs), label)


class Smoother:
    """Holds the smoothing state of one video stream (used by one thread at a time)."""

    def __init__(self, params: SmoothingParams | None = None) -> None:
        self.params = params or SmoothingParams()
        self.box_state = BoxState()
        self.probs_state = ProbsState()

    def reset(self) -> None:
        """Forget the past, e.g. after a seek or a source change."""
        self.box_state = BoxState()
        self.probs_state = ProbsState()

    def box(self, observed: Box | None) -> Box | None:
        """Feed one detection; return the box to show (None = hidden)."""
        self.box_state = step_box(self.box_state, observed, self.params)
        return self.box_state.box if self.box_state.visible else None

    def difficulty(self, probs: Mapping[str, float]) -> Difficulty:
        """Feed one classifier result; return the smoothed Difficulty to show."""
        names = list(probs)
        self.probs_state = step_probs(self.probs_state, [probs[n] for n in names], self.params)
        smoothed = dict(zip(names, self.probs_state.probs, strict=True))
        return Difficulty(names[self.probs_state.label], smoothed)
