import functools
import math
import pickle
import random

import numpy as np
import pytest
from deap import algorithms, creator, tools

import deapnn
from deapnn.core.cache import EvaluationCache
from deapnn.hparams import operators
from deapnn.hparams.screened import ScreenedMutation, mut_screened
from deapnn.hparams.space import Choice, FloatRange, IntRange, SearchSpace

SPACE = SearchSpace({f"g{i}": Choice(["a", "b", "c", "d"]) for i in range(6)})
EFFECTS = np.random.default_rng(0).normal(size=(6, 4))  # an additive fitness: one effect per gene value


def additive(genome):
    return (float(sum(EFFECTS[i, "abcd".index(v)] for i, v in enumerate(genome))),)


def additive_min(genome):
    return (-additive(genome)[0],)


def best_value():
    return float(EFFECTS.max(axis=1).sum())


def filled_cache(n, seed=1, evaluate=additive, cls=None):
    """A cache holding ``n`` distinct random genomes of SPACE, evaluated."""
    cache = EvaluationCache(evaluate)
    rng = random.Random(seed)
    while len(cache.records) < n:
        cache(deapnn.make_genome(SPACE, SPACE.sample(rng), cls))
    return cache


def neighbours(genome):
    """Every genome one gene away from ``genome``."""
    out = []
    for i, gene in enumerate(SPACE.genes):
        for v in gene.values:
            if v != genome[i]:
                child = list(genome)
                child[i] = v
                out.append(child)
    return out


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    ({"k": 0}, ValueError, "ScreenedMutation k must be an int >= 1, got 0"),
    ({"k": 2.5}, TypeError, "ScreenedMutation k must be an int, got 2.5"),
    ({"k": True}, TypeError, "ScreenedMutation k must be an int, got True"),
    ({"explore": -0.1}, ValueError, "ScreenedMutation explore must be a finite number >= 0.0, got -0.1"),
    ({"explore": math.nan}, ValueError, "ScreenedMutation explore must be a finite number >= 0.0, got nan"),
    ({"alpha": 0}, ValueError, "ScreenedMutation alpha must be a finite number > 0.0, got 0"),
    ({"min_data": -1}, ValueError, "ScreenedMutation min_data must be an int >= 0, got -1"),
    ({"mutate": "one_gene"}, TypeError, "ScreenedMutation mutate must be callable"),
    ({"cache": {}}, TypeError, "ScreenedMutation needs an EvaluationCache"),
])
def test_screened_mutation_rejects_bad_knobs_naming_the_value(kwargs, error, message):
    with pytest.raises(error) as info:
        ScreenedMutation(SPACE, **kwargs)
    assert message in str(info.value)


def test_bad_use_is_refused_before_any_evaluation():
    with pytest.raises(TypeError, match="space must be a SearchSpace, got 'abc'"):
        ScreenedMutation("abc")
    genome = deapnn.make_genome(SPACE, SPACE.sample(random.Random(0)))
    with pytest.raises(ValueError, match="has no cache"):
        mut_screened(genome, ScreenedMutation(SPACE))
    with pytest.raises(TypeError, match="needs screen=ScreenedMutation"):
        mut_screened(genome, "screen")
    calls = []

    def evaluate(g):
        calls.append(g)
        return additive(g)

    with pytest.raises(ValueError, match="needs cache=True"):
        deapnn.make_toolbox(SPACE, evaluate, mutate="screened", cache=False)
    other = SearchSpace({"x": Choice([1, 2])})
    with pytest.raises(ValueError, match="another search space"):
        deapnn.make_toolbox(SPACE, evaluate, mutate="screened",
                            mutate_kwargs={"screen": ScreenedMutation(other)})
    with pytest.raises(TypeError, match="needs screen=ScreenedMutation"):
        deapnn.make_toolbox(SPACE, evaluate, mutate="screened", mutate_kwargs={"screen": 3})
    assert calls == []


# -- the operator ---------------------------------------------------------------------------------
def test_screening_keeps_the_neighbour_the_model_predicts_best():
    cache = filled_cache(40)
    screen = ScreenedMutation(SPACE, k=64, explore=0.0, cache=cache)
    deapnn.seed(5)
    parent = deapnn.make_genome(SPACE, SPACE.sample(random.Random(9)))
    child, = mut_screened(deapnn.make_genome(SPACE, list(parent)), screen)
    novel = [n for n in neighbours(parent) if tuple(n) not in cache.records]
    assert list(child) in novel and screen.screened == 1
    # the additive model, fitted on 40 genomes, ranks the neighbours as the true fitness does
    assert additive(child)[0] == max(additive(n)[0] for n in novel)
    assert additive(child)[0] > np.mean([additive(n)[0] for n in novel]) + 0.5


def test_the_sign_of_the_fitness_weight_is_respected():
    deapnn.seed(5)
    cache = filled_cache(40, evaluate=additive_min, cls=creator.GenomeMin)
    screen = ScreenedMutation(SPACE, k=64, explore=0.0, cache=cache)
    parent = deapnn.make_genome(SPACE, SPACE.sample(random.Random(9)), creator.GenomeMin)
    novel = [n for n in neighbours(list(parent)) if tuple(n) not in cache.records]
    child, = mut_screened(parent, screen)
    assert additive_min(child)[0] == min(additive_min(n)[0] for n in novel)  # minimised


def test_candidates_the_cache_has_seen_are_skipped():
    deapnn.seed(2)
    parent = deapnn.make_genome(SPACE, SPACE.sample(random.Random(3)))
    cache = EvaluationCache(additive)
    cache(parent)
    others = neighbours(parent)
    keep = others.pop(7)
    for values in others[:-1]:
        cache(deapnn.make_genome(SPACE, values))
    cache.reserve(tuple(others[-1]))  # reserved (a sibling's) counts as seen too
    screen = ScreenedMutation(SPACE, k=32, explore=1.0, cache=cache)
    for _ in range(5):  # 18 one-gene mutants, 4 * k = 128 tries: each call misses it w.p. 0.07%
        child, = mut_screened(deapnn.make_genome(SPACE, list(parent)), screen)
        assert list(child) == keep  # the only novel one-gene mutant
    cache(deapnn.make_genome(SPACE, keep))
    child, = mut_screened(deapnn.make_genome(SPACE, list(parent)), screen)
    assert list(child) in neighbours(parent)  # none novel: the last mutant (NovelChildren's turn)


def test_below_min_data_the_base_mutation_alone_decides():
    parent = deapnn.make_genome(SPACE, SPACE.sample(random.Random(3)))
    cache = EvaluationCache(additive)
    screen = ScreenedMutation(SPACE, k=8, min_data=5, cache=cache)
    deapnn.seed(4)
    child, = mut_screened(deapnn.make_genome(SPACE, list(parent)), screen)
    deapnn.seed(4)
    plain, = operators.mut_one_gene(deapnn.make_genome(SPACE, list(parent)))
    assert list(child) == list(plain) and screen.screened == 0 and screen.calls == 1


def test_numeric_genes_are_modelled_and_stay_in_bounds():
    space = SearchSpace({"lr": FloatRange(1e-4, 1e-1, log=True), "n": IntRange(1, 9),
                         "act": Choice(["relu", "tanh"])})

    def peak(g):  # best at lr = 1e-2, n = 9, relu
        return (-(math.log10(g[0]) + 2) ** 2 + 0.2 * g[1] + (g[2] == "relu"),)

    deapnn.seed(0)
    screen = ScreenedMutation(space, k=32, mutate=functools.partial(operators.mut_perturb, indpb=0.5),
                              explore=0.0)
    toolbox = deapnn.make_toolbox(space, peak, mutate=screen, select="best")
    pop = toolbox.population(n=10)
    pop, _ = algorithms.eaMuPlusLambda(pop, toolbox, mu=2, lambda_=4, cxpb=0.0, mutpb=1.0, ngen=8,
                                       verbose=False)
    assert toolbox.screen is screen and screen.screened > 0
    assert all(space.contains(list(g)) for g in pop)
    best = max(pop, key=lambda g: g.fitness.values)
    assert best.fitness.values[0] > 2.0 - 0.3  # near the peak (2.8) from ten random genomes' best


@pytest.mark.parametrize("algorithm", ["simple", "mu+lambda"])
def test_deaps_algorithms_run_unchanged_with_mutate_screened(algorithm):
    deapnn.seed(1)
    toolbox = deapnn.make_toolbox(SPACE, additive, mutate="screened", novel=True,
                                  select="best" if algorithm == "mu+lambda" else "tournament")
    screen = toolbox.screen
    assert isinstance(screen, ScreenedMutation) and screen.cache is toolbox.cache
    pop = toolbox.population(n=6)
    if algorithm == "simple":
        algorithms.eaSimple(pop, toolbox, cxpb=0.5, mutpb=0.5, ngen=6, verbose=False)
    else:
        algorithms.eaMuPlusLambda(pop, toolbox, mu=2, lambda_=4, cxpb=0.0, mutpb=1.0, ngen=6,
                                  verbose=False)
    assert screen.calls > 6 and screen.screened > 0
    assert all(SPACE.contains(list(g)) for g in pop)
    assert toolbox.cache.misses == len(toolbox.cache.records)


def distinct_to_optimum(mutate, seed):
    """Distinct evaluations a (1 + 1) hill climber needs to reach the additive optimum."""
    deapnn.seed(seed)
    trace = []

    def evaluate(g):
        trace.append(additive(g)[0])
        return additive(g)

    mutate_kwargs = {"screen": ScreenedMutation(SPACE, k=32, explore=0.25)} if mutate == "screened" else {}
    toolbox = deapnn.make_toolbox(SPACE, evaluate, mutate=mutate, mutate_kwargs=mutate_kwargs,
                                  select="best", novel=True)
    algorithms.eaMuPlusLambda(toolbox.population(n=2), toolbox, mu=1, lambda_=1, cxpb=0.0,
                              mutpb=1.0, ngen=200, verbose=False)
    best = best_value()
    return next((i for i, v in enumerate(trace, 1) if v >= best - 1e-9), math.inf)


def test_screening_reaches_the_optimum_with_fewer_evaluations_than_the_plain_mutation():
    plain = [distinct_to_optimum("one_gene", s) for s in range(12)]
    screened = [distinct_to_optimum("screened", s) for s in range(12)]
    assert np.median(screened) < 0.75 * np.median(plain), (screened, plain)  # 17.5 vs 27.5


# -- state ----------------------------------------------------------------------------------------
def _screened_run(path, ngen, seed=4):
    deapnn.seed(seed)
    screen = ScreenedMutation(SPACE, k=8)
    toolbox = deapnn.make_toolbox(SPACE, additive, mutate="screened", mutate_kwargs={"screen": screen},
                                  novel=True)
    pop = toolbox.population(n=8)
    hof = tools.HallOfFame(3)
    pop, log = deapnn.evolve(pop, toolbox, ngen, cxpb=0.5, mutpb=0.5, halloffame=hof,
                             stats=deapnn.fitness_stats(), checkpoint=path)
    return pop, log, hof, screen


def test_evolve_with_mut_screened_resumes_exactly_from_a_checkpoint(tmp_path):
    pop, log, hof, screen = _screened_run(tmp_path / "whole.pkl", 10)
    _screened_run(tmp_path / "cut.pkl", 4)
    pop2, log2, hof2, screen2 = _screened_run(tmp_path / "cut.pkl", 10)  # resumes at generation 5
    assert [list(g) for g in pop2] == [list(g) for g in pop]
    assert log2.select("max") == log.select("max") and log2.select("avg") == log.select("avg")
    assert [list(g) for g in hof2] == [list(g) for g in hof]
    assert screen2.state() == screen.state() and screen.screened > 0


def test_state_round_trip_and_pickling():
    cache = filled_cache(12)
    screen = ScreenedMutation(SPACE, k=5, explore=0.3, cache=cache)
    deapnn.seed(0)
    for _ in range(3):
        mut_screened(deapnn.make_genome(SPACE, SPACE.sample()), screen)
    fresh = ScreenedMutation(SPACE)
    fresh.load_state(screen.state())
    assert fresh.state() == screen.state() == {"calls": 3, "screened": 3}
    copy = pickle.loads(pickle.dumps(screen))
    assert (copy.k, copy.explore, copy.state()) == (5, 0.3, screen.state())
    parent = deapnn.make_genome(SPACE, SPACE.sample(random.Random(1)))
    deapnn.seed(8)
    a, = mut_screened(deapnn.make_genome(SPACE, list(parent)), screen)
    deapnn.seed(8)
    b, = mut_screened(deapnn.make_genome(SPACE, list(parent)), copy)
    assert list(a) == list(b)  # the unpickled screen (and its cache) choose as the original
