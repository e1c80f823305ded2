import sys

import numpy
import pytest

import poolref
from poolref._backend import BLOCK_BYTES, Scratch, array_module, batch_blocks, sparse_csr, sparse_rows, take_rows, to_numpy


def test_numpy_is_chosen_for_numpy_arrays_and_plain_values():
    assert array_module(numpy.zeros(2), None, 3) is numpy


def test_import_poolref_does_not_import_cupy():
    import subprocess

    code = "import sys, poolref; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_array_module_of_a_device_tensor_is_the_device_module(cupy):
    # a Tensor counted as numpy whatever it held: ops asking where their (Tensor) input lives got
    # numpy for device data and built host arrays beside it (fractional pooling's samples)
    on_device = poolref.Tensor(cupy.ones((1, 1, 4, 4)))
    assert array_module(on_device) is cupy
    assert array_module(on_device, cupy.zeros(2), None) is cupy  # no "mix" with the device array
    with pytest.raises(TypeError, match="mix numpy and cupy"):
        array_module(on_device, numpy.zeros(2))
    assert array_module(poolref.Tensor(numpy.ones(2)), numpy.zeros(2)) is numpy


def test_same_code_runs_on_cupy(xp):
    x = xp.asarray(numpy.arange(16.0).reshape(1, 1, 4, 4))
    y, i = poolref.max_pool2d(x, 2, return_indices=True)
    assert array_module(y) is xp
    numpy.testing.assert_array_equal(to_numpy(y), [[[[5, 7], [13, 15]]]])
    numpy.testing.assert_array_equal(to_numpy(poolref.avg_pool2d(x, 2)), [[[[2.5, 4.5], [10.5, 12.5]]]])
    numpy.testing.assert_array_equal(to_numpy(poolref.adaptive_max_pool2d(x, 3)), [[[[5, 6, 7], [9, 10, 11], [13, 14, 15]]]])


# ---------------------------------------------------------------------------------------------------
# sparse_rows: a CSR matrix with the same number of entries in every row (grid_sample's sampling)
# ---------------------------------------------------------------------------------------------------
def _dense_rows(data, indices, n_columns):
    """The matrix sparse_rows stands for, written out: row r holds data[r, k] at column indices[r, k]."""
    dense = numpy.zeros((data.shape[0], n_columns), dtype=data.dtype)
    for r in range(data.shape[0]):
        for k in range(data.shape[1]):
            dense[r, indices[r, k]] += data[r, k]
    return dense


def test_sparse_rows_is_the_matrix_of_its_rows(xp):
    rng = numpy.random.default_rng(0)
    n_rows, n_columns, per_row = 7, 11, 3
    indices = numpy.stack([rng.choice(n_columns, per_row, replace=False) for _ in range(n_rows)])
    data = rng.standard_normal((n_rows, per_row))
    matrix = sparse_rows(xp.asarray(data), xp.asarray(indices), n_columns, per_row)
    dense = _dense_rows(data, indices, n_columns)
    assert matrix.shape == (n_rows, n_columns) and matrix.nnz == n_rows * per_row
    numpy.testing.assert_array_equal(to_numpy(matrix.toarray()), dense)
    image = rng.standard_normal((n_columns, 4))
    g = rng.standard_normal((n_rows, 4))
    # the product and the product with the transpose (the adjoint) are the dense ones
    numpy.testing.assert_allclose(to_numpy(matrix @ xp.asarray(image)), dense @ image, rtol=1e-14, atol=1e-14)
    numpy.testing.assert_allclose(to_numpy(matrix.T @ xp.asarray(g)), dense.T @ g, rtol=1e-14, atol=1e-14)
    # flat data and indices give the same matrix
    flat = sparse_rows(xp.asarray(data.reshape(-1)), xp.asarray(indices.reshape(-1)), n_columns, per_row)
    numpy.testing.assert_array_equal(to_numpy(flat.toarray()), dense)


def test_sparse_rows_keeps_zero_weights_so_nan_spreads():
    # a stored zero times NaN or infinity is NaN, as in the dense sum the matrix stands for
    matrix = sparse_rows(numpy.array([[1.0, 0.0], [0.0, 1.0]]), numpy.array([[0, 1], [1, 2]]), 3, 2)
    assert matrix.nnz == 4
    y = matrix @ numpy.array([[2.0], [numpy.nan], [numpy.inf]])
    assert numpy.isnan(y).all()
    assert (matrix.T @ numpy.array([[1.0], [2.0]])).tolist() == [[1.0], [0.0], [2.0]]


def test_sparse_rows_accumulates_in_the_dtype_of_its_data():
    matrix = sparse_rows(numpy.ones((2, 2), dtype=numpy.float32), numpy.array([[0, 1], [1, 2]]), 3, 2)
    assert matrix.dtype == numpy.float32
    assert (matrix @ numpy.ones((3, 5), dtype=numpy.float32)).dtype == numpy.float32
    assert matrix.indices.dtype == numpy.int32 and matrix.indptr.dtype == numpy.int32


def test_sparse_rows_without_rows():
    matrix = sparse_rows(numpy.zeros((0, 4)), numpy.zeros((0, 4), dtype=numpy.intp), 6, 4)
    assert matrix.shape == (0, 6)
    assert (matrix @ numpy.ones((6, 3))).shape == (0, 3) and (matrix.T @ numpy.ones((0, 3))).shape == (6, 3)


def test_sparse_csr_rows_of_any_length_repeats_and_zeros(xp):
    # rows of 2, 0 and 3 entries; row 2 reads column 1 twice (the reads add) and column 0 with a
    # stored zero, which stays: 0 * inf is NaN in a product
    data = numpy.array([1.0, 2.0, 0.5, 0.25, 0.0])
    indices = numpy.array([0, 2, 1, 1, 0])
    indptr = numpy.array([0, 2, 2, 5])
    matrix = sparse_csr(xp.asarray(data), xp.asarray(indices), xp.asarray(indptr), 3)
    dense = numpy.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.75, 0.0]])
    assert matrix.shape == (3, 3) and matrix.nnz == 5 and matrix.indptr.dtype == numpy.int32
    numpy.testing.assert_array_equal(to_numpy(matrix.toarray()), dense)
    image = numpy.arange(6.0).reshape(3, 2)
    numpy.testing.assert_array_equal(to_numpy(matrix @ xp.asarray(image)), dense @ image)
    g = numpy.arange(6.0).reshape(3, 2) - 2
    numpy.testing.assert_array_equal(to_numpy(matrix.T @ xp.asarray(g)), dense.T @ g)
    product = to_numpy(matrix @ xp.asarray(numpy.array([[numpy.inf], [1.0], [1.0]])))
    assert product[0, 0] == numpy.inf and product[1, 0] == 0 and numpy.isnan(product[2, 0])


def test_sparse_csr_without_rows_or_entries():
    empty = sparse_csr(numpy.zeros(0), numpy.zeros(0, dtype=numpy.intp), numpy.zeros(1, dtype=numpy.intp), 4)
    assert empty.shape == (0, 4) and (empty.T @ numpy.ones((0, 2))).tolist() == [[0.0, 0.0]] * 4
    blank = sparse_csr(numpy.zeros(0), numpy.zeros(0, dtype=numpy.intp), numpy.zeros(3, dtype=numpy.intp), 4)
    assert blank.shape == (2, 4) and (blank @ numpy.ones((4, 1))).tolist() == [[0.0], [0.0]]


def test_sparse_csr_refuses_mismatched_arrays():
    with pytest.raises(ValueError, match="sparse_csr: data and indices"):
        sparse_csr(numpy.ones(3), numpy.zeros(2, dtype=int), numpy.array([0, 3]), 3)


@pytest.mark.parametrize("data, indices, per_row, words", [
    (numpy.ones(6), numpy.zeros(5, dtype=int), 2, "same number of entries, got 6 and 5"),
    (numpy.ones(6), numpy.zeros(6, dtype=int), 4, "per_row=4"),
    (numpy.ones(6), numpy.zeros(6, dtype=int), 0, "per_row=0"),
])
def test_sparse_rows_refuses_entries_that_do_not_fill_its_rows(data, indices, per_row, words):
    with pytest.raises(ValueError) as info:
        sparse_rows(data, indices, 3, per_row)
    assert words in str(info.value)


# ---------------------------------------------------------------------------------------------------
# batch_blocks, Scratch, take_rows: the cache blocking of the ops' batch loops
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count, item_bytes", [(0, 10), (1, 10), (7, 1), (10, 2**20), (100, 3 * 2**20 // 7), (5, 2**40)])
def test_batch_blocks_cover_the_batch_in_order_with_blocks_of_about_block_bytes(count, item_bytes):
    blocks = batch_blocks(count, item_bytes)
    assert blocks[0].start == 0 and blocks[-1].stop == count
    assert all(a.stop == b.start for a, b in zip(blocks, blocks[1:]))  # consecutive, no gap, no overlap
    per_block = max(1, BLOCK_BYTES // item_bytes)
    assert all(b.stop - b.start == per_block for b in blocks[:-1])
    assert 0 < blocks[-1].stop - blocks[-1].start <= per_block or count == 0


def test_batch_blocks_follow_block_bytes_at_call_time(monkeypatch):
    import poolref._backend

    monkeypatch.setattr(poolref._backend, "BLOCK_BYTES", 1)
    assert batch_blocks(3, 100) == [slice(0, 1), slice(1, 2), slice(2, 3)]


def test_batch_blocks_leave_a_device_batch_whole(xp, monkeypatch):
    # the GPU runs each pass over the whole batch at once: blocks would only add kernel launches
    import poolref._backend

    monkeypatch.setattr(poolref._backend, "BLOCK_BYTES", 1)
    expected = [slice(0, 9)] if xp is not numpy else [slice(k, k + 1) for k in range(9)]
    assert batch_blocks(9, 100, like=xp.zeros(3)) == expected


def test_scratch_hands_out_views_of_one_buffer_per_name():
    scratch = Scratch(numpy)
    big = scratch.empty("a", (4, 5), numpy.float32)
    small = scratch.empty("a", (3, 2), numpy.float32)
    other = scratch.empty("b", (3, 2), numpy.float32)
    assert small.flags.c_contiguous and small.shape == (3, 2)
    assert numpy.shares_memory(big, small) and not numpy.shares_memory(big, other)
    assert not numpy.shares_memory(big, scratch.empty("a", (5, 5), numpy.float32))  # larger: a new buffer
    assert scratch.empty("a", (2,), numpy.float64).dtype == numpy.float64  # another dtype: a new buffer


def test_take_rows_writes_the_rows_into_out(xp):
    source = numpy.arange(12.0).reshape(4, 3)
    rows = numpy.array([3, 0, 0, 2])
    out = xp.zeros((4, 3))
    assert take_rows(xp.asarray(source), xp.asarray(rows), out) is out
    numpy.testing.assert_array_equal(to_numpy(out), source[rows])
