"""Initial weights from a state-dict file (``--pretrained FILE``), with a report of what matched."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import ConfigError

log = logging.getLogger(__name__)

#: Prefixes that wrappers commonly add to parameter names (DDP, Lightning, SMP, timm).
_COMMON_PREFIXES = ("module.", "model.", "net.", "encoder.", "backbone.", "state_dict.")


@dataclass(frozen=True)
class PretrainedReport:
    """What ``load_pretrained`` did."""

    path: str
    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[str, ...]
    prefix_map: tuple[tuple[str, str], ...]

    def summary(self) -> str:
        """One line: how many tensors were loaded, missing, unexpected and of the wrong shape."""
        return (
            f"{self.path}: loaded {len(self.loaded)} tensors, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.mismatched)} shape-mismatched"
            + (f" (prefix map {dict(self.prefix_map)})" if self.prefix_map else "")
        )


def _read_state_dict(path: Path) -> dict:
    import torch

    if not path.is_file():
        raise ConfigError(f"--pretrained {path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise ConfigError(f"--pretrained {path}: not a torch state-dict file ({exc})") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise ConfigError(
            f"--pretrained {path}: expected a mapping of tensors, found {type(obj).__name__}"
        )
    return {k: v for k, v in obj.items() if hasattr(v, "shape")}


def _rename(keys, prefix_map: Mapping[str, str]) -> dict[str, str]:
    renamed = {}
    for key in keys:
        new = key
        for old_prefix, new_prefix in prefix_map.items():
            if key.startswith(old_prefix):
                new = new_prefix + key[len(old_prefix) :]
                break
        renamed[key] = new
    return renamed


def _candidate_maps(source_keys, target_keys) -> list[dict[str, str]]:
    """Prefix maps worth trying: none, stripping a common prefix, adding one, swapping."""
    maps: list[dict[str, str]] = [{}]
    for p in _COMMON_PREFIXES:
        maps.append({p: ""})
        maps.append({"": p})
    for a in _COMMON_PREFIXES:
        for b in _COMMON_PREFIXES:
            if a != b:
                maps.append({a: b})
    return maps


def load_pretrained(
    module, path: Path | str, *, prefix_map: Mapping[str, str] | None = None, strict: bool = False
) -> PretrainedReport:
    """Load a state-dict file into ``module``, matching keys by name and shape.

    Without ``prefix_map`` the prefix renaming that matches the most tensors is chosen from a
    few common ones (``module.``, ``model.``, ``encoder.``, ...), so a plain torchvision/SMP
    encoder file loads into the encoder of a U-Net. Tensors whose shape differs are skipped
    and reported. Everything is logged.

    Args:
        module: the torch module to initialise.
        path: a file written by ``torch.save(state_dict)`` (a Lightning checkpoint works too).
        prefix_map: explicit ``{old_prefix: new_prefix}`` renaming of the file's keys.
        strict: raise if any parameter of the module stays uninitialised or a key is unused.

    Returns:
        A PretrainedReport.

    Raises:
        ConfigError: if the file is unreadable or no tensor matched (or, when strict, if
            anything is missing, unexpected or mismatched).
    """
    path = Path(path)
    source = _read_state_dict(path)
    target = module.state_dict()
    maps = [dict(prefix_map)] if prefix_map is not None else _candidate_maps(source, target)

    def score(pmap: dict[str, str]) -> int:
        renamed = _rename(source, pmap)
        return sum(
            1
            for k, n in renamed.items()
            if n in target and tuple(target[n].shape) == tuple(source[k].shape)
        )

    best = max(maps, key=score)  # ties keep the first (the identity map)
    renamed = _rename(source, best)
    loaded, mismatched, unexpected = {}, [], []
    for key, new in renamed.items():
        if new not in target:
            unexpected.append(key)
        elif tuple(target[new].shape) != tuple(source[key].shape):
            mismatched.append(
                f"{key}: file {tuple(source[key].shape)} vs model {tuple(target[new].shape)}"
            )
        else:
            loaded[new] = source[key]
    missing = [k for k in target if k not in loaded]
    report = PretrainedReport(
        str(path),
        tuple(sorted(loaded)),
        tuple(missing),
        tuple(unexpected),
        tuple(mismatched),
        tuple(best.items()),
    )
    if not loaded:
        raise ConfigError(
            f"--pretrained {path}: no tensor matched the model "
            f"({len(source)} in the file, e.g. {next(iter(source))!r}; the model "
            f"has e.g. {next(iter(target))!r}); pass a prefix map"
        )
    if strict and (missing or unexpected or mismatched):
        raise ConfigError(f"--pretrained (strict) {report.summary()}")
    module.load_state_dict(loaded, strict=False)
    log.info("pretrained weights %s", report.summary())
    for name in mismatched:
        log.warning("pretrained: skipped %s", name)
    if unexpected:
        log.info("pretrained: unused keys, e.g. %s", ", ".join(unexpected[:5]))
    if missing:
        log.info(
            "pretrained: %d model tensors keep their initial values, e.g. %s",
            len(missing),
            ", ".join(missing[:5]),
        )
    return report
