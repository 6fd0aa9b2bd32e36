"""Honest fitness on resampled minibatches: compare individuals on one minibatch, keep the best on validation data.

A :class:`~deapnn.weights.BatchedEvaluator` with ``resample=True`` scores each generation on a new
training minibatch (the backend map advances it once per ``map`` call). That is cheap and
regularises, but two fitnesses measured on different minibatches are not comparable: a survivor
that DEAP's ``eaSimple`` or ``eaMuPlusLambda`` carries over keeps the value of the minibatch it
was scored on, so selection pits it against newcomers scored on another one, and a plain
``HallOfFame`` fills with the individuals that drew the easiest minibatch (luck, not skill).

Two pieces make the comparison fair, and :func:`deapnn.weights.make_weight_toolbox` turns the
first on by default whenever its evaluator resamples:

* **Every individual compared in a generation is scored on that generation's minibatch.**
  :class:`HonestMap` wraps ``toolbox.map``: after each evaluation it tags the individuals it
  evaluated with the evaluator's minibatch ``step`` (an attribute ``minibatch_step`` in the
  individual's ``__dict__``, copied by ``toolbox.clone`` and pickled with it). :func:`sel_rescored`
  wraps ``toolbox.select``: before selecting, it re-scores, in one batched call on the current
  step (``evaluator.evaluate_population(stale, step)``), every individual whose fitness comes from
  another minibatch (or is untagged), then calls the real selection. Selection therefore ranks
  all candidates on the same data, the minibatch the newest offspring were scored on. DEAP's
  loops stay unchanged (``eaSimple``: select, vary, evaluate; ``eaMuPlusLambda``: vary, evaluate,
  select parents + offspring) and so does :func:`deapnn.evolve`, whose checkpoint holds the
  tags (in the population) and the evaluator's step, so a resumed run re-scores exactly as an
  uninterrupted one. The re-scoring draws no random numbers; its evaluations are not counted in
  the logbook's ``nevals``. Strategies (``eaGenerateUpdate``) need none of it: every generation
  is new and scored on one minibatch.
* **The hall of fame is ranked on a fixed validation set.** :class:`ValidationHallOfFame` is a
  ``tools.HallOfFame`` whose ``update`` takes the best few individuals of the population by
  their (minibatch) fitness, scores them with ``evaluator.scores(weights, x_val, y_val)`` and
  keeps the best by that score; its individuals carry the validation score as their fitness.

Statistics (``deapnn.fitness_stats()``) still see a population with mixed minibatches between
two selections; use the hall of fame, or the validation score, to report progress.

Register them yourself on any toolbox::

    toolbox.register("map", HonestMap(toolbox.map, evaluator))
    toolbox.register("select", sel_rescored, select=tools.selTournament, evaluator=evaluator,
                     tournsize=3)
    hof = ValidationHallOfFame(5, evaluator, x_val, y_val)

A backend registered afterwards (:func:`deapnn.parallel.register_backend`) keeps the wrapper:
it calls :meth:`HonestMap.rewrap` with the new map. A map registered by hand over an
:class:`HonestMap` drops the tags; :func:`sel_rescored` then re-scores every individual before each
selection (still honest, at the cost of evaluating the survivors once more).
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any, Callable, Sequence

import numpy
from deap import tools

from deapnn.core.failures import check_fitness

__all__ = ["HonestMap", "sel_rescored", "rescore", "ValidationHallOfFame", "STEP_ATTRIBUTE", "resamples"]

#: The attribute holding the minibatch step an individual's fitness was measured on.
STEP_ATTRIBUTE = "minibatch_step"


def resamples(evaluator: Any) -> bool:
    """Whether ``evaluator`` is a population evaluator that draws a new minibatch per generation."""
    return (callable(getattr(evaluator, "evaluate_population", None)) and hasattr(evaluator, "step")
            and bool(getattr(evaluator, "resample", False)))


def _target(func: Any) -> Any:
    """``func`` without ``functools.partial`` layers."""
    while isinstance(func, functools.partial):
        func = func.func
    return func


def _tag(individual: Any, step: int) -> None:
    try:
        setattr(individual, STEP_ATTRIBUTE, step)
    except AttributeError:  # a type without a __dict__ (a plain ndarray): it cannot carry a tag
        pass


class HonestMap:
    """``toolbox.map`` that tags the individuals it evaluates with the evaluator's minibatch step.

    Args:
        map: The map to wrap (``deapnn.parallel.SerialMap()``, a backend map, builtin ``map``).
        evaluator: The population evaluator whose ``step`` to record (a ``BatchedEvaluator``).

    Calls of other functions than the evaluator pass through untouched. It draws no random
    numbers.
    """

    def __init__(self, map: Callable[..., Any], evaluator: Any) -> None:
        if not callable(map):
            raise TypeError(f"HonestMap: map must be callable, got {map!r}")
        if not hasattr(evaluator, "step"):
            raise TypeError(f"HonestMap: evaluator must have a minibatch step, got {type(evaluator).__name__}")
        self.map = map
        self.evaluator = evaluator

    def __call__(self, func: Callable[..., Any], *iterables: Any) -> list[Any]:
        if len(iterables) != 1 or _target(func) is not self.evaluator:
            return list(self.map(func, *iterables))
        items = list(iterables[0])
        results = list(self.map(func, items))
        step = int(self.evaluator.step)
        for ind in items:
            _tag(ind, step)
        return results

    def rewrap(self, map: Callable[..., Any]) -> "HonestMap":
        """The same wrapper around another map (:func:`deapnn.parallel.register_backend` calls it)."""
        return HonestMap(map, self.evaluator)

    def __getattr__(self, name: str) -> Any:  # counters of the wrapped backend map (calls, individuals)
        if name in ("map", "evaluator"):
            raise AttributeError(name)
        return getattr(self.map, name)

    def __repr__(self) -> str:
        return f"HonestMap({self.map!r})"


def rescore(individuals: Sequence[Any], evaluator: Any, step: int | None = None) -> int:
    """Score, on minibatch ``step`` (default the current one), the individuals whose fitness was
    measured on another minibatch or carries no tag; in one batched call.

    Args:
        individuals: Individuals with a fitness (invalid ones are left alone: the loop evaluates them).
        evaluator: The population evaluator (``evaluate_population(individuals, step)``).
        step: Minibatch number; default ``evaluator.step``.

    Returns:
        How many individuals were re-scored.
    """
    step = int(evaluator.step) if step is None else int(step)
    stale = [ind for ind in individuals
             if ind.fitness.valid and getattr(ind, STEP_ATTRIBUTE, None) != step]
    if not stale:
        return 0
    # an individual may appear twice (selection with replacement upstream): score each object once
    unique = list({id(ind): ind for ind in stale}.values())
    results = evaluator.evaluate_population(unique, step)
    for ind, fit in zip(unique, results):
        ind.fitness.values = check_fitness(fit, ind.fitness.weights)
        _tag(ind, step)
    return len(unique)


def sel_rescored(individuals: Sequence[Any], k: int, select: Callable[..., Any], evaluator: Any,
                 **kwargs: Any) -> list[Any]:
    """Selection on one minibatch: :func:`rescore` the stale individuals, then ``select``.

    Args:
        individuals: The candidates.
        k: How many to select.
        select: The selection (``tools.selTournament``, a ``functools.partial`` of one, ...).
        evaluator: The population evaluator whose current step the candidates are scored on.
        **kwargs: Passed to ``select``.

    Returns:
        ``select(individuals, k, **kwargs)``; its randomness is the selection's own.
    """
    if getattr(evaluator, "resample", True):
        rescore(individuals, evaluator)
    return select(individuals, k, **kwargs)


class ValidationHallOfFame(tools.HallOfFame):
    """A hall of fame of weight vectors ranked by their score on a fixed validation set.

    Each :meth:`update` takes up to ``candidates`` of the best individuals of the population by
    their current fitness (that are not in the hall yet), scores them on ``(x, y)`` with
    ``evaluator.scores`` in one batched call, and inserts those whose validation score beats the
    hall's worst. The hall's individuals are copies whose fitness holds the validation score.
    Individuals are compared with ``numpy.array_equal``.

    Args:
        maxsize: Individuals to keep (>= 1).
        evaluator: A :class:`~deapnn.weights.BatchedEvaluator` (``scores(weights, x, y)``).
        x: Validation inputs.
        y: Validation labels.
        metric: ``"neg_cross_entropy"`` or ``"accuracy"``; default the evaluator's ``fitness``.
            Higher is better; for a minimising fitness type the hall stores minus the score.
        candidates: Individuals scored per update; default ``maxsize``.

    Raises:
        ValueError: For ``maxsize`` or ``candidates`` < 1, an unknown metric or empty data.

    It draws no random numbers.
    """

    METRICS = ("neg_cross_entropy", "accuracy")

    def __init__(self, maxsize: int, evaluator: Any, x: Any, y: Any, *, metric: str | None = None,
                 candidates: int | None = None) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"ValidationHallOfFame: maxsize must be an int >= 1, got {maxsize!r}")
        candidates = maxsize if candidates is None else candidates
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            raise ValueError(f"ValidationHallOfFame: candidates must be an int >= 1, got {candidates!r}")
        metric = metric if metric is not None else getattr(evaluator, "fitness", "neg_cross_entropy")
        if metric not in self.METRICS:
            raise ValueError(f"ValidationHallOfFame: metric must be one of {self.METRICS}, got {metric!r}")
        if not callable(getattr(evaluator, "scores", None)):
            raise TypeError(f"ValidationHallOfFame: evaluator must have scores(weights, x, y), "
                            f"got {type(evaluator).__name__}")
        x, y = numpy.asarray(x, dtype=numpy.float32), numpy.asarray(y)
        if x.shape[0] == 0 or y.shape != (x.shape[0],):
            raise ValueError(f"ValidationHallOfFame: x and y must hold the same number (>= 1) of samples, "
                             f"got shapes {x.shape} and {y.shape}")
        super().__init__(maxsize, similar=numpy.array_equal)
        self.evaluator, self.x, self.y = evaluator, x, y
        self.metric, self.candidates = metric, candidates

    def validation_scores(self, individuals: Sequence[Any]) -> numpy.ndarray:
        """The metric of each individual on the validation set (``-inf`` where the output is not finite)."""
        ce, acc, finite = self.evaluator.scores(list(individuals), self.x, self.y)
        values = -numpy.asarray(ce, numpy.float64) if self.metric == "neg_cross_entropy" else numpy.asarray(acc, numpy.float64)
        return numpy.where(numpy.asarray(finite) & numpy.isfinite(values), values, -math.inf)

    def update(self, population: Sequence[Any]) -> None:
        """Score the best ``candidates`` newcomers of ``population`` on the validation set and keep the best."""
        ranked = sorted((ind for ind in population if ind.fitness.valid
                         and not all(w == -math.inf for w in ind.fitness.wvalues)),
                        key=lambda ind: ind.fitness.wvalues, reverse=True)
        picks: list[Any] = []
        for ind in ranked:
            if len(picks) >= self.candidates:
                break
            if any(self.similar(ind, other) for other in self.items) or any(self.similar(ind, p) for p in picks):
                continue
            picks.append(ind)
        if not picks:
            return
        for ind, value in zip(picks, self.validation_scores(picks).tolist()):
            if not math.isfinite(value):
                continue
            clone = copy.deepcopy(ind)
            clone.fitness.values = tuple(value if w > 0 else -value for w in clone.fitness.weights[:1])
            if len(self) < self.maxsize:
                self.insert(clone)
            elif clone.fitness > self[-1].fitness:
                self.remove(-1)
                self.insert(clone)
