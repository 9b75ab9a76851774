"""``ercp-assist gui``: the desktop app (also what ``ercp-assist`` alone opens)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "open the desktop app: live overlay, procedure mode, replay, record and export"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the GUI options to the subcommand's parser."""
    parser.add_argument(
        "--source",
        metavar="SPEC",
        help="phantom[:SEED], device:N, a video file, an image folder or a "
        "recording folder (default: the last one, else phantom)",
    )
    parser.add_argument(
        "--detector",
        metavar="MODEL.onnx",
        help="ampulla detector (default: the last loaded, else the shipped one)",
    )
    parser.add_argument(
        "--classifier",
        metavar="MODEL.onnx",
        help="difficulty classifier (default: the last loaded, else shipped)",
    )
    parser.add_argument(
        "--procedure", action="store_true", help="start in procedure mode (full screen; Esc leaves)"
    )
    parser.add_argument("--screen", metavar="NAME", help="monitor for procedure mode")
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="PATH",
        help="save a PNG of the window after --quit-after-frames frames and exit "
        "(works with QT_QPA_PLATFORM=offscreen; never writes settings)",
    )
    parser.add_argument(
        "--quit-after-frames",
        type=int,
        metavar="N",
        help="frames to show before the screenshot (default 30) or before quitting",
    )
    parser.add_argument("--size", metavar="WxH", help="window size, e.g. 1920x1080")
    parser.add_argument(
        "--seek", type=int, metavar="FRAME", help="for a file or recording: pause at this frame"
    )
    parser.add_argument(
        "--settings",
        type=Path,
        metavar="FILE.ini",
        help="keep settings in this file instead of the user's",
    )


def run(args: argparse.Namespace) -> int:
    """Runs the app until its window closes; returns the exit status."""
    from app.ui.app import GuiOptions, parse_size, run_gui

    if args.quit_after_frames is not None and args.quit_after_frames < 1:
        raise ValueError(f"--quit-after-frames {args.quit_after_frames}: expected >= 1")
    options = GuiOptions(
        source=args.source,
        detector=args.detector,
        classifier=args.classifier,
        procedure=args.procedure,
        screen=args.screen,
        screenshot=args.screenshot,
        quit_after_frames=args.quit_after_frames,
        size=parse_size(args.size) if args.size else None,
        settings_path=args.settings,
        seek_frame=args.seek,
    )
    return run_gui(options)
