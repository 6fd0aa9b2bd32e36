"""Conventions every ``deapnn`` subcommand shares: flags, run folders, exit codes.

Exit codes: 0 done; 1 a setup error (the original message, one line); 2 bad input (an unknown
subcommand or flag, a budget that does not parse, a bad data or space file, a missing run folder
or one of another kind: one line naming the problem, no traceback); 130 interrupted (Ctrl-C: the
last finished generation is kept, and the line says how to resume).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

from deapnn.jobs.common import BadInput, RunFolder, parse_budget

EXIT_OK, EXIT_SETUP, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # noqa: D102 - argparse's hook
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def budget(text: str) -> float:
    """argparse type of ``--budget``: ``90s``, ``10m``, ``2h``."""
    try:
        return parse_budget(text)
    except BadInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def seed_value(text: str) -> int:
    """``--seed``: an int in [0, 2**32 - 2] (numpy's and scikit-learn's seeds; the test split
    uses ``seed + 1``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r} is not an integer") from None
    if not 0 <= value < 2**32 - 1:
        raise argparse.ArgumentTypeError(f"seed {value} must be in [0, {2**32 - 2}]")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def budgets(text: str) -> tuple[float, ...]:
    """argparse type of ``--fidelity``: comma-separated, increasing budgets in epochs
    (``0.25,1,3``), checked by :func:`deapnn.core.fidelity.check_budgets`."""
    from deapnn.core.fidelity import check_budgets

    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers "
                                         f"of epochs, such as 0.25,1,3") from None
    try:
        return check_budgets(values)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_common(parser: argparse.ArgumentParser, *, budget_default: str | None,
               data: bool = True, out: bool = True) -> None:
    """The flags every job has: data, seed, parallelism, budget, console, output folder."""
    if data:
        g = parser.add_argument_group("data")
        g.add_argument("--data", default="mnist", metavar="mnist|digits|PATH.npz",
                       help="mnist (default; loaded offline through deapnn's chain), digits "
                            "(scikit-learn's 8x8 digits) or an .npz with x_train, y_train and "
                            "optionally x_test, y_test")
        g.add_argument("--scale", type=positive_float, default=None,
                       help="divide the inputs by this (e.g. 255 for bytes)")
    g = parser.add_argument_group("run")
    g.add_argument("--seed", type=seed_value, default=0, help="seed of the split, the evolution and Keras")
    g.add_argument("--budget", type=budget, default=parse_budget(budget_default),
                   metavar="TIME", help=f"wall-clock budget: 90s, 10m or 2h (default: "
                                        f"{budget_default or 'none'})")
    g.add_argument("--workers", type=int, default=1, help="evaluation workers of --backend processes (default 1)")
    g.add_argument("--backend", choices=("serial", "processes", "scoop"), default="serial",
                   help="how evaluations run: serial (default), spawned processes, or SCOOP "
                        "(start with python -m scoop)")
    if out:
        g.add_argument("--out", default="runs", metavar="DIR",
                       help="folder of run folders (default runs/)")
        g.add_argument("--name", default=None,
                       help="run name: the run folder is DIR/NAME (default <kind>-<date-time>)")
    add_console(parser)


def add_console(parser: argparse.ArgumentParser) -> None:
    g = parser.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars or progress lines; results and errors only")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="show TensorFlow's start-up and log lines")


def config_from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """A job's config dataclass from the parsed flags of the same names."""
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    values.update(extra)
    return cls(**values)


def new_folder(args: argparse.Namespace, kind: str, config: Any) -> RunFolder:
    from deapnn.jobs.common import config_dict

    name = args.name or f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    if "/" in name or name in (".", ".."):
        raise BadInput(f"--name must be a plain folder name, got {name!r}")
    return RunFolder.create(Path(args.out) / name, kind, command_line(), config_dict(config))


def command_line() -> list[str]:
    """The exact command, as typed (``deapnn`` for the console script or ``python -m deapnn``)."""
    argv = list(sys.argv)
    if argv and (argv[0].endswith("__main__.py") or Path(argv[0]).name in ("deapnn", "-m")):
        argv[0] = "deapnn"
    return argv


def run_job(folder: RunFolder, job: Callable[[], Any], *, quiet: bool) -> int:
    """Run ``job`` in ``folder`` with the shared status and Ctrl-C handling."""
    folder.set_status("running")
    try:
        job()
    except KeyboardInterrupt:
        folder.set_status("interrupted")
        print(f"\ninterrupted: {folder.path} keeps every finished generation; continue with: "
              f"deapnn resume {folder.path}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException:
        folder.set_status("failed")
        raise
    folder.set_status("finished")
    from deapnn.jobs.report import report_run

    report_run(folder, log=lambda *a, **k: None)
    if not quiet:
        print(f"run folder: {folder.path} (tables and figures again: deapnn report {folder.path})")
    return EXIT_OK
