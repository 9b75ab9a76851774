"""``ercp-train build-default-models``: regenerate models/ from scratch with our own commands."""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HELP = "regenerate the shipped phantom detector and classifier (data, training, export, cards)"
log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DETECTOR_FILE = "ampulla_detector.onnx"
CLASSIFIER_FILE = "difficulty_classifier.onnx"


@dataclass(frozen=True)
class Recipe:
    """What the default models are trained on and how; the card records all of it."""

    images: int = 1600
    width: int = 480
    height: int = 270
    absent: float = 0.15
    data_seed: int = 11
    eval_seed: int = 77
    eval_seconds: int = 20
    seed: int = 0
    det_encoder: str = "mobilenet_v2"
    det_size: int = 128
    #: A slim decoder keeps the file under 15 MB (the first block dominates the weights).
    det_decoder: str = "64,32,16,16,16"
    det_epochs: int = 12
    #: Wall-clock caps (DD:HH:MM:SS) so a rebuild fits a working session on a 2-core CPU;
    #: the best checkpoint so far is kept when a cap stops training.
    det_max_time: str = "00:00:10:00"
    cls_arch: str = "mobilenet_v3_small"
    cls_size: int = 128
    cls_epochs: int = 10
    cls_max_time: str = "00:00:07:00"
    threads: int = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the command (defaults are the shipped recipe)."""
    defaults = Recipe()
    parser.add_argument("--out", type=Path, default=REPO / "models", help="models folder")
    parser.add_argument(
        "--work", type=Path, default=REPO / "runs" / "default-models", help="scratch folder"
    )
    for name, value in vars(defaults).items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=type(value), default=value, help=f"(default {value})")


def _run(argv: list[str], steps: list[dict]) -> float:
    """Run one of the project's own commands in-process; record it and its wall time."""
    from app.cli import main as assist_main
    from training.cli import main as train_main

    program, *rest = argv
    main = assist_main if program == "ercp-assist" else train_main
    log.info("$ %s", shlex.join(argv))
    started = time.monotonic()
    status = main(rest)
    seconds = time.monotonic() - started
    steps.append({"command": shlex.join(argv), "seconds": round(seconds, 1)})
    if status != 0:
        raise RuntimeError(f"`{shlex.join(argv)}` failed with exit status {status}")
    return seconds


def _best_checkpoint(run_dir: Path) -> Path:
    candidates = sorted(run_dir.rglob("best*.ckpt")) or sorted(run_dir.rglob("*.ckpt"))
    candidates = [c for c in candidates if "last" not in c.name] or candidates
    if not candidates:
        raise RuntimeError(f"no checkpoint under {run_dir}")
    return candidates[0]


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def evaluate_on_video(predictions: Path, truth: Path) -> dict:
    """Shipped-detector figures on a phantom video: mean IoU, misses and false positives.

    Frames are matched by index. IoU averages over frames whose truth has a papilla (a missed
    frame scores 0); the false-positive rate is the share of papilla-free frames with a box.
    """
    from app.core.geometry import iou

    truth_by_frame = {}
    for line in truth.read_text().splitlines():
        row = json.loads(line)
        truth_by_frame[row["frame"]] = row.get("box")
    ious, false_pos, negatives, misses = [], 0, 0, 0
    for line in predictions.read_text().splitlines():
        row = json.loads(line)
        gt, box = truth_by_frame.get(row["frame"], "missing"), row.get("box")
        if gt == "missing":
            continue
        if gt is None:
            negatives += 1
            false_pos += box is not None
        else:
            ious.append(iou(box, gt) if box is not None else 0.0)
            misses += box is None
    return {
        "frames_with_papilla": len(ious),
        "frames_without_papilla": negatives,
        "mean_iou": round(sum(ious) / len(ious), 4) if ious else math.nan,
        "success_iou_0.5": round(sum(v > 0.5 for v in ious) / len(ious), 4) if ious else math.nan,
        "miss_rate": round(misses / len(ious), 4) if ious else math.nan,
        "false_positive_rate": round(false_pos / negatives, 4) if negatives else math.nan,
    }


def _card(
    role: str,
    path: Path,
    sha: str,
    info: dict,
    figures: dict,
    recipe: Recipe,
    steps: list[dict],
    total_s: float,
) -> str:
    contract = json.dumps(info.get("contract", {}), indent=2)
    lines = [
        f"# {path.name} — shipped {role}",
        "",
        "**Trained on phantom (synthetic) images only, not on clinical data. Research software, "
        "not a medical device: these figures show that the pipeline works, not clinical "
        "accuracy.**",
        "",
        f"- sha256: `{sha}`",
        f"- size: {path.stat().st_size / 1e6:.2f} MB",
        f"- built: {time.strftime('%Y-%m-%d')} at git {_git_revision()} on "
        f"{platform.machine()} ({info.get('cpu', '')}), seed {recipe.seed}",
        f"- `ercp-train build-default-models` took {total_s / 60:.1f} min in all",
        "",
        "## Figures",
        "",
        "```json",
        json.dumps(figures, indent=2),
        "```",
        "",
        "## Input contract (`ercp-assist check-model --json`)",
        "",
        "```json",
        contract,
        "```",
        "",
        "## How it was made (every command, in order, with its wall time)",
        "",
    ]
    lines += [f"1. `{s['command']}` ({s['seconds']:.0f} s)" for s in steps]
    return "\n".join(lines) + "\n"


def _check_model_json(path: Path) -> dict:
    from app.core.models import load_model

    model = load_model(path, providers=("cpu",), warmup=False)
    return model.describe()


def _bench(detector: Path, steps: list[dict], work: Path) -> dict:
    argv = [
        "ercp-assist",
        "bench",
        "--detector",
        str(detector),
        "--no-classifier",
        "--frames",
        "300",
        "--json",
    ]
    out = work / "bench.json"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        _run(argv, steps)
    out.write_text(buffer.getvalue())
    try:
        return json.loads(buffer.getvalue())
    except ValueError:
        return {"raw": buffer.getvalue()[-2000:]}


def run(args: argparse.Namespace) -> int:
    """Builds both models into ``--out`` and writes their cards and the registry."""
    from app.core.registry import sha256_of

    recipe = Recipe(**{k: getattr(args, k) for k in vars(Recipe())})
    work, out = args.work, args.out
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    steps: list[dict] = []
    data, video = work / "data", work / "video"
    threads = ["--threads", str(recipe.threads)]

    phantom_cmd = ["ercp-assist", "phantom", "--out", str(data), "--images", str(recipe.images),
                   "--seed", str(recipe.data_seed), "--width", str(recipe.width),
                   "--height", str(recipe.height), "--absent", str(recipe.absent)]  # fmt: skip
    if _same_phantom_data(data, recipe):
        # The phantom is deterministic: the same seed and settings give the same pixels.
        steps.append({"command": shlex.join(phantom_cmd) + "  # reused: identical", "seconds": 0})
    else:
        _run(phantom_cmd, steps)

    det_run = work / "detector"
    _run(
        [
            "ercp-train",
            "detect",
            "--data",
            str(data),
            "--test-fraction",
            "0.15",
            "--encoder",
            recipe.det_encoder,
            "--size",
            str(recipe.det_size),
            "--decoder-channels",
            recipe.det_decoder,
            "--epochs",
            str(recipe.det_epochs),
            "--max-time",
            recipe.det_max_time,
            "--patience",
            "4",
            "--seed",
            str(recipe.seed),
            "--out",
            str(det_run),
            "--no-progress",
            *threads,
        ],
        steps,
    )
    det_path = out / DETECTOR_FILE
    _run(
        [
            "ercp-train",
            "export",
            str(_best_checkpoint(det_run)),
            "--out",
            str(det_path),
            "--name",
            f"phantom-ampulla-unet-{recipe.det_encoder}",
            "--model-version",
            "1.0",
        ],
        steps,
    )

    cls_run = work / "classifier"
    _run(
        [
            "ercp-train",
            "classify",
            "--data",
            str(data),
            "--arch",
            recipe.cls_arch,
            "--task",
            "binary",
            "--folds",
            "5",
            "--only-folds",
            "1",
            "--size",
            str(recipe.cls_size),
            "--epochs",
            str(recipe.cls_epochs),
            "--max-time",
            recipe.cls_max_time,
            "--patience",
            "4",
            "--seed",
            str(recipe.seed),
            "--out",
            str(cls_run),
            "--no-progress",
            *threads,
        ],
        steps,
    )
    cls_path = out / CLASSIFIER_FILE
    _run(
        [
            "ercp-train",
            "export",
            str(_best_checkpoint(cls_run)),
            "--out",
            str(cls_path),
            "--name",
            f"phantom-difficulty-{recipe.cls_arch}",
            "--model-version",
            "1.0",
        ],
        steps,
    )

    # The shipped detector on a phantom video it has never seen (a new seed).
    _run(
        [
            "ercp-assist",
            "phantom",
            "--out",
            str(video),
            "--video",
            str(recipe.eval_seconds),
            "--seed",
            str(recipe.eval_seed),
        ],
        steps,
    )
    processed = work / "video-eval"
    _run(
        [
            "ercp-assist",
            "process",
            str(video / "phantom.mp4"),
            "--detector",
            str(det_path),
            "--classifier",
            str(cls_path),
            "--out",
            str(processed),
            "--quiet",
        ],
        steps,
    )
    video_figures = evaluate_on_video(processed / "predictions.jsonl", video / "truth.jsonl")
    bench = _bench(det_path, steps, work)

    total = time.monotonic() - started
    from app.core.sysinfo import cpu_name

    cpu = cpu_name()
    det_report = _summary(det_run / "summary.json")
    cls_report = _summary(cls_run / "report.json")
    registry = {"models": {}}
    for role, path, figures in (
        (
            "detector",
            det_path,
            {
                "video_new_seed": video_figures,
                "bench": _bench_brief(bench),
                "held_out_stills": det_report,
            },
        ),
        ("classifier", cls_path, {"cv_fold_1_of_5": cls_report}),
    ):
        sha = sha256_of(path)
        card = path.with_suffix(".md")
        info = {"contract": _check_model_json(path), "cpu": cpu}
        card.write_text(_card(role, path, sha, info, figures, recipe, steps, total))
        registry["models"][role] = {"file": path.name, "sha256": sha, "card": card.name}
    (out / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")
    (out / "recipe.json").write_text(json.dumps(vars(recipe), indent=2) + "\n")
    print(
        f"default models written to {out} in {total / 60:.1f} min: "
        f"video mean IoU {video_figures['mean_iou']}, "
        f"false positives {video_figures['false_positive_rate']}"
    )
    return 0


def _same_phantom_data(data: Path, recipe: Recipe) -> bool:
    """True if ``data`` already holds the complete still dataset this recipe asks for."""
    try:
        meta = json.loads((data / "phantom.json").read_text())
        coco = json.loads((data / "annotations.json").read_text())
    except (OSError, ValueError):
        return False
    config = meta.get("config", {})
    return (
        meta.get("seed") == recipe.data_seed
        and meta.get("n_images") == recipe.images
        and (config.get("width"), config.get("height")) == (recipe.width, recipe.height)
        and config.get("absent_fraction") == recipe.absent
        and len(coco.get("images", [])) == recipe.images
    )


def _summary(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"missing": str(path)}


def _bench_brief(bench: dict) -> dict:
    keys = ("model_alone", "pipeline", "goals", "machine")
    return {k: bench[k] for k in keys if k in bench} or bench
