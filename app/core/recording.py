"""Crash-safe recording (segmented video, predictions.jsonl, manifest.json) and its replay."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.core.atomic import atomic_write_json, export_error, sha256_file
from app.core.errors import ConfigError, ExportError, SourceError
from app.core.export import ExportResult, export_frame
from app.core.frame import Frame, Prediction
from app.core.records import prediction_record
from app.core.roi import FieldTracker, mask_outside
from app.core.sources_file import PlaybackSource

__all__ = [
    "MANIFEST",
    "PREDICTIONS",
    "ExportResult",
    "Recorder",
    "RecordingInfo",
    "RecordingSource",
    "export_frame",
    "open_recording",
    "prediction_record",
    "sha256_file",
]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PREDICTIONS = "predictions.jsonl"
FORMAT = "ercp-assist-recording"
FORMAT_VERSION = 1
#: Stream name -> segment file prefix.
STREAMS = ("raw", "overlay")


def app_version() -> str:
    """The installed ercp-assist version ('unknown' when run from an uninstalled tree)."""
    try:
        return metadata.version("ercp-assist")
    except metadata.PackageNotFoundError:
        return "unknown"


def _now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="milliseconds")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
    finally:
        cap.release()


class Recorder:
    """Records raw and/or overlay video in closed segments, with per-frame predictions.

    ``submit()`` never blocks: items go to a bounded FIFO, and when it is full the frame is
    dropped and counted. A writer thread encodes each segment into its own file
    (``raw_0000.mp4``, ``overlay_0000.mp4``...) and closes it after ``segment_seconds``, so a
    killed process loses at most the open segment. ``predictions.jsonl`` gets one flushed
    line per recorded frame, and ``manifest.json`` is rewritten atomically after every
    segment and at the end. A write error stops the recording, keeps the closed segments,
    and is reported through ``error`` and ``on_error``; it never reaches the caller of
    ``submit()``.

    With ``phi_mask`` (the default) both streams are black outside the endoscopic field,
    found by a ``FieldTracker`` in the writer thread, as in every export: the patient data
    that processors burn in beside the field never reaches the files.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        *,
        fps: float,
        raw: bool = True,
        overlay: bool = True,
        segment_seconds: float = 10.0,
        config: dict[str, Any] | None = None,
        source_name: str = "",
        models: Sequence[dict[str, Any]] = (),
        queue_frames: int = 30,
        codec: str = "mp4v",
        min_free_bytes: int = 64 << 20,
        phi_mask: bool = True,
        on_error: Callable[[ExportError], None] | None = None,
    ) -> None:
        """Configure a recording into ``out_dir`` (created by ``start()``).

        Raises:
            ConfigError: for a non-positive fps, segment length or queue size, or no stream.
        """
        if not fps > 0:
            raise ConfigError(f"recording fps must be > 0, got {fps}")
        if not (raw or overlay):
            raise ConfigError("a recording needs the raw stream, the overlay stream or both")
        if not segment_seconds > 0:
            raise ConfigError(f"segment_seconds must be > 0, got {segment_seconds}")
        if queue_frames < 1:
            raise ConfigError(f"queue_frames must be >= 1, got {queue_frames}")
        if len(codec) != 4:
            raise ConfigError(f"codec must be a FOURCC like 'mp4v' or 'MJPG', got {codec!r}")
        self.out_dir = Path(out_dir)
        self.fps = float(fps)
        self.streams = tuple(s for s, on in zip(STREAMS, (raw, overlay), strict=True) if on)
        self.segment_frames = max(1, int(round(segment_seconds * self.fps)))
        self.segment_seconds = float(segment_seconds)
        self.config = dict(config or {})
        self.source_name = source_name
        self.models = [dict(m) for m in models]
        self.codec = codec
        self.suffix = ".avi" if codec.upper() == "MJPG" else ".mp4"
        self.min_free_bytes = int(min_free_bytes)
        self.phi_mask = bool(phi_mask)
        self._tracker = FieldTracker() if phi_mask else None
        self.on_error = on_error
        self._queue: queue.Queue[tuple[Frame, np.ndarray | None, Prediction | None]] = queue.Queue(
            maxsize=queue_frames
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = "new"  # new -> recording -> stopping -> closed | failed
        self._error: ExportError | None = None
        self._jsonl: Any = None
        self._writers: dict[str, cv2.VideoWriter] = {}
        self._segment: dict[str, Any] | None = None
        self._segments: list[dict[str, Any]] = []
        self._t0: float | None = None
        self._started_mono = 0.0
        self._started_iso = ""
        self._stopped_mono: float | None = None
        self._last_index: int | None = None
        self.frames_written = 0
        self.dropped_queue_full = 0
        self.dropped_not_recording = 0
        self.index_gaps = 0

    # -- state ------------------------------------------------------------------------------
    @property
    def error(self) -> ExportError | None:
        """The write error that stopped the recording, or None."""
        return self._error

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()`` while no error happened."""
        return self._state == "recording" and self._error is None

    @property
    def elapsed_s(self) -> float:
        """Seconds since ``start()`` (frozen at ``stop()``)."""
        if not self._started_mono:
            return 0.0
        end = self._stopped_mono if self._stopped_mono is not None else time.monotonic()
        return end - self._started_mono

    @property
    def dropped(self) -> int:
        """Frames not recorded because the queue was full."""
        return self.dropped_queue_full

    @property
    def segments(self) -> list[dict[str, Any]]:
        """The closed segments so far (copies)."""
        with self._lock:
            return [dict(s) for s in self._segments]

    def manifest(self) -> dict[str, Any]:
        """The manifest as it is now."""
        with self._lock:
            segments = [dict(s) for s in self._segments]
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "app_version": app_version(),
            "status": self._state if self._error is None else "failed",
            "source": self.source_name,
            "fps": self.fps,
            "streams": list(self.streams),
            "codec": self.codec,
            "segment_seconds": self.segment_seconds,
            "phi_mask": self.phi_mask,
            "config": self.config,
            "models": self.models,
            "started": self._started_iso,
            "started_monotonic": self._started_mono,
            "first_frame_t": self._t0,
            "elapsed_s": round(self.elapsed_s, 3),
            "frames_written": sum(s["frames"] for s in segments),
            "segments": segments,
            "dropped": {
                "queue_full": self.dropped_queue_full,
                "not_recording": self.dropped_not_recording,
                "index_gaps": self.index_gaps,
            },
            "predictions": PREDICTIONS,
            "error": str(self._error) if self._error else None,
        }

    def _write_manifest(self) -> None:
        atomic_write_json(self.out_dir / MANIFEST, self.manifest())

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Recorder:
        """Create the folder, the manifest and the predictions file; start the writer.

        Raises:
            ExportError: when the folder cannot be created or written, or already holds a
                recording.
        """
        if self._state != "new":
            raise ExportError(f"recorder for {self.out_dir} was already started")
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise export_error("create the recording folder", self.out_dir, exc) from exc
        if (self.out_dir / MANIFEST).exists():
            raise ExportError(
                f"{self.out_dir} already holds a recording: choose a new folder for each one"
            )
        self._started_mono = time.monotonic()
        self._started_iso = _now_iso()
        self._state = "recording"
        try:
            self._jsonl = open(self.out_dir / PREDICTIONS, "a", encoding="utf-8")  # noqa: SIM115
            self._write_manifest()
        except (OSError, ExportError) as exc:
            self._state = "failed"
            if self._jsonl is not None:
                with contextlib.suppress(OSError):
                    self._jsonl.close()
                self._jsonl = None
            if isinstance(exc, ExportError):
                raise
            raise export_error("write", self.out_dir / PREDICTIONS, exc) from exc
        self._thread = threading.Thread(target=self._run, name="recorder-writer", daemon=True)
        self._thread.start()
        log.info("recording to %s (%s)", self.out_dir, "+".join(self.streams))
        return self

    def submit(
        self,
        frame: Frame,
        overlay_image: np.ndarray | None = None,
        prediction: Prediction | None = None,
    ) -> bool:
        """Queue one frame for recording; never blocks. False if it was dropped.

        The images are not copied: the caller must not modify them afterwards (frames are
        never modified in place in this app).
        """
        if not self.running:
            self.dropped_not_recording += 1
            return False
        try:
            self._queue.put_nowait((frame, overlay_image, prediction))
        except queue.Full:
            self.dropped_queue_full += 1
            return False
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, close the last segment and the manifest; idempotent."""
        if self._state in ("new", "closed", "failed") and self._thread is None:
            self._state = "closed" if self._state == "new" else self._state
            return
        if self._state == "recording":
            self._state = "stopping"
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join(timeout)
        self._stopped_mono = time.monotonic()
        if thread.is_alive():
            log.error(
                "recorder writer did not finish within %.0f s; manifest not finalised", timeout
            )
            return
        if self._error is None:
            self._state = "closed"
        with contextlib.suppress(ExportError):
            self._write_manifest()
        if self._jsonl is not None:
            with contextlib.suppress(OSError):
                self._jsonl.close()
            self._jsonl = None
        log.info("recording %s: %s, %d frames", self.out_dir, self._state, self.frames_written)

    close = stop

    def __enter__(self) -> Recorder:
        return self.start() if self._state == "new" else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- writer thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._stop.is_set():
                    break
                continue
            if self._error is not None:
                continue  # discard: the recording has failed
            try:
                self._write(*item)
            except ExportError as exc:
                self._fail(exc)
            except OSError as exc:
                self._fail(export_error("write the recording in", self.out_dir, exc))
            except Exception as exc:  # e.g. cv2.error on a malformed image: still report it
                log.exception("recording failed")
                self._fail(ExportError(f"recording to {self.out_dir} failed: {exc!r}"))
        if self._error is None:
            try:
                self._close_segment()
            except ExportError as exc:
                self._fail(exc)
            except OSError as exc:
                self._fail(export_error("write the recording in", self.out_dir, exc))

    def _segment_path(self, stream: str, number: int) -> Path:
        return self.out_dir / f"{stream}_{number:04d}{self.suffix}"

    def _open_segment(self, width: int, height: int, frame: Frame) -> None:
        free = shutil.disk_usage(self.out_dir).free
        if free < self.min_free_bytes:
            raise ExportError(
                f"cannot record to {self.out_dir}: only {free >> 20} MiB free (need "
                f"{self.min_free_bytes >> 20} MiB); free some space or choose another folder"
            )
        number = len(self._segments)
        fourcc = cv2.VideoWriter_fourcc(*self.codec)
        for stream in self.streams:
            path = self._segment_path(stream, number)
            writer = cv2.VideoWriter(str(path), fourcc, self.fps, (width, height))
            if not writer.isOpened():
                raise ExportError(
                    f"cannot create video segment {path}: OpenCV could not open a {self.codec} "
                    "writer; check that the folder is writable and the disk not full"
                )
            self._writers[stream] = writer
        self._segment = {
            "index": number,
            "files": {s: self._segment_path(s, number).name for s in self.streams},
            "width": width,
            "height": height,
            "start": self.frames_written,
            "frames": 0,
            "first_frame": frame.index,
            "last_frame": frame.index,
            "first_t": None,
            "last_t": None,
            "roi": None,
        }

    def _release_writers(self) -> None:
        for writer in self._writers.values():
            writer.release()
        self._writers.clear()

    def _close_segment(self) -> None:
        segment, self._segment = self._segment, None
        self._release_writers()
        if segment is None:
            return
        for name in segment["files"].values():
            path = self.out_dir / name
            found = _count_frames(path) if path.exists() else 0
            if found != segment["frames"]:
                raise ExportError(
                    f"video segment {path} holds {found} of {segment['frames']} frames: the disk "
                    "may be full; free some space or choose another folder"
                )
            _fsync_file(path)
        self._jsonl.flush()
        os.fsync(self._jsonl.fileno())
        with self._lock:
            self._segments.append(segment)
        self._write_manifest()

    def _write(self, frame: Frame, overlay_image: np.ndarray | None, pred: Prediction | None):
        height, width = frame.image.shape[:2]
        seg = self._segment
        if seg is not None and (
            seg["frames"] >= self.segment_frames or (seg["width"], seg["height"]) != (width, height)
        ):
            self._close_segment()
            seg = None
        if seg is None:
            self._open_segment(width, height, frame)
            seg = self._segment
        if self._t0 is None:
            self._t0 = frame.t
        roi = self._tracker.update(frame.image) if self._tracker is not None else None
        for stream, writer in self._writers.items():
            image = frame.image
            if stream == "overlay" and overlay_image is not None:
                image = overlay_image
            if image.shape[:2] != (height, width):
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            if roi is not None:
                image = mask_outside(image, roi)
            writer.write(image)
        if roi is not None:
            seg["roi"] = list(roi)
        record = prediction_record(frame, pred, t0=self._t0)
        self._jsonl.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._jsonl.flush()
        if self._last_index is not None and frame.index > self._last_index + 1:
            self.index_gaps += frame.index - self._last_index - 1
        self._last_index = frame.index
        t = round(record["t"], 4)
        seg["first_t"] = t if seg["first_t"] is None else seg["first_t"]
        seg["last_t"] = t
        seg["last_frame"] = frame.index
        seg["frames"] += 1
        self.frames_written += 1

    def _fail(self, error: ExportError) -> None:
        self._error = error
        log.error("recording stopped: %s", error)
        segment, self._segment = self._segment, None
        self._release_writers()
        if segment is not None:
            # The open segment was never closed, so it is not in the manifest: remove it.
            for name in segment["files"].values():
                with contextlib.suppress(OSError):
                    (self.out_dir / name).unlink()
        with contextlib.suppress(ExportError):
            self._write_manifest()
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:  # a faulty callback must not kill the writer thread
                log.exception("recorder on_error callback failed")


# -- replay --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingInfo:
    """A recording read back for replay.

    Attributes:
        path: the recording folder.
        manifest: the manifest as written.
        segments: closed segments in order (``files``, ``start``, ``frames``...).
        predictions: one record per recorded frame (``prediction_record`` format), aligned
            with the frames of the segments; None where the line was lost.
        complete: True when the recording was closed cleanly (False after a crash or a
            write error: the open segment was lost).
    """

    path: Path
    manifest: dict[str, Any]
    segments: tuple[dict[str, Any], ...]
    predictions: tuple[dict[str, Any] | None, ...]
    complete: bool

    @property
    def fps(self) -> float:
        """Frame rate the segments were written at."""
        return float(self.manifest["fps"])

    @property
    def frame_count(self) -> int:
        """Frames in the closed segments."""
        return sum(int(s["frames"]) for s in self.segments)

    @property
    def streams(self) -> tuple[str, ...]:
        """The recorded streams ("raw", "overlay")."""
        return tuple(self.manifest.get("streams", ()))

    def segment_paths(self, stream: str = "raw") -> list[Path]:
        """The segment files of one stream, in order."""
        if stream not in self.streams:
            raise SourceError(f"{self.path} has no {stream!r} stream; it has {list(self.streams)}")
        return [self.path / s["files"][stream] for s in self.segments]

    def open_source(
        self, stream: str | None = None, *, realtime: bool = True, speed: float = 1.0
    ) -> RecordingSource:
        """A seekable FrameSource over the segments of ``stream`` (default: raw if recorded)."""
        stream = stream or ("raw" if "raw" in self.streams else "overlay")
        return RecordingSource(self, stream, realtime=realtime, speed=speed)


def _read_predictions(path: Path, frames: int) -> tuple[dict[str, Any] | None, ...]:
    records: list[dict[str, Any] | None] = []
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh):
                if len(records) >= frames:
                    break
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    # A line cut by a crash; the frames it belonged to were lost too.
                    log.warning("%s line %d is not JSON; skipped", path, number + 1)
                    records.append(None)
    records.extend([None] * (frames - len(records)))
    return tuple(records)


def open_recording(path: str | os.PathLike) -> RecordingInfo:
    """Read a recording's manifest and predictions for replay.

    Raises:
        SourceError: when the folder has no valid manifest, or a listed segment is missing.
    """
    folder = Path(path)
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"{folder} is not a recording: it has no {MANIFEST}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceError(f"cannot read {manifest_path}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SourceError(f"{manifest_path} is not an ERCP Assist recording manifest")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise SourceError(
            f"{manifest_path} has format version {manifest.get('format_version')}; this app "
            f"reads up to {FORMAT_VERSION}: update ERCP Assist"
        )
    segments = tuple(manifest.get("segments", ()))
    for segment in segments:
        for name in segment["files"].values():
            if not (folder / name).is_file():
                raise SourceError(f"recording {folder} is missing its segment {name}")
    frames = sum(int(s["frames"]) for s in segments)
    predictions = _read_predictions(folder / manifest.get("predictions", PREDICTIONS), frames)
    return RecordingInfo(
        path=folder,
        manifest=manifest,
        segments=segments,
        predictions=predictions,
        complete=manifest.get("status") == "closed",
    )


class RecordingSource(PlaybackSource):
    """The frames of a recording's segments as one seekable source (index = recorded frame)."""

    def __init__(
        self, info: RecordingInfo, stream: str = "raw", *, realtime: bool = True, speed: float = 1.0
    ) -> None:
        """Prepare replay of ``stream``.

        Raises:
            SourceError: when the recording has no such stream or no frames.
        """
        self.info = info
        self.stream = stream
        self._paths = info.segment_paths(stream)
        self._starts = [int(s["start"]) for s in info.segments]
        self._counts = [int(s["frames"]) for s in info.segments]
        if not self._paths or info.frame_count == 0:
            raise SourceError(f"recording {info.path} has no complete segment to play")
        self._cap: Any = None
        self._seg = -1
        self._seg_pos = 0  # next frame within the open segment
        super().__init__(
            f"recording:{info.path.name}:{stream}", info.fps, realtime=realtime, speed=speed
        )

    @property
    def frame_count(self) -> int:
        """Frames in the recording's closed segments."""
        return self.info.frame_count

    def prediction(self, index: int) -> dict[str, Any] | None:
        """The recorded prediction line for recorded frame ``index``."""
        preds = self.info.predictions
        return preds[index] if 0 <= index < len(preds) else None

    def _segment_of(self, index: int) -> int:
        for number, (start, count) in enumerate(zip(self._starts, self._counts, strict=True)):
            if start <= index < start + count:
                return number
        return -1

    def _open_segment(self, number: int, offset: int) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = cv2.VideoCapture(str(self._paths[number]), cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            raise SourceError(f"cannot open recording segment {self._paths[number]}")
        if offset:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, float(offset))
        self._seg, self._seg_pos = number, offset

    def _next_image(self) -> tuple[int, np.ndarray] | None:
        index = self._cursor
        number = self._segment_of(index)
        if number < 0:
            return None
        if number != self._seg:
            self._open_segment(number, index - self._starts[number])
        ok, image = self._cap.read()
        if not ok or image is None:
            raise SourceError(
                f"recording segment {self._paths[number].name} ended at frame {self._seg_pos} "
                f"of {self._counts[number]}: the file is damaged"
            )
        self._seg_pos += 1
        return index, image

    def _seek_decoder(self, index: int) -> None:
        number = self._segment_of(index)
        if number >= 0:
            self._open_segment(number, index - self._starts[number])

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
