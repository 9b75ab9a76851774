"""ONNX export under the model contract: uint8 NHWC BGR in, normalisation inside the graph."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from app.core.contract import InputSpec
from app.core.errors import ExportError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNormalizer(torch.nn.Module):
    """uint8 NHWC BGR -> float NCHW RGB, scaled to [0, 1] and ImageNet-normalised.

    Training feeds its batches through this same module, so the exported graph preprocesses
    exactly as training did.
    """

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 (N, H, W, 3) BGR batch."""
        x = x.permute(0, 3, 1, 2).float()
        x = x.flip(1)  # BGR -> RGB
        return (x - self.mean) / self.std


class ContractWrapper(torch.nn.Module):
    """Wraps ``inner`` (normalised float NCHW RGB -> outputs) to take uint8 NHWC BGR.

    The graph converts colour, scales, normalises and transposes, then calls ``inner``; the
    app only crops and resizes. ``inner`` should already end in its output activation
    (sigmoid heatmap, softmax probabilities).
    """

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.normalize = ImageNormalizer()
        self.inner = inner

    def forward(self, x: torch.Tensor):
        """uint8 (N, H, W, 3) BGR -> the inner model's outputs."""
        return self.inner(self.normalize(x))


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; a model is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _torch_export(
    wrapper,
    dummy,
    path: Path,
    input_name: str,
    output_names: Sequence[str],
    dynamic: dict,
    opset: int,
) -> None:
    kwargs = dict(input_names=[input_name], output_names=list(output_names), opset_version=opset)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated but still the most robust for these
            # plain CNNs; the dynamo exporter is the fallback.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                wrapper, (dummy,), str(path), dynamic_axes=dynamic, dynamo=False, **kwargs
            )
    except Exception as exc:  # noqa: BLE001 - any failure: try the other exporter
        log.warning("TorchScript ONNX export failed (%s); trying the dynamo exporter", exc)
        batch = torch.export.Dim("N", min=1)
        shapes = ({0: batch},)
        with torch.no_grad():
            torch.onnx.export(
                wrapper,
                (dummy,),
                str(path),
                dynamic_shapes=shapes,
                dynamo=True,
                external_data=False,
                **kwargs,
            )


def export_onnx(
    wrapper,
    out_path: Path | str,
    *,
    input_spec: InputSpec,
    output_names: Sequence[str],
    metadata: Mapping[str, str],
    opset: int = 17,
) -> Path:
    """Export ``wrapper`` (uint8 NHWC BGR input) to ONNX with contract metadata.

    The batch dimension N of the input and of every output is dynamic. The file is checked
    with ``onnx.checker`` and written atomically (never half a model at ``out_path``).

    Args:
        wrapper: a ContractWrapper (or any module taking uint8 NHWC).
        out_path: the .onnx file to write.
        input_spec: name and size of the input.
        output_names: graph output names, in the order the module returns them.
        metadata: the ``ercp.*`` map from ``app.core.contract.build_metadata``.
        opset: ONNX opset.

    Returns:
        The path written.

    Raises:
        ExportError: if the export or the check fails or the file can't be written.
    """
    import onnx

    out_path = Path(out_path)
    wrapper = wrapper.eval()
    dummy = torch.zeros((1, input_spec.height, input_spec.width, 3), dtype=torch.uint8)
    dynamic = {input_spec.name: {0: "N"}, **{name: {0: "N"} for name in output_names}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        try:
            _torch_export(wrapper, dummy, tmp_path, input_spec.name, output_names, dynamic, opset)
        except Exception as exc:  # torch.onnx raises many types
            raise ExportError(f"ONNX export failed: {exc}") from exc
        model = onnx.load(str(tmp_path))
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"exported model fails onnx.checker: {exc}") from exc
    try:
        _atomic_write_bytes(out_path, model.SerializeToString())
    except OSError as exc:
        raise ExportError(f"cannot write {out_path}: {exc}") from exc
    log.info("exported %s (%.1f MB)", out_path, out_path.stat().st_size / 1e6)
    return out_path


def _session(onnx_path: Path | str):
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def check_parity(
    wrapper, onnx_path: Path | str, n: int = 4, atol: float = 1e-4, seed: int = 0
) -> float:
    """Max abs difference between PyTorch and ONNX Runtime (CPU) on random uint8 inputs.

    Raises:
        ExportError: if the difference exceeds ``atol``.
    """
    session = _session(onnx_path)
    inp = session.get_inputs()[0]
    height, width = int(inp.shape[1]), int(inp.shape[2])
    rng = np.random.default_rng(seed)
    batch = rng.integers(0, 256, size=(n, height, width, 3), dtype=np.uint8)
    with torch.no_grad():
        ref = wrapper.eval()(torch.from_numpy(batch))
    refs = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    outs = session.run(None, {inp.name: batch})
    diff = max(
        float(np.max(np.abs(r.float().numpy() - o))) for r, o in zip(refs, outs, strict=True)
    )
    if diff > atol:
        raise ExportError(f"ONNX output differs from PyTorch by {diff:.2e} > {atol:.0e}")
    log.info("parity: max |torch - onnxruntime| = %.2e on %d random images", diff, n)
    return diff


def quantize_int8(
    onnx_path: Path | str, out_path: Path | str, calibration: Iterable[np.ndarray]
) -> Path:
    """Static INT8 quantisation (ONNX Runtime, QDQ) for CPU, calibrated on uint8 NHWC images.

    Metadata is carried over. The accuracy change must be measured (``evaluate-detect``).
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    session = _session(onnx_path)
    name = session.get_inputs()[0].name
    images = [np.ascontiguousarray(im[None] if im.ndim == 3 else im) for im in calibration]
    if not images:
        raise ExportError("INT8 quantisation needs calibration images")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(images)

        def get_next(self):
            batch = next(self._it, None)
            return None if batch is None else {name: batch}

    out_path = Path(out_path)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "q.onnx"
        quantize_static(
            str(onnx_path), str(tmp_path), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True
        )
        model = onnx.load(str(tmp_path))
    _copy_metadata(onnx.load(str(onnx_path)), model, {"ercp.variant": "int8"})
    _atomic_write_bytes(out_path, model.SerializeToString())
    return out_path


def to_fp16(onnx_path: Path | str, out_path: Path | str) -> Path:
    """FP16 weights and compute for GPUs; the uint8 input and the float32 outputs stay."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(onnx_path))
    half = convert_float_to_float16(model, keep_io_types=True)
    _copy_metadata(model, half, {"ercp.variant": "fp16"})
    out_path = Path(out_path)
    _atomic_write_bytes(out_path, half.SerializeToString())
    return out_path


def _copy_metadata(src, dst, extra: Mapping[str, str]) -> None:
    del dst.metadata_props[:]
    for prop in src.metadata_props:
        entry = dst.metadata_props.add()
        entry.key, entry.value = prop.key, prop.value
    for key, value in extra.items():
        entry = dst.metadata_props.add()
        entry.key, entry.value = key, value


def git_revision(repo: Path | None = None) -> str:
    """The current git revision (with ``-dirty``), or ``"unknown"``."""
    import subprocess

    cwd = repo or Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return rev.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
