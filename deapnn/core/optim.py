"""One Adam optimiser (Kingma & Ba 2015, arXiv:1412.6980), shared by OpenAI-ES and Evo-NAS.

Both take *ascent* steps on an estimated gradient: OpenAI-ES on the mean of its search
distribution, the Evo-NAS controller on its logits. :class:`Adam` works on a list of numpy
arrays, keeps its moments with the dtype of the parameters (float32 weight vectors stay
float32) and holds its state in plain arrays, so it pickles and checkpoints with the
strategy that owns it (:meth:`Adam.state` / :meth:`Adam.load_state`).

It draws no random numbers.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy

__all__ = ["Adam", "check_positive", "check_unit_interval"]


def check_positive(owner: str, name: str, value: Any, allow_zero: bool = False) -> float:
    """``value`` as a float if it is a finite real number ``> 0`` (``>= 0`` with ``allow_zero``).

    Raises:
        TypeError: If ``value`` is not a real number.
        ValueError: If it is NaN, infinite or out of range; the message names ``owner.name``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}: {name} must be finite and {bound}, got {value!r}")
    return value


def check_unit_interval(owner: str, name: str, value: Any, closed_right: bool = False) -> float:
    """``value`` as a float if it is in ``[0, 1)`` (``[0, 1]`` with ``closed_right``).

    Raises:
        TypeError: If ``value`` is not a real number.
        ValueError: If it is NaN or out of the interval; the message names ``owner.name``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    value = float(value)
    ok = 0.0 <= value <= 1.0 if closed_right else 0.0 <= value < 1.0
    if not ok:  # NaN fails both comparisons
        raise ValueError(f"{owner}: {name} must be in [0, 1{']' if closed_right else ')'}, got {value!r}")
    return value


class Adam:
    """Adam ascent steps on a list of arrays.

    Each :meth:`step` with gradients ``g`` (of an objective to *maximise*) does::

        t += 1
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        param += learning_rate * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + epsilon)

    Args:
        learning_rate: Step size (finite, > 0); may be changed between steps (decay).
        beta1: First-moment decay, in [0, 1).
        beta2: Second-moment decay, in [0, 1).
        epsilon: Denominator guard (finite, > 0).

    Raises:
        ValueError: If a value is NaN, infinite or out of range (the message names it).
    """

    def __init__(
        self, learning_rate: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8
    ) -> None:
        self.learning_rate = check_positive("Adam", "learning_rate", learning_rate)
        self.beta1 = check_unit_interval("Adam", "beta1", beta1)
        self.beta2 = check_unit_interval("Adam", "beta2", beta2)
        self.epsilon = check_positive("Adam", "epsilon", epsilon)
        self.t = 0
        self.m: list[numpy.ndarray] | None = None
        self.v: list[numpy.ndarray] | None = None

    def step(self, params: Sequence[numpy.ndarray], grads: Sequence[numpy.ndarray]) -> list[numpy.ndarray]:
        """One ascent step.

        Args:
            params: The parameters (not modified).
            grads: Their gradients, one array per parameter with its shape.

        Returns:
            The updated parameters, new arrays with the parameters' dtypes.
        """
        params = [numpy.asarray(p) for p in params]
        if len(grads) != len(params):
            raise ValueError(f"Adam.step: {len(params)} parameters but {len(grads)} gradients")
        if self.m is None or self.v is None:
            self.m = [numpy.zeros_like(p) for p in params]
            self.v = [numpy.zeros_like(p) for p in params]
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        c1, c2 = 1.0 - b1**self.t, 1.0 - b2**self.t
        out = []
        for i, (p, g) in enumerate(zip(params, grads)):
            g = numpy.asarray(g, dtype=p.dtype)
            m = self.m[i] = (b1 * self.m[i] + (1 - b1) * g).astype(p.dtype, copy=False)
            v = self.v[i] = (b2 * self.v[i] + (1 - b2) * g * g).astype(p.dtype, copy=False)
            update = self.learning_rate * (m / c1) / (numpy.sqrt(v / c2) + self.epsilon)
            out.append((p + update).astype(p.dtype, copy=False))
        return out

    def state(self) -> dict[str, Any]:
        """Step count, moments and learning rate (copies), for a checkpoint."""
        return {
            "learning_rate": self.learning_rate,
            "t": self.t,
            "m": None if self.m is None else [a.copy() for a in self.m],
            "v": None if self.v is None else [a.copy() for a in self.v],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned, in place."""
        self.learning_rate = float(state["learning_rate"])
        self.t = int(state["t"])
        self.m = None if state["m"] is None else [numpy.array(a) for a in state["m"]]
        self.v = None if state["v"] is None else [numpy.array(a) for a in state["v"]]

    def __repr__(self) -> str:
        return (f"Adam(learning_rate={self.learning_rate!r}, beta1={self.beta1!r}, beta2={self.beta2!r}, "
                f"epsilon={self.epsilon!r}, t={self.t})")
