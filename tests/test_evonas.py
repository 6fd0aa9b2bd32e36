import pickle

import numpy as np
import pytest
from deap import algorithms, creator

import deapnn
from deapnn.hparams.evonas import (
    Controller,
    EvoNASAgent,
    EvolutionAgent,
    NeuralAgent,
    synthetic_reward,
    synthetic_space,
)
from deapnn.hparams.space import FloatRange, SearchSpace


def test_synthetic_reward_peaks_at_a_k_equals_k():
    assert synthetic_reward([1, 2, 3, 4, 5]) == (1.0,)
    assert synthetic_reward([1, 2, 3, 5, 5])[0] < 1.0
    space = synthetic_space(4)
    best = max(space.grid(), key=lambda d: synthetic_reward(list(d.values())))
    assert list(best.values()) == [1, 2, 3, 4]


def _run(agent_cls, n=6, budget=800, seed=0, **kwargs):
    deapnn.seed(seed)
    space = synthetic_space(n)
    agent = agent_cls(space, rng=np.random.default_rng(seed), **kwargs)
    toolbox = deapnn.make_toolbox(space, synthetic_reward)  # evaluation cache + map
    toolbox.register("generate", agent.generate, creator.Genome)
    toolbox.register("update", agent.update)
    pop, log = algorithms.eaGenerateUpdate(toolbox, ngen=budget // agent.lambda_, stats=deapnn.fitness_stats(),
                                           verbose=False)
    return agent, pop, log, toolbox


def _random_search_late_means(n, draws, trials, seed=0):
    """Mean reward of ``draws`` uniform random individuals, for ``trials`` independent trials."""
    a = np.random.default_rng(seed).integers(1, n + 1, size=(trials, draws, n)).astype(float)
    denominator = a[..., 0] ** 2 + np.sum(np.diff(a, axis=-1) ** 2, axis=-1) + (a[..., -1] - (n + 1)) ** 2
    return ((n + 1) / denominator).mean(axis=1)


#: Mean reward of the last 50 of 300 evaluations (n=6) that every agent passes and random search
#: does not reach: in 20,000 trials of 50 random draws the mean reward was 0.145 on average and
#: 0.195 at most, while the agents' last 50 averaged 0.31-0.38 (evolution), 0.22-0.30 (neural)
#: and 0.40-0.52 (Evo-NAS) over seeds 0-5 (measured for issue 10).
LEARNED = 0.2


@pytest.mark.parametrize("agent_cls", [EvolutionAgent, NeuralAgent, EvoNASAgent])
def test_agents_run_under_eagenerateupdate_and_learn_what_random_search_does_not(agent_cls):
    agent, pop, log, toolbox = _run(agent_cls, budget=300)
    assert len(log) == 30 and len(pop) == agent.lambda_
    assert all(type(g) is creator.Genome and g.space.contains(list(g)) for g in pop)
    assert toolbox.cache.misses + toolbox.cache.hits == 300
    late = float(np.mean(log.select("avg")[-5:]))  # the last 50 evaluations
    assert late > LEARNED > _random_search_late_means(6, 50, 2000).max(), late


def test_evonas_mutations_change_the_decisions_they_touch():
    agent, pop, _, _ = _run(EvoNASAgent, budget=200)
    agent.generate(creator.Genome)
    assert all(any(mask) for mask in agent._masks)


def test_controller_imitation_concentrates_on_the_target():
    controller = Controller([4, 4, 4], learning_rate=0.1)
    target = [2, 0, 3]
    assert controller.probabilities(0, None)[2] == pytest.approx(0.25)
    for _ in range(100):
        controller.imitate([target])
    rng = np.random.default_rng(0)
    samples = [controller.sample_sequence(rng) for _ in range(200)]
    assert np.mean([s == target for s in samples]) > 0.9
    assert all(controller.sample_other(1, 2, 0, rng) != 0 for _ in range(50))


def test_evonas_is_at_least_as_good_as_the_better_of_evolution_and_neural():
    # Seed 003's claim on its synthetic task, at a small size and fixed seeds.
    final = {
        cls.__name__: np.mean([max(_run(cls, n=8, budget=1500, seed=s)[2].select("max")) for s in range(3)])
        for cls in (EvolutionAgent, NeuralAgent, EvoNASAgent)
    }
    assert final["EvoNASAgent"] >= max(final["EvolutionAgent"], final["NeuralAgent"]), final


@pytest.mark.parametrize("agent_cls", [EvolutionAgent, NeuralAgent, EvoNASAgent])
def test_state_round_trip_continues_the_same_run(agent_cls):
    kwargs = {} if agent_cls is NeuralAgent else {"population_size": 6, "sample_size": 3}
    _assert_state_round_trip(agent_cls, kwargs)


def _assert_state_round_trip(agent_cls, kwargs):
    """Four generations, state saved, four more; a clone with another generator loaded with the
    saved state makes the same four."""
    space = synthetic_space(5)

    def step(agent):
        pop = agent.generate(creator.Genome)
        for ind in pop:
            ind.fitness.values = synthetic_reward(ind)
        agent.update(pop)
        return [list(ind) for ind in pop]

    agent = agent_cls(space, lambda_=4, rng=np.random.default_rng(1), **kwargs)
    for _ in range(4):
        step(agent)
    saved = pickle.loads(pickle.dumps(agent.state()))
    expected = [step(agent) for _ in range(4)]
    clone = agent_cls(space, lambda_=4, rng=np.random.default_rng(99), **kwargs)
    clone.load_state(saved)
    assert [step(clone) for _ in range(4)] == expected


def test_agents_without_an_rng_draw_from_deapnns_generator_at_call_time():
    space = synthetic_space(5)
    agent = EvolutionAgent(space, population_size=4, sample_size=2, lambda_=4)  # built before seeding
    deapnn.seed(5)
    first = [list(g) for g in agent.generate(creator.Genome)]
    deapnn.seed(5)
    other = EvolutionAgent(space, population_size=4, sample_size=2, lambda_=4)
    again = [list(g) for g in other.generate(creator.Genome)]
    assert first == again
    assert agent.rng is deapnn.core.seeding.get_rng()


def test_controller_and_agents_reject_bad_values():
    with pytest.raises(ValueError, match="learning_rate must be finite and > 0, got nan"):
        Controller([3, 3], learning_rate=float("nan"))
    with pytest.raises(ValueError, match="learning_rate must be finite and > 0, got inf"):
        EvoNASAgent(synthetic_space(3), population_size=4, sample_size=2, learning_rate=float("inf"))
    with pytest.raises(ValueError, match=r"baseline_decay must be in \[0, 1\], got 1.5"):
        Controller([3, 3], baseline_decay=1.5)
    with pytest.raises(ValueError, match=r"p_mutate must be in \[0, 1\], got nan"):
        EvolutionAgent(synthetic_space(3), population_size=4, sample_size=2, p_mutate=float("nan"))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        NeuralAgent(synthetic_space(3), rng=42)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"need categorical \(Choice\) genes; not categorical: \['x'\]"):
        EvolutionAgent(SearchSpace({"x": FloatRange(0, 1)}))
    with pytest.raises(ValueError, match="training must be one of"):
        NeuralAgent(synthetic_space(3), training="ppo")
    with pytest.raises(ValueError, match="sample_size <= population_size, got population_size=5, sample_size=9"):
        EvoNASAgent(synthetic_space(3), population_size=5, sample_size=9)
    with pytest.raises(ValueError, match="n must be an int >= 2, got 1"):
        synthetic_space(1)


@pytest.mark.parametrize("agent_cls", [NeuralAgent, EvoNASAgent])
def test_recurrent_controller_agents_learn_and_resume(agent_cls):
    agent, pop, log, _ = _run(agent_cls, budget=300, controller="recurrent")
    assert type(agent.controller).__name__ == "RecurrentController"
    late = float(np.mean(log.select("avg")[-5:]))
    assert late > LEARNED, late
    kwargs = {"controller": "recurrent"} if agent_cls is NeuralAgent else {
        "controller": "recurrent", "population_size": 6, "sample_size": 3, "explore": 0.5}
    _assert_state_round_trip(agent_cls, kwargs)


def test_evonas_explore_mixes_uniform_proposals():
    agent = EvoNASAgent(synthetic_space(4), population_size=4, sample_size=2, explore=1.0,
                        rng=np.random.default_rng(0))
    agent.controller.params[1][:] = 0.0
    agent.controller.params[1][0, 3] = 50.0  # the controller is sure of option 3 after option 0
    draws = [agent._propose(1, [0], 1) for _ in range(300)]
    assert 1 not in draws and abs(np.mean(np.array(draws) == 3) - 1 / 3) < 0.1  # uniform over {0, 2, 3}
    agent.explore = 0.0
    assert all(agent._propose(1, [0], 1) == 3 for _ in range(20))


def test_evonas_controller_has_its_own_default_learning_rate():
    space = synthetic_space(4)
    kwargs = {"population_size": 4, "sample_size": 2}
    assert EvoNASAgent(space, controller="recurrent", **kwargs).controller.learning_rate == 0.05
    assert NeuralAgent(space, controller="recurrent").controller.learning_rate == 0.02
    assert EvoNASAgent(space, controller="table", **kwargs).controller.learning_rate == 0.05
    assert EvoNASAgent(space, controller="recurrent", learning_rate=0.3, **kwargs).controller.learning_rate == 0.3


def test_agents_reject_bad_controller_values():
    with pytest.raises(ValueError, match="controller must be one of"):
        NeuralAgent(synthetic_space(3), controller="lstm")
    with pytest.raises(ValueError, match=r"explore must be in \[0, 1\], got 1.5"):
        EvoNASAgent(synthetic_space(3), population_size=4, sample_size=2, explore=1.5)
    with pytest.raises(ValueError, match="queue_size must be an int >= 1, got 0"):
        EvoNASAgent(synthetic_space(3), population_size=4, sample_size=2, queue_size=0)
    with pytest.raises(ValueError, match="learning_rate must be finite and > 0, got 0.0"):
        NeuralAgent(synthetic_space(3), controller="recurrent", learning_rate=0.0)
    with pytest.raises(ValueError, match=r"decision index must be an int in \[0, 2\], got 3"):
        Controller([3, 3, 3]).probabilities(3, [0, 0, 0])


@pytest.mark.parametrize("controller", ["table", "recurrent"])
def test_evonas_with_uniform_proposals_is_evolution_draw_for_draw(controller):
    # explore=1: every mutated decision is resampled uniformly, so the hybrid must be regularized
    # evolution itself with the same rng (common random numbers), whatever its controller learned
    runs = {}
    for name, cls, kwargs in [("evolution", EvolutionAgent, {}),
                              ("evo-nas", EvoNASAgent, {"explore": 1.0, "controller": controller})]:
        agent, pop, log, _ = _run(cls, n=6, budget=300, seed=4, population_size=20, sample_size=5, **kwargs)
        runs[name] = ([list(g) for g, _ in agent.population], log.select("max"))
    assert runs["evolution"] == runs["evo-nas"]
    agent, _, _, _ = _run(EvoNASAgent, n=6, budget=300, seed=4, population_size=20, sample_size=5,
                          explore=0.5, controller=controller)
    assert [list(g) for g, _ in agent.population] != runs["evolution"][0]  # a learned controller departs
