"""Small fitness functions used by the examples, tests and benchmarks.

They are picklable module-level callables, so they also run in worker processes.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from deapnn.hparams.space import SearchSpace


class PolynomialFit:
    """Seed 000's polynomial fit: fitness = ``-MSE`` of ``a*x**2 + b*x + c`` against data made
    from known coefficients.

    Args:
        coefficients: The true ``(a, b, c)``.
        n_points: Number of points ``x`` evenly spaced in ``[-1, 1]``... ``[low, high]``.
        noise: Standard deviation of Gaussian noise added to ``y`` (drawn from a generator seeded
            with ``seed``; 0 gives exact data, whose optimum is the true coefficients).
    """

    def __init__(
        self,
        coefficients: Sequence[float] = (1.5, -2.0, 0.5),
        n_points: int = 50,
        x_range: tuple[float, float] = (-2.0, 2.0),
        noise: float = 0.0,
        seed: int = 0,
    ) -> None:
        if len(coefficients) != 3:
            raise ValueError(f"coefficients must be (a, b, c), got {coefficients!r}")
        self.coefficients = tuple(float(c) for c in coefficients)
        self.x = np.linspace(x_range[0], x_range[1], n_points)
        a, b, c = self.coefficients
        self.y = a * self.x**2 + b * self.x + c
        if noise:
            self.y = self.y + np.random.default_rng(seed).normal(0.0, noise, n_points)

    @staticmethod
    def space(low: float = -3.0, high: float = 3.0) -> SearchSpace:
        """Seed 000's gene pool: ``a``, ``b``, ``c`` continuous in ``(low, high)``."""
        return SearchSpace.from_gene_pool({"a": (low, high), "b": (low, high), "c": (low, high)})

    def __call__(self, genome: Any) -> tuple[float]:
        a, b, c = genome["a"], genome["b"], genome["c"]
        y_hat = a * self.x**2 + b * self.x + c
        return (-float(np.mean(np.square(y_hat - self.y))),)
