"""Learned and smooth pooling (GeM, SoftPool, LSE): worked examples, loop reference vs
vectorised, gradcheck, hypothesis properties, PyTorch compositions, eps, dtypes, tape, bad input."""

import math

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolref
from helpers import layouts, plant_nonfinite, to_torch, torch_or_skip
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.ops.bilinear import bilinear_pool
from poolref.ops.learned import gem_pool, lse_pool, soft_pool2d
from poolref.reference import learned as ref
from poolref.testing import assert_conserves_gradient, assert_matches
from poolref.testing.strategies import smooth_values
from poolref.testing.torch_compositions import bilinear_by_einsum, gem_by_pow_mean, lse_by_expm1_log1p, soft_pool_by_unfold

EPS = 1e-6  # gem_pool's default clamp


# ---------------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------------
@st.composite
def global_shapes(draw, batch=(1, 2), channels=(1, 3)):
    """(N, C, *spatial) with 1 to 3 spatial dims (small: a plain-loop reference runs on them)."""
    n = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, 4 if n < 3 else 2)) for _ in range(n))
    return (draw(st.integers(*batch)), draw(st.integers(*channels))) + spatial


@st.composite
def soft_cases(draw, batch=(1, 2), channels=(1, 3)):
    """(x shape, kernel_size, stride): windows of a floor-mode, unpadded 2-D pooling."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    spatial = tuple(draw(st.integers(k, k + 4)) for k in kernel)
    shape = (draw(st.integers(*batch)), draw(st.integers(*channels))) + spatial
    return shape, kernel, stride


seeds = st.integers(0, 2**32 - 1)
exponents = st.floats(0.5, 8.0)
sharpness = st.floats(0.1, 5.0)


def _gem_input(shape, seed):
    """Values in [-1, 2]: some below eps (clamped), none within 1e-3 of it (no clamp flips in gradcheck)."""
    x = smooth_values(shape, seed, low=-1.0, high=2.0)
    return numpy.where(numpy.abs(x - EPS) < 1e-3, 0.5, x)


def _torch_nd_axes(x):
    return tuple(range(2, x.ndim))


# ===================================================================================================
# GeM
# ===================================================================================================
def test_gem_worked_examples():
    x = numpy.array([[[1.0, 2.0, 3.0]]])
    assert gem_pool(x, 1.0).tolist() == [[[2.0]]]
    assert_matches(gem_pool(x, 2.0), numpy.array([[[math.sqrt(14 / 3)]]]), rtol=1e-15)
    assert_matches(gem_pool(x), numpy.array([[[(36 / 3) ** (1 / 3)]]]), rtol=1e-15)  # default p = 3
    # clamped: max(-5, 1) = 1, so (1 + 16) / 2 = 8.5
    assert_matches(gem_pool(numpy.array([[[-5.0, 4.0]]]), 2.0, eps=1.0), numpy.array([[[math.sqrt(8.5)]]]), rtol=1e-15)
    # every element clamped: the output is eps itself
    assert_matches(gem_pool(numpy.full((1, 1, 2, 2), -3.0)), numpy.full((1, 1, 1, 1), EPS), rtol=1e-15)


@given(global_shapes(), exponents, seeds)
def test_gem_matches_loop_reference(shape, p, seed):
    x = _gem_input(shape, seed)
    g = smooth_values((shape[0], shape[1]) + (1,) * (len(shape) - 2), seed + 1)
    y, pullback = vjp(lambda t, q: gem_pool(t, q), x, numpy.array(p))
    assert y.shape == shape[:2] + (1,) * (len(shape) - 2)
    assert_matches(y, ref.gem_pool_reference(x, p, EPS), rtol=1e-12)
    grad_x, grad_p = pullback(g)
    want_x, want_p = ref.gem_pool_backward_reference(g, x, p, EPS)
    assert_matches(grad_x, want_x, rtol=1e-9, atol=1e-13, what="gradient to x")
    assert_matches(grad_p, numpy.array(want_p), rtol=1e-8, atol=1e-12, what="gradient to p")


@settings(max_examples=15)
@given(global_shapes(batch=(1, 2), channels=(1, 2)), st.floats(0.7, 6.0), seeds)
def test_gem_gradcheck_x_and_p(shape, p, seed):
    x = _gem_input(shape, seed)
    assert gradcheck(lambda t, q: gem_pool(t, q), x, numpy.array([p]), rtol=1e-6)


@given(global_shapes(batch=(1, 2)), seeds)
def test_gem_is_the_mean_at_p_1_and_tends_to_the_max(shape, seed):
    x = smooth_values(shape, seed, low=0.1, high=3.0)  # all above eps: no clamp
    axes = _torch_nd_axes(x)
    assert_matches(gem_pool(x, 1.0), x.mean(axis=axes, keepdims=True), rtol=1e-13)
    largest = x.max(axis=axes, keepdims=True)
    S = math.prod(shape[2:])
    # power-mean bounds: S^(-1/p) max <= y <= max; at p = 200 that is within 1.4% for S <= 16
    y = gem_pool(x, 200.0)
    assert numpy.all(y <= largest * (1 + 1e-12)) and numpy.all(y >= largest * S ** (-1 / 200) * (1 - 1e-12))
    assert_matches(gem_pool(x, 1e5), largest, rtol=1e-3)


@given(global_shapes(batch=(1, 2)), exponents, exponents, seeds)
def test_gem_is_nondecreasing_in_p_and_its_p_gradient_is_nonnegative(shape, p1, p2, seed):
    x = _gem_input(shape, seed)
    low, high = sorted((p1, p2))
    assert numpy.all(gem_pool(x, low) <= gem_pool(x, high) * (1 + 1e-12))
    y, pullback = vjp(lambda t, q: gem_pool(t, q), x, numpy.array(low))
    # d y / d p per plane, through a one-hot cotangent on each output
    for index in numpy.ndindex(y.shape):
        g = numpy.zeros(y.shape)
        g[index] = 1.0
        assert pullback(g)[1] >= -1e-12


@given(global_shapes(batch=(1, 2)), st.floats(0.5, 4.0), seeds)
def test_gem_is_positively_homogeneous_above_eps(shape, p, seed):
    x = smooth_values(shape, seed, low=0.5, high=2.0)
    assert_matches(gem_pool(3.0 * x, p), 3.0 * gem_pool(x, p), rtol=1e-12)


def test_gem_gradient_is_zero_where_clamped_and_passes_at_eps():
    x = numpy.array([[[-2.0, 0.0, EPS / 2, EPS, 1.0, 2.0]]])
    _, pullback = vjp(lambda t: gem_pool(t, 3.0), x)
    grad = pullback(numpy.ones((1, 1, 1)))[0][0, 0]
    assert grad[:3].tolist() == [0.0, 0.0, 0.0]  # x < eps: the clamp blocks the gradient
    assert grad[3] > 0 and grad[4] > 0 and grad[5] > 0  # x = eps passes, as torch.clamp


def test_gem_large_p_does_not_overflow_where_the_textbook_formula_does():
    # (100)^200 = 1e400 overflows float64: PyTorch's composition returns inf, poolref the true value
    torch_or_skip()
    x = numpy.array([[[50.0, 100.0, 80.0]]])
    p = 200.0
    want = 100.0 * ((0.5**p + 1.0 + 0.8**p) / 3) ** (1 / p)  # factored by hand
    y = gem_pool(x, p)
    assert_matches(y, numpy.array([[[want]]]), rtol=1e-14)
    assert math.isinf(to_torch(x).clamp(min=EPS).pow(p).mean(dim=2, keepdim=True).pow(1 / p).item())
    # and in float32 (float16 inputs accumulate in float32): 2^200 alone would overflow both
    for dtype in (numpy.float16, numpy.float32):
        x32 = numpy.array([[[1.5, 2.0, 1.75]]], dtype=dtype)
        y32, pullback = vjp(lambda t, q: gem_pool(t, q), x32, numpy.array(p, dtype=numpy.float32))
        assert numpy.isfinite(y32).all() and abs(float(y32[0, 0, 0]) - 2.0 * 3 ** (-1 / p)) < 2e-3
        grad_x, grad_p = pullback(numpy.ones((1, 1, 1), dtype=dtype))
        assert numpy.isfinite(grad_x).all() and numpy.isfinite(grad_p).all()


def test_gem_nan_propagates_and_infinity_gives_infinity():
    y = gem_pool(numpy.array([[[1.0, numpy.nan, 2.0], [1.0, numpy.inf, 2.0]]]))
    assert math.isnan(y[0, 0, 0]) and y[0, 1, 0] == numpy.inf


@given(global_shapes(), exponents, seeds)
def test_gem_matches_torch(shape, p, seed):
    torch = torch_or_skip()
    x = _gem_input(shape, seed)
    g = smooth_values(shape[:2] + (1,) * (len(shape) - 2), seed + 2)
    xt = to_torch(x, requires_grad=True)
    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    yt = gem_by_pow_mean(torch, xt, pt, EPS)
    if shape[0]:
        yt.backward(to_torch(g))
    y, pullback = vjp(lambda t, q: gem_pool(t, q), x, numpy.array(p))
    assert_matches(y, yt.detach().numpy(), rtol=1e-12)
    if shape[0]:
        grad_x, grad_p = pullback(g)
        assert_matches(grad_x, xt.grad.numpy(), rtol=1e-9, atol=1e-14, what="gradient to x")
        assert_matches(grad_p, pt.grad.numpy(), rtol=1e-8, atol=1e-13, what="gradient to p")


def test_gem_p_as_tensor_on_the_tape():
    x = poolref.Tensor(smooth_values((2, 3, 4, 4), 0, low=0.1, high=2.0), requires_grad=True, name="x")
    p = poolref.Tensor(numpy.array([3.0]), requires_grad=True, name="p")
    with poolref.Tape() as tape:
        y = gem_pool(x, p)
        loss = y.sum()
    assert isinstance(y, poolref.Tensor) and y.requires_grad and y.shape == (2, 3, 1, 1)
    assert "gem_pool(x, p)" in str(tape)
    grad_x, grad_p = tape.gradient(loss, [x, p])
    want_x, want_p = ref.gem_pool_backward_reference(numpy.ones((2, 3, 1, 1)), x.data, 3.0, EPS)
    assert grad_p.shape == (1,) and grad_x.shape == x.shape
    assert_matches(grad_x, want_x, rtol=1e-10)
    assert_matches(grad_p, numpy.array([want_p]), rtol=1e-10)
    # only p is a Tensor: a Tensor comes out and p still receives its gradient
    q = poolref.Tensor(numpy.array(3.0), requires_grad=True)
    out = gem_pool(x.data, q)
    assert isinstance(out, poolref.Tensor)
    out.sum().backward()
    assert q.grad.shape == () and q.grad == pytest.approx(want_p, rel=1e-10)
    # plain arrays in: a plain array out
    assert type(gem_pool(x.data, 3.0)) is numpy.ndarray


# ===================================================================================================
# SoftPool
# ===================================================================================================
def test_soft_pool_worked_examples():
    # weights 1/6, 1/6, 1/6, 1/2 on [0, 0, 0, log 3]: y = log(3) / 2
    x = numpy.array([[[[0.0, 0.0], [0.0, math.log(3.0)]]]])
    assert_matches(soft_pool2d(x, 2), numpy.array([[[[math.log(3.0) / 2]]]]), rtol=1e-15)
    # gradient w_i (1 + x_i - y)
    _, pullback = vjp(lambda t: soft_pool2d(t, 2), x)
    y = math.log(3.0) / 2
    want = [[1 / 6 * (1 - y), 1 / 6 * (1 - y)], [1 / 6 * (1 - y), 0.5 * (1 + 2 * y - y)]]
    assert_matches(pullback(numpy.ones((1, 1, 1, 1)))[0][0, 0], numpy.array(want), rtol=1e-14)
    # kernel 1: the identity
    z = smooth_values((1, 2, 3, 3), 0)
    assert_matches(soft_pool2d(z, 1), z, rtol=0)


@given(soft_cases(), seeds)
def test_soft_pool_matches_loop_reference(case, seed):
    shape, kernel, stride = case
    x = smooth_values(shape, seed)
    y, pullback = vjp(lambda t: soft_pool2d(t, kernel, stride), x)
    assert_matches(y, ref.soft_pool2d_reference(x, kernel, stride or kernel), rtol=1e-12, atol=1e-15)
    g = smooth_values(y.shape, seed + 1)
    want = ref.soft_pool2d_backward_reference(g, x, kernel, stride or kernel)
    assert_matches(pullback(g)[0], want, rtol=1e-10, atol=1e-14)


@settings(max_examples=15)
@given(soft_cases(batch=(1, 1), channels=(1, 2)), seeds)
def test_soft_pool_gradcheck_and_adjoint(case, seed):
    shape, kernel, stride = case
    x = smooth_values(shape, seed)
    assert gradcheck(lambda t: soft_pool2d(t, kernel, stride), x)
    assert adjoint_test(lambda t: soft_pool2d(t, kernel, stride), x)


@given(soft_cases(), seeds)
def test_soft_pool_lies_between_window_min_and_max_and_conserves_gradient(case, seed):
    shape, kernel, stride = case
    x = smooth_values(shape, seed)
    y = soft_pool2d(x, kernel, stride)
    upper = poolref.max_pool2d(x, kernel, stride)
    lower = -poolref.max_pool2d(-x, kernel, stride)
    assert numpy.all(lower - 1e-12 <= y) and numpy.all(y <= upper + 1e-12)
    # sum_i w_i (1 + x_i - y) = 1: every window passes on exactly its output gradient
    assert_conserves_gradient(soft_pool2d, x, kernel_size=kernel, stride=stride)


@given(soft_cases(batch=(1, 2)), seeds, st.floats(-1e3, 1e3))
def test_soft_pool_is_shift_equivariant_and_finite_at_large_inputs(case, seed, shift):
    shape, kernel, stride = case
    x = smooth_values(shape, seed)
    y = soft_pool2d(x + shift, kernel, stride)
    assert numpy.isfinite(y).all()
    assert_matches(y, soft_pool2d(x, kernel, stride) + shift, rtol=1e-12, atol=1e-11)


def test_soft_pool_large_inputs_in_every_dtype():
    torch = torch_or_skip()
    x = 1000.0 + smooth_values((2, 3, 6, 6), 5, low=-3.0, high=3.0)
    for dtype, tol in ((numpy.float64, 1e-12), (numpy.float32, 1e-5), (numpy.float16, 2e-3)):
        xd = x.astype(dtype)
        y, pullback = vjp(lambda t: soft_pool2d(t, 3, 2), xd)
        grad = pullback(numpy.ones(y.shape, dtype=dtype))[0]
        assert numpy.isfinite(y).all() and numpy.isfinite(grad).all()
        want = soft_pool_by_unfold(torch, to_torch(xd.astype(numpy.float64)), 3, 2).numpy()
        assert_matches(y, want, rtol=tol)


@given(soft_cases(batch=(1, 2)), seeds, st.booleans())
def test_soft_pool_matches_torch(case, seed, unbatched):
    torch = torch_or_skip()
    shape, kernel, stride = case
    x = smooth_values(shape, seed, low=-4.0, high=4.0)
    xt = to_torch(x, requires_grad=True)
    yt = soft_pool_by_unfold(torch, xt, kernel, stride)
    g = smooth_values(tuple(yt.shape), seed + 3)
    yt.backward(to_torch(g))
    if unbatched:  # (C, H, W) in, (C, H_out, W_out) out
        x, g, want_y, want_grad = x[0], g[0], yt.detach().numpy()[0], xt.grad.numpy()[0]
    else:
        want_y, want_grad = yt.detach().numpy(), xt.grad.numpy()
    y, pullback = vjp(lambda t: soft_pool2d(t, kernel, stride), x)
    assert_matches(y, want_y, rtol=1e-12, atol=1e-14)
    assert_matches(pullback(g)[0], want_grad, rtol=1e-10, atol=1e-14, what="gradient")


def test_soft_pool_nan_propagates_to_its_windows_only():
    x = numpy.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = numpy.nan
    y = soft_pool2d(x, 2)
    assert math.isnan(y[0, 0, 0, 0]) and numpy.all(y.ravel()[1:] == 0)


def test_soft_pool_of_an_infinity_is_the_limit_not_nan():
    # Once NaN for every window holding an infinity (inf - inf in the shift, 0 * (-inf) in the sum).
    # Windows: +inf beside finite and -inf values; two +inf; -inf beside finite values; -inf only.
    inf = numpy.inf
    x = numpy.array([[[inf, 1.0, inf, inf, -inf, 0.0, -inf, -inf],
                      [-inf, 0.0, 0.0, -inf, -inf, 2.0, -inf, -inf]]])
    y, pullback = vjp(lambda t: soft_pool2d(t, 2), x)  # no RuntimeWarning (an error under pytest)
    grad = pullback(numpy.ones(y.shape))[0]
    finite = soft_pool2d(numpy.array([[[0.0, 2.0]]]), (1, 2))[0, 0, 0]  # the two -inf drop out
    assert y[0, 0, :2].tolist() == [inf, inf] and y[0, 0, 3] == -inf
    assert_matches(y[0, 0, 2], finite, rtol=1e-15)
    assert grad[0, :, :2].tolist() == [[1.0, 0.0], [0.0, 0.0]]  # the +inf takes the whole gradient
    assert grad[0, :, 2:4].tolist() == [[0.5, 0.5], [0.0, 0.0]]  # two +inf share it
    assert grad[0, :, 6:].tolist() == [[0.25, 0.25], [0.25, 0.25]]  # -inf only: as they fall together
    assert grad[0, 0, 4] == 0.0 and grad[0, 1, 4] == 0.0 and grad[0, :, 4:6].sum() == pytest.approx(1.0)
    assert_matches(y, ref.soft_pool2d_reference(x[None], (2, 2), (2, 2))[0], rtol=1e-15)
    assert_matches(grad, ref.soft_pool2d_backward_reference(numpy.ones((1,) + y.shape), x[None], (2, 2), (2, 2))[0], rtol=1e-15)


def test_soft_pool_limits_equal_the_op_at_large_finite_stand_ins():
    # An infinity is the limit of ever larger values: at +-1e4 every weight that the limit sets to
    # 0 is exp(-1e4) = 0 already in float64, so outputs and gradients must agree with the limit's
    # (an output +inf where the stand-in gives about 1e4, the exact output elsewhere)
    x = plant_nonfinite(smooth_values((2, 3, 6, 6), 70), 71, fraction=0.3)
    x = numpy.where(numpy.isnan(x), 0.5, x)  # infinities only
    x[1, 2, :2, :2] = -numpy.inf  # a window of -inf only
    stand_in = numpy.clip(x, -1e4, 1e4)
    y, pullback = vjp(lambda t: soft_pool2d(t, 2), x)
    y_big, pullback_big = vjp(lambda t: soft_pool2d(t, 2), stand_in)
    rises = numpy.isposinf(y)
    assert (y_big[rises] > 9e3).all()
    assert_matches(numpy.where(rises, 0, y), numpy.where(rises, 0, numpy.where(y == -numpy.inf, -numpy.inf, y_big)), rtol=1e-12)
    assert (y_big[y == -numpy.inf] == -1e4).all()
    g = smooth_values(y.shape, 72)
    assert_matches(pullback(g)[0], pullback_big(g)[0], rtol=1e-12, atol=1e-15, what="gradient")


def test_soft_pool_agrees_with_the_torch_composition_except_on_infinities():
    # PyTorch's unfold + softmax composition computes the same for finite values and NaN; for a
    # window holding an infinity it gives NaN, where poolref gives the limit
    torch = torch_or_skip()
    x = plant_nonfinite(smooth_values((2, 3, 6, 6), 73), 74, fraction=0.1)
    xt = to_torch(x, requires_grad=True)
    yt = soft_pool_by_unfold(torch, xt, 2)
    g = smooth_values(tuple(yt.shape), 75)
    yt.backward(to_torch(g))
    y, pullback = vjp(lambda t: soft_pool2d(t, 2), x)
    grad = pullback(g)[0]
    has_inf = poolref.max_pool2d(numpy.isinf(x).astype(float), 2) > 0  # (N, C, 3, 3) windows with an infinity
    assert has_inf.any() and (~has_inf).any()
    assert numpy.isnan(yt.detach().numpy()[has_inf]).all()
    assert not numpy.isnan(y[has_inf & ~(poolref.max_pool2d(numpy.isnan(x).astype(float), 2) > 0)]).any()
    assert_matches(y[~has_inf], yt.detach().numpy()[~has_inf], rtol=1e-12)
    clean = ~numpy.repeat(numpy.repeat(has_inf, 2, axis=2), 2, axis=3)  # elements of windows without one
    assert_matches(grad[clean], xt.grad.numpy()[clean], rtol=1e-10, atol=1e-14, what="gradient")


@pytest.mark.parametrize("layout", ["contiguous", "float16", "float32", "transposed", "reversed", "sliced", "unbatched"])
@pytest.mark.parametrize("poisoned", ["x", "gradient", "both"])
def test_soft_pool_matches_loop_reference_on_nonfinite_values(poisoned, layout):
    x = smooth_values((2, 3, 7, 8), 76, low=-3.0, high=3.0)
    x[0, 0, :2, :3] = 1.25  # ties: equal maxima
    if poisoned != "gradient":
        x = plant_nonfinite(x, 77, fraction=0.15)
        x[1, 1, :3, :3] = -numpy.inf
    x = layouts(x, "contiguous" if layout == "unbatched" else layout)
    tol = {"float16": dict(rtol=2e-3, atol=2e-3), "float32": dict(rtol=1e-5, atol=1e-6)}.get(layout, dict(rtol=1e-12, atol=1e-14))
    want = ref.soft_pool2d_reference(numpy.array(x), (3, 3), (2, 2))
    g = smooth_values(want.shape, 78)
    if poisoned != "x":
        g = plant_nonfinite(g, 79)
    g = g.astype(x.dtype)
    want_grad = ref.soft_pool2d_backward_reference(g, numpy.array(x), (3, 3), (2, 2))
    if layout == "unbatched":
        x, want, g, want_grad = x[0], want[0], g[0], want_grad[0]
    y, pullback = vjp(lambda t: soft_pool2d(t, 3, 2), x)
    assert_matches(y, want, **tol)
    assert_matches(pullback(g)[0], want_grad, **tol, what="gradient")


# ===================================================================================================
# LSE
# ===================================================================================================
def test_lse_worked_examples():
    assert_matches(lse_pool(numpy.array([[[0.0, math.log(3.0)]]])), numpy.array([[[math.log(2.0)]]]), rtol=1e-15)
    assert lse_pool(numpy.full((1, 2, 3, 3), 1000.0)).tolist() == [[[[1000.0]], [[1000.0]]]]
    # r = 2: (1/2) log((1 + e^2) / 2)
    assert_matches(lse_pool(numpy.array([[[0.0, 1.0]]]), 2.0), numpy.array([[[0.5 * math.log((1 + math.e**2) / 2)]]]), rtol=1e-15)
    # gradient: softmax(r x), no division by the count
    _, pullback = vjp(lambda t: lse_pool(t), numpy.array([[[0.0, math.log(3.0)]]]))
    assert_matches(pullback(numpy.ones((1, 1, 1)))[0], numpy.array([[[0.25, 0.75]]]), rtol=1e-15)


@given(global_shapes(), sharpness, seeds)
def test_lse_matches_loop_reference(shape, r, seed):
    x = smooth_values(shape, seed)
    y, pullback = vjp(lambda t: lse_pool(t, r), x)
    assert y.shape == shape[:2] + (1,) * (len(shape) - 2)
    assert_matches(y, ref.lse_pool_reference(x, r), rtol=1e-12, atol=1e-14)
    g = smooth_values(y.shape, seed + 1)
    assert_matches(pullback(g)[0], ref.lse_pool_backward_reference(g, x, r), rtol=1e-11, atol=1e-15)


@settings(max_examples=15)
@given(global_shapes(batch=(1, 2), channels=(1, 2)), sharpness, seeds)
def test_lse_gradcheck_and_adjoint(shape, r, seed):
    x = smooth_values(shape, seed)
    assert gradcheck(lambda t: lse_pool(t, r), x)
    assert adjoint_test(lambda t: lse_pool(t, r), x)


@given(global_shapes(batch=(1, 2)), sharpness, seeds)
def test_lse_lies_between_mean_and_max_and_conserves_gradient(shape, r, seed):
    x = smooth_values(shape, seed)
    axes = _torch_nd_axes(x)
    y = lse_pool(x, r)
    assert numpy.all(x.mean(axis=axes, keepdims=True) - 1e-12 <= y)
    assert numpy.all(y <= x.max(axis=axes, keepdims=True) + 1e-12)
    assert_conserves_gradient(lse_pool, x, r=r)


@given(global_shapes(batch=(1, 2)), seeds)
def test_lse_tends_to_mean_and_max(shape, seed):
    x = smooth_values(shape, seed)
    axes = _torch_nd_axes(x)
    assert_matches(lse_pool(x, 1e-6), x.mean(axis=axes, keepdims=True), rtol=1e-5, atol=1e-5)
    S = math.prod(shape[2:])
    # max - log(S)/r <= y <= max
    y = lse_pool(x, 1e4)
    assert numpy.all(y >= x.max(axis=axes, keepdims=True) - math.log(S) / 1e4 - 1e-12)


def test_lse_of_tiny_inputs_is_about_their_mean_not_their_max():
    # log(mean(exp(r (x - M)))): at inputs around 1e-30 every exponential rounds to 1, and the log
    # of their mean gave 0, so y = M = 3e-30; the true value is the mean, 2e-30, up to r var / 2
    y = lse_pool(numpy.array([[[3e-30, 1e-30]]]))
    assert_matches(y, numpy.full((1, 1, 1), 2e-30), rtol=1e-15)
    assert lse_pool(numpy.array([[[3e-30, 1e-30]]], dtype=numpy.float32))[0, 0, 0] == numpy.float32(2e-30)


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_lse_is_accurate_from_1e_minus_30_to_1e30(dtype):
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 60
    base = smooth_values((1, 2, 7), 96)
    for v in (1e-30, 1e-12, 1e-4, 0.3, 3.0, 40.0, 1e4, 1e12, 1e30):
        x = (base * v).astype(dtype)
        y = lse_pool(x, 1.5)
        for c in range(2):
            values = [mpmath.mpf(float(a)) for a in x[0, c]]
            want = mpmath.log(sum(mpmath.exp(1.5 * a) for a in values) / len(values)) / 1.5
            # y = M + (y - M): where y is small beside M the sum cancels, so the error is relative
            # to the inputs' size
            eps = float(numpy.finfo(dtype).eps)
            assert_matches(y[0, c, 0], numpy.array(float(want), dtype=dtype), rtol=4 * eps,
                           atol=4 * eps * float(numpy.abs(x).max()), what=f"output at {v}")


@pytest.mark.parametrize("name", ["gem_pool", "gem_pool_p_0.5", "lse_pool", "bilinear_pool", "soft_pool2d"])
def test_float32_is_float64_to_rounding_from_1e_minus_30_to_1e30(name):
    # no overflow or underflow that the float64 result (the truth at these magnitudes) does not have
    op = {"soft_pool2d": lambda t: soft_pool2d(t, 2, 1)}.get(name) or GLOBAL_OPS[name][0]
    if name.startswith("gem"):  # an eps below the smallest input: the clamp must not decide
        p = 3.0 if name == "gem_pool" else 0.5
        op = lambda t: gem_pool(t, p, eps=1e-45)  # noqa: E731
    base = smooth_values((2, 3, 4, 5), 97, low=0.5 if name.startswith("gem") else -2.0, high=2.0)
    for v in (1e-30, 1e-20, 1e-10, 1e10, 1e20, 1e30):
        x = (base * v).astype(numpy.float32)
        y, pullback = vjp(op, x)
        y64, pullback64 = vjp(op, x.astype(numpy.float64))
        # errors relative to the inputs' size too: SoftPool and LSE add a small correction to the
        # window maximum, which cancels where the output is small beside it
        scale = float(numpy.abs(x).max())
        assert_matches(y, y64.astype(numpy.float32), rtol=1e-6, atol=scale * 1e-6, what=f"output at {v}")
        g = smooth_values(y.shape, 98).astype(numpy.float32)
        want = pullback64(g.astype(numpy.float64))[0]
        assert_matches(pullback(g)[0], want.astype(numpy.float32), rtol=1e-5, atol=float(numpy.abs(want).max()) * 1e-6,
                       what=f"gradient at {v}")


@given(global_shapes(batch=(1, 2)), sharpness, seeds, st.sampled_from([1e3, -1e3, 1e5]))
def test_lse_at_large_inputs_is_finite_and_shift_equivariant(shape, r, seed, shift):
    x = smooth_values(shape, seed)
    y, pullback = vjp(lambda t: lse_pool(t, r), x + shift)
    assert numpy.isfinite(y).all()
    assert_matches(y, lse_pool(x, r) + shift, rtol=1e-13, atol=1e-9)
    g = smooth_values(y.shape, seed + 1)
    assert_matches(pullback(g)[0], ref.lse_pool_backward_reference(g, x, r), rtol=1e-9, atol=1e-14)


@given(global_shapes(batch=(1, 2)), sharpness, seeds, st.sampled_from([0.0, 1e3]))
def test_lse_matches_torch_composition(shape, r, seed, shift):
    torch = torch_or_skip()
    x = smooth_values(shape, seed) + shift
    xt = to_torch(x, requires_grad=True)
    yt = lse_by_expm1_log1p(torch, xt, r)
    g = smooth_values(tuple(yt.shape), seed + 4)
    yt.backward(to_torch(g))
    y, pullback = vjp(lambda t: lse_pool(t, r), x)
    assert_matches(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=1e-10, atol=1e-14, what="gradient")


def test_lse_infinities_follow_torch_logsumexp():
    torch = torch_or_skip()
    inf = numpy.inf
    x = numpy.array([[[1.0, inf, 2.0], [-inf, -inf, -inf], [-inf, 0.0, 0.0], [1.0, numpy.nan, 0.0]]])
    y = lse_pool(x)
    want = (torch.logsumexp(to_torch(x), dim=2, keepdim=True) - math.log(3)).numpy()
    assert_matches(y, want, rtol=1e-15)
    assert_matches(y, lse_by_expm1_log1p(torch, to_torch(x)).numpy(), rtol=1e-15)  # the composition keeps the rule
    assert y[0, :, 0].tolist()[:2] == [inf, -inf] and math.isnan(y[0, 3, 0])
    assert y[0, 2, 0] == pytest.approx(math.log(2 / 3))  # -inf contributes e^{-inf} = 0 to the mean


# ===================================================================================================
# Non-finite values: loop references and PyTorch's compositions, inputs and upstream gradients
# ===================================================================================================
def _torch_gem(torch, xt, p):
    return xt.clamp(min=EPS).pow(p).mean(dim=_torch_nd_axes(xt), keepdim=True).pow(1 / p)


def _torch_lse(torch, xt, r):
    axes = _torch_nd_axes(xt)
    count = math.prod(xt.shape[2:])
    return (torch.logsumexp(r * xt, dim=axes, keepdim=True) - math.log(count)) / r


# name: (op, forward reference, backward reference (g, x) -> grad_x, PyTorch composition, values)
GLOBAL_OPS = {
    "gem_pool": (lambda t: gem_pool(t, 3.0), lambda x: ref.gem_pool_reference(x, 3.0, EPS),
                 lambda g, x: ref.gem_pool_backward_reference(g, x, 3.0, EPS)[0],
                 lambda torch, t: _torch_gem(torch, t, 3.0), dict(low=0.1, high=2.0)),
    "gem_pool_p_0.5": (lambda t: gem_pool(t, 0.5), lambda x: ref.gem_pool_reference(x, 0.5, EPS),
                       lambda g, x: ref.gem_pool_backward_reference(g, x, 0.5, EPS)[0],
                       lambda torch, t: _torch_gem(torch, t, 0.5), dict(low=-0.5, high=2.0)),
    "lse_pool": (lambda t: lse_pool(t, 1.5), lambda x: ref.lse_pool_reference(x, 1.5),
                 lambda g, x: ref.lse_pool_backward_reference(g, x, 1.5),
                 lambda torch, t: _torch_lse(torch, t, 1.5), dict(low=-2.0, high=2.0)),
    "bilinear_pool": (lambda t: bilinear_pool(t), lambda x: ref.bilinear_pool_reference(x, None, True, True, 1e-12),
                      lambda g, x: ref.bilinear_pool_backward_reference(g, x, None, True, True, 1e-12)[0],
                      lambda torch, t: bilinear_by_einsum(torch, t, None, True, True, 1e-12), dict(low=-2.0, high=2.0)),
    "bilinear_pool_plain": (lambda t: bilinear_pool(t, signed_sqrt=False, l2_normalize=False),
                            lambda x: ref.bilinear_pool_reference(x, None, False, False, 1e-12),
                            lambda g, x: ref.bilinear_pool_backward_reference(g, x, None, False, False, 1e-12)[0],
                            lambda torch, t: bilinear_by_einsum(torch, t, None, False, False, 1e-12), dict(low=-2.0, high=2.0)),
}


def _global_case(name, poisoned, seed):
    """x (2, 3, 4, 5) and a cotangent maker, with NaN/inf planted where ``poisoned`` says."""
    values = GLOBAL_OPS[name][4]
    x = smooth_values((2, 3, 4, 5), seed, **values)
    if poisoned != "gradient":
        x = plant_nonfinite(x, seed + 1, fraction=0.08)
        x[1, 2] = -numpy.inf  # a plane of -inf only
    return x


@pytest.mark.parametrize("layout", ["contiguous", "float16", "float32", "transposed", "reversed", "sliced"])
@pytest.mark.parametrize("poisoned", ["x", "gradient", "both"])
@pytest.mark.parametrize("name", GLOBAL_OPS)
def test_global_ops_match_loop_reference_on_nonfinite_values(name, poisoned, layout):
    op, forward, backward = GLOBAL_OPS[name][:3]
    x = layouts(_global_case(name, poisoned, 80), layout)
    tol = {"float16": dict(rtol=3e-3, atol=3e-3), "float32": dict(rtol=2e-5, atol=1e-6)}.get(layout, dict(rtol=1e-11, atol=1e-14))
    y, pullback = vjp(op, x)
    assert_matches(y, forward(numpy.array(x)), **tol)
    g = smooth_values(y.shape, 82)
    if poisoned != "x":
        g = plant_nonfinite(g, 83, fraction=0.3)
    g = g.astype(x.dtype)
    assert_matches(pullback(g)[0], backward(g, numpy.array(x)), **tol, what="gradient")


@pytest.mark.parametrize("poisoned", ["x", "gradient", "both"])
@pytest.mark.parametrize("name", GLOBAL_OPS)
def test_global_ops_match_torch_compositions_on_nonfinite_values(name, poisoned):
    # the same NaNs, the same signed infinities and the same values as PyTorch's composition, for
    # NaN and +-inf in the input and the upstream gradient (torch.logsumexp's rules for LSE)
    torch = torch_or_skip()
    op, compose = GLOBAL_OPS[name][0], GLOBAL_OPS[name][3]
    x = _global_case(name, poisoned, 84)
    xt = to_torch(x, requires_grad=True)
    yt = compose(torch, xt)
    g = smooth_values(tuple(yt.shape), 86)
    if poisoned != "x":
        g = plant_nonfinite(g, 87, fraction=0.3)
    yt.backward(to_torch(g))
    y, pullback = vjp(op, x)
    assert_matches(y, yt.detach().numpy(), rtol=1e-10, atol=1e-14)
    assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=1e-9, atol=1e-13, what="gradient")


# ===================================================================================================
# Shared: dtypes, empty batch, Tensors and the tape, inputs never modified, bad input
# ===================================================================================================
OPS = {
    "gem_pool": (lambda x: gem_pool(x, 3.0), dict(low=0.1, high=2.0)),
    "soft_pool2d": (lambda x: soft_pool2d(x, 2, 1), dict(low=-2.0, high=2.0)),
    "lse_pool": (lambda x: lse_pool(x, 1.5), dict(low=-2.0, high=2.0)),
    "bilinear_pool": (lambda x: bilinear_pool(x), dict(low=0.2, high=2.0)),
}


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("dtype, tol", [(numpy.float16, 5e-3), (numpy.float32, 1e-5), (numpy.float64, 0)])
def test_dtypes_are_kept_and_close_to_float64(name, dtype, tol):
    fn, values = OPS[name]
    x64 = smooth_values((2, 3, 4, 5), 12, **values)
    x = x64.astype(dtype)
    y, pullback = vjp(fn, x)
    g = smooth_values(y.shape, 13).astype(dtype)
    grad = pullback(g)[0]
    assert y.dtype == dtype and grad.dtype == dtype
    # the float64 result on the same (rounded) input: accumulation in >= float32 keeps them close
    y64, pullback64 = vjp(fn, x.astype(numpy.float64))
    assert_matches(y, y64, rtol=tol, atol=tol)
    assert_matches(grad, pullback64(g.astype(numpy.float64))[0], rtol=max(tol, 1e-12) * 4, atol=tol * 4, what="gradient")


@pytest.mark.parametrize("name", OPS)
def test_empty_batch(name):
    fn, _ = OPS[name]
    x = numpy.zeros((0, 3, 4, 5))
    y, pullback = vjp(fn, x)
    want = {"soft_pool2d": (0, 3, 3, 4), "bilinear_pool": (0, 9)}.get(name, (0, 3, 1, 1))
    assert y.shape == want
    assert pullback(numpy.zeros(y.shape))[0].shape == x.shape


def test_empty_batch_gem_p_gradient_is_zero():
    _, pullback = vjp(lambda t, q: gem_pool(t, q), numpy.zeros((0, 2, 3)), numpy.array(2.0))
    assert pullback(numpy.zeros((0, 2, 1)))[1] == 0.0


def test_empty_batch_soft_pool_matches_torch_shape_and_unbatched_input():
    torch = torch_or_skip()
    x = numpy.zeros((0, 2, 5, 5))
    assert soft_pool2d(x, 2).shape == tuple(soft_pool_by_unfold(torch, to_torch(x), 2).shape)
    u = smooth_values((3, 5, 4), 14)
    assert_matches(soft_pool2d(u, (2, 1), 1), soft_pool2d(u[None], (2, 1), 1)[0], rtol=0)


@pytest.mark.parametrize("name", OPS)
def test_tensor_in_tensor_out_and_recorded_on_tape(name):
    fn, values = OPS[name]
    x = poolref.Tensor(smooth_values((1, 2, 3, 3), 15, **values), requires_grad=True, name="x")
    with poolref.Tape() as tape:
        y = fn(x)
        loss = (y * y).sum()
    assert isinstance(y, poolref.Tensor) and y.requires_grad
    expected_name = {"soft_pool2d": "soft_pool"}.get(name, name)
    assert f"{expected_name}(x" in str(tape)
    grad = tape.gradient(loss, x)
    # the same as the pullback of 2 y
    _, pullback = vjp(fn, x.data)
    assert_matches(grad, pullback(2 * y.data)[0], rtol=1e-14)
    assert type(fn(x.data)) is numpy.ndarray  # arrays in, arrays out


@pytest.mark.parametrize("name", OPS)
def test_inputs_are_never_modified(name):
    fn, values = OPS[name]
    x = smooth_values((2, 3, 4, 4), 16, **values)
    copy = x.copy()
    y, pullback = vjp(fn, x)
    g = numpy.ones_like(y)
    g_copy = g.copy()
    pullback(g)
    numpy.testing.assert_array_equal(x, copy)
    numpy.testing.assert_array_equal(g, g_copy)


def test_numpy_and_cupy_agree(xp):
    """The same array code on the GPU (skipped where cupy or a GPU is missing)."""
    x = smooth_values((2, 3, 5, 4), 19, low=-0.5, high=2.0)
    other = smooth_values((2, 2, 5, 4), 20)
    p = numpy.array([2.5])
    calls = [
        (lambda a, b: gem_pool(a, b), (x, p)),
        (lambda a: soft_pool2d(a, (3, 2), (1, 2)), (x,)),
        (lambda a: lse_pool(a, 2.0), (x,)),
        (lambda a, b: bilinear_pool(a, b), (x, other)),
        (lambda a: bilinear_pool(a, signed_sqrt=False), (x,)),
    ]
    for fn, primals in calls:
        y, pullback = vjp(fn, *primals)
        y_xp, pullback_xp = vjp(fn, *(xp.asarray(v) for v in primals))
        assert_matches(y_xp, y, rtol=1e-12, atol=1e-14)
        g = smooth_values(y.shape, 21)
        for got, want in zip(pullback_xp(xp.asarray(g)), pullback(g)):
            assert_matches(got, want, rtol=1e-11, atol=1e-14, what="gradient")


def test_gem_pool_gives_a_host_p_a_host_gradient_for_a_device_x(cupy):
    # p's gradient was made where x lives: a host p (the usual learnable exponent) got a device
    # gradient, which the tape now refuses
    from poolref._backend import array_module, to_numpy

    x = smooth_values((2, 3, 5, 4), 24, low=0.1, high=2.0)
    p = numpy.array([2.5])
    _, pullback = vjp(lambda a, b: gem_pool(a, b), x, p)
    _, pullback_device = vjp(lambda a, b: gem_pool(a, b), cupy.asarray(x), p)
    g = smooth_values((2, 3, 1, 1), 25)
    (grad_x, grad_p), (want_x, want_p) = pullback_device(cupy.asarray(g)), pullback(g)
    assert array_module(grad_x) is cupy and isinstance(grad_p, numpy.ndarray) and grad_p.dtype == p.dtype
    assert_matches(to_numpy(grad_x), want_x, rtol=1e-12, atol=1e-14)
    assert_matches(grad_p, want_p, rtol=1e-12, atol=1e-14, what="gradient of p")
    # and a device p with a host x: the gradient goes to the device
    _, pullback_p_on_device = vjp(lambda a, b: gem_pool(a, b), x, cupy.asarray(p))
    grad_p_device = pullback_p_on_device(g)[1]
    assert array_module(grad_p_device) is cupy
    assert_matches(to_numpy(grad_p_device), want_p, rtol=1e-12, atol=1e-14)


X = numpy.ones((1, 2, 4, 4))


@pytest.mark.parametrize("call, error, words", [
    (lambda: gem_pool(X, 0), ValueError, "p=0"),
    (lambda: gem_pool(X, -1.5), ValueError, "p=-1.5"),
    (lambda: gem_pool(X, float("nan")), ValueError, "p=nan"),
    (lambda: gem_pool(X, float("inf")), ValueError, "p=inf"),
    (lambda: gem_pool(X, True), ValueError, "p=True"),
    (lambda: gem_pool(X, "3"), TypeError, "p='3'"),
    (lambda: gem_pool(X, numpy.array([2.0, 3.0])), ValueError, "p with shape (2,)"),
    (lambda: gem_pool(X, numpy.array(3)), TypeError, "p with dtype int64"),
    (lambda: gem_pool(X, numpy.array(numpy.nan)), ValueError, "p=nan"),
    (lambda: gem_pool(X, poolref.Tensor(numpy.array(-2.0), requires_grad=True)), ValueError, "p=-2.0"),
    (lambda: gem_pool(X, 3.0, eps=0.0), ValueError, "eps=0.0"),
    (lambda: gem_pool(X, 3.0, eps=float("nan")), ValueError, "eps=nan"),
    (lambda: gem_pool(X[0, 0], 3.0), ValueError, "shape (4, 4)"),
    (lambda: gem_pool(X.astype(numpy.int32)), TypeError, "dtype int32"),
    (lambda: gem_pool(numpy.ones((1, 2, 0))), ValueError, "shape (1, 2, 0)"),
    (lambda: soft_pool2d(X, 0), ValueError, "kernel_size=(0, 0)"),
    (lambda: soft_pool2d(X, 2, stride=(1, 0)), ValueError, "stride=(1, 0)"),
    (lambda: soft_pool2d(X, 5), ValueError, "output size is too small"),
    (lambda: soft_pool2d(X, 2.5), TypeError, "kernel_size=2.5"),
    (lambda: soft_pool2d(X[0, 0], 2), ValueError, "shape (4, 4)"),
    (lambda: soft_pool2d(X[None], 2), ValueError, "shape (1, 1, 2, 4, 4)"),
    (lambda: soft_pool2d(X.astype(numpy.int64), 2), TypeError, "dtype int64"),
    (lambda: lse_pool(X, 0.0), ValueError, "r=0.0"),
    (lambda: lse_pool(X, -1), ValueError, "r=-1"),
    (lambda: lse_pool(X, float("inf")), ValueError, "r=inf"),
    (lambda: lse_pool(X, float("nan")), ValueError, "r=nan"),
    (lambda: lse_pool(X, None), ValueError, "r=None"),
    (lambda: lse_pool(X[0, 0], 1.0), ValueError, "shape (4, 4)"),
    (lambda: lse_pool(X.astype(numpy.uint8)), TypeError, "dtype uint8"),
    (lambda: bilinear_pool(X, numpy.ones((2, 2, 4, 4))), ValueError, "y with shape (2, 2, 4, 4)"),
    (lambda: bilinear_pool(X, numpy.ones((1, 3, 4, 5))), ValueError, "y with shape (1, 3, 4, 5)"),
    (lambda: bilinear_pool(X, numpy.ones((1, 3, 16))), ValueError, "y with shape (1, 3, 16)"),
    (lambda: bilinear_pool(X[0, 0]), ValueError, "x with shape (4, 4)"),
    (lambda: bilinear_pool(X, numpy.ones(4)), ValueError, "y with shape (4,)"),
    (lambda: bilinear_pool(X.astype(numpy.int16)), TypeError, "x with dtype int16"),
    (lambda: bilinear_pool(X, X.astype(numpy.int16)), TypeError, "y with dtype int16"),
    (lambda: bilinear_pool(X, X.astype(numpy.float32)), TypeError, "y with dtype float32"),
    (lambda: bilinear_pool(X, eps=0.0), ValueError, "eps=0.0"),
    (lambda: bilinear_pool(X, eps=float("inf")), ValueError, "eps=inf"),
    (lambda: bilinear_pool(X, signed_sqrt=1), TypeError, "signed_sqrt=1"),
    (lambda: bilinear_pool(X, l2_normalize="yes"), TypeError, "l2_normalize='yes'"),
])
def test_bad_input_is_refused_with_a_clear_message(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
