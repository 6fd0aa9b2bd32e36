"""Baselines the genetic algorithm has to beat, on the same evaluate function.

* :func:`brute_force` - every genome of a finite space, once (DeepEvolve's ``brute.py``);
* :func:`random_search` - random genomes until ``patience`` evaluations in a row bring no
  improvement (the PyData talk's baseline that "gives up"), or a budget is spent.

Both work with any ``evaluate(genome) -> fitness`` (a :class:`~deapnn.keras.evaluator.KerasEvaluator`,
a table lookup, a plain function), never evaluate two genomes with the same canonical key, and
count the cost as distinct evaluations. Pure Python: no TensorFlow here.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deapnn.core.cache import as_fitness, default_key
from deapnn.hparams.genome import make_genome
from deapnn.hparams.space import SearchSpace

__all__ = ["SearchResult", "brute_force", "genome_key", "random_search"]

Evaluate = Callable[[Any], Any]


def genome_key(genome: Any) -> Hashable:
    """A genome's canonical key; a plain dict's sorted items; else the cache's default key."""
    if isinstance(genome, Mapping):
        return tuple(sorted(genome.items()))
    return default_key(genome)


def _weighted(fitness: Sequence[float], weights: Sequence[float]) -> tuple[float, ...]:
    """DEAP's ``wvalues`` (bigger is better), with NaN as the worst value."""
    out = []
    for value, weight in zip(fitness, weights):
        w = float(value) * weight
        out.append(-math.inf if math.isnan(w) else w)
    return tuple(out)


def _check_weights(weights: Sequence[float]) -> tuple[float, ...]:
    weights = tuple(float(w) for w in weights)
    if not weights or any(w == 0 or math.isnan(w) for w in weights):
        raise ValueError(f"weights must be non-zero numbers, like DEAP's, got {weights!r}")
    return weights


@dataclass(frozen=True)
class SearchResult:
    """What a baseline search did.

    Attributes:
        best: the best genome found.
        best_fitness: its fitness tuple.
        evaluations: distinct evaluations made (the cost).
        history: ``(genome, fitness)`` of every evaluation, in order.
        weights: the DEAP-style weights used to compare fitnesses.
        stopped: why the search ended.
    """

    best: Any
    best_fitness: tuple[float, ...]
    evaluations: int
    history: tuple[tuple[Any, tuple[float, ...]], ...]
    weights: tuple[float, ...]
    stopped: str

    def best_so_far(self) -> list[float]:
        """The best first-objective value after each evaluation (length :attr:`evaluations`)."""
        out: list[float] = []
        best: tuple[float, ...] | None = None
        for _, fitness in self.history:
            w = _weighted(fitness, self.weights)
            if best is None or w > best:
                best = w
            out.append(best[0] / self.weights[0])
        return out

    def evaluations_to_reach(self, target: float) -> int | None:
        """Evaluations until one scored at least as well as ``target`` (first objective); None if
        never."""
        goal = target * self.weights[0]
        for i, (_, fitness) in enumerate(self.history, start=1):
            if _weighted(fitness, self.weights)[0] >= goal:
                return i
        return None


class _Search:
    """Shared bookkeeping: dedupe by canonical key, evaluate, track the best."""

    def __init__(self, evaluate: Evaluate, weights: Sequence[float],
                 key: Callable[[Any], Hashable]) -> None:
        if not callable(evaluate):
            raise TypeError(f"evaluate must be callable, got {evaluate!r}")
        self.evaluate = evaluate
        self.weights = _check_weights(weights)
        self.key = key
        self.seen: set[Hashable] = set()
        self.history: list[tuple[Any, tuple[float, ...]]] = []
        self.best: Any = None
        self.best_fitness: tuple[float, ...] | None = None
        self.best_w: tuple[float, ...] | None = None

    def try_genome(self, genome: Any) -> bool | None:
        """Evaluates ``genome`` unless seen; returns None if skipped, else whether it improved."""
        k = self.key(genome)
        if k in self.seen:
            return None
        self.seen.add(k)
        fitness = as_fitness(self.evaluate(genome))
        if len(fitness) != len(self.weights):
            raise ValueError(f"evaluate returned {len(fitness)} values {fitness!r} but weights "
                             f"are {self.weights!r}")
        self.history.append((genome, fitness))
        w = _weighted(fitness, self.weights)
        if self.best_w is None or w > self.best_w:
            self.best, self.best_fitness, self.best_w = genome, fitness, w
            return True
        return False

    def result(self, stopped: str) -> SearchResult:
        if not self.history:
            raise ValueError("the search evaluated nothing")
        return SearchResult(self.best, self.best_fitness, len(self.history), tuple(self.history),
                            self.weights, stopped)


def _genomes(space: SearchSpace | Iterable[Any], genome_type: type | None) -> Iterable[Any]:
    if isinstance(space, SearchSpace):
        return (make_genome(space, values, genome_type) for values in space.grid())
    return iter(space)


def brute_force(evaluate: Evaluate, space: SearchSpace | Iterable[Any], *,
                weights: Sequence[float] = (1.0,), max_evaluations: int | None = None,
                shuffle: bool = False, rng: _random.Random | None = None,
                genome_type: type | None = None,
                key: Callable[[Any], Hashable] = genome_key) -> SearchResult:
    """Evaluates every genome of a finite space once (genomes sharing a canonical key once).

    Args:
        evaluate: ``genome -> fitness`` (a tuple, a number or a ``Failure``).
        space: a finite :class:`~deapnn.hparams.space.SearchSpace` (visited in :meth:`grid` order) or any
            iterable of genomes.
        weights: DEAP-style weights: positive maximises, negative minimises.
        max_evaluations: stop after this many distinct evaluations.
        shuffle: visit the genomes in a random order instead of grid order.
        rng: source of the shuffle; default Python's ``random`` module.
        genome_type: class of the genomes made from a space (default ``creator.Genome``).
        key: genome -> hashable identity; default the genome's canonical key.

    Returns:
        A :class:`SearchResult`.
    """
    if isinstance(space, SearchSpace) and space.size is None:
        raise ValueError(f"brute_force needs a finite space; {space!r} has continuous genes")
    if max_evaluations is not None and max_evaluations < 1:
        raise ValueError(f"max_evaluations must be positive, got {max_evaluations!r}")
    genomes: Iterable[Any] = _genomes(space, genome_type)
    if shuffle:
        genomes = list(genomes)
        (rng or _random).shuffle(genomes)
    search = _Search(evaluate, weights, key)
    for genome in genomes:
        search.try_genome(genome)
        if max_evaluations is not None and len(search.history) >= max_evaluations:
            return search.result(f"budget of {max_evaluations} evaluations spent")
    return search.result("every genome evaluated")


def random_search(evaluate: Evaluate, space: SearchSpace, *, weights: Sequence[float] = (1.0,),
                  patience: int | None = 25, max_evaluations: int | None = None,
                  rng: _random.Random | None = None, genome_type: type | None = None,
                  max_repeats: int = 10_000,
                  key: Callable[[Any], Hashable] = genome_key) -> SearchResult:
    """Random genomes until ``patience`` evaluations in a row bring no improvement.

    A drawn genome whose canonical key was already evaluated is skipped for free; after
    ``max_repeats`` such draws in a row the space is taken as exhausted.

    Args:
        evaluate: ``genome -> fitness``.
        space: the search space to sample.
        weights: DEAP-style weights: positive maximises, negative minimises.
        patience: give up after this many evaluations without improvement (None: never).
        max_evaluations: stop after this many distinct evaluations (None: no budget).
        rng: a :class:`random.Random` for sampling; default Python's ``random`` module.
        genome_type: class of the genomes (default ``creator.Genome``).
        max_repeats: consecutive already-seen draws after which the search stops.
        key: genome -> hashable identity; default the genome's canonical key.

    Returns:
        A :class:`SearchResult`.
    """
    if patience is None and max_evaluations is None:
        raise ValueError("random_search needs patience or max_evaluations, got neither")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be positive, got {patience!r}")
    if max_evaluations is not None and max_evaluations < 1:
        raise ValueError(f"max_evaluations must be positive, got {max_evaluations!r}")
    search = _Search(evaluate, weights, key)
    stale = repeats = 0
    while True:
        genome = make_genome(space, space.sample(rng), genome_type)
        improved = search.try_genome(genome)
        if improved is None:
            repeats += 1
            if repeats >= max_repeats:
                return search.result(f"{max_repeats} repeated draws in a row: space exhausted")
            continue
        repeats = 0
        stale = 0 if improved else stale + 1
        if max_evaluations is not None and len(search.history) >= max_evaluations:
            return search.result(f"budget of {max_evaluations} evaluations spent")
        if patience is not None and stale >= patience:
            return search.result(f"gave up after {patience} evaluations without improvement")
