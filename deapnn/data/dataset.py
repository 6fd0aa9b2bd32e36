"""The :class:`Dataset` container: train / validation / test arrays, checked when built, and
identified by a content fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

import numpy as np

__all__ = ["Dataset", "DatasetLike", "check_finite"]

_SPLITS = ("train", "val", "test")


def check_finite(x: np.ndarray, what: str) -> None:
    """Raise ``ValueError`` naming ``what``, the first NaN or infinity and its example."""
    if not np.issubdtype(x.dtype, np.inexact):
        return
    finite = np.isfinite(x)
    if not finite.all():
        row = int(np.argmax(~finite.reshape(len(x), -1).all(axis=1)))
        values = np.asarray(x[row]).reshape(-1)
        bad = values[~np.isfinite(values)][0]
        raise ValueError(f"{what} holds {int((~finite).sum())} non-finite value(s): "
                         f"{float(bad)!r} in example {row}")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train / validation / test arrays of a classification problem.

    Checked when built: every split's ``x`` and ``y`` have the same length, the training and
    validation splits are not empty, inputs are finite numbers of shape ``input_shape``, and
    labels are integers in ``range(n_classes)``. Treat the arrays as read-only: the content
    :meth:`fingerprint` is computed once.

    Attributes:
        x_train, y_train: data the networks are fitted on.
        x_val, y_val: held-out part of the training data; fitness is measured here.
        x_test, y_test: never used for fitness; only :func:`deapnn.keras.train_best` reports it
            (may be empty).
        n_classes: number of classes; labels are integer indices in ``range(n_classes)``.
        input_shape: shape of one example (e.g. ``(28, 28)``).
        name: a short label used in logs and benchmark JSON (not part of the fingerprint).

    Raises:
        ValueError: For mismatched lengths, an empty training or validation split, NaN or
            infinite inputs, labels outside ``[0, n_classes)``, or ``n_classes < 2``; the message
            names the array and the bad value.
        TypeError: For arrays that are not numeric, labels that are not integers, or an
            ``n_classes`` that is not an int.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    input_shape: tuple[int, ...]
    name: str = "dataset"

    def __post_init__(self) -> None:
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, (int, np.integer)):
            raise TypeError(f"n_classes must be an int, got {self.n_classes!r}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {self.n_classes!r}")
        object.__setattr__(self, "n_classes", int(self.n_classes))
        try:
            shape = tuple(int(d) for d in self.input_shape)
        except (TypeError, ValueError):
            raise TypeError(f"input_shape must be a tuple of ints, got {self.input_shape!r}") from None
        object.__setattr__(self, "input_shape", shape)
        for split in _SPLITS:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            x, y = np.asarray(x), np.asarray(y)
            object.__setattr__(self, f"x_{split}", x)
            object.__setattr__(self, f"y_{split}", y)
            if x.ndim == 0 or y.ndim != 1:
                raise ValueError(f"x_{split} must hold examples along its first axis and y_{split} "
                                 f"must be one-dimensional; got shapes {x.shape} and {y.shape}")
            if len(x) != len(y):
                raise ValueError(f"x_{split} has {len(x)} rows but y_{split} has {len(y)}")
            if split != "test" and len(x) == 0:
                raise ValueError(f"the {'training' if split == 'train' else 'validation'} split "
                                 f"x_{split} is empty")
            if tuple(x.shape[1:]) != shape:
                raise ValueError(f"x_{split} examples have shape {tuple(x.shape[1:])}, "
                                 f"expected input_shape {shape}")
            if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
                raise TypeError(f"x_{split} must hold numbers, got dtype {x.dtype}")
            check_finite(x, f"x_{split}")
            if not np.issubdtype(y.dtype, np.integer):
                raise TypeError(f"y_{split} must hold integer class indices, got dtype {y.dtype}")
            if len(y):
                bad = np.flatnonzero((y < 0) | (y >= self.n_classes))
                if len(bad):
                    raise ValueError(f"y_{split} holds label {int(y[bad[0]])} at index {int(bad[0])}, "
                                     f"outside [0, n_classes={self.n_classes})")

    def fingerprint(self) -> str:
        """sha256 hex digest of the content: every split's arrays (dtype, shape, bytes),
        ``n_classes`` and ``input_shape`` (not ``name``). Computed once and remembered."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            digest = hashlib.sha256(b"deapnn.Dataset/1")
            digest.update(repr((self.n_classes, self.input_shape)).encode())
            for split in _SPLITS:
                for array in (getattr(self, f"x_{split}"), getattr(self, f"y_{split}")):
                    digest.update(repr((array.dtype.str, array.shape)).encode())
                    digest.update(np.ascontiguousarray(array).tobytes())
            cached = digest.hexdigest()
            object.__setattr__(self, "_fingerprint", cached)
        return cached

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={len(self.x_train)}, val={len(self.x_val)}, "
                f"test={len(self.x_test)}, input_shape={self.input_shape}, "
                f"n_classes={self.n_classes})")


#: A dataset, or a zero-argument callable (module-level function or ``functools.partial``) that
#: returns one. Callables pickle cheaply and are loaded once per process by
#: :func:`deapnn.data.get_dataset`.
DatasetLike = Union[Dataset, Callable[[], Dataset]]
