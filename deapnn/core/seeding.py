"""One place for every random source deapnn draws from.

Genome operators follow DEAP's convention and draw from Python's :mod:`random`
module; numpy-vectorised code (weight vectors, evolution strategies) draws from
an explicit :class:`numpy.random.Generator`, defaulting to the module-level one
returned by :func:`get_rng`. :func:`seed` seeds all of them at once, and
:func:`get_state` / :func:`set_state` capture them for checkpoints.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

_rng: np.random.Generator = np.random.default_rng()


def seed(value: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and deapnn's default generator.

    Args:
        value: A non-negative integer seed.

    Raises:
        TypeError: If ``value`` is not an integer.
        ValueError: If ``value`` is negative.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"seed must be >= 0, got {value!r}")
    random.seed(int(value))
    np.random.seed(int(value) % 2**32)
    # Reseed the generator in place: objects that kept a reference to it (agents, strategies,
    # toolboxes built before this call) draw from the reseeded stream too.
    _rng.bit_generator.state = np.random.default_rng(int(value)).bit_generator.state


def get_rng() -> np.random.Generator:
    """Return deapnn's default numpy generator (the one :func:`seed` resets)."""
    return _rng


def get_state() -> dict[str, Any]:
    """Return the state of every random source, for a checkpoint."""
    return {
        "random": random.getstate(),
        "numpy_global": np.random.get_state(),
        "numpy_default": _rng.bit_generator.state,
    }


def set_state(state: dict[str, Any]) -> None:
    """Restore the random sources from :func:`get_state`'s output."""
    random.setstate(state["random"])
    np.random.set_state(state["numpy_global"])
    _rng.bit_generator.state = state["numpy_default"]
