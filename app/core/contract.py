"""The ONNX model contract (DESIGN.md): metadata keys, how to write them, how to check them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import ModelContractError

CONTRACT_VERSION = "1"
TASK_DETECTOR = "ampulla-heatmap"
TASK_CLASSIFIER = "difficulty"
TASKS = (TASK_DETECTOR, TASK_CLASSIFIER)
RESIZE_MODES = ("stretch", "letterbox")
REQUIRED_KEYS = (
    "ercp.contract",
    "ercp.task",
    "ercp.name",
    "ercp.version",
    "ercp.input",
    "ercp.outputs",
)


@dataclass(frozen=True)
class InputSpec:
    """The model input: a uint8 NHWC BGR tensor of a fixed height and width."""

    name: str
    height: int
    width: int
    resize: str = "stretch"
    layout: str = "NHWC"
    dtype: str = "uint8"
    channels: str = "BGR"

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "layout": self.layout,
                "dtype": self.dtype,
                "channels": self.channels,
                "height": self.height,
                "width": self.width,
                "resize": self.resize,
            }
        )


@dataclass(frozen=True)
class ModelInfo:
    """Everything the app needs to know about a model, read from its own metadata."""

    task: str
    name: str
    version: str
    input: InputSpec
    outputs: dict[str, str]
    box_threshold: float | None = None
    min_peak: float | None = None
    classes: tuple[str, ...] = ()
    region: str | dict[str, float] = "field"
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short human label, e.g. ``"phantom-unet 1.0"``."""
        return f"{self.name} {self.version}"


def _fail(key: str, expected: str, found: object) -> ModelContractError:
    return ModelContractError(f"model metadata {key}: expected {expected}, found {found!r}")


def _json(meta: Mapping[str, str], key: str) -> Any:
    try:
        return json.loads(meta[key])
    except (TypeError, ValueError) as exc:
        raise _fail(key, "JSON text", meta[key]) from exc


def _float(meta: Mapping[str, str], key: str, low: float, high: float) -> float:
    if key not in meta:
        raise _fail(key, f"a number in [{low}, {high}]", None)
    try:
        value = float(meta[key])
    except ValueError as exc:
        raise _fail(key, "a number", meta[key]) from exc
    if not low <= value <= high:
        raise _fail(key, f"a number in [{low}, {high}]", value)
    return value


def _input_spec(meta: Mapping[str, str]) -> InputSpec:
    spec = _json(meta, "ercp.input")
    if not isinstance(spec, dict):
        raise _fail("ercp.input", "a JSON object", spec)
    fixed = {"layout": "NHWC", "dtype": "uint8", "channels": "BGR"}
    for key, want in fixed.items():
        if spec.get(key) != want:
            raise _fail(f"ercp.input.{key}", repr(want), spec.get(key))
    for key in ("height", "width"):
        if not isinstance(spec.get(key), int) or spec[key] <= 0:
            raise _fail(f"ercp.input.{key}", "a positive integer", spec.get(key))
    if spec.get("resize", "stretch") not in RESIZE_MODES:
        raise _fail("ercp.input.resize", " or ".join(RESIZE_MODES), spec.get("resize"))
    if not isinstance(spec.get("name"), str):
        raise _fail("ercp.input.name", "the input tensor name", spec.get("name"))
    return InputSpec(spec["name"], spec["height"], spec["width"], spec.get("resize", "stretch"))


def parse_metadata(
    meta: Mapping[str, str],
    graph_inputs: Sequence[str] | None = None,
    graph_outputs: Sequence[str] | None = None,
) -> ModelInfo:
    """Check a model's ``custom_metadata_map`` against the contract and return its ModelInfo.

    Args:
        meta: the metadata map.
        graph_inputs: the graph's input names, to check that ``ercp.input.name`` exists.
        graph_outputs: the graph's output names, to check every role in ``ercp.outputs``.

    Raises:
        ModelContractError: naming the key, what was expected and what was found.
    """
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelContractError(
            f"model metadata is missing {', '.join(missing)}: this is not an ERCP Assist model "
            f"(export it with `ercp-train export`)"
        )
    if meta["ercp.contract"] != CONTRACT_VERSION:
        raise _fail("ercp.contract", repr(CONTRACT_VERSION), meta["ercp.contract"])
    task = meta["ercp.task"]
    if task not in TASKS:
        raise _fail("ercp.task", " or ".join(repr(t) for t in TASKS), task)
    spec = _input_spec(meta)
    if graph_inputs is not None and spec.name not in graph_inputs:
        raise _fail("ercp.input.name", f"one of the graph inputs {list(graph_inputs)}", spec.name)
    outputs = _json(meta, "ercp.outputs")
    if not isinstance(outputs, dict) or not all(isinstance(v, str) for v in outputs.values()):
        raise _fail("ercp.outputs", "a JSON object of role -> output name", outputs)
    required_roles = {"heatmap"} if task == TASK_DETECTOR else {"probs"}
    allowed_roles = {"heatmap"} if task == TASK_DETECTOR else {"probs", "cam"}
    if not required_roles <= outputs.keys() or not outputs.keys() <= allowed_roles:
        raise _fail(
            "ercp.outputs",
            f"roles {sorted(required_roles)} (optional: {sorted(allowed_roles - required_roles)})",
            sorted(outputs),
        )
    if graph_outputs is not None:
        for role, name in outputs.items():
            if name not in graph_outputs:
                raise _fail(f"ercp.outputs.{role}", f"one of {list(graph_outputs)}", name)

    provenance = {}
    for key in ("ercp.trained_on", "ercp.metrics", "ercp.created", "ercp.source"):
        if key in meta:
            try:
                provenance[key[5:]] = json.loads(meta[key])
            except ValueError:
                provenance[key[5:]] = meta[key]
    common = dict(
        task=task,
        name=meta["ercp.name"],
        version=meta["ercp.version"],
        input=spec,
        outputs=dict(outputs),
        provenance=provenance,
    )
    if task == TASK_DETECTOR:
        return ModelInfo(
            **common,
            box_threshold=_float(meta, "ercp.box_threshold", 1e-6, 1.0),
            min_peak=_float(meta, "ercp.min_peak", 0.0, 1.0),
        )
    classes = _json(meta, "ercp.classes") if "ercp.classes" in meta else None
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) for c in classes)
    ):
        raise _fail("ercp.classes", "a JSON list of at least two class names", classes)
    return ModelInfo(**common, classes=tuple(classes), region=_region(meta))


def _region(meta: Mapping[str, str]) -> str | dict[str, float]:
    raw = meta.get("ercp.region", "field")
    if raw == "field":
        return "field"
    try:
        region = json.loads(raw)
    except ValueError as exc:
        raise _fail("ercp.region", '"field" or {"box_margin": m}', raw) from exc
    if region == "field":
        return "field"
    if (
        not isinstance(region, dict)
        or set(region) != {"box_margin"}
        or not isinstance(region["box_margin"], (int, float))
        or region["box_margin"] < 0
    ):
        raise _fail("ercp.region", '"field" or {"box_margin": m} with m >= 0', region)
    return {"box_margin": float(region["box_margin"])}


def build_metadata(
    *,
    task: str,
    name: str,
    version: str,
    input_spec: InputSpec,
    outputs: Mapping[str, str],
    box_threshold: float | None = None,
    min_peak: float | None = None,
    classes: Sequence[str] | None = None,
    region: str | Mapping[str, float] = "field",
    trained_on: Any = None,
    metrics: Any = None,
    created: str | None = None,
    source: Any = None,
) -> dict[str, str]:
    """The metadata map for an exported model; it round-trips through ``parse_metadata``."""
    meta = {
        "ercp.contract": CONTRACT_VERSION,
        "ercp.task": task,
        "ercp.name": name,
        "ercp.version": version,
        "ercp.input": input_spec.to_json(),
        "ercp.outputs": json.dumps(dict(outputs)),
    }
    if task == TASK_DETECTOR:
        meta["ercp.box_threshold"] = repr(float(0.6 if box_threshold is None else box_threshold))
        meta["ercp.min_peak"] = repr(float(0.5 if min_peak is None else min_peak))
    else:
        meta["ercp.classes"] = json.dumps(list(classes or []))
        meta["ercp.region"] = region if region == "field" else json.dumps(dict(region))
    for key, value in (
        ("trained_on", trained_on),
        ("metrics", metrics),
        ("created", created),
        ("source", source),
    ):
        if value is not None:
            meta[f"ercp.{key}"] = json.dumps(value)
    parse_metadata(meta)  # never write a model the app would refuse
    return meta
