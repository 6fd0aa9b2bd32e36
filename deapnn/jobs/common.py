"""What every job shares: budgets, data specs, run folders, logbook files and bad input.

A **run folder** (``runs/<name>/``) holds everything a run needs to be resumed or reported, with
paths relative to the folder so it can be moved to another machine:

======================  =======================================================================
``run.json``            kind of job, the exact command, the resolved configuration, status
``checkpoint.pkl``      the run loop's checkpoint (and ``checkpoint.pkl.sqlite``, its store)
``logbook.json/.csv``   the logbook, one record per generation
``populations.json``    each generation's genomes (hyperparameter runs: gene plots)
``genealogy.json``      the best individual's ancestors with their fitness (DEAP ``History``)
``weights_state.json``  weight runs: the accuracy curve and the measuring clock, per chunk
``result.json``         the outcome (best fitness, test accuracy, evaluations, wall time)
``best.keras``          the best network; ``best.json`` its genome, or ``best.npy`` its weights
``*.png``               figures, redrawn by ``deapnn report``
======================  =======================================================================
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BadInput", "RunFolder", "load_data", "parse_budget", "to_jsonable", "write_logbook"]

RUN_FILE = "run.json"


class BadInput(ValueError):
    """Input a user can fix (a flag, a file, a folder): the console prints one line, exit 2."""


# ------------------------------------------------------------------------------------ budget
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)
_UNIT = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_budget(text: str | float | int | None) -> float | None:
    """Seconds of a budget written ``90s``, ``10m``, ``2h`` or a plain number of seconds.

    Raises:
        BadInput: For anything else, or a budget that is not positive.
    """
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _BUDGET.match(str(text))
        if match is None:
            raise BadInput(f"budget {text!r} does not parse: write it as 90s, 10m or 2h")
        seconds = float(match.group(1)) * _UNIT[(match.group(2) or "s").lower()]
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadInput(f"budget {text!r} must be a positive time")
    return seconds


def format_seconds(seconds: float) -> str:
    """``95.3 s``, ``12.5 min`` or ``2.1 h``."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# -------------------------------------------------------------------------------------- data
def load_data(spec: str = "mnist", scale: float | None = None, seed: int = 0,
              validation: float | int | None = None) -> Any:
    """The dataset a ``--data`` value names, with its train / validation / test split.

    Args:
        spec: ``"mnist"`` (:func:`deapnn.data.load_mnist`, offline chain), ``"digits"``
            (scikit-learn's 8x8 digits) or the path of an ``.npz`` holding ``x_train`` and
            ``y_train`` and optionally ``x_test`` and ``y_test``.
        scale: Divide the inputs by this (``255`` for bytes); default none (MNIST and digits
            are already in [0, 1]).
        seed: Seeds the stratified split (the same seed gives the same split).
        validation: Validation size (fraction or count); default 5000 for MNIST, 0.2 otherwise.

    Returns:
        A :class:`deapnn.data.Dataset`.

    Raises:
        BadInput: For a missing or unreadable file, missing arrays or labels that do not match.
    """
    from deapnn.data import load_digits, load_mnist

    if scale is not None and (not math.isfinite(scale) or scale <= 0):
        raise BadInput(f"--scale must be a positive number, got {scale!r}")
    if spec == "mnist":
        data = load_mnist(validation=5000 if validation is None else validation, seed=seed)
    elif spec == "digits":
        data = load_digits(validation=0.2 if validation is None else validation, seed=seed)
    else:
        data = _load_npz(Path(spec), seed, 0.1 if validation is None else validation)
    if scale is not None:
        from deapnn.data import Dataset

        data = Dataset(data.x_train / np.float32(scale), data.y_train, data.x_val / np.float32(scale),
                       data.y_val, data.x_test / np.float32(scale), data.y_test,
                       n_classes=data.n_classes, input_shape=data.input_shape, name=data.name)
    return data


def _load_npz(path: Path, seed: int, validation: float | int) -> Any:
    from deapnn.data import from_arrays

    if path.suffix != ".npz":
        raise BadInput(f"--data must be mnist, digits or a .npz file, got {str(path)!r}")
    if not path.is_file():
        raise BadInput(f"data file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise BadInput(f"data file {str(path)!r} cannot be read: {exc}") from exc
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise BadInput(f"data file {str(path)!r} lacks {', '.join(missing)} "
                       f"(it holds {', '.join(sorted(arrays)) or 'nothing'})")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise BadInput(f"data file {str(path)!r} holds only one of x_test and y_test")
    for split in ("train", "test"):
        x, y = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
        if x is None:
            continue
        if len(x) != len(y):
            raise BadInput(f"data file {str(path)!r}: x_{split} has {len(x)} rows but y_{split} "
                           f"has {len(y)} labels")
        if x.dtype.kind not in "fiub":
            raise BadInput(f"data file {str(path)!r}: x_{split} is not numeric ({x.dtype})")
        if np.asarray(x).size and not np.all(np.isfinite(np.asarray(x, dtype=np.float64))):
            raise BadInput(f"data file {str(path)!r}: x_{split} holds NaN or infinite values")
    try:
        return from_arrays(arrays["x_train"], arrays["y_train"], arrays.get("x_test"),
                           arrays.get("y_test"), validation=validation, seed=seed,
                           name=path.stem)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"data file {str(path)!r}: {exc}") from exc


def data_loader(spec: str, scale: float | None, seed: int) -> Any:
    """A picklable zero-argument loader of :func:`load_data` (for evaluators in workers)."""
    return functools.partial(load_data, spec, scale, seed)


# ------------------------------------------------------------------------------------- JSON
def to_jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays to lists, non-finite floats to strings."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return value


def from_json_float(value: Any) -> float:
    """The float of :func:`to_jsonable`'s output (``"nan"``, ``"inf"`` and ``"-inf"`` included)."""
    if value is None:
        return math.nan
    return float(value)


def write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (a crash mid-write keeps the old file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(value), indent=1) + "\n")
    os.replace(tmp, path)


def logbook_records(logbook: Any) -> list[dict]:
    """One flat dict per logbook record; chapter fields become ``<chapter>_<field>``."""
    records = []
    chapters = getattr(logbook, "chapters", {}) or {}
    for i, record in enumerate(logbook):
        flat = {k: v for k, v in dict(record).items() if k not in chapters}
        for name, chapter in chapters.items():
            if i < len(chapter):
                for k, v in dict(chapter[i]).items():
                    if k not in ("gen", "nevals"):
                        flat[f"{name}_{k}"] = v
        records.append(to_jsonable(flat))
    return records


def write_logbook(folder: Path, logbook: Any) -> list[dict]:
    """Write ``logbook.json`` and ``logbook.csv`` into ``folder``; returns the records."""
    records = logbook_records(logbook)
    write_json(folder / "logbook.json", records)
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    tmp = folder / "logbook.csv.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in records:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    os.replace(tmp, folder / "logbook.csv")
    return records


# ------------------------------------------------------------------------------- run folder
@dataclass
class RunFolder:
    """A run's folder: ``run.json`` (kind, command, configuration, status) and its files.

    Attributes:
        path: The folder.
        kind: ``"hparams"``, ``"weights"`` or ``"compare"``.
        command: The exact command line that started the run (argv).
        config: The resolved configuration (JSON values).
        status: ``"running"``, ``"interrupted"``, ``"finished"`` or ``"failed"``.
        history: Each start and resume: command, time and status.
    """

    path: Path
    kind: str
    command: list[str]
    config: dict[str, Any]
    status: str = "running"
    history: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def file(self, name: str) -> Path:
        """The path of ``name`` inside the folder."""
        return self.path / name

    @classmethod
    def create(cls, path: str | os.PathLike, kind: str, command: list[str],
               config: dict[str, Any]) -> "RunFolder":
        """Make a new run folder; a folder that already holds a run is an error."""
        path = Path(path)
        if (path / RUN_FILE).exists():
            raise BadInput(f"run folder {str(path)!r} already holds a run: use `deapnn resume "
                           f"{path}`, or another --name")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"cannot create run folder {str(path)!r}: {exc.strerror}") from exc
        if not os.access(path, os.W_OK):
            raise BadInput(f"run folder {str(path)!r} is not writable")
        folder = cls(path, kind, list(command), dict(config))
        folder.history.append({"command": list(command), "started": time.time()})
        folder.save()
        return folder

    @classmethod
    def open(cls, path: str | os.PathLike, kind: str | tuple[str, ...] | None = None) -> "RunFolder":
        """Read a run folder; a missing folder or one of another kind is an error."""
        path = Path(path)
        if not path.is_dir():
            raise BadInput(f"run folder {str(path)!r} does not exist")
        run_file = path / RUN_FILE
        if not run_file.is_file():
            raise BadInput(f"{str(path)!r} is not a deapnn run folder (no {RUN_FILE})")
        try:
            data = json.loads(run_file.read_text())
            folder = cls(path, data["kind"], data["command"], data["config"],
                         data.get("status", "running"), data.get("history", []))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"{str(run_file)!r} is not a valid run file: {exc}") from exc
        kinds = (kind,) if isinstance(kind, str) else kind
        if kinds is not None and folder.kind not in kinds:
            raise BadInput(f"run folder {str(path)!r} holds a {folder.kind!r} run, "
                           f"not {' or '.join(map(repr, kinds))}")
        return folder

    def save(self) -> None:
        """Rewrite ``run.json``."""
        write_json(self.file(RUN_FILE), {
            "kind": self.kind, "command": self.command, "config": self.config,
            "status": self.status, "history": self.history,
            "deapnn_version": _version()})

    def set_status(self, status: str) -> None:
        self.status = status
        if self.history:
            self.history[-1]["status"] = status
            self.history[-1]["ended"] = time.time()
        self.save()

    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.file(name)
        if not path.exists():
            return default
        return json.loads(path.read_text())

    def write_json(self, name: str, value: Any) -> None:
        write_json(self.file(name), value)


def _version() -> str:
    from deapnn import __version__

    return __version__


def config_from(cls: type, values: dict[str, Any]) -> Any:
    """A config dataclass from a JSON dict, unknown keys ignored (older run folders)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def config_dict(config: Any) -> dict[str, Any]:
    return to_jsonable(asdict(config))


class Progress:
    """One tqdm bar for one arm, with the best score so far; silent when ``quiet``."""

    def __init__(self, desc: str, total: float | None, unit: str, quiet: bool,
                 initial: float = 0) -> None:
        self.bar = None
        if not quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=True,
                            dynamic_ncols=True,
                            bar_format=None if total else "{desc}: {n_fmt} {unit} [{elapsed}{postfix}]")

    def update(self, n: float, best: float | None = None, **postfix: Any) -> None:
        if self.bar is None:
            return
        if self.bar.total:
            n = min(n, self.bar.total)
        self.bar.n = round(n, 1) if isinstance(n, float) else n
        shown = {}
        if best is not None and math.isfinite(best):
            shown["best"] = f"{best:.4f}"
        shown.update(postfix)
        self.bar.set_postfix(shown, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
