"""The weight job (``deapnn weights``) on deapnn.evolve: the GA's annealed mutation keeps the run's
settings, ``--ngen`` runs are reproducible, and Ctrl-C then ``deapnn resume`` ends like an
uninterrupted run (digits, seconds)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from interrupts import sigint_default

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _small_toolbox(ngen: int | None):
    from deapnn.core.loop import run_settings
    from deapnn.jobs.weights import AnnealedGaussian
    from deapnn.weights import BatchedEvaluator, NetworkSpec, make_weight_toolbox

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 4), dtype=np.float32), np.arange(40) % 2
    evaluator = BatchedEvaluator(NetworkSpec.mlp((4,), [3], 2), x, y, batch_size=8)
    tb = make_weight_toolbox(evaluator, evaluator)
    annealing = AnnealedGaussian(np.ones(tb.layout.size, np.float32), 0.2, 0.02,
                                 evaluator=evaluator, ngen=ngen)
    tb.register("mutate", annealing)
    return tb, annealing, evaluator, run_settings


def test_annealed_mutation_follows_the_generation_without_changing_the_settings():
    tb, annealing, evaluator, run_settings = _small_toolbox(ngen=10)
    before = run_settings(None, tb)
    evaluator.step = 1  # breeding generation 1: no decay yet
    assert annealing.current_sigma() == pytest.approx(0.2)
    evaluator.step = 6
    assert annealing.current_sigma() == pytest.approx(0.2 * 0.1 ** 0.5)
    evaluator.step = 11
    assert annealing.current_sigma() == pytest.approx(0.02)
    evaluator.step = 50  # past ngen: stays at the final step
    assert annealing.current_sigma() == pytest.approx(0.02)
    assert run_settings(None, tb) == before  # what a resume compares is unchanged
    copy = pickle.loads(pickle.dumps(annealing))
    assert copy.current_sigma() == pytest.approx(0.02) and copy.evaluator.step == 50


def test_annealed_mutation_steps_by_its_progress_without_ngen():
    tb, annealing, _, _ = _small_toolbox(ngen=None)
    annealing.progress = 0.5
    sigma = annealing.current_sigma()
    assert sigma == pytest.approx(0.2 * 0.1 ** 0.5)
    moves = []
    for _ in range(200):
        ind = tb.individual()
        start = np.array(ind)
        (ind,) = tb.mutate(ind)
        moves.append(np.asarray(ind) - start)
    assert np.std(moves) == pytest.approx(sigma, rel=0.1)  # scale 1: each weight moves by N(0, sigma)


def _weights(*args) -> list[str]:
    return [sys.executable, "-m", "deapnn", "weights", "--data", "digits", "--strategy", "ga",
            "--population", "20", "--ngen", "300", "--quiet", *map(str, args)]


def _strip(logbook: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "elapsed"} for r in logbook]


def test_sigint_then_resume_of_a_weights_run_ends_like_an_uninterrupted_run(tmp_path):
    whole = subprocess.run(_weights("--out", tmp_path, "--name", "whole"), capture_output=True,
                           text=True, timeout=300, env=ENV)
    assert whole.returncode == 0, whole.stderr[-3000:]
    proc = subprocess.Popen(_weights("--out", tmp_path, "--name", "cut"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=sigint_default)
    state = tmp_path / "cut" / "weights_state.json"
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if json.loads(state.read_text())["generation"] >= 3:  # chunks are ~1 s long now
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert not (tmp_path / "cut" / "result.json").exists()
    cut = json.loads((tmp_path / "cut" / "logbook.json").read_text())
    assert 3 <= cut[-1]["gen"] < 300

    done = subprocess.run([sys.executable, "-m", "deapnn", "resume", tmp_path / "cut", "--quiet"],
                          capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = (json.loads((tmp_path / n / "logbook.json").read_text()) for n in ("whole", "cut"))
    assert [r["gen"] for r in b] == list(range(301))
    assert _strip(b) == _strip(a)  # same random draws, same annealing, same minibatches
    assert _strip(b[:len(cut)]) == _strip(cut)
    assert np.array_equal(np.load(tmp_path / "whole" / "best.npy"), np.load(tmp_path / "cut" / "best.npy"))
    ra, rb = (json.loads((tmp_path / n / "result.json").read_text()) for n in ("whole", "cut"))
    for key in ("generations", "evaluations", "failures", "val_accuracy", "test_accuracy", "weights"):
        assert ra[key] == rb[key], key
    assert rb["generations"] == 300 and rb["evaluations"] == sum(r["nevals"] for r in b)
    assert rb["curve"][0]["generation"] == 0 and rb["curve"][-1]["generation"] == 300
    assert (tmp_path / "cut" / "best.keras").exists()


@pytest.mark.parametrize("strategy", ["pgpe", "cma"])
def test_the_weight_job_runs_the_new_strategies(strategy, tmp_path):
    from deapnn.jobs.common import RunFolder, load_data
    from deapnn.jobs.weights import WeightsConfig, run_weights

    config = WeightsConfig(data="digits", strategy=strategy, arch="mlp", hidden=[2], ngen=4,
                           population=8, eval_every=1000.0)
    data = load_data("digits", None, 0)
    folder = RunFolder(tmp_path, "weights", [], {})
    result = run_weights(folder, config, quiet=True, data=data)
    assert result["strategy"] == strategy and result["generations"] == 4
    assert result["evaluations"] == 4 * 8 and 0.0 <= result["test_accuracy"] <= 1.0
    assert (tmp_path / "best.npy").exists()


def test_the_weight_job_names_bad_strategy_settings():
    from deapnn.jobs.common import BadInput
    from deapnn.jobs.weights import WeightsConfig

    with pytest.raises(BadInput, match="--population of pgpe must be even .mirrored pairs., got 7"):
        WeightsConfig(data="digits", strategy="pgpe", population=7, ngen=1)
    with pytest.raises(BadInput, match="--learning-rate must be a positive number, got 0.0"):
        WeightsConfig(data="digits", strategy="pgpe", learning_rate=0.0, ngen=1)
    with pytest.raises(BadInput, match="--strategy must be one of ga, es, snes, pgpe, sepcma, cma, got 'nes'"):
        WeightsConfig(data="digits", strategy="nes", ngen=1)
