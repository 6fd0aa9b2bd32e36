"""WeightVector individuals and vectorised operators (deapnn.weights.types / operators)."""

import copy
import pickle
import random

import numpy as np
import pytest
from deap import algorithms, creator

import deapnn  # noqa: F401  (creates creator types)
from deapnn.weights import operators as ops
from deapnn.weights.codec import WeightLayout
from deapnn.weights.toolbox import make_weight_toolbox
from deapnn.weights.types import WeightVector, as_matrix, hall_of_fame

LAYOUT = WeightLayout.from_shapes([(5, 4), (4,), (4, 3), (3,)])


def ind(values):
    out = creator.WeightVector(np.asarray(values, np.float32))
    return out


def test_weight_vector_type_copies_and_pickles_with_fitness():
    assert creator.WeightVector is WeightVector
    a = ind(np.arange(5))
    a.fitness.values = (1.5,)
    b = copy.deepcopy(a)
    assert type(b) is creator.WeightVector and b.dtype == np.float32
    assert not np.shares_memory(a, b) and b.fitness is not a.fitness and b.fitness.values == (1.5,)
    b.fitness.values = (2.0,)
    assert a.fitness.values == (1.5,)
    c = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(c, a)
    assert c.fitness.values == (1.5,) and type(c) is creator.WeightVector
    source = np.ones(3, np.float32)
    d = creator.WeightVector(source)
    d[0] = 7
    assert source[0] == 1  # the constructor copies
    with pytest.raises(ValueError, match=r"1-D vector, got shape \(2, 2\)"):
        creator.WeightVector(np.zeros((2, 2)))


@pytest.mark.parametrize("mate, keeps_sum", [
    (ops.cx_average, True),
    (lambda a, b: ops.cx_blend(a, b, 0.5, rng=np.random.default_rng(0)), True),
    (lambda a, b: ops.cx_uniform(a, b, 0.5, rng=np.random.default_rng(0)), True),
    (lambda a, b: ops.cx_two_point(a, b, rng=np.random.default_rng(0)), True),
    (lambda a, b: ops.cx_heuristic(a, b, 0.5, rng=np.random.default_rng(0)), False),
])
def test_crossover_children_never_alias_parents(mate, keeps_sum):
    p1, p2 = ind(np.zeros(50)), ind(np.ones(50))
    c1, c2 = copy.deepcopy(p1), copy.deepcopy(p2)
    out = mate(c1, c2)
    assert out[0] is c1 and out[1] is c2
    for x in (c1, c2):
        for y in (p1, p2):
            assert not np.shares_memory(x, y)
    assert not np.shares_memory(c1, c2)
    np.testing.assert_array_equal(p1, 0)
    np.testing.assert_array_equal(p2, 1)
    if keeps_sum:
        np.testing.assert_allclose(c1 + c2, 1.0, atol=1e-6)  # all four keep the pairwise sum


def test_cx_heuristic_steps_beyond_the_fitter_parent():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=40).astype(np.float32)
    for fit1, fit2 in [(1.0, 2.0), (2.0, 1.0)]:
        a, b = ind(np.zeros(40)), ind(direction)  # b - a = direction
        a.fitness.values, b.fitness.values = (fit1,), (fit2,)
        better, worse = (b, a) if fit2 > fit1 else (a, b)
        step = np.asarray(better) - np.asarray(worse)
        start = np.asarray(better).copy()
        c1, c2 = ops.cx_heuristic(a, b, ratio=2.0, rng=rng)
        for child in (c1, c2):  # on the line, beyond the better parent, at most 2 steps away
            u = float(np.dot(child - start, step) / np.dot(step, step))
            np.testing.assert_allclose(child, start + u * step, atol=1e-5)
            assert 0.0 <= u < 2.0
        assert not np.allclose(c1, c2)  # each child draws its own step
    # invalid fitness: ind1 counts as the better one; ratio 0: both children copy it
    a, b = ind(np.full(5, 3.0)), ind(np.zeros(5))
    ops.cx_heuristic(a, b, ratio=0.0, rng=rng)
    np.testing.assert_array_equal(a, 3.0)
    np.testing.assert_array_equal(b, 3.0)


def test_two_point_swaps_values_not_views():
    a, b = ind(np.zeros(20)), ind(np.ones(20))
    ops.cx_two_point(a, b, rng=np.random.default_rng(3))
    assert set(np.unique(a)) == {0.0, 1.0} and set(np.unique(b)) == {0.0, 1.0}
    np.testing.assert_array_equal(a + b, 1.0)


def test_crossover_refuses_shared_memory():
    a = ind(np.zeros(4))
    with pytest.raises(ValueError, match="share memory"):
        ops.cx_average(a, a)


def test_mut_gaussian_indpb_and_per_weight_sigma():
    rng = np.random.default_rng(0)
    x = ind(np.zeros(10000))
    ops.mut_gaussian(x, 0.0, 0.1, 0.25, rng=rng)
    changed = np.count_nonzero(x) / x.size
    assert 0.22 < changed < 0.28 and 0.09 < x[x != 0].std() < 0.11
    sigma = np.where(np.arange(10000) < 5000, 0.0, 1.0).astype(np.float32)
    y = ind(np.zeros(10000))
    ops.mut_gaussian(y, 0.0, sigma, 1.0, rng=rng)
    assert np.all(y[:5000] == 0) and 0.9 < y[5000:].std() < 1.1
    with pytest.raises(ValueError, match="indpb must be in"):
        ops.mut_gaussian(y, 0.0, 0.1, 1.5)
    with pytest.raises(ValueError, match=r"sigma has shape \(3,\)"):
        ops.mut_gaussian(y, 0.0, np.ones(3), 0.5)


@pytest.mark.parametrize("call, message", [
    (lambda x: ops.mut_gaussian(x, 0.0, 0.1, float("nan")), r"mut_gaussian: indpb must be in \[0, 1\].*nan"),
    (lambda x: ops.mut_gaussian(x, 0.0, 0.1, -0.1), r"mut_gaussian: indpb .*-0.1"),
    (lambda x: ops.mut_gaussian(x, 0.0, float("nan"), 0.5), r"mut_gaussian: sigma must be finite and > 0, got nan"),
    (lambda x: ops.mut_gaussian(x, 0.0, float("inf"), 0.5), r"mut_gaussian: sigma .* got inf"),
    (lambda x: ops.mut_gaussian(x, 0.0, 0.0, 0.5), r"mut_gaussian: sigma .* got 0.0"),
    (lambda x: ops.mut_gaussian(x, 0.0, -1.0, 0.5), r"mut_gaussian: sigma .* got -1.0"),
    (lambda x: ops.mut_gaussian(x, 0.0, np.full(20, np.nan, np.float32), 0.5), r"mut_gaussian: sigma must be finite"),
    (lambda x: ops.mut_gaussian(x, float("nan"), 0.1, 0.5), r"mut_gaussian: mu must be a finite number, got nan"),
    (lambda x: ops.cx_uniform(x, ind(np.ones(20)), 1.5), r"cx_uniform: indpb must be in \[0, 1\].*1.5"),
    (lambda x: ops.cx_uniform(x, ind(np.ones(20)), float("nan")), r"cx_uniform: indpb .*nan"),
    (lambda x: ops.cx_blend(x, ind(np.ones(20)), float("nan")), r"cx_blend: alpha must be a finite number >= 0, got nan"),
    (lambda x: ops.cx_blend(x, ind(np.ones(20)), -0.5), r"cx_blend: alpha .* got -0.5"),
    (lambda x: ops.cx_heuristic(x, ind(np.ones(20)), float("inf")), r"cx_heuristic: ratio must be a finite number >= 0, got inf"),
    (lambda x: ops.cx_heuristic(x, ind(np.ones(20)), -1.0), r"cx_heuristic: ratio .* got -1.0"),
], ids=["indpb-nan", "indpb-negative", "sigma-nan", "sigma-inf", "sigma-zero", "sigma-negative",
        "sigma-array-nan", "mu-nan", "cx-indpb-large", "cx-indpb-nan", "alpha-nan", "alpha-negative",
        "ratio-inf", "ratio-negative"])
def test_bad_operator_knobs_raise_naming_the_value(call, message):
    x = ind(np.zeros(20))
    with pytest.raises(ValueError, match=message):
        call(x)
    np.testing.assert_array_equal(x, 0.0)  # nothing was written before the check


def test_elitist_tournament_elites_is_a_count():
    pop = [ind(np.full(3, i)) for i in range(10)]
    for i, x in enumerate(pop):
        x.fitness.values = (float(i),)
    chosen = ops.sel_elitist_tournament(pop, 10, tournsize=2, elites=3)
    assert [x.fitness.values[0] for x in chosen[:3]] == [9.0, 8.0, 7.0]
    with pytest.raises(TypeError, match=r"elites is a count of individuals \(an int >= 0\), got 0.2"):
        ops.sel_elitist_tournament(pop, 10, tournsize=2, elites=0.2)
    with pytest.raises(ValueError, match="elites must be <= k=10, got 11"):
        ops.sel_elitist_tournament(pop, 10, tournsize=2, elites=11)


def test_hall_of_fame_keeps_distinct_arrays():
    hof = hall_of_fame(3)
    pop = [ind(np.full(4, i % 2)) for i in range(4)]  # two distinct arrays, each twice
    for i, x in enumerate(pop):
        x.fitness.values = (float(i),)
    hof.update(pop)
    assert len(hof) == 2
    assert not np.shares_memory(hof[0], pop[3])  # the hall of fame stores copies
    assert not np.array_equal(hof[0], hof[1])


@pytest.mark.parametrize("mate", ["blend", "heuristic"])
def test_toolbox_and_ea_simple_run_unchanged(mate):
    random.seed(1)
    rng = np.random.default_rng(1)
    target = rng.normal(size=LAYOUT.size).astype(np.float32)

    def evaluate(x):
        return (-float(np.sum((x - target) ** 2)),)

    tb = make_weight_toolbox(LAYOUT, evaluate, mate=mate, sigma=0.3, per_layer=True,
                             mutate_kwargs={"indpb": 0.5}, select="elitist_tournament", elites=2,
                             rng=rng)
    pop = tb.population(n=30)
    assert all(type(x) is creator.WeightVector and x.shape == (LAYOUT.size,) for x in pop)
    start = max(evaluate(x)[0] for x in pop)
    hof = hall_of_fame(1)
    pop, log = algorithms.eaSimple(pop, tb, cxpb=0.5, mutpb=0.5, ngen=15, halloffame=hof,
                                   verbose=False)
    assert len(log) == 16 and hof[0].fitness.values[0] > start
    addresses = [x.__array_interface__["data"][0] for x in pop]
    assert len(set(addresses)) == len(pop)  # no two individuals share a buffer


def test_toolbox_uniform_init_is_seed_004():
    tb = make_weight_toolbox(LAYOUT, init="uniform", mate="average", rng=np.random.default_rng(0))
    x = tb.individual()
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.4
    with pytest.raises(ValueError, match="'xavier'"):
        make_weight_toolbox(LAYOUT, init="xavier")


def test_as_matrix_checks_lengths():
    assert as_matrix([ind([1, 2]), ind([3, 4])]).shape == (2, 2)
    with pytest.raises(ValueError, match="one length"):
        as_matrix([ind([1, 2]), ind([3])])


def test_importing_deapnn_weights_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, deapnn, deapnn.weights; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
