"""Toolbox factory for weight-vector evolution: ``make_weight_toolbox``.

The factory returns an ordinary ``deap.base.Toolbox`` (re-register anything you like) with
``individual``, ``population``, ``mate``, ``mutate``, ``select`` and, when given, ``evaluate``
and ``map``. With a :class:`~deapnn.weights.batched.BatchedEvaluator` as ``evaluate`` the map is a
:class:`~deapnn.weights.batched.BatchedMap`, so ``algorithms.eaSimple`` evaluates each generation
in one vectorised computation.
"""

from __future__ import annotations

import builtins
from typing import Any, Callable

import numpy
from deap import base, creator, tools

from deapnn.core import seeding
from deapnn.weights import operators
from deapnn.weights.codec import WeightLayout

__all__ = ["make_weight_toolbox", "init_normal", "init_uniform", "layout_of", "INITS", "MATES"]

INITS = ("glorot", "he", "uniform")
MATES = ("average", "blend", "uniform", "two_point")


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
    mate: str = "blend",
    alpha: float = 0.5,
    cx_indpb: float = 0.5,
    sigma: float = 0.1,
    indpb: float = 1.0,
    per_layer: bool = False,
    select: str = "tournament",
    tournsize: int = 3,
    elites: int = 0,
    map: Callable | None = None,
    rng: numpy.random.Generator | None = None,
) -> base.Toolbox:
    """Register weight-vector operators on a new ``deap.base.Toolbox``.

    Args:
        model: What fixes the vector layout: a :class:`WeightLayout`, a ``NetworkSpec``, a
            ``BatchedEvaluator`` or a built Keras model.
        evaluate: Fitness function registered as ``evaluate`` (e.g. a ``BatchedEvaluator``).
        weight_type: Individual class; default ``creator.WeightVector``.
        init: ``"glorot"`` / ``"he"`` (normal, per-layer scaled, zero biases) or ``"uniform"``
            (``U[init_range]``, seed 004).
        init_range: Bounds of the uniform initialisation.
        mate: ``"average"`` (seed 004's blend, both children the mean), ``"blend"`` (DEAP's
            ``cxBlend`` with ``alpha``), ``"uniform"`` (swap with ``cx_indpb``) or
            ``"two_point"``.
        alpha: ``cxBlend``'s alpha.
        cx_indpb: Swap probability of uniform crossover.
        sigma: Gaussian mutation step; with ``per_layer`` it multiplies each layer's Glorot
            standard deviation (so ``sigma=0.1`` moves every layer by ~10% of its scale).
        indpb: Probability of mutating each weight.
        per_layer: Scale the mutation step per layer (see ``sigma``).
        select: ``"tournament"`` (DEAP's ``selTournament``) or ``"elitist_tournament"``
            (``elites`` best plus tournaments).
        tournsize: Tournament size.
        elites: Elites of ``"elitist_tournament"``.
        map: ``map`` to register; default a ``BatchedMap`` when ``evaluate`` is a
            ``BatchedEvaluator``, else the builtin ``map``.
        rng: numpy Generator of the initialisation and variation; default (``None``) uses
            :func:`deapnn.core.seeding.get_rng` at call time.

    Returns:
        The toolbox, with the layout as ``toolbox.layout``.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if mate not in MATES:
        raise ValueError(f"mate must be one of {MATES}, got {mate!r}")
    if select not in ("tournament", "elitist_tournament"):
        raise ValueError(f"select must be 'tournament' or 'elitist_tournament', got {select!r}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    layout = layout_of(model)
    ind_cls = weight_type if weight_type is not None else creator.WeightVector
    tb = base.Toolbox()
    tb.layout = layout
    if init == "uniform":
        tb.register("individual", init_uniform, ind_cls, layout.size, *init_range, rng=rng)
    else:
        tb.register("individual", init_normal, ind_cls, layout.init_std(init), rng=rng)
    tb.register("population", tools.initRepeat, list, tb.individual)
    if mate == "average":
        tb.register("mate", operators.cx_average)
    elif mate == "blend":
        tb.register("mate", operators.cx_blend, alpha=alpha, rng=rng)
    elif mate == "uniform":
        tb.register("mate", operators.cx_uniform, indpb=cx_indpb, rng=rng)
    else:
        tb.register("mate", operators.cx_two_point, rng=rng)
    step = layout.init_std("glorot", biases=True) * numpy.float32(sigma) if per_layer else sigma
    tb.register("mutate", operators.mut_gaussian, mu=0.0, sigma=step, indpb=indpb, rng=rng)
    if select == "tournament":
        tb.register("select", tools.selTournament, tournsize=tournsize)
    else:
        tb.register("select", operators.sel_elitist_tournament, tournsize=tournsize, elites=elites)
    if evaluate is not None:
        tb.register("evaluate", evaluate)
    if map is None:
        from deapnn.weights.batched import BatchedEvaluator, BatchedMap

        map = BatchedMap() if isinstance(evaluate, BatchedEvaluator) else builtins.map
    tb.register("map", map)
    return tb
