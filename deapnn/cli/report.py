"""``deapnn report RUN_DIR``: redraw a run's tables and figures."""

from __future__ import annotations

import argparse

from deapnn.cli.common import EXIT_OK, add_console

HELP = "redraw the tables and figures of a finished or running run"
DESCRIPTION = """\
Redraw a run folder's figures from its JSON files (no TensorFlow, no checkpoint needed):
fitness by generation and against wall time, gene frequencies and value distributions per
generation, the genealogy of the best individual, the Pareto front of a two-objective run, the
weight arms' test accuracy against time, and for a comparison compare.md / compare.png.

example: deapnn report runs/compare-20260101-120000
"""


def add_parser(subparsers: argparse._SubParsersAction, parser_class: type) -> None:
    p = subparsers.add_parser("report", help=HELP, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR")
    add_console(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from deapnn.jobs.common import RunFolder
    from deapnn.jobs.report import report_run

    folder = RunFolder.open(args.run_dir)
    report_run(folder, log=(lambda *a, **k: None) if args.quiet else print)
    return EXIT_OK
