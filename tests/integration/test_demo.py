"""The shipped models and the demo, end to end, as a new user runs them."""

import json

import pytest

from app.cli import main as assist_main
from app.core.contract import TASK_CLASSIFIER, TASK_DETECTOR
from app.core.models import load_model
from app.core.registry import MODELS_DIR, default_model_path, load_registry

pytestmark = pytest.mark.skipif(
    not (MODELS_DIR / "registry.json").exists(), reason="no shipped models in models/"
)


def test_shipped_models_pass_the_registry_and_the_contract():
    entries = load_registry()
    assert set(entries) == {"detector", "classifier"}
    for role, task in (("detector", TASK_DETECTOR), ("classifier", TASK_CLASSIFIER)):
        path = default_model_path(role)
        assert path.stat().st_size <= 15 * 1024 * 1024, f"{path.name} is over 15 MB"
        model = load_model(path, providers=("cpu",), expect_task=task)
        assert model.info.provenance.get("trained_on") is not None
        assert entries[role].card.exists()
        assert entries[role].sha256 in entries[role].card.read_text()


def test_process_demo_finds_the_papilla(tmp_path, capsys):
    out = tmp_path / "demo"
    assert assist_main(["process", "--demo", "--frames", "90", "--out", str(out), "--quiet"]) == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 90
    assert (out / "annotated.mp4").stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert any(m["name"].startswith("phantom-ampulla-unet") for m in manifest["models"])
    assert sum(r["box"] is not None for r in rows) > 30
    assert all(r["difficulty"] is None or set(r["difficulty"]["probs"]) for r in rows)


@pytest.mark.qt
def test_demo_gui_screenshot(tmp_path, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    shot = tmp_path / "demo.png"
    status = assist_main(
        ["demo", "--screenshot", str(shot), "--quit-after-frames", "10", "--size", "1280x720"]
    )
    assert status == 0
    assert shot.stat().st_size > 10_000
