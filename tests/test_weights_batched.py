"""Population-batched evaluation (deapnn.weights.spec / graph / buffers / evaluator)."""

import pickle

import numpy as np
import pytest
from deap import algorithms, creator

import deapnn  # noqa: F401
from deapnn.core.failures import Failure, is_failure
from deapnn.parallel import SerialMap
from deapnn.weights.evaluator import BatchedEvaluator, evaluate_chunk
from deapnn.weights.spec import Conv2DSpec, DenseSpec, FlattenSpec, NetworkSpec, PoolSpec, ReshapeSpec
from deapnn.weights.codec import WeightCodec
from deapnn.weights.strategies import OpenAIES
from deapnn.weights.toolbox import make_weight_toolbox
from deapnn.weights.types import hall_of_fame

import keras  # noqa: E402  (a dependency: a missing Keras fails the tests)

CONV = NetworkSpec((10, 10), (
    ReshapeSpec((10, 10, 1)),
    Conv2DSpec(4, (3, 3), (1, 1), "valid", "relu"),
    PoolSpec("max", (2, 2)),
    Conv2DSpec(3, (3, 3), (1, 1), "same", "tanh"),
    PoolSpec("avg", (2, 2), padding="same"),
    FlattenSpec(),
    DenseSpec(6, "relu"),
    DenseSpec(5, "softmax"),
))
MLP = NetworkSpec.mlp((10, 10), [8, 7], 5, activation="tanh")


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 10, 10), dtype=np.float32), rng.integers(0, 5, n)


def population(size, p=4, seed=1, scale=0.5):
    return np.random.default_rng(seed).normal(0, scale, (p, size)).astype(np.float32)


@pytest.mark.parametrize("spec", [MLP, CONV], ids=["dense", "conv"])
def test_outputs_equal_keras_forward_pass(spec):
    model = spec.build_keras()
    codec = WeightCodec(model)
    assert codec.layout.shapes == spec.layout().shapes
    x, y = data()
    evaluator = BatchedEvaluator(model, x, y, batch_size=None)
    assert evaluator.batched and evaluator.spec == spec
    weights = population(codec.size)
    batched = evaluator.predict(weights, x)
    assert batched.shape == (4, len(x), 5)
    ce, acc, finite = evaluator.scores(weights, x, y)
    for i, vector in enumerate(weights):
        codec.decode(vector)
        keras_out = np.asarray(model(x, training=False))
        np.testing.assert_allclose(batched[i], keras_out, atol=1e-5, rtol=0)
        keras_ce = np.mean(keras.losses.sparse_categorical_crossentropy(y, keras_out))
        assert ce[i] == pytest.approx(keras_ce, abs=1e-4)
        assert acc[i] == pytest.approx(np.mean(keras_out.argmax(-1) == y))
    assert finite.all()


def sparse_data(n=40, seed=0):
    """Inputs whose border features are zero in every sample (like MNIST's blank pixels)."""
    x, y = data(n, seed)
    x[:, :2, :] = 0.0
    x[:, :, -3:] = 0.0
    return x, y


@pytest.mark.parametrize("spec", [MLP, NetworkSpec((10, 10), (FlattenSpec(), DenseSpec(6, "relu",
                                                                use_bias=False), DenseSpec(5)))],
                         ids=["merged-bias", "no-bias"])
def test_skipping_zero_inputs_gives_the_same_fitness_as_keras(spec):
    x, y = sparse_data()
    model = spec.build_keras()
    codec = WeightCodec(model)
    weights = population(codec.size)
    pruned = BatchedEvaluator(spec, x, y, batch_size=None)
    dense = BatchedEvaluator(spec, x, y, batch_size=None, skip_zero_inputs=False)
    chunks, keep = pruned._ensure_graph().prepare(x, y)
    assert pruned._graph.pruned and keep is not None
    assert len(keep.numpy()) == 8 * 7 + spec.layers[1].use_bias  # 56 live features (+ bias row)
    assert chunks[0][0].shape == (40, len(keep.numpy()))
    fits = pruned.evaluate_population(list(weights))
    assert [f[0] for f in fits] == pytest.approx(
        [f[0] for f in dense.evaluate_population(list(weights))], abs=1e-5)
    for vector, fit in zip(weights, fits):
        codec.decode(vector)
        logits_or_probs = np.asarray(model(x, training=False))
        expect = keras.losses.sparse_categorical_crossentropy(
            y, logits_or_probs, from_logits=spec.layers[-1].activation != "softmax")
        assert fit[0] == pytest.approx(-float(np.mean(expect)), abs=1e-4)


def test_a_non_finite_weight_on_a_skipped_input_is_still_a_failure():
    x, y = sparse_data()
    evaluator = BatchedEvaluator(MLP, x, y, batch_size=None)
    weights = population(evaluator.size, p=3)
    weights[1, 5] = np.inf  # kernel row 0 (feature (0, 0): zero in every sample), unit 5
    fits = evaluator.evaluate_population(list(weights))
    assert not is_failure(fits[0]) and not is_failure(fits[2])
    assert is_failure(fits[1]) and fits[1].reason == "non-finite weights"


def test_the_fused_head_falls_back_to_the_plain_graph_where_xla_fails():
    import tensorflow as tf

    x, y = data()
    evaluator = BatchedEvaluator(MLP, x, y, batch_size=None)
    weights = list(population(evaluator.size, p=3))
    evaluator._ensure_graph()._fused = None  # try XLA's fused head (off by default)
    fused = evaluator.evaluate_population(weights)
    assert evaluator._graph._fused is True  # XLA works on this machine

    def broken(*args):
        raise tf.errors.UnimplementedError(None, None, "no XLA here")

    evaluator._graph._fitness_fused = broken
    evaluator._graph._fused = None
    plain = evaluator.evaluate_population(weights)
    assert evaluator._graph._fused is False
    assert [f[0] for f in plain] == pytest.approx([f[0] for f in fused], abs=1e-6)


def test_a_branching_functional_model_is_batched_through_keras_itself():
    inputs = keras.Input((10, 10))
    flat = keras.layers.Flatten()(inputs)
    out = keras.layers.Dense(5, activation="softmax")(
        keras.layers.Concatenate()([keras.layers.Dense(3)(flat), keras.layers.Dense(2)(flat)]))
    model = keras.Model(inputs, out)
    x, y = data()
    evaluator = BatchedEvaluator(model, x, y, batch_size=16)
    assert evaluator.batched and evaluator.path == "stateless"
    weights = population(evaluator.size, p=2)
    fits = evaluator.evaluate_population(list(weights))
    xb, yb = evaluator.minibatch()
    codec = WeightCodec(model)
    for vector, fit in zip(weights, fits):
        codec.decode(vector)
        expect = -np.mean(keras.losses.sparse_categorical_crossentropy(yb, model(xb)))
        assert fit[0] == pytest.approx(expect, abs=1e-5)
    restored = pickle.loads(pickle.dumps(evaluator))
    assert [f[0] for f in restored.evaluate_population(list(weights))] == pytest.approx([f[0] for f in fits])


def test_non_finite_output_is_a_recorded_failure():
    x, y = data()
    evaluator = BatchedEvaluator(MLP, x, y, batch_size=20)
    weights = population(MLP.layout().size, p=3)
    weights[1, 0] = np.nan
    fits = evaluator.evaluate_population(list(weights))
    assert not is_failure(fits[0]) and not is_failure(fits[2])
    assert isinstance(fits[1], Failure) and fits[1] == (float("-inf"),)
    assert "non-finite" in fits[1].reason
    acc = BatchedEvaluator(MLP, x, y, batch_size=20, fitness="accuracy")
    assert acc.evaluate_population(list(weights))[1] == (0.0,)


def test_minibatches_resample_per_map_call_or_stay_fixed():
    x, y = data(100)
    mapper = SerialMap()
    resampling = BatchedEvaluator(MLP, x, y, batch_size=10, seed=3)
    fixed = BatchedEvaluator(MLP, x, y, batch_size=10, seed=3, resample=False)
    a0 = resampling.minibatch()[1].copy()
    ind = [creator.WeightVector(population(MLP.layout().size, p=1)[0])]
    mapper(resampling, ind)
    mapper(fixed, ind)
    assert resampling.step == 1 and fixed.step == 0
    assert not np.array_equal(resampling.minibatch()[1], a0)
    np.testing.assert_array_equal(resampling.minibatch(0)[1], a0)  # reproducible per step
    assert mapper.calls == 2 and mapper.individuals == 2


@pytest.mark.parametrize("path, skip, spec", [
    ("spec", True, MLP), ("spec", False, MLP), ("stateless", False, MLP), ("spec", False, CONV),
    ("stateless", False, CONV)], ids=["mlp-skip-zero-inputs", "mlp-dense", "mlp-stateless",
                                      "conv", "conv-stateless"])
def test_an_individual_scores_the_same_bits_in_any_chunk_and_from_buffer_or_copy(path, skip, spec):
    """Determinism across processes: SCOOP workers get other chunks than a serial run, and
    unpickled individuals instead of the population buffer; the fitness must not change."""
    from deapnn.weights.buffers import population_matrix

    x, y = sparse_data()
    evaluator = BatchedEvaluator(spec, x, y, batch_size=16, path=path, skip_zero_inputs=skip)
    weights = population(evaluator.size, p=11)
    buffer = population_matrix(*weights.shape)  # padded rows where the spec graph asks
    buffer[...] = weights
    whole = evaluator.evaluate_population(list(buffer), 2)
    assert evaluator.evaluate_population(list(buffer)[3:9], 2) == whole[3:9]  # in place too
    chunks = []
    for a in range(0, 11, 4):
        chunks += evaluator.evaluate_population([w.copy() for w in weights[a:a + 4]], 2)
    assert [f[0] for f in chunks] == [f[0] for f in whole]
    assert evaluator.evaluate_population([weights[5].copy()], 2)[0][0] == whole[5][0]
    if path == "spec":  # the per-individual XLA tail ran (no silent fall back to plain)
        assert evaluator._graph._fused is True


def test_chunked_map_matches_whole_population():
    x, y = data()
    evaluator = BatchedEvaluator(MLP, x, y, batch_size=16)
    weights = [creator.WeightVector(w) for w in population(MLP.layout().size, p=7)]
    whole = SerialMap()(evaluator, weights)
    evaluator.step = 0
    chunked = SerialMap(chunksize=3)(evaluator, weights)
    assert [f[0] for f in chunked] == pytest.approx([f[0] for f in whole])
    again = evaluate_chunk(pickle.loads(pickle.dumps(evaluator)), np.stack(weights), step=1)
    assert [f[0] for f in again] == pytest.approx([f[0] for f in whole])


def test_invalid_arguments_name_the_value():
    x, y = data()
    with pytest.raises(ValueError, match="'mse'"):
        BatchedEvaluator(MLP, x, y, fitness="mse")
    with pytest.raises(ValueError, match=r"batch_size must be in \[1, 40\], got 41"):
        BatchedEvaluator(MLP, x, y, batch_size=41)
    with pytest.raises(ValueError, match=r"x samples have shape \(5, 20\)"):
        BatchedEvaluator(MLP, x.reshape(40, 5, 20), y, batch_size=None)
    with pytest.raises(ValueError, match="have length 10, the model has 911 parameters"):
        BatchedEvaluator(MLP, x, y, batch_size=8).evaluate_population([np.zeros(10, np.float32)])
    with pytest.raises(ValueError, match="'swishy'"):
        DenseSpec(3, "swishy")


def test_ea_simple_and_ea_generate_update_run_unchanged(seeded):
    x, y = data(200)
    evaluator = BatchedEvaluator(MLP, x, y, batch_size=64)
    tb = make_weight_toolbox(MLP, evaluator, mate="average", sigma=0.2, per_layer=True,
                             rng=np.random.default_rng(0))
    assert "SerialMap" in repr(tb.map.func)  # possibly wrapped (make_weight_toolbox)
    hof = hall_of_fame(2)
    pop, log = algorithms.eaSimple(tb.population(n=20), tb, cxpb=0.5, mutpb=0.5, ngen=4,
                                   halloffame=hof, verbose=False)
    assert len(log) == 5 and all(ind.fitness.valid for ind in pop)
    assert tb.map.func.calls == 5 and evaluator.step == 5
    assert not np.array_equal(hof[0], hof[1])

    strategy = OpenAIES(tb.individual(), sigma=0.05, lambda_=10, rng=np.random.default_rng(0))
    tb.register("generate", strategy.generate, creator.WeightVector)
    tb.register("update", strategy.update)
    before = strategy.centroid.copy()
    pop, log = algorithms.eaGenerateUpdate(tb, ngen=3, halloffame=hof, verbose=False)
    assert len(log) == 3 and strategy.generation == 3 and len(pop) == 10
    assert not np.array_equal(before, strategy.centroid)


def test_the_serial_backend_map_gives_what_the_evaluator_gives_on_each_step():
    """The one batched path (deapnn.parallel's map) = evaluate_population on the next step, exactly
    (what the removed BatchedMap returned), failures included, whole or in chunks."""
    x, y = data(100)
    evaluator = BatchedEvaluator(MLP, x, y, batch_size=16, seed=3)
    reference = BatchedEvaluator(MLP, x, y, batch_size=16, seed=3)
    weights = [creator.WeightVector(w) for w in population(MLP.layout().size, p=9)]
    weights[3][0] = np.nan
    mapper = SerialMap()
    for step in (1, 2, 3):
        fits = mapper(evaluator, weights)
        expect = reference.evaluate_population(weights, step)
        assert evaluator.step == step
        assert [tuple(f) for f in fits] == [tuple(f) for f in expect]
        assert is_failure(fits[3]) and fits[3].reason == "non-finite weights"
        assert len({f[0] for f in fits}) == 9  # distinct individuals, distinct fitnesses
    evaluator.step = 0
    chunked = SerialMap(chunksize=4)(evaluator, weights)
    assert [tuple(f) for f in chunked] == [tuple(f) for f in reference.evaluate_population(weights, 1)]


@pytest.mark.parametrize("labels, message", [
    (lambda y: np.where(np.arange(len(y)) == 7, 5, y), r"labels outside \[0, 5\).*\[5\]"),
    (lambda y: np.where(np.arange(len(y)) == 2, -1, y), r"labels outside \[0, 5\).*\[-1\]"),
    (lambda y: y + 0.5, r"non-integer values \[0.5, 1.5"),
    (lambda y: y.astype(str), "integer class labels, got dtype <U"),
], ids=["too-large", "negative", "fractional", "strings"])
def test_labels_outside_the_classes_are_named(labels, message):
    x, y = data()
    with pytest.raises(ValueError, match=message):
        BatchedEvaluator(MLP, x, labels(y), batch_size=None)
    evaluator = BatchedEvaluator(MLP, x, y.astype(np.float64), batch_size=None)  # whole floats are labels
    np.testing.assert_array_equal(evaluator.y, y)
    with pytest.raises(ValueError, match=message):
        evaluator.scores(population(MLP.layout().size, p=1), x, labels(y))


def test_non_finite_inputs_and_empty_sample_sets_are_rejected():
    x, y = data()
    for bad in (np.nan, np.inf):
        xb = x.copy()
        xb[4, 2, 3] = bad
        with pytest.raises(ValueError, match=rf"x holds 1 non-finite values .*{bad!r}.* at index \(4, 2, 3\)"):
            BatchedEvaluator(MLP, xb, y)
    with pytest.raises(ValueError, match=r"x holds no samples \(shape \(0, 10, 10\)\)"):
        BatchedEvaluator(MLP, x[:0], y[:0], batch_size=None)
    evaluator = BatchedEvaluator(MLP, x, y, batch_size=None)
    with pytest.raises(ValueError, match="x holds no samples"):
        evaluator.scores(population(MLP.layout().size, p=1), x[:0], y[:0])
    with pytest.raises(ValueError, match="failure must be one number"):
        BatchedEvaluator(MLP, x, y, batch_size=None, failure=(0.0, 1.0))


def test_weight_vectors_of_another_length_or_dtype_are_named():
    x, y = data()
    evaluator = BatchedEvaluator(MLP, x, y, batch_size=8)
    with pytest.raises(ValueError, match="have length 10, the model has 911 parameters"):
        evaluator.evaluate_population(np.zeros((2, 10), np.float32))
    with pytest.raises(TypeError, match="floating-point numbers .*got dtype complex64"):
        evaluator.evaluate_population([np.zeros(911, np.complex64)])
    with pytest.raises(TypeError, match="floating-point numbers .*got dtype <U1"):
        evaluator.evaluate_population(np.full((1, 911), "a"))
    with pytest.raises(TypeError, match="got dtype int64"):  # never silently cast
        evaluator.evaluate_population([np.zeros(911, np.int64)])


def test_state_restores_the_minibatch_position_so_a_resumed_run_draws_the_same_batches():
    x, y = data(100)
    weights = [creator.WeightVector(w) for w in population(MLP.layout().size, p=3)]
    run = BatchedEvaluator(MLP, x, y, batch_size=10, seed=5)
    mapper = SerialMap()
    for _ in range(2):
        mapper(run, weights)
    saved = pickle.loads(pickle.dumps(run.state()))
    assert saved == {"step": 2}
    tail = [mapper(run, weights) for _ in range(2)]
    resumed = BatchedEvaluator(MLP, x, y, batch_size=10, seed=5)
    resumed.load_state(saved)
    assert [mapper(resumed, weights) for _ in range(2)] == tail
    fresh = BatchedEvaluator(MLP, x, y, batch_size=10, seed=5)  # not restored: other batches
    assert [mapper(fresh, weights) for _ in range(2)] != tail
    for bad in ({}, {"step": -1}, {"step": 1.5}, None):
        with pytest.raises(ValueError, match="state needs 'step'"):
            resumed.load_state(bad)


def test_fingerprint_changes_with_what_changes_a_fitness_and_nothing_else():
    x, y = data(100)
    base = dict(batch_size=10, seed=1, fitness="neg_cross_entropy")
    fp = BatchedEvaluator(MLP, x, y, **base).fingerprint()
    same = BatchedEvaluator(MLP, x.copy(), y.copy(), **base, chunk_size=2)
    same.step = 7
    assert same.fingerprint() == fp == pickle.loads(pickle.dumps(same)).fingerprint()
    x2 = x.copy()
    x2[0, 0, 0] += 1e-3
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 5
    changed = [
        BatchedEvaluator(MLP, x2, y, **base),
        BatchedEvaluator(MLP, x, y2, **base),
        BatchedEvaluator(MLP, x[:99], y[:99], **base),
        BatchedEvaluator(NetworkSpec.mlp((10, 10), [8, 6], 5, activation="tanh"), x, y, **base),
        BatchedEvaluator(MLP, x, y, **{**base, "batch_size": 11}),
        BatchedEvaluator(MLP, x, y, **{**base, "seed": 2}),
        BatchedEvaluator(MLP, x, y, **{**base, "fitness": "accuracy"}),
        BatchedEvaluator(MLP, x, y, **base, resample=False),
    ]
    prints = [e.fingerprint() for e in changed]
    assert fp not in prints and len(set(prints)) == len(prints)


@pytest.mark.parametrize("position", ["first kernel", "bias row", "last layer"])
def test_a_non_finite_weight_read_through_the_padded_view_fails_only_its_individual(position):
    """The first layer multiplies each whole padded row (later layers' weights included) by
    zero inputs: 0 * inf is NaN, but only in that individual's own outputs."""
    from deapnn.weights.buffers import population_matrix

    x, y = data()
    evaluator = BatchedEvaluator(MLP, x, y, batch_size=None, skip_zero_inputs=False)
    assert evaluator.row_length > evaluator.size  # padded rows
    weights = population(evaluator.size, p=5)
    clean = evaluator.evaluate_population(list(weights))
    index = {"first kernel": 3, "bias row": 100 * 8 + 2, "last layer": evaluator.size - 1}[position]
    buffer = population_matrix(*weights.shape)
    buffer[...] = weights
    buffer[2, index] = np.inf if position != "bias row" else np.nan
    fits = evaluator.evaluate_population(list(buffer))
    assert is_failure(fits[2]) and fits[2].reason == "non-finite weights"
    assert [f[0] for i, f in enumerate(fits) if i != 2] == [f[0] for i, f in enumerate(clean) if i != 2]
