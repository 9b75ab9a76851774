"""The one exception hierarchy of ERCP Assist; every user-facing failure is one of these."""

from __future__ import annotations


class ErcpError(Exception):
    """Base class. The message is one line: what was wrong, what was expected, how to fix it."""


class InvalidBoxError(ErcpError, ValueError):
    """A box is not a finite COCO [x, y, w, h] with positive width and height."""


class ConfigError(ErcpError, ValueError):
    """A configuration key is unknown or a value is out of range."""


class ModelContractError(ErcpError):
    """An ONNX model does not follow the contract in DESIGN.md."""


class SourceError(ErcpError):
    """A frame source cannot be opened or has stopped delivering frames."""


class SignalLostError(SourceError):
    """A live source lost its signal; it retries by itself."""


class DatasetError(ErcpError):
    """A dataset or label file is malformed."""


class ExportError(ErcpError):
    """A recording or export could not be written (full or read-only disk, bad path)."""
