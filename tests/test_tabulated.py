"""The tabulated digits benchmark's GA runs and its tuning mode (benchmarks/tabulated.py)."""

from __future__ import annotations

import argparse
import json
import math
import sys

import pytest

import tabulated  # benchmarks/ is on sys.path (tests/conftest.py)

SPACE, SCORES, RAW = tabulated.load_table()
BEST, TOP1 = tabulated.thresholds(SCORES)


def ga_args(**overrides):
    """The script's GA defaults, with ``overrides``."""
    defaults = {"algorithm": "mu+lambda", "population": 4, "lambda_": 2, "ngen": None,
                "cxpb": 0.5, "mutpb": 0.5, "indpb": 0.2, "select": "best", "tournsize": 3,
                "mate": "uniform", "mutate": "one_gene", "novel": True}
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


@pytest.mark.parametrize("algorithm", ["simple", "mu+lambda"])
def test_ga_never_evaluates_a_network_twice(monkeypatch, algorithm):
    monkeypatch.setattr(tabulated, "TableLookup", KeyedLookup)
    lookups = []
    original = KeyedLookup.__init__

    def remember(self, *args, **kwargs):
        original(self, *args, **kwargs)
        lookups.append(self)

    monkeypatch.setattr(KeyedLookup, "__init__", remember)
    trace = tabulated.run_ga(SPACE, SCORES, 7, ga_args(algorithm=algorithm, ngen=40))
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


def test_default_generations_can_spend_the_whole_space():
    assert tabulated.generations(ga_args(), 312) == 156            # mu+lambda: lambda per generation
    assert tabulated.generations(ga_args(algorithm="simple", population=8), 312) == 39
    assert tabulated.generations(ga_args(ngen=5), 312) == 5


@pytest.mark.parametrize("argv, message", [
    (["--lambda", "0"], "--lambda must be >= 1, got 0"),
    (["--population", "0"], "--population must be >= 1, got 0"),
    (["--ngen", "-1"], "--ngen must be >= 0, got -1"),
    (["--tune", "--first-seed", "990"], "--first-seed 990"),
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
    grid = [("simple", 8, None, "tournament", 3, "resample"),
            ("mu+lambda", 4, 2, "best", None, "one_gene"),
            ("mu+lambda", 2, 1, "best", None, "resample")]
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
