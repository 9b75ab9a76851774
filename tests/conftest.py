"""Shared fixtures: tiny ONNX model files (tests/onnx_fixtures.py) for every test package."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import onnx_fixtures


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A session-wide folder of fixture models (built once, read by many tests)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def detector_path(model_dir) -> Path:
    """A valid detector: 64x64 stretch input, heatmap = red channel pooled to 16x16."""
    return onnx_fixtures.save(onnx_fixtures.detector_model(), model_dir / "detector.onnx")


@pytest.fixture(scope="session")
def letterbox_detector_path(model_dir) -> Path:
    """Like ``detector_path`` but declaring ``resize: letterbox``."""
    return onnx_fixtures.save(
        onnx_fixtures.detector_model(resize="letterbox"), model_dir / "detector_letterbox.onnx"
    )


@pytest.fixture(scope="session")
def classifier_path(model_dir) -> Path:
    """A valid classifier: classes easy/difficult, region "field", with a CAM."""
    return onnx_fixtures.save(onnx_fixtures.classifier_model(), model_dir / "classifier.onnx")


@pytest.fixture(scope="session")
def box_classifier_path(model_dir) -> Path:
    """A classifier with ``ercp.region = {"box_margin": 0.5}`` and no CAM."""
    return onnx_fixtures.save(
        onnx_fixtures.classifier_model(region={"box_margin": 0.5}, cam=False),
        model_dir / "classifier_box.onnx",
    )


@pytest.fixture(scope="session")
def broken_model_path(model_dir) -> Callable[[str], Path]:
    """``broken_model_path(name)`` writes ``onnx_fixtures.BROKEN[name]`` and returns its path."""

    def make(name: str) -> Path:
        path = model_dir / f"broken_{name}.onnx"
        if not path.exists():
            onnx_fixtures.write_broken(name, path)
        return path

    return make


@pytest.fixture(scope="session")
def detector(detector_path):
    """A loaded (CPU) OnnxModel of ``detector_path``."""
    from app.core.models import load_model

    return load_model(detector_path, providers=["cpu"])


@pytest.fixture(scope="session")
def classifier(classifier_path):
    """A loaded (CPU) OnnxModel of ``classifier_path``."""
    from app.core.models import load_model

    return load_model(classifier_path, providers=["cpu"])
