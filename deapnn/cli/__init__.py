"""The ``deapnn`` command line: ``hparams``, ``weights``, ``compare``, ``resume``, ``report``.

``deapnn <subcommand> --help`` describes each; :mod:`deapnn.cli.common` holds the conventions
they share (flags, run folders, exit codes). ``python -m deapnn`` is the same program.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

DESCRIPTION = """\
Evolve Keras networks with DEAP: their hyperparameters, or all of their weights.
Every run writes a run folder (runs/NAME) that `deapnn resume` continues and `deapnn report`
redraws.

start with: deapnn compare          (MNIST, about 10 minutes on 2 cores)
"""


def build_parser():
    """The argument parser of ``deapnn`` with every subcommand."""
    import argparse

    from deapnn.cli import compare, hparams, report, resume, weights
    from deapnn.cli.common import Parser

    parser = Parser(prog="deapnn", description=DESCRIPTION,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    from deapnn import __version__

    parser.add_argument("--version", action="version", version=f"deapnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=Parser)
    sub.required = True
    for module in (compare, hparams, weights, resume, report):
        module.add_parser(sub, Parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    from deapnn.cli.common import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_SETUP
    from deapnn.core.console import quiet_tensorflow

    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_tensorflow(verbose="-v" in argv or "--verbose" in argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_BAD_INPUT
    from deapnn.core.failures import SetupError
    from deapnn.jobs.common import BadInput

    try:
        return args.run(args)
    except BadInput as exc:
        print(f"deapnn {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SetupError as exc:
        print(f"deapnn {args.command}: setup error: {exc}", file=sys.stderr)
        return EXIT_SETUP
    except KeyboardInterrupt:
        print(f"\ndeapnn {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
