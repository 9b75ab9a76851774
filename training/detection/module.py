"""The Lightning module and dataset of detection training (heatmap model and baseline)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset

from app.core.geometry import Box, box_from_heatmap, evaluate_box, soft_mask
from training.common.augment import AugmentConfig, augment
from training.common.data import PreparedImage
from training.common.export import ImageNormalizer
from training.detection.losses import LOSSES, box_loss
from training.detection.models import build_network

log = logging.getLogger(__name__)


class BoxDataset(Dataset):
    """Prepared (cropped, resized) images with their soft-mask target and box.

    Each item is a dict: ``image`` uint8 (H, W, 3) BGR, ``mask`` float (1, H, W) soft mask (zeros
    without a box), ``box`` float (4,) normalised [cx, cy, w, h] (zeros without a box) and
    ``has_box`` bool. With ``augment_cfg`` every access draws a new random augmentation, using
    torch's (seeded) generator so runs are reproducible.
    """

    def __init__(
        self, items: Sequence[PreparedImage], augment_cfg: AugmentConfig | None = None
    ) -> None:
        self.items = list(items)
        self.augment_cfg = augment_cfg

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        image, box = item.pixels, item.box
        if self.augment_cfg is not None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            image, box = augment(image, box, np.random.default_rng(seed), self.augment_cfg)
        height, width = image.shape[:2]
        if box is None:
            mask = np.zeros((1, height, width), np.float32)
            norm = np.zeros(4, np.float32)
        else:
            mask = soft_mask(box, (height, width))[None]
            x, y, w, h = box
            norm = np.array(
                [(x + w / 2) / width, (y + h / 2) / height, w / width, h / height], np.float32
            )
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)),
            "mask": torch.from_numpy(mask),
            "box": torch.from_numpy(norm),
            "has_box": torch.tensor(box is not None),
        }


def boxes_from_output(
    kind: str, output: np.ndarray, size: tuple[int, int]
) -> list[tuple[Box | None, float]]:
    """Per image (box in model-input pixels or None, peak) from a batch of model outputs.

    Heatmaps (N, 1, h, w) go through ``geometry.box_from_heatmap`` (as in the app), scaled from
    heatmap to input pixels; baseline outputs (N, 4) are normalised [cx, cy, w, h] with peak 1.
    """
    width, height = size
    results: list[tuple[Box | None, float]] = []
    for out in output:
        if kind == "heatmap":
            hm = out[0]
            box, peak = box_from_heatmap(hm)
            if box is not None:
                kx, ky = width / hm.shape[1], height / hm.shape[0]
                box = (box[0] * kx, box[1] * ky, box[2] * kx, box[3] * ky)
            results.append((box, peak))
        else:
            cx, cy, w, h = (float(v) for v in out)
            w, h = max(w, 1e-4) * width, max(h, 1e-4) * height
            results.append(((cx * width - w / 2, cy * height - h / 2, w, h), 1.0))
    return results


class DetectionModule(L.LightningModule):
    """Trains one detector: the soft-mask heatmap model or the box-regression baseline.

    Input batches are uint8 NHWC BGR, normalised by the same ``ImageNormalizer`` the exported
    graph contains. Validation IoU is computed through ``box_from_heatmap``, as the app does,
    and logged as ``val_iou`` (the early-stopping monitor).

    Args:
        kind: ``"heatmap"`` or ``"boxreg"``.
        arch: heatmap architecture (registry name).
        encoder: encoder (registry name).
        size: model input size (square), pixels.
        loss: heatmap loss (``bce`` is the paper's; ``dice``, ``focal``, ``bce+dice``).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        decoder_channels: override the encoder's default decoder widths.
        imagenet: download ImageNet encoder weights at construction (needs internet).
        dataset: provenance of the training data (written into the exported model).
        task: the exporter registry key (always ``"detect"``).
    """

    def __init__(
        self,
        *,
        kind: str = "heatmap",
        arch: str = "unet",
        encoder: str = "resnet18",
        size: int = 256,
        loss: str = "bce",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        decoder_channels: Sequence[int] | None = None,
        imagenet: bool = False,
        dataset: dict | None = None,
        task: str = "detect",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.normalize = ImageNormalizer()
        self.net = build_network(
            kind,
            arch,
            encoder,
            decoder_channels=list(decoder_channels) if decoder_channels else None,
            imagenet=imagenet,
        )
        self.loss_fn = LOSSES.get(loss) if kind == "heatmap" else None
        self._val_sums = torch.zeros(3, dtype=torch.float64)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) BGR -> heatmap probabilities (N, 1, H, W) or boxes (N, 4)."""
        return torch.sigmoid(self.net(self.normalize(images)))

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(self.normalize(batch["image"]))
        if self.hparams.kind == "heatmap":
            return self.loss_fn(logits, batch["mask"]), logits
        has = batch["has_box"]
        if not bool(has.any()):
            return logits.sum() * 0.0, logits
        return box_loss(logits[has], batch["box"][has]), logits

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One optimisation step."""
        loss, _ = self._loss(batch)
        self.log(
            "train_loss",
            loss,
            prog_bar=True,
            on_step=True,
            on_epoch=True,
            batch_size=len(batch["image"]),
            sync_dist=True,
        )
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Loss and IoU (through box_from_heatmap) on the validation images with a box."""
        loss, logits = self._loss(batch)
        n = len(batch["image"])
        self.log("val_loss", loss, prog_bar=False, on_epoch=True, batch_size=n, sync_dist=True)
        output = torch.sigmoid(logits.float()).detach().cpu().numpy()
        size = int(batch["image"].shape[2]), int(batch["image"].shape[1])
        preds = boxes_from_output(self.hparams.kind, output, size)
        ious, hits = [], []
        for (box, _), norm, has in zip(
            preds, batch["box"].cpu().numpy(), batch["has_box"].cpu().numpy(), strict=True
        ):
            if not has:
                continue
            gt = (
                (norm[0] - norm[2] / 2) * size[0],
                (norm[1] - norm[3] / 2) * size[1],
                norm[2] * size[0],
                norm[3] * size[1],
            )
            m = evaluate_box(box, gt, size[0], size[1])
            ious.append(m.iou)
            hits.append(float(m.iou > 0.5))
        self._val_sums += torch.tensor([sum(ious), sum(hits), len(ious)], dtype=torch.float64)

    def on_validation_epoch_start(self) -> None:
        """Reset the IoU accumulators."""
        self._val_sums = torch.zeros(3, dtype=torch.float64)

    def on_validation_epoch_end(self) -> None:
        """Log ``val_iou`` and ``val_success_0.5`` over all validation images with a box.

        The sums are reduced across DDP processes here, once per epoch, so every rank takes
        part in the same collective even when one rank's batches had no box.
        """
        sums = self._val_sums.to(self.device, torch.float32)
        if self.trainer.world_size > 1:
            sums = self.trainer.strategy.reduce(sums, reduce_op="sum")
        count = float(sums[2])
        iou = float(sums[0]) / count if count else 0.0
        success = float(sums[1]) / count if count else 0.0
        self.log("val_iou", iou, prog_bar=True)
        self.log("val_success_0.5", success)

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW with a short linear warm-up and a cosine decay over the planned steps."""
        opt = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(max(total // 20, 1), 200)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(total - warmup, 1)
            return float(0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def predict(module: DetectionModule, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Model outputs (heatmap probabilities or normalised boxes) for uint8 NHWC images."""
    module.eval()
    outs = []
    device = next(module.parameters()).device
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
        outs.append(module(batch.to(device)).float().cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0,))
