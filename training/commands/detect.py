"""``ercp-train detect``: train and evaluate the ampulla detector (CV or one split)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from training.common.trainer import add_trainer_arguments

HELP = "train + evaluate the soft-mask detector (and the box-regression baseline) by CV"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the command."""
    parser.add_argument("--data", type=Path, required=True, help="COCO dataset folder or JSON")
    split = parser.add_mutually_exclusive_group()
    split.add_argument(
        "--folds",
        type=int,
        default=5,
        help="k-fold CV, grouped by patient_id when present (%(default)s)",
    )
    split.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        help="instead of CV: one seeded train/test split with this test fraction "
        "(e.g. 0.12 for Kvasir-SEG's 880/120)",
    )
    parser.add_argument("--arch", default="unet", help="architecture (%(default)s)")
    parser.add_argument(
        "--encoder",
        default="vgg16_bn",
        help="encoder: vgg16_bn (paper), resnet18/34, mobilenet_v2, ... (%(default)s)",
    )
    parser.add_argument("--size", type=int, default=256, help="model input size (%(default)s)")
    parser.add_argument("--loss", default="bce", help="bce (paper), dice, focal, bce+dice")
    parser.add_argument(
        "--decoder-channels",
        default=None,
        help="comma-separated decoder widths, e.g. 128,64,32,16,16",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="part of each training fold held out for early stopping",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also train the box-regression baseline on the same folds",
    )
    parser.add_argument("--baseline-only", action="store_true", help="train only the baseline")
    parser.add_argument(
        "--no-crop-field",
        action="store_true",
        help="do not crop to the endoscopic field (the app crops by default)",
    )
    parser.add_argument(
        "--target-fpr",
        type=float,
        default=0.05,
        help="min_peak calibration: false-positive rate on frames without "
        "the papilla (%(default)s)",
    )
    parser.add_argument(
        "--target-miss",
        type=float,
        default=0.01,
        help="min_peak calibration without negative frames: allowed miss rate (%(default)s)",
    )
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="do not train: evaluate, calibrate and report the best.ckpt files already in --out",
    )
    parser.add_argument("--worst", type=int, default=12, help="images in the worst-case grid")
    add_trainer_arguments(parser, epochs=60, patience=12)


def run(args: argparse.Namespace) -> int:
    """Train, evaluate, and write the report files under ``--out``."""
    from training.common.data import CocoDataset
    from training.common.export import git_revision
    from training.common.folds import holdout_split, make_folds
    from training.common.trainer import trainer_options
    from training.detection import report
    from training.detection.cv import DetectConfig, config_dict
    from training.detection.cv import run as run_cv

    t0 = time.perf_counter()
    opts = trainer_options(args)
    dataset = CocoDataset.load(args.data)
    decoder = (
        tuple(int(v) for v in args.decoder_channels.split(",")) if args.decoder_channels else None
    )
    cfg = DetectConfig(
        arch=args.arch,
        encoder=args.encoder,
        size=args.size,
        loss=args.loss,
        lr=args.lr,
        batch_size=args.batch_size,
        workers=args.workers,
        val_fraction=args.val_fraction,
        decoder_channels=decoder,
        imagenet=args.imagenet,
        pretrained=str(args.pretrained) if args.pretrained else None,
        crop_field=not args.no_crop_field,
        target_fpr=args.target_fpr,
        target_miss=args.target_miss,
        seed=args.seed,
        evaluate_only=args.evaluate_only,
    )
    n = len(dataset)
    groups = dataset.patient_ids
    if args.test_fraction is not None:
        splits = [holdout_split(n, args.test_fraction, groups=groups, seed=args.seed)]
        split_text = f"one seeded split, test fraction {args.test_fraction} (seed {args.seed})"
    else:
        splits = make_folds(n, args.folds, groups=groups, seed=args.seed)
        split_text = f"{args.folds}-fold CV" + (" grouped by patient" if groups else "")
    kinds = (
        ["boxreg"] if args.baseline_only else ["heatmap"] + (["boxreg"] if args.baseline else [])
    )
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    results, is_zero = run_cv(dataset, splits, cfg, opts, out, kinds)
    if not is_zero:
        return 0  # DDP worker ranks: rank 0 writes the report
    summary = report.summarize_results(results)
    paths = {str(r.image_id): r.path for r in dataset}
    report.write_rows(results, out / "per_image.csv")
    report.plot_success(
        summary,
        out / "success.png",
        title=f"{dataset.json_path.parent.name}: "
        f"{split_text}, {args.arch}/{args.encoder} {args.size}px",
    )
    for kind in kinds:
        report.worst_cases_grid(
            results, paths, out / f"worst_{kind}.png", model=kind, count=args.worst
        )
    elapsed = time.perf_counter() - t0
    report.write_json(
        {
            "command": " ".join(["ercp-train", *sys.argv[1:]]) if sys.argv else "",
            "git": git_revision(),
            "split": split_text,
            "dataset": dataset.describe(),
            "config": config_dict(cfg),
            "trainer": opts,
            "seconds": elapsed,
            "summary": summary,
        },
        out / "summary.json",
    )
    print(
        f"{dataset.json_path}: {len(dataset)} images, {split_text}; "
        f"{len(dataset.problems)} rows skipped"
    )
    print(report.format_table(summary))
    print(
        f"wrote {out}/summary.json, per_image.csv, success.png, worst_*.png "
        f"({elapsed / 60:.1f} min)"
    )
    return 0
