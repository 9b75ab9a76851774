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
        "bulging": rng.uniform(0.3, 0.45),
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
        diverticulum_size=float(rng.uniform(1.8, 3.2)),
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
    """Smooth value noise, roughly zero mean and unit spread, float32 of ``shape``.

    The octaves are summed at a resolution just fine enough for the smallest one, then
    resized once: the same look at a fraction of the cost.
    """
    h, w = shape
    finest = max(cell / 2 ** (octaves - 1), 1.0)
    f = max(1.0, finest / 3.0)
    sh, sw = max(2, int(math.ceil(h / f))), max(2, int(math.ceil(w / f)))
    out = np.zeros((sh, sw), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (sw, sh), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        cell = max(cell / 2.0, 1.0)
    out *= 1.0 / total
    if (sh, sw) != (h, w):
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _smooth_max(a: np.ndarray, b: np.ndarray, k: float, weight: np.ndarray) -> np.ndarray:
    """max(a, b) with the crease rounded over a height difference of ``k`` (no dark seams).

    ``weight`` (0..1) turns the rounding off where no crease is wanted, so that it adds nothing
    where a feature has faded out.
    """
    hk = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.maximum(a, b) + hk * hk * (0.25 * k) * weight


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
        big_r = float(np.clip(anatomy.diverticulum_size * pr, 0.14 * u, 0.35 * u))
        a = math.radians(anatomy.diverticulum_angle_deg)
        dcx = px + math.sin(a) * (big_r + 0.55 * pr)
        dcy = py - math.cos(a) * (big_r + 0.55 * pr)
        _add_diverticulum(height_map, dark, dcx, dcy, big_r, u, r_div)

    if papilla_xy is not None:
        centre = (float(papilla_xy[0]), float(papilla_xy[1]))
        outline, interior = _add_papilla(
            anatomy, height_map, pap_tint, dark, centre, u, r_pap, nodule
        )

    # --- villous fine texture: tiny bumps that catch the light -----------------------------------
    vs = max(0.55, u / 800.0)
    villi = cv2.GaussianBlur(r_villi.standard_normal((h, w)).astype(np.float32), (0, 0), vs)
    villi *= (0.5 + 0.5 * pap_tint * anatomy.granularity) * vs / max(villi.std(), 1e-6)

    # --- shading: light from the scope tip, a little above the lens -----------------------------
    relief = 0.65  # flattens the normals: the wall is seen from close and lit almost head-on
    k = relief / 8.0
    gxs = cv2.Sobel(height_map, cv2.CV_32F, 1, 0, ksize=3, scale=k)
    gys = cv2.Sobel(height_map, cv2.CV_32F, 0, 1, ksize=3, scale=k)
    gxv = cv2.Sobel(villi, cv2.CV_32F, 1, 0, ksize=3, scale=k)
    gyv = cv2.Sobel(villi, cv2.CV_32F, 0, 1, ksize=3, scale=k)
    height_map += villi
    del villi
    lx, ly = float(r_light.uniform(-0.25, 0.25)), float(r_light.uniform(-0.55, -0.3))
    norm_l = math.sqrt(lx * lx + ly * ly + 1.0)
    hx, hy = lx / norm_l, ly / norm_l
    hz = 1.0 / norm_l + 1.0
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    gx, gy = gxs + gxv, gys + gyv
    diffuse = np.clip((-gx * lx - gy * ly + 1.0) / np.sqrt(gx * gx + gy * gy + 1.0) / norm_l, 0, 1)
    # Highlights follow the smooth shape (glossy wet surface), roughened a little by the villi.
    gx, gy = gxs + 0.35 * gxv, gys + 0.35 * gyv
    spec_dot = np.clip((-gx * hx - gy * hy + hz) / np.sqrt(gx * gx + gy * gy + 1.0) / hn, 0, 1)
    del gx, gy, gxs, gys, gxv, gyv
    cavity = _blur_coarse(height_map, 0.06 * u) - height_map
    occlusion = np.clip(1.0 - cavity / (0.09 * u), 0.25, 1.0)
    # Closer wall is brighter (the light is on the scope): valleys and pouches fall off.
    near = np.clip(1.0 + 3.0 * _blur_coarse(height_map, 0.03 * u) / u, 0.35, 1.3)
    shade = (0.2 + 0.85 * diffuse**1.3) * occlusion * (1.0 - 0.85 * dark) * near
    del near
    del cavity

    wet = _smoothstep(1.3 * fractal_noise(r_wet, (h, w), cell=0.15 * u, octaves=2) - 0.2)
    glint = spec_dot**700 * wet
    glint = glint + 0.5 * cv2.GaussianBlur(glint, (0, 0), max(1.0, u / 200.0))  # bloom
    spec = np.clip(1.5 * glint + 0.03 * spec_dot**12, 0.0, 1.0) * (1.0 - dark)
    del spec_dot, glint

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
        g_alb = g_alb + 0.07 * bile
        b_alb = b_alb - 0.06 * bile
    texture = np.empty((h, w, 3), np.uint8)
    for ch, (alb, gamma) in enumerate(((b_alb, 1.4), (g_alb, 1.3), (r_alb, 0.8))):
        lit = shade**gamma
        if ch == 2:  # red light scatters under the surface: softer shading in red
            lit = cv2.GaussianBlur(lit, (0, 0), max(0.8, u / 350.0))
        val = alb * lit + spec * 0.95
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
    # Only the folds (positive) are flattened, not a diverticulum; split smoothly at zero.
    hm = height_map[sl]
    e = 0.01 * u
    pos = 0.5 * (hm + np.sqrt(hm * hm + e * e)) - 0.5 * e
    height_map[sl] = hm - pos * np.exp(-r2_big * 1.5)
    base = height_map[sl].copy()

    # Nodule: a dome whose footprint is the ellipse (rx, ry), lobulated a little.
    r2 = (du / rx) ** 2 + (dv / ry) ** 2
    # lobes >= 1: the footprint stays inside the ellipse that the box is made from
    lobes = 1.0 + 0.15 * np.abs(fractal_noise(rng, r2.shape, cell=max(2.0, 0.6 * rx), octaves=2))
    gran = fractal_noise(rng, r2.shape, cell=max(1.5, 0.28 * rx), octaves=3)
    profile = {"flat": 1.0, "protruding": 1.5, "bulging": 1.0, "diverticulum": 1.3}[morph]
    rr = np.clip(r2 * lobes, 0.0, 1.0)
    dome = (1.0 - rr) ** profile
    peak = anatomy.height * rx
    inside = r2 < 1.0
    nod = peak * dome
    if morph == "bulging":
        # The swollen intraduodenal segment of the bile duct, inside the upper half.
        r2_seg = (du / (0.85 * rx)) ** 2 + ((dv + 0.4 * ry) / (0.65 * ry)) ** 2
        nod += 0.8 * peak * np.clip(1.0 - r2_seg, 0, 1) ** 1.2
    # Granular, reticular surface of the papilla, strongest on its top.
    nod += (0.025 * rx * (0.2 + anatomy.granularity)) * gran * _smoothstep((1.0 - r2) / 0.5)
    # Fine radial ridges converging on the orifice.
    theta = np.arctan2(dv + 0.28 * ry, du)
    nod += 0.015 * rx * np.cos(11.0 * theta + 2.0 * gran) * _smoothstep((0.8 - r2) / 0.5)

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
    fold_h = 0.045 * u * (0.5 + 0.7 * anatomy.hood) + 0.25 * peak
    width = 0.05 * u + 0.35 * ry
    y_c = -0.95 * ry - 0.5 * width + 0.1 * (du**2) / max(rx, 0.08 * u)
    reach = 1.8 if morph == "diverticulum" else 3.6  # the pouch interrupts the fold
    lateral = np.exp(-((du / (reach * rx)) ** 4))
    hood = fold_h * _smoothstep(1.0 - ((dv - y_c) / width) ** 2) * lateral
    # Frenulum: a longitudinal fold running down from the papilla's lower edge.
    fr_h = (0.3 + 0.5 * anatomy.frenulum) * (0.4 * peak + 0.025 * u)
    fr_len = (1.5 + 2.5 * anatomy.frenulum) * ry
    along = np.clip((dv - 0.7 * ry) / fr_len, 0.0, 1.0)
    fr_w = 0.45 * rx + 0.01 * u
    fr = fr_h * np.exp(-((du / fr_w) ** 2)) * _smoothstep((dv - 0.5 * ry) / (0.4 * ry))
    fr *= (1.0 - along) ** 0.7
    # Where a fold meets the nodule, the nodule wins (it lies in front of them).
    # The hooding fold may overhang the top of the nodule, as it does in patients; no fold
    # bridges a diverticulum.
    ground = _smoothstep((base + 0.06 * u) / (0.06 * u))
    k = 0.025 * u
    folds = _smooth_max(hood, fr, k, np.clip(np.minimum(hood, fr) / k, 0.0, 1.0)) * ground
    height_map[sl] = _smooth_max(height_map[sl], folds, k, np.clip(folds / k, 0.0, 1.0))

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
    win = _Window(cx, cy, 1.5 * radius, 1.5 * radius, w, h)
    sl = win.sl
    a = rng.uniform(0.0, math.pi)
    ca, sa = math.cos(a), math.sin(a)
    elong = rng.uniform(1.0, 1.4)
    dist = np.sqrt(((win.dx * ca + win.dy * sa) * elong) ** 2 + (-win.dx * sa + win.dy * ca) ** 2)
    dist *= 1.0 + 0.1 * fractal_noise(rng, dist.shape, cell=max(2.0, 0.5 * radius), octaves=2)
    inside = _smoothstep((1.05 * radius - dist) / (0.75 * radius))
    height_map[sl] = height_map[sl] * (1.0 - inside) - 0.12 * u * inside
    dark[sl] = np.maximum(dark[sl], 0.96 * _smoothstep((0.85 * radius - dist) / (0.45 * radius)))


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
    # Draw in a window around the cluster only.
    half = int(4 * spread + 0.06 * u) + 2
    x0, y0 = max(0, int(cx) - half), max(0, int(cy) - half)
    x1, y1 = min(w, int(cx) + half), min(h, int(cy) + half)
    patch = texture[y0:y1, x0:x1]
    overlay = np.zeros_like(patch)
    alpha = np.zeros(patch.shape[:2], np.float32)
    for _ in range(n):
        bx, by = cx + rng.normal(0, spread) - x0, cy + rng.normal(0, spread) - y0
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
    patch[:] = (patch * (1.0 - alpha) + overlay * alpha).astype(np.uint8)
