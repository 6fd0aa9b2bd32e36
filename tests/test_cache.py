"""The evaluation cache: check_fitness on every result, the store, failures, state, novelty."""

import builtins
import math
import os
import pickle
import signal
import subprocess
import sys

import pytest
from deap import base, creator

from deapnn.core.cache import EvaluationCache
from deapnn.core.failures import Failure
from deapnn.core.fingerprint import fingerprint
from deapnn.core.store import EvaluationStore

if not hasattr(creator, "CacheTestMin"):
    creator.create("CacheTestMin", base.Fitness, weights=(-1.0,))
    creator.create("CacheTestInd", list, fitness=creator.CacheTestMin)


class Counting:
    """A deterministic evaluator that counts its calls; NaN for 3, a timeout for 4."""

    def __init__(self):
        self.calls = []

    def __call__(self, ind):
        self.calls.append(tuple(ind))
        if ind[0] == 3:
            return (math.nan,)
        if ind[0] == 4:
            return Failure((99.0,), "out of time", kind="infrastructure")
        if ind[0] == 5:
            return Failure((98.0,), "builder rejected it")
        return (float(ind[0]) / 10,)

    def fingerprint(self):
        return "counting-v1"


def pop(*genes):
    return [creator.CacheTestInd([g, 0]) for g in genes]


def test_duplicates_are_answered_on_the_master_and_counted():
    evaluate = Counting()
    cache = EvaluationCache(evaluate)
    fits = cache.map()(cache, pop(1, 2, 1, 1, 2))
    assert fits == [(0.1,), (0.2,), (0.1,), (0.1,), (0.2,)]
    assert evaluate.calls == [(1, 0), (2, 0)] and (cache.hits, cache.misses) == (3, 2)
    assert cache(pop(2)[0]) == (0.2,) and cache.hits == 4
    assert cache.records == {(1, 0): (0.1,), (2, 0): (0.2,)}


def test_nan_becomes_a_recorded_failure_with_the_worst_value_for_the_weights():
    cache = EvaluationCache(Counting())
    nan = cache.map()(cache, pop(3))[0]
    assert isinstance(nan, Failure) and nan == (math.inf,)  # minimised: +inf is worst
    assert "nan" in cache.failures[(3, 0)] and cache.records[(3, 0)] is nan
    assert isinstance(cache(pop(3)[0]), Failure)
    assert not any(isinstance(v, float) and math.isnan(v) for f in cache.records.values() for v in f)


def test_a_failure_carrying_nan_values_gets_the_worst_values_instead():
    cache = EvaluationCache(lambda ind: Failure((math.nan,), "diverged"))
    (fit,) = cache.map()(cache, pop(1))
    assert isinstance(fit, Failure) and fit == (math.inf,) and fit.reason == "diverged"


def test_a_wrong_number_of_objectives_is_an_error_not_a_fitness():
    cache = EvaluationCache(lambda ind: (1.0, 2.0))
    with pytest.raises(ValueError, match="returned 2 fitness value"):
        cache.map()(cache, pop(1))
    with pytest.raises(ValueError, match="returned 2 fitness value"):
        cache(pop(1)[0])


def test_every_result_is_committed_to_the_store_with_its_metadata(tmp_path):
    store = EvaluationStore(tmp_path / "s.sqlite")
    cache = EvaluationCache(Counting(), store=store)
    assert cache.fingerprint == fingerprint(cache.evaluate) and cache.store is store
    cache.generation = 7
    cache.map()(cache, pop(1, 3, 4, 5, 1))
    rows = store.rows(cache.fingerprint)
    assert [r.key for r in rows] == [(1, 0), (3, 0), (4, 0), (5, 0)]
    assert all(r.generation == 7 and r.worker.endswith(f":{os.getpid()}") for r in rows)
    assert all(r.seconds is not None and 0 <= r.seconds < 5 for r in rows)
    assert rows[0].fitness == (0.1,) and rows[1].fitness.reason.startswith("invalid fitness")
    assert rows[2].fitness.kind == "infrastructure" and rows[3].fitness.kind == "genome"


def test_a_parallel_map_records_what_the_result_carries(tmp_path):
    class Timed(tuple):
        pass

    def backend(func, items):  # a stand-in for a backend that reports seconds and worker
        out = []
        for item in items:
            fit = Timed(func(item))
            fit.seconds, fit.worker = 2.5, "node7:42"
            out.append(fit)
        return out

    cache = EvaluationCache(Counting(), store=tmp_path / "s.sqlite")
    cache.map(backend)(cache, pop(1))
    (row,) = cache.store.rows()
    assert (row.seconds, row.worker) == (2.5, "node7:42")


def test_a_new_cache_on_the_same_store_and_fingerprint_evaluates_nothing_finished(tmp_path):
    path = tmp_path / "s.sqlite"
    cache = EvaluationCache(Counting(), store=path)
    fits = cache.map()(cache, pop(1, 2, 3, 4, 5))
    again = Counting()
    resumed = EvaluationCache(again, store=path)
    assert resumed.map()(resumed, pop(1, 2, 3, 4, 5, 6)) == fits + [(0.6,)]
    # Finished ones (successes, NaN, the genome failure) are answers; the timeout is retried.
    assert again.calls == [(4, 0), (6, 0)]
    assert (resumed.hits, resumed.misses) == (4, 2)
    assert resumed.store.count(resumed.fingerprint) == 5 + 2
    other = EvaluationCache(lambda ind: (0.0,), store=path)  # another fingerprint: nothing shared
    assert other.map()(other, pop(1)) == [(0.0,)]


def test_seen_counts_this_runs_evaluations_and_the_store_still_answers(tmp_path):
    # Novelty looks at this run's own evaluations only (a resumed run varies its children as
    # the uninterrupted one did); a genome found in the store is still never evaluated again.
    path = tmp_path / "s.sqlite"
    EvaluationCache(Counting(), store=path)(pop(2)[0])
    evaluate = Counting()
    cache = EvaluationCache(evaluate, store=path)
    assert not cache.seen(pop(2)[0]) and not cache.seen(pop(1)[0])
    cache(pop(2)[0])
    assert evaluate.calls == [] and cache.hits == 1
    assert cache.seen(pop(2)[0]) and not cache.seen(pop(1)[0])


def test_infrastructure_failures_are_retried_on_request_and_dropped_on_resume():
    evaluate = Counting()
    cache = EvaluationCache(evaluate)
    cache.map()(cache, pop(4, 5))
    cache.map()(cache, pop(4, 5))
    assert evaluate.calls == [(4, 0), (5, 0)]  # cached within the run
    state = pickle.loads(pickle.dumps(cache.state()))
    assert cache.retry_failed() == 1
    assert (4, 0) not in cache.records and (5, 0) in cache.records and (4, 0) not in cache.failures
    cache.map()(cache, pop(4, 5))
    assert evaluate.calls == [(4, 0), (5, 0), (4, 0)]
    resumed = EvaluationCache(evaluate)
    resumed.load_state(state)
    assert set(resumed.records) == {(5, 0)} and set(resumed.failures) == {(5, 0)}


def test_state_round_trips_records_counters_and_reservations():
    cache = EvaluationCache(Counting())
    cache.map()(cache, pop(1, 1, 2))
    cache.reserve((9, 0))
    cache.reserve((9, 0))
    cache.reserve((8, 0))
    cache.generation = 3
    state = pickle.loads(pickle.dumps(cache.state()))
    other = EvaluationCache(Counting())
    other.load_state(state)
    assert other.records == cache.records and (other.hits, other.misses) == (1, 2)
    assert other.pending == {(9, 0), (8, 0)} and other.generation == 3
    other.release((9, 0))
    assert (9, 0) in other.pending  # reserved twice, released once
    other.release((9, 0))
    other.release((8, 0))
    other.release((7, 0))  # never reserved: nothing happens
    assert other.pending == set()


def test_a_child_changed_after_its_key_was_reserved_leaves_no_stale_key():
    """What the novelty decorator does: reserve after mate, release before mutate."""
    cache = EvaluationCache(Counting())
    child = pop(1)[0]
    cache.reserve(cache.key(child))  # after mate
    cache.release(cache.key(child))  # mutate is about to change it
    child[0] = 2
    cache.reserve(cache.key(child))  # after mutate
    assert cache.pending == {(2, 0)}
    cache.map()(cache, [child])
    assert cache.pending == set() and cache.state()["pending"] == {}


def test_reserved_keys_are_seen_and_cleared_by_a_hit():
    cache = EvaluationCache(Counting())
    cache(pop(1)[0])
    cache.reserve((1, 0))
    cache.reserve((2, 0))
    assert cache.seen(pop(2)[0])
    cache.map()(cache, pop(1))
    assert cache.pending == {(2, 0)}


def test_a_cache_with_a_store_pickles_and_reattaches(tmp_path):
    cache = EvaluationCache(Counting(), store=tmp_path / "s.sqlite")
    cache(pop(1)[0])
    copy = pickle.loads(pickle.dumps(cache))
    copy.records.clear()
    assert copy(pop(1)[0]) == (0.1,) and copy.evaluate.calls == [(1, 0)]  # from the store
    assert copy.store.count() == 1


def test_other_functions_pass_through_the_map_untouched():
    cache = EvaluationCache(Counting())
    assert cache.map()(abs, [-1, 2]) == [1, 2]
    assert cache.map(builtins.map)(pow, [2, 3], [2, 2]) == [4, 9]


def test_a_map_that_loses_results_is_an_error():
    cache = EvaluationCache(Counting())
    with pytest.raises(RuntimeError, match="returned 1 results for 2 individuals"):
        cache.map(lambda f, items: [f(items[0])])(cache, pop(1, 2))


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(TypeError, match="evaluate must be callable, got 3"):
        EvaluationCache(3)
    with pytest.raises(TypeError, match="fingerprint must be a non-empty str"):
        EvaluationCache(Counting()).attach(tmp_path / "s.sqlite", None)


KILLED_RUN = """
import os, signal, sys
from deapnn.core.cache import EvaluationCache

class Evaluate:
    def fingerprint(self):
        return "killed-run"
    def __call__(self, ind):
        if ind[0] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)  # killed mid-generation
        return (float(ind[0]),)

cache = EvaluationCache(Evaluate(), store=sys.argv[1])
cache.generation = 0
cache.map()(cache, [(i,) for i in range(10)])
"""


def test_a_kill_mid_generation_loses_no_finished_evaluation(tmp_path):
    path = tmp_path / "run.sqlite"
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, str(path), "6"], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    calls = []

    def evaluate(ind):
        calls.append(ind[0])
        return (float(ind[0]),)

    cache = EvaluationCache(evaluate)
    cache.attach(path, "killed-run")
    assert cache.map()(cache, [(i,) for i in range(10)]) == [(float(i),) for i in range(10)]
    assert calls == [6, 7, 8, 9]  # the six finished before the kill were not re-evaluated


def test_lookup_answers_from_records_and_the_store_without_counting(tmp_path):
    store = EvaluationStore(tmp_path / "s.sqlite")
    first = EvaluationCache(lambda ind: (float(sum(ind)),), store=store)
    first.record(((1, 2), "rung", 0), (3.0,))  # a multi-fidelity rung key
    assert first.lookup(((1, 2), "rung", 0)) == (3.0,) and first.lookup(((1, 2), "rung", 1)) is None
    second = EvaluationCache(first.evaluate)
    second.attach(store, first.fingerprint)
    assert second.lookup(((1, 2), "rung", 0)) == (3.0,)  # from the store
    assert second.hits == second.misses == 0
