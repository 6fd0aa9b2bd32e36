"""Worker pools compared: ``pebble.ProcessPool`` (deapnn's pool now) vs the hand-written one.

Issue 10 asked whether ``pebble``'s ``ProcessPool`` (per-task timeouts that kill the worker,
spawn context, dead-worker detection) could replace deapnn's own pool (one pipe per worker,
``multiprocessing.connection.wait`` on pipes and process sentinels). Both run here through the
same interface (``WorkerPool(workers, threads=, timeout=, retries=).run(func, chunks)``):

* ``pebble``    -- :class:`deapnn.parallel.pool.WorkerPool` of this checkout;
* ``handwritten`` -- the pool deapnn used before, read from git (``--legacy-commit``, default
  ``a1c4553``: ``deapnn/parallel/pool.py`` and ``worker.py``) into a temporary folder, so the
  comparison can be re-run although the package keeps one implementation.

Measured, each on a fresh pool of ``--workers`` spawned workers with 1 thread each:

* ``startup``      -- the first call of one trivial task: spawn + ``import deapnn`` per worker;
* ``trivial``      -- ``--trivial`` tasks that return at once: wall time per task (the per-task
  overhead: pickling, pipes, bookkeeping) and tasks per second;
* ``numpy``        -- ``--numpy`` tasks of a few small matrix products each (~1-2 ms of work);
* ``timeout``      -- one task that sleeps 60 s under a 0.5 s limit: seconds until its failure
  comes back (the limit included), and ``timeout_next`` the next call of one trivial task (it
  waits for the replacement worker);
* ``replacement``  -- one task whose worker SIGKILLs itself on the first attempt: seconds until
  the retried task's result comes back (a new worker is spawned and imports deapnn).

Every number is the median of ``--repeats`` runs. The load average before and after is
recorded: run it on a quiet machine.

To reproduce: ``python benchmarks/pool_overhead.py`` (writes
``benchmarks/results/pool_overhead.json``).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------- tasks
def trivial(x: Any) -> Any:
    """Returns its argument: what is left is the pool's own cost."""
    return x


def small_numpy(seed: int) -> float:
    """A few 64x64 matrix products (about a millisecond of work on one thread)."""
    rng = numpy.random.default_rng(seed)
    a = rng.standard_normal((64, 64))
    for _ in range(20):
        a = numpy.tanh(a @ a / 64.0)
    return float(a.sum())


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def die_once(marker: str, x: Any) -> Any:
    """SIGKILLs its own worker the first time (a marker file remembers), then returns ``x``."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return x


# ----------------------------------------------------------------------------------- pools
def legacy_pool_class(commit: str, folder: str) -> type | None:
    """The hand-written ``WorkerPool`` of ``commit``, imported from ``folder`` (None without git)."""
    try:
        pool = subprocess.run(["git", "show", f"{commit}:deapnn/parallel/pool.py"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout
        worker = subprocess.run(["git", "show", f"{commit}:deapnn/parallel/worker.py"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"hand-written pool not available from git ({exc}); measuring pebble only")
        return None
    Path(folder, "legacy_worker.py").write_text(worker)
    Path(folder, "legacy_pool.py").write_text(
        pool.replace("from deapnn.parallel.worker import", "from legacy_worker import"))
    if folder not in sys.path:
        sys.path.insert(0, folder)  # spawned workers inherit sys.path
    return importlib.import_module("legacy_pool").WorkerPool


def run(pool: Any, func: Callable[..., Any], items: list[Any]) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    out = pool.run(func, [[x] for x in items])
    return time.perf_counter() - start, [r[0] for r in out]


def measure(pool_class: type, args: argparse.Namespace, scratch: str) -> dict[str, float]:
    """One round of every measurement on fresh pools of ``pool_class``."""
    result: dict[str, float] = {}
    pool = pool_class(args.workers, threads=1)
    try:
        result["startup_s"], _ = run(pool, trivial, [0])
        seconds, out = run(pool, trivial, list(range(args.trivial)))
        assert out == list(range(args.trivial)), "trivial tasks came back wrong"
        result["trivial_ms_per_task"] = 1000 * seconds / args.trivial
        result["trivial_tasks_per_s"] = args.trivial / seconds
        seconds, out = run(pool, small_numpy, list(range(args.numpy)))
        assert out == [small_numpy(i) for i in range(args.numpy)], "numpy tasks came back wrong"
        result["numpy_ms_per_task"] = 1000 * seconds / args.numpy
        result["numpy_tasks_per_s"] = args.numpy / seconds
    finally:
        pool.close()
    pool = pool_class(args.workers, threads=1, timeout=0.5)
    try:
        run(pool, trivial, [0])
        result["timeout_s"], out = run(pool, sleep, [60.0])
        assert "timed out" in out[0].reason, out
        result["timeout_next_s"], _ = run(pool, trivial, [0])
    finally:
        pool.close()
    pool = pool_class(args.workers, threads=1, retries=1)
    try:
        run(pool, trivial, [0])
        marker = os.path.join(scratch, f"die-{time.monotonic_ns()}")
        result["replacement_s"], out = run(pool, functools.partial(die_once, marker), [7])
        assert out == [7], out
    finally:
        pool.close()
    return result


COLUMNS = [
    ("startup_s", "startup s"), ("trivial_ms_per_task", "trivial ms/task"),
    ("trivial_tasks_per_s", "trivial tasks/s"), ("numpy_ms_per_task", "numpy ms/task"),
    ("numpy_tasks_per_s", "numpy tasks/s"), ("timeout_s", "timeout s"),
    ("timeout_next_s", "after timeout s"), ("replacement_s", "replacement s"),
]


def table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| pool | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name, values in results.items():
        cells = [f"{values[key]:.3f}" if values[key] < 10 else f"{values[key]:.0f}" for key, _ in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="worker processes per pool")
    parser.add_argument("--trivial", type=int, default=1000, help="trivial tasks per round")
    parser.add_argument("--numpy", type=int, default=300, help="small numpy tasks per round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--legacy-commit", default="a1c4553",
                        help="git commit holding the hand-written pool")
    parser.add_argument("--out", type=Path, default=RESULTS / "pool_overhead.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from deapnn.parallel.pool import WorkerPool

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pool-overhead-") as scratch:
        pools: dict[str, type] = {"pebble": WorkerPool}
        legacy = legacy_pool_class(args.legacy_commit, scratch)
        if legacy is not None:
            pools["handwritten"] = legacy
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in pools}
        for _ in range(args.repeats):
            for name, pool_class in pools.items():  # interleaved: load drifts hit both alike
                rounds[name].append(measure(pool_class, args, scratch))
    medians = {name: {key: statistics.median(r[key] for r in runs) for key, _ in COLUMNS}
               for name, runs in rounds.items()}
    report = {
        "workers": args.workers, "trivial_tasks": args.trivial, "numpy_tasks": args.numpy,
        "repeats": args.repeats, "legacy_commit": args.legacy_commit,
        "cpu_count": os.cpu_count(), "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(), "median": medians, "rounds": rounds,
        "python": sys.version.split()[0], "pebble": importlib.import_module("pebble").__version__,
    }
    print(table(medians))
    print(f"load average before {load_before[0]:.2f}, after {report['loadavg_after'][0]:.2f}; "
          f"{args.workers} workers, median of {args.repeats}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
