"""Evolve the default MLP space (NaturalSelection's 15 genes + 3) on real MNIST.

Every genome is trained for one epoch (with a per-model time limit) and scored on 5000
validation images held out of the training set, its learning rate decayed linearly to 0 over
that epoch (``--lr-schedule``, budget-aware training); DEAP's ``eaSimple`` (through
``deapnn.evolve``) evolves the population with a HallOfFame and the evaluation cache, mutating
genes by local steps (``--mutate perturb``, the default) or by resampling. The fittest genome
is then fully trained by ``deapnn.keras.train_best`` (early stopping on the validation
accuracy) and scored once on the 10000 test images.

The run itself is the library's hyperparameter job (:func:`deapnn.jobs.hparams.run_hparams`,
the same as ``deapnn hparams``) in a run folder (``--run-dir``); this script adds the benchmark
report (``--out``, JSON, and its PNG). Running the same command again resumes the run folder
after its last finished generation; a larger ``--ngen`` extends a finished run.

To reproduce: ``python benchmarks/hparams_mnist.py --population 24 --ngen 15 --seed 0
--max-training-time 90 --mutate perturb`` (about 2 hours on 2 cores).

Multi-fidelity (``--fidelity 0.25,1 --promote 0.34``): each generation trains every new genome
to the first budget (in epochs) and promotes the best fraction rung by rung, resuming from the
lower rung's weights (:class:`deapnn.core.fidelity.MultiFidelity`). Run the same command with
and without it (same ``--seed`` and ``--population``, another ``--run-dir`` and ``--out``) to
compare: the report lists the trainings at each rung, the wall times and the best validation
and test accuracies.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from deapnn.core.console import quiet_tensorflow

quiet_tensorflow()

RESULTS = Path(__file__).parent / "results"


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0].endswith(".py") else "hparams_mnist.py"
    return f"python benchmarks/{script} " + " ".join(
        f"--{k.replace('_', '-')} {','.join(f'{b:g}' for b in v) if isinstance(v, tuple) else v}"
        for k, v in vars(args).items()
        if k not in ("out", "run_dir", "space") and v is not None)


def config_of(args: argparse.Namespace):
    """The library's job configuration of the script's flags."""
    from deapnn.jobs.hparams import HparamsConfig

    return HparamsConfig(
        data="mnist", space=getattr(args, "space", "mlp"), fidelity=args.fidelity,
        promote=args.promote, population=args.population, ngen=args.ngen, cxpb=args.cxpb,
        mutpb=args.mutpb, mate=args.mate, mutate=args.mutate, tournsize=args.tournsize,
        indpb=args.indpb, sigma=args.sigma, novel=True, epochs=1,
        max_training_time=args.max_training_time, lr_schedule=args.lr_schedule,
        steps_per_execution=args.steps_per_execution, best_epochs=args.best_epochs,
        best_patience=args.patience, best_time=args.best_time, hof=args.hof, seed=args.seed)


def run(args: argparse.Namespace) -> dict:
    """Run (or resume) the job in ``args.run_dir``; returns the benchmark report."""
    from deapnn.jobs.common import RunFolder, config_dict
    from deapnn.jobs.hparams import run_hparams

    config = config_of(args)
    run_dir = Path(args.run_dir)
    if (run_dir / "run.json").exists():
        folder = RunFolder.open(run_dir, "hparams")
        old = folder.read_json("result.json")
        if old is not None and old["generations"] < config.ngen:
            folder.file("result.json").unlink()  # extend a finished run: train_best again
        folder.config = config_dict(config)
    else:
        folder = RunFolder.create(run_dir, "hparams", [sys.executable] + sys.argv, config_dict(config))
    folder.set_status("running")
    result = run_hparams(folder, config)
    folder.set_status("finished")
    best = result["train_best"]
    rungs = result.get("rungs") or []
    rows = [("best validation accuracy (search)", f"{result['best_fitness'][0]:.4f}"),
            ("train_best validation accuracy", f"{best['val_accuracy']:.4f}"),
            ("train_best test accuracy", f"{best['test_accuracy']:.4f}"),
            ("distinct genomes", str(result.get("genomes", result["evaluations"]))),
            ("trainings (all rungs)", str(result["evaluations"]))]
    rows += [(f"trainings at rung {r['rung']} ({r['budget']:g} epochs)", str(r["trainings"]))
             for r in rungs]
    rows += [
            ("evolution wall time (min)", f"{result['evolve_seconds'] / 60:.1f}"),
            ("train_best wall time (min)", f"{best['seconds'] / 60:.1f}"),
            ("total wall time (min)", f"{result['wall_seconds'] / 60:.1f}")]
    print(f"\n{'quantity':<36}{'value':>12}")
    for label, value in rows:
        print(f"{label:<36}{value:>12}")
    return {
        "command": _command(args),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "cpu_count": os.cpu_count(),
        "run_dir": str(run_dir),
        "best_genome": result["best_genome"],
        "best_val_accuracy_1_epoch": result["best_fitness"][0],
        "hall_of_fame": [{"genome": h["genome"], "val_accuracy": h["fitness"][0]}
                         for h in result["hall_of_fame"]],
        "train_best": {**best, "model_path": str(folder.file("best.keras")),
                       "genome_path": str(folder.file("best.json"))},
        "distinct_evaluations": result["evaluations"],
        "distinct_genomes": result.get("genomes"),
        "rungs": rungs,
        "cache_hits": result["cache_hits"],
        "failures": result["failures"],
        "seconds": {"evolve": result["evolve_seconds"], "train_best": best["seconds"],
                    "total": result["wall_seconds"]},
        "logbook": folder.read_json("logbook.json"),
    }


def _fidelity(text: str):
    """``--fidelity``: increasing budgets ``0.25,1``, or ``none`` (one training per genome)."""
    from deapnn.cli.common import budgets

    return None if text.lower() in ("none", "off") else budgets(text)


def make_parser(description: str = __doc__, **defaults) -> argparse.ArgumentParser:
    """The script's flags; ``defaults`` overrides some (benchmarks/cnn_mnist.py)."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--ngen", type=int, default=5, help="generations after the first")
    parser.add_argument("--cxpb", type=float, default=0.5)
    parser.add_argument("--mutpb", type=float, default=0.4)
    parser.add_argument("--indpb", type=float, default=0.15, help="per-gene mutation probability")
    parser.add_argument("--mutate", default="perturb", choices=["perturb", "resample"],
                        help="resample genes anywhere, or perturb: local steps (mut_perturb)")
    parser.add_argument("--sigma", type=float, default=0.1,
                        help="perturb's step, a fraction of each gene's range")
    parser.add_argument("--mate", default="uniform", choices=["uniform", "one_point"])
    parser.add_argument("--tournsize", type=int, default=3)
    parser.add_argument("--hof", type=int, default=5, help="hall of fame size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-training-time", type=float, default=45.0,
                        help="seconds per evaluation (per rung with --fidelity)")
    parser.add_argument("--steps-per-execution", type=int, default=32)
    parser.add_argument("--lr-schedule", default="linear", choices=["constant", "linear", "cosine"],
                        help="learning rate over each 1-epoch evaluation (and train_best): "
                             "decayed to 0 (budget-aware, default) or constant; with --fidelity "
                             "it decays over the top rung's budget")
    parser.add_argument("--fidelity", type=_fidelity, default=None, metavar="B0,B1,...",
                        help="multi-fidelity: increasing budgets in epochs, e.g. 0.25,1; "
                             "none: every genome one epoch (--epochs 1)")
    parser.add_argument("--promote", type=float, default=0.5,
                        help="with --fidelity: fraction of each rung promoted (default 0.5)")
    parser.add_argument("--best-epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--best-time", type=float, default=900.0,
                        help="time limit of train_best in seconds")
    parser.add_argument("--run-dir", type=Path, default=RESULTS / "hparams_mnist_run",
                        help="the run folder (checkpoint, store, logbook, figures, best model); "
                             "if it holds this run already, the run resumes from it")
    parser.add_argument("--out", type=Path, default=RESULTS / "hparams_mnist.json")
    parser.set_defaults(**defaults)
    return parser


def main(parser: argparse.ArgumentParser | None = None, title: str = "MNIST MLP") -> None:
    parser = parser or make_parser()
    args = parser.parse_args()
    import json

    from deapnn.core.plotting import plot_logbook

    report = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    png = args.out.with_suffix(".png")
    plot_logbook(report["logbook"], title=f"{title}, best validation accuracy by generation",
                 ylabel="validation accuracy", path=png)
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
