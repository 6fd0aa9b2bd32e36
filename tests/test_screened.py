import functools
import itertools
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


# -- the Gaussian-process surrogate (model="gp") --------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    ({"model": "svm"}, ValueError, "ScreenedMutation model must be one of 'ridge', 'gp', got 'svm'"),
    ({"model": 3}, TypeError, "ScreenedMutation model must be a str ('ridge' or 'gp'), got 3"),
    ({"lengthscale": 0.0}, ValueError, "ScreenedMutation lengthscale must be a finite number > 0.0, got 0.0"),
    ({"noise": -1}, ValueError, "ScreenedMutation noise must be a finite number > 0.0, got -1"),
    ({"noise": "a"}, TypeError, "ScreenedMutation noise must be a number, got 'a'"),
    ({"additive": 1.5}, ValueError, "ScreenedMutation additive must be in [0, 1], got 1.5"),
    ({"additive": -0.5}, ValueError, "ScreenedMutation additive must be a finite number >= 0.0, got -0.5"),
    ({"pairwise": -1.0}, ValueError, "ScreenedMutation pairwise must be a finite number >= 0.0, got -1.0"),
    ({"additive": 0.6, "pairwise": 0.6}, ValueError, "additive + pairwise must be <= 1, got 0.6 + 0.6"),
])
def test_gp_knobs_are_checked_naming_the_value(kwargs, error, message):
    with pytest.raises(error) as info:
        ScreenedMutation(SPACE, **kwargs)
    assert message in str(info.value)


SMALL = SearchSpace({f"g{i}": Choice(["a", "b", "c"]) for i in range(4)})  # 81 genomes


def agree(genome):
    """Not additive: 1 when genes 0 and 1 agree, plus a small effect of gene 2."""
    return (float(genome[0] == genome[1]) + 0.2 * (genome[2] == "a"),)


def separation(scores, labels):
    """The fraction of (agreeing, disagreeing) pairs of genomes that ``scores`` orders right."""
    pos, neg = scores[labels], scores[~labels]
    return float(np.mean(pos[:, None] > neg[None, :]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gp_learns_an_interaction_the_additive_ridge_cannot(seed):
    genomes = [deapnn.make_genome(SMALL, list(v)) for v in itertools.product("abc", repeat=4)]
    random.Random(seed).shuffle(genomes)
    cache = EvaluationCache(agree)
    for g in genomes[:40]:
        cache(g)
    unseen = [g.key() for g in genomes[40:]]
    labels = np.array([k[0] == k[1] for k in unseen])
    fitted = {}
    models = {"local": {"model": "gp", "lengthscale": 1.0}, "pairwise": {"model": "gp", "pairwise": 1.0},
              "additive": {"model": "gp", "additive": 1.0}, "ridge": {"model": "ridge"}}
    for name, knobs in models.items():
        screen = ScreenedMutation(SMALL, explore=0.0, noise=0.1, cache=cache, **knobs)
        fitted[name] = separation(screen.score(unseen), labels)
    # 40 of 81 genomes seen: the local GP orders 0.75-0.98 of the (agreeing, other) unseen pairs
    # right, the pairwise kernel 0.91-1; main effects alone (the ridge, the additive kernel) have
    # no term for "genes 0 and 1 agree" (0.35-0.54, chance)
    assert fitted["local"] > 0.7 and fitted["pairwise"] > 0.85, fitted
    assert fitted["ridge"] < 0.6 and fitted["additive"] < 0.6, fitted


def test_gp_with_an_additive_kernel_ranks_an_additive_fitness_like_the_ridge():
    cache = filled_cache(40)
    screen = ScreenedMutation(SPACE, k=64, explore=0.0, cache=cache, model="gp", additive=1.0, noise=0.3)
    deapnn.seed(5)
    parent = deapnn.make_genome(SPACE, SPACE.sample(random.Random(9)))
    child, = mut_screened(deapnn.make_genome(SPACE, list(parent)), screen)
    novel = [n for n in neighbours(parent) if tuple(n) not in cache.records]
    assert additive(child)[0] == max(additive(n)[0] for n in novel) and screen.screened == 1


def test_the_gp_kernel_is_a_function_of_the_differing_genes_and_positive_semidefinite():
    keys = [deapnn.make_genome(SPACE, SPACE.sample(random.Random(i))).key() for i in range(30)]
    screen = ScreenedMutation(SPACE, model="gp", additive=0.3, pairwise=0.5, lengthscale=1.5)
    rows = np.stack([screen._encoder.row(k) for k in keys])
    K = screen._kernel(rows, rows)
    d = np.array([[sum(x != y for x, y in zip(a, b)) for b in keys] for a in keys], dtype=float)
    m, G = 6 - d, 6.0
    assert np.allclose(K, 0.3 * m / G + 0.5 * m * (m - 1) / (G * (G - 1)) + 0.2 * np.exp(-d / 1.5))
    assert np.allclose(np.diag(K), 1.0) and np.linalg.eigvalsh(K).min() > -1e-9


def test_gp_thompson_draw_is_joint_seeded_and_scaled_by_explore():
    cache = filled_cache(30)
    screen = ScreenedMutation(SPACE, model="gp", explore=1.0, cache=cache)
    keys = [deapnn.make_genome(SPACE, SPACE.sample(random.Random(i))).key() for i in range(20)]
    random.seed(3)
    a = screen.score(keys)
    random.seed(3)
    assert np.array_equal(a, screen.score(keys))  # Python's random: seeded, reproducible
    screen.explore = 0.0
    mean = screen.score(keys)
    screen.explore = 1.0
    draws = []
    for s in range(300):
        random.seed(s)
        draws.append(screen.score(keys))
    draws = np.array(draws)
    assert np.allclose(draws.mean(0), mean, atol=0.15)  # centred on the posterior mean
    assert draws.std(0).min() > 0.05                    # a real draw: every candidate varies
    screen.explore = 0.5
    random.seed(3)
    assert np.allclose(screen.score(keys) - mean, 0.5 * (a - mean))  # same z, half the spread
    assert ScreenedMutation(SPACE, model="gp", cache=EvaluationCache(additive)).score(keys) is None


@pytest.mark.parametrize("model", ["ridge", "gp"])
def test_evolve_resumes_exactly_with_either_model(tmp_path, model):
    def run(path, ngen):
        deapnn.seed(4)
        screen = ScreenedMutation(SPACE, k=8, model=model, additive=0.5)
        toolbox = deapnn.make_toolbox(SPACE, additive, mutate="screened", mutate_kwargs={"screen": screen},
                                      novel=True)
        pop, log = deapnn.evolve(toolbox.population(n=8), toolbox, ngen, cxpb=0.5, mutpb=0.5,
                                 stats=deapnn.fitness_stats(), checkpoint=path)
        return [list(g) for g in pop], log.select("max"), screen.state()

    whole = run(tmp_path / "whole.pkl", 8)
    run(tmp_path / "cut.pkl", 3)
    assert run(tmp_path / "cut.pkl", 8) == whole and whole[2]["screened"] > 0


@pytest.mark.parametrize("model", ["ridge", "gp"])
def test_ucb_and_ei_rank_by_mean_and_spread_without_random_draws(model):
    cache = filled_cache(30)
    keys = [deapnn.make_genome(SPACE, SPACE.sample(random.Random(i))).key() for i in range(40)]
    make = functools.partial(ScreenedMutation, SPACE, model=model, additive=0.5, cache=cache)
    greedy = make(acquisition="thompson", explore=0.0).score(keys)
    random.seed(1)
    state = random.getstate()
    ucb0, ucb, ei = (make(acquisition=a, explore=e).score(keys) for a, e in
                     (("ucb", 0.0), ("ucb", 1.0), ("ei", 1.0)))
    assert random.getstate() == state            # deterministic: nothing drawn
    assert np.allclose(ucb0, greedy)             # explore 0: the posterior mean
    spread = ucb - ucb0
    assert spread.min() > 0 and spread.std() > 0  # + one sd, larger where the data are thinner
    assert ei.min() >= 0 and np.corrcoef(ei, ucb)[0, 1] > 0.5  # both reward mean and spread
    with pytest.raises(ValueError, match="acquisition must be one of 'thompson', 'ucb', 'ei', got 'pi'"):
        make(acquisition="pi")
    with pytest.raises(TypeError, match="acquisition must be a str"):
        make(acquisition=None)
