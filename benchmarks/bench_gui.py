"""Benchmark: the GUI thread's frame interval while inference runs, at 1080p30 by default.

Run: ``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_gui.py``

The real MainWindow (offscreen) shows a 30 fps source of 1920x1080 phantom frames (rendered
once up front and replayed by a paced source, as a capture card delivers decoded frames),
with a detector that costs what a CNN does (``tests/onnx_fixtures.conv_detector_model``,
calibrated to about ``--target-ips`` inferences/s here) and the fixture classifier. After a
warm-up it records, for ``--seconds``, the time between paints of new frames in the video
view: the GUI thread's frame interval. Goal: p95 <= 1.5 x the source interval.

``--procedure`` measures the full-screen procedure view (frame painted 1:1) instead of the
main window (frame scaled into the video area). ``--detector`` uses a given model.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from app.core.frame import Frame  # noqa: E402
from app.core.sources import Pacer  # noqa: E402


class LoopSource:
    """Replays pre-rendered frames at ``fps`` forever (a live source with no decode cost)."""

    def __init__(self, images: list[np.ndarray], fps: float) -> None:
        self.name = f"loop:{images[0].shape[1]}x{images[0].shape[0]}@{fps:g}"
        self.fps = float(fps)
        self._images = images
        self._pacer = Pacer(fps)
        self._index = 0
        self._closed = threading.Event()

    def read(self) -> Frame | None:
        delay = self._pacer.delay()
        if delay > 0 and self._closed.wait(delay):
            return None
        if self._closed.is_set():
            return None
        self._pacer.tick()
        image = self._images[self._index % len(self._images)]
        frame = Frame(image=image, index=self._index, t=time.monotonic(), position_s=None)
        self._index += 1
        return frame

    def close(self) -> None:
        self._closed.set()


def phantom_frames(width: int, height: int, count: int) -> list[np.ndarray]:
    """``count`` consecutive phantom video frames."""
    from app.core.phantom import PhantomConfig, PhantomSource

    source = PhantomSource(seed=1, config=PhantomConfig(width=width, height=height), realtime=False)
    try:
        return [source.read().image for _ in range(count)]
    finally:
        source.close()


def summary(values: np.ndarray) -> str:
    """``mean p50 p95 max`` of an array, in ms."""
    if values.size == 0:
        return "n/a"
    p50, p95 = np.percentile(values, [50, 95])
    return f"mean {values.mean():6.1f}  p50 {p50:6.1f}  p95 {p95:6.1f}  max {values.max():6.1f} ms"


def main(argv: list[str] | None = None) -> int:
    """Run the window, measure, print the figures; exit 0 if the goal is met."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--window", default="1920x1080", help="main window size")
    parser.add_argument("--detector", type=Path, help="detector model (default: calibrated conv)")
    parser.add_argument(
        "--target-ips",
        type=float,
        default=15.0,
        help="inferences/s the default conv detector is calibrated to",
    )
    parser.add_argument("--no-classifier", action="store_true")
    parser.add_argument("--procedure", action="store_true", help="measure procedure mode")
    parser.add_argument(
        "--hide",
        nargs="*",
        default=[],
        metavar="ELEMENT",
        choices=["heatmap", "box", "centroid", "difficulty", "cam", "hud"],
        help="overlay elements to switch off (default: the app's defaults)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="ONNX Runtime intra-op threads per model (default: the app's)",
    )
    args = parser.parse_args(argv)

    from PySide6.QtCore import QTimer

    from app.ui.app import make_application, offscreen_screens, parse_size
    from app.ui.banners import NotificationManager
    from app.ui.main_window import MainWindow
    from app.ui.settings import AppSettings
    from tests import onnx_fixtures

    size = parse_size(args.window)
    offscreen_screens(size)
    tmp = Path(tempfile.mkdtemp(prefix="bench-gui-"))
    detector = args.detector
    ips = None
    if detector is None:
        detector = tmp / "conv.onnx"
        layers, ips = onnx_fixtures.calibrate_conv_detector(detector, args.target_ips)
    classifier = None
    if not args.no_classifier:
        classifier = onnx_fixtures.save(onnx_fixtures.classifier_model(), tmp / "cls.onnx")
    frames = phantom_frames(args.width, args.height, 60)

    app = make_application()
    notifications = NotificationManager()
    settings = AppSettings.at_path(tmp / "settings.ini", read_only=True)
    window = MainWindow(notifications, settings)
    window.resize(*size)
    window.show()
    if args.hide:
        window.session.set_options(
            dataclasses.replace(window.session.options, **{name: False for name in args.hide})
        )
    if args.threads is not None:
        window.session.set_config(window.session.config.with_changes(intra_op_threads=args.threads))
    window.load_model("detector", str(detector))
    if classifier is not None:
        window.load_model("classifier", str(classifier))
    if not window.session.wait_idle(60.0) or "detector" not in window.session.models():
        print("error: the detector did not load", file=sys.stderr)
        return 2
    window.session.open_source(LoopSource(frames, args.fps))
    if args.procedure:
        window.enter_procedure_mode()
    view = window.procedure.video if window.procedure is not None else window.video
    marks: dict[str, object] = {}

    def start_measuring() -> None:
        marks["painted"] = view.painted_frames
        marks["stats"] = window.session.pipeline.stats()
        marks["t"] = time.monotonic()

    # The view keeps the times of its last INTERVAL_HISTORY paints; collect them every second.
    collected: list[float] = []

    def collect() -> None:
        if "t" not in marks:
            return
        for t in view.paint_times():
            if t >= marks["t"] and (not collected or t > collected[-1]):
                collected.append(t)

    def finish() -> None:
        collect()
        marks["end_t"] = time.monotonic()
        marks["end_painted"] = view.painted_frames
        marks["end_stats"] = window.session.pipeline.stats()
        marks["render"] = window.session.render_times_ms()
        app.quit()  # closes the window, which stops the session

    collector = QTimer()
    collector.timeout.connect(collect)
    collector.start(1000)
    QTimer.singleShot(int(args.warmup * 1000), start_measuring)
    QTimer.singleShot(int((args.warmup + args.seconds) * 1000), finish)
    load_before = os.getloadavg()
    app.exec()
    collector.stop()
    stats = marks["end_stats"]
    elapsed = marks["end_t"] - marks["t"]
    painted = marks["end_painted"] - marks["painted"]
    captured = stats.frames_captured - marks["stats"].frames_captured
    intervals = np.diff(np.asarray(collected)) * 1000.0
    source_ms = 1000.0 / args.fps
    p95 = float(np.percentile(intervals, 95)) if intervals.size else float("inf")
    render = marks["render"]
    window.close()
    window.deleteLater()
    notifications.close()

    print(
        f"# bench_gui  {platform.node()}  {platform.machine()}  cpus={os.cpu_count()}  "
        f"python {platform.python_version()}  platform={app.platformName().split(':')[0]}"
    )
    print(
        f"# load average (1/5/15 min) before: {load_before[0]:.2f} {load_before[1]:.2f} "
        f"{load_before[2]:.2f}  after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    print(
        "# command: QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py "
        + " ".join(sys.argv[1:] if argv is None else argv)
    )
    mode = "procedure (1:1)" if args.procedure else f"main window {args.window}"
    print(
        f"source {args.width}x{args.height} @ {args.fps:g} fps; view: {mode}; "
        f"detector {Path(detector).name}"
        + (f" (calibrated {ips:.1f} inferences/s alone)" if ips else "")
        + ("" if classifier is None else " + classifier")
        + f"; ORT intra-op threads {window.session.config.intra_op_threads or 'auto'}"
        + (f"; overlay without {', '.join(args.hide)}" if args.hide else "")
    )
    print(
        f"measured {elapsed:.1f} s: captured {captured} frames, painted {painted} "
        f"({painted / elapsed:.1f} fps), inference {stats.inference_fps:.1f}/s, "
        f"latency p50/p95 {stats.latency_p50_ms or 0:.0f}/{stats.latency_p95_ms or 0:.0f} ms, "
        f"AI skipped {stats.dropped_frames} frames"
    )
    print(f"GUI frame interval: {summary(intervals)}  (n={intervals.size})")
    print(f"overlay render on the GUI thread: {summary(render)}")
    goal = 1.5 * source_ms
    verdict = "MET" if p95 <= goal else "NOT MET"
    print(f"goal p95 <= {goal:.1f} ms (1.5 x {source_ms:.1f} ms): {verdict} (p95 {p95:.1f} ms)")
    print(
        f"frames captured but never painted: {max(captured - painted, 0)} "
        f"({100.0 * max(captured - painted, 0) / max(captured, 1):.1f} %)"
    )
    return 0 if p95 <= goal else 1


if __name__ == "__main__":
    sys.exit(main())
