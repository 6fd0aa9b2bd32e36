"""Split sizes, labels and stratified holdouts (scikit-learn's ``train_test_split``)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["holdout", "labels", "split_count"]


def split_count(n: int, size: float | int, what: str) -> int:
    """The number of examples ``size`` (a fraction in (0, 1) or a count) takes out of ``n``.

    Raises:
        TypeError: If ``size`` is neither a fraction nor a count.
        ValueError: If it leaves no example on one side of the split; the message names ``what``.
    """
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} must be a fraction or a count, got {size!r}")
    if isinstance(size, (float, np.floating)):
        if not 0.0 < size < 1.0:
            raise ValueError(f"{what} fraction must be in (0, 1), got {size!r}")
        count = int(round(n * float(size)))
    else:
        count = int(size)
    if not 0 < count < n:
        raise ValueError(f"{what}={size!r} leaves no examples on one side of a split of {n}")
    return count


def holdout(x: np.ndarray, y: np.ndarray, size: float | int, seed: int,
            what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Splits off ``size`` examples, stratified by class, shuffled.

    Uses scikit-learn's ``train_test_split(..., stratify=y, random_state=seed)``; when a class
    is too rare to stratify (fewer than two examples, or fewer examples on a side than there are
    classes) the split is shuffled without stratification.

    Returns:
        ``x_keep, y_keep, x_held, y_held``.
    """
    from sklearn.model_selection import train_test_split

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32 - 1:
        raise ValueError(f"the {what} split's seed must be an int in [0, 2**32 - 2], got {seed!r}")
    count = split_count(len(x), size, what)
    classes, counts = np.unique(y, return_counts=True)
    stratify = y if (counts.min() >= 2 and len(classes) <= count <= len(x) - len(classes)) else None
    keep, held = train_test_split(np.arange(len(x)), test_size=count, random_state=seed,
                                  shuffle=True, stratify=stratify)
    return x[keep], y[keep], x[held], y[held]


def labels(y: Any, what: str) -> np.ndarray:
    """``y`` as int64 class indices (one-hot rows are turned into indices).

    Raises:
        ValueError: If ``y`` holds a value that is not a non-negative whole number; the message
            names ``what``, the value and its index.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    if y.ndim == 0 or (y.ndim == 2 and y.shape[1] != 1) or y.ndim > 2:
        raise ValueError(f"{what} must be a vector of class indices or one-hot rows, got shape {y.shape}")
    y = y.reshape(len(y))
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.number):
        raise TypeError(f"{what} must hold integer class indices, got dtype {y.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(y) & np.equal(np.mod(y, 1), 0)
        if not whole.all():
            i = int(np.argmax(~whole))
            raise ValueError(f"{what} must hold integer class indices or one-hot rows; "
                             f"{what}[{i}] is {y[i].item()!r}")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        i = int(np.argmin(y))
        raise ValueError(f"{what} holds a negative class index {int(y[i])} at index {i}")
    return y
