"""PGPE with ClipUp / Adam (deapnn.weights.pgpe): a 100-dimensional sphere, a digits network, the
population buffer, mirrored pairs, and bad settings named."""

from __future__ import annotations

import numpy as np
import pytest
from deap import algorithms, base, creator

import deapnn
from deapnn.weights.buffers import ALIGN, shared_matrix
from deapnn.weights.pgpe import PGPE, ClipUp


def sphere_run(strategy, ngen):
    tb = base.Toolbox()
    tb.register("generate", strategy.generate, creator.WeightVector)
    tb.register("update", strategy.update)
    tb.register("evaluate", lambda ind: (-float(np.sum(np.square(ind, dtype=np.float64))),))
    algorithms.eaGenerateUpdate(tb, ngen=ngen, verbose=False)
    return float(np.sum(np.square(strategy.centroid, dtype=np.float64)))


@pytest.mark.parametrize("optimizer, lr", [("clipup", 0.05), ("adam", 0.05)])
def test_pgpe_solves_a_100_dimensional_sphere(optimizer, lr):
    strategy = PGPE(np.ones(100), sigma=0.5, lambda_=50, learning_rate=lr, optimizer=optimizer,
                    rng=np.random.default_rng(0))
    assert sphere_run(strategy, 300) < 0.01 * 100  # 100x closer than the start (f = 100)
    assert strategy.generation == 300 and strategy.sigma.shape == (100,)
    assert strategy.sigma.max() < 0.5  # the per-weight sigmas adapted (shrank near the optimum)


def test_generate_returns_mirrored_rows_of_one_aligned_buffer():
    strategy = PGPE(np.arange(5.0), sigma=[0.1, 0.2, 0.3, 0.4, 0.5], lambda_=6, rng=np.random.default_rng(1))
    pop = strategy.generate(creator.WeightVector)
    matrix = shared_matrix(pop)
    assert matrix is not None and matrix.shape == (6, 5) and matrix.ctypes.data % ALIGN == 0
    assert all(type(ind) is creator.WeightVector and not ind.fitness.valid for ind in pop)
    assert len({id(ind.fitness) for ind in pop}) == 6
    np.testing.assert_allclose(matrix[:3] + matrix[3:], np.tile(2 * np.arange(5.0), (3, 1)), atol=1e-5)
    # a constructor that is not an ndarray class gets (copied) rows, as DEAP's strategies do
    lists = strategy.generate(lambda row: list(row))
    assert isinstance(lists[0], list) and len(lists) == 6


def test_update_refuses_a_reordered_population():
    strategy = PGPE(np.zeros(4), sigma=0.1, lambda_=4, rng=np.random.default_rng(0))
    pop = strategy.generate(creator.WeightVector)
    for i, ind in enumerate(pop):
        ind.fitness.values = (float(i),)
    with pytest.raises(ValueError, match="not the mirrored pairs"):
        strategy.update([pop[1], pop[0], pop[2], pop[3]])
    with pytest.raises(ValueError, match="expected the 4 individuals"):
        strategy.update(pop[:2])


def test_pgpe_improves_a_digits_network():
    from deapnn.data import load_digits
    from deapnn.weights import BatchedEvaluator, NetworkSpec, make_weight_toolbox

    data = load_digits(seed=0)
    deapnn.seed(0)
    evaluator = BatchedEvaluator(NetworkSpec.mlp((8, 8), [8], 10), data.x_train, data.y_train, batch_size=128)
    tb = make_weight_toolbox(evaluator, evaluator, strategy="pgpe",
                             strategy_kwargs={"sigma": 0.1, "lambda_": 40, "learning_rate": 0.05})
    start = tb.strategy.centroid.copy()
    algorithms.eaGenerateUpdate(tb, ngen=40, verbose=False)
    _, acc, _ = evaluator.scores([start, tb.strategy.centroid], data.x_val, data.y_val)
    assert acc[1] > acc[0] + 0.2, acc


def test_clipup_clips_the_velocity():
    opt = ClipUp(learning_rate=1.0, max_speed=1.5, momentum=0.9)
    p = np.zeros(3, np.float32)
    for _ in range(5):
        p = opt.step(p, np.array([3.0, 4.0, 0.0], np.float32))
    assert np.linalg.norm(opt.velocity) == pytest.approx(1.5, rel=1e-5)
    np.testing.assert_allclose(opt.velocity / 1.5, [0.6, 0.8, 0.0], atol=1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"sigma": 0.0}, ValueError, "PGPE: sigma must be finite and > 0, got 0.0"),
    ({"sigma": -1.0}, ValueError, "PGPE: sigma must be finite and > 0, got -1.0"),
    ({"sigma": [0.1, float("nan"), 0.1]}, ValueError, "PGPE: sigma must be finite and > 0, got nan at index 1"),
    ({"lambda_": 7}, ValueError, "PGPE: lambda_ must be even with symmetric .mirrored. sampling, got 7"),
    ({"lambda_": 1}, ValueError, "PGPE: lambda_ must be >= 2"),
    ({"lambda_": 2.0}, TypeError, "PGPE: lambda_ must be an int, got 2.0"),
    ({"learning_rate": 0.0}, ValueError, "PGPE: learning_rate must be finite and > 0, got 0.0"),
    ({"learning_rate": -0.1}, ValueError, "PGPE: learning_rate must be finite and > 0, got -0.1"),
    ({"max_speed": 0.0}, ValueError, "PGPE: max_speed must be finite and > 0, got 0.0"),
    ({"max_speed": float("inf")}, ValueError, "PGPE: max_speed must be finite and > 0, got inf"),
    ({"momentum": 1.0}, ValueError, r"PGPE: momentum must be in \[0, 1\), got 1.0"),
    ({"optimizer": "sgd"}, ValueError, "PGPE: optimizer must be one of .'clipup', 'adam'., got 'sgd'"),
    ({"sigma_max_change": 1.5}, ValueError, r"PGPE: sigma_max_change must be in \(0, 1\], got 1.5"),
    ({"learning_rate_decay": 1.5}, ValueError, r"PGPE: learning_rate_decay must be in \(0, 1\], got 1.5"),
    ({"sigma_learning_rate": -1.0}, ValueError, "PGPE: sigma_learning_rate must be finite and >= 0, got -1.0"),
    ({"centroid": [0.0, float("inf"), 1.0]}, ValueError, "PGPE: centroid must be finite, got inf at index 1"),
    ({"centroid": []}, ValueError, "PGPE: centroid must not be empty"),
    ({"rng": 3}, TypeError, "PGPE: rng must be a numpy.random.Generator or None, got 3"),
])
def test_pgpe_rejects_bad_settings_naming_them(kwargs, error, match):
    kwargs = {"centroid": np.zeros(3), **kwargs}
    with pytest.raises(error, match=match):
        PGPE(**kwargs)


def test_odd_population_is_fine_without_mirrored_sampling():
    strategy = PGPE(np.ones(10), sigma=0.3, lambda_=7, symmetric=False, rng=np.random.default_rng(0))
    assert sphere_run(strategy, 5) < 20


def test_learning_rate_decay_keeps_clipups_ratio_and_stops_at_the_limit():
    strategy = PGPE(np.ones(10), sigma=0.3, lambda_=4, learning_rate=0.2, max_speed=0.5,
                    learning_rate_decay=0.5, learning_rate_limit=0.03, rng=np.random.default_rng(0))
    sphere_run(strategy, 2)
    assert strategy.learning_rate == pytest.approx(0.05) and strategy.optimizer.max_speed == pytest.approx(0.125)
    sphere_run(strategy, 3)
    assert strategy.learning_rate == pytest.approx(0.03) and strategy.optimizer.max_speed == pytest.approx(0.075)
