"""The population buffer contract: rows of one aligned matrix are recognised, anything else is not."""

import copy

import numpy as np
import pytest

from deapnn.weights.buffers import ALIGN, aligned_matrix, shared_matrix
from deapnn.weights.types import WeightArray


def rows_of(matrix):
    return [row.view(WeightArray) for row in matrix]


def test_aligned_matrix_is_aligned_contiguous_float32():
    for rows, n in [(1, 1), (3, 7), (17, 101)]:
        m = aligned_matrix(rows, n)
        assert m.shape == (rows, n) and m.dtype == np.float32 and m.flags.c_contiguous
        assert m.ctypes.data % ALIGN == 0


def test_aligned_matrix_rejects_negative_sizes():
    with pytest.raises(ValueError, match="-1"):
        aligned_matrix(-1, 3)


def test_shared_matrix_views_consecutive_rows_without_copy():
    m = aligned_matrix(5, 7)
    m[:] = np.arange(35, dtype=np.float32).reshape(5, 7)
    view = shared_matrix(rows_of(m))
    assert view is not None and np.shares_memory(view, m)
    np.testing.assert_array_equal(view, m)
    middle = shared_matrix(rows_of(m)[1:4])
    np.testing.assert_array_equal(middle, m[1:4])


@pytest.mark.parametrize("pick", [
    lambda rows: [rows[0], rows[2]],             # a gap
    lambda rows: [rows[1], rows[0]],             # out of order
    lambda rows: [WeightArray(r) for r in rows],  # copies (initRepeat, WeightArray(values))
    lambda rows: [copy.deepcopy(r) for r in rows],  # clones (varAnd)
    lambda rows: [rows[0], rows_of(aligned_matrix(2, 7))[1]],  # two buffers
    lambda rows: [r.astype(np.float64) for r in rows],
    lambda rows: [],
])
def test_shared_matrix_refuses_anything_else(pick):
    m = aligned_matrix(4, 7)
    m[:] = 1.0
    assert shared_matrix(pick(rows_of(m))) is None
