"""Checkpoint files of :func:`deapnn.evolve`: atomic writes, a versioned format, clear errors.

A checkpoint is one pickle of a dict (DEAP's own checkpointing recipe) with a header:
``format`` (:data:`FORMAT`), ``version`` (:data:`VERSION`, the layout of the dict) and
``deapnn_version``. :func:`save_checkpoint` writes a temporary file next to the target, flushes
and ``fsync``-s it, then ``os.replace``-s it over the target (and ``fsync``-s the folder), so a
process killed at any moment leaves either the previous checkpoint or the new one, never a
partial file. :func:`load_checkpoint` raises :class:`CheckpointError` (naming the file) for a
truncated or corrupt file, a pickle that is not a deapnn checkpoint, or one written by another
deapnn version or checkpoint format.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["CheckpointError", "FORMAT", "VERSION", "check_writable", "load_checkpoint", "save_checkpoint"]

#: The ``format`` tag of every deapnn checkpoint.
FORMAT = "deapnn-checkpoint"
#: The layout of the checkpoint dict; a checkpoint with another version is refused.
VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint cannot be read, is not a deapnn checkpoint, comes from another version or
    another run, or its folder cannot be written. The message names the file."""


def _deapnn_version() -> str:
    module = sys.modules.get("deapnn")
    return getattr(module, "__version__", "unknown")


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}."


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Make sure a checkpoint can be written at ``path`` before any work is done.

    Creates a missing folder, writes and removes a probe file in it, and removes temporary
    files left by a writer that was killed.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        CheckpointError: If the folder cannot be created or written, or ``path`` is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=".probe")
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {str(path)!r}: {exc}") from exc
    prefix = _tmp_prefix(path)
    for stale in path.parent.iterdir():
        if stale.name.startswith(prefix) and stale.name.endswith(".tmp"):
            try:
                stale.unlink()
            except OSError:
                pass
    return path


def _write_bytes(f: BinaryIO, data: bytes) -> None:
    """Write ``data`` to ``f`` (a separate function so a test can kill a process mid-write)."""
    f.write(data)


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically, with the format header added.

    The state is pickled in memory first (an unpicklable state raises before the file is
    touched), written to a temporary file in the same folder, flushed, ``fsync``-ed and moved
    over ``path`` with ``os.replace``. A crash at any point leaves the previous checkpoint.

    Raises:
        CheckpointError: If the folder cannot be written (the previous checkpoint is kept).
    """
    path = Path(path)
    data = pickle.dumps(
        {"format": FORMAT, "version": VERSION, "deapnn_version": _deapnn_version(), **state},
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_tmp_prefix(path), suffix=".tmp")
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {str(path)!r}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            _write_bytes(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise CheckpointError(f"cannot write checkpoint {str(path)!r}: {exc}") from exc
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (through :func:`deapnn.evolve`).

    Returns:
        The state dict, header included.

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        CheckpointError: If the file is truncated or corrupt, is not a deapnn checkpoint, or was
            written by another checkpoint format or deapnn version.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {exc}") from exc
    except Exception as exc:  # truncated (EOFError), corrupt (UnpicklingError), missing classes ...
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or corrupt ({type(exc).__name__}: {exc}); "
            f"delete it to start again"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a deapnn checkpoint")
    if state.get("version") != VERSION or state.get("deapnn_version") != _deapnn_version():
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by deapnn {state.get('deapnn_version')!r} (checkpoint "
            f"format {state.get('version')!r}); this is deapnn {_deapnn_version()!r} (format {VERSION}): "
            f"resume it with that version or start a new run"
        )
    return state
