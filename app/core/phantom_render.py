"""Phantom frame rendering: the window layout, burned-in text, one view of a scene, truth box."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from app.core.geometry import Box
from app.core.phantom_case import Demographics
from app.core.phantom_scene import Scene

if TYPE_CHECKING:
    from app.core.phantom import PhantomConfig

#: A papilla less visible than this (fraction of its area inside the window) has no box.
MIN_VISIBLE_FRACTION = 0.3
WINDOW_SHAPES = ("octagon", "rounded")


def field_rect(width: int, height: int) -> tuple[int, int, int, int]:
    """The endoscopic window's rectangle for a frame size: right of centre, text on the left."""
    fh = 2 * int(round(0.46 * height))
    fw = min(2 * int(round(0.6 * fh)), 2 * int(round(0.36 * width)))
    x = width - fw - int(round(0.035 * width))
    y = (height - fh) // 2
    return x, y, fw, fh


@dataclass(frozen=True, eq=False)
class _Layout:
    field: tuple[int, int, int, int]
    polygon: np.ndarray  # window outline in field pixels, float32 (N, 2), convex
    mask: np.ndarray  # uint8 (fh, fw, 3), 255 inside the window
    vignette: np.ndarray  # float32 (gh, gw), brightness fall-off, low resolution
    grid_x: np.ndarray  # float32 (1, gw), field x of low-res columns, centred, in half-widths
    grid_y: np.ndarray  # float32 (gh, 1)


@functools.lru_cache(maxsize=8)
def _layout(config: PhantomConfig) -> _Layout:
    x, y, fw, fh = field_rect(config.width, config.height)
    if config.window == "octagon":
        c = 0.19 * min(fw, fh)
        poly = [
            (c, 0),
            (fw - c, 0),
            (fw, c),
            (fw, fh - c),
            (fw - c, fh),
            (c, fh),
            (0, fh - c),
            (0, c),
        ]
    else:
        r = 0.14 * min(fw, fh)
        poly = []
        for cx, cy, a0 in ((fw - r, r, -90), (fw - r, fh - r, 0), (r, fh - r, 90), (r, r, 180)):
            for k in range(9):
                a = math.radians(a0 + k * 90 / 8)
                poly.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    polygon = np.asarray(poly, np.float32)
    mask1 = np.zeros((fh, fw), np.uint8)
    cv2.fillPoly(mask1, [np.round(polygon * 16).astype(np.int32)], 255, cv2.LINE_8, 4)
    mask = cv2.cvtColor(mask1, cv2.COLOR_GRAY2BGR)
    gw, gh = max(8, fw // 8), max(8, fh // 8)
    gx = ((np.arange(gw, dtype=np.float32) + 0.5) / gw * 2.0 - 1.0)[None, :]
    gy = ((np.arange(gh, dtype=np.float32) + 0.5) / gh * 2.0 - 1.0)[:, None]
    r2 = (gx * fw / fh) ** 2 / 1.4 + gy**2 / 1.0
    vignette = (1.02 - 0.6 * np.clip(r2, 0, 2.0) ** 1.25).astype(np.float32)
    return _Layout((x, y, fw, fh), polygon, mask, vignette, gx, gy)


# ------------------------------------------------------------------------------------------
# Burned-in text
# ------------------------------------------------------------------------------------------
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PROCESSOR_LINES = ("NOVASCOPE VP-7", "DUO TX-260V", "Eh:A4  Ce:3", "CVP:N  Zm:x1.0")


def _text_metrics(config: PhantomConfig) -> tuple[float, int, int, int]:
    scale = 0.6 * config.height / 720.0
    thickness = max(1, int(round(1.4 * config.height / 720.0)))
    line = max(6, int(round(0.048 * config.height)))
    x0 = max(1, int(round(0.025 * config.width)))
    return scale, thickness, line, x0


def _frame_template(config: PhantomConfig, person: Demographics) -> np.ndarray:
    """The black frame with the static patient and processor text."""
    img = np.zeros((config.height, config.width, 3), np.uint8)
    if not config.text:
        return img
    scale, th, line, x0 = _text_metrics(config)
    top = [
        f"ID:{person.patient_id}",
        person.name,
        f"{person.sex}  {person.age}Y",
        f"DOB:{person.birth_date}",
        "",
        person.exam_date,
    ]
    y = int(0.08 * config.height)
    for text in top:
        cv2.putText(img, text, (x0, y), _FONT, scale, (235, 235, 235), th, cv2.LINE_AA)
        y += line
    y = config.height - int(0.06 * config.height) - line * (len(_PROCESSOR_LINES) - 1)
    for text in _PROCESSOR_LINES:
        cv2.putText(img, text, (x0, y), _FONT, scale, (200, 220, 235), th, cv2.LINE_AA)
        y += line
    return img


def _draw_clock(img: np.ndarray, config: PhantomConfig, seconds: float) -> None:
    if not config.text:
        return
    scale, th, line, x0 = _text_metrics(config)
    s = int(seconds) % 86400
    y = int(0.08 * config.height) + 6 * line
    cv2.putText(
        img,
        f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}",
        (x0, y),
        _FONT,
        scale,
        (235, 235, 235),
        th,
        cv2.LINE_AA,
    )


# ------------------------------------------------------------------------------------------
# One view of a scene
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _View:
    cx: float  # scene point at the field centre, texture pixels
    cy: float
    zoom: float  # > 1 is closer
    roll: float  # radians
    tilt_x: float  # perspective: depth change across the field (per half-width)
    tilt_y: float
    blur_x: float = 0.0  # motion blur in field pixels
    blur_y: float = 0.0
    gain: float = 1.0


def _homography(view: _View, unit: float, fw: int, fh: int) -> np.ndarray:
    """3x3 matrix taking field pixel coordinates to scene texture coordinates."""
    cxf, cyf = (fw - 1) / 2.0, (fh - 1) / 2.0
    a, b = view.tilt_x / (fw / 2.0), view.tilt_y / (fh / 2.0)
    p = np.array([[1, 0, -cxf], [0, 1, -cyf], [a, b, 1 - a * cxf - b * cyf]], np.float64)
    s = unit / (fh * view.zoom)
    c, sn = math.cos(view.roll), math.sin(view.roll)
    rs = np.array([[s * c, -s * sn, 0], [s * sn, s * c, 0], [0, 0, 1]], np.float64)
    t = np.array([[1, 0, view.cx], [0, 1, view.cy], [0, 0, 1]], np.float64)
    return t @ rs @ p


def _centre_for(
    target: tuple[float, float],
    at_field: tuple[float, float],
    zoom: float,
    roll: float,
    unit: float,
    fh: int,
) -> tuple[float, float]:
    """The view centre that puts scene point ``target`` at field offset ``at_field`` (pixels)."""
    s = unit / (fh * zoom)
    c, sn = math.cos(roll), math.sin(roll)
    ox, oy = at_field
    return target[0] - s * (c * ox - sn * oy), target[1] - s * (sn * ox + c * oy)


def _clamp_view(view: _View, scene: Scene, fw: int, fh: int) -> _View:
    """Shifts the view so the whole field stays on the texture (no mirrored papilla)."""
    m = _homography(view, scene.unit, fw, fh)
    corners = np.array([[[0, 0], [fw, 0], [fw, fh], [0, fh]]], np.float64)
    q = cv2.perspectiveTransform(corners, m)[0]
    dx = dy = 0.0
    lo, hi = q.min(axis=0), q.max(axis=0)
    if hi[0] - lo[0] < scene.width - 2:
        dx = max(0.0, 1.0 - lo[0]) - max(0.0, hi[0] - (scene.width - 1))
    if hi[1] - lo[1] < scene.height - 2:
        dy = max(0.0, 1.0 - lo[1]) - max(0.0, hi[1] - (scene.height - 1))
    if dx == 0.0 and dy == 0.0:
        return view
    return _View(
        view.cx + dx,
        view.cy + dy,
        view.zoom,
        view.roll,
        view.tilt_x,
        view.tilt_y,
        view.blur_x,
        view.blur_y,
        view.gain,
    )


def _papilla_box(scene: Scene, m: np.ndarray, layout: _Layout) -> tuple[Box | None, float]:
    """The papilla's box in frame pixels (clipped to the window) and its visible fraction."""
    if scene.papilla_outline is None:
        return None, 0.0
    inv = np.linalg.inv(m)
    pts = cv2.perspectiveTransform(scene.papilla_outline[None].astype(np.float64), inv)[0]
    pts = pts.astype(np.float32)
    full = abs(cv2.contourArea(pts))
    if full <= 0:
        return None, 0.0
    area, inter = cv2.intersectConvexConvex(pts, layout.polygon)
    frac = float(area / full) if inter is not None else 0.0
    if frac < MIN_VISIBLE_FRACTION or inter is None:
        return None, frac
    inter = inter.reshape(-1, 2)
    x0, y0 = inter.min(axis=0)
    x1, y1 = inter.max(axis=0)
    fx, fy, _, _ = layout.field
    if x1 - x0 < 1.0 or y1 - y0 < 1.0:
        return None, frac
    return (float(x0 + fx), float(y0 + fy), float(x1 - x0), float(y1 - y0)), min(frac, 1.0)


def _render_view(
    scene: Scene, view: _View, layout: _Layout, template: np.ndarray
) -> tuple[np.ndarray, Box | None, float]:
    """Warps the scene into the window, lights it, and composes the frame."""
    x, y, fw, fh = layout.field
    m = _homography(view, scene.unit, fw, fh)
    img = cv2.warpPerspective(
        scene.texture,
        m,
        (fw, fh),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT_101,
    )
    kx, ky = int(round(abs(view.blur_x))) | 1, int(round(abs(view.blur_y))) | 1
    if kx > 1 or ky > 1:
        img = cv2.blur(img, (kx, ky))
    # Light falls off towards the window's edge and with depth (1 / distance²).
    depth_gain = np.clip(
        (1.0 + view.tilt_x * layout.grid_x + view.tilt_y * layout.grid_y) ** 2, 0.3, 1.35
    )
    gain = np.clip(layout.vignette * depth_gain * (view.gain * 128.0), 0, 255).astype(np.uint8)
    gain = cv2.cvtColor(
        cv2.resize(gain, (fw, fh), interpolation=cv2.INTER_LINEAR), cv2.COLOR_GRAY2BGR
    )
    img = cv2.multiply(img, gain, scale=1.0 / 128.0)
    img = cv2.bitwise_and(img, layout.mask)
    out = template.copy()
    out[y : y + fh, x : x + fw] = img
    box, frac = _papilla_box(scene, m, layout)
    return out, box, frac
