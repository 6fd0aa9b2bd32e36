"""A small pool of spawned worker processes with hard timeouts and crash recovery.

Why not :class:`multiprocessing.pool.Pool` or
:class:`concurrent.futures.ProcessPoolExecutor`? Both hide which worker holds
which task. ``Pool`` cannot stop one stuck task (``terminate`` kills the whole
pool) and a worker killed mid-task leaves its result pending forever;
``ProcessPoolExecutor`` marks the whole executor broken
(``BrokenProcessPool``) as soon as any worker dies, failing every pending
future. Training a Keras model can hang, exhaust memory or crash the
interpreter, and none of that may cost more than that one model. So each
worker here has its own pipe: the master always knows which task a worker
holds, waits on the pipes *and* the process sentinels together
(:func:`multiprocessing.connection.wait`), and on a time limit or a death
kills/replaces exactly that worker.

Workers are started with the ``spawn`` method, never ``fork``: forking a
process that has imported TensorFlow copies its thread pools in a broken
state. Their thread limits are put in the environment they start with, so
they hold before anything (even the user's ``__main__`` module, re-imported
by spawn) can import TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import pickle
import signal
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterator, Sequence

from deapnn.parallel.worker import TaskError, describe, thread_environment, threads_per_worker, worker_main

_ENV_LOCK = threading.Lock()


def pack(func: Callable[..., Any]) -> tuple[str, bytes]:
    """``(token, pickle_bytes)`` of a function: the token (a SHA-1 of the bytes) names it in workers."""
    blob = pickle.dumps(func, protocol=pickle.HIGHEST_PROTOCOL)
    return hashlib.sha1(blob).hexdigest(), blob


@dataclass
class _Task:
    index: int
    items: Sequence[Any]
    attempts: int = 0


@dataclass(eq=False)
class _Worker:
    process: Any
    conn: Any
    token: str | None = None
    task: _Task | None = None
    deadline: float | None = None


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


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit code unknown"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class WorkerPool:
    """Spawned worker processes that each evaluate one task at a time.

    A task is a chunk of individuals (see :func:`deapnn.parallel.worker.run_task`).
    A task running longer than ``timeout`` seconds per individual has its
    worker killed (a hard stop: SIGKILL) and replaced, and its individuals
    get a :class:`TaskError` saying so. A worker that dies mid-task is
    replaced and its task retried up to ``retries`` times, then failed with
    the worker's exit status as the reason. Other tasks are unaffected.

    Workers start lazily on the first :meth:`run` and persist across calls,
    so each one imports TensorFlow and loads its dataset once per run, not
    once per generation. Use the pool as a context manager or call
    :meth:`close`; it is also closed when garbage-collected or at exit.

    Args:
        workers: Number of worker processes.
        threads: Compute threads per worker; by default ``cores // workers``
            (at least 1), so ``workers`` workers on as many cores don't
            oversubscribe them.
        timeout: Hard time limit in seconds per individual (a task of ``k``
            individuals gets ``k * timeout``), or ``None`` for no limit.
        retries: How many times a task whose worker died is run again.
        start_method: Multiprocessing start method; ``"spawn"`` (default) or
            ``"forkserver"``. ``"fork"`` is refused (unsafe with TensorFlow).

    Raises:
        ValueError: For a non-positive ``workers``/``threads``/``timeout``, a
            negative ``retries`` or the ``"fork"`` start method.
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
        if start_method not in ("spawn", "forkserver"):
            raise ValueError(
                f"start_method must be 'spawn' or 'forkserver' (fork is unsafe with TensorFlow), "
                f"got {start_method!r}"
            )
        self.workers = workers
        self.threads = threads if threads is not None else threads_per_worker(workers)
        self.timeout = timeout
        self.retries = retries
        self.start_method = start_method
        self._context = multiprocessing.get_context(start_method)
        self._pool: list[_Worker] = []
        #: Counters since the pool was created: tasks run, workers spawned,
        #: tasks timed out, workers found dead and tasks retried.
        self.counts = {"tasks": 0, "spawned": 0, "timeouts": 0, "deaths": 0, "retries": 0}
        self._finalizer = weakref.finalize(self, WorkerPool._shutdown, self._pool)

    def __reduce__(self) -> Any:
        raise TypeError("a WorkerPool holds live processes and cannot be pickled")

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (e.g. to watch or kill one in a test)."""
        return [w.process.pid for w in self._pool if w.process.is_alive()]

    def start(self) -> None:
        """Start any missing workers now instead of on the first :meth:`run`."""
        while len(self._pool) < self.workers:
            self._pool.append(self._spawn())

    def close(self) -> None:
        """Stop every worker (politely, then by force). The pool can be started again."""
        WorkerPool._shutdown(self._pool)

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
            func: Picklable evaluation function; pickled once per call and
                sent to each worker only when it differs from the one the
                worker already holds (same pickle bytes: not sent again).
            chunks: Lists of individuals, one task each (see
                :func:`~deapnn.parallel.worker.run_task`).
            step: Minibatch step passed with every chunk to a population evaluator.
            packed: ``(token, pickle_bytes)`` of ``func`` if the caller has them already.

        Returns:
            For each chunk, one fitness or :class:`TaskError` per individual.
        """
        token, blob = packed if packed is not None else pack(func)
        pending = deque(_Task(i, chunk) for i, chunk in enumerate(chunks))
        results: list[list[Any] | None] = [None] * len(pending)
        remaining = len(pending)
        self.start()
        try:
            while remaining:
                for worker in self._pool:
                    if worker.task is None and pending:
                        self._assign(worker, pending, token, blob, step)
                busy = [w for w in self._pool if w.task is not None]
                waitables: dict[Any, _Worker] = {}
                for w in busy:
                    waitables[w.conn] = w
                    waitables[w.process.sentinel] = w
                deadlines = [w.deadline for w in busy if w.deadline is not None]
                wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                ready = wait(list(waitables), timeout=wait_for)
                seen: set[int] = set()
                for obj in ready:
                    worker = waitables[obj]
                    if id(worker) in seen or worker.task is None:
                        continue
                    seen.add(id(worker))
                    message = self._receive(worker)
                    if message is not None:
                        results[worker.task.index] = message[2]
                        worker.task, worker.deadline = None, None
                        remaining -= 1
                    elif self._handle_death(worker, pending, results):
                        remaining -= 1
                now = time.monotonic()
                for worker in busy:
                    if worker.task is not None and worker.deadline is not None and now >= worker.deadline:
                        self._handle_timeout(worker, results)
                        remaining -= 1
        except BaseException:
            # Interrupted mid-call (Ctrl-C): the busy workers hold tasks nobody will
            # collect. Kill them; the next run() starts fresh ones.
            for worker in [w for w in self._pool if w.task is not None]:
                worker.process.kill()
                worker.process.join(timeout=5)
                worker.conn.close()
                self._pool.remove(worker)
            raise
        return results  # type: ignore[return-value]

    # -- internals -------------------------------------------------------

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=worker_main, args=(child, self.threads), name="deapnn-worker", daemon=True
        )
        with _environment(thread_environment(self.threads)):
            process.start()
        child.close()
        self.counts["spawned"] += 1
        return _Worker(process, parent)

    def _replace(self, worker: _Worker, *, kill: bool) -> None:
        if kill and worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5)
        worker.conn.close()
        self._pool[self._pool.index(worker)] = self._spawn()

    def _assign(self, worker: _Worker, pending: deque[_Task], token: str, blob: bytes, step: int | None) -> None:
        task = pending.popleft()
        try:
            message = ("run", task.index, token, None if worker.token == token else blob, task.items, step)
            worker.conn.send(message)
        except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
            # Died while idle: the task never reached it, so this is no attempt.
            pending.appendleft(task)
            self.counts["deaths"] += 1
            self._replace(worker, kill=True)
            return
        worker.token, worker.task = token, task
        worker.deadline = None if self.timeout is None else time.monotonic() + self.timeout * max(1, len(task.items))
        self.counts["tasks"] += 1

    @staticmethod
    def _receive(worker: _Worker) -> Any:
        """The worker's answer, or None when its pipe is closed (it died)."""
        try:
            if worker.conn.poll():
                return worker.conn.recv()
        except (EOFError, OSError):
            pass
        except Exception as exc:  # the answer arrived but does not unpickle here
            error = TaskError(f"result could not be unpickled: {describe(exc)}")
            return ("done", worker.task.index, [error] * len(worker.task.items))  # type: ignore[union-attr]
        return None

    def _handle_death(self, worker: _Worker, pending: deque[_Task], results: list[Any]) -> bool:
        """Replace a dead worker; retry its task or fail it. True when the task is finished."""
        task = worker.task
        assert task is not None
        worker.process.join(timeout=5)
        if worker.process.is_alive():  # pipe broke but the process lives: treat as dead
            worker.process.kill()
            worker.process.join(timeout=5)
        status = _exit_reason(worker.process.exitcode)
        self.counts["deaths"] += 1
        task.attempts += 1
        worker.task = None
        self._replace(worker, kill=True)
        if task.attempts <= self.retries:
            self.counts["retries"] += 1
            pending.appendleft(task)
            return False
        reason = f"worker process died ({status}) during evaluation, {task.attempts} attempt(s)"
        results[task.index] = [TaskError(reason)] * len(task.items)
        return True

    def _handle_timeout(self, worker: _Worker, results: list[Any]) -> None:
        task = worker.task
        assert task is not None
        limit = self.timeout * max(1, len(task.items))  # type: ignore[operator]
        self.counts["timeouts"] += 1
        worker.task = None
        self._replace(worker, kill=True)
        reason = f"timed out after {limit:g} s (worker killed)"
        results[task.index] = [TaskError(reason)] * len(task.items)

    @staticmethod
    def _shutdown(pool: list[_Worker]) -> None:
        for worker in pool:
            with contextlib.suppress(Exception):
                worker.conn.send(("stop",))
        deadline = time.monotonic() + 2.0
        for worker in pool:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=5)
            with contextlib.suppress(Exception):
                worker.conn.close()
        pool.clear()
