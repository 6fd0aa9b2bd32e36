"""The population buffer contract: rows of one aligned matrix are recognised, anything else is not."""

import copy

import numpy as np
import pytest

from deapnn.weights.buffers import (ALIGN, aligned_matrix, padded_matrix, population_matrix,
                                   prefer_row_length, row_length, shared_matrix)
from deapnn.weights.types import rows_as_individuals
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
    lambda rows: [rows[0], rows[1], rows[3]],    # a gap
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


def test_rows_at_equal_distances_are_a_strided_view():
    m = aligned_matrix(5, 7)
    m[:] = np.arange(35, dtype=np.float32).reshape(5, 7)
    view = shared_matrix(rows_of(m)[::2])
    assert view is not None and np.shares_memory(view, m) and view.strides == (56, 4)
    np.testing.assert_array_equal(view, m[::2])


def test_population_matrix_pads_rows_apart_with_zeros_and_is_read_back_whole():
    m = population_matrix(3, 10, length=32)
    assert m.shape == (3, 10) and m.strides == (128, 4) and m.ctypes.data % ALIGN == 0
    m[...] = 1.0
    individuals = rows_as_individuals(m, WeightArray)  # views, one per row
    assert all(np.shares_memory(ind, m) for ind in individuals)
    view = shared_matrix(individuals)
    np.testing.assert_array_equal(view, m)
    full = padded_matrix(individuals, 32)
    assert full.shape == (3, 32) and np.shares_memory(full, m)
    np.testing.assert_array_equal(full[:, :10], 1.0)
    np.testing.assert_array_equal(full[:, 10:], 0.0)  # the padding is zero
    np.testing.assert_array_equal(padded_matrix(individuals[1:], 32)[:, 10:], 0.0)
    assert padded_matrix(individuals, 16) is None  # another stride
    assert padded_matrix([WeightArray(r) for r in m], 32) is None  # copies


def test_the_row_length_hint_applies_to_its_length_only_and_is_validated():
    prefer_row_length(11, 48)
    try:
        assert row_length(11) == 48 and row_length(12) == 12
        assert population_matrix(2, 11).strides == (192, 4)
        assert population_matrix(2, 12).flags.c_contiguous
    finally:
        prefer_row_length(11, 11)  # withdrawn
    assert row_length(11) == 11 and population_matrix(2, 11).flags.c_contiguous
    for n, length in [(11, 10), (11, 40), (0, 16)]:
        with pytest.raises(ValueError, match=f"length={length}"):
            prefer_row_length(n, length)
