"""Brute force and random search on small finite functions (pure Python, no TensorFlow)."""

import random

import pytest

from deapnn.hparams import baselines
from deapnn.core.failures import Failure
from deapnn.hparams.space import Choice, IntRange, SearchSpace

SPACE = SearchSpace({"a": IntRange(0, 4), "b": Choice(["x", "y", "z"])})


def peak(genome):
    """Maximum 2.0 at a=3, b='y'."""
    return (-(genome["a"] - 3) ** 2 + (2.0 if genome["b"] == "y" else 0.0),)


def collapse_b_when_a_is_zero(values):
    return dict(values, b="x") if values["a"] == 0 else dict(values)


def test_brute_force_finds_the_optimum_evaluating_each_genome_once():
    result = baselines.brute_force(peak, SPACE)
    assert result.best.as_dict() == {"a": 3, "b": "y"} and result.best_fitness == (2.0,)
    assert result.evaluations == 15 and result.stopped == "every genome evaluated"
    assert [g.as_dict() for g, _ in result.history[:2]] == [{"a": 0, "b": "x"}, {"a": 0, "b": "y"}]
    assert result.evaluations_to_reach(2.0) == 3 * 3 + 2
    assert result.best_so_far()[-1] == 2.0 and len(result.best_so_far()) == 15


def test_brute_force_skips_canonical_duplicates_and_minimises_with_negative_weights():
    space = SearchSpace({"a": IntRange(0, 4), "b": Choice(["x", "y", "z"])},
                        canonical=collapse_b_when_a_is_zero)
    result = baselines.brute_force(peak, space, weights=(-1.0,))
    assert result.evaluations == 13  # a=0 with b in x/y/z is one genome
    assert result.best_fitness == (-9.0,)


def test_brute_force_budget_shuffle_and_plain_iterables():
    result = baselines.brute_force(peak, SPACE, shuffle=True, rng=random.Random(0),
                                   max_evaluations=5)
    assert result.evaluations == 5 and "budget of 5" in result.stopped
    grid = [{"a": a, "b": "y"} for a in range(5)]
    assert baselines.brute_force(peak, grid).best == {"a": 3, "b": "y"}


def test_random_search_finds_the_optimum_and_gives_up_without_improvement():
    result = baselines.random_search(peak, SPACE, patience=30, rng=random.Random(1))
    assert result.best.as_dict() == {"a": 3, "b": "y"}
    assert result.evaluations <= 15  # never evaluates a genome twice
    assert "space exhausted" in result.stopped or "gave up" in result.stopped
    keys = [g.key() for g, _ in result.history]
    assert len(keys) == len(set(keys))


def test_random_search_patience_and_budget():
    result = baselines.random_search(peak, SPACE, patience=2, rng=random.Random(3))
    best = result.best_so_far()
    assert result.stopped == "gave up after 2 evaluations without improvement"
    assert best[-1] == best[-2] == best[-3] and (len(best) == 3 or best[-4] < best[-3])
    capped = baselines.random_search(peak, SPACE, patience=None, max_evaluations=4,
                                     rng=random.Random(3))
    assert capped.evaluations == 4 and "budget of 4" in capped.stopped


def test_random_search_is_reproducible_from_its_rng():
    one = baselines.random_search(peak, SPACE, patience=3, rng=random.Random(7))
    two = baselines.random_search(peak, SPACE, patience=3, rng=random.Random(7))
    assert [g.as_dict() for g, _ in one.history] == [g.as_dict() for g, _ in two.history]


def test_failures_count_as_evaluations_and_never_win():
    def flaky(genome):
        return Failure((-100.0,), "diverged") if genome["b"] == "z" else peak(genome)

    result = baselines.brute_force(flaky, SPACE)
    assert result.evaluations == 15 and result.best_fitness == (2.0,)


@pytest.mark.parametrize("call, message", [
    (lambda: baselines.random_search(peak, SPACE, patience=None), "needs patience or max_evaluations"),
    (lambda: baselines.random_search(peak, SPACE, patience=0), "patience must be positive, got 0"),
    (lambda: baselines.brute_force(peak, SearchSpace({"x": (0.0, 1.0)})), "needs a finite space"),
    (lambda: baselines.brute_force(peak, SPACE, weights=(0.0,)), "weights must be non-zero"),
    (lambda: baselines.brute_force(lambda g: (1.0, 2.0), SPACE), "evaluate returned 2 values"),
])
def test_bad_arguments_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_tabulated_benchmark_runs_on_the_committed_table(tmp_path, monkeypatch):
    import json
    import sys

    import tabulated  # benchmarks/ is on sys.path (tests/conftest.py)

    space, scores, raw = tabulated.load_table()
    assert len(scores) == raw["distinct"] and raw["grid_size"] == space.size
    assert all(space.key(g) in scores for g in list(space.grid())[:50])
    out = tmp_path / "tab.json"
    monkeypatch.setattr(sys, "argv", ["tabulated.py", "--seeds", "3", "--ngen", "5",
                                      "--out", str(out)])
    tabulated.main()
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"GA (eaMuPlusLambda)", "random search",
                                      "brute force, shuffled", "brute force, grid order"}
    assert report["results"]["brute force, grid order"]["evaluations"]["median"] == len(scores)
