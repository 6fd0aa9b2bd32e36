"""Smoke test of benchmarks/hparams_mnist.py on real MNIST with tiny budgets: the script runs the
library's hyperparameter job in a run folder; run to one generation and run again to two, it
resumes the folder and keeps its logbook, cache and wall time."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deapnn.data import load_mnist

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "hparams_mnist.py"


def _run(tmp_path, ngen):
    cmd = [sys.executable, str(SCRIPT), "--population", "2", "--ngen", str(ngen),
           "--max-training-time", "2", "--best-epochs", "1", "--best-time", "5",
           "--run-dir", str(tmp_path / "run"), "--out", str(tmp_path / "report.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "report.json").read_text())


def test_hparams_mnist_resumes_its_run_folder(tmp_path):
    load_mnist()  # MNIST is part of the offline chain: an error here is a real failure
    first = _run(tmp_path, 1)
    second = _run(tmp_path, 2)
    assert [r["gen"] for r in second["logbook"]] == [0, 1, 2]
    assert second["logbook"][:2] == first["logbook"]  # the saved generations are kept as they were
    elapsed = [r["elapsed"] for r in second["logbook"]]
    assert elapsed == sorted(elapsed) and second["seconds"]["evolve"] == elapsed[-1] > first["seconds"]["evolve"]
    assert second["distinct_evaluations"] >= first["distinct_evaluations"]
    assert "--mutate perturb" in second["command"]
    assert 0.1 < second["train_best"]["test_accuracy"] <= 1.0  # above chance after one epoch
    assert (tmp_path / "report.png").stat().st_size > 0
    assert Path(second["train_best"]["model_path"]).exists()
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["kind"] == "hparams" and run["status"] == "finished" and run["config"]["ngen"] == 2


def test_hparams_mnist_and_cnn_mnist_take_fidelity_budgets():
    import hparams_mnist

    args = hparams_mnist.make_parser().parse_args(["--fidelity", "0.25,1", "--promote", "0.34"])
    config = hparams_mnist.config_of(args)
    assert config.space == "mlp" and config.fidelity == (0.25, 1.0) and config.promote == 0.34
    plain = hparams_mnist.config_of(hparams_mnist.make_parser().parse_args(["--fidelity", "none"]))
    assert plain.fidelity is None
    cnn = hparams_mnist.make_parser(space="cnn", fidelity=(0.25, 1.0)).parse_args([])
    assert hparams_mnist.config_of(cnn).space == "cnn"
    with pytest.raises(SystemExit):
        hparams_mnist.make_parser().parse_args(["--fidelity", "1,0.5"])
    done = subprocess.run([sys.executable, str(SCRIPT.with_name("cnn_mnist.py")), "--help"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])})
    assert done.returncode == 0 and "--fidelity" in done.stdout and "CNN_SPACE" in done.stdout
