"""What runs inside an evaluation worker, whichever backend started it.

Every backend ships the same unit of work: a *task*, i.e. one evaluation
function and a short list of individuals (a chunk). :func:`run_task` evaluates
a chunk either one individual at a time or, when the function has an
``evaluate_population`` method (the weight-vector evaluators), all at once, and
turns an exception into a :class:`TaskError` carrying the reason, so one bad
model never takes a worker or the run down with it. A
:class:`~deapnn.core.failures.SetupError` is not a model's failure and is
never turned into one.

The ``"processes"`` and ``"scoop"`` backends run :func:`run_shipped_task` in
their workers: function and individuals arrive as pickle bytes, and everything
that goes wrong -- including unpickling them -- comes back as a value that
:func:`open_results` reads on the master (raising ``SetupError`` for setup
errors), so a worker never dies of a bad shipment.

The module imports neither TensorFlow nor Keras: evaluators import them lazily
on their first call, after :func:`configure_threads` has fixed the number of
threads the worker may use.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from deapnn.core.failures import SetupError

logger = logging.getLogger("deapnn.parallel")

#: Environment variables that bound the threads of TensorFlow and the BLAS
#: libraries numpy and TensorFlow link against. They are read once, when the
#: library initialises, so they must be set before TensorFlow is imported.
THREAD_VARIABLES: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)

#: Set this to the number of threads each evaluation worker may use; it
#: overrides the ``cores // workers`` default (useful for SCOOP runs over hosts
#: whose core counts differ).
THREADS_VARIABLE = "DEAPNN_WORKER_THREADS"

_configured = False
_functions: dict[str, Callable[..., Any]] = {}


@dataclass(frozen=True)
class TaskError:
    """An evaluation that produced no fitness, and why.

    Workers return it in place of a fitness; the master turns it into a
    :class:`deapnn.core.failures.Failure` once it knows the failure values.

    Attributes:
        reason: One line saying what went wrong (exception type and message,
            time limit, dead worker).
        kind: ``"genome"`` (the evaluator raised for this individual) or
            ``"infrastructure"`` (a time limit or a dead worker: evaluated again
            on resume); the kind of the :class:`~deapnn.core.failures.Failure`.
    """

    reason: str
    kind: str = "genome"


def cpu_count() -> int:
    """Number of cores this process may run on (its CPU affinity, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Threads each of ``workers`` workers may use so they don't oversubscribe ``cores``.

    Args:
        workers: Workers sharing this machine.
        cores: Cores to share; defaults to :func:`cpu_count`.

    Returns:
        ``max(1, cores // workers)``, or the value of ``DEAPNN_WORKER_THREADS``
        when that variable is set.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    override = os.environ.get(THREADS_VARIABLE)
    if override:
        return max(1, int(override))
    return max(1, (cpu_count() if cores is None else cores) // workers)


def thread_environment(threads: int) -> dict[str, str]:
    """Environment variables limiting a worker to ``threads`` compute threads.

    Inter-op parallelism is capped at 2 (TensorFlow runs few independent ops
    at once in the small models deapnn trains) and never exceeds ``threads``.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    env = {name: str(threads) for name in THREAD_VARIABLES}
    env["TF_NUM_INTEROP_THREADS"] = str(min(threads, 2))
    return env


def configure_threads(threads: int | None = None, workers: int | None = None) -> int:
    """Limit this worker process's compute threads, once, before TensorFlow loads.

    Sets the variables of :func:`thread_environment` that the user has not set
    themselves. If TensorFlow is already imported (for instance by the user's
    script at module level) it also tries TensorFlow's own threading setters,
    which only work before its runtime has started; either way the call never
    fails.

    Args:
        threads: Threads for this worker; by default ``cores // workers``.
        workers: Workers on this machine, for the default; by default the
            SCOOP worker count when running under SCOOP, else 1.

    Returns:
        The number of threads chosen.
    """
    global _configured
    if threads is None:
        if workers is None:
            scoop = sys.modules.get("scoop")
            workers = int(getattr(scoop, "SIZE", 1) or 1) if scoop is not None else 1
        threads = threads_per_worker(max(1, min(workers, cpu_count())))
    if _configured:
        return threads
    _configured = True
    for name, value in thread_environment(threads).items():
        os.environ.setdefault(name, value)
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
        except (RuntimeError, AttributeError):
            logger.debug("TensorFlow already initialised; thread limits not applied")
    return threads


def unwrap(func: Any) -> Any:
    """``func`` without argument-less ``functools.partial`` layers (what ``toolbox.register`` adds)."""
    while isinstance(func, functools.partial) and not func.args and not func.keywords:
        func = func.func
    return func


def is_batched(func: Callable[..., Any]) -> bool:
    """Whether ``func`` evaluates a whole chunk at once (the population-evaluator protocol).

    A population evaluator, like :class:`deapnn.weights.BatchedEvaluator`, has
    ``evaluate_population(individuals, step=None) -> list of fitnesses`` and
    optionally ``next_step() -> int``, which the master calls once per ``map``
    call (once per generation) and whose result is passed as ``step`` with
    every chunk, so all chunks of a generation see the same minibatch.
    """
    return callable(getattr(unwrap(func), "evaluate_population", None))


def describe(exc: BaseException) -> str:
    """One-line reason for an exception: its type, message and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}{where}" if message else f"{type(exc).__name__}{where}"


def run_task(func: Callable[..., Any], items: Sequence[Any], step: int | None = None) -> list[Any]:
    """Evaluate one chunk; the unit of work every backend ships to a worker.

    Args:
        func: The evaluation function. A population evaluator (see
            :func:`is_batched`) evaluates the chunk in one call,
            ``func.evaluate_population(items, step)``; any other function is
            called as ``func(item)`` for each item in turn.
        items: The individuals of this chunk (for a population evaluator, a
            ``(k, n)`` matrix of weight vectors also works).
        step: The minibatch step of a population evaluator (None: its own).

    Returns:
        One entry per item: the fitness returned by ``func`` or a
        :class:`TaskError` when it raised (for a batched call, every item of
        the chunk gets the error). No randomness is drawn here.

    Raises:
        SetupError: Raised by ``func`` (the run is set up wrong, not this
            individual): never turned into a fitness.
    """
    if is_batched(func):
        func = unwrap(func)
        try:
            if step is None:
                results = list(func.evaluate_population(items))
            else:
                results = list(func.evaluate_population(items, step))
        except SetupError:
            raise
        except Exception as exc:  # recorded as a failure fitness, not hidden
            logger.warning("batched evaluation of %d individuals failed: %s", len(items), describe(exc))
            return [TaskError(f"batch of {len(items)} failed: {describe(exc)}")] * len(items)
        if len(results) != len(items):
            error = TaskError(
                f"evaluate_population returned {len(results)} fitnesses for {len(items)} individuals"
            )
            return [error] * len(items)
        return results
    out: list[Any] = []
    for item in items:
        try:
            out.append(func(item))
        except SetupError:
            raise
        except Exception as exc:  # recorded as a failure fitness, not hidden
            logger.warning("evaluation failed: %s", describe(exc))
            out.append(TaskError(describe(exc)))
    return out


def run_shipped_task(shipment: tuple[str, str, Any], items: bytes, step: int | None = None) -> tuple[str, Any]:
    """:func:`run_task` in a worker, for a function and items shipped as bytes.

    The unit of work of the ``"processes"`` and ``"scoop"`` backends. Nothing here raises: what
    goes wrong comes back to the master, which reads it with :func:`open_results`.

    Args:
        shipment: How the function travels: ``("blob", token, pickle_bytes)`` inline,
            ``("file", token, path)`` for a large one written once to a file, or
            ``("const", token, name)`` for one published once as a SCOOP shared constant
            (``scoop.shared.setConst``). It is unpickled once per process and per token, so an
            evaluator's lazily loaded state (its dataset, compiled graph) survives from one
            task, and one generation, to the next.
        items: The pickled list of individuals.
        step: See :func:`run_task`.

    Returns:
        ``("done", pickled_results)``, or ``("setup", reason)`` when the function or the items
        could not be unpickled here or the function raised a :class:`SetupError`.
    """
    configure_threads()  # a no-op in a pool worker; a SCOOP worker takes its share of the cores
    kind, token, payload = shipment
    try:
        func = _functions.get(token)
        if func is None:
            if kind == "const":
                from scoop import shared

                payload = shared.getConst(payload, timeout=600)
            elif kind == "file":
                with open(payload, "rb") as f:
                    payload = f.read()
            func = _functions[token] = pickle.loads(payload)
            while len(_functions) > 8:
                _functions.pop(next(iter(_functions)))
    except Exception as exc:
        return ("setup", f"the evaluator could not be unpickled in worker process {os.getpid()}: "
                         f"{describe(exc)}")
    try:
        chunk = pickle.loads(items)
    except Exception as exc:
        return ("setup", f"the individuals could not be unpickled in worker process "
                         f"{os.getpid()} (are their creator types defined at import time?): "
                         f"{describe(exc)}")
    try:
        results = run_task(func, chunk, step)
    except SetupError as exc:
        return ("setup", str(exc))
    try:
        return ("done", pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:  # an unpicklable fitness: report it, don't die
        error = TaskError(f"result could not be sent: {describe(exc)}")
        return ("done", pickle.dumps([error] * len(chunk)))


def open_results(envelope: tuple[str, Any], size: int) -> list[Any]:
    """The results of :func:`run_shipped_task`, on the master.

    Args:
        envelope: What :func:`run_shipped_task` returned.
        size: Number of individuals in the task.

    Returns:
        One fitness or :class:`TaskError` per individual.

    Raises:
        SetupError: For a setup error reported by the worker, with its message.
    """
    status, payload = envelope
    if status == "setup":
        raise SetupError(payload)
    try:
        results = pickle.loads(payload)
    except Exception as exc:  # the answer arrived but does not unpickle here
        return [TaskError(f"result could not be unpickled: {describe(exc)}")] * size
    return results


def worker_init(threads: int) -> None:
    """Set-up of a ``"processes"`` worker: its thread limits, then deapnn's creator types.

    The limits are already in the environment the worker started with (see
    :mod:`deapnn.parallel.pool`); this also applies TensorFlow's own setters should the user's
    ``__main__`` module have imported it.
    """
    configure_threads(threads)
    import deapnn  # noqa: F401  (creates deapnn's creator types so individuals unpickle)
