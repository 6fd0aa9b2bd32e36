"""Vectorised variation and selection operators for flat weight vectors.

DEAP's own ``cxBlend``, ``cxUniform`` and ``mutGaussian`` loop over genes in Python (about 50 ms per
100,000 weights) and ``cxTwoPoint`` swaps *views* of ndarrays, which silently corrupts numpy
individuals (DEAP's "Inheriting from Numpy" pitfall). The operators here have the same signatures and
semantics (individuals first, knobs after, modified in place, tuple returned) but work on whole
arrays with numpy, and crossovers always copy before they overwrite. Randomness comes from the
``rng`` argument (a ``numpy.random.Generator``); ``rng=None`` means
:func:`deapnn.core.seeding.get_rng` at call time (so :func:`deapnn.seed` reaches every operator).
Probabilities (``indpb``) outside [0, 1] or NaN, and steps (``sigma``) that are not finite and
positive, raise ValueError naming the value (:mod:`deapnn.core.options`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy

from deapnn.core import seeding
from deapnn.core.options import check_elites, check_probability, check_sigma, sel_elitist

__all__ = [
    "cx_average",
    "cx_blend",
    "cx_heuristic",
    "cx_uniform",
    "cx_two_point",
    "mut_gaussian",
    "sel_elitist_tournament",
]

Rng = numpy.random.Generator


def _rng(rng: Rng | None) -> Rng:
    return seeding.get_rng() if rng is None else rng


def _check_pair(ind1: numpy.ndarray, ind2: numpy.ndarray) -> None:
    if ind1.shape != ind2.shape:
        raise ValueError(f"crossover of individuals with shapes {ind1.shape} and {ind2.shape}")
    if numpy.shares_memory(ind1, ind2):
        raise ValueError("crossover of two individuals that share memory (clone them first)")


def cx_average(ind1: numpy.ndarray, ind2: numpy.ndarray) -> tuple[Any, Any]:
    """Replace both parents by their mean (seed 004's "averaging blend").

    Deterministic: both children are equal, ``(ind1 + ind2) / 2``.

    Args:
        ind1: First parent, modified in place.
        ind2: Second parent, modified in place.

    Returns:
        ``(ind1, ind2)``.
    """
    _check_pair(ind1, ind2)
    mean = (numpy.asarray(ind1) + numpy.asarray(ind2)) * numpy.float32(0.5)
    ind1[...] = mean
    ind2[...] = mean
    return ind1, ind2


def cx_blend(
    ind1: numpy.ndarray, ind2: numpy.ndarray, alpha: float, rng: Rng | None = None
) -> tuple[Any, Any]:
    """DEAP's ``cxBlend`` on whole arrays.

    For every position ``gamma = (1 + 2 alpha) u - alpha`` with ``u ~ U[0, 1)``, then
    ``ind1 = (1 - gamma) x1 + gamma x2`` and ``ind2 = gamma x1 + (1 - gamma) x2``.

    Args:
        ind1: First parent, modified in place.
        ind2: Second parent, modified in place.
        alpha: Extent of the interval beyond the parents (``alpha >= 0``).
        rng: Source of ``u``; default :func:`deapnn.core.seeding.get_rng`.

    Returns:
        ``(ind1, ind2)``.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, numpy.number)) \
            or not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"cx_blend: alpha must be a finite number >= 0, got {alpha!r}")
    _check_pair(ind1, ind2)
    x1 = numpy.array(ind1, dtype=numpy.float32)
    x2 = numpy.asarray(ind2)
    gamma = _rng(rng).random(x1.shape, dtype=numpy.float32)
    gamma *= numpy.float32(1.0 + 2.0 * alpha)
    gamma -= numpy.float32(alpha)
    diff = x2 - x1
    ind1[...] = x1 + gamma * diff
    ind2[...] = x2 - gamma * diff
    return ind1, ind2


def cx_heuristic(
    ind1: numpy.ndarray, ind2: numpy.ndarray, ratio: float = 1.0, rng: Rng | None = None
) -> tuple[Any, Any]:
    """Wright's heuristic (line) crossover: both children step from the fitter parent away from
    the other one.

    With ``b`` the fitter parent and ``w`` the other, each child is ``b + u (b - w)`` with its own
    scalar ``u ~ U[0, ratio)``: a random point on the line through the parents, beyond the
    better one. The difference of two parents from the same population points, on average, uphill,
    so the children follow it like a finite-difference step (Wright 1991, "Genetic algorithms for
    real parameter optimization"). The parents are compared by their ``fitness`` (DEAP's
    ``varAnd`` mates clones that still carry their parents' fitness; on an honest toolbox, one
    generation's minibatch). When either fitness is invalid, or both are equal, the better parent
    is ``ind1``. ``ratio=0`` makes both children copies of the better parent.

    Args:
        ind1: First parent, modified in place.
        ind2: Second parent, modified in place.
        ratio: Largest step beyond the better parent, in units of the parents' difference
            (finite, ``>= 0``).
        rng: Source of the two ``u``; default :func:`deapnn.core.seeding.get_rng`.

    Returns:
        ``(ind1, ind2)``.

    Raises:
        ValueError: Naming a ``ratio`` that is not a finite number >= 0.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, numpy.number)) \
            or not (math.isfinite(ratio) and ratio >= 0):
        raise ValueError(f"cx_heuristic: ratio must be a finite number >= 0, got {ratio!r}")
    _check_pair(ind1, ind2)
    better, worse = numpy.array(ind1, dtype=numpy.float32), numpy.asarray(ind2)
    f1, f2 = getattr(ind1, "fitness", None), getattr(ind2, "fitness", None)
    if f1 is not None and f2 is not None and f1.valid and f2.valid and f2 > f1:
        better, worse = numpy.array(ind2, dtype=numpy.float32), numpy.asarray(ind1)
    diff = better - worse
    u1, u2 = _rng(rng).random(2) * ratio
    ind1[...] = better + numpy.float32(u1) * diff
    ind2[...] = better + numpy.float32(u2) * diff
    return ind1, ind2


def cx_uniform(
    ind1: numpy.ndarray, ind2: numpy.ndarray, indpb: float, rng: Rng | None = None
) -> tuple[Any, Any]:
    """DEAP's ``cxUniform``: swap each position with probability ``indpb``.

    Args:
        ind1: First parent, modified in place.
        ind2: Second parent, modified in place.
        indpb: Probability of swapping each weight.
        rng: Source of the swap mask; default :func:`deapnn.core.seeding.get_rng`.

    Returns:
        ``(ind1, ind2)``.
    """
    check_probability("cx_uniform: indpb", indpb)
    _check_pair(ind1, ind2)
    mask = _rng(rng).random(ind1.shape) < indpb
    tmp = ind1[mask]  # boolean indexing copies
    ind1[mask] = ind2[mask]
    ind2[mask] = tmp
    return ind1, ind2


def cx_two_point(
    ind1: numpy.ndarray, ind2: numpy.ndarray, rng: Rng | None = None
) -> tuple[Any, Any]:
    """DEAP's ``cxTwoPoint`` with the copy that numpy individuals need.

    ``ind1[a:b], ind2[a:b] = ind2[a:b], ind1[a:b]`` on ndarrays swaps views and leaves both
    individuals with ``ind2``'s genes; this version copies one slice first.

    Args:
        ind1: First parent, modified in place.
        ind2: Second parent, modified in place.
        rng: Source of the two cut points; default :func:`deapnn.core.seeding.get_rng`.

    Returns:
        ``(ind1, ind2)``.
    """
    _check_pair(ind1, ind2)
    size = len(ind1)
    if size < 2:
        return ind1, ind2
    a, b = sorted(_rng(rng).choice(size + 1, size=2, replace=False))
    tmp = ind1[a:b].copy()
    ind1[a:b] = ind2[a:b]
    ind2[a:b] = tmp
    return ind1, ind2


def mut_gaussian(
    individual: numpy.ndarray,
    mu: float,
    sigma: float | numpy.ndarray,
    indpb: float,
    rng: Rng | None = None,
) -> tuple[Any]:
    """DEAP's ``mutGaussian`` on a whole array, with an optional per-weight ``sigma``.

    Each weight is perturbed with probability ``indpb`` by ``N(mu, sigma_i)``. Passing
    ``sigma=layout.init_std("he") * k`` (or any per-layer vector) scales the step to each layer.

    Args:
        individual: Weight vector, modified in place.
        mu: Mean of the perturbation.
        sigma: Standard deviation, a finite scalar > 0 or an array of the individual's shape
            (finite, >= 0, zeros freeze their weights).
        indpb: Probability of perturbing each weight, in [0, 1].
        rng: Source of the mask and the noise; default :func:`deapnn.core.seeding.get_rng`.

    Returns:
        ``(individual,)``.

    Raises:
        ValueError: Naming a NaN/out-of-range ``indpb``, a non-finite or non-positive ``sigma``
            or a non-finite ``mu``.
    """
    check_probability("mut_gaussian: indpb", indpb)
    check_sigma("mut_gaussian: sigma", sigma)
    if isinstance(mu, bool) or not isinstance(mu, (int, float, numpy.number)) or not math.isfinite(mu):
        raise ValueError(f"mut_gaussian: mu must be a finite number, got {mu!r}")
    rng = _rng(rng)
    sig = numpy.asarray(sigma, dtype=numpy.float32)
    if sig.ndim and sig.shape != individual.shape:
        raise ValueError(
            f"mut_gaussian: sigma has shape {sig.shape}, the individual {individual.shape}"
        )
    if indpb >= 1.0:
        noise = rng.standard_normal(individual.shape, dtype=numpy.float32)
        noise *= sig
        if mu:
            noise += numpy.float32(mu)
        individual += noise
        return (individual,)
    idx = numpy.flatnonzero(rng.random(individual.shape[0]) < indpb)
    noise = rng.standard_normal(idx.shape[0], dtype=numpy.float32)
    noise *= sig[idx] if sig.ndim else sig
    if mu:
        noise += numpy.float32(mu)
    individual[idx] += noise
    return (individual,)


def sel_elitist_tournament(
    individuals: Sequence[Any], k: int, tournsize: int, elites: int = 1, fit_attr: str = "fitness"
) -> list[Any]:
    """The ``elites`` best individuals, then ``k - elites`` winners of tournaments.

    With ``eaSimple`` the elites still pass through variation (each is crossed with probability
    ``cxpb`` and mutated with ``mutpb``), so they are guaranteed *parents*, not survivors.
    Randomness: tournaments draw from python's ``random`` (via ``tools.selTournament``).

    Args:
        individuals: Candidates.
        k: Number to select.
        tournsize: Tournament size.
        elites: Number of best individuals always selected (``0 <= elites <= k``).
        fit_attr: Fitness attribute name.

    Returns:
        List of ``k`` selected individuals (references, not copies, as in DEAP).
    """
    from deap import tools

    check_elites(elites, "sel_elitist_tournament: elites")
    return sel_elitist(individuals, k, tools.selTournament, elites, tournsize=tournsize, fit_attr=fit_attr)
