"""Never evaluate the same genome twice.

:class:`EvaluationCache` wraps an ``evaluate`` function and remembers the fitness of
every key it has seen. It works unchanged inside DEAP's algorithms in two ways:

* as ``toolbox.evaluate`` -- a caching callable, for any ``map``;
* through :meth:`EvaluationCache.map` as ``toolbox.map`` -- the lookup happens on the
  master and only the distinct misses are sent through the wrapped (possibly parallel)
  map, so duplicates within one population are evaluated once.
"""

from __future__ import annotations

import builtins
import functools
from typing import Any, Callable, Hashable, Iterable

import numpy as np

from deapnn.core.failures import Failure


def default_key(individual: Any) -> Hashable:
    """``individual.key()`` if it has one, the bytes of a numpy array, else ``tuple(individual)``."""
    key = getattr(individual, "key", None)
    if callable(key):
        return key()
    if isinstance(individual, np.ndarray):
        return (individual.dtype.str, individual.shape, individual.tobytes())
    return tuple(individual)


def as_fitness(value: Any) -> tuple[float, ...]:
    """An evaluator's return value as a fitness tuple (a bare number becomes a 1-tuple)."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, (int, float, np.number)):
        return (float(value),)
    return tuple(value)


class EvaluationCache:
    """A caching ``evaluate``: each distinct key is evaluated once.

    Args:
        evaluate: ``individual -> fitness tuple`` (or a :class:`~deapnn.core.failures.Failure`).
        key: ``individual -> hashable``; default :func:`default_key` (the genome's canonical key).

    Attributes:
        records: ``{key: fitness}`` of every evaluation so far.
        failures: ``{key: reason}`` of the evaluations that returned a ``Failure``.
        hits: Lookups answered from the cache (including duplicates within one ``map`` call).
        misses: Real evaluations.
    """

    def __init__(self, evaluate: Callable[[Any], Any], key: Callable[[Any], Hashable] = default_key) -> None:
        if not callable(evaluate):
            raise TypeError(f"evaluate must be callable, got {evaluate!r}")
        self.evaluate = evaluate
        self.key = key
        self.records: dict[Hashable, tuple[float, ...]] = {}
        self.failures: dict[Hashable, str] = {}
        self.pending: set[Hashable] = set()
        self.hits = 0
        self.misses = 0

    def __call__(self, individual: Any) -> tuple[float, ...]:
        k = self.key(individual)
        if k in self.records:
            self.hits += 1
            return self.records[k]
        self.misses += 1
        return self.store(k, self.evaluate(individual))

    def store(self, key: Hashable, fitness: Any) -> tuple[float, ...]:
        """Record ``fitness`` for ``key`` and return it as a tuple."""
        fitness = as_fitness(fitness)
        self.records[key] = fitness
        self.pending.discard(key)
        if isinstance(fitness, Failure):
            self.failures[key] = fitness.reason
        return fitness

    def seen(self, individual: Any) -> bool:
        """Whether ``individual``'s key was evaluated (or reserved by a novelty check)."""
        k = self.key(individual)
        return k in self.records or k in self.pending

    def map(self, mapper: Callable[..., Iterable[Any]] = builtins.map) -> "CachedMap":
        """A ``toolbox.map`` that answers this cache's lookups on the master and sends only the
        distinct misses through ``mapper`` (``map``, a pool's ``map``, ``scoop.futures.map`` ...)."""
        return CachedMap(self, mapper)

    def state(self) -> dict[str, Any]:
        """Records and counters, for a checkpoint (the evaluate function is not included)."""
        return {"records": dict(self.records), "failures": dict(self.failures), "hits": self.hits, "misses": self.misses}

    def load_state(self, state: dict[str, Any]) -> None:
        self.records = dict(state["records"])
        self.failures = dict(state["failures"])
        self.hits, self.misses = state["hits"], state["misses"]

    def __repr__(self) -> str:
        return f"EvaluationCache({self.evaluate!r}, records={len(self.records)}, hits={self.hits}, misses={self.misses})"


class CachedMap:
    """``map(func, iterable)`` that routes ``func is cache`` calls through the cache.

    Any other function is passed to the wrapped ``mapper`` untouched.
    """

    def __init__(self, cache: EvaluationCache, mapper: Callable[..., Iterable[Any]] = builtins.map) -> None:
        self.cache = cache
        self.mapper = mapper

    def __call__(self, func: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        # ``toolbox.register("evaluate", cache)`` stores ``functools.partial(cache)``: unwrap it.
        while isinstance(func, functools.partial) and not func.args and not func.keywords:
            func = func.func
        if func is not self.cache or len(iterables) != 1:
            return list(self.mapper(func, *iterables))
        cache = self.cache
        individuals = list(iterables[0])
        keys = [cache.key(ind) for ind in individuals]
        todo: dict[Hashable, Any] = {}
        for k, ind in zip(keys, individuals):
            if k in cache.records or k in todo:
                cache.hits += 1
            else:
                todo[k] = ind
        if todo:
            cache.misses += len(todo)
            results = list(self.mapper(cache.evaluate, list(todo.values())))
            for k, fit in zip(todo, results):
                cache.store(k, fit)
        return [cache.records[k] for k in keys]
