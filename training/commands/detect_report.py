"""``ercp-train detect-report``: one report (table, success plot) from several detect runs."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "merge detect runs on the same split (e.g. model and baseline) into one report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the command."""
    parser.add_argument("runs", type=Path, nargs="+", help="detect --out folders")
    parser.add_argument("--out", type=Path, required=True, help="folder for the merged report")
    parser.add_argument("--title", default="", help="plot title")


def run(args: argparse.Namespace) -> int:
    """Merge per_image.csv files, check the test images agree, and write the report."""
    from app.core.errors import DatasetError
    from training.detection import report

    results = []
    test_sets = {}
    for run_dir in args.runs:
        rows = report.read_rows(run_dir / "per_image.csv")
        for model in {r.model for r in rows}:
            ids = sorted(str(r.image_id) for r in rows if r.model == model)
            if test_sets and ids != next(iter(test_sets.values())):
                raise DatasetError(
                    f"{run_dir}: model {model!r} was tested on other images "
                    f"than {next(iter(test_sets))!r}; merge runs on one split"
                )
            test_sets[f"{run_dir}:{model}"] = ids
        results += rows
    summary = report.summarize_results(results)
    args.out.mkdir(parents=True, exist_ok=True)
    report.plot_success(summary, args.out / "success.png", title=args.title)
    report.write_json(summary, args.out / "summary.json")
    print(report.format_table(summary))
    print(f"wrote {args.out}/success.png and summary.json")
    return 0
