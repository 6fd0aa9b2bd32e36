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


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma": -1}, "OpenAIES: sigma must be finite and > 0, got -1.0"),
    ({"sigma": float("nan")}, "OpenAIES: sigma must be finite and > 0, got nan"),
    ({"sigma": float("inf")}, "OpenAIES: sigma must be finite and > 0, got inf"),
    ({"learning_rate": 0.0}, "OpenAIES: learning_rate must be finite and > 0, got 0.0"),
    ({"learning_rate": float("nan")}, "OpenAIES: learning_rate must be finite and > 0, got nan"),
    ({"weight_decay": -0.1}, "OpenAIES: weight_decay must be finite and >= 0, got -0.1"),
    ({"beta1": 1.0}, r"OpenAIES: beta1 must be in \[0, 1\), got 1.0"),
    ({"epsilon": float("nan")}, "OpenAIES: epsilon must be finite and > 0, got nan"),
    ({"sigma_decay": 1.5}, r"OpenAIES: sigma_decay must be in \(0, 1\], got 1.5"),
    ({"sigma_limit": float("inf")}, "OpenAIES: sigma_limit must be finite and >= 0, got inf"),
    ({"lambda_": 5}, "even"),
    ({"centroid": [0.0, float("nan")]}, "OpenAIES: centroid must be finite, got nan at index 1"),
])
def test_openai_es_rejects_bad_values_naming_them(kwargs, match):
    kwargs = {"centroid": np.zeros(3), **kwargs}
    with pytest.raises(ValueError, match=match):
        OpenAIES(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"sigma": 0.0}, "SNES: sigma must be finite and > 0, got 0.0"),
    ({"sigma": float("nan")}, "SNES: sigma must be finite and > 0, got nan"),
    ({"sigma": [0.1, float("inf"), 0.1]}, "SNES: sigma must be finite and > 0, got inf at index 1"),
    ({"eta_mu": float("nan")}, "SNES: eta_mu must be finite and > 0, got nan"),
    ({"eta_sigma": -1.0}, "SNES: eta_sigma must be finite and > 0, got -1.0"),
    ({"lambda_": 1}, "SNES: lambda_ must be >= 2, got 1"),
])
def test_snes_rejects_bad_values_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SNES(np.zeros(3), **kwargs)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("own_rng", [True, False])
def test_state_round_trip_continues_the_same_run(name, own_rng):
    deapnn.seed(4)
    strategy = STRATEGIES[name](np.random.default_rng(0) if own_rng else None)

    def step(s):
        pop = s.generate(creator.WeightVector)
        for ind in pop:
            ind.fitness.values = sphere(ind)
        s.update(pop)
        return np.stack(pop)

    for _ in range(3):
        step(strategy)
    saved = pickle.loads(pickle.dumps(strategy.state()))
    shared = deapnn.core.seeding.get_state()
    expected = [step(strategy) for _ in range(3)]
    clone = STRATEGIES[name](np.random.default_rng(7) if own_rng else None)
    clone.load_state(saved)
    deapnn.core.seeding.set_state(shared)
    for want in expected:
        np.testing.assert_array_equal(step(clone), want)
    np.testing.assert_array_equal(clone.centroid, strategy.centroid)


def test_adam_matches_the_textbook_update():
    from deapnn.core.optim import Adam

    adam = Adam(learning_rate=0.1, beta1=0.9, beta2=0.99, epsilon=1e-8)
    x = np.array([1.0, -2.0])
    m = v = np.zeros(2)
    ref = x.copy()
    for t in range(1, 6):
        g = np.array([0.5, -1.0]) * t
        (x,) = adam.step([x], [g])
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        ref = ref + 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.99**t)) + 1e-8)
        np.testing.assert_allclose(x, ref, rtol=1e-12)
    x32 = adam.step([np.ones(2, np.float32)], [np.ones(2, np.float32)])[0]
    assert x32.dtype == np.float32
    with pytest.raises(ValueError, match="Adam: learning_rate must be finite and > 0, got nan"):
        Adam(float("nan"))


def test_openai_es_and_the_evonas_controller_share_one_adam():
    from deapnn.core.optim import Adam
    from deapnn.hparams.evonas import Controller

    assert type(OpenAIES(np.zeros(2), lambda_=2).optimizer) is Adam
    assert type(Controller([2, 2]).optimizer) is Adam


def test_bad_arguments():
    strategy = SNES(np.zeros(3), rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator or None, got 3"):
        SNES(np.zeros(3), rng=3)
    with pytest.raises(ValueError, match="valid fitness"):
        strategy.update(strategy.generate(creator.WeightVector))


@pytest.mark.parametrize("name", ["es", "snes", "pgpe", "sepcma", "cma"])
def test_strategies_checkpoint_and_resume_exactly_through_evolve(name, tmp_path):
    """deapnn.evolve(algorithm="generate_update"): 3 generations, a restart with a fresh toolbox
    and other seeds, 3 more = 6 uninterrupted generations, bit for bit (DEAP's cma.Strategy
    included: saved by its __dict__, its draws from numpy's global generator)."""
    import deapnn
    from deapnn.weights import BatchedEvaluator, NetworkSpec, make_weight_toolbox

    kwargs = {"es": {"lambda_": 8}, "snes": {"lambda_": 8}, "pgpe": {"lambda_": 8},
              "sepcma": {"lambda_": 8}, "cma": {"lambda_": 8}}[name]

    def toolbox():
        data = np.random.default_rng(0)
        x, y = data.random((40, 4), dtype=np.float32), np.arange(40) % 2
        evaluator = BatchedEvaluator(NetworkSpec.mlp((4,), [3], 2), x, y, batch_size=8)
        return make_weight_toolbox(evaluator, evaluator, strategy=name, strategy_kwargs=kwargs)

    def run(split):
        path = tmp_path / f"{split}.pkl"
        deapnn.seed(5)
        tb = toolbox()
        if split:
            deapnn.evolve(None, tb, 3, algorithm="generate_update", checkpoint=path)
            deapnn.seed(77)
            tb = toolbox()
        pop, log = deapnn.evolve(None, tb, 6, algorithm="generate_update", checkpoint=path)
        return np.stack(pop), [ind.fitness.values for ind in pop], np.asarray(tb.strategy.centroid), len(log)

    a, b = run(False), run(True)
    assert a[3] == b[3] == 6
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    np.testing.assert_array_equal(a[2], b[2])


def test_toolbox_strategies_are_registered_by_name_and_check_their_centroid():
    from deap import cma

    from deapnn.weights import PGPE, STRATEGIES, SepCMAES, WeightLayout, make_weight_toolbox

    layout = WeightLayout.from_shapes([(3, 2), (2,)])
    kinds = {"es": OpenAIES, "snes": SNES, "pgpe": PGPE, "sepcma": SepCMAES, "cma": cma.Strategy}
    assert set(STRATEGIES) == set(kinds)
    for name, kind in kinds.items():
        tb = make_weight_toolbox(layout, strategy=name, strategy_kwargs={"lambda_": 4})
        assert type(tb.strategy) is kind and len(tb.generate()) == 4
    start = np.arange(8, dtype=np.float32)
    tb = make_weight_toolbox(layout, strategy="pgpe", strategy_kwargs={"centroid": start, "lambda_": 4})
    np.testing.assert_array_equal(tb.strategy.centroid, start)
    with pytest.raises(ValueError, match=r"centroid must be a vector of the model's 8 weights, got shape \(5,\)"):
        make_weight_toolbox(layout, strategy="pgpe", strategy_kwargs={"centroid": np.zeros(5)})
    with pytest.raises(ValueError, match="PGPE: centroid must be finite, got nan at index 2"):
        make_weight_toolbox(layout, strategy="pgpe", strategy_kwargs={"centroid": [0, 0, np.nan, 0, 0, 0, 0, 0]})
    with pytest.raises(ValueError, match="strategy must be one of"):
        make_weight_toolbox(layout, strategy="nes")
    with pytest.raises(ValueError, match="PGPE: sigma must be finite and > 0, got -0.5"):
        make_weight_toolbox(layout, strategy="pgpe", strategy_kwargs={"sigma": -0.5})
