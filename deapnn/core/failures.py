"""Failed evaluations as first-class fitness values, and the errors that are not.

deapnn sorts what can go wrong in an evaluation into three kinds:

* **A genome's failure** (``kind="genome"``): the network this genome describes raised, returned
  NaN, diverged or ran out of memory. The evaluator returns a :class:`Failure`, a tuple of (bad)
  fitness values that DEAP assigns like any other and that also carries the reason, so caches,
  stores and logs record why. It is the genome's final answer.
* **An infrastructure failure** (``kind="infrastructure"``): the evaluation ran out of its time
  limit or its worker died. Also a :class:`Failure` fitness for this generation, but it is not the
  genome's final answer: a resumed run (or ``retry_failed=True``) evaluates it again.
* **A setup error** (:class:`SetupError`): the run itself is wrong -- an evaluator that cannot be
  pickled or unpickled in a worker, a builder with the wrong signature, an unknown metric. It is
  raised at once with the original message, never turned into a fitness, so a run cannot spend
  hours evaluating nothing.

:func:`check_fitness` turns what an evaluator returned into a fitness tuple: a NaN or other
non-number becomes a recorded :class:`Failure` (never a value that selection or a hall of fame
could take), and a wrong number of objectives is a ``ValueError``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

#: The kinds of :class:`Failure`.
KINDS = ("genome", "infrastructure")


class Failure(tuple):
    """Fitness values of a failed evaluation, with the reason (and kind) attached.

    Args:
        values: The fitness values to assign (usually :func:`worst_values`).
        reason: Why it failed, for logs and the evaluation store.
        kind: ``"genome"`` (the genome's final answer) or ``"infrastructure"`` (a timeout or a
            dead worker: evaluated again on resume).

    Example:
        >>> f = Failure((0.0,), "NaN loss at epoch 1")
        >>> f, f.reason, f.kind
        ((0.0,), 'NaN loss at epoch 1', 'genome')
    """

    reason: str
    kind: str

    def __new__(cls, values: Iterable[float], reason: str, kind: str = "genome") -> "Failure":
        values = tuple(float(v) for v in values)
        if not values:
            raise ValueError("a Failure needs at least one fitness value")
        if not isinstance(reason, str):
            raise TypeError(f"reason must be a str, got {reason!r}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self = super().__new__(cls, values)
        self.reason = reason
        self.kind = kind
        return self

    @property
    def final(self) -> bool:
        """Whether this is the genome's final answer (not an infrastructure failure)."""
        return self.kind == "genome"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Failure, (tuple(self), self.reason, self.kind))

    def __repr__(self) -> str:
        extra = "" if self.kind == "genome" else f", kind={self.kind!r}"
        return f"Failure({tuple(self)!r}, reason={self.reason!r}{extra})"


class SetupError(RuntimeError):
    """The run is set up wrong (not one genome): raised at once, never recorded as a fitness.

    The original exception is chained as ``__cause__`` and its message is part of this one.
    """


def is_failure(fitness: Any) -> bool:
    """Whether ``fitness`` (an evaluator's return value) is a :class:`Failure`."""
    return isinstance(fitness, Failure)


def worst_values(weights: Iterable[float]) -> tuple[float, ...]:
    """Worst possible value for each objective: ``-inf`` when maximised, ``+inf`` when minimised."""
    return tuple(-math.inf if w > 0 else math.inf for w in weights)


def check_fitness(value: Any, weights: Sequence[float] | None = None) -> tuple[float, ...]:
    """What an evaluator returned, as a fitness tuple that is safe to assign.

    A bare number becomes a 1-tuple. A :class:`Failure` is kept as it is. A tuple with a NaN (or
    a value that is not a real number) becomes a ``Failure`` with the worst values for
    ``weights`` (``-inf`` when maximised), so it never enters a hall of fame nor survives
    selection, and the reason is recorded. ``+inf``/``-inf`` are legitimate values and stay.

    Args:
        value: The evaluator's return value.
        weights: The fitness weights (``individual.fitness.weights``); when given, the number of
            objectives is checked against them, and they choose the failure's worst values.

    Raises:
        ValueError: If ``weights`` is given and the number of values differs from it.
    """
    if isinstance(value, Failure):
        values: tuple[Any, ...] = tuple(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        values = (value,)
    elif isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"an evaluator must return a fitness tuple or a number, got {value!r}")
    else:
        values = tuple(value)
    if weights is not None and len(values) != len(weights):
        raise ValueError(
            f"the evaluator returned {len(values)} fitness value(s) {values!r}, but the fitness has "
            f"{len(weights)} objective(s) (weights {tuple(weights)!r})"
        )
    if isinstance(value, Failure):
        return value
    bad = [v for v in values if not isinstance(v, numbers.Real) or isinstance(v, bool) or math.isnan(v)]
    if bad:
        worst = worst_values(weights) if weights is not None else tuple(-math.inf for _ in values)
        return Failure(worst, f"invalid fitness {values!r}: {bad[0]!r} is not a number")
    return tuple(float(v) for v in values)
