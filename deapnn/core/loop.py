"""Run DEAP's own algorithms with checkpoints, resume and a progress bar.

:func:`evolve` does not reimplement a generation: it calls :func:`deap.algorithms.eaSimple`
or :func:`deap.algorithms.eaMuPlusLambda` with ``ngen=1`` once per generation and stitches
their logbooks together, saving a checkpoint between generations. Re-running the same call
after an interruption resumes from the checkpoint with every random state restored, so
the resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

from deap import algorithms, tools

from deapnn.core import seeding

ALGORITHMS = ("simple", "mu+lambda", "mu,lambda")


def _one_generation(population, toolbox, algorithm, cxpb, mutpb, mu, lambda_, stats, halloffame):
    if algorithm == "simple":
        return algorithms.eaSimple(population, toolbox, cxpb, mutpb, 1, stats, halloffame, verbose=False)
    ea = algorithms.eaMuPlusLambda if algorithm == "mu+lambda" else algorithms.eaMuCommaLambda
    return ea(population, toolbox, mu, lambda_, cxpb, mutpb, 1, stats, halloffame, verbose=False)


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Pickle ``state`` to ``path`` atomically (a crash mid-write leaves the old checkpoint)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        pickle.dump(state, f)
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`evolve`."""
    with open(path, "rb") as f:
        return pickle.load(f)


def evolve(
    population: list[Any],
    toolbox: Any,
    ngen: int,
    *,
    cxpb: float = 0.5,
    mutpb: float = 0.2,
    algorithm: str = "simple",
    mu: int | None = None,
    lambda_: int | None = None,
    stats: tools.Statistics | None = None,
    halloffame: tools.HallOfFame | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = False,
    verbose: bool = False,
) -> tuple[list[Any], tools.Logbook]:
    """Evolve ``population`` for ``ngen`` generations with one of DEAP's algorithms.

    Pseudocode::

        if checkpoint exists: restore population, generation g, hall of fame, logbook,
                              cache records and every RNG state
        while g < ngen:
            population = <DEAP algorithm>(population, toolbox, ngen=1, ...)
            g += 1; append the generation's record, with the evolution's wall time so far
                    ("elapsed", seconds, summed over resumed runs), to the logbook
            save checkpoint

    Args:
        population: The initial population (ignored when resuming from ``checkpoint``).
        toolbox: A toolbox with ``mate``, ``mutate``, ``select``, ``evaluate`` and ``map``.
        ngen: The total number of generations (counting any already in the checkpoint).
        cxpb, mutpb: As in DEAP.
        algorithm: ``"simple"`` (``eaSimple``), ``"mu+lambda"`` or ``"mu,lambda"``
            (need ``mu`` and ``lambda_``).
        stats, halloffame: As in DEAP; the hall of fame is updated in place (and restored in
            place on resume).
        checkpoint: Path of a pickle checkpoint written after every generation; if it exists,
            the run resumes from it.
        progress: Show a tqdm progress bar over generations.
        verbose: Print the logbook stream, as DEAP's ``verbose=True``.

    Returns:
        ``(population, logbook)`` as DEAP's algorithms return them.

    Randomness: Python's ``random`` (DEAP's operators) and numpy's generators; all are saved in
    and restored from the checkpoint.
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm != "simple" and (mu is None or lambda_ is None):
        raise ValueError(f"algorithm {algorithm!r} needs mu and lambda_, got mu={mu!r}, lambda_={lambda_!r}")
    if isinstance(ngen, bool) or not isinstance(ngen, int) or ngen < 0:
        raise ValueError(f"ngen must be a non-negative int, got {ngen!r}")
    cache = getattr(toolbox, "cache", None)
    logbook = tools.Logbook()
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint)
        population, start, logbook = state["population"], state["generation"], state["logbook"]
        if halloffame is not None and state["halloffame"] is not None:
            halloffame.clear()
            for ind in state["halloffame"]:
                halloffame.insert(ind)
        if cache is not None and state.get("cache") is not None:
            cache.load_state(state["cache"])
        seeding.set_state(state["rng"])

    elapsed = logbook[-1].get("elapsed", 0.0) if len(logbook) else 0.0
    clock = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=ngen, initial=start, desc="Evolving", unit="gen")
    try:
        for gen in range(start, ngen):
            population, lb = _one_generation(
                population, toolbox, algorithm, cxpb, mutpb, mu, lambda_, stats, halloffame
            )
            records = list(lb) if gen == 0 else list(lb)[1:]
            now = time.perf_counter()
            elapsed, clock = elapsed + now - clock, now
            for rec in records:  # generations 0 and 1 come from one call and share its time
                rec = dict(rec)
                rec["gen"] = rec["gen"] + gen
                rec["elapsed"] = elapsed
                logbook.record(**rec)
            if not logbook.header:
                logbook.header = lb.header
                logbook.chapters.update(lb.chapters)
            if verbose:
                print(logbook.stream)
            if checkpoint is not None:
                save_checkpoint(
                    checkpoint,
                    {
                        "population": population,
                        "generation": gen + 1,
                        "halloffame": list(halloffame) if halloffame is not None else None,
                        "logbook": logbook,
                        "cache": cache.state() if cache is not None else None,
                        "rng": seeding.get_state(),
                    },
                )
            if bar is not None:
                bar.update(1)
                if halloffame is not None and len(halloffame):
                    bar.set_postfix(best=halloffame[0].fitness.values)
    finally:
        if bar is not None:
            bar.close()
    return population, logbook
