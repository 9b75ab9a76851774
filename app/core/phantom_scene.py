"""Phantom scenes: a shaded texture of the duodenal wall with the papilla, built once per scene."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MORPHOLOGIES = ("flat", "protruding", "bulging", "diverticulum")
_MORPHOLOGY_PRIOR = (0.23, 0.33, 0.22, 0.22)


@dataclass(frozen=True)
class Anatomy:
    """What one patient's second part of the duodenum looks like.

    Sizes are relative to the field height at zoom 1 (the "unit").
    """

    morphology: str
    size: float  # papilla diameter
    aspect: float  # height / width of the papilla
    angle_deg: float  # tilt of the papilla's long axis from vertical
    height: float  # how far the papilla is raised (relative to its radius)
    redness: float  # 0..1, how much redder than the mucosa
    granularity: float  # 0..1, coarse villous surface of the papilla
    orifice: str  # "dot", "slit" or "villous"
    hood: float  # 0..1, prominence of the hooding fold
    frenulum: float  # 0..1, prominence of the frenulum
    fold_spacing: float
    fold_depth: float
    fold_tilt_deg: float
    mucosa_tone: float  # -1 (pink) .. 1 (orange)
    pale: float  # 0..1, paler mucosa
    diverticulum_angle_deg: float  # where the pouch lies, seen from the papilla
    diverticulum_size: float  # pouch radius / papilla radius
    bubbles: int  # number of bubble clusters
    bile: float  # 0..1, yellow bile tint in places


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draws one patient's anatomy."""
    morphology = MORPHOLOGIES[int(rng.choice(4, p=_MORPHOLOGY_PRIOR))]
    size = {
        "flat": rng.uniform(0.09, 0.17),
        "protruding": rng.uniform(0.13, 0.28),
        "bulging": rng.uniform(0.17, 0.30),
        "diverticulum": rng.uniform(0.10, 0.22),
    }[morphology]
    height = {
        "flat": rng.uniform(0.08, 0.2),
        "protruding": rng.uniform(0.55, 0.9),
        "bulging": rng.uniform(0.35, 0.55),
        "diverticulum": rng.uniform(0.25, 0.6),
    }[morphology]
    return Anatomy(
        morphology=morphology,
        size=float(size),
        aspect=float(rng.uniform(1.0, 1.45) if morphology != "flat" else rng.uniform(0.8, 1.2)),
        angle_deg=float(rng.normal(0.0, 12.0)),
        height=float(height),
        redness=float(rng.uniform(0.25, 1.0)),
        granularity=float(rng.uniform(0.1, 1.0)),
        orifice=str(rng.choice(["dot", "slit", "villous"], p=[0.4, 0.35, 0.25])),
        hood=float(rng.uniform(0.3, 1.0)),
        frenulum=float(rng.uniform(0.2, 1.0)),
        fold_spacing=float(rng.uniform(0.24, 0.4)),
        fold_depth=float(rng.uniform(0.5, 1.0)),
        fold_tilt_deg=float(rng.normal(0.0, 8.0)),
        mucosa_tone=float(rng.uniform(-1.0, 1.0)),
        pale=float(rng.uniform(0.0, 1.0) ** 2),
        diverticulum_angle_deg=float(rng.choice([-1, 1]) * rng.uniform(20.0, 160.0)),
        diverticulum_size=float(rng.uniform(1.3, 2.4)),
        bubbles=int(rng.choice([0, 0, 1, 2])),
        bile=float(rng.uniform(0.0, 1.0) ** 3),
    )


@dataclass(frozen=True, eq=False)
class Scene:
    """A shaded wall texture and where its papilla is.

    Attributes:
        texture: BGR uint8 (H, W, 3).
        unit: texture pixels per field height at zoom 1.
        papilla_outline: (K, 2) float32 points on the papilla's rim, texture pixels; None
            when the scene has no papilla.
        papilla_interior: (M, 2) float32 points spread evenly over the papilla.
    """

    texture: np.ndarray
    unit: float
    papilla_outline: np.ndarray | None
    papilla_interior: np.ndarray | None
    papilla_centre: tuple[float, float] | None

    @property
    def width(self) -> int:
        return int(self.texture.shape[1])

    @property
    def height(self) -> int:
        return int(self.texture.shape[0])


def fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], cell: float, octaves: int = 3
) -> np.ndarray:
    """Smooth value noise, roughly zero mean and unit spread, float32 of ``shape``."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        cell = max(cell / 2.0, 1.0)
    return out / total


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _blur_coarse(img: np.ndarray, sigma: float) -> np.ndarray:
    """A wide Gaussian blur done at reduced resolution (same result to the eye, far cheaper)."""
    h, w = img.shape[:2]
    f = max(1, int(sigma / 3))
    small = cv2.resize(img, (max(2, w // f), max(2, h // f)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / f)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


class _Window:
    """A rectangle of the scene where a local feature is computed, with local coordinates."""

    def __init__(self, cx: float, cy: float, rx: float, ry: float, w: int, h: int):
        self.x0, self.x1 = max(0, int(cx - rx)), min(w, int(cx + rx) + 1)
        self.y0, self.y1 = max(0, int(cy - ry)), min(h, int(cy + ry) + 1)
        self.dx = (np.arange(self.x0, self.x1, dtype=np.float32) + 0.5 - cx)[None, :]
        self.dy = (np.arange(self.y0, self.y1, dtype=np.float32) + 0.5 - cy)[:, None]

    @property
    def sl(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def rotated(self, angle_rad: float) -> tuple[np.ndarray, np.ndarray]:
        ca, sa = math.cos(angle_rad), math.sin(angle_rad)
        return self.dx * ca + self.dy * sa, -self.dx * sa + self.dy * ca


def build_scene(
    anatomy: Anatomy,
    width: int,
    height: int,
    unit: float,
    papilla_xy: tuple[float, float] | None,
    rng: np.random.Generator,
    nodule: bool = True,
) -> Scene:
    """Builds the height field, albedo and shading of one wall and bakes them into a texture.

    Args:
        anatomy: the patient's anatomy.
        width: texture width in pixels.
        height: texture height in pixels.
        unit: texture pixels per field height at zoom 1.
        papilla_xy: where the papilla sits in the texture, or None for a wall without one
            (a diverticulum, if the anatomy has one, is kept: it is a realistic hard negative).
        rng: the scene's generator.
        nodule: False leaves out the papilla's nodule and orifice but keeps everything else
            pixel for pixel (the hooding fold, the frenulum, the mucosa): tests use it to see
            which pixels the papilla's box must cover.

    Returns:
        The scene.
    """
    # One independent stream per component, so that leaving one out changes nothing else.
    (r_folds, r_albedo, r_div, r_pap, r_villi, r_light, r_wet, r_bile, r_bub) = (
        np.random.default_rng(int(s)) for s in rng.integers(0, 2**63 - 1, size=9)
    )
    h, w = height, width
    u = float(unit)
    tone, pale = anatomy.mucosa_tone, anatomy.pale

    # --- circular folds: wavy transverse ridges that fade in and out -------------------------
    spacing = anatomy.fold_spacing * u
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    warp = fractal_noise(r_folds, (h, w), cell=0.9 * u, octaves=2) * (0.55 * spacing)
    phase = (yy + xx * math.tan(math.radians(anatomy.fold_tilt_deg)) + warp) * (
        2.0 * math.pi / spacing
    )
    ridge = (0.5 + 0.5 * np.cos(phase)) ** 2.5
    fold_amp = np.clip(0.75 + 0.7 * fractal_noise(r_folds, (h, w), cell=0.7 * u, octaves=2), 0, 1.3)
    height_map = ridge * fold_amp * (anatomy.fold_depth * 0.055 * u)
    del phase, warp

    albedo_var = fractal_noise(r_albedo, (h, w), cell=0.35 * u, octaves=3)  # patchy redness
    pap_tint = np.zeros((h, w), np.float32)  # where the papilla colour applies
    dark = np.zeros((h, w), np.float32)  # orifice and pouch interior

    outline = interior = None
    centre = None
    if anatomy.morphology == "diverticulum":
        pr = 0.5 * anatomy.size * u
        if papilla_xy is not None:
            px, py = papilla_xy
        else:
            px, py = w / 2.0, h / 2.0
        big_r = anatomy.diverticulum_size * pr
        a = math.radians(anatomy.diverticulum_angle_deg)
        dcx = px + math.sin(a) * (big_r + 0.55 * pr)
        dcy = py - math.cos(a) * (big_r + 0.55 * pr)
        _add_diverticulum(height_map, dark, dcx, dcy, big_r, u, r_div)

    if papilla_xy is not None:
        centre = (float(papilla_xy[0]), float(papilla_xy[1]))
        outline, interior = _add_papilla(
            anatomy, height_map, pap_tint, dark, centre, u, r_pap, nodule
        )

    # --- villous fine texture -----------------------------------------------------------------
    vs = max(0.6, u / 420.0)
    villi = cv2.GaussianBlur(r_villi.standard_normal((h, w)).astype(np.float32), (0, 0), vs)
    villi *= 1.0 / max(villi.std(), 1e-6)
    villi_amp = 0.55 * vs * (1.0 + 0.8 * pap_tint * anatomy.granularity)
    height_map += villi * villi_amp

    # --- shading --------------------------------------------------------------------------------
    gx = cv2.Sobel(height_map, cv2.CV_32F, 1, 0, ksize=3, scale=1.0 / 8.0)
    gy = cv2.Sobel(height_map, cv2.CV_32F, 0, 1, ksize=3, scale=1.0 / 8.0)
    lx, ly = float(r_light.uniform(-0.25, 0.25)), float(r_light.uniform(-0.55, -0.3))
    norm_l = math.sqrt(lx * lx + ly * ly + 1.0)
    inv_n = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    diffuse = np.clip((-gx * lx - gy * ly + 1.0) * inv_n / norm_l, 0.0, 1.0)
    hx, hy = lx / norm_l, ly / norm_l
    hz = 1.0 / norm_l + 1.0
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    spec_dot = np.clip((-gx * hx - gy * hy + hz) * inv_n / hn, 0.0, 1.0)
    del gx, gy, inv_n
    cavity = _blur_coarse(height_map, 0.05 * u) - height_map
    occlusion = np.clip(1.0 - cavity / (0.05 * u), 0.15, 1.0)
    shade = (0.18 + 0.9 * diffuse**1.6) * occlusion * (1.0 - 0.82 * dark)
    del cavity

    wet = np.clip(0.5 + 0.9 * fractal_noise(r_wet, (h, w), cell=0.25 * u, octaves=2), 0.0, 1.0)
    spec = (spec_dot**90) * (0.35 + 0.9 * wet) * (1.0 - dark)
    del spec_dot

    # --- colour: pink-orange mucosa, redder papilla; shadows fall to deep red --------------------
    r_base = 0.93 + 0.04 * pale
    g_base = 0.50 + 0.07 * tone + 0.12 * pale
    b_base = 0.42 - 0.06 * tone + 0.12 * pale
    red_shift = 0.05 * albedo_var
    pt = pap_tint * (0.35 + 0.65 * anatomy.redness)
    g_alb = g_base - red_shift - 0.17 * pt
    b_alb = b_base - 0.6 * red_shift - 0.12 * pt
    r_alb = r_base - 0.05 * pt + 0.02 * albedo_var
    if anatomy.bile > 0.05:
        bile = np.clip(fractal_noise(r_bile, (h, w), cell=0.4 * u, octaves=2) - 0.6, 0, 1)
        bile *= anatomy.bile * 1.5 * (1.0 - pap_tint)
        g_alb = g_alb + 0.22 * bile
        b_alb = b_alb - 0.15 * bile
    texture = np.empty((h, w, 3), np.uint8)
    for ch, (alb, gamma) in enumerate(((b_alb, 1.55), (g_alb, 1.45), (r_alb, 0.85))):
        val = alb * shade**gamma + spec * 0.95
        texture[:, :, ch] = np.clip(val * 255.0, 0, 255).astype(np.uint8)

    for _ in range(anatomy.bubbles):
        _draw_bubbles(texture, u, centre, r_bub)
    return Scene(texture, u, outline, interior, centre)


def _add_papilla(
    anatomy: Anatomy,
    height_map: np.ndarray,
    pap_tint: np.ndarray,
    dark: np.ndarray,
    centre: tuple[float, float],
    u: float,
    rng: np.random.Generator,
    nodule: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Adds the nodule, the orifice, the hooding fold and the frenulum; returns rim and interior.

    Everything outside the nodule's ellipse (rx, ry) is the same with and without ``nodule``.
    """
    h, w = height_map.shape
    px, py = centre
    rx = 0.5 * anatomy.size * u
    ry = rx * anatomy.aspect
    angle = math.radians(anatomy.angle_deg)
    win = _Window(px, py, 6.0 * rx, 6.0 * ry + 3.0 * rx, w, h)
    du, dv = win.rotated(angle)
    sl = win.sl
    morph = anatomy.morphology

    # The papilla sits on a smooth patch between folds: flatten the folds around it.
    r2_big = (du / (2.4 * rx)) ** 2 + (dv / (2.2 * ry)) ** 2
    height_map[sl] *= 1.0 - np.exp(-r2_big * 1.5)
    base = height_map[sl].copy()

    # Nodule: a dome whose footprint is the ellipse (rx, ry), lobulated a little.
    r2 = (du / rx) ** 2 + (dv / ry) ** 2
    lobes = 1.0 + 0.1 * fractal_noise(rng, r2.shape, cell=max(2.0, 0.6 * rx), octaves=2)
    gran = fractal_noise(rng, r2.shape, cell=max(1.2, 0.16 * rx), octaves=2)
    profile = {"flat": 1.0, "protruding": 1.5, "bulging": 1.0, "diverticulum": 1.3}[morph]
    rr = np.clip(r2 * lobes, 0.0, 1.0)
    dome = (1.0 - rr) ** profile
    peak = anatomy.height * rx
    inside = r2 < 1.0
    nod = peak * dome
    if morph == "bulging":
        # The swollen intraduodenal segment of the bile duct, inside the upper half.
        r2_seg = (du / (0.8 * rx)) ** 2 + ((dv + 0.35 * ry) / (0.75 * ry)) ** 2
        nod += 0.35 * peak * np.clip(1.0 - r2_seg, 0, 1) ** 1.5
    # Granular, reticular surface of the papilla, strongest on its top.
    nod += (0.07 * rx * (0.3 + anatomy.granularity)) * gran * _smoothstep((1.0 - r2) / 0.5)

    # Orifice, above the centre (the papilla faces down the duodenum): a dark pit or slit.
    oy = -0.28 * ry
    if anatomy.orifice == "slit":
        ox_r, oy_r = 0.06 * rx, 0.24 * ry
    elif anatomy.orifice == "villous":
        ox_r, oy_r = 0.18 * rx, 0.16 * ry
    else:
        ox_r, oy_r = 0.09 * rx, 0.09 * ry
    ro2 = (du / ox_r) ** 2 + ((dv - oy) / oy_r) ** 2
    nod -= (0.35 * peak + 0.05 * rx) * np.exp(-ro2)
    if anatomy.orifice == "villous":
        ring = np.exp(-((np.sqrt(ro2) - 1.3) ** 2) / 0.25)
        nod += 0.06 * rx * ring * (0.5 + gran)
        hole = 0.6 * np.exp(-ro2 * 1.5)
    else:
        hole = 0.8 * _smoothstep((1.5 - ro2) / 1.2)
    if nodule:
        height_map[sl] = np.where(inside, base + np.maximum(nod, -0.5 * peak), base)
        tint = _smoothstep((1.0 - r2) / 0.45)
        pap_tint[sl] = np.maximum(pap_tint[sl], tint)
        dark[sl] = np.maximum(dark[sl], np.where(inside, hole, 0.0))

    # Hooding fold: a broad transverse fold just above the papilla, curving down at its ends.
    fold_h = 0.06 * u * (0.5 + 0.7 * anatomy.hood) + 0.3 * peak
    y_c = -1.0 * ry - 0.25 * rx + 0.16 * (du**2) / rx
    width = 0.55 * ry + 0.2 * rx
    lateral = np.exp(-((du / (3.4 * rx)) ** 4))
    hood = fold_h * _smoothstep(1.0 - ((dv - y_c) / width) ** 2) ** 0.8 * lateral
    # Frenulum: a longitudinal fold running down from the papilla's lower edge.
    fr_h = (0.3 + 0.5 * anatomy.frenulum) * (0.4 * peak + 0.025 * u)
    fr_len = (1.5 + 2.5 * anatomy.frenulum) * ry
    along = np.clip((dv - 0.7 * ry) / fr_len, 0.0, 1.0)
    fr_w = 0.3 * rx + 0.006 * u
    fr = fr_h * np.exp(-((du / fr_w) ** 2)) * _smoothstep((dv - 0.5 * ry) / (0.4 * ry))
    fr *= (1.0 - along) ** 0.7
    # Where a fold meets the nodule, the nodule wins (it lies in front of them).
    folds = np.maximum(hood, fr)
    if nodule:
        folds = np.where(inside, -np.inf, folds)
    height_map[sl] = np.maximum(height_map[sl], folds)

    ts = np.linspace(0.0, 2.0 * math.pi, 48, endpoint=False)
    ca, sa = math.cos(angle), math.sin(angle)
    eu, ev = rx * np.cos(ts), ry * np.sin(ts)
    outline = np.stack([px + eu * ca - ev * sa, py + eu * sa + ev * ca], axis=1)
    k = np.arange(256) + 0.5
    rad = np.sqrt(k / 256.0)
    theta = k * math.pi * (3.0 - math.sqrt(5.0))
    iu, iv = rx * rad * np.cos(theta), ry * rad * np.sin(theta)
    interior = np.stack([px + iu * ca - iv * sa, py + iu * sa + iv * ca], axis=1)
    return outline.astype(np.float32), interior.astype(np.float32)


def _add_diverticulum(
    height_map: np.ndarray,
    dark: np.ndarray,
    cx: float,
    cy: float,
    radius: float,
    u: float,
    rng: np.random.Generator,
) -> None:
    """A periampullary diverticulum: a deep pouch with steep walls and a dark inside."""
    h, w = height_map.shape
    win = _Window(cx, cy, 2.0 * radius, 2.0 * radius, w, h)
    sl = win.sl
    dist = np.sqrt((win.dx / 1.1) ** 2 + (win.dy / 0.9) ** 2)
    dist *= 1.0 + 0.08 * fractal_noise(rng, dist.shape, cell=max(2.0, 0.4 * radius), octaves=2)
    inside = _smoothstep((radius - dist) / (0.35 * radius))
    height_map[sl] = height_map[sl] * (1.0 - inside) - 0.14 * u * inside
    rim = np.exp(-(((dist - radius) / (0.2 * radius)) ** 2))
    height_map[sl] += 0.02 * u * rim
    dark[sl] = np.maximum(dark[sl], 0.9 * _smoothstep((0.85 * radius - dist) / (0.5 * radius)))


def _draw_bubbles(
    texture: np.ndarray, u: float, avoid: tuple[float, float] | None, rng: np.random.Generator
) -> None:
    """A cluster of small air bubbles: thin bright rims and a glint, over the mucosa."""
    h, w = texture.shape[:2]
    for _ in range(20):
        cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h)
        if avoid is None or math.hypot(cx - avoid[0], cy - avoid[1]) > 0.35 * u:
            break
    else:
        return
    n = int(rng.integers(4, 18))
    spread = rng.uniform(0.04, 0.12) * u
    overlay = np.zeros_like(texture)
    alpha = np.zeros(texture.shape[:2], np.float32)
    for _ in range(n):
        bx, by = cx + rng.normal(0, spread), cy + rng.normal(0, spread)
        r = float(rng.uniform(0.006, 0.035) * u)
        centre = (int(bx * 16), int(by * 16))
        rr = max(1, int(r * 16))
        th = max(1, int(round(r * 0.14)))
        cv2.circle(overlay, centre, rr, (225, 228, 238), -1, cv2.LINE_AA, 4)
        cv2.circle(overlay, centre, rr, (240, 240, 248), th, cv2.LINE_AA, 4)
        cv2.circle(alpha, centre, rr, 0.75, th, cv2.LINE_AA, 4)
        cv2.circle(alpha, centre, max(1, rr - th * 16), 0.08, -1, cv2.LINE_AA, 4)
        g = (int((bx - 0.4 * r) * 16), int((by - 0.45 * r) * 16))
        cv2.circle(overlay, g, max(1, int(r * 0.22 * 16)), (255, 255, 255), -1, cv2.LINE_AA, 4)
        cv2.circle(alpha, g, max(1, int(r * 0.22 * 16)), 1.0, -1, cv2.LINE_AA, 4)
    alpha = cv2.GaussianBlur(alpha, (0, 0), max(0.5, u / 900))[:, :, None]
    texture[:] = (texture * (1.0 - alpha) + overlay * alpha).astype(np.uint8)
