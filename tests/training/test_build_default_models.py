import json

import pytest

from training.cli import main as train_main
from training.commands.build_default_models import evaluate_on_video


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_video_figures_count_misses_and_false_positives(tmp_path):
    gt = [
        {"frame": 0, "box": [10, 10, 20, 20]},
        {"frame": 1, "box": [10, 10, 20, 20]},
        {"frame": 2, "box": None},
        {"frame": 3, "box": None},
    ]
    pred = [
        {"frame": 0, "box": [10, 10, 20, 20]},
        {"frame": 1, "box": None},
        {"frame": 2, "box": [0, 0, 5, 5]},
        {"frame": 3, "box": None},
    ]
    write_jsonl(tmp_path / "t.jsonl", gt)
    write_jsonl(tmp_path / "p.jsonl", pred)
    figures = evaluate_on_video(tmp_path / "p.jsonl", tmp_path / "t.jsonl")
    assert figures["mean_iou"] == pytest.approx(0.5)
    assert figures["miss_rate"] == pytest.approx(0.5)
    assert figures["false_positive_rate"] == pytest.approx(0.5)
    assert figures["frames_without_papilla"] == 2


@pytest.mark.slow
def test_build_default_models_tiny_run(tmp_path):
    out = tmp_path / "models"
    status = train_main(
        [
            "build-default-models",
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--images",
            "40",
            "--det-epochs",
            "1",
            "--cls-epochs",
            "1",
            "--eval-seconds",
            "1",
            "--det-size",
            "64",
            "--cls-size",
            "64",
        ]
    )
    assert status == 0
    registry = json.loads((out / "registry.json").read_text())
    assert set(registry["models"]) == {"detector", "classifier"}
    card = (out / registry["models"]["detector"]["card"]).read_text()
    assert "phantom" in card and registry["models"]["detector"]["sha256"] in card
