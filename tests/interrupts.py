"""Starting a child that a test interrupts with SIGINT, as Ctrl-C would."""

import signal


def sigint_default() -> None:
    """``preexec_fn`` for ``subprocess.Popen``: SIGINT back to its default in the child.

    A shell starts background jobs with SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler, so a suite run in the background (``pytest &``, ``nohup``)
    would send its SIGINT into the void. The child should meet SIGINT as a terminal user's
    program does. SIGINT is also unblocked, in case the suite's process had it blocked (a
    blocked signal stays blocked across exec, and would wait until the child had finished)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
