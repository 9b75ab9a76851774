"""``ercp-train classify``: patient-grouped k-fold CV of the cannulation-difficulty classifier."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

HELP = (
    "cross-validate a cannulation-difficulty classifier (binary or four-class) and write "
    "the paper's Table 2/3 report, ROC and confusion PNGs"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``classify``."""
    from training.common.trainer import add_trainer_arguments

    parser.add_argument(
        "--data", type=Path, required=True, help="dataset folder: COCO JSON, images/, labels.csv"
    )
    parser.add_argument(
        "--arch",
        default="resnet50",
        help="vgg19_bn, resnet50, densenet161 (paper); resnet18, "
        "mobilenet_v3_large (CPU) (%(default)s)",
    )
    parser.add_argument(
        "--task",
        choices=("binary", "four"),
        default="binary",
        help="easy/difficult or the four classes (%(default)s)",
    )
    parser.add_argument("--folds", type=int, default=5, help="CV folds (%(default)s)")
    parser.add_argument(
        "--only-folds", default="", help="comma-separated fold numbers to run (default: all)"
    )
    parser.add_argument("--size", type=int, default=224, help="square input size (%(default)s)")
    parser.add_argument(
        "--region",
        choices=("field", "box"),
        default="field",
        help="whole endoscopic field, or a crop around the box (%(default)s)",
    )
    parser.add_argument(
        "--box-margin",
        type=float,
        default=0.5,
        help="box crop margin, times the box size on each side (%(default)s)",
    )
    parser.add_argument(
        "--monitor",
        choices=("f1", "acc"),
        default="f1",
        help="early stopping on validation macro-F1 or accuracy (%(default)s)",
    )
    parser.add_argument(
        "--balance",
        choices=("loss", "sampler", "both", "none"),
        default="loss",
        help="class-imbalance handling (%(default)s)",
    )
    parser.add_argument("--no-balance", action="store_true", help="same as --balance none")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.15,
        help="patients of each training fold held out for early stopping",
    )
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="(%(default)s)")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    add_trainer_arguments(parser, epochs=30, patience=6, batch_size=32)


def run(args: argparse.Namespace) -> int:
    """Run the cross-validation and print the report."""
    from training.classification.crossval import CvConfig, run_cv
    from training.classification.report import render_report
    from training.common.trainer import trainer_options

    opts = trainer_options(args)
    only = tuple(int(v) for v in args.only_folds.split(",") if v.strip())
    cfg = CvConfig(
        data=args.data,
        out=args.out,
        arch=args.arch,
        task=args.task,
        folds=args.folds,
        size=args.size,
        region=args.region,
        box_margin=args.box_margin,
        balance="none" if args.no_balance else args.balance,
        monitor=args.monitor,
        val_fraction=args.val_fraction,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        imagenet=args.imagenet,
        pretrained=args.pretrained,
        workers=args.workers,
        augment=not args.no_augment,
        trainer=opts,
        only_folds=only,
        command="ercp-train " + shlex.join(sys.argv[1:]) if sys.argv else "",
    )
    result = run_cv(cfg)
    print(render_report(result))
    print(f"\nwrote {args.out / 'report.md'}, report.json, roc.png, confusion.png")
    return 0
