"""Loading a dataset once per process, keyed by what the loader is, never by its repr.

Worker processes should receive a *loader* (e.g. ``functools.partial(load_mnist,
validation=5000)``) rather than arrays: :func:`get_dataset` loads it once per process. A loader
made of names and data only (a module-level function, a ``functools.partial`` of one over
arrays, numbers and strings) is keyed by its content fingerprint
(:func:`deapnn.core.fingerprint.fingerprint`: arrays by their bytes), so an unpickled copy in a
worker finds the dataset already loaded, and two partials over different arrays never share a
key even when their reprs are equal. Any other loader (a lambda, a nested function, a partial
over one) is keyed by its identity, and a reference to it is kept while its dataset is cached,
so its id cannot be reused by another object.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable

from deapnn.core.fingerprint import strict_fingerprint
from deapnn.data.dataset import Dataset, DatasetLike

__all__ = ["clear_datasets", "dataset_fingerprint", "get_dataset"]

_LOCK = threading.RLock()
#: ``{key: dataset}`` of the datasets loaded in this process.
_LOADED: dict[str, Dataset] = {}
#: ``{id(loader): (reference, key)}``: a fast path for a loader object seen before.
_SEEN: dict[int, tuple[Callable[[], Any], str]] = {}


def _forget(ident: int, key: str) -> None:
    with _LOCK:
        _SEEN.pop(ident, None)
        if key.startswith("id:"):
            _LOADED.pop(key, None)


def _key(loader: Callable[[], Dataset]) -> str:
    """The key of ``loader``, remembering it by id while the loader is alive."""
    ident = id(loader)
    seen = _SEEN.get(ident)
    if seen is not None and seen[0]() is loader:
        return seen[1]
    content = strict_fingerprint(loader)
    key = f"content:{content}" if content is not None else f"id:{ident}"
    try:
        ref: Callable[[], Any] = weakref.ref(loader, lambda _, i=ident, k=key: _forget(i, k))
    except TypeError:  # not weak-referenceable: keep the loader itself, so its id stays its own
        ref = (lambda obj: (lambda: obj))(loader)
    _SEEN[ident] = (ref, key)
    return key


def get_dataset(data: DatasetLike) -> Dataset:
    """Returns ``data`` itself, or the dataset its loader returns, loading once per process.

    Args:
        data: a :class:`Dataset`, or a zero-argument callable returning one (e.g.
            ``functools.partial(load_mnist, validation=5000)``). A loader is keyed by its content
            (function name and arguments, arrays by their bytes) when it is made of names and
            data only, otherwise by its identity; see :mod:`deapnn.data.registry`.

    Returns:
        The dataset.

    Raises:
        TypeError: If ``data`` is neither, or the loader does not return a :class:`Dataset`.
    """
    if isinstance(data, Dataset):
        return data
    if not callable(data):
        raise TypeError(f"expected a Dataset or a callable returning one, got {data!r}")
    with _LOCK:
        key = _key(data)
        dataset = _LOADED.get(key)
        if dataset is None:
            dataset = data()
            if not isinstance(dataset, Dataset):
                raise TypeError(f"dataset loader {data!r} returned {type(dataset).__name__}, "
                                "expected a deapnn.data.Dataset")
            _LOADED[key] = dataset
        return dataset


def dataset_fingerprint(data: DatasetLike) -> str:
    """sha256 hex digest of a dataset's content (every split's arrays, ``n_classes``,
    ``input_shape``), loading the loader (once per process) if ``data`` is one.

    Two datasets with equal arrays have equal fingerprints whatever their loaders or names;
    any different array or split gives a different one.
    """
    return get_dataset(data).fingerprint()


def clear_datasets() -> None:
    """Forget every dataset loaded in this process (they are loaded again when next asked for)."""
    with _LOCK:
        _LOADED.clear()
        _SEEN.clear()
