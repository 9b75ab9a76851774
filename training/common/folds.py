"""Cross-validation folds, grouped by patient and stratified by label when those exist."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.core.errors import ConfigError

Split = tuple[np.ndarray, np.ndarray]


def _splitter(k: int, grouped: bool, stratified: bool, seed: int):
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    if grouped and stratified:
        return StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    if grouped:
        # GroupKFold only shuffles from scikit-learn 1.6 on; groups are also permuted below.
        try:
            return GroupKFold(n_splits=k, shuffle=True, random_state=seed)
        except TypeError:  # pragma: no cover - older scikit-learn
            return GroupKFold(n_splits=k)
    if stratified:
        return StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return KFold(n_splits=k, shuffle=True, random_state=seed)


def make_folds(
    n: int,
    k: int,
    *,
    groups: Sequence[object] | None = None,
    labels: Sequence[object] | None = None,
    seed: int = 0,
) -> list[Split]:
    """K (train, test) index splits of ``n`` items.

    The splitter is chosen from what is given: StratifiedGroupKFold (groups and labels),
    GroupKFold (groups: no patient is in both train and test), StratifiedKFold (labels) or KFold.
    Items whose group is None each form their own group.

    Args:
        n: number of items.
        k: number of folds, at least 2.
        groups: one group id (e.g. patient id) per item, or None.
        labels: one class label per item, or None.
        seed: shuffling seed.

    Returns:
        k tuples of sorted index arrays (train, test); the test sets partition ``range(n)``.

    Raises:
        ConfigError: if k < 2 or there are fewer items (or groups) than folds.
    """
    if k < 2:
        raise ConfigError(f"--folds must be at least 2, got {k}")
    if n < k:
        raise ConfigError(f"cannot make {k} folds from {n} images; use fewer folds")
    group_ids = _group_ids(groups, n) if groups is not None else None
    if group_ids is not None and len(set(group_ids.tolist())) < k:
        raise ConfigError(
            f"cannot make {k} patient-grouped folds from {len(set(group_ids.tolist()))} "
            f"patients; use fewer folds"
        )
    label_arr = _labels(labels, n) if labels is not None else None
    splitter = _splitter(k, group_ids is not None, label_arr is not None, seed)
    x = np.zeros((n, 1))
    y = label_arr if label_arr is not None else np.zeros(n)
    return [
        (np.sort(train), np.sort(test)) for train, test in splitter.split(x, y, groups=group_ids)
    ]


def train_val_split(
    indices: Sequence[int] | np.ndarray,
    val_fraction: float,
    *,
    groups: Sequence[object] | None = None,
    labels: Sequence[object] | None = None,
    seed: int = 0,
) -> Split:
    """Split ``indices`` into (train, validation), e.g. for early stopping within a CV fold.

    Grouped (no patient on both sides) when ``groups`` is given and stratified when ``labels``
    is; ``groups`` and ``labels`` are indexed like the full dataset, not like ``indices``.

    Args:
        indices: the items to split (indices into the full dataset).
        val_fraction: fraction of items (approximately, when grouped) for validation, in (0, 1).
        groups: per-item group ids of the full dataset, or None.
        labels: per-item labels of the full dataset, or None.
        seed: shuffling seed.

    Returns:
        (train, validation) sorted index arrays into the full dataset.
    """
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {val_fraction}")
    idx = np.asarray(indices, dtype=int)
    if len(idx) < 2:
        raise ConfigError(f"cannot split {len(idx)} images into train and validation")
    if groups is not None:
        group_ids = _group_ids(groups, None)[idx]
        if len(set(group_ids.tolist())) >= 2:
            splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
            train, val = next(splitter.split(idx, groups=group_ids))
            return np.sort(idx[train]), np.sort(idx[val])
    strat = None
    if labels is not None:
        lab = _labels(labels, None)[idx]
        _, counts = np.unique(lab, return_counts=True)
        strat = lab if counts.min() >= 2 else None
    train, val = train_test_split(idx, test_size=val_fraction, random_state=seed, stratify=strat)
    return np.sort(train), np.sort(val)


def holdout_split(
    n: int, test_fraction: float, *, groups=None, labels=None, seed: int = 0
) -> Split:
    """One seeded (train, test) split of ``range(n)``, grouped/stratified like the folds."""
    return train_val_split(np.arange(n), test_fraction, groups=groups, labels=labels, seed=seed)


def _group_ids(groups: Sequence[object], n: int | None) -> np.ndarray:
    values = list(groups)
    if n is not None and len(values) != n:
        raise ConfigError(f"got {len(values)} group ids for {n} images")
    # An image without a patient id is its own patient.
    keys = [f"g:{g}" if g is not None else f"i:{i}" for i, g in enumerate(values)]
    _, ids = np.unique(np.array(keys, dtype=object).astype(str), return_inverse=True)
    return ids


def _labels(labels: Sequence[object], n: int | None) -> np.ndarray:
    values = np.asarray(list(labels))
    if n is not None and len(values) != n:
        raise ConfigError(f"got {len(values)} labels for {n} images")
    return values
