"""A ready ``deap.base.Toolbox`` for a search space.

:func:`make_toolbox` only registers things; the result is an ordinary toolbox that users
re-register, decorate and hand to DEAP's algorithms unchanged.
"""

from __future__ import annotations

import builtins
import functools
import inspect
from typing import Any, Callable, Mapping

from deap import base, creator, tools

from deapnn.hparams import operators
from deapnn.core.cache import EvaluationCache
from deapnn.hparams.genome import random_genome
from deapnn.hparams.space import SearchSpace

#: Named operators and their default knobs. ``indpb=None`` means ``1 / len(space)``.
MATE: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "uniform": (operators.cx_uniform, {"indpb": 0.5}),
    "one_point": (operators.cx_one_point, {}),
    "convex": (operators.cx_convex, {}),
}
MUTATE: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "resample": (operators.mut_resample, {"indpb": None}),
    "one_gene": (operators.mut_one_gene, {}),
    "convex": (operators.mut_convex, {"indpb": None}),
    "perturb": (operators.mut_perturb, {"indpb": None, "sigma": 0.1}),
}
SELECT: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "tournament": (tools.selTournament, {"tournsize": 3}),
    "retain": (operators.sel_retain, {"retain": 0.4, "random_select": 0.1}),
    "elites_breeders": (operators.sel_elites_breeders, {"elites": 0.1}),
    "nsga2": (tools.selNSGA2, {}),
    "best": (tools.selBest, {}),
}


def _resolve(role: str, spec: Any, table: Mapping[str, Any], knobs: Mapping[str, Any], n: int):
    if callable(spec):
        return spec, dict(knobs)
    if spec not in table:
        raise ValueError(f"unknown {role} {spec!r}; choose one of {sorted(table)} or pass a function")
    func, defaults = table[spec]
    unknown = sorted(set(knobs) - set(inspect.signature(func).parameters))
    if unknown:
        raise TypeError(f"{role} {spec!r} ({func.__name__}) takes no argument {unknown[0]!r}; "
                        f"its knobs are {sorted(defaults) or 'none'}")
    kwargs = {**defaults, **knobs}
    if "indpb" in kwargs and kwargs["indpb"] is None:
        kwargs["indpb"] = 1.0 / n
    return func, kwargs


class NovelChildren:
    """Toolbox decorator (DEAP's ``toolbox.decorate``) for ``mate``/``mutate``: a child whose key
    was evaluated before is mutated one gene at a time until it is new (DeepEvolve), up to
    ``max_tries`` times; the new key is then reserved in the cache so siblings avoid it too.

    A module-level class rather than a closure, so the decorated toolbox functions pickle.
    """

    def __init__(self, cache: EvaluationCache, max_tries: int = 100) -> None:
        self.cache = cache
        self.max_tries = max_tries

    def __call__(self, func: Callable[..., Any]) -> "_NovelOperator":
        return _NovelOperator(func, self.cache, self.max_tries)


class _NovelOperator:
    def __init__(self, func: Callable[..., Any], cache: EvaluationCache, max_tries: int) -> None:
        self.func, self.cache, self.max_tries = func, cache, max_tries
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        children = self.func(*args, **kwargs)
        for child in children:
            for _ in range(self.max_tries):
                if not self.cache.seen(child):
                    break
                operators.mut_one_gene(child)
            self.cache.pending.add(self.cache.key(child))
        return children


def make_toolbox(
    space: SearchSpace,
    evaluate: Callable[[Any], Any],
    *,
    genome_type: type | None = None,
    mate: str | Callable[..., Any] = "uniform",
    mutate: str | Callable[..., Any] = "resample",
    select: str | Callable[..., Any] = "tournament",
    mate_kwargs: Mapping[str, Any] | None = None,
    mutate_kwargs: Mapping[str, Any] | None = None,
    select_kwargs: Mapping[str, Any] | None = None,
    cache: bool = True,
    novel: bool = False,
    max_novel_tries: int = 100,
) -> base.Toolbox:
    """Register a genome toolbox for ``space``.

    Args:
        space: The search space.
        evaluate: ``genome -> fitness tuple`` (a module-level function or picklable callable).
        genome_type: The creator type to build (default ``creator.Genome``, maximising; use
            ``creator.GenomeMin`` or ``creator.GenomeMulti``, or your own from
            :func:`deapnn.core.types.define`).
        mate, mutate, select: A name from :data:`MATE`, :data:`MUTATE`, :data:`SELECT` or any
            function with DEAP's signature; ``*_kwargs`` override the knobs (``indpb`` defaults
            to ``1 / len(space)`` for mutations).
        cache: Wrap ``evaluate`` in an :class:`EvaluationCache` (``toolbox.cache``) and register
            ``toolbox.map = toolbox.cache.map()``, so no genome is evaluated twice.
        novel: Decorate ``mate`` and ``mutate`` with :class:`NovelChildren`, re-mutating children
            that duplicate a genome seen before (needs ``cache``).

    Returns:
        A ``deap.base.Toolbox`` with ``individual``, ``population``, ``mate``, ``mutate``,
        ``select``, ``evaluate``, ``map`` (and ``cache`` when ``cache=True``).

    Raises:
        TypeError: If ``space`` is not a SearchSpace or ``evaluate`` is not callable.
        ValueError: For an unknown operator name, or ``novel`` without ``cache``.
    """
    if not isinstance(space, SearchSpace):
        raise TypeError(f"space must be a SearchSpace, got {space!r}")
    if not callable(evaluate):
        raise TypeError(f"evaluate must be callable, got {evaluate!r}")
    if novel and not cache:
        raise ValueError("novel=True needs cache=True (the cache knows which genomes were seen)")
    genome_type = creator.Genome if genome_type is None else genome_type
    n = len(space)

    toolbox = base.Toolbox()
    toolbox.register("individual", random_genome, space, genome_type)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    for role, spec, table, knobs in (
        ("mate", mate, MATE, mate_kwargs),
        ("mutate", mutate, MUTATE, mutate_kwargs),
        ("select", select, SELECT, select_kwargs),
    ):
        func, kwargs = _resolve(role, spec, table, knobs or {}, n)
        toolbox.register(role, func, **kwargs)
    if cache:
        toolbox.cache = EvaluationCache(evaluate)
        toolbox.register("evaluate", toolbox.cache)
        toolbox.register("map", toolbox.cache.map(builtins.map))
    else:
        toolbox.register("evaluate", evaluate)
    if novel:
        toolbox.decorate("mate", NovelChildren(toolbox.cache, max_novel_tries))
        toolbox.decorate("mutate", NovelChildren(toolbox.cache, max_novel_tries))
    return toolbox
