"""The ``deapnn`` command line, run as a user runs it: subprocesses on the digits data with budgets
of seconds (help, bad input, compare's report, Ctrl-C and resume, report from a copied folder)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from interrupts import sigint_default

SUBCOMMANDS = ("compare", "hparams", "weights", "resume", "report")
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
#: A small hyperparameter run: two genomes, four generations (so that a SIGINT sent after the
#: first logbook lands while generations are left to run), short training.
SMALL_HPARAMS = ["hparams", "--data", "digits", "--population", "2", "--ngen", "4",
                 "--max-training-time", "2", "--best-epochs", "2", "--seed", "3", "--quiet"]


def deapnn(*args: str, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deapnn", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=ENV, cwd=cwd)


@pytest.mark.parametrize("command", ("",) + SUBCOMMANDS)
def test_help_of_every_subcommand(command):
    done = deapnn(*([command] if command else []), "--help", timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: deapnn {command}".rstrip())
    if command:
        assert "example: deapnn" in done.stdout
    else:
        assert all(name in done.stdout for name in SUBCOMMANDS)


def _bad_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    x = np.zeros((20, 4, 4), np.float32)
    y = np.arange(20) % 2
    (tmp / "space.json").write_text(json.dumps({"genes": {"units": {"type": "Nonsense"}}}))
    other = tmp / "other_run"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"kind": "benchmark", "command": [], "config": {}}))
    (tmp / "not_a_run").mkdir()
    return [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["compare", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["weights", "--budget", "ten minutes"], "budget 'ten minutes' does not parse"),
        (["compare", "--data", _bad_npz(tmp / "arrays.npz", a=x, b=y)], "lacks x_train, y_train"),
        (["hparams", "--data", _bad_npz(tmp / "short.npz", x_train=x, y_train=y[:19])],
         "x_train has 20 rows but y_train has 19 labels"),
        (["hparams", "--data", "digits", "--space", tmp / "space.json"],
         "is not a valid search space"),
        (["hparams", "--data", "missing.npz"], "data file 'missing.npz' does not exist"),
        (["resume", tmp / "nowhere"], "does not exist"),
        (["report", tmp / "not_a_run"], "is not a deapnn run folder"),
        (["resume", other], "holds a 'benchmark' run"),
        (["hparams", "--data", "digits", "--seed", "-1"], "seed -1 must be in [0, 4294967294]"),
    ]


def test_bad_input_exits_2_with_one_line_naming_it(tmp_path):
    for args, message in _bad_inputs(tmp_path):
        done = deapnn(*args, "--out", tmp_path / "runs", timeout=120) if args[0] in (
            "compare", "hparams", "weights") else deapnn(*args, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (args, done.stderr)
        assert len(lines) == 1 and message in lines[0], (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()  # no run folder was made for bad input


def _table(md: str) -> list[list[str]]:
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[1:]]


def test_compare_on_digits_writes_a_report_whose_table_is_its_json(tmp_path):
    done = deapnn("compare", "--data", "digits", "--budget", "4s", "--hparams-population", "2",
                  "--quiet", "--out", tmp_path, "--name", "c")
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "c"
    report = json.loads((folder / "compare.json").read_text())
    rows = _table((folder / "compare.md").read_text())
    assert [a["arm"] for a in report["arms"]] == [r[0] for r in rows] == ["hparams", "ga", "es"]
    for arm, row in zip(report["arms"], rows):
        assert row[1] == arm["method"]
        assert float(row[2]) == pytest.approx(arm["test_accuracy"], abs=5e-5)
        assert [int(row[3]), int(row[4]), int(row[6])] == [arm["weights"], arm["evaluations"],
                                                         arm["failures"]]
        assert float(row[5]) == pytest.approx(arm["wall_seconds"], abs=0.05)
        assert arm["test_accuracy"] > 0.1, arm  # above chance (10 classes)
        assert arm["evaluations"] > 0 and arm["weights"] > 0
    assert (folder / "compare.png").stat().st_size > 0
    assert _table(done.stdout) == rows  # the printed table is the report's
    assert not re.search("oneDNN|cuInit|absl", done.stderr)  # TensorFlow's start-up lines hidden
    assert json.loads((folder / "run.json").read_text())["status"] == "finished"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """An uninterrupted small hyperparameter run."""
    root = tmp_path_factory.mktemp("runs")
    done = deapnn(*SMALL_HPARAMS, "--out", root, "--name", "whole")
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "whole"


def test_sigint_then_resume_ends_like_an_uninterrupted_run(finished_run, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "deapnn", *SMALL_HPARAMS, "--out", str(tmp_path),
                             "--name", "cut"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, preexec_fn=sigint_default)
    logbook = tmp_path / "cut" / "logbook.json"
    deadline = time.monotonic() + 240
    while not logbook.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # the first call (generations 0 and 1) has finished
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    run_file = tmp_path / "cut" / "run.json"
    assert proc.returncode == 130, (err[-3000:], out[-1000:], logbook.read_text()[-500:],
                                    run_file.read_text()[-500:] if run_file.exists() else None)
    assert f"deapnn resume {tmp_path / 'cut'}" in err and "Traceback" not in err
    cut = json.loads(logbook.read_text())
    assert cut[-1]["gen"] < 4  # interrupted before the last generation
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["status"] == "interrupted"

    done = deapnn("resume", tmp_path / "cut", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads(logbook.read_text())
    whole = json.loads((finished_run / "logbook.json").read_text())
    assert [r["gen"] for r in resumed] == [r["gen"] for r in whole] == [0, 1, 2, 3, 4]
    assert resumed[:len(cut)] == cut  # the finished generations were kept as they were
    run = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert run["status"] == "finished" and [h["status"] for h in run["history"]] == [
        "interrupted", "finished"]
    result = json.loads((tmp_path / "cut" / "result.json").read_text())
    assert result["generations"] == 4 and (tmp_path / "cut" / "best.keras").exists()


def test_report_redraws_every_figure_from_a_copied_folder(finished_run, tmp_path):
    copy = tmp_path / "moved"
    shutil.copytree(finished_run, copy)
    figures = sorted(p.name for p in finished_run.glob("*.png"))
    assert {"fitness.png", "fitness_time.png", "genes.png", "genealogy.png"} <= set(figures)
    for png in copy.glob("*.png"):
        png.unlink()
    done = deapnn("report", copy)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in copy.glob("*.png")) == figures
    assert all((copy / name).stat().st_size > 0 for name in figures)
    assert re.search(r"test accuracy 0\.\d{4}", done.stdout)
    assert str(finished_run) not in done.stdout  # nothing points back to the original folder
