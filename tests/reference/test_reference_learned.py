"""Tests of the plain-loop learned-pooling references (poolref/reference/learned.py) on their own.

Hand-worked values, each backward reference against central differences of its own forward
reference, and the references checked directly against PyTorch compositions (skipped without
torch), independently of the vectorised ops.
"""

import itertools
import math

import numpy
import pytest

from helpers import to_torch, torch_or_skip
from poolref.reference.learned import (
    bilinear_pool_backward_reference,
    bilinear_pool_reference,
    gem_pool_backward_reference,
    gem_pool_reference,
    lse_pool_backward_reference,
    lse_pool_reference,
    soft_pool2d_backward_reference,
    soft_pool2d_reference,
)

EPS = 1e-6


def _numerical_gradient(f, x, g, step=1e-6):
    """d <g, f(x)> / dx by central differences, element by element."""
    grad = numpy.zeros(x.shape)
    for index in numpy.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        grad[index] = (numpy.sum(g * f(plus)) - numpy.sum(g * f(minus))) / (2 * step)
    return grad


# ---------------------------------------------------------------------------------------------------
# Worked values
# ---------------------------------------------------------------------------------------------------
def test_gem_reference_worked_values():
    x = numpy.array([[[1.0, 2.0, 3.0], [-4.0, 0.0, 2.0]]])  # second plane: -4 and 0 clamp to eps
    y = gem_pool_reference(x, 2.0, EPS)
    assert y.shape == (1, 2, 1)
    assert y[0, 0, 0] == pytest.approx(math.sqrt(14 / 3), rel=1e-15)
    assert y[0, 1, 0] == pytest.approx(math.sqrt((2 * EPS**2 + 4) / 3), rel=1e-15)
    grad_x, grad_p = gem_pool_backward_reference(numpy.ones((1, 2, 1)), x, 2.0, EPS)
    # p = 2: dy/dx_i = x_i / (S y) for unclamped x_i; clamped elements get nothing
    assert grad_x[0, 0].tolist() == pytest.approx([1 / (3 * y[0, 0, 0]), 2 / (3 * y[0, 0, 0]), 3 / (3 * y[0, 0, 0])])
    assert grad_x[0, 1, :2].tolist() == [0.0, 0.0]
    assert grad_p > 0  # GeM grows with p


def test_soft_pool_reference_worked_values():
    x = numpy.array([[[[0.0, 0.0, 1.0], [0.0, math.log(3.0), 1.0]]]])  # 2 x 3, windows 2 x 2, stride 1
    y = soft_pool2d_reference(x, (2, 2), (1, 1))
    assert y.shape == (1, 1, 1, 2)
    assert y[0, 0, 0, 0] == pytest.approx(math.log(3.0) / 2, rel=1e-15)
    # the second window holds 0, 1, log 3, 1: weights e^v / (1 + 3 + 2e)
    values = [0.0, 1.0, math.log(3.0), 1.0]
    total = sum(math.exp(v) for v in values)
    assert y[0, 0, 0, 1] == pytest.approx(sum(math.exp(v) * v for v in values) / total, rel=1e-15)


def test_lse_reference_worked_values():
    x = numpy.array([[[0.0, math.log(3.0)], [5.0, 5.0]]])
    assert lse_pool_reference(x, 1.0)[0, :, 0].tolist() == pytest.approx([math.log(2.0), 5.0], rel=1e-15)
    numpy.testing.assert_allclose(lse_pool_backward_reference(numpy.ones((1, 2, 1)), x, 1.0)[0], [[0.25, 0.75], [0.5, 0.5]], rtol=1e-15)
    # r = 2: softmax(2x) = (1, 9) / 10
    assert lse_pool_backward_reference(numpy.ones((1, 2, 1)), x, 2.0)[0, 0].tolist() == pytest.approx([0.1, 0.9])


def test_bilinear_reference_worked_values():
    x = numpy.array([[[1.0, 3.0], [2.0, 4.0]]])
    assert bilinear_pool_reference(x, None, False, False, 1e-12).tolist() == [[5.0, 7.0, 7.0, 10.0]]
    z = bilinear_pool_reference(x, None, True, True, 1e-12)
    s = numpy.sqrt(numpy.array([5.0, 7.0, 7.0, 10.0]) + 1e-12)
    assert z[0].tolist() == pytest.approx((s / numpy.linalg.norm(s)).tolist(), rel=1e-15)
    # the norm floor: a row whose norm is below eps is divided by eps
    tiny = bilinear_pool_reference(numpy.array([[[1e-8]]]), None, False, True, 1e-12)
    assert tiny.tolist() == [[pytest.approx(1e-16 / 1e-12, rel=1e-12)]]
    # signed sqrt of a negative product, and of zero
    y = numpy.array([[[-4.0], [0.0]]])
    assert bilinear_pool_reference(numpy.array([[[1.0]]]), y, True, False, 0.0).tolist() == [[-2.0, 0.0]]


# ---------------------------------------------------------------------------------------------------
# Each backward reference against central differences of its forward reference
# ---------------------------------------------------------------------------------------------------
def test_gem_reference_gradients_match_finite_differences():
    rng = numpy.random.default_rng(0)
    x = rng.uniform(-1.0, 2.0, (2, 2, 3))
    x[numpy.abs(x - EPS) < 1e-3] = 0.5
    p = 2.7
    g = rng.standard_normal((2, 2, 1))
    grad_x, grad_p = gem_pool_backward_reference(g, x, p, EPS)
    numpy.testing.assert_allclose(grad_x, _numerical_gradient(lambda t: gem_pool_reference(t, p, EPS), x, g), rtol=1e-6, atol=1e-9)
    step = 1e-6
    numerical_p = (numpy.sum(g * gem_pool_reference(x, p + step, EPS)) - numpy.sum(g * gem_pool_reference(x, p - step, EPS))) / (2 * step)
    assert grad_p == pytest.approx(numerical_p, rel=1e-6)


def test_soft_pool_reference_gradient_matches_finite_differences():
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((1, 2, 4, 5))
    for kernel, stride in (((2, 2), (1, 1)), ((3, 2), (1, 2)), ((2, 3), (2, 2))):
        y = soft_pool2d_reference(x, kernel, stride)
        g = rng.standard_normal(y.shape)
        numpy.testing.assert_allclose(
            soft_pool2d_backward_reference(g, x, kernel, stride),
            _numerical_gradient(lambda t: soft_pool2d_reference(t, kernel, stride), x, g), rtol=1e-6, atol=1e-9)


def test_lse_reference_gradient_matches_finite_differences():
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((2, 2, 2, 3))
    g = rng.standard_normal((2, 2, 1, 1))
    for r in (0.3, 1.0, 4.0):
        numpy.testing.assert_allclose(lse_pool_backward_reference(g, x, r),
                                      _numerical_gradient(lambda t: lse_pool_reference(t, r), x, g), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("signed_sqrt, l2_normalize, with_y", list(itertools.product((False, True), repeat=3)))
def test_bilinear_reference_gradients_match_finite_differences(signed_sqrt, l2_normalize, with_y):
    rng = numpy.random.default_rng(3)
    x = rng.uniform(0.5, 1.5, (2, 2, 3))
    y = rng.uniform(0.5, 1.5, (2, 3, 3)) * numpy.array([1.0, -1.0, 1.0])[None, :, None] if with_y else None
    g = rng.standard_normal((2, 2 * (3 if with_y else 2)))
    grad_x, grad_y = bilinear_pool_backward_reference(g, x, y, signed_sqrt, l2_normalize, 1e-12)
    f_x = lambda t: bilinear_pool_reference(t, y, signed_sqrt, l2_normalize, 1e-12)  # noqa: E731
    numpy.testing.assert_allclose(grad_x, _numerical_gradient(f_x, x, g), rtol=1e-6, atol=1e-9)
    if with_y:
        f_y = lambda t: bilinear_pool_reference(x, t, signed_sqrt, l2_normalize, 1e-12)  # noqa: E731
        numpy.testing.assert_allclose(grad_y, _numerical_gradient(f_y, y, g), rtol=1e-6, atol=1e-9)
    else:
        assert grad_y is None


# ---------------------------------------------------------------------------------------------------
# The references against PyTorch compositions, output and gradients
# ---------------------------------------------------------------------------------------------------
def test_gem_reference_matches_torch():
    torch = torch_or_skip()
    rng = numpy.random.default_rng(4)
    x = rng.uniform(-1.0, 2.0, (2, 3, 3, 2))
    g = rng.standard_normal((2, 3, 1, 1))
    for p in (0.6, 1.0, 3.0, 7.5):
        xt = to_torch(x, requires_grad=True)
        pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
        yt = xt.clamp(min=EPS).pow(pt).mean(dim=(2, 3), keepdim=True).pow(1 / pt)
        yt.backward(to_torch(g))
        numpy.testing.assert_allclose(gem_pool_reference(x, p, EPS), yt.detach().numpy(), rtol=1e-13)
        grad_x, grad_p = gem_pool_backward_reference(g, x, p, EPS)
        numpy.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-11, atol=1e-15)
        assert grad_p == pytest.approx(pt.grad.item(), rel=1e-10)


def test_soft_pool_reference_matches_torch():
    torch = torch_or_skip()
    F = torch.nn.functional
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((2, 2, 5, 4)) * 3
    for kernel, stride in (((2, 2), (2, 2)), ((3, 2), (1, 1)), ((2, 3), (2, 1))):
        xt = to_torch(x, requires_grad=True)
        out_h, out_w = (5 - kernel[0]) // stride[0] + 1, (4 - kernel[1]) // stride[1] + 1
        columns = F.unfold(xt, kernel, stride=stride).reshape(2, 2, kernel[0] * kernel[1], out_h * out_w)
        yt = (columns.softmax(dim=2) * columns).sum(dim=2).reshape(2, 2, out_h, out_w)
        g = rng.standard_normal(tuple(yt.shape))
        yt.backward(to_torch(g))
        numpy.testing.assert_allclose(soft_pool2d_reference(x, kernel, stride), yt.detach().numpy(), rtol=1e-13, atol=1e-15)
        numpy.testing.assert_allclose(soft_pool2d_backward_reference(g, x, kernel, stride), xt.grad.numpy(), rtol=1e-11, atol=1e-14)


def test_lse_reference_matches_torch():
    torch = torch_or_skip()
    rng = numpy.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4))
    g = rng.standard_normal((2, 3, 1))
    for r in (0.5, 1.0, 3.0):
        xt = to_torch(x, requires_grad=True)
        yt = (torch.logsumexp(r * xt, dim=2, keepdim=True) - math.log(4)) / r
        yt.backward(to_torch(g))
        numpy.testing.assert_allclose(lse_pool_reference(x, r), yt.detach().numpy(), rtol=1e-13)
        numpy.testing.assert_allclose(lse_pool_backward_reference(g, x, r), xt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("signed_sqrt, l2_normalize", list(itertools.product((False, True), repeat=2)))
def test_bilinear_reference_matches_torch(signed_sqrt, l2_normalize):
    torch = torch_or_skip()
    rng = numpy.random.default_rng(7)
    x, y = rng.standard_normal((2, 3, 2, 2)), rng.standard_normal((2, 2, 2, 2))
    g = rng.standard_normal((2, 6))
    xt, yt = to_torch(x, requires_grad=True), to_torch(y, requires_grad=True)
    B = torch.einsum("ncl,ndl->ncd", xt.reshape(2, 3, 4), yt.reshape(2, 2, 4)).reshape(2, 6) / 4
    s = torch.sign(B) * torch.sqrt(B.abs() + 1e-12) if signed_sqrt else B
    zt = torch.nn.functional.normalize(s, dim=1, eps=1e-12) if l2_normalize else s
    zt.backward(to_torch(g))
    numpy.testing.assert_allclose(bilinear_pool_reference(x, y, signed_sqrt, l2_normalize, 1e-12), zt.detach().numpy(), rtol=1e-12, atol=1e-15)
    grad_x, grad_y = bilinear_pool_backward_reference(g, x, y, signed_sqrt, l2_normalize, 1e-12)
    numpy.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-10, atol=1e-13)
    numpy.testing.assert_allclose(grad_y, yt.grad.numpy(), rtol=1e-10, atol=1e-13)
