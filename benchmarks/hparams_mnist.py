"""Evolve the default MLP space (NaturalSelection's 15 genes + 3) on real MNIST.

Every genome is trained for one epoch (with a per-model time limit) and scored on 5000
validation images held out of the training set, its learning rate decayed linearly to 0 over
that epoch (``--lr-schedule``, budget-aware training); DEAP's ``eaSimple`` (through
``deapnn.evolve``) evolves the population with a HallOfFame and the evaluation cache, mutating
genes by local steps (``--mutate perturb``, the default) or by resampling. The fittest genome
is then fully trained by ``deapnn.keras.training.train_best`` (early stopping on the validation
accuracy, learning rate halved on plateaus) and scored once on the 10000 test images.

To reproduce: ``python benchmarks/hparams_mnist.py --population 24 --ngen 15 --seed 0
--max-training-time 90 --mutate perturb`` (about 2 hours on 2 cores). Long runs: add
``--checkpoint run.pkl``; running the same command again resumes after the last finished
generation.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deap import tools  # noqa: E402

import deapnn  # noqa: E402
from deapnn.data import load_mnist  # noqa: E402
from deapnn.core.failures import is_failure  # noqa: E402
from deapnn.hparams.genome import make_genome  # noqa: E402
from deapnn.keras.models import MLP_SPACE  # noqa: E402
from deapnn.core.plotting import plot_logbook  # noqa: E402
from deapnn.keras.training import KerasEvaluator, train_best  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run."""
    return "python benchmarks/hparams_mnist.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
        if k != "out" and v is not None)


def _train_best(genome, evaluator: KerasEvaluator, args: argparse.Namespace):
    """``train_best`` with the script's options; returns the result and its JSON record."""
    result = train_best(genome, evaluator, epochs=args.best_epochs, patience=args.patience,
                        monitor=args.monitor,
                        path=Path(args.out).with_name(Path(args.out).stem + "_best"),
                        max_training_time=args.best_time,
                        lr_patience=None if args.lr_patience < 0 else args.lr_patience)
    record = {"test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
              "val_accuracy": result.val_accuracy, "epochs": result.epochs,
              "best_epoch": result.best_epoch, "seconds": result.seconds,
              "model_path": str(result.model_path), "genome_path": str(result.genome_path)}
    return result, record


def run(args: argparse.Namespace) -> tuple[dict, tools.Logbook]:
    """Runs the evolution and ``train_best``; returns the JSON-able report and the logbook."""
    deapnn.seed(args.seed)
    evaluator = KerasEvaluator(functools.partial(load_mnist, validation=args.validation),
                               max_epochs=1, max_training_time=args.max_training_time,
                               seed=args.seed, steps_per_execution=args.steps_per_execution,
                               lr_schedule=args.lr_schedule)
    mutate_kwargs = {"indpb": args.indpb} if args.mutate == "resample" else {
        "indpb": args.indpb, "sigma": args.sigma}
    toolbox = deapnn.make_toolbox(MLP_SPACE, evaluator, mate=args.mate, mutate=args.mutate,
                                  mutate_kwargs=mutate_kwargs,
                                  select_kwargs={"tournsize": args.tournsize}, novel=True)
    hof = tools.HallOfFame(args.hof)
    start = time.perf_counter()
    evaluator.dataset  # load MNIST once, outside the timed evolution's first generation
    load_seconds = time.perf_counter() - start
    population = toolbox.population(n=args.population)
    population, logbook = deapnn.evolve(population, toolbox, args.ngen, cxpb=args.cxpb,
                                        mutpb=args.mutpb, stats=deapnn.fitness_stats(),
                                        halloffame=hof, checkpoint=args.checkpoint,
                                        progress=True)
    evolve_seconds = logbook[-1]["elapsed"]  # summed over resumed runs of a checkpoint
    best = hof[0]
    val_accuracy = best.fitness.values[0]
    print(f"\nBest genome ({toolbox.cache.misses} distinct evaluations, "
          f"{toolbox.cache.hits} cache hits, {len(toolbox.cache.failures)} failures, "
          f"{evolve_seconds / 60:.1f} min):")
    for name, value in best.as_dict().items():
        print(f"  {name:<14} {value}")
    print(f"  1-epoch validation accuracy {val_accuracy:.4f}")

    best_start = time.perf_counter()
    result, best_record = _train_best(best, evaluator, args)
    best_seconds = time.perf_counter() - best_start
    total = load_seconds + evolve_seconds + best_seconds
    print(f"train_best: {result.epochs} epochs (best {result.best_epoch}), "
          f"test accuracy {result.test_accuracy:.4f}, test loss {result.test_loss:.4f}, "
          f"{best_seconds / 60:.1f} min")
    print(f"\n{'quantity':<36}{'value':>12}")
    rows = [("best 1-epoch validation accuracy", f"{val_accuracy:.4f}"),
            ("train_best test accuracy", f"{result.test_accuracy:.4f}"),
            ("distinct evaluations", str(toolbox.cache.misses)),
            ("evolution wall time (min)", f"{evolve_seconds / 60:.1f}"),
            ("train_best wall time (min)", f"{best_seconds / 60:.1f}"),
            ("total wall time (min)", f"{total / 60:.1f}")]
    for label, value in rows:
        print(f"{label:<36}{value:>12}")

    evaluations = [{"genome": dict(zip(MLP_SPACE.names, key)),
                    "fitness": [_jsonable(v) for v in fitness],
                    "failure": fitness.reason if is_failure(fitness) else None}
                   for key, fitness in toolbox.cache.records.items()]
    report = {
        "command": _command(args),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "cpu_count": os.cpu_count(),
        "best_genome": best.as_dict(),
        "best_val_accuracy_1_epoch": val_accuracy,
        "hall_of_fame": [{"genome": g.as_dict(), "val_accuracy": g.fitness.values[0]} for g in hof],
        "train_best": best_record,
        "distinct_evaluations": toolbox.cache.misses,
        "cache_hits": toolbox.cache.hits,
        "failures": len(toolbox.cache.failures),
        "seconds": {"load": load_seconds, "evolve": evolve_seconds, "train_best": best_seconds,
                    "total": total},
        "logbook": [{k: _jsonable(v) for k, v in dict(r).items()} for r in logbook],
        "evaluations": evaluations,
    }
    return report, logbook


def retrain(args: argparse.Namespace) -> dict:
    """Only ``train_best`` on the best genome of an earlier report (``--train-only``)."""
    earlier = json.loads(Path(args.train_only).read_text())
    genome = make_genome(MLP_SPACE, earlier["best_genome"])
    evaluator = KerasEvaluator(functools.partial(load_mnist, validation=args.validation),
                               seed=args.seed, steps_per_execution=args.steps_per_execution)
    start = time.perf_counter()
    result, record = _train_best(genome, evaluator, args)
    seconds = time.perf_counter() - start
    print(f"train_best of {args.train_only}'s best genome (1-epoch validation accuracy "
          f"{earlier['best_val_accuracy_1_epoch']:.4f}): {result.epochs} epochs (best "
          f"{result.best_epoch}), test accuracy {result.test_accuracy:.4f}, test loss "
          f"{result.test_loss:.4f}, {seconds / 60:.1f} min")
    return {"command": _command(args),
            "best_genome": genome.as_dict(),
            "best_val_accuracy_1_epoch": earlier["best_val_accuracy_1_epoch"],
            "train_best": record,
            "seconds": {"train_best": seconds}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--ngen", type=int, default=5, help="generations after the first")
    parser.add_argument("--cxpb", type=float, default=0.5)
    parser.add_argument("--mutpb", type=float, default=0.4)
    parser.add_argument("--indpb", type=float, default=0.15, help="per-gene resample probability")
    parser.add_argument("--mutate", default="perturb", choices=["perturb", "resample"],
                        help="resample genes anywhere, or perturb: local steps (mut_perturb)")
    parser.add_argument("--sigma", type=float, default=0.1,
                        help="perturb's step, a fraction of each gene's range")
    parser.add_argument("--mate", default="uniform", choices=["uniform", "one_point"])
    parser.add_argument("--tournsize", type=int, default=3)
    parser.add_argument("--hof", type=int, default=5, help="hall of fame size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation", type=int, default=5000)
    parser.add_argument("--max-training-time", type=float, default=45.0,
                        help="seconds per 1-epoch evaluation")
    parser.add_argument("--steps-per-execution", type=int, default=32)
    parser.add_argument("--lr-schedule", default="linear", choices=["constant", "linear", "cosine"],
                        help="learning rate over each 1-epoch evaluation: decayed to 0 "
                             "(budget-aware, default) or constant as in NaturalSelection")
    parser.add_argument("--lr-patience", type=int, default=3,
                        help="train_best halves the learning rate after this many epochs "
                             "without improvement (-1: never)")
    parser.add_argument("--best-epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--monitor", default="val_accuracy",
                        help="early-stopping quantity of train_best")
    parser.add_argument("--best-time", type=float, default=900.0,
                        help="time limit of train_best in seconds")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="save the run after every generation; if the file exists, resume "
                             "from it (give a larger --ngen to extend a finished run; the "
                             "evolution's wall time sums every run's generations)")
    parser.add_argument("--out", type=Path, default=RESULTS / "hparams_mnist.json")
    parser.add_argument("--train-only", type=Path, default=None, metavar="REPORT_JSON",
                        help="skip the evolution: train_best the best genome of an earlier "
                             "report (e.g. benchmarks/results/hparams_mnist.json)")
    args = parser.parse_args()
    if args.train_only is not None:
        report = retrain(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
        print(f"wrote {args.out}")
        return
    report, logbook = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    png = args.out.with_suffix(".png")
    plot_logbook(logbook, title="MNIST, 1-epoch validation accuracy by generation",
                 ylabel="validation accuracy", path=png)
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
