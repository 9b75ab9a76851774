"""Loading ONNX models: contract checks, execution-provider choice with reasons, warm-up."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.config import PROVIDER_NAMES, EngineConfig
from app.core.contract import TASK_CLASSIFIER, TASK_DETECTOR, ModelInfo, parse_metadata
from app.core.errors import ErcpError, ModelContractError
from app.core.registry import sha256_of

log = logging.getLogger(__name__)

ORT_PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_SHORT = {v: k for k, v in ORT_PROVIDERS.items()}
#: ORT severity: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal. Warnings from graph
#: optimisation are noise for a user; errors still reach stderr.
_ORT_LOG_SEVERITY = 3
_ORT_LOG_LOCK = threading.Lock()
_ort_logging_configured = False


@dataclass(frozen=True)
class ProviderReport:
    """Which execution provider a session uses, and why any preferred one was skipped.

    Attributes:
        requested: the ORT provider names tried, in order.
        chosen: the provider the session actually runs on (``session.get_providers()[0]``).
        fallbacks: ``(provider, reason)`` for each requested provider ahead of ``chosen``.
    """

    requested: tuple[str, ...]
    chosen: str
    fallbacks: tuple[tuple[str, str], ...] = ()

    @property
    def chosen_short(self) -> str:
        """``"cpu"``, ``"cuda"`` or ``"tensorrt"``."""
        return _SHORT.get(self.chosen, self.chosen)

    def summary(self) -> str:
        """One line for a status bar or log, e.g. ``"CPU (CUDA unavailable: ...)"``."""
        text = self.chosen_short.upper() if self.chosen_short != "tensorrt" else "TensorRT"
        if self.fallbacks:
            reasons = "; ".join(f"{_SHORT.get(p, p)}: {r}" for p, r in self.fallbacks)
            text += f" (fallback from {reasons})"
        return text

    def to_dict(self) -> dict:
        """JSON-ready form for manifests."""
        return {
            "requested": list(self.requested),
            "chosen": self.chosen,
            "fallbacks": [{"provider": p, "reason": r} for p, r in self.fallbacks],
        }


def user_cache_dir() -> Path:
    """The per-user cache folder of ERCP Assist (TensorRT engines live here)."""
    if sys.platform == "win32":
        root = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "ercp-assist"


def _configure_ort_logging(ort) -> None:
    global _ort_logging_configured
    with _ORT_LOG_LOCK:
        if not _ort_logging_configured:
            ort.set_default_logger_severity(_ORT_LOG_SEVERITY)
            _ort_logging_configured = True


def _provider_library_problem(ort, short: str) -> str | None:
    """Why a GPU provider cannot work here, or None if it may work.

    Found without asking ORT, which would print several lines of errors to stderr and then
    fall back silently.
    """
    capi = Path(ort.__file__).parent / "capi"
    lib_name = {"cuda": "onnxruntime_providers_cuda", "tensorrt": "onnxruntime_providers_tensorrt"}
    suffix = ".dll" if sys.platform == "win32" else ".so"
    prefix = "" if sys.platform == "win32" else "lib"
    lib = capi / f"{prefix}{lib_name[short]}{suffix}"
    if not lib.exists():
        return f"this onnxruntime build has no {lib.name}"
    try:
        ctypes.CDLL(str(lib))
    except OSError as exc:
        return f"its libraries do not load ({exc})"
    driver = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        cuda = ctypes.CDLL(driver)
    except OSError:
        return f"no NVIDIA driver ({driver} not found)"
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "no CUDA device"
    return None


def _provider_options(short: str, config: EngineConfig, input_name: str, hw: tuple[int, int]):
    if short == "cuda":
        return {
            "device_id": 0,
            # ORT's own default, EXHAUSTIVE, benchmarks every cuDNN algorithm on the first run of
            # each shape and needs large workspaces (seconds, GBs); DEFAULT pins one algorithm and
            # since ORT 1.20 maps to cudnn-frontend's FALLBACK mode, reported several times slower
            # (onnxruntime#22705; PaddleOCR#17970 measured ~50x). HEURISTIC asks cuDNN for a good
            # algorithm per node at negligible cost, which suits our fixed input shape.
            "cudnn_conv_algo_search": config.cudnn_conv_algo_search,
            # Copy on the compute stream (ORT's default): 0 is documented to race (ORT #4829).
            "do_copy_in_default_stream": "1",
            "arena_extend_strategy": "kSameAsRequested",
        }
    if short == "tensorrt":
        cache = Path(config.trt_cache_dir) if config.trt_cache_dir else user_cache_dir() / "trt"
        cache.mkdir(parents=True, exist_ok=True)
        shape = f"{input_name}:1x{hw[0]}x{hw[1]}x3"
        return {
            "device_id": 0,
            "trt_fp16_enable": "1" if config.trt_fp16 else "0",
            # Building an engine takes minutes; cache it per model and GPU.
            "trt_engine_cache_enable": "1",
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": "1",
            "trt_timing_cache_path": str(cache),
            # The app always runs batch 1, so build the engine for exactly that shape.
            "trt_profile_min_shapes": shape,
            "trt_profile_opt_shapes": shape,
            "trt_profile_max_shapes": shape,
        }
    return {}


def _normalise_providers(providers: Sequence[str] | None, config: EngineConfig) -> list[str]:
    names = list(providers) if providers is not None else list(config.providers)
    short = []
    for name in names:
        key = _SHORT.get(name, name.lower())
        if key not in ORT_PROVIDERS:
            raise ErcpError(
                f"unknown execution provider {name!r}: expected one of {list(PROVIDER_NAMES)}"
            )
        if key not in short:
            short.append(key)
    if not short:
        raise ErcpError(f"no execution provider requested: expected some of {list(PROVIDER_NAMES)}")
    return short


def _dims(shape) -> list:
    return list(shape) if shape is not None else []


def _check_graph(session, info: ModelInfo) -> None:
    """Check the graph's declared input and output types and ranks against the contract."""
    inputs = {i.name: i for i in session.get_inputs()}
    node = inputs[info.input.name]
    found = f"{node.type} {_dims(node.shape)}"
    shape = _dims(node.shape)
    if node.type != "tensor(uint8)" or len(shape) != 4 or shape[3] != 3:
        raise ModelContractError(
            f"model input {node.name!r}: expected a uint8 tensor (N, H, W, 3), found {found}"
        )
    for axis, want in ((1, info.input.height), (2, info.input.width)):
        if isinstance(shape[axis], int) and shape[axis] != want:
            raise ModelContractError(
                f"model input {node.name!r}: expected (N, {info.input.height}, "
                f"{info.input.width}, 3) as in ercp.input, found {shape}"
            )
    if len(inputs) != 1:
        raise ModelContractError(
            f"model inputs: expected exactly one input, found {sorted(inputs)}"
        )
    outputs = {o.name: o for o in session.get_outputs()}
    ranks = {"heatmap": (4, "(N, 1, h, w)"), "probs": (2, "(N, C)"), "cam": (3, "(N, h, w)")}
    for role, name in info.outputs.items():
        out = outputs[name]
        rank, text = ranks[role]
        dims = _dims(out.shape)
        if out.type != "tensor(float)" or len(dims) != rank:
            raise ModelContractError(
                f"model output {role} {name!r}: expected float32 {text}, found {out.type} {dims}"
            )
        if role == "heatmap" and isinstance(dims[1], int) and dims[1] != 1:
            raise ModelContractError(
                f"model output heatmap {name!r}: expected (N, 1, h, w), found {dims}"
            )
        if role == "probs" and isinstance(dims[1], int) and dims[1] != len(info.classes):
            raise ModelContractError(
                f"model output probs {name!r}: expected (N, {len(info.classes)}) for classes "
                f"{list(info.classes)}, found {dims}"
            )


def _check_outputs(result: dict[str, np.ndarray], info: ModelInfo, batch: int) -> None:
    """Check the shapes a real run produced (dynamic dimensions are only known now)."""
    for role, arr in result.items():
        shape = tuple(arr.shape)
        ok = shape and shape[0] == batch
        if role == "heatmap":
            ok = ok and len(shape) == 4 and shape[1] == 1 and shape[2] > 0 and shape[3] > 0
            want = f"({batch}, 1, h, w)"
        elif role == "probs":
            ok = ok and len(shape) == 2 and shape[1] == len(info.classes)
            want = f"({batch}, {len(info.classes)})"
        else:
            ok = ok and len(shape) == 3 and shape[1] > 0 and shape[2] > 0
            want = f"({batch}, h, w)"
        if not ok:
            raise ModelContractError(
                f"model output {role}: expected shape {want} at run time, found {shape}"
            )


class OnnxModel:
    """A loaded, contract-checked ONNX model on one execution provider.

    Thread safety: ONNX Runtime sessions may be run from several threads; the pipeline runs
    each model from its inference thread only.

    Attributes:
        path: the model file.
        sha256: hex digest of the file.
        info: the contract metadata.
        provider: the ORT provider the session runs on.
        provider_report: the requested providers and the reasons for any fallback.
    """

    def __init__(
        self, path: Path, session, info: ModelInfo, sha256: str, report: ProviderReport
    ) -> None:
        self.path = path
        self.sha256 = sha256
        self.info = info
        self.provider_report = report
        self.provider = report.chosen
        self._session = session
        self._roles = list(info.outputs)
        self._names = [info.outputs[r] for r in self._roles]

    @property
    def task(self) -> str:
        """``ercp.task``: detector or classifier."""
        return self.info.task

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on a uint8 batch (N, H, W, 3) and return ``{role: array}``.

        Raises:
            ModelContractError: if the batch has the wrong dtype or shape.
        """
        spec = self.info.input
        if (
            batch.dtype != np.uint8
            or batch.ndim != 4
            or batch.shape[1:] != (spec.height, spec.width, 3)
        ):
            raise ModelContractError(
                f"model {self.info.label} input: expected uint8 "
                f"(N, {spec.height}, {spec.width}, 3), found {batch.dtype} {batch.shape}"
            )
        outputs = self._session.run(self._names, {spec.name: batch})
        return dict(zip(self._roles, outputs, strict=True))

    def describe(self) -> dict:
        """JSON-ready summary for manifests and ``check-model``."""
        info = self.info
        out = {
            "path": str(self.path),
            "sha256": self.sha256,
            "task": info.task,
            "name": info.name,
            "version": info.version,
            "input": {
                "name": info.input.name,
                "height": info.input.height,
                "width": info.input.width,
                "resize": info.input.resize,
            },
            "outputs": dict(info.outputs),
            "provider": self.provider,
            "provider_report": self.provider_report.to_dict(),
        }
        if info.task == TASK_DETECTOR:
            out.update(box_threshold=info.box_threshold, min_peak=info.min_peak)
        else:
            out.update(classes=list(info.classes), region=info.region)
        out["provenance"] = dict(info.provenance)
        return out

    def __repr__(self) -> str:
        return f"OnnxModel({self.info.label!r}, {self.path.name}, {self.provider_report.summary()})"


def _open_session(ort, path: Path, short: str, config: EngineConfig, info_hint):
    options = ort.SessionOptions()
    options.log_severity_level = _ORT_LOG_SEVERITY
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if config.intra_op_threads:
        options.intra_op_num_threads = config.intra_op_threads
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if config.intra_op_spinning else "0"
    )
    providers: list = [ORT_PROVIDERS[short]]
    if short != "cpu":
        name, hw = info_hint
        providers = [(ORT_PROVIDERS[short], _provider_options(short, config, name, hw))]
        if short == "tensorrt":  # nodes TensorRT cannot take run on CUDA, not on the CPU
            providers.append((ORT_PROVIDERS["cuda"], _provider_options("cuda", config, name, hw)))
        providers.append("CPUExecutionProvider")
    # enable_fallback=0: ORT's own fallback prints to stdout and hides the reason; we fall back
    # ourselves and report why.
    return ort.InferenceSession(str(path), options, providers=providers, enable_fallback=0)


def _read_contract(ort, path: Path, config: EngineConfig):
    """Open a CPU session to read and check the metadata (cheap: no GPU involved).

    The session is kept as the CPU fallback, so it gets the configured options.
    """
    try:
        session = _open_session(ort, path, "cpu", config, None)
    except Exception as exc:  # ORT raises its own untyped exceptions on bad bytes
        reason = str(exc).strip().splitlines()[-1][:300]
        raise ModelContractError(f"not an ONNX model: {path} ({reason})") from exc
    meta = session.get_modelmeta().custom_metadata_map
    try:
        info = parse_metadata(
            meta, [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
        )
        _check_graph(session, info)
    except ModelContractError as exc:
        raise ModelContractError(f"{path.name}: {exc}") from exc
    return info, session


def load_model(
    path: str | Path,
    providers: Sequence[str] | None = None,
    expect_task: str | None = None,
    warmup: bool = True,
    config: EngineConfig | None = None,
) -> OnnxModel:
    """Load an ONNX model, check it against the contract and pick an execution provider.

    Providers are tried in the order given (short names ``"tensorrt"``, ``"cuda"``, ``"cpu"``
    or ORT names), defaulting to ``config.providers``. A GPU provider is tried only if its
    libraries load and a device exists; the reason for skipping one, or for ORT falling back
    from it, is recorded in ``provider_report``.

    Args:
        path: the ``.onnx`` file.
        providers: provider order; None uses ``config.providers``.
        expect_task: ``"ampulla-heatmap"`` or ``"difficulty"`` to refuse the other kind.
        warmup: run the model once more on a zero batch (first runs allocate and tune). One
            run on a zero batch always happens, to check the output shapes.
        config: engine settings (provider options, threads); None uses the defaults.

    Raises:
        ModelContractError: a missing, non-ONNX or corrupt file, or a model breaking the contract.
        ErcpError: when none of the requested providers can run the model.
    """
    import onnxruntime as ort

    _configure_ort_logging(ort)
    config = config or EngineConfig()
    path = Path(path)
    if not path.is_file():
        raise ModelContractError(f"model file not found: {path}")
    order = _normalise_providers(providers, config)
    info, cpu_session = _read_contract(ort, path, config)
    if expect_task is not None and info.task != expect_task:
        kind = {TASK_DETECTOR: "a detector", TASK_CLASSIFIER: "a classifier"}
        raise ModelContractError(
            f"model {path.name}: expected {kind.get(expect_task, expect_task)} "
            f"(ercp.task {expect_task!r}), found {info.task!r} ({info.label})"
        )

    available = set(ort.get_available_providers())
    fallbacks: list[tuple[str, str]] = []
    session = None
    for short in order:
        name = ORT_PROVIDERS[short]
        if short == "cpu":
            session = cpu_session
            break
        if name not in available:
            fallbacks.append((name, "not in this onnxruntime build"))
            continue
        problem = _provider_library_problem(ort, short)
        if problem:
            fallbacks.append((name, f"unavailable: {problem}"))
            continue
        try:
            candidate = _open_session(
                ort, path, short, config, (info.input.name, (info.input.height, info.input.width))
            )
        except Exception as exc:
            fallbacks.append((name, f"session failed: {str(exc).strip().splitlines()[-1][:200]}"))
            continue
        if candidate.get_providers()[0] == name:
            session = candidate
            break
        fallbacks.append((name, "ONNX Runtime fell back when creating the session"))
    if session is None:
        raise ErcpError(
            f"model {path.name}: none of the requested providers {order} can run it: "
            + "; ".join(f"{p}: {r}" for p, r in fallbacks)
            + " (add 'cpu' to the providers)"
        )
    report = ProviderReport(
        tuple(ORT_PROVIDERS[s] for s in order), session.get_providers()[0], tuple(fallbacks)
    )
    for provider, reason in fallbacks:
        log.debug("model %s: skipped %s: %s", path.name, provider, reason)
    model = OnnxModel(path, session, info, sha256_of(path), report)
    zero = np.zeros((1, info.input.height, info.input.width, 3), np.uint8)
    try:
        _check_outputs(model.run(zero), info, 1)
    except ModelContractError as exc:
        raise ModelContractError(f"{path.name}: {exc}") from exc
    except Exception as exc:  # a graph that cannot run on its own declared input
        raise ModelContractError(
            f"{path.name}: the model fails on a zero input batch "
            f"({str(exc).strip().splitlines()[-1][:200]})"
        ) from exc
    if warmup:
        model.run(zero)
    log.info("loaded %s from %s on %s", info.label, path.name, report.chosen_short.upper())
    return model
