"""The ``ercp-assist`` command line: one subcommand per module in ``app.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from app.core.errors import ErcpError

#: subcommand -> module. Each module defines HELP, add_arguments(parser) and run(args) -> int,
#: and imports its heavy dependencies inside run() so that ``--help`` stays fast.
COMMANDS: dict[str, str] = {
    "devices": "app.commands.devices",
    "phantom": "app.commands.phantom",
    "process": "app.commands.process",
    "check-model": "app.commands.check_model",
    "bench": "app.commands.bench",
    "gui": "app.commands.gui",
    "demo": "app.commands.demo",
}
DEFAULT_COMMAND = "gui"


def build_parser(
    prog: str = "ercp-assist",
    description: str = "ERCP Assist: ampulla detection and cannulation-difficulty overlay "
    "(research software, not a medical device).",
    commands: dict[str, str] = COMMANDS,
) -> argparse.ArgumentParser:
    """The full parser of a program, with every registered subcommand."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in commands.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        cmd.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show tracebacks and debug logs",
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def run_guarded(run, args: argparse.Namespace) -> int:
    """Run a command; an expected failure becomes one line on stderr and exit status 2."""
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ErcpError, OSError, ValueError) as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


def parse_and_run(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    """Parse ``argv``, set up logging and run the chosen subcommand."""
    args = parser.parse_args(list(argv))
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not hasattr(args, "_run"):
        parser.print_help()
        return 2
    return run_guarded(args._run, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ercp-assist``; without a subcommand it opens the GUI."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a in COMMANDS for a in argv) and not {"-h", "--help"} & set(argv):
        if DEFAULT_COMMAND in COMMANDS:
            argv.append(DEFAULT_COMMAND)
    return parse_and_run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
