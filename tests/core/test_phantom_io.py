"""Phantom writers and CLI: COCO, labels.csv and truth.jsonl that agree with each other."""

from __future__ import annotations

import csv
import json

import cv2
import pytest

from app.cli import main
from app.core.phantom import PhantomConfig, render_still
from app.core.phantom_io import LABEL_COLUMNS, write_still_dataset, write_video

SMALL = PhantomConfig(width=320, height=180, absent_fraction=0.25)


def test_still_dataset_is_consistent_coco_and_labels(tmp_path):
    out = write_still_dataset(tmp_path / "ds", 14, seed=6, config=SMALL)
    coco = json.loads((out / "annotations.json").read_text())
    assert coco["categories"] == [{"id": 1, "name": "ampulla"}]
    assert len(coco["images"]) == 14
    ids = {im["id"] for im in coco["images"]}
    assert len(ids) == 14
    with open(out / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == LABEL_COLUMNS
    assert list(rows[0])[:5] == [
        "image",
        "patient_id",
        "cannulation_time_s",
        "additional_technique",
        "failed",
    ]
    assert [r["image"] for r in rows] == [im["file_name"] for im in coco["images"]]
    by_image = {a["image_id"]: a for a in coco["annotations"]}
    assert len(by_image) == len(coco["annotations"])  # at most one papilla per image
    n_absent = 0
    for i, (im, row) in enumerate(zip(coco["images"], rows, strict=True)):
        img = cv2.imread(str(out / im["file_name"]))
        assert img.shape == (180, 320, 3) and (im["width"], im["height"]) == (320, 180)
        _, truth = render_still(i, 6, SMALL)
        assert im["patient_id"] == row["patient_id"] == truth.patient_id
        assert float(row["cannulation_time_s"]) == pytest.approx(truth.case.cannulation_time_s)
        assert row["additional_technique"] == truth.case.additional_technique
        assert int(row["failed"]) == truth.case.failed
        assert row["morphology"] == truth.morphology
        ann = by_image.get(im["id"])
        if truth.box is None:
            assert ann is None
            n_absent += 1
        else:
            assert ann["category_id"] == 1
            assert ann["bbox"] == pytest.approx(list(truth.box), abs=0.01)
            assert ann["area"] == pytest.approx(ann["bbox"][2] * ann["bbox"][3], rel=1e-3)
    assert 0 < n_absent < 14
    patients = [r["patient_id"] for r in rows]
    assert len(set(patients)) < len(patients)  # several images per patient
    meta = json.loads((out / "phantom.json").read_text())
    assert meta["seed"] == 6 and meta["config"]["width"] == 320


def test_video_reopens_with_the_right_frame_count(tmp_path):
    config = PhantomConfig(width=320, height=180, fps=10.0)
    out = write_video(tmp_path / "v", 1.5, seed=2, config=config)
    lines = (out / "truth.jsonl").read_text().splitlines()
    assert len(lines) == 15
    records = [json.loads(line) for line in lines]
    assert [r["frame"] for r in records] == list(range(15))
    assert records[3]["t"] == pytest.approx(0.3)
    assert {"box", "morphology", "field", "case", "patient_id"} <= set(records[0])
    cap = cv2.VideoCapture(str(out / "phantom.mp4"))
    assert cap.isOpened()
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (180, 320, 3)
        n += 1
    cap.release()
    assert n == 15


def test_cli_writes_stills_and_video(tmp_path, capsys):
    rc = main(
        [
            "phantom",
            "--out",
            str(tmp_path / "s"),
            "--images",
            "3",
            "--seed",
            "1",
            "--width",
            "320",
            "--height",
            "180",
            "--absent",
            "0.5",
        ]
    )
    assert rc == 0
    assert len(list((tmp_path / "s" / "images").glob("*.jpg"))) == 3
    assert "3 phantom stills" in capsys.readouterr().out
    rc = main(
        [
            "phantom",
            "--out",
            str(tmp_path / "v"),
            "--video",
            "0.5",
            "--seed",
            "1",
            "--width",
            "320",
            "--height",
            "180",
            "--fps",
            "8",
        ]
    )
    assert rc == 0
    assert len((tmp_path / "v" / "truth.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize(
    "args",
    [
        ["--images", "0"],
        ["--images", "2", "--absent", "2"],
        ["--video", "-1"],
        ["--images", "2", "--width", "20"],
        ["--images", "2", "--seed", "-3"],
    ],
)
def test_cli_bad_values_are_one_line_errors(tmp_path, capsys, args):
    rc = main(["phantom", "--out", str(tmp_path / "x"), *args])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_cli_needs_exactly_one_of_images_and_video(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["phantom", "--out", str(tmp_path), "--images", "2", "--video", "1"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["phantom", "--out", str(tmp_path)])


def test_cli_writes_a_contact_sheet(tmp_path):
    rc = main(
        [
            "phantom",
            "--out",
            str(tmp_path),
            "--sheet",
            "4",
            "--seed",
            "0",
            "--width",
            "320",
            "--height",
            "180",
        ]
    )
    assert rc == 0
    sheet = cv2.imread(str(tmp_path / "phantom_contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] == 4 * 480
