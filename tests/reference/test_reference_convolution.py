"""Tests of the plain-loop convolution reference (poolref/reference/convolution.py).

Hand-computed examples, the adjoint identities its backward must satisfy, and cross-checks against
PyTorch's conv2d (skipped without torch).
"""

import numpy
import pytest

from helpers import to_torch, torch_or_skip
from poolref.reference.convolution import conv2d_backward_reference, conv2d_reference


def test_worked_example_stride_padding_bias():
    x = numpy.arange(16.0).reshape(1, 1, 4, 4)
    weight = numpy.array([[[[1.0, 0.0], [0.0, -1.0]]]])
    y = conv2d_reference(x, weight, numpy.array([10.0]), stride=(2, 2), pad_begin=(1, 1), pad_end=(1, 1))
    # output (1, 1) reads x[1, 1] = 5 and x[2, 2] = 10: 5 - 10 + 10
    assert y.tolist() == [[[[10.0, 8.0, 10.0], [2.0, 5.0, 17.0], [10.0, 23.0, 25.0]]]]


def test_worked_example_two_channels_mix():
    # a 1x1 convolution is a per-pixel matrix product over channels
    x = numpy.stack([numpy.ones((2, 2)), 2 * numpy.ones((2, 2))])[None]  # (1, 2, 2, 2)
    weight = numpy.array([[1.0, 10.0], [-1.0, 1.0]]).reshape(2, 2, 1, 1)
    y = conv2d_reference(x, weight)
    assert y[0, :, 0, 0].tolist() == [21.0, 1.0] and (y == y[:, :, :1, :1]).all()


def test_backward_counts_window_membership_and_keeps_dtype():
    x = numpy.ones((1, 1, 6, 6), dtype=numpy.float32)
    weight = numpy.ones((1, 1, 3, 3), dtype=numpy.float32)
    g = numpy.ones((1, 1, 2, 2), dtype=numpy.float32)
    gx, gw, gb = conv2d_backward_reference(g, x, weight, stride=(2, 2))
    assert gx.dtype == gw.dtype == gb.dtype == numpy.float32
    # element (2, 2) is in all 4 windows, corners in one, the last row and column in none
    assert gx[0, 0, 2, 2] == 4 and gx[0, 0, 0, 0] == 1 and gx[0, 0, 5].sum() == gx[0, 0, :, 5].sum() == 0
    assert gw.tolist() == [[[[4.0] * 3] * 3]] and gb.tolist() == [4.0]
    assert conv2d_backward_reference(g, x, weight, stride=(2, 2), has_bias=False)[2] is None


@pytest.mark.parametrize("seed", range(5))
def test_backward_is_the_adjoint_of_the_forward(seed):
    # conv is linear in x (and in W): <g, conv(x, W)> = <grad_x, x> = <grad_W, W>; bias: <g, 1_o> = grad_b
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal((2, 2, 6, 5))
    weight = rng.standard_normal((3, 2, 2, 3))
    geometry = dict(stride=(2, 1), pad_begin=(1, 0), pad_end=(2, 1), dilation=(1, 2))
    y = conv2d_reference(x, weight, **geometry)
    g = rng.standard_normal(y.shape)
    gx, gw, gb = conv2d_backward_reference(g, x, weight, **geometry)
    assert numpy.isclose(numpy.sum(g * y), numpy.sum(gx * x))
    assert numpy.isclose(numpy.sum(g * y), numpy.sum(gw * weight))
    numpy.testing.assert_allclose(gb, g.sum(axis=(0, 2, 3)))


@pytest.mark.parametrize("seed", range(8))
def test_reference_matches_torch(seed):
    torch = torch_or_skip()
    rng = numpy.random.default_rng(100 + seed)
    kernel = tuple(int(v) for v in rng.integers(1, 4, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 3, size=2))
    padding = tuple(int(v) for v in rng.integers(0, 3, size=2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, size=2))
    x = rng.standard_normal((2, 2, 7, 6))
    weight = rng.standard_normal((3, 2) + kernel)
    bias = rng.standard_normal(3)
    geometry = dict(stride=stride, pad_begin=padding, pad_end=padding, dilation=dilation)
    y = conv2d_reference(x, weight, bias, **geometry)
    tx, tw, tb = to_torch(x, True), to_torch(weight, True), to_torch(bias, True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dilation)
    numpy.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(y.shape)
    ty.backward(to_torch(g))
    gx, gw, gb = conv2d_backward_reference(g, x, weight, **geometry)
    numpy.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-10, atol=1e-12)
