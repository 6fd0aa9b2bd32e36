"""A seeded deapnn.evolve run that can kill its own process (SIGKILL) at a chosen point.

Usage: python tests/resume_script.py MODE FOLDER NGEN [KILL AT]

MODE is ``ga`` (make_toolbox(novel=True), MultiStatistics, eaSimple-style) or ``es`` (OpenAIES
through generate_update, with an evaluation cache). FOLDER gets the checkpoint ``run.pkl``, its
store ``run.pkl.sqlite``, ``evaluations.log`` (one line per *finished* evaluation, appended by the
fitness function itself) and, when the run ends, ``result.pkl``. KILL is one of

* ``between`` -- SIGKILL right after the AT-th checkpoint was saved (between generations);
* ``mid`` -- SIGKILL at the start of the (AT+1)-th evaluation (mid-generation: AT finished);
* ``write`` -- SIGKILL while the AT-th checkpoint's temporary file is half written.

Used by tests/test_resume.py; the fitness functions are cheap and deterministic.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import sys
from pathlib import Path

import numpy as np
from deap import creator, tools

import deapnn
from deapnn.core import checkpoint as checkpoint_module
from deapnn.core.cache import EvaluationCache
from deapnn.hparams.space import IntRange, SearchSpace
from deapnn.weights.strategies import OpenAIES
from deapnn.weights.types import hall_of_fame

FOLDER: Path = Path(".")
KILL_EVALUATION: int | None = None  # kill at the start of evaluation number KILL_EVALUATION + 1
_evaluations = 0


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _log(key: str) -> None:
    with open(FOLDER / "evaluations.log", "a") as f:
        f.write(key + "\n")


def _before_evaluation() -> None:
    global _evaluations
    if KILL_EVALUATION is not None and _evaluations == KILL_EVALUATION:
        _kill()
    _evaluations += 1


class Quadratic:
    """``-sum((g - target)^2)`` over integer genes: many duplicates, so novelty matters."""

    target = (3, 7, 1, 8, 5)

    def __call__(self, genome):
        _before_evaluation()
        values = list(genome)
        _log(repr(values))
        return (-float(sum((v - t) ** 2 for v, t in zip(values, self.target))),)


def sphere(vector):
    _before_evaluation()
    x = np.asarray(vector, dtype=np.float64)
    _log(hashlib.sha256(np.asarray(vector, dtype=np.float32).tobytes()).hexdigest())
    return (-float(np.sum((x - 0.5) ** 2)),)


def _length(ind):
    return len(ind)


def _first(ind):
    return ind.fitness.values[0]


def ga(ngen: int):
    deapnn.seed(11)
    space = SearchSpace({f"g{i}": IntRange(0, 9) for i in range(5)})
    toolbox = deapnn.make_toolbox(space, Quadratic(), novel=True)
    fitness = tools.Statistics(_first)
    fitness.register("max", max)
    fitness.register("min", min)
    spread = tools.Statistics(_first)
    spread.register("avg", np.mean)
    stats = tools.MultiStatistics(fitness=fitness, spread=spread)
    hof = tools.HallOfFame(4)
    pop = toolbox.population(n=8)
    pop, log = deapnn.evolve(pop, toolbox, ngen, cxpb=0.6, mutpb=0.4, stats=stats, halloffame=hof,
                             checkpoint=FOLDER / "run.pkl")
    return pop, log, hof, None


def es(ngen: int):
    deapnn.seed(5)
    strategy = OpenAIES(np.zeros(6), sigma=0.1, lambda_=6, learning_rate=0.05)
    toolbox = _es_toolbox(strategy)
    hof = hall_of_fame(3)
    stats = tools.Statistics(_first)
    stats.register("max", max)
    pop, log = deapnn.evolve(None, toolbox, ngen, algorithm="generate_update", stats=stats, halloffame=hof,
                             checkpoint=FOLDER / "run.pkl")
    return pop, log, hof, strategy


def _es_toolbox(strategy):
    from deap import base

    toolbox = base.Toolbox()
    toolbox.cache = EvaluationCache(sphere)
    toolbox.register("evaluate", toolbox.cache)
    toolbox.register("map", toolbox.cache.map())
    toolbox.register("generate", strategy.generate, creator.WeightVector)
    toolbox.register("update", strategy.update)
    return toolbox


def _plain(value):
    """Arrays and tuples as nested lists, for an exact comparison in the test."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _records(logbook):
    return [{k: _plain(v) for k, v in r.items() if k != "elapsed"} for r in logbook]


def main(argv):
    global FOLDER, KILL_EVALUATION
    mode, FOLDER, ngen = argv[0], Path(argv[1]), int(argv[2])
    kill, at = (argv[3], int(argv[4])) if len(argv) > 3 else (None, None)
    if kill == "mid":
        KILL_EVALUATION = at
    elif kill == "between":
        save, count = checkpoint_module.save_checkpoint, [0]

        def save_then_kill(path, state):
            save(path, state)
            count[0] += 1
            if count[0] == at:
                _kill()

        checkpoint_module.save_checkpoint = save_then_kill
    elif kill == "write":
        write, count = checkpoint_module._write_bytes, [0]

        def write_half_then_kill(f, data):
            count[0] += 1
            if count[0] == at:
                f.write(data[: len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
                _kill()
            write(f, data)

        checkpoint_module._write_bytes = write_half_then_kill
    pop, log, hof, strategy = (ga if mode == "ga" else es)(ngen)
    result = {
        "population": [(_plain(list(ind)), ind.fitness.values) for ind in pop],
        "halloffame": [(_plain(list(ind)), ind.fitness.values) for ind in hof],
        "logbook": _records(log),
        "chapters": {name: _records(chapter) for name, chapter in log.chapters.items()},
        "stop_reason": log.stop_reason,
        "strategy": None if strategy is None else _plain(strategy.state()),
    }
    with open(FOLDER / "result.pkl", "wb") as f:
        pickle.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1:])
