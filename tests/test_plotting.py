"""Plots of a run: logbook per generation and against time, gene frequencies, genealogy (DEAP's
History on a real run), Pareto front, the comparison plot."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from deap import algorithms, base, creator, tools

import deapnn
from deapnn.core import plotting
from deapnn.jobs.common import logbook_records


def _logbook():
    book = tools.Logbook()
    for gen, (avg, best) in enumerate([(0.2, 0.5), (0.4, 0.7), (0.6, 0.9)]):
        book.record(gen=gen, nevals=4, avg=avg, std=0.1, min=avg - 0.2, max=best, failed=0,
                    elapsed=10.0 * gen + 3.0)
    return book


def test_plot_logbook_against_wall_time_and_from_json_records(tmp_path):
    book = _logbook()
    fig = plotting.plot_logbook(book, x="elapsed", path=tmp_path / "t.png")
    lines = fig.axes[0].get_lines()
    assert list(lines[0].get_xdata()) == [3.0, 13.0, 23.0]
    assert fig.axes[0].get_xlabel() == "wall time (s)"
    assert (tmp_path / "t.png").stat().st_size > 0
    records = json.loads(json.dumps(logbook_records(book)))
    records[0]["min"] = "-inf"  # a failed genome's worst value, as the JSON files write it
    again = plotting.plot_logbook(records)
    assert list(again.axes[0].get_lines()[1].get_ydata()) == [0.5, 0.7, 0.9]
    with pytest.raises(ValueError, match="x must be"):
        plotting.plot_logbook(book, x="time")


def test_gene_frequencies_stack_to_one_and_numeric_genes_show_their_median():
    space = deapnn.SearchSpace({"act": deapnn.Choice(["relu", "tanh", "elu"]),
                                "lr": deapnn.FloatRange(1e-4, 1e-1, log=True)})
    rng = np.random.default_rng(0)
    pops = {g: [{"act": ["relu", "tanh", "elu"][int(rng.integers(0, 3 if g == 0 else 1))],
                 "lr": float(10 ** rng.uniform(-4, -1))} for _ in range(10)] for g in range(4)}
    fig = plotting.plot_gene_frequencies(pops, space)
    act, lr = fig.axes[:2]
    assert act.get_title() == "act" and lr.get_title() == "lr"
    tops = act.collections[-1].get_paths()[0].vertices[:, 1]
    assert np.allclose(tops.max(), 1.0)  # frequencies of all values stack to 1
    assert lr.get_yscale() == "log"
    medians = [np.median([g["lr"] for g in pops[gen]]) for gen in range(4)]
    assert np.allclose(lr.get_lines()[0].get_ydata(), medians)
    # without the space: strings are categorical, many distinct floats numeric
    fig = plotting.plot_gene_frequencies(json.loads(json.dumps(pops)))
    assert len(fig.axes[0].collections) >= 3 and len(fig.axes[1].get_lines()) == 1
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_gene_frequencies({})


def test_genealogy_of_a_real_deap_history():
    creator_name = "PlotGenealogyInd"
    if not hasattr(creator, creator_name):
        creator.create(creator_name, list, fitness=creator.FitnessMax)
    random.seed(1)
    tb = base.Toolbox()
    tb.register("individual", tools.initRepeat, getattr(creator, creator_name), random.random, 5)
    tb.register("population", tools.initRepeat, list, tb.individual)
    tb.register("evaluate", lambda ind: (sum(ind),))
    tb.register("mate", tools.cxTwoPoint)
    tb.register("mutate", tools.mutGaussian, mu=0, sigma=0.2, indpb=0.3)
    tb.register("select", tools.selTournament, tournsize=3)
    history = tools.History()
    tb.decorate("mate", history.decorator)
    tb.decorate("mutate", history.decorator)
    pop = tb.population(n=8)
    history.update(pop)
    hof = tools.HallOfFame(1)
    algorithms.eaSimple(pop, tb, 0.6, 0.4, 4, halloffame=hof, verbose=False)
    best = hof[0]
    tree = history.getGenealogy(best)
    nodes = {i: {"fitness": list(tb.evaluate(history.genealogy_history[i]))}
             for i in set(tree) | {p for ps in tree.values() for p in ps} | {best.history_index}}
    genealogy = json.loads(json.dumps({"best": best.history_index,
                                       "tree": {i: list(p) for i, p in tree.items()},
                                       "nodes": nodes}))
    fig = plotting.plot_genealogy(genealogy)
    ax = fig.axes[0]
    drawn = sum(len(c.get_offsets()) for c in ax.collections[:2])
    assert drawn == len(nodes) > 1  # the best and every ancestor, each once
    assert ax.collections[2].get_offsets()[0][0] == 0  # the best sits at ancestry depth 0
    assert len([c for c in ax.get_children() if type(c).__name__ == "Annotation"]) == sum(
        len(p) for p in tree.values())
    with pytest.raises(ValueError, match="empty"):
        plotting.plot_genealogy({})


def test_pareto_front_of_accuracy_up_and_size_down():
    points = [(0.9, 1000), (0.8, 100), (0.85, 5000), (0.7, 50), (0.7, 60), (float("-inf"), 10)]
    assert plotting.pareto_front(points) == [0, 1, 3]
    fig = plotting.plot_pareto(points)
    front = fig.axes[0].get_lines()[0]
    assert list(front.get_xdata()) == [50, 100, 1000] and list(front.get_ydata()) == [0.7, 0.8, 0.9]
    with pytest.raises(ValueError, match="two objectives"):
        plotting.plot_pareto([(1, 2, 3)])


def test_compare_plot_has_one_line_per_arm():
    arms = [{"label": "hparams", "test_accuracy": 0.95, "wall_seconds": 100.0,
             "curve": [{"seconds": 100.0, "test_accuracy": 0.95}]},
            {"label": "ga", "test_accuracy": 0.9, "wall_seconds": 90.0,
             "curve": [{"seconds": s, "test_accuracy": a} for s, a in [(0, .1), (45, .7), (90, .9)]]}]
    ax = plotting.plot_compare(arms).axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["hparams (95.00%)", "ga (90.00%)"]
    assert list(lines[1].get_xdata()) == [0, 45, 90] and ax.get_ylim() == (0, 1)
