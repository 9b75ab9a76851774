"""Class-activation maps: the exported in-graph CAM and a hook-based Grad-CAM for figures.

Two ways to the same kind of picture:

- :func:`probs_and_cam` is plain tensor arithmetic on one forward pass, so it exports to ONNX
  and runs live in the app. For a global-average-pooling + linear head (ResNet, DenseNet,
  MobileNetV3 as built in ``models.py``) it is the exact CAM of Zhou et al. (CVPR 2016): the
  feature maps weighted by the top class's linear weights. For VGG19-bn, whose classifier after
  pooling is Linear-ReLU-Dropout-Linear-ReLU-Dropout-Linear, it is Grad-CAM written in closed
  form: in eval mode that classifier is piecewise linear, so the gradient of the top logit with
  respect to the pooled features is ``W1^T (m1 * (W2^T (m2 * w3_c)))`` with ``m1``, ``m2`` the
  ReLU masks of the forward pass; adaptive average pooling averages each window with weights
  that sum to one, so the spatial mean of the gradient on the feature map is the sum of that
  gradient over the 7x7 cells divided by ``h * w``. This equals the hook-based Grad-CAM.
- :class:`GradCam` registers a forward hook on the model's target layer and a tensor hook on
  its output (no ``grad-cam`` package: it pulls in opencv-python, which breaks PySide6), and
  computes Grad-CAM (Selvaraju et al., ICCV 2017) for any class. For a gap-linear head the
  gradient is ``w_c / (h w)`` at every position, so Grad-CAM equals the exact CAM.

Every map is ReLU'd and divided by its own maximum, so it lies in [0, 1] (all zeros when
nothing is positive).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from training.classification.models import HEAD_GAP_LINEAR, HEAD_RELU_MLP, DifficultyNet

#: Floor of the per-map maximum, so an all-zero map stays zero instead of becoming NaN.
CAM_EPS = 1e-20


def normalise_maps(raw: torch.Tensor) -> torch.Tensor:
    """ReLU then divide each ``(h, w)`` map of an ``(N, h, w)`` stack by its maximum."""
    cam = F.relu(raw)
    peak = cam.flatten(1).amax(dim=1).clamp_min(CAM_EPS)
    return cam / peak[:, None, None]


def _gap_linear_weights(model: DifficultyNet, cls: torch.Tensor) -> torch.Tensor:
    return model.linear.weight[cls]  # (N, K)


def _relu_mlp_weights(
    model: DifficultyNet, features: torch.Tensor, cls: torch.Tensor
) -> torch.Tensor:
    """Grad-CAM channel weights of a VGG classifier, from the forward activations."""
    classifier = model.net.classifier
    fc1, fc2, fc3 = classifier[0], classifier[3], classifier[6]
    pooled = torch.flatten(model.net.avgpool(features), 1)
    h1 = fc1(pooled)
    h2 = fc2(F.relu(h1))
    grad = fc3.weight[cls] * (h2 > 0).to(h2.dtype)  # d logit_c / d h2
    grad = (grad @ fc2.weight) * (h1 > 0).to(h1.dtype)  # d logit_c / d h1
    grad = grad @ fc1.weight  # d logit_c / d pooled, (N, K * ph * pw)
    n, k, h, w = features.shape
    # Spatial mean over the feature map of the back-propagated gradient (see module docstring).
    return grad.reshape(n, k, -1).sum(dim=2) / float(h * w)


def probs_and_cam(model: DifficultyNet, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities ``(N, C)`` and the top class's map ``(N, h, w)`` in [0, 1].

    Args:
        model: a :class:`DifficultyNet` in eval mode.
        x: normalised NCHW RGB float batch.
    """
    features = model.features(x)
    logits = model.head(features)
    probs = torch.softmax(logits, dim=1)
    cls = torch.argmax(logits, dim=1)
    if model.spec.head_kind == HEAD_GAP_LINEAR:
        weights = _gap_linear_weights(model, cls)
    elif model.spec.head_kind == HEAD_RELU_MLP:
        weights = _relu_mlp_weights(model, features, cls)
    else:  # pragma: no cover - the registry only has these two kinds
        raise ValueError(f"no CAM for head kind {model.spec.head_kind!r}")
    raw = torch.einsum("nk,nkhw->nhw", weights, features)
    return probs, normalise_maps(raw)


class CamExportNet(nn.Module):
    """``x -> (probs, cam)``: what the exported classifier graph computes after preprocessing."""

    def __init__(self, model: DifficultyNet):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities ``(N, C)`` and top-class CAM ``(N, h, w)``."""
        return probs_and_cam(self.model, x)


class GradCam:
    """Grad-CAM through hooks on ``model.target_layer``; use as a context manager.

    Example:
        >>> with GradCam(model) as gc:                         # doctest: +SKIP
        ...     probs, maps = gc(x, classes=None)              # top class per image
    """

    def __init__(self, model: DifficultyNet, layer: nn.Module | None = None):
        self.model = model
        self.layer = layer if layer is not None else model.target_layer
        self._activations: torch.Tensor | None = None
        self._gradients: torch.Tensor | None = None
        self._handle = self.layer.register_forward_hook(self._forward_hook)

    def _forward_hook(self, module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        self._activations = output
        if output.requires_grad:
            output.register_hook(self._store_gradient)

    def _store_gradient(self, grad: torch.Tensor) -> None:
        self._gradients = grad

    def __call__(
        self, x: torch.Tensor, classes: Sequence[int] | torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities ``(N, C)`` and Grad-CAM maps ``(N, h, w)`` in [0, 1].

        Args:
            x: normalised NCHW RGB float batch.
            classes: the class to explain per image; None explains the top class.
        """
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                x = x.detach().requires_grad_(True)  # so hooks fire even with frozen weights
                logits = self.model(x)
                if classes is None:
                    target = logits.argmax(dim=1)
                else:
                    target = torch.as_tensor(classes, dtype=torch.long, device=logits.device)
                self.model.zero_grad(set_to_none=True)
                logits.gather(1, target[:, None]).sum().backward()
            if self._activations is None or self._gradients is None:
                raise RuntimeError("Grad-CAM hooks did not fire: is the layer part of the model?")
            acts, grads = self._activations.detach(), self._gradients.detach()
            weights = grads.mean(dim=(2, 3))
            maps = normalise_maps(torch.einsum("nk,nkhw->nhw", weights, acts))
            return torch.softmax(logits.detach(), dim=1), maps
        finally:
            self._activations = self._gradients = None
            self.model.train(was_training)

    def close(self) -> None:
        """Remove the hook (idempotent)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> GradCam:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
