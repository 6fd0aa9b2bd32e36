"""CMA-ES on weight vectors (deapnn.weights.cma): sep-CMA-ES on a 100-dimensional sphere and a
digits network; DEAP's own cma.Strategy, unchanged, through eaGenerateUpdate with batched evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from deap import algorithms, base, cma, creator

import deapnn
from deapnn.weights.buffers import shared_matrix
from deapnn.weights.cma import CMA_MAX_WEIGHTS, SepCMAES, cma_strategy


def test_sep_cma_es_solves_a_100_dimensional_sphere():
    strategy = SepCMAES(np.ones(100), sigma=0.5, rng=np.random.default_rng(0))
    tb = base.Toolbox()
    tb.register("generate", strategy.generate, creator.WeightVector)
    tb.register("update", strategy.update)
    tb.register("evaluate", lambda ind: (-float(np.sum(np.square(ind, dtype=np.float64))),))
    algorithms.eaGenerateUpdate(tb, ngen=300, verbose=False)
    assert float(np.sum(np.square(strategy.centroid64))) < 1e-3  # from 100
    assert strategy.sigma < 0.05 and strategy.lambda_ == 4 + int(3 * np.log(100))


def test_sep_cma_es_generate_is_the_population_buffer_and_update_ignores_order():
    a = SepCMAES(np.zeros(6), sigma=0.3, lambda_=8, rng=np.random.default_rng(0))
    b = SepCMAES(np.zeros(6), sigma=0.3, lambda_=8, rng=np.random.default_rng(0))
    pa, pb = a.generate(creator.WeightVector), b.generate(creator.WeightVector)
    assert shared_matrix(pa) is not None and shared_matrix(pa).shape == (8, 6)
    for p in (pa, pb):
        for ind in p:
            ind.fitness.values = (-float(np.sum(ind ** 2)),)
    a.update(pa)
    b.update(pb[::-1])
    np.testing.assert_allclose(a.centroid64, b.centroid64)
    np.testing.assert_allclose(a.C, b.C)


def digits_toolbox(strategy, kwargs, hidden):
    from deapnn.data import load_digits
    from deapnn.weights import BatchedEvaluator, NetworkSpec, make_weight_toolbox

    data = load_digits(seed=0)
    deapnn.seed(0)
    evaluator = BatchedEvaluator(NetworkSpec.mlp((8, 8), hidden, 10), data.x_train, data.y_train,
                                 batch_size=128)
    tb = make_weight_toolbox(evaluator, evaluator, strategy=strategy, strategy_kwargs=kwargs)
    return tb, evaluator, data


def test_sep_cma_es_improves_a_digits_network():
    tb, evaluator, data = digits_toolbox("sepcma", {"sigma": 0.1, "lambda_": 40}, [8])
    start = tb.strategy.centroid
    algorithms.eaGenerateUpdate(tb, ngen=40, verbose=False)
    _, acc, _ = evaluator.scores([start, tb.strategy.centroid], data.x_val, data.y_val)
    assert acc[1] > acc[0] + 0.2, acc


def test_deap_cma_strategy_runs_unchanged_on_a_small_digits_network():
    tb, evaluator, data = digits_toolbox("cma", {"sigma": 0.2, "lambda_": 16}, [2])
    assert type(tb.strategy) is cma.Strategy  # DEAP's own
    start = tb.strategy.centroid.copy()
    calls = tb.map.func.calls if hasattr(tb.map.func, "calls") else None
    pop, log = algorithms.eaGenerateUpdate(tb, ngen=25, verbose=False)
    assert len(log) == 25 and len(pop) == 16 and all(type(ind) is creator.WeightVector for ind in pop)
    if calls is not None:
        assert tb.map.func.calls == calls + 25  # one batched call per generation
    _, acc, _ = evaluator.scores([np.float32(start), np.float32(tb.strategy.centroid)], data.x_val, data.y_val)
    assert acc[1] > acc[0] + 0.1, acc


@pytest.mark.parametrize("kwargs, error, match", [
    ({"sigma": 0.0}, ValueError, "SepCMAES: sigma must be finite and > 0, got 0.0"),
    ({"sigma": float("nan")}, ValueError, "SepCMAES: sigma must be finite and > 0, got nan"),
    ({"lambda_": 1}, ValueError, "SepCMAES: lambda_ must be >= 2, got 1"),
    ({"lambda_": 10, "mu": 11}, ValueError, r"SepCMAES: mu must be in \[1, lambda_=10\], got 11"),
    ({"mu": 1.5}, TypeError, "SepCMAES: mu must be an int, got 1.5"),
    ({"diagonal": -1.0}, ValueError, "SepCMAES: diagonal must be finite and > 0, got -1.0"),
    ({"centroid": [1.0, float("nan")]}, ValueError, "SepCMAES: centroid must be finite, got nan at index 1"),
    ({"centroid": [[]]}, ValueError, "SepCMAES: centroid must not be empty"),
])
def test_sep_cma_es_rejects_bad_settings_naming_them(kwargs, error, match):
    kwargs = {"centroid": np.zeros(3), **kwargs}
    with pytest.raises(error, match=match):
        SepCMAES(**kwargs)


def test_cma_strategy_checks_its_inputs():
    with pytest.raises(ValueError, match="cma_strategy: sigma must be finite and > 0, got -0.1"):
        cma_strategy(np.zeros(3), -0.1)
    with pytest.raises(ValueError, match="cma_strategy: centroid must be finite, got inf at index 0"):
        cma_strategy([float("inf"), 0.0], 0.1)
    with pytest.raises(ValueError, match=f"too many for a full covariance .at most {CMA_MAX_WEIGHTS}.; use SepCMAES"):
        cma_strategy(np.zeros(CMA_MAX_WEIGHTS + 1), 0.1)
    assert cma_strategy(np.zeros(10), 0.1, lambda_=6).lambda_ == 6
