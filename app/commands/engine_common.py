"""Options and model loading shared by the engine commands (process, bench, check-model)."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.core.config import PROVIDER_NAMES, EngineConfig, load_config
from app.core.errors import ConfigError, ModelContractError


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--detector``, ``--classifier``, ``--config`` and ``--providers``."""
    parser.add_argument(
        "--detector",
        type=Path,
        metavar="MODEL",
        help="detector .onnx (default: the shipped one in models/, if any)",
    )
    parser.add_argument(
        "--classifier",
        type=Path,
        metavar="MODEL",
        help="difficulty classifier .onnx (default: the shipped one, if any)",
    )
    parser.add_argument(
        "--no-classifier",
        action="store_true",
        help="run the detector only, even if a default classifier is shipped",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="engine settings (.json or .toml; keys as in EngineConfig)",
    )
    parser.add_argument(
        "--providers",
        metavar="LIST",
        help="execution providers to try, comma-separated, from "
        f"{','.join(PROVIDER_NAMES)} (default: the config's)",
    )


def engine_config(args: argparse.Namespace, **overrides) -> EngineConfig:
    """The config file (or the defaults) with command-line overrides applied."""
    config = load_config(args.config) if getattr(args, "config", None) else EngineConfig()
    if getattr(args, "providers", None):
        overrides["providers"] = tuple(p.strip() for p in args.providers.split(",") if p.strip())
    return config.with_changes(**overrides) if overrides else config


def resolve_model(path: Path | None, role: str) -> Path | None:
    """An explicit model path, else the registry's default for ``role`` (None if none)."""
    if path is not None:
        return path
    from app.core.registry import default_model_path

    return default_model_path(role)


def load_engine_models(args: argparse.Namespace, config: EngineConfig, *, need_detector: bool):
    """Load the detector and classifier the arguments name (or the shipped defaults).

    Returns:
        ``(detector, classifier, models)``: ``Detector``/``Classifier`` wrappers or None, and
        the loaded ``OnnxModel`` objects.

    Raises:
        ModelContractError: a model is refused, or a detector is needed and none is given.
    """
    from app.core.contract import TASK_CLASSIFIER, TASK_DETECTOR
    from app.core.inference import Classifier, Detector
    from app.core.models import load_model

    det_path = resolve_model(getattr(args, "detector", None), "detector")
    cls_path = None
    if not getattr(args, "no_classifier", False):
        cls_path = resolve_model(getattr(args, "classifier", None), "classifier")
    if det_path is None and (need_detector or cls_path is None):
        raise ModelContractError(
            "no detector model: pass --detector MODEL.onnx (models/ ships no default detector)"
        )
    detector = classifier = None
    models = []
    if det_path is not None:
        model = load_model(det_path, expect_task=TASK_DETECTOR, config=config)
        detector = Detector(model, config.min_peak, config.box_threshold)
        models.append(model)
    if cls_path is not None:
        model = load_model(cls_path, expect_task=TASK_CLASSIFIER, config=config)
        classifier = Classifier(model)
        models.append(model)
    return detector, classifier, models


def positive_int(text: str) -> int:
    """Argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


__all__ = [
    "ConfigError",
    "add_model_arguments",
    "engine_config",
    "load_engine_models",
    "positive_int",
    "resolve_model",
]
