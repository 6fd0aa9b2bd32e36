"""The tabulated digits benchmark's GA runs and its tuning mode (benchmarks/tabulated.py)."""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np
import pytest

import tabulated  # benchmarks/ is on sys.path (tests/conftest.py)

SPACE, SCORES, RAW = tabulated.load_table()
BEST, TOP1 = tabulated.thresholds(SCORES)


def ga_args(**overrides):
    """The script's GA defaults, with ``overrides``."""
    defaults = {"algorithm": "mu+lambda", "initial": 2, "population": 1, "lambda_": 2, "ngen": None,
                "cxpb": 0.0, "mutpb": 1.0, "indpb": 0.2, "select": "best", "tournsize": 3,
                "mate": "uniform", "mutate": "one_gene", "novel": True,
                "screen_k": 16, "screen_base": "one_gene", "screen_indpb": 0.3, "explore": 0.5}
    return argparse.Namespace(**{**defaults, **overrides})


class KeyedLookup(tabulated.TableLookup):
    """The table lookup, also recording the canonical key of every evaluation."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.keys = []

    def __call__(self, genome):
        self.keys.append(genome.key())
        return super().__call__(genome)


def test_thresholds_are_the_best_and_the_ceil_one_percent_score():
    ranked = sorted(SCORES.values(), reverse=True)
    assert BEST == ranked[0]
    n_top = math.ceil(0.01 * len(ranked))
    assert TOP1 == ranked[n_top - 1] and sum(s >= TOP1 for s in ranked) >= n_top


@pytest.mark.parametrize("settings", [
    {"algorithm": "simple", "initial": None, "population": 8, "select": "tournament", "cxpb": 0.5,
     "mutpb": 0.5, "mutate": "resample"},
    {"algorithm": "mu+lambda", "initial": None, "population": 4, "cxpb": 0.5, "mutpb": 0.5},
    {"algorithm": "mu+lambda"},  # a (1 + 2) hill climber from 2 random genomes
    {"algorithm": "mu+lambda", "mutate": "screened", "screen_base": "resample"},  # ridge
    {"algorithm": "mu+lambda", "mutate": "screened", "screen_base": "resample", "screen_k": 64,
     "explore": 0.25, "screen_model": "gp", "additive": 1.0, "noise": 1.0},  # the defaults
])
def test_ga_never_evaluates_a_network_twice(monkeypatch, settings):
    monkeypatch.setattr(tabulated, "TableLookup", KeyedLookup)
    lookups = []
    original = KeyedLookup.__init__

    def remember(self, *args, **kwargs):
        original(self, *args, **kwargs)
        lookups.append(self)

    monkeypatch.setattr(KeyedLookup, "__init__", remember)
    trace = tabulated.run_ga(SPACE, SCORES, 7, ga_args(**settings, ngen=40))
    keys = lookups[0].keys
    assert len(trace) == len(keys) > 40  # the run went on after the initial population
    assert len(set(keys)) == len(keys)   # no canonical network twice (novel + cache)


def test_stop_at_cuts_the_trace_at_the_first_hit():
    full = tabulated.run_ga(SPACE, SCORES, 3, ga_args())
    hit = tabulated.first_reach(full, TOP1)
    assert math.isfinite(hit)
    cut = tabulated.run_ga(SPACE, SCORES, 3, ga_args(), stop_at=TOP1)
    assert cut == full[:hit]  # same seed, same draws: the cut run is a prefix ending at the hit
    assert cut[-1] >= TOP1 and all(s < TOP1 for s in cut[:-1])


@pytest.mark.parametrize("initial", [1, 8])
def test_initial_population_then_lambda_new_children_a_generation(initial):
    args = ga_args(initial=initial, population=1, lambda_=2, cxpb=0.0, mutpb=1.0)
    first = tabulated.run_ga(SPACE, SCORES, 11, ga_args(**{**vars(args), "ngen": 0}))
    assert 1 <= len(first) <= initial  # the random initial population (duplicates are free)
    assert initial == 1 or len(first) > 1
    trace = tabulated.run_ga(SPACE, SCORES, 11, ga_args(**{**vars(args), "ngen": 5}))
    assert trace[:len(first)] == first and len(trace) == len(first) + 5 * 2  # no clones: all novel


def test_bootstrap_interval_of_the_ratio_of_medians():
    assert tabulated.bootstrap_ratio([10.0] * 20, [5.0] * 20) == (2.0, 2.0)
    rng = np.random.default_rng(1)
    slow, fast = list(rng.integers(20, 100, 100)), list(rng.integers(5, 50, 100))
    low, high = tabulated.bootstrap_ratio(slow, fast)
    assert low < np.median(slow) / np.median(fast) < high and high - low < 2
    assert tabulated.bootstrap_ratio(slow, fast) == (low, high)  # seeded
    never = tabulated.bootstrap_ratio([math.inf] * 9 + [1.0], [1.0] * 10)[0]
    assert never > 1e17  # runs that never got there count as the largest value


def test_default_generations_can_spend_the_whole_space():
    assert tabulated.generations(ga_args(), 312) == 156            # mu+lambda: lambda per generation
    assert tabulated.generations(ga_args(algorithm="simple", population=8), 312) == 39
    assert tabulated.generations(ga_args(ngen=5), 312) == 5


@pytest.mark.parametrize("argv, message", [
    (["--lambda", "0"], "--lambda must be >= 1, got 0"),
    (["--population", "0"], "--population must be >= 1, got 0"),
    (["--ngen", "-1"], "--ngen must be >= 0, got -1"),
    (["--initial", "0"], "--initial must be >= 1, got 0"),
    (["--cxpb", "0.7", "--mutpb", "0.5"], "--cxpb + --mutpb must be <= 1 for mu+lambda"),
    (["--population", "1", "--cxpb", "0.5", "--mutpb", "0.5"], "needs --population >= 2"),
    (["--algorithm", "simple", "--initial", "3"], "--initial 3 is for mu+lambda"),
    (["--indpb", "1.5"], "--indpb must be in [0, 1], got 1.5"),
    (["--screen-indpb", "-0.5"], "--screen-indpb must be in [0, 1], got -0.5"),
    (["--tune", "--first-seed", "990"], "--first-seed 990"),
    (["--mutate", "screened", "--screen-k", "0"], "--screen-k must be >= 1, got 0"),
    (["--mutate", "screened", "--explore", "-1"], "--explore must be a finite number >= 0, got -1.0"),
    (["--screen-model", "svm"], "invalid choice: 'svm'"),
    (["--acquisition", "pi"], "invalid choice: 'pi'"),
    (["--lengthscale", "0"], "--lengthscale must be a finite number > 0, got 0.0"),
    (["--noise", "nan"], "--noise must be a finite number > 0, got nan"),
    (["--alpha", "-1"], "--alpha must be a finite number > 0, got -1.0"),
    (["--additive", "2"], "--additive must be in [0, 1], got 2.0"),
    (["--additive", "0.5", "--pairwise", "0.7"], "--additive + --pairwise <= 1, got 0.5 + 0.7"),
])
def test_bad_settings_are_refused_before_any_run(monkeypatch, tmp_path, capsys, argv, message):
    out = tmp_path / "t.json"
    monkeypatch.setattr(sys, "argv", ["tabulated.py", *argv, "--out", str(out)])
    with pytest.raises(SystemExit):
        tabulated.main()
    assert message in capsys.readouterr().err and not out.exists()


def test_tune_refuses_the_measurement_seeds(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["tabulated.py", "--tune", "--first-seed", "0",
                                      "--seeds", "2", "--out", str(tmp_path / "t.json")])
    with pytest.raises(SystemExit):
        tabulated.main()
    assert not (tmp_path / "t.json").exists()


def test_tune_ranks_the_grid_by_median(monkeypatch, tmp_path):
    grid = [("simple", None, 8, None, "tournament", 3, "resample", 0.5, 0.5),
            ("mu+lambda", None, 4, 2, "best", None, "one_gene", 0.5, 0.5),
            ("mu+lambda", 4, 1, 1, "best", None, "one_gene", 0.0, 1.0)]
    monkeypatch.setattr(tabulated, "TUNING_GRID", grid)
    out = tmp_path / "tune.json"
    monkeypatch.setattr(sys, "argv", ["tabulated.py", "--tune", "--first-seed", "1000",
                                      "--seeds", "5", "--out", str(out)])
    tabulated.main()
    report = json.loads(out.read_text())
    assert report["seeds"] == [1000, 1004]
    medians = [row["top1"]["median"] for row in report["ranked"]]
    assert len(medians) == 3 and medians == sorted(medians)
    assert {row["settings"]["algorithm"] for row in report["ranked"]} == {"simple", "mu+lambda"}
    assert " --tune " in report["command"] and " --first-seed 1000 " in report["command"]
    assert all(row["top1"]["runs"] == 5 for row in report["ranked"])
    hill = [row["settings"] for row in report["ranked"] if row["settings"]["population"] == 1]
    assert hill == [{**hill[0], "initial": 4, "lambda": 1, "cxpb": 0.0, "mutpb": 1.0}]


def test_screened_mutation_is_a_registered_operator_learning_from_the_cache():
    args = ga_args(mutate="screened", screen_k=8, screen_base="resample", screen_indpb=0.3, explore=0.25)
    screen = tabulated.make_screen(SPACE, args)
    assert (screen.k, screen.explore, screen.mutate.keywords) == (8, 0.25, {"indpb": 0.3})
    trace = tabulated.run_ga(SPACE, SCORES, 5, ga_args(**{**vars(args), "ngen": 20}))
    assert len(trace) == 2 + 20 * 2  # every child novel: the screen skips what the cache has seen
    plain = tabulated.run_ga(SPACE, SCORES, 5, ga_args(ngen=20))
    assert trace[:2] == plain[:2] and trace != plain  # same random start, different children


def test_tune_screened_ranks_the_screened_grid(monkeypatch, tmp_path):
    monkeypatch.setattr(tabulated, "SCREENED_GRID", [
        (4, "one_gene", None, 0.5, {}),
        (8, "resample", 0.3, 0.0, {"model": "gp", "lengthscale": 1.0, "additive": 0.5})])
    out = tmp_path / "tune.json"
    monkeypatch.setattr(sys, "argv", ["tabulated.py", "--tune", "screened", "--first-seed",
                                      "1000", "--seeds", "4", "--out", str(out)])
    tabulated.main()
    rows = json.loads(out.read_text())["ranked"]
    assert [r["top1"]["runs"] for r in rows] == [4, 4]
    fields = ("screen_k", "screen_base", "screen_indpb", "explore", "screen_model", "lengthscale", "additive")
    assert sorted(tuple(r["settings"][f] for f in fields) for r in rows) == [
        (4, "one_gene", None, 0.5, "ridge", 2.0, 0.0), (8, "resample", 0.3, 0.0, "gp", 1.0, 0.5)]
    assert all(r["settings"]["mutate"] == "screened" and r["settings"]["population"] == 1 for r in rows)
    medians = [r["top1"]["median"] for r in rows]
    assert medians == sorted(medians)


def test_surrogate_flags_reach_the_screen(monkeypatch):
    args = ga_args(mutate="screened", screen_k=8, screen_base="resample", screen_model="gp",
                   acquisition="ucb", alpha=2.0, lengthscale=1.5, noise=0.2, additive=0.25)
    screen = tabulated.make_screen(SPACE, args)
    assert (screen.model, screen.acquisition, screen.alpha, screen.lengthscale, screen.noise,
            screen.additive) == ("gp", "ucb", 2.0, 1.5, 0.2, 0.25)
    plain = tabulated.make_screen(SPACE, ga_args(mutate="screened"))  # a Namespace without the knobs
    assert (plain.model, plain.acquisition) == tuple(
        tabulated.SURROGATE_KNOBS[k][1] for k in ("model", "acquisition"))
    made = []
    original = tabulated.make_screen
    monkeypatch.setattr(tabulated, "make_screen",
                        lambda space, a: made.append(original(space, a)) or made[-1])
    trace = tabulated.run_ga(SPACE, SCORES, 5, ga_args(**{**vars(args), "ngen": 10}))
    assert len(trace) == 2 + 10 * 2  # every child novel
    assert made[0].model == "gp" and made[0].calls == 20 and made[0].screened > 0


def test_the_default_command_runs_the_tuned_surrogate(monkeypatch, tmp_path):
    out = tmp_path / "t.json"
    monkeypatch.setattr(sys, "argv", ["tabulated.py", "--seeds", "2", "--first-seed", "5000",
                                      "--ngen", "3", "--out", str(out)])
    tabulated.main()
    report = json.loads(out.read_text())
    settings = report["settings"]
    assert settings["mutate"] == "screened" and (settings["screen_k"], settings["explore"]) == (64, 0.25)
    assert {key: settings[tabulated._knob_attr(key)] for key in tabulated.TUNED_SURROGATE} == \
        tabulated.TUNED_SURROGATE == {"model": "gp", "additive": 1.0, "noise": 1.0}
    assert " --screen-model gp " in report["command"] and " --additive 1.0 " in report["command"]
    ga = report["results"]["GA (eaMuPlusLambda)"]["evaluations"]
    assert ga["median"] == 2 + 3 * 2  # the initial 2, then 3 generations of 2 novel children
