"""``deapnn compare``: hyperparameter vs weight evolution, one split, one budget per arm."""

from __future__ import annotations

import argparse

from deapnn.cli.common import add_common, config_from_args, new_folder, run_job

HELP = "hyperparameter evolution vs weight evolution (GA, ES) on one split and one budget"
DESCRIPTION = """\
Should you evolve a network's hyperparameters (and train its weights by gradient descent) or
evolve its weights directly? Every arm gets the same train / validation / test split and the
same wall-clock budget (--budget, per arm):

  hparams  the MLP space evolved by eaSimple, each genome trained briefly, then train_best
  ga       all weights of a small network by eaSimple (make_weight_toolbox, BatchedEvaluator)
  es       the same network's weights by OpenAI-ES (eaGenerateUpdate)

Selection sees only training minibatches and the validation split; the test split is scored
to report. Writes compare.md (table), compare.json and compare.png (test accuracy against wall
time) into the run folder, and prints the table.

example: deapnn compare                       (MNIST, 3 minutes per arm: about 10 minutes)
         deapnn compare --data digits --budget 30s
"""


def add_parser(subparsers: argparse._SubParsersAction, parser_class: type) -> None:
    p = subparsers.add_parser("compare", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("arms")
    g.add_argument("--arms", nargs="+", default=["hparams", "ga", "es"],
                   choices=("hparams", "ga", "es", "snes"), help="default: hparams ga es")
    g.add_argument("--hidden", type=int, nargs="*", default=[32], metavar="UNITS",
                   help="hidden sizes of the weight arms' MLP (small inputs; default 32)")
    g.add_argument("--arch", choices=("auto", "mlp", "conv"), default="auto",
                   help="weight arms' network (auto: the conv front end for images at least "
                        "20 pixels wide, else the MLP)")
    g.add_argument("--hparams-population", type=int, default=6)
    add_common(p, budget_default="3m")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from deapnn.jobs.common import load_data
    from deapnn.jobs.compare import CompareConfig, run_compare

    config = config_from_args(CompareConfig, args)
    load_data(config.data, config.scale, config.seed)  # bad input before a folder exists
    folder = new_folder(args, "compare", config)
    return run_job(folder, lambda: run_compare(folder, config, quiet=args.quiet), quiet=args.quiet)
