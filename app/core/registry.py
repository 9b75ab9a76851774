"""The shipped-model registry (models/registry.json): the default files, checked by sha256."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import ModelContractError

logger = logging.getLogger(__name__)

#: Where the shipped models live: the repository's models/ folder, or $ERCP_MODELS_DIR (the
#: frozen app sets it to its bundled copy).
MODELS_DIR = Path(os.environ.get("ERCP_MODELS_DIR", Path(__file__).resolve().parents[2] / "models"))
ROLES = ("detector", "classifier")


@dataclass(frozen=True)
class RegistryEntry:
    """One shipped model: its role, file, expected sha256 and model card."""

    role: str
    path: Path
    sha256: str
    card: Path | None


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_registry(models_dir: Path = MODELS_DIR) -> dict[str, RegistryEntry]:
    """Read ``registry.json``; an absent registry means no shipped models (an empty dict)."""
    path = Path(models_dir) / "registry.json"
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        entries = {
            role: RegistryEntry(
                role,
                Path(models_dir) / item["file"],
                str(item["sha256"]),
                Path(models_dir) / item["card"] if item.get("card") else None,
            )
            for role, item in raw["models"].items()
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelContractError(
            f"{path} is malformed ({exc}); expected "
            '{"models": {"detector": {"file": .., "sha256": ..}}}'
        ) from exc
    unknown = set(entries) - set(ROLES)
    if unknown:
        raise ModelContractError(f"{path}: unknown roles {sorted(unknown)}, expected {ROLES}")
    return entries


def default_model_path(role: str, models_dir: Path = MODELS_DIR) -> Path | None:
    """The shipped model for ``role`` after checking its sha256, or None if none is shipped.

    Raises:
        ModelContractError: if the file is missing or its sha256 differs from the registry
            (a corrupted or replaced model is never loaded silently).
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    entry = load_registry(models_dir).get(role)
    if entry is None:
        return None
    if not entry.path.exists():
        raise ModelContractError(
            f"shipped {role} {entry.path} is missing; reinstall or run "
            "`ercp-train build-default-models`"
        )
    actual = sha256_of(entry.path)
    if actual != entry.sha256:
        raise ModelContractError(
            f"shipped {role} {entry.path.name} has sha256 {actual[:12]}…, the registry expects "
            f"{entry.sha256[:12]}…: the file is corrupted or was replaced"
        )
    logger.debug("default %s: %s (sha256 ok)", role, entry.path)
    return entry.path
