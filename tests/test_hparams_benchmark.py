"""Smoke test of benchmarks/hparams_mnist.py on real MNIST with tiny budgets: a checkpointed run
stopped after one generation and resumed to two keeps its logbook, cache and wall time."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deapnn.data import load_mnist

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "hparams_mnist.py"


def _run(tmp_path, ngen):
    cmd = [sys.executable, str(SCRIPT), "--population", "2", "--ngen", str(ngen),
           "--max-training-time", "2", "--best-epochs", "1", "--best-time", "5",
           "--validation", "1000", "--checkpoint", str(tmp_path / "run.pkl"),
           "--out", str(tmp_path / "report.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "report.json").read_text())


def test_hparams_mnist_resumes_a_checkpointed_run(tmp_path):
    try:
        load_mnist()
    except RuntimeError as exc:  # pragma: no cover - every source failed
        pytest.skip(f"MNIST unavailable: {exc}")
    first = _run(tmp_path, 1)
    second = _run(tmp_path, 2)
    assert [r["gen"] for r in second["logbook"]] == [0, 1, 2]
    assert second["logbook"][:2] == first["logbook"]  # the saved generations are kept as they were
    elapsed = [r["elapsed"] for r in second["logbook"]]
    assert elapsed == sorted(elapsed) and second["seconds"]["evolve"] == elapsed[-1] > first["seconds"]["evolve"]
    assert second["distinct_evaluations"] == len(second["evaluations"]) >= first["distinct_evaluations"]
    assert "--mutate perturb" in second["command"]
    assert 0.0 < second["train_best"]["test_accuracy"] <= 1.0
    assert (tmp_path / "report.png").stat().st_size > 0
    assert Path(second["train_best"]["model_path"]).exists()
