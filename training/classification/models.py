"""Difficulty-classifier architectures from one registry: torchvision backbones with a C-class head.

Every model is a :class:`DifficultyNet`: the torchvision network (so torchvision-format state
dicts load unchanged) plus a split into ``features`` (the last convolutional map, the CAM
target) and ``head`` (pooling and classifier). Two head kinds exist:

- ``"gap-linear"`` (ResNet, DenseNet, MobileNetV3): global average pooling then one linear
  layer, so the class-activation map of Zhou et al. (features weighted by the class's linear
  weights) is exact: the logit is the spatial mean of the CAM plus the bias. MobileNetV3's
  stock head (Linear-Hardswish-Dropout-Linear after pooling) is *not* of this kind, so it is
  replaced by Dropout + one Linear on the 960 pooled features.
- ``"relu-mlp"`` (VGG19-bn): adaptive pooling to 7x7 then Linear-ReLU-Dropout-Linear-ReLU-
  Dropout-Linear. There is no exact CAM, but the classifier is piecewise linear, so Grad-CAM's
  gradient can be written in closed form from the forward pass (see ``cam.py``).

Adding an architecture means adding one :class:`ArchSpec` to :data:`ARCHS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from app.core.errors import ConfigError
from training.common.registry import Registry

log = logging.getLogger(__name__)

HEAD_GAP_LINEAR = "gap-linear"
HEAD_RELU_MLP = "relu-mlp"


@dataclass(frozen=True)
class ArchSpec:
    """How to build, split and re-head one torchvision architecture.

    Attributes:
        name: torchvision model name.
        features: ``(net, x) -> (N, K, h, w)`` last convolutional feature map.
        head: ``(net, features) -> logits``; ``head(features(x)) == net(x)``.
        replace_head: ``(net, n_classes) -> None``, swaps the ImageNet classifier in place.
        linear: ``net -> nn.Linear``, the last linear layer (the CAM weights for gap-linear).
        target_layer: ``net -> nn.Module`` whose output is hooked for Grad-CAM.
        head_kind: :data:`HEAD_GAP_LINEAR` or :data:`HEAD_RELU_MLP`.
        paper: one of the paper's three models (otherwise a light model for the CPU).
    """

    name: str
    features: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    head: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    replace_head: Callable[[nn.Module, int], None]
    linear: Callable[[nn.Module], nn.Linear]
    target_layer: Callable[[nn.Module], nn.Module]
    head_kind: str
    paper: bool


def _resnet_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    return net.layer4(net.layer3(net.layer2(net.layer1(x))))


def _resnet_head(net: nn.Module, f: torch.Tensor) -> torch.Tensor:
    return net.fc(torch.flatten(net.avgpool(f), 1))


def _resnet_replace(net: nn.Module, n: int) -> None:
    net.fc = nn.Linear(net.fc.in_features, n)


def _densenet_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # ``features`` ends with the ReLU appended by _densenet_replace (torchvision's forward
    # applies it functionally), so this is exactly what the pooling sees.
    return net.features(x)


def _densenet_head(net: nn.Module, f: torch.Tensor) -> torch.Tensor:
    return net.classifier(torch.flatten(F.adaptive_avg_pool2d(f, (1, 1)), 1))


def _densenet_replace(net: nn.Module, n: int) -> None:
    net.classifier = nn.Linear(net.classifier.in_features, n)
    # torchvision's forward applies F.relu after ``features``; a parameter-free ReLU appended
    # here changes no output (ReLU is idempotent) and no state-dict key, but gives Grad-CAM a
    # module whose output is exactly what the pooling sees, so it matches the exact CAM.
    net.features.add_module("relu5", nn.ReLU())


def _mobilenet_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return net.features(x)


def _pooled_classifier_head(net: nn.Module, f: torch.Tensor) -> torch.Tensor:
    return net.classifier(torch.flatten(net.avgpool(f), 1))


def _mobilenet_replace(net: nn.Module, n: int) -> None:
    pooled = net.classifier[0].in_features
    net.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(pooled, n))


def _vgg_replace(net: nn.Module, n: int) -> None:
    net.classifier[6] = nn.Linear(net.classifier[6].in_features, n)


#: architecture name -> spec; the paper's three models first, then the light CPU models.
ARCHS: Registry[ArchSpec] = Registry("classifier architecture")
for _spec in (
    ArchSpec(
        "vgg19_bn",
        _mobilenet_features,
        _pooled_classifier_head,
        _vgg_replace,
        lambda n: n.classifier[6],
        lambda n: n.features,
        HEAD_RELU_MLP,
        True,
    ),
    ArchSpec(
        "resnet50",
        _resnet_features,
        _resnet_head,
        _resnet_replace,
        lambda n: n.fc,
        lambda n: n.layer4,
        HEAD_GAP_LINEAR,
        True,
    ),
    ArchSpec(
        "densenet161",
        _densenet_features,
        _densenet_head,
        _densenet_replace,
        lambda n: n.classifier,
        lambda n: n.features.relu5,
        HEAD_GAP_LINEAR,
        True,
    ),
    ArchSpec(
        "resnet18",
        _resnet_features,
        _resnet_head,
        _resnet_replace,
        lambda n: n.fc,
        lambda n: n.layer4,
        HEAD_GAP_LINEAR,
        False,
    ),
    ArchSpec(
        "mobilenet_v3_large",
        _mobilenet_features,
        _pooled_classifier_head,
        _mobilenet_replace,
        lambda n: n.classifier[1],
        lambda n: n.features,
        HEAD_GAP_LINEAR,
        False,
    ),

    # The shipped default: ~1.5 M parameters, so the ONNX file stays well under 15 MB.
    ArchSpec(
        "mobilenet_v3_small",
        _mobilenet_features,
        _pooled_classifier_head,
        _mobilenet_replace,
        lambda n: n.classifier[1],
        lambda n: n.features,
        HEAD_GAP_LINEAR,
        False,
    ),
):
    ARCHS.register(_spec.name, _spec)


class DifficultyNet(nn.Module):
    """A registered backbone with a C-class head, split into ``features`` and ``head``.

    The only registered submodule is ``net`` (the torchvision model), so the state dict has
    torchvision's keys under ``net.``.
    """

    def __init__(self, arch: str, net: nn.Module, n_classes: int):
        super().__init__()
        self.arch = arch
        self.spec = ARCHS.get(arch)
        self.n_classes = n_classes
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional feature map ``(N, K, h, w)`` of normalised RGB input."""
        return self.spec.features(self.net, x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, C)`` from the feature map."""
        return self.spec.head(self.net, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, C)`` of a normalised NCHW RGB float batch."""
        return self.head(self.features(x))

    @property
    def linear(self) -> nn.Linear:
        """The last linear layer (its rows are the CAM weights for gap-linear heads)."""
        return self.spec.linear(self.net)

    @property
    def target_layer(self) -> nn.Module:
        """The module whose output Grad-CAM hooks."""
        return self.spec.target_layer(self.net)


def imagenet_weights(arch: str):
    """The default torchvision ImageNet weights enum of ``arch`` (downloading happens on use)."""
    from torchvision.models import get_model_weights

    return get_model_weights(arch).DEFAULT


def create_model(
    arch: str,
    n_classes: int,
    *,
    imagenet: bool = False,
    pretrained: str | Path | None = None,
) -> DifficultyNet:
    """Build a difficulty classifier from the registry.

    Args:
        arch: a key of :data:`ARCHS`.
        n_classes: number of output classes (2 or 4).
        imagenet: start from torchvision's ImageNet weights (needs them downloaded or cached).
        pretrained: a state-dict file (torchvision keys, or ``net.``-prefixed, or a Lightning
            checkpoint) to start from; tensors whose shape does not fit (the ImageNet head) are
            skipped and logged.

    Raises:
        ConfigError: unknown architecture, fewer than 2 classes, or both weight sources given.
    """
    from torchvision.models import get_model

    spec = ARCHS.get(arch)
    if n_classes < 2:
        raise ConfigError(f"n_classes must be >= 2, got {n_classes}")
    if imagenet and pretrained:
        raise ConfigError("give either --imagenet or --pretrained FILE, not both")
    net = get_model(arch, weights=imagenet_weights(arch) if imagenet else None)
    spec.replace_head(net, n_classes)
    model = DifficultyNet(arch, net, n_classes)
    if pretrained:
        from training.common.pretrained import load_pretrained

        # Into the wrapper (keys ``net.*``), so that torchvision files (``conv1.weight``),
        # our own state dicts and Lightning checkpoints (``model.net.*``) all match by prefix.
        load_pretrained(model, pretrained)
    return model
