"""The DEAP creator type for flat weight vectors: ``creator.WeightVector``.

DEAP's "Inheriting from Numpy" tutorial builds individuals with ``creator.create("Individual",
numpy.ndarray, ...)``. DEAP then swaps in its own ndarray subclass whose constructor goes through
``list(iterable)`` and whose pickle is a list of Python floats, which costs ~10 ms and ~2 MB per
100,000 weights. :class:`WeightArray` keeps the tutorial's semantics (deep copies carry a separate
fitness) but constructs, copies and pickles as one float32 buffer, so individuals cross process
boundaries cheaply. The pitfalls the tutorial lists still hold and are handled elsewhere:

* slices are views, so crossover operators copy (see :mod:`deapnn.weights.operators`);
* ``a == b`` is elementwise, so a ``HallOfFame`` needs ``similar=numpy.array_equal``
  (:func:`hall_of_fame` builds one).

The type is created at import time (``import deapnn`` imports this module), so worker processes can
unpickle individuals.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy
from deap import creator, tools

import deapnn.core.types as _types

__all__ = ["WeightArray", "WeightVector", "hall_of_fame", "as_matrix", "vector_rows", "rows_as_individuals"]


class WeightArray(numpy.ndarray):
    """A 1-D float32 ndarray that deep-copies and pickles its ``__dict__`` (the fitness).

    ``WeightArray(values)`` copies ``values`` into a new contiguous float32 vector.
    """

    def __new__(cls, values: Any = ()) -> "WeightArray":
        arr = numpy.array(values, dtype=numpy.float32, copy=True)
        if arr.ndim != 1:
            raise ValueError(f"{cls.__name__} needs a 1-D vector, got shape {arr.shape}")
        return arr.view(cls)

    def __deepcopy__(self, memo: dict) -> "WeightArray":
        copy_ = numpy.ndarray.copy(self)
        memo[id(self)] = copy_
        copy_.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return copy_

    def __reduce__(self):
        return (self.__class__, (numpy.asarray(self),), self.__dict__)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


WeightVector = _types.define("WeightVector", WeightArray, fitness=creator.FitnessMax)


def hall_of_fame(maxsize: int) -> tools.HallOfFame:
    """A ``HallOfFame`` that compares weight vectors with ``numpy.array_equal``.

    Args:
        maxsize: Number of individuals to keep.

    Returns:
        ``tools.HallOfFame(maxsize, similar=numpy.array_equal)``; the default ``operator.eq``
        would compare element by element and fail on arrays.
    """
    return tools.HallOfFame(maxsize, similar=numpy.array_equal)


def as_matrix(individuals: Any) -> numpy.ndarray:
    """Stack individuals into a new C-contiguous float32 matrix ``(len(individuals), size)``."""
    if isinstance(individuals, numpy.ndarray) and individuals.ndim == 2:
        return numpy.ascontiguousarray(individuals, dtype=numpy.float32)
    return numpy.stack(vector_rows(individuals)).astype(numpy.float32, copy=False)


def vector_rows(individuals: Any) -> list[numpy.ndarray]:
    """The individuals as a list of 1-D arrays of one length (checked, not copied)."""
    rows = [numpy.asarray(ind) for ind in individuals]
    if not rows:
        raise ValueError("as_matrix: no individuals given")
    lengths = {row.shape for row in rows}
    if len(lengths) != 1 or rows[0].ndim != 1:
        raise ValueError(f"as_matrix: individuals must be 1-D of one length, got shapes {lengths}")
    return rows


def rows_as_individuals(matrix: numpy.ndarray, ind_init: Any) -> list[Any]:
    """The rows of a ``(P, n)`` float32 matrix as individuals, without copying them.

    The population buffer of the strategies (:mod:`deapnn.weights.pgpe`, :mod:`~deapnn.weights.cma`):
    with a numpy-array individual class such as ``creator.WeightVector``, individual ``i`` is a
    view of row ``i`` (its class set to ``ind_init``) with a fresh fitness, initialised as DEAP's
    creator ``__init__`` does; :func:`deapnn.weights.buffers.shared_matrix` then gives back the
    matrix, so the evaluator reads the population in place. Any other ``ind_init`` (a function, a
    ``functools.partial``, a list class) is called on each row, which copies.

    Args:
        matrix: Float32 matrix whose rows are C-contiguous, e.g.
            :func:`deapnn.weights.buffers.population_matrix` (rows padded apart) or
            :func:`~deapnn.weights.buffers.aligned_matrix`.
        ind_init: Individual class or constructor taking a 1-D array.

    Returns:
        ``P`` individuals.

    Raises:
        ValueError: If ``matrix`` is not a 2-D float32 array with C-contiguous rows.
    """
    if (not isinstance(matrix, numpy.ndarray) or matrix.ndim != 2 or matrix.dtype != numpy.float32
            or (matrix.shape[0] > 1 and matrix.strides[0] < 4 * matrix.shape[1])
            or (matrix.shape[1] > 1 and matrix.strides[1] != 4)):
        raise ValueError("rows_as_individuals needs a 2-D float32 matrix with C-contiguous rows, got "
                         f"{getattr(matrix, 'shape', None)} {getattr(matrix, 'dtype', type(matrix).__name__)}")
    if not (isinstance(ind_init, type) and issubclass(ind_init, numpy.ndarray)):
        return [ind_init(row) for row in matrix]
    out = []
    for row in matrix:
        ind = row.view(ind_init)
        ind.__init__()  # DEAP's creator __init__: sets the instance attributes (the fitness)
        out.append(ind)
    return out
