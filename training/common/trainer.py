"""The Lightning Trainer both tasks use: logs, checkpoints, early stopping, AMP, DDP, seeding."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from training.common.seed import seed_everything

log = logging.getLogger(__name__)


def _parse_devices(value: str) -> int | str | list[int]:
    """``auto``, ``N`` (a count) or ``0,2`` (device indices), as Lightning takes them."""
    value = str(value).strip()
    if value == "auto" or value == "-1":
        return value if value == "auto" else -1
    if "," in value:
        return [int(v) for v in value.split(",") if v.strip()]
    return int(value)


def _limit(value: str | None) -> int | float | None:
    """``--limit-train-batches``: an int is a number of batches, a float a fraction."""
    if value is None:
        return None
    number = float(value)
    return int(number) if number.is_integer() and number >= 1 else number


def resolve_precision(precision: str | None, accelerator: str) -> str:
    """The Trainer precision: mixed fp16 on a GPU unless told otherwise, else fp32.

    On CPU, ``--precision bf16-mixed`` is often 2-3x faster where the processor has AMX or
    AVX-512 BF16; it is not the default because older CPUs run it slower than fp32.
    """
    if precision is not None:
        return precision
    import torch

    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return "16-mixed" if on_gpu else "32-true"


def _single_log_stream() -> None:
    """Let Lightning's messages go through the CLI's root handler only (not twice)."""
    if logging.getLogger().handlers:
        for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True


def make_trainer(
    out_dir: Path,
    *,
    monitor: str,
    mode: str = "max",
    max_epochs: int,
    patience: int,
    devices: int | str | list[int] = "auto",
    strategy: str = "auto",
    accelerator: str = "auto",
    num_nodes: int = 1,
    max_steps: int = -1,
    limit_train_batches: int | float | None = None,
    limit_val_batches: int | float | None = None,
    progress: bool = True,
    seed: int = 0,
    precision: str | None = None,
    log_every_n_steps: int = 10,
    callbacks: list[Any] | None = None,
    max_time: str | None = None,
) -> Any:
    """Build a ``lightning.Trainer`` writing everything under ``out_dir``.

    ``out_dir`` gets ``csv/`` (CSVLogger metrics.csv), ``tensorboard/`` and ``checkpoints/``
    (``best.ckpt`` by ``monitor`` and ``last.ckpt``). Training stops early when ``monitor``
    has not improved for ``patience`` validation epochs. Multi-GPU / multi-node: pass
    ``devices=N, strategy="ddp"``; under torchrun or SLURM Lightning reads the world size
    from the environment.

    Args:
        out_dir: the run folder.
        monitor: the logged metric used for the best checkpoint and early stopping.
        mode: ``"max"`` or ``"min"`` for ``monitor``.
        max_epochs: upper bound of epochs.
        patience: early-stopping patience, in validation epochs (0 disables early stopping).
        devices: ``"auto"``, a count, or a list of device indices.
        strategy: ``"auto"``, ``"ddp"``, ``"ddp_spawn"``, ...
        accelerator: ``"auto"``, ``"cpu"``, ``"gpu"``.
        num_nodes: nodes for multi-node DDP.
        max_steps: stop after this many optimizer steps (-1: no limit).
        limit_train_batches: batches per epoch (int) or a fraction (float); None: all.
        limit_val_batches: the same for validation.
        progress: show the progress bar.
        seed: seeds everything (also dataloader workers) before the Trainer is built.
        precision: None chooses ``"16-mixed"`` on a GPU and ``"32-true"`` on CPU.
        log_every_n_steps: logging interval.
        callbacks: extra callbacks.
        max_time: stop after this wall time, ``"DD:HH:MM:SS"`` (None: no limit); the best
            checkpoint so far is kept.

    Returns:
        The configured Trainer.
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    _single_log_stream()
    seed_everything(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        save_last=True,
        auto_insert_metric_name=False,
        # Re-running into the same folder replaces best.ckpt instead of adding best-v1.ckpt,
        # so "RUN/.../checkpoints/best.ckpt" always names the newest run's best model.
        enable_version_counter=False,
    )
    all_callbacks: list[Any] = [checkpoint]
    if patience > 0:
        all_callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=patience))
    all_callbacks.extend(callbacks or [])
    loggers = [
        CSVLogger(out_dir, name="csv", version=""),
        TensorBoardLogger(out_dir, name="tensorboard", version="", default_hp_metric=False),
    ]
    kwargs: dict[str, Any] = {}
    if limit_train_batches is not None:
        kwargs["limit_train_batches"] = limit_train_batches
    if limit_val_batches is not None:
        kwargs["limit_val_batches"] = limit_val_batches
    trainer = L.Trainer(
        default_root_dir=out_dir,
        max_epochs=max_epochs,
        max_steps=max_steps,
        devices=devices,
        strategy=strategy,
        accelerator=accelerator,
        num_nodes=num_nodes,
        precision=resolve_precision(precision, accelerator),
        logger=loggers,
        callbacks=all_callbacks,
        enable_progress_bar=progress,
        enable_model_summary=progress,
        log_every_n_steps=log_every_n_steps,
        # "warn": reproducible where the ops allow it, without failing on the few CUDA ops
        # (e.g. bilinear upsampling backward) that have no deterministic kernel.
        deterministic="warn",
        num_sanity_val_steps=0,
        max_time=max_time,
        **kwargs,
    )
    log.info("trainer: %s, precision %s, out %s", accelerator, trainer.precision, out_dir)
    return trainer


def add_trainer_arguments(
    parser: argparse.ArgumentParser, *, epochs: int = 50, patience: int = 10, batch_size: int = 16
) -> None:
    """Add the training options both tasks share.

    --out --epochs --patience --batch-size --workers --lr --seed --devices --strategy
    --accelerator --num-nodes --precision --max-steps --limit-train-batches --no-progress
    --pretrained --imagenet. Turn them into ``make_trainer`` keywords with
    :func:`trainer_options`.
    """
    g = parser.add_argument_group("training")
    g.add_argument("--out", type=Path, required=True, help="run folder (logs, checkpoints)")
    g.add_argument("--epochs", type=int, default=epochs, help="maximum epochs (%(default)s)")
    g.add_argument(
        "--patience",
        type=int,
        default=patience,
        help="early-stopping patience in epochs, 0 = off (%(default)s)",
    )
    g.add_argument("--batch-size", type=int, default=batch_size, help="(%(default)s)")
    g.add_argument("--workers", type=int, default=0, help="dataloader workers (%(default)s)")
    g.add_argument("--lr", type=float, default=1e-3, help="learning rate (%(default)s)")
    g.add_argument("--seed", type=int, default=0, help="random seed (%(default)s)")
    g.add_argument(
        "--max-steps",
        type=int,
        default=-1,
        help="stop after this many optimizer steps, -1 = no limit",
    )
    g.add_argument(
        "--max-time",
        default=None,
        help="stop training after this wall time, DD:HH:MM:SS (default: none)",
    )
    g.add_argument(
        "--limit-train-batches",
        default=None,
        help="batches per epoch (int) or a fraction (float); default all",
    )
    g.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    d = parser.add_argument_group("devices (multi-GPU: --devices 4 --strategy ddp)")
    d.add_argument("--devices", default="auto", help="auto, a count N, or indices 0,1")
    d.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, ... (%(default)s)")
    d.add_argument("--accelerator", default="auto", help="auto, cpu, gpu (%(default)s)")
    d.add_argument("--num-nodes", type=int, default=1, help="nodes for multi-node DDP")
    d.add_argument(
        "--precision",
        default=None,
        help="32-true, 16-mixed, bf16-mixed; default 16-mixed on GPU, 32-true on CPU",
    )
    w = parser.add_argument_group("initial weights")
    w.add_argument(
        "--pretrained",
        type=Path,
        default=None,
        help="load a state-dict file (e.g. ImageNet weights saved earlier)",
    )
    w.add_argument(
        "--imagenet",
        action="store_true",
        help="download ImageNet weights for the encoder (needs internet)",
    )


def trainer_options(args: argparse.Namespace) -> dict[str, Any]:
    """``make_trainer`` keywords from arguments added by :func:`add_trainer_arguments`."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    return {
        "max_epochs": args.epochs,
        "patience": args.patience,
        "devices": _parse_devices(args.devices),
        "strategy": args.strategy,
        "accelerator": args.accelerator,
        "num_nodes": args.num_nodes,
        "max_steps": args.max_steps,
        "limit_train_batches": _limit(args.limit_train_batches),
        "progress": not args.no_progress,
        "seed": args.seed,
        "precision": args.precision,
        "max_time": args.max_time,
    }


def is_global_zero(trainer: Any) -> bool:
    """True in the process that should write reports (rank 0 under DDP)."""
    return bool(getattr(trainer, "is_global_zero", True))
