"""``ercp-assist check-model``: print a model's contract, or why the app refuses it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "check an ONNX model against the ERCP Assist contract and print what it declares"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the check-model options."""
    parser.add_argument("model", type=Path, metavar="MODEL", help="the .onnx file")
    parser.add_argument(
        "--providers",
        metavar="LIST",
        help="execution providers to try, comma-separated (default: all)",
    )
    parser.add_argument("--json", action="store_true", help="print the contract as JSON")


def _lines(info: dict) -> list[str]:
    spec = info["input"]
    lines = [
        f"model:     {info['path']}",
        f"sha256:    {info['sha256']}",
        f"task:      {info['task']}",
        f"name:      {info['name']} {info['version']}",
        f"input:     {spec['name']} uint8 (N, {spec['height']}, {spec['width']}, 3) BGR, "
        f"resize {spec['resize']}",
        "outputs:   " + ", ".join(f"{role} -> {name}" for role, name in info["outputs"].items()),
    ]
    if "min_peak" in info:
        lines.append(
            f"detector:  box_threshold {info['box_threshold']:g}, min_peak {info['min_peak']:g}"
        )
    else:
        lines.append(f"classes:   {', '.join(info['classes'])}")
        lines.append(f"region:    {json.dumps(info['region'])}")
    for key, value in info["provenance"].items():
        lines.append(
            f"{key + ':':<10} {json.dumps(value) if not isinstance(value, str) else value}"
        )
    report = info["provider_report"]
    lines.append(f"provider:  {report['chosen']}")
    for fallback in report["fallbacks"]:
        lines.append(f"           skipped {fallback['provider']}: {fallback['reason']}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Loads the model as the app would and prints its contract; refusals exit 2."""
    from app.commands.engine_common import engine_config
    from app.core.models import load_model

    config = engine_config(args)
    model = load_model(args.model, config=config)
    info = model.describe()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print("\n".join(_lines(info)))
        print("contract:  OK")
    return 0
