"""Reusable, aligned weight buffers the batched graph reads without a copy.

TensorFlow copies every numpy array it is given, except through DLPack, which in turn aborts the
process on a buffer that is not 64-byte aligned. :func:`aligned_blocks` allocates the float32
blocks a population is copied into once per call (one block per graph input, see
:func:`deapnn.weights.graph.weight_plan`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy

__all__ = ["aligned_blocks", "aligned_matrix", "shared_matrix", "ALIGN"]

ALIGN = 64  # bytes: TensorFlow's EIGEN_MAXALIGN_BYTES on x86-64


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
    one length ``n`` lying one after the other, in order, in the memory of one array (rows
    ``i .. i+P-1`` of a matrix such as :func:`aligned_matrix` returns). Anything else, e.g. a
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
    row_bytes, start = n * 4, first.ctypes.data
    for i, ind in enumerate(individuals):
        if (not isinstance(ind, numpy.ndarray) or _owner(ind) is not base or ind.ndim != 1
                or ind.shape[0] != n or ind.dtype != numpy.float32
                or not ind.flags.c_contiguous or ind.ctypes.data != start + i * row_bytes):
            return None
    lo = base.ctypes.data
    if start < lo or start + len(individuals) * row_bytes > lo + base.nbytes:
        return None
    matrix = numpy.lib.stride_tricks.as_strided(
        first.view(numpy.ndarray), shape=(len(individuals), n), strides=(row_bytes, 4),
        writeable=False)
    return matrix


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


def _owner(array: numpy.ndarray) -> numpy.ndarray | None:
    """The array that owns ``array``'s memory (following ``.base``), or ``None`` if it owns it."""
    owner = None
    while isinstance(array.base, numpy.ndarray):
        owner = array = array.base
    return owner
