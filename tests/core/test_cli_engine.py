"""The headless engine commands: process, check-model and bench, end to end."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from app.cli import main

RECORD_KEYS = {"frame", "t", "box", "peak", "difficulty", "latency_ms"}


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


def first_frame(path):
    capture = cv2.VideoCapture(str(path))
    ok, image = capture.read()
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert ok
    return image, count


def test_process_phantom_writes_the_three_files(capsys, tmp_path, detector_path, classifier_path):
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys,
        "process",
        "phantom:3",
        "--frames",
        "8",
        "--out",
        str(out),
        "--detector",
        str(detector_path),
        "--classifier",
        str(classifier_path),
    )
    assert code == 0, err
    assert "processed 8 frames" in stdout and "8/8 frames" in err  # the progress bar
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(8))
    for record in lines:
        assert RECORD_KEYS <= set(record)
        assert record["difficulty"]["label"] in ("easy", "difficult")
        assert set(record["difficulty"]["probs"]) == {"easy", "difficult"}
        assert record["box"] is None or len(record["box"]) == 4
        assert record["latency_ms"] > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"]["spec"] == "phantom:3"
    assert manifest["counts"]["frames"] == 8
    assert manifest["settings"]["phi_mask"] is True
    assert [m["task"] for m in manifest["models"]] == ["ampulla-heatmap", "difficulty"]
    assert all(len(m["sha256"]) == 64 for m in manifest["models"])
    assert manifest["timings"]["latency_ms"]["p50"] > 0
    image, count = first_frame(out / "annotated.mp4")
    assert count == 8 and image.shape == (720, 1280, 3)
    # The phantom burns patient text (DOB, date at rows ~150-260) into the left border; PHI
    # masking blacks it out. (The difficulty panel and HUD sit above and below that band.)
    assert image[130:540, :300].max() < 40
    assert not list(out.glob(".*partial*"))


def test_process_image_folder_without_phi_mask(capsys, tmp_path, detector_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        image = np.full((64, 64, 3), 40, np.uint8)
        image[2:8, 2:20] = 255  # text-like marks in the corner
        cv2.imwrite(str(folder / f"{i:02d}.png"), image)
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys,
        "process",
        str(folder),
        "--out",
        str(out),
        "--detector",
        str(detector_path),
        "--no-classifier",  # a shipped default classifier would be used otherwise
        "--no-phi-mask",
        "--quiet",
    )
    assert code == 0, err
    assert err == ""  # --quiet: no progress bar
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["outputs"]["phi_masked"] is False and manifest["counts"]["frames"] == 3
    assert all(
        r["difficulty"] is None
        for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())
    )


def test_process_unreadable_input_exits_2_with_one_line(capsys, tmp_path, detector_path):
    code, _, err = run_cli(
        capsys,
        "process",
        str(tmp_path / "missing.mp4"),
        "--out",
        str(tmp_path / "o"),
        "--detector",
        str(detector_path),
    )
    assert code == 2
    assert "missing.mp4" in one_line_error(err)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    code, _, err = run_cli(
        capsys,
        "process",
        str(garbage),
        "--out",
        str(tmp_path / "o"),
        "--detector",
        str(detector_path),
    )
    assert code == 2 and "garbage.mp4" in one_line_error(err)


def test_process_refused_model_exits_2_with_one_line(capsys, tmp_path, broken_model_path):
    code, _, err = run_cli(
        capsys,
        "process",
        "phantom",
        "--frames",
        "2",
        "--out",
        str(tmp_path / "o"),
        "--detector",
        str(broken_model_path("float_input")),
    )
    assert code == 2
    assert "expected a uint8 tensor" in one_line_error(err)
    assert not (tmp_path / "o").exists()


def test_process_needs_a_model_and_a_frame_limit(capsys, tmp_path, detector_path, monkeypatch):
    monkeypatch.setattr("app.core.registry.default_model_path", lambda role: None)
    code, _, err = run_cli(capsys, "process", "phantom", "--frames", "2", "--out", str(tmp_path))
    assert code == 2 and "no detector model" in one_line_error(err)
    code, _, err = run_cli(
        capsys, "process", "phantom", "--out", str(tmp_path), "--detector", str(detector_path)
    )
    assert code == 2 and "--frames" in one_line_error(err)


def test_process_config_file_is_used_and_checked(capsys, tmp_path, detector_path):
    good = tmp_path / "engine.json"
    good.write_text(json.dumps({"phi_mask": False, "appear_frames": 1, "providers": ["cpu"]}))
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys,
        "process",
        "phantom",
        "--frames",
        "2",
        "--out",
        str(out),
        "--detector",
        str(detector_path),
        "--config",
        str(good),
        "--quiet",
    )
    assert code == 0, err
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    assert settings["phi_mask"] is False and settings["providers"] == ["cpu"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"stale_ms": -1}')
    code, _, err = run_cli(
        capsys,
        "process",
        "phantom",
        "--frames",
        "2",
        "--out",
        str(out),
        "--detector",
        str(detector_path),
        "--config",
        str(bad),
    )
    assert code == 2 and "stale_ms" in one_line_error(err)


def test_check_model_prints_the_contract(capsys, classifier_path):
    code, out, _ = run_cli(capsys, "check-model", str(classifier_path), "--providers", "cpu")
    assert code == 0
    assert "task:      difficulty" in out and "classes:   easy, difficult" in out
    assert "provider:  CPUExecutionProvider" in out and "contract:  OK" in out
    code, out, _ = run_cli(capsys, "check-model", str(classifier_path), "--json")
    described = json.loads(out)
    assert described["region"] == "field" and described["provider_report"]["chosen"]


@pytest.mark.parametrize("name", ["no_metadata", "probs_mismatch", "corrupt"])
def test_check_model_refusal_exits_2(capsys, broken_model_path, name):
    code, out, err = run_cli(capsys, "check-model", str(broken_model_path(name)))
    assert code == 2 and out == ""
    one_line_error(err)


def test_bench_json_small_run(capsys, detector_path, classifier_path):
    code, out, err = run_cli(
        capsys,
        "bench",
        "--detector",
        str(detector_path),
        "--classifier",
        str(classifier_path),
        "--frames",
        "12",
        "--json",
        "--providers",
        "cpu",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["machine"]["cores"] >= 1 and result["machine"]["providers"]
    alone, pipe, video = result["model_alone"], result["pipeline"], result["video_only"]
    assert alone["detector"]["inferences_per_s"] > 0 and alone["classifier"]["p95"] > 0
    assert pipe["frames_captured"] == pipe["frames_to_sink"] == 12
    assert video["frames_captured"] == 12 and video["frames_inferred"] == 0
    assert pipe["frames_inferred"] >= 1 and pipe["latency_ms"]["p50"] > 0
    assert set(result["goals"]) >= {"throughput_ratio", "latency_ok", "throughput_ok"}
