"""Tiny end-to-end runs of every detection command (64 px, a few steps) and their pieces."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from app.cli import main as app_main
from app.core.geometry import iou
from training.cli import main as train_main
from training.detection.calibrate import calibrate_min_peak

KVASIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "kvasir-seg"
TINY = [
    "--encoder",
    "resnet18",
    "--size",
    "64",
    "--batch-size",
    "4",
    "--epochs",
    "1",
    "--no-progress",
    "--threads",
    "1",
    "--decoder-channels",
    "32,16,16,8,8",
]


def _scene(rng: np.random.Generator, size: int = 96, with_object: bool = True):
    """A dark endoscopic-looking field (black border) with a bright ellipse (the object)."""
    img = np.zeros((size, size, 3), np.uint8)
    cv2.circle(img, (size // 2, size // 2), size // 2 - 2, (40, 60, 120), -1)
    img = cv2.add(img, rng.integers(0, 20, img.shape, dtype=np.uint8))
    if not with_object:
        return img, None
    w, h = rng.uniform(16, 30, 2)
    cx, cy = rng.uniform(30, size - 30, 2)
    cv2.ellipse(
        img,
        (int(cx), int(cy)),
        (int(w / 2), int(h / 2)),
        0,
        0,
        360,
        (150, 190, 240),
        -1,
        cv2.LINE_AA,
    )
    return img, [float(cx - w / 2), float(cy - h / 2), float(w), float(h)]


def write_dataset(root: Path, n: int = 16, negatives: int = 0, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n + negatives):
        img, box = _scene(rng, with_object=i < n)
        cv2.imwrite(str(root / f"f{i:03d}.png"), img)
        images.append(
            {
                "id": i + 1,
                "file_name": f"f{i:03d}.png",
                "width": 96,
                "height": 96,
                "patient_id": f"p{i // 2}",
            }
        )
        if box is not None:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": box})
    (root / "annotations.json").write_text(
        json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "ampulla"}]}
        )
    )
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny 2-fold run with the baseline, shared by the command tests below."""
    tmp = tmp_path_factory.mktemp("detect")
    data = write_dataset(tmp / "data", n=14, negatives=4)
    out = tmp / "run"
    rc = train_main(
        ["detect", "--data", str(data), "--folds", "2", "--baseline", "--out", str(out), *TINY]
    )
    assert rc == 0
    return data, out


def test_detect_writes_reports(trained, capsys):
    data, out = trained
    summary = json.loads((out / "summary.json").read_text())
    for kind in ("heatmap", "boxreg"):
        s = summary["summary"][kind]
        assert set(s["folds"]) == {"0", "1"}
        assert 0.0 <= s["mean"]["miou"] <= 1.0
        assert len(s["iou_curve"]) == 10 and len(s["centroid_curve"]) == 10
        assert (out / "fold0" / kind / "checkpoints" / "best.ckpt").is_file()
        assert (out / "fold0" / kind / "csv" / "metrics.csv").is_file()
        assert any((out / "fold0" / kind / "tensorboard").iterdir())
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    # Every image is a test image exactly once per model (the folds partition the data).
    assert sorted(int(r["image_id"]) for r in rows if r["model"] == "heatmap") == list(range(1, 19))
    for name in ("success.png", "worst_heatmap.png", "worst_boxreg.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape[0] > 100
    calibration = json.loads((out / "fold0" / "heatmap" / "calibration.json").read_text())
    assert 0.0 <= calibration["min_peak"] <= 1.0
    # Patient-grouped folds: no patient in both the train and test parts of a fold.
    split = json.loads((out / "fold0" / "split.json").read_text())
    patient = {i: f"p{(i - 1) // 2}" for i in range(1, 19)}
    assert not {patient[i] for i in split["train"] + split["val"]} & {
        patient[i] for i in split["test"]
    }


def test_export_parity_and_app_check_model(trained, tmp_path, capsys):
    _, out = trained
    onnx_path = tmp_path / "det.onnx"
    rc = train_main(
        [
            "export",
            str(out / "fold0" / "heatmap" / "checkpoints" / "best.ckpt"),
            "--out",
            str(onnx_path),
            "--name",
            "tiny-det",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    parity = float(text.split("onnxruntime| = ")[1].split(";")[0])
    assert parity <= 1e-4
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["ercp.task"] == "ampulla-heatmap" and meta["ercp.name"] == "tiny-det"
    calibration = json.loads((out / "fold0" / "heatmap" / "calibration.json").read_text())
    assert math.isclose(float(meta["ercp.min_peak"]), calibration["min_peak"], rel_tol=1e-9)
    assert json.loads(meta["ercp.trained_on"])["fingerprint"]
    assert "git" in json.loads(meta["ercp.source"])
    assert app_main(["check-model", str(onnx_path)]) == 0
    # The baseline cannot be exported for the app.
    assert (
        train_main(
            [
                "export",
                str(out / "fold0" / "boxreg" / "checkpoints" / "best.ckpt"),
                "--out",
                str(tmp_path / "b.onnx"),
            ]
        )
        == 2
    )
    assert "box-regression" in capsys.readouterr().err


def test_evaluate_detect_through_the_app(trained, tmp_path, capsys):
    data, out = trained
    onnx_path = tmp_path / "det.onnx"
    assert (
        train_main(
            [
                "export",
                str(out / "fold1" / "heatmap" / "checkpoints" / "best.ckpt"),
                "--out",
                str(onnx_path),
            ]
        )
        == 0
    )
    capsys.readouterr()
    preds = tmp_path / "pred.json"
    rc = train_main(
        [
            "evaluate-detect",
            "--model",
            str(onnx_path),
            "--data",
            str(data),
            "--split",
            str(out / "fold1" / "split.json"),
            "--json",
            "--min-peak",
            "0",
            "--predictions",
            str(preds),
        ]
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    test_ids = json.loads((out / "fold1" / "split.json").read_text())["test"]
    assert report["images"] == len(test_ids)
    assert report["min_peak"] == 0.0
    assert 0.0 <= report["summary"]["miou"] <= 1.0
    if report["negatives"]:
        assert report["false_positive_rate"] == 1.0  # min_peak 0: every frame has a box
    # evaluate-detect agrees with detect's own (PyTorch) evaluation of the same model.
    rows = [
        r
        for r in csv.DictReader((out / "per_image.csv").open())
        if r["model"] == "heatmap" and r["fold"] == "1" and r["iou"]
    ]
    torch_miou = np.mean([float(r["iou"]) for r in rows])
    assert abs(report["summary"]["miou"] - torch_miou) < 0.02
    assert json.loads(preds.read_text())


def test_compare_annotators(trained, tmp_path, capsys):
    data, _ = trained
    gt = json.loads((data / "annotations.json").read_text())
    other = json.loads(json.dumps(gt))
    for ann in other["annotations"]:
        ann["bbox"][0] += 2.0  # a second annotator who draws 2 px to the right
    (tmp_path / "other").mkdir()
    for img in other["images"]:
        img["file_name"] = str(data / img["file_name"])
    (tmp_path / "other" / "annotations.json").write_text(json.dumps(other))
    preds = [{"image_id": a["image_id"], "bbox": a["bbox"]} for a in gt["annotations"]]
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    rc = train_main(
        [
            "compare-annotators",
            "--gt",
            str(data),
            "--other",
            str(tmp_path / "other"),
            "--pred",
            str(tmp_path / "pred.json"),
            "--json",
        ]
    )
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows["model vs GT"]["miou"] == pytest.approx(1.0)
    assert rows["human vs GT"]["miou"] == pytest.approx(rows["model vs human"]["miou"])
    assert rows["human vs GT"]["miou"] < 1.0


def test_import_kvasir(tmp_path, capsys):
    src = tmp_path / "kvasir"
    (src / "images").mkdir(parents=True)
    entries = {}
    for i, boxes in enumerate(
        [[(5, 6, 30, 40)], [(1, 1, 10, 10), (20, 20, 30, 30)], [(0, 0, 64, 48)]]
    ):
        cv2.imwrite(str(src / "images" / f"k{i}.jpg"), np.full((48, 64, 3), 80, np.uint8))
        entries[f"k{i}"] = {
            "height": 48,
            "width": 64,
            "bbox": [
                {"label": "polyp", "xmin": a, "ymin": b, "xmax": c, "ymax": d}
                for a, b, c, d in boxes
            ],
        }
    (src / "kavsir_bboxes.json").write_text(json.dumps(entries))
    assert train_main(["import-kvasir", str(src), str(tmp_path / "coco")]) == 0
    assert "dropped 1 with several boxes" in capsys.readouterr().out
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert len(coco["images"]) == 2
    assert coco["annotations"][0]["bbox"] == [5.0, 6.0, 25.0, 34.0]  # xmax/ymax -> w/h
    from training.common.data import CocoDataset

    assert len(CocoDataset.load(tmp_path / "coco")) == 2


def test_calibrate_min_peak_fpr_and_no_negatives():
    neg = np.linspace(0.0, 0.99, 100)
    cal = calibrate_min_peak([0.9, 0.95], neg, target_fpr=0.05)
    assert cal["fpr"] <= 0.05 and cal["fpr"] == pytest.approx(0.05)
    cal = calibrate_min_peak(np.linspace(0.5, 1.0, 101), [], target_miss=0.01)
    assert cal["fpr"] is None and cal["tpr"] >= 0.99 and "not measured" in cal["method"]


def test_box_dataset_target_is_the_soft_mask_of_the_augmented_box():
    from app.core.contract import InputSpec
    from app.core.geometry import box_from_heatmap
    from app.core.inference import prepare_input
    from training.common.augment import AugmentConfig
    from training.common.data import PreparedImage
    from training.detection.module import BoxDataset

    rng = np.random.default_rng(3)
    img, box = _scene(rng)
    pixels, transform = prepare_input(img, None, InputSpec("image", 96, 96))
    ds = BoxDataset(
        [PreparedImage(pixels, tuple(box), transform)],
        AugmentConfig(brightness=0, contrast=0, saturation=0, hue_deg=0, blur_p=0),
    )
    for _ in range(5):
        item = ds[0]
        back, _ = box_from_heatmap(item["mask"][0].numpy())
        cx, cy, w, h = item["box"].numpy() * 96
        assert iou(back, (cx - w / 2, cy - h / 2, w, h)) > 0.9
        bright = item["image"].numpy()[..., 2] > 200
        ys, xs = np.nonzero(bright)
        seen = (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
        assert iou(seen, back) > 0.6


@pytest.mark.skipif(not KVASIR.is_dir(), reason="Kvasir-SEG not present")
def test_import_real_kvasir_counts(tmp_path, capsys):
    assert train_main(["import-kvasir", str(KVASIR), str(tmp_path / "kv")]) == 0
    assert "945 images kept of 1000; dropped 55 with several boxes" in capsys.readouterr().out


def test_detect_report_merges_runs(trained, tmp_path, capsys):
    _, out = trained
    assert train_main(["detect-report", str(out), "--out", str(tmp_path / "rep")]) == 0
    merged = json.loads((tmp_path / "rep" / "summary.json").read_text())
    original = json.loads((out / "summary.json").read_text())["summary"]
    for kind in ("heatmap", "boxreg"):
        assert merged[kind]["mean"]["miou"] == pytest.approx(
            original[kind]["mean"]["miou"], abs=1e-4
        )
    assert cv2.imread(str(tmp_path / "rep" / "success.png")) is not None


@pytest.mark.slow
def test_export_fp16_and_int8_variants_load_in_the_app(trained, tmp_path, capsys):
    data, out = trained
    onnx_path = tmp_path / "det.onnx"
    rc = train_main(
        [
            "export",
            str(out / "fold0" / "heatmap" / "checkpoints" / "best.ckpt"),
            "--out",
            str(onnx_path),
            "--fp16",
            "--int8",
            str(data),
        ]
    )
    assert rc == 0
    for variant in ("fp16", "int8"):
        path = tmp_path / f"det.{variant}.onnx"
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert meta["ercp.variant"] == variant
        assert app_main(["check-model", str(path)]) == 0


def test_detect_evaluate_only_reproduces_the_report(trained, capsys):
    data, out = trained
    before = json.loads((out / "summary.json").read_text())["summary"]
    rc = train_main(
        [
            "detect",
            "--data",
            str(data),
            "--folds",
            "2",
            "--baseline",
            "--evaluate-only",
            "--out",
            str(out),
            *TINY,
        ]
    )
    assert rc == 0
    after = json.loads((out / "summary.json").read_text())["summary"]
    for kind in ("heatmap", "boxreg"):
        assert after[kind]["mean"]["miou"] == pytest.approx(before[kind]["mean"]["miou"])
