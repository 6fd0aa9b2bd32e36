"""Multi-fidelity evaluation (deapnn.core.fidelity) inside DEAP's loops, on the digits.

The DEAP-loop, backend and kill/resume tests use tests/fidelity_script.py's SoftmaxDigits (a
numpy softmax regression trained to a budget, milliseconds); the resume-from-weights test uses
the real KerasEvaluator.
"""

import functools
import math
import pickle
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from deap import algorithms, base, tools

import deapnn
from deapnn import data
from deapnn.core.cache import EvaluationCache
from deapnn.core.fidelity import MultiFidelity, check_budgets, rung_key, state_file
from deapnn.core.fingerprint import key_digest
from deapnn.core.store import EvaluationStore
from deapnn.core.types import define
from deapnn.hparams.genome import GenomeBase
from fidelity_script import SPACE, SoftmaxDigits

RungFitness = define("RungFitness", base.Fitness, weights=(1.0, 1.0))  # (rung, accuracy)
RungGenome = define("RungGenome", GenomeBase, fitness=RungFitness)
ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve().parent / "fidelity_script.py"
DIGITS = functools.partial(data.load_digits, seed=0)


def _toolbox(tmp_path, budgets=(0.25, 0.5, 1.0), promote=0.5, **kwargs):
    deapnn.seed(3)
    evaluator = SoftmaxDigits(log=str(tmp_path / "trainings.log"))
    toolbox = deapnn.make_toolbox(SPACE, evaluator, **kwargs)
    fidelity = MultiFidelity(evaluator, budgets, promote, folder=tmp_path / "states")
    fidelity.install(toolbox)
    return toolbox, fidelity


def _trainings(tmp_path):
    path = tmp_path / "trainings.log"
    return path.read_text().split("\n")[:-1] if path.exists() else []


# ------------------------------------------------------------------------------------ bad input
class _NoBudget:
    def __call__(self, genome):
        return (1.0,)


class _WholeEpochs(SoftmaxDigits):
    fractional_budgets = False


@pytest.mark.parametrize("budgets, message", [
    ((1, 1), "budgets must increase from rung to rung, got 1 after 1.0"),
    ((2, 0.5, 3), "budgets must increase from rung to rung, got 0.5 after 2.0"),
    ((0, 1), "positive, finite numbers of epochs, got 0"),
    ((0.5, math.inf), "positive, finite numbers of epochs, got inf"),
    ((1,), "at least two budgets"),
])
def test_budgets_that_do_not_increase_are_rejected(budgets, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MultiFidelity(SoftmaxDigits(), budgets)
    with pytest.raises(TypeError, match="sequence"):
        check_budgets("1,2")


@pytest.mark.parametrize("promote", [0, 1, 1.5, -0.2])
def test_a_promotion_fraction_outside_0_1_is_rejected(promote):
    with pytest.raises(ValueError, match=f"promote must be a fraction in \\(0, 1\\), got {promote}"):
        MultiFidelity(SoftmaxDigits(), (0.5, 1), promote)


def test_an_evaluator_that_cannot_train_to_a_budget_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="cannot train to a budget of 0.5 epochs"):
        MultiFidelity(_NoBudget(), (0.5, 1))
    with pytest.raises(ValueError, match="cannot train for a fraction of an epoch, and budget "
                                         "0.25 is one"):
        MultiFidelity(_WholeEpochs(), (0.25, 1, 2))
    MultiFidelity(_WholeEpochs(), (1, 2, 4))  # whole epochs are fine
    # a fitness without the rung's weight: refused before anything is trained
    toolbox, fidelity = _toolbox(tmp_path)
    fidelity.rung_objective = True
    with pytest.raises(ValueError, match=r"rung_objective=True needs .* got weights \(1.0,\)"):
        toolbox.map(toolbox.evaluate, toolbox.population(n=2))
    assert _trainings(tmp_path) == []


# ------------------------------------------------------------------------------------ the rules
def test_successive_halving_trains_no_genome_twice_at_one_rung(tmp_path):
    toolbox, fidelity = _toolbox(tmp_path)
    population = toolbox.population(n=8)
    population += [toolbox.clone(population[0])]  # a duplicate is trained once
    fits = toolbox.map(toolbox.evaluate, population)
    n = len({toolbox.cache.key(ind) for ind in population})
    per_rung = Counter(e["rung"] for e in fidelity.log)
    assert n >= 6 and per_rung == {0: n, 1: math.ceil(n / 2), 2: math.ceil(math.ceil(n / 2) / 2)}
    total = sum(per_rung.values())
    lines = _trainings(tmp_path)
    assert len(lines) == len(set(lines)) == total
    # a genome's fitness is its highest rung's; the top rung's two are the rung-1 winners
    cache = toolbox.cache
    for ind, fit in zip(population, fits):
        rung, best = fidelity.highest(cache.key(ind))
        assert fit == best == cache.records[rung_key(cache.key(ind), rung)]
    rung1 = sorted(((cache.records[rung_key(cache.key(i), 1)][0], key_digest(cache.key(i)))
                    for i in population[:8] if cache.lookup(rung_key(cache.key(i), 1))),
                   reverse=True)
    top = {e["digest"] for e in fidelity.log if e["rung"] == 2}
    assert top == {d for _, d in rung1[:2]}
    # again, and through a fresh cache on the same store: nothing is trained
    assert toolbox.map(toolbox.evaluate, population) == fits
    assert len(_trainings(tmp_path)) == total and cache.misses == total
    store = EvaluationStore(tmp_path / "store.sqlite")
    cache.attach(store, fidelity.fingerprint())
    for k, v in list(cache.records.items()):
        if isinstance(k, tuple) and len(k) == 3 and k[1] == "rung":
            cache.record(k, v)
    again = MultiFidelity(fidelity.evaluator, fidelity.budgets, 0.5, folder=tmp_path / "states",
                          cache=EvaluationCache(fidelity.evaluator, store=None))
    again.cache.attach(store, again.fingerprint())
    assert again.evaluate_all(population) == fits and again.log == []
    assert len(_trainings(tmp_path)) == total


def test_promoted_keras_genomes_resume_from_saved_weights_and_steps_add_up(tmp_path):
    import keras

    from deapnn.keras import KerasEvaluator, models
    from deapnn.keras.evaluator import budget_steps
    from deapnn.hparams.genome import make_genome

    space = models.mlp_space(layers=1, neurons=[16, 32, 64], learning_rate=[3e-3, 1e-4],
                             batch_size=[64], optimizer=["adam"], initializer=["glorot_uniform"],
                             activation=["relu"], input_dropout=[0.0], dropout=[0.0],
                             batch_norm=[False], use_bias=[True])
    evaluator = KerasEvaluator(DIGITS)
    fidelity = MultiFidelity(evaluator, (0.25, 1.0), 0.5, folder=tmp_path)
    genomes = [make_genome(space, {**space.sample(), "neurons0": n, "learning_rate": lr})
               for n, lr in [(16, 3e-3), (32, 1e-4)]]
    fits = fidelity.evaluate_all(genomes)
    n_train = len(evaluator.dataset.x_train)
    low, high = budget_steps(0.25, n_train, 64), budget_steps(1.0, n_train, 64)
    rung0 = {e["digest"]: e for e in fidelity.log if e["rung"] == 0}
    rung1 = [e for e in fidelity.log if e["rung"] == 1]
    assert len(rung0) == 2 and len(rung1) == 1  # ceil(0.5 * 2)
    for e in rung1:
        assert rung0[e["digest"]]["steps"] == low == e["start_steps"]  # resumed, not restarted
        assert e["steps"] == high  # the steps add up: low + (high - low)
    # the saved rung-0 state holds the weights and the optimizer's step counter
    promoted = [g for g in genomes if key_digest(g.key()) in {e["digest"] for e in rung1}]
    other = [g for g in genomes if g is not promoted[0]][0]
    low_scores = [fidelity.cache.records[rung_key(g.key(), 0)][0] for g in (promoted[0], other)]
    assert low_scores[0] >= low_scores[1]  # the better at rung 0 was promoted
    assert fits[genomes.index(other)] == fidelity.cache.records[rung_key(other.key(), 0)]
    with np.load(state_file(tmp_path, promoted[0].key(), 0)) as saved:
        assert int(saved["steps"]) == low and int(saved[[k for k in saved.files
                                                         if k.startswith("o")][0]]) == low
    # resuming trains on the batches an uninterrupted run would: the same network results
    straight = evaluator.train_budget(promoted[0], 1.0)
    assert straight.start_steps == 0 and straight.steps == high
    resumed = fits[genomes.index(promoted[0])]
    assert resumed[0] == pytest.approx(straight.score, abs=0.02)
    assert all(0.1 < f[0] <= 1.0 for f in fits)
    keras.backend.clear_session()


# ------------------------------------------------------------------------------------ DEAP's loops
def test_deaps_ea_simple_and_ea_mu_plus_lambda_run_unchanged(tmp_path):
    for name, run in [
        ("simple", lambda pop, tb, hof: algorithms.eaSimple(pop, tb, 0.5, 0.5, 3, halloffame=hof,
                                                            verbose=False)),
        ("mu+lambda", lambda pop, tb, hof: algorithms.eaMuPlusLambda(
            pop, tb, 8, 12, 0.5, 0.4, 3, halloffame=hof, verbose=False)),
    ]:
        folder = tmp_path / name.replace("+", "p")
        folder.mkdir()
        toolbox, fidelity = _toolbox(folder)
        hof = tools.HallOfFame(2)
        population, logbook = run(toolbox.population(n=8), toolbox, hof)
        lines = _trainings(folder)
        assert len(lines) == len(set(lines)) == fidelity.trainings() == toolbox.cache.misses
        per_rung = Counter(e["rung"] for e in fidelity.log)
        assert per_rung[0] > per_rung[1] > per_rung[2] > 0
        for ind in population:  # every fitness is its genome's highest rung's
            assert ind.fitness.values == fidelity.highest(toolbox.cache.key(ind))[1]
        assert 0.5 < hof[0].fitness.values[0] <= 1.0 and len(logbook) == 4


def test_rung_objective_compares_values_only_at_equal_rungs(tmp_path):
    deapnn.seed(5)
    evaluator = SoftmaxDigits()
    toolbox = deapnn.make_toolbox(SPACE, evaluator, genome_type=RungGenome)
    fidelity = MultiFidelity(evaluator, (0.25, 1.0), 0.5, folder=tmp_path, rung_objective=True)
    fidelity.install(toolbox)
    hof = tools.HallOfFame(3)
    population, _ = algorithms.eaSimple(toolbox.population(n=6), toolbox, 0.5, 0.5, 2,
                                        halloffame=hof, verbose=False)
    for ind in population:
        rung, values = fidelity.highest(toolbox.cache.key(ind))
        assert ind.fitness.values == (float(rung),) + tuple(values)
    assert hof[0].fitness.values[0] == 1.0  # the top rung always ranks first


def test_the_process_backend_gives_the_serial_results(tmp_path):
    from deapnn.parallel import register_backend

    serial_tb, serial = _toolbox(tmp_path / "s")
    population = serial_tb.population(n=6)
    expected = serial_tb.map(serial_tb.evaluate, population)
    deapnn.seed(3)
    evaluator = SoftmaxDigits()
    toolbox = deapnn.make_toolbox(SPACE, evaluator)
    with register_backend(toolbox, "processes", workers=2):
        fidelity = MultiFidelity(evaluator, (0.25, 0.5, 1.0), 0.5, folder=tmp_path / "p")
        fidelity.install(toolbox)
        assert toolbox.map(toolbox.evaluate, population) == expected
    assert Counter(e["rung"] for e in fidelity.log) == Counter(e["rung"] for e in serial.log)
    assert all(e["start_steps"] > 0 for e in fidelity.log if e["rung"] > 0)
    assert all(e["seconds"] is not None for e in fidelity.log)  # timed in the workers


# ------------------------------------------------------------------------------------ kill, resume
def _run(folder, *kill):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, str(SCRIPT), str(folder), "3", *map(str, kill)],
                          capture_output=True, text=True, timeout=300, env=env)


def test_kill_in_the_middle_of_a_rung_and_resume_retrains_nothing_finished(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir(), killed.mkdir()
    done = _run(reference)
    assert done.returncode == 0, done.stderr
    total = len(_trainings(reference))
    first = _run(killed, 11)  # generation 0 trains 8 at rung 0, 4 at rung 1: killed in rung 1
    assert first.returncode == -signal.SIGKILL
    assert len(_trainings(killed)) == 11
    second = _run(killed)
    assert second.returncode == 0, second.stderr
    lines = _trainings(killed)
    assert len(lines) == len(set(lines)) == total  # nothing finished was trained again
    a = pickle.loads((reference / "result.pkl").read_bytes())
    b = pickle.loads((killed / "result.pkl").read_bytes())
    assert a == b  # the same run as the uninterrupted one


# ------------------------------------------------------------------------------------ the job
def test_run_hparams_with_fidelity_trains_rungs_and_saves_the_best(tmp_path):
    from deapnn.jobs.common import BadInput, RunFolder, config_dict
    from deapnn.jobs.hparams import HparamsConfig, run_hparams

    with pytest.raises(BadInput, match=r"--fidelity: budgets must increase .* got 0.5 after 1.0"):
        HparamsConfig(data="digits", fidelity=(1, 0.5))
    with pytest.raises(BadInput, match=r"--promote must be a fraction in \(0, 1\), got 1.0"):
        HparamsConfig(data="digits", fidelity=(0.5, 1), promote=1.0)
    from deapnn.keras import models

    space = tmp_path / "space.json"
    space.write_text(models.mlp_space(layers=1, neurons=[8, 16, 32], batch_size=[64],
                                      batch_norm=[False]).to_json())
    config = HparamsConfig(data="digits", space=str(space), population=2, ngen=0,
                           fidelity=[0.1, 0.3], promote=0.4, best_epochs=1)
    assert config.fidelity == (0.1, 0.3)
    folder = RunFolder.create(tmp_path / "run", "hparams", ["test"], config_dict(config))
    result = run_hparams(folder, config, quiet=True)
    rungs = result["rungs"]
    assert [r["budget"] for r in rungs] == [0.1, 0.3]
    assert rungs[0]["trainings"] == result["genomes"] and rungs[1]["trainings"] == math.ceil(
        0.4 * result["genomes"])
    assert result["evaluations"] == rungs[0]["trainings"] + rungs[1]["trainings"]
    assert len(list((tmp_path / "run" / "rungs").glob("*.r0.npz"))) == rungs[0]["trainings"]
    assert (tmp_path / "run" / "best.keras").is_file()
    assert 0.0 < result["test_accuracy"] <= 1.0


def test_the_command_line_rejects_bad_fidelity_before_any_work(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    for flags, message in [(["--fidelity", "1,0.5"], "got 0.5 after 1.0"),
                           (["--fidelity", "0.5,1", "--promote", "0"],
                            "--promote must be a fraction in (0, 1), got 0.0")]:
        done = subprocess.run([sys.executable, "-m", "deapnn", "hparams", "--data", "digits",
                               "--out", str(tmp_path), *flags],
                              capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 2 and message in done.stderr, done.stderr
        assert not any(tmp_path.iterdir())  # no run folder was made


def test_register_backend_keeps_the_multi_fidelity_map_before_or_after_install(tmp_path):
    """Choosing a backend after install() must not silently drop multi-fidelity (the map is
    re-wrapped around the new backend), and the run gives the same fitnesses either way."""
    from deapnn.core.fidelity import FidelityMap
    from deapnn.parallel import SerialMap, register_backend

    results = []
    for order, folder in (("after", tmp_path / "a"), ("before", tmp_path / "b")):
        folder.mkdir()
        deapnn.seed(3)
        evaluator = SoftmaxDigits(log=str(folder / "trainings.log"))
        toolbox = deapnn.make_toolbox(SPACE, evaluator)
        fidelity = MultiFidelity(evaluator, (0.25, 1.0), 0.5, folder=folder / "states")
        if order == "before":
            register_backend(toolbox, "serial")
        fidelity.install(toolbox)
        if order == "after":
            register_backend(toolbox, "serial")
        current = toolbox.map.func if hasattr(toolbox.map, "func") else toolbox.map
        assert isinstance(current, FidelityMap) and isinstance(current.mapper, SerialMap)
        pop = toolbox.population(n=6)
        fits = list(toolbox.map(toolbox.evaluate, pop))
        assert fidelity.trainings(1) and fidelity.trainings(1) < fidelity.trainings(0)
        results.append(fits)
    assert results[0] == results[1]
