"""Tests of the plain-loop Lp-pooling reference (poolref/reference/lp_pool.py): worked cases of both
conventions, PyTorch's quirks, the backward against finite differences and PyTorch."""


import itertools

import numpy
import pytest

from poolref.reference.lp_pool import lp_pool_backward_reference, lp_pool_reference
from test_reference_window import NAN, _random_geometry, geom1, row


def test_lp_pool_worked_cases_both_conventions():
    x = row([1.0, 2.0, 3.0, 4.0, 5.0])
    assert lp_pool_reference(x, 1, *geom1(2, 2), True, "torch").tolist() == [[[3.0, 7.0, 10.0]]]
    assert lp_pool_reference(x, 1, *geom1(2, 2), True, "onnx").tolist() == [[[3.0, 7.0, 5.0]]]


def test_lp_pool_onnx_takes_abs():
    x = row([-1.0, -2.0, -3.0, 1.0, 2.0, 3.0])
    numpy.testing.assert_allclose(lp_pool_reference(x, 3, *geom1(1), False, "onnx"), [[[1, 2, 3, 1, 2, 3]]])
    numpy.testing.assert_allclose(lp_pool_reference(x, 2, *geom1(2), False, "onnx"), [[[5**0.5, 10**0.5, 13**0.5]]])


def test_lp_pool_torch_quirks_signed_and_nan():
    x = row([-1.0, -2.0, -3.0, 1.0])
    assert lp_pool_reference(x, 1, *geom1(2), False, "torch").tolist() == [[[-3.0, -2.0]]]
    with numpy.errstate(all="raise"):  # the reference must silence its own NaN warnings
        y = lp_pool_reference(x, 3, *geom1(2), False, "torch")
    assert numpy.isnan(y).all()


def test_lp_pool_backward_zero_window_gives_zero():
    x = row([0.0, 0.0, 3.0, 4.0])
    for convention in ("torch", "onnx"):
        g = lp_pool_backward_reference(numpy.ones((1, 1, 2)), x, 2, *geom1(2), False, convention)
        numpy.testing.assert_allclose(g, [[[0.0, 0.0, 0.6, 0.8]]])


@pytest.mark.parametrize("convention", ["torch", "onnx"])
def test_lp_pool_backward_matches_finite_differences(convention):
    rng = numpy.random.default_rng(2)
    x = rng.uniform(-2.0, 2.0, size=(1, 1, 4, 5))
    if convention == "torch":
        x = numpy.abs(x) + 0.5  # keep S > 0 so the torch formula is differentiable
    geom = ((2, 3), (2, 2), (1, 0), (1, 1), (1, 2))
    p = 3.0
    y = lp_pool_reference(x, p, *geom, True, convention)
    g = rng.standard_normal(y.shape)
    gx = lp_pool_backward_reference(g, x, p, *geom, True, convention)
    h = 1e-6
    numeric = numpy.zeros_like(x)
    for pos in itertools.product(*[range(L) for L in x.shape]):
        xp, xm = x.copy(), x.copy()
        xp[pos] += h
        xm[pos] -= h
        up = numpy.sum(g * lp_pool_reference(xp, p, *geom, True, convention))
        down = numpy.sum(g * lp_pool_reference(xm, p, *geom, True, convention))
        numeric[pos] = (up - down) / (2 * h)
    numpy.testing.assert_allclose(gx, numeric, rtol=1e-5, atol=1e-6)


def test_lp_pool_backward_at_infinite_sums_and_unread_cells():
    # dy/dS = S^(1/p - 1) / p: 0 at S = inf for p > 1, 1 for p = 1; the infinite cell itself gets NaN
    x = row([4.0, numpy.inf, 1.0])  # cell 2 is read by no window (k = s = 2)
    g = lp_pool_backward_reference(numpy.ones((1, 1, 1)), x, 2, *geom1(2), False, "torch")
    assert numpy.array_equal(g, row([0.0, NAN, 0.0]), equal_nan=True)
    g = lp_pool_backward_reference(numpy.ones((1, 1, 1)), x, 1, *geom1(2), False, "onnx")
    assert g.tolist() == [[[1.0, 1.0, 0.0]]]


def test_lp_pool_jax_is_the_onnx_norm():
    x = row([-1.0, -2.0, 3.0, 1.0])
    for p in (1, 2, 3):
        assert lp_pool_reference(x, p, *geom1(2), False, "jax").tolist() == lp_pool_reference(x, p, *geom1(2), False, "onnx").tolist()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_lp_pool_matches_torch(n):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    pool = (F.lp_pool1d, F.lp_pool2d, F.lp_pool3d)[n - 1]
    rng = numpy.random.default_rng(30 + n)
    for trial in range(8 if n < 3 else 4):
        spatial, k, s, _, d, ceil_mode = _random_geometry(rng, n, dilation=False, pad_limit=lambda k: 0, length_at_least_kernel=n == 3)
        p = (1.0, 2.0, 3.0, 1.5)[trial % 4]
        x = rng.uniform(0.1, 2.0, size=(1, 2) + spatial)  # positive: both conventions agree on signs
        zero = (0,) * n
        y = lp_pool_reference(x, p, k, s, zero, zero, d, ceil_mode, "torch")
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = pool(xt, p, k if n > 1 else k[0], s if n > 1 else s[0], ceil_mode=ceil_mode)
        numpy.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10)
        g = rng.standard_normal(y.shape)
        yt.backward(torch.from_numpy(g))
        gx = lp_pool_backward_reference(g, x, p, k, s, zero, zero, d, ceil_mode, "torch")
        numpy.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
