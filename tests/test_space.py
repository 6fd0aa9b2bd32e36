import json
import math
import pickle
import random

import pytest

from deapnn.hparams.space import Choice, FloatRange, IntRange, SearchSpace


def zero_b_when_a_false(values):
    if values["a"] is False:
        values["b"] = 0
    return values


MIXED = {
    "act": ["relu", "tanh", "elu"],
    "flag": [True, False],
    "maybe": [None, 1, 2.5],
    "units": IntRange(16, 256, step=16),
    "lr": FloatRange(1e-4, 1e-1, log=True),
    "x": (-3, 3),
}


def test_gene_pool_shorthand_builds_typed_genes():
    space = SearchSpace.from_gene_pool(MIXED)
    assert space.names == tuple(MIXED)
    assert isinstance(space["act"], Choice)
    assert isinstance(space["x"], FloatRange) and space["x"].low == -3.0
    assert space["units"].size == 16
    assert space.size is None


def test_sampling_is_valid_and_seedable():
    space = SearchSpace.from_gene_pool(MIXED)
    a = [space.sample(random.Random(7)) for _ in range(3)]
    b = [space.sample(random.Random(7)) for _ in range(3)]
    assert a == b
    rng = random.Random(0)
    for _ in range(2000):
        values = space.sample(rng)
        assert space.contains(values)
        assert 1e-4 <= values["lr"] <= 1e-1


def test_log_range_samples_spread_over_decades():
    gene = FloatRange(1e-4, 1e-1, log=True)
    rng = random.Random(1)
    xs = [gene.sample(rng) for _ in range(3000)]
    below = sum(x < 1e-3 for x in xs) / len(xs)
    assert 0.25 < below < 0.42  # one decade of three


def test_json_and_pickle_round_trip():
    space = SearchSpace(
        {"a": Choice([True, False]), "b": IntRange(0, 4), "c": FloatRange(0.1, 1.0, log=True)},
        canonical=zero_b_when_a_false,
    )
    again = SearchSpace.from_json(space.to_json())
    assert again == space
    assert again.to_dict() == json.loads(space.to_json())
    assert pickle.loads(pickle.dumps(space)) == space


def test_canonical_key_collapses_equivalent_genomes():
    space = SearchSpace({"a": Choice([True, False]), "b": IntRange(0, 4)}, canonical=zero_b_when_a_false)
    assert space.key({"a": False, "b": 3}) == space.key({"a": False, "b": 1}) == (False, 0)
    assert space.key({"a": True, "b": 3}) != space.key({"a": True, "b": 1})
    assert space.key([True, 2]) == (True, 2)


def test_choice_keeps_true_apart_from_one():
    gene = Choice([1, True, 0, False, None])
    assert gene.index(True) == 1 and gene.index(1) == 0 and gene.index(None) == 4
    assert not gene.contains(2)


def test_grid_enumerates_a_finite_space():
    space = SearchSpace({"a": Choice(["x", "y"]), "b": IntRange(1, 3)})
    grid = list(space.grid())
    assert len(grid) == space.size == 6
    assert {tuple(d.values()) for d in grid} == {(a, b) for a in "xy" for b in (1, 2, 3)}
    with pytest.raises(ValueError, match="continuous genes \\['c'\\]"):
        list(SearchSpace({"c": FloatRange(0, 1)}).grid())


@pytest.mark.parametrize(
    "genes, error, message",
    [
        ({"a": []}, ValueError, "gene 'a': Choice needs at least one value"),
        ({"a": ["relu", "relu"]}, ValueError, "gene 'a': Choice values must be distinct, got 'relu' twice"),
        ({"a": [[1, 2], 3]}, TypeError, r"gene 'a': Choice values must be hashable, got unhashable \[1, 2\]"),
        ({"a": [(1, 2)]}, TypeError, r"gene 'a': Choice values must be str, int, float, bool or None, got \(1, 2\)"),
        ({"a": [float("nan")]}, ValueError, "gene 'a': Choice values must be finite, got nan"),
        ({"lr": (1.0, 1.0)}, ValueError, "gene 'lr': FloatRange needs low < high, got low=1.0 >= high=1.0"),
        ({"lr": (2, 1)}, ValueError, "gene 'lr': FloatRange needs low < high, got low=2 >= high=1"),
        ({"n": (0, float("inf"))}, ValueError, "gene 'n': FloatRange high must be finite, got inf"),
        ({"n": ("0", 1)}, TypeError, "gene 'n': FloatRange low must be a number, got '0'"),
        ({"a": "relu"}, TypeError, "gene 'a': a gene must be a Choice, IntRange, FloatRange"),
        ({"a": (1, 2, 3)}, ValueError, r"gene 'a': a range must be a \(low, high\) tuple, got \(1, 2, 3\)"),
        ({3: ["x"]}, TypeError, "gene names must be strings, got 3"),
        ({}, ValueError, "a SearchSpace needs at least one gene"),
    ],
)
def test_invalid_spaces_raise_naming_the_bad_gene_and_value(genes, error, message):
    with pytest.raises(error, match=message):
        SearchSpace(genes)


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: FloatRange(0.0, 1.0, log=True), ValueError, "log=True needs low > 0, got low=0.0"),
        (lambda: FloatRange(-1, 1, log=True), ValueError, "log=True needs low > 0, got low=-1"),
        (lambda: IntRange(5, 5), ValueError, "IntRange needs low < high, got low=5 >= high=5"),
        (lambda: IntRange(0, 10, step=3), ValueError, "multiple of step, got low=0, high=10, step=3"),
        (lambda: IntRange(0.5, 2), TypeError, "IntRange low must be an int, got 0.5"),
        (lambda: IntRange(0, 4, step=0), ValueError, "step must be >= 1, got 0"),
        (lambda: Choice("abc"), TypeError, "Choice values must be a list or tuple, got 'abc'"),
    ],
)
def test_invalid_genes_raise(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_duplicate_names_and_bad_canonical():
    with pytest.raises(ValueError, match="duplicate gene name 'a'"):
        SearchSpace([("a", ["x"]), ("a", ["y"])])
    with pytest.raises(TypeError, match="module-level function"):
        SearchSpace({"a": ["x"]}, canonical=lambda d: d)


def test_validate_names_the_bad_value():
    space = SearchSpace.from_gene_pool(MIXED)
    values = space.sample(random.Random(0))
    values["act"] = "swish"
    with pytest.raises(ValueError, match="gene 'act': value 'swish' is not in"):
        space.validate(values)
    with pytest.raises(ValueError, match=r"missing genes \['x'\]"):
        space.validate({k: v for k, v in values.items() if k != "x"})


@pytest.mark.parametrize("low, high", [(-1e308, 1e308), (0.0, 1.5e308), (-1.7976931348623157e308, 0.0)])
def test_float_ranges_near_the_largest_float_sample_and_perturb_inside_the_range(low, high):
    gene = FloatRange(low, high)
    rng = random.Random(2)
    values = [gene.sample(rng) for _ in range(200)]
    values += [gene.perturb(v, sigma, rng) for v in values for sigma in (0.05, 2.0)]
    values += [gene.perturb(v, 0.1, rng) for v in (low, high)]
    assert all(math.isfinite(v) and gene.contains(v) for v in values)
    assert len(set(values)) > 400
