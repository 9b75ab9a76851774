"""Every FrameSource behind one spec string: phantom, capture device, video file, image folder."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from app.core.errors import SourceError
from app.core.frame import FrameSource
from app.core.sources_device import DeviceInfo, DeviceSource, SignalMonitor, list_devices
from app.core.sources_file import (
    IMAGE_SUFFIXES,
    MAX_SPEED,
    MIN_SPEED,
    FileSource,
    ImageFolderSource,
    Pacer,
    PlaybackSource,
)

log = logging.getLogger(__name__)

__all__ = [
    "DeviceInfo",
    "DeviceSource",
    "FileSource",
    "ImageFolderSource",
    "MAX_SPEED",
    "MIN_SPEED",
    "Pacer",
    "PlaybackSource",
    "SignalMonitor",
    "SOURCE_SPECS",
    "list_devices",
    "open_source",
]

#: What ``open_source`` understands, for help texts and error messages.
SOURCE_SPECS = "'phantom', 'phantom:SEED', 'device:N', /dev/videoN, a video file or an image folder"
_DEVICE_OPTIONS = ("width", "height", "fps", "fourcc", "backend")


def _phantom(seed_text: str, realtime: bool, config: Any = None) -> FrameSource:
    try:
        seed = int(seed_text) if seed_text else 0
    except ValueError:
        raise SourceError(
            f"bad phantom seed {seed_text!r}: expected an integer, e.g. 'phantom:3'"
        ) from None
    # Imported here: the phantom renderer is only needed when asked for.
    from app.core.phantom import PhantomSource

    return PhantomSource(seed=seed, config=config, realtime=realtime)


def open_source(spec: str, *, realtime: bool = True, **options: Any) -> FrameSource:
    """Open the source a spec names.

    Args:
        spec: ``phantom`` or ``phantom:SEED``; ``device:N``, ``device:/dev/videoN`` or
            ``/dev/videoN``; a folder of images; or a video file (a single image file plays
            as a one-frame folder).
        realtime: pace finite sources at their frame rate (False: as fast as possible).
        **options: ``width``, ``height``, ``fps``, ``fourcc``, ``backend`` and other
            ``DeviceSource`` keywords for devices; ``speed`` for files and folders; ``fps``
            for image folders; ``phantom_config`` (a ``PhantomConfig``) for the phantom.
            Options that do not apply to the source are ignored.

    Raises:
        SourceError: when the spec names nothing this knows, or the source cannot be opened.
    """
    text = str(spec).strip()
    given = {k: v for k, v in options.items() if v is not None}
    if text == "phantom" or text.startswith("phantom:"):
        return _phantom(text.partition(":")[2], realtime, given.get("phantom_config"))
    device: int | str | None = None
    if text.startswith("device:"):
        target = text.partition(":")[2]
        if not target:
            raise SourceError("device spec needs an index or a path, e.g. 'device:0'")
        device = int(target) if target.isdigit() else target
    elif re.fullmatch(r"/dev/video\d+", text):
        device = text
    if device is not None:
        return DeviceSource(device, **given)
    path = Path(text).expanduser()
    speed = given.get("speed", 1.0)
    if path.is_dir():
        return ImageFolderSource(path, fps=given.get("fps", 10.0), realtime=realtime, speed=speed)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFolderSource(path, fps=given.get("fps", 10.0), realtime=realtime)
        return FileSource(path, realtime=realtime, speed=speed)
    raise SourceError(f"unknown source {text!r}: expected {SOURCE_SPECS} (no such file or folder)")
