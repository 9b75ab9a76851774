"""Writers for phantom datasets: COCO stills with labels.csv, and video with per-frame truth."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np

from app.core.errors import ConfigError, ExportError
from app.core.phantom import PhantomConfig, PhantomVideo, render_still

log = logging.getLogger(__name__)

LABEL_COLUMNS = (
    "image",
    "patient_id",
    "cannulation_time_s",
    "additional_technique",
    "failed",
    "morphology",
)
CATEGORIES = [{"id": 1, "name": "ampulla"}]
JPEG_QUALITY = 92


class _Progress:
    """Logs a line at every ~10 % of the work."""

    def __init__(self, what: str, total: int):
        self.what, self.total = what, max(1, total)
        self.step = max(1, self.total // 10)
        self.t0 = time.monotonic()

    def update(self, done: int) -> None:
        if done % self.step == 0 or done == self.total:
            elapsed = time.monotonic() - self.t0
            log.info(
                "%s: %d/%d (%.0f%%) in %.1f s",
                self.what,
                done,
                self.total,
                100.0 * done / self.total,
                elapsed,
            )


def _prepare(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create output folder {out}: {exc.strerror}") from exc
    return out


def _write_json(path: Path, value: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    tmp.replace(path)


def write_still_dataset(
    out_dir: str | Path, n_images: int, seed: int, config: PhantomConfig | None = None
) -> Path:
    """Writes ``n_images`` phantom stills as a COCO dataset with clinical labels.

    Layout: ``images/NNNNNN.jpg``, ``annotations.json`` (COCO; category "ampulla"; an image
    without a papilla in view has no annotation), ``labels.csv`` (DESIGN.md columns plus
    ``morphology``) and ``phantom.json`` (seed and config, to reproduce it).

    Args:
        out_dir: output folder (created if missing).
        n_images: number of images, at least 1.
        seed: phantom seed.
        config: rendering settings.

    Returns:
        The output folder.
    """
    config = config or PhantomConfig()
    if n_images < 1:
        raise ConfigError(f"number of images must be at least 1, got {n_images}")
    out = _prepare(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(exist_ok=True)
    digits = max(6, len(str(n_images - 1)))
    images, annotations, rows = [], [], []
    progress = _Progress("phantom stills", n_images)
    for i in range(n_images):
        image, truth = render_still(i, seed, config)
        name = f"{i:0{digits}d}.jpg"
        ok = cv2.imwrite(str(images_dir / name), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ExportError(f"cannot write {images_dir / name}; check the disk and permissions")
        images.append(
            {
                "id": i + 1,
                "file_name": f"images/{name}",
                "width": config.width,
                "height": config.height,
                "patient_id": truth.patient_id,
            }
        )
        if truth.box is not None:
            x, y, w, h = (round(float(v), 2) for v in truth.box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": 1,
                    "bbox": [x, y, w, h],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                }
            )
        case = truth.case
        rows.append(
            [
                f"images/{name}",
                truth.patient_id,
                f"{case.cannulation_time_s:.1f}",
                case.additional_technique,
                case.failed,
                truth.morphology,
            ]
        )
        progress.update(i + 1)
    coco = {
        "info": {
            "description": "ERCP Assist phantom duodenoscope stills (synthetic)",
            "seed": seed,
        },
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    _write_json(out / "annotations.json", coco)
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(LABEL_COLUMNS)
        writer.writerows(rows)
    _write_json(
        out / "phantom.json",
        {"kind": "stills", "seed": seed, "n_images": n_images, "config": config.to_json()},
    )
    log.info("wrote %d phantom stills (%d with a papilla) to %s", n_images, len(annotations), out)
    return out


def write_video(
    out_dir: str | Path, seconds: float, seed: int, config: PhantomConfig | None = None
) -> Path:
    """Writes a phantom video ``phantom.mp4`` (mp4v) and its ground truth ``truth.jsonl``.

    Each line of ``truth.jsonl`` is one frame: ``frame``, ``t`` (seconds), then the fields of
    ``PhantomTruth.to_json()`` (box, morphology, case, patient_id, field, ...).

    Args:
        out_dir: output folder (created if missing).
        seconds: length in seconds (> 0).
        seed: phantom seed.
        config: rendering settings (size and fps).

    Returns:
        The output folder.
    """
    config = config or PhantomConfig()
    if not seconds > 0:
        raise ConfigError(f"video length must be positive seconds, got {seconds}")
    n = max(1, int(round(seconds * config.fps)))
    out = _prepare(out_dir)
    video_path = out / "phantom.mp4"
    writer = cv2.VideoWriter(
        str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), config.fps, (config.width, config.height)
    )
    if not writer.isOpened():
        raise ExportError(f"cannot open a video writer for {video_path} (mp4v codec)")
    video = PhantomVideo(seed, config)
    progress = _Progress("phantom video frames", n)
    try:
        with open(out / "truth.jsonl", "w") as fh:
            for i in range(n):
                image, truth = video.frame(i)
                writer.write(image)
                record = {"frame": i, "t": round(i / config.fps, 4), **truth.to_json()}
                fh.write(json.dumps(record) + "\n")
                progress.update(i + 1)
    finally:
        writer.release()
    check = cv2.VideoCapture(str(video_path))
    ok = check.isOpened()
    check.release()
    if not ok:
        raise ExportError(f"wrote {video_path} but OpenCV cannot reopen it")
    _write_json(
        out / "phantom.json",
        {
            "kind": "video",
            "seed": seed,
            "seconds": seconds,
            "frames": n,
            "config": config.to_json(),
        },
    )
    log.info("wrote %d phantom video frames to %s", n, video_path)
    return out


def write_contact_sheet(
    path: str | Path,
    seed: int = 0,
    config: PhantomConfig | None = None,
    n: int = 16,
    columns: int = 4,
    tile_width: int = 480,
) -> Path:
    """Writes a contact sheet of ``n`` stills, morphologies in turn, one patient each.

    Each tile is the full frame (window, burned-in text) scaled to ``tile_width``, with a
    caption strip below: still index, morphology, four-class label and cannulation time.

    Args:
        path: PNG file to write.
        seed: phantom seed.
        config: rendering settings (the frames are rendered at this size, then scaled).
        n: number of tiles.
        columns: tiles per row.
        tile_width: width of one tile in pixels.

    Returns:
        The path written.
    """
    from app.core.phantom import MORPHOLOGIES, patient_morphology, patient_of

    config = config or PhantomConfig()
    if n < 1 or columns < 1:
        raise ConfigError(f"contact sheet needs n >= 1 and columns >= 1, got {n}, {columns}")
    tile_h = int(round(tile_width * config.height / config.width))
    caption_h = max(14, tile_width // 24)
    tiles, seen, index = [], set(), 0
    wanted = [MORPHOLOGIES[(i + 1) % len(MORPHOLOGIES)] for i in range(n)]
    while len(tiles) < n and index < 400 * n:
        k, _ = patient_of(index, seed)
        if k in seen or patient_morphology(seed, k) != wanted[len(tiles)]:
            index += 1
            continue
        image, truth = render_still(index, seed, config)
        if truth.box is not None and truth.visible_fraction > 0.95:
            seen.add(k)
            tile = np.zeros((tile_h + caption_h, tile_width, 3), np.uint8)
            tile[:tile_h] = cv2.resize(image, (tile_width, tile_h), interpolation=cv2.INTER_AREA)
            text = (
                f"#{index} {truth.morphology}, {truth.case.four_class}, "
                f"{truth.case.cannulation_time_s:.0f} s"
            )
            cv2.putText(
                tile,
                text,
                (4, tile_h + caption_h - 4),
                cv2.FONT_HERSHEY_SIMPLEX,
                caption_h / 34.0,
                (160, 200, 255),
                1,
                cv2.LINE_AA,
            )
            tiles.append(tile)
        index += 1
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[r : r + columns]) for r in range(0, len(tiles), columns)]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), np.vstack(rows)):
        raise ExportError(f"cannot write contact sheet {out}")
    return out
