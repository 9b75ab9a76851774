"""DDP on CPU: two gloo processes train the detector and rank 0 writes the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.test_detect import TINY, write_dataset


@pytest.mark.slow
def test_detect_ddp_two_cpu_processes(tmp_path):
    data = write_dataset(tmp_path / "data", n=12)
    out = tmp_path / "run"
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    cmd = [
        sys.executable,
        "-m",
        "training.cli",
        "detect",
        "--data",
        str(data),
        "--folds",
        "2",
        "--out",
        str(out),
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--accelerator",
        "cpu",
        *TINY,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world_size=2" in proc.stderr or "GLOBAL_RANK: 1" in proc.stderr, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["summary"]["heatmap"]["folds"]) == {"0", "1"}
    assert (out / "fold1" / "heatmap" / "checkpoints" / "best.ckpt").is_file()
