"""Multi-fidelity evaluation inside DEAP's loops: successive halving over each generation.

:class:`MultiFidelity` is registered as ``toolbox.evaluate`` and its :meth:`~MultiFidelity.map`
as ``toolbox.map`` (:meth:`MultiFidelity.install` does both), so DEAP's ``eaSimple``,
``eaMuPlusLambda`` and :func:`deapnn.evolve` run unchanged: they send a generation's
individuals with an invalid fitness through ``toolbox.map(toolbox.evaluate, invalid)``, and the
map spends little on the losers.

The rules, for budgets ``b_0 < b_1 < ... < b_R`` (epochs, fractions allowed) and a promotion
fraction ``p`` in (0, 1)::

    alive = the distinct genomes of the map call
    for rung r = 0 .. R:
        train every alive genome to b_r epochs in all: a genome known at rung r (cache or
            store) is not trained again; one known at rung r - 1 continues from its saved
            rung-(r - 1) state (weights, optimizer, steps) for the steps b_r adds
        if r < R: alive = the best ceil(p * len(alive)) (at least one) of the alive genomes
            that did not fail, ranked by their rung-r fitness (weighted values, lexicographic)
    each genome's fitness = its fitness at the highest rung it has reached (in this call or
        any earlier one)

Rung results are cached and stored under the key ``(genome key, "rung", r)``, so nothing is
trained twice at one rung, in one run or across resumed runs; the trained states of rungs
below the top are ``.npz`` files in ``folder`` (keep it with the run: the CLI uses the run
folder), so a promoted genome resumes from them and its steps add up
(``log`` records each training's first and last step).

Why selection stays fair when individuals carry fitness from different rungs:

* Promotion compares genomes only at equal rungs (every alive genome has a rung-``r`` result).
* A genome stopped at rung ``r`` lost to at least ``ceil(p * n)`` genomes at that rung; the
  winners went on training, and more training of the same network rarely makes it worse, so a
  lower-rung fitness is a pessimistic estimate: across generations, a low-rung genome beats a
  top-rung one only when it is better even with less training.
* Where that assumption is not wanted, ``rung_objective=True`` makes the rung the leading
  fitness component, ``(rung, *values)`` (the fitness class needs one more weight, positive,
  first): DEAP's lexicographic comparison (``selTournament``, ``selBest``, ``HallOfFame``) then
  compares values only between genomes at the same rung, and always prefers the higher rung.
  (Not for NSGA-II, which would treat the rung as an objective.)

The evaluator must train to a budget and resume:
``evaluator.train_budget(genome, budget, *, total, resume, save) -> TrainingRecord`` (see
:meth:`deapnn.keras.KerasEvaluator.train_budget`), and have ``fractional_budgets = True`` when a
budget is not a whole number of epochs.
"""

from __future__ import annotations

import builtins
import functools
import math
import numbers
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Sequence

from deapnn.core.cache import CachedMap, EvaluationCache, default_key
from deapnn.core.failures import Failure, worst_values
from deapnn.core.fingerprint import fingerprint as fingerprint_of
from deapnn.core.fingerprint import key_digest
from deapnn.core.store import this_worker

__all__ = ["FidelityMap", "MultiFidelity", "RungResult", "check_budgets", "rung_key", "train_rung"]


def check_budgets(budgets: Any) -> tuple[float, ...]:
    """``budgets`` as a tuple of floats, checked: at least two positive, finite numbers that
    increase strictly.

    Raises:
        TypeError: If ``budgets`` is not a sequence of numbers.
        ValueError: If a budget is not positive and finite, or the budgets do not increase
            (the message names the value).
    """
    if isinstance(budgets, (str, bytes)) or not isinstance(budgets, Sequence):
        raise TypeError(f"budgets must be a sequence of numbers of epochs, got {budgets!r}")
    out = []
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, numbers.Real):
            raise TypeError(f"budgets must be numbers of epochs, got {b!r} in {budgets!r}")
        if not (math.isfinite(b) and b > 0):
            raise ValueError(f"budgets must be positive, finite numbers of epochs, got {b!r} "
                             f"in {budgets!r}")
        if out and not b > out[-1]:
            raise ValueError(f"budgets must increase from rung to rung, got {b!r} after "
                             f"{out[-1]!r} in {tuple(budgets)!r}")
        out.append(float(b))
    if len(out) < 2:
        raise ValueError(f"multi-fidelity needs at least two budgets (rungs), got {budgets!r}")
    return tuple(out)


def rung_key(key: Hashable, rung: int) -> Hashable:
    """The cache and store key of ``key``'s result at ``rung``: ``(key, "rung", rung)``."""
    return (key, "rung", int(rung))


class RungResult(tuple):
    """A fitness tuple with what the rung's training did: ``steps`` (optimizer steps trained in
    all), ``start_steps`` (steps of the lower-rung state it resumed; 0 from scratch) and
    ``seconds`` (the training's wall time, measured where it ran)."""

    steps: int | None
    start_steps: int
    seconds: float | None

    def __new__(cls, values: Iterable[float], steps: int | None = None,
                start_steps: int = 0, seconds: float | None = None) -> "RungResult":
        self = super().__new__(cls, values)
        self.steps, self.start_steps, self.seconds = steps, start_steps, seconds
        return self

    def __reduce__(self):
        return (RungResult, (tuple(self), self.steps, self.start_steps, self.seconds))


def state_file(folder: str | os.PathLike[str], key: Hashable, rung: int) -> Path:
    """Where the trained state of ``key`` at ``rung`` is saved: ``<folder>/<digest>.r<rung>.npz``."""
    return Path(folder) / f"{key_digest(key)}.r{int(rung)}.npz"


def train_rung(individual: Any, evaluator: Any, budgets: tuple[float, ...], rung: int,
               folder: str, key: Callable[[Any], Hashable] = default_key) -> tuple[float, ...]:
    """Train ``individual`` to ``budgets[rung]`` epochs, resuming its rung-``rung - 1`` state.

    A module-level function (what the map sends to workers, in a ``functools.partial``).
    Saves the trained state for the next rung unless ``rung`` is the top one.

    Returns:
        A :class:`RungResult`, or the evaluator's ``Failure``.
    """
    k = key(individual)
    resume = state_file(folder, k, rung - 1) if rung > 0 else None
    save = state_file(folder, k, rung) if rung < len(budgets) - 1 else None
    record = evaluator.train_budget(individual, budgets[rung], total=budgets[-1],
                                    resume=resume, save=save)
    if isinstance(record.fitness, Failure):
        return record.fitness
    return RungResult(record.fitness, record.steps, record.start_steps, record.seconds)


def _wkey(fitness: Sequence[float], weights: Sequence[float]) -> tuple[float, ...]:
    return tuple(w * v for w, v in zip(weights, fitness))


class MultiFidelity:
    """A ``toolbox.evaluate`` whose map trains each generation by successive halving.

    Args:
        evaluator: Has ``train_budget(genome, budget, *, total, resume, save)`` returning a
            record with ``fitness``, ``steps`` and ``start_steps`` (a
            :class:`~deapnn.keras.KerasEvaluator`), a ``fingerprint()`` and ``weights``.
        budgets: The rungs' budgets in epochs, increasing (e.g. ``(0.25, 1, 3)``); a rung
            trains a genome to that many epochs in all.
        promote: The fraction of a rung's genomes promoted to the next, in (0, 1).
        folder: Where lower-rung training states are saved; default a temporary folder made on
            first use. Keep it with the run (a resumed run reads it).
        rung_objective: Return ``(rung, *values)`` instead of ``values`` (see the module).
        cache: The :class:`~deapnn.core.cache.EvaluationCache` that holds the rung results;
            default a new one (``install`` uses the toolbox's).

    Attributes:
        cache: The cache. Each genome's plain key holds its highest-rung fitness (in memory
            only, so ``cache.seen`` and novelty checks work); rung keys hold rung results and
            are committed to the cache's store.
        log: One dict per training: ``digest``, ``rung``, ``budget``, ``start_steps``,
            ``steps``, ``seconds``, ``generation``.

    Raises:
        ValueError: For budgets that are not positive and increasing, ``promote`` outside
            (0, 1), or an evaluator that cannot train to a budget (or to a fraction of an
            epoch when a budget is one), naming the value.

    Randomness: none here; the evaluator's training is seeded per genome.
    """

    def __init__(self, evaluator: Any, budgets: Sequence[float], promote: float = 0.5, *,
                 folder: str | os.PathLike[str] | None = None, rung_objective: bool = False,
                 cache: EvaluationCache | None = None) -> None:
        budgets = check_budgets(budgets)
        if isinstance(promote, bool) or not isinstance(promote, numbers.Real):
            raise TypeError(f"promote must be a number in (0, 1), got {promote!r}")
        if not 0.0 < promote < 1.0:
            raise ValueError(f"promote must be a fraction in (0, 1), got {promote!r}")
        if not callable(getattr(evaluator, "train_budget", None)):
            raise ValueError(f"the evaluator {evaluator!r} cannot train to a budget of "
                             f"{budgets[0]!r} epochs: it has no train_budget(genome, budget, "
                             f"*, total, resume, save) method")
        fractional = [b for b in budgets if b != int(b)]
        if fractional and not getattr(evaluator, "fractional_budgets", False):
            raise ValueError(f"the evaluator {evaluator!r} cannot train for a fraction of an "
                             f"epoch, and budget {fractional[0]!r} is one")
        if cache is not None and not isinstance(cache, EvaluationCache):
            raise TypeError(f"cache must be an EvaluationCache, got {cache!r}")
        self.evaluator = evaluator
        self.budgets = budgets
        self.promote = float(promote)
        self.folder = None if folder is None else str(folder)
        self.rung_objective = bool(rung_objective)
        self.cache = cache if cache is not None else EvaluationCache(evaluator)
        self.log: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------ toolbox
    def install(self, toolbox: Any) -> Any:
        """Register ``toolbox.evaluate = self`` and ``toolbox.map = self.map(mapper)``.

        ``mapper`` is the backend behind the toolbox's current map (a ``CachedMap``'s mapper, or
        the map itself); the toolbox's ``cache``, if any, becomes :attr:`cache` (so novelty
        checks and :func:`deapnn.evolve`'s store see the rung results), else ``toolbox.cache``
        is set to it. :func:`deapnn.parallel.register_backend` may be called before or after.

        Returns:
            The toolbox.
        """
        current = getattr(toolbox, "map", builtins.map)
        while isinstance(current, functools.partial) and not current.args and not current.keywords:
            current = current.func  # toolbox.register wraps what it registers in a partial
        mapper = current.mapper if isinstance(current, CachedMap) else current
        if isinstance(getattr(toolbox, "cache", None), EvaluationCache):
            self.cache = toolbox.cache
        else:
            toolbox.cache = self.cache
        toolbox.register("evaluate", self)
        toolbox.register("map", self.map(mapper))
        return toolbox

    def map(self, mapper: Callable[..., Iterable[Any]] = builtins.map) -> "FidelityMap":
        """A ``toolbox.map`` that evaluates ``self`` by successive halving over ``mapper``
        (``map``, a backend's map ...), and passes any other function to ``mapper``."""
        return FidelityMap(self, mapper)

    def __call__(self, individual: Any) -> tuple[float, ...]:
        """One genome alone: trained through every rung (it is always the best of its rung)."""
        return self.evaluate_all([individual])[0]

    # ------------------------------------------------------------------------------ evaluation
    def _folder(self) -> str:
        if self.folder is None:
            self.folder = tempfile.mkdtemp(prefix="deapnn-fidelity-")
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        return self.folder

    def _check_weights(self, weights: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if not self.rung_objective or weights is None:
            return weights
        if len(weights) < 2 or not weights[0] > 0:
            raise ValueError(f"rung_objective=True needs a fitness with the rung first, a "
                             f"positive weight, then the evaluator's; got weights {weights!r}")
        return weights[1:]

    def evaluate_all(self, individuals: Sequence[Any],
                     mapper: Callable[..., Iterable[Any]] = builtins.map) -> list[tuple[float, ...]]:
        """The fitness of each of ``individuals`` by successive halving (the module's rules).

        Args:
            individuals: The genomes (duplicates are trained once).
            mapper: How a rung's trainings run (``map``, a backend's map).

        Returns:
            One fitness per individual: its highest rung's (``(rung, *values)`` with
            ``rung_objective``).
        """
        cache = self.cache
        individuals = list(individuals)
        if not individuals:
            return []
        weights = getattr(getattr(individuals[0], "fitness", None), "weights", None)
        weights = self._check_weights(tuple(weights) if weights else None)
        rank_weights = weights or tuple(getattr(self.evaluator, "weights", (1.0,)))
        keys = [cache.key(ind) for ind in individuals]
        distinct: dict[Hashable, Any] = {}
        for k, ind in zip(keys, individuals):
            distinct.setdefault(k, ind)
        folder = self._folder()
        alive = list(distinct)
        last = len(self.budgets) - 1
        for rung in range(last + 1):
            todo = [k for k in alive if cache.lookup(rung_key(k, rung)) is None]
            cache.hits += len(alive) - len(todo)
            if todo:
                self._train(rung, todo, distinct, mapper, folder, weights)
            if rung == last:
                break
            ok = [k for k in alive if not isinstance(cache.records[rung_key(k, rung)], Failure)]
            ok.sort(key=lambda k: _wkey(cache.records[rung_key(k, rung)], rank_weights),
                    reverse=True)
            alive = ok[:max(1, math.ceil(self.promote * len(alive)))]
            if not alive:
                break
        out: dict[Hashable, tuple[float, ...]] = {}
        for k in distinct:
            rung, fitness = self.highest(k)
            cache.records[k] = fitness  # the plain key: seen() and novelty; never stored
            if isinstance(fitness, Failure):
                cache.failures[k] = fitness.reason
            else:
                cache.failures.pop(k, None)
            cache._unreserve(k)
            out[k] = self._output(rung, fitness, weights)
        return [out[k] for k in keys]

    def highest(self, key: Hashable) -> tuple[int, tuple[float, ...] | None]:
        """``(rung, fitness)`` of ``key``'s highest rung known (``(-1, None)`` if none)."""
        for rung in reversed(range(len(self.budgets))):
            found = self.cache.lookup(rung_key(key, rung))
            if found is not None:
                return rung, found
        return -1, None

    def _output(self, rung: int, fitness: tuple[float, ...], weights) -> tuple[float, ...]:
        if not self.rung_objective:
            return fitness
        if isinstance(fitness, Failure):
            full = (1.0,) + tuple(weights or (1.0,) * len(fitness))
            return Failure(worst_values(full), fitness.reason, fitness.kind)
        return (float(rung),) + tuple(fitness)

    def _train(self, rung: int, todo: list[Hashable], distinct: dict[Hashable, Any],
               mapper: Callable[..., Iterable[Any]], folder: str, weights) -> None:
        cache = self.cache
        cache.misses += len(todo)
        func = functools.partial(train_rung, evaluator=self.evaluator, budgets=self.budgets,
                                 rung=rung, folder=folder, key=cache.key)
        local = mapper is builtins.map
        worker = this_worker() if local else None
        clock = time.perf_counter()
        done = 0
        for k, result in zip(todo, mapper(func, [distinct[k] for k in todo])):
            seconds = time.perf_counter() - clock if local else getattr(result, "seconds", None)
            rk = rung_key(k, rung)
            cache.record(rk, result, weights=weights, seconds=seconds, worker=worker)
            cache.failures.pop(rk, None)  # failures are counted once, on the plain key
            self.log.append({"digest": key_digest(k), "rung": rung, "budget": self.budgets[rung],
                             "start_steps": getattr(result, "start_steps", None),
                             "steps": getattr(result, "steps", None), "seconds": seconds,
                             "generation": cache.generation,
                             "failed": isinstance(result, Failure)})
            done += 1
            clock = time.perf_counter()
        if done != len(todo):
            raise RuntimeError(f"the map {mapper!r} returned {done} results for {len(todo)} "
                               f"genomes")

    # ------------------------------------------------------------------------------ state
    def trainings(self, rung: int | None = None) -> int:
        """How many trainings ran (at ``rung``, or at all rungs), from :attr:`log`."""
        return sum(1 for e in self.log if rung is None or e["rung"] == rung)

    def fingerprint(self) -> str:
        """What decides a rung's result: the evaluator's fingerprint, the budgets, the
        promotion fraction and ``rung_objective`` (not the folder, nor the backend)."""
        inner = self.evaluator.fingerprint() if callable(
            getattr(self.evaluator, "fingerprint", None)) else fingerprint_of(self.evaluator)
        return fingerprint_of({"multi_fidelity": inner, "budgets": self.budgets,
                               "promote": self.promote, "rung_objective": self.rung_objective})

    def state(self) -> dict[str, Any]:
        """The log and folder, for :func:`deapnn.evolve`'s checkpoint (the cache is saved
        with the run's cache)."""
        return {"log": list(self.log), "folder": self.folder}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`."""
        self.log = list(state["log"])
        if state.get("folder") is not None:
            self.folder = state["folder"]

    def __repr__(self) -> str:
        return (f"MultiFidelity({self.evaluator!r}, budgets={self.budgets}, "
                f"promote={self.promote}, folder={self.folder!r})")


class FidelityMap:
    """``map(func, individuals)``: ``func is fidelity`` runs :meth:`MultiFidelity.evaluate_all`
    over ``mapper``; any other function goes to ``mapper`` untouched."""

    def __init__(self, fidelity: MultiFidelity,
                 mapper: Callable[..., Iterable[Any]] = builtins.map) -> None:
        self.fidelity = fidelity
        self.mapper = mapper

    def rewrap(self, mapper: Callable[..., Iterable[Any]]) -> "FidelityMap":
        """The same multi-fidelity map over another backend map (a ``CachedMap`` is unwrapped:
        :class:`MultiFidelity` consults the cache itself); :func:`deapnn.parallel.register_backend`
        calls it, so the backend can be chosen before or after :meth:`MultiFidelity.install`."""
        return FidelityMap(self.fidelity, mapper.mapper if isinstance(mapper, CachedMap) else mapper)

    def __getattr__(self, name: str) -> Any:  # a backend's close(), default_failure ...
        if name in ("fidelity", "mapper"):
            raise AttributeError(name)
        return getattr(self.mapper, name)

    def __call__(self, func: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        while isinstance(func, functools.partial) and not func.args and not func.keywords:
            func = func.func
        if func is not self.fidelity or len(iterables) != 1:
            return list(self.mapper(func, *iterables))
        return self.fidelity.evaluate_all(list(iterables[0]), self.mapper)
