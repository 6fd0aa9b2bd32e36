"""``deapnn resume RUN_DIR``: continue an interrupted run with the options it was started with."""

from __future__ import annotations

import argparse

from deapnn.cli.common import add_console, budget, command_line, run_job

HELP = "continue an interrupted run from its folder (optionally with more --ngen or --budget)"
DESCRIPTION = """\
Continue a run from its folder with the configuration in its run.json: the checkpoint holds the
last finished generation (population, hall of fame, logbook, cache, every random state), so the
resumed run goes on as the uninterrupted one would. --ngen and --budget extend it.

example: deapnn resume runs/hparams-20260101-120000 --ngen 10
"""


def add_parser(subparsers: argparse._SubParsersAction, parser_class: type) -> None:
    p = subparsers.add_parser("resume", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--ngen", type=int, default=None, help="new total number of generations")
    p.add_argument("--budget", type=budget, default=None, metavar="TIME",
                   help="new wall-clock budget (90s, 10m, 2h)")
    add_console(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    from deapnn.jobs.common import BadInput, RunFolder, config_dict, config_from

    folder = RunFolder.open(args.run_dir, ("hparams", "weights", "compare"))
    overrides = {k: v for k, v in (("ngen", args.ngen), ("budget", args.budget)) if v is not None}
    if "ngen" in overrides and folder.kind == "compare":
        raise BadInput("compare runs have no --ngen: extend them with --budget")
    if folder.kind == "hparams":
        from deapnn.jobs.hparams import HparamsConfig as cls, run_hparams as job
    elif folder.kind == "weights":
        from deapnn.jobs.weights import WeightsConfig as cls, run_weights as job
    else:
        from deapnn.jobs.compare import CompareConfig as cls, run_compare as job
    config = config_from(cls, {**folder.config, **overrides})
    if overrides:
        folder.config = config_dict(config)
        if folder.kind != "compare" and folder.file("result.json").exists():
            folder.file("result.json").unlink()  # extend a finished run: train_best again
    folder.history.append({"command": command_line(), "started": time.time()})
    if not args.quiet:
        print(f"resuming {folder.kind} run {folder.path} ({folder.status})")
    return run_job(folder, lambda: job(folder, config, quiet=args.quiet), quiet=args.quiet)
