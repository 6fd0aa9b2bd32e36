"""A quiet console for Keras runs: TensorFlow's start-up lines hidden unless asked for.

TensorFlow prints its oneDNN, CUDA driver (``cuInit``), CPU-feature and absl lines to the
process's standard error from C++, some of them before its logging is configured, so no Python
logger can stop them. :func:`quiet_tensorflow` sets the environment TensorFlow reads when it is
imported (``TF_CPP_MIN_LOG_LEVEL``, ``GRPC_VERBOSITY``); :func:`import_tensorflow` imports it
with the process's standard error (file descriptor 2) sent to a temporary file, replayed only
when the import fails. Both must run before anything else imports TensorFlow. Spawned worker
processes inherit the environment.

Nothing here imports TensorFlow at module import.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator

__all__ = ["import_tensorflow", "quiet_tensorflow", "silenced_stderr"]

#: Environment set by :func:`quiet_tensorflow` (values used when quiet).
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",      # C++ INFO, WARNING and ERROR lines (cuInit's among them)
    "GRPC_VERBOSITY": "ERROR",
    "KERAS_BACKEND": "tensorflow",
}


def quiet_tensorflow(verbose: bool = False) -> None:
    """Set TensorFlow's logging environment; call before TensorFlow is imported.

    Args:
        verbose: Show TensorFlow's lines (``TF_CPP_MIN_LOG_LEVEL=0``) instead of hiding them
            (``3``). The other variables keep a value the user set.
    """
    for name, value in QUIET_ENV.items():
        if name == "TF_CPP_MIN_LOG_LEVEL":
            # Quiet means quiet: TensorFlow prints its cuInit error at level 2 too, so a level
            # below 3 set elsewhere (a CI script, a notebook) is raised; verbose shows everything.
            os.environ[name] = "0" if verbose else value
        elif os.environ.get(name) is None:
            os.environ[name] = value
    os.environ.setdefault("DEAPNN_VERBOSE", "1" if verbose else "0")


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """Send file descriptor 2 (C++ and Python writes alike) to a temporary file.

    The captured text is written back to standard error if the block raises.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured by pytest)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        except BaseException:
            os.dup2(saved, fd)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)


def import_tensorflow(verbose: bool | None = None) -> None:
    """Import TensorFlow and Keras once, quietly unless ``verbose``.

    Later imports find them in ``sys.modules`` and print nothing; the first graph
    execution's lines are hidden by ``TF_CPP_MIN_LOG_LEVEL``. Cheap after the first call, so
    the Keras edge and worker processes can call it before each ``import keras``.

    Args:
        verbose: Show TensorFlow's lines; default: what :func:`quiet_tensorflow` recorded in
            ``DEAPNN_VERBOSE`` (inherited by worker processes), else quiet.
    """
    if verbose is None:
        verbose = os.environ.get("DEAPNN_VERBOSE") == "1"
    quiet_tensorflow(verbose)
    if "tensorflow" in sys.modules:
        return
    with contextlib.nullcontext() if verbose else silenced_stderr():
        import tensorflow as tf

        importlib.import_module("keras")
        if not verbose:
            tf.get_logger().setLevel("ERROR")
            try:
                import absl.logging

                absl.logging.set_verbosity(absl.logging.ERROR)
            except ImportError:  # pragma: no cover - absl ships with TensorFlow
                pass
