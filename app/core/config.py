"""Typed engine configuration: defaults in code, overridable from a mapping or a JSON/TOML file."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from app.core.errors import ConfigError

#: Short provider names accepted in the configuration, in the order they are preferred.
PROVIDER_NAMES = ("tensorrt", "cuda", "cpu")
CUDNN_SEARCH_MODES = ("HEURISTIC", "EXHAUSTIVE", "DEFAULT")
ROI_MODES = ("auto", "full")


@dataclass(frozen=True)
class EngineConfig:
    """Everything the real-time engine can be told, with the defaults it uses otherwise.

    Construction validates every value (``ConfigError`` on a bad one), so an ``EngineConfig``
    that exists is a valid one. Use ``from_mapping`` for user input and ``dataclasses.replace``
    (or ``with_changes``) to derive variants.

    Attributes:
        stale_ms: a prediction whose source frame is older than this is not drawn.
        classifier_every: run the classifier on every N-th inferred frame (1 = every frame).
        min_peak: presence threshold override; None uses the detector's ``ercp.min_peak``.
        box_threshold: box threshold override; None uses the detector's ``ercp.box_threshold``.
        roi: ``"auto"`` finds the endoscopic field and crops to it; ``"full"`` uses the frame.
        smoothing: temporal smoothing and hysteresis on (True) or raw per-frame output.
        box_alpha: EMA weight of a new box observation (1 = no smoothing).
        probs_alpha: EMA weight of new class probabilities (1 = no smoothing).
        appear_frames: consecutive frames with a detection before the box appears.
        disappear_frames: consecutive frames without a detection before the box disappears.
        label_margin: another class must lead the shown one by this much to replace it.
        phi_mask: black out everything outside the endoscopic field in exports.
        providers: ONNX Runtime execution providers to try, in order (short names).
        cudnn_conv_algo_search: the CUDA provider's cuDNN convolution search mode.
        trt_fp16: let TensorRT build fp16 engines.
        trt_cache_dir: TensorRT engine cache folder; None uses the user cache folder.
        intra_op_threads: ONNX Runtime CPU threads per model; 0 lets ORT choose.
        intra_op_spinning: let ORT's idle CPU threads spin-wait for work (ORT's default).
            Off by default: spinning threads burn the cores the capture thread and the
            display need, which costs more than the wake-up latency it saves.
        heatmap_opacity: maximum opacity of the heatmap overlay, in [0, 1].
        show_heatmap, show_box, show_centroid, show_difficulty, show_cam, show_hud: overlay
            element toggles.
        stats_window: number of recent frames/predictions the live statistics cover.
    """

    stale_ms: float = 250.0
    classifier_every: int = 1
    min_peak: float | None = None
    box_threshold: float | None = None
    roi: str = "auto"
    smoothing: bool = True
    box_alpha: float = 0.5
    probs_alpha: float = 0.3
    appear_frames: int = 2
    disappear_frames: int = 3
    label_margin: float = 0.1
    phi_mask: bool = True
    providers: tuple[str, ...] = PROVIDER_NAMES
    cudnn_conv_algo_search: str = "HEURISTIC"
    trt_fp16: bool = True
    trt_cache_dir: str | None = None
    intra_op_threads: int = 0
    intra_op_spinning: bool = False
    heatmap_opacity: float = 0.45
    show_heatmap: bool = True
    show_box: bool = True
    show_centroid: bool = True
    show_difficulty: bool = True
    show_cam: bool = False
    show_hud: bool = True
    stats_window: int = 120

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
        _check_range("stale_ms", self.stale_ms, 1.0, 60_000.0)
        _check_range("classifier_every", self.classifier_every, 1, 10_000)
        if self.min_peak is not None:
            _check_range("min_peak", self.min_peak, 0.0, 1.0)
        if self.box_threshold is not None:
            _check_range("box_threshold", self.box_threshold, 1e-6, 1.0)
        _check_choice("roi", self.roi, ROI_MODES)
        _check_range("box_alpha", self.box_alpha, 1e-3, 1.0)
        _check_range("probs_alpha", self.probs_alpha, 1e-3, 1.0)
        _check_range("appear_frames", self.appear_frames, 1, 1000)
        _check_range("disappear_frames", self.disappear_frames, 1, 1000)
        _check_range("label_margin", self.label_margin, 0.0, 1.0)
        if not self.providers:
            raise ConfigError(
                "config providers: expected at least one of "
                f"{list(PROVIDER_NAMES)}, found an empty list"
            )
        for name in self.providers:
            _check_choice("providers", name, PROVIDER_NAMES)
        if len(set(self.providers)) != len(self.providers):
            raise ConfigError(
                f"config providers: expected no repeats, found {list(self.providers)}"
            )
        _check_choice("cudnn_conv_algo_search", self.cudnn_conv_algo_search, CUDNN_SEARCH_MODES)
        _check_range("intra_op_threads", self.intra_op_threads, 0, 256)
        _check_range("heatmap_opacity", self.heatmap_opacity, 0.0, 1.0)
        _check_range("stats_window", self.stats_window, 2, 100_000)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], base: EngineConfig | None = None
    ) -> EngineConfig:
        """Build a config from user data, starting from ``base`` (or the defaults).

        Lists are accepted where a tuple is expected (JSON has no tuples).

        Raises:
            ConfigError: on an unknown key (naming the known ones) or a bad value.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"config: expected a mapping of settings, found {type(data).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"config: unknown key(s) {unknown}; known keys are {sorted(known)}")
        values = dict(data)
        if isinstance(values.get("providers"), list):
            values["providers"] = tuple(values["providers"])
        return dataclasses.replace(base or cls(), **values)

    def with_changes(self, **changes: Any) -> EngineConfig:
        """A copy with some settings changed (validated like ``from_mapping``)."""
        return EngineConfig.from_mapping(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        """All settings as JSON-ready values (tuples become lists).

        The result round-trips through ``from_mapping``.
        """
        out = dataclasses.asdict(self)
        out["providers"] = list(self.providers)
        return out


def load_config(path: str | Path) -> EngineConfig:
    """Read an EngineConfig from a ``.json`` or ``.toml`` file (a flat table of settings).

    Raises:
        ConfigError: if the file cannot be read or parsed, or a setting is unknown or bad.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError as exc:  # Python 3.10
                raise ConfigError(f"config {path}: TOML needs Python >= 3.11; use JSON") from exc
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"config {path}: not valid {path.suffix[1:] or 'JSON'}: {exc}") from exc
    try:
        return EngineConfig.from_mapping(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _describe(annotation: str) -> str:
    return annotation.replace("tuple[str, ...]", "list of str").replace(" | None", " or null")


def _check_type(name: str, value: Any, annotation: Any) -> None:
    ann = str(annotation)
    optional = "None" in ann
    if value is None:
        if optional:
            return
        raise ConfigError(f"config {name}: expected {_describe(ann)}, found null")
    base = ann.replace(" | None", "")
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value),
        "str": isinstance(value, str),
        "tuple[str, ...]": isinstance(value, tuple) and all(isinstance(v, str) for v in value),
    }.get(base, True)
    if not ok:
        raise ConfigError(f"config {name}: expected {_describe(ann)}, found {value!r}")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(f"config {name}: expected a value in [{low}, {high}], found {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"config {name}: expected one of {list(choices)}, found {value!r}")
