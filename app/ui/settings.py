"""The user's settings (QSettings): engine overrides, export folder, device and window state."""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from app.core.config import EngineConfig
from app.core.errors import ConfigError

log = logging.getLogger(__name__)

ORGANIZATION = "ERCP Assist"
APPLICATION = "ercp-assist"
#: Capture-device parameters the Settings dialog offers (0 / "" = the device's default).
DEVICE_KEYS = ("width", "height", "fps", "fourcc")
DEFAULT_EXPORT_DIR = Path.home() / "ERCP-Assist" / "exports"
_ENGINE_KEY = "engine/overrides"


class AppSettings:
    """Typed access to the app's QSettings.

    Engine settings are stored as the JSON of the values that differ from the defaults in
    code, so a changed default reaches users who never touched that setting, and an unknown
    or invalid stored value is dropped with a warning instead of stopping the app.

    Args:
        qsettings: the store; None opens the user's own (``user_store()``).
        read_only: never write (screenshots and automated runs).
    """

    def __init__(self, qsettings: QSettings | None = None, read_only: bool = False) -> None:
        self._store = qsettings if qsettings is not None else self.user_store()
        self.read_only = read_only
        self.warnings: list[str] = []

    @staticmethod
    def user_store() -> QSettings:
        """The user's settings (native format, per user)."""
        return QSettings(
            QSettings.Format.NativeFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION
        )

    @classmethod
    def at_path(cls, path: str | Path, read_only: bool = False) -> AppSettings:
        """Settings kept in an INI file at ``path`` (tests, portable installs)."""
        return cls(QSettings(str(path), QSettings.Format.IniFormat), read_only=read_only)

    @property
    def file_name(self) -> str:
        """Where the settings live."""
        return self._store.fileName()

    # -- generic --------------------------------------------------------------------------

    def value(self, key: str, default: Any = None) -> Any:
        """A stored value (as QSettings returns it), or ``default``."""
        return self._store.value(key, default)

    def set_value(self, key: str, value: Any) -> None:
        """Store a value (ignored when read-only)."""
        if self.read_only:
            return
        if value is None:
            self._store.remove(key)
        else:
            self._store.setValue(key, value)

    def text(self, key: str, default: str = "") -> str:
        """A stored string."""
        value = self._store.value(key, default)
        return default if value is None else str(value)

    def sync(self) -> None:
        """Write pending changes to disk (ignored when read-only)."""
        if not self.read_only:
            self._store.sync()

    # -- engine ---------------------------------------------------------------------------

    def engine_overrides(self) -> dict[str, Any]:
        """The stored engine settings that differ from the defaults (valid ones only)."""
        raw = self._store.value(_ENGINE_KEY, "")
        if not raw:
            return {}
        try:
            data = json.loads(str(raw))
        except ValueError:
            self._warn(f"settings {_ENGINE_KEY}: not JSON, ignored")
            return {}
        if not isinstance(data, dict):
            self._warn(f"settings {_ENGINE_KEY}: expected a mapping, ignored")
            return {}
        known = {f.name for f in fields(EngineConfig)}
        good: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                self._warn(f"settings: unknown engine setting {key!r} ignored")
                continue
            try:
                EngineConfig.from_mapping({key: value})
            except ConfigError as exc:
                self._warn(f"settings: {exc}; using the default")
                continue
            good[key] = value
        return good

    def engine_config(self, base: EngineConfig | None = None) -> EngineConfig:
        """``base`` (or the defaults) with the stored overrides applied."""
        base = base or EngineConfig()
        try:
            return EngineConfig.from_mapping(self.engine_overrides(), base=base)
        except ConfigError as exc:  # valid one by one, not together
            self._warn(f"settings: {exc}; using the defaults")
            return base

    def set_engine_config(self, config: EngineConfig) -> None:
        """Store the settings of ``config`` that differ from the defaults."""
        defaults = EngineConfig().to_dict()
        changed = {k: v for k, v in config.to_dict().items() if defaults.get(k) != v}
        self.set_value(_ENGINE_KEY, json.dumps(changed, sort_keys=True))

    # -- folders, devices, models ---------------------------------------------------------

    @property
    def export_dir(self) -> Path:
        """Where snapshots and recordings go."""
        return Path(self.text("paths/export_dir", str(DEFAULT_EXPORT_DIR))).expanduser()

    @export_dir.setter
    def export_dir(self, path: str | Path) -> None:
        self.set_value("paths/export_dir", str(path))

    def device_options(self) -> dict[str, Any]:
        """Capture parameters for ``open_source`` (only the ones the user set)."""
        out: dict[str, Any] = {}
        for key in DEVICE_KEYS:
            value = self._store.value(f"device/{key}", None)
            if value in (None, "", 0, "0"):
                continue
            if key == "fourcc":
                out[key] = str(value)
            else:
                try:
                    number = float(value) if key == "fps" else int(value)
                except (TypeError, ValueError):
                    self._warn(f"settings device/{key}: {value!r} is not a number, ignored")
                    continue
                if number > 0:
                    out[key] = number
        return out

    def set_device_options(self, options: dict[str, Any]) -> None:
        """Store capture parameters; a missing or empty one means the device's default."""
        for key in DEVICE_KEYS:
            self.set_value(f"device/{key}", options.get(key) or None)

    def model_path(self, role: str) -> str:
        """The detector/classifier file the user loaded last ("" for none)."""
        return self.text(f"models/{role}", "")

    def set_model_path(self, role: str, path: str | None) -> None:
        """Remember the model file for ``role``."""
        self.set_value(f"models/{role}", path or None)

    def _warn(self, message: str) -> None:
        log.warning("%s", message)
        self.warnings.append(message)
