"""``ercp-assist demo``: the desktop app on a phantom video with the shipped models."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.core.errors import ModelContractError

HELP = "open the app on a phantom duodenoscope video with the shipped models and live overlays"

#: A phantom seed that none of the shipped models was trained or calibrated on.
DEMO_SEED = 2026
DEMO_SOURCE = f"phantom:{DEMO_SEED}"
#: ``process --demo`` annotates this many frames (20 s at 30 fps).
DEMO_FRAMES = 600


def shipped_models() -> tuple[Path, Path | None]:
    """The shipped detector and classifier, checked against the registry.

    Raises:
        ModelContractError: if no detector is shipped (or a file fails its sha256 check).
    """
    from app.core.registry import default_model_path

    detector = default_model_path("detector")
    if detector is None:
        raise ModelContractError(
            "the demo needs the shipped models in models/ (registry.json); "
            "regenerate them with `ercp-train build-default-models`"
        )
    return detector, default_model_path("classifier")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the demo options (a subset of ``gui``'s)."""
    parser.add_argument("--procedure", action="store_true", help="start in procedure mode")
    parser.add_argument(
        "--screenshot", type=Path, metavar="PATH", help="save a PNG of the window and exit"
    )
    parser.add_argument(
        "--quit-after-frames", type=int, metavar="N", help="frames to show before quitting"
    )
    parser.add_argument("--size", metavar="WxH", help="window size, e.g. 1920x1080")


def run(args: argparse.Namespace) -> int:
    """Opens the GUI on the demo phantom with the shipped models."""
    from app.ui.app import GuiOptions, parse_size, run_gui

    detector, classifier = shipped_models()
    options = GuiOptions(
        source=DEMO_SOURCE,
        detector=str(detector),
        classifier=str(classifier) if classifier else None,
        procedure=args.procedure,
        screenshot=args.screenshot,
        quit_after_frames=args.quit_after_frames,
        size=parse_size(args.size) if args.size else None,
        # The demo never changes the user's saved source, models or settings.
        read_only_settings=True,
    )
    return run_gui(options)
