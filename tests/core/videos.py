"""Test media: ffmpeg-made videos in several codecs, damaged copies, synthetic processor frames."""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FFMPEG = shutil.which("ffmpeg")


@dataclass(frozen=True)
class VideoSpec:
    """One test video: container suffix and ffmpeg codec arguments."""

    name: str
    suffix: str
    codec_args: tuple[str, ...]


#: The codecs the issue names, each in its usual container.
VIDEO_SPECS = (
    VideoSpec("h264", ".mp4", ("-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "15",
                              "-movflags", "+faststart")),
    VideoSpec("hevc", ".mkv", ("-c:v", "libx265", "-pix_fmt", "yuv420p", "-x265-params",
                              "log-level=error")),
    VideoSpec("mjpeg", ".avi", ("-c:v", "mjpeg", "-q:v", "5")),
    VideoSpec("mpeg4", ".mov", ("-c:v", "mpeg4", "-q:v", "5")),
)  # fmt: skip


def make_video(
    path: Path,
    spec: VideoSpec,
    *,
    size: tuple[int, int] = (160, 90),
    fps: int = 30,
    frames: int = 60,
) -> Path:
    """Encode ffmpeg's ``testsrc2`` pattern (moving shapes: every frame differs)."""
    if FFMPEG is None:
        raise RuntimeError("ffmpeg is not installed")
    cmd = [
        FFMPEG, "-loglevel", "error", "-y", "-f", "lavfi",
        "-i", f"testsrc2=size={size[0]}x{size[1]}:rate={fps}",
        "-frames:v", str(frames), *spec.codec_args, str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return path


def truncated_copy(src: Path, dst: Path, keep: float = 0.6) -> Path:
    """A copy of ``src`` cut after ``keep`` of its bytes (a recording that stopped mid-write)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def corrupt_copy(
    src: Path, dst: Path, at: float = 0.4, length: float = 0.05, seed: int = 0
) -> Path:
    """A copy of ``src`` with ``length`` of its bytes overwritten by noise from ``at`` on."""
    data = bytearray(src.read_bytes())
    rng = random.Random(seed)
    start = int(len(data) * at)
    for i in range(start, min(len(data), start + max(1, int(len(data) * length)))):
        data[i] = rng.randrange(256)
    dst.write_bytes(bytes(data))
    return dst


def octagon(rect: tuple[int, int, int, int], cut: float = 0.18) -> np.ndarray:
    """The corner points of an octagonal window filling ``rect`` (corners cut by ``cut``)."""
    x, y, w, h = rect
    c = int(round(cut * min(w, h)))
    return np.array(
        [(x + c, y), (x + w - 1 - c, y), (x + w - 1, y + c), (x + w - 1, y + h - 1 - c),
         (x + w - 1 - c, y + h - 1), (x + c, y + h - 1), (x, y + h - 1 - c), (x, y + c)],
        np.int32,
    )  # fmt: skip


def processor_frame(
    width: int = 640,
    height: int = 360,
    field: tuple[int, int, int, int] | None = None,
    *,
    window: str = "octagon",
    text: bool = True,
    dark_lumen: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, tuple[int, int, int, int], np.ndarray]:
    """A 16:9 endoscopy-processor frame: black border, a textured window, burned-in text.

    Returns:
        (image, field rect, text mask): the mask marks the burned-in text pixels.
    """
    rng = np.random.default_rng(seed)
    if field is None:
        fh = int(height * 0.9)
        fw = int(fh * 1.1)
        field = (int(width * 0.36), (height - fh) // 2, fw, fh)
    x, y, w, h = field
    window_mask = np.zeros((height, width), np.uint8)
    if window == "octagon":
        cv2.fillPoly(window_mask, [octagon(field)], 255)
    elif window == "rounded":
        r = int(0.25 * min(w, h))
        cv2.rectangle(window_mask, (x + r, y), (x + w - 1 - r, y + h - 1), 255, -1)
        cv2.rectangle(window_mask, (x, y + r), (x + w - 1, y + h - 1 - r), 255, -1)
        for cx, cy in ((x + r, y + r), (x + w - 1 - r, y + r), (x + r, y + h - 1 - r),
                       (x + w - 1 - r, y + h - 1 - r)):  # fmt: skip
            cv2.circle(window_mask, (cx, cy), r, 255, -1)
    else:
        cv2.rectangle(window_mask, (x, y), (x + w - 1, y + h - 1), 255, -1)
    # Mucosa: reddish, smooth shading plus noise; a dark lumen off-centre.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shade = 0.6 + 0.4 * np.cos((xx - x) / max(w, 1) * 3.0) * np.cos((yy - y) / max(h, 1) * 2.0)
    tissue = np.stack([40 * shade, 70 * shade, 170 * shade], axis=-1)
    tissue += rng.normal(0, 6, tissue.shape)
    if dark_lumen:
        d = np.hypot(xx - (x + 0.35 * w), yy - (y + 0.55 * h)) / (0.18 * min(w, h))
        tissue *= np.clip(d, 0.15, 1.0)[..., None]
    image = np.zeros((height, width, 3), np.uint8)
    inside = window_mask > 0
    image[inside] = np.clip(tissue[inside], 0, 255).astype(np.uint8)
    image += rng.integers(0, 4, image.shape, dtype=np.uint8)  # the border is not pure black
    text_mask = np.zeros((height, width), np.uint8)
    if text:
        scale = height / 360 * 0.5
        lines = ["ID: 0012345678", "DOE^JANE", "F 1957/03/14", "2024-05-02 10:31", "Ex: 3 Ce: 1"]
        for i, line in enumerate(lines):
            org = (int(0.02 * width), int((0.10 + 0.07 * i) * height))
            cv2.putText(text_mask, line, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255,
                        max(1, int(round(scale * 2))), cv2.LINE_AA)  # fmt: skip
        thick = max(1, int(round(scale * 2)))
        org = (int(0.02 * width), int(0.92 * height))
        cv2.putText(text_mask, "Olympus EVIS", org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick)
        text_mask[inside] = 0
        image[text_mask > 0] = (235, 235, 235)
    return image, field, text_mask
