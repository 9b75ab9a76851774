"""Deterministic seeding of Python, numpy and torch (and Lightning's dataloader workers)."""

from __future__ import annotations

import logging
import os
import random

import numpy as np

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> int:
    """Seed ``random``, numpy, torch and Lightning's worker seeding; return the seed.

    Args:
        seed: any non-negative integer below 2**32.

    Raises:
        ValueError: if the seed is out of range.
    """
    import lightning
    import torch

    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # workers=True gives every dataloader worker its own derived seed, so augmentation in
    # several workers is still reproducible.
    lightning.seed_everything(seed, workers=True, verbose=False)
    log.debug("seeded everything with %d", seed)
    return seed
