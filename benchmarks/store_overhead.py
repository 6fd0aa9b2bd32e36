"""Overhead of the evaluation cache and its SQLite store, per evaluation.

Each evaluation here is nearly free (a sum), so what is timed is deapnn's own work per genome:
the key, ``check_fitness``, the cache's bookkeeping and, with a store, one committed SQLite row
(WAL mode, one transaction per row, as a real run commits them). The overhead is
``(time with cache [and store] - time of the bare evaluations) / evaluations``, for three kinds of
keys: a hyperparameter genome (a tuple of six genes), and flat weight vectors of 1,000 and
100,000 float32 values (the latter stored by digest only). ``resume`` is the time to attach a
store with every row already in it and answer the whole population from it.

To reproduce: ``python benchmarks/store_overhead.py`` (writes
``benchmarks/results/store_overhead.json``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from deap import base, creator

from deapnn.core.cache import EvaluationCache
from deapnn.core.store import EvaluationStore

RESULTS = Path(__file__).parent / "results"
TARGET_MS = 1.0

if not hasattr(creator, "StoreBenchFitness"):
    creator.create("StoreBenchFitness", base.Fitness, weights=(1.0,))
    creator.create("StoreBenchGenome", list, fitness=creator.StoreBenchFitness)
    creator.create("StoreBenchVector", np.ndarray, fitness=creator.StoreBenchFitness)


def evaluate(individual) -> tuple[float]:
    return (float(np.sum(individual)) if isinstance(individual, np.ndarray) else float(individual[0]),)


def population(kind: str, n: int, rng: np.random.Generator) -> list:
    if kind == "genome":
        return [creator.StoreBenchGenome([i, 32 * (i % 7 + 1), "relu", 1e-3 * (1 + i % 5), i % 3, 0.25])
                for i in range(n)]
    size = {"weights-1k": 1_000, "weights-100k": 100_000}[kind]
    out = []
    for _ in range(n):
        ind = rng.standard_normal(size).astype(np.float32).view(creator.StoreBenchVector)
        out.append(ind)
    return out


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_cache(cache: EvaluationCache, pop: list) -> None:
    cache.map()(cache, pop)


def reattach(path: Path, pop: list) -> None:
    """A resumed run: open the store, attach a fresh cache, answer the population from it."""
    with EvaluationStore(path) as store:
        cache = EvaluationCache(evaluate)
        cache.attach(store, "bench")
        cache.map()(cache, pop)
        assert cache.misses == 0


def measure(kind: str, n: int, repeats: int, folder: Path) -> dict:
    rng = np.random.default_rng(0)
    pop = population(kind, n, rng)
    bare, cached, stored, resume = [], [], [], []
    for r in range(repeats):
        bare.append(timed(lambda: list(map(evaluate, pop))))
        cached.append(timed(lambda: run_cache(EvaluationCache(evaluate), pop)))
        path = folder / f"{kind}-{r}.sqlite"
        with EvaluationStore(path) as store:
            cache = EvaluationCache(evaluate)
            cache.attach(store, "bench")
            stored.append(timed(functools.partial(run_cache, cache, pop)))
            assert store.count("bench") == n
        resume.append(timed(functools.partial(reattach, path, pop)))
    bare_s, cached_s, stored_s = (statistics.median(v) for v in (bare, cached, stored))
    return {
        "key": kind, "evaluations": n, "repeats": repeats,
        "bare_ms_per_eval": 1e3 * bare_s / n,
        "cache_overhead_ms_per_eval": 1e3 * (cached_s - bare_s) / n,
        "cache_store_overhead_ms_per_eval": 1e3 * (stored_s - bare_s) / n,
        "resume_ms_per_eval": 1e3 * statistics.median(resume) / n,
        "store_bytes_per_row": os.path.getsize(folder / f"{kind}-0.sqlite") / n,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluations", type=int, default=2000, help="genomes per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="medians of this many repeats")
    parser.add_argument("--folder", type=Path, default=None,
                        help="where the store files go (default a temporary folder)")
    parser.add_argument("--out", type=Path, default=RESULTS / "store_overhead.json")
    args = parser.parse_args(argv)
    if args.evaluations < 1 or args.repeats < 1:
        parser.error("--evaluations and --repeats must be positive")
    rows = []
    with tempfile.TemporaryDirectory(prefix="deapnn-store-", dir=args.folder) as tmp:
        for kind, n in (("genome", args.evaluations), ("weights-1k", args.evaluations),
                        ("weights-100k", max(1, args.evaluations // 10))):
            rows.append(measure(kind, n, args.repeats, Path(tmp)))
    print(f"{'key':<14}{'evals':>7}{'bare ms':>10}{'cache ms':>10}{'+store ms':>11}{'resume ms':>11}"
          f"{'bytes/row':>11}")
    for r in rows:
        print(f"{r['key']:<14}{r['evaluations']:>7}{r['bare_ms_per_eval']:>10.4f}"
              f"{r['cache_overhead_ms_per_eval']:>10.4f}{r['cache_store_overhead_ms_per_eval']:>11.4f}"
              f"{r['resume_ms_per_eval']:>11.4f}{r['store_bytes_per_row']:>11.0f}")
    worst = max(r["cache_store_overhead_ms_per_eval"] for r in rows)
    print(f"worst cache+store overhead {worst:.3f} ms per evaluation (target < {TARGET_MS} ms)")
    result = {
        "rows": rows, "target_ms": TARGET_MS, "worst_overhead_ms": worst,
        "meets_target": worst < TARGET_MS,
        "loadavg": os.getloadavg(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version, "platform": platform.platform(),
        "storage": "temporary folder" if args.folder is None else str(args.folder),
        "command": " ".join(["python benchmarks/store_overhead.py",
                             *(argv if argv is not None else sys.argv[1:])]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
