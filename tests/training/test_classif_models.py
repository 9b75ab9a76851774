"""Classifier factory, CAM and Grad-CAM: one set of checks, many architectures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from app.core.errors import ConfigError
from training.classification.cam import GradCam, normalise_maps, probs_and_cam
from training.classification.models import (
    ARCHS,
    HEAD_RELU_MLP,
    DifficultyNet,
    create_model,
    imagenet_weights,
)

LIGHT = ["resnet18", "mobilenet_v3_large"]


def _check_model(model: DifficultyNet, n_classes: int, size: int = 64) -> None:
    model.eval()
    torch.manual_seed(0)
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        logits = model(x)
        # the features/head split is the torchvision network itself
        torch.testing.assert_close(logits, model.net(x), rtol=0, atol=1e-5)
        probs, cam = probs_and_cam(model, x)
    assert logits.shape == (3, n_classes)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(3))
    assert cam.ndim == 3 and cam.shape[0] == 3
    assert float(cam.min()) >= 0.0 and float(cam.max()) <= 1.0 + 1e-6
    with GradCam(model) as gradcam:
        probs2, maps = gradcam(x)
    torch.testing.assert_close(probs2, probs)
    # for a GAP+linear head Grad-CAM is the exact CAM; for VGG the closed form equals it
    torch.testing.assert_close(maps, cam, rtol=0, atol=1e-4)


@pytest.mark.parametrize("arch", LIGHT)
@pytest.mark.parametrize("n_classes", [2, 4])
def test_light_models(arch, n_classes):
    _check_model(create_model(arch, n_classes), n_classes)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["vgg19_bn", "resnet50", "densenet161"])
def test_paper_models(arch):
    _check_model(create_model(arch, 2), 2)


class MiniVgg(nn.Module):
    """VGG's layout (features, 7x7 adaptive pool, Linear-ReLU-Dropout x2 - Linear), tiny."""

    def __init__(self, n_classes: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 6, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(6 * 49, 32),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(32, 16),
            nn.ReLU(),
            nn.Dropout(),
            nn.Linear(16, n_classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


@pytest.mark.parametrize("size", [24, 40, 64])  # feature maps 6x6 (upsampled), 10x10, 16x16
def test_vgg_closed_form_grad_cam_equals_hooks(size):
    torch.manual_seed(1)
    model = DifficultyNet("vgg19_bn", MiniVgg(3), 3)
    assert model.spec.head_kind == HEAD_RELU_MLP
    _check_model(model, 3, size)


def test_normalise_maps():
    raw = torch.tensor([[[-1.0, 2.0], [4.0, 0.0]], [[-1.0, -2.0], [-3.0, -4.0]]])
    out = normalise_maps(raw)
    torch.testing.assert_close(out[0], torch.tensor([[0.0, 0.5], [1.0, 0.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))  # nothing positive: zeros, not NaN


def test_registry():
    assert ARCHS.names()[:3] == ["vgg19_bn", "resnet50", "densenet161"]
    assert {"resnet18", "mobilenet_v3_large"} <= set(ARCHS.names())
    assert all(ARCHS.get(a).paper for a in ["vgg19_bn", "resnet50", "densenet161"])
    with pytest.raises(ConfigError, match="unknown classifier architecture 'alexnet'"):
        create_model("alexnet", 2)
    with pytest.raises(ConfigError, match="n_classes"):
        create_model("resnet18", 1)


def test_imagenet_weights_are_resolved_without_download():
    # --imagenet uses torchvision's default ImageNet weights; only the enum is resolved here
    weights = imagenet_weights("resnet50")
    assert "IMAGENET1K" in str(weights) and weights.url.startswith("https://")
    with pytest.raises(ConfigError, match="not both"):
        create_model("resnet18", 2, imagenet=True, pretrained="x.pth")


def test_pretrained_torchvision_state_dict(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(3)
    source = resnet18(num_classes=1000)
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(source.state_dict(), path)
    model = create_model("resnet18", 2, pretrained=path)
    torch.testing.assert_close(model.net.conv1.weight, source.conv1.weight)
    torch.testing.assert_close(
        model.net.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var
    )
    assert model.net.fc.weight.shape == (2, 512)  # the 1000-class head is skipped


def test_pretrained_own_checkpoint_style(tmp_path):
    torch.manual_seed(4)
    trained = create_model("mobilenet_v3_large", 4)
    path = tmp_path / "own.pth"
    torch.save({"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()}}, path)
    model = create_model("mobilenet_v3_large", 4, pretrained=path)
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_pretrained_bad_file(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a state dict")
    with pytest.raises(ConfigError, match="--pretrained"):
        create_model("resnet18", 2, pretrained=path)


def _export_and_check(model: DifficultyNet, tmp_path, size: int) -> None:
    import onnxruntime as ort

    from app.core.contract import InputSpec
    from training.classification.cam import CamExportNet
    from training.common.export import ContractWrapper, check_parity, export_onnx

    wrapper = ContractWrapper(CamExportNet(model.eval())).eval()
    path = export_onnx(
        wrapper,
        tmp_path / "m.onnx",
        input_spec=InputSpec("image", size, size),
        output_names=["probs", "cam"],
        metadata={"k": "v"},
    )
    assert check_parity(wrapper, path, n=3, atol=1e-4) <= 1e-4  # probs and cam
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).integers(0, 256, (5, size, size, 3), dtype=np.uint8)
    probs, cam = session.run(None, {"image": batch})  # dynamic batch
    assert probs.shape == (5, model.n_classes) and cam.shape[0] == 5
    x = wrapper.normalize(torch.from_numpy(batch))
    with GradCam(model) as gradcam:
        _, maps = gradcam(x)
    np.testing.assert_allclose(cam, maps.numpy(), atol=1e-4)


def test_vgg_closed_form_cam_exports_to_onnx(tmp_path):
    torch.manual_seed(2)
    _export_and_check(DifficultyNet("vgg19_bn", MiniVgg(4), 4), tmp_path, 40)


@pytest.mark.slow
def test_mobilenet_cam_exports_to_onnx(tmp_path):
    torch.manual_seed(2)
    _export_and_check(create_model("mobilenet_v3_large", 4), tmp_path, 64)
