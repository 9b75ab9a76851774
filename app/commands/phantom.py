"""``ercp-assist phantom``: write a synthetic still dataset or video with ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write phantom duodenoscope data: COCO stills + labels.csv, or a video + truth.jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the phantom options to the subcommand's parser."""
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--images", type=int, metavar="N", help="write N still images")
    what.add_argument("--video", type=float, metavar="SECONDS", help="write a video this long")
    what.add_argument(
        "--sheet",
        type=int,
        metavar="N",
        help="write a contact sheet of N stills to DIR/phantom_contact_sheet.png",
    )
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (default 0)")
    parser.add_argument("--width", type=int, default=1280, help="frame width (default 1280)")
    parser.add_argument("--height", type=int, default=720, help="frame height (default 720)")
    parser.add_argument("--fps", type=float, default=30.0, help="video frame rate (default 30)")
    parser.add_argument(
        "--absent",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="fraction of stills with no papilla in view (default 0)",
    )
    parser.add_argument(
        "--window",
        choices=("octagon", "rounded"),
        default="octagon",
        help="endoscopic window shape (default octagon)",
    )


def run(args: argparse.Namespace) -> int:
    """Writes the dataset or video; returns the exit status."""
    from app.core.errors import ConfigError
    from app.core.phantom import PhantomConfig
    from app.core.phantom_io import write_contact_sheet, write_still_dataset, write_video

    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    config = PhantomConfig(
        width=args.width,
        height=args.height,
        fps=args.fps,
        absent_fraction=args.absent,
        window=args.window,
    )
    if args.images is not None:
        out = write_still_dataset(args.out, args.images, args.seed, config)
        print(f"wrote {args.images} phantom stills to {out}")
    elif args.sheet is not None:
        out = write_contact_sheet(
            Path(args.out) / "phantom_contact_sheet.png", args.seed, config, n=args.sheet
        )
        print(f"wrote a contact sheet of {args.sheet} phantom stills to {out}")
    else:
        out = write_video(args.out, args.video, args.seed, config)
        print(f"wrote a {args.video:g} s phantom video to {out / 'phantom.mp4'}")
    return 0
