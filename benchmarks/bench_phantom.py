"""Benchmark: phantom render speed (ms/frame, fps) in video and still mode, on one core.

Run: ``.venv/bin/python benchmarks/bench_phantom.py [--width 1280 --height 720]``

- ``video``: ``PhantomSource(mode="video", realtime=False).read()`` in sequence, so the figure
  includes the warp, lighting, compositing, burned-in clock, truth box and ``Frame`` with
  ``truth.to_json()``: everything a live 30 fps source does per frame except sleeping.
- ``video scene build``: the one-off cost of ``PhantomVideo(seed, config)`` (texture build).
- ``still``: ``render_still(i)`` for consecutive indices; a scene is built once per patient
  (1 to 4 images), so this is the dataset writer's cost per image without the JPEG encoding.

OpenCV runs with one thread (``cv2.setNumThreads(1)``) unless ``--threads`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import cv2
import numpy as np

from app.core.phantom import PhantomConfig, PhantomSource, PhantomVideo, render_still
from app.core.sysinfo import cpu_name


def machine() -> str:
    """CPU model, core count, Python and library versions."""
    cpu = cpu_name()
    return (
        f"{cpu}; {os.cpu_count()} logical cores; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; numpy {np.__version__}; OpenCV {cv2.__version__}"
    )


def _stats(times_s: list[float]) -> str:
    ms = np.asarray(times_s) * 1000.0
    mean = float(ms.mean())
    return (
        f"mean {mean:6.2f} ms  median {statistics.median(ms):6.2f}  p95 "
        f"{np.percentile(ms, 95):6.2f}  max {ms.max():6.2f}  -> {1000.0 / mean:6.1f} fps"
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--frames", type=int, default=300, help="video frames to time")
    parser.add_argument("--stills", type=int, default=60, help="stills to time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (default 1)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    config = PhantomConfig(width=args.width, height=args.height)

    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"machine: {machine()}")
    print(f"OpenCV threads: {cv2.getNumThreads()}; frame {args.width}x{args.height}")

    builds = []
    for s in range(3):
        t0 = time.perf_counter()
        PhantomVideo(args.seed + s, config)
        builds.append(time.perf_counter() - t0)
    print(f"video scene build ({len(builds)} seeds): {_stats(builds).split('->')[0]}")

    src = PhantomSource(seed=args.seed, config=config, mode="video", realtime=False)
    src.read()  # warm-up
    times = []
    for _ in range(args.frames):
        t0 = time.perf_counter()
        frame = src.read()
        times.append(time.perf_counter() - t0)
        assert frame is not None
    src.close()
    print(f"video ({args.frames} frames):       {_stats(times)}")

    times = []
    for i in range(args.stills):
        t0 = time.perf_counter()
        render_still(i, args.seed, config)
        times.append(time.perf_counter() - t0)
    print(f"still ({args.stills} images):        {_stats(times)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
