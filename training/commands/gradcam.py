"""``ercp-train gradcam``: Grad-CAM figures of a trained difficulty classifier."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Grad-CAM figures (input | heatmap overlay) of a difficulty-classifier checkpoint"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``gradcam``."""
    parser.add_argument("--ckpt", type=Path, required=True, help="classify checkpoint (.ckpt)")
    parser.add_argument(
        "--images", nargs="*", default=[], help="image files; with --data, names of labels.csv rows"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="dataset folder: gives true labels and boxes (box-region models)",
    )
    parser.add_argument(
        "--per-class",
        type=int,
        default=0,
        help="with --data: also take the first N images of each class",
    )
    parser.add_argument(
        "--explain",
        default="pred",
        help="class to explain: pred (predicted), truth (true class, as in the "
        "paper's Fig. 4) or a class name (%(default)s)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder for the PNGs")


def run(args: argparse.Namespace) -> int:
    """Compute and save the figures."""
    from app.core.errors import DatasetError
    from training.classification.gradcam_figures import (
        compute_cams,
        prepare_for,
        save_figures,
        select_samples,
    )
    from training.classification.module import load_checkpoint

    module = load_checkpoint(args.ckpt)
    explain = None if args.explain == "pred" else args.explain
    items = []
    if args.data is not None:
        samples = select_samples(
            args.data, module.hparams["label_set"], args.images, args.per_class
        )
        items = [(s.path.name, prepare_for(module, s.path, s.box), s.label) for s in samples]
    else:
        for name in args.images:
            items.append((Path(name).name, prepare_for(module, Path(name)), None))
    if not items:
        raise DatasetError("no images: give --images FILE ... or --data DIR --per-class N")
    results = compute_cams(module, items, explain)
    paths = save_figures(results, module.classes, args.out)
    for r in results:
        pred = module.classes[int(r.probs.argmax())]
        print(f"{r.name}: pred {pred} ({r.probs.max():.2f}), map of {module.classes[r.explained]}")
    print(f"wrote {len(paths)} figures to {args.out}")
    return 0
