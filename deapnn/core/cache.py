"""Never evaluate the same genome twice, and never lose a finished evaluation.

:class:`EvaluationCache` wraps an ``evaluate`` function and remembers the fitness of
every key it has seen. It works unchanged inside DEAP's algorithms in two ways:

* as ``toolbox.evaluate`` -- a caching callable, for any ``map``;
* through :meth:`EvaluationCache.map` as ``toolbox.map`` -- the lookup happens on the
  master and only the distinct misses are sent through the wrapped (possibly parallel)
  map, so duplicates within one population are evaluated once.

Every result passes through :func:`deapnn.core.failures.check_fitness`: a NaN becomes a recorded
:class:`~deapnn.core.failures.Failure` (worst values for the individual's fitness weights) and
never enters :attr:`~EvaluationCache.records` as a value.

With an :class:`~deapnn.core.store.EvaluationStore` attached (``store=`` or :meth:`attach`), each
new result is committed to the store as it arrives on the master, and the store's finished rows
for the same evaluator fingerprint answer lookups: a resumed run re-evaluates nothing that had
finished, and a new run with the same evaluator reuses the old runs' results. Infrastructure
failures (timeouts, dead workers) are stored but are never loaded as answers.
"""

from __future__ import annotations

import builtins
import functools
import math
import os
import time
from typing import Any, Callable, Hashable, Iterable

import numpy as np

from deapnn.core.failures import Failure, check_fitness, worst_values
from deapnn.core.fingerprint import fingerprint as generic_fingerprint
from deapnn.core.fingerprint import key_digest
from deapnn.core.store import EvaluationStore, this_worker

__all__ = ["CachedMap", "EvaluationCache", "as_fitness", "default_key"]


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


def _weights(individual: Any) -> tuple[float, ...] | None:
    weights = getattr(getattr(individual, "fitness", None), "weights", None)
    return tuple(weights) if weights else None


class EvaluationCache:
    """A caching ``evaluate``: each distinct key is evaluated once, optionally stored on disk.

    Args:
        evaluate: ``individual -> fitness tuple`` (or a number, or a
            :class:`~deapnn.core.failures.Failure`).
        key: ``individual -> hashable``; default :func:`default_key` (the genome's canonical key).
        store: An :class:`~deapnn.core.store.EvaluationStore` (or a path to one) to attach at
            once, under ``fingerprint(evaluate)`` (:func:`deapnn.core.fingerprint.fingerprint`).

    Attributes:
        records: ``{key: fitness}`` of every evaluation this cache knows (a ``Failure``, with its
            reason and kind, for a failed one; answers loaded from a store join on first lookup).
        failures: ``{key: reason}`` of the evaluations that returned a ``Failure``.
        pending: Keys reserved by a novelty check (:meth:`reserve`) and not evaluated yet.
        hits: Lookups answered from the cache or the store (including duplicates within one
            ``map`` call).
        misses: Real evaluations.
        generation: Written into each stored row; the run loop sets it before each generation.
        store: The attached store, or None. fingerprint: the evaluator fingerprint its rows carry.

    Randomness: none.
    """

    def __init__(self, evaluate: Callable[[Any], Any], key: Callable[[Any], Hashable] = default_key,
                 store: EvaluationStore | str | os.PathLike[str] | None = None) -> None:
        if not callable(evaluate):
            raise TypeError(f"evaluate must be callable, got {evaluate!r}")
        if not callable(key):
            raise TypeError(f"key must be callable, got {key!r}")
        self.evaluate = evaluate
        self.key = key
        self.records: dict[Hashable, tuple[float, ...]] = {}
        self.failures: dict[Hashable, str] = {}
        self.pending: set[Hashable] = set()
        self._reservations: dict[Hashable, int] = {}
        self.hits = 0
        self.misses = 0
        self.generation: int | None = None
        self.store: EvaluationStore | None = None
        self.fingerprint: str | None = None
        self._stored: dict[str, tuple[float, ...]] | None = None  # the store's answers, read lazily
        if store is not None:
            self.attach(store, generic_fingerprint(evaluate))

    # ------------------------------------------------------------------------------ store
    def attach(self, store: EvaluationStore | str | os.PathLike[str], fingerprint: str) -> None:
        """Read ``store``'s final answers for ``fingerprint`` and commit every new result to it.

        Args:
            store: An :class:`~deapnn.core.store.EvaluationStore`, or a path (opened here).
            fingerprint: The evaluator's fingerprint (``evaluator.fingerprint()``, or
                :func:`deapnn.core.fingerprint.fingerprint` of it).

        Infrastructure failures in the store are not answers: those keys are evaluated again.
        """
        if not isinstance(store, EvaluationStore):
            store = EvaluationStore(store)
        if not isinstance(fingerprint, str) or not fingerprint:
            raise TypeError(f"fingerprint must be a non-empty str, got {fingerprint!r}")
        self.store, self.fingerprint = store, fingerprint
        self._stored = store.answers(fingerprint)

    def lookup(self, key: Hashable) -> tuple[float, ...] | None:
        """The fitness recorded for ``key`` (by this run, or a finished row of the attached
        store), else None. Counts nothing: callers that answer an evaluation with it count the
        hit (:class:`deapnn.core.fidelity.MultiFidelity` looks up rung keys this way)."""
        return self._lookup(key)

    def _lookup(self, key: Hashable) -> tuple[float, ...] | None:
        found = self.records.get(key)
        if found is None and self.store is not None:
            if self._stored is None:
                self._stored = self.store.answers(self.fingerprint)
            found = self._stored.get(key_digest(key)) if self._stored else None
            if found is not None:
                self.records[key] = found
                if isinstance(found, Failure):
                    self.failures[key] = found.reason
        return found

    # ------------------------------------------------------------------------------ evaluation
    def __call__(self, individual: Any) -> tuple[float, ...]:
        k = self.key(individual)
        found = self._lookup(k)
        if found is not None:
            self.hits += 1
            self._unreserve(k)
            return found
        self.misses += 1
        start = time.perf_counter()
        value = self.evaluate(individual)
        seconds = time.perf_counter() - start
        return self.record(k, value, weights=_weights(individual), seconds=seconds,
                           worker=this_worker())

    def record(self, key: Hashable, fitness: Any, *, weights: Iterable[float] | None = None,
               seconds: float | None = None, worker: str | None = None) -> tuple[float, ...]:
        """Record ``fitness`` for ``key`` (and commit it to the store) and return it as a tuple.

        Args:
            key: The evaluation key.
            fitness: What the evaluator returned; passed through
                :func:`~deapnn.core.failures.check_fitness` (a NaN becomes a ``Failure``).
            weights: The fitness weights, to check the number of objectives and pick a failure's
                worst values.
            seconds, worker: Stored with the row when known; a result may also carry them as
                attributes ``seconds`` and ``worker`` (set by a backend).

        Raises:
            ValueError: If the number of values differs from ``weights``.
        """
        checked = check_fitness(fitness, weights)
        if isinstance(checked, Failure) and any(math.isnan(v) for v in checked):
            worst = worst_values(weights) if weights is not None else (-math.inf,) * len(checked)
            checked = Failure(worst, checked.reason, checked.kind)  # a NaN is never a value
        if seconds is None:
            seconds = getattr(fitness, "seconds", None)
        if worker is None:
            worker = getattr(fitness, "worker", None)
        self.records[key] = checked
        self._unreserve(key)
        if isinstance(checked, Failure):
            self.failures[key] = checked.reason
        else:
            self.failures.pop(key, None)
        if self.store is not None and self.fingerprint is not None:
            self.store.add(self.fingerprint, key, checked, seconds=seconds,
                           generation=self.generation, worker=worker)
        return checked

    def seen(self, individual: Any) -> bool:
        """Whether ``individual``'s key was evaluated in this run (or is reserved).

        Rows of the store that this run has not looked up yet do not count: a run resumed after a
        kill mid-generation must vary its children exactly as the uninterrupted run did, when the
        killed attempt's evaluations were not yet known to it. They are still never retrained:
        evaluating such a genome is answered from the store.
        """
        k = self.key(individual)
        return k in self.pending or k in self.records

    # ------------------------------------------------------------------------------ novelty
    def reserve(self, key: Hashable) -> None:
        """Mark ``key`` as taken by a child not evaluated yet (so siblings avoid it).

        Reservations are counted: each :meth:`reserve` is undone by one :meth:`release` (or all
        at once when the key is evaluated).
        """
        self._reservations[key] = self._reservations.get(key, 0) + 1
        self.pending.add(key)

    def release(self, key: Hashable) -> None:
        """Undo one :meth:`reserve` of ``key`` (a child about to be changed gives its key back).

        Releasing a key that is not reserved does nothing.
        """
        count = self._reservations.get(key, 0) - 1
        if count > 0:
            self._reservations[key] = count
        else:
            self._reservations.pop(key, None)
            self.pending.discard(key)

    def _unreserve(self, key: Hashable) -> None:
        self._reservations.pop(key, None)
        self.pending.discard(key)

    # ------------------------------------------------------------------------------ failures
    def retry_failed(self) -> int:
        """Forget the infrastructure failures (timeouts, dead workers) so they are evaluated
        again; returns how many were forgotten. Genome failures stay: they are final."""
        stale = [k for k, v in self.records.items() if isinstance(v, Failure) and not v.final]
        for k in stale:
            del self.records[k]
            self.failures.pop(k, None)
        return len(stale)

    def map(self, mapper: Callable[..., Iterable[Any]] = builtins.map) -> "CachedMap":
        """A ``toolbox.map`` that answers this cache's lookups on the master and sends only the
        distinct misses through ``mapper`` (``map``, a pool's ``map``, ``scoop.futures.map`` ...)."""
        return CachedMap(self, mapper)

    # ------------------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """Records, reservations and counters, for a checkpoint (the evaluate function and the
        store are not included; the store is its own file)."""
        return {"records": dict(self.records), "failures": dict(self.failures),
                "pending": dict(self._reservations) | {k: 1 for k in self.pending
                                                        if k not in self._reservations},
                "hits": self.hits, "misses": self.misses, "generation": self.generation}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` in place. Infrastructure failures are dropped, so a resumed run
        evaluates them again."""
        self.records = {k: v for k, v in state["records"].items()
                        if not (isinstance(v, Failure) and not v.final)}
        self.failures = {k: r for k, r in state["failures"].items() if k in self.records}
        pending = state.get("pending", {})
        if not isinstance(pending, dict):
            pending = {k: 1 for k in pending}
        self._reservations = dict(pending)
        self.pending = set(pending)
        self.hits, self.misses = state["hits"], state["misses"]
        self.generation = state.get("generation", self.generation)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_stored"] = None  # reread from the store, if needed, where it is unpickled
        return state

    def __repr__(self) -> str:
        store = f", store={self.store!r}" if self.store is not None else ""
        return (f"EvaluationCache({self.evaluate!r}, records={len(self.records)}, hits={self.hits}, "
                f"misses={self.misses}{store})")


class CachedMap:
    """``map(func, iterable)`` that routes ``func is cache`` calls through the cache.

    Any other function is passed to the wrapped ``mapper`` untouched. Results are recorded (and
    committed to the cache's store) one by one as the mapper yields them, so a lazy mapper
    (``map``, an ``imap``) loses no finished evaluation if the run is killed mid-generation.
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
            if k in todo or cache._lookup(k) is not None:
                cache.hits += 1
                cache._unreserve(k)
            else:
                todo[k] = ind
        if todo:
            cache.misses += len(todo)
            local = self.mapper is builtins.map  # evaluated here, one at a time: timed exactly
            worker = this_worker() if local else None
            done = 0
            clock = time.perf_counter()
            for (k, ind), fit in zip(todo.items(), self.mapper(cache.evaluate, list(todo.values()))):
                seconds = time.perf_counter() - clock if local else None
                cache.record(k, fit, weights=_weights(ind), seconds=seconds, worker=worker)
                done += 1
                clock = time.perf_counter()
            if done != len(todo):
                raise RuntimeError(f"the map {self.mapper!r} returned {done} results for "
                                   f"{len(todo)} individuals")
        return [cache.records[k] for k in keys]
