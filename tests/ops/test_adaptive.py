"""Adaptive and global pooling: bins, loop reference, gradients, laws, PyTorch, bad input."""

import math

import numpy
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import poolref
from helpers import assert_device_agrees, layouts, plant_nonfinite, to_torch, torch_or_skip
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.reference import adaptive as ref
from poolref.testing import assert_conserves_gradient, assert_matches
from poolref.testing.strategies import adaptive_cases, distinct_values, smooth_values

AVG = {1: poolref.adaptive_avg_pool1d, 2: poolref.adaptive_avg_pool2d, 3: poolref.adaptive_avg_pool3d}
MAX = {1: poolref.adaptive_max_pool1d, 2: poolref.adaptive_max_pool2d, 3: poolref.adaptive_max_pool3d}
dims = st.sampled_from([1, 2, 3])


def sized(n):
    return dict(max_size=9 if n < 3 else 5)


def test_bins_overlap_and_are_uneven():
    # 8 -> 6: [0,2) [1,3) [2,4) [4,6) [5,7) [6,8)
    x = numpy.arange(8.0).reshape(1, 1, 8)
    numpy.testing.assert_array_equal(poolref.adaptive_max_pool1d(x, 6)[0, 0], [1, 2, 3, 5, 6, 7])
    numpy.testing.assert_array_equal(poolref.adaptive_avg_pool1d(x, 6)[0, 0], [0.5, 1.5, 2.5, 4.5, 5.5, 6.5])


def test_upsampling_repeats_elements():
    x = numpy.array([[[1.0, 2.0]]])
    numpy.testing.assert_array_equal(poolref.adaptive_avg_pool1d(x, 5), [[[1, 1, 1.5, 2, 2]]])


def test_none_in_output_size_keeps_that_axis():
    x = numpy.zeros((1, 2, 5, 7))
    assert poolref.adaptive_avg_pool2d(x, (None, 3)).shape == (1, 2, 5, 3)


@given(st.data())
def test_adaptive_avg_matches_loop_reference(data):
    n = data.draw(dims)
    case = data.draw(adaptive_cases(n, distinct=False, **sized(n)))
    out = case.kwargs["output_size"]
    y = AVG[n](case.x, out)
    assert_matches(y, ref.adaptive_avg_pool_reference(case.x, out), rtol=1e-12, atol=1e-14)
    g = smooth_values(y.shape, 1)
    _, pullback = vjp(lambda t: AVG[n](t, out), case.x)
    assert_matches(pullback(g)[0], ref.adaptive_avg_pool_backward_reference(g, case.x.shape, out), rtol=1e-12, atol=1e-14)


@given(st.data())
def test_adaptive_max_matches_loop_reference_with_ties_and_nans(data):
    n = data.draw(dims)
    case = data.draw(adaptive_cases(n, **sized(n)))
    out = case.kwargs["output_size"]
    x = case.x
    if data.draw(st.booleans()):
        rng = numpy.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
        x = rng.integers(0, 3, size=x.shape).astype(numpy.float64)
        x[rng.random(x.shape) < 0.1] = numpy.nan
    y, i = MAX[n](x, out, return_indices=True)
    y_ref, i_ref = ref.adaptive_max_pool_reference(x, out)
    assert_matches(y, y_ref, rtol=0)
    assert_matches(i, i_ref, what="indices")
    g = smooth_values(y.shape, 2)
    _, pullback = vjp(lambda t: MAX[n](t, out), x)
    assert_matches(pullback(g)[0], ref.adaptive_max_pool_backward_reference(g, i_ref, x.shape), rtol=1e-12)


@settings(max_examples=15)
@given(st.data())
def test_gradcheck_adaptive(data):
    n = data.draw(dims)
    case = data.draw(adaptive_cases(n, max_size=6 if n < 3 else 3))
    x = case.x[:1, :1]
    out = case.kwargs["output_size"]
    # an axis both read and written at more than one place, else every bin averages the same
    # elements and the constant output proves nothing
    assume(any(length > 1 and size > 1 for length, size in zip(x.shape[2:], out)))
    assert gradcheck(lambda t: AVG[n](t, out), x)
    assert adjoint_test(lambda t: AVG[n](t, out), x)
    assert gradcheck(lambda t: MAX[n](t, out), x)


@given(st.data())
def test_adaptive_conservation_laws(data):
    n = data.draw(dims)
    case = data.draw(adaptive_cases(n, **sized(n)))
    out = case.kwargs["output_size"]
    assert_conserves_gradient(MAX[n], case.x, output_size=out)
    # every bin hands its whole gradient to its elements: the average's window mass is 1 as well
    assert_conserves_gradient(AVG[n], case.x, output_size=out)


@given(st.data())
def test_adaptive_matches_torch(data):
    torch = torch_or_skip()
    n = data.draw(dims)
    case = data.draw(adaptive_cases(n, **sized(n)))
    out = case.kwargs["output_size"]
    x = case.x[0] if len(case.x) and data.draw(st.booleans()) else case.x  # unbatched too
    F = torch.nn.functional
    xt = to_torch(x, requires_grad=True)
    yt, it = getattr(F, f"adaptive_max_pool{n}d")(xt, out, return_indices=True)
    g = smooth_values(tuple(yt.shape), 3)
    yt.backward(to_torch(g))
    y, i = MAX[n](x, out, return_indices=True)
    assert_matches(y, yt.detach().numpy(), rtol=0)
    assert_matches(i, it.numpy(), what="indices")
    assert_matches(vjp(lambda t: MAX[n](t, out), x)[1](g)[0], xt.grad.numpy(), rtol=1e-12, what="gradient")
    xt = to_torch(x, requires_grad=True)
    yt = getattr(F, f"adaptive_avg_pool{n}d")(xt, out)
    yt.backward(to_torch(g))
    assert_matches(AVG[n](x, out), yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert_matches(vjp(lambda t: AVG[n](t, out), x)[1](g)[0], xt.grad.numpy(), rtol=1e-12, atol=1e-14, what="gradient")


def test_adaptive_max_ties_and_nans_match_torch():
    torch = torch_or_skip()
    rng = numpy.random.default_rng(5)
    x = rng.integers(0, 3, size=(2, 3, 7, 9)).astype(numpy.float32)
    x[rng.random(x.shape) < 0.1] = numpy.nan
    for out in [(3, 4), (5, 5), (7, 9), (10, 2)]:
        y, i = poolref.adaptive_max_pool2d(x, out, return_indices=True)
        yt, it = torch.nn.functional.adaptive_max_pool2d(to_torch(x), out, return_indices=True)
        assert_matches(y, yt.numpy(), rtol=0)
        assert_matches(i, it.numpy(), what="indices")


def test_global_pooling_keeps_dims_and_matches_adaptive():
    for n in (1, 2, 3):
        x = distinct_values((2, 3) + (4,) * n, n)
        ones = (1,) * n
        assert_matches(poolref.global_avg_pool(x), AVG[n](x, ones), rtol=0)
        assert_matches(poolref.global_max_pool(x), MAX[n](x, ones), rtol=0)
        assert poolref.global_lp_pool(x, 2).shape == (2, 3) + ones
        want = numpy.sqrt((x**2).sum(axis=tuple(range(2, 2 + n)), keepdims=True))
        assert_matches(poolref.global_lp_pool(x, 2), want, rtol=1e-12)
        assert_matches(poolref.global_lp_pool(x, 1, convention="onnx"), numpy.abs(x).sum(axis=tuple(range(2, 2 + n)), keepdims=True), rtol=1e-12)


def test_global_lp_matches_torch_lp_pool_with_the_whole_plane():
    torch = torch_or_skip()
    x = numpy.abs(smooth_values((2, 3, 5, 6), 4)) + 0.1
    g = smooth_values((2, 3, 1, 1), 5)
    xt = to_torch(x, requires_grad=True)
    yt = torch.nn.functional.lp_pool2d(xt, 3.0, (5, 6))
    yt.backward(to_torch(g))
    y, pullback = vjp(lambda t: poolref.global_lp_pool(t, 3.0), x)
    assert_matches(y, yt.detach().numpy(), rtol=1e-12)
    assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=1e-10, what="gradient")


def test_global_ops_gradcheck():
    x = distinct_values((2, 2, 3, 4), 7) + 10.0
    assert gradcheck(poolref.global_avg_pool, x, rtol=1e-6)
    assert gradcheck(poolref.global_max_pool, x, rtol=1e-6)
    assert gradcheck(lambda t: poolref.global_lp_pool(t, 2.5), x, rtol=1e-6)


def test_empty_batch_and_unbatched():
    y, pullback = vjp(lambda t: poolref.adaptive_max_pool2d(t, 3), numpy.zeros((0, 2, 5, 5)))
    assert y.shape == (0, 2, 3, 3) and pullback(numpy.zeros(y.shape))[0].shape == (0, 2, 5, 5)
    assert poolref.adaptive_avg_pool2d(numpy.zeros((2, 5, 5)), 3).shape == (2, 3, 3)
    assert poolref.global_avg_pool(numpy.zeros((0, 3, 4))).shape == (0, 3, 1)


def test_integer_adaptive_max():
    x = numpy.array([[[3, 9, 2, 7]]], dtype=numpy.int16)
    y = poolref.adaptive_max_pool1d(x, 2)
    assert y.dtype == numpy.int16 and y.tolist() == [[[9, 7]]]


@pytest.mark.parametrize("call, error, words", [
    (lambda: poolref.adaptive_avg_pool2d(numpy.zeros((1, 1, 4, 4)), 0), ValueError, "output_size=0"),
    (lambda: poolref.adaptive_avg_pool2d(numpy.zeros((1, 1, 4, 4)), (2, 2, 2)), TypeError, "output_size=(2, 2, 2)"),
    (lambda: poolref.adaptive_avg_pool2d(numpy.zeros((4, 4)), 2), ValueError, "shape (4, 4)"),
    (lambda: poolref.adaptive_avg_pool2d(numpy.zeros((1, 1, 4, 4), dtype=int), 2), TypeError, "dtype int64"),
    (lambda: poolref.global_avg_pool(numpy.zeros((2, 3))), ValueError, "shape (2, 3)"),
    (lambda: poolref.global_lp_pool(numpy.zeros((1, 2, 3)), -1), ValueError, "norm_type=-1"),
])
def test_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_inputs_are_never_modified():
    x = distinct_values((2, 3, 5, 5), 1)
    copy = x.copy()
    for fn in (poolref.adaptive_avg_pool2d, poolref.adaptive_max_pool2d):
        y, pullback = vjp(lambda t: fn(t, 3), x)
        pullback(numpy.ones((2, 3, 3, 3)))
    numpy.testing.assert_array_equal(x, copy)


# ---------------------------------------------------------------------------------------------------
# NaN and infinities stay in the bins that hold them, forward and backward
# ---------------------------------------------------------------------------------------------------
def with_nonfinite(shape, seed, dtype=numpy.float64):
    """Smooth values with NaN, +inf and -inf sprinkled in (about 4%, 4% and 2%: sparse enough that most
    bins stay finite and the test compares numbers, not just NaN with NaN)."""
    x = smooth_values(shape, seed)
    special = numpy.random.default_rng(seed).random(shape)
    x[special < 0.04] = numpy.nan
    x[(special >= 0.04) & (special < 0.08)] = numpy.inf
    x[(special >= 0.08) & (special < 0.1)] = -numpy.inf
    return x.astype(dtype)


def test_adaptive_avg_pool_keeps_a_nan_in_its_own_bins():
    # A dense 0/1 bin matrix multiplied the NaN by the zeros of every other bin: [nan nan nan]
    x = numpy.array([[1.0, numpy.nan, 3.0, 4.0, 5.0, 6.0]])
    assert_matches(poolref.adaptive_avg_pool1d(x, 3), [[numpy.nan, 3.5, 5.5]], rtol=0)
    _, pullback = vjp(lambda t: poolref.adaptive_avg_pool1d(t, 3), x)
    assert_matches(pullback(numpy.array([[1.0, numpy.inf, 2.0]]))[0], [[0.5, 0.5, numpy.inf, numpy.inf, 1.0, 1.0]], rtol=0)
    # overlapping bins (3 -> 2: [0, 2) and [1, 3)), and an infinity, in 2-D
    x = numpy.zeros((1, 3, 3))
    x[0, 0, 0] = numpy.inf
    assert_matches(poolref.adaptive_avg_pool2d(x, 2), [[[numpy.inf, 0.0], [0.0, 0.0]]], rtol=0)
    _, pullback = vjp(lambda t: poolref.adaptive_avg_pool2d(t, 2), x)
    grad = pullback(numpy.array([[[numpy.nan, 1.0], [1.0, 1.0]]]))[0]
    assert numpy.isnan(grad[0, :2, :2]).all() and numpy.isfinite(grad[0, 2]).all() and numpy.isfinite(grad[0, :, 2]).all()
    # global pooling: a NaN poisons its own plane only
    x = numpy.array([[[1.0, numpy.nan], [3.0, 4.0]]])
    assert_matches(poolref.global_avg_pool(x), [[[numpy.nan], [3.5]]], rtol=0)


@given(st.data())
def test_adaptive_avg_with_nan_and_inf_matches_loop_reference(data):
    n = data.draw(dims)
    case = data.draw(adaptive_cases(n, distinct=False, **sized(n)))
    out = case.kwargs["output_size"]
    seed = data.draw(st.integers(0, 2**32 - 1))
    x = with_nonfinite(case.x.shape, seed)
    y, pullback = vjp(lambda t: AVG[n](t, out), x)
    assert_matches(y, ref.adaptive_avg_pool_reference(x, out), rtol=1e-12, atol=1e-14)
    g = with_nonfinite(y.shape, seed + 1)
    assert_matches(pullback(g)[0], ref.adaptive_avg_pool_backward_reference(g, x.shape, out), rtol=1e-12, atol=1e-14)


@given(st.data())
def test_adaptive_avg_with_nan_and_inf_matches_torch(data):
    torch = torch_or_skip()
    n = data.draw(dims)
    case = data.draw(adaptive_cases(n, **sized(n)))
    out = case.kwargs["output_size"]
    # one bin over a whole plane nearly always holds a NaN or an infinity: several bins compare numbers
    assume(math.prod(out) > 1)
    dtype = data.draw(st.sampled_from([numpy.float64, numpy.float32]))
    seed = data.draw(st.integers(0, 2**32 - 1))
    x = with_nonfinite(case.x.shape, seed, dtype)
    x = x[0] if len(x) and data.draw(st.booleans()) else x  # unbatched too
    xt = to_torch(x, requires_grad=True)
    yt = getattr(torch.nn.functional, f"adaptive_avg_pool{n}d")(xt, out)
    g = with_nonfinite(tuple(yt.shape), seed + 1, dtype)
    yt.backward(to_torch(g))
    y, pullback = vjp(lambda t: AVG[n](t, out), x)
    tol = 1e-12 if dtype == numpy.float64 else 1e-5
    assert_matches(y, yt.detach().numpy(), rtol=tol, atol=tol)
    assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=tol, atol=tol, what="gradient")


def test_global_avg_pool_with_nan_and_inf_matches_torch():
    torch_or_skip()
    for n in (1, 2, 3):
        x = with_nonfinite((3, 4) + (3,) * n, n)
        x[0, 0] = 1.0  # one plane wholly finite
        g = with_nonfinite((3, 4) + (1,) * n, n + 10)
        xt = to_torch(x, requires_grad=True)
        yt = xt.mean(dim=tuple(range(2, 2 + n)), keepdim=True)
        yt.backward(to_torch(g))
        y, pullback = vjp(poolref.global_avg_pool, x)
        assert_matches(y, yt.detach().numpy(), rtol=1e-12)
        assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=1e-12, what="gradient")


def test_adaptive_avg_on_non_contiguous_views_equals_on_copies():
    base = with_nonfinite((2, 3, 7, 9), 3)
    for view in (base.transpose(0, 1, 3, 2), base[:, :, ::-1, ::2], base[..., 1:6, 2:]):
        for out in ((3, 4), (1, 1), (view.shape[2] * 2, 2)):
            y, pullback = vjp(lambda t: AVG[2](t, out), view)
            y_copy, pullback_copy = vjp(lambda t: AVG[2](t, out), view.copy())
            assert_matches(y, y_copy, rtol=0)
            g = with_nonfinite(y.shape, 4)
            assert_matches(pullback(g)[0], pullback_copy(g)[0], rtol=0, what="gradient")


# ---------------------------------------------------------------------------------------------------
# numpy / cupy parity (on the CuPy stand-in where no GPU is: tests/fake_cupy)
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda x: poolref.adaptive_avg_pool2d(x, (4, 3)),
    lambda x: poolref.adaptive_max_pool2d(x, (4, 3), return_indices=True),
    lambda x: poolref.adaptive_max_pool2d(x, (12, 5)),  # larger than the input along H
    lambda x: poolref.adaptive_avg_pool1d(x.reshape(tuple(x.shape[:-2]) + (90,)), 7),
    lambda x: poolref.adaptive_max_pool3d(x.reshape(tuple(x.shape[:-2]) + (3, 3, 10)), (2, 3, 4), return_indices=True),
    lambda x: poolref.global_avg_pool(x),
    lambda x: poolref.global_max_pool(x),
    lambda x: poolref.global_lp_pool(x, 2.0),
])
@pytest.mark.parametrize("layout", ["contiguous", "nonfinite", "float16", "transposed", "unbatched", "empty"])
def test_numpy_and_cupy_agree(xp, call, layout):
    x = smooth_values((2, 3, 9, 10), 33, low=0.1, high=2.0)
    x = {"nonfinite": lambda: plant_nonfinite(x, 34), "float16": lambda: x.astype(numpy.float16),
         "transposed": lambda: layouts(x, "transposed"), "unbatched": lambda: x[0], "empty": lambda: x[:0],
         "contiguous": lambda: x}[layout]()
    assert_device_agrees(xp, call, x, rtol=1e-12 if x.dtype == numpy.float64 else 1e-3)


# ---------------------------------------------------------------------------------------------------
# Signed zeros: PyTorch sums each bin from 0
# ---------------------------------------------------------------------------------------------------
def signed_zeros(shape, seed):
    """+0.0, -0.0 and +-1 (and a few NaN and infinities): sums cancel to zeros of either sign."""
    values = numpy.array([0.0, -0.0, -0.0, 1.0, -1.0, numpy.nan, numpy.inf])
    return values[numpy.random.default_rng(seed).choice(len(values), size=shape, p=[0.25, 0.3, 0.2, 0.1, 0.1, 0.02, 0.03])]


def test_adaptive_avg_pool_of_negative_zeros_is_positive_zero_as_in_torch():
    # PyTorch sums each bin from 0 and scatter-adds the gradient into zeros, so a bin of -0.0
    # averages to +0.0 and a -0.0 gradient gives +0.0 (torch 2.13). poolref's sums started with the
    # bin's first cell: 3 -> 2 on [-0, -0, -0] gave [-0.0, -0.0], and the gradient of [-0, -0] gave
    # [+0, -0, +0]
    x = numpy.full((1, 1, 3), -0.0)
    y, pullback = vjp(lambda t: poolref.adaptive_avg_pool1d(t, 2), x)
    assert_matches(y, [[[0.0, 0.0]]], rtol=0, zero_sign=True)
    assert_matches(pullback(numpy.full((1, 1, 2), -0.0))[0], [[[0.0, 0.0, 0.0]]], rtol=0, zero_sign=True, what="gradient")
    y, pullback = vjp(lambda t: poolref.adaptive_avg_pool2d(t, 2), numpy.full((1, 3, 3), -0.0))  # 2-D, overlapping
    assert_matches(y, numpy.zeros((1, 2, 2)), rtol=0, zero_sign=True)
    assert_matches(pullback(numpy.full((1, 2, 2), -0.0))[0], numpy.zeros((1, 3, 3)), rtol=0, zero_sign=True, what="gradient")
    # one bin per plane: PyTorch takes the mean, whose backward broadcasts g / |B|, -0.0 included
    y, pullback = vjp(lambda t: poolref.adaptive_avg_pool2d(t, 1), numpy.full((1, 2, 3), -0.0))
    assert_matches(y, [[[0.0]]], rtol=0, zero_sign=True)
    assert_matches(pullback(numpy.full((1, 1, 1), -0.0))[0], numpy.full((1, 2, 3), -0.0), rtol=0, zero_sign=True, what="gradient")


@pytest.mark.constant_outputs("inputs are mostly zeros of either sign: the property is the sign of zero outputs and gradients")
@given(st.data())
def test_adaptive_avg_signed_zeros_match_loop_reference(data):
    n = data.draw(dims)
    case = data.draw(adaptive_cases(n, **sized(n)))
    out = case.kwargs["output_size"] if data.draw(st.integers(0, 3)) else (1,) * n  # one bin per plane too
    seed = data.draw(st.integers(0, 2**32 - 1))
    x = signed_zeros(case.x.shape, seed)
    y, pullback = vjp(lambda t: AVG[n](t, out), x)
    assert_matches(y, ref.adaptive_avg_pool_reference(x, out), rtol=1e-15, atol=1e-15, zero_sign=True)
    g = signed_zeros(y.shape, seed + 1)
    # overlapping bins add their shares in another order here than in the loop (1/3 + 1/3 - 2/3 need
    # not be 0 in both): an ulp apart
    assert_matches(pullback(g)[0], ref.adaptive_avg_pool_backward_reference(g, x.shape, out), rtol=1e-15, atol=1e-15, zero_sign=True, what="gradient")


@pytest.mark.constant_outputs("inputs are mostly zeros of either sign: the property is the sign of zero outputs and gradients")
@given(st.data())
def test_adaptive_avg_signed_zeros_match_torch(data):
    torch = torch_or_skip()
    n = data.draw(dims)
    case = data.draw(adaptive_cases(n, **sized(n)))
    out = case.kwargs["output_size"] if data.draw(st.integers(0, 3)) else (1,) * n
    seed = data.draw(st.integers(0, 2**32 - 1))
    x = signed_zeros(case.x.shape, seed)
    xt = to_torch(x, requires_grad=True)
    yt = getattr(torch.nn.functional, f"adaptive_avg_pool{n}d")(xt, out)
    g = signed_zeros(tuple(yt.shape), seed + 1)
    yt.backward(to_torch(g))
    y, pullback = vjp(lambda t: AVG[n](t, out), x)
    # PyTorch divides by each axis's bin length in turn (g / k_h / k_w), poolref by their product: an ulp apart
    assert_matches(y, yt.detach().numpy(), rtol=1e-15, atol=1e-15, zero_sign=True)
    assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=1e-15, atol=1e-15, zero_sign=True, what="gradient")
