import copy
import random

import numpy as np
import pytest
from deap import algorithms, creator, tools

import deapnn
from deapnn.hparams.controllers import RecurrentController, TableController, make_controller
from deapnn.hparams.evonas import ChainReward, far_order, synthetic_reward, synthetic_space
from deapnn.hparams.learned import LearnedMutation, mut_learned
from deapnn.hparams.space import Choice, FloatRange, IntRange, SearchSpace


# -- controllers -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [TableController, RecurrentController])
@pytest.mark.parametrize("training", ["imitate", "reinforce"])
def test_each_controller_learns_a_fixed_target_sequence(cls, training):
    sizes = [5, 3, 6, 4, 5, 2, 6, 5]
    rng = np.random.default_rng(0)
    target = [int(rng.integers(k)) for k in sizes]
    controller = cls(sizes, learning_rate=0.05 if training == "imitate" else 0.02)
    samples = [controller.sample_sequence(rng) for _ in range(200)]
    assert np.mean([s == target for s in samples]) < 0.05  # uniform at the start
    for _ in range(300):
        if training == "imitate":
            controller.imitate([target])
        else:  # REINFORCE on the number of decisions that match the target
            batch = [controller.sample_sequence(rng) for _ in range(10)]
            controller.reinforce(batch, [[True] * len(sizes)] * 10,
                                 [sum(a == b for a, b in zip(s, target)) for s in batch])
    samples = [controller.sample_sequence(rng) for _ in range(200)]
    assert np.mean([s == target for s in samples]) > 0.8


def test_recurrent_controller_conditions_on_a_decision_far_back():
    # decision 5 must copy decision 0: the table controller (previous decision only) cannot learn it
    sizes = [3] * 6
    targets = [[a, 0, 0, 0, 0, a] for a in range(3)]
    results = {}
    for cls in (TableController, RecurrentController):
        controller = cls(sizes, learning_rate=0.05)
        for _ in range(300):
            controller.imitate(targets)
        results[cls.__name__] = np.mean([controller.probabilities(5, t)[t[5]] for t in targets])
    assert results["RecurrentController"] > 0.9 > 0.5 > results["TableController"], results


def test_controller_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    seqs = np.array([[0, 1, 1, 3], [2, 3, 0, 0]])
    masks = np.array([[1, 0, 1, 1], [1, 1, 1, 0]], dtype=float)
    adv = np.array([0.5, -1.5])
    for cls in (TableController, RecurrentController):
        c = cls([3, 4, 2, 4])
        c.params = [rng.normal(size=w.shape) for w in c.params]

        def objective():
            return sum(a * np.log(c.probabilities(i, list(s))[s[i]])
                       for s, m, a in zip(seqs, masks, adv) for i in range(4) if m[i])

        grads = c._gradients(seqs, masks, adv)
        for k in (0, 1, len(c.params) - 1):
            w = c.params[k].reshape(-1)
            j = int(np.argmax(np.abs(grads[k].reshape(-1)))) if np.abs(grads[k]).max() > 0 else 0
            old = w[j]
            w[j] = old + 1e-6
            up = objective()
            w[j] = old - 1e-6
            down = objective()
            w[j] = old
            assert (up - down) / 2e-6 == pytest.approx(grads[k].reshape(-1)[j], abs=1e-6)


def test_controllers_reject_bad_values():
    for kind in ("table", "recurrent"):
        c = make_controller(kind, [3, 4])
        with pytest.raises(ValueError, match=r"decision index must be an int in \[0, 1\], got 2"):
            c.probabilities(2, [0, 1])
        with pytest.raises(ValueError, match=r"decision index must be an int in \[0, 1\], got -1"):
            c.sample(-1, [], np.random.default_rng(0))
        with pytest.raises(ValueError, match="learning_rate must be finite and > 0, got 0.0"):
            make_controller(kind, [3], learning_rate=0.0)
        with pytest.raises(ValueError, match="learning_rate must be finite and > 0, got -0.1"):
            make_controller(kind, [3], learning_rate=-0.1)
    with pytest.raises(ValueError, match="controller must be one of"):
        make_controller("lstm", [3])
    with pytest.raises(ValueError, match="hidden must be an int >= 1, got 0"):
        RecurrentController([3], hidden=0)
    with pytest.raises(ValueError, match=r"option of decision 0 must be an int in \[0, 2\], got 7"):
        RecurrentController([3, 3]).probabilities(1, [7])


# -- mut_learned -----------------------------------------------------------------------------------
def _space():
    return SearchSpace({"a": Choice([1, 2, 3, 4]), "b": Choice(["x"]), "c": Choice(["p", "q"]),
                        "d": Choice([0.1, 0.2, 0.3])})


def test_mut_learned_keeps_genomes_valid_and_always_changes_a_mutated_gene():
    space = _space()
    learner = LearnedMutation(space)
    random.seed(0)
    for step in range(300):
        parent = deapnn.random_genome(space, creator.Genome)
        child = copy.deepcopy(parent)
        (out,) = mut_learned(child, 0.5, learner)
        assert out is child and space.contains(list(child))
        changed = [i for i in range(len(space)) if child[i] != parent[i]]
        entry = learner._pending[-1] if learner._pending and learner._pending[-1][0] is child else None
        mutated = [] if entry is None else [i for i, m in enumerate(entry[2]) if m]
        assert changed == mutated  # every gene the operator mutated got another value
        assert child[1] == "x"  # a one-value gene is never touched
        child.fitness.values = (float(child[0]),)  # prefer large "a": the controller learns from it
    assert learner.updates > 100


def test_mut_learned_learns_from_the_children_it_produced():
    space = SearchSpace({f"g{i}": Choice(list(range(6))) for i in range(5)})
    learner = LearnedMutation(space, training="pqt", explore=0.0)
    random.seed(1)
    for _ in range(400):
        child = deapnn.random_genome(space, creator.Genome)
        mut_learned(child, 1.0, learner)
        child.fitness.values = (float(sum(v == 5 for v in child)),)  # reward: genes equal to 5
    parent = deapnn.make_genome(space, {f"g{i}": 0 for i in range(5)}, creator.Genome)
    hits = [sum(v == 5 for v in mut_learned(copy.deepcopy(parent), 1.0, learner)[0]) for _ in range(100)]
    assert np.mean(hits) > 4.0  # uniform resampling to another value gives 1.0 on average
    learner.explore = 1.0  # evolution's uniform resampling, the same controller
    hits = [sum(v == 5 for v in mut_learned(copy.deepcopy(parent), 1.0, learner)[0]) for _ in range(100)]
    assert np.mean(hits) < 1.6


def test_eassimple_with_mutate_learned_runs_unchanged():
    deapnn.seed(3)
    space = synthetic_space(6)
    toolbox = deapnn.make_toolbox(space, synthetic_reward, mutate="learned")
    assert isinstance(toolbox.learner, LearnedMutation) and toolbox.learner.controller_kind == "recurrent"
    pop = toolbox.population(n=20)
    pop, log = algorithms.eaSimple(pop, toolbox, cxpb=0.5, mutpb=0.5, ngen=10, verbose=False)
    assert all(space.contains(list(g)) for g in pop)
    assert toolbox.learner.updates == 9  # one update per generation after the first variation


def _learned_run(path, ngen, seed=4):
    deapnn.seed(seed)
    space = synthetic_space(6)
    learner = LearnedMutation(space, controller="recurrent")
    toolbox = deapnn.make_toolbox(space, ChainReward(far_order(6)), mutate="learned",
                                  mutate_kwargs={"learner": learner, "indpb": 0.3})
    pop = toolbox.population(n=12)
    hof = tools.HallOfFame(3)
    pop, log = deapnn.evolve(pop, toolbox, ngen, cxpb=0.5, mutpb=0.5, halloffame=hof,
                             stats=deapnn.fitness_stats(), checkpoint=path)
    return pop, log, hof, learner


def test_evolve_with_mut_learned_resumes_exactly_from_a_checkpoint(tmp_path):
    pop, log, hof, learner = _learned_run(tmp_path / "whole.pkl", 12)
    _learned_run(tmp_path / "cut.pkl", 5)
    pop2, log2, hof2, learner2 = _learned_run(tmp_path / "cut.pkl", 12)  # resumes at generation 6
    assert [list(g) for g in pop2] == [list(g) for g in pop]
    assert [g.fitness.values for g in pop2] == [g.fitness.values for g in pop]
    assert log2.select("max") == log.select("max") and log2.select("avg") == log.select("avg")
    assert [list(g) for g in hof2] == [list(g) for g in hof]
    assert learner2.updates == learner.updates == 11  # variation in generations 1..12, learning from 2
    for a, b in zip(learner2.controller.params, learner.controller.params):
        np.testing.assert_array_equal(a, b)


def test_a_resume_without_the_learner_state_would_differ(tmp_path):
    # the resume test above can fail: a fresh learner at generation 6 changes the run
    *_, learner = _learned_run(tmp_path / "whole.pkl", 12)
    _learned_run(tmp_path / "cut.pkl", 5)
    original = LearnedMutation.load_state
    try:
        LearnedMutation.load_state = lambda self, state: None
        *_, learner2 = _learned_run(tmp_path / "cut.pkl", 12)
    finally:
        LearnedMutation.load_state = original
    assert learner2.updates < learner.updates
    assert any(not np.array_equal(a, b) for a, b in zip(learner2.controller.params, learner.controller.params))


def test_learned_mutation_rejects_bad_input():
    with pytest.raises(ValueError, match=r"not categorical: \['lr', 'units'\]"):
        LearnedMutation(SearchSpace({"opt": Choice(["a", "b"]), "lr": FloatRange(0.1, 1.0),
                                     "units": IntRange(1, 5)}))
    with pytest.raises(ValueError, match=r"not categorical: \['lr'\]"):
        deapnn.make_toolbox(SearchSpace({"lr": FloatRange(0.1, 1.0)}), lambda g: (0.0,), mutate="learned")
    with pytest.raises(ValueError, match="learning_rate must be finite and > 0, got 0.0"):
        LearnedMutation(_space(), learning_rate=0.0)
    with pytest.raises(ValueError, match="learning_rate must be finite and > 0, got -1.0"):
        LearnedMutation(_space(), controller="table", learning_rate=-1.0)
    with pytest.raises(ValueError, match="queue_size must be an int >= 1, got 0"):
        LearnedMutation(_space(), queue_size=0)
    with pytest.raises(ValueError, match="training must be one of"):
        LearnedMutation(_space(), training="ppo")
    with pytest.raises(ValueError, match=r"mut_learned indpb must be in \[0, 1\] \(a probability\), got 1.5"):
        mut_learned(deapnn.random_genome(_space(), creator.Genome), 1.5, LearnedMutation(_space()))
    with pytest.raises(TypeError, match="needs learner=LearnedMutation"):
        deapnn.make_toolbox(_space(), lambda g: (0.0,), mutate="learned", mutate_kwargs={"learner": 3})
    with pytest.raises(ValueError, match="another search space"):
        deapnn.make_toolbox(_space(), lambda g: (0.0,), mutate="learned",
                            mutate_kwargs={"learner": LearnedMutation(synthetic_space(3))})


def test_chain_reward_variants():
    assert far_order(6) == [0, 3, 1, 4, 2, 5]
    assert far_order(5) == [0, 3, 1, 4, 2]
    reward = ChainReward(far_order(6))
    best = [0] * 6
    for k, i in enumerate(far_order(6)):
        best[i] = k + 1
    assert reward(best) == (1.0,) and reward([1, 2, 3, 4, 5, 6])[0] < 1.0
    assert ChainReward(range(5))([1, 3, 3, 4, 5]) == synthetic_reward([1, 3, 3, 4, 5])
    with pytest.raises(ValueError, match="order must be a permutation"):
        ChainReward([0, 0, 1])


def test_recurrent_sample_sequence_draws_as_decision_by_decision_sampling():
    c = RecurrentController([4, 5, 3, 6])
    rng = np.random.default_rng(0)
    c.params = [rng.normal(size=w.shape) for w in c.params]
    fast = [c.sample_sequence(np.random.default_rng(s)) for s in range(30)]
    slow = []
    for s in range(30):
        r, seq = np.random.default_rng(s), []
        for i in range(4):
            seq.append(c.sample(i, seq, r))
        slow.append(seq)
    assert fast == slow and len({tuple(x) for x in fast}) > 5


@pytest.mark.parametrize("controller", ["table", "recurrent"])
def test_mut_learned_rates_mutate_less_where_the_controller_expects_the_parent_value(controller):
    space = SearchSpace({f"g{i}": Choice(["off", "on"]) for i in range(6)})
    random.seed(5)

    def mutated(learner, values, trials=300):
        parent = deapnn.make_genome(space, dict(zip(space.names, values)), creator.Genome)
        counts = np.zeros(len(space))
        for _ in range(trials):
            child = copy.deepcopy(parent)
            mut_learned(child, 0.3, learner)
            counts += [a != b for a, b in zip(child, parent)]
            learner._pending.clear()  # these children get no fitness
        return counts / trials

    fresh = LearnedMutation(space, controller=controller, rates=True, explore=0.0)
    assert np.allclose(mutated(fresh, ["on"] * 6), 0.3, atol=0.08)  # uniform controller: mut_resample's rate
    learner = LearnedMutation(space, controller=controller, rates=True, explore=0.0, learning_rate=0.1)
    for _ in range(150):
        learner.controller.imitate([[1] * 6])  # the controller expects "on" everywhere
    assert mutated(learner, ["on"] * 6).max() < 0.1  # expected values are kept
    avoided = mutated(learner, ["off"] * 6)  # the controller learned to avoid "off" (given "on" before it)
    assert avoided[0] > 0.5 and avoided.mean() > 0.36, avoided  # changed up to twice as often
    plain = LearnedMutation(space, controller=controller, explore=0.0)  # rates=False: indpb as given
    plain.controller.load_state(learner.controller.state())
    assert np.allclose(mutated(plain, ["on"] * 6), 0.3, atol=0.08)
    with pytest.raises(TypeError, match="rates must be a bool, got 'yes'"):
        LearnedMutation(space, rates="yes")
