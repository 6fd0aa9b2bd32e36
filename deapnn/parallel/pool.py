"""Spawned worker processes with hard per-task timeouts and crash recovery, on ``pebble``.

:class:`WorkerPool` is a thin layer over :class:`pebble.ProcessPool`, which already does the
hard parts: a task over its time limit has its worker killed (SIGTERM, then SIGKILL) and
replaced, a worker that dies mid-task fails only that task (``ProcessExpired``) and is replaced,
and the other tasks go on. What this module adds is what training Keras models needs:

* **spawn, never fork** (forking a process that has imported TensorFlow copies its thread pools
  in a broken state), with each worker's **thread limits in the environment it starts with**, so
  they hold before anything -- even the user's ``__main__`` module, re-imported by spawn -- can
  import TensorFlow (a ``Process`` factory sets them around ``start()``, for replacements too);
* the evaluator **shipped once per worker**: it travels as pickle bytes named by their SHA-1
  (inline when small, else through a file written once), and each worker unpickles it once and
  keeps it, so its lazily loaded dataset is loaded once per worker, not once per task;
* **setup errors come back**: an evaluator (or individual) that cannot be unpickled in a worker,
  or a :class:`~deapnn.core.failures.SetupError` raised by the evaluator, is sent back and raised
  on the master as :class:`SetupError` with the original message -- the worker does not die;
* a dead worker's task is **retried** ``retries`` times, then failed as an infrastructure failure.

Why pebble rather than the hand-written pool (one pipe per worker, ``connection.wait`` on pipes
and sentinels) this module held until issue 10: both give the same results and the same
timeout/dead-worker behaviour (the same tests pass on both), and ``benchmarks/pool_overhead.py``
(2 workers on 2 shared cores, load average 2.0, median of 3; ``benchmarks/results/
pool_overhead.json``) measured:

===========================  ==========  ============
                             pebble      hand-written
===========================  ==========  ============
startup (first task)         0.65 s      0.48 s
trivial task, per task       0.12 ms     0.11 ms
~0.5 ms numpy task, per task 0.60 ms     0.57 ms
timeout of 0.5 s noticed     0.57 s      0.50 s
next task after a timeout    0.004 s     0.31 s
killed worker, task retried  0.09 s      0.30 s
===========================  ==========  ============

(An earlier run under load 4-5 gave 0.16 against 0.07 ms per trivial task, the rest alike.)
Pebble notices a timeout up to 0.1 s late (it polls) and may cost a few hundredths of a
millisecond more per task -- nothing next to a model's seconds of training -- and it is faster
after a timeout or a death: an idle worker takes the next task from pebble's shared queue instead
of the task waiting for the replacement to start. One quirk is handled here: pebble gives up its
whole pool when a worker dies while no task is known to run (``BrokenProcessPool``: "All workers
expired"); :meth:`WorkerPool.run` then starts a fresh pool and resubmits the tasks.

So pebble it is: the process bookkeeping (per-worker pipes, sentinels, deadlines, kills,
replacements) is pebble's, used and tested well beyond this project; what is left here is
deapnn's own policy (thread limits, shipping, retries, setup errors). Task payloads are bytes end
to end, so nothing that fails to (un)pickle can break pebble's own channel.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.process
import contextlib
import functools
import hashlib
import multiprocessing
import multiprocessing.context
import os
import pickle
import shutil
import tempfile
import threading
import weakref
from typing import Any, Callable, Iterator, Sequence

import pebble

from deapnn.core.failures import SetupError
from deapnn.parallel.worker import (
    TaskError,
    describe,
    open_results,
    run_shipped_task,
    thread_environment,
    threads_per_worker,
    worker_init,
)

_ENV_LOCK = threading.Lock()

#: Functions whose pickle is larger than this (bytes) go to workers through a file, written
#: once per pool, instead of inside every task.
INLINE_BYTES = 1 << 20


def pack(func: Callable[..., Any]) -> tuple[str, bytes]:
    """``(token, pickle_bytes)`` of a function: the token (a SHA-1 of the bytes) names it in workers.

    Raises:
        SetupError: If ``func`` cannot be pickled (nothing has been sent anywhere yet).
    """
    try:
        blob = pickle.dumps(func, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise SetupError(f"the evaluator {func!r} cannot be pickled to send it to worker "
                         f"processes: {type(exc).__name__}: {exc}") from exc
    return hashlib.sha1(blob).hexdigest(), blob


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Temporarily set environment variables (inherited by processes started inside)."""
    with _ENV_LOCK:
        saved = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


class _LimitedProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that starts with thread-limiting environment variables."""

    def __init__(self, *args: Any, environment: dict[str, str], on_start: Callable[[], None],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._environment = environment
        self._on_start = on_start

    def start(self) -> None:
        with _environment(self._environment):
            super().start()
        self._on_start()

    def __getstate__(self) -> dict[str, Any]:  # what spawn sends to the child
        return {**self.__dict__, "_on_start": None}


class _LimitedContext(multiprocessing.context.SpawnContext):
    """The spawn context, except that its processes start under :func:`thread_environment`."""

    def __init__(self, threads: int, on_start: Callable[[], None]) -> None:
        super().__init__()
        self.Process = functools.partial(  # type: ignore[assignment]
            _LimitedProcess, environment=thread_environment(threads), on_start=on_start)


def _count_spawn(counts: dict[str, int]) -> None:
    counts["spawned"] += 1


def _exit_reason(exitcode: int | None) -> str:
    import signal

    if exitcode is None:
        return "exit code unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class WorkerPool:
    """Spawned worker processes (a :class:`pebble.ProcessPool`) that each run one task at a time.

    A task is a chunk of individuals (see :func:`deapnn.parallel.worker.run_task`). A task running
    longer than ``timeout`` seconds per individual has its worker killed and replaced, and its
    individuals get an infrastructure :class:`TaskError` saying so. A worker that dies mid-task
    is replaced and its task retried up to ``retries`` times, then failed (infrastructure) with
    the worker's exit status as the reason. Other tasks are unaffected.

    Workers start lazily on the first :meth:`run` and persist across calls, so each one imports
    TensorFlow and loads its dataset once per run, not once per generation. Use the pool as a
    context manager or call :meth:`close`; it is also closed when garbage-collected or at exit.

    Args:
        workers: Number of worker processes.
        threads: Compute threads per worker; by default ``cores // workers`` (at least 1), so
            ``workers`` workers on as many cores don't oversubscribe them.
        timeout: Hard time limit in seconds per individual (a task of ``k`` individuals gets
            ``k * timeout``), or ``None`` for no limit.
        retries: How many times a task whose worker died is run again.
        start_method: Only ``"spawn"``; ``"fork"`` is refused (unsafe with TensorFlow).

    Raises:
        ValueError: For a non-positive ``workers``/``threads``/``timeout``, a negative
            ``retries`` or another start method.
    """

    def __init__(
        self,
        workers: int,
        *,
        threads: int | None = None,
        timeout: float | None = None,
        retries: int = 1,
        start_method: str = "spawn",
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be a positive int, got {workers!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        if start_method != "spawn":
            raise ValueError(f"start_method must be 'spawn' (fork is unsafe with TensorFlow), "
                             f"got {start_method!r}")
        self.workers = workers
        self.threads = threads if threads is not None else threads_per_worker(workers)
        self.timeout = timeout
        self.retries = retries
        self.start_method = start_method
        #: Counters since the pool was created: tasks run, workers spawned, tasks timed out,
        #: workers found dead and tasks retried.
        self.counts = {"tasks": 0, "spawned": 0, "timeouts": 0, "deaths": 0, "retries": 0}
        self._state: dict[str, Any] = {"pool": None, "dir": None}
        self._files: set[str] = set()
        self._finalizer = weakref.finalize(self, WorkerPool._shutdown, self._state)

    def __reduce__(self) -> Any:
        raise TypeError("a WorkerPool holds live processes and cannot be pickled")

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def _pool(self) -> pebble.ProcessPool:
        pool = self._state["pool"]
        if pool is None or not pool.active:
            if pool is not None:
                WorkerPool._shutdown(self._state)
            # the context counts spawns in self.counts, not through self: pebble's threads hold
            # the context, and must not keep this object from being collected (and closed)
            context = _LimitedContext(self.threads, functools.partial(_count_spawn, self.counts))
            pool = pebble.ProcessPool(self.workers, initializer=worker_init,
                                      initargs=(self.threads,), context=context)
            self._state["pool"] = pool
        return pool

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (e.g. to watch or kill one in a test)."""
        pool = self._state["pool"]
        if pool is None:
            return []
        workers = pool._pool_manager.worker_manager.workers  # pebble keeps them by pid
        return [pid for pid, process in list(workers.items()) if process.is_alive()]

    def start(self) -> None:
        """Start the workers now instead of on the first :meth:`run`."""
        self._pool._update_pool_status()  # pebble starts its processes on first use

    def close(self) -> None:
        """Stop every worker (politely, then by force). The pool can be started again."""
        WorkerPool._shutdown(self._state)
        self._files.clear()

    def _shipment(self, token: str, blob: bytes) -> tuple[str, str, Any]:
        if len(blob) <= INLINE_BYTES:
            return ("blob", token, blob)
        if self._state["dir"] is None:
            self._state["dir"] = tempfile.mkdtemp(prefix="deapnn-pool-")
        path = os.path.join(self._state["dir"], token)
        if token not in self._files:
            with open(path + ".tmp", "wb") as f:
                f.write(blob)
            os.replace(path + ".tmp", path)
            self._files.add(token)
        return ("file", token, path)

    def run(
        self,
        func: Callable[..., Any],
        chunks: Sequence[Sequence[Any]],
        *,
        step: int | None = None,
        packed: tuple[str, bytes] | None = None,
    ) -> list[list[Any]]:
        """Evaluate every chunk on the workers; results in the order of ``chunks``.

        Args:
            func: Picklable evaluation function; pickled once per call, unpickled once per
                worker (workers keep it by the SHA-1 of its pickle).
            chunks: Lists of individuals, one task each (see
                :func:`~deapnn.parallel.worker.run_task`).
            step: Minibatch step passed with every chunk to a population evaluator.
            packed: ``(token, pickle_bytes)`` of ``func`` if the caller has them already.

        Returns:
            For each chunk, one fitness or :class:`TaskError` per individual.

        Raises:
            SetupError: If ``func`` cannot be pickled here or unpickled in a worker, or raised
                a :class:`SetupError` itself; no other task is waited for.
        """
        token, blob = packed if packed is not None else pack(func)
        shipment = self._shipment(token, blob)
        tasks = [pickle.dumps(list(chunk), protocol=pickle.HIGHEST_PROTOCOL) for chunk in chunks]
        results: list[list[Any] | None] = [None] * len(tasks)
        attempts = [0] * len(tasks)
        restarts = [0] * len(tasks)
        running: dict[concurrent.futures.Future, int] = {}

        def submit(index: int) -> None:
            limit = None if self.timeout is None else self.timeout * max(1, len(chunks[index]))
            future = self._pool.schedule(run_shipped_task, args=(shipment, tasks[index], step),
                                         timeout=limit)
            running[future] = index
            self.counts["tasks"] += 1

        def died(index: int, status: str) -> None:
            """A worker died holding task ``index``: retry it, or fail it."""
            self.counts["deaths"] += 1
            attempts[index] += 1
            if attempts[index] <= self.retries:
                self.counts["retries"] += 1
                submit(index)
                return
            reason = (f"worker process died ({status}) during evaluation, "
                      f"{attempts[index]} attempt(s)")
            results[index] = [TaskError(reason, "infrastructure")] * len(chunks[index])

        try:
            for index in range(len(tasks)):
                submit(index)
            while running:
                done, _ = concurrent.futures.wait(list(running),
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    index = running.pop(future)
                    size = len(chunks[index])
                    try:
                        results[index] = open_results(future.result(), size)
                    except pebble.ProcessExpired as exc:
                        died(index, _exit_reason(exc.exitcode))
                    except concurrent.futures.process.BrokenProcessPool as exc:
                        # pebble gives up its whole pool when a worker dies while no task is
                        # known to run ("All workers expired": an idle worker killed, or one
                        # that died before its task was acknowledged) and aborts the pending
                        # tasks. Those go to a fresh pool; twice for free (they may never have
                        # started), then as a death of their worker.
                        restarts[index] += 1
                        if restarts[index] <= 2:
                            submit(index)
                        else:
                            died(index, f"pool broken: {exc}")
                    except concurrent.futures.TimeoutError:
                        self.counts["timeouts"] += 1
                        limit = self.timeout * max(1, size)  # type: ignore[operator]
                        reason = f"timed out after {limit:g} s (worker killed)"
                        results[index] = [TaskError(reason, "infrastructure")] * size
                    except SetupError:
                        raise
                    except Exception as exc:  # e.g. a BaseException the evaluator raised
                        results[index] = [TaskError(describe(exc))] * size
        except SetupError:
            # Nobody will collect the other tasks: drop those not started; let the running ones
            # end on their own (killing their workers would only cost new ones).
            for future in running:
                if not future.running():
                    future.cancel()
            raise
        except BaseException:
            # Ctrl-C: stop everything, running tasks included (pebble kills their workers).
            for future in running:
                future.cancel()
            raise
        return results  # type: ignore[return-value]

    @staticmethod
    def _shutdown(state: dict[str, Any]) -> None:
        pool, state["pool"] = state["pool"], None
        if pool is not None:
            with contextlib.suppress(Exception):  # politely: idle workers finish
                pool.close()
                pool.join(timeout=2.0)
            with contextlib.suppress(Exception):  # then by force (a no-op once stopped)
                pool.stop()
                pool.join()
        folder, state["dir"] = state["dir"], None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
