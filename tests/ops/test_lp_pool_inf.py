"""Lp pooling with norm_type = inf and -inf, as PyTorch 2.13 computes it (issue 15: lp_pool refused
norm_type=inf, which PyTorch accepts).

PyTorch's lp_pool{1,2,3}d test norm_type before their power formula: inf gives max_pool(|x|), -inf
gives -max_pool(-|x|) (the smallest |x|), with max pooling's rules and, through abs, torch.sgn's
gradient (0 at zero and at NaN)."""

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolref
from helpers import layouts, resolved, to_torch, torch_or_skip
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.reference import lp_pool as lp_ref
from poolref.testing import assert_matches
from poolref.testing.strategies import distinct_values, pool_cases, smooth_values

LP = {1: poolref.lp_pool1d, 2: poolref.lp_pool2d, 3: poolref.lp_pool3d}
INF = numpy.inf
dims = st.sampled_from([1, 2, 3])
norms = st.sampled_from([INF, -INF])


def small(n):
    return dict(max_extra=4 if n < 3 else 2, max_kernel=3 if n < 3 else 2)


def special_values(shape, seed):
    """Values with ties in |x| of either sign, signed zeros, NaN and infinities: the cases where which
    element wins, and the sign of a zero gradient, are decided by the rules."""
    rng = numpy.random.default_rng(seed)
    choices = numpy.array([-2.0, -1.0, -0.0, 0.0, 1.0, 2.0, 0.5, -0.5, numpy.nan, numpy.inf, -numpy.inf])
    weights = numpy.array([2, 2, 1, 1, 2, 2, 2, 2, 0.5, 0.5, 0.5])
    return rng.choice(choices, size=shape, p=weights / weights.sum())


def _draw(data, **case_keywords):
    """(n, norm_type, case, seed) for a property test."""
    n = data.draw(dims)
    p = data.draw(norms)
    case = data.draw(pool_cases(n, op="lp", **case_keywords, **small(n)))
    return n, p, case, data.draw(st.integers(0, 2**32 - 1))


def _torch_lp(x, g, p, n, kw):
    torch = torch_or_skip()
    xt = to_torch(x, requires_grad=True)
    y = getattr(torch.nn.functional, f"lp_pool{n}d")(xt, p, **kw)
    y.backward(to_torch(g))
    return y.detach().numpy(), xt.grad.numpy()


def _torch_keywords(case, n):
    # torch's lp_pool1d takes int sizes, not 1-tuples
    return {k: (case.kwargs[k][0] if n == 1 and k != "ceil_mode" else case.kwargs[k]) for k in ("kernel_size", "stride", "ceil_mode")}


# ---------------------------------------------------------------------------------------------------
# Worked examples (the numbers PyTorch 2.13 gives)
# ---------------------------------------------------------------------------------------------------
def test_lp_pool_accepts_norm_type_inf_as_pytorch_does():
    # was: "lp_pool1d: norm_type must be a finite number > 0, got norm_type=inf"
    x = numpy.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]])
    y, pullback = vjp(lambda t: poolref.lp_pool1d(t, float("inf"), 2, 2, ceil_mode=True), x)
    assert y.tolist() == [[[2.0, 4.0, 5.0]]]  # the partial window is not rescaled (finite p would be)
    assert pullback(numpy.ones_like(y))[0].tolist() == [[[0.0, 1.0, 0.0, 1.0, 1.0]]]
    y, pullback = vjp(lambda t: poolref.lp_pool1d(t, -numpy.inf, 2, 2, ceil_mode=True), x)
    assert y.tolist() == [[[1.0, 3.0, 5.0]]]
    assert pullback(numpy.ones_like(y))[0].tolist() == [[[1.0, -0.0, 1.0, -0.0, 1.0]]]


def test_lp_pool_inf_is_the_largest_magnitude_and_its_gradient_carries_the_sign():
    x = numpy.array([[[-1.0, 1.0, 2.0, -2.0]]])  # ties in |x|: the first wins
    y, pullback = vjp(lambda t: poolref.lp_pool1d(t, INF, 2), x)
    grad = pullback(numpy.ones_like(y))[0]
    assert y.tolist() == [[[1.0, 2.0]]]
    assert grad.tolist() == [[[-1.0, 0.0, 1.0, -0.0]]]
    assert numpy.signbit(grad).tolist() == [[[True, False, False, True]]]  # PyTorch's signed zeros
    assert poolref.lp_pool2d(numpy.array([[[[1.0, -5.0], [3.0, 4.0]]]]), INF, 2).tolist() == [[[[5.0]]]]


def test_lp_pool_inf_nan_wins_and_passes_no_gradient():
    x = numpy.array([[[numpy.nan, 1.0, 2.0, 3.0]]])
    y, pullback = vjp(lambda t: poolref.lp_pool1d(t, INF, 2), x)
    assert numpy.isnan(y[0, 0, 0]) and y[0, 0, 1] == 3.0
    assert pullback(numpy.ones_like(y))[0].tolist() == [[[0.0, 0.0, 0.0, 1.0]]]  # torch.sgn(nan) = 0


def test_lp_pool_inf_under_another_convention_is_refused():
    x = numpy.ones((1, 1, 4))
    for convention in ("onnx", "jax"):
        with pytest.raises(ValueError, match=f"lp_pool1d: norm_type=inf .*convention={convention!r} has no infinite norm"):
            poolref.lp_pool1d(x, INF, 2, convention=convention)
    with pytest.raises(ValueError, match="norm_type=nan"):
        poolref.lp_pool1d(x, numpy.nan, 2)


# ---------------------------------------------------------------------------------------------------
# Loop reference vs vectorised, on ties, signed zeros, NaN, infinities, float16, views, unbatched
# ---------------------------------------------------------------------------------------------------
@given(st.data())
def test_lp_pool_inf_matches_loop_reference(data):
    n, p, case, seed = _draw(data)
    x = special_values(case.x.shape, seed)
    dtype = data.draw(st.sampled_from([numpy.float64, numpy.float32, numpy.float16]))
    x = x.astype(dtype)
    y, pullback = vjp(lambda t: LP[n](t, p, **case.kwargs), x)
    g = special_values(y.shape, seed + 1).astype(dtype)
    want_y, want_grad = lp_ref.lp_pool_inf_reference(x, g, p, *resolved(x.shape[2:], case.kwargs))
    assert y.dtype == dtype
    assert_matches(y, want_y, rtol=0, zero_sign=True)
    assert_matches(pullback(g)[0], want_grad.astype(dtype), rtol=0, zero_sign=True, what="gradient")


@pytest.mark.parametrize("layout", ["transposed", "reversed", "sliced"])
def test_lp_pool_inf_on_views_and_unbatched_input(layout):
    x = layouts(special_values((2, 3, 5, 6), 11), layout)
    for p in (INF, -INF):
        want_y, want_grad = lp_ref.lp_pool_inf_reference(numpy.array(x), numpy.ones((2, 3, 2, 3)), p, *resolved((5, 6), dict(kernel_size=2)))
        y, pullback = vjp(lambda t: poolref.lp_pool2d(t, p, 2), x)
        assert_matches(y, want_y, rtol=0, zero_sign=True)
        assert_matches(pullback(numpy.ones_like(y))[0], want_grad, rtol=0, zero_sign=True)
        assert_matches(poolref.lp_pool2d(x[0], p, 2), want_y[0], rtol=0, zero_sign=True)  # unbatched


def test_lp_pool_inf_on_an_empty_batch():
    assert poolref.lp_pool2d(numpy.zeros((0, 2, 4, 4)), INF, 2).shape == (0, 2, 2, 2)


# ---------------------------------------------------------------------------------------------------
# Gradients: where |x| has a unique, nonzero maximum, the function is differentiable
# ---------------------------------------------------------------------------------------------------
@settings(max_examples=15)
@given(st.data())
def test_gradcheck_and_adjoint_lp_pool_inf(data):
    n, p, case, seed = _draw(data, batch=(1, 1), channels=(1, 2))
    # distinct magnitudes well away from 0 (so no tie and no kink is within eps), signs at random
    values = distinct_values(case.x.shape, seed)
    magnitudes = 1.0 + values - values.min()
    x = magnitudes * numpy.random.default_rng(seed).choice([-1.0, 1.0], size=case.x.shape)
    assert gradcheck(lambda t: LP[n](t, p, **case.kwargs), x, rtol=1e-6)
    assert adjoint_test(lambda t: LP[n](t, p, **case.kwargs), x)


# ---------------------------------------------------------------------------------------------------
# PyTorch: output and gradient, bit for bit (signed zeros included), on special values
# ---------------------------------------------------------------------------------------------------
@given(st.data())
def test_lp_pool_inf_matches_torch(data):
    torch_or_skip()
    n, p, case, seed = _draw(data, padding=False)
    kw = _torch_keywords(case, n)
    x = special_values(case.x.shape, seed) if data.draw(st.booleans()) else smooth_values(case.x.shape, seed)
    if data.draw(st.booleans()) and len(x):
        x = x[0]  # unbatched
    y, pullback = vjp(lambda t: LP[n](t, p, **kw), x)
    g = special_values(y.shape, seed + 1) if data.draw(st.booleans()) else smooth_values(y.shape, seed + 1)
    yt, grad_t = _torch_lp(x, g, p, n, kw)
    assert_matches(y, yt, rtol=0, zero_sign=p > 0)  # -inf: -max_pool(-|x|) flips a NaN's sign bit only
    assert_matches(pullback(g)[0], grad_t, rtol=0, zero_sign=True, what="gradient")


def test_lp_pool_inf_reference_adds_opposite_infinite_gradients_to_nan_without_a_warning():
    # regression (a hypothesis example): two windows with the same winner and upstream gradients +inf
    # and -inf; the loop reference's scatter warned "invalid value encountered in scalar add",
    # which the test run turns into an error
    from poolref.reference.lp_pool import lp_pool_inf_reference

    x = numpy.array([[[1.0, 5.0, 2.0]]])
    g = numpy.array([[[numpy.inf, -numpy.inf]]])
    _, grad = lp_pool_inf_reference(x, g, numpy.inf, (2,), (1,), (0,), (0,), (1,), False)
    assert numpy.isnan(grad[0, 0, 1]) and grad[0, 0, 0] == 0 and grad[0, 0, 2] == 0
