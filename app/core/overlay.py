"""The one overlay renderer (numpy/OpenCV): the screen and every export draw the same pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from app.core.config import EngineConfig
from app.core.frame import Prediction

Rect = tuple[int, int, int, int]

# BGR colours. The box is a saturated green that stands out on red/pink mucosa.
BOX_COLOUR = (80, 255, 80)
CENTROID_COLOUR = (255, 255, 255)
PANEL_COLOUR = (24, 24, 24)
TEXT_COLOUR = (240, 240, 240)
BAR_COLOURS = ((90, 200, 90), (60, 170, 250), (60, 110, 250), (80, 80, 230))
PAUSED_COLOUR = (0, 170, 255)
CAM_COLOUR = (255, 200, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX
#: Heat below this fraction is not drawn (the background of a sigmoid map is never exactly 0).
HEAT_FLOOR = 0.15


@dataclass(frozen=True)
class OverlayOptions:
    """What the overlay draws.

    Attributes:
        heatmap: the detector heatmap as a translucent colour map over the field.
        box: the detection box.
        centroid: a cross at the box centre.
        difficulty: the difficulty label with a bar per class.
        cam: the classifier's class-activation map, as an outlined tint.
        hud: fps, latency, provider and model versions.
        heatmap_opacity: opacity at the heatmap's peak, in [0, 1].
    """

    # Defaults come from EngineConfig so the two can never disagree.
    heatmap: bool = EngineConfig.show_heatmap
    box: bool = EngineConfig.show_box
    centroid: bool = EngineConfig.show_centroid
    difficulty: bool = EngineConfig.show_difficulty
    cam: bool = EngineConfig.show_cam
    hud: bool = EngineConfig.show_hud
    heatmap_opacity: float = EngineConfig.heatmap_opacity

    def __post_init__(self) -> None:
        if not 0.0 <= self.heatmap_opacity <= 1.0:
            raise ValueError(f"heatmap_opacity must be in [0, 1], got {self.heatmap_opacity}")

    @classmethod
    def from_config(cls, config: EngineConfig) -> OverlayOptions:
        """The overlay toggles of an ``EngineConfig``."""
        return cls(
            heatmap=config.show_heatmap,
            box=config.show_box,
            centroid=config.show_centroid,
            difficulty=config.show_difficulty,
            cam=config.show_cam,
            hud=config.show_hud,
            heatmap_opacity=config.heatmap_opacity,
        )


@dataclass(frozen=True)
class HudInfo:
    """The figures the HUD shows; any may be None (then it is left out)."""

    fps: float | None = None
    latency_ms: float | None = None
    provider: str | None = None
    model: str | None = None

    def text(self) -> str:
        """The HUD line, e.g. ``"30.0 fps | 41 ms | CPU | phantom-unet 1.0"``."""
        parts = []
        if self.fps is not None:
            parts.append(f"{self.fps:.1f} fps")
        if self.latency_ms is not None:
            parts.append(f"{self.latency_ms:.0f} ms")
        if self.provider:
            parts.append(self.provider)
        if self.model:
            parts.append(self.model)
        return " | ".join(parts)


def _scale(height: int) -> float:
    """Font/line scale: 1.0 at 720 lines, proportional above and below (never tiny)."""
    return max(height / 720.0, 0.35)


def _thickness(scale: float, base: float = 2.0) -> int:
    return max(1, int(round(base * scale)))


def _clip_rect(rect: Rect, width: int, height: int) -> Rect | None:
    x, y, w, h = (int(v) for v in rect)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0


def _blend_map(
    out: np.ndarray, values: np.ndarray, rect: Rect, colormap: int, opacity: float
) -> None:
    """Blend a [0, 1] map, stretched over ``rect``, into ``out`` in place.

    Opacity grows with the value from 0 at ``HEAT_FLOOR`` to ``opacity`` at 1, so only the
    meaningful heat tints the image. Work is limited to the sub-rectangle where heat is
    above the floor, computed on the small map before it is enlarged.
    """
    height, width = out.shape[:2]
    clipped = _clip_rect(rect, width, height)
    if clipped is None or values.size == 0 or opacity <= 0.0:
        return
    x, y, w, h = rect
    mh, mw = values.shape
    hot = np.argwhere(values > HEAT_FLOOR)
    if hot.size == 0:
        return
    # The hot region in map cells, grown by one cell because linear resizing spreads heat.
    r0, c0 = np.maximum(hot.min(axis=0) - 1, 0)
    r1, c1 = np.minimum(hot.max(axis=0) + 2, (mh, mw))
    fx0, fx1 = x + c0 * w / mw, x + c1 * w / mw
    fy0, fy1 = y + r0 * h / mh, y + r1 * h / mh
    sub = _clip_rect(
        (
            math.floor(fx0),
            math.floor(fy0),
            math.ceil(fx1 - math.floor(fx0)),
            math.ceil(fy1 - math.floor(fy0)),
        ),
        width,
        height,
    )
    if sub is None:
        return
    sx, sy, sw, sh = sub
    # Enlarge only the hot cells, to the pixels they cover (sub-pixel misalignment < 1 px).
    cells = np.ascontiguousarray(values[r0:r1, c0:c1], np.float32)
    big = np.clip(cv2.resize(cells, (sw, sh), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    colours = cv2.applyColorMap((big * 255.0).astype(np.uint8), colormap)
    alpha = np.clip((big - HEAT_FLOOR) * (opacity / (1.0 - HEAT_FLOOR)), 0.0, opacity)
    region = out[sy : sy + sh, sx : sx + sw]
    region[:] = cv2.blendLinear(colours, region, alpha, 1.0 - alpha)


def _draw_cam(out: np.ndarray, cam: np.ndarray, rect: Rect, scale: float, opacity: float) -> None:
    """The CAM as a light tint plus its 0.5 contour, so it reads apart from the heatmap."""
    _blend_map(out, cam, rect, cv2.COLORMAP_INFERNO, opacity * 0.6)
    x, y, w, h = rect
    if w < 2 or h < 2:
        return
    big = cv2.resize(
        np.ascontiguousarray(cam, np.float32), (int(w), int(h)), interpolation=cv2.INTER_LINEAR
    )
    mask = (big >= 0.5).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if contours:
        cv2.drawContours(
            out,
            contours,
            -1,
            CAM_COLOUR,
            _thickness(scale, 1.5),
            cv2.LINE_AA,
            offset=(int(x), int(y)),
        )


def _draw_box(out: np.ndarray, box, scale: float, centroid: bool, draw_box: bool) -> None:
    x, y, w, h = box
    # Shifted (fixed-point) coordinates keep the sub-pixel position of the box edges.
    shift, k = 4, 16
    p0 = (int(round(x * k)), int(round(y * k)))
    p1 = (int(round((x + w) * k)), int(round((y + h) * k)))
    if draw_box:
        cv2.rectangle(out, p0, p1, (0, 0, 0), _thickness(scale, 4.0), cv2.LINE_AA, shift)
        cv2.rectangle(out, p0, p1, BOX_COLOUR, _thickness(scale, 2.0), cv2.LINE_AA, shift)
    if centroid:
        cx, cy = int(round(x + w / 2)), int(round(y + h / 2))
        size = max(8, int(round(18 * scale)))
        cv2.drawMarker(
            out, (cx, cy), (0, 0, 0), cv2.MARKER_CROSS, size, _thickness(scale, 4.0), cv2.LINE_AA
        )
        cv2.drawMarker(
            out,
            (cx, cy),
            CENTROID_COLOUR,
            cv2.MARKER_CROSS,
            size,
            _thickness(scale, 2.0),
            cv2.LINE_AA,
        )


def _panel(out: np.ndarray, x: int, y: int, w: int, h: int, alpha: float = 0.65) -> None:
    """A translucent dark panel behind text."""
    clipped = _clip_rect((x, y, w, h), out.shape[1], out.shape[0])
    if clipped is None:
        return
    x, y, w, h = clipped
    region = out[y : y + h, x : x + w]
    region[:] = (region * (1.0 - alpha) + np.array(PANEL_COLOUR) * alpha).astype(np.uint8)


def _text(
    out: np.ndarray,
    text: str,
    org: tuple[int, int],
    scale: float,
    colour=TEXT_COLOUR,
    weight: float = 1.6,
) -> None:
    cv2.putText(out, text, org, FONT, 0.6 * scale, colour, _thickness(scale, weight), cv2.LINE_AA)


def _text_size(text: str, scale: float, weight: float = 1.6) -> tuple[int, int]:
    (w, h), _ = cv2.getTextSize(text, FONT, 0.6 * scale, _thickness(scale, weight))
    return w, h


def _panel_x(frame_width: int, panel_width: int, pad: int, field: Rect | None) -> int:
    """Left edge of a top panel: beside the field if the border has room, else top-right."""
    right = frame_width - panel_width - pad
    if field is None:
        return right
    fx, _, fw, _ = field
    if frame_width - (fx + fw) >= panel_width + 2 * pad:
        return right
    if fx >= panel_width + 2 * pad:
        return pad
    return right


def _draw_difficulty(
    out: np.ndarray, prediction: Prediction, scale: float, field: Rect | None
) -> None:
    """Top panel: "Difficulty: <label>" and one labelled bar per class.

    It goes in the black border beside the field when there is room (so it hides no
    mucosa), else in the top-right corner.
    """
    difficulty = prediction.difficulty
    if difficulty is None:
        return
    pad = int(round(10 * scale))
    line = int(round(26 * scale))
    bar_w = int(round(150 * scale))
    names = list(difficulty.probs)
    label_w = max(_text_size(n, scale)[0] for n in names)
    title = f"Difficulty: {difficulty.label}"
    width = (
        max(
            _text_size(title, scale, 2.0)[0],
            label_w + bar_w + 3 * pad + _text_size("100%", scale)[0],
        )
        + 2 * pad
    )
    height = pad + line * (len(names) + 1) + pad // 2
    x0 = _panel_x(out.shape[1], width, pad, field)
    y0 = pad
    _panel(out, x0, y0, width, height)
    _text(out, title, (x0 + pad, y0 + line), scale, TEXT_COLOUR, 2.0)
    for i, name in enumerate(names):
        p = float(difficulty.probs[name])
        base = y0 + line * (i + 2)
        _text(out, name, (x0 + pad, base), scale)
        bx = x0 + 2 * pad + label_w
        bh = int(round(12 * scale))
        by = base - bh
        cv2.rectangle(out, (bx, by), (bx + bar_w, by + bh), (90, 90, 90), -1)
        colour = BAR_COLOURS[min(i, len(BAR_COLOURS) - 1)]
        cv2.rectangle(
            out, (bx, by), (bx + int(round(bar_w * min(max(p, 0.0), 1.0))), by + bh), colour, -1
        )
        if name == difficulty.label:
            cv2.rectangle(out, (bx, by), (bx + bar_w, by + bh), TEXT_COLOUR, _thickness(scale, 1.0))
        _text(out, f"{100 * p:.0f}%", (bx + bar_w + pad, base), scale)


def _draw_hud(out: np.ndarray, hud: HudInfo, scale: float) -> None:
    text = hud.text()
    if not text:
        return
    pad = int(round(8 * scale))
    tw, th = _text_size(text, scale, 1.4)
    x, y = pad, out.shape[0] - pad - th - 2 * pad
    _panel(out, x, y, tw + 2 * pad, th + 2 * pad)
    _text(out, text, (x + pad, y + pad + th), scale, TEXT_COLOUR, 1.4)


def _draw_paused(out: np.ndarray, reason: str | bool, scale: float) -> None:
    text = "AI paused" if reason is True or not reason else f"AI paused: {reason}"
    pad = int(round(10 * scale))
    tw, th = _text_size(text, scale * 1.2, 2.2)
    x = (out.shape[1] - tw) // 2 - pad
    y = pad
    cv2.rectangle(out, (x, y), (x + tw + 2 * pad, y + th + 2 * pad), PAUSED_COLOUR, -1)
    cv2.putText(
        out,
        text,
        (x + pad, y + pad + th),
        FONT,
        0.6 * scale * 1.2,
        (0, 0, 0),
        _thickness(scale * 1.2, 2.2),
        cv2.LINE_AA,
    )


def mask_outside_rect(image: np.ndarray, roi: Rect) -> np.ndarray:
    """A copy of ``image`` that is black outside the rectangle ``roi``.

    Prefer ``app.core.roi.mask_outside`` (the field-shaped PHI mask); this is what the
    renderer uses when that module offers nothing better.
    """
    out = np.zeros_like(image)
    clipped = _clip_rect(roi, image.shape[1], image.shape[0])
    if clipped is not None:
        x, y, w, h = clipped
        out[y : y + h, x : x + w] = image[y : y + h, x : x + w]
    return out


def _phi_masked(image: np.ndarray, roi: Rect) -> np.ndarray:
    try:
        from app.core.roi import mask_outside
    except ImportError:  # the ROI module is optional for the renderer
        return mask_outside_rect(image, roi)
    return np.ascontiguousarray(mask_outside(image, roi))


def render_overlay(
    image: np.ndarray,
    prediction: Prediction | None,
    options: OverlayOptions = OverlayOptions(),  # noqa: B008 (frozen, so a shared default is safe)
    hud: HudInfo | None = None,
    roi: Rect | None = None,
    phi_mask: bool = False,
    ai_paused: bool | str = False,
) -> np.ndarray:
    """Draw the overlay on a copy of a BGR frame and return it.

    Args:
        image: BGR uint8 (H, W, 3); never modified.
        prediction: what to draw, or None (stale or no model): then only the HUD and badge.
        options: element toggles and heatmap opacity.
        hud: HUD figures; None draws no HUD.
        roi: the endoscopic field ``(x, y, w, h)``; defaults to ``prediction.roi``. With
            ``phi_mask`` everything outside it is blacked out before drawing.
        phi_mask: black out everything outside the field (exports do this by default).
        ai_paused: False, True, or a reason string: draws an "AI paused" badge.

    Returns:
        A new BGR uint8 image of the same size.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be BGR uint8 (H, W, 3), got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    field_rect = roi if roi is not None else (prediction.roi if prediction is not None else None)
    out = _phi_masked(image, field_rect) if phi_mask and field_rect is not None else image.copy()
    scale = _scale(height)
    if prediction is not None:
        map_rect = prediction.roi or field_rect or (0, 0, width, height)
        if options.heatmap and prediction.heatmap is not None:
            _blend_map(
                out,
                np.asarray(prediction.heatmap, np.float32),
                map_rect,
                cv2.COLORMAP_JET,
                options.heatmap_opacity,
            )
        if options.cam and prediction.cam is not None:
            _draw_cam(
                out,
                np.asarray(prediction.cam, np.float32),
                prediction.cam_region or map_rect,
                scale,
                max(options.heatmap_opacity, 0.3),
            )
        if prediction.box is not None and (options.box or options.centroid):
            _draw_box(out, prediction.box, scale, options.centroid, options.box)
        if options.difficulty:
            _draw_difficulty(out, prediction, scale, field_rect or prediction.roi)
    if options.hud and hud is not None:
        _draw_hud(out, hud, scale)
    if ai_paused:
        _draw_paused(out, ai_paused, scale)
    return out
