"""Tests of the plain-loop window references (poolref/reference/window.py).

Layers: worked examples from SEMANTICS.md; the tie and NaN rules; adjoint and conservation laws; and
cross-checks against PyTorch (skipped without torch) on small random configurations.
"""

import math

import numpy
import pytest

from poolref.reference.lp_pool import lp_pool_reference
from poolref.reference.window import (
    avg_pool_backward_reference,
    avg_pool_reference,
    max_pool_backward_reference,
    max_pool_reference,
    max_unpool_backward_reference,
    max_unpool_reference,
    output_length,
    window_taps,
)

NAN = float("nan")


def geom1(k, s=None, p=0, d=1):
    """Resolved 1-D geometry (kernel, stride, pad_begin, pad_end, dilation) with symmetric padding."""
    return (k,), (s if s is not None else k,), (p,), (p,), (d,)


def row(values, dtype=numpy.float64):
    """A (1, 1, L) array."""
    return numpy.array([[values]], dtype=dtype)


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, expected",
    [
        ((5, 2, 2, 0, 0, 1, False), 2),
        ((5, 2, 2, 0, 0, 1, True), 3),
        ((4, 3, 2, 1, 1, 1, True), 3),  # SEMANTICS.md's 4x4 worked case, per axis
        ((4, 3, 2, 1, 1, 1, False), 2),
        ((7, 3, 1, 0, 0, 2, False), 3),  # k_eff = 5
        ((1, 2, 4, 1, 1, 1, True), 1),  # ceil gives 2, but window 1 would start at 3 >= L + p = 2
        ((6, 2, 2, 0, 1, 1, False), 3),  # asymmetric padding
        ((2, 5, 1, 0, 0, 1, False), -2),  # invalid geometry is computed, not raised
    ],
)
def test_output_length(args, expected):
    assert output_length(*args) == expected


def test_window_taps_dilated():
    assert window_taps(1, 6, 3, 2, 1, 2) == [(1, True), (3, True), (5, True)]
    assert window_taps(0, 6, 3, 2, 3, 2) == [(-3, False), (-1, False), (1, True)]


# --------------------------------------------------------------------------------------------------
# Max pooling: worked rules
# --------------------------------------------------------------------------------------------------
def test_max_pool_tie_goes_to_first():
    y, idx = max_pool_reference(row([2.0, 5.0, 5.0, 1.0, 5.0, 5.0]), *geom1(3, 1), False)
    assert y.tolist() == [[[5.0, 5.0, 5.0, 5.0]]]
    assert idx.tolist() == [[[1, 1, 2, 4]]]


def test_max_pool_nan_wins_and_last_nan_is_kept():
    y, idx = max_pool_reference(row([1.0, NAN, 3.0, NAN, 2.0]), *geom1(5, 1), False)
    assert math.isnan(y[0, 0, 0]) and idx.tolist() == [[[3]]]
    # a later finite value cannot replace a NaN (nothing is greater than NaN)
    y, idx = max_pool_reference(row([NAN, 9.0, 1.0]), *geom1(3, 1), False)
    assert math.isnan(y[0, 0, 0]) and idx.tolist() == [[[0]]]


def test_max_pool_nan_2d_scan_order_is_row_major():
    x = numpy.array([[[[NAN, 1.0], [NAN, 2.0]]]])
    y, idx = max_pool_reference(x, (2, 2), (2, 2), (0, 0), (0, 0), (1, 1), False)
    assert math.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 2


def test_max_pool_all_minus_inf_index_is_first_inside_tap():
    # PyTorch starts maxindex at the first tap >= 0 in each dimension; -inf never beats -inf
    x = row([-numpy.inf] * 4)
    y, idx = max_pool_reference(x, *geom1(2, 2, p=1), False)
    assert y.tolist() == [[[-numpy.inf] * 3]]
    assert idx.tolist() == [[[0, 1, 3]]]


def test_max_pool_window_wholly_in_padding():
    # L = 1, k = 2, d = 2, p = 1 passes torch's checks (p <= k // 2), but the only window's taps are
    # -1 and 1: no input. Like torch, the output is -inf and the index is that of the first tap >= 0,
    # position 1, outside the 1-element plane. Torch's backward then writes out of bounds; ours raises.
    x = row([4.0])
    y, idx = max_pool_reference(x, *geom1(2, 1, p=1, d=2), False)
    assert y.tolist() == [[[-numpy.inf]]] and idx.tolist() == [[[1]]]
    with pytest.raises(IndexError):
        max_pool_backward_reference(numpy.ones_like(y), idx, x.shape)


def test_max_pool_padding_never_selected_with_negative_values():
    y, idx = max_pool_reference(row([-5.0, -7.0, -1.0]), *geom1(3, 1, p=1), False)
    assert y.tolist() == [[[-5.0, -1.0, -1.0]]]
    assert idx.tolist() == [[[0, 2, 2]]]


def test_max_pool_flat_index_3d():
    x = numpy.zeros((1, 1, 2, 3, 4))
    x[0, 0, 1, 2, 3] = 1.0
    y, idx = max_pool_reference(x, (2, 3, 4), (2, 3, 4), (0,) * 3, (0,) * 3, (1,) * 3, False)
    assert y.item() == 1.0 and idx.item() == (1 * 3 + 2) * 4 + 3


@pytest.mark.parametrize("dtype", [numpy.uint8, numpy.int32, numpy.int64, numpy.float16, numpy.float32])
def test_max_pool_keeps_dtype(dtype):
    x = numpy.array([[[0, 3, 1, 2, 0]]], dtype=dtype)
    y, idx = max_pool_reference(x, *geom1(2, 2), True)
    assert y.dtype == numpy.dtype(dtype) and idx.dtype == numpy.int64
    assert y.tolist() == [[[3, 2, 0]]] and idx.tolist() == [[[1, 3, 4]]]


def test_max_pool_backward_accumulates_and_conserves():
    x = row([1.0, 9.0, 2.0, 3.0])
    y, idx = max_pool_reference(x, *geom1(2, 1), False)  # 9 wins windows 0 and 1
    g = row([1.0, 10.0, 100.0])
    gx = max_pool_backward_reference(g, idx, x.shape)
    assert gx.tolist() == [[[0.0, 11.0, 0.0, 100.0]]]
    assert gx.sum() == g.sum()


def test_max_unpool_and_its_backward_are_adjoint():
    rng = numpy.random.default_rng(0)
    v = rng.standard_normal((2, 3, 4))
    g = rng.standard_normal((2, 3, 7))
    # distinct indices within each plane: with repeats the unpool's last write wins and the pair is
    # no longer adjoint
    idx = numpy.stack([numpy.stack([rng.permutation(7)[:4] for _ in range(3)]) for _ in range(2)])
    lhs = numpy.sum(max_unpool_reference(v, idx, (7,)) * g)
    rhs = numpy.sum(v * max_unpool_backward_reference(g, idx))
    assert numpy.isclose(lhs, rhs)


def test_max_unpool_later_write_wins_and_bad_index_raises():
    y = max_unpool_reference(row([1.0, 2.0]), numpy.array([[[1, 1]]]), (3,))
    assert y.tolist() == [[[0.0, 2.0, 0.0]]]
    with pytest.raises(IndexError):
        max_unpool_reference(row([1.0]), numpy.array([[[3]]]), (3,))


# --------------------------------------------------------------------------------------------------
# Average pooling: worked cases
# --------------------------------------------------------------------------------------------------
def test_avg_pool2d_worked_case_ceil_mode():
    x = numpy.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    y = avg_pool_reference(x, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), True, True, None)
    expected = [[1.5556, 3.3333, 2.0], [6.3333, 11.0, 6.0], [4.5, 7.5, 4.0]]
    numpy.testing.assert_allclose(y[0, 0], expected, atol=1e-4)


def test_avg_pool1d_worked_case_and_gradient():
    x = row([1.0, 2.0, 3.0, 4.0, 5.0])
    args = (*geom1(2, 2), True, True, None)
    assert avg_pool_reference(x, *args).tolist() == [[[1.5, 3.5, 5.0]]]
    g = avg_pool_backward_reference(numpy.ones((1, 1, 3)), x.shape, *args)
    assert g.tolist() == [[[0.5, 0.5, 0.5, 0.5, 1.0]]]


def test_avg_pool_divisors():
    x = row([1.0, 2.0, 3.0])
    # k=3, p=1: windows [-1,0,1] and [1,2,3]: 3 taps counted with padding, 2 without
    assert avg_pool_reference(x, *geom1(3, 2, p=1), False, True, None).tolist() == [[[1.0, 5.0 / 3]]]
    assert avg_pool_reference(x, *geom1(3, 2, p=1), False, False, None).tolist() == [[[1.5, 2.5]]]
    assert avg_pool_reference(x, *geom1(3, 2, p=1), False, True, 4).tolist() == [[[0.75, 1.25]]]
    # dilation 2, no padding, ceil mode: the last window's taps are 2 and 4, and 4 lies beyond
    # L + p_end = 4, so it counts in neither divisor: [(1 + 3)/2, 3/1]
    x = row([1.0, 2.0, 3.0, 4.0])
    for count_include_pad in (True, False):
        y = avg_pool_reference(x, (2,), (2,), (0,), (0,), (2,), True, count_include_pad, None)
        assert y.tolist() == [[[2.0, 3.0]]]


def test_avg_pool_keeps_float_dtype():
    x = numpy.arange(6, dtype=numpy.float16).reshape(1, 1, 6)
    y = avg_pool_reference(x, *geom1(2), False, True, None)
    assert y.dtype == numpy.float16 and y.tolist() == [[[0.5, 2.5, 4.5]]]


@pytest.mark.parametrize("count_include_pad, divisor_override", [(True, None), (False, None), (True, 5)])
def test_avg_pool_backward_is_the_adjoint(count_include_pad, divisor_override):
    # avg pooling is linear: <g, A x> == <A^T g, x>, here with dilation and asymmetric padding
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 6))
    geom = ((2, 3), (2, 1), (1, 0), (0, 2), (2, 1))
    for ceil_mode in (False, True):
        y = avg_pool_reference(x, *geom, ceil_mode, count_include_pad, divisor_override)
        g = rng.standard_normal(y.shape)
        gx = avg_pool_backward_reference(g, x.shape, *geom, ceil_mode, count_include_pad, divisor_override)
        assert numpy.isclose(numpy.sum(g * y), numpy.sum(gx * x))


# --------------------------------------------------------------------------------------------------
# lax.reduce_window's geometry (convention="jax")
# --------------------------------------------------------------------------------------------------
def test_window_wholly_in_padding_sums_nothing():
    # L = 3, k = s = 2, pads (3, 2): windows (-3, -2), (-1, 0), (1, 2), (3, 4); JAX gives these numbers
    x = row([1.0, 2.0, 3.0])
    geom = ((2,), (2,), (3,), (2,), (1,))
    assert avg_pool_reference(x, *geom, False, True, None).tolist() == [[[0.0, 0.5, 2.5, 0.0]]]
    y = avg_pool_reference(x, *geom, False, False, None)  # 0 / 0 where no tap is inside
    assert numpy.array_equal(y, row([NAN, 1.0, 2.5, NAN]), equal_nan=True)
    g = avg_pool_backward_reference(row([NAN, 1.0, 1.0, NAN]), x.shape, *geom, False, False, None)
    assert g.tolist() == [[[1.0, 0.5, 0.5]]]  # a window with no inside tap sends nothing
    y, idx = max_pool_reference(x, *geom, False)
    assert y.tolist() == [[[-numpy.inf, 1.0, 3.0, -numpy.inf]]]
    # poolref marks such a window's index -1 (convention="jax"); the backward skips it
    g = max_pool_backward_reference(numpy.ones((1, 1, 4)), numpy.array([[[-1, 0, 2, -1]]]), x.shape)
    assert g.tolist() == [[[1.0, 0.0, 1.0]]]
    assert lp_pool_reference(x, 2, *geom, False, "jax").tolist() == [[[0.0, 1.0, math.sqrt(13.0), 0.0]]]


def test_negative_pads_crop_and_outputs_may_be_empty():
    x = row([1.0, 2.0, 3.0, 4.0, 5.0])
    assert avg_pool_reference(x, (2,), (1,), (-1,), (-1,), (1,), False, True, None).tolist() == [[[2.5, 3.5]]]
    g = avg_pool_backward_reference(numpy.ones((1, 1, 2)), x.shape, (2,), (1,), (-1,), (-1,), (1,), False, True, None)
    assert g.tolist() == [[[0.0, 0.5, 1.0, 0.5, 0.0]]]
    assert avg_pool_reference(x, (6,), (1,), (0,), (0,), (1,), False, True, None).shape == (1, 1, 0)
    assert max_pool_reference(x, (1,), (1,), (-6,), (3,), (1,), False)[0].tolist() == [[[-numpy.inf, -numpy.inf]]]


# --------------------------------------------------------------------------------------------------
# Cross-checks against PyTorch
# --------------------------------------------------------------------------------------------------
def _random_geometry(rng, n, *, dilation, pad_limit, length_at_least_kernel=False):
    """Random valid torch geometry: (spatial, kernel, stride, padding, dilation, ceil_mode).

    ``pad_limit(k)`` is torch's bound on the padding for this op; ``length_at_least_kernel`` adds
    avg_pool3d's extra check (every input length >= its kernel, padding not counted).
    """
    while True:
        ceil_mode = bool(rng.integers(0, 2))
        spatial, kernel, stride, padding, dil = [], [], [], [], []
        for _ in range(n):
            k = int(rng.integers(1, 4))
            d = int(rng.integers(1, 3)) if dilation else 1
            spatial.append(int(rng.integers(1, 7)))
            kernel.append(k)
            stride.append(int(rng.integers(1, 4)))
            padding.append(int(rng.integers(0, pad_limit(k) + 1)))
            dil.append(d)
        lengths = [output_length(L, k, s, p, p, d, ceil_mode) for L, k, s, p, d in zip(spatial, kernel, stride, padding, dil)]
        if min(lengths) < 1 or (length_at_least_kernel and any(L < k for L, k in zip(spatial, kernel))):
            continue
        # torch accepts a dilated window lying wholly in padding, returns an index outside the plane
        # for it and then writes out of bounds in the backward (heap corruption): keep such cases out
        # (test_max_pool_window_wholly_in_padding pins the reference's behaviour there)
        if all(
            any(inside for _, inside in window_taps(o, L, k_, s_, p_, d_))
            for L, k_, s_, p_, d_, O in zip(spatial, kernel, stride, padding, dil, lengths)
            for o in range(O)
        ):
            return tuple(spatial), tuple(kernel), tuple(stride), tuple(padding), tuple(dil), ceil_mode


def _distinct_values(rng, shape):
    """Distinct, well-separated values so an argmax cannot flip."""
    return (rng.permutation(math.prod(shape)).reshape(shape) * 0.5 - 3.0).astype(numpy.float64)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_max_pool_matches_torch(n):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1]
    rng = numpy.random.default_rng(10 + n)
    for trial in range(12 if n < 3 else 6):
        spatial, k, s, p, d, ceil_mode = _random_geometry(rng, n, dilation=True, pad_limit=lambda k: k // 2)
        shape = (2, 2) + spatial
        # alternate distinct values (gradient check) with small integers (ties)
        x = _distinct_values(rng, shape) if trial % 2 == 0 else rng.integers(0, 3, size=shape).astype(numpy.float64)
        y, idx = max_pool_reference(x, k, s, p, p, d, ceil_mode)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt, it = pool(xt, k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
        numpy.testing.assert_array_equal(y, yt.detach().numpy())
        numpy.testing.assert_array_equal(idx, it.numpy())
        g = rng.standard_normal(y.shape)
        yt.backward(torch.from_numpy(g))
        numpy.testing.assert_allclose(max_pool_backward_reference(g, idx, x.shape), xt.grad.numpy(), atol=1e-12)


def test_max_pool_nan_and_integers_match_torch():
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(5)
    x = rng.integers(0, 3, size=(1, 2, 5, 6)).astype(numpy.float64)
    x[rng.random(x.shape) < 0.3] = NAN
    args = ((3, 2), (2, 1), (1, 1), (1, 1), (1, 2), True)
    y, idx = max_pool_reference(x, *args)
    yt, it = torch.nn.functional.max_pool2d(torch.from_numpy(x), (3, 2), (2, 1), (1, 1), (1, 2), ceil_mode=True, return_indices=True)
    numpy.testing.assert_array_equal(y, yt.numpy())  # NaN == NaN here
    numpy.testing.assert_array_equal(idx, it.numpy())
    xi = rng.integers(-3, 3, size=(1, 1, 6)).astype(numpy.int64)
    y, idx = max_pool_reference(xi, (3,), (2,), (1,), (1,), (1,), True)
    yt, it = torch.nn.functional.max_pool1d(torch.from_numpy(xi), 3, 2, 1, ceil_mode=True, return_indices=True)
    numpy.testing.assert_array_equal(y, yt.numpy())
    numpy.testing.assert_array_equal(idx, it.numpy())


@pytest.mark.parametrize("n", [1, 2, 3])
def test_avg_pool_matches_torch(n):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = numpy.random.default_rng(20 + n)
    for trial in range(12 if n < 3 else 6):
        spatial, k, s, p, d, ceil_mode = _random_geometry(rng, n, dilation=False, pad_limit=lambda k: k // 2, length_at_least_kernel=n == 3)
        count_include_pad = bool(rng.integers(0, 2))
        divisor_override = int(rng.integers(1, 5)) if (trial % 3 == 2 and n > 1) else None  # 1-D has none
        x = rng.standard_normal((2, 2) + spatial)
        y = avg_pool_reference(x, k, s, p, p, d, ceil_mode, count_include_pad, divisor_override)
        xt = torch.from_numpy(x).requires_grad_(True)
        kwargs = dict(ceil_mode=ceil_mode, count_include_pad=count_include_pad)
        if n == 1:
            yt = F.avg_pool1d(xt, k, s, p, **kwargs)
        else:
            yt = (F.avg_pool2d, F.avg_pool3d)[n - 2](xt, k, s, p, divisor_override=divisor_override, **kwargs)
        numpy.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        g = rng.standard_normal(y.shape)
        yt.backward(torch.from_numpy(g))
        gx = avg_pool_backward_reference(g, x.shape, k, s, p, p, d, ceil_mode, count_include_pad, divisor_override)
        numpy.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_max_unpool2d_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = numpy.random.default_rng(40)
    # (kernel, stride, padding, input size, explicit output size or None for torch's default)
    cases = [((2, 2), (2, 2), (0, 0), (5, 6), None), ((3, 2), (2, 1), (1, 1), (6, 5), (6, 5))]
    for k, s, p, size, output_size in cases:
        x = _distinct_values(rng, (2, 2) + size)
        y, idx = max_pool_reference(x, k, s, p, p, (1, 1), False)
        default = tuple((L - 1) * st - 2 * pp + kk for L, st, pp, kk in zip(y.shape[2:], s, p, k))
        out = output_size or default  # (the default (5, 5) of case 2 would not hold index 26 of 6x5)
        u = max_unpool_reference(y, idx, out)
        yt = torch.from_numpy(y).requires_grad_(True)
        ut = F.max_unpool2d(yt, torch.from_numpy(idx), k, s, p, output_size=output_size)
        assert ut.shape[2:] == out
        numpy.testing.assert_array_equal(u, ut.detach().numpy())
        g = rng.standard_normal(u.shape)
        ut.backward(torch.from_numpy(g))
        numpy.testing.assert_array_equal(max_unpool_backward_reference(g, idx), yt.grad.numpy())
