"""The error policy: setup errors raise at once with the original message, on every backend;
a genome's failure is a fitness; timeouts and dead workers are infrastructure failures that a
retry evaluates again.

Real components only: spawned worker processes, a real ``python -m scoop`` run and real Keras.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import parallel_helpers as helpers
from deapnn.core.failures import Failure, SetupError
from deapnn.hparams.genome import make_genome
from deapnn.hparams.toolbox import make_toolbox
from deapnn.parallel import SerialMap, get_map, register_backend

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

MISSING = r"could not be unpickled in worker process \d+: ModuleNotFoundError: No module named 'deapnn_missing_plugin'"
UNPICKLABLE = r"cannot be pickled to send it to worker processes: TypeError: cannot pickle '_thread.lock' object"
METRIC = r"unknown metric 'acuracy': Could not interpret metric identifier: acuracy"
BUILDER = (r"the builder two_argument_builder\(genome: 'Any', input_shape: 'Any'\) -> 'Any' cannot be "
           r"called as build\(genome, input_shape, n_classes\): too many positional arguments")


def toy(a: int, b: int):
    return make_genome(helpers.TOY_SPACE, {"a": a, "b": b})


@pytest.fixture(scope="module")
def pool():
    """One spawned worker shared by the tests of this module."""
    with get_map("processes", workers=1, timeout=20) as backend_map:
        yield backend_map


# ----------------------------------------------------------------------------------- setup errors
def test_an_evaluator_that_cannot_be_pickled_fails_before_anything_is_sent(pool):
    evaluator = helpers.Unpicklable()
    assert SerialMap()(evaluator, [toy(1, 1)]) == [(11.0,)]   # serial sends nothing: it runs
    tasks = pool.pool.counts["tasks"]
    with pytest.raises(SetupError, match=UNPICKLABLE) as info:
        pool(evaluator, [toy(1, 1), toy(2, 1)])
    assert isinstance(info.value.__cause__, TypeError)       # the original, chained
    assert pool.pool.counts["tasks"] == tasks                  # nothing went to a worker


def test_an_evaluator_that_cannot_be_unpickled_in_a_worker_sends_the_error_back(pool):
    pool([1].__contains__, [1])                                # the worker is up
    pids, counts = pool.pool.pids, dict(pool.pool.counts)
    start = time.perf_counter()
    with pytest.raises(SetupError, match=MISSING):
        pool(helpers.NeedsMissingModule(), [toy(a, 1) for a in range(5)])
    assert time.perf_counter() - start < 10                    # at once, not after retries
    assert pool.pool.counts["deaths"] == counts["deaths"] == 0  # the worker did not die ...
    assert pool.pool.pids == pids                              # ... and is still the same one
    assert pool(helpers.ToyEvaluator(), [toy(1, 2)]) == [(21.0,)]


def test_a_wrong_builder_signature_is_refused_when_the_evaluator_is_made():
    with pytest.raises(SetupError, match=BUILDER):
        helpers.digits_evaluator(build=helpers.two_argument_builder)


@pytest.mark.parametrize("backend", ["serial", "processes"])
def test_an_unknown_metric_raises_on_the_first_evaluation(backend, pool):
    evaluator = helpers.digits_evaluator(metric="acuracy")   # made without importing Keras
    backend_map = SerialMap() if backend == "serial" else pool
    with pytest.raises(SetupError, match=METRIC):
        backend_map(evaluator, [{}, {}])


def test_a_setup_error_stops_a_cached_run_through_the_toolbox(pool):
    toolbox = make_toolbox(helpers.TOY_SPACE, helpers.NeedsMissingModule())
    register_backend(toolbox, pool)
    with pytest.raises(SetupError, match=MISSING):
        toolbox.map(toolbox.evaluate, [toy(1, 1), toy(2, 2)])
    assert not toolbox.cache.failures                          # nothing recorded as a fitness


def test_setup_errors_under_scoop(tmp_path):
    out = tmp_path / "setup.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "scoop", "-n", "1", str(TESTS / "scoop_script.py"),
                           str(out), "setup"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["scoop_running"]
    setup = result["setup"]
    for case, pattern in [("unpicklable", UNPICKLABLE), ("missing_module", MISSING),
                          ("metric", METRIC), ("builder", BUILDER)]:
        kind, message = setup[case]
        assert kind == "SetupError", (case, setup[case])
        assert __import__("re").search(pattern, message), (case, message)
    assert setup["after"] == [[11.0]]                          # the workers still evaluate


# ----------------------------------------------------------------------- genome and infrastructure
def test_a_builder_rejecting_one_genome_is_that_genomes_failure():
    import numpy as np

    from deapnn import data
    from deapnn.keras import KerasEvaluator, build_cnn
    from genomes import mlp_genome

    flat = data.from_arrays(np.random.default_rng(0).random((60, 5)), np.arange(60) % 3)
    fitness = KerasEvaluator(flat, build_cnn)(mlp_genome())
    assert isinstance(fitness, Failure) and fitness.kind == "genome"
    assert fitness.reason.startswith("ValueError: build_cnn needs (h, w)")


def test_timeouts_and_dead_workers_are_infrastructure_failures(tmp_path):
    evaluator = helpers.ToyEvaluator(marker=str(tmp_path / "m"), raise_on=1, kill_on=2, hang_on=4)
    with get_map("processes", workers=2, timeout=2.0, retries=1) as backend_map:
        fits = backend_map(evaluator, [toy(a, 1) for a in range(5)])
    assert fits[0] == (10.0,) and fits[3] == (13.0,)
    assert fits[1].kind == "genome" and fits[1].reason.startswith("ValueError: cannot evaluate a=1")
    assert fits[2].kind == "infrastructure" and not fits[2].final
    assert fits[2].reason == "worker process died (killed by SIGKILL) during evaluation, 2 attempt(s)"
    assert fits[4].kind == "infrastructure" and fits[4].reason == "timed out after 2 s (worker killed)"


def test_a_transient_worker_death_is_retried_and_evaluated_again_later(tmp_path):
    """Killed on its first two attempts: the retry fails too, so the run records an
    infrastructure failure; the cache does not keep it, and a retry evaluates it for real."""
    evaluator = helpers.ToyEvaluator(marker=str(tmp_path / "deaths"), kill_times=2)
    toolbox = make_toolbox(helpers.TOY_SPACE, evaluator)
    with register_backend(toolbox, "processes", workers=1, retries=1) as backend_map:
        first = toolbox.map(toolbox.evaluate, [toy(3, 1)])
        assert first[0].kind == "infrastructure" and backend_map.pool.counts["retries"] == 1
        assert toolbox.cache.retry_failed() == 1
        again = toolbox.map(toolbox.evaluate, [toy(3, 1)])
    assert again == [(13.0,)] and not isinstance(again[0], Failure)
    assert (tmp_path / "deaths").read_text() == "xx"
