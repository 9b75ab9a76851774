"""Tests of the shared training infrastructure (training/common)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from app.core.contract import TASK_DETECTOR, InputSpec, build_metadata, parse_metadata
from app.core.errors import ConfigError, ExportError
from app.core.geometry import box_from_heatmap, iou, soft_mask
from training.common.augment import NO_AUGMENT, AugmentConfig, augment, transform_box
from training.common.data import CocoDataset, box_to_input, prepare_record, validate_coco
from training.common.export import ContractWrapper, check_parity, export_onnx
from training.common.folds import make_folds, train_val_split
from training.common.pretrained import load_pretrained
from training.common.registry import Registry

# --- augmentation --------------------------------------------------------------------------


def _disc_image(box, size=64):
    img = np.zeros((size, size, 3), np.uint8)
    x, y, w, h = box
    cv2.ellipse(
        img,
        (int(round((x + w / 2) * 16)), int(round((y + h / 2) * 16))),
        (int(round(w / 2 * 16)), int(round(h / 2 * 16))),
        0,
        0,
        360,
        (255, 255, 255),
        -1,
        cv2.LINE_AA,
        4,
    )
    return img


@pytest.mark.parametrize("seed", range(8))
def test_augment_moves_image_and_box_together(seed):
    box = (18.0, 22.0, 24.0, 16.0)
    img = _disc_image(box)
    cfg = AugmentConfig(
        brightness=0,
        contrast=0,
        saturation=0,
        hue_deg=0,
        blur_p=0,
        translate=0.05,
        rotate_deg=30,
        shear_deg=5,
    )
    out, new_box = augment(img, box, np.random.default_rng(seed), cfg)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert new_box is not None
    # The box of the transformed white ellipse is where the transformed box says.
    ys, xs = np.nonzero(out[..., 0] > 127)
    seen = (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
    assert iou(seen, new_box) > 0.8, (seen, new_box)


def test_augment_rotation_does_not_inflate_a_circle_box():
    box = (20.0, 20.0, 24.0, 24.0)
    angle = math.radians(45)
    c = 32.0
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    matrix = np.hstack([rot, (np.array([c, c]) - rot @ np.array([c, c]))[:, None]])
    new = transform_box(box, matrix, 64, 64)
    assert new is not None and iou(new, box) > 0.97  # the four corners would give IoU 0.5


def test_augment_box_leaving_image_is_none_and_identity_is_identity():
    box = (0.0, 0.0, 6.0, 6.0)
    matrix = np.array([[1.0, 0, 62.0], [0, 1.0, 62.0]])  # 2x2 of 6x6 stays inside
    assert transform_box(box, matrix, 64, 64) is None
    img = _disc_image((10, 10, 20, 20))
    out, same = augment(img, (10.0, 10.0, 20.0, 20.0), np.random.default_rng(0), NO_AUGMENT)
    assert np.array_equal(out, img) and iou(same, (10, 10, 20, 20)) > 0.999


def test_augment_without_box_and_colour_changes_image():
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    out, box = augment(img, None, np.random.default_rng(1), AugmentConfig(blur_p=1.0))
    assert box is None and not np.array_equal(out, img)
    with pytest.raises(ConfigError):
        AugmentConfig(hflip=2.0)


# --- folds ----------------------------------------------------------------------------------


def test_make_folds_keeps_patients_together_and_partitions():
    groups = [f"p{i // 3}" for i in range(30)]
    folds = make_folds(30, 5, groups=groups, seed=1)
    assert len(folds) == 5
    tests = np.concatenate([t for _, t in folds])
    assert sorted(tests.tolist()) == list(range(30))
    for train, test in folds:
        assert not {groups[i] for i in train} & {groups[i] for i in test}


def test_make_folds_stratifies_and_validates():
    labels = [0] * 20 + [1] * 10
    for _, test in make_folds(30, 5, labels=labels, seed=0):
        assert sum(labels[i] for i in test) == 2
    with pytest.raises(ConfigError):
        make_folds(3, 5)
    with pytest.raises(ConfigError):
        make_folds(10, 5, groups=["a", "b"] * 5)
    groups = [f"p{i // 2}" for i in range(40)]
    train, val = train_val_split(np.arange(40), 0.25, groups=groups, seed=0)
    assert not {groups[i] for i in train} & {groups[i] for i in val}
    assert len(train) + len(val) == 40


# --- pretrained ----------------------------------------------------------------------------


def _tiny_net():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 2, 1)
    )


def test_load_pretrained_matches_prefixes_and_reports(tmp_path):
    src = _tiny_net()
    state = {f"module.{k}": v for k, v in src.state_dict().items()}
    state["module.2.weight"] = torch.zeros(5, 4, 1, 1)  # wrong shape
    state["module.extra"] = torch.zeros(1)
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    dst = _tiny_net()
    report = load_pretrained(dst, path)
    assert "0.weight" in report.loaded and torch.equal(dst[0].weight, src[0].weight)
    assert any(m.startswith("module.2.weight") for m in report.mismatched)
    assert "module.extra" in report.unexpected and "2.weight" in report.missing
    with pytest.raises(ConfigError, match="strict"):
        load_pretrained(_tiny_net(), path, strict=True)


def test_load_pretrained_errors(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"foo.bar": torch.zeros(3)}, path)
    with pytest.raises(ConfigError, match="no tensor matched"):
        load_pretrained(_tiny_net(), path)
    with pytest.raises(ConfigError, match="no such file"):
        load_pretrained(_tiny_net(), tmp_path / "missing.pth")


# --- registry --------------------------------------------------------------------------------


def test_registry_unknown_name_lists_choices():
    reg: Registry[int] = Registry("encoder")
    reg.register("a", 1)
    with pytest.raises(ConfigError, match="choose one of a"):
        reg.get("b")
    with pytest.raises(ConfigError):
        reg.register("a", 2)


# --- datasets --------------------------------------------------------------------------------


def write_coco(root: Path, n: int = 4, size: int = 64, extra_images=(), extra_anns=()) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        box = [10 + i, 12, 20, 18]
        cv2.imwrite(str(root / f"im{i}.png"), _disc_image(box, size))
        images.append(
            {
                "id": i + 1,
                "file_name": f"im{i}.png",
                "width": size,
                "height": size,
                "patient_id": f"p{i // 2}",
            }
        )
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": box})
    coco = {
        "images": images + list(extra_images),
        "annotations": anns + list(extra_anns),
        "categories": [{"id": 1, "name": "ampulla"}],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(coco))
    return path


def test_validate_reports_each_bad_row(tmp_path):
    write_coco(
        tmp_path,
        4,
        extra_images=[
            {"id": 1, "file_name": "dup.png", "width": 64, "height": 64},
            {"id": 10, "file_name": "missing.png", "width": 64, "height": 64},
            {"id": 11, "file_name": "im0.png", "width": 64, "height": 64},
            {"id": 12, "file_name": "im1.png", "width": 64, "height": 64},
            {"id": 13, "file_name": "im2.png", "width": 64, "height": 64},
            {"id": 14, "file_name": "im3.png", "width": 64, "height": 64},
        ],
        extra_anns=[
            {"id": 20, "image_id": 11, "category_id": 1, "bbox": [50, 50, 30, 30]},
            {"id": 21, "image_id": 12, "category_id": 1, "bbox": [5, 5, 0, 10]},
            {"id": 22, "image_id": 13, "category_id": 7, "bbox": [5, 5, 10, 10]},
            {"id": 23, "image_id": 14, "category_id": 1, "bbox": [5, 5, 10, 10]},
            {"id": 24, "image_id": 14, "category_id": 1, "bbox": [25, 5, 10, 10]},
            {"id": 24, "image_id": 3, "category_id": 1, "bbox": [25, 5, 10, 10]},
            {"id": 25, "image_id": 99, "category_id": 1, "bbox": [25, 5, 10, 10]},
        ],
    )
    messages = [str(p) for p in validate_coco(tmp_path)]
    expected = [
        "duplicate image id",
        "missing file",
        "box outside the image",
        "zero-size box",
        "unknown category_id",
        "several boxes on one image",
        "duplicate annotation id",
        "unknown image_id",
    ]
    for text in expected:
        assert sum(text in m for m in messages) == 1, (text, messages)
    assert len(messages) == len(expected)
    dataset = CocoDataset.load(tmp_path)  # does not crash; keeps the 4 good images
    assert sorted(r.image_id for r in dataset) == [1, 2, 3, 4]
    assert dataset.patient_ids == ["p0", "p0", "p1", "p1"]


def test_prepare_record_maps_box_like_the_app(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    img = np.zeros((60, 80, 3), np.uint8)
    img[:, 10:70] = 90  # black bars left and right
    cv2.rectangle(img, (30, 20), (49, 39), (255, 255, 255), -1)
    cv2.imwrite(str(root / "a.png"), img)
    (root / "annotations.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 80, "height": 60}],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [30, 20, 20, 20]}
                ],
                "categories": [{"id": 1, "name": "polyp"}],
            }
        )
    )
    record = CocoDataset.load(root)[0]
    prepared = prepare_record(record, InputSpec("image", 32, 32))
    assert prepared.pixels.shape == (32, 32, 3)
    back = prepared.transform.to_frame(prepared.box)
    assert iou(back, record.box) > 0.999
    assert box_to_input(record.box, prepared.transform) == prepared.box


# --- export ------------------------------------------------------------------------------------


class _TinyHeatmap(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return torch.sigmoid(self.conv(x))


def test_export_onnx_contract_and_parity(tmp_path):
    import onnx

    spec = InputSpec("image", 32, 32)
    meta = build_metadata(
        task=TASK_DETECTOR,
        name="tiny",
        version="0",
        input_spec=spec,
        outputs={"heatmap": "heatmap"},
        min_peak=0.3,
    )
    wrapper = ContractWrapper(_TinyHeatmap())
    path = export_onnx(
        wrapper, tmp_path / "m.onnx", input_spec=spec, output_names=["heatmap"], metadata=meta
    )
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    info = parse_metadata(
        props, [i.name for i in model.graph.input], [o.name for o in model.graph.output]
    )
    assert info.min_peak == 0.3
    assert check_parity(wrapper, path, n=3) <= 1e-4
    # Dynamic batch: 5 images at once.
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"image": np.zeros((5, 32, 32, 3), np.uint8)})[0]
    assert out.shape == (5, 1, 32, 32)


def test_contract_wrapper_normalises_bgr():
    wrapper = ContractWrapper(torch.nn.Identity())
    x = torch.zeros((1, 2, 2, 3), dtype=torch.uint8)
    x[..., 0] = 255  # pure blue in BGR
    y = wrapper(x)
    assert y.shape == (1, 3, 2, 2)
    assert torch.allclose(y[0, 2], torch.full((2, 2), (1 - 0.406) / 0.225))  # B is channel 2
    assert torch.allclose(y[0, 0], torch.full((2, 2), (0 - 0.485) / 0.229))


def test_check_parity_detects_a_different_model(tmp_path):
    spec = InputSpec("image", 16, 16)
    meta = build_metadata(
        task=TASK_DETECTOR,
        name="tiny",
        version="0",
        input_spec=spec,
        outputs={"heatmap": "heatmap"},
    )
    wrapper = ContractWrapper(_TinyHeatmap())
    path = export_onnx(
        wrapper, tmp_path / "m.onnx", input_spec=spec, output_names=["heatmap"], metadata=meta
    )
    with torch.no_grad():
        wrapper.inner.conv.bias += 1.0
    with pytest.raises(ExportError, match="differs"):
        check_parity(wrapper, path)


def test_soft_mask_round_trip_sanity():
    # The geometry the detector trains on brings the box back (guards the target definition).
    box = (10.0, 14.0, 30.0, 20.0)
    back, peak = box_from_heatmap(soft_mask(box, (64, 64)))
    assert iou(back, box) > 0.95 and peak > 0.99


def test_phantom_still_dataset_loads_with_negatives(tmp_path):
    from app.core.phantom import PhantomConfig
    from app.core.phantom_io import write_still_dataset

    cfg = PhantomConfig(width=160, height=120, absent_fraction=0.5)
    out = write_still_dataset(tmp_path / "ph", 8, seed=3, config=cfg)
    dataset = CocoDataset.load(out)
    assert len(dataset) == 8 and not dataset.problems
    assert any(r.box is None for r in dataset) and any(r.box is not None for r in dataset)
    assert dataset.patient_ids is not None
    prepared = prepare_record(
        next(r for r in dataset if r.box is not None), InputSpec("image", 64, 64)
    )
    assert prepared.box is not None and prepared.pixels.shape == (64, 64, 3)
