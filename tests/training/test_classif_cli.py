"""Tiny end-to-end runs of classify, export (probs + CAM parity), evaluate-classify and gradcam."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import COMMANDS as APP_COMMANDS
from app.core.contract import parse_metadata
from tests.training.classif_data import write_tiny_dataset
from training.classification.cam import GradCam, probs_and_cam
from training.classification.data import load_difficulty_data, prepare_all, prepare_pixels
from training.classification.labels import FOUR_CLASSES
from training.classification.module import TASK, load_checkpoint, predict_probs
from training.cli import COMMANDS as TRAIN_COMMANDS
from training.cli import main as train_main

TINY = [
    "--arch",
    "resnet18",
    "--size",
    "64",
    "--epochs",
    "1",
    "--limit-train-batches",
    "2",
    "--batch-size",
    "8",
    "--no-progress",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("cls") / "data", n_patients=24)


@pytest.fixture(scope="module")
def four_run(tiny_data) -> Path:
    out = tiny_data.parent / "run_four"
    rc = train_main(
        [
            "classify",
            "--data",
            str(tiny_data),
            "--task",
            "four",
            "--folds",
            "2",
            "--out",
            str(out),
            *TINY,
        ]
    )
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def four_onnx(four_run) -> Path:
    from training.classification.export import export_checkpoint

    report = export_checkpoint(
        four_run / "fold_1" / "checkpoints" / "best.ckpt", four_run / "four.onnx"
    )
    assert report["parity"] <= 1e-4 and report["outputs"] == ["probs", "cam"]
    return report["path"]


def test_classify_run_writes_the_report(four_run, capsys):
    result = json.loads((four_run / "report.json").read_text())
    assert result["folds"] == 2 and result["classes"] == list(FOUR_CLASSES)
    assert result["n_images"] == 48 and result["n_patients"] == 24
    assert result["summary"]["accuracy"]["n"] == 2
    assert np.asarray(result["summary"]["confusion"]).sum() == 48  # every image tested once
    tested = []
    for k in (1, 2):
        lines = (four_run / f"fold_{k}" / "predictions.csv").read_text().splitlines()
        assert lines[0].startswith("image,patient_id,label,pred,p_easy")
        tested += [line.split(",")[0] for line in lines[1:]]
    assert sorted(tested) == sorted(f"img_{i:04d}.png" for i in range(1, 49))
    # no patient is in both test folds
    patients = [
        {
            line.split(",")[1]
            for line in (four_run / f"fold_{k}" / "predictions.csv").read_text().splitlines()[1:]
        }
        for k in (1, 2)
    ]
    assert not patients[0] & patients[1]
    report = (four_run / "report.md").read_text()
    assert "layout of the paper's Table 2" in report and "Macro-average F1 score" in report
    for png in ("roc.png", "confusion.png"):
        assert (four_run / png).read_bytes()[:4] == b"\x89PNG"
    ckpt = torch.load(four_run / "fold_1/checkpoints/best.ckpt", weights_only=False)
    assert ckpt["hyper_parameters"]["task"] == TASK


def test_export_contract_and_parity_with_cam(four_run, four_onnx):
    import onnxruntime as ort

    session = ort.InferenceSession(str(four_onnx), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    info = parse_metadata(
        meta, [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    )
    assert info.task == "difficulty" and info.classes == FOUR_CLASSES
    assert info.region == "field" and info.outputs == {"probs": "probs", "cam": "cam"}
    assert info.provenance["trained_on"]["images"] == 48
    module = load_checkpoint(four_run / "fold_1/checkpoints/best.ckpt")
    batch = np.random.default_rng(5).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    probs, cam = session.run(["probs", "cam"], {"image": batch})
    assert probs.shape == (3, 4) and cam.shape == (3, 2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert cam.min() >= 0.0 and cam.max() <= 1.0 + 1e-6
    with torch.no_grad():
        x = module.normalize(torch.from_numpy(batch))
        ref_probs, ref_cam = probs_and_cam(module.model, x)
    np.testing.assert_allclose(probs, ref_probs.numpy(), atol=1e-4)
    np.testing.assert_allclose(cam, ref_cam.numpy(), atol=1e-4)
    with GradCam(module.model) as gradcam:  # the exported CAM is the hook Grad-CAM too
        _, maps = gradcam(x)
    np.testing.assert_allclose(cam, maps.numpy(), atol=1e-4)


def test_app_classifier_sees_what_training_saw(tiny_data, four_run, four_onnx):
    from app.core.inference import Classifier
    from app.core.models import load_model
    from training.common.data import find_field, read_image

    module = load_checkpoint(four_run / "fold_1/checkpoints/best.ckpt")
    data = load_difficulty_data(tiny_data, "four")
    classifier = Classifier(load_model(four_onnx, providers=["cpu"]))
    spec = classifier.model.info.input
    pixels = prepare_all(data.samples[:6], spec, "field")
    torch_probs = predict_probs(module, pixels)
    for sample, ref in zip(data.samples[:6], torch_probs, strict=True):
        image = read_image(sample.path)
        result = classifier.predict(image, find_field(image), sample.box)
        np.testing.assert_allclose([result.probs[c] for c in FOUR_CLASSES], ref, atol=1e-4)
        assert result.cam is not None and result.region == "field"


def test_evaluate_classify_json(tiny_data, four_run, four_onnx, capsys):
    capsys.readouterr()
    assert (
        train_main(
            ["evaluate-classify", "--model", str(four_onnx), "--data", str(tiny_data), "--json"]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 48 and result["task"] == "four"
    assert result["cam_shape"] == [2, 2]
    module = load_checkpoint(four_run / "fold_1/checkpoints/best.ckpt")
    data = load_difficulty_data(tiny_data, "four")
    probs = predict_probs(module, prepare_all(data.samples, module_spec(module), "field"))
    expected = np.zeros((4, 4), int)
    np.add.at(expected, (data.labels, probs.argmax(axis=1)), 1)
    assert result["confusion"] == expected.tolist()
    assert (
        train_main(["evaluate-classify", "--model", str(four_onnx), "--data", str(tiny_data)]) == 0
    )
    assert "| failure |" in capsys.readouterr().out


def module_spec(module):
    from app.core.contract import InputSpec

    return InputSpec("image", *module.hparams["input_size"])


def test_gradcam_command(tiny_data, four_run, capsys):
    out = tiny_data.parent / "gradcam"
    rc = train_main(
        [
            "gradcam",
            "--ckpt",
            str(four_run / "fold_1/checkpoints/best.ckpt"),
            "--data",
            str(tiny_data),
            "--images",
            "img_0003.png",
            "--per-class",
            "1",
            "--explain",
            "truth",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    files = sorted(p.name for p in out.glob("*.png"))
    assert "gradcam_grid.png" in files and "img_0003_gradcam.png" in files
    assert len(files) == 1 + 1 + 4  # the named image, one per class, the grid
    rc = train_main(
        [
            "gradcam",
            "--ckpt",
            str(four_run / "fold_1/checkpoints/best.ckpt"),
            "--images",
            str(tiny_data / "images" / "img_0010.png"),
            "--out",
            str(out / "plain"),
        ]
    )
    assert rc == 0 and (out / "plain" / "img_0010_gradcam.png").is_file()


def test_box_region_binary_no_balance_sampler(tiny_data):
    from app.core.inference import Classifier
    from app.core.models import load_model
    from training.classification.export import export_checkpoint
    from training.common.data import find_field, read_image

    out = tiny_data.parent / "run_box"
    rc = train_main(
        [
            "classify",
            "--data",
            str(tiny_data),
            "--task",
            "binary",
            "--folds",
            "2",
            "--only-folds",
            "1",
            "--region",
            "box",
            "--box-margin",
            "0.5",
            "--balance",
            "sampler",
            "--monitor",
            "acc",
            "--out",
            str(out),
            *TINY,
        ]
    )
    assert rc == 0
    result = json.loads((out / "report.json").read_text())
    assert result["region"] == {"box_margin": 0.5} and result["balance"] == "sampler"
    assert result["folds"] == 1
    onnx_path = export_checkpoint(out / "fold_1/checkpoints/best.ckpt", out / "box.onnx")["path"]
    model = load_model(onnx_path, providers=["cpu"])
    assert model.info.region == {"box_margin": 0.5} and model.info.classes == ("easy", "difficult")
    module = load_checkpoint(out / "fold_1/checkpoints/best.ckpt")
    sample = load_difficulty_data(tiny_data, "binary").samples[5]
    image = read_image(sample.path)
    result = Classifier(model).predict(image, find_field(image), sample.box)
    assert result.region == "box"
    ref = predict_probs(
        module, prepare_pixels(image, sample.box, model.info.input, {"box_margin": 0.5})[None]
    )[0]
    np.testing.assert_allclose([result.probs["easy"], result.probs["difficult"]], ref, atol=1e-4)


def test_bad_labels_fail_with_the_row(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "bad", n_patients=4, per_patient=1)
    lines = (data / "labels.csv").read_text().splitlines()
    lines[2] = lines[2].replace(",0", ",7")
    (data / "labels.csv").write_text("\n".join(lines) + "\n")
    rc = train_main(["classify", "--data", str(data), "--out", str(tmp_path / "r"), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and "row 2 (line 3), column 'failed'" in err and "expected 0 or 1" in err


@pytest.mark.skipif("check-model" not in APP_COMMANDS, reason="ercp-assist check-model missing")
def test_check_model_accepts_export(four_onnx):
    from app.cli import main as app_main

    assert app_main(["check-model", str(four_onnx)]) == 0


@pytest.mark.skipif("export" not in TRAIN_COMMANDS, reason="ercp-train export not registered")
def test_shared_export_command_dispatches_to_classifier(four_run, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "shared.onnx"
    ckpt = four_run / "fold_2" / "checkpoints" / "best.ckpt"
    assert train_main(["export", str(ckpt), "--out", str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["ercp.task"] == "difficulty"
    assert [o.name for o in session.get_outputs()] == ["probs", "cam"]
