"""Every-iteration augmentation of an image and its box together (numpy / OpenCV).

One random affine (flip, rotation, shear, scale, translation) moves image and box in a single
``cv2.warpAffine``; colour jitter and Gaussian blur touch the image only. The box is not mapped
by its four corners: a rotated rectangle's extent grows with the angle, while the objects here
(papilla, polyp) are roundish. Instead the box's *inscribed ellipse* is sampled, transformed and
its extent taken, so a 45-degree rotation of a circle's box gives the same box back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from app.core.errors import ConfigError
from app.core.geometry import Box, clip_box, validate_box

_ELLIPSE_POINTS = 72


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms; each is drawn uniformly per call.

    Attributes:
        hflip, vflip: probability of a horizontal / vertical flip.
        rotate_deg: rotation in [-r, r] degrees.
        shear_deg: horizontal and vertical shear, each in [-s, s] degrees.
        scale: zoom factor range (min, max).
        translate: shift in [-t, t] times the image size, per axis.
        brightness, contrast, saturation: multiplicative jitter in [1-j, 1+j].
        hue_deg: hue shift in [-h, h] degrees.
        blur_p: probability of a Gaussian blur with sigma drawn from ``blur_sigma``.
        blur_sigma: (min, max) sigma in pixels.
        min_box_fraction: drop the box (None) if less than this fraction of its transformed
            extent stays inside the image.
    """

    hflip: float = 0.5
    vflip: float = 0.5
    rotate_deg: float = 20.0
    shear_deg: float = 8.0
    scale: tuple[float, float] = (0.85, 1.15)
    translate: float = 0.05
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue_deg: float = 5.0
    blur_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    min_box_fraction: float = 0.25

    def __post_init__(self) -> None:
        for name in ("hflip", "vflip", "blur_p", "min_box_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(
                    f"augment {name} must be a probability, got {getattr(self, name)}"
                )
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ConfigError(
                f"augment scale must be (min, max) with 0 < min <= max, got {self.scale}"
            )


#: No augmentation at all (evaluation).
NO_AUGMENT = AugmentConfig(0.0, 0.0, 0.0, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def random_affine(
    shape: tuple[int, int], rng: np.random.Generator, cfg: AugmentConfig
) -> np.ndarray:
    """A 2x3 affine matrix about the image centre, drawn from ``cfg``."""
    height, width = shape
    cx, cy = width / 2.0, height / 2.0
    fx = -1.0 if rng.random() < cfg.hflip else 1.0
    fy = -1.0 if rng.random() < cfg.vflip else 1.0
    angle = math.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    shx = math.tan(math.radians(rng.uniform(-cfg.shear_deg, cfg.shear_deg)))
    shy = math.tan(math.radians(rng.uniform(-cfg.shear_deg, cfg.shear_deg)))
    s = rng.uniform(*cfg.scale)
    tx = rng.uniform(-cfg.translate, cfg.translate) * width
    ty = rng.uniform(-cfg.translate, cfg.translate) * height
    flip = np.diag([fx, fy])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shear = np.array([[1.0, shx], [shy, 1.0]])
    linear = s * rot @ shear @ flip
    centre = np.array([cx, cy])
    offset = centre + np.array([tx, ty]) - linear @ centre
    return np.hstack([linear, offset[:, None]])


def transform_box(
    box: Box, matrix: np.ndarray, width: int, height: int, min_fraction: float = 0.25
) -> Box | None:
    """Map a box by an affine through its inscribed ellipse, clip it to the image.

    Returns None when less than ``min_fraction`` of the mapped box's area is inside the image.
    """
    x, y, w, h = validate_box(box)
    t = np.linspace(0.0, 2.0 * math.pi, _ELLIPSE_POINTS, endpoint=False)
    pts = np.stack([x + w / 2 + w / 2 * np.cos(t), y + h / 2 + h / 2 * np.sin(t)], axis=1)
    mapped = pts @ matrix[:, :2].T + matrix[:, 2]
    x0, y0 = mapped.min(axis=0)
    x1, y1 = mapped.max(axis=0)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    full = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
    clipped = clip_box(full, width, height)
    if clipped is None or clipped[2] * clipped[3] < min_fraction * full[2] * full[3]:
        return None
    return clipped


def jitter_colour(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter of a BGR uint8 image."""
    img = image.astype(np.float32)
    if cfg.brightness:
        img *= rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    if cfg.contrast:
        mean = img.mean()
        img = (img - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    img = np.clip(img, 0, 255)
    if cfg.saturation or cfg.hue_deg:
        hsv = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
        if cfg.hue_deg:  # OpenCV's 8-bit hue is degrees / 2
            hsv[..., 0] = (hsv[..., 0] + rng.uniform(-cfg.hue_deg, cfg.hue_deg) / 2.0) % 180.0
        if cfg.saturation:
            hsv[..., 1] *= rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)
        hsv = np.clip(hsv, 0, [179, 255, 255])
        return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)
    return img.astype(np.uint8)


def augment(
    image: np.ndarray,
    box: Box | None,
    rng: np.random.Generator,
    cfg: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, Box | None]:
    """Augment a BGR uint8 image (H, W, 3) and its COCO box together.

    Args:
        image: BGR uint8 image.
        box: COCO ``[x, y, w, h]`` in the image's pixels, or None (no object).
        rng: the random generator (one per worker / iteration).
        cfg: the transform ranges.

    Returns:
        ``(image, box)``: the new image (same shape) and the box mapped with the same affine
        (via its inscribed ellipse), clipped to the image, or None if it left the image.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"augment expects a BGR uint8 (H, W, 3) image, got {image.dtype} {image.shape}"
        )
    height, width = image.shape[:2]
    matrix = random_affine((height, width), rng, cfg)
    out = cv2.warpAffine(
        image,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )
    new_box = None
    if box is not None:
        new_box = transform_box(box, matrix, width, height, cfg.min_box_fraction)
    out = jitter_colour(out, rng, cfg)
    if cfg.blur_p and rng.random() < cfg.blur_p:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(*cfg.blur_sigma))
    return out, new_box
