"""Shared checks for every registered detection network (forward shape, export parity)."""

from __future__ import annotations

import pytest
import torch

from app.core.contract import TASK_DETECTOR, InputSpec, build_metadata
from app.core.errors import ConfigError
from training.common.export import ContractWrapper, check_parity, export_onnx
from training.common.pretrained import load_pretrained
from training.detection.export import HeatmapHead
from training.detection.models import ENCODERS, BoxRegressor, build_network, create_model

ENCODER_CASES = ["resnet18", "mobilenet_v2", "vgg16_bn"]


class TestHeatmapNetworks:
    """One set of checks, many encoders (as SMP's own tests do)."""

    @pytest.mark.parametrize("encoder", ENCODER_CASES)
    def test_forward_shape(self, encoder):
        net = create_model("unet", encoder).eval()
        with torch.no_grad():
            out = net(torch.zeros(2, 3, 64, 64))
        assert out.shape == (2, 1, 64, 64)

    @pytest.mark.parametrize("encoder", ["resnet18"])
    def test_export_parity(self, encoder, tmp_path):
        spec = InputSpec("image", 64, 64)
        wrapper = ContractWrapper(HeatmapHead(create_model("unet", encoder))).eval()
        meta = build_metadata(
            task=TASK_DETECTOR,
            name="t",
            version="0",
            input_spec=spec,
            outputs={"heatmap": "heatmap"},
        )
        path = export_onnx(
            wrapper, tmp_path / "m.onnx", input_spec=spec, output_names=["heatmap"], metadata=meta
        )
        assert check_parity(wrapper, path, n=2) <= 1e-4


def test_box_regressor_shape_and_registry_errors():
    net = BoxRegressor("resnet18").eval()
    with torch.no_grad():
        assert net(torch.zeros(3, 3, 64, 64)).shape == (3, 4)
    with pytest.raises(ConfigError, match="unknown encoder"):
        create_model("unet", "nope")
    with pytest.raises(ConfigError, match="unknown architecture"):
        create_model("segformer9000", "resnet18")
    with pytest.raises(ConfigError, match="model kind"):
        build_network("polygon", "unet", "resnet18")
    assert "vgg16_bn" in ENCODERS.names()


def test_pretrained_encoder_file_loads_into_the_unet(tmp_path):
    import segmentation_models_pytorch as smp

    encoder = smp.encoders.get_encoder("resnet18", weights=None)
    torch.nn.init.constant_(encoder.conv1.weight, 0.125)
    path = tmp_path / "resnet18_encoder.pth"
    torch.save(encoder.state_dict(), path)  # keys like "conv1.weight", as torchvision's
    net = create_model("unet", "resnet18")
    report = load_pretrained(net, path)
    assert dict(report.prefix_map) == {"": "encoder."}
    assert len(report.loaded) == len(encoder.state_dict())
    assert torch.all(net.encoder.conv1.weight == 0.125)
    assert any(k.startswith("decoder.") for k in report.missing)
