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

__all__ = ["aligned_blocks", "ALIGN"]

ALIGN = 64  # bytes: TensorFlow's EIGEN_MAXALIGN_BYTES on x86-64


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
