"""Reusable, aligned weight buffers the batched graph reads without a copy.

TensorFlow copies every numpy array it is given, except through DLPack, which in turn aborts the
process on a buffer that is not 64-byte aligned. :func:`aligned_matrix` allocates such a float32
matrix; :func:`population_matrix` allocates the population buffer that strategies hand out: its
rows (the individuals, 1-D views of length ``n``) lie ``row_length(n)`` floats apart, padded
with zeros to the stride the evaluator that reads them asked for (:func:`prefer_row_length`).
The spec graph reads the first Dense kernel of every individual straight out of such padded rows
(:class:`deapnn.weights.graph.BatchedGraph`), so the population is not copied at all.
"""

from __future__ import annotations

import ctypes
import math
from typing import Sequence

import numpy

__all__ = ["aligned_blocks", "aligned_matrix", "population_matrix", "shared_matrix", "padded_matrix",
           "prefer_row_length", "row_length", "ALIGN"]

ALIGN = 64  # bytes: TensorFlow's EIGEN_MAXALIGN_BYTES on x86-64
_ROW_LENGTHS: dict[int, int] = {}  # n -> row stride in floats, see prefer_row_length


def prefer_row_length(n: int, length: int) -> None:
    """Ask :func:`population_matrix` for rows of ``n`` weights to lie ``length`` floats apart.

    A layout hint of this process, set by the evaluator that reads such vectors (its spec graph
    reads padded rows without a copy; other rows are copied once per call, with the same
    result): the last request for ``n`` wins, and ``length == n`` withdraws it.

    Raises:
        ValueError: If ``length < n`` or ``length`` is not a multiple of 16 floats (64 bytes).
    """
    if n < 1 or length < n or (length != n and length % (ALIGN // 4)):
        raise ValueError(f"prefer_row_length needs n >= 1 and length >= n, a multiple of "
                         f"{ALIGN // 4}, got n={n!r}, length={length!r}")
    if length == n:
        _ROW_LENGTHS.pop(int(n), None)
    else:
        _ROW_LENGTHS[int(n)] = int(length)


def row_length(n: int) -> int:
    """The row stride, in floats, :func:`population_matrix` uses for rows of ``n`` weights."""
    return _ROW_LENGTHS.get(int(n), n)


def population_matrix(rows: int, n: int, length: int | None = None) -> numpy.ndarray:
    """A new ``(rows, n)`` float32 population buffer: each row C-contiguous, rows
    ``length`` floats apart (default :func:`row_length` ``(n)``), 64-byte aligned, the padding
    between rows zero, the ``n`` values uninitialised.

    With ``length == n`` this is :func:`aligned_matrix`. Otherwise the matrix is a strided view
    (not C-contiguous): fill it through numpy operations with ``out=`` or slicing, not
    ``Generator.standard_normal(out=...)``, which needs contiguous memory.
    """
    length = row_length(n) if length is None else int(length)
    if rows < 0 or n < 0 or length < n:
        raise ValueError(f"population_matrix needs rows >= 0, n >= 0 and length >= n, got "
                         f"({rows}, {n}, {length})")
    if length == n:
        return aligned_matrix(rows, n)
    full = aligned_blocks([(length,)], rows)[0]
    full[:, n:] = 0.0
    return full[:, :n]


def aligned_matrix(rows: int, n: int) -> numpy.ndarray:
    """A new float32 ``(rows, n)`` matrix, C-contiguous and 64-byte aligned (uninitialised).

    Strategies fill it and hand its rows out as individuals (the population buffer), which
    :func:`shared_matrix` recognises so the evaluator reads the population without a copy.
    """
    if rows < 0 or n < 0:
        raise ValueError(f"aligned_matrix needs rows >= 0 and n >= 0, got ({rows}, {n})")
    return aligned_blocks([(n,)], rows)[0]


def shared_matrix(individuals: Sequence[numpy.ndarray]) -> numpy.ndarray | None:
    """The ``(P, n)`` float32 matrix whose consecutive rows *are* ``individuals``, or ``None``.

    Returns a view (no copy) when the ``P`` individuals are 1-D C-contiguous float32 vectors of
    one length ``n`` lying one after the other at equal distances (``n`` floats or more), in
    order, in the memory of one array (rows ``i .. i+P-1`` of a matrix such as
    :func:`aligned_matrix` or :func:`population_matrix` returns). Anything else, e.g. a
    population of separately allocated vectors built by DEAP's ``initRepeat`` or cloned by
    ``varAnd``, gives ``None``: the caller copies.
    """
    if len(individuals) == 0:
        return None
    first = individuals[0]
    if not isinstance(first, numpy.ndarray) or first.ndim != 1 or first.dtype != numpy.float32:
        return None
    base, n = _owner(first), first.shape[0]
    if base is None or n == 0:
        return None
    start = _address(first)
    row_bytes = n * 4
    if len(individuals) > 1 and isinstance(individuals[1], numpy.ndarray):
        row_bytes = max(row_bytes, _address(individuals[1]) - start)
        if row_bytes % 4:
            return None
    dtype, shape, strides, address, ndarray = first.dtype, (n,), (4,), start, numpy.ndarray
    for ind in individuals:  # lean: this runs for every individual of every call
        if (not isinstance(ind, ndarray) or ind.shape != shape or ind.strides != strides
                or (ind.dtype is not dtype and ind.dtype != dtype)
                or _address(ind) != address):
            return None
        parent = ind.base  # the owner, usually one or two steps up (rows_as_individuals)
        if parent is not base and getattr(parent, "base", None) is not base \
                and _owner(ind) is not base:
            return None
        address += row_bytes
    lo = base.ctypes.data
    if start < lo or start + (len(individuals) - 1) * row_bytes + n * 4 > lo + base.nbytes:
        return None
    matrix = numpy.lib.stride_tricks.as_strided(
        first.view(numpy.ndarray), shape=(len(individuals), n), strides=(row_bytes, 4),
        writeable=False)
    return matrix


def padded_matrix(individuals: Sequence[numpy.ndarray], length: int) -> numpy.ndarray | None:
    """The ``(P, length)`` float32 matrix of the rows of ``individuals`` with their padding, or
    ``None``: a writable view (no copy) when :func:`shared_matrix` recognises them as rows
    ``length`` floats apart, 64-byte aligned, whose padding lies inside the array, else ``None``.
    """
    matrix = shared_matrix(individuals)
    if matrix is None or matrix.ctypes.data % ALIGN:
        return None
    first = individuals[0]
    rows = matrix.shape[0]
    if (rows > 1 and matrix.strides[0] != length * 4) or not first.flags.writeable:
        return None
    base = _owner(first)
    if matrix.ctypes.data + rows * length * 4 > base.ctypes.data + base.nbytes:
        return None
    return numpy.lib.stride_tricks.as_strided(numpy.asarray(first).view(numpy.ndarray),
                                              shape=(rows, length), strides=(length * 4, 4))


def aligned_blocks(shapes: Sequence[tuple[int, ...]], rows: int) -> list[numpy.ndarray]:
    """Float32 arrays ``(rows, *shape)``, one per shape, each C-contiguous and 64-byte aligned.

    They are views of one buffer (over-allocated as bytes, then offset to an aligned address).
    """
    step = ALIGN // 4
    sizes = [rows * math.prod(shape) for shape in shapes]
    starts, total = [], 0
    for size in sizes:
        starts.append(total)
        total += -(-size // step) * step
    raw = numpy.empty(total * 4 + ALIGN, numpy.uint8)
    skip = -raw.ctypes.data % ALIGN
    flat = raw[skip : skip + total * 4].view(numpy.float32)
    return [flat[a : a + n].reshape(rows, *shape) for a, n, shape in zip(starts, sizes, shapes)]


_CHAR = ctypes.c_char


def _address(array: numpy.ndarray) -> int:
    """The address of ``array``'s first element (``array.ctypes.data``, 8x faster where the
    buffer is writable: this is checked for every individual of every evaluation)."""
    try:
        return ctypes.addressof(_CHAR.from_buffer(array))
    except (TypeError, ValueError, BufferError):
        return array.ctypes.data


def _owner(array: numpy.ndarray) -> numpy.ndarray | None:
    """The array that owns ``array``'s memory (following ``.base``), or ``None`` if it owns it."""
    owner = None
    while isinstance(array.base, numpy.ndarray):
        owner = array = array.base
    return owner
