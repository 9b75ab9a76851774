"""The phantom duodenoscope: synthetic ERCP frames with ground truth (stills, video, source)."""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from app.core.errors import ConfigError
from app.core.frame import Frame
from app.core.geometry import Box
from app.core.phantom_case import (
    CannulationCase,
    Demographics,
    sample_case,
    sample_demographics,
)
from app.core.phantom_render import (
    MIN_VISIBLE_FRACTION,
    WINDOW_SHAPES,
    _centre_for,
    _clamp_view,
    _draw_clock,
    _frame_template,
    _layout,
    _render_view,
    _View,
    field_rect,
)
from app.core.phantom_scene import MORPHOLOGIES, Anatomy, Scene, build_scene, sample_anatomy

__all__ = [
    "MIN_VISIBLE_FRACTION",
    "MORPHOLOGIES",
    "CannulationCase",
    "Phantom",
    "PhantomConfig",
    "PhantomSource",
    "PhantomTruth",
    "PhantomVideo",
    "field_rect",
    "render_still",
]

log = logging.getLogger(__name__)


# Stream identifiers for np.random.SeedSequence([seed, stream, ...]).
_S_GROUPS, _S_ANATOMY, _S_CASE, _S_PERSON, _S_VIEW, _S_SCENE, _S_VIDEO = range(7)


@dataclass(frozen=True)
class PhantomConfig:
    """How the phantom renders.

    Attributes:
        width: frame width in pixels.
        height: frame height in pixels.
        fps: frame rate of video mode and of the live source.
        absent_fraction: in still mode, the fraction of images with no papilla in view.
        window: endoscopic window shape, "octagon" or "rounded".
        texture_scale: scene texture pixels per field pixel at zoom 1 (sharpness vs. build time).
        blur_fraction: in still mode, the fraction of images with motion blur.
        bubbles: whether scenes may have air bubbles.
        text: whether the invented patient text is burned in beside the window.
    """

    width: int = 1280
    height: int = 720
    fps: float = 30.0
    absent_fraction: float = 0.0
    window: str = "octagon"
    texture_scale: float = 1.0
    blur_fraction: float = 0.15
    bubbles: bool = True
    text: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.width, int) and isinstance(self.height, int)):
            raise ConfigError(
                f"phantom width/height must be integers, got {self.width!r}x{self.height!r}"
            )
        if self.width < 64 or self.height < 36 or self.width > 7680 or self.height > 4320:
            raise ConfigError(
                f"phantom size {self.width}x{self.height} is out of range; "
                "expected 64x36 to 7680x4320"
            )
        if self.width < self.height:
            raise ConfigError(
                f"phantom frame {self.width}x{self.height} is portrait; expected "
                "a landscape frame such as 1280x720"
            )
        if not (0.0 < self.fps <= 240.0):
            raise ConfigError(f"phantom fps {self.fps} is out of range; expected 0 < fps <= 240")
        if not (0.0 <= self.absent_fraction <= 1.0):
            raise ConfigError(
                f"absent fraction {self.absent_fraction} is out of range; expected 0..1"
            )
        if not (0.0 <= self.blur_fraction <= 1.0):
            raise ConfigError(f"blur fraction {self.blur_fraction} is out of range; expected 0..1")
        if self.window not in WINDOW_SHAPES:
            raise ConfigError(
                f"window shape {self.window!r} is unknown; expected one of "
                f"{', '.join(WINDOW_SHAPES)}"
            )
        if not (0.25 <= self.texture_scale <= 2.0):
            raise ConfigError(
                f"texture scale {self.texture_scale} is out of range; expected 0.25..2"
            )

    @classmethod
    def from_dict(cls, values: dict) -> PhantomConfig:
        """A config from a mapping; an unknown key is an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown phantom config key(s) {unknown}; expected {sorted(known)}")
        return cls(**values)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PhantomTruth:
    """Ground truth of one phantom frame.

    Attributes:
        box: COCO ``[x, y, w, h]`` of the papilla in frame pixels, clipped to the window; None
            when it is out of view or less than ``MIN_VISIBLE_FRACTION`` of it is visible.
        morphology: the patient's papilla morphology (one of ``MORPHOLOGIES``), also when the
            papilla is out of view.
        case: the patient's cannulation record.
        patient_id: invented patient identifier (several stills share one).
        field: ``(x, y, w, h)`` of the endoscopic window's bounding rectangle in the frame.
        visible_fraction: fraction of the papilla's area inside the window (0 when absent).
        papilla_size: papilla diameter relative to the field height at zoom 1.
    """

    box: Box | None
    morphology: str
    case: CannulationCase
    patient_id: str
    field: tuple[int, int, int, int]
    visible_fraction: float
    papilla_size: float

    def to_json(self) -> dict:
        """JSON-ready dict: box (list or None), morphology, case fields, patient_id, field."""
        return {
            "box": None if self.box is None else [round(float(v), 2) for v in self.box],
            "morphology": self.morphology,
            "case": self.case.to_json(),
            "patient_id": self.patient_id,
            "field": list(self.field),
            "visible_fraction": round(self.visible_fraction, 3),
            "papilla_size": round(self.papilla_size, 4),
        }


# ------------------------------------------------------------------------------------------
# Patients and stills
# ------------------------------------------------------------------------------------------
def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def _check_seed(seed: int) -> int:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"phantom seed must be a non-negative integer, got {seed!r}")
    return int(seed)


_GROUP_CHUNK = 1024


@functools.lru_cache(maxsize=256)
def _group_sizes(seed: int, chunk: int) -> np.ndarray:
    """Images per patient (1 to 4) for patients ``chunk * _GROUP_CHUNK`` onwards."""
    rng = _rng(seed, _S_GROUPS, chunk)
    return rng.choice([1, 2, 3, 4], size=_GROUP_CHUNK, p=[0.2, 0.3, 0.3, 0.2])


def patient_of(index: int, seed: int) -> tuple[int, int]:
    """Which patient a still belongs to, and which of that patient's images it is."""
    if index < 0:
        raise ValueError(f"still index must be >= 0, got {index}")
    start, chunk = 0, 0
    while True:
        sizes = _group_sizes(seed, chunk)
        total = int(sizes.sum())
        if index < start + total:
            ends = start + np.cumsum(sizes)
            k = int(np.searchsorted(ends, index, side="right"))
            first = int(ends[k] - sizes[k])
            return chunk * _GROUP_CHUNK + k, index - first
        start += total
        chunk += 1


@dataclass(frozen=True)
class _Patient:
    anatomy: Anatomy
    case: CannulationCase
    person: Demographics


@functools.lru_cache(maxsize=64)
def _patient(seed: int, population: int, key: int, patient_id: str) -> _Patient:
    """Patient ``key`` of a population (0: stills, 1: videos) of the dataset ``seed``."""
    anatomy = sample_anatomy(_rng(seed, _S_ANATOMY, population, key))
    case = sample_case(anatomy.morphology, anatomy.size, _rng(seed, _S_CASE, population, key))
    person = sample_demographics(patient_id, _rng(seed, _S_PERSON, population, key))
    return _Patient(anatomy, case, person)


def _still_patient(seed: int, k: int) -> _Patient:
    return _patient(seed, 0, k, f"P{seed}-{k:05d}")


def _still_scene_args(seed: int, k: int, absent: bool, config: PhantomConfig) -> tuple:
    """The arguments of ``build_scene`` for patient ``k``'s still scene."""
    patient = _still_patient(seed, k)
    _, _, _, fh = field_rect(config.width, config.height)
    u = fh * config.texture_scale
    w, h = int(2.5 * u), int(2.3 * u)
    anatomy = patient.anatomy if config.bubbles else _without_bubbles(patient.anatomy)
    rng = _rng(seed, _S_SCENE, k, int(absent))
    papilla = None if absent else (w * rng.uniform(0.45, 0.55), h * rng.uniform(0.45, 0.55))
    return anatomy, w, h, u, papilla, rng


def patient_morphology(seed: int, k: int) -> str:
    """The papilla morphology of still-mode patient ``k`` (cheap: nothing is rendered)."""
    return _still_patient(_check_seed(seed), k).anatomy.morphology


@functools.lru_cache(maxsize=6)
def _still_scene(seed: int, k: int, absent: bool, config: PhantomConfig) -> Scene:
    return build_scene(*_still_scene_args(seed, k, absent, config))


def _without_bubbles(anatomy: Anatomy) -> Anatomy:
    values = asdict(anatomy)
    values["bubbles"] = 0
    return Anatomy(**values)


@functools.lru_cache(maxsize=16)
def _template(config: PhantomConfig, person: Demographics) -> np.ndarray:
    return _frame_template(config, person)


def render_still(
    index: int, seed: int, config: PhantomConfig | None = None
) -> tuple[np.ndarray, PhantomTruth]:
    """Renders still ``index`` of the dataset defined by ``seed``.

    Consecutive indices share a patient (1 to 4 images each, same papilla and case) seen from
    independent random views; with ``config.absent_fraction`` some views have no papilla.

    Args:
        index: image number, from 0.
        seed: dataset seed (non-negative).
        config: rendering settings; defaults to ``PhantomConfig()``.

    Returns:
        The BGR uint8 frame and its ground truth.
    """
    config = config or PhantomConfig()
    seed = _check_seed(seed)
    k, _ = patient_of(int(index), seed)
    patient = _still_patient(seed, k)
    rng = _rng(seed, _S_VIEW, int(index))
    absent = bool(rng.random() < config.absent_fraction)
    scene = _still_scene(seed, k, absent, config)
    layout = _layout(config)
    _, _, fw, fh = layout.field

    zoom = float(np.exp(rng.uniform(math.log(0.85), math.log(1.6))))
    roll = math.radians(float(rng.uniform(-35.0, 35.0)))
    tilt_x, tilt_y = (float(v) for v in np.clip(rng.normal(0.0, 0.12, 2), -0.25, 0.25))
    if scene.papilla_centre is not None:
        if rng.random() < 0.06:  # at the edge of the field, partly out of view
            a = rng.uniform(0, 2 * math.pi)
            off = (0.5 * fw * math.cos(a), 0.5 * fh * math.sin(a))
        else:
            off = (
                float(np.clip(rng.normal(0, 0.16), -0.38, 0.38)) * fw,
                float(np.clip(rng.normal(0, 0.14), -0.34, 0.34)) * fh,
            )
        cx, cy = _centre_for(scene.papilla_centre, off, zoom, roll, scene.unit, fh)
    else:
        cx = scene.width * rng.uniform(0.4, 0.6)
        cy = scene.height * rng.uniform(0.4, 0.6)
    blur_x = blur_y = 0.0
    if rng.random() < config.blur_fraction:
        length = rng.uniform(3.0, 16.0) * fh / 662.0
        a = rng.uniform(0, math.pi)
        blur_x, blur_y = length * math.cos(a), length * math.sin(a)
    gain = float(rng.uniform(0.85, 1.12))
    view = _clamp_view(
        _View(cx, cy, zoom, roll, tilt_x, tilt_y, blur_x, blur_y, gain), scene, fw, fh
    )
    template = _template(config, patient.person)
    image, box, frac = _render_view(scene, view, layout, template)
    _draw_clock(image, config, patient.person.exam_time_s + 17.0 * (index - k))
    truth = PhantomTruth(
        box,
        patient.anatomy.morphology,
        patient.case,
        patient.person.patient_id,
        layout.field,
        frac,
        patient.anatomy.size,
    )
    return image, truth


class Phantom:
    """Still-mode phantom bound to a seed and a config: ``Phantom(seed).still(i)``."""

    def __init__(self, seed: int = 0, config: PhantomConfig | None = None):
        self.seed = _check_seed(seed)
        self.config = config or PhantomConfig()

    def still(self, index: int) -> tuple[np.ndarray, PhantomTruth]:
        """Still ``index``; see ``render_still``."""
        return render_still(index, self.seed, self.config)


# ------------------------------------------------------------------------------------------
# Video
# ------------------------------------------------------------------------------------------
_PARAMS = ("cx", "cy", "zoom", "roll", "tilt_x", "tilt_y")


class PhantomVideo:
    """Video-mode phantom: one patient, the scope wandering, approaching and leaving the papilla.

    ``frame(i)`` is a pure function of ``(seed, config, i)``; sequential access costs one warp
    per frame, random access the same (the trajectory's key points are cached).
    """

    _TRANSITIONS = {
        "away": (("near", 0.8), ("away", 0.2)),
        "near": (("papilla", 0.8), ("away", 0.2)),
        "papilla": (("papilla", 0.6), ("near", 0.25), ("away", 0.15)),
    }

    def __init__(self, seed: int = 0, config: PhantomConfig | None = None):
        self.seed = _check_seed(seed)
        self.config = config or PhantomConfig()
        self._layout = _layout(self.config)
        self._patient = _patient(self.seed, 1, 0, f"V{self.seed}-00000")
        _, _, fw, fh = self._layout.field
        self._fw, self._fh = fw, fh
        u = fh * self.config.texture_scale
        self._papilla = (1.05 * u, 1.25 * u)
        self.scene = self._build_scene()
        self._template = _frame_template(self.config, self._patient.person)
        self._keys: list[tuple[float, str, np.ndarray]] = []  # (time, kind, params)
        self._lock = threading.Lock()
        jr = _rng(self.seed, _S_VIDEO, 1)
        # Hand tremor and breathing: a few sinusoids per parameter.
        self._jitter = [
            (jr.uniform(0.15, 1.6, 3), jr.uniform(0, 2 * math.pi, 3), amp)
            for amp in (0.012 * u, 0.012 * u, 0.015, 0.006, 0.01, 0.01)
        ]

    def _build_scene(self, nodule: bool = True) -> Scene:
        u = self._fh * self.config.texture_scale
        anatomy = self._patient.anatomy
        if not self.config.bubbles:
            anatomy = _without_bubbles(anatomy)
        w, h = int(3.5 * u), int(2.5 * u)
        rng = _rng(self.seed, _S_VIDEO, 0)
        return build_scene(anatomy, w, h, u, self._papilla, rng, nodule=nodule)

    @property
    def case(self) -> CannulationCase:
        return self._patient.case

    @property
    def morphology(self) -> str:
        return self._patient.anatomy.morphology

    @property
    def patient_id(self) -> str:
        return self._patient.person.patient_id

    def _key(self, k: int, previous: str | None) -> tuple[float, str, np.ndarray]:
        rng = _rng(self.seed, _S_VIDEO, 2, k)
        if previous is None:
            kind = "near"
        else:
            kinds, probs = zip(*self._TRANSITIONS[previous], strict=True)
            kind = kinds[int(rng.choice(len(kinds), p=probs))]
        u, fw, fh = self.scene.unit, self._fw, self._fh
        roll = math.radians(float(rng.normal(0.0, 12.0)))
        tilt = np.clip(rng.normal(0.0, 0.08, 2), -0.2, 0.2)
        if kind == "papilla":
            zoom = float(rng.uniform(1.1, 1.7))
            off = (float(rng.normal(0, 0.08)) * fw, float(rng.normal(0, 0.08)) * fh)
            duration = rng.uniform(2.0, 4.5) if previous == "papilla" else rng.uniform(1.5, 3.0)
        elif kind == "near":
            zoom = float(rng.uniform(0.9, 1.2))
            side = rng.integers(0, 4)
            frac = rng.uniform(0.3, 0.5)
            off = [(frac * fw, 0.0), (-frac * fw, 0.0), (0.0, frac * fh), (0.0, -frac * fh)][side]
            duration = rng.uniform(1.5, 3.0)
        else:
            zoom = float(rng.uniform(1.0, 1.3))
            roll = math.radians(float(rng.normal(0.0, 20.0)))
            # Papilla well left of the field: the view looks further along the wall.
            off = (-float(rng.uniform(1.05, 1.5)) * fh * zoom, float(rng.normal(0, 0.1)) * fh)
            duration = rng.uniform(2.5, 4.5)
        cx, cy = _centre_for(self._papilla, off, zoom, roll, u, fh)
        view = _clamp_view(
            _View(cx, cy, zoom, roll, float(tilt[0]), float(tilt[1])), self.scene, fw, fh
        )
        params = np.array([view.cx, view.cy, zoom, roll, view.tilt_x, view.tilt_y], np.float64)
        start = 0.0 if not self._keys else self._keys[-1][0]
        return (start + (0.0 if previous is None else float(duration)), kind, params)

    def _keys_until(self, t: float) -> list[tuple[float, str, np.ndarray]]:
        with self._lock:
            while len(self._keys) < 3 or self._keys[-2][0] <= t:
                previous = self._keys[-1][1] if self._keys else None
                self._keys.append(self._key(len(self._keys), previous))
            return self._keys

    def _params(self, t: float) -> np.ndarray:
        keys = self._keys_until(t)
        times = [k[0] for k in keys]
        i = max(0, int(np.searchsorted(times, t, side="right")) - 1)
        t0, t1 = times[i], times[i + 1]
        p0, p1 = keys[i][2], keys[i + 1][2]
        pm = keys[i - 1][2] if i > 0 else p0
        pp = keys[i + 2][2] if i + 2 < len(keys) else p1
        tm = times[i - 1] if i > 0 else t0 - 1.0
        tp = times[i + 2] if i + 2 < len(keys) else t1 + 1.0
        dt = t1 - t0
        m0 = 0.5 * (p1 - pm) / (t1 - tm) * dt
        m1 = 0.5 * (pp - p0) / (tp - t0) * dt
        s = (t - t0) / dt
        h00, h10 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s
        h01, h11 = -2 * s**3 + 3 * s**2, s**3 - s**2
        p = h00 * p0 + h10 * m0 + h01 * p1 + h11 * m1
        for j, (freq, phase, amp) in enumerate(self._jitter):
            p[j] += amp * float(np.sum(np.sin(2 * math.pi * freq * t + phase))) / 3.0
        return p

    def _view(self, t: float) -> _View:
        p = self._params(t)
        p_prev = self._params(max(0.0, t - 1.0 / self.config.fps))
        s = self.scene.unit / (self._fh * p[2])
        c, sn = math.cos(p[3]), math.sin(p[3])
        dx, dy = (p[0] - p_prev[0]) / s, (p[1] - p_prev[1]) / s
        vx, vy = c * dx + sn * dy, -sn * dx + c * dy  # field pixels per frame
        blur = 0.5 if math.hypot(vx, vy) > 3.0 else 0.0
        view = _View(
            float(p[0]),
            float(p[1]),
            float(p[2]),
            float(p[3]),
            float(p[4]),
            float(p[5]),
            blur * vx,
            blur * vy,
            float(1.0 - 0.12 * (p[2] - 1.0)),
        )
        return _clamp_view(view, self.scene, self._fw, self._fh)

    def frame(self, i: int) -> tuple[np.ndarray, PhantomTruth]:
        """Frame ``i`` (from 0) at time ``i / fps``: the BGR image and its ground truth."""
        if i < 0:
            raise ValueError(f"frame index must be >= 0, got {i}")
        t = i / self.config.fps
        image, box, frac = _render_view(self.scene, self._view(t), self._layout, self._template)
        _draw_clock(image, self.config, self._patient.person.exam_time_s + t)
        p = self._patient
        truth = PhantomTruth(
            box,
            p.anatomy.morphology,
            p.case,
            p.person.patient_id,
            self._layout.field,
            frac,
            p.anatomy.size,
        )
        return image, truth


# ------------------------------------------------------------------------------------------
# Live source
# ------------------------------------------------------------------------------------------
class PhantomSource:
    """The phantom as a ``FrameSource``: paced at ``fps`` (if realtime), truth on every frame.

    Args:
        seed: phantom seed.
        config: rendering settings.
        mode: "video" (smooth scope motion) or "still" (independent images).
        realtime: pace ``read()`` at ``config.fps`` with ``time.monotonic``; if False, return
            frames as fast as they render.
        max_frames: end of the source after this many frames (None: endless).
    """

    def __init__(
        self,
        seed: int = 0,
        config: PhantomConfig | None = None,
        mode: str = "video",
        realtime: bool = True,
        max_frames: int | None = None,
    ):
        if mode not in ("video", "still"):
            raise ConfigError(f"phantom mode {mode!r} is unknown; expected 'video' or 'still'")
        if max_frames is not None and max_frames < 0:
            raise ConfigError(f"max_frames must be >= 0 or None, got {max_frames}")
        self.config = config or PhantomConfig()
        self.seed = _check_seed(seed)
        self.mode = mode
        self.name = f"phantom:{mode}:{seed}"
        self.fps = float(self.config.fps)
        self.realtime = realtime
        self.max_frames = max_frames
        self._video = PhantomVideo(seed, self.config) if mode == "video" else None
        self._index = 0
        self._t0: float | None = None
        self._closed = threading.Event()

    def read(self) -> Frame | None:
        """The next frame, or None when closed or after ``max_frames``."""
        if self._closed.is_set():
            return None
        if self.max_frames is not None and self._index >= self.max_frames:
            return None
        i = self._index
        if self.realtime:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now
            due = self._t0 + i / self.fps
            if due > now:
                if self._closed.wait(due - now):
                    return None
            elif now - due > 2.0 / self.fps:
                self._t0 = now - i / self.fps  # fell behind: do not burst to catch up
        if self._video is not None:
            image, truth = self._video.frame(i)
        else:
            image, truth = render_still(i, self.seed, self.config)
        self._index += 1
        return Frame(
            image=image, index=i, t=time.monotonic(), position_s=i / self.fps, truth=truth.to_json()
        )

    def close(self) -> None:
        """Ends the source; idempotent, and wakes a ``read()`` waiting for its frame."""
        self._closed.set()

    def __enter__(self) -> PhantomSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
