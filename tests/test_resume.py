"""Exact resume after a real SIGKILL: between generations, mid-generation, mid-checkpoint-write.

Each test runs tests/resume_script.py in a subprocess that kills itself (``os.kill(pid,
SIGKILL)``) at one point, runs the same command again to resume, and compares with an
uninterrupted run: population, hall of fame, logbook (every chapter), stop reason and strategy
state must be equal, and no finished evaluation may run twice -- counted both from the
evaluation store's rows and from a log the fitness function appends to itself.
"""

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deapnn.core.checkpoint import load_checkpoint
from deapnn.core.store import EvaluationStore

SCRIPT = Path(__file__).with_name("resume_script.py")
NGEN = 6
MODES = ("ga", "es")


def _run(mode, folder, *kill):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, str(SCRIPT), mode, str(folder), str(NGEN), *map(str, kill)],
                          capture_output=True, text=True, timeout=120, env=env)


def _log(folder):
    return (Path(folder) / "evaluations.log").read_text().splitlines()


def _result(folder):
    with open(Path(folder) / "result.pkl", "rb") as f:
        return pickle.load(f)


def _rows(folder):
    store = EvaluationStore(Path(folder) / "run.pkl.sqlite")
    try:
        return store.rows()
    finally:
        store.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = {}
    for mode in MODES:
        folder = tmp_path_factory.mktemp(f"reference_{mode}")
        done = _run(mode, folder)
        assert done.returncode == 0, done.stderr
        out[mode] = folder
    return out


def _check_resumed(mode, folder, reference):
    resumed = _run(mode, folder)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = _result(reference[mode]), _result(folder)
    for part in ("population", "halloffame", "logbook", "chapters", "stop_reason", "strategy"):
        assert got[part] == expected[part], part
    assert len(got["logbook"]) == NGEN + (1 if mode == "ga" else 0)
    if mode == "ga":
        assert set(got["chapters"]) == {"fitness", "spread"}
        assert [r["gen"] for r in got["chapters"]["fitness"]] == list(range(NGEN + 1))
    else:
        assert got["strategy"]["generation"] == NGEN
    # no finished evaluation ran twice: the fitness function's own log, and the store's rows
    log, ref_log = _log(folder), _log(reference[mode])
    assert len(log) == len(set(log)) and sorted(log) == sorted(ref_log)
    rows = _rows(folder)
    assert len(rows) == len(ref_log) == len({r.key_digest for r in rows})
    assert not list(Path(folder).glob(".run.pkl.*.tmp"))  # a half-written temp file is cleaned up


@pytest.mark.parametrize("mode", MODES)
def test_kill_between_generations(tmp_path, reference, mode):
    killed = _run(mode, tmp_path, "between", 3)
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(tmp_path / "run.pkl")["generation"] == 3
    assert not (tmp_path / "result.pkl").exists()
    _check_resumed(mode, tmp_path, reference)


@pytest.mark.parametrize("mode", MODES)
def test_kill_mid_generation(tmp_path, reference, mode):
    killed = _run(mode, tmp_path, "mid", 20)  # 20 evaluations finished, in generation 2 or 3
    assert killed.returncode == -signal.SIGKILL
    assert len(_log(tmp_path)) == 20 and len(_rows(tmp_path)) == 20
    saved = load_checkpoint(tmp_path / "run.pkl")
    assert sum(r["nevals"] for r in saved["logbook"]) < 20  # some evaluations are past the checkpoint
    _check_resumed(mode, tmp_path, reference)


@pytest.mark.parametrize("mode", MODES)
def test_kill_mid_checkpoint_write(tmp_path, reference, mode):
    killed = _run(mode, tmp_path, "write", 3)  # the third checkpoint is half written
    assert killed.returncode == -signal.SIGKILL
    assert len(list(tmp_path.glob(".run.pkl.*.tmp"))) == 1
    assert load_checkpoint(tmp_path / "run.pkl")["generation"] == 2  # the previous one, intact
    _check_resumed(mode, tmp_path, reference)
