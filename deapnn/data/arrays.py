"""Datasets from the user's own arrays, and scikit-learn's bundled 8x8 digits."""

from __future__ import annotations

from typing import Any

import numpy as np

from deapnn.data.dataset import Dataset, check_finite
from deapnn.data.splits import holdout, labels, split_count

__all__ = ["from_arrays", "load_digits"]


def from_arrays(x: Any, y: Any, x_test: Any = None, y_test: Any = None, *,
                validation: float | int = 0.1, test: float | int = 0.1, seed: int = 0,
                n_classes: int | None = None, name: str = "arrays") -> Dataset:
    """Makes a :class:`Dataset` from user arrays.

    ``x`` is converted to float32 as is (scale it yourself); ``y`` may be class indices or
    one-hot rows. The validation split is drawn from ``x``; the test split too when ``x_test`` is
    not given. Splits are stratified by class (scikit-learn's ``train_test_split``).

    Args:
        x, y: training examples and labels.
        x_test, y_test: an optional separate test set.
        validation: fraction (float) or number (int) of the training examples held out.
        test: fraction or number of examples held out for testing when ``x_test`` is None.
        seed: ``random_state`` of the splits: test with ``seed + 1``, validation with ``seed``.
        n_classes: number of classes; inferred from the largest label when None.
        name: label of the dataset.

    Returns:
        The dataset.

    Raises:
        ValueError: For x and y of different lengths, NaN or infinite inputs, labels that are not
            whole numbers in ``[0, n_classes)``, or a split that leaves a side empty.
    """
    x = np.asarray(x, dtype=np.float32)
    y = labels(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    check_finite(x, "x")
    if (x_test is None) != (y_test is None):
        raise ValueError("pass both x_test and y_test, or neither")
    if x_test is None:
        x, y, x_test, y_test = holdout(x, y, test, seed + 1, "test")
    else:
        x_test = np.asarray(x_test, dtype=np.float32)
        y_test = labels(y_test, "y_test")
        if len(x_test) != len(y_test):
            raise ValueError(f"x_test has {len(x_test)} rows but y_test has {len(y_test)}")
        check_finite(x_test, "x_test")
    x_train, y_train, x_val, y_val = holdout(x, y, validation, seed, "validation")
    inferred = int(max(y.max(), y_test.max() if len(y_test) else 0)) + 1
    if n_classes is None:
        n_classes = inferred
    elif isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise TypeError(f"n_classes must be an int, got {n_classes!r}")
    elif n_classes < inferred:
        raise ValueError(f"n_classes={n_classes!r} but labels go up to {inferred - 1}")
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, n_classes=int(n_classes),
                   input_shape=tuple(x.shape[1:]), name=name)


def load_digits(*, validation: float | int = 0.2, test: float | int = 0.2,
                seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images), scaled to [0, 1].

    Args:
        validation: fraction or number of all examples used for validation.
        test: fraction or number of all examples used for testing.
        seed: ``random_state`` of the stratified splits (test with ``seed + 1``, validation
            with ``seed``).

    Returns:
        The dataset, ``input_shape == (8, 8)``, 10 classes.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    n = len(x)
    n_test = split_count(n, test, "test")
    n_val = split_count(n, validation, "validation")
    if n_test + n_val >= n:
        raise ValueError(f"validation={validation!r} and test={test!r} leave no training data")
    x, y, x_test, y_test = holdout(x, y, n_test, seed + 1, "test")
    x_train, y_train, x_val, y_val = holdout(x, y, n_val, seed, "validation")
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, n_classes=10,
                   input_shape=(8, 8), name="digits")
