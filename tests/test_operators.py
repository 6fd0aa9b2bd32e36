import copy
import math
import random
import statistics

import pytest
from deap import creator
from hypothesis import given, settings
from hypothesis import strategies as st

from deapnn.hparams import operators
from deapnn.hparams.genome import make_genome, random_genome
from deapnn.hparams.space import Choice, FloatRange, IntRange, SearchSpace

MIXED = SearchSpace(
    {
        "act": Choice(["relu", "tanh", "elu", "sigmoid"]),
        "flag": Choice([True, False]),
        "maybe": Choice([None, 0, 1]),
        "units": IntRange(8, 64, step=8),
        "layers": IntRange(0, 3),
        "lr": FloatRange(1e-4, 1e-1, log=True),
        "x": FloatRange(-3, 3),
    }
)

VARIATIONS = [
    ("cx_uniform", lambda a, b: operators.cx_uniform(a, b, 0.5)),
    ("cx_one_point", operators.cx_one_point),
    ("cx_convex", operators.cx_convex),
    ("mut_resample", lambda a, b: operators.mut_resample(a, 0.5) + operators.mut_resample(b, 1.0)),
    ("mut_one_gene", lambda a, b: operators.mut_one_gene(a) + operators.mut_one_gene(b)),
    ("mut_convex", lambda a, b: operators.mut_convex(a, 0.5) + operators.mut_convex(b, 1.0)),
    ("mut_perturb", lambda a, b: operators.mut_perturb(a, 0.5) + operators.mut_perturb(b, 1.0, 0.5)),
]


@pytest.mark.parametrize("name, op", VARIATIONS, ids=[n for n, _ in VARIATIONS])
def test_thousands_of_applications_keep_genomes_valid(name, op):
    random.seed(hash(name) % 1000)
    pop = [random_genome(MIXED) for _ in range(20)]
    for _ in range(3000):
        a, b = random.sample(pop, 2)
        out = op(a, b)
        assert all(o is a or o is b for o in out), "operators change individuals in place"
        for g in (a, b):
            assert MIXED.contains(list(g)), (name, g)
            assert type(g) is creator.Genome


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), indpb=st.floats(0.0, 1.0))
def test_resample_never_returns_the_old_categorical_value(seed, indpb):
    random.seed(seed)
    g = random_genome(MIXED)
    before = list(g)
    operators.mut_resample(g, indpb)
    for i, gene in enumerate(MIXED.genes):
        if isinstance(gene, Choice) and g[i] is not before[i]:
            assert not gene.index(g[i]) == gene.index(before[i])
        if isinstance(gene, IntRange) and g[i] != before[i]:
            assert gene.contains(g[i])
    if indpb == 1.0:
        assert all(not (a == b and type(a) is type(b)) for a, b in zip(g, before))


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_mut_one_gene_changes_exactly_one_gene(seed):
    random.seed(seed)
    g = random_genome(MIXED)
    before = list(g)
    operators.mut_one_gene(g)
    changed = [i for i, (a, b) in enumerate(zip(g, before)) if not (a == b and type(a) is type(b))]
    assert len(changed) == 1


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_one_point_children_are_prefix_suffix_swaps(seed):
    random.seed(seed)
    a, b = random_genome(MIXED), random_genome(MIXED)
    pa, pb = list(a), list(b)
    operators.cx_one_point(a, b)
    n = len(pa)
    points = [k for k in range(1, n) if list(a) == pa[:k] + pb[k:] and list(b) == pb[:k] + pa[k:]]
    assert points, (pa, pb, list(a), list(b))


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_uniform_children_take_each_gene_from_one_parent(seed):
    random.seed(seed)
    a, b = random_genome(MIXED), random_genome(MIXED)
    pa, pb = list(a), list(b)
    operators.cx_uniform(a, b, 0.5)
    for i in range(len(pa)):
        assert (a[i], b[i]) in ((pa[i], pb[i]), (pb[i], pa[i]))


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_convex_children_lie_between_the_parents(seed):
    random.seed(seed)
    a, b = random_genome(MIXED), random_genome(MIXED)
    pa, pb = list(a), list(b)
    operators.cx_convex(a, b)
    for i, gene in enumerate(MIXED.genes):
        if gene.numeric:
            lo, hi = min(pa[i], pb[i]), max(pa[i], pb[i])
            slack = getattr(gene, "step", 0)  # rounding to the grid
            assert lo - slack <= a[i] <= hi + slack and lo - slack <= b[i] <= hi + slack
            assert a[i] + b[i] == pytest.approx(pa[i] + pb[i], abs=2 * slack + 1e-9)
        else:
            assert (a[i], b[i]) in ((pa[i], pb[i]), (pb[i], pa[i]))


def test_one_gene_genome_is_left_alone_by_one_point():
    space = SearchSpace({"a": ["x", "y"]})
    a, b = make_genome(space, {"a": "x"}), make_genome(space, {"a": "y"})
    assert operators.cx_one_point(a, b) == (a, b) and a["a"] == "x"


def _population(values):
    space = SearchSpace({"v": IntRange(0, 1000)})
    pop = []
    for v in values:
        g = make_genome(space, {"v": v})
        g.fitness.values = (float(v),)
        pop.append(g)
    return pop


def test_sel_retain_keeps_the_best_and_fills_from_survivors():
    random.seed(0)
    pop = _population(range(100))
    chosen = operators.sel_retain(pop, 100, retain=0.2, random_select=0.0)
    assert len(chosen) == 100
    assert [g["v"] for g in chosen[:20]] == list(range(99, 79, -1))
    assert {g["v"] for g in chosen} == set(range(80, 100))
    with pytest.raises(ValueError, match="retain must be in \\(0, 1\\], got 1.5"):
        operators.sel_retain(pop, 10, retain=1.5)


def test_sel_elites_breeders_prefers_fitter_breeders():
    random.seed(1)
    pop = _population(range(1, 101))
    chosen = operators.sel_elites_breeders(pop, 2000, elites=5)
    assert [g["v"] for g in chosen[:5]] == [100, 99, 98, 97, 96]
    breeders = [g["v"] for g in chosen[100:]]
    top = sum(v > 50 for v in breeders) / len(breeders)
    assert top > 0.65  # proportional to fitness: expected ~0.74
    rank = operators.sel_elites_breeders(pop, 2000, elites=0, weighting="rank")
    assert sum(g["v"] > 50 for g in rank) / 2000 > 0.65
    with pytest.raises(ValueError, match="weighting must be 'fitness' or 'rank', got 'x'"):
        operators.sel_elites_breeders(pop, 10, weighting="x")
    # elites is a count everywhere in deapnn; the seed's fraction is refused, not rounded
    with pytest.raises(TypeError, match=r"elites is a count of individuals \(an int >= 0\), got 0.05"):
        operators.sel_elites_breeders(pop, 10, elites=0.05)
    with pytest.raises(ValueError, match="elites must be an int >= 0, got -1"):
        operators.sel_elites_breeders(pop, 10, elites=-1)


def test_genome_reads_by_name_and_clones_without_aliasing():
    g = make_genome(MIXED, MIXED.sample(random.Random(3)))
    assert g["act"] == g[0] and g.as_dict()["lr"] == g["lr"]
    assert repr(g).startswith("Genome(act=")
    g.fitness.values = (1.0,)
    c = copy.deepcopy(g)
    assert c == g and c.space is g.space and c.fitness is not g.fitness
    c["units"] = 8 if g["units"] != 8 else 16
    del c.fitness.values
    assert g.fitness.valid and g["units"] != c["units"]
    with pytest.raises(ValueError, match="gene 'units': value 7 is not in"):
        make_genome(MIXED, {**g.as_dict(), "units": 7})


def test_resample_with_indpb_one_changes_every_gene():
    random.seed(5)
    for _ in range(2000):
        g = random_genome(MIXED)
        before = list(g)
        operators.mut_resample(g, 1.0)
        assert all(not (a == b and type(a) is type(b)) for a, b in zip(g, before))


ORDERED = SearchSpace({"neurons": Choice([0, 16, 32, 64, 128, 256, 512, 1024]),
                       "units": IntRange(8, 64, step=8),
                       "lr": FloatRange(1e-4, 1e-1, log=True),
                       "x": FloatRange(-3, 3),
                       "act": Choice(["relu", "tanh", "elu"])})


def test_perturb_changes_every_gene_and_stays_near():
    random.seed(11)
    steps = {name: [] for name in ORDERED.names}
    for _ in range(3000):
        g = random_genome(ORDERED)
        before = g.as_dict()
        operators.mut_perturb(g, 1.0, 0.1)
        after = g.as_dict()
        assert ORDERED.contains(list(g))
        assert all(after[n] != before[n] for n in ORDERED.names)
        steps["neurons"].append(abs(ORDERED["neurons"].index(after["neurons"])
                                    - ORDERED["neurons"].index(before["neurons"])))
        steps["units"].append(abs(after["units"] - before["units"]) // 8)
        steps["lr"].append(abs(math.log10(after["lr"] / before["lr"])))
        steps["x"].append(abs(after["x"] - before["x"]))
    # sigma 0.1 of 7 grid places is 0.7: mostly one place, rarely more than three
    for name in ("neurons", "units"):
        assert min(steps[name]) == 1 and sum(s == 1 for s in steps[name]) > 0.6 * 3000
        assert sum(s > 3 for s in steps[name]) < 0.01 * 3000
    # 0.1 of 3 decades: a median step near 0.67 * 0.3 decades, never the whole range
    assert 0.1 < statistics.median(steps["lr"]) < 0.3 and max(steps["lr"]) < 1.5
    assert 0.2 < statistics.median(steps["x"]) < 0.6


def test_perturb_reflects_at_the_ends_of_a_range():
    gene = FloatRange(0.0, 1.0)
    rng = random.Random(3)
    values = [gene.perturb(0.999, 0.2, rng) for _ in range(2000)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert sum(v == 1.0 for v in values) < 10, "clipping would pile values on the bound"
    assert Choice([16, 32]).perturb(32, 0.1, rng) == 16 and IntRange(0, 1).perturb(0, 5.0, rng) == 1


def test_perturb_resamples_unordered_choices():
    rng = random.Random(0)
    assert not Choice([1, 0.5, 2]).ordered and not Choice(["a", "b"]).ordered
    assert Choice([0.0, 0.1, 0.5]).ordered
    seen = {Choice(["a", "b", "c", "d"]).perturb("a", 0.01, rng) for _ in range(200)}
    assert seen == {"b", "c", "d"}


@pytest.mark.parametrize("sigma, error", [(0.0, ValueError), (-1, ValueError),
                                          (float("nan"), ValueError), ("big", TypeError)])
def test_perturb_rejects_a_bad_sigma(sigma, error):
    with pytest.raises(error, match="sigma"):
        IntRange(0, 10).perturb(3, sigma)


def test_make_toolbox_registers_perturb_by_name():
    from deapnn.hparams.toolbox import make_toolbox
    toolbox = make_toolbox(ORDERED, lambda g: (0.0,), mutate="perturb", mutate_kwargs={"sigma": 0.3})
    g = toolbox.individual()
    before = list(g)
    for _ in range(50):
        (g,) = toolbox.mutate(g)
    assert ORDERED.contains(list(g)) and list(g) != before


@pytest.mark.parametrize("gene", [FloatRange(-1e308, 1e308), FloatRange(-1.7976931348623157e308, 1.7976931348623157e308),
                                  FloatRange(0.0, 1.5e308)], ids=["wide", "widest", "half-wide"])
def test_mut_perturb_and_sampling_stay_finite_on_a_range_wider_than_the_largest_float(gene):
    space = SearchSpace({"w": gene, "x": FloatRange(-3, 3)})
    rng_state = random.getstate()
    random.seed(4)
    try:
        g = random_genome(space)
        assert math.isfinite(g["w"]) and gene.contains(g["w"])
        values = []
        for sigma in (0.01, 0.1, 3.0):
            for _ in range(300):
                operators.mut_perturb(g, 1.0, sigma)
                assert math.isfinite(g["w"]) and space.contains(list(g)), (sigma, list(g))
                values.append(g["w"])
        assert len(set(values)) > 600  # it moves, not stuck on a bound (sigma 3 often is)
        assert min(values) < gene.low / 2 + gene.high / 2 < max(values)  # both halves visited
        samples = [gene.sample(random) for _ in range(500)]
        assert all(math.isfinite(v) and gene.contains(v) for v in samples)
    finally:
        random.setstate(rng_state)


@pytest.mark.parametrize("call, error, message", [
    (lambda g: operators.mut_perturb(g, float("nan")), ValueError, r"mut_perturb indpb must be in \[0, 1\].*nan"),
    (lambda g: operators.mut_perturb(g, 1.5), ValueError, r"mut_perturb indpb .*1.5"),
    (lambda g: operators.mut_perturb(g, 0.0, float("nan")), ValueError, r"mut_perturb sigma must be finite and > 0, got nan"),
    (lambda g: operators.mut_perturb(g, 0.0, float("inf")), ValueError, r"mut_perturb sigma .*inf"),
    (lambda g: operators.mut_perturb(g, 0.0, 0.0), ValueError, r"mut_perturb sigma .*0.0"),
    (lambda g: operators.mut_resample(g, -0.2), ValueError, r"mut_resample indpb .*-0.2"),
    (lambda g: operators.mut_convex(g, float("nan")), ValueError, r"mut_convex indpb .*nan"),
    (lambda g: operators.cx_uniform(g, copy.deepcopy(g), 2.0), ValueError, r"cx_uniform indpb .*2.0"),
    (lambda g: operators.mut_resample(g, "0.5"), TypeError, r"mut_resample indpb must be a probability"),
], ids=["perturb-indpb-nan", "perturb-indpb-large", "perturb-sigma-nan", "perturb-sigma-inf",
        "perturb-sigma-zero", "resample-indpb", "convex-indpb-nan", "cx-uniform-indpb", "indpb-string"])
def test_bad_probabilities_and_steps_raise_naming_the_value(call, error, message):
    g = make_genome(MIXED, MIXED.sample(random.Random(1)))
    before = list(g)
    with pytest.raises(error, match=message):
        call(g)
    assert list(g) == before
