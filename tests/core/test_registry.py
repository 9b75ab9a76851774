import json

import pytest

from app.core.errors import ModelContractError
from app.core.registry import default_model_path, load_registry, sha256_of


def write_registry(tmp_path, content=b"model-bytes", sha=None):
    (tmp_path / "det.onnx").write_bytes(content)
    sha = sha or sha256_of(tmp_path / "det.onnx")
    (tmp_path / "registry.json").write_text(
        json.dumps({"models": {"detector": {"file": "det.onnx", "sha256": sha, "card": "d.md"}}})
    )


def test_default_model_is_checked_by_sha256(tmp_path):
    write_registry(tmp_path)
    assert default_model_path("detector", tmp_path) == tmp_path / "det.onnx"
    assert default_model_path("classifier", tmp_path) is None
    (tmp_path / "det.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelContractError, match="corrupted or was replaced"):
        default_model_path("detector", tmp_path)


def test_missing_or_malformed_registry(tmp_path):
    assert load_registry(tmp_path) == {}
    (tmp_path / "registry.json").write_text("{")
    with pytest.raises(ModelContractError, match="malformed"):
        load_registry(tmp_path)
    write_registry(tmp_path)
    (tmp_path / "det.onnx").unlink()
    with pytest.raises(ModelContractError, match="missing"):
        default_model_path("detector", tmp_path)
