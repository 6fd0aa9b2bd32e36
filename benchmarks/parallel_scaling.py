"""Parallel scaling: serial vs spawned processes vs SCOOP, with 1 and 2 workers, in one run.

Three workloads, each timed on every backend after a warm-up call (which starts the workers,
imports TensorFlow in them and loads their data; reported separately as ``startup``):

* ``hyper``   -- hyperparameter evaluation: distinct MLP genomes trained by ``KerasEvaluator``
  (digits or MNIST), one genome per task;
* ``weights`` -- the MNIST weight experiment (seed 004's 784-128-10 network): a population of
  weight vectors evaluated by ``BatchedEvaluator`` for a few generations, one batched chunk per
  worker; plus, for contrast, the same with one individual per task (``chunksize=1``);
* ``noop``    -- many tasks that do nothing: the per-task overhead of each backend.

SCOOP configurations run this script again under ``python -m scoop -n W`` and read back its JSON.
Speedup is serial time / time; efficiency is speedup / workers. Run it on a quiet machine: the
load average before and after is recorded with the numbers.

To reproduce: ``python benchmarks/parallel_scaling.py``
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy  # noqa: E402

from deapnn.core import seeding  # noqa: E402
from deapnn.parallel import get_map, scoop_running  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------ workloads
def noop(_: Any) -> tuple[float]:
    """An evaluation that costs nothing: what is left is the backend's per-task overhead."""
    return (0.0,)


def _dataset(name: str):
    from deapnn.data import load_digits, load_mnist

    return load_mnist() if name == "mnist" else load_digits()


def hyper_genomes(n: int, seed: int) -> list[Any]:
    """``n`` distinct MLP genomes (seeded): the models every backend trains."""
    from deapnn.hparams.genome import random_genome
    from deapnn.keras.models import mlp_space

    space = mlp_space(layers=2, neurons=(32, 64, 128, 256), batch_size=(32, 64),
                      batch_norm=(False,))
    seeding.seed(seed)
    genomes: dict[tuple, Any] = {}
    while len(genomes) < n:
        genome = random_genome(space)
        genomes.setdefault(genome.key(), genome)
    return list(genomes.values())


def weight_setup(args: argparse.Namespace):
    """The weight experiment's evaluator and population (seeded)."""
    from deapnn.weights import BatchedEvaluator, NetworkSpec

    data = _dataset(args.weight_dataset)
    x, y = data.x_train[: args.weight_train], data.y_train[: args.weight_train]
    spec = NetworkSpec.mlp(data.input_shape, [args.weight_hidden], data.n_classes)
    evaluator = BatchedEvaluator(spec, x, y, batch_size=min(args.weight_batch, len(x)))
    rng = numpy.random.default_rng(args.seed)
    population = [v for v in rng.normal(0.0, 0.1, (args.weight_pop, evaluator.size)).astype(numpy.float32)]
    return evaluator, population


def time_workloads(backend: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Time every workload on one backend/worker count, in this process (the master)."""
    from deapnn.keras import KerasEvaluator

    out: dict[str, Any] = {}
    kwargs = {} if backend == "serial" else {"workers": workers}
    with get_map(backend, **kwargs) as backend_map:
        if "noop" in args.workloads:
            backend_map(noop, range(2 * workers))  # start the workers
            start = time.perf_counter()
            backend_map(noop, range(args.noop_tasks))
            seconds = time.perf_counter() - start
            out["noop"] = {"seconds": seconds, "tasks": args.noop_tasks,
                           "per_task_ms": 1000 * seconds / args.noop_tasks}
        if "hyper" in args.workloads:
            # The same timed genomes on every backend; the warm-up ones come after them.
            n = args.hyper_models
            genomes = hyper_genomes(n + max(args.workers), args.seed)
            evaluator = KerasEvaluator(functools.partial(_dataset, args.hyper_dataset),
                                       max_epochs=args.hyper_epochs)
            start = time.perf_counter()
            backend_map(evaluator, genomes[n : n + workers])  # TensorFlow import, data, first graph
            startup = time.perf_counter() - start
            start = time.perf_counter()
            fits = backend_map(evaluator, genomes[:n])
            seconds = time.perf_counter() - start
            out["hyper"] = {"seconds": seconds, "startup": startup, "tasks": len(fits),
                            "failures": sum(hasattr(f, "reason") for f in fits),
                            "mean_fitness": float(numpy.mean([f[0] for f in fits]))}
        if "weights" in args.workloads:
            evaluator, population = weight_setup(args)
            for label, chunksize in (("weights", None), ("weights_per_individual", 1)):
                if label == "weights_per_individual" and (backend == "serial" or workers < 2):
                    continue
                backend_map.chunksize = chunksize
                start = time.perf_counter()
                backend_map(evaluator, population)  # graph build, data shipped to the workers
                startup = time.perf_counter() - start
                tasks = backend_map.tasks
                start = time.perf_counter()
                fits = [backend_map(evaluator, population) for _ in range(args.weight_gens)]
                seconds = time.perf_counter() - start
                out[label] = {"seconds": seconds, "startup": startup,
                              "tasks": backend_map.tasks - tasks,
                              "evaluations": args.weight_pop * args.weight_gens,
                              "evals_per_s": args.weight_pop * args.weight_gens / seconds,
                              "best": float(max(f[0] for f in fits[-1]))}
            backend_map.chunksize = None
    return out


# ---------------------------------------------------------------------------------- SCOOP child
def run_scoop(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run this script under ``python -m scoop -n workers`` and return its timings."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scoop.json"
        child = [a for a in sys.argv[1:] if a not in ("--quick",)]
        cmd = [sys.executable, "-m", "scoop", "-n", str(workers), str(Path(__file__).resolve()),
               *child, "--child-out", str(out), "--child-workers", str(workers)]
        if args.quick:
            cmd.append("--quick")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.scoop_timeout)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"SCOOP run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text())


# ---------------------------------------------------------------------------------------- report
def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add speedup (serial seconds / seconds) and efficiency (speedup / workers) to each row."""
    serial = next((r for r in runs if r["backend"] == "serial"), None)
    rows = []
    for run in runs:
        for workload, m in run["results"].items():
            row = {"backend": run["backend"], "workers": run["workers"], "workload": workload, **m}
            base = serial["results"].get(workload.replace("_per_individual", "")) if serial else None
            if base and workload != "noop":
                row["speedup"] = base["seconds"] / m["seconds"]
                row["efficiency"] = row["speedup"] / run["workers"]
            rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'workload':<24}{'backend':<11}{'workers':>8}{'seconds':>10}{'startup':>9}{'tasks':>7}"
          f"{'ms/task':>9}{'speedup':>9}{'effic.':>8}")
    for r in sorted(rows, key=lambda r: (r["workload"], r["backend"] != "serial", r["backend"], r["workers"])):
        per_task = 1000 * r["seconds"] / r["tasks"]
        startup = f"{r['startup']:.1f}" if "startup" in r else "-"
        speedup = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        efficiency = f"{r['efficiency']:.0%}" if "efficiency" in r else "-"
        print(f"{r['workload']:<24}{r['backend']:<11}{r['workers']:>8}{r['seconds']:>10.2f}{startup:>9}"
              f"{r['tasks']:>7}{per_task:>9.2f}{speedup:>9}{efficiency:>8}")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as the Markdown table benchmarks/README.md shows."""
    lines = ["| workload | backend | workers | seconds | startup s | tasks | ms/task | speedup | efficiency |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["workload"], r["backend"] != "serial", r["backend"], r["workers"])):
        startup = f"{r['startup']:.1f}" if "startup" in r else "-"
        speedup = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        efficiency = f"{r['efficiency']:.0%}" if "efficiency" in r else "-"
        lines.append(f"| {r['workload']} | {r['backend']} | {r['workers']} | {r['seconds']:.2f} | {startup} | "
                     f"{r['tasks']} | {1000 * r['seconds'] / r['tasks']:.2f} | {speedup} | {efficiency} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts")
    parser.add_argument("--backends", nargs="+", default=["serial", "processes", "scoop"],
                        choices=["serial", "processes", "scoop"])
    parser.add_argument("--workloads", nargs="+", default=["noop", "hyper", "weights"],
                        choices=["noop", "hyper", "weights"])
    parser.add_argument("--hyper-models", type=int, default=16, help="genomes trained per backend")
    parser.add_argument("--hyper-epochs", type=int, default=2)
    parser.add_argument("--hyper-dataset", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--weight-dataset", choices=["digits", "mnist"], default="mnist")
    parser.add_argument("--weight-hidden", type=int, default=128, help="hidden units (784-H-10)")
    parser.add_argument("--weight-pop", type=int, default=100, help="population size")
    parser.add_argument("--weight-gens", type=int, default=5, help="timed generations")
    parser.add_argument("--weight-batch", type=int, default=1024, help="samples per fitness minibatch")
    parser.add_argument("--weight-train", type=int, default=10000, help="training samples held by the evaluator")
    parser.add_argument("--noop-tasks", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scoop-timeout", type=float, default=1200.0)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes for a smoke test (numbers are not meaningful)")
    parser.add_argument("--out", type=Path, default=RESULTS / "parallel_scaling.json")
    parser.add_argument("--markdown", type=Path, metavar="JSON",
                        help="only print the Markdown table of an earlier run's JSON, then exit")
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.hyper_models, args.hyper_epochs, args.weight_pop, args.weight_gens = 4, 1, 20, 2
        args.weight_train, args.weight_batch, args.noop_tasks = 2000, 256, 40
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.markdown is not None:
        report = json.loads(args.markdown.read_text())
        print(f"Command: `{report['command']}`; {report['cores']} cores; load average before/after "
              f"{report['load_average_before'][0]:.2f} / {report['load_average_after'][0]:.2f}\n")
        print(markdown_table(report["rows"]))
        return
    if args.child_out is not None:  # we are the origin of a `python -m scoop` run
        if not scoop_running():
            raise SystemExit("--child-out is for the SCOOP child run")
        results = time_workloads("scoop", args.child_workers, args)
        args.child_out.write_text(json.dumps(results))
        return
    load_before = os.getloadavg()
    runs = []
    for backend in args.backends:
        for workers in ([1] if backend == "serial" else args.workers):
            print(f"... {backend} with {workers} worker(s)", flush=True)
            start = time.perf_counter()
            results = run_scoop(workers, args) if backend == "scoop" else time_workloads(backend, workers, args)
            runs.append({"backend": backend, "workers": workers, "results": results,
                         "wall_seconds": time.perf_counter() - start})
    rows = summarise(runs)
    print_table(rows)
    report = {
        "command": "python benchmarks/parallel_scaling.py " + " ".join(sys.argv[1:]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if not k.startswith("child")},
        "cores": len(os.sched_getaffinity(0)),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"load average before/after: {load_before[0]:.2f} / {report['load_average_after'][0]:.2f}"
          f" on {report['cores']} cores; wrote {args.out}")


if __name__ == "__main__":
    main()
