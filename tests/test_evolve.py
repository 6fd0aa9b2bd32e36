"""deapnn.evolve: DEAP's results, exact resume, stopping rules, failures and bad input."""

import math
import os
import pickle
import shutil
import subprocess
import time

import numpy as np
import pytest
from deap import algorithms, base, cma, creator, tools

import deapnn
from deapnn.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from deapnn.core.failures import Failure, SetupError
from deapnn.core.loop import evolve
from deapnn.core.types import define
from deapnn.core.store import EvaluationStore
from deapnn.hparams.evonas import EvoNASAgent, synthetic_reward, synthetic_space
from deapnn.hparams.problems import PolynomialFit
from deapnn.weights.strategies import SNES, OpenAIES
from deapnn.weights.types import hall_of_fame


class Interrupt(Exception):
    pass


_REMAINING = [None]  # evaluations left before Interruptible raises (None: never)


class Interruptible(PolynomialFit):
    """PolynomialFit that raises after ``_REMAINING[0]`` evaluations, like a run stopped mid-way.

    The budget is a module global, not an attribute: the evaluator (and its fingerprint) is the
    same for the interrupted run and its resume."""

    def __call__(self, genome):
        if _REMAINING[0] is not None:
            _REMAINING[0] -= 1
            if _REMAINING[0] < 0:
                raise Interrupt
        return super().__call__(genome)


def _first(ind):
    return ind.fitness.values[0]


def _multi_stats():
    fitness = tools.Statistics(_first)
    fitness.register("max", max)
    fitness.register("avg", np.mean)
    genes = tools.Statistics(lambda ind: ind["a"])
    genes.register("min", min)
    return tools.MultiStatistics(fitness=fitness, genes=genes)


def _toolbox(fitness=None, **kwargs):
    return deapnn.make_toolbox(PolynomialFit.space(), fitness or PolynomialFit(), mate="convex", mutate="convex",
                               **kwargs)


def _run(fitness, ngen, checkpoint=None, algorithm="simple", stats=None, hof_size=2, **kwargs):
    deapnn.seed(7)
    toolbox = _toolbox(fitness)
    hof = tools.HallOfFame(hof_size)
    pop = toolbox.population(n=16)
    if algorithm != "simple":
        kwargs = {"mu": 16, "lambda_": 24, **kwargs}
    pop, log = evolve(pop, toolbox, ngen, cxpb=0.5, mutpb=0.3, algorithm=algorithm,
                      stats=stats if stats is not None else deapnn.fitness_stats(), halloffame=hof,
                      checkpoint=checkpoint, **kwargs)
    return pop, log, hof, toolbox


def _records(logbook):
    return [{k: v for k, v in r.items() if k != "elapsed"} for r in logbook]


def _same_logbook(a, b):
    assert _records(a) == _records(b)
    assert sorted(a.chapters) == sorted(b.chapters)
    for name in a.chapters:
        assert _records(a.chapters[name]) == _records(b.chapters[name]), name


# ------------------------------------------------------------------------------ DEAP's results
@pytest.mark.parametrize("algorithm", ["simple", "mu+lambda", "mu,lambda"])
def test_evolve_gives_deaps_results(algorithm):
    pop, log, hof, _ = _run(PolynomialFit(), 5, algorithm=algorithm, stats=_multi_stats(), hof_size=3)
    deapnn.seed(7)
    toolbox = _toolbox()
    hof2 = tools.HallOfFame(3)
    pop2 = toolbox.population(n=16)
    if algorithm == "simple":
        pop2, log2 = algorithms.eaSimple(pop2, toolbox, 0.5, 0.3, 5, _multi_stats(), hof2, verbose=False)
    elif algorithm == "mu+lambda":
        pop2, log2 = algorithms.eaMuPlusLambda(pop2, toolbox, 16, 24, 0.5, 0.3, 5, _multi_stats(), hof2,
                                               verbose=False)
    else:
        pop2, log2 = algorithms.eaMuCommaLambda(pop2, toolbox, 16, 24, 0.5, 0.3, 5, _multi_stats(), hof2,
                                                verbose=False)
    assert [list(g) for g in pop] == [list(g) for g in pop2]
    assert [ind.fitness.values for ind in pop] == [ind.fitness.values for ind in pop2]
    assert [list(g) for g in hof] == [list(g) for g in hof2]
    _same_logbook(log, log2)
    assert len(log.chapters["fitness"]) == 6 and log.stop_reason is None
    assert log.header == log2.header


def _sphere(ind):
    return (-float(np.sum((np.asarray(ind) - 0.3) ** 2)),)


def _strategy_toolbox(kind):
    toolbox = base.Toolbox()
    if kind == "openai_es":
        strategy = OpenAIES(np.zeros(5), sigma=0.1, lambda_=8, learning_rate=0.05)
    elif kind == "snes":
        strategy = SNES(np.zeros(5), sigma=0.3, lambda_=8)
    elif kind == "cma":
        strategy = cma.Strategy(centroid=[0.0] * 5, sigma=0.5, lambda_=8)
    if kind == "evonas":
        strategy = EvoNASAgent(synthetic_space(5), population_size=6, sample_size=3, lambda_=4)
        toolbox.register("generate", strategy.generate, creator.Genome)
        toolbox.register("evaluate", synthetic_reward)
        hof = tools.HallOfFame(3)
    else:
        toolbox.register("generate", strategy.generate, creator.WeightVector)
        toolbox.register("evaluate", _sphere)
        hof = hall_of_fame(3)
    toolbox.register("update", strategy.update)
    return toolbox, strategy, hof


def _plain(value):
    """numpy arrays and scalars as Python lists and numbers, for an exact comparison."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _strategy_state(strategy):
    return _plain(strategy.state() if hasattr(strategy, "state") else dict(strategy.__dict__))


@pytest.mark.parametrize("kind", ["openai_es", "snes", "cma", "evonas"])
def test_generate_update_gives_eagenerateupdates_results(kind):
    deapnn.seed(3)
    toolbox, strategy, hof = _strategy_toolbox(kind)
    pop, log = evolve(None, toolbox, 6, algorithm="generate_update", stats=deapnn.fitness_stats(), halloffame=hof)
    deapnn.seed(3)
    toolbox2, strategy2, hof2 = _strategy_toolbox(kind)
    pop2, log2 = algorithms.eaGenerateUpdate(toolbox2, 6, hof2, deapnn.fitness_stats(), verbose=False)
    assert [list(g) for g in pop] == [list(g) for g in pop2]
    assert [list(g) for g in hof] == [list(g) for g in hof2]
    _same_logbook(log, log2)
    assert _strategy_state(strategy) == _strategy_state(strategy2)


# ------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("algorithm", ["simple", "mu+lambda", "mu,lambda"])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, algorithm):
    pop_ref, log_ref, hof_ref, _ = _run(Interruptible(), 8, algorithm=algorithm, stats=_multi_stats())
    assert [r["gen"] for r in log_ref] == list(range(9))
    ckpt = tmp_path / "run.pkl"
    _REMAINING[0] = 16 + 3 * 10
    try:
        with pytest.raises(Interrupt):
            _run(Interruptible(), 8, ckpt, algorithm, stats=_multi_stats())  # dies mid-generation
    finally:
        _REMAINING[0] = None
    state = load_checkpoint(ckpt)
    assert 1 <= state["generation"] < 8
    saved = state["logbook"].select("elapsed")
    pop, log, hof, tb = _run(Interruptible(), 8, ckpt, algorithm, stats=_multi_stats())  # the same call again
    # the wall time carries over the interruption: the saved generations keep theirs, later ones add
    elapsed = log.select("elapsed")
    assert elapsed[:len(saved)] == saved and elapsed == sorted(elapsed) and elapsed[-1] > saved[-1] > 0
    assert [list(g) for g in pop] == [list(g) for g in pop_ref]
    assert [list(g) for g in hof] == [list(g) for g in hof_ref]
    _same_logbook(log, log_ref)
    assert len(log.chapters["genes"]) == 9  # every chapter, every generation
    # the evaluations finished before the interruption were answered by the store
    rows = EvaluationStore(str(ckpt) + ".sqlite").rows()
    assert len(rows) == len({r.key_digest for r in rows}) == load_checkpoint(ckpt)["evaluations"]


@pytest.mark.parametrize("kind", ["openai_es", "snes", "cma", "evonas"])
def test_generate_update_resumes_strategy_and_rng(tmp_path, kind):
    deapnn.seed(3)
    toolbox, strategy, hof = _strategy_toolbox(kind)
    pop_ref, log_ref = evolve(None, toolbox, 8, algorithm="generate_update", halloffame=hof)
    deapnn.seed(3)
    toolbox, strategy2, hof2 = _strategy_toolbox(kind)
    evolve(None, toolbox, 3, algorithm="generate_update", halloffame=hof2, checkpoint=tmp_path / "c.pkl")
    deapnn.seed(99)  # a fresh process: other random state, a new strategy
    toolbox, strategy3, hof3 = _strategy_toolbox(kind)
    assert _strategy_state(strategy3) != _strategy_state(strategy)
    pop, log = evolve(None, toolbox, 8, algorithm="generate_update", halloffame=hof3, checkpoint=tmp_path / "c.pkl")
    assert [list(g) for g in pop] == [list(g) for g in pop_ref]
    assert [list(g) for g in hof3] == [list(g) for g in hof]
    assert _strategy_state(strategy3) == _strategy_state(strategy)
    _same_logbook(log, log_ref)


def _tied(genome):
    """Few distinct values: many ties in the hall of fame."""
    return (float(round(PolynomialFit()(genome)[0] / 20.0)),)


def test_tied_hall_of_fame_keeps_its_order_across_resume(tmp_path):
    _, _, hof_ref, _ = _run(_tied, 6, hof_size=8)
    _run(_tied, 3, tmp_path / "c.pkl", hof_size=8)
    _, _, hof, _ = _run(_tied, 6, tmp_path / "c.pkl", hof_size=8)
    assert [list(g) for g in hof] == [list(g) for g in hof_ref]
    # the test can fail: rebuilding the saved hall of fame with insert() reorders its ties
    saved = load_checkpoint(tmp_path / "c.pkl")["halloffame"]["items"]
    rebuilt = tools.HallOfFame(8)
    for ind in saved:
        rebuilt.insert(ind)
    assert len({ind.fitness.values for ind in saved}) < len(saved)
    assert [list(g) for g in rebuilt] != [list(g) for g in saved]


def test_extending_ngen_continues_the_run(tmp_path):
    _, log_ref, hof_ref, _ = _run(PolynomialFit(), 6)
    _run(PolynomialFit(), 3, tmp_path / "c.pkl")
    _, log, hof, _ = _run(PolynomialFit(), 6, tmp_path / "c.pkl")
    _same_logbook(log, log_ref)
    assert [list(g) for g in hof] == [list(g) for g in hof_ref]


class Drifting(PolynomialFit):
    """A fitness with state: each evaluation shifts the next (like a minibatch step)."""

    def __init__(self):
        super().__init__()
        self.step = 0

    def __call__(self, genome):
        self.step += 1
        return (super().__call__(genome)[0] + 0.01 * self.step,)

    def state(self):
        return {"step": self.step}

    def load_state(self, state):
        self.step = state["step"]


def test_evaluator_state_is_checkpointed(tmp_path):
    reference = Drifting()
    _, log_ref, hof_ref, _ = _run(reference, 5)
    first = Drifting()
    _run(first, 2, tmp_path / "c.pkl")
    fresh = Drifting()  # a new process: step 0 until the checkpoint restores it
    _, log, hof, _ = _run(fresh, 5, tmp_path / "c.pkl")
    _same_logbook(log, log_ref)
    assert fresh.step == reference.step > first.step > 0
    assert [list(g) for g in hof] == [list(g) for g in hof_ref]


def test_an_explicit_store_is_reused_by_a_new_run(tmp_path):
    store = tmp_path / "evaluations.sqlite"
    _, log1, _, tb1 = _run(PolynomialFit(), 3, tmp_path / "a.pkl", store=store)
    rows = EvaluationStore(store).count()
    assert rows == tb1.cache.misses > 0 and not (tmp_path / "a.pkl.sqlite").exists()
    _, log2, _, tb2 = _run(PolynomialFit(), 3, tmp_path / "b.pkl", store=store)  # a new run, same evaluator
    assert tb2.cache.misses == 0 and EvaluationStore(store).count() == rows
    _same_logbook(log1, log2)


# ------------------------------------------------------------------------------ checkpoint errors
def test_resuming_with_other_settings_names_them_and_keeps_the_file(tmp_path):
    ckpt = tmp_path / "c.pkl"
    _run(PolynomialFit(), 2, ckpt)
    before = ckpt.read_bytes()
    with pytest.raises(ValueError, match=r"cxpb: the checkpoint has 0\.5, this call has 0\.9"):
        deapnn.seed(7)
        tb = _toolbox()
        evolve(tb.population(n=16), tb, 4, cxpb=0.9, mutpb=0.1, stats=deapnn.fitness_stats(),
               halloffame=tools.HallOfFame(2), checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"population size: the checkpoint has 16, this call has 10"):
        tb = _toolbox()
        evolve(tb.population(n=10), tb, 4, cxpb=0.5, mutpb=0.3, stats=deapnn.fitness_stats(),
               halloffame=tools.HallOfFame(2), checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"toolbox\.mutate: .*mut_convex.*this call has .*mut_resample"):
        tb = deapnn.make_toolbox(PolynomialFit.space(), PolynomialFit(), mate="convex", mutate="resample")
        evolve(tb.population(n=16), tb, 4, cxpb=0.5, mutpb=0.3, stats=deapnn.fitness_stats(),
               halloffame=tools.HallOfFame(2), checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"evaluator: the checkpoint has"):  # another fitness function
        tb = _toolbox(PolynomialFit(coefficients=(1.0, 0.0, 0.0)))
        evolve(tb.population(n=16), tb, 4, cxpb=0.5, mutpb=0.3, stats=deapnn.fitness_stats(),
               halloffame=tools.HallOfFame(2), checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"toolbox\.individual: .*SearchSpace#"):  # another space
        tb = deapnn.make_toolbox(PolynomialFit.space(-5, 5), PolynomialFit(), mate="convex", mutate="convex")
        evolve(tb.population(n=16), tb, 4, cxpb=0.5, mutpb=0.3, stats=deapnn.fitness_stats(),
               halloffame=tools.HallOfFame(2), checkpoint=ckpt)
    assert ckpt.read_bytes() == before


def test_corrupt_truncated_foreign_and_other_version_checkpoints(tmp_path):
    ckpt = tmp_path / "c.pkl"
    _run(PolynomialFit(), 1, ckpt)
    good = ckpt.read_bytes()
    ckpt.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=r"c\.pkl' is truncated or corrupt"):
        _run(PolynomialFit(), 3, ckpt)
    assert ckpt.read_bytes() == good[: len(good) // 2]  # nothing overwritten
    ckpt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(ckpt)
    ckpt.write_bytes(pickle.dumps({"population": [], "generation": 3}))  # the old format
    with pytest.raises(CheckpointError, match=r"c\.pkl' is not a deapnn checkpoint"):
        _run(PolynomialFit(), 3, ckpt)
    save_checkpoint(ckpt, {"kind": "something else"})
    with pytest.raises(CheckpointError, match="another kind of run"):
        _run(PolynomialFit(), 3, ckpt)
    state = pickle.loads(good)
    state["deapnn_version"] = "0.0.1"
    ckpt.write_bytes(pickle.dumps(state))
    with pytest.raises(CheckpointError, match=r"written by deapnn '0\.0\.1'"):
        _run(PolynomialFit(), 3, ckpt)


def test_checkpoint_in_a_missing_folder_is_created(tmp_path):
    ckpt = tmp_path / "new" / "deeper" / "c.pkl"
    _run(PolynomialFit(), 1, ckpt)
    assert load_checkpoint(ckpt)["generation"] == 2


def test_checkpoint_in_a_read_only_folder_raises_before_any_evaluation(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:  # root ignores permissions; the immutable flag holds even for root
        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(folder)]).returncode:
            pytest.skip("cannot make a read-only folder here")
    else:
        folder.chmod(0o555)
    try:
        calls = []

        def fitness(genome):
            calls.append(1)
            return PolynomialFit()(genome)

        with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*ro/c\.pkl"):
            tb = _toolbox(fitness)
            evolve(tb.population(n=4), tb, 2, checkpoint=folder / "c.pkl")
        assert calls == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)])
        else:
            folder.chmod(0o755)


# ------------------------------------------------------------------------------ failures
class NaNFitness:
    """NaN for every genome with ``a > 0.5``: a third of a random population or so."""

    def __call__(self, genome):
        return (float("nan"),) if genome["a"] > 0.5 else PolynomialFit()(genome)


def test_nan_fitness_is_a_recorded_failure_never_in_the_hall_of_fame_nor_selected():
    deapnn.seed(2)
    toolbox = _toolbox(NaNFitness(), select="best")
    hof = tools.HallOfFame(30)
    pop = toolbox.population(n=12)
    pop, log = evolve(pop, toolbox, 6, algorithm="mu+lambda", mu=12, lambda_=24, halloffame=hof,
                      stats=deapnn.fitness_stats())
    failed = [k for k, v in toolbox.cache.records.items() if isinstance(v, Failure)]
    assert failed and all("not a number" in toolbox.cache.failures[k] for k in failed)
    assert log[0]["failed"] > 0  # counted in the logbook
    assert all(math.isfinite(v) for ind in pop for v in ind.fitness.values)
    assert all(ind["a"] <= 0.5 for ind in pop)
    assert len(hof) > 12 and all(math.isfinite(ind.fitness.values[0]) and ind["a"] <= 0.5 for ind in hof)


def test_nan_fitness_without_a_cache_fills_no_hall_of_fame_slot():
    deapnn.seed(2)
    toolbox = _toolbox(NaNFitness(), cache=False)
    hof = tools.HallOfFame(100)
    evolve(toolbox.population(n=10), toolbox, 2, halloffame=hof)
    assert hof.items and all(math.isfinite(ind.fitness.values[0]) for ind in hof)


def _always_fails(genome):
    return Failure((-math.inf,), "unknown metric 'acuracy'")


def test_a_generation_that_fails_for_one_reason_raises_setup_error_after_saving(tmp_path):
    deapnn.seed(1)
    toolbox = _toolbox(_always_fails)
    with pytest.raises(SetupError, match=r"every evaluation of generation 0 \(8\) failed .*unknown metric 'acuracy'"):
        evolve(toolbox.population(n=8), toolbox, 5, checkpoint=tmp_path / "c.pkl")
    assert load_checkpoint(tmp_path / "c.pkl")["generation"] == 1


def _half_fail(genome):
    if genome["a"] > 0:
        return Failure((-math.inf,), "diverged")
    return PolynomialFit()(genome)


def test_a_generation_with_some_failures_goes_on():
    deapnn.seed(1)
    toolbox = _toolbox(_half_fail)
    _, log = evolve(toolbox.population(n=8), toolbox, 3, stats=deapnn.fitness_stats())
    assert len(log) == 4 and sum(log.select("failed")) > 0


# ------------------------------------------------------------------------------ stopping rules
def test_target_stops_at_the_first_generation_that_reaches_it_and_holds_across_resume(tmp_path):
    _, log_ref, _, _ = _run(PolynomialFit(), 30)
    best = np.maximum.accumulate(log_ref.select("max"))
    target = float(best[5])  # first reached at some generation g <= 5
    g = int(np.argmax(best >= target))
    _, log, _, _ = _run(PolynomialFit(), 30, target=target)
    assert len(log) == g + 1 and log.stop_reason.startswith("target")
    # across a resume: stopped at ngen=g-1 (before the target), resumed with the target
    _run(PolynomialFit(), g - 1, tmp_path / "c.pkl")
    _, log2, _, _ = _run(PolynomialFit(), 30, tmp_path / "c.pkl", target=target)
    assert len(log2) == g + 1 and log2.stop_reason.startswith("target")
    assert load_checkpoint(tmp_path / "c.pkl")["stop_reason"] == log2.stop_reason
    # a stopped run stays stopped, unless extended with a target it has not reached
    _, log3, _, _ = _run(PolynomialFit(), 30, tmp_path / "c.pkl", target=target)
    assert len(log3) == g + 1 and log3.stop_reason == log2.stop_reason
    _, log4, _, _ = _run(PolynomialFit(), g + 3, tmp_path / "c.pkl", target=0.0, extend=True)
    assert len(log4) == g + 4 and log4.stop_reason is None
    _same_logbook(log4, _run(PolynomialFit(), g + 3)[1])


def test_target_of_a_minimised_fitness():
    deapnn.seed(0)
    toolbox = deapnn.make_toolbox(PolynomialFit.space(), _mse, genome_type=creator.GenomeMin,
                                  mate="convex", mutate="convex")
    _, log = evolve(toolbox.population(n=16), toolbox, 50, stats=deapnn.fitness_stats(), target=1.0)
    mins = log.select("min")
    assert log.stop_reason.startswith("target") and mins[-1] <= 1.0 and min(mins[:-1]) > 1.0


def _mse(genome):
    return (-PolynomialFit()(genome)[0],)


def _flat(genome):
    return (float(genome["a"] > 10),)  # always 0.0: never improves


def test_patience_counts_generations_without_improvement_across_resume(tmp_path):
    _, log, _, _ = _run(_flat, 20, patience=4)
    assert len(log) == 5 and log.stop_reason.startswith("patience: no improvement")
    _run(_flat, 2, tmp_path / "c.pkl", patience=4)
    _, log2, _, _ = _run(_flat, 20, tmp_path / "c.pkl", patience=4)
    assert len(log2) == 5 and log2.stop_reason == log.stop_reason
    _, log3, _, _ = _run(_flat, 20, tmp_path / "c.pkl", patience=6, extend=True)
    assert len(log3) == 7 and log3.stop_reason.startswith("patience")


def test_max_evaluations_counts_distinct_evaluations_across_resume(tmp_path):
    misses = [_run(PolynomialFit(), n)[3].cache.misses for n in range(20)]  # after generation n
    assert misses == sorted(misses) and misses[-1] > 100
    g = int(np.argmax(np.array(misses) >= 100))
    _, log, _, tb = _run(PolynomialFit(), 20, max_evaluations=100)
    assert len(log) == g + 1 and log.stop_reason.startswith("max_evaluations")
    assert tb.cache.misses == misses[g]
    _run(PolynomialFit(), g - 2, tmp_path / "c.pkl")
    _, log2, _, _ = _run(PolynomialFit(), 20, tmp_path / "c.pkl", max_evaluations=100)
    assert len(log2) == g + 1 and log2.stop_reason == log.stop_reason


def _slow_sphere(ind):
    time.sleep(0.05)
    return _sphere(ind)


def _es_toolbox():
    toolbox = base.Toolbox()
    strategy = OpenAIES(np.zeros(3), sigma=0.1, lambda_=4)
    toolbox.register("generate", strategy.generate, creator.WeightVector)
    toolbox.register("update", strategy.update)
    toolbox.register("evaluate", _slow_sphere)
    return toolbox


def test_max_time_sums_wall_time_over_resumes(tmp_path):
    # each generation sleeps 4 x 0.05 s = 0.2 s at least: 0.5 s is passed during generation 2
    deapnn.seed(0)
    _, log = evolve(None, _es_toolbox(), 50, algorithm="generate_update", max_time=0.5)
    assert log.stop_reason.startswith("max_time") and len(log) == 3
    assert log[-1]["elapsed"] >= 0.5 > log[-2]["elapsed"]
    deapnn.seed(0)
    evolve(None, _es_toolbox(), 2, algorithm="generate_update", checkpoint=tmp_path / "c.pkl")
    _, log2 = evolve(None, _es_toolbox(), 50, algorithm="generate_update", checkpoint=tmp_path / "c.pkl",
                     max_time=0.5)
    assert log2.stop_reason.startswith("max_time") and len(log2) == 3
    # a budget already spent stops a resumed run before it evaluates anything
    _, log3 = evolve(None, _es_toolbox(), 50, algorithm="generate_update", checkpoint=tmp_path / "c.pkl",
                     max_time=0.5, extend=True)
    assert len(log3) == 3 and log3.stop_reason.startswith("max_time")
    _, log4 = evolve(None, _es_toolbox(), 4, algorithm="generate_update", checkpoint=tmp_path / "c.pkl",
                     max_time=100.0, extend=True)
    assert len(log4) == 4 and log4.stop_reason is None


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, error, match", [
    ({"algorithm": "cma"}, ValueError, "algorithm must be one of"),
    ({"algorithm": "mu+lambda"}, ValueError, "needs mu and lambda_"),
    ({"ngen": -1}, ValueError, "ngen must be a non-negative int, got -1"),
    ({"ngen": 2.5}, TypeError, "ngen must be a non-negative int, got 2.5"),
    ({"cxpb": 1.5}, ValueError, r"cxpb must be in \[0, 1\], got 1.5"),
    ({"mutpb": float("nan")}, ValueError, r"mutpb must be in \[0, 1\], got nan"),
    ({"algorithm": "mu+lambda", "mu": 4, "lambda_": 8, "cxpb": 0.7, "mutpb": 0.5}, ValueError,
     r"cxpb \+ mutpb must be <= 1"),
    ({"algorithm": "mu,lambda", "mu": 8, "lambda_": 4}, ValueError, "needs lambda_ >= mu, got mu=8, lambda_=4"),
    ({"algorithm": "mu+lambda", "mu": 0, "lambda_": 4}, ValueError, "mu must be an int >= 1, got 0"),
    ({"mu": 4}, ValueError, "mu and lambda_ are for"),
    ({"target": float("nan")}, ValueError, "target must be a number"),
    ({"patience": 0}, ValueError, "patience must be an int >= 1, got 0"),
    ({"max_time": -1.0}, ValueError, "max_time must be a positive number"),
    ({"max_evaluations": -5}, ValueError, "max_evaluations must be an int >= 1, got -5"),
    ({"algorithm": "generate_update"}, TypeError, "needs toolbox.generate"),
    ({"store": "x.sqlite", "toolbox": "nocache"}, ValueError, "store= needs toolbox.cache"),
    ({"retry_failed": True, "toolbox": "nocache"}, ValueError, "retry_failed=True needs toolbox.cache"),
    ({"population": []}, ValueError, "population is empty"),
])
def test_bad_arguments_raise_naming_them(kwargs, error, match):
    kwargs = dict(kwargs)
    calls = []

    def fitness(genome):
        calls.append(1)
        return (0.0,)

    toolbox = _toolbox(fitness, cache=kwargs.pop("toolbox", None) != "nocache")
    population = kwargs.pop("population", toolbox.population(n=4))
    ngen = kwargs.pop("ngen", 3)
    with pytest.raises(error, match=match):
        evolve(population, toolbox, ngen, **kwargs)
    assert calls == []


def test_plot_logbook_writes_a_png(tmp_path):
    from deapnn.core.plotting import plot_logbook

    _, log, _, _ = _run(PolynomialFit(), 3)
    fig = plot_logbook(log, path=tmp_path / "fit.png")
    assert (tmp_path / "fit.png").stat().st_size > 1000
    # a skewed generation: mean + std would pass the max (accuracies above 1); the band stops there
    book = tools.Logbook()
    book.record(gen=0, avg=0.9, std=0.3, min=0.1, max=0.98)
    book.record(gen=1, avg=0.95, std=0.2, min=0.3, max=0.99)
    band = plot_logbook(book).axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() <= 0.99 and band.min() >= 0.1 and fig is not None


class _CountingMutation:
    """A stateful operator: counts its calls and draws from its own generator (state protocol)."""

    def __init__(self, seed):
        self.calls = 0
        self.rng = np.random.default_rng(seed)

    def state(self):
        return {"calls": self.calls, "rng": self.rng.bit_generator.state}

    def load_state(self, state):
        self.calls = state["calls"]
        self.rng.bit_generator.state = state["rng"]


def _stateful_mutate(individual, counter, indpb):
    counter.calls += 1
    for i in range(len(individual)):
        if counter.rng.random() < indpb:
            individual[i] = float(counter.rng.normal())
    return (individual,)


_VectorInd = define("VectorIndTest", list, fitness=creator.FitnessMax)


def _stateful_toolbox(counter):
    toolbox = base.Toolbox()
    toolbox.register("evaluate", lambda ind: (-sum(v * v for v in ind),))
    toolbox.register("mate", tools.cxTwoPoint)
    toolbox.register("mutate", _stateful_mutate, counter=counter, indpb=0.3)
    toolbox.register("select", tools.selTournament, tournsize=3)
    return toolbox


def test_stateful_operator_state_is_checkpointed_and_resumed(tmp_path):
    """An object with state()/load_state() behind a registered operator (here a keyword of a
    partial) is saved with the checkpoint; its changing state is not a setting."""
    def population():
        rng = np.random.default_rng(3)
        return [_VectorInd(rng.uniform(-1, 1, 5).tolist()) for _ in range(12)]

    ref_counter = _CountingMutation(7)
    deapnn.seed(1)
    ref_pop, ref_log = evolve(population(), _stateful_toolbox(ref_counter), 6)

    counter = _CountingMutation(7)
    deapnn.seed(1)
    evolve(population(), _stateful_toolbox(counter), 3, checkpoint=tmp_path / "c.pkl")
    fresh = _CountingMutation(99)  # a new process: another generator, no calls yet
    pop, log = evolve(None, _stateful_toolbox(fresh), 6, checkpoint=tmp_path / "c.pkl")
    assert fresh.calls == ref_counter.calls > 0
    assert [list(i) for i in pop] == [list(i) for i in ref_pop]
    assert log.select("max") == ref_log.select("max")


def test_a_resume_without_the_population_can_be_resumed_again_with_it(tmp_path):
    """A checkpoint rewritten by a call with population=None keeps the population size, so a
    later call that passes the population (as a job looping over evolve does) still matches."""
    toolbox = _toolbox()
    deapnn.seed(0)
    pop, _ = evolve(toolbox.population(n=6), toolbox, 1, checkpoint=tmp_path / "c.pkl")
    pop, _ = evolve(None, _toolbox(), 2, checkpoint=tmp_path / "c.pkl")
    pop, log = evolve(pop, _toolbox(), 3, checkpoint=tmp_path / "c.pkl")
    assert [r["gen"] for r in log] == [0, 1, 2, 3]
