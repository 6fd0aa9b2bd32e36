"""PGPE with ClipUp, as a DEAP strategy (``generate`` / ``update``).

Policy gradients with parameter-based exploration (Sehnke et al. 2010, "Parameter-exploring
policy gradients", Neural Networks 23(4)) as EvoJAX and evosax run it: a diagonal Gaussian
``N(mu, diag(sigma^2))`` over the weights, symmetric (mirrored) sampling ``mu + eps`` and
``mu - eps``, fitness shaped into centred ranks, the mean moved by an optimiser along the
estimated gradient and every ``sigma_i`` adapted by its own gradient (each step bounded to a
fraction ``sigma_max_change`` of ``sigma_i``). The optimiser is ClipUp (Toklu et al. 2020,
"ClipUp: a simple and powerful optimizer for distribution-based policy evolution", PPSN XVI):
a normalised gradient step with heavy-ball momentum whose velocity is clipped to ``max_speed``;
``optimizer="adam"`` uses :class:`deapnn.core.optim.Adam` instead.

Drive it like DEAP's ``cma.Strategy``::

    strategy = PGPE(toolbox.individual(), sigma=0.05, lambda_=200)
    toolbox.register("generate", strategy.generate, creator.WeightVector)
    toolbox.register("update", strategy.update)
    algorithms.eaGenerateUpdate(toolbox, ngen=100)      # or deapnn.evolve(..., "generate_update")

``generate`` fills one 64-byte aligned ``(lambda_, n)`` matrix
(:func:`deapnn.weights.buffers.population_matrix`) and returns its rows as the individuals
(:func:`deapnn.weights.types.rows_as_individuals`), which :class:`~deapnn.weights.BatchedEvaluator`
reads without a copy. Randomness: the ``rng`` argument (a ``numpy.random.Generator``), default
:func:`deapnn.core.seeding.get_rng` looked up at each call; :meth:`PGPE.state` /
:meth:`PGPE.load_state` carry everything a checkpoint needs.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy

from deapnn.core import seeding
from deapnn.core.optim import Adam, check_positive, check_unit_interval
from deapnn.weights.buffers import population_matrix, shared_matrix
from deapnn.weights.strategies import (_check_centroid, _check_lambda, _check_rng, _fitness_values,
                                       _load_rng_state, _rng_state, centered_ranks)
from deapnn.weights.types import rows_as_individuals

__all__ = ["PGPE", "ClipUp", "OPTIMIZERS"]

OPTIMIZERS = ("clipup", "adam")


class ClipUp:
    """ClipUp ascent steps (Toklu et al. 2020) on one float32 vector.

    Each :meth:`step` with gradient ``g`` (of an objective to *maximise*) does::

        velocity = momentum * velocity + learning_rate * g / ||g||
        velocity *= min(1, max_speed / ||velocity||)
        param += velocity

    Args:
        learning_rate: Step size (finite, > 0); Toklu et al. suggest ``max_speed / 2``.
        max_speed: Largest norm of a step (finite, > 0); default ``2 * learning_rate``.
        momentum: Heavy-ball coefficient, in [0, 1).

    It draws no random numbers.
    """

    def __init__(self, learning_rate: float = 0.15, max_speed: float | None = None, momentum: float = 0.9):
        self.learning_rate = check_positive("ClipUp", "learning_rate", learning_rate)
        self.max_speed = (2 * self.learning_rate if max_speed is None
                          else check_positive("ClipUp", "max_speed", max_speed))
        self.momentum = check_unit_interval("ClipUp", "momentum", momentum)
        self.velocity: numpy.ndarray | None = None

    def step(self, param: numpy.ndarray, grad: numpy.ndarray) -> numpy.ndarray:
        """One ascent step; returns the new parameter (a new array, ``param``'s dtype)."""
        if self.velocity is None:
            self.velocity = numpy.zeros_like(param)
        norm = float(numpy.linalg.norm(grad.astype(numpy.float64)))
        step = grad * (self.learning_rate / norm) if norm > 0 else numpy.zeros_like(grad)
        velocity = self.momentum * self.velocity + step.astype(param.dtype, copy=False)
        speed = float(numpy.linalg.norm(velocity.astype(numpy.float64)))
        if speed > self.max_speed:
            velocity *= self.max_speed / speed
        self.velocity = velocity.astype(param.dtype, copy=False)
        return (param + self.velocity).astype(param.dtype, copy=False)

    def state(self) -> dict[str, Any]:
        """Learning rate and velocity (a copy), for a checkpoint."""
        return {"learning_rate": self.learning_rate, "max_speed": self.max_speed,
                "velocity": None if self.velocity is None else self.velocity.copy()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, in place."""
        self.learning_rate = float(state["learning_rate"])
        self.max_speed = float(state["max_speed"])
        self.velocity = None if state["velocity"] is None else numpy.array(state["velocity"])

    def __repr__(self) -> str:
        return f"ClipUp(learning_rate={self.learning_rate!r}, max_speed={self.max_speed!r}, momentum={self.momentum!r})"


class PGPE:
    """PGPE (Sehnke et al. 2010) with symmetric sampling, per-weight sigmas and ClipUp or Adam.

    Each generation draws ``lambda_ // 2`` perturbations ``eps_k ~ N(0, diag(sigma^2))`` and
    samples ``mu + eps_k`` (rows ``k``) and ``mu - eps_k`` (rows ``k + lambda_ // 2``). With the
    centred ranks ``f`` of the fitnesses (or the raw values, ``centered_ranks=False``), the
    gradient estimates are::

        grad_mu    = mean_k  eps_k (f+_k - f-_k) / 2
        grad_sigma = mean_k  ((f+_k + f-_k) / 2 - mean f) (eps_k^2 - sigma^2) / sigma

    ``mu`` takes an optimiser step along ``grad_mu`` (minus ``weight_decay * mu``); ``sigma``
    becomes ``sigma + sigma_learning_rate * grad_sigma``, clipped to within ``sigma_max_change``
    of its value. Without ``symmetric`` the ``lambda_`` samples are ``mu + eps_k`` and the
    gradients use ``f_k - mean f`` as the baseline-subtracted reward.

    Args:
        centroid: Initial mean, a 1-D array (copied to float32; finite, non-empty).
        sigma: Initial standard deviation, a number or one per weight (finite, > 0).
        lambda_: Population size (>= 2, even with ``symmetric``).
        learning_rate: Step size of the mean's optimiser (ClipUp's or Adam's).
        optimizer: ``"clipup"`` (default) or ``"adam"``.
        max_speed: ClipUp's velocity bound; default ``2 * learning_rate``.
        momentum: ClipUp's momentum, in [0, 1).
        sigma_learning_rate: Step size of the sigma update (>= 0; 0 keeps sigma fixed).
        sigma_max_change: Largest relative change of a sigma per update, in (0, 1].
        sigma_limit: Smallest value a sigma may take (>= 0).
        symmetric: Mirrored sampling (antithetic pairs).
        centered_ranks: Shape fitness into centred ranks (rank-based, invariant to the scale
            of the fitness; a failed ``-inf`` individual simply ranks last).
        weight_decay: L2 coefficient pulling ``mu`` towards 0 (>= 0).
        learning_rate_decay: Factor in (0, 1] applied after each update to the learning rate
            (and to ClipUp's ``max_speed``, keeping their ratio).
        learning_rate_limit: Smallest learning rate the decay reaches (>= 0).
        beta1, beta2, epsilon: Adam's knobs (``optimizer="adam"`` only).
        rng: Source of the perturbations; default :func:`deapnn.core.seeding.get_rng`.

    Raises:
        ValueError: Naming the value: a centroid that is empty or not finite, ``sigma <= 0`` or
            not finite, an odd ``lambda_`` with ``symmetric``, ``learning_rate <= 0``,
            ``max_speed <= 0``, an unknown ``optimizer`` or a knob out of range.
        TypeError: For a value of the wrong type (``lambda_`` not an int, ``rng`` not a Generator).
    """

    def __init__(
        self,
        centroid: Any,
        sigma: float | numpy.ndarray = 0.1,
        lambda_: int = 100,
        *,
        learning_rate: float = 0.15,
        optimizer: str = "clipup",
        max_speed: float | None = None,
        momentum: float = 0.9,
        sigma_learning_rate: float = 0.1,
        sigma_max_change: float = 0.2,
        sigma_limit: float = 1e-8,
        symmetric: bool = True,
        centered_ranks: bool = True,
        weight_decay: float = 0.0,
        learning_rate_decay: float = 1.0,
        learning_rate_limit: float = 0.0,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        rng: numpy.random.Generator | None = None,
    ):
        self.centroid = _check_centroid("PGPE", centroid)
        self.dim = n = self.centroid.shape[0]
        self.sigma = _check_sigma("PGPE", sigma, n)
        if not isinstance(symmetric, (bool, numpy.bool_)):
            raise TypeError(f"PGPE: symmetric must be a bool, got {symmetric!r}")
        self.symmetric = bool(symmetric)
        if (self.symmetric and not isinstance(lambda_, bool) and isinstance(lambda_, (int, numpy.integer))
                and lambda_ >= 2 and lambda_ % 2):
            raise ValueError(f"PGPE: lambda_ must be even with symmetric (mirrored) sampling, got {lambda_!r}")
        self.lambda_ = _check_lambda("PGPE", lambda_, even=self.symmetric)
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"PGPE: optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        self.optimizer_name = optimizer
        learning_rate = check_positive("PGPE", "learning_rate", learning_rate)
        if max_speed is not None:
            check_positive("PGPE", "max_speed", max_speed)
        momentum = check_unit_interval("PGPE", "momentum", momentum)
        if optimizer == "clipup":
            self.optimizer: ClipUp | Adam = ClipUp(learning_rate, max_speed, momentum)
        else:
            self.optimizer = Adam(learning_rate, check_unit_interval("PGPE", "beta1", beta1),
                                  check_unit_interval("PGPE", "beta2", beta2),
                                  check_positive("PGPE", "epsilon", epsilon))
        self.sigma_learning_rate = check_positive("PGPE", "sigma_learning_rate", sigma_learning_rate, True)
        self.sigma_max_change = check_positive("PGPE", "sigma_max_change", sigma_max_change)
        if self.sigma_max_change > 1:
            raise ValueError(f"PGPE: sigma_max_change must be in (0, 1], got {sigma_max_change!r}")
        self.sigma_limit = check_positive("PGPE", "sigma_limit", sigma_limit, allow_zero=True)
        self.centered_ranks = bool(centered_ranks)
        self.weight_decay = check_positive("PGPE", "weight_decay", weight_decay, allow_zero=True)
        self.learning_rate_decay = check_positive("PGPE", "learning_rate_decay", learning_rate_decay)
        if self.learning_rate_decay > 1:
            raise ValueError(f"PGPE: learning_rate_decay must be in (0, 1], got {learning_rate_decay!r}")
        self.learning_rate_limit = check_positive("PGPE", "learning_rate_limit", learning_rate_limit, True)
        self.rng = _check_rng("PGPE", rng)
        self.generation = 0

    @property
    def learning_rate(self) -> float:
        """The step size of the mean's optimiser."""
        return self.optimizer.learning_rate

    def generate(self, ind_init: Callable[[numpy.ndarray], Any]) -> list[Any]:
        """Sample ``lambda_`` individuals around the mean, rows of one aligned matrix.

        Args:
            ind_init: Individual class or constructor, e.g. ``creator.WeightVector`` (a numpy
                class gives views of the population buffer, anything else is called per row).

        Returns:
            The individuals; with ``symmetric``, ``i`` and ``i + lambda_ // 2`` are mirrored.
        """
        rng = seeding.get_rng() if self.rng is None else self.rng
        half = self.lambda_ // 2 if self.symmetric else self.lambda_
        # rows laid out as the evaluator reading them asked (padded apart: see population_matrix)
        samples = population_matrix(self.lambda_, self.dim)
        noise = rng.standard_normal((self.lambda_ - half if self.symmetric else self.lambda_, self.dim),
                                    dtype=numpy.float32)
        noise *= self.sigma
        if self.symmetric:
            numpy.add(self.centroid, noise, out=samples[:half])
            numpy.subtract(self.centroid, noise, out=samples[half:])
        else:
            numpy.add(noise, self.centroid, out=samples)
        return rows_as_individuals(samples, ind_init)

    def update(self, population: Sequence[Any]) -> None:
        """Move the mean and the sigmas from the evaluated ``population`` of the last :meth:`generate`.

        ``population`` must hold the individuals :meth:`generate` returned, in its order (as
        ``eaGenerateUpdate`` and :func:`deapnn.evolve` pass them): the mirrored pairs are read
        from their positions.

        Raises:
            ValueError: If an individual has no valid fitness, the population has another size,
                or (symmetric) the pairs are not mirrored around the mean.
        """
        if len(population) != self.lambda_:
            raise ValueError(f"update: expected the {self.lambda_} individuals of generate(), got {len(population)}")
        fitness = _fitness_values(population)
        if self.centered_ranks:
            fitness = centered_ranks(fitness).astype(numpy.float64)
        elif not numpy.isfinite(fitness).all():  # failures: as bad as the worst success
            finite = numpy.isfinite(fitness)
            fitness = numpy.where(finite, fitness, fitness[finite].min() if finite.any() else 0.0)
        x = shared_matrix(population)  # the population buffer of generate(): no copy
        if x is None:
            x = numpy.stack([numpy.asarray(ind, dtype=numpy.float32) for ind in population])
        if self.symmetric:
            half = self.lambda_ // 2
            # a cheap check that the pairs are the mirrored ones (first rows): means at the centre
            k = min(half, 2)
            middle = (x[:k] + x[half:half + k]) * numpy.float32(0.5) - self.centroid
            if float(numpy.abs(middle).max()) > 1e-3 * float(self.sigma.max()) + 1e-5 * (1 + float(numpy.abs(self.centroid).max())):
                raise ValueError("update: the population is not the mirrored pairs generate() returned, in order")
            eps = x[:half] - x[half:]
            eps *= numpy.float32(0.5)
            f_plus, f_minus = fitness[:half], fitness[half:]
            grad_mu = (f_plus - f_minus).astype(numpy.float32) @ eps / numpy.float32(2 * half)
            reward = ((f_plus + f_minus) / 2 - fitness.mean()).astype(numpy.float32)
        else:
            eps = x - self.centroid
            reward = (fitness - fitness.mean()).astype(numpy.float32)
            grad_mu = reward @ eps / numpy.float32(self.lambda_)
        # sum_k r_k (eps_k^2 - sigma^2) / sigma, without an (n_pairs, n) temporary beyond eps^2
        numpy.square(eps, out=eps)
        grad_sigma = (reward @ eps - numpy.float32(reward.sum()) * self.sigma * self.sigma) / (
            numpy.float32(len(reward)) * self.sigma)
        if self.weight_decay:
            grad_mu = grad_mu - numpy.float32(self.weight_decay) * self.centroid
        if isinstance(self.optimizer, ClipUp):
            self.centroid = self.optimizer.step(self.centroid, grad_mu)
        else:
            (self.centroid,) = self.optimizer.step([self.centroid], [grad_mu])
        if self.learning_rate_decay < 1:
            new_lr = max(self.optimizer.learning_rate * self.learning_rate_decay, self.learning_rate_limit)
            if isinstance(self.optimizer, ClipUp):
                self.optimizer.max_speed *= new_lr / self.optimizer.learning_rate
            self.optimizer.learning_rate = new_lr
        if self.sigma_learning_rate:
            bound = self.sigma * numpy.float32(self.sigma_max_change)
            new = numpy.clip(self.sigma + numpy.float32(self.sigma_learning_rate) * grad_sigma,
                             self.sigma - bound, self.sigma + bound)
            self.sigma = numpy.maximum(new, numpy.float32(self.sigma_limit)).astype(numpy.float32)
        self.generation += 1

    def state(self) -> dict[str, Any]:
        """Mean, sigmas, optimiser state, generation and the strategy's own ``rng`` state, for a checkpoint."""
        return {"centroid": self.centroid.copy(), "sigma": self.sigma.copy(), "generation": self.generation,
                "optimizer": self.optimizer.state(), "rng": _rng_state(self.rng)}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, in place."""
        centroid = numpy.array(state["centroid"], dtype=numpy.float32)
        if centroid.shape != (self.dim,):
            raise ValueError(f"load_state: the saved centroid has shape {centroid.shape}, this PGPE has {self.dim} weights")
        self.centroid = centroid
        self.sigma = numpy.array(state["sigma"], dtype=numpy.float32)
        self.generation = int(state["generation"])
        self.optimizer.load_state(state["optimizer"])
        _load_rng_state(self.rng, state["rng"])

    def __repr__(self) -> str:
        return (f"PGPE(dim={self.dim}, lambda_={self.lambda_}, optimizer={self.optimizer!r}, "
                f"generation={self.generation})")


def _check_sigma(owner: str, sigma: Any, n: int) -> numpy.ndarray:
    """``sigma`` as a float32 vector of ``n`` finite values > 0, or a ValueError naming the bad one."""
    try:
        sig = numpy.broadcast_to(numpy.asarray(sigma, dtype=numpy.float64), (n,))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{owner}: sigma must be a number or an array of {n} numbers, got {sigma!r}") from exc
    bad = ~(numpy.isfinite(sig) & (sig > 0))
    if bad.any():
        where = f" at index {int(numpy.flatnonzero(bad)[0])}" if numpy.ndim(sigma) else ""
        raise ValueError(f"{owner}: sigma must be finite and > 0, got {float(sig[bad][0])!r}{where}")
    return sig.astype(numpy.float32)
