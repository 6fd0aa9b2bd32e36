"""Evolution strategies on flat weight vectors, as DEAP strategies (``generate`` / ``update``).

Register them like DEAP's ``cma.Strategy`` and drive them with ``algorithms.eaGenerateUpdate``::

    strategy = OpenAIES(centroid, sigma=0.02, lambda_=200)
    toolbox.register("generate", strategy.generate, creator.WeightVector)
    toolbox.register("update", strategy.update)
    algorithms.eaGenerateUpdate(toolbox, ngen=100)

or with :func:`deapnn.evolve` (``algorithm="generate_update"``), which checkpoints them through
``state()`` / ``load_state()`` so an interrupted run resumes exactly.

Both classes are plain numpy (no TensorFlow) and pickle with their state; OpenAI-ES takes its steps
with the shared :class:`deapnn.core.optim.Adam`. Constructors reject NaN, infinite or out-of-range
values (sigma, learning rates, decays) with a message naming the value. Their randomness comes
from the ``rng`` argument (a ``numpy.random.Generator``), default :func:`deapnn.core.seeding.get_rng`
looked up at each call (so :func:`deapnn.seed` applies to strategies built before it).
Fitness is read as ``ind.fitness.wvalues[0]`` (so minimising types work too); only ranks are used,
so a failed evaluation (``-inf``) simply ranks last.

More strategies of the same shape: :class:`deapnn.weights.PGPE` (:mod:`deapnn.weights.pgpe`, PGPE
with ClipUp), :class:`deapnn.weights.SepCMAES` and DEAP's own ``cma.Strategy``
(:mod:`deapnn.weights.cma`); :func:`deapnn.weights.make_weight_toolbox` builds any of them by name
(``strategy="es" | "snes" | "pgpe" | "sepcma" | "cma"``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy

from deapnn.core import seeding
from deapnn.core.optim import Adam, check_positive, check_unit_interval

__all__ = ["OpenAIES", "SNES", "centered_ranks", "nes_utilities"]


def centered_ranks(values: Sequence[float]) -> numpy.ndarray:
    """Rank-based fitness shaping of OpenAI-ES: ranks mapped linearly onto ``[-0.5, 0.5]``.

    Args:
        values: Fitness values (higher is better).

    Returns:
        float32 array, the best individual gets 0.5 and the worst -0.5 (0 for a single value).
    """
    values = numpy.asarray(values, dtype=numpy.float64)
    n = values.shape[0]
    if n < 2:
        return numpy.zeros(n, numpy.float32)
    ranks = numpy.empty(n, numpy.float64)
    ranks[numpy.argsort(values, kind="stable")] = numpy.arange(n)
    return (ranks / (n - 1) - 0.5).astype(numpy.float32)


def nes_utilities(n: int) -> numpy.ndarray:
    """NES utility values for ranks 1..n (best first): ``max(0, log(n/2+1) - log(k))``
    normalised to sum 1, minus ``1/n``."""
    raw = numpy.maximum(0.0, math.log(n / 2 + 1) - numpy.log(numpy.arange(1, n + 1)))
    return (raw / raw.sum() - 1.0 / n).astype(numpy.float32)


def _check_centroid(owner: str, centroid: Any) -> numpy.ndarray:
    try:
        arr = numpy.array(centroid, dtype=numpy.float32).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{owner}: centroid must be an array of numbers, got {centroid!r}") from exc
    if arr.size == 0:
        raise ValueError(f"{owner}: centroid must not be empty")
    if not numpy.isfinite(arr).all():
        bad = int(numpy.flatnonzero(~numpy.isfinite(arr))[0])
        raise ValueError(f"{owner}: centroid must be finite, got {float(arr[bad])!r} at index {bad}")
    return arr


def _check_lambda(owner: str, lambda_: Any, even: bool = False) -> int:
    if isinstance(lambda_, bool) or not isinstance(lambda_, (int, numpy.integer)):
        raise TypeError(f"{owner}: lambda_ must be an int, got {lambda_!r}")
    if lambda_ < 2 or (even and lambda_ % 2):
        raise ValueError(f"{owner}: lambda_ must be >= 2{' and even (antithetic)' if even else ''}, got {lambda_!r}")
    return int(lambda_)


def _check_rng(owner: str, rng: Any) -> numpy.random.Generator | None:
    if rng is not None and not isinstance(rng, numpy.random.Generator):
        raise TypeError(f"{owner}: rng must be a numpy.random.Generator or None, got {rng!r}")
    return rng


def _rng_state(rng: numpy.random.Generator | None) -> dict[str, Any] | None:
    """The state of a strategy's own generator (None for the shared one, which
    :func:`deapnn.core.seeding.get_state` saves)."""
    return None if rng is None else rng.bit_generator.state


def _load_rng_state(rng: numpy.random.Generator | None, state: dict[str, Any] | None) -> None:
    if (rng is None) != (state is None):
        raise ValueError("load_state: the saved state and this strategy disagree on having their own rng")
    if rng is not None:
        rng.bit_generator.state = state


def _fitness_values(population: Sequence[Any]) -> numpy.ndarray:
    vals = []
    for ind in population:
        if not ind.fitness.valid:
            raise ValueError("update: every individual needs a valid fitness (evaluate first)")
        v = ind.fitness.wvalues[0]
        vals.append(v if math.isfinite(v) else -math.inf)
    return numpy.asarray(vals, dtype=numpy.float64)


class OpenAIES:
    """OpenAI-ES (Salimans et al. 2017, arXiv:1703.03864).

    Each generation samples ``lambda_`` points ``theta + sigma * eps`` with antithetic pairs
    (``eps`` and ``-eps``), shapes their fitness into centred ranks, estimates the gradient
    ``g = sum_i r_i eps_i / (lambda sigma) - weight_decay * theta`` and takes an Adam ascent step
    on the mean ``theta``.

    Args:
        centroid: Initial mean, a 1-D array (copied to float32).
        sigma: Standard deviation of the perturbations.
        lambda_: Population size (even when ``antithetic``).
        learning_rate: Adam step size.
        weight_decay: L2 coefficient pulling ``theta`` towards 0.
        antithetic: Mirror each perturbation.
        beta1: Adam first-moment decay.
        beta2: Adam second-moment decay.
        epsilon: Adam denominator guard.
        learning_rate_decay: Factor applied to the learning rate after each update.
        learning_rate_limit: Smallest learning rate the decay reaches.
        sigma_decay: Factor applied to ``sigma`` after each update.
        sigma_limit: Smallest ``sigma`` the decay reaches.
        rng: Source of the perturbations; default :func:`deapnn.core.seeding.get_rng`.
    """

    def __init__(
        self,
        centroid: Any,
        sigma: float = 0.02,
        lambda_: int = 100,
        *,
        learning_rate: float = 0.01,
        weight_decay: float = 0.005,
        antithetic: bool = True,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        learning_rate_decay: float = 1.0,
        learning_rate_limit: float = 0.0,
        sigma_decay: float = 1.0,
        sigma_limit: float = 0.0,
        rng: numpy.random.Generator | None = None,
    ):
        self.centroid = _check_centroid("OpenAIES", centroid)
        self.dim = self.centroid.shape[0]
        self.sigma = check_positive("OpenAIES", "sigma", sigma)
        self.lambda_ = _check_lambda("OpenAIES", lambda_, even=antithetic)
        self.weight_decay = check_positive("OpenAIES", "weight_decay", weight_decay, allow_zero=True)
        self.antithetic = bool(antithetic)
        for name, value in (("learning_rate_decay", learning_rate_decay), ("sigma_decay", sigma_decay)):
            if not check_positive("OpenAIES", name, value) <= 1:
                raise ValueError(f"OpenAIES: {name} must be in (0, 1], got {value!r}")
        self.learning_rate_decay, self.sigma_decay = float(learning_rate_decay), float(sigma_decay)
        self.learning_rate_limit = check_positive("OpenAIES", "learning_rate_limit", learning_rate_limit, True)
        self.sigma_limit = check_positive("OpenAIES", "sigma_limit", sigma_limit, allow_zero=True)
        self.optimizer = Adam(
            check_positive("OpenAIES", "learning_rate", learning_rate),
            check_unit_interval("OpenAIES", "beta1", beta1),
            check_unit_interval("OpenAIES", "beta2", beta2),
            check_positive("OpenAIES", "epsilon", epsilon),
        )
        self.rng = _check_rng("OpenAIES", rng)
        self.generation = 0

    @property
    def learning_rate(self) -> float:
        """The Adam step size (decayed after each update)."""
        return self.optimizer.learning_rate

    @property
    def m(self) -> numpy.ndarray:
        """Adam's first moment of the gradient (zeros before the first update)."""
        return self.optimizer.m[0] if self.optimizer.m else numpy.zeros(self.dim, numpy.float32)

    @property
    def v(self) -> numpy.ndarray:
        """Adam's second moment of the gradient (zeros before the first update)."""
        return self.optimizer.v[0] if self.optimizer.v else numpy.zeros(self.dim, numpy.float32)

    def generate(self, ind_init: Callable[[numpy.ndarray], Any]) -> list[Any]:
        """Sample ``lambda_`` individuals around the mean.

        Args:
            ind_init: Individual constructor taking a 1-D array, e.g. ``creator.WeightVector``.

        Returns:
            The new individuals (antithetic pairs are ``i`` and ``i + lambda_ // 2``).
        """
        rng = seeding.get_rng() if self.rng is None else self.rng
        half = self.lambda_ // 2 if self.antithetic else self.lambda_
        noise = rng.standard_normal((half, self.dim), dtype=numpy.float32)
        noise *= numpy.float32(self.sigma)
        samples = numpy.empty((self.lambda_, self.dim), numpy.float32)
        numpy.add(self.centroid, noise, out=samples[:half])
        if self.antithetic:
            numpy.subtract(self.centroid, noise, out=samples[half:])
        return [ind_init(row) for row in samples]

    def update(self, population: Sequence[Any]) -> None:
        """Adam step on the mean from the evaluated ``population`` of the last :meth:`generate`.

        The perturbations are recovered as ``(ind - theta) / sigma``, so the order of
        ``population`` does not matter.
        """
        fitness = _fitness_values(population)
        x = numpy.stack([numpy.asarray(ind, dtype=numpy.float32) for ind in population])
        noise = (x - self.centroid) / numpy.float32(self.sigma)
        shaped = centered_ranks(fitness)
        grad = shaped @ noise / numpy.float32(len(population) * self.sigma)
        grad -= numpy.float32(self.weight_decay) * self.centroid
        self.generation += 1
        (self.centroid,) = self.optimizer.step([self.centroid], [grad])
        self.optimizer.learning_rate = max(self.learning_rate * self.learning_rate_decay,
                                           self.learning_rate_limit)
        self.sigma = max(self.sigma * self.sigma_decay, self.sigma_limit)

    def state(self) -> dict[str, Any]:
        """Everything that changes during a run (mean, sigma, Adam, generation and the
        strategy's own ``rng`` if it has one), for a checkpoint."""
        return {
            "centroid": self.centroid.copy(),
            "sigma": self.sigma,
            "generation": self.generation,
            "optimizer": self.optimizer.state(),
            "rng": _rng_state(self.rng),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, in place."""
        self.centroid = numpy.array(state["centroid"], dtype=numpy.float32)
        self.sigma = float(state["sigma"])
        self.generation = int(state["generation"])
        self.optimizer.load_state(state["optimizer"])
        _load_rng_state(self.rng, state["rng"])


class SNES:
    """Separable natural evolution strategy (Schaul et al. 2011).

    A diagonal Gaussian ``N(mu, diag(sigma^2))``; each generation samples ``s_k ~ N(0, I)``,
    ``z_k = mu + sigma * s_k``, ranks the samples with NES utilities ``u_k`` and updates
    ``mu += eta_mu * sigma * sum u_k s_k`` and
    ``sigma *= exp(eta_sigma / 2 * sum u_k (s_k^2 - 1))``.

    Args:
        centroid: Initial mean ``mu``.
        sigma: Initial standard deviation (scalar or per-weight array).
        lambda_: Population size; default ``4 + floor(3 ln n)``.
        eta_mu: Learning rate of the mean.
        eta_sigma: Learning rate of the log standard deviations; default
            ``(3 + ln n) / (5 sqrt n)``.
        rng: Source of the samples; default :func:`deapnn.core.seeding.get_rng`.
    """

    def __init__(
        self,
        centroid: Any,
        sigma: float | numpy.ndarray = 0.1,
        lambda_: int | None = None,
        *,
        eta_mu: float = 1.0,
        eta_sigma: float | None = None,
        rng: numpy.random.Generator | None = None,
    ):
        self.centroid = _check_centroid("SNES", centroid)
        self.dim = n = self.centroid.shape[0]
        try:
            sig = numpy.asarray(sigma, dtype=numpy.float64)
            sig = numpy.broadcast_to(sig, (n,))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"SNES: sigma must be a number or an array of {n} numbers, got {sigma!r}") from exc
        bad = ~(numpy.isfinite(sig) & (sig > 0))
        if bad.any():
            raise ValueError(f"SNES: sigma must be finite and > 0, got {float(sig[bad][0])!r}"
                             + (f" at index {int(numpy.flatnonzero(bad)[0])}" if numpy.ndim(sigma) else ""))
        self.sigma = sig.astype(numpy.float32)
        if lambda_ is None:
            lambda_ = 4 + int(3 * math.log(n))
        self.lambda_ = _check_lambda("SNES", lambda_)
        self.eta_mu = check_positive("SNES", "eta_mu", eta_mu)
        self.eta_sigma = (
            check_positive("SNES", "eta_sigma", eta_sigma) if eta_sigma is not None
            else (3 + math.log(n)) / (5 * math.sqrt(n))
        )
        self.rng = _check_rng("SNES", rng)
        self.generation = 0

    def generate(self, ind_init: Callable[[numpy.ndarray], Any]) -> list[Any]:
        """Sample ``lambda_`` individuals from ``N(mu, diag(sigma^2))``.

        Args:
            ind_init: Individual constructor taking a 1-D array, e.g. ``creator.WeightVector``.
        """
        rng = seeding.get_rng() if self.rng is None else self.rng
        s = rng.standard_normal((self.lambda_, self.dim), dtype=numpy.float32)
        samples = self.centroid + self.sigma * s
        return [ind_init(row) for row in samples]

    def update(self, population: Sequence[Any]) -> None:
        """Natural-gradient step of ``mu`` and ``sigma`` from the evaluated ``population``."""
        fitness = _fitness_values(population)
        x = numpy.stack([numpy.asarray(ind, dtype=numpy.float32) for ind in population])
        s = (x - self.centroid) / self.sigma
        order = numpy.argsort(-fitness, kind="stable")
        u = numpy.zeros(len(population), numpy.float32)
        u[order] = nes_utilities(len(population))
        self.centroid = (self.centroid + self.eta_mu * self.sigma * (u @ s)).astype(numpy.float32)
        self.sigma = (
            self.sigma * numpy.exp(self.eta_sigma / 2 * (u @ (s * s - 1)))
        ).astype(numpy.float32)
        self.generation += 1

    def state(self) -> dict[str, Any]:
        """Mean, standard deviations, generation and the strategy's own ``rng`` state, for a
        checkpoint."""
        return {"centroid": self.centroid.copy(), "sigma": self.sigma.copy(), "generation": self.generation,
                "rng": _rng_state(self.rng)}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, in place."""
        self.centroid = numpy.array(state["centroid"], dtype=numpy.float32)
        self.sigma = numpy.array(state["sigma"], dtype=numpy.float32)
        self.generation = int(state["generation"])
        _load_rng_state(self.rng, state["rng"])
