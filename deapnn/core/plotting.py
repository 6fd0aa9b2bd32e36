"""Plots of a run (matplotlib, imported lazily, Agg backend when no display is set)."""

from __future__ import annotations

import os
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    if not os.environ.get("DISPLAY") and "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_logbook(
    logbook: Any,
    ax: Any = None,
    *,
    title: str = "Fitness by generation",
    ylabel: str = "fitness",
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """NaturalSelection's history plot: mean with a one-standard-deviation band (clipped to the
    generation's min and max when the logbook records ``min``), and the max, per generation.

    Args:
        logbook: A DEAP ``Logbook`` whose records (or ``"fitness"`` chapter) have ``gen``,
            ``avg``, ``std`` and ``max`` (as :func:`deapnn.core.stats.fitness_stats` records).
        ax: A matplotlib axes to draw on (default: a new figure).
        path: Save the figure there (PNG by extension) when given.

    Returns:
        The matplotlib ``Figure``.
    """
    import numpy as np

    book = logbook.chapters["fitness"] if "fitness" in getattr(logbook, "chapters", {}) else logbook
    gen = np.asarray(logbook.select("gen"))
    avg, std, best = (np.asarray(book.select(k), dtype=float) for k in ("avg", "std", "max"))
    lowest = book.select("min")
    lowest = (np.asarray(lowest, dtype=float) if all(v is not None for v in lowest)
              else np.full_like(avg, -np.inf))
    if avg.ndim > 1:  # several objectives: plot the first
        avg, std, best, lowest = avg[:, 0], std[:, 0], best[:, 0], lowest[:, 0]
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4))
    else:
        fig = ax.figure
    # the band stays within the population's range: a skewed generation (one failed network
    # among good ones) would otherwise draw accuracies above 1
    ax.fill_between(gen, np.maximum(avg - std, lowest), np.minimum(avg + std, best), alpha=0.25,
                    label="mean ± 1 std (within min-max)")
    ax.plot(gen, avg, label="mean")
    ax.plot(gen, best, label="max")
    ax.set_xlabel("generation")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
