"""The evaluation store: a real SQLite file, concurrent writers, kill-safety, bad files."""

import multiprocessing
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from deapnn.core.failures import Failure
from deapnn.core.store import MAX_STORED_KEY, EvaluationStore, StoreError


def test_rows_round_trip_with_failures_and_metadata(tmp_path):
    path = tmp_path / "runs.sqlite"
    with EvaluationStore(path) as store:
        store.add("fp", ("relu", 64, 0.001), (0.97, -1200.0), seconds=1.5, generation=2, worker="h:1")
        store.add("fp", ("tanh", 8, 0.1), Failure((float("-inf"), float("inf")), "NaN loss"))
        store.add("fp", ("elu", 8, 0.1), Failure((0.0, 0.0), "timeout", kind="infrastructure"))
        store.add("other", ("relu", 64, 0.001), (0.5, -1.0))
    with EvaluationStore(path) as store:  # reopened: everything was committed
        assert store.count() == 4 and store.count("fp") == 3 and len(store) == 4
        assert store.fingerprints() == ["fp", "other"]
        first, nan, timeout = store.rows("fp")
        assert first.key == ("relu", 64, 0.001) and first.fitness == (0.97, -1200.0)
        assert (first.seconds, first.generation, first.worker) == (1.5, 2, "h:1")
        assert abs(first.wall_time - time.time()) < 60 and first.final
        assert isinstance(nan.fitness, Failure) and nan.fitness.reason == "NaN loss"
        assert nan.fitness == (float("-inf"), float("inf")) and nan.fitness.kind == "genome"
        assert nan.seconds is None and nan.generation is None and nan.worker is None
        assert timeout.fitness.kind == "infrastructure" and not timeout.final
        assert store.get("other", ("relu", 64, 0.001)).fitness == (0.5, -1.0)
        assert store.get("fp", ("relu", 64, 0.002)) is None
        assert [r.fingerprint for r in store] == ["fp", "fp", "fp", "other"]
        assert set(store.answers("fp")) == {first.key_digest, nan.key_digest}  # no infrastructure


def test_sqlite_file_is_in_wal_mode_with_a_meta_table(tmp_path):
    import deapnn

    path = tmp_path / "s.sqlite"
    EvaluationStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    meta = dict(conn.execute("SELECT name, value FROM meta"))
    assert meta["schema_version"] == "1" and meta["deapnn_version"] == deapnn.__version__
    conn.close()


def test_get_prefers_the_first_final_answer_over_infrastructure_failures(tmp_path):
    with EvaluationStore(tmp_path / "s.sqlite") as store:
        store.add("fp", (1,), Failure((0.0,), "worker died", kind="infrastructure"))
        assert not store.get("fp", (1,)).final
        store.add("fp", (1,), (0.8,))
        store.add("fp", (1,), (0.9,))
        assert store.get("fp", (1,)).fitness == (0.8,)


def test_large_numpy_keys_are_stored_by_digest(tmp_path):
    small = np.arange(4, dtype=np.float32)
    large = np.arange(MAX_STORED_KEY, dtype=np.float32)
    key_of = lambda a: (a.dtype.str, a.shape, a.tobytes())  # noqa: E731 (default_key's form)
    with EvaluationStore(tmp_path / "s.sqlite") as store:
        store.add("fp", key_of(small), (1.0,))
        store.add("fp", key_of(large), (2.0,))
        rows = store.rows()
        assert rows[0].key == key_of(small) and rows[1].key is None
        assert store.get("fp", key_of(large)).fitness == (2.0,)
        other = large.copy()
        other[-1] += 1
        assert store.get("fp", key_of(other)) is None


def test_a_store_pickles_as_its_path_and_reopens(tmp_path):
    store = EvaluationStore(tmp_path / "s.sqlite")
    store.add("fp", ("a",), (1.0,))
    copy = pickle.loads(pickle.dumps(store))
    assert copy.path == store.path and copy.count() == 1
    copy.add("fp", ("b",), (2.0,))
    assert store.count() == 2
    store.close()
    copy.close()


def test_a_missing_folder_is_created(tmp_path):
    path = tmp_path / "a" / "b" / "store.sqlite"
    with EvaluationStore(path) as store:
        assert path.is_file() and store.count() == 0


def _can_write(folder):
    try:
        with open(os.path.join(folder, ".probe"), "wb"):
            pass
    except OSError:
        return False
    os.remove(os.path.join(folder, ".probe"))
    return True


def test_a_read_only_folder_raises_at_once_naming_the_file(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if _can_write(folder):  # root ignores permission bits: try a read-only system folder
            folder = next((f for f in ("/sys", "/proc") if os.path.isdir(f) and not _can_write(f)), None)
            if folder is None:
                pytest.skip("no read-only folder available")
        for path in (os.path.join(folder, "store.sqlite"), os.path.join(folder, "sub", "store.sqlite")):
            with pytest.raises(StoreError, match="store.sqlite"):
                EvaluationStore(path)
    finally:
        (tmp_path / "ro").chmod(0o755)


@pytest.mark.parametrize("content", [b"this is not a database" * 100, "truncated", "foreign"])
def test_a_corrupt_truncated_or_foreign_file_raises_naming_it(tmp_path, content):
    path = tmp_path / "broken.sqlite"
    if content == "truncated":
        with EvaluationStore(path) as store:
            for i in range(2000):
                store.add("fp", (i, "x" * 50), (float(i),))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif content == "foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE users (name TEXT)")
        conn.commit()
        conn.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="broken.sqlite"):
        EvaluationStore(path)
    assert path.read_bytes() == before  # nothing overwritten


def test_another_schema_or_deapnn_version_raises(tmp_path):
    path = tmp_path / "old.sqlite"
    EvaluationStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '0.0.1' WHERE name = 'deapnn_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"old.sqlite was written by deapnn 0.0.1"):
        EvaluationStore(path)
    EvaluationStore(path, allow_other_version=True).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"old.sqlite has schema version '99'"):
        EvaluationStore(path, allow_other_version=True)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got 3"):
        EvaluationStore(3)
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        EvaluationStore(tmp_path / "s.sqlite", timeout=0)
    with EvaluationStore(tmp_path / "s.sqlite") as store:
        with pytest.raises(TypeError, match="fingerprint must be a str"):
            store.add(None, (1,), (1.0,))
        with pytest.raises(TypeError, match="evaluation key must be a tuple"):
            store.add("fp", [1], (1.0,))


# ----------------------------------------------------------------- several processes at once
def _write_rows(path, tag, n, barrier):
    with EvaluationStore(path, timeout=30) as store:
        barrier.wait()  # both processes are ready: they write at the same time
        for i in range(n):
            if i == n // 2:
                # both have written their first halves before either writes its second, so each
                # half of the table holds rows of both writers, whatever the scheduling
                barrier.wait()
            store.add("fp", (tag, i), (float(i),), generation=i, worker=tag)


def test_two_processes_writing_one_store_lose_no_row(tmp_path):
    path = tmp_path / "shared.sqlite"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    n = 1000
    writers = [ctx.Process(target=_write_rows, args=(str(path), tag, n, barrier)) for tag in "ab"]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    with EvaluationStore(path) as store:
        rows = store.rows("fp")
        assert len(rows) == 2 * n
        assert sorted(r.key for r in rows) == sorted((tag, i) for tag in "ab" for i in range(n))
        workers = [r.worker for r in rows]
        switches = sum(a != b for a, b in zip(workers, workers[1:]))
        assert switches >= 2  # the writes really were interleaved (see _write_rows)


KILLED_WRITER = """
import sys, time
from deapnn.core.store import EvaluationStore
store = EvaluationStore(sys.argv[1])
for i in range(int(sys.argv[2])):
    store.add("fp", (i,), (float(i),))
print("committed", flush=True)
time.sleep(600)
"""


def test_a_committed_row_survives_the_writer_being_killed(tmp_path):
    path = tmp_path / "killed.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), "25"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "committed"
        assert (tmp_path / "killed.sqlite-wal").exists()  # still in the WAL, not checkpointed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with EvaluationStore(path) as store:
        assert [r.key for r in store.rows("fp")] == [(i,) for i in range(25)]
