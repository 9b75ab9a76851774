"""``ercp-assist process``: run the models on every frame of a video and write the results."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HELP = "annotate every frame of a video, image folder or phantom run (no GUI)"

ANNOTATED = "annotated.mp4"
PREDICTIONS = "predictions.jsonl"
MANIFEST = "manifest.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the process options."""
    from app.commands.engine_common import add_model_arguments, positive_int

    parser.add_argument(
        "input",
        metavar="INPUT",
        nargs="?",
        help="a video file, an image folder, or 'phantom' / 'phantom:SEED'",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the demo: a phantom video (new seed) with the shipped models, 600 frames",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    add_model_arguments(parser)
    parser.add_argument(
        "--frames",
        type=positive_int,
        metavar="N",
        help="stop after N frames (required for the endless phantom)",
    )
    parser.add_argument(
        "--no-phi-mask",
        action="store_true",
        help="keep what lies outside the endoscopic field (patient data!)",
    )
    parser.add_argument(
        "--codec",
        default="mp4v",
        metavar="FOURCC",
        help="video codec FOURCC for annotated.mp4 (default mp4v)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


class ProgressBar:
    """A one-line carriage-return progress bar on a stream, redrawn at most 10 times a second."""

    def __init__(self, total: int | None, stream=None, enabled: bool = True, width: int = 30):
        self.total, self.width, self.enabled = total, width, enabled
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def update(self, done: int, force: bool = False) -> None:
        """Redraw for ``done`` items (throttled unless ``force``)."""
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1):
            return
        self._last = now
        rate = done / max(now - self.start, 1e-9)
        if self.total:
            filled = int(self.width * min(done / self.total, 1.0))
            bar = "#" * filled + "." * (self.width - filled)
            text = f"\r[{bar}] {done}/{self.total} frames {rate:5.1f} fps"
        else:
            text = f"\r{done} frames {rate:5.1f} fps"
        self.stream.write(text)
        self.stream.flush()
        self._drawn = True

    def close(self, done: int) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self.update(done, force=True)
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()


def _frame_total(source, limit: int | None) -> int | None:
    count = getattr(source, "frame_count", None)
    if limit is not None:
        return min(limit, count) if count else limit
    return count


def _percentiles(values: list[float]) -> dict[str, float | None]:
    import numpy as np

    if not values:
        return {"mean": None, "p50": None, "p95": None}
    p50, p95 = np.percentile(values, [50, 95])
    return {
        "mean": round(float(np.mean(values)), 3),
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
    }


def process_source(
    source,
    processor,
    out_dir: Path,
    *,
    config,
    models,
    input_spec: str,
    frames: int | None = None,
    codec: str = "mp4v",
    progress: bool = True,
) -> dict:
    """Run ``processor`` on every frame of ``source`` and write the three output files.

    Every frame is processed (nothing is skipped, unlike the live pipeline); the annotated
    video is drawn by the same renderer as the screen, PHI-masked when ``config.phi_mask``.
    Files are written under temporary names and renamed at the end, so a crash never leaves
    a complete-looking but partial result.

    Returns:
        The manifest that was written.

    Raises:
        SourceError: if the input has no readable frame.
        ExportError: if an output cannot be written.
    """
    import json

    import cv2

    from app.core.atomic import atomic_write_json, export_error
    from app.core.errors import ExportError, SourceError
    from app.core.overlay import HudInfo, OverlayOptions, render_overlay
    from app.core.recording import app_version
    from app.core.records import prediction_record

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise export_error("create the output folder", out_dir, exc) from exc
    video_tmp = out_dir / f".{ANNOTATED}.partial.mp4"
    jsonl_tmp = out_dir / f".{PREDICTIONS}.partial"
    options = OverlayOptions.from_config(config)
    provider = models[0].provider_report.chosen_short.upper() if models else None
    label = " + ".join(m.info.label for m in models) or None
    bar = ProgressBar(_frame_total(source, frames), enabled=progress)
    writer = None
    count = detections = 0
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    source_error = None
    started = time.monotonic()
    try:
        jsonl = open(jsonl_tmp, "w", encoding="utf-8")  # noqa: SIM115 (closed in finally)
    except OSError as exc:
        raise export_error("write", jsonl_tmp, exc) from exc
    try:
        while frames is None or count < frames:
            try:
                frame = source.read()
            except SourceError as exc:
                if count == 0:
                    raise
                source_error = str(exc)
                break
            if frame is None:
                break
            prediction = processor.process(frame) if processor is not None else None
            hud = HudInfo(None, prediction.latency_ms if prediction else None, provider, label)
            roi = prediction.roi if prediction is not None else None
            image = render_overlay(
                frame.image, prediction, options, hud, roi=roi, phi_mask=config.phi_mask
            )
            if writer is None:
                fps = float(getattr(source, "fps", 0.0) or 30.0)
                writer = cv2.VideoWriter(
                    str(video_tmp),
                    cv2.VideoWriter_fourcc(*codec),
                    fps,
                    (image.shape[1], image.shape[0]),
                )
                if not writer.isOpened():
                    raise ExportError(
                        f"cannot write {video_tmp}: OpenCV has no {codec!r} "
                        "encoder here or the folder is not writable"
                    )
            writer.write(image)
            try:
                jsonl.write(json.dumps(prediction_record(frame, prediction)) + "\n")
            except OSError as exc:
                raise export_error("write", jsonl_tmp, exc) from exc
            count += 1
            if prediction is not None:
                detections += prediction.box is not None
                latencies.append(prediction.latency_ms)
                for stage, ms in prediction.timings_ms.items():
                    stages.setdefault(stage, []).append(ms)
            bar.update(count)
    finally:
        bar.close(count)
        jsonl.close()
        if writer is not None:
            writer.release()
    if count == 0:
        raise SourceError(f"{input_spec}: no readable frame")
    wall = time.monotonic() - started
    try:
        video_tmp.replace(out_dir / ANNOTATED)
        jsonl_tmp.replace(out_dir / PREDICTIONS)
    except OSError as exc:
        raise export_error("finish", out_dir, exc) from exc
    manifest = {
        "format": "ercp-assist-process",
        "format_version": 1,
        "app_version": app_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "input": {
            "spec": input_spec,
            "name": getattr(source, "name", input_spec),
            "fps": float(getattr(source, "fps", 0.0) or 0.0),
            "frame_limit": frames,
            "source_error": source_error,
        },
        "settings": config.to_dict(),
        "models": [m.describe() for m in models],
        "outputs": {
            "video": ANNOTATED,
            "predictions": PREDICTIONS,
            "phi_masked": bool(config.phi_mask),
            "codec": codec,
        },
        "counts": {"frames": count, "predictions": len(latencies), "detections": detections},
        "timings": {
            "wall_s": round(wall, 3),
            "frames_per_s": round(count / max(wall, 1e-9), 2),
            "latency_ms": _percentiles(latencies),
            "stages_ms": {k: _percentiles(v)["mean"] for k, v in stages.items()},
        },
    }
    atomic_write_json(out_dir / MANIFEST, manifest)
    return manifest


def run(args: argparse.Namespace) -> int:
    """Processes the input; a refused model or unreadable input exits 2 with one line."""
    from app.commands.engine_common import engine_config, load_engine_models
    from app.core.pipeline import FrameProcessor
    from app.core.sources import open_source

    if args.demo:
        from app.commands.demo import DEMO_FRAMES, DEMO_SOURCE, shipped_models

        if args.input is not None:
            raise ValueError(f"--demo takes no INPUT (got {args.input!r})")
        args.detector, shipped_classifier = shipped_models()
        args.classifier = args.classifier or shipped_classifier
        args.input = DEMO_SOURCE
        args.frames = args.frames or DEMO_FRAMES
    elif args.input is None:
        raise ValueError("INPUT is required (a video, a folder or 'phantom'), or pass --demo")
    config = engine_config(args, **({"phi_mask": False} if args.no_phi_mask else {}))
    detector, classifier, models = load_engine_models(args, config, need_detector=False)
    if args.input.startswith("phantom") and args.frames is None:
        raise ValueError("the phantom never ends: pass --frames N")
    source = open_source(args.input, realtime=False)
    try:
        processor = FrameProcessor(detector, classifier, config)
        manifest = process_source(
            source,
            processor,
            args.out,
            config=config,
            models=models,
            input_spec=args.input,
            frames=args.frames,
            codec=args.codec,
            progress=not args.quiet,
        )
    finally:
        source.close()
    counts = manifest["counts"]
    print(
        f"processed {counts['frames']} frames ({counts['detections']} with a box) in "
        f"{manifest['timings']['wall_s']:.1f} s -> {args.out}"
    )
    problem = manifest["input"]["source_error"]
    if problem:
        print(f"warning: input ended early: {problem}", file=sys.stderr)
        return 1
    return 0
