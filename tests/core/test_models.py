"""Model loading: contract refusals with clear messages, provider choice and its report."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from app.core.contract import TASK_CLASSIFIER, TASK_DETECTOR
from app.core.errors import ErcpError, ModelContractError
from app.core.models import ProviderReport, load_model
from tests.onnx_fixtures import BROKEN


def test_detector_loads_with_its_contract(detector_path):
    model = load_model(detector_path, providers=["cpu"])
    assert model.info.task == TASK_DETECTOR
    assert model.info.input.height == model.info.input.width == 64
    assert model.info.min_peak == 0.5 and model.info.box_threshold == 0.6
    assert model.sha256 == hashlib.sha256(detector_path.read_bytes()).hexdigest()
    assert model.path == detector_path
    out = model.run(np.zeros((2, 64, 64, 3), np.uint8))
    assert set(out) == {"heatmap"} and out["heatmap"].shape == (2, 1, 16, 16)


def test_classifier_outputs_by_role(classifier_path):
    model = load_model(classifier_path, providers=["cpu"], expect_task=TASK_CLASSIFIER)
    out = model.run(np.full((1, 64, 64, 3), 100, np.uint8))
    assert out["probs"].shape == (1, 2) and out["cam"].shape == (1, 32, 32)
    assert out["probs"].sum() == pytest.approx(1.0, abs=1e-5)
    assert model.info.classes == ("easy", "difficult")


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_models_are_refused_with_what_was_expected(broken_model_path, name):
    path = broken_model_path(name)
    with pytest.raises(ModelContractError) as err:
        load_model(path, providers=["cpu"])
    message = str(err.value)
    assert BROKEN[name][1] in message
    assert "\n" not in message
    if name not in ("corrupt", "no_metadata"):  # those say "not an ONNX / ERCP model"
        assert "expected" in message and "found" in message
        assert path.name in message


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ModelContractError, match="model file not found"):
        load_model(tmp_path / "nope.onnx")


def test_wrong_task_is_refused(classifier_path):
    with pytest.raises(ModelContractError, match="expected a detector .* found 'difficulty'"):
        load_model(classifier_path, providers=["cpu"], expect_task=TASK_DETECTOR)


def test_run_checks_the_batch(detector):
    with pytest.raises(ModelContractError, match=r"expected uint8 \(N, 64, 64, 3\)"):
        detector.run(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ModelContractError, match="found uint8"):
        detector.run(np.zeros((1, 32, 32, 3), np.uint8))


def test_cpu_only_has_no_fallbacks(detector_path):
    model = load_model(detector_path, providers=["cpu"], warmup=False)
    report = model.provider_report
    assert report == ProviderReport(("CPUExecutionProvider",), "CPUExecutionProvider", ())
    assert model.provider == "CPUExecutionProvider"
    assert report.summary() == "CPU"


def test_provider_report_names_every_skipped_provider(detector_path):
    model = load_model(detector_path)  # default order: tensorrt, cuda, cpu
    report = model.provider_report
    assert report.requested == (
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    )
    assert report.chosen == model.provider
    ahead = report.requested[: report.requested.index(report.chosen)]
    assert [p for p, _ in report.fallbacks] == list(ahead)
    assert all(reason for _, reason in report.fallbacks)
    if report.chosen == "CPUExecutionProvider":  # e.g. no GPU on this machine
        assert "fallback from" in report.summary()
    as_dict = report.to_dict()
    assert as_dict["chosen"] == report.chosen and len(as_dict["fallbacks"]) == len(ahead)


def test_loading_keeps_stderr_quiet(detector_path, capfd):
    """ORT prints provider-library errors to the C-level stderr; the loader avoids them."""
    load_model(detector_path)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


def test_unknown_provider_name(detector_path):
    with pytest.raises(ErcpError, match="unknown execution provider 'gpu'"):
        load_model(detector_path, providers=["gpu"])


def test_describe_is_json_ready(classifier):
    import json

    described = json.loads(json.dumps(classifier.describe()))
    assert described["task"] == TASK_CLASSIFIER
    assert described["classes"] == ["easy", "difficult"]
    assert described["provider"] == "CPUExecutionProvider"
    assert described["sha256"] == classifier.sha256


def test_fallback_reason_when_ort_cannot_make_the_gpu_session(detector_path, monkeypatch):
    from app.core import models

    # Pretend the CUDA libraries load, so ONNX Runtime itself has to try (and fail) here.
    monkeypatch.setattr(models, "_provider_library_problem", lambda ort, short: None)
    model = load_model(detector_path, providers=["cuda", "cpu"], warmup=False)
    if model.provider == "CUDAExecutionProvider":
        pytest.skip("this machine has a working CUDA provider")
    ((provider, reason),) = model.provider_report.fallbacks
    assert provider == "CUDAExecutionProvider"
    assert reason.startswith(("session failed", "ONNX Runtime fell back"))


def test_no_usable_provider_is_an_error(detector_path, monkeypatch):
    from app.core import models

    monkeypatch.setattr(models, "_provider_library_problem", lambda ort, short: "no device")
    with pytest.raises(ErcpError, match="none of the requested providers .* no device"):
        load_model(detector_path, providers=["cuda"])
