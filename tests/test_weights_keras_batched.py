"""Any Keras model batched (deapnn.weights.stateless through BatchedEvaluator): Functional and conv
models, the output rule (softmax vs logits heads) on every path, the population buffer read without
a copy, and bad weight vectors."""

import pickle
import warnings

import numpy as np
import pytest

import deapnn  # noqa: F401
from deapnn.core.failures import is_failure
from deapnn.keras.models import build_cnn, build_mlp
from deapnn.weights.buffers import population_matrix
from deapnn.weights.codec import WeightCodec, WeightLayout
from deapnn.weights.evaluator import BatchedEvaluator

import keras  # noqa: E402  (a dependency: a missing Keras fails the tests)


def data(n=24, shape=(8, 8), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape), dtype=np.float32), rng.integers(0, classes, n)


def weights_for(model, p=3, seed=1, scale=0.4):
    """Random weight vectors in the model's layout, batch-norm variances kept positive."""
    layout = WeightLayout.from_model(model)
    w = np.random.default_rng(seed).normal(0, scale, (p, layout.size)).astype(np.float32)
    for name, sl in zip(layout.names, layout.slices()):
        if name.endswith("moving_variance"):
            w[:, sl] = np.abs(w[:, sl]) + 0.5
    return w


def conv_model(head="softmax"):
    """Conv2D + pooling + batch normalisation + dropout, Functional."""
    inputs = keras.Input((8, 8))
    h = keras.layers.Reshape((8, 8, 1))(inputs)
    h = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Dropout(0.5)(h)
    h = keras.layers.Conv2D(2, 3, activation="tanh")(h)
    h = keras.layers.AveragePooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    return keras.Model(inputs, keras.layers.Dense(4, activation=head)(h))


def keras_reference(model, weights, x, y):
    """Keras' own forward pass: outputs and mean cross-entropy per vector (softmax heads give
    probabilities, other heads logits)."""
    codec = WeightCodec(model)
    outs, ces = [], []
    softmax = model.layers[-1].get_config().get("activation") == "softmax"
    for vector in weights:
        codec.decode(vector)
        out = np.asarray(model(x, training=False))
        outs.append(out)
        ces.append(np.mean(keras.losses.sparse_categorical_crossentropy(y, out, from_logits=not softmax)))
    return np.stack(outs), np.array(ces)


MLP_BN = dict(neurons0=6, neurons1=5, batch_norm=True, dropout0=0.3, input_dropout=0.1)
MLP_PLAIN = dict(neurons0=6, activation="tanh")
CNN = dict(conv_blocks=2, filters=2, kernel_size=3, pooling="max", dense=5, dropout=0.2)


def branching_model():
    """Two parallel convolution branches, concatenated: no chain, so Keras' own layers run."""
    inputs = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(2, 3, activation="relu")(inputs)
    b = keras.layers.BatchNormalization()(keras.layers.Conv2D(2, 3)(inputs))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Concatenate()([a, b]))
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(h))


@pytest.mark.parametrize("make, path, expect", [
    # Functional chains (batch norm, dropout included): the spec graph
    (lambda: build_mlp(MLP_BN, (8, 8), 4), "auto", "spec"),
    (lambda: build_mlp(MLP_PLAIN, (8, 8), 4), "auto", "spec"),
    (lambda: build_cnn(CNN, (8, 8), 4), "auto", "spec"),
    (conv_model, "auto", "spec"),
    # the same through Keras' own layers (stateless_call under vectorized_map)
    (lambda: build_mlp(MLP_BN, (8, 8), 4), "stateless", "stateless"),
    (conv_model, "stateless", "stateless"),
    (branching_model, "auto", "stateless"),
], ids=["deapnn-mlp-batchnorm", "deapnn-mlp", "deapnn-cnn", "conv-bn-dropout",
        "deapnn-mlp-batchnorm-stateless", "conv-bn-dropout-stateless", "branching-conv"])
def test_functional_and_conv_models_are_batched_and_agree_with_keras(make, path, expect):
    model = make()
    x, y = data()
    if expect == "stateless" and path == "auto":
        x = x[..., None]
    evaluator = BatchedEvaluator(model, x, y, batch_size=None, path=path)
    assert evaluator.path == expect and evaluator.batched  # not the per-individual fallback
    assert evaluator.layout == WeightLayout.from_model(model) or evaluator.layout.shapes == \
        WeightLayout.from_model(model).shapes  # WeightLayout order, moving statistics included
    weights = weights_for(model)
    expect, expect_ce = keras_reference(model, weights, x, y)
    np.testing.assert_allclose(evaluator.predict(weights, x), expect, atol=1e-5, rtol=0)
    ce, acc, finite = evaluator.scores(weights, x, y)
    np.testing.assert_allclose(ce, expect_ce, atol=1e-5)
    np.testing.assert_allclose(acc, np.mean(expect.argmax(-1) == y, axis=1), atol=1e-6)
    assert finite.all()
    fits = evaluator.evaluate_population(list(weights))
    np.testing.assert_allclose([f[0] for f in fits], -expect_ce, atol=1e-5)
    # pickles (the graph is rebuilt in the new process) and computes the same fitness
    again = pickle.loads(pickle.dumps(evaluator)).evaluate_population(list(weights))
    assert [f[0] for f in again] == [f[0] for f in fits]


def test_batch_norm_moving_statistics_are_genes_of_the_vector():
    model = build_mlp(MLP_BN, (8, 8), 4)
    x, y = data()
    evaluator = BatchedEvaluator(model, x, y, batch_size=None)
    names = evaluator.layout.names
    assert any(n.endswith("moving_mean") for n in names) and any(n.endswith("moving_variance") for n in names)
    assert evaluator.size == sum(int(np.prod(w.shape)) for w in model.get_weights())
    w = weights_for(model, p=2)
    mean = next(sl for n, sl in zip(names, evaluator.layout.slices()) if n.endswith("moving_mean"))
    w[1] = w[0]
    w[1, mean] += 1.0  # only a moving statistic differs: the fitness must see it
    fits = evaluator.evaluate_population(list(w))
    assert fits[0][0] != pytest.approx(fits[1][0], abs=1e-6)


def _pair(head):
    """Two models with the same layout: a Dense head with ``head`` activation."""
    inputs = keras.Input((8, 8))
    h = keras.layers.Dense(5, activation="relu")(keras.layers.Flatten()(inputs))
    h = keras.layers.BatchNormalization()(h)
    return keras.Model(inputs, keras.layers.Dense(4, activation=head)(h))


def test_softmax_and_logits_heads_give_the_same_fitness_on_every_path():
    """The output rule: a softmax head is read through its logits, any other head is logits; so
    a softmax head and a linear head with the same weights score the same, on every path."""
    x, y = data()
    softmax, linear = _pair("softmax"), _pair("linear")
    weights = weights_for(softmax)
    results = {}
    for name, model in (("softmax", softmax), ("linear", linear)):
        for path in ("spec", "stateless", "fallback"):
            evaluator = BatchedEvaluator(model, x, y, batch_size=None, path=path)
            assert evaluator.path == path
            results[name, path] = [f[0] for f in evaluator.evaluate_population(list(weights))]
        _, ce = keras_reference(model, weights, x, y)
        np.testing.assert_allclose(results[name, "stateless"], -ce, atol=1e-5)
    reference = results["softmax", "stateless"]
    for key, values in results.items():
        np.testing.assert_allclose(values, reference, atol=1e-5, err_msg=str(key))


def test_a_softmax_layer_head_is_read_as_probabilities_on_every_path():
    inputs = keras.Input((8, 8))
    h = keras.layers.Dense(4)(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Softmax()(h))
    x, y = data()
    weights = weights_for(model)
    _, ce = keras_reference(_as_dense_softmax(model), weights, x, y)
    for path in ("stateless", "fallback"):
        evaluator = BatchedEvaluator(model, x, y, batch_size=None, path=path)
        fits = evaluator.evaluate_population(list(weights))
        np.testing.assert_allclose([f[0] for f in fits], -ce, atol=1e-5)
        np.testing.assert_allclose(evaluator.predict(weights, x).sum(-1), 1.0, atol=1e-5)


def _as_dense_softmax(model):
    inputs = keras.Input((8, 8))
    out = keras.layers.Dense(4, activation="softmax")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, out)


@pytest.mark.parametrize("make", [lambda: build_mlp(MLP_PLAIN, (8, 8), 4), conv_model],
                         ids=["spec", "stateless"])
def test_the_population_buffer_is_read_in_place_and_equals_the_copy_path(make):
    model = make()
    x, y = data()
    evaluator = BatchedEvaluator(model, x, y, batch_size=16, skip_zero_inputs=False)
    values = weights_for(model, p=6)
    buffer = population_matrix(6, evaluator.size)  # laid out as the evaluator asked
    buffer[...] = values
    in_place = list(buffer)  # rows of one aligned array, as strategies hand them out
    copies = [row.copy() for row in values]  # what initRepeat / varAnd give
    if evaluator.path == "spec":  # rows (padded where the first layer is Dense), read whole
        shared = evaluator._padded(in_place)
        assert shared.shape == (6, evaluator.row_length) and np.shares_memory(shared, buffer)
        assert not np.shares_memory(evaluator._padded(copies), buffer)
    else:
        shared = evaluator._shared(in_place)
        assert shared is not None and np.shares_memory(shared, buffer)
        assert evaluator._shared(copies) is None
    a = evaluator.evaluate_population(in_place)
    b = evaluator.evaluate_population(copies)
    np.testing.assert_allclose([f[0] for f in a], [f[0] for f in b], atol=1e-6, rtol=0)
    # a chunk that starts at another row: in place (padded rows are aligned) or copied, same values
    c = evaluator.evaluate_population(in_place[1:])
    np.testing.assert_allclose([f[0] for f in c], [f[0] for f in b[1:]], atol=1e-6, rtol=0)
    buffer[0] *= 2  # the evaluator holds no stale copy of the buffer
    d = evaluator.evaluate_population(in_place)
    assert d[0][0] != pytest.approx(a[0][0], abs=1e-6) and d[1:] == a[1:]


@pytest.mark.parametrize("path", ["spec", "stateless", "fallback"])
def test_bad_weight_vectors_are_named_or_recorded_failures(path):
    inputs = keras.Input((8, 8))
    h = keras.layers.Dense(5, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(h))
    x, y = data()
    evaluator = BatchedEvaluator(model, x, y, batch_size=None, path=path)
    n = evaluator.size
    with pytest.raises(ValueError, match=f"have length {n + 1}, the model has {n} parameters"):
        evaluator.evaluate_population([np.zeros(n + 1, np.float32)])
    with pytest.raises(TypeError, match="got dtype int32"):
        evaluator.evaluate_population([np.zeros(n, np.float32), np.zeros(n, np.int32)])
    with pytest.raises(TypeError, match="got dtype bool"):
        evaluator(np.zeros(n, bool))
    weights = weights_for(model, p=4)
    clean = [f[0] for f in evaluator.evaluate_population(list(weights))]
    weights[1, 3] = np.nan
    weights[2, -1] = -np.inf  # an output bias: -inf in a logit
    weights[3, n - 30] = np.inf  # in the last kernel
    fits = evaluator.evaluate_population(list(weights))
    assert fits[0] == (pytest.approx(clean[0], abs=1e-6),)
    for fit in fits[1:]:
        assert is_failure(fit) and fit == (float("-inf"),) and fit.reason == "non-finite weights"
    # huge but finite weights are not called non-finite weights
    weights[1] = weights[0]
    weights[1, : n // 2] = 3e37
    fit = evaluator.evaluate_population(list(weights[:2]))[1]
    assert not is_failure(fit) or fit.reason == "non-finite network output"


@keras.saving.register_keras_serializable(package="deapnn_tests")
class NumpyScale(keras.layers.Layer):
    """A layer that runs only eagerly (it calls numpy on its input): it cannot be traced."""

    def call(self, inputs):
        return keras.ops.convert_to_tensor(np.asarray(inputs) * 2.0)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, inputs.dtype)


def test_a_layer_that_cannot_be_batched_is_named_then_evaluated_one_at_a_time():
    inputs = keras.Input((8, 8))
    h = keras.layers.Dense(5, activation="relu")(keras.layers.Flatten()(inputs))
    h = NumpyScale(name="eager_only")(h)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(h))
    x, y = data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluator = BatchedEvaluator(model, x, y, batch_size=None)
    messages = [str(w.message) for w in caught if "cannot be batched" in str(w.message)]
    assert len(messages) == 1 and "'eager_only' (NumpyScale)" in messages[0]
    assert evaluator.path == "fallback" and not evaluator.batched
    with warnings.catch_warnings(record=True) as caught:  # one time only
        warnings.simplefilter("always")
        BatchedEvaluator(model, x, y, batch_size=None)
    assert not [w for w in caught if "cannot be batched" in str(w.message)]
    with pytest.raises(ValueError, match="path='stateless' cannot take this model"):
        BatchedEvaluator(model, x, y, batch_size=None, path="stateless")
    weights = weights_for(model)
    _, ce = keras_reference(model, weights, x, y)
    np.testing.assert_allclose([f[0] for f in evaluator.evaluate_population(list(weights))], -ce,
                               atol=1e-5)


def test_path_is_validated():
    x, y = data()
    x = x[..., None]
    model = branching_model()
    with pytest.raises(ValueError, match="path must be one of .*got 'fast'"):
        BatchedEvaluator(model, x, y, path="fast")
    with pytest.raises(ValueError, match="path='spec' cannot take this model"):
        BatchedEvaluator(model, x, y, batch_size=None, path="spec")
