"""Honest fitness on resampled minibatches (deapnn.weights.minibatch): survivors re-scored on the
current minibatch before selection, a hall of fame ranked on validation data; DEAP's eaSimple /
eaMuPlusLambda and deapnn.evolve unchanged (digits, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
from deap import algorithms, tools

import deapnn
from deapnn.weights import (BatchedEvaluator, HonestMap, NetworkSpec, ValidationHallOfFame,
                            make_weight_toolbox, sel_rescored)
from deapnn.weights.minibatch import STEP_ATTRIBUTE

NET = NetworkSpec.mlp((8, 8), [8], 10)


@pytest.fixture(scope="module")
def digits():
    from deapnn.data import load_digits

    return load_digits(seed=0)


def toolbox(digits, **kwargs):
    """An honest weight toolbox on digits; its draws come from deapnn's generator (checkpointed)."""
    evaluator = BatchedEvaluator(NET, digits.x_train, digits.y_train, batch_size=64, seed=1)
    tb = make_weight_toolbox(evaluator, evaluator, sigma=0.2, per_layer=True, **kwargs)
    return tb, evaluator


class Spy:
    """A selection that records, for each candidate, its fitness and a fresh evaluation on the
    evaluator's current step, then selects the best."""

    def __init__(self, evaluator):
        self.evaluator, self.seen = evaluator, []

    def __call__(self, individuals, k):
        fresh = self.evaluator.evaluate_population(list(individuals), self.evaluator.step)
        self.seen.append(([ind.fitness.values[0] for ind in individuals], [f[0] for f in fresh],
                          [getattr(ind, STEP_ATTRIBUTE, None) for ind in individuals], self.evaluator.step))
        return tools.selBest(individuals, k)


@pytest.mark.parametrize("algorithm", ["simple", "mu+lambda"])
def test_survivors_are_rescored_on_the_current_minibatch(digits, algorithm):
    deapnn.seed(0)
    tb, evaluator = toolbox(digits)
    assert isinstance(tb.map.func, HonestMap) and tb.select.func is sel_rescored
    spy = Spy(evaluator)
    tb.register("select", sel_rescored, select=spy, evaluator=evaluator)
    pop = tb.population(n=12)
    if algorithm == "simple":
        algorithms.eaSimple(pop, tb, cxpb=0.3, mutpb=0.3, ngen=4, verbose=False)
    else:
        algorithms.eaMuPlusLambda(pop, tb, mu=12, lambda_=12, cxpb=0.3, mutpb=0.3, ngen=4, verbose=False)
    assert len(spy.seen) == 4
    for fitness, fresh, steps, step in spy.seen:
        assert step >= 1 and all(s == step for s in steps)
        np.testing.assert_allclose(fitness, fresh, rtol=0, atol=1e-5)
    # without the re-scoring, survivors would carry fitness of an older minibatch
    tb2, ev2 = toolbox(digits, honest=False)
    spy2 = Spy(ev2)
    tb2.register("select", spy2)
    deapnn.seed(0)
    pop = tb2.population(n=12)
    algorithms.eaSimple(pop, tb2, cxpb=0.3, mutpb=0.3, ngen=4, verbose=False)
    assert any(np.max(np.abs(np.subtract(f, g))) > 1e-4 for f, g, _, _ in spy2.seen)


def test_validation_hall_of_fame_ranks_by_validation_score(digits):
    deapnn.seed(1)
    tb, evaluator = toolbox(digits, validation=(digits.x_val, digits.y_val))
    hof = tb.hall_of_fame(3, candidates=6)
    assert isinstance(hof, ValidationHallOfFame)
    pop = tb.population(n=16)
    algorithms.eaSimple(pop, tb, cxpb=0.5, mutpb=0.5, ngen=3, halloffame=hof, verbose=False)
    ce, _, _ = evaluator.scores(list(hof), digits.x_val, digits.y_val)
    np.testing.assert_allclose([ind.fitness.values[0] for ind in hof], -ce, atol=1e-6)
    assert [ind.fitness.values[0] for ind in hof] == sorted((ind.fitness.values[0] for ind in hof), reverse=True)
    # nothing of the final population with a better validation score was left out among the ones it scored
    best_pop = max(-evaluator.scores(tools.selBest(pop, 6), digits.x_val, digits.y_val)[0])
    assert hof[0].fitness.values[0] >= best_pop - 1e-9
    # an individual lucky on its minibatch but worse on validation does not enter
    lucky = tb.clone(hof[0])
    lucky[-10] += 100.0  # the output bias of class 0: predicts 0 for every image
    lucky.fitness.values = (1e9,)
    hof.update([lucky])
    assert not any(np.array_equal(lucky, ind) for ind in hof)


def test_evolve_with_honest_toolbox_resumes_exactly(digits, tmp_path):
    def run(split):
        tb, evaluator = toolbox(digits)
        deapnn.seed(3)
        pop = tb.population(n=10)
        path = tmp_path / f"ckpt{split}.pkl"
        if split:
            deapnn.evolve(pop, tb, 2, checkpoint=path, cxpb=0.5, mutpb=0.5)
            tb, evaluator = toolbox(digits)  # a fresh toolbox, as after a restart
            deapnn.seed(99)  # the checkpoint restores every RNG
            pop = tb.population(n=10)
        pop, _ = deapnn.evolve(pop, tb, 4, checkpoint=path, cxpb=0.5, mutpb=0.5)
        return np.stack(pop), [ind.fitness.values for ind in pop], [getattr(i, STEP_ATTRIBUTE) for i in pop]

    a, b = run(False), run(True)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] and a[2] == b[2]


def test_honest_is_on_only_for_resampling_evaluators(digits):
    fixed = BatchedEvaluator(NET, digits.x_train, digits.y_train, batch_size=64, resample=False)
    tb = make_weight_toolbox(fixed, fixed)
    assert not isinstance(tb.map.func, HonestMap)
    with pytest.raises(ValueError, match="honest=True needs a population evaluator that resamples"):
        make_weight_toolbox(fixed, fixed, honest=True)
    with pytest.raises(ValueError, match="validation= needs a population evaluator"):
        make_weight_toolbox(NET.layout(), None, validation=(digits.x_val, digits.y_val))
    with pytest.raises(ValueError, match="maxsize must be an int >= 1, got 0"):
        ValidationHallOfFame(0, fixed, digits.x_val, digits.y_val)
    with pytest.raises(ValueError, match="metric must be one of"):
        ValidationHallOfFame(1, fixed, digits.x_val, digits.y_val, metric="f1")


def test_register_backend_keeps_the_honest_map(digits):
    """A backend chosen after make_weight_toolbox keeps the honest wrapper on top of it."""
    from deapnn.parallel import SerialMap, register_backend
    from deapnn.weights.minibatch import HonestMap

    tb, evaluator = toolbox(digits)
    register_backend(tb, "serial")
    current = tb.map.func if hasattr(tb.map, "func") else tb.map
    assert isinstance(current, HonestMap) and isinstance(current.map, SerialMap)
    assert current.evaluator is evaluator
