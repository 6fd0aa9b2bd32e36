"""Evolution strategies as DEAP strategies (deapnn.weights.strategies)."""

import pickle

import numpy as np
import pytest
from deap import algorithms, base, creator

import deapnn  # noqa: F401
from deapnn.weights.strategies import SNES, OpenAIES, centered_ranks, nes_utilities
from deapnn.weights.types import hall_of_fame

DIM = 20
TARGET = np.linspace(-1, 1, DIM).astype(np.float32)


def sphere(ind):
    return (-float(np.sum((np.asarray(ind) - TARGET) ** 2)),)


STRATEGIES = {
    "openai_es": lambda rng: OpenAIES(np.zeros(DIM), sigma=0.1, lambda_=40, learning_rate=0.05,
                                      weight_decay=0.0, rng=rng),
    "snes": lambda rng: SNES(np.zeros(DIM), sigma=0.5, lambda_=20, rng=rng),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_ea_generate_update_runs_unchanged_and_improves(name):
    strategy = STRATEGIES[name](np.random.default_rng(0))
    tb = base.Toolbox()
    tb.register("generate", strategy.generate, creator.WeightVector)
    tb.register("update", strategy.update)
    tb.register("evaluate", sphere)
    hof = hall_of_fame(3)
    start = sphere(strategy.centroid)[0]
    pop, log = algorithms.eaGenerateUpdate(tb, ngen=150, halloffame=hof, verbose=False)
    assert len(log) == 150 and all(type(ind) is creator.WeightVector for ind in pop)
    assert sphere(strategy.centroid)[0] > 0.1 * start  # at least 10x closer
    assert len({ind.tobytes() for ind in hof}) == len(hof)
    clone = pickle.loads(pickle.dumps(strategy))
    np.testing.assert_array_equal(clone.centroid, strategy.centroid)


def test_openai_es_antithetic_pairs_and_ranks():
    strategy = OpenAIES(np.ones(DIM), sigma=0.1, lambda_=6, rng=np.random.default_rng(0))
    pop = strategy.generate(creator.WeightVector)
    x = np.stack(pop)
    np.testing.assert_allclose(x[:3] + x[3:], 2.0, atol=1e-6)
    assert len({p.__array_interface__["data"][0] for p in pop}) == 6
    np.testing.assert_allclose(centered_ranks([3.0, -1.0, 10.0]), [0.0, -0.5, 0.5])
    assert nes_utilities(10).sum() == pytest.approx(0.0, abs=1e-6)


def test_failed_individuals_rank_last():
    strategy = OpenAIES(np.zeros(4), sigma=0.1, lambda_=4, learning_rate=0.1, weight_decay=0.0,
                        rng=np.random.default_rng(0))
    pop = strategy.generate(creator.WeightVector)
    for i, ind in enumerate(pop):
        ind.fitness.values = (float("-inf"),) if i == 0 else (float(i),)
    strategy.update(pop)
    assert np.isfinite(strategy.centroid).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="even"):
        OpenAIES(np.zeros(3), lambda_=5)
    with pytest.raises(ValueError, match="sigma must be > 0, got -1"):
        OpenAIES(np.zeros(3), sigma=-1)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        SNES(np.zeros(3), sigma=0.0)
    strategy = SNES(np.zeros(3), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="valid fitness"):
        strategy.update(strategy.generate(creator.WeightVector))
