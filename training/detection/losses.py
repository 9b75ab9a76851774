"""Heatmap losses against the soft-mask target: BCE (the paper's), Dice, focal, and BCE+Dice."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.common.registry import Registry

LOSSES: Registry = Registry("loss")


@LOSSES.register("bce")
def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel-wise binary cross-entropy with the soft mask as the target (the paper's loss)."""
    return F.binary_cross_entropy_with_logits(logits.float(), target)


@LOSSES.register("dice")
def dice(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss, per image, averaged."""
    prob = torch.sigmoid(logits.float()).flatten(1)
    tgt = target.flatten(1)
    inter = (prob * tgt).sum(1)
    return (1 - (2 * inter + eps) / (prob.sum(1) + tgt.sum(1) + eps)).mean()


@LOSSES.register("focal")
def focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal BCE for soft targets: BCE weighted by |p - t|^gamma (easy pixels count less)."""
    logits = logits.float()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weight = (torch.sigmoid(logits) - target).abs().pow(gamma)
    return (weight * ce).sum() / weight.sum().clamp_min(1e-6)


@LOSSES.register("bce+dice")
def bce_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE plus Dice."""
    return bce(logits, target) + dice(logits, target)


def box_loss(logits: torch.Tensor, target_cxcywh: torch.Tensor) -> torch.Tensor:
    """Baseline loss: L1 on normalised [cx, cy, w, h] plus (1 - GIoU)."""
    pred = torch.sigmoid(logits.float())
    l1 = F.l1_loss(pred, target_cxcywh)
    return l1 + (1 - giou(pred, target_cxcywh)).mean()


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of (N, 4) [cx, cy, w, h] boxes."""
    ax0, ay0 = a[:, 0] - a[:, 2] / 2, a[:, 1] - a[:, 3] / 2
    ax1, ay1 = a[:, 0] + a[:, 2] / 2, a[:, 1] + a[:, 3] / 2
    bx0, by0 = b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2
    bx1, by1 = b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2
    iw = (torch.minimum(ax1, bx1) - torch.maximum(ax0, bx0)).clamp_min(0)
    ih = (torch.minimum(ay1, by1) - torch.maximum(ay0, by0)).clamp_min(0)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    iou = inter / union.clamp_min(1e-9)
    cw = torch.maximum(ax1, bx1) - torch.minimum(ax0, bx0)
    ch = torch.maximum(ay1, by1) - torch.minimum(ay0, by0)
    hull = (cw * ch).clamp_min(1e-9)
    return iou - (hull - union) / hull
