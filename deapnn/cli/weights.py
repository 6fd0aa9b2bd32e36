"""``deapnn weights``: evolve all weights of a network."""

from __future__ import annotations

import argparse

from deapnn.cli.common import add_common, config_from_args, new_folder, positive_float, run_job

HELP = "evolve all weights of a network as one vector (GA, OpenAI-ES, SNES, PGPE or CMA-ES)"
DESCRIPTION = """\
Evolve every weight of a network as one float32 vector, scored a population at a time on
training minibatches (minus the cross-entropy): ga is DEAP's eaSimple with blend crossover,
per-layer Gaussian mutation annealed over --ngen (or the budget) and elitist tournaments, its
survivors re-scored on each generation's minibatch; es is OpenAI-ES, snes separable NES, pgpe
PGPE with ClipUp, sepcma separable CMA-ES and cma DEAP's own cma.Strategy (full covariance,
small networks only), all through DEAP's eaGenerateUpdate. The current model (the mean, or
the GA's best on the validation split among its five fittest) is measured every --eval-every
seconds with the clock stopped; test accuracy is only reported. The run folder holds
best.npy (the weights), best.keras, the logbook, curve.json and the checkpoint.

example: deapnn weights --data digits --strategy es --hidden 32 --budget 60s
"""


def add_parser(subparsers: argparse._SubParsersAction, parser_class: type) -> None:
    p = subparsers.add_parser("weights", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("network")
    g.add_argument("--arch", choices=("auto", "mlp", "conv"), default="auto",
                   help="mlp: input-HIDDEN-classes; conv: Conv2D(FILTERS, 5x5, stride 2) -> "
                        "max pool -> HIDDEN -> softmax; auto (default): conv for images at least "
                        "20 pixels wide (no hidden layer), else mlp")
    g.add_argument("--hidden", type=int, nargs="*", default=[32], metavar="UNITS",
                   help="hidden Dense sizes (default 32)")
    g.add_argument("--filters", type=int, default=8)
    g.add_argument("--model", default=None, metavar="MODEL.keras",
                   help="evolve the weights of this saved Keras model instead (es and snes "
                        "start from its weights)")
    g = p.add_argument_group("strategy")
    g.add_argument("--strategy", "--method", dest="strategy",
                   choices=("ga", "es", "snes", "pgpe", "sepcma", "cma"), default="ga")
    g.add_argument("--population", type=int, default=None,
                   help="default 100 (ga, snes, pgpe, sepcma), 200 (es) or 40 (cma)")
    g.add_argument("--ngen", type=int, default=None, help="stop after this many generations")
    g.add_argument("--batch", type=int, default=None,
                   help="minibatch (default 128 ga/pgpe/sepcma/cma, 64 es/snes)")
    g.add_argument("--sigma", type=float, default=None,
                   help="ga: mutation step times each layer's Glorot std (0.2); es/snes/pgpe/sepcma: "
                        "noise (0.05); cma: initial step (0.1)")
    g.add_argument("--sigma-final", type=float, default=0.02,
                   help="ga: anneal the step geometrically to this over --ngen generations, or over the budget without --ngen")
    g.add_argument("--cxpb", type=float, default=0.5)
    g.add_argument("--mutpb", type=float, default=0.9)
    g.add_argument("--alpha", type=float, default=0.0, help="ga: cx_blend's alpha")
    g.add_argument("--tournsize", type=int, default=5)
    g.add_argument("--elites", type=int, default=5)
    g.add_argument("--learning-rate", type=float, default=None,
                   help="es: Adam step (default 0.02); pgpe: ClipUp step (default 0.15, max speed twice it)")
    g.add_argument("--lr-decay", type=float, default=0.9997, help="es, pgpe: learning-rate factor per generation")
    g.add_argument("--sigma-decay", type=float, default=0.9999)
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--eval-every", type=positive_float, default=10.0, metavar="SECONDS",
                   help="seconds of optimisation between measurements (default 10)")
    add_common(p, budget_default="5m")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from deapnn.jobs.common import load_data
    from deapnn.jobs.weights import WeightsConfig, run_weights

    config = config_from_args(WeightsConfig, args)
    data = load_data(config.data, config.scale, config.seed)
    folder = new_folder(args, "weights", config)
    return run_job(folder, lambda: run_weights(folder, config, quiet=args.quiet, data=data),
                   quiet=args.quiet)
