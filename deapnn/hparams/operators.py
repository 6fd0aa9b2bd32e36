"""Variation and selection operators for hyperparameter genomes.

Every operator is a plain function in DEAP's shape: the individual(s) first, the knobs
after, genomes changed in place, a tuple returned. Each reads ``individual.space`` so
that every value it writes stays inside its gene. Randomness comes from Python's
:mod:`random` module, as in DEAP (seed it with :func:`deapnn.core.seeding.seed`).

Where DEAP already has the operator (uniform and one-point crossover, tournament and
NSGA-II selection) these delegate to it; the rest have no DEAP equivalent that knows
about typed genes.
"""

from __future__ import annotations

import math
import random
from operator import attrgetter
from typing import Any, Sequence

from deap import tools

from deapnn.core.options import check_elites, check_probability, check_sigma
from deapnn.hparams.genome import GenomeBase

# -- crossover ----------------------------------------------------------------------------------


def cx_uniform(ind1: GenomeBase, ind2: GenomeBase, indpb: float = 0.5) -> tuple[GenomeBase, GenomeBase]:
    """Per-gene uniform crossover (seed 000, NaturalSelection): swap each gene with probability
    ``indpb``. Delegates to :func:`deap.tools.cxUniform`.

    Returns:
        ``(ind1, ind2)``, changed in place.

    Raises:
        ValueError: If ``indpb`` is NaN or outside [0, 1].
    """
    check_probability("cx_uniform indpb", indpb)
    return tools.cxUniform(ind1, ind2, indpb)


def cx_one_point(ind1: GenomeBase, ind2: GenomeBase) -> tuple[GenomeBase, GenomeBase]:
    """DeepEvolve's recombination: swap the suffixes after a random point in ``1..N-1``.

    Delegates to :func:`deap.tools.cxOnePoint` (which draws the point from ``1..N-1``);
    a one-gene genome has no such point and is returned unchanged.
    """
    if len(ind1) < 2:
        return ind1, ind2
    return tools.cxOnePoint(ind1, ind2)


def cx_convex(ind1: GenomeBase, ind2: GenomeBase) -> tuple[GenomeBase, GenomeBase]:
    """Seed 000's crossover: numeric genes become convex combinations of the parents.

    For each numeric gene (:class:`~deapnn.hparams.space.IntRange`, :class:`~deapnn.hparams.space.FloatRange`)
    draw ``p ~ U(0, 1)``; the children get ``p*a + (1-p)*b`` and ``(1-p)*a + p*b``, snapped to
    the gene (rounded to its grid, clipped to its bounds). Categorical genes are swapped with
    probability 1/2, i.e. each child takes each parent's value with equal chance.
    """
    for i, gene in enumerate(ind1.space.genes):
        a, b = ind1[i], ind2[i]
        if gene.numeric:
            p = random.random()
            ind1[i] = gene.snap(p * a + (1.0 - p) * b)
            ind2[i] = gene.snap((1.0 - p) * a + p * b)
        elif random.random() < 0.5:
            ind1[i], ind2[i] = b, a
    return ind1, ind2


# -- mutation -----------------------------------------------------------------------------------


def mut_resample(individual: GenomeBase, indpb: float) -> tuple[GenomeBase]:
    """Resample each gene with probability ``indpb``, always to a *different* value when the gene
    has more than one (DeepEvolve). Raises ValueError if ``indpb`` is NaN or outside [0, 1]."""
    check_probability("mut_resample indpb", indpb)
    for i, gene in enumerate(individual.space.genes):
        if random.random() < indpb:
            individual[i] = gene.resample(individual[i], random)
    return (individual,)


def mut_one_gene(individual: GenomeBase) -> tuple[GenomeBase]:
    """DeepEvolve's ``mutate_one_gene``: pick one gene that can change and give it a different value."""
    genes = individual.space.genes
    candidates = [i for i, g in enumerate(genes) if g.size is None or g.size > 1]
    if candidates:
        i = random.choice(candidates)
        individual[i] = genes[i].resample(individual[i], random)
    return (individual,)


def mut_convex(individual: GenomeBase, indpb: float) -> tuple[GenomeBase]:
    """Seed 000's mutation: with probability ``indpb`` per gene, move a numeric gene part of the way
    towards a random value, ``p*x + (1-p)*r`` with ``p ~ U(0.5, 1)``, snapped to the gene; a
    categorical gene takes a different random value. Raises ValueError if ``indpb`` is NaN or
    outside [0, 1]."""
    check_probability("mut_convex indpb", indpb)
    for i, gene in enumerate(individual.space.genes):
        if random.random() < indpb:
            if gene.numeric:
                p = (1.0 + random.random()) / 2.0
                individual[i] = gene.snap(p * individual[i] + (1.0 - p) * gene.sample(random))
            else:
                individual[i] = gene.resample(individual[i], random)
    return (individual,)


def mut_perturb(individual: GenomeBase, indpb: float, sigma: float = 0.1) -> tuple[GenomeBase]:
    """Local mutation: with probability ``indpb`` per gene, move the gene to a *nearby* value
    (the gene's ``perturb``): a Gaussian step of ``sigma`` times a range's width (in logs for a
    log range), a step of one or more places along an ordered choice such as neurons or dropout,
    and a different random value for an unordered choice such as the optimizer.

    DEAP's ``mutGaussian`` and ``mutPolynomialBounded`` do this for flat lists of floats; a
    genome mixes categorical, integer-grid and log-scaled genes, so each gene takes its own step.
    Where :func:`mut_resample` jumps anywhere in the space, this refines good genomes.

    Raises:
        ValueError: If ``indpb`` is NaN or outside [0, 1], or ``sigma`` is not finite and > 0
            (checked on every call, even when no gene is drawn).
    """
    check_probability("mut_perturb indpb", indpb)
    check_sigma("mut_perturb sigma", sigma)
    for i, gene in enumerate(individual.space.genes):
        if random.random() < indpb:
            individual[i] = gene.perturb(individual[i], sigma, random)
    return (individual,)


# -- selection ----------------------------------------------------------------------------------


def sel_retain(
    individuals: Sequence[Any], k: int, retain: float = 0.4, random_select: float = 0.1, fit_attr: str = "fitness"
) -> list[Any]:
    """Seed 000's selection: keep the best ``retain`` fraction, let each other individual survive
    with probability ``random_select``, then fill the ``k`` parent slots with survivors drawn at
    random (the parents of the children that make up the shortfall).

    Returns:
        ``k`` individuals (references, as DEAP's selections return), survivors first, best first.
    """
    if not 0.0 < retain <= 1.0:
        raise ValueError(f"retain must be in (0, 1], got {retain!r}")
    check_probability("random_select", random_select)
    ranked = sorted(individuals, key=attrgetter(fit_attr), reverse=True)
    n_keep = max(1, round(retain * len(ranked)))
    survivors = ranked[:n_keep] + [ind for ind in ranked[n_keep:] if random.random() < random_select]
    survivors = survivors[:k]
    return survivors + [random.choice(survivors) for _ in range(k - len(survivors))]


def sel_elites_breeders(
    individuals: Sequence[Any], k: int, elites: int = 1, weighting: str = "fitness", fit_attr: str = "fitness"
) -> list[Any]:
    """NaturalSelection's selection: the ``elites`` best individuals, then breeders drawn with
    replacement with probability increasing with fitness.

    NaturalSelection kept a fraction (10%) of the population as elites; ``elites`` here is a
    count, as everywhere in deapnn (``round(0.1 * len(population))`` gives the seed's).

    Args:
        elites: Number of best individuals always selected (an int, ``0 <= elites``; at most
            ``k`` are taken).
        weighting: ``"fitness"`` -- probability proportional to the (first, weighted) fitness value
            shifted so the worst finite one gets a small positive weight; failed (non-finite)
            individuals get none; ``"rank"`` -- proportional to rank (1 for the worst).

    Returns:
        ``k`` individuals: elites first, best first, then breeders.
    """
    elites = check_elites(elites)
    if weighting not in ("fitness", "rank"):
        raise ValueError(f"weighting must be 'fitness' or 'rank', got {weighting!r}")
    ranked = sorted(individuals, key=attrgetter(fit_attr), reverse=True)
    n_elite = min(k, elites, len(ranked))
    if weighting == "rank":
        weights = [float(len(ranked) - i) for i in range(len(ranked))]
    else:
        values = [getattr(ind, fit_attr).wvalues[0] for ind in ranked]
        finite = [v for v in values if math.isfinite(v)]
        if finite:
            low, span = min(finite), (max(finite) - min(finite)) or 1.0
            weights = [(v - low) + 0.05 * span if math.isfinite(v) else 0.0 for v in values]
        else:
            weights = [1.0] * len(ranked)
    breeders = random.choices(ranked, weights=weights, k=k - n_elite)
    return ranked[:n_elite] + breeders
