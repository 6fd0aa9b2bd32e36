"""A persistent evaluation store: every finished evaluation, one SQLite row, committed at once.

:class:`EvaluationStore` keeps what an :class:`~deapnn.core.cache.EvaluationCache` learns in a
real file, so a run that is killed at any moment (mid-generation, mid-write) loses no finished
evaluation, and a new run whose evaluator has the same fingerprint reuses the old runs' results.

Each row holds the evaluator's fingerprint, the evaluation key (its sha256 digest always, the
exact encoding too when it is at most :data:`MAX_STORED_KEY` bytes), the fitness values, the
failure reason and kind (NULL for a success), the seconds the evaluation took, the generation,
the worker (``host:pid``) and the wall time (unix seconds); NULL where not known.

The file is SQLite in WAL mode with ``synchronous=NORMAL``: a committed row survives the
writing process being killed (not necessarily a power cut), several processes may read and
write one store at once (a busy timeout plus retries), and a row is committed as soon as it is
added. A ``meta`` table records the schema version and the deapnn version that created it.
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Iterator, Sequence

from deapnn.core.failures import Failure
from deapnn.core.fingerprint import decode_key, encode_key_digest, key_digest

__all__ = ["EvaluationStore", "MAX_STORED_KEY", "SCHEMA_VERSION", "StoreError", "StoredEvaluation",
           "this_worker"]

#: Version of the table layout; a store with another one is refused.
SCHEMA_VERSION = 1

#: Keys whose encoding is longer than this (weight vectors) are stored by digest only.
MAX_STORED_KEY = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    key_digest TEXT NOT NULL,
    key BLOB,
    fitness TEXT NOT NULL,
    failure_reason TEXT,
    failure_kind TEXT,
    seconds REAL,
    generation INTEGER,
    worker TEXT,
    wall_time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_by_key ON evaluations (fingerprint, key_digest);
"""

_COLUMNS = ("id", "fingerprint", "key_digest", "key", "fitness", "failure_reason", "failure_kind",
            "seconds", "generation", "worker", "wall_time")


class StoreError(ValueError):
    """A store file that cannot be used: corrupt, truncated, not a deapnn store, another schema or
    deapnn version, or in a folder that cannot be written. The message names the file."""


@dataclass(frozen=True)
class StoredEvaluation:
    """One row of the store.

    Attributes:
        fingerprint: The evaluator's fingerprint.
        key_digest: sha256 hex digest of the key's encoding (:func:`deapnn.core.fingerprint.key_digest`).
        key: The key itself, or None when it was too long to store (a weight vector).
        fitness: The fitness tuple, or a :class:`~deapnn.core.failures.Failure` (with reason and kind).
        seconds: How long the evaluation took, or None when not known.
        generation: The generation it was evaluated in, or None.
        worker: ``host:pid`` of the process that evaluated it, or None.
        wall_time: Unix time the row was written.
        id: The row number (rows are numbered in the order they were committed).
    """

    fingerprint: str
    key_digest: str
    key: Hashable | None
    fitness: tuple[float, ...]
    seconds: float | None
    generation: int | None
    worker: str | None
    wall_time: float
    id: int

    @property
    def final(self) -> bool:
        """Whether this is the key's final answer (a success or a genome's failure)."""
        return not isinstance(self.fitness, Failure) or self.fitness.final


_WORKER: tuple[int, str] | None = None


def this_worker() -> str:
    """``host:pid`` of this process."""
    global _WORKER
    pid = os.getpid()
    if _WORKER is None or _WORKER[0] != pid:
        _WORKER = (pid, f"{socket.gethostname()}:{pid}")
    return _WORKER[1]


def _json_float(value: float) -> Any:
    return value if math.isfinite(value) else repr(value)  # "inf", "-inf", "nan"


def _encode_fitness(values: Sequence[float]) -> str:
    return json.dumps([_json_float(float(v)) for v in values])


def _decode_fitness(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in json.loads(text))


class EvaluationStore:
    """Finished evaluations in a SQLite file, one row each, shared by runs and processes.

    Args:
        path: The store file; created (with its folder) when missing.
        timeout: Seconds a write waits for another process's lock (then retried, with backoff,
            for as long again) before it raises.
        allow_other_version: Accept a store created by another deapnn version (its rows may
            have been computed by other code); by default that is an error.

    Raises:
        StoreError: At once (before any evaluation) when the file is corrupt or truncated, is not
            a deapnn store, has another schema or deapnn version, or its folder cannot be
            written. The message names the file.

    The store pickles as its path and options; the connection is reopened lazily in each
    process. Use it as a context manager or call :meth:`close`.

    Example:
        >>> with EvaluationStore(tmp / "runs.sqlite") as store:  # doctest: +SKIP
        ...     store.add("fp", ("relu", 64), (0.97,), seconds=12.5, generation=3)
        ...     store.get("fp", ("relu", 64)).fitness
        (0.97,)
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 60.0,
                 allow_other_version: bool = False) -> None:
        if isinstance(path, EvaluationStore):
            raise TypeError("path must be a file path, got an EvaluationStore")
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {path!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.path = Path(path).expanduser().absolute()
        self.timeout = float(timeout)
        self.allow_other_version = bool(allow_other_version)
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._lock = threading.RLock()
        self._connect()  # fail now, not after an hour of training

    # ------------------------------------------------------------------------------ plumbing
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "timeout": self.timeout, "allow_other_version": self.allow_other_version}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self.timeout = state["timeout"]
        self.allow_other_version = state["allow_other_version"]
        self._conn, self._pid, self._lock = None, None, threading.RLock()

    def __repr__(self) -> str:
        return f"EvaluationStore({str(self.path)!r})"

    def __enter__(self) -> "EvaluationStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close this process's connection (it is reopened if the store is used again)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn, self._pid = None, None

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                return self._conn
            self._conn = None  # a connection inherited through fork is never used
            conn = self._open()
            self._conn, self._pid = conn, os.getpid()
            return conn

    def _open(self) -> sqlite3.Connection:
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of evaluation store {path}: {exc}") from exc
        if path.is_dir():
            raise StoreError(f"evaluation store {path} is a folder, not a file")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise StoreError(f"evaluation store {path}: its folder {path.parent} is not writable")
        try:
            conn = sqlite3.connect(str(path), timeout=self.timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open evaluation store {path}: {exc}") from exc
        try:
            self._retry(lambda: self._prepare(conn))
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(
                f"{path} is not a usable evaluation store (corrupt, truncated or not SQLite): {exc}"
            ) from exc
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        import deapnn

        path = self.path
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        check = conn.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise StoreError(f"{path} is corrupt: SQLite integrity check says "
                             f"{'; '.join(str(r[0]) for r in check[:3])}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            raise StoreError(f"{path} is an SQLite file but not a deapnn evaluation store "
                             f"(tables {sorted(tables)})")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"evaluation store {path} cannot use WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous = NORMAL")
        if not tables:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not conn.execute("SELECT name FROM sqlite_master WHERE name = 'meta'").fetchall():
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("deapnn_version", deapnn.__version__),
                        ("created", repr(time.time())),
                    ])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        schema = meta.get("schema_version")
        if schema != str(SCHEMA_VERSION):
            raise StoreError(f"evaluation store {path} has schema version {schema!r}; this deapnn "
                             f"({deapnn.__version__}) reads version {SCHEMA_VERSION} only")
        version = meta.get("deapnn_version")
        if version != deapnn.__version__ and not self.allow_other_version:
            raise StoreError(f"evaluation store {path} was written by deapnn {version}, this is "
                             f"deapnn {deapnn.__version__}; pass allow_other_version=True to reuse "
                             "its results anyway")
        columns = tuple(r[1] for r in conn.execute("PRAGMA table_info(evaluations)"))
        if columns != _COLUMNS:
            raise StoreError(f"evaluation store {path} has columns {columns}, expected {_COLUMNS}")

    def _retry(self, action: Any) -> Any:
        """Run ``action`` again while the database is locked by another process, with backoff."""
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                message = str(exc).lower()
                if ("locked" not in message and "busy" not in message) or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (1.0 + random.random()))  # noqa: S311 - jitter, not a draw of the run
                delay = min(delay * 2.0, 0.5)

    # ------------------------------------------------------------------------------ writing
    def add(self, fingerprint: str, key: Hashable, fitness: Sequence[float], *,
            seconds: float | None = None, generation: int | None = None,
            worker: str | None = None, wall_time: float | None = None) -> int:
        """Commit one finished evaluation and return its row id.

        Args:
            fingerprint: The evaluator's fingerprint.
            key: The evaluation key (see :func:`deapnn.core.fingerprint.encode_key`).
            fitness: The fitness values, or a :class:`~deapnn.core.failures.Failure` (its reason
                and kind are stored).
            seconds: How long the evaluation took, if known.
            generation: The generation, if known.
            worker: Who evaluated it (``host:pid``), if known.
            wall_time: Unix time; default now.

        Raises:
            TypeError: For a key that cannot be encoded or a fingerprint that is not a str.
        """
        if not isinstance(fingerprint, str):
            raise TypeError(f"fingerprint must be a str, got {fingerprint!r}")
        digest, encoded = encode_key_digest(key, MAX_STORED_KEY)
        reason = kind = None
        if isinstance(fitness, Failure):
            reason, kind = fitness.reason, fitness.kind
        row = (fingerprint, digest, encoded,
               _encode_fitness(fitness), reason, kind,
               None if seconds is None else float(seconds),
               None if generation is None else int(generation), worker,
               time.time() if wall_time is None else float(wall_time))
        with self._lock:
            conn = self._connect()
            cursor = self._retry(lambda: conn.execute(
                "INSERT INTO evaluations (fingerprint, key_digest, key, fitness, failure_reason, "
                "failure_kind, seconds, generation, worker, wall_time) VALUES (?,?,?,?,?,?,?,?,?,?)",
                row))
            return int(cursor.lastrowid)

    # ------------------------------------------------------------------------------ reading
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            conn = self._connect()
            return self._retry(lambda: conn.execute(sql, params).fetchall())

    @staticmethod
    def _row(row: tuple[Any, ...]) -> StoredEvaluation:
        (rowid, fp, digest, key, fitness, reason, kind, seconds, generation, worker, wall) = row
        values = _decode_fitness(fitness)
        if reason is not None:
            values = Failure(values, reason, kind or "genome")
        return StoredEvaluation(fp, digest, None if key is None else decode_key(bytes(key)),
                                values, seconds, generation, worker, wall, rowid)

    def rows(self, fingerprint: str | None = None) -> list[StoredEvaluation]:
        """Every row (of one evaluator when ``fingerprint`` is given), in commit order."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM evaluations"
        if fingerprint is None:
            found = self._query(sql + " ORDER BY id")
        else:
            found = self._query(sql + " WHERE fingerprint = ? ORDER BY id", (fingerprint,))
        return [self._row(r) for r in found]

    def __iter__(self) -> Iterator[StoredEvaluation]:
        return iter(self.rows())

    def __len__(self) -> int:
        return self.count()

    def get(self, fingerprint: str, key: Hashable) -> StoredEvaluation | None:
        """The answer stored for ``key`` under ``fingerprint``, or None.

        The first final row (a success or a genome's failure) wins; when there is none, the
        latest infrastructure failure is returned (its ``final`` is False).
        """
        digest = key_digest(key)
        found = [self._row(r) for r in self._query(
            f"SELECT {', '.join(_COLUMNS)} FROM evaluations WHERE fingerprint = ? AND key_digest = ? "
            "ORDER BY id", (fingerprint, digest))]
        final = [r for r in found if r.final]
        if final:
            return final[0]
        return found[-1] if found else None

    def count(self, fingerprint: str | None = None) -> int:
        """Number of rows (of one evaluator when ``fingerprint`` is given)."""
        if fingerprint is None:
            return int(self._query("SELECT COUNT(*) FROM evaluations")[0][0])
        return int(self._query("SELECT COUNT(*) FROM evaluations WHERE fingerprint = ?",
                               (fingerprint,))[0][0])

    def fingerprints(self) -> list[str]:
        """The evaluator fingerprints that have rows, in order of first appearance."""
        return [r[0] for r in self._query(
            "SELECT fingerprint FROM evaluations GROUP BY fingerprint ORDER BY MIN(id)")]

    def answers(self, fingerprint: str) -> dict[str, tuple[float, ...]]:
        """``{key_digest: fitness}`` of every final answer stored under ``fingerprint`` (the first
        final row per key; infrastructure failures are not answers)."""
        out: dict[str, tuple[float, ...]] = {}
        for _, digest, _, fitness, reason, kind in self._query(
                "SELECT id, key_digest, key, fitness, failure_reason, failure_kind FROM evaluations "
                "WHERE fingerprint = ? AND (failure_kind IS NULL OR failure_kind != 'infrastructure') "
                "ORDER BY id", (fingerprint,)):
            if digest not in out:
                values = _decode_fitness(fitness)
                out[digest] = values if reason is None else Failure(values, reason, kind or "genome")
        return out
