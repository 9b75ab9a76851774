"""Cross-validated (or single-split) detection training and evaluation, as the app measures it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from app.core.contract import InputSpec
from app.core.errors import DatasetError
from app.core.geometry import clip_box, summarize
from app.core.inference import postprocess_heatmap
from training.common.augment import AugmentConfig
from training.common.data import CocoDataset, PreparedImage, prepare_record
from training.common.folds import train_val_split
from training.common.pretrained import load_pretrained
from training.common.trainer import make_trainer
from training.detection.calibrate import calibrate_min_peak
from training.detection.module import BoxDataset, DetectionModule, boxes_from_output, predict
from training.detection.report import ImageResult, make_result, write_json

log = logging.getLogger(__name__)
INPUT_NAME = "image"
HEATMAP_OUTPUT = "heatmap"


@dataclass(frozen=True)
class DetectConfig:
    """What to train; the trainer options (epochs, devices, ...) are passed separately."""

    arch: str = "unet"
    encoder: str = "vgg16_bn"
    size: int = 256
    loss: str = "bce"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 16
    workers: int = 0
    val_fraction: float = 0.1
    decoder_channels: tuple[int, ...] | None = None
    imagenet: bool = False
    pretrained: str | None = None
    crop_field: bool = True
    target_fpr: float = 0.05
    target_miss: float = 0.01
    seed: int = 0
    evaluate_only: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @property
    def input_spec(self) -> InputSpec:
        """The exported model's input (square, stretched like the app resizes)."""
        return InputSpec(INPUT_NAME, self.size, self.size, "stretch")


def prepare_all(dataset: CocoDataset, cfg: DetectConfig) -> list[PreparedImage]:
    """Every record cropped and resized once, exactly as the app does it."""
    t0 = time.perf_counter()
    items = [prepare_record(r, cfg.input_spec, crop_field=cfg.crop_field) for r in dataset]
    log.info(
        "prepared %d images at %d px in %.1f s", len(items), cfg.size, time.perf_counter() - t0
    )
    return items


def _loader(items: Sequence[PreparedImage], cfg: DetectConfig, train: bool) -> DataLoader:
    ds = BoxDataset(items, cfg.augment if train else None)
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=train,
        num_workers=cfg.workers,
        drop_last=train and len(ds) > cfg.batch_size,
        persistent_workers=cfg.workers > 0,
    )


def _build_module(kind: str, cfg: DetectConfig, dataset: CocoDataset) -> DetectionModule:
    module = DetectionModule(
        kind=kind,
        arch=cfg.arch,
        encoder=cfg.encoder,
        size=cfg.size,
        loss=cfg.loss,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        decoder_channels=list(cfg.decoder_channels) if cfg.decoder_channels else None,
        imagenet=cfg.imagenet,
        dataset=dataset.describe(),
    )
    if cfg.pretrained:
        load_pretrained(module.net, cfg.pretrained)
    return module


def predict_items(
    module: DetectionModule, items: Sequence[PreparedImage], batch_size: int = 16
) -> list[tuple[tuple | None, float]]:
    """(box in original image pixels or None, peak) per item, via the app's postprocessing."""
    kind = module.hparams.kind
    results = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        out = predict(module, np.stack([it.pixels for it in chunk]), batch_size)
        if kind == "heatmap":
            for it, hm in zip(chunk, out, strict=True):
                det = postprocess_heatmap(hm[0], it.transform, min_peak=0.0)
                results.append((det.box, det.peak))
        else:
            size = chunk[0].transform.input_size
            for it, (box, peak) in zip(chunk, boxes_from_output(kind, out, size), strict=True):
                frame_box = it.transform.to_frame(box)
                rx, ry, rw, rh = it.transform.rect
                clipped = clip_box(
                    (frame_box[0] - rx, frame_box[1] - ry, frame_box[2], frame_box[3]), rw, rh
                )
                results.append(
                    (
                        None
                        if clipped is None
                        else (clipped[0] + rx, clipped[1] + ry, clipped[2], clipped[3]),
                        peak,
                    )
                )
    return results


def _rank_zero() -> bool:
    """True in the process that writes files (rank 0 under DDP, torchrun or SLURM)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def train_one(
    kind: str,
    fold: int,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    items: Sequence[PreparedImage],
    dataset: CocoDataset,
    cfg: DetectConfig,
    trainer_opts: dict[str, Any],
    out_dir: Path,
) -> tuple[Any, DetectionModule | None]:
    """Train one model on ``train_idx`` with early stopping on ``val_idx``.

    Returns:
        (trainer, best module on CPU) — the module is None on non-zero DDP ranks.
    """
    module = _build_module(kind, cfg, dataset)
    train_items = [items[i] for i in train_idx if kind == "heatmap" or items[i].box is not None]
    val_items = [items[i] for i in val_idx]
    trainer = make_trainer(out_dir, monitor="val_iou", mode="max", **trainer_opts)
    log.info(
        "fold %d %s: training on %d images, validating on %d",
        fold,
        kind,
        len(train_items),
        len(val_items),
    )
    t0 = time.perf_counter()
    trainer.fit(module, _loader(train_items, cfg, True), _loader(val_items, cfg, False))
    seconds = time.perf_counter() - t0
    if not trainer.is_global_zero:
        return trainer, None
    best = (
        trainer.checkpoint_callback.best_model_path or trainer.checkpoint_callback.last_model_path
    )
    best_module = DetectionModule.load_from_checkpoint(best, map_location="cpu")
    write_json(
        {
            "fold": fold,
            "kind": kind,
            "train_images": len(train_items),
            "val_images": len(val_items),
            "epochs": trainer.current_epoch,
            "steps": trainer.global_step,
            "train_seconds": seconds,
            "checkpoint": best,
            "best_val_iou": float(trainer.checkpoint_callback.best_model_score or np.nan),
        },
        out_dir / "training.json",
    )
    return trainer, best_module


def run(
    dataset: CocoDataset,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    cfg: DetectConfig,
    trainer_opts: dict[str, Any],
    out_dir: Path,
    kinds: Sequence[str] = ("heatmap",),
) -> tuple[list[ImageResult], bool]:
    """Train and evaluate every model kind on every split.

    Writes ``fold<k>/<kind>/`` (logs, checkpoints, ``training.json``, for the heatmap model
    ``calibration.json``) under ``out_dir``.

    Returns:
        (per-image test results, whether this process is the reporting one (DDP rank 0)).
    """
    items = prepare_all(dataset, cfg)
    groups = dataset.patient_ids
    results: list[ImageResult] = []
    is_zero = True
    for fold, (train_all, test_idx) in enumerate(splits):
        train_idx, val_idx = train_val_split(
            train_all, cfg.val_fraction, groups=groups, seed=cfg.seed + fold
        )
        if _rank_zero():
            write_json(
                {
                    "train": [dataset[i].image_id for i in train_idx],
                    "val": [dataset[i].image_id for i in val_idx],
                    "test": [dataset[i].image_id for i in test_idx],
                },
                out_dir / f"fold{fold}" / "split.json",
            )
        for kind in kinds:
            kind_dir = out_dir / f"fold{fold}" / kind
            best_ckpt = kind_dir / "checkpoints" / "best.ckpt"
            if cfg.evaluate_only:
                # Re-evaluate an earlier run (e.g. one ended by a signal after training).
                if not best_ckpt.is_file():
                    raise DatasetError(f"--evaluate-only: no checkpoint {best_ckpt}")
                if not _rank_zero():
                    is_zero = False
                    continue
                module = DetectionModule.load_from_checkpoint(str(best_ckpt), map_location="cpu")
            else:
                _, module = train_one(
                    kind, fold, train_idx, val_idx, items, dataset, cfg, trainer_opts, kind_dir
                )
            if module is None:
                is_zero = False
                continue
            if kind == "heatmap":
                val_preds = predict_items(module, [items[i] for i in val_idx])
                pos = [
                    p
                    for (b, p), i in zip(val_preds, val_idx, strict=True)
                    if items[i].box is not None and b is not None
                ]
                neg = [
                    p for (_, p), i in zip(val_preds, val_idx, strict=True) if items[i].box is None
                ]
                calibration = calibrate_min_peak(
                    pos, neg, target_fpr=cfg.target_fpr, target_miss=cfg.target_miss
                )
                write_json(calibration, kind_dir / "calibration.json")
                log.info(
                    "fold %d: min_peak %.3f (%s)",
                    fold,
                    calibration["min_peak"],
                    calibration["method"],
                )
            test_items = [items[i] for i in test_idx]
            preds = predict_items(module, test_items)
            fold_results = []
            for i, (box, peak) in zip(test_idx, preds, strict=True):
                rec = dataset[i]
                fold_results.append(
                    make_result(
                        kind,
                        fold,
                        rec.image_id,
                        rec.path.name,
                        rec.width,
                        rec.height,
                        rec.box,
                        box,
                        peak,
                    )
                )
            scored = [r.metrics for r in fold_results if r.metrics is not None]
            if scored:
                write_json(summarize(scored), kind_dir / "metrics.json")
            results += fold_results
    return results, is_zero


def config_dict(cfg: DetectConfig) -> dict:
    """JSON-ready form of the configuration."""
    data = asdict(cfg)
    data["augment"] = asdict(cfg.augment)
    return data


def set_threads(threads: int | None) -> None:
    """Limit torch's CPU threads (shared machines)."""
    if threads:
        torch.set_num_threads(threads)
