import pytest
from deap import tools

import deapnn
from deapnn.core.loop import load_checkpoint
from deapnn.hparams.problems import PolynomialFit


class Interrupt(Exception):
    pass


class FailAfter:
    """Fitness that raises after ``n`` evaluations, like a run killed mid-way."""

    def __init__(self, n):
        self.n, self.inner = n, PolynomialFit()

    def __call__(self, genome):
        self.n -= 1
        if self.n < 0:
            raise Interrupt
        return self.inner(genome)


def _run(fitness, ngen, checkpoint=None, algorithm="simple"):
    deapnn.seed(7)
    toolbox = deapnn.make_toolbox(PolynomialFit.space(), fitness, mate="convex", mutate="convex")
    hof = tools.HallOfFame(2)
    pop = toolbox.population(n=16)
    kwargs = {"mu": 16, "lambda_": 24} if algorithm != "simple" else {}
    pop, log = deapnn.evolve(
        pop, toolbox, ngen, cxpb=0.5, mutpb=0.3, algorithm=algorithm, stats=deapnn.fitness_stats(),
        halloffame=hof, checkpoint=checkpoint, **kwargs,
    )
    return pop, log, hof, toolbox


@pytest.mark.parametrize("algorithm", ["simple", "mu+lambda"])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, algorithm):
    pop_ref, log_ref, hof_ref, tb_ref = _run(PolynomialFit(), 8, algorithm=algorithm)
    assert [r["gen"] for r in log_ref] == list(range(9))
    ckpt = tmp_path / "run.pkl"
    with pytest.raises(Interrupt):
        _run(FailAfter(16 + 3 * 10), 8, ckpt, algorithm)  # dies during a later generation
    state = load_checkpoint(ckpt)
    assert 1 <= state["generation"] < 8
    saved = state["logbook"].select("elapsed")
    pop, log, hof, tb = _run(PolynomialFit(), 8, ckpt, algorithm)  # the same call, run again
    # the wall time carries over the interruption: the saved generations keep theirs, later ones add
    elapsed = log.select("elapsed")
    assert elapsed[:len(saved)] == saved and elapsed == sorted(elapsed) and elapsed[-1] > saved[-1] > 0
    assert [list(g) for g in pop] == [list(g) for g in pop_ref]
    assert log.select("max") == log_ref.select("max") and log.select("nevals") == log_ref.select("nevals")
    assert [list(g) for g in hof] == [list(g) for g in hof_ref]
    assert tb.cache.misses == tb_ref.cache.misses


def test_evolve_matches_plain_easimple():
    from deap import algorithms

    _, log, hof, _ = _run(PolynomialFit(), 5)
    deapnn.seed(7)
    toolbox = deapnn.make_toolbox(PolynomialFit.space(), PolynomialFit(), mate="convex", mutate="convex")
    hof2 = tools.HallOfFame(2)
    pop = toolbox.population(n=16)
    _, log2 = algorithms.eaSimple(pop, toolbox, 0.5, 0.3, 5, stats=deapnn.fitness_stats(), halloffame=hof2, verbose=False)
    assert log.select("max") == log2.select("max") and [list(g) for g in hof] == [list(g) for g in hof2]


def test_evolve_rejects_bad_arguments():
    toolbox = deapnn.make_toolbox(PolynomialFit.space(), PolynomialFit())
    with pytest.raises(ValueError, match="algorithm must be one of"):
        deapnn.evolve([], toolbox, 3, algorithm="cma")
    with pytest.raises(ValueError, match="needs mu and lambda_"):
        deapnn.evolve([], toolbox, 3, algorithm="mu+lambda")
    with pytest.raises(ValueError, match="ngen must be a non-negative int, got -1"):
        deapnn.evolve([], toolbox, -1)


def test_plot_logbook_writes_a_png(tmp_path):
    from deapnn.core.plotting import plot_logbook

    _, log, _, _ = _run(PolynomialFit(), 3)
    fig = plot_logbook(log, path=tmp_path / "fit.png")
    assert (tmp_path / "fit.png").stat().st_size > 1000
    # a skewed generation: mean + std would pass the max (accuracies above 1); the band stops there
    book = tools.Logbook()
    book.record(gen=0, avg=0.9, std=0.3, min=0.1, max=0.98)
    book.record(gen=1, avg=0.95, std=0.2, min=0.3, max=0.99)
    band = plot_logbook(book).axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() <= 0.99 and band.min() >= 0.1 and fig is not None
