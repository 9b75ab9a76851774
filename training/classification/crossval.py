"""Patient-grouped, stratified k-fold cross-validation of the difficulty classifier, with report."""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from app.core.contract import InputSpec
from app.core.errors import ConfigError
from training.classification import report as rep
from training.classification.data import (
    CLASSIFY_AUGMENT,
    DifficultyData,
    PixelDataset,
    check_region,
    load_difficulty_data,
    prepare_all,
)
from training.classification.metrics import classification_metrics, summarize_folds
from training.classification.module import (
    MONITORS,
    DifficultyModule,
    class_weights,
    load_checkpoint,
    predict_probs,
)
from training.common.folds import make_folds, train_val_split
from training.common.trainer import make_trainer

log = logging.getLogger(__name__)

#: ``--balance`` choices: what counters class imbalance during training.
BALANCE_MODES = ("loss", "sampler", "both", "none")
INPUT_NAME = "image"


@dataclass(frozen=True)
class CvConfig:
    """Everything a ``classify`` run depends on (saved in report.json).

    Attributes:
        data: dataset folder (COCO JSON, images, labels.csv).
        out: run folder.
        arch: architecture (``models.ARCHS``).
        task: ``"binary"`` or ``"four"``.
        folds: number of CV folds.
        size: square model input size (pixels).
        region: ``"field"`` or ``"box"``.
        box_margin: margin of a box crop, as a multiple of the box size on each side.
        balance: one of :data:`BALANCE_MODES`.
        monitor: ``"f1"`` (validation macro-F1) or ``"acc"``.
        val_fraction: part of each fold's training patients held out for early stopping.
        batch_size, lr, weight_decay: optimisation.
        seed: folds, splits, initialisation and augmentation.
        imagenet, pretrained: initial weights.
        workers: dataloader workers.
        augment: augment training images every iteration.
        trainer: keyword arguments of ``make_trainer`` (epochs, patience, devices, ...).
        only_folds: run only these fold numbers (1-based); all when empty.
        command: the command line, for the report.
    """

    data: Path
    out: Path
    arch: str = "resnet50"
    task: str = "binary"
    folds: int = 5
    size: int = 224
    region: str = "field"
    box_margin: float = 0.5
    balance: str = "loss"
    monitor: str = "f1"
    val_fraction: float = 0.15
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    imagenet: bool = False
    pretrained: Path | None = None
    workers: int = 0
    augment: bool = True
    trainer: dict[str, Any] = field(default_factory=dict)
    only_folds: tuple[int, ...] = ()
    command: str = ""

    def __post_init__(self) -> None:
        if self.balance not in BALANCE_MODES:
            raise ConfigError(f"--balance must be one of {BALANCE_MODES}, got {self.balance!r}")
        if self.monitor not in MONITORS:
            raise ConfigError(f"--monitor must be one of {sorted(MONITORS)}, got {self.monitor!r}")
        if self.size < 32:
            raise ConfigError(f"--size must be at least 32 pixels, got {self.size}")
        check_region(self.region, self.box_margin)

    @property
    def ercp_region(self) -> str | dict[str, float]:
        """The ``ercp.region`` metadata value."""
        return check_region(self.region, self.box_margin)

    @property
    def name(self) -> str:
        """Short run name for tables, e.g. ``resnet18 160px binary, balance loss``."""
        return f"{self.arch} {self.size}px {self.task}, balance {self.balance}"


def _loader(
    dataset: PixelDataset, cfg: CvConfig, *, train: bool, sample_weights: np.ndarray | None = None
) -> DataLoader:
    sampler = None
    if sample_weights is not None:
        generator = torch.Generator().manual_seed(cfg.seed)
        sampler = WeightedRandomSampler(
            torch.as_tensor(sample_weights, dtype=torch.double),
            num_samples=len(dataset),
            replacement=True,
            generator=generator,
        )
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=False,
        persistent_workers=cfg.workers > 0,
    )


def train_fold(
    cfg: CvConfig,
    data: DifficultyData,
    pixels: np.ndarray,
    train_idx: np.ndarray,
    fold_dir: Path,
) -> tuple[DifficultyModule, Path]:
    """Train one fold (early stopping on a patient-grouped validation split of ``train_idx``).

    Returns:
        The best module (by the monitored validation metric) and its checkpoint path.
    """
    labels = data.labels
    fit_idx, val_idx = train_val_split(
        train_idx, cfg.val_fraction, groups=data.patients, labels=labels, seed=cfg.seed
    )
    n_classes = len(data.classes)
    weights = class_weights(labels[fit_idx], n_classes)
    use_loss = cfg.balance in ("loss", "both")
    use_sampler = cfg.balance in ("sampler", "both")
    module = DifficultyModule(
        cfg.arch,
        data.classes,
        data.task,
        (cfg.size, cfg.size),
        cfg.ercp_region,
        loss_weights=weights if use_loss else None,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        max_epochs=int(cfg.trainer.get("max_epochs", 30)),
        imagenet=cfg.imagenet,
        pretrained=str(cfg.pretrained) if cfg.pretrained else None,
        extra={
            "trained_on": data.describe(),
            "command": cfg.command,
            "fold_dir": str(fold_dir),
            "balance": cfg.balance,
            "monitor": cfg.monitor,
        },
    )
    sample_weights = None
    if use_sampler:
        sample_weights = np.asarray(weights)[labels[fit_idx]]
    train_set = PixelDataset(
        pixels, labels, fit_idx, CLASSIFY_AUGMENT if cfg.augment else None, seed=cfg.seed
    )
    val_set = PixelDataset(pixels, labels, val_idx)
    trainer = make_trainer(fold_dir, monitor=MONITORS[cfg.monitor], mode="max", **cfg.trainer)
    log.info(
        "fold %s: %d train, %d validation images; class weights %s (%s)",
        fold_dir.name,
        len(fit_idx),
        len(val_idx),
        [round(w, 3) for w in weights],
        cfg.balance,
    )
    trainer.fit(
        module,
        _loader(train_set, cfg, train=True, sample_weights=sample_weights),
        _loader(val_set, cfg, train=False),
    )
    callback = trainer.checkpoint_callback
    best = callback.best_model_path or callback.last_model_path
    if not best:
        raise ConfigError(f"fold {fold_dir.name}: no checkpoint was written")
    return load_checkpoint(best), Path(best)


def _write_predictions(
    path: Path, data: DifficultyData, idx: np.ndarray, probs: np.ndarray
) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "patient_id", "label", "pred", *[f"p_{c}" for c in data.classes]])
        for i, p in zip(idx, probs, strict=True):
            s = data.samples[int(i)]
            writer.writerow(
                [
                    s.image,
                    s.patient_id,
                    data.classes[s.label],
                    data.classes[int(np.argmax(p))],
                    *[f"{v:.6f}" for v in p],
                ]
            )


def run_cv(cfg: CvConfig) -> dict[str, Any]:
    """Cross-validate, write the run folder and return report.json's content.

    The run folder gets ``fold_K/`` (Lightning logs, checkpoints, ``predictions.csv``),
    ``report.json``, ``report.md``, ``roc.png`` and ``confusion.png``.
    """
    started = time.perf_counter()
    data = load_difficulty_data(cfg.data, cfg.task)
    spec = InputSpec(INPUT_NAME, cfg.size, cfg.size)
    t0 = time.perf_counter()
    pixels = prepare_all(data.samples, spec, cfg.ercp_region)
    prep_s = time.perf_counter() - t0
    log.info("prepared %d inputs of %dx%d in %.1f s", len(pixels), cfg.size, cfg.size, prep_s)
    splits = make_folds(
        len(data.samples), cfg.folds, groups=data.patients, labels=data.labels, seed=cfg.seed
    )
    cfg.out.mkdir(parents=True, exist_ok=True)
    fold_metrics, fold_preds, fold_info = [], [], []
    train_time = 0.0
    for k, (train_idx, test_idx) in enumerate(splits, start=1):
        if cfg.only_folds and k not in cfg.only_folds:
            continue
        fold_dir = cfg.out / f"fold_{k}"
        t0 = time.perf_counter()
        module, ckpt = train_fold(cfg, data, pixels, train_idx, fold_dir)
        fold_s = time.perf_counter() - t0
        train_time += fold_s
        if torch.cuda.is_available():
            module = module.cuda()
        probs = predict_probs(module, pixels[test_idx], batch_size=max(cfg.batch_size, 32))
        y = data.labels[test_idx]
        metrics = classification_metrics(y, probs, data.classes)
        _write_predictions(fold_dir / "predictions.csv", data, test_idx, probs)
        fold_metrics.append(metrics)
        fold_preds.append((y, probs))
        fold_info.append(
            {
                "fold": k,
                "checkpoint": str(ckpt),
                "train_s": round(fold_s, 1),
                "n_test": int(len(test_idx)),
                "test_patients": len({data.patients[i] for i in test_idx}),
            }
        )
        log.info(
            "fold %d: acc %.3f macro-F1 %.3f AUC %.3f (%.0f s)",
            k,
            metrics["accuracy"],
            metrics["macro_f1"],
            metrics["auc"],
            fold_s,
        )
    if not fold_metrics:
        raise ConfigError(f"no fold was run: --only-folds {cfg.only_folds} vs {cfg.folds} folds")
    summary = summarize_folds(fold_metrics, data.classes)
    result = {
        "name": cfg.name,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "command": cfg.command,
        "data": str(cfg.data),
        "dataset": data.describe(),
        "n_images": len(data.samples),
        "n_patients": len(set(data.patients)),
        "classes": list(data.classes),
        "class_counts": data.class_counts(),
        "arch": cfg.arch,
        "size": cfg.size,
        "region": cfg.ercp_region,
        "balance": cfg.balance,
        "monitor": MONITORS[cfg.monitor],
        "folds": len(fold_metrics),
        "fold_info": fold_info,
        "fold_metrics": fold_metrics,
        "summary": summary,
        "prepare_s": round(prep_s, 1),
        "train_time_s": round(train_time, 1),
        "total_time_s": round(time.perf_counter() - started, 1),
        "torch_threads": torch.get_num_threads(),
    }
    if int(os.environ.get("RANK", "0")) == 0:  # under DDP only rank 0 writes the report
        write_outputs(cfg.out, result, fold_preds)
    return result


def write_outputs(
    out: Path, result: dict[str, Any], fold_preds: list[tuple[np.ndarray, np.ndarray]]
) -> None:
    """report.json, report.md, roc.png and confusion.png of a run."""
    (out / "report.json").write_text(json.dumps(result, indent=2, default=float), encoding="utf-8")
    (out / "report.md").write_text(rep.render_report(result), encoding="utf-8")
    title = f"{result['name']} ({result['folds']}-fold CV)"
    rep.plot_roc(fold_preds, result["classes"], out / "roc.png", title)
    rep.plot_confusion(
        result["summary"]["confusion"],
        result["classes"],
        out / "confusion.png",
        f"{title}\nsummed over folds",
    )
