"""Stable fingerprints: hex digests that are equal exactly when the things they describe are.

A fingerprint names an evaluator (or a dataset, a key, a setting) across processes and Python
runs, so the evaluation store can tell which stored results belong to which evaluator. It never
uses ``hash()`` or ``id()``; it hashes a canonical byte encoding:

* ``None``, bools, ints, floats (by ``repr``, so ``0.1`` and ``-0.0`` are exact), complex, str,
  bytes: tagged and length-prefixed, so ``1``, ``1.0``, ``True`` and ``"1"`` all differ;
* tuples and lists (told apart), dicts (order-independent: items sorted by their encoding),
  sets and frozensets (sorted);
* numpy arrays by dtype, shape and bytes; numpy scalars by dtype and bytes;
* an object with a ``fingerprint()`` method by what that method returns (a str; at the top
  level, ``fingerprint(obj) == obj.fingerprint()``);
* ``functools.partial`` by its function, arguments and keywords;
* module-level functions and classes by qualified name; bound methods by their object and name;
  lambdas and nested functions by their code, defaults and closure values;
* anything else by what pickling it describes (its ``__reduce_ex__``: class, arguments, state),
  and a hash of its pickle when that fails.

:func:`encode_key` / :func:`decode_key` are the exact, reversible subset used for evaluation keys
(tuples of str/int/float/bool/None/bytes and numpy-array keys ``(dtype, shape, bytes)``), and
:func:`key_digest` is the sha256 of that encoding: the store's key column.
"""

from __future__ import annotations

import copyreg
import functools
import hashlib
import importlib
import pickle
import sys
import types
from typing import Any, Hashable

import numpy as np

__all__ = ["decode_key", "encode_key", "encode_key_digest", "fingerprint", "key_digest",
           "strict_fingerprint"]

_MAX_DEPTH = 200


class _Unnamed(Exception):
    """Raised in strict mode when an object can only be encoded by its code or its pickle."""


def fingerprint(obj: Any) -> str:
    """A sha256 hex digest of ``obj`` that is stable across processes and Python runs.

    Args:
        obj: Anything; see the module docstring for how each kind of object is encoded.
            Objects may define ``fingerprint() -> str`` to say what identifies them (an evaluator
            leaves out its worker count and verbosity, a dataset hashes its arrays).

    Returns:
        64 hex characters.

    Raises:
        TypeError: If ``obj`` (or something inside it) can be neither encoded nor pickled.

    Example:
        >>> fingerprint({"a": 1, "b": 2.5}) == fingerprint({"b": 2.5, "a": 1})
        True
    """
    own = _own_fingerprint(obj)
    if own is not None:
        return own
    digest = hashlib.sha256()
    _Encoder(digest.update, strict=False).encode(obj)
    return digest.hexdigest()


def _own_fingerprint(obj: Any) -> str | None:
    """``obj.fingerprint()`` when ``obj`` (not a class) defines it, else None."""
    own = getattr(obj, "fingerprint", None)
    if not callable(own) or isinstance(obj, type):
        return None
    value = own()
    if not isinstance(value, str):
        raise TypeError(f"{type(obj).__name__}.fingerprint() must return a str, got {value!r}")
    return value


def strict_fingerprint(obj: Any) -> str | None:
    """:func:`fingerprint` when ``obj`` is described by names and data only, else ``None``.

    ``None`` means ``obj`` (or something inside it) is a lambda, a nested function or an object
    only its pickle describes: things whose identity is safer than their content.
    """
    digest = hashlib.sha256()
    try:
        _Encoder(digest.update, strict=True).encode(obj)
    except _Unnamed:
        return None
    return digest.hexdigest()


def encode_key(key: Hashable) -> bytes:
    """The exact, reversible byte encoding of an evaluation key.

    Args:
        key: ``None``, a bool, int, float, str or bytes, or a tuple of these (nested tuples too).
            numpy scalars are taken as the Python scalar they equal; a numpy array as
            ``(dtype.str, shape, bytes)``, the form :func:`deapnn.core.cache.default_key` gives.

    Returns:
        Bytes that :func:`decode_key` turns back into an equal key.

    Raises:
        TypeError: For a key holding anything else.
    """
    parts: list[bytes] = []
    _write_key(parts.append, key, 0)
    return b"".join(parts)


def key_digest(key: Hashable) -> str:
    """sha256 hex digest of :func:`encode_key` (collisions are impossible in practice)."""
    return encode_key_digest(key, 0)[0]


def encode_key_digest(key: Hashable, max_size: int) -> tuple[str, bytes | None]:
    """``(key_digest(key), encode_key(key))`` in one pass, the encoding only when it is at most
    ``max_size`` bytes long (None otherwise: a weight vector is not copied again)."""
    parts: list[bytes] = []
    _write_key(parts.append, key, 0)
    digest = hashlib.sha256()
    size = 0
    for part in parts:
        digest.update(part)
        size += len(part)
    return digest.hexdigest(), (b"".join(parts) if size <= max_size else None)


def decode_key(data: bytes) -> Hashable:
    """The key :func:`encode_key` encoded."""
    value, end = _read_key(memoryview(data), 0)
    if end != len(data):
        raise ValueError(f"{len(data) - end} trailing bytes after an encoded key")
    return value


# ----------------------------------------------------------------------------- key encoding
def _length(n: int) -> bytes:
    return str(n).encode() + b":"


def _write_key(write: Any, key: Any, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise TypeError("key nested too deeply")
    if key is None:
        write(b"N")
    elif key is True or key is False or isinstance(key, np.bool_):
        write(b"T" if key else b"F")
    elif isinstance(key, (int, np.integer)):
        text = str(int(key)).encode()
        write(b"i" + _length(len(text)) + text)
    elif isinstance(key, (float, np.floating)):
        text = repr(float(key)).encode()
        write(b"f" + _length(len(text)) + text)
    elif isinstance(key, str):
        data = key.encode("utf-8", "surrogatepass")
        write(b"s" + _length(len(data)) + data)
    elif isinstance(key, (bytes, bytearray, memoryview)):
        data = bytes(key)
        write(b"b" + _length(len(data)))
        write(data)  # written on its own: a weight vector's bytes are not copied
    elif isinstance(key, tuple):
        write(b"(" + _length(len(key)))
        for item in key:
            _write_key(write, item, depth + 1)
    elif isinstance(key, np.ndarray):
        _write_key(write, (key.dtype.str, tuple(key.shape), np.ascontiguousarray(key).tobytes()), depth)
    else:
        raise TypeError(
            f"an evaluation key must be a tuple of str/int/float/bool/None/bytes, got "
            f"{type(key).__name__} {key!r:.80}"
        )


def _read_length(data: memoryview, pos: int) -> tuple[int, int]:
    end = pos
    while data[end] != 0x3A:  # ":"
        end += 1
    return int(bytes(data[pos:end])), end + 1


def _read_key(data: memoryview, pos: int) -> tuple[Any, int]:
    tag = bytes(data[pos:pos + 1])
    pos += 1
    if tag == b"N":
        return None, pos
    if tag in (b"T", b"F"):
        return tag == b"T", pos
    if tag == b"(":
        n, pos = _read_length(data, pos)
        items = []
        for _ in range(n):
            item, pos = _read_key(data, pos)
            items.append(item)
        return tuple(items), pos
    if tag in (b"i", b"f", b"s", b"b"):
        n, pos = _read_length(data, pos)
        raw = bytes(data[pos:pos + n])
        if len(raw) != n:
            raise ValueError("truncated key encoding")
        pos += n
        if tag == b"i":
            return int(raw), pos
        if tag == b"f":
            return float(raw), pos
        if tag == b"s":
            return raw.decode("utf-8", "surrogatepass"), pos
        return raw, pos
    raise ValueError(f"unknown tag {tag!r} in a key encoding")


# --------------------------------------------------------------------------- fingerprints
def _is_named(obj: Any) -> bool:
    """Whether ``obj`` (a function or class) is reachable under its module and qualified name."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return False
    try:
        found: Any = sys.modules.get(module) or importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception:  # noqa: BLE001 - anything unreachable is simply not named
        return False
    return found is obj


class _Encoder:
    def __init__(self, write: Any, strict: bool) -> None:
        self.write = write
        self.strict = strict
        self.active: set[int] = set()  # ids on the current path (cycle detection only)

    def text(self, tag: bytes, text: str) -> None:
        data = text.encode("utf-8", "surrogatepass")
        self.write(tag + _length(len(data)) + data)

    def encode(self, obj: Any) -> None:
        if len(self.active) > _MAX_DEPTH:
            raise TypeError("object nested too deeply to fingerprint")
        write = self.write
        # Scalars first (numpy scalars by dtype: np.float32(0.1) differs from 0.1).
        if obj is None:
            write(b"N")
        elif obj is True or obj is False:
            write(b"T" if obj else b"F")
        elif isinstance(obj, np.generic):
            self.text(b"g", obj.dtype.str)
            data = obj.tobytes()
            write(_length(len(data)) + data)
        elif isinstance(obj, int) and type(obj) in (int, bool):
            self.text(b"i", str(obj))
        elif type(obj) is float:
            self.text(b"f", repr(obj))
        elif type(obj) is complex:
            self.text(b"c", repr(obj))
        elif type(obj) is str:
            self.text(b"s", obj)
        elif type(obj) in (bytes, bytearray):
            write(b"b" + _length(len(obj)) + bytes(obj))
        elif isinstance(obj, np.ndarray) and obj.dtype != object:
            self.text(b"a", obj.dtype.str)
            self.container(b"(", obj.shape)
            data = np.ascontiguousarray(obj).tobytes()
            write(_length(len(data)) + data)
        else:
            key = id(obj)
            if key in self.active:
                raise TypeError(f"cannot fingerprint a self-referencing {type(obj).__name__}")
            self.active.add(key)
            try:
                self.compound(obj)
            finally:
                self.active.discard(key)

    def container(self, tag: bytes, items: Any) -> None:
        items = list(items)
        self.write(tag + _length(len(items)))
        for item in items:
            self.encode(item)

    def sorted_items(self, tag: bytes, items: Any) -> None:
        encoded = []
        for item in items:
            parts: list[bytes] = []
            sub = _Encoder(parts.append, self.strict)
            sub.active = self.active  # shared: cycles through a dict or set are caught too
            sub.encode(item)
            encoded.append(b"".join(parts))
        encoded.sort()
        self.write(tag + _length(len(encoded)))
        for data in encoded:
            self.write(_length(len(data)) + data)

    def compound(self, obj: Any) -> None:
        own = _own_fingerprint(obj)
        if own is not None:
            self.text(b"P", own)
        elif type(obj) is tuple:
            self.container(b"(", obj)
        elif type(obj) is list:
            self.container(b"[", obj)
        elif type(obj) is dict:
            self.sorted_items(b"{", obj.items())
        elif type(obj) in (set, frozenset):
            self.sorted_items(b"S", obj)
        elif isinstance(obj, functools.partial):
            self.write(b"p")
            self.encode(obj.func)
            self.container(b"(", obj.args)
            self.sorted_items(b"{", (obj.keywords or {}).items())
        elif isinstance(obj, types.MethodType):
            self.text(b"m", obj.__func__.__name__)
            self.encode(obj.__self__)
        elif isinstance(obj, (types.FunctionType, types.BuiltinFunctionType, type)) \
                or (callable(obj) and hasattr(obj, "__qualname__") and _is_named(obj)):
            if _is_named(obj):
                self.text(b"n", f"{obj.__module__}.{obj.__qualname__}")
            elif isinstance(obj, types.FunctionType):
                if self.strict:
                    raise _Unnamed(obj)
                self.code(obj)
            else:
                self.pickled(obj)
        elif isinstance(obj, types.ModuleType):
            self.text(b"M", obj.__name__)
        else:
            self.reduced(obj)

    def code(self, func: types.FunctionType) -> None:
        """A lambda or nested function: its code, defaults and closure values."""
        self.text(b"L", f"{func.__module__}.{func.__qualname__}")
        self.code_object(func.__code__)
        self.encode(func.__defaults__)
        self.sorted_items(b"{", (func.__kwdefaults__ or {}).items())
        cells = func.__closure__ or ()
        self.container(b"(", [cell.cell_contents if _has_contents(cell) else None for cell in cells])

    def code_object(self, code: types.CodeType) -> None:
        self.write(b"C" + _length(len(code.co_code)) + code.co_code)
        self.container(b"(", code.co_names)
        self.write(b"K" + _length(len(code.co_consts)))
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.code_object(const)
            else:
                self.encode(const)

    def reduced(self, obj: Any) -> None:
        """What pickling ``obj`` would describe: its reconstructor, arguments and state."""
        try:
            reduced = obj.__reduce_ex__(4)
        except Exception:  # noqa: BLE001 - fall back to the pickle (which raises TypeError)
            reduced = None
        if isinstance(reduced, str):  # pickled by reference: a module-level name
            self.text(b"n", f"{getattr(obj, '__module__', None) or type(obj).__module__}.{reduced}")
            return
        if not isinstance(reduced, tuple) or len(reduced) < 2:
            self.pickled(obj)
            return
        func, args = reduced[0], reduced[1]
        state = reduced[2] if len(reduced) > 2 else None
        listitems = list(reduced[3]) if len(reduced) > 3 and reduced[3] is not None else None
        dictitems = list(reduced[4]) if len(reduced) > 4 and reduced[4] is not None else None
        parts: list[bytes] = []
        sub = _Encoder(parts.append, self.strict)
        sub.active = self.active
        sub.text(b"R", f"{type(obj).__module__}.{type(obj).__qualname__}")
        try:
            if func in (copyreg.__newobj__, copyreg._reconstructor):  # type: ignore[attr-defined]
                sub.encode(args[0] if args else None)  # the class: by name
                args = args[1:]
            else:
                sub.encode(func)
            sub.container(b"(", args)
            sub.encode(state)
            sub.encode(listitems)
            sub.sorted_items(b"{", dictitems or [])
        except TypeError:  # e.g. a cycle through its state: what its pickle says, then
            self.pickled(obj)
            return
        for part in parts:
            self.write(part)

    def pickled(self, obj: Any) -> None:
        if self.strict:
            raise _Unnamed(obj)
        try:
            data = pickle.dumps(obj, protocol=4)
        except Exception as exc:  # noqa: BLE001 - reported as a TypeError naming the object
            raise TypeError(
                f"cannot fingerprint {type(obj).__name__} {obj!r:.80}: it has no fingerprint() "
                f"and cannot be pickled ({exc})"
            ) from exc
        self.write(b"X" + _length(len(data)) + data)


def _has_contents(cell: Any) -> bool:
    try:
        _ = cell.cell_contents
    except ValueError:
        return False
    return True
