"""The ``ercp-train`` command line: one subcommand per module in ``training.commands``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from app.cli import build_parser, parse_and_run

#: subcommand -> module; each defines HELP, add_arguments(parser) and run(args) -> int and
#: imports torch inside run() so that ``--help`` stays fast.
COMMANDS: dict[str, str] = {
    "classify": "training.commands.classify",
    "evaluate-classify": "training.commands.evaluate_classify",
    "gradcam": "training.commands.gradcam",
    "import-kvasir": "training.commands.import_kvasir",
    "detect": "training.commands.detect",
    "evaluate-detect": "training.commands.evaluate_detect",
    "compare-annotators": "training.commands.compare_annotators",
    "export": "training.commands.export",
    "detect-report": "training.commands.detect_report",
    "build-default-models": "training.commands.build_default_models",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ercp-train``."""
    parser = build_parser(
        prog="ercp-train",
        description="Train, evaluate and export the ERCP Assist models (Kim et al., Sci Rep 2021).",
        commands=COMMANDS,
    )
    return parse_and_run(parser, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
