"""Detection networks from registries: heatmap architectures, encoders, the box-regression baseline.

Adding an encoder is one ``ENCODERS.register`` entry; adding an architecture is one
``ARCHITECTURES.register`` entry. All networks take normalised float NCHW RGB (the
``ImageNormalizer`` output) and return *logits*; the sigmoid is applied by the module and by
the exported graph.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from app.core.errors import ConfigError
from training.common.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder: its segmentation-models-pytorch name and a decoder sized for it."""

    smp_name: str
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    note: str = ""


ENCODERS: Registry[EncoderSpec] = Registry("encoder")
ENCODERS.register("vgg16_bn", EncoderSpec("vgg16_bn", note="the paper's VGG encoder (GPU)"))
ENCODERS.register("vgg19_bn", EncoderSpec("vgg19_bn"))
ENCODERS.register("resnet18", EncoderSpec("resnet18", (128, 64, 32, 16, 16), "CPU-friendly"))
ENCODERS.register("resnet34", EncoderSpec("resnet34", (128, 64, 32, 16, 16), "CPU-friendly"))
ENCODERS.register("resnet50", EncoderSpec("resnet50"))
ENCODERS.register("mobilenet_v2", EncoderSpec("mobilenet_v2", (128, 64, 32, 16, 16), "CPU"))
ENCODERS.register("efficientnet-b0", EncoderSpec("efficientnet-b0", (128, 64, 32, 16, 16)))
ENCODERS.register("mobileone_s0", EncoderSpec("mobileone_s0", (128, 64, 32, 16, 16)))


def _smp():
    import segmentation_models_pytorch as smp

    return smp


def _weights(imagenet: bool) -> str | None:
    # "imagenet" makes SMP download the encoder weights (needs internet); --pretrained FILE is
    # the offline route.
    return "imagenet" if imagenet else None


ArchFactory = Callable[[EncoderSpec, Sequence[int] | None, bool], nn.Module]
ARCHITECTURES: Registry[ArchFactory] = Registry("architecture")


@ARCHITECTURES.register("unet")
def _unet(enc: EncoderSpec, decoder_channels: Sequence[int] | None, imagenet: bool) -> nn.Module:
    return _smp().Unet(
        enc.smp_name,
        encoder_weights=_weights(imagenet),
        classes=1,
        decoder_channels=tuple(decoder_channels or enc.decoder_channels),
    )


@ARCHITECTURES.register("unetplusplus")
def _unetpp(enc: EncoderSpec, decoder_channels: Sequence[int] | None, imagenet: bool) -> nn.Module:
    return _smp().UnetPlusPlus(
        enc.smp_name,
        encoder_weights=_weights(imagenet),
        classes=1,
        decoder_channels=tuple(decoder_channels or enc.decoder_channels),
    )


@ARCHITECTURES.register("fpn")
def _fpn(enc: EncoderSpec, decoder_channels: Sequence[int] | None, imagenet: bool) -> nn.Module:
    return _smp().FPN(enc.smp_name, encoder_weights=_weights(imagenet), classes=1)


def create_model(
    arch: str,
    encoder_name: str,
    *,
    decoder_channels: Sequence[int] | None = None,
    imagenet: bool = False,
) -> nn.Module:
    """A heatmap network: (N, 3, H, W) normalised RGB -> (N, 1, H, W) logits.

    Args:
        arch: a name in ``ARCHITECTURES`` (``unet`` is the paper's).
        encoder_name: a name in ``ENCODERS`` (``vgg16_bn`` is the paper's).
        decoder_channels: override the encoder's default decoder widths.
        imagenet: download ImageNet encoder weights (needs internet).

    Raises:
        ConfigError: for an unknown architecture or encoder.
    """
    factory = ARCHITECTURES.get(arch)
    return factory(ENCODERS.get(encoder_name), decoder_channels, imagenet)


class BoxRegressor(nn.Module):
    """The baseline: the same encoder, global pooling and an MLP regressing [cx, cy, w, h].

    Outputs are logits; their sigmoid is the box normalised by the input size.
    """

    def __init__(self, encoder_name: str, imagenet: bool = False) -> None:
        super().__init__()
        spec = ENCODERS.get(encoder_name)
        self.encoder = _smp().encoders.get_encoder(
            spec.smp_name, in_channels=3, depth=5, weights=_weights(imagenet)
        )
        channels = self.encoder.out_channels[-1]
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(256, 4),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 4) logits of normalised [cx, cy, w, h]."""
        return self.head(self.encoder(x)[-1])


#: Model kinds: the paper's soft-mask heatmap, and the box-regression baseline.
KINDS = ("heatmap", "boxreg")


def build_network(
    kind: str, arch: str, encoder: str, *, decoder_channels=None, imagenet: bool = False
) -> nn.Module:
    """The network of a model kind (``heatmap`` or ``boxreg``)."""
    if kind == "heatmap":
        return create_model(arch, encoder, decoder_channels=decoder_channels, imagenet=imagenet)
    if kind == "boxreg":
        return BoxRegressor(encoder, imagenet=imagenet)
    raise ConfigError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
