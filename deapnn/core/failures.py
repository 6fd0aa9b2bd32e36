"""Failed evaluations as first-class fitness values.

A model that raises, returns NaN or runs out of time is not an exception that
stops the run: its evaluator returns a :class:`Failure`, a tuple of (bad)
fitness values that DEAP assigns like any other and that also carries the
reason, so caches and logs can record why it failed.
"""

from __future__ import annotations

import math
from typing import Any, Iterable


class Failure(tuple):
    """Fitness values of a failed evaluation, with the reason attached.

    Example:
        >>> f = Failure((0.0,), "NaN loss at epoch 1")
        >>> f, f.reason
        ((0.0,), 'NaN loss at epoch 1')
    """

    reason: str

    def __new__(cls, values: Iterable[float], reason: str) -> "Failure":
        values = tuple(float(v) for v in values)
        if not values:
            raise ValueError("a Failure needs at least one fitness value")
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, got {reason!r}")
        self = super().__new__(cls, values)
        self.reason = reason
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Failure, (tuple(self), self.reason))

    def __repr__(self) -> str:
        return f"Failure({tuple(self)!r}, reason={self.reason!r})"


def is_failure(fitness: Any) -> bool:
    """Whether ``fitness`` (an evaluator's return value) is a :class:`Failure`."""
    return isinstance(fitness, Failure)


def worst_values(weights: Iterable[float]) -> tuple[float, ...]:
    """Worst possible value for each objective: ``-inf`` when maximised, ``+inf`` when minimised."""
    return tuple(-math.inf if w > 0 else math.inf for w in weights)
