"""Tiny contract-conforming (and deliberately broken) ONNX models built with onnx.helper.

No torch: every graph is a handful of standard ops, so tests in tests/core can build them.

- ``detector_model``: the heatmap *is* one colour channel of the input, average-pooled by
  ``factor`` (so heatmap resolution is a fraction of the input). Paint a soft mask into that
  channel and the detector "finds" it; tests can check boxes end to end.
- ``classifier_model``: probabilities are a softmax of the mean colour of its input (class 0
  follows blue, class 1 red, further classes green), the CAM is the pooled red channel.
- ``conv_detector_model``: a real-cost stack of 3x3 convolutions for benchmarks; size it
  with ``calibrate_conv_detector`` (e.g. ~15 inferences/s).
- ``SlowModel``: a Python wrapper that sleeps in ``run``. Tests use it for "the model is
  slower than the source" because sleeping costs no CPU on a shared machine and gives a
  deterministic delay; benchmarks use the conv model, which costs CPU like a real model.
- ``BROKEN``: builders of models that break the contract in one way each.

Run ``python -m tests.onnx_fixtures --help`` to write models to files for ``bench``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from app.core.contract import TASK_CLASSIFIER, TASK_DETECTOR, InputSpec, build_metadata

OPSET = 17
IR_VERSION = 8  # accepted by every onnxruntime >= 1.14
INPUT = "image"


def _finish(graph: onnx.GraphProto, meta: Mapping[str, str]) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ercp-assist-tests"
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, dict(meta))
    onnx.checker.check_model(model)
    return model


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _input(size: tuple[int, int], dtype: int = TensorProto.UINT8, nchw: bool = False):
    h, w = size
    shape = ["N", 3, h, w] if nchw else ["N", h, w, 3]
    return helper.make_tensor_value_info(INPUT, dtype, shape)


def detector_metadata(
    size: tuple[int, int] = (64, 64),
    *,
    resize: str = "stretch",
    min_peak: float = 0.5,
    box_threshold: float = 0.6,
    name: str = "test-blob",
    version: str = "0.1",
) -> dict[str, str]:
    """Contract metadata of a detector with input ``size`` (H, W) and output ``heatmap``."""
    return build_metadata(
        task=TASK_DETECTOR,
        name=name,
        version=version,
        input_spec=InputSpec(INPUT, size[0], size[1], resize),
        outputs={"heatmap": "heatmap"},
        box_threshold=box_threshold,
        min_peak=min_peak,
        trained_on={"dataset": "none (test fixture)"},
        source="tests/onnx_fixtures.py",
    )


def detector_model(
    size: tuple[int, int] = (64, 64),
    *,
    factor: int = 4,
    channel: int = 2,
    resize: str = "stretch",
    min_peak: float = 0.5,
    box_threshold: float = 0.6,
    meta: Mapping[str, str] | None = None,
    heatmap_rank: int = 4,
) -> onnx.ModelProto:
    """A detector whose heatmap is input channel ``channel`` / 255, average-pooled by ``factor``.

    Args:
        size: input (H, W); both must be divisible by ``factor``.
        factor: heatmap resolution is the input's divided by this.
        channel: 0 blue, 1 green, 2 red (BGR input).
        resize: the ``ercp.input.resize`` mode to declare.
        min_peak, box_threshold: the declared thresholds.
        meta: metadata to use instead of the valid one (for broken variants).
        heatmap_rank: 4 is the contract; 3 drops the channel axis (broken variant).
    """
    h, w = size
    nodes = [
        helper.make_node("Cast", [INPUT], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Slice", ["xf", "c0", "c1", "axis3"], ["ch"]),
        helper.make_node("Transpose", ["ch"], ["chw"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["chw", "inv255"], ["unit"]),
        helper.make_node(
            "AveragePool",
            ["unit"],
            ["pooled" if heatmap_rank == 3 else "heatmap"],
            kernel_shape=[factor, factor],
            strides=[factor, factor],
        ),
    ]
    out_shape: list = ["N", 1, h // factor, w // factor]
    if heatmap_rank == 3:
        nodes.append(helper.make_node("Squeeze", ["pooled", "axis1"], ["heatmap"]))
        out_shape = ["N", h // factor, w // factor]
    inits = [
        _const("c0", np.array([channel], np.int64)),
        _const("c1", np.array([channel + 1], np.int64)),
        _const("axis3", np.array([3], np.int64)),
        _const("axis1", np.array([1], np.int64)),
        _const("inv255", np.array(1.0 / 255.0, np.float32)),
    ]
    graph = helper.make_graph(
        nodes,
        "blob_detector",
        [_input(size)],
        [helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, out_shape)],
        inits,
    )
    meta = (
        detector_metadata(size, resize=resize, min_peak=min_peak, box_threshold=box_threshold)
        if meta is None
        else meta
    )
    return _finish(graph, meta)


def classifier_metadata(
    classes: Sequence[str] = ("easy", "difficult"),
    size: tuple[int, int] = (64, 64),
    *,
    cam: bool = True,
    region: str | Mapping[str, float] = "field",
    resize: str = "stretch",
    name: str = "test-colour",
    version: str = "0.1",
) -> dict[str, str]:
    """Contract metadata of a classifier with outputs ``probs`` (and ``cam``)."""
    outputs = {"probs": "probs", **({"cam": "cam"} if cam else {})}
    return build_metadata(
        task=TASK_CLASSIFIER,
        name=name,
        version=version,
        input_spec=InputSpec(INPUT, size[0], size[1], resize),
        outputs=outputs,
        classes=list(classes),
        region=region,
        source="tests/onnx_fixtures.py",
    )


def classifier_model(
    classes: Sequence[str] = ("easy", "difficult"),
    size: tuple[int, int] = (64, 64),
    *,
    cam: bool = True,
    cam_factor: int = 2,
    region: str | Mapping[str, float] = "field",
    meta: Mapping[str, str] | None = None,
    probs_classes: int | None = None,
) -> onnx.ModelProto:
    """A classifier: softmax(10 * mean colour @ W), class 0 follows blue, 1 red, others green.

    Args:
        classes: class names (>= 2).
        size: input (H, W).
        cam: add a ``cam`` output (the red channel, pooled by ``cam_factor``).
        region: ``"field"`` or ``{"box_margin": m}``.
        meta: metadata to use instead of the valid one (broken variants).
        probs_classes: number of probability columns the graph outputs (default: as many as
            ``classes``; set it differently for a broken variant).
    """
    n = probs_classes or len(classes)
    weights = np.zeros((3, n), np.float32)
    for c in range(n):
        weights[{0: 0, 1: 2}.get(c, 1), c] = 10.0
    nodes = [
        helper.make_node("Cast", [INPUT], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xf", "inv255"], ["unit"]),
        helper.make_node("Transpose", ["unit"], ["chw"], perm=[0, 3, 1, 2]),
        helper.make_node("GlobalAveragePool", ["chw"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["feat"], axis=1),
        helper.make_node("MatMul", ["feat", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    inits = [_const("inv255", np.array(1.0 / 255.0, np.float32)), _const("W", weights)]
    outputs = [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", n])]
    if cam:
        h, w = size
        nodes += [
            helper.make_node("Slice", ["chw", "c2", "c3", "axis1"], ["red"]),
            helper.make_node(
                "AveragePool",
                ["red"],
                ["red_small"],
                kernel_shape=[cam_factor, cam_factor],
                strides=[cam_factor] * 2,
            ),
            helper.make_node("Squeeze", ["red_small", "axis1"], ["cam"]),
        ]
        inits += [
            _const("c2", np.array([2], np.int64)),
            _const("c3", np.array([3], np.int64)),
            _const("axis1", np.array([1], np.int64)),
        ]
        outputs.append(
            helper.make_tensor_value_info(
                "cam", TensorProto.FLOAT, ["N", h // cam_factor, w // cam_factor]
            )
        )
    graph = helper.make_graph(nodes, "colour_classifier", [_input(size)], outputs, inits)
    meta = classifier_metadata(classes, size, cam=cam, region=region) if meta is None else meta
    return _finish(graph, meta)


def conv_detector_model(
    size: tuple[int, int] = (128, 128),
    *,
    channels: int = 16,
    layers: int = 8,
    seed: int = 0,
    name: str = "bench-conv",
) -> onnx.ModelProto:
    """A detector with the cost of a real CNN and a smooth, meaningful heatmap.

    ``layers`` 3x3 convs of ``channels`` channels run at full input resolution, then a 1x1
    conv and a sigmoid. Their weights are random, so their output is noise; it is added at
    1/1000 weight to the red channel / 255 (as in ``detector_model``) and pooled by 4. The
    model thus costs what a real one does while its heatmap stays smooth like a trained
    model's, so the postprocess costs what it would in the app.
    """
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Cast", [INPUT], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["xf", "inv255"], ["unit"]),
        helper.make_node("Transpose", ["unit"], ["t0"], perm=[0, 3, 1, 2]),
    ]
    inits = [_const("inv255", np.array(1.0 / 255.0, np.float32))]
    prev, cin = "t0", 3
    for i in range(layers):
        wname, bname = f"w{i}", f"b{i}"
        scale = np.sqrt(2.0 / (9 * cin))
        inits += [
            _const(wname, (rng.standard_normal((channels, cin, 3, 3)) * scale).astype(np.float32)),
            _const(bname, np.zeros(channels, np.float32)),
        ]
        nodes += [
            helper.make_node("Conv", [prev, wname, bname], [f"c{i}"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]
        prev, cin = f"r{i}", channels
    inits += [
        _const("wout", (rng.standard_normal((1, cin, 1, 1)) * 0.1).astype(np.float32)),
        _const("bout", np.zeros(1, np.float32)),
    ]
    nodes += [
        helper.make_node("Conv", [prev, "wout", "bout"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["noise"]),
        helper.make_node("Mul", ["noise", "noise_weight"], ["small_noise"]),
        helper.make_node("Slice", ["t0", "red_lo", "red_hi", "chan_axis"], ["red"]),
        helper.make_node("Add", ["red", "small_noise"], ["heat_full"]),
        helper.make_node(
            "AveragePool", ["heat_full"], ["heatmap"], kernel_shape=[4, 4], strides=[4, 4]
        ),
    ]
    inits += [
        _const("noise_weight", np.array(1e-3, np.float32)),
        _const("red_lo", np.array([2], np.int64)),
        _const("red_hi", np.array([3], np.int64)),
        _const("chan_axis", np.array([1], np.int64)),
    ]
    out_shape = ["N", 1, size[0] // 4, size[1] // 4]
    graph = helper.make_graph(
        nodes,
        "conv_detector",
        [_input(size)],
        [helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, out_shape)],
        inits,
    )
    meta = build_metadata(
        task=TASK_DETECTOR,
        name=name,
        version=f"{layers}x{channels}",
        input_spec=InputSpec(INPUT, size[0], size[1], "stretch"),
        outputs={"heatmap": "heatmap"},
        min_peak=0.5,
        source="tests/onnx_fixtures.py conv_detector_model",
    )
    return _finish(graph, meta)


def calibrate_conv_detector(
    path: Path,
    target_ips: float,
    size: tuple[int, int] = (128, 128),
    channels: int = 16,
    max_layers: int = 64,
) -> tuple[int, float]:
    """Write a conv detector to ``path`` with as many layers as give ~``target_ips`` here.

    Measures one layer count, scales linearly, re-measures. Returns (layers, measured ips).
    """
    from app.core.models import load_model

    def measure(layers: int) -> float:
        save(conv_detector_model(size, channels=channels, layers=layers), path)
        model = load_model(path, providers=["cpu"])
        zero = np.zeros((1, *size, 3), np.uint8)
        times = []
        for _ in range(15):
            t0 = time.perf_counter()
            model.run(zero)
            times.append(time.perf_counter() - t0)
        return 1.0 / float(np.median(times))

    layers = 4
    ips = measure(layers)
    for _ in range(3):
        layers = int(np.clip(round(layers * ips / target_ips), 1, max_layers))
        ips = measure(layers)
        if abs(ips - target_ips) / target_ips < 0.1:
            break
    return layers, ips


class SlowModel:
    """Wraps an OnnxModel and sleeps so each ``run`` takes at least ``seconds``.

    ``time.sleep`` releases the GIL and uses no CPU, so "a model slower than the source" is
    simulated without stealing the shared cores from the capture thread.
    """

    def __init__(self, model, seconds: float) -> None:
        self._model = model
        self.seconds = seconds
        self.calls = 0

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        out = self._model.run(batch)
        self.calls += 1
        left = self.seconds - (time.perf_counter() - start)
        if left > 0:
            time.sleep(left)
        return out


def save(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write a model to ``path`` and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _edited(meta: Mapping[str, str], **changes: str | None) -> dict[str, str]:
    out = dict(meta)
    for key, value in changes.items():
        key = "ercp." + key
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _float_input_detector() -> onnx.ModelProto:
    model = detector_model()
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
    model.graph.node[0].attribute[0].i = TensorProto.FLOAT  # Cast float -> float
    return model


def _nchw_detector() -> onnx.ModelProto:
    model = detector_model()
    dims = model.graph.input[0].type.tensor_type.shape.dim
    values = [dims[0].dim_param, 3, 64, 64]
    for dim, value in zip(dims[1:], values[1:], strict=True):
        dim.dim_value = value
    return model


#: name -> (builder, a substring the refusal message must contain)
BROKEN: dict[str, tuple[Callable[[], onnx.ModelProto | bytes], str]] = {
    "no_metadata": (lambda: detector_model(meta={}), "missing ercp.contract"),
    "wrong_task": (
        lambda: detector_model(meta=_edited(detector_metadata(), task="segmenter")),
        "ercp.task",
    ),
    "wrong_contract": (
        lambda: detector_model(meta=_edited(detector_metadata(), contract="2")),
        "ercp.contract",
    ),
    "missing_min_peak": (
        lambda: detector_model(meta=_edited(detector_metadata(), min_peak=None)),
        "ercp.min_peak",
    ),
    "unknown_output": (
        lambda: detector_model(
            meta=_edited(detector_metadata(), outputs=json.dumps({"heatmap": "nope"}))
        ),
        "ercp.outputs.heatmap",
    ),
    "float_input": (_float_input_detector, "expected a uint8 tensor (N, H, W, 3)"),
    "nchw_input": (_nchw_detector, "expected a uint8 tensor (N, H, W, 3)"),
    "size_mismatch": (lambda: detector_model(meta=detector_metadata((32, 32))), "as in ercp.input"),
    "heatmap_rank3": (lambda: detector_model(heatmap_rank=3), "expected float32 (N, 1, h, w)"),
    "probs_mismatch": (
        lambda: classifier_model(("a", "b", "c"), probs_classes=2),
        "expected (N, 3)",
    ),
    "corrupt": (lambda: b"\x08\x07garbage, not a protobuf \xff\xfe" * 10, "not an ONNX model"),
}


def write_broken(name: str, path: str | Path) -> Path:
    """Write the broken model ``name`` (a key of ``BROKEN``) to ``path``."""
    built = BROKEN[name][0]()
    path = Path(path)
    if isinstance(built, bytes):
        path.write_bytes(built)
        return path
    return save(built, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Write fixture models to files, e.g. for ``ercp-assist bench``."""
    parser = argparse.ArgumentParser(prog="python -m tests.onnx_fixtures", description=main.__doc__)
    parser.add_argument("kind", choices=["detector", "classifier", "conv-detector"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=None, help="input height = width")
    parser.add_argument(
        "--target-ips",
        type=float,
        default=15.0,
        help="conv-detector: calibrate to this many inferences/s on this machine",
    )
    args = parser.parse_args(argv)
    if args.kind == "detector":
        save(detector_model((args.size or 64,) * 2), args.out)
    elif args.kind == "classifier":
        save(classifier_model(size=(args.size or 64,) * 2), args.out)
    else:
        layers, ips = calibrate_conv_detector(args.out, args.target_ips, (args.size or 128,) * 2)
        print(f"{args.out}: {layers} conv layers, {ips:.1f} inferences/s here")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
