"""``deapnn hparams``: evolve a hyperparameter space, then train the best genome."""

from __future__ import annotations

import argparse

from deapnn.cli.common import add_common, budgets, config_from_args, new_folder, positive_float, \
    run_job

HELP = "evolve a network's hyperparameters (MLP or CNN space), then train_best the fittest"
DESCRIPTION = """\
Evolve a hyperparameter space with DEAP's algorithm: every genome's network is trained briefly
(--epochs, --max-training-time) and scored on the validation split; the fittest is then trained
by train_best (early stopping) and scored once on the test split. With --budget the evolution
gets --evolve-fraction of it and train_best the rest. Everything goes to the run folder
(DIR/NAME): run.json, checkpoint, logbook, populations, genealogy, best.keras and best.json,
figures. Ctrl-C keeps the last finished generation: continue with `deapnn resume RUN_DIR`.

example: deapnn hparams --data digits --population 8 --ngen 5 --budget 5m
         deapnn hparams --space cnn --fidelity 0.25,1,3 --promote 0.34 --population 12
"""


def add_parser(subparsers: argparse._SubParsersAction, parser_class: type) -> None:
    from deapnn.hparams.toolbox import MATE, MUTATE, SELECT

    p = subparsers.add_parser("hparams", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("search")
    g.add_argument("--space", default="mlp", metavar="mlp|cnn|SPACE.json",
                   help="the MLP space (default), DeepEvolve's CNN space, or a JSON file written "
                        "by SearchSpace.to_json")
    g.add_argument("--population", type=int, default=8)
    g.add_argument("--ngen", type=int, default=5, help="generations after the first (default 5)")
    g.add_argument("--algorithm", choices=("simple", "mu+lambda", "mu,lambda"), default="simple",
                   help="DEAP's eaSimple (default), eaMuPlusLambda or eaMuCommaLambda (lambda = 2 mu)")
    g.add_argument("--cxpb", type=float, default=0.5)
    g.add_argument("--mutpb", type=float, default=0.4)
    g.add_argument("--mate", choices=sorted(MATE), default="uniform")
    g.add_argument("--mutate", choices=sorted(MUTATE), default="perturb")
    g.add_argument("--select", choices=sorted(SELECT), default="tournament")
    g.add_argument("--tournsize", type=int, default=3)
    g.add_argument("--indpb", type=float, default=None,
                   help="per-gene mutation probability (default 1 / number of genes)")
    g.add_argument("--sigma", type=float, default=0.1, help="perturb's step, a fraction of each range")
    g.add_argument("--no-novel", dest="novel", action="store_false",
                   help="allow children that repeat a genome already seen")
    g.add_argument("--params-objective", action="store_true",
                   help="two objectives: validation accuracy up, number of weights down (NSGA-II)")
    g.add_argument("--hof", type=int, default=5, help="hall of fame size")
    g = p.add_argument_group("evaluation")
    g.add_argument("--epochs", type=int, default=1, help="training epochs per genome")
    g.add_argument("--max-training-time", type=positive_float, default=None, metavar="SECONDS",
                   help="time limit per genome (default: a third of the evolution budget's share "
                        "per genome, or 120 s)")
    g.add_argument("--lr-schedule", choices=("constant", "linear", "cosine"), default="linear")
    g.add_argument("--fidelity", type=budgets, default=None, metavar="B0,B1,...",
                   help="multi-fidelity: increasing training budgets in epochs (fractions "
                        "allowed), e.g. 0.25,1,3; each generation trains every new genome to B0 "
                        "and promotes the best --promote fraction rung by rung, resuming from the "
                        "lower rung's weights (--epochs is then unused)")
    g.add_argument("--promote", type=float, default=0.5,
                   help="with --fidelity: the fraction of a rung promoted to the next (default 0.5)")
    g = p.add_argument_group("stopping")
    g.add_argument("--target", type=float, default=None, help="stop once the best reaches this")
    g.add_argument("--patience", type=int, default=None,
                   help="stop after this many generations without improvement")
    g.add_argument("--max-evaluations", type=int, default=None)
    g.add_argument("--evolve-fraction", type=float, default=0.7,
                   help="share of --budget for the evolution; train_best gets the rest")
    g = p.add_argument_group("train_best")
    g.add_argument("--best-epochs", type=int, default=20)
    g.add_argument("--best-patience", type=int, default=5)
    g.add_argument("--best-time", type=positive_float, default=None, metavar="SECONDS",
                   help="train_best's time limit without --budget")
    add_common(p, budget_default=None)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from deapnn.jobs.common import load_data
    from deapnn.jobs.hparams import HparamsConfig, load_space, run_hparams

    config = config_from_args(HparamsConfig, args)
    load_space(config.space)
    data = load_data(config.data, config.scale, config.seed)  # bad input before a folder exists
    folder = new_folder(args, "hparams", config)
    return run_job(folder, lambda: run_hparams(folder, config, quiet=args.quiet, data=data),
                   quiet=args.quiet)
