"""A ready ``deap.base.Toolbox`` for a search space.

:func:`make_toolbox` only registers things; the result is an ordinary toolbox that users
re-register, decorate and hand to DEAP's algorithms unchanged. It takes its operator options the
way :func:`deapnn.weights.make_weight_toolbox` does (:mod:`deapnn.core.options`): ``mate=``,
``mutate=``, ``select=`` by name or function, ``*_kwargs`` knobs, ``elites=`` a count.
"""

from __future__ import annotations

import builtins
import functools
import weakref
from typing import Any, Callable, Mapping

from deap import base, creator, tools

from deapnn.core.cache import EvaluationCache
from deapnn.core.options import register_operators
from deapnn.hparams import operators
from deapnn.hparams.genome import random_genome
from deapnn.hparams.learned import LearnedMutation, mut_learned
from deapnn.hparams.screened import ScreenedMutation, mut_screened
from deapnn.hparams.space import SearchSpace

__all__ = ["make_toolbox", "NovelChildren", "MATE", "MUTATE", "SELECT"]

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
    # Evo-NAS's learned mutation; ``learner=None`` means a new ``LearnedMutation(space)``.
    "learned": (mut_learned, {"indpb": None, "learner": None}),
    # Surrogate-screened mutation; ``screen=None`` means a new ``ScreenedMutation(space)``; the
    # screen is bound to ``toolbox.cache`` (its data).
    "screened": (mut_screened, {"screen": None}),
}
#: Mutations that carry a learning object: ``operator -> (keyword, class, name)``. make_toolbox
#: builds the object for the space when the keyword is None and checks a given one's type and space.
_STATEFUL_MUTATIONS: dict[Callable[..., Any], tuple[str, type, str]] = {
    mut_learned: ("learner", LearnedMutation, "learned"),
    mut_screened: ("screen", ScreenedMutation, "screened"),
}
SELECT: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "tournament": (tools.selTournament, {"tournsize": 3}),
    "retain": (operators.sel_retain, {"retain": 0.4, "random_select": 0.1}),
    "elites_breeders": (operators.sel_elites_breeders, {}),
    "nsga2": (tools.selNSGA2, {}),
    "best": (tools.selBest, {}),
}


class NovelChildren:
    """Toolbox decorator (DEAP's ``toolbox.decorate``) for ``mate``/``mutate``: a child whose key
    was evaluated (or reserved) before is mutated one gene at a time until it is new
    (DeepEvolve), up to ``max_tries`` times; the new key is then reserved in the cache so siblings
    avoid it too.

    Register one instance on both operators (``make_toolbox(novel=True)`` does): a child crossed
    by ``mate`` and then changed by ``mutate`` gives back the key ``mate`` reserved for it
    (``cache.release``) and reserves its final key (``cache.reserve``), so no stale reservation
    is left behind. Randomness: Python's ``random`` (through :func:`operators.mut_one_gene`).

    A module-level class rather than a closure, so the decorated toolbox functions pickle.
    """

    def __init__(self, cache: EvaluationCache, max_tries: int = 100) -> None:
        if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 0:
            raise ValueError(f"max_tries must be an int >= 0, got {max_tries!r}")
        self.cache = cache
        self.max_tries = max_tries
        self._reserved: dict[int, tuple[Any, Any]] = {}  # id(child) -> (weakref(child), key)

    def __call__(self, func: Callable[..., Any]) -> "_NovelOperator":
        return _NovelOperator(func, self)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_reserved": {}}  # weak references do not pickle

    def release(self, individual: Any) -> None:
        """Give back the key an earlier variation reserved for ``individual``, if any."""
        entry = self._reserved.pop(id(individual), None)
        if entry is not None and entry[0]() is individual:
            _release(self.cache, entry[1])

    def reserve(self, individual: Any) -> None:
        """Make ``individual`` novel (up to ``max_tries`` one-gene mutations) and reserve its key."""
        for _ in range(self.max_tries):
            if not self.cache.seen(individual):
                break
            operators.mut_one_gene(individual)
        key = self.cache.key(individual)
        _reserve(self.cache, key)
        if len(self._reserved) >= 4096:  # forget children that were dropped since
            self._reserved = {i: e for i, e in self._reserved.items() if e[0]() is not None}
        try:
            self._reserved[id(individual)] = (weakref.ref(individual), key)
        except TypeError:  # not weak-referenceable: the reservation stays until evaluated
            pass


def _reserve(cache: EvaluationCache, key: Any) -> None:
    reserve = getattr(cache, "reserve", None)
    if callable(reserve):
        reserve(key)
    else:  # a cache without reserve/release
        cache.pending.add(key)


def _release(cache: EvaluationCache, key: Any) -> None:
    release = getattr(cache, "release", None)
    if callable(release):
        release(key)
    else:
        cache.pending.discard(key)


class _NovelOperator:
    """``func`` wrapped by a :class:`NovelChildren`: release the inputs' reservations, vary,
    make the children novel and reserve their final keys."""

    def __init__(self, func: Callable[..., Any], novel: NovelChildren) -> None:
        self.func, self.novel = func, novel
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        for individual in args:
            self.novel.release(individual)  # its key is about to change
        children = self.func(*args, **kwargs)
        for child in children:
            self.novel.reserve(child)
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
    elites: int | None = None,
    cache: bool = True,
    novel: bool = False,
    max_novel_tries: int = 100,
) -> base.Toolbox:
    """Register a genome toolbox for ``space``.

    Randomness: the genome operators and DEAP's selections draw from Python's :mod:`random`
    module, as in DEAP (seed it with :func:`deapnn.seed`).

    Args:
        space: The search space.
        evaluate: ``genome -> fitness tuple`` (a module-level function or picklable callable).
        genome_type: The creator type to build (default ``creator.Genome``, maximising; use
            ``creator.GenomeMin`` or ``creator.GenomeMulti``, or your own from
            :func:`deapnn.core.types.define`).
        mate, mutate, select: A name from :data:`MATE`, :data:`MUTATE`, :data:`SELECT` or any
            function with DEAP's signature; ``*_kwargs`` override the knobs (``indpb`` defaults
            to ``1 / len(space)`` for mutations). ``mutate="learned"`` (Evo-NAS's
            :func:`~deapnn.hparams.learned.mut_learned`, categorical spaces only) takes
            ``learner=`` a :class:`~deapnn.hparams.learned.LearnedMutation` (default: a new one
            with a recurrent controller), also set as ``toolbox.learner``; :func:`deapnn.evolve`
            checkpoints it. ``mutate="screened"`` (the surrogate-screened
            :func:`~deapnn.hparams.screened.mut_screened`; needs ``cache=True``) takes
            ``screen=`` a :class:`~deapnn.hparams.screened.ScreenedMutation` (default: a new
            one with its defaults); a ``ScreenedMutation`` can also be passed as ``mutate``
            itself. It is set as ``toolbox.screen`` and bound to ``toolbox.cache``, whose
            records are its data. A knob the operator does not take is a
            TypeError; a probability (``indpb``, ``random_select``) outside [0, 1] or a ``sigma``
            that is not finite and > 0 is a ValueError.
        elites: A count (an int >= 0) of best individuals every selection keeps: passed to a
            selection with an ``elites`` knob (``"elites_breeders"``), else the selection is
            wrapped in :func:`deapnn.core.options.sel_elitist`. ``None`` keeps the selection's
            own default. The same meaning as in :func:`deapnn.weights.make_weight_toolbox`.
        cache: Wrap ``evaluate`` in an :class:`EvaluationCache` (``toolbox.cache``) and register
            ``toolbox.map = toolbox.cache.map()``, so no genome is evaluated twice.
        novel: Decorate ``mate`` and ``mutate`` with one :class:`NovelChildren`, re-mutating
            children that duplicate a genome seen before (needs ``cache``).
        max_novel_tries: One-gene mutations tried per child to make it novel.

    Returns:
        A ``deap.base.Toolbox`` with ``individual``, ``population``, ``mate``, ``mutate``,
        ``select``, ``evaluate``, ``map`` (and ``cache`` when ``cache=True``).

    Raises:
        TypeError: If ``space`` is not a SearchSpace, ``evaluate`` is not callable, or an
            operator is given a knob it does not take.
        ValueError: For an unknown operator name, a knob out of range, or ``novel`` without
            ``cache``.
    """
    if not isinstance(space, SearchSpace):
        raise TypeError(f"space must be a SearchSpace, got {space!r}")
    if not callable(evaluate):
        raise TypeError(f"evaluate must be callable, got {evaluate!r}")
    if novel and not cache:
        raise ValueError("novel=True needs cache=True (the cache knows which genomes were seen)")
    genome_type = creator.Genome if genome_type is None else genome_type
    n = len(space)

    # stateful mutations: built for the space when not given, then attached to the toolbox
    attached: dict[type, list[Any]] = {cls: [] for _, cls, _ in _STATEFUL_MUTATIONS.values()}

    def prepare(role: str, func: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("indpb", 0.0) is None:
            kwargs["indpb"] = 1.0 / n
        if role != "mutate":
            return kwargs
        for op, (arg, cls, name) in _STATEFUL_MUTATIONS.items():
            if func is op:
                obj = kwargs.get(arg)
                if obj is None:
                    obj = kwargs[arg] = cls(space)
                elif not isinstance(obj, cls):
                    raise TypeError(f"mutate {name!r} needs {arg}={cls.__name__}(space), got {obj!r}")
                attached[cls].append(obj)
            elif isinstance(func, cls):
                attached[cls].append(func)
        return kwargs

    toolbox = base.Toolbox()
    toolbox.register("individual", random_genome, space, genome_type)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    register_operators(toolbox, {"mate": MATE, "mutate": MUTATE, "select": SELECT},
                       mate=mate, mutate=mutate, select=select, mate_kwargs=mate_kwargs,
                       mutate_kwargs=mutate_kwargs, select_kwargs=select_kwargs, elites=elites,
                       prepare=prepare)
    for _, cls, name in _STATEFUL_MUTATIONS.values():
        if attached[cls] and attached[cls][0].space != space:
            raise ValueError(f"mutate {name!r}: the {cls.__name__} was built for another search space")
    learners, screens = attached[LearnedMutation], attached[ScreenedMutation]
    if learners:
        toolbox.learner = learners[0]
    if screens:
        if not cache and screens[0].cache is None:
            raise ValueError("mutate 'screened' needs cache=True (its model learns from the cache's "
                             "records) or a ScreenedMutation with a cache bound")
        toolbox.screen = screens[0]
    if cache:
        toolbox.cache = EvaluationCache(evaluate)
        toolbox.register("evaluate", toolbox.cache)
        toolbox.register("map", toolbox.cache.map(builtins.map))
    else:
        toolbox.register("evaluate", evaluate)
    if screens and cache:
        screens[0].bind(toolbox.cache)
    if novel:
        decorator = NovelChildren(toolbox.cache, max_novel_tries)
        toolbox.decorate("mate", decorator)
        toolbox.decorate("mutate", decorator)
    return toolbox
