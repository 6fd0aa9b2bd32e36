"""Toolbox factory for weight-vector evolution: ``make_weight_toolbox``.

The factory returns an ordinary ``deap.base.Toolbox`` (re-register anything you like) with
``individual``, ``population``, ``mate``, ``mutate``, ``select``, ``map`` and, when given,
``evaluate``. It takes operator options the way :func:`deapnn.hparams.make_toolbox` does
(:mod:`deapnn.core.options`): ``mate=``/``mutate=``/``select=`` by name (:data:`MATE`,
:data:`MUTATE`, :data:`SELECT`) or function, ``*_kwargs`` knobs, ``elites=`` a count. With a
population evaluator (:class:`~deapnn.weights.evaluator.BatchedEvaluator`) as ``evaluate`` the
map is the serial backend's (:class:`deapnn.parallel.SerialMap`), which evaluates each
generation in one vectorised call; :func:`deapnn.parallel.register_backend` swaps in processes or
SCOOP.

Honest fitness (on by default when the evaluator draws a new minibatch every generation, see
:mod:`deapnn.weights.minibatch`): the map is wrapped in :class:`~deapnn.weights.minibatch.HonestMap`
and ``select`` in :func:`~deapnn.weights.minibatch.sel_rescored`, so every individual a selection
compares is scored on that generation's minibatch; ``validation=(x_val, y_val)`` registers
``hall_of_fame(maxsize)``, a :class:`~deapnn.weights.minibatch.ValidationHallOfFame`. To change the
selection of an honest toolbox, pass it here (``select=``) rather than re-registering it.

``strategy=`` (a name from :data:`STRATEGIES` or a class) builds an evolution strategy around
``toolbox.individual()`` and registers ``generate``/``update`` for ``algorithms.eaGenerateUpdate``
and :func:`deapnn.evolve` (``algorithm="generate_update"``); the strategy is ``toolbox.strategy``.
"""

from __future__ import annotations

import builtins
import functools
from typing import Any, Callable, Mapping

import numpy
from deap import base, creator, tools

from deapnn.core import seeding
from deapnn.core.options import check_sigma, register_operators, takes
from deapnn.weights import operators
from deapnn.weights.codec import WeightLayout
from deapnn.weights.minibatch import HonestMap, ValidationHallOfFame, resamples, sel_rescored
from deapnn.weights.types import hall_of_fame

__all__ = ["make_weight_toolbox", "init_normal", "init_uniform", "layout_of", "INITS", "MATE",
           "MUTATE", "SELECT", "STRATEGIES"]

INITS = ("glorot", "he", "uniform")

#: Named operators and their default knobs (numpy-vectorised; ``rng`` is filled in).
MATE: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "average": (operators.cx_average, {}),
    "blend": (operators.cx_blend, {"alpha": 0.5}),
    "heuristic": (operators.cx_heuristic, {"ratio": 1.0}),
    "uniform": (operators.cx_uniform, {"indpb": 0.5}),
    "two_point": (operators.cx_two_point, {}),
}
MUTATE: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "gaussian": (operators.mut_gaussian, {"mu": 0.0, "sigma": 0.1, "indpb": 1.0}),
}
SELECT: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "tournament": (tools.selTournament, {"tournsize": 3}),
    "elitist_tournament": (operators.sel_elitist_tournament, {"tournsize": 3}),
    "best": (tools.selBest, {}),
}

def _strategy_table() -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
    from deapnn.weights.cma import SepCMAES, cma_strategy
    from deapnn.weights.pgpe import PGPE
    from deapnn.weights.strategies import SNES, OpenAIES

    return {
        "es": (OpenAIES, {}),
        "snes": (SNES, {}),
        "pgpe": (PGPE, {}),
        "sepcma": (SepCMAES, {}),
        "cma": (cma_strategy, {"sigma": 0.1}),  # DEAP's cma.Strategy, full covariance: small nets
    }


#: Strategy names of ``make_weight_toolbox(strategy=...)``: OpenAI-ES, SNES, PGPE (ClipUp),
#: sep-CMA-ES and DEAP's own ``cma.Strategy``.
STRATEGIES = ("es", "snes", "pgpe", "sepcma", "cma")
MATES = tuple(MATE)  # the names, as older code read them


def init_normal(ind_init: Callable[[numpy.ndarray], Any], std: numpy.ndarray,
                rng: numpy.random.Generator | None = None) -> Any:
    """A vector of ``N(0, std_i)`` weights (Glorot/He-normal when ``std`` is
    ``layout.init_std(...)``; biases have ``std`` 0, i.e. start at 0).

    Args:
        ind_init: Individual constructor, e.g. ``creator.WeightVector``.
        std: Per-weight standard deviations (float32 vector).
        rng: Source of the draws; default :func:`deapnn.core.seeding.get_rng`.
    """
    rng = seeding.get_rng() if rng is None else rng
    values = rng.standard_normal(std.shape[0], dtype=numpy.float32)
    values *= std
    return ind_init(values)


def init_uniform(ind_init: Callable[[numpy.ndarray], Any], size: int, low: float = -1.0,
                 high: float = 1.0, rng: numpy.random.Generator | None = None) -> Any:
    """A vector of ``U[low, high)`` weights (seed 004 used ``[-1, 1]``).

    Args:
        ind_init: Individual constructor, e.g. ``creator.WeightVector``.
        size: Number of weights.
        low: Lower bound.
        high: Upper bound.
        rng: Source of the draws; default :func:`deapnn.core.seeding.get_rng`.
    """
    rng = seeding.get_rng() if rng is None else rng
    return ind_init(rng.uniform(low, high, size).astype(numpy.float32))


def layout_of(model: Any) -> WeightLayout:
    """A :class:`WeightLayout` from a layout, a NetworkSpec, an evaluator or a Keras model."""
    if isinstance(model, WeightLayout):
        return model
    if hasattr(model, "layout") and isinstance(getattr(model, "layout"), WeightLayout):
        return model.layout
    if hasattr(model, "layout") and callable(model.layout):
        return model.layout()
    if hasattr(model, "weights"):
        return WeightLayout.from_model(model)
    raise TypeError(
        f"expected a WeightLayout, NetworkSpec, BatchedEvaluator or Keras model, got {type(model).__name__}"
    )


def make_weight_toolbox(
    model: Any,
    evaluate: Callable | None = None,
    *,
    weight_type: type | None = None,
    init: str = "glorot",
    init_range: tuple[float, float] = (-1.0, 1.0),
    mate: str | Callable[..., Any] = "blend",
    mutate: str | Callable[..., Any] = "gaussian",
    select: str | Callable[..., Any] = "tournament",
    mate_kwargs: Mapping[str, Any] | None = None,
    mutate_kwargs: Mapping[str, Any] | None = None,
    select_kwargs: Mapping[str, Any] | None = None,
    elites: int | None = None,
    sigma: float | None = None,
    per_layer: bool = False,
    map: Callable | None = None,
    honest: bool | None = None,
    validation: tuple[Any, Any] | None = None,
    strategy: str | Callable[..., Any] | None = None,
    strategy_kwargs: Mapping[str, Any] | None = None,
    rng: numpy.random.Generator | None = None,
) -> base.Toolbox:
    """Register weight-vector operators on a new ``deap.base.Toolbox``.

    Randomness: initialisation and the numpy-vectorised operators draw from ``rng``;
    ``rng=None`` means :func:`deapnn.core.seeding.get_rng` at call time. DEAP's selections draw
    from Python's ``random`` (seed both with :func:`deapnn.seed`).

    Args:
        model: What fixes the vector layout: a :class:`WeightLayout`, a ``NetworkSpec``, a
            ``BatchedEvaluator`` or a built Keras model.
        evaluate: Fitness function registered as ``evaluate`` (e.g. a ``BatchedEvaluator``).
        weight_type: Individual class; default ``creator.WeightVector``.
        init: ``"glorot"`` / ``"he"`` (normal, per-layer scaled, zero biases) or ``"uniform"``
            (``U[init_range]``, seed 004).
        init_range: Bounds of the uniform initialisation.
        mate, mutate, select: A name from :data:`MATE` (``"average"``: seed 004's blend, both
            children the mean; ``"blend"``: DEAP's ``cxBlend``, knob ``alpha``; ``"heuristic"``: Wright's line
            crossover beyond the fitter parent, knob ``ratio``; ``"uniform"``:
            swap with probability ``indpb``; ``"two_point"``), :data:`MUTATE` (``"gaussian"``,
            knobs ``mu``, ``sigma``, ``indpb``) and :data:`SELECT` (``"tournament"``,
            ``"elitist_tournament"``, ``"best"``), or any function with DEAP's signature.
        mate_kwargs, mutate_kwargs, select_kwargs: Knobs overriding the defaults. A knob the
            operator does not take is a TypeError; a probability (``indpb``) outside [0, 1] or
            NaN, or a ``sigma`` that is not finite and > 0, is a ValueError naming it.
        elites: A count (an int >= 0) of best individuals every selection keeps: passed to a
            selection with an ``elites`` knob (``"elitist_tournament"``), else the selection is
            wrapped in :func:`deapnn.core.options.sel_elitist`. ``None`` keeps the selection's
            own default. The same meaning as in :func:`deapnn.hparams.make_toolbox`.
        sigma: Shorthand for ``mutate_kwargs={"sigma": sigma}`` (the README's spelling).
        per_layer: Scale the mutation step per layer: ``sigma`` multiplies each layer's Glorot
            standard deviation (so ``sigma=0.1`` moves every layer by ~10% of its scale).
        map: ``map`` to register; default, for a population evaluator (``evaluate_population``,
            e.g. ``BatchedEvaluator``), the serial backend's map (``deapnn.parallel.SerialMap()``),
            which advances it to its next minibatch and evaluates the whole generation in one
            call; for any other ``evaluate``, the builtin ``map``.
        honest: Compare fitness on one minibatch (:mod:`deapnn.weights.minibatch`): wrap ``map``
            in ``HonestMap`` and ``select`` in ``sel_rescored``. Default (``None``): on when
            ``evaluate`` is a population evaluator with ``resample=True``. ``True`` without such
            an evaluator is a ValueError.
        validation: ``(x_val, y_val)``: register ``hall_of_fame(maxsize, **kwargs)`` as a
            ``ValidationHallOfFame`` on them (needs a population evaluator as ``evaluate``);
            without it ``hall_of_fame`` is :func:`deapnn.weights.hall_of_fame`.
        strategy: An evolution strategy to build and register as ``generate``/``update``
            (``toolbox.strategy``): a name from :data:`STRATEGIES` (``"es"``, ``"snes"``,
            ``"pgpe"``, ``"sepcma"``, ``"cma"``: DEAP's ``cma.Strategy``, up to a few thousand
            weights) or a callable ``strategy(centroid, **strategy_kwargs)``. Its centroid is
            ``toolbox.individual()`` (so ``init`` applies); it gets ``rng`` when given and it takes one.
        strategy_kwargs: Knobs of the strategy (``sigma``, ``lambda_``, ``learning_rate``, ...);
            ``centroid`` starts it from given weights instead (a vector of ``layout.size``; one of
            another length is a ValueError, a non-finite value the strategy's ValueError).
        rng: numpy Generator of the initialisation and of the operators that take ``rng``;
            default (``None``): :func:`deapnn.core.seeding.get_rng` at call time.

    Returns:
        The toolbox, with the layout as ``toolbox.layout`` (and ``toolbox.strategy``).

    Raises:
        ValueError: For an unknown ``init`` or operator name, or a knob out of range.
        TypeError: For a knob an operator does not take, ``elites`` that is not an int, or
            ``sigma`` given both as ``sigma=`` and in ``mutate_kwargs``.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if sigma is not None:
        if "sigma" in (mutate_kwargs or {}):
            raise TypeError("sigma given twice: as sigma= and in mutate_kwargs; give it once")
        mutate_kwargs = {**(mutate_kwargs or {}), "sigma": sigma}
    layout = layout_of(model)
    ind_cls = weight_type if weight_type is not None else creator.WeightVector

    def prepare(role: str, func: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
        if rng is not None and "rng" not in kwargs and takes(func, "rng"):
            kwargs["rng"] = rng
        if role == "mutate" and per_layer:
            if "sigma" not in kwargs:
                raise TypeError(f"per_layer=True scales the mutation's sigma, and {mutate!r} takes none")
            step = check_sigma("mutate sigma", kwargs["sigma"])
            kwargs["sigma"] = layout.init_std("glorot", biases=True) * numpy.float32(step)
        return kwargs

    tb = base.Toolbox()
    tb.layout = layout
    if init == "uniform":
        tb.register("individual", init_uniform, ind_cls, layout.size, *init_range, rng=rng)
    else:
        tb.register("individual", init_normal, ind_cls, layout.init_std(init), rng=rng)
    tb.register("population", tools.initRepeat, list, tb.individual)
    register_operators(tb, {"mate": MATE, "mutate": MUTATE, "select": SELECT},
                       mate=mate, mutate=mutate, select=select, mate_kwargs=mate_kwargs,
                       mutate_kwargs=mutate_kwargs, select_kwargs=select_kwargs, elites=elites,
                       prepare=prepare)
    if evaluate is not None:
        tb.register("evaluate", evaluate)
    if map is None:
        from deapnn.parallel import SerialMap
        from deapnn.parallel.worker import is_batched

        map = SerialMap() if evaluate is not None and is_batched(evaluate) else builtins.map
    if honest is None:
        honest = evaluate is not None and resamples(_target(evaluate))
    if honest:
        if evaluate is None or not resamples(_target(evaluate)):
            raise ValueError("honest=True needs a population evaluator that resamples its minibatch "
                             f"(evaluate_population, step, resample=True) as evaluate, got {evaluate!r}")
        evaluator = _target(evaluate)
        map = HonestMap(map, evaluator)
        tb.register("select", sel_rescored, select=tb.select, evaluator=evaluator)
    tb.register("map", map)
    if validation is not None:
        evaluator = _target(evaluate) if evaluate is not None else None
        if not callable(getattr(evaluator, "scores", None)):
            raise ValueError("validation= needs a population evaluator with scores(weights, x, y) as evaluate")
        if not (isinstance(validation, (tuple, list)) and len(validation) == 2):
            raise ValueError(f"validation must be a pair (x_val, y_val), got {type(validation).__name__}")
        tb.register("hall_of_fame", ValidationHallOfFame, evaluator=evaluator, x=validation[0], y=validation[1])
    else:
        tb.register("hall_of_fame", hall_of_fame)
    if strategy is not None:
        table = _strategy_table()
        if isinstance(strategy, str):
            if strategy not in table:
                raise ValueError(f"strategy must be one of {STRATEGIES} or a callable, got {strategy!r}")
            factory, knobs = table[strategy]
        elif callable(strategy):
            factory, knobs = strategy, {}
        else:
            raise TypeError(f"strategy must be a name or a callable, got {strategy!r}")
        knobs = {**knobs, **dict(strategy_kwargs or {})}
        if rng is not None and "rng" not in knobs and takes(factory, "rng"):
            knobs["rng"] = rng
        centroid = knobs.pop("centroid", None)
        if centroid is None:
            centroid = tb.individual()
        elif numpy.shape(centroid) != (layout.size,):
            raise ValueError(f"strategy centroid must be a vector of the model's {layout.size} weights, "
                             f"got shape {numpy.shape(centroid)}")
        tb.strategy = factory(centroid, **knobs)
        tb.register("generate", tb.strategy.generate, ind_cls)
        tb.register("update", tb.strategy.update)
    elif strategy_kwargs:
        raise TypeError("strategy_kwargs given without strategy=")
    return tb


def _target(func: Any) -> Any:
    while isinstance(func, functools.partial):
        func = func.func
    return func
