import multiprocessing
import pickle

import pytest
from deap import algorithms, creator, tools

import deapnn
from deapnn.core.cache import EvaluationCache
from deapnn.hparams.genome import make_genome
from deapnn.hparams.problems import PolynomialFit
from deapnn.hparams.space import Choice, IntRange, SearchSpace

FINITE = SearchSpace({"a": Choice(["x", "y", "z"]), "b": IntRange(0, 9), "c": Choice([True, False])})


def finite_fitness(genome):
    return (genome["b"] + (genome["a"] == "z") * 3 + genome["c"] * 1.0,)


def test_easimple_and_eamupluslambda_run_unchanged(seeded):
    toolbox = deapnn.make_toolbox(PolynomialFit.space(), PolynomialFit(), mate="convex", mutate="convex")
    pop = toolbox.population(n=30)
    hof = tools.HallOfFame(3)
    pop, log = algorithms.eaSimple(pop, toolbox, 0.6, 0.3, 10, stats=deapnn.fitness_stats(), halloffame=hof, verbose=False)
    assert len(pop) == 30 and len(log) == 11 and all(ind.fitness.valid for ind in pop)
    assert log.select("max")[-1] >= log.select("max")[0]
    toolbox = deapnn.make_toolbox(FINITE, finite_fitness, mate="one_point", mutate="one_gene")
    pop = toolbox.population(n=20)
    pop, log = algorithms.eaMuPlusLambda(pop, toolbox, 20, 40, 0.5, 0.4, 8, halloffame=hof, verbose=False)
    assert max(ind.fitness.values[0] for ind in pop) == 13.0  # z, 9, True
    assert toolbox.cache.misses <= FINITE.size


def test_cache_counts_duplicates_within_a_population():
    cache = EvaluationCache(finite_fitness)
    a = make_genome(FINITE, {"a": "x", "b": 1, "c": True})
    b = make_genome(FINITE, {"a": "y", "b": 2, "c": False})
    pop = [a, b, pickle.loads(pickle.dumps(a)), a, b]
    fits = cache.map()(cache, pop)
    assert fits == [(2.0,), (2.0,), (2.0,), (2.0,), (2.0,)]
    assert (cache.misses, cache.hits) == (2, 3)
    assert [cache(g) for g in pop] == fits and (cache.misses, cache.hits) == (2, 8)


def test_cache_never_evaluates_a_genome_twice_during_a_run(seeded):
    calls = []

    def counting(genome):
        calls.append(genome.key())
        return finite_fitness(genome)

    toolbox = deapnn.make_toolbox(FINITE, counting)
    pop = toolbox.population(n=40)
    algorithms.eaSimple(pop, toolbox, 0.5, 0.5, 15, verbose=False)
    assert len(calls) == len(set(calls)) == toolbox.cache.misses
    assert toolbox.cache.hits > 0


def test_novel_children_are_remutated_until_unseen(seeded):
    toolbox = deapnn.make_toolbox(FINITE, finite_fitness, novel=True)
    pop = toolbox.population(n=10)
    for ind, fit in zip(pop, toolbox.map(toolbox.evaluate, pop)):
        ind.fitness.values = fit
    seen = set(toolbox.cache.records)
    for _ in range(20):  # 10 + 2 * 20 of the space's 60 genomes
        a, b = map(toolbox.clone, pop[:2])
        toolbox.mate(a, b)
        assert a.key() not in seen and b.key() not in seen
        seen |= {a.key(), b.key()}


def test_every_registered_function_and_genomes_pickle():
    toolbox = deapnn.make_toolbox(FINITE, finite_fitness, novel=True, select="elites_breeders")
    for name in ("individual", "population", "mate", "mutate", "select", "evaluate", "map", "clone"):
        assert pickle.loads(pickle.dumps(getattr(toolbox, name))) is not None, name
    g = toolbox.individual()
    g.fitness.values = (1.5,)
    again = pickle.loads(pickle.dumps(g))
    assert type(again) is creator.Genome and again == g and again.fitness.values == (1.5,)
    assert again.space == FINITE and again.key() == g.key()


def test_spawned_worker_processes_evaluate_genomes(seeded):
    toolbox = deapnn.make_toolbox(PolynomialFit.space(), PolynomialFit())
    pop = toolbox.population(n=12)
    serial = [PolynomialFit()(g) for g in pop]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        toolbox.register("map", toolbox.cache.map(pool.map))
        fits = toolbox.map(toolbox.evaluate, pop)
    assert fits == serial and toolbox.cache.misses == 12


def test_same_seed_same_run():
    def run():
        deapnn.seed(99)
        toolbox = deapnn.make_toolbox(PolynomialFit.space(), PolynomialFit(), mate="convex", mutate="convex")
        pop = toolbox.population(n=20)
        pop, log = algorithms.eaSimple(pop, toolbox, 0.5, 0.3, 5, stats=deapnn.fitness_stats(), verbose=False)
        return [list(g) for g in pop], log.select("max")

    assert run() == run()


def test_bad_toolbox_arguments_raise():
    with pytest.raises(ValueError, match="unknown mate 'blend'; choose one of"):
        deapnn.make_toolbox(FINITE, finite_fitness, mate="blend")
    with pytest.raises(TypeError, match="space must be a SearchSpace, got"):
        deapnn.make_toolbox({"a": [1]}, finite_fitness)
    with pytest.raises(ValueError, match="novel=True needs cache=True"):
        deapnn.make_toolbox(FINITE, finite_fitness, cache=False, novel=True)
    with pytest.raises(TypeError, match="mutate 'one_gene' .* takes no argument 'indpb'"):
        deapnn.make_toolbox(FINITE, finite_fitness, mutate="one_gene", mutate_kwargs={"indpb": 0.1})
    with pytest.raises(TypeError, match="select 'tournament' .* takes no argument 'tournament_size'"):
        deapnn.make_toolbox(FINITE, finite_fitness, select_kwargs={"tournament_size": 3})


def test_polynomial_example_recovers_the_coefficients():
    from polynomial import run

    result = run(seed=0)
    assert result["max_abs_error"] < 0.05, result["best"]


def two_objectives(genome):
    return (float(genome["b"]), float(genome["b"] + (genome["a"] != "x")))


def test_multi_objective_genomes_with_nsga2(seeded):
    toolbox = deapnn.make_toolbox(FINITE, two_objectives, genome_type=creator.GenomeMulti, select="nsga2")
    pop = toolbox.population(n=20)
    pop, _ = algorithms.eaMuPlusLambda(pop, toolbox, 20, 20, 0.5, 0.5, 10, verbose=False)
    front = tools.sortNondominated(pop, len(pop), first_front_only=True)[0]
    # maximise b, minimise b + (a != "x"): the front holds only a == "x" genomes
    assert all(ind["a"] == "x" for ind in front)
    assert type(pop[0]) is creator.GenomeMulti and pop[0].fitness.weights == (1.0, -1.0)


def test_novel_children_leave_no_stale_reservation_after_mate_then_mutate(seeded):
    """A child crossed (reserving its key) and then mutated gives the first key back: the
    cache's pending keys are exactly the final children's keys, and empty once evaluated."""
    toolbox = deapnn.make_toolbox(FINITE, finite_fitness, novel=True, mutate="one_gene")
    pop = toolbox.population(n=8)
    for ind, fit in zip(pop, toolbox.map(toolbox.evaluate, pop)):
        ind.fitness.values = fit
    offspring = algorithms.varAnd(pop, toolbox, cxpb=1.0, mutpb=1.0)
    final = {child.key() for child in offspring}
    assert toolbox.cache.pending == final
    assert not final & set(toolbox.cache.records)  # every child is novel
    for child, fit in zip(offspring, toolbox.map(toolbox.evaluate, offspring)):
        child.fitness.values = fit
    assert toolbox.cache.pending == set()


def _genome_toolbox(**options):
    return deapnn.make_toolbox(FINITE, finite_fitness, **options)


def _weight_toolbox(**options):
    from deapnn.weights import WeightLayout, make_weight_toolbox

    return make_weight_toolbox(WeightLayout.from_shapes([(3, 2), (2,)]), **options)


#: The two factories, with a probability knob of one of their named mutations and crossovers.
DOORS = [
    pytest.param(_genome_toolbox, "resample", "uniform", id="make_toolbox"),
    pytest.param(_weight_toolbox, "gaussian", "uniform", id="make_weight_toolbox"),
]


@pytest.mark.parametrize("factory, mutation, crossover", DOORS)
def test_both_factories_take_options_the_same_way(factory, mutation, crossover):
    # a name from the table, or a function (with its knobs)
    toolbox = factory(mutate=mutation, mutate_kwargs={"indpb": 0.25}, mate=crossover)
    assert toolbox.mutate.keywords["indpb"] == 0.25
    toolbox = factory(select=tools.selBest, select_kwargs={"fit_attr": "fitness"})
    assert toolbox.select.func is tools.selBest
    # unknown knobs name themselves, for named operators and for functions
    with pytest.raises(TypeError, match=f"mutate '{mutation}' .* takes no argument 'indbp'"):
        factory(mutate=mutation, mutate_kwargs={"indbp": 0.5})
    with pytest.raises(TypeError, match="select selBest takes no argument 'tournsize'"):
        factory(select=tools.selBest, select_kwargs={"tournsize": 3})
    with pytest.raises(ValueError, match=r"unknown select 'roulette'; choose one of"):
        factory(select="roulette")
    # probabilities outside [0, 1] or NaN are refused at registration, named
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match=rf"mutate indpb must be in \[0, 1\].*{bad!r}"):
            factory(mutate=mutation, mutate_kwargs={"indpb": bad})
        with pytest.raises(ValueError, match=rf"mate indpb must be in \[0, 1\].*{bad!r}"):
            factory(mate=crossover, mate_kwargs={"indpb": bad})
    # elites means one thing: a count, an int >= 0
    with pytest.raises(TypeError, match=r"elites is a count of individuals \(an int >= 0\), got 0.1"):
        factory(elites=0.1)
    with pytest.raises(ValueError, match="elites must be an int >= 0, got -2"):
        factory(elites=-2)
    with pytest.raises(TypeError, match="elites given twice"):
        factory(select=operators_with_elites(factory), elites=1, select_kwargs={"elites": 1})


def operators_with_elites(factory):
    return "elites_breeders" if factory is _genome_toolbox else "elitist_tournament"


@pytest.mark.parametrize("factory, mutation, crossover", DOORS)
def test_elites_keep_the_best_whatever_the_selection(factory, mutation, crossover, seeded):
    toolbox = factory(elites=3)  # the default tournament, wrapped
    elitist = factory(select=operators_with_elites(factory), elites=3)  # passed as the knob
    assert elitist.select.keywords["elites"] == 3
    pop = toolbox.population(n=12)
    for i, ind in enumerate(pop):
        ind.fitness.values = (float(i),)
    for tb in (toolbox, elitist):
        for _ in range(20):
            chosen = tb.select(pop, 12)
            assert len(chosen) == 12 and [c.fitness.values[0] for c in chosen[:3]] == [11.0, 10.0, 9.0]
    again = pickle.loads(pickle.dumps(toolbox.select))  # the wrapped selection pickles
    assert [c.fitness.values[0] for c in again(pop, 12)[:3]] == [11.0, 10.0, 9.0]
    plain = factory()  # no elites: the best is not always first
    assert any(plain.select(pop, 12)[0].fitness.values[0] != 11.0 for _ in range(20))


@pytest.mark.parametrize("sigma", [float("nan"), float("inf"), 0.0, -0.1])
def test_factories_reject_a_bad_sigma(sigma):
    with pytest.raises(ValueError, match=rf"mutate sigma must be finite and > 0, got {sigma!r}"):
        _genome_toolbox(mutate="perturb", mutate_kwargs={"sigma": sigma})
    with pytest.raises(ValueError, match=rf"mutate sigma must be finite and > 0, got {sigma!r}"):
        _weight_toolbox(mutate_kwargs={"sigma": sigma})
    with pytest.raises(ValueError, match=rf"mutate sigma must be finite and > 0, got {sigma!r}"):
        _weight_toolbox(sigma=sigma, per_layer=True)
