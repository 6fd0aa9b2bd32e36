"""CMA-ES on weight vectors: DEAP's own ``cma.Strategy`` for small networks, sep-CMA-ES for big ones.

DEAP's ``deap.cma.Strategy`` (Hansen's CMA-ES with a full ``n x n`` covariance and its
eigendecomposition) works unchanged on small networks: register it as the tutorial does and the
backend map evaluates each generation in one batched call::

    strategy = cma.Strategy(centroid=toolbox.individual(), sigma=0.1, lambda_=50)
    toolbox.register("generate", strategy.generate, creator.WeightVector)
    toolbox.register("update", strategy.update)
    algorithms.eaGenerateUpdate(toolbox, ngen=100)

:func:`cma_strategy` builds one with a checked centroid (its default ``lambda_`` is DEAP's
``4 + 3 ln n``). :func:`deapnn.evolve` checkpoints it as it is: an object without
``state()``/``load_state()`` is saved by its ``__dict__`` (mean, covariance, paths, step size,
generation) and its random draws come from numpy's global generator, which the checkpoint saves
with every other RNG, so a resumed run continues exactly; no adapter is needed. The covariance
costs ``O(n^2)`` memory and its eigendecomposition ``O(n^3)`` every generation, so it is
practical up to a few thousand weights (:data:`CMA_MAX_WEIGHTS` is the limit
:func:`cma_strategy` enforces).

For tens of thousands of weights and more, :class:`SepCMAES` is the separable CMA-ES of Ros &
Hansen (2008, "A simple modification in CMA-ES achieving linear time and space complexity", PPSN
X): the covariance restricted to its diagonal, with the learning rates raised by ``(n + 2) / 3``,
in ``O(lambda n)`` time and ``O(n)`` memory. It has DEAP's ``generate``/``update`` shape, fills one
aligned population buffer (:func:`deapnn.weights.buffers.population_matrix`) whose rows are the
individuals, and checkpoints through ``state()``/``load_state()``. Its randomness is the ``rng``
argument, default :func:`deapnn.core.seeding.get_rng` looked up at each call.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import numpy

from deapnn.core import seeding
from deapnn.core.optim import check_positive
from deapnn.weights.buffers import population_matrix
from deapnn.weights.strategies import (_check_centroid, _check_lambda, _check_rng, _fitness_values,
                                       _load_rng_state, _rng_state)
from deapnn.weights.types import rows_as_individuals

__all__ = ["SepCMAES", "cma_strategy", "CMA_MAX_WEIGHTS"]

#: Most weights :func:`cma_strategy` accepts (full covariance: 5,000^2 float64 = 200 MB).
CMA_MAX_WEIGHTS = 5000


def cma_strategy(centroid: Any, sigma: float, lambda_: int | None = None, **kwargs: Any) -> Any:
    """DEAP's ``cma.Strategy`` with a checked centroid and size.

    Args:
        centroid: Initial mean (1-D, finite, at most :data:`CMA_MAX_WEIGHTS` values).
        sigma: Initial step size (finite, > 0).
        lambda_: Population size (>= 2); default DEAP's ``4 + 3 ln n``.
        **kwargs: Any other ``cma.Strategy`` parameter (``mu``, ``weights``, ``cmatrix``, ...).

    Returns:
        ``deap.cma.Strategy(centroid, sigma, lambda_=..., **kwargs)``; it draws from numpy's
        global generator (``numpy.random``), which :func:`deapnn.seed` seeds.

    Raises:
        ValueError: For a centroid that is empty, not finite or too long (use :class:`SepCMAES`),
            ``sigma <= 0`` or ``lambda_ < 2``, each named.
    """
    from deap import cma

    mean = _check_centroid("cma_strategy", centroid)
    if mean.shape[0] > CMA_MAX_WEIGHTS:
        raise ValueError(f"cma_strategy: {mean.shape[0]} weights is too many for a full covariance "
                         f"(at most {CMA_MAX_WEIGHTS}); use SepCMAES")
    sigma = check_positive("cma_strategy", "sigma", sigma)
    if lambda_ is not None:
        kwargs["lambda_"] = _check_lambda("cma_strategy", lambda_)
    return cma.Strategy(centroid=mean.astype(numpy.float64), sigma=sigma, **kwargs)


class SepCMAES:
    """Separable CMA-ES (Ros & Hansen 2008): CMA-ES with a diagonal covariance.

    Each generation samples ``x_k = m + sigma * sqrt(C) * z_k`` with ``z_k ~ N(0, I)``, keeps the
    ``mu`` best, moves ``m`` to their weighted mean and adapts the evolution paths, the diagonal
    ``C`` (rank-one and rank-mu updates with the learning rates of CMA-ES times ``(n + 2) / 3``)
    and the global step size ``sigma`` (cumulative step-size adaptation), as in Hansen's
    tutorial (arXiv:1604.00772) restricted to a diagonal covariance.

    Args:
        centroid: Initial mean, a 1-D array (finite, non-empty).
        sigma: Initial global step size (finite, > 0).
        lambda_: Population size (>= 2); default ``4 + floor(3 ln n)``.
        mu: Number of parents (1 <= mu <= lambda_); default ``lambda_ // 2``.
        diagonal: Initial standard deviation per weight, relative to ``sigma`` (the square root of
            ``C``'s diagonal, finite and > 0; a number or one per weight); default 1.
        rng: Source of the samples; default :func:`deapnn.core.seeding.get_rng`.

    Raises:
        ValueError: Naming the value: a centroid that is empty or not finite, ``sigma <= 0``,
            ``lambda_ < 2``, ``mu`` out of range, a ``diagonal`` value <= 0.
        TypeError: For a value of the wrong type.
    """

    def __init__(
        self,
        centroid: Any,
        sigma: float = 0.1,
        lambda_: int | None = None,
        *,
        mu: int | None = None,
        diagonal: float | numpy.ndarray = 1.0,
        rng: numpy.random.Generator | None = None,
    ):
        self.centroid64 = _check_centroid("SepCMAES", centroid).astype(numpy.float64)
        self.dim = n = self.centroid64.shape[0]
        self.sigma = check_positive("SepCMAES", "sigma", sigma)
        self.lambda_ = _check_lambda("SepCMAES", 4 + int(3 * math.log(n)) if lambda_ is None else lambda_)
        if mu is None:
            mu = self.lambda_ // 2
        if isinstance(mu, bool) or not isinstance(mu, numbers.Integral):
            raise TypeError(f"SepCMAES: mu must be an int, got {mu!r}")
        if not 1 <= mu <= self.lambda_:
            raise ValueError(f"SepCMAES: mu must be in [1, lambda_={self.lambda_}], got {mu!r}")
        self.mu = int(mu)
        try:
            diag = numpy.broadcast_to(numpy.asarray(diagonal, dtype=numpy.float64), (n,)).copy()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"SepCMAES: diagonal must be a number or {n} numbers, got {diagonal!r}") from exc
        if not (numpy.isfinite(diag) & (diag > 0)).all():
            bad = float(diag[~(numpy.isfinite(diag) & (diag > 0))][0])
            raise ValueError(f"SepCMAES: diagonal must be finite and > 0, got {bad!r}")
        self.C = diag * diag  # the diagonal of the covariance
        self.rng = _check_rng("SepCMAES", rng)

        w = math.log(self.mu + 0.5) - numpy.log(numpy.arange(1, self.mu + 1))
        self.weights = w / w.sum()
        self.mueff = 1.0 / float(numpy.sum(self.weights ** 2))
        mueff = self.mueff
        self.cs = (mueff + 2) / (n + mueff + 5)
        self.damps = 1 + 2 * max(0.0, math.sqrt((mueff - 1) / (n + 1)) - 1) + self.cs
        self.cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
        c1 = 2 / ((n + 1.3) ** 2 + mueff)
        cmu = 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff)
        scale = (n + 2) / 3  # Ros & Hansen: the separable model learns (n + 2) / 3 times faster
        self.c1 = min(1.0, c1 * scale)
        self.cmu = min(1.0 - self.c1, cmu * scale)
        self.chiN = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
        self.ps = numpy.zeros(n)
        self.pc = numpy.zeros(n)
        self.generation = 0

    @property
    def centroid(self) -> numpy.ndarray:
        """The mean as float32 (the current model)."""
        return self.centroid64.astype(numpy.float32)

    def generate(self, ind_init: Callable[[numpy.ndarray], Any]) -> list[Any]:
        """Sample ``lambda_`` individuals, rows of one aligned float32 matrix.

        Args:
            ind_init: Individual class or constructor, e.g. ``creator.WeightVector``.
        """
        rng = seeding.get_rng() if self.rng is None else self.rng
        # rows laid out as the evaluator reading them asked (padded apart: see population_matrix)
        samples = population_matrix(self.lambda_, self.dim)
        z = rng.standard_normal((self.lambda_, self.dim), dtype=numpy.float32)
        z *= (self.sigma * numpy.sqrt(self.C)).astype(numpy.float32)
        numpy.add(z, self.centroid64.astype(numpy.float32), out=samples)
        return rows_as_individuals(samples, ind_init)

    def update(self, population: Sequence[Any]) -> None:
        """Update mean, paths, diagonal covariance and step size from the evaluated ``population``.

        The steps are recovered from the individuals (``(x - m) / sigma``), so their order does
        not matter.
        """
        if len(population) < self.mu:
            raise ValueError(f"update: needs at least mu={self.mu} individuals, got {len(population)}")
        fitness = _fitness_values(population)
        order = numpy.argsort(-fitness, kind="stable")[: self.mu]
        best = numpy.stack([numpy.asarray(population[i], dtype=numpy.float32) for i in order])
        y = (best.astype(numpy.float64) - self.centroid64) / self.sigma  # (mu, n)
        yw = self.weights @ y
        self.centroid64 = self.centroid64 + self.sigma * yw
        inv_sqrt_c = 1.0 / numpy.sqrt(self.C)
        self.ps = (1 - self.cs) * self.ps + math.sqrt(self.cs * (2 - self.cs) * self.mueff) * yw * inv_sqrt_c
        self.generation += 1
        ps_norm = float(numpy.linalg.norm(self.ps))
        hsig = ps_norm / math.sqrt(1 - (1 - self.cs) ** (2 * self.generation)) < (1.4 + 2 / (self.dim + 1)) * self.chiN
        self.pc = (1 - self.cc) * self.pc + hsig * math.sqrt(self.cc * (2 - self.cc) * self.mueff) * yw
        rank_mu = self.weights @ (y * y)
        self.C = ((1 - self.c1 - self.cmu) * self.C
                  + self.c1 * (self.pc * self.pc + (not hsig) * self.cc * (2 - self.cc) * self.C)
                  + self.cmu * rank_mu)
        self.sigma *= math.exp(min(1.0, (self.cs / self.damps) * (ps_norm / self.chiN - 1)))

    def state(self) -> dict[str, Any]:
        """Mean, step size, covariance diagonal, paths, generation and own ``rng`` state, for a checkpoint."""
        return {"centroid": self.centroid64.copy(), "sigma": self.sigma, "C": self.C.copy(),
                "ps": self.ps.copy(), "pc": self.pc.copy(), "generation": self.generation,
                "rng": _rng_state(self.rng)}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, in place."""
        centroid = numpy.array(state["centroid"], dtype=numpy.float64)
        if centroid.shape != (self.dim,):
            raise ValueError(f"load_state: the saved centroid has shape {centroid.shape}, "
                             f"this SepCMAES has {self.dim} weights")
        self.centroid64 = centroid
        self.sigma = float(state["sigma"])
        self.C = numpy.array(state["C"], dtype=numpy.float64)
        self.ps = numpy.array(state["ps"], dtype=numpy.float64)
        self.pc = numpy.array(state["pc"], dtype=numpy.float64)
        self.generation = int(state["generation"])
        _load_rng_state(self.rng, state["rng"])

    def __repr__(self) -> str:
        return f"SepCMAES(dim={self.dim}, lambda_={self.lambda_}, mu={self.mu}, sigma={self.sigma:.4g})"
