"""``ercp-assist bench``: model-alone throughput vs the full real-time pipeline on one source."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time

HELP = "benchmark the models alone and the real-time pipeline (throughput, latency, drops)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the bench options."""
    from app.commands.engine_common import add_model_arguments, positive_int

    add_model_arguments(parser)
    parser.add_argument(
        "--source",
        default="phantom",
        metavar="SOURCE",
        help="'phantom' / 'phantom:SEED' or a video file (default phantom)",
    )
    parser.add_argument(
        "--frames",
        type=positive_int,
        default=300,
        metavar="N",
        help="model-alone iterations and pipeline frames (default 300)",
    )
    parser.add_argument(
        "--display-hz",
        type=float,
        default=60.0,
        metavar="HZ",
        help="rate of the simulated display polling latest_frame (default 60)",
    )
    parser.add_argument(
        "--model-time-ms",
        type=float,
        metavar="MS",
        help="make each detector run take at least MS ms by waiting after it (simulates a "
        "model on an accelerator: a fixed model time that leaves the CPU free)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def _pct(values, qs=(50, 95, 99)) -> dict[str, float | None]:
    import numpy as np

    if len(values) == 0:
        return {f"p{q}": None for q in qs}
    return {f"p{q}": round(float(v), 2) for q, v in zip(qs, np.percentile(values, qs), strict=True)}


def machine_info(models) -> dict:
    """CPU, cores, load and software versions, for the record."""
    import onnxruntime

    from app.core.sysinfo import cpu_name

    cpu = cpu_name()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1_5_15": [round(v, 2) for v in load] if load else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "providers": sorted({m.provider for m in models}),
        "provider_report": [m.provider_report.summary() for m in models],
    }


def _open(spec: str, frames: int, realtime: bool):
    if spec == "phantom" or spec.startswith("phantom:"):
        from app.core.errors import SourceError
        from app.core.phantom import PhantomSource

        seed_text = spec.partition(":")[2] or "0"
        if not seed_text.isdigit():
            raise SourceError(f"bad phantom seed {seed_text!r}: expected e.g. 'phantom:3'")
        return PhantomSource(seed=int(seed_text), realtime=realtime, max_frames=frames)
    from app.core.sources import open_source

    return _Limited(open_source(spec, realtime=realtime), frames)


class _Limited:
    """A source cut after ``n`` frames."""

    def __init__(self, source, n: int) -> None:
        self._source, self._left = source, n
        self.name, self.fps = source.name, source.fps

    def read(self):
        if self._left <= 0:
            return None
        self._left -= 1
        return self._source.read()

    def close(self) -> None:
        self._source.close()


def bench_models(detector, classifier, processor, frame, iterations: int) -> dict:
    """Phase 1: the models alone in a loop on one frame (no threads, no source)."""
    import numpy as np

    from app.core.inference import prepare_input

    roi = processor.find_field(frame.image)
    out: dict = {}
    total_ms = np.zeros(iterations)
    for name, wrapper in (("detector", detector), ("classifier", classifier)):
        if wrapper is None:
            continue
        model = wrapper.model
        batch = prepare_input(frame.image, roi, model.info.input)[0][None]
        for _ in range(3):
            model.run(batch)
        times = np.empty(iterations)
        for i in range(iterations):
            start = time.perf_counter()
            model.run(batch)
            times[i] = (time.perf_counter() - start) * 1000.0
        out[name] = {
            "ms_mean": round(float(times.mean()), 2),
            **_pct(times, (50, 95)),
            "inferences_per_s": round(1000.0 / float(times.mean()), 2),
        }
        every = processor.config.classifier_every if name == "classifier" else 1
        total_ms += times / every
    # The per-frame engine work without threads: ROI, crop/resize, models, postprocess.
    engine = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter()
        processor.process(frame)
        engine[i] = (time.perf_counter() - start) * 1000.0
    # The overlay drawn on the frame (what the display and the recorder pay per frame).
    from app.core.overlay import HudInfo, OverlayOptions, render_overlay

    prediction = processor.process(frame)
    options = OverlayOptions.from_config(processor.config)
    hud = HudInfo(30.0, prediction.latency_ms, "CPU", "model")
    draw = np.empty(min(iterations, 100))
    for i in range(len(draw)):
        start = time.perf_counter()
        render_overlay(frame.image, prediction, options, hud, phi_mask=processor.config.phi_mask)
        draw[i] = (time.perf_counter() - start) * 1000.0
    processor.reset()
    out["overlay"] = {
        "frame": f"{frame.width}x{frame.height}",
        "ms_mean": round(float(draw.mean()), 2),
        **_pct(draw, (50, 95)),
    }
    out["models_per_frame"] = {
        "ms_mean": round(float(total_ms.mean()), 2),
        "frames_per_s": round(1000.0 / float(total_ms.mean()), 2),
    }
    out["engine_per_frame"] = {
        "ms_mean": round(float(engine.mean()), 2),
        **_pct(engine, (50, 95)),
        "frames_per_s": round(1000.0 / float(engine.mean()), 2),
    }
    return out


class DisplayProbe:
    """A simulated display: a thread that, like a GUI timer at ``hz``, takes the newest frame.

    It records, for each frame it shows for the first time, when it showed it, and for every
    tick how late it ran against its schedule. This is what a QTimer-driven view does; it
    does not wait on the pipeline. Ticks are placed half a period after the first frame's
    capture so that they do not coincide with frame arrivals. Tick lateness is independent of
    that phase: it is the delay the rest of the process (the inference thread, with AI on)
    and the machine add before the display gets to run.
    """

    def __init__(self, pipeline, hz: float) -> None:
        self.pipeline, self.period = pipeline, 1.0 / hz
        self.shown: list[tuple[float, int, float]] = []  # (time, frame index, frame age)
        self.late: list[float] = []  # seconds each tick ran after it was due
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="display-probe", daemon=True)

    def start(self) -> DisplayProbe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        first = None
        while first is None and not self._stop.is_set():
            first = self.pipeline.wait_frame(0, timeout=0.5)[1]
        if first is None:
            return
        last = -1
        tick = 0
        while not self._stop.is_set():
            due = first.t + (tick + 0.5) * self.period
            self._stop.wait(max(0.0, due - time.monotonic()))
            frame = self.pipeline.latest_frame()
            now = time.monotonic()
            self.late.append(max(0.0, now - due))
            if frame is not None and frame.index != last:
                self.shown.append((now, frame.index, now - frame.t))
                last = frame.index
            # After a stall (busy machine) skip the missed ticks instead of bursting.
            tick = max(tick + 1, int((now - first.t) / self.period))


def bench_pipeline(spec: str, frames: int, detector, classifier, config, display_hz: float):
    """Phase 2: the full pipeline on the source paced at its fps, with a display and a sink."""
    import numpy as np

    from app.core.pipeline import Pipeline

    source = _open(spec, frames, realtime=True)
    delivered: list[int] = []
    made: list[tuple[float, float]] = []  # (ready time, latency ms)
    sink = lambda frame, prediction: delivered.append(frame.index)  # noqa: E731
    pipeline = Pipeline(
        source,
        detector,
        classifier,
        config,
        frame_sinks=[sink],
        on_prediction=lambda p: made.append((p.ready_t, p.latency_ms)),
    )
    probe = DisplayProbe(pipeline, display_hz)
    started = time.monotonic()
    with pipeline:
        probe.start()
        while not pipeline.source_ended and time.monotonic() - started < frames / 2 + 60:
            pipeline.wait_frame(pipeline.stats().frames_captured, timeout=0.5)
        # Let the last prediction and display tick land.
        time.sleep(max(0.2, 3 * probe.period))
        probe.stop()
        stats = pipeline.stats()
    wall = time.monotonic() - started
    shown_t = np.array([s[0] for s in probe.shown])
    ages = np.array([s[2] for s in probe.shown]) * 1000.0
    intervals = np.diff(shown_t) * 1000.0 if len(shown_t) > 1 else np.array([])
    captured = stats.frames_captured
    inferred = stats.frames_inferred
    latencies = [m[1] for m in made]
    # Steady-state rate: first to last prediction (start-up and the final wait excluded).
    span = made[-1][0] - made[0][0] if len(made) > 1 else 0.0
    inference_fps = (len(made) - 1) / span if span > 0 else 0.0
    return {
        "source": getattr(source, "name", spec),
        "source_fps": stats.source_fps,
        "frames_captured": captured,
        "capture_fps": round(captured / wall, 2) if wall > 0 else 0.0,
        "frames_to_sink": len(delivered),
        "frames_displayed": len({s[1] for s in probe.shown}),
        "display_interval_ms": _pct(intervals, (50, 95)),
        "capture_to_display_ms": _pct(ages, (50, 95)),
        "display_tick_late_ms": _pct(np.array(probe.late) * 1000.0, (50, 95)),
        "frames_inferred": inferred,
        "inference_fps": round(inference_fps, 2),
        "frames_without_prediction": captured - inferred,
        "latency_ms": _pct(latencies),
        "errors": stats.errors,
        "wall_s": round(wall, 2),
    }


class FixedTimeModel:
    """Wraps a model so each ``run`` takes at least ``seconds``, waiting (not computing).

    Stands in for a model on an accelerator: the inference thread waits with the GIL released
    and the CPU is free for capture and display, so what remains is the pipeline's own cost.
    """

    def __init__(self, model, seconds: float) -> None:
        self._model, self.seconds = model, seconds
        self._wait = threading.Event()  # never set: wait() is an interruptible sleep

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def run(self, batch):
        start = time.perf_counter()
        out = self._model.run(batch)
        left = self.seconds - (time.perf_counter() - start)
        if left > 0:
            self._wait.wait(left)
        return out


def _merge_alone(before: dict, after: dict) -> dict:
    """Average two model-alone measurements (means and percentiles alike) and keep both."""
    merged: dict = {}
    for key, first in before.items():
        second = after[key]
        merged[key] = {
            k: (round((v + second[k]) / 2, 2) if isinstance(v, (int, float)) else v)
            for k, v in first.items()
        }
    # Rates follow from the mean times (averaging rates would weight the slow run less).
    for figures in merged.values():
        for rate in ("frames_per_s", "inferences_per_s"):
            if rate in figures and figures.get("ms_mean"):
                figures[rate] = round(1000.0 / figures["ms_mean"], 2)
    merged["runs"] = {"before": before["models_per_frame"], "after": after["models_per_frame"]}
    return merged


def run_bench(args: argparse.Namespace) -> dict:
    """All figures of one benchmark run, as a dict."""
    from app.commands.engine_common import engine_config, load_engine_models
    from app.core.pipeline import FrameProcessor

    config = engine_config(args)
    detector, classifier, models = load_engine_models(args, config, need_detector=True)
    if getattr(args, "model_time_ms", None):
        from app.core.inference import Detector

        detector = Detector(
            FixedTimeModel(detector.model, args.model_time_ms / 1000.0),
            detector.min_peak,
            detector.box_threshold,
        )
    first = _open(args.source, 1, realtime=False)
    try:
        frame = first.read()
    finally:
        first.close()
    if frame is None:
        from app.core.errors import SourceError

        raise SourceError(f"{args.source}: no readable frame")
    processor = FrameProcessor(detector, classifier, config)
    # The models alone run before and after the pipeline, half the iterations each, and the
    # two are averaged: on a shared machine the load drifts, and a limit measured only before
    # would compare the pipeline with a different machine.
    half = max(1, args.frames // 2)
    before = bench_models(detector, classifier, processor, frame, half)
    with_ai = bench_pipeline(
        args.source, args.frames, detector, classifier, config, args.display_hz
    )
    after = bench_models(detector, classifier, processor, frame, half)
    video_only = bench_pipeline(args.source, args.frames, None, None, config, args.display_hz)
    alone = _merge_alone(before, after)
    model_fps = alone["models_per_frame"]["frames_per_s"]
    model_ms = alone["models_per_frame"]["ms_mean"]
    source_fps = with_ai["source_fps"] or float("nan")
    limit = min(model_fps, source_fps)
    pipe_fps = with_ai["inference_fps"]
    p95 = with_ai["latency_ms"]["p95"]
    latency_bound = 1.3 * model_ms + 1000.0 / source_fps
    goals = {
        "throughput_ratio": round(pipe_fps / model_fps, 3),
        "throughput_ratio_of_limit": round(pipe_fps / limit, 3),
        "throughput_ok": pipe_fps >= 0.95 * limit,
        "every_frame_to_display_sink": with_ai["frames_to_sink"] == with_ai["frames_captured"],
        "every_frame_seen_by_display_poll": (
            with_ai["frames_displayed"] == with_ai["frames_captured"]
        ),
        "latency_p95_bound_ms": round(latency_bound, 2),
        "latency_ok": p95 is not None and p95 <= latency_bound,
    }
    return {
        "command": "ercp-assist " + " ".join(sys.argv[1:])
        if sys.argv[0].endswith("ercp-assist")
        else " ".join(sys.argv),
        "machine": machine_info(models),
        "models": [
            {
                "name": m.info.label,
                "path": str(m.path),
                "sha256": m.sha256[:12],
                "provider": m.provider,
            }
            for m in models
        ],
        "settings": {
            "classifier_every": config.classifier_every,
            "frames": args.frames,
            "display_hz": args.display_hz,
            "model_time_ms": getattr(args, "model_time_ms", None),
        },
        "model_alone": alone,
        "pipeline": with_ai,
        "video_only": video_only,
        "goals": goals,
    }


def _print(result: dict) -> None:
    m, a, p, v, g = (
        result[k] for k in ("machine", "model_alone", "pipeline", "video_only", "goals")
    )
    print(f"command:  {result['command']}")
    print(
        f"machine:  {m['cpu']}, {m['cores']} cores, load {m['load_avg_1_5_15']}, "
        f"onnxruntime {m['onnxruntime']}, {', '.join(m['providers'])}"
    )
    for model in result["models"]:
        print(f"model:    {model['name']} ({model['provider']}, sha256 {model['sha256']})")
    if result["settings"]["model_time_ms"]:
        print(
            f"          detector runs held to >= {result['settings']['model_time_ms']:g} ms "
            "(--model-time-ms: simulated accelerator)"
        )
    print("1) models alone")
    for name in ("detector", "classifier"):
        if name in a:
            r = a[name]
            print(
                f"   {name:<11} {r['inferences_per_s']:8.1f} inferences/s   "
                f"{r['p50']:.1f} ms p50, {r['p95']:.1f} ms p95"
            )
    print(
        f"   per frame   {a['models_per_frame']['frames_per_s']:8.1f} frames/s       "
        f"{a['models_per_frame']['ms_mean']:.1f} ms (models), "
        f"{a['engine_per_frame']['ms_mean']:.1f} ms (with ROI, resize, postprocess)"
    )
    runs = a["runs"]
    print(
        f"   (models alone before / after the pipeline: {runs['before']['frames_per_s']:.1f} / "
        f"{runs['after']['frames_per_s']:.1f} frames/s; the figures above are their mean)"
    )
    o = a["overlay"]
    print(f"   overlay     {o['frame']}: {o['p50']:.1f} ms p50, {o['p95']:.1f} ms p95 to draw")
    print(f"2) pipeline on {p['source']} at {p['source_fps']:g} fps, {p['frames_captured']} frames")
    print(
        f"   inference   {p['inference_fps']:8.1f} predictions/s  ratio to models alone "
        f"{g['throughput_ratio']:.3f}, to min(models, source) {g['throughput_ratio_of_limit']:.3f}"
    )
    lat = p["latency_ms"]
    print(
        f"   latency     capture -> prediction ready p50 {lat['p50']} ms, p95 {lat['p95']} ms, "
        f"p99 {lat['p99']} ms (goal p95 <= {g['latency_p95_bound_ms']} ms)"
    )
    print(
        f"   frames      {p['frames_to_sink']}/{p['frames_captured']} to the display sink, "
        f"{p['frames_displayed']}/{p['frames_captured']} seen by the display poll, "
        f"{p['frames_without_prediction']} without a prediction (skipped by the model)"
    )
    print(
        f"               video only: {v['frames_displayed']}/{v['frames_captured']} seen by the "
        "display poll with no model running"
    )
    for label, r in (("with AI", p), ("video only", v)):
        print(
            f"   display     {label:<10} interval p50 {r['display_interval_ms']['p50']} ms, "
            f"p95 {r['display_interval_ms']['p95']} ms; capture -> display p50 "
            f"{r['capture_to_display_ms']['p50']} ms, p95 {r['capture_to_display_ms']['p95']} "
            f"ms; display tick late p50 {r['display_tick_late_ms']['p50']} ms, "
            f"p95 {r['display_tick_late_ms']['p95']} ms"
        )
    print(
        "goals:    "
        + ", ".join(
            f"{k} {'PASS' if g[k] else 'FAIL'}"
            for k in (
                "throughput_ok",
                "every_frame_to_display_sink",
                "every_frame_seen_by_display_poll",
                "latency_ok",
            )
        )
    )


def run(args: argparse.Namespace) -> int:
    """Runs the benchmark and prints the figures."""
    result = run_bench(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0
