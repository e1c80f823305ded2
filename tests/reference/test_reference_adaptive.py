"""Tests of the plain-loop adaptive references (poolref/reference/adaptive.py).

Worked bins from SEMANTICS.md, the tie and NaN rules, adjoint and conservation laws, and cross-checks
against PyTorch's adaptive pooling (skipped without torch).
"""

import math

import numpy
import pytest

from poolref.reference.adaptive import (
    adaptive_avg_pool_backward_reference,
    adaptive_avg_pool_reference,
    adaptive_bin,
    adaptive_max_pool_backward_reference,
    adaptive_max_pool_reference,
)

NAN = float("nan")


def test_adaptive_bins_8_to_6_overlap():
    assert [adaptive_bin(i, 8, 6) for i in range(6)] == [(0, 2), (1, 3), (2, 4), (4, 6), (5, 7), (6, 8)]


@pytest.mark.parametrize("L, O", [(5, 3), (7, 7), (3, 7), (10, 4), (1, 5), (9, 1)])
def test_adaptive_bins_match_the_float_formula_and_cover(L, O):
    bins = [adaptive_bin(i, L, O) for i in range(O)]
    assert bins == [(math.floor(i * L / O), math.ceil((i + 1) * L / O)) for i in range(O)]
    assert bins[0][0] == 0 and bins[-1][1] == L
    assert all(start < end for start, end in bins)  # never empty
    assert all(bins[i + 1][0] <= bins[i][1] for i in range(O - 1))  # no gap between bins


def test_adaptive_bins_integer_arithmetic_is_exact_for_large_lengths():
    # (i*L)/O in floating point rounds for lengths beyond 2**53; the integer formula does not
    L, O = 3 * 2**60 + 1, 3
    assert adaptive_bin(1, L, O) == (2**60, 2**61 + 1)


def test_adaptive_avg_worked_case_and_global():
    x = numpy.array([[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]]])
    y = adaptive_avg_pool_reference(x, (6,))
    assert y.tolist() == [[[1.5, 2.5, 3.5, 5.5, 6.5, 7.5]]]
    assert adaptive_avg_pool_reference(x, (1,)).tolist() == [[[4.5]]]  # global average
    x2 = numpy.arange(12.0).reshape(1, 1, 3, 4)
    assert adaptive_avg_pool_reference(x2, (1, 1)).item() == 5.5


def test_adaptive_avg_keeps_float_dtype():
    x = numpy.arange(6, dtype=numpy.float32).reshape(1, 1, 2, 3)
    y = adaptive_avg_pool_reference(x, (1, 2))
    assert y.dtype == numpy.float32 and y.tolist() == [[[[2.0, 3.0]]]]


def test_adaptive_avg_backward_worked_case_and_adjoint():
    g = adaptive_avg_pool_backward_reference(numpy.ones((1, 1, 6)), (1, 1, 8), (6,))
    # every bin has 2 elements; elements 1, 2, 5, 6 are in two bins
    assert g.tolist() == [[[0.5, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 0.5]]]
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((2, 1, 5, 7, 3))
    out = (3, 4, 2)
    gy = rng.standard_normal((2, 1) + out)
    lhs = numpy.sum(gy * adaptive_avg_pool_reference(x, out))
    rhs = numpy.sum(adaptive_avg_pool_backward_reference(gy, x.shape, out) * x)
    assert numpy.isclose(lhs, rhs)


def test_adaptive_max_tie_first_nan_last():
    x = numpy.array([[[1.0, NAN, 3.0, NAN, 2.0, 2.0]]])
    y, idx = adaptive_max_pool_reference(x, (2,))
    assert numpy.isnan(y).all() and idx.tolist() == [[[1, 3]]]
    y, idx = adaptive_max_pool_reference(numpy.full((1, 1, 2, 2), 2.0), (1, 1))
    assert y.item() == 2.0 and idx.item() == 0
    y, idx = adaptive_max_pool_reference(numpy.array([[[0, 5, 5, 1, 5]]], dtype=numpy.int8), (2,))
    assert y.dtype == numpy.int8 and y.tolist() == [[[5, 5]]] and idx.tolist() == [[[1, 2]]]


def test_adaptive_max_all_minus_inf_index_is_bin_start():
    y, idx = adaptive_max_pool_reference(numpy.full((1, 1, 2, 6), -numpy.inf), (1, 3))
    assert idx.tolist() == [[[[0, 2, 4]]]]


def test_adaptive_max_backward_conserves():
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((1, 2, 8))
    y, idx = adaptive_max_pool_reference(x, (6,))
    g = rng.standard_normal(y.shape)
    gx = adaptive_max_pool_backward_reference(g, idx, x.shape)
    assert numpy.allclose(gx.sum(axis=-1), g.sum(axis=-1))


# --------------------------------------------------------------------------------------------------
# Cross-checks against PyTorch
# --------------------------------------------------------------------------------------------------
def _random_case(rng, n):
    spatial = tuple(int(rng.integers(1, 8)) for _ in range(n))
    output = tuple(int(rng.integers(1, 8)) for _ in range(n))  # larger than the input too
    return spatial, output


@pytest.mark.parametrize("n", [1, 2, 3])
def test_adaptive_avg_matches_torch(n):
    torch = pytest.importorskip("torch")
    pool = (torch.nn.functional.adaptive_avg_pool1d, torch.nn.functional.adaptive_avg_pool2d,
            torch.nn.functional.adaptive_avg_pool3d)[n - 1]
    rng = numpy.random.default_rng(50 + n)
    for _ in range(8 if n < 3 else 4):
        spatial, out = _random_case(rng, n)
        x = rng.standard_normal((2, 2) + spatial)
        y = adaptive_avg_pool_reference(x, out)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = pool(xt, out)
        numpy.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        g = rng.standard_normal(y.shape)
        yt.backward(torch.from_numpy(g))
        gx = adaptive_avg_pool_backward_reference(g, x.shape, out)
        numpy.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_adaptive_max_matches_torch(n):
    torch = pytest.importorskip("torch")
    pool = (torch.nn.functional.adaptive_max_pool1d, torch.nn.functional.adaptive_max_pool2d,
            torch.nn.functional.adaptive_max_pool3d)[n - 1]
    rng = numpy.random.default_rng(60 + n)
    for trial in range(8 if n < 3 else 4):
        spatial, out = _random_case(rng, n)
        shape = (2, 2) + spatial
        if trial % 2 == 0:  # distinct, well-separated values: the argmax cannot flip
            x = rng.permutation(math.prod(shape)).reshape(shape) * 0.5 - 3.0
        else:  # small integers and NaNs: ties and the NaN rule
            x = rng.integers(0, 3, size=shape).astype(numpy.float64)
            x[rng.random(shape) < 0.15] = NAN
        y, idx = adaptive_max_pool_reference(x, out)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt, it = pool(xt, out, return_indices=True)
        numpy.testing.assert_array_equal(y, yt.detach().numpy())
        numpy.testing.assert_array_equal(idx, it.numpy())
        g = rng.standard_normal(y.shape)
        yt.backward(torch.from_numpy(g))
        gx = adaptive_max_pool_backward_reference(g, idx, x.shape)
        numpy.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
