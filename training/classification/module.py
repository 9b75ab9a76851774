"""The difficulty classifier's LightningModule: uint8 batches in, class-weighted cross-entropy."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from app.core.errors import ConfigError
from training.classification.metrics import classification_metrics
from training.classification.models import DifficultyNet, create_model
from training.common.export import ImageNormalizer

log = logging.getLogger(__name__)

#: ``hparams["task"]`` of every classifier checkpoint; ``ercp-train export`` dispatches on it.
TASK = "classify"
#: ``--monitor`` choice -> logged validation metric.
MONITORS = {"f1": "val_macro_f1", "acc": "val_acc"}


def class_weights(labels: Sequence[int], n_classes: int) -> list[float]:
    """Inverse-frequency weights ``n / (C * count_c)`` (1 for a perfectly balanced set).

    Raises:
        ConfigError: if a class has no training sample (it cannot be learnt, or weighted).
    """
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=n_classes)
    if (counts == 0).any():
        missing = [int(c) for c in np.flatnonzero(counts == 0)]
        raise ConfigError(
            f"class(es) {missing} have no training sample; use fewer folds or more data"
        )
    return (counts.sum() / (n_classes * counts)).astype(float).tolist()


class DifficultyModule(L.LightningModule):
    """Trains a :class:`DifficultyNet` on uint8 NHWC BGR batches.

    The batch goes through the same ``ImageNormalizer`` as the exported ONNX graph, so training
    and the app see identical preprocessing.

    Args:
        arch: architecture name (``models.ARCHS``).
        classes: class names in output order.
        label_set: ``"binary"`` or ``"four"``.
        input_size: ``(height, width)`` of the model input.
        region: ``"field"`` or ``{"box_margin": m}`` (``ercp.region``).
        loss_weights: per-class cross-entropy weights, or None for plain cross-entropy.
        lr: AdamW learning rate; cosine-annealed over ``max_epochs``.
        weight_decay: AdamW weight decay.
        max_epochs: for the learning-rate schedule.
        imagenet: start from torchvision ImageNet weights.
        pretrained: start from a state-dict file.
        extra: anything else worth keeping in the checkpoint (data provenance, command).
        task: always :data:`TASK`; stored so that ``ercp-train export`` can dispatch.
    """

    def __init__(
        self,
        arch: str,
        classes: Sequence[str],
        label_set: str,
        input_size: tuple[int, int],
        region: str | dict[str, float] = "field",
        loss_weights: Sequence[float] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        max_epochs: int = 30,
        imagenet: bool = False,
        pretrained: str | None = None,
        extra: dict[str, Any] | None = None,
        task: str = TASK,
    ):
        super().__init__()
        if task != TASK:
            raise ConfigError(f"DifficultyModule task must be {TASK!r}, got {task!r}")
        self.save_hyperparameters()
        self.model: DifficultyNet = create_model(
            arch, len(classes), imagenet=imagenet, pretrained=pretrained
        )
        self.normalize = ImageNormalizer()
        weights = torch.tensor(loss_weights, dtype=torch.float32) if loss_weights else None
        self.register_buffer("loss_weights", weights, persistent=False)
        self._val_probs: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names in output order."""
        return tuple(self.hparams["classes"])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, C)`` of a uint8 ``(N, H, W, 3)`` BGR batch."""
        return self.model(self.normalize(images))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        """Weighted cross-entropy on one batch."""
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, weight=self.loss_weights)
        acc = (logits.argmax(dim=1) == labels).float().mean()
        self.log("train_loss", loss, prog_bar=True, batch_size=len(labels))
        self.log("train_acc", acc, batch_size=len(labels))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Collect probabilities for the epoch's macro-F1 and accuracy."""
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, weight=self.loss_weights)
        self.log("val_loss", loss, batch_size=len(labels), sync_dist=True)
        self._val_probs.append(torch.softmax(logits.float(), dim=1).detach().cpu())
        self._val_labels.append(labels.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        """Log ``val_acc`` and ``val_macro_f1`` (the early-stopping monitors)."""
        if not self._val_probs:
            return
        probs = torch.cat(self._val_probs).numpy()
        labels = torch.cat(self._val_labels).numpy()
        self._val_probs.clear()
        self._val_labels.clear()
        m = classification_metrics(labels, probs, self.classes)
        # Under DDP each rank sees a shard; the mean of the shards' figures is close enough
        # for early stopping, and the fold's test figures are computed on one process.
        self.log("val_acc", m["accuracy"], prog_bar=True, sync_dist=True)
        self.log("val_macro_f1", m["macro_f1"], prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        """AdamW with cosine annealing over ``max_epochs``."""
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(1, int(self.hparams["max_epochs"]))
        )
        return {"optimizer": opt, "lr_scheduler": sched}


def load_checkpoint(path: str | Path) -> DifficultyModule:
    """A trained module from a checkpoint, in eval mode on the CPU.

    The initial-weight sources (ImageNet, ``--pretrained``) are not re-read: the checkpoint
    holds all the weights.

    Raises:
        ConfigError: if the file is not a difficulty-classifier checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path}: no such file")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    hparams = dict(ckpt.get("hyper_parameters") or {})
    if hparams.get("task") != TASK:
        raise ConfigError(
            f"checkpoint {path}: expected a difficulty classifier (hparams task "
            f"{TASK!r}), found {hparams.get('task')!r}"
        )
    hparams.update(imagenet=False, pretrained=None)
    module = DifficultyModule(**hparams)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()


def predict_probs(module: DifficultyModule, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities ``(N, C)`` of uint8 ``(N, H, W, 3)`` BGR inputs."""
    module.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(pixels), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(pixels[start : start + batch_size]))
            out.append(torch.softmax(module(batch.to(module.device)).float(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(module.classes)), np.float32)
