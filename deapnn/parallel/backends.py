"""Evaluation backends: the ``map`` functions a toolbox evaluates populations with.

Three backends, chosen in one place (:func:`get_map` / :func:`register_backend`):

* ``"serial"`` -- this process, one task after the other;
* ``"processes"`` -- a :class:`~deapnn.parallel.pool.WorkerPool` of spawned
  local worker processes, with hard per-model time limits and recovery from
  dead workers;
* ``"scoop"`` -- ``scoop.futures.map`` over the workers of a
  ``python -m scoop`` run, on one host or many.

``"auto"`` picks ``"scoop"`` when the script runs under ``python -m scoop``,
else ``"processes"`` when more than one worker is asked for, else
``"serial"``, so the same script runs with and without SCOOP.

All backends ship the same unit of work, a chunk of individuals evaluated by
:func:`deapnn.parallel.worker.run_task`, and sort what goes wrong as
:mod:`deapnn.core.failures` says:

* the evaluator raised for one individual: a :class:`~deapnn.core.failures.Failure`
  (``kind="genome"``) carrying the reason;
* a time limit or a dead worker (after ``retries``): a ``Failure`` with
  ``kind="infrastructure"``, which a cache does not keep as the genome's answer;
* a setup error -- an evaluator that cannot be pickled here (nothing is sent) or
  unpickled in a worker (the worker sends the error back and lives on), or a
  :class:`~deapnn.core.failures.SetupError` raised by the evaluator (an unknown
  metric) -- raises :class:`SetupError` at once with the original message, on
  every backend. The serial backend pickles nothing, so only the last applies to it. Population
evaluators (``evaluate_population``, e.g. :class:`deapnn.weights.BatchedEvaluator`)
get one chunk per worker, evaluated in one batched call on the generation's
minibatch step; other evaluators get one individual per task (dynamic load
balancing of models that train for very different times).

No backend draws random numbers, and results come back in input order, so
with a deterministic evaluator a run gives the same population on every
backend for the same seed.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import pickle
import sys
import time
import warnings
import weakref
from typing import Any, Callable, Iterable, Sequence

import numpy

from deapnn.core.cache import EvaluationCache
from deapnn.core.failures import Failure, worst_values
from deapnn.parallel.pool import INLINE_BYTES, WorkerPool, pack
from deapnn.parallel.worker import (
    TaskError,
    cpu_count,
    is_batched,
    open_results,
    run_shipped_task,
    run_task,
    unwrap,
)

logger = logging.getLogger("deapnn.parallel")

#: Backend names accepted by :func:`get_map` and :func:`register_backend`.
BACKENDS: tuple[str, ...] = ("auto", "serial", "processes", "scoop")

#: Environment variable read when ``backend=None``: lets a user switch a
#: script's backend without editing it (``DEAPNN_BACKEND=processes``).
BACKEND_VARIABLE = "DEAPNN_BACKEND"


class EvaluationError(RuntimeError):
    """An evaluation failed and no failure fitness was known to record it with.

    Pass ``failure=`` to the backend, give the evaluator a ``failure_fitness``
    attribute, or register the backend on a toolbox whose individuals have a
    fitness, and the failure becomes a recorded :class:`Failure` instead.
    """


def scoop_running() -> bool:
    """Whether this process is a worker (or the origin) of a ``python -m scoop`` run.

    Reads SCOOP's own flag (``scoop.IS_RUNNING``, set by its bootstrap) without
    importing SCOOP when the script was started without it.
    """
    scoop = sys.modules.get("scoop")
    return bool(scoop is not None and getattr(scoop, "IS_RUNNING", False))


def scoop_workers() -> int:
    """Number of workers of the current SCOOP run (1 when not under SCOOP)."""
    scoop = sys.modules.get("scoop")
    return int(getattr(scoop, "SIZE", 1) or 1) if scoop_running() else 1


def resolve_backend(backend: str | None = "auto", workers: int | None = None) -> str:
    """The concrete backend name ``backend`` stands for.

    Args:
        backend: One of :data:`BACKENDS`, or ``None`` to read ``DEAPNN_BACKEND``
            (default ``"auto"``).
        workers: Workers asked for; ``"auto"`` becomes ``"processes"`` when
            this is more than 1 (and SCOOP is not running).

    Returns:
        ``"serial"``, ``"processes"`` or ``"scoop"``.

    Raises:
        ValueError: For an unknown backend name.
    """
    if backend is None:
        backend = os.environ.get(BACKEND_VARIABLE, "auto")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend != "auto":
        return backend
    if scoop_running():
        return "scoop"
    return "processes" if workers is not None and workers > 1 else "serial"


def _check_positive(name: str, value: Any, kind: type | tuple[type, ...] = int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


class BackendMap:
    """Base of the backend maps: ``map(func, individuals) -> list of fitnesses``.

    Subclasses only say how a list of chunks is run (:meth:`run_chunks`);
    splitting into chunks and turning errors into failures happen here.

    Args:
        workers: Workers the backend evaluates on (sets the default chunking).
        chunksize: Individuals per task. Default: one per task for ordinary
            evaluators (dynamic load balancing of uneven models), and for
            population evaluators (``evaluate_population``) an even split into one
            chunk per worker.
        failure: Fitness values recorded for a failed evaluation. Default:
            the evaluator's declared values (:func:`evaluator_failure`), else the worst
            values for the fitness weights of the toolbox the backend was
            registered on, else an :class:`EvaluationError` is raised.

    Attributes:
        calls, tasks, individuals, failures: Counters over this map's life.
        last_seconds: Wall time of the last call.
    """

    name = "base"

    def __init__(
        self,
        *,
        workers: int = 1,
        chunksize: int | None = None,
        failure: Sequence[float] | None = None,
    ) -> None:
        _check_positive("workers", workers)
        _check_positive("chunksize", chunksize)
        self.workers = workers
        self.chunksize = chunksize
        self.failure = None if failure is None else tuple(float(v) for v in failure)
        self.default_failure: tuple[float, ...] | None = None
        self.calls = self.tasks = self.individuals = self.failures = 0
        self.last_seconds = 0.0
        self._packed: dict[int, tuple[Any, Any, tuple[str, bytes]]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(workers={self.workers}, chunksize={self.chunksize})"

    def __call__(self, func: Callable[..., Any], *iterables: Iterable[Any]) -> list[Any]:
        """Evaluate ``func`` on every individual; results in input order.

        A population evaluator (:func:`~deapnn.parallel.worker.is_batched`)
        is first advanced to its next minibatch (``func.next_step()``, once
        per call, as :class:`deapnn.weights.BatchedMap` does), then its chunks
        are evaluated on that step.
        """
        if len(iterables) != 1:
            # Several iterables (builtin map semantics) are unusual for evaluation: pair them up.
            return self(_Star(func), list(zip(*iterables)))
        start = time.perf_counter()
        items = list(iterables[0])
        if not items:
            return []
        step = None
        if is_batched(func) and callable(getattr(unwrap(func), "next_step", None)):
            step = unwrap(func).next_step()
        chunks = self.chunk(func, items)
        results = self.run_chunks(func, chunks, step)
        out = [self._resolve(func, r) for chunk in results for r in chunk]
        self.calls += 1
        self.tasks += len(chunks)
        self.individuals += len(items)
        self.last_seconds = time.perf_counter() - start
        return out

    def chunk(self, func: Callable[..., Any], items: list[Any]) -> list[Any]:
        """Split ``items`` into the tasks this backend ships (see ``chunksize``).

        Chunks for a population evaluator are stacked into one ``(k, n)``
        array when the individuals are equal-length numpy vectors: one buffer
        to pickle instead of ``k`` objects.
        """
        size = self.chunksize
        batched = is_batched(func)
        if size is None:
            size = math.ceil(len(items) / self.workers) if batched else 1
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        if batched and all(isinstance(x, numpy.ndarray) and x.ndim == 1 for x in items):
            if len({x.shape for x in items}) == 1:
                return [numpy.stack([numpy.asarray(x) for x in chunk]) for chunk in chunks]
        return chunks

    def run_chunks(self, func: Callable[..., Any], chunks: list[Any], step: int | None = None) -> list[list[Any]]:
        """Evaluate each chunk; one result (fitness or TaskError) per individual."""
        raise NotImplementedError

    def pack(self, func: Callable[..., Any]) -> tuple[str, bytes]:
        """``(token, pickle_bytes)`` of ``func``, memoised for population evaluators.

        A population evaluator carries its data (a weight experiment's
        training set), so it is pickled once, not once per generation: the
        memo is keyed on the object and a shallow fingerprint of its
        attributes (arrays by identity), ignoring ``step``, which travels
        with every task instead.
        """
        if not is_batched(func):
            return pack(func)
        func = unwrap(func)
        fingerprint = _fingerprint(func)
        memo = self._packed.get(id(func))
        if memo is not None and memo[0]() is func and memo[1] == fingerprint:
            return memo[2]
        packed = pack(func)
        if len(self._packed) >= 4:
            self._packed.pop(next(iter(self._packed)))
        try:
            self._packed[id(func)] = (weakref.ref(func), fingerprint, packed)
        except TypeError:  # not weak-referenceable: don't memoise
            pass
        return packed

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_packed": {}}

    def close(self) -> None:
        """Release the backend's workers (a no-op for serial and SCOOP)."""

    def __enter__(self) -> "BackendMap":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _resolve(self, func: Callable[..., Any], result: Any) -> Any:
        if not isinstance(result, TaskError):
            return result
        self.failures += 1
        values = self.failure
        if values is None:
            values = evaluator_failure(func)
        if values is None:
            values = self.default_failure
        if values is None:
            raise EvaluationError(
                f"an evaluation failed ({result.reason}) and no failure fitness is known; "
                "pass failure=... to the backend"
            )
        return Failure(tuple(values), result.reason, result.kind)


def evaluator_failure(func: Any) -> tuple[float, ...] | None:
    """The failure fitness an evaluator declares: its ``failure_fitness`` or ``failure`` values.

    :class:`deapnn.keras.evaluator.KerasEvaluator` exposes ``failure``,
    :class:`deapnn.weights.BatchedEvaluator` ``failure_value`` (one number);
    any evaluator can declare ``failure_fitness``. Returns None when none of
    them is set.
    """
    func = unwrap(func)
    if isinstance(func, EvaluationCache):
        func = unwrap(func.evaluate)
    value = getattr(func, "failure_value", None)  # deapnn.weights.BatchedEvaluator
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),)
    for name in ("failure_fitness", "failure"):
        values = getattr(func, name, None)
        if isinstance(values, (tuple, list)) and values:
            try:
                return tuple(float(v) for v in values)
            except (TypeError, ValueError):
                continue
    return None


class SerialMap(BackendMap):
    """Evaluate in this process: the reference every other backend must match."""

    name = "serial"

    def __init__(self, *, chunksize: int | None = None, failure: Sequence[float] | None = None) -> None:
        super().__init__(workers=1, chunksize=chunksize, failure=failure)

    def run_chunks(self, func: Callable[..., Any], chunks: list[Any], step: int | None = None) -> list[list[Any]]:
        return [run_task(func, chunk, step) for chunk in chunks]


class ProcessMap(BackendMap):
    """Evaluate on spawned local worker processes (:class:`~deapnn.parallel.pool.WorkerPool`).

    The pool starts on the first call and lives until :meth:`close` (or exit),
    so workers import TensorFlow and load their data once per run. Pickling a
    ``ProcessMap`` keeps its settings and drops its processes. As with any
    spawn-based pool, a script must start its run under
    ``if __name__ == "__main__":`` (workers re-import the main module), and
    evaluators and creator types must be importable from a module.

    Args:
        workers: Worker processes; default: the cores this process may use.
        timeout: Hard time limit per individual, in seconds; a task over its
            limit has its worker killed and its individuals failed.
        retries: Times a task is re-run after its worker died.
        threads: Compute threads per worker; default ``cores // workers``.
        chunksize, failure: See :class:`BackendMap`.
    """

    name = "processes"

    def __init__(self, workers: int | None = None, *, timeout: float | None = None, retries: int = 1,
                 threads: int | None = None, **options: Any) -> None:
        super().__init__(workers=cpu_count() if workers is None else workers, **options)
        self.timeout, self.retries, self.threads = timeout, retries, threads
        self._pool: WorkerPool | None = None
        self.pool  # validate the pool settings now, start the processes later

    @property
    def pool(self) -> WorkerPool:
        """The worker pool (created, not yet started, on first access)."""
        if self._pool is None:
            self._pool = WorkerPool(self.workers, threads=self.threads, timeout=self.timeout, retries=self.retries)
        return self._pool

    def __repr__(self) -> str:
        return f"ProcessMap(workers={self.workers}, timeout={self.timeout}, retries={self.retries})"

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "_pool": None}

    def run_chunks(self, func: Callable[..., Any], chunks: list[Any], step: int | None = None) -> list[list[Any]]:
        return self.pool.run(func, chunks, step=step, packed=self.pack(func))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


class ScoopMap(BackendMap):
    """Evaluate with ``scoop.futures.map`` on the workers of a ``python -m scoop`` run.

    The evaluator is pickled once per call and unpickled once per worker
    (workers keep it by content hash), so its lazily loaded dataset is loaded
    once per worker, not once per task. Outside SCOOP it evaluates serially,
    with a warning, like SCOOP itself.

    SCOOP cannot stop a running task, so ``timeout`` is not supported here
    (use the evaluator's own training time limit), and a SCOOP worker that
    dies takes the run down with it; use the ``"processes"`` backend when
    models may hang or crash the interpreter.

    Args:
        workers: Used for chunking; default: the SCOOP run's worker count.
        chunksize, failure: See :class:`BackendMap`.
    """

    name = "scoop"

    def __init__(self, workers: int | None = None, **options: Any) -> None:
        super().__init__(workers=scoop_workers() if workers is None else workers, **options)

    def run_chunks(self, func: Callable[..., Any], chunks: list[Any], step: int | None = None) -> list[list[Any]]:
        if not scoop_running():
            warnings.warn("SCOOP is not running (start with `python -m scoop`); evaluating serially",
                          RuntimeWarning, stacklevel=3)
            return [run_task(func, chunk, step) for chunk in chunks]
        from scoop import futures, shared

        token, blob = self.pack(func)
        if len(blob) <= INLINE_BYTES:
            shipment: tuple[str, str, Any] = ("blob", token, blob)
        else:
            name = f"deapnn_{token}"
            if name not in _PUBLISHED:  # a SCOOP constant is set once per run, sent once per worker
                shared.setConst(**{name: blob})
                _PUBLISHED.add(name)
            shipment = ("const", token, name)
        tasks = [pickle.dumps(list(chunk), protocol=pickle.HIGHEST_PROTOCOL) for chunk in chunks]
        envelopes = futures.map(run_shipped_task, [shipment] * len(chunks), tasks, [step] * len(chunks))
        return [open_results(envelope, len(chunk)) for envelope, chunk in zip(envelopes, chunks)]


_PUBLISHED: set[str] = set()


def _fingerprint(obj: Any) -> tuple[Any, ...]:
    """A shallow fingerprint of what pickling ``obj`` ships: the state its ``__getstate__``
    returns (so caches it leaves out, e.g. an evaluator's tensors of the current minibatch,
    rebuilt in the master every generation, do not force a re-ship), values of plain types
    by value, everything else by identity; ``step`` is left out (it travels with every task)."""
    parts: list[Any] = [type(obj)]
    state = getattr(obj, "__dict__", {})
    getstate = getattr(obj, "__getstate__", None)
    if getstate is not None:
        shipped = getstate()
        if isinstance(shipped, dict):
            state = shipped
    for name, value in sorted(state.items()):
        if name == "step":
            continue
        if isinstance(value, (bool, int, float, str, bytes, type(None))):
            parts.append((name, value))
        else:
            parts.append((name, id(value)))
    return tuple(parts)


class _Star:
    """``func(*args)`` as a one-argument picklable callable (multi-iterable ``map``)."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def __call__(self, args: tuple[Any, ...]) -> Any:
        return self.func(*args)


def get_map(
    backend: str | None = "auto",
    *,
    workers: int | None = None,
    timeout: float | None = None,
    retries: int = 1,
    threads: int | None = None,
    chunksize: int | None = None,
    failure: Sequence[float] | None = None,
) -> BackendMap:
    """Build the ``map`` of an evaluation backend.

    Args:
        backend: ``"auto"`` (default), ``"serial"``, ``"processes"``,
            ``"scoop"``, or ``None`` to read ``DEAPNN_BACKEND``; see
            :func:`resolve_backend`.
        workers: Worker processes for ``"processes"`` (default: all cores);
            for SCOOP the run's own ``-n`` decides and this only sets chunking.
        timeout: Hard per-individual time limit in seconds (``"processes"``
            only; ignored with a warning elsewhere).
        retries: Re-runs of a task whose worker died (``"processes"``).
        threads: Compute threads per worker process (default ``cores // workers``).
        chunksize: Individuals per task (default: 1, or one chunk per worker
            for batched evaluators).
        failure: Fitness values for failed evaluations (see :class:`BackendMap`).

    Returns:
        A picklable ``map(func, iterable) -> list`` callable; no randomness is
        drawn, and results are in input order whatever the backend.

    Raises:
        ValueError: For an unknown backend or invalid numbers.
    """
    name = resolve_backend(backend, workers)
    _check_positive("timeout", timeout, (int, float))
    if name != "processes":
        if timeout is not None:
            warnings.warn(f"timeout is only enforced by the 'processes' backend, not {name!r}",
                          RuntimeWarning, stacklevel=2)
        if name == "serial":
            return SerialMap(chunksize=chunksize, failure=failure)
        return ScoopMap(workers, chunksize=chunksize, failure=failure)
    return ProcessMap(workers, timeout=timeout, retries=retries, threads=threads,
                      chunksize=chunksize, failure=failure)


def _toolbox_failure(toolbox: Any) -> tuple[float, ...] | None:
    """Worst fitness values for the individuals ``toolbox.individual`` builds, if discoverable."""
    factory = getattr(toolbox, "individual", None)
    candidates = list(getattr(factory, "args", ())) + list(getattr(factory, "keywords", {}).values())
    for candidate in candidates:
        fitness = getattr(candidate, "fitness", None)
        weights = getattr(fitness, "weights", None)
        if isinstance(candidate, type) and weights:
            return worst_values(weights)
    return None


def register_backend(toolbox: Any, backend: str | BackendMap | None = "auto", **options: Any) -> BackendMap:
    """Register ``toolbox.map`` to evaluate with a backend; the one call that makes a run parallel.

    When the toolbox has an :class:`~deapnn.core.cache.EvaluationCache` (``toolbox.cache``),
    the map is ``toolbox.cache.map(backend_map)``: lookups and de-duplication
    stay on the master and only distinct misses are shipped. Failed
    evaluations default to the worst values for the toolbox's fitness weights.

    Example:
        >>> toolbox = make_toolbox(space, evaluator)        # doctest: +SKIP
        >>> register_backend(toolbox, "processes", workers=2, timeout=600)  # doctest: +SKIP
        >>> # or, for a script started with or without `python -m scoop`:
        >>> register_backend(toolbox)                       # doctest: +SKIP

    Args:
        toolbox: A ``deap.base.Toolbox``. If its current ``map`` is a wrapper with a
            ``rewrap(map)`` method (:class:`deapnn.weights.minibatch.HonestMap`,
            :class:`deapnn.core.fidelity.FidelityMap`), the wrapper is kept around the new map.
        backend: A backend name (see :func:`get_map`), or an existing
            :class:`BackendMap` to share its workers between toolboxes (the
            other arguments are then ignored).
        **options: ``workers``, ``timeout``, ``retries``, ``threads``, ``chunksize``,
            ``failure``: see :func:`get_map` (an unknown name is a ``TypeError``).

    Returns:
        The backend map (call ``.close()`` on it, or use it as a context
        manager, to stop process workers before the end of the program).
    """
    if isinstance(backend, BackendMap):
        mapper = backend
    else:
        mapper = get_map(backend, **options)
    if mapper.default_failure is None:
        mapper.default_failure = _toolbox_failure(toolbox)
    cache = getattr(toolbox, "cache", None)
    registered = cache.map(mapper) if isinstance(cache, EvaluationCache) else mapper
    current = getattr(toolbox, "map", None)
    while isinstance(current, functools.partial) and not current.args and not current.keywords:
        current = current.func  # toolbox.register wraps what it registers in a partial
    rewrap = getattr(current, "rewrap", None)
    if callable(rewrap):  # a map wrapper (honest minibatch fitness, multi-fidelity) stays on top
        registered = rewrap(registered)
    toolbox.register("map", registered)
    logger.info("evaluation backend: %r", mapper)
    return mapper
