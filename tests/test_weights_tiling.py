"""The spec graph's faster forms: pooled convolution from input patches, tiles of samples, the
first-sample finiteness probe of a first Dense layer (deapnn.weights.graph)."""

import numpy as np
import pytest

import deapnn  # noqa: F401
from deapnn.core.failures import is_failure
from deapnn.weights import graph
from deapnn.weights.evaluator import BatchedEvaluator
from deapnn.weights.spec import (BatchNormSpec, Conv2DSpec, DenseSpec, FlattenSpec, NetworkSpec,
                                 PoolSpec, ReshapeSpec)


def conv_spec(padding="same", strides=(1, 1), filters=3, norm=True):
    layers = [ReshapeSpec((9, 9, 2)), Conv2DSpec(filters, (3, 3), strides, padding, "relu")]
    if norm:
        layers.append(BatchNormSpec())
    return NetworkSpec((9, 9, 2), (*layers, PoolSpec("max", (2, 2)), FlattenSpec(),
                                   DenseSpec(5, "softmax")))


def weights(evaluator, p, seed=0):
    """Random vectors; batch-norm variances positive, scales of both signs (the negative ones
    exercise the pooled max's sign flip)."""
    w = np.random.default_rng(seed).normal(0, 0.5, (p, evaluator.size)).astype(np.float32)
    for name, sl in zip(evaluator.layout.names, evaluator.layout.slices()):
        if name.endswith("variance"):
            w[:, sl] = 0.5 + np.abs(w[:, sl])
    return w


def samples(n=30, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, 9, 9, 2), dtype=np.float32), rng.integers(0, 5, n)


@pytest.mark.parametrize("padding, strides", [("same", (1, 1)), ("valid", (1, 1)),
                                              ("valid", (2, 1))])
def test_pooling_patches_give_the_pooled_convolution(padding, strides):
    import tensorflow as tf

    spec = conv_spec(padding, strides, norm=False)
    layout = graph.patch_layout(spec)
    assert layout is not None
    x, _ = samples(4)
    kernel = np.random.default_rng(2).normal(size=(3, 3, 2, 3)).astype(np.float32)
    expect = tf.nn.max_pool2d(tf.nn.conv2d(x, kernel, strides, padding.upper()), 2, 2, "VALID")
    patches = graph.pooling_patches(x, layout)  # (offsets, samples, positions, taps)
    got = (patches @ kernel.reshape(-1, 3)).max(axis=0).reshape(expect.shape)
    np.testing.assert_allclose(got, expect.numpy(), atol=1e-5)


def test_patches_apply_only_where_the_pooling_may_run_first():
    assert graph.patch_layout(conv_spec()) is not None
    overlapping = NetworkSpec((9, 9, 2), (Conv2DSpec(2, (3, 3)), PoolSpec("max", (3, 3), (2, 2)),
                                          FlattenSpec(), DenseSpec(3)))
    average = NetworkSpec((9, 9, 2), (Conv2DSpec(2, (3, 3)), PoolSpec("avg", (2, 2)),
                                      FlattenSpec(), DenseSpec(3)))
    dense_first = NetworkSpec.mlp((9, 9, 2), [4], 3)
    for spec in (overlapping, average, dense_first):
        assert graph.patch_layout(spec) is None


@pytest.mark.parametrize("tile_floats, norm", [(graph.TILE_FLOATS, False), (64 * 9 * 9, False),
                                               (64 * 9 * 9, True)])
def test_patch_path_and_sample_tiles_agree_with_keras_and_with_any_chunking(
        tile_floats, norm, monkeypatch):
    """Tiles of a few samples (the small budget: 7 samples, a last partial tile) and the whole
    minibatch in one tile give Keras' fitness; an individual scores the same bits alone, in
    chunks or in the whole population, with batch normalisation too."""
    monkeypatch.setattr(graph, "TILE_FLOATS", tile_floats)
    monkeypatch.setattr(graph, "TILE_POPULATION_FLOATS", 1)  # (no larger tiles for small P)
    spec = conv_spec(norm=norm)
    x, y = samples()
    batched = BatchedEvaluator(spec, x, y, batch_size=None)
    keras_path = BatchedEvaluator(spec.build_keras(), x, y, batch_size=None, path="fallback")
    w = weights(batched, 9)
    whole = batched.evaluate_population(w)
    graph_ = batched._graph
    assert graph_.patches is not None and graph_.tile == max(1, tile_floats // (9 * 9 * 3))
    assert graph_._fused is True  # the XLA forms ran (no silent fall back to plain)
    np.testing.assert_allclose([f[0] for f in whole],
                               [f[0] for f in keras_path.evaluate_population(w)], atol=1e-5)
    parts = []
    for a in range(0, 9, 4):
        parts += batched.evaluate_population([v.copy() for v in w[a:a + 4]])
    assert [f[0] for f in parts[:8]] == [f[0] for f in whole[:8]]
    alone = batched.evaluate_population(w[6:7])[0][0]
    assert parts[8][0] == whole[8][0] and alone == whole[6][0]
    np.testing.assert_allclose(batched.predict(w[:2], x), keras_path.predict(w[:2], x),
                               atol=1e-5)


@pytest.mark.parametrize("norm", [False, True])
def test_an_individual_scores_the_same_bits_in_tiles_of_any_size(norm, monkeypatch):
    """A call with few individuals takes larger tiles (TILE_POPULATION_FLOATS), so the tile
    size depends on the population: an individual's scores must not. Tiles of 1, 7 and 30
    samples (the whole minibatch), chosen by the per-individual or the population budget, give
    the same bits."""
    spec = conv_spec(norm=norm)
    x, y = samples()
    w = None
    scores = []
    for tile_floats, population_floats in [(243, 1), (7 * 243, 1), (243, 6 * 30 * 243)]:
        monkeypatch.setattr(graph, "TILE_FLOATS", tile_floats)
        monkeypatch.setattr(graph, "TILE_POPULATION_FLOATS", population_floats)
        batched = BatchedEvaluator(spec, x, y, batch_size=None)
        w = weights(batched, 6) if w is None else w
        scores.append([f[0] for f in batched.evaluate_population(w)])
    assert scores[0] == scores[1] == scores[2]


def test_a_non_finite_weight_on_inputs_that_are_never_zero_is_still_a_failure():
    """The first sample's pre-activations probe every weight: a -inf weight on a pixel that is
    positive in every sample gives -inf there, which relu would hide from the outputs."""
    spec = NetworkSpec.mlp((6,), [4], 3, activation="relu")
    rng = np.random.default_rng(0)
    x = rng.random((12, 6), dtype=np.float32) + 0.5
    y = rng.integers(0, 3, 12)
    evaluator = BatchedEvaluator(spec, x, y, batch_size=None, skip_zero_inputs=False)
    w = rng.normal(0, 0.5, (3, evaluator.size)).astype(np.float32)
    clean = evaluator.evaluate_population(w)
    w[1, 2] = -np.inf  # kernel row 0 (pixel 0), unit 2
    fits = evaluator.evaluate_population(w)
    assert is_failure(fits[1]) and fits[1].reason == "non-finite weights"
    assert [fits[0][0], fits[2][0]] == [clean[0][0], clean[2][0]]


@pytest.mark.parametrize("activation, filters", [("relu", 3), ("relu", 5), ("tanh", 3),
                                                 ("elu", 5)])
def test_batch_norm_networks_score_the_same_bits_in_any_chunking(activation, filters):
    """With batch normalisation after the convolution, an individual scores the same bits in
    populations of 1 to 11, by the pooling-patch path (relu) and the packed path (tanh, elu,
    where the pooling may not run first). Grappler rewrites a plain ``x / sqrt(v)`` into
    ``x * rsqrt(v)``, whose rounding depended on the population size; this fails then."""
    spec = NetworkSpec((9, 9, 2), (ReshapeSpec((9, 9, 2)),
                                   Conv2DSpec(filters, (3, 3), (1, 1), "same", activation),
                                   BatchNormSpec(), PoolSpec("max", (2, 2)), FlattenSpec(),
                                   DenseSpec(5, "softmax")))
    x, y = samples()
    batched = BatchedEvaluator(spec, x, y, batch_size=None)
    w = weights(batched, 11)
    whole = [f[0] for f in batched.evaluate_population(w)]
    assert (batched._graph.patches is not None) == (activation == "relu")
    for a, b in [(0, 1), (1, 3), (2, 7), (3, 4), (5, 11)]:
        assert [f[0] for f in batched.evaluate_population([v.copy() for v in w[a:b]])] == whole[a:b]


@pytest.mark.parametrize("variance", [-1e-3, -0.5])
def test_a_batch_norm_folded_into_the_dense_layer_still_fails_like_keras(variance):
    """The pooling-patch path folds a linear batch normalisation before Flatten + Dense into that
    Dense layer's kernel and bias. A variance of -epsilon (a zero divisor: inf) or below (NaN)
    still makes the outputs non-finite, as in Keras: a recorded failure, the others unchanged."""
    spec = conv_spec()
    x, y = samples()
    batched = BatchedEvaluator(spec, x, y, batch_size=None)
    keras_path = BatchedEvaluator(spec.build_keras(), x, y, batch_size=None, path="fallback")
    w = weights(batched, 4)
    clean = batched.evaluate_population(w)
    name, sl = next((n, s) for n, s in zip(batched.layout.names, batched.layout.slices())
                    if n.endswith("variance"))
    w[2, sl.start + 1] = variance
    fits, expect = batched.evaluate_population(w), keras_path.evaluate_population(w)
    assert is_failure(fits[2]) and is_failure(expect[2])
    assert fits[2].reason == "non-finite network output"
    assert [fits[i][0] for i in (0, 1, 3)] == [clean[i][0] for i in (0, 1, 3)]


@pytest.mark.parametrize("shape, kernel, strides, padding, pool", [
    ((9, 9, 2), (3, 3), (1, 1), "same", (2, 2)), ((28, 28, 1), (5, 5), (2, 2), "valid", (2, 2)),
    ((17, 15, 3), (3, 2), (2, 1), "same", (3, 2))])
def test_the_graph_gathers_the_same_patches_as_numpy(shape, kernel, strides, padding, pool):
    """prepare() gathers the pooling patches inside TensorFlow (patch_indices): the same values,
    bit for bit, as pooling_patches, padding zeros included."""
    spec = NetworkSpec(shape, (Conv2DSpec(4, kernel, strides, padding, "relu"),
                               PoolSpec("max", pool), FlattenSpec(), DenseSpec(3, "softmax")))
    g = graph.BatchedGraph(spec)
    x = np.random.default_rng(3).normal(size=(11, *shape)).astype(np.float32)
    (chunk, _, count), = g.prepare(x, np.zeros(11, np.int32))[0]
    assert count == 11
    # (samples last, the layout the graph's product reads: (taps, offsets, positions, samples))
    np.testing.assert_array_equal(chunk.numpy(),
                                  graph.pooling_patches(x, g.patches).transpose(3, 0, 2, 1))


@pytest.mark.parametrize("shape", [(5, 8, 8, 2), (5, 9, 9)])
def test_samples_of_another_size_are_an_error_not_wrong_patches(shape):
    """The patch gather indexes a flat sample: samples of another size raise a ValueError naming
    both shapes (in scores and predict) instead of reading the wrong pixels."""
    x, y = samples()
    evaluator = BatchedEvaluator(conv_spec(), x, y, batch_size=None)
    w = weights(evaluator, 2)
    bad = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=r"\(9, 9, 2\)"):
        evaluator.scores(w, bad, np.zeros(5, int))
    with pytest.raises(ValueError, match=r"\(9, 9, 2\)"):
        evaluator.predict(w, bad)
