"""Ready-made DEAP ``Statistics`` that tolerate failed (non-finite) fitnesses."""

from __future__ import annotations

from typing import Any

import numpy as np
from deap import tools


def fitness_values(individual: Any) -> tuple[float, ...]:
    """``individual.fitness.values`` (module-level, so it pickles in checkpoints)."""
    return individual.fitness.values


def _reduce(func: Any, values: Any) -> Any:
    """``func`` over the finite values of each objective; a float for one objective, NaN if none."""
    a = np.asarray(values, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    out = []
    for column in a.T:
        column = column[np.isfinite(column)]
        out.append(float(func(column)) if column.size else float("nan"))
    return out[0] if len(out) == 1 else np.array(out)


def finite_mean(values: Any) -> Any:
    return _reduce(np.mean, values)


def finite_std(values: Any) -> Any:
    return _reduce(np.std, values)


def finite_min(values: Any) -> Any:
    return _reduce(np.min, values)


def finite_max(values: Any) -> Any:
    return _reduce(np.max, values)


def n_failed(values: Any) -> int:
    a = np.asarray(values, dtype=float)
    return int((~np.isfinite(a)).any(axis=-1).sum()) if a.ndim > 1 else int((~np.isfinite(a)).sum())


def fitness_stats() -> tools.Statistics:
    """``tools.Statistics`` over fitness values with avg, std, min, max (failed -- non-finite --
    values are left out and counted in ``failed``)."""
    stats = tools.Statistics(fitness_values)
    stats.register("avg", finite_mean)
    stats.register("std", finite_std)
    stats.register("min", finite_min)
    stats.register("max", finite_max)
    stats.register("failed", n_failed)
    return stats
