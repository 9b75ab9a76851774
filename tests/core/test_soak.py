"""Soak: 10,000+ phantom frames through the pipeline, no leaked threads, flat memory."""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc

import pytest

from app.core.config import EngineConfig
from app.core.inference import Classifier, Detector
from app.core.phantom import PhantomConfig, PhantomSource
from app.core.pipeline import Pipeline

FRAMES = 10_000
WARMUP = 2_000
#: Memory may grow this much between the warm-up mark and the end (allocator noise).
MAX_GROWTH_BYTES = 16 << 20


def rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


@pytest.mark.slow
def test_soak_10000_phantom_frames(detector, classifier):
    use_rss = rss_bytes() is not None
    if not use_rss:
        tracemalloc.start()
    memory = {}
    seen = [0]

    def sink(frame, prediction):
        seen[0] += 1
        if seen[0] == WARMUP:
            gc.collect()
            memory["warm"] = rss_bytes() if use_rss else tracemalloc.get_traced_memory()[0]

    threads_before = set(threading.enumerate())
    source = PhantomSource(
        seed=7, config=PhantomConfig(width=320, height=180), realtime=False, max_frames=FRAMES
    )
    config = EngineConfig(classifier_every=3)
    with Pipeline(
        source, Detector(detector), Classifier(classifier), config, frame_sinks=[sink]
    ) as pipeline:
        deadline = time.monotonic() + 600
        while not pipeline.source_ended and time.monotonic() < deadline:
            pipeline.wait_frame(pipeline.stats().frames_captured, timeout=1.0)
        stats = pipeline.stats()
        events = pipeline.events()
    gc.collect()
    end = rss_bytes() if use_rss else tracemalloc.get_traced_memory()[0]
    if not use_rss:
        tracemalloc.stop()
    assert stats.frames_captured == FRAMES and seen[0] == FRAMES
    assert stats.frames_inferred > 100 and stats.errors == 0 and stats.sink_errors == 0
    assert [e.kind for e in events] == ["source_ended"]
    growth = end - memory["warm"]
    assert growth < MAX_GROWTH_BYTES, f"memory grew by {growth / 2**20:.1f} MiB"
    leaked = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not leaked, [t.name for t in leaked]
