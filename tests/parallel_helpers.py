"""Evaluators and small runs shared by tests/test_parallel.py and the scripts it starts.

Everything here is module-level so it pickles into spawned and SCOOP workers. The runs return
plain data (values and fitnesses) so a run in another process can be compared with one here.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
import threading
import time
from typing import Any

from deapnn.core import seeding
from deapnn.core.loop import evolve
from deapnn.parallel import register_backend
from deapnn.hparams.space import IntRange, SearchSpace
from deapnn.hparams.toolbox import make_toolbox

#: A tiny non-Keras space for the failure tests: genomes (a, b), fitness a + 10 b.
TOY_SPACE = SearchSpace({"a": IntRange(0, 5), "b": IntRange(0, 5)})


class ToyEvaluator:
    """``(a + 10 b,)``, except: ``a == raise_on`` raises; ``a == kill_on`` SIGKILLs its worker
    (every time); ``a == kill_once_on`` SIGKILLs its worker the first time only (a marker file
    remembers); ``a == hang_on`` sleeps for an hour."""

    failure_fitness = (-1.0,)

    def __init__(self, marker: str = "", raise_on: int = -1, kill_on: int = -1,
                 kill_once_on: int = -1, hang_on: int = -1, kill_times: int = 0) -> None:
        self.marker, self.raise_on, self.kill_on = marker, raise_on, kill_on
        self.kill_once_on, self.hang_on, self.kill_times = kill_once_on, hang_on, kill_times

    def __call__(self, genome: Any) -> tuple[float]:
        a, b = genome[0], genome[1]
        if a == self.raise_on:
            raise ValueError(f"cannot evaluate a={a}")
        if a == self.kill_on:
            os.kill(os.getpid(), signal.SIGKILL)
        if a == self.kill_once_on and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        if a == self.hang_on:
            time.sleep(3600)
        if self.kill_times:  # SIGKILL the worker the first kill_times times (a transient fault)
            deaths = os.path.getsize(self.marker) if os.path.exists(self.marker) else 0
            if deaths < self.kill_times:
                with open(self.marker, "a") as f:
                    f.write("x")
                os.kill(os.getpid(), signal.SIGKILL)
        return (float(a + 10 * b),)


class Unpicklable(ToyEvaluator):
    """A ToyEvaluator holding a lock: it cannot be pickled, so it cannot go to a worker."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()


def _import_missing_plugin() -> Any:
    return importlib.import_module("deapnn_missing_plugin")


class NeedsMissingModule(ToyEvaluator):
    """Pickles fine, but unpickling it imports a module no worker has (as a plugin only the
    master's path holds would)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_import_missing_plugin, ())


def digits_evaluator(**kwargs: Any) -> Any:
    """A KerasEvaluator on digits (loaded lazily, in the worker) with ``kwargs``."""
    from deapnn.keras.evaluator import KerasEvaluator

    return KerasEvaluator(functools.partial(_digits), **kwargs)


def two_argument_builder(genome: Any, input_shape: Any) -> Any:
    """A builder written for another library: no ``n_classes``."""
    raise AssertionError("never called: the evaluator refuses it")


def where(_: Any) -> tuple[int, str]:
    """Which process (and over which ssh connection, if any) ran this task."""
    time.sleep(0.2)
    return os.getpid(), os.environ.get("SSH_CONNECTION", "local")


def _digits():
    from deapnn.data import load_digits

    return load_digits(seed=0)


def hyper_run(backend: Any = "serial", workers: int | None = None, *, seed: int = 7,
              n: int = 4, ngen: int = 1) -> dict[str, Any]:
    """A tiny hyperparameter evolution (MLPs on digits, 1 epoch); genomes and fitnesses.

    ``backend`` is a backend name (its map is closed at the end) or a shared backend map.
    """
    from deapnn.keras.models import mlp_space
    from deapnn.keras import KerasEvaluator

    space = mlp_space(layers=1, neurons=(8, 16), dropout=(0.0, 0.2), input_dropout=(0.0,),
                      batch_size=(128,), batch_norm=(False,), optimizer=("adam",))
    evaluator = KerasEvaluator(functools.partial(_digits), max_epochs=1)
    toolbox = make_toolbox(space, evaluator)
    backend_map = register_backend(toolbox, backend, workers=workers)
    seeding.seed(seed)
    population = toolbox.population(n=n)
    try:
        population, _ = evolve(population, toolbox, ngen, cxpb=0.5, mutpb=0.5)
    finally:
        if isinstance(backend, str):
            backend_map.close()
    return {
        "backend": backend_map.name,
        "population": [g.as_dict() for g in population],
        "fitness": [tuple(g.fitness.values) for g in population],
        "records": sorted((repr(k), tuple(v)) for k, v in toolbox.cache.records.items()),
    }


def weight_run(backend: Any = "serial", workers: int | None = None, *, seed: int = 7,
               n: int = 10, ngen: int = 2) -> dict[str, Any]:
    """A tiny weight evolution (8x8-16-10 MLP on digits, batched evaluation)."""
    from deap import algorithms

    from deapnn.weights import BatchedEvaluator, NetworkSpec, make_weight_toolbox

    data = _digits()
    evaluator = BatchedEvaluator(NetworkSpec.mlp((8, 8), [16], 10), data.x_train, data.y_train,
                                 batch_size=128)
    toolbox = make_weight_toolbox(evaluator, evaluator)
    backend_map = register_backend(toolbox, backend, workers=workers)
    seeding.seed(seed)
    population = toolbox.population(n=n)
    tasks = backend_map.tasks
    try:
        population, _ = algorithms.eaSimple(population, toolbox, 0.5, 0.5, ngen, verbose=False)
    finally:
        if isinstance(backend, str):
            backend_map.close()
    return {
        "backend": backend_map.name,
        "tasks": backend_map.tasks - tasks,
        "population": [ind.tolist() for ind in population],
        "fitness": [tuple(ind.fitness.values) for ind in population],
    }


class SlowEvaluator:
    """``(x,)`` after sleeping ``seconds``: a model long enough to kill its worker mid-way."""

    failure_fitness = (-1.0,)

    def __init__(self, seconds: float, started: str = "") -> None:
        self.seconds, self.started = seconds, started

    def __call__(self, x: float) -> tuple[float]:
        if self.started:  # say which process started evaluating (a file named by its pid)
            open(os.path.join(self.started, str(os.getpid())), "w").close()
        time.sleep(self.seconds)
        return (float(x),)


def thread_settings(_: Any) -> tuple[str | None, ...]:
    """The thread limits this worker process runs under."""
    return tuple(os.environ.get(name) for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                                                   "TF_NUM_INTEROP_THREADS"))
