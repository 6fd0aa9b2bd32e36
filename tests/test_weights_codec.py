"""Flat weight vectors <-> Keras models (deapnn.weights.codec)."""

import pickle

import numpy as np
import pytest

from deapnn.weights.codec import WeightCodec, WeightLayout, variable_role

import keras  # noqa: E402  (a dependency: a missing Keras fails the tests)


def dense_model():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"),
                             keras.layers.Dense(3, activation="softmax")])


def conv_model():
    return keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Conv2D(3, 3, activation="relu"),
                             keras.layers.BatchNormalization(), keras.layers.MaxPooling2D(),
                             keras.layers.Flatten(), keras.layers.Dense(5)])


@pytest.mark.parametrize("make", [dense_model, conv_model])
def test_round_trip(make):
    model = make()
    codec = WeightCodec(model)
    assert codec.size == model.count_params()
    vector = codec.encode()
    assert vector.dtype == np.float32 and vector.shape == (codec.size,)
    for got, want in zip(codec.unflatten(vector), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    new = np.random.default_rng(0).normal(size=codec.size).astype(np.float32)
    codec.decode(new)
    np.testing.assert_array_equal(codec.encode(), new)
    np.testing.assert_array_equal(np.concatenate([w.ravel() for w in model.get_weights()]), new)


def test_layout_order_shapes_and_layers():
    layout = WeightCodec(dense_model()).layout
    assert layout.shapes == ((6, 4), (4,), (4, 3), (3,))
    assert layout.roles == ("kernel", "bias", "kernel", "bias")
    assert len(layout.layer_names()) == 2 and layout.size == 6 * 4 + 4 + 4 * 3 + 3
    assert [s.stop - s.start for s in layout.layer_slices().values()] == [28, 15]
    assert layout.fans()[:2] == [(6, 4), (6, 4)]
    assert pickle.loads(pickle.dumps(layout)) == layout
    assert WeightLayout.from_dict(layout.to_dict()) == layout


def test_trainable_only_skips_batchnorm_statistics():
    model = conv_model()
    full, trainable = WeightCodec(model), WeightCodec(model, trainable_only=True)
    assert trainable.size == full.size - 2 * 3  # moving mean and variance
    before = model.get_weights()
    vector = np.full(trainable.size, 0.5, np.float32)
    trainable.decode(vector)
    np.testing.assert_array_equal(trainable.encode(), vector)
    moving = [i for i, v in enumerate(model.weights) if not v.trainable]
    for i in moving:
        np.testing.assert_array_equal(model.get_weights()[i], before[i])


def test_wrong_length_dtype_shape_are_clear_errors():
    codec = WeightCodec(dense_model())
    with pytest.raises(ValueError, match=r"length 5, the model has 43 parameters"):
        codec.decode(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"must be 1-D of length 43, got shape \(43, 1\)"):
        codec.decode(np.zeros((43, 1), np.float32))
    with pytest.raises(TypeError, match="must be numeric"):
        codec.decode(np.array(["a"] * 43))
    with pytest.raises(ValueError, match=r"expects shape \(6, 4\)"):
        codec.layout.join([np.zeros((4, 6))] + [np.zeros(s) for s in codec.layout.shapes[1:]])


def test_unbuilt_model_is_rejected():
    model = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="has no weights"):
        WeightCodec(model)


def test_layout_from_shapes_and_init_scale():
    layout = WeightLayout.from_shapes([(784, 32), (32,), (32, 10), (10,)])
    assert layout.names == ("layer_0/kernel", "layer_0/bias", "layer_1/kernel", "layer_1/bias")
    std = layout.init_std("glorot")
    assert std.shape == (layout.size,)
    assert std[0] == pytest.approx(np.sqrt(2 / (784 + 32))) and std[784 * 32] == 0.0
    assert layout.init_std("he", biases=True)[784 * 32] == pytest.approx(np.sqrt(2 / 784))
    with pytest.raises(ValueError, match="'lecun'"):
        layout.init_std("lecun")
    assert variable_role("seq/dense/kernel") == "kernel" and variable_role("bn/gamma") == "other"
