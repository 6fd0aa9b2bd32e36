"""Plots of a run (matplotlib, imported lazily, Agg backend when no display is set)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
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
    x: str = "gen",
) -> Any:
    """NaturalSelection's history plot: mean with a one-standard-deviation band (clipped to the
    generation's min and max when the logbook records ``min``), and the max, per generation.

    Args:
        logbook: A DEAP ``Logbook`` whose records (or ``"fitness"`` chapter) have ``gen``,
            ``avg``, ``std`` and ``max`` (as :func:`deapnn.core.stats.fitness_stats` records).
        ax: A matplotlib axes to draw on (default: a new figure).
        path: Save the figure there (PNG by extension) when given.
        x: ``"gen"`` (per generation) or ``"elapsed"`` (against the evolution's wall time in
            seconds, as :func:`deapnn.evolve` records it).

    Returns:
        The matplotlib ``Figure``.
    """
    import numpy as np

    if x not in ("gen", "elapsed"):
        raise ValueError(f"x must be 'gen' or 'elapsed', got {x!r}")
    if not hasattr(logbook, "select"):  # JSON records (deapnn's run folders)
        logbook = logbook_from_records(logbook)
    book = logbook.chapters["fitness"] if "fitness" in getattr(logbook, "chapters", {}) else logbook
    gen = np.asarray(logbook.select(x), dtype=float)
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
    ax.set_xlabel("generation" if x == "gen" else "wall time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="lower right")
    return _finish(fig, path)


def _finish(fig: Any, path: str | os.PathLike[str] | None) -> Any:
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def _float(value: Any) -> Any:
    """A JSON value back to a float (``"nan"``/``"inf"`` strings included); lists elementwise."""
    if isinstance(value, list):
        return [_float(v) for v in value]
    if value is None:
        return float("nan")
    return float(value)


def logbook_from_records(records: Sequence[dict]) -> Any:
    """A DEAP ``Logbook`` from JSON records (``logbook.json`` of a run folder).

    Fields written ``fitness_<name>`` (a flattened ``"fitness"`` chapter) go back into that
    chapter; ``"nan"`` and ``"inf"`` strings become floats.
    """
    from deap import tools

    logbook = tools.Logbook()
    chaptered = any(k.startswith("fitness_") for r in records for k in r)
    for r in records:
        top = {k: v for k, v in r.items() if not k.startswith("fitness_")}
        for k in ("avg", "std", "min", "max", "elapsed"):
            if k in top:
                top[k] = _float(top[k])
        if chaptered:
            chapter = {k[len("fitness_"):]: _float(v) if k[len("fitness_"):] != "failed" else v
                       for k, v in r.items() if k.startswith("fitness_")}
            logbook.record(fitness=chapter, **top)
        else:
            logbook.record(**top)
    return logbook


def _is_categorical(values: Sequence[Any], gene: Any = None) -> bool:
    if gene is not None:
        return type(gene).__name__ == "Choice"
    present = [v for v in values if v is not None]
    if any(isinstance(v, (str, bool)) for v in present) or len(present) < len(values):
        return True
    return len(set(present)) <= 8


def _order(value: Any) -> tuple:
    """Sort key of gene values: numbers by value, then everything else by its text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, repr(value))


def plot_gene_frequencies(
    populations: Mapping[int, Sequence[Mapping[str, Any]]],
    space: Any = None,
    *,
    title: str = "Genes by generation",
    path: str | os.PathLike[str] | None = None,
    columns: int = 3,
) -> Any:
    """DeepEvolve's gene plots: for each gene, the frequency of every value per generation
    (categorical genes, stacked) or the distribution of its values per generation (numeric genes:
    median, interquartile band and min-max).

    Args:
        populations: ``{generation: [genome as {gene: value}, ...]}``.
        space: The :class:`~deapnn.hparams.space.SearchSpace`, whose ``Choice`` genes are the
            categorical ones; without it a gene is categorical when it holds strings, booleans,
            ``None`` or at most 8 distinct numbers.
        path: Save the figure there when given.
        columns: Subplots per row.

    Returns:
        The matplotlib ``Figure``.
    """
    import numpy as np

    gens = sorted(int(g) for g in populations)
    if not gens:
        raise ValueError("populations is empty: nothing to plot")
    pops = {int(g): p for g, p in populations.items()}
    names = list(space.names) if space is not None else list(pops[gens[0]][0])
    plt = _pyplot()
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        per_gen = [[genome.get(name) for genome in pops[g]] for g in gens]
        flat = [v for vals in per_gen for v in vals]
        gene = space.genes[space.names.index(name)] if space is not None else None
        if _is_categorical(flat, gene):
            levels = sorted({repr(v): v for v in flat}.items(), key=lambda kv: _order(kv[1]))
            freq = np.array([[sum(repr(v) == lvl for v in vals) / max(len(vals), 1)
                              for vals in per_gen] for lvl, _ in levels])
            ax.stackplot(gens, freq, labels=[str(v) for _, v in levels], alpha=0.85)
            ax.set_ylim(0, 1)
            ax.set_ylabel("frequency")
            if len(levels) <= 8:
                ax.legend(fontsize=6, loc="upper left", ncol=2, framealpha=0.6)
        else:
            arr = [np.asarray(vals, dtype=float) for vals in per_gen]
            q = np.array([np.percentile(a, [0, 25, 50, 75, 100]) for a in arr])
            ax.fill_between(gens, q[:, 0], q[:, 4], alpha=0.15, label="min-max")
            ax.fill_between(gens, q[:, 1], q[:, 3], alpha=0.35, label="interquartile")
            ax.plot(gens, q[:, 2], label="median")
            if gene is not None and getattr(gene, "log", False):
                ax.set_yscale("log")
            ax.legend(fontsize=6, loc="upper left", framealpha=0.6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("generation", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return _finish(fig, path)


def plot_genealogy(
    genealogy: Mapping[str, Any],
    *,
    title: str = "Genealogy of the best individual",
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """The ancestors of the best individual (DEAP's ``tools.History``), coloured by fitness.

    Args:
        genealogy: ``{"best": index, "tree": {index: [parent indices]}, "nodes": {index:
            {"fitness": [..] or None, ...}}}``, as ``History.getGenealogy`` and the hyperparameter
            job write it (``genealogy.json``). Keys may be strings (JSON).
        path: Save the figure there when given.

    Returns:
        The matplotlib ``Figure``; the best individual sits on the right, each column one step
        of ancestry further to the left, arrows from parents to children.
    """
    import numpy as np

    if not genealogy or "best" not in genealogy:
        raise ValueError("genealogy is empty: the run recorded no History")
    best = int(genealogy["best"])
    tree = {int(k): [int(p) for p in v] for k, v in genealogy.get("tree", {}).items()}
    nodes = {int(k): v for k, v in genealogy.get("nodes", {}).items()}
    depth = {best: 0}
    frontier = [best]
    while frontier:
        nxt = []
        for child in frontier:
            for parent in tree.get(child, []):
                if parent not in depth or depth[parent] < depth[child] + 1:
                    depth[parent] = depth[child] + 1
                    nxt.append(parent)
        frontier = nxt
    by_depth: dict[int, list[int]] = {}
    for idx, d in depth.items():
        by_depth.setdefault(d, []).append(idx)
    pos = {}
    for d, members in by_depth.items():
        for i, idx in enumerate(sorted(members)):
            pos[idx] = (-d, i - (len(members) - 1) / 2)

    def fit(idx: int) -> float:
        values = (nodes.get(idx) or {}).get("fitness")
        v = _float(values[0]) if values else float("nan")
        return v if np.isfinite(v) else float("nan")

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.5, min(14, 2 + 1.2 * len(by_depth))), 4.5))
    for child, parents in tree.items():
        if child not in pos:
            continue
        for parent in parents:
            if parent in pos:
                (x0, y0), (x1, y1) = pos[parent], pos[child]
                ax.annotate("", (x1, y1), (x0, y0),
                            arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 0.8})
    idxs = list(pos)
    xs, ys = np.array([pos[i] for i in idxs]).T
    values = np.array([fit(i) for i in idxs])
    known = np.isfinite(values)
    points = ax.scatter(xs[known], ys[known], c=values[known], cmap="viridis", s=90, zorder=3,
                        edgecolors="k")
    ax.scatter(xs[~known], ys[~known], c="lightgrey", s=90, zorder=3, edgecolors="k",
               label="fitness unknown")
    if known.any():
        fig.colorbar(points, ax=ax, label="fitness")
    ax.scatter([pos[best][0]], [pos[best][1]], s=260, facecolors="none", edgecolors="red", lw=2,
               zorder=4, label=f"best ({fit(best):.4f})")
    ax.set_xlabel("generations of ancestry (0: the best individual)")
    ax.set_yticks([])
    ax.set_xticks(sorted(set(xs)))
    ax.set_xticklabels([str(int(-x)) for x in sorted(set(xs))])
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return _finish(fig, path)


def pareto_front(points: Sequence[Sequence[float]], weights: Sequence[float] = (1.0, -1.0)) -> list[int]:
    """Indices of the non-dominated points (objective ``i`` maximised when ``weights[i] > 0``)."""
    import numpy as np

    a = np.asarray(points, dtype=float) * np.sign(np.asarray(weights, dtype=float))
    keep = []
    for i, p in enumerate(a):
        if not np.all(np.isfinite(p)):
            continue
        dominated = np.any(np.all(a >= p, axis=1) & np.any(a > p, axis=1))
        if not dominated:
            keep.append(i)
    return keep


def plot_pareto(
    points: Sequence[Sequence[float]],
    *,
    weights: Sequence[float] = (1.0, -1.0),
    labels: Sequence[str] = ("validation accuracy", "weights"),
    title: str = "Pareto front",
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Every evaluated point of a two-objective run and its Pareto front.

    Args:
        points: ``(objective 1, objective 2)`` of each individual (failed ones are left out).
        weights: DEAP fitness weights: which objective is maximised (> 0) or minimised (< 0).
        labels: Axis labels of the two objectives.
        path: Save the figure there when given.

    Returns:
        The matplotlib ``Figure``.
    """
    import numpy as np

    a = np.asarray([_float(list(p)) for p in points], dtype=float)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"plot_pareto needs points with two objectives, got shape {a.shape}")
    ok = np.all(np.isfinite(a), axis=1)
    front = pareto_front(a, weights)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.scatter(a[ok, 1], a[ok, 0], s=18, alpha=0.5, label="evaluated")
    f = a[front][np.argsort(a[front][:, 1])]
    ax.plot(f[:, 1], f[:, 0], "o-", color="C3", drawstyle="steps-post",
            label=f"Pareto front ({len(front)})")
    ax.set_xlabel(labels[1])
    ax.set_ylabel(labels[0])
    if ok.any() and a[ok, 1].min() > 0 and a[ok, 1].max() / a[ok, 1].min() > 50:
        ax.set_xscale("log")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return _finish(fig, path)


def plot_compare(
    arms: Sequence[Mapping[str, Any]],
    *,
    title: str = "Test accuracy against wall time",
    budget: float | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """Every arm of a comparison on one plot: test accuracy against wall time.

    Args:
        arms: Records with ``label``, ``test_accuracy``, ``wall_seconds`` and ``curve`` (a list
            of ``{"seconds", "test_accuracy"}``; one point for an arm measured only at its end).
        budget: Each arm's budget in seconds, drawn as a vertical line when given.
        path: Save the figure there when given.

    Returns:
        The matplotlib ``Figure``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, arm in enumerate(arms):
        curve = arm.get("curve") or []
        xs = [_float(p["seconds"]) for p in curve] or [_float(arm["wall_seconds"])]
        ys = [_float(p["test_accuracy"]) for p in curve] or [_float(arm["test_accuracy"])]
        label = f"{arm['label']} ({_float(arm['test_accuracy']):.2%})"
        style = "o-" if len(xs) > 1 else "D"
        ax.plot(xs, ys, style, color=f"C{i}", label=label, markersize=4 if len(xs) > 1 else 8)
    if budget is not None:
        ax.axvline(budget, color="0.5", ls="--", lw=1, label="budget")
    ax.set_xlabel("wall time of the arm (s)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    return _finish(fig, path)
