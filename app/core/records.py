"""The one JSON serializer of a per-frame prediction: recordings, exports and `process` use it."""

from __future__ import annotations

import math
from typing import Any

from app.core.frame import Difficulty, Frame, Prediction
from app.core.geometry import Box


def _round(value: float | None, digits: int) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def box_record(box: Box | None) -> list[float] | None:
    """A COCO box as ``[x, y, w, h]`` rounded to 0.01 px, or None."""
    if box is None:
        return None
    return [round(float(v), 2) for v in box]


def difficulty_record(difficulty: Difficulty | None) -> dict[str, Any] | None:
    """``{"label": .., "probs": {class: p}}`` with probabilities rounded to 1e-4, or None."""
    if difficulty is None:
        return None
    return {
        "label": difficulty.label,
        "probs": {str(k): round(float(v), 4) for k, v in difficulty.probs.items()},
    }


def frame_time(frame: Frame, t0: float | None = None) -> float:
    """A frame's time in seconds: its position in the file if known, else capture time - ``t0``.

    Without ``t0`` a live frame's time is its raw monotonic capture time.
    """
    if frame.position_s is not None:
        return float(frame.position_s)
    return float(frame.t - (t0 if t0 is not None else 0.0))


def prediction_record(
    frame: Frame,
    prediction: Prediction | None,
    latency_ms: float | None = None,
    *,
    t0: float | None = None,
) -> dict[str, Any]:
    """The JSON object for one displayed or recorded frame (one line of predictions.jsonl).

    Args:
        frame: the frame the line is about.
        prediction: the newest prediction shown with it (it may come from an earlier frame,
            since predictions lag the video), or None when there is none.
        latency_ms: capture-to-ready latency to record; defaults to the prediction's own.
        t0: capture time of the first frame, used for live frames that have no file position.

    Returns:
        ``{"frame", "t", "box", "peak", "difficulty", "latency_ms"}`` and, when a prediction
        exists, ``"pred_frame"``: the index of the frame it was made from. ``box`` is
        ``[x, y, w, h]`` in frame pixels or None; ``difficulty`` is ``{"label", "probs"}`` or
        None.
    """
    record: dict[str, Any] = {
        "frame": int(frame.index),
        "t": round(frame_time(frame, t0), 4),
        "box": None,
        "peak": None,
        "difficulty": None,
        "latency_ms": _round(latency_ms, 2),
    }
    if prediction is not None:
        record["box"] = box_record(prediction.box)
        record["peak"] = _round(prediction.peak, 4)
        record["difficulty"] = difficulty_record(prediction.difficulty)
        if latency_ms is None:
            record["latency_ms"] = _round(prediction.latency_ms, 2)
        record["pred_frame"] = int(prediction.frame_index)
    return record
