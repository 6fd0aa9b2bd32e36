"""Evolving the weights of MNIST classifiers on a wall-clock budget: seed 004, a tuned GA, ES, PGPE, CMA-ES.

Methods (each gets the same budget of optimisation time):

  seed004  the tutorial's configuration, with deapnn's batched evaluation: 784-128-10, uniform
           [-1, 1] init, MU=25, CXPB=0.6, MUTPB=0.3, selTournament(tournsize=5), averaging blend,
           mutGaussian(mu=0, sigma=0.1, indpb=0.25), fitness = accuracy on a fixed set of 10,000
           samples (training data here; the tutorial used the test set), DEAP's eaSimple.
  ga       DEAP's unchanged eaSimple (population 100) with per-layer-scaled Gaussian mutation
           annealed over the budget, blend crossover and elitist tournament selection; fitness =
           minus the cross-entropy on a training minibatch resampled every generation
           (minibatch 128, then 256 from 40% of the run on: ``--ga-batch-final``,
           ``--ga-batch-switch``; a larger minibatch makes selection less noisy late in the run;
           ``--ga-mate heuristic``: Wright's line crossover ``cx_heuristic`` instead of the blend).
  es       OpenAI-ES (antithetic sampling, centred ranks, Adam with decaying learning rate and
           sigma; optional weight decay) driven by DEAP's unchanged eaGenerateUpdate; same fitness.
  pgpe     PGPE (symmetric sampling, per-weight sigmas, centred ranks, ClipUp) through
           eaGenerateUpdate; same fitness.
  sepcma   separable CMA-ES (Ros & Hansen 2008) through eaGenerateUpdate; same fitness.
  cma      DEAP's own cma.Strategy (full covariance) on a small network (``--cma-filters``
           filters, no hidden layer: a few hundred weights) through eaGenerateUpdate.
  seedarch seed 004's own 784-128-10 network (101,770 weights) evolved with PGPE (the best
           method here) instead of the tutorial's GA.

The GA's toolbox is honest (deapnn.weights.minibatch): survivors are re-scored on the current
minibatch before each selection, so selection compares fitness measured on one minibatch.

Networks: ``--arch conv`` (default) is Conv2D(8, 5x5, stride 2, relu) -> MaxPool(2) -> Dense(10)
(3,098 weights); ``--arch mlp`` is 784-<hidden>-10. The clock stops while progress is measured
(validation and test accuracy every ``--eval-every`` seconds) and starts after one warm-up
evaluation that traces the TensorFlow graph; the reported accuracy is on the full
10,000-image test set, of the ES mean, or of the GA individual with the best validation accuracy
among the five fittest.

To reproduce (defaults are the configurations reported in benchmarks/README.md):
``python benchmarks/weights_mnist.py --methods seed004 ga es pgpe sepcma cma seedarch --budget 600``

Load-independent runs: ``--generations N`` stops after N generations instead of a time budget (the
GA's mutation step is then annealed over the N generations), so two runs with the same ``--seed``
compute the same thing whatever else the machine is doing; the JSON and the console give the
SHA-256 of the reported weight vector and ``--save-weights PATH`` writes it (``PATH_METHOD.npy``).

Same seed, with and without SCOOP (``--backend auto`` is SCOOP's workers under ``python -m scoop``,
each generation split into one chunk per worker)::

    python benchmarks/weights_mnist.py --methods pgpe --generations 200 --save-weights plain
    python -m scoop -n 2 benchmarks/weights_mnist.py --methods pgpe --generations 200 \
        --backend auto --save-weights scoop
    python -c "import numpy; print((numpy.load('plain_pgpe.npy') == numpy.load('scoop_pgpe.npy')).all())"

(both runs print the same test accuracy and sha256; add ``--out``/``--png`` to keep the committed
results file untouched).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

RESULTS = Path(__file__).parent / "results"
METHODS = ["seed004", "ga", "es", "pgpe", "sepcma", "cma", "seedarch"]
#: Methods that are evolution strategies built by make_weight_toolbox(strategy=...).
STRATEGY_METHODS = ("pgpe", "sepcma", "cma", "seedarch")


def strategy_kwargs(name: str, args: argparse.Namespace) -> dict:
    """The knobs of strategy ``name`` (``pgpe``, ``sepcma``, ``cma``) from the command line."""
    if name == "pgpe":
        return {"sigma": args.pgpe_sigma, "lambda_": args.pgpe_population,
                "learning_rate": args.pgpe_lr, "max_speed": args.pgpe_max_speed,
                "optimizer": args.pgpe_optimizer, "sigma_learning_rate": args.pgpe_sigma_lr,
                "weight_decay": args.pgpe_weight_decay, "learning_rate_decay": args.pgpe_lr_decay,
                "learning_rate_limit": args.pgpe_lr * 0.1}
    if name == "sepcma":
        return {"sigma": args.sepcma_sigma, "lambda_": args.sepcma_population}
    return {"sigma": args.cma_sigma, "lambda_": args.cma_population}


def network(arch: str, hidden: list[int], filters: int = 8):
    """The NetworkSpec of ``--arch``."""
    from deapnn.weights import Conv2DSpec, DenseSpec, FlattenSpec, NetworkSpec, PoolSpec, ReshapeSpec

    if arch == "mlp":
        return NetworkSpec.mlp((28, 28), hidden, 10)
    layers = [ReshapeSpec((28, 28, 1)), Conv2DSpec(filters, (5, 5), (2, 2), "valid", "relu"),
              PoolSpec("max", (2, 2)), FlattenSpec()]
    layers += [DenseSpec(h, "relu") for h in hidden]
    layers.append(DenseSpec(10, "softmax"))
    return NetworkSpec((28, 28), tuple(layers))


def method_network(method: str, args: argparse.Namespace):
    """The NetworkSpec a method evolves: seed 004's 784-128-10 (``seed004``, ``seedarch``), a
    small one for DEAP's full-covariance ``cma``, else ``--arch``."""
    if method in ("seed004", "seedarch"):
        return network("mlp", [128])
    if method == "cma":
        if args.arch == "mlp":
            return network("mlp", args.cma_hidden)
        return network("conv", [], args.cma_filters)
    return network(args.arch, args.hidden, args.filters)


class Clock:
    """Optimisation time: stops while progress is measured."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.paused = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def pause(self, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        try:
            return fn()
        finally:
            self.paused += time.perf_counter() - t


def run_method(method: str, args: argparse.Namespace, data) -> dict:
    """Run one method for ``args.budget`` seconds of optimisation time."""
    from deap import algorithms, creator

    import deapnn
    from deapnn.parallel import SerialMap
    from deapnn.weights import (BatchedEvaluator, OpenAIES, hall_of_fame, make_weight_toolbox,
                                mut_gaussian)

    deapnn.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    if method == "seed004":
        spec = network("mlp", [128])
        evaluator = BatchedEvaluator(spec, data.x_train, data.y_train, fitness="accuracy",
                                     batch_size=min(10000, len(data.y_train)), resample=False,
                                     seed=args.seed)
        tb = make_weight_toolbox(spec, evaluator, init="uniform", init_range=(-1.0, 1.0),
                                 mate="average", mutate_kwargs={"sigma": 0.1, "indpb": 0.25},
                                 select="tournament", select_kwargs={"tournsize": 5}, rng=rng)
        config = {"network": "784-128-10", "population": 25, "cxpb": 0.6, "mutpb": 0.3,
                  "select": "selTournament(tournsize=5)", "mate": "cx_average",
                  "mutate": "mut_gaussian(mu=0, sigma=0.1, indpb=0.25)", "init": "uniform[-1, 1]",
                  "fitness": "accuracy on a fixed 10,000-sample training subset"}
        population, cxpb, mutpb, chunk = 25, 0.6, 0.3, 5
    elif method == "ga":
        spec = network(args.arch, args.hidden, args.filters)
        ga_mate = getattr(args, "ga_mate", "blend")
        mate_kwargs = ({"ratio": args.ga_ratio} if ga_mate == "heuristic" else {"alpha": args.ga_alpha})

        def ga_toolbox(batch: int):
            """The GA's evaluator (minibatch ``batch``) and honest toolbox."""
            ev = BatchedEvaluator(spec, data.x_train, data.y_train, batch_size=batch, seed=args.seed)
            return ev, make_weight_toolbox(spec, ev, init="glorot", mate=ga_mate, mate_kwargs=mate_kwargs,
                                           mutate_kwargs={"sigma": args.ga_sigma, "indpb": args.ga_indpb},
                                           per_layer=True, select="elitist_tournament",
                                           select_kwargs={"tournsize": args.ga_tournsize},
                                           elites=args.ga_elites, rng=rng)

        evaluator, tb = ga_toolbox(args.ga_batch)
        population, cxpb, mutpb, chunk = args.population, args.ga_cxpb, args.ga_mutpb, 10
        config = {"network": args.arch, "filters": args.filters, "hidden": args.hidden,
                  "parameters": spec.layout().size,
                  "population": population, "cxpb": cxpb, "mutpb": mutpb,
                  "select": f"sel_elitist_tournament(tournsize={args.ga_tournsize}, "
                            f"elites={args.ga_elites})",
                  "mate": f"cx_{ga_mate}({', '.join(f'{k}={v}' for k, v in mate_kwargs.items())})",
                  "sigma_final": args.ga_sigma_final,
                  "mutate": f"mut_gaussian(sigma={args.ga_sigma} x per-layer Glorot std, "
                            f"indpb={args.ga_indpb})",
                  "init": "glorot", "fitness": f"-cross-entropy, minibatch {args.ga_batch}, "
                                               "resampled per generation"}
        batch_final = getattr(args, "ga_batch_final", None)
        if batch_final:
            config["fitness"] += (f"; minibatch {batch_final} from {args.ga_batch_switch:.0%} of the run "
                                  "(all re-scored then)")
    elif method == "es":
        spec = network(args.arch, args.hidden, args.filters)
        evaluator = BatchedEvaluator(spec, data.x_train, data.y_train, batch_size=args.es_batch,
                                     seed=args.seed)
        tb = make_weight_toolbox(spec, evaluator, rng=rng)
        strategy = OpenAIES(tb.individual(), sigma=args.es_sigma, lambda_=args.es_population,
                            learning_rate=args.es_lr, weight_decay=args.es_weight_decay,
                            learning_rate_decay=args.es_lr_decay,
                            learning_rate_limit=args.es_lr * 0.1,
                            sigma_decay=args.es_sigma_decay, sigma_limit=args.es_sigma * 0.2,
                            rng=rng)
        tb.register("generate", strategy.generate, creator.WeightVector)
        tb.register("update", strategy.update)
        population, chunk = args.es_population, 20
        config = {"network": args.arch, "filters": args.filters, "hidden": args.hidden,
                  "parameters": spec.layout().size,
                  "strategy": "OpenAIES", "lambda_": population, "sigma": args.es_sigma,
                  "learning_rate": args.es_lr, "weight_decay": args.es_weight_decay,
                  "learning_rate_decay": args.es_lr_decay, "sigma_decay": args.es_sigma_decay,
                  "fitness": f"-cross-entropy, minibatch {args.es_batch}, resampled per generation"}
    elif method in STRATEGY_METHODS:
        name = "pgpe" if method == "seedarch" else method
        spec = method_network(method, args)
        batch = getattr(args, f"{name}_batch")
        evaluator = BatchedEvaluator(spec, data.x_train, data.y_train, batch_size=batch, seed=args.seed)
        kwargs = strategy_kwargs(name, args)
        tb = make_weight_toolbox(spec, evaluator, strategy=name, strategy_kwargs=kwargs, rng=rng)
        strategy = tb.strategy
        population, chunk = strategy.lambda_, 10
        config = {"network": "784-128-10" if method == "seedarch" else args.arch,
                  "parameters": spec.layout().size, "strategy": type(strategy).__name__,
                  **{k: v for k, v in kwargs.items() if k != "rng"},
                  "fitness": f"-cross-entropy, minibatch {batch}, resampled per generation"}
    else:
        raise ValueError(f"unknown method {method!r}")

    from deapnn.parallel import register_backend

    backend = getattr(args, "backend", "serial")
    if backend != "serial":  # e.g. "auto": SCOOP's workers under `python -m scoop`
        from deapnn.parallel import resolve_backend

        register_backend(tb, backend, workers=getattr(args, "workers", None))
        config["backend"] = resolve_backend(backend, getattr(args, "workers", None))
    layer_scale = tb.layout.init_std("glorot", biases=True)
    mapper: SerialMap = tb.map.func if hasattr(tb.map, "func") else tb.map  # counts individuals
    x_val, y_val, x_test, y_test = data.x_val, data.y_val, data.x_test, data.y_test

    def current_model(pop) -> np.ndarray:
        if method == "es" or method in STRATEGY_METHODS:
            return np.asarray(strategy.centroid, dtype=np.float32)
        top = sorted(pop, key=lambda ind: ind.fitness.wvalues[0] if ind.fitness.valid else -np.inf,
                     reverse=True)[:5]
        _, acc, _ = evaluator.scores(np.stack(top), x_val, y_val)
        return np.asarray(top[int(np.argmax(acc))])

    curve: list[dict] = []
    counted = 0  # evaluations of evaluators replaced by the GA's minibatch switch

    def measure(pop, generation: int) -> np.ndarray:
        best = current_model(pop)
        _, val_acc, _ = evaluator.scores(best[None], x_val, y_val)
        _, test_acc, _ = evaluator.scores(best[None], x_test, y_test)
        curve.append({"seconds": clock.elapsed(), "generation": generation,
                      "evaluations": counted + mapper.individuals, "val_accuracy": float(val_acc[0]),
                      "test_accuracy": float(test_acc[0])})
        print(f"  [{method}] {clock.elapsed():7.1f}s gen {generation:6d} "
              f"val {val_acc[0]:.4f} test {test_acc[0]:.4f}", flush=True)
        return best

    # one-off TensorFlow tracing and oneDNN set-up, outside the budget
    evaluator.evaluate_population(np.zeros((population, evaluator.size), np.float32))
    random.seed(args.seed)
    clock = Clock()
    generation = 0
    hof = hall_of_fame(1)
    pop = None
    if method != "es" and method not in STRATEGY_METHODS:
        pop = tb.population(n=population)
        pop, _ = algorithms.eaSimple(pop, tb, cxpb, mutpb, ngen=0, halloffame=hof, verbose=False)
    clock.pause(lambda: measure(pop, 0))
    next_eval = args.eval_every
    ngen = getattr(args, "generations", None)

    def progress() -> float:
        """Fraction of the run done: of ``--generations`` when given, else of the time budget."""
        if ngen:
            return min(generation / ngen, 1.0)
        return min(clock.elapsed() / args.budget, 1.0)

    switched = False
    while (generation < ngen) if ngen else (clock.elapsed() < args.budget):
        step = min(chunk, ngen - generation) if ngen else chunk
        if (method == "ga" and not switched and getattr(args, "ga_batch_final", None)
                and progress() >= args.ga_batch_switch):
            # a larger minibatch for the rest of the run: a new evaluator and honest toolbox, whose
            # evaluate/map/select replace the old ones; every fitness is measured again on it
            switched = True
            counted += mapper.individuals
            evaluator, fresh = ga_toolbox(args.ga_batch_final)
            clock.pause(lambda: evaluator.evaluate_population(np.zeros((population, evaluator.size),
                                                                       np.float32)))
            if backend != "serial":
                register_backend(fresh, backend, workers=getattr(args, "workers", None))
            for name in ("evaluate", "map", "select"):
                tb.register(name, getattr(fresh, name))
            mapper = fresh.map.func if hasattr(fresh.map, "func") else fresh.map
            for ind in pop:
                del ind.fitness.values
        if method == "es" or method in STRATEGY_METHODS:
            pop, _ = algorithms.eaGenerateUpdate(tb, ngen=step, verbose=False)
        else:
            if method == "ga" and args.ga_sigma_final is not None:
                # anneal the mutation step geometrically over the run (re-registering mutate)
                sigma = args.ga_sigma * (args.ga_sigma_final / args.ga_sigma) ** progress()
                tb.register("mutate", mut_gaussian, mu=0.0, sigma=layer_scale * np.float32(sigma),
                            indpb=args.ga_indpb, rng=rng)
            pop, _ = algorithms.eaSimple(pop, tb, cxpb, mutpb, ngen=step, halloffame=hof,
                                         verbose=False)
        generation += step
        if clock.elapsed() >= next_eval:
            clock.pause(lambda: measure(pop, generation))
            next_eval += args.eval_every
    wall = clock.elapsed()
    if curve[-1]["generation"] == generation:  # measured at the end of the last chunk already
        best = clock.pause(lambda: current_model(pop))
    else:
        best = clock.pause(lambda: measure(pop, generation))
    extra = {}
    if pop is not None:  # for the record (not the reported model): the mean of the population
        ranked = sorted(pop, key=lambda ind: ind.fitness.wvalues[0] if ind.fitness.valid else -np.inf,
                        reverse=True)
        means = np.stack([np.mean(ranked[:5], axis=0), np.mean(pop, axis=0)]).astype(np.float32)
        _, val_acc, _ = evaluator.scores(means, x_val, y_val)
        _, test_acc, _ = evaluator.scores(means, x_test, y_test)
        extra = {"mean_of_five_fittest": {"val_accuracy": float(val_acc[0]), "test_accuracy": float(test_acc[0])},
                 "population_mean": {"val_accuracy": float(val_acc[1]), "test_accuracy": float(test_acc[1])}}
    probs = evaluator.predict(best, x_test)[0]
    y_pred = probs.argmax(axis=1)
    from sklearn.metrics import classification_report

    report_text = classification_report(y_test, y_pred, digits=4)
    report = classification_report(y_test, y_pred, output_dict=True)
    return {
        "method": method,
        "config": config,
        "test_accuracy": float((y_pred == y_test).mean()),
        "generations": generation,
        "evaluations": counted + mapper.individuals,
        "wall_seconds": wall,
        "measure_seconds": clock.paused,
        "curve": curve,
        "classification_report": report,
        "classification_report_text": report_text,
        **extra,
        "best_weights": np.asarray(best),  # not written to the JSON (see main)
        "best_weights_sha256": hashlib.sha256(np.ascontiguousarray(best, np.float32).tobytes()).hexdigest(),
    }


def plot(results: list[dict], path: Path) -> None:
    """PNG of test accuracy vs optimisation time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        ax.plot([p["seconds"] for p in r["curve"]], [p["test_accuracy"] for p in r["curve"]],
                marker=".", label=f"{r.get('label', r['method'])} ({r['test_accuracy']:.2%})")
    ax.set_xlabel("optimisation time (s)")
    ax.set_ylabel("MNIST test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Weight evolution on MNIST (2 CPU cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["seed004", "ga", "es", "pgpe", "sepcma", "cma",
                                                         "seedarch"], choices=METHODS)
    parser.add_argument("--reproduce-seed-004", action="store_true",
                        help="run only seed 004's configuration (same as --methods seed004)")
    parser.add_argument("--budget", type=float, default=600.0,
                        help="seconds of optimisation time per method (default 10 minutes)")
    parser.add_argument("--generations", type=int, default=None,
                        help="stop after this many generations instead of --budget seconds (the GA's "
                             "mutation annealing then follows generations): load-independent runs")
    parser.add_argument("--backend", choices=["serial", "auto", "scoop", "processes"], default="serial",
                        help="evaluation backend (deapnn.parallel.register_backend); 'auto' is SCOOP "
                             "under `python -m scoop`")
    parser.add_argument("--workers", type=int, default=None,
                        help="workers of the backend (processes; for SCOOP the chunking, default -n)")
    parser.add_argument("--save-weights", type=Path, default=None,
                        help="write each method's reported weight vector to PATH_METHOD.npy")
    parser.add_argument("--arch", choices=["conv", "mlp"], default="conv",
                        help="network of ga and es (seed004 is always 784-128-10)")
    parser.add_argument("--filters", type=int, default=8, help="filters of the conv front end")
    parser.add_argument("--hidden", type=int, nargs="*", default=[],
                        help="hidden Dense sizes of ga/es (mlp: e.g. 32; conv: after the pooling)")
    parser.add_argument("--population", type=int, default=100, help="GA population")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=float, default=30.0,
                        help="seconds of optimisation between test-accuracy measurements")
    parser.add_argument("--ga-batch", type=int, default=128)
    parser.add_argument("--ga-sigma", type=float, default=0.2,
                        help="mutation step, times each layer's Glorot standard deviation")
    parser.add_argument("--ga-sigma-final", type=float, default=0.02,
                        help="anneal the GA mutation step geometrically to this value over the "
                             "budget (equal to --ga-sigma: constant step)")
    parser.add_argument("--ga-batch-final", type=int, default=256,
                        help="GA minibatch from --ga-batch-switch of the run on (0: --ga-batch all along)")
    parser.add_argument("--ga-batch-switch", type=float, default=0.4,
                        help="fraction of the run (time or --generations) at which --ga-batch-final starts")
    parser.add_argument("--ga-indpb", type=float, default=1.0)
    parser.add_argument("--ga-mate", choices=["blend", "heuristic"], default="blend",
                        help="GA crossover: cx_blend (--ga-alpha) or cx_heuristic (--ga-ratio)")
    parser.add_argument("--ga-alpha", type=float, default=0.0)
    parser.add_argument("--ga-ratio", type=float, default=1.0,
                        help="cx_heuristic: largest step beyond the fitter parent")
    parser.add_argument("--ga-cxpb", type=float, default=0.5)
    parser.add_argument("--ga-mutpb", type=float, default=0.9)
    parser.add_argument("--ga-tournsize", type=int, default=5)
    parser.add_argument("--ga-elites", type=int, default=5)
    parser.add_argument("--es-population", type=int, default=200)
    parser.add_argument("--es-batch", type=int, default=64)
    parser.add_argument("--es-sigma", type=float, default=0.05)
    parser.add_argument("--es-lr", type=float, default=0.02)
    parser.add_argument("--es-weight-decay", type=float, default=0.0)
    parser.add_argument("--es-lr-decay", type=float, default=0.9997,
                        help="learning-rate factor per generation (floor: 0.1 x --es-lr)")
    parser.add_argument("--es-sigma-decay", type=float, default=0.9999,
                        help="sigma factor per generation (floor: 0.2 x --es-sigma)")
    parser.add_argument("--pgpe-population", type=int, default=100, help="PGPE lambda_ (even)")
    parser.add_argument("--pgpe-batch", type=int, default=128)
    parser.add_argument("--pgpe-sigma", type=float, default=0.05, help="initial per-weight sigma")
    parser.add_argument("--pgpe-lr", type=float, default=0.15, help="ClipUp (or Adam) step size")
    parser.add_argument("--pgpe-max-speed", type=float, default=None,
                        help="ClipUp velocity bound (default 2 x --pgpe-lr)")
    parser.add_argument("--pgpe-lr-decay", type=float, default=0.9997,
                        help="learning-rate (and max-speed) factor per generation (floor: 0.1 x --pgpe-lr)")
    parser.add_argument("--pgpe-optimizer", choices=["clipup", "adam"], default="clipup")
    parser.add_argument("--pgpe-sigma-lr", type=float, default=0.1, help="sigma learning rate")
    parser.add_argument("--pgpe-weight-decay", type=float, default=0.0)
    parser.add_argument("--sepcma-population", type=int, default=100)
    parser.add_argument("--sepcma-batch", type=int, default=128)
    parser.add_argument("--sepcma-sigma", type=float, default=0.05)
    parser.add_argument("--cma-population", type=int, default=40)
    parser.add_argument("--cma-batch", type=int, default=128)
    parser.add_argument("--cma-sigma", type=float, default=0.1)
    parser.add_argument("--cma-filters", type=int, default=2,
                        help="filters of cma's conv front end (no hidden layer: 2 filters = 782 weights)")
    parser.add_argument("--cma-hidden", type=int, nargs="*", default=[4],
                        help="hidden sizes of cma's network with --arch mlp")
    parser.add_argument("--label", default="",
                        help="suffix of the method names in the JSON and the plot")
    parser.add_argument("--append", action="store_true",
                        help="add to the results already in --out (same labels are replaced)")
    parser.add_argument("--out", type=Path, default=RESULTS / "weights_mnist.json")
    parser.add_argument("--png", type=Path, default=RESULTS / "weights_mnist.png")
    args = parser.parse_args()
    if args.reproduce_seed_004:
        args.methods = ["seed004"]
    if args.ga_batch_final and not 0.0 <= args.ga_batch_switch <= 1.0:
        parser.error(f"--ga-batch-switch must be in [0, 1], got {args.ga_batch_switch}")
    if args.generations is not None and args.generations < 1:
        parser.error(f"--generations must be >= 1, got {args.generations}")

    from deapnn.data import load_mnist

    data = load_mnist(validation=5000, seed=args.seed)
    results = []
    for method in args.methods:
        print(f"== {method} ({args.budget:.0f} s budget)", flush=True)
        load_before = os.getloadavg()
        results.append(run_method(method, args, data))
        # the machine's load around the run (timing figures are only comparable on an idle one)
        results[-1]["load_average"] = {"before": list(load_before), "after": list(os.getloadavg())}
        print(results[-1]["classification_report_text"])
        for key in ("mean_of_five_fittest", "population_mean"):
            if key in results[-1]:
                print(f"  (for the record) {key}: test {results[-1][key]['test_accuracy']:.4f} "
                      f"val {results[-1][key]['val_accuracy']:.4f}")
    print(f"{'method':<14}{'test acc':>10}{'generations':>13}{'evaluations':>13}{'wall s':>9}")
    for r in results:
        print(f"{r['method'] + args.label:<14}{r['test_accuracy']:>10.4f}{r['generations']:>13}"
              f"{r['evaluations']:>13}{r['wall_seconds']:>9.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    run_args = {k: (v if isinstance(v, (int, float, list, bool)) else str(v))
                for k, v in vars(args).items()}
    for r in results:
        weights = r.pop("best_weights", None)
        if args.save_weights is not None and weights is not None:
            target = args.save_weights.with_name(f"{args.save_weights.stem}_{r['method']}.npy")
            np.save(target, weights)
            print(f"wrote {target} (sha256 {r['best_weights_sha256'][:16]})")
        r["label"] = f"{r['method']}{args.label}"
        r["args"] = run_args
    if args.append and args.out.exists():
        kept = [r for r in json.loads(args.out.read_text())["results"]
                if r.get("label", r["method"]) not in {n["label"] for n in results}]
        results = kept + results
    payload = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
               "results": results}
    args.out.write_text(json.dumps(payload, indent=2))
    plot(results, args.png)
    print(f"wrote {args.out} and {args.png}")


if __name__ == "__main__":
    main()
