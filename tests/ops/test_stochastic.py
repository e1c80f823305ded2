"""Stochastic and mixed pooling: worked examples, loop reference vs vectorised, gradients,
laws, statistics, PyTorch cross-checks, bad input, dtypes, the tape."""

import math

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolref
from fractions import Fraction

from helpers import layouts, plant_nonfinite, to_torch, torch_or_skip
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.ops.fractional import fractional_max_pool2d, fractional_max_pool3d
from poolref.ops.stochastic import mixed_pool2d, stochastic_pool2d
from poolref.reference import stochastic as ref
from poolref.testing import assert_conserves_gradient, assert_matches, avg_pool_window_mass
from poolref.testing.strategies import distinct_values, pool_cases, smooth_values
from poolref.testing.torch_compositions import mixed_by_max_and_avg_pool, stochastic_expectation_by_unfold

FRACTIONAL = {2: fractional_max_pool2d, 3: fractional_max_pool3d}
TOL = {numpy.float16: 2e-3, numpy.float32: 1e-6, numpy.float64: 1e-12}


# ===================================================================================================
# Stochastic pooling
# ===================================================================================================
@st.composite
def stochastic_cases(draw, *, dtypes=(numpy.float64,), zeros=True, batch=(1, 2)):
    """(x, kernel, stride): non-negative input, some exact zeros (ReLU-like), no padding."""
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(2))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(2))  # overlapping windows too
    shape = (draw(st.integers(*batch)), draw(st.integers(1, 3))) + tuple(k + draw(st.integers(0, 4)) for k in kernel)
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.uniform(0.5, 2.0, shape).astype(draw(st.sampled_from(dtypes)))
    if zeros:
        x[rng.random(shape) < 0.3] = 0  # zero taps (never sampled) and sometimes all-zero windows
    return x, kernel, stride


def test_stochastic_worked_examples():
    x = numpy.array([[[1.0, 3.0, 2.0, 0.0], [0.0, 0.0, 2.0, 0.0]]])
    assert stochastic_pool2d(x, 2, training=False).tolist() == [[[2.5, 2.0]]]  # 10/4 and 8/4
    # seed 0 draws u = 0.637, 0.270: u*S = 2.55 (cumulative 1, 4: tap 1) and 1.08 (cumulative 2: tap 0)
    assert stochastic_pool2d(x, 2, rng=0).tolist() == [[[3.0, 2.0]]]
    _, pullback = vjp(lambda t: stochastic_pool2d(t, 2, training=False), x)
    # (2 a S - Q) / S^2 with S = 4, Q = 10 and S = 4, Q = 8
    assert pullback(numpy.ones((1, 1, 2)))[0].tolist() == [[[-0.125, 0.875, 0.5, -0.5], [-0.625, -0.625, 0.5, -0.5]]]


@given(stochastic_cases(dtypes=(numpy.float64, numpy.float32, numpy.float16)), st.integers(0, 2**32 - 1))
def test_stochastic_training_matches_loop_reference(case, seed):
    x, kernel, stride = case
    y, pullback = vjp(lambda t: stochastic_pool2d(t, kernel, stride, rng=seed), x)
    uniforms = numpy.random.default_rng(seed).random(y.shape)  # rng=seed draws one array shaped like y
    y_ref, sampled = ref.stochastic_pool_reference(x, kernel, stride, uniforms)
    assert_matches(y, y_ref, rtol=0)
    g = smooth_values(y.shape, 3, x.dtype)
    want = ref.stochastic_pool_backward_reference(g, x, kernel, stride, sampled)
    # overlapping windows may send several gradients to one element: float32/16 sums round differently
    tol = TOL[x.dtype.type]
    assert_matches(pullback(g)[0], want, rtol=tol, atol=tol, what="gradient")


@given(stochastic_cases(dtypes=(numpy.float64, numpy.float32, numpy.float16)))
def test_stochastic_inference_matches_loop_reference(case):
    x, kernel, stride = case
    y, pullback = vjp(lambda t: stochastic_pool2d(t, kernel, stride, training=False), x)
    tol = TOL[x.dtype.type] * (10 if x.dtype == numpy.float64 else 1)
    assert_matches(y, ref.stochastic_pool_reference(x, kernel, stride, training=False), rtol=tol, atol=tol)
    g = smooth_values(y.shape, 4, x.dtype)
    want = ref.stochastic_pool_backward_reference(g, x, kernel, stride, training=False)
    assert_matches(pullback(g)[0], want, rtol=tol * 10, atol=tol * 10, what="gradient")


def _exact_expectation_and_slopes(window):
    """y = sum a^2 / sum a and dy/da_i = (2 a_i S - Q) / S^2 in exact rational arithmetic."""
    a = [Fraction(float(v)) for v in window]
    S, Q = sum(a), sum(v * v for v in a)
    return float(Q / S), [float((2 * v * S - Q) / (S * S)) for v in a]


def test_stochastic_inference_squares_do_not_overflow_at_1e19_in_float32():
    # y = Q/S was formed with Q = sum a^2 in the input's dtype: (1e19)^2 * 4 > FLT_MAX, so y = inf
    x = numpy.array([[[1e19, 2e19], [0.5e19, 1e19]]], dtype=numpy.float32)
    y, pullback = vjp(lambda t: stochastic_pool2d(t, 2, training=False), x)
    want, slopes = _exact_expectation_and_slopes(x.ravel())
    assert_matches(y, numpy.full((1, 1, 1), want), rtol=2e-7)
    assert_matches(pullback(numpy.ones(y.shape, numpy.float32))[0], numpy.reshape(slopes, x.shape), rtol=1e-6, what="gradient")


def test_stochastic_inference_squares_do_not_lose_precision_at_1e_minus_22_in_float32():
    # (1e-22)^2 = 1e-44 is a float32 subnormal with 1 significant bit: Q/S came out 2% off
    x = numpy.array([[[1e-22, 2e-22], [0.5e-22, 1e-22]]], dtype=numpy.float32)
    y, pullback = vjp(lambda t: stochastic_pool2d(t, 2, training=False), x)
    want, slopes = _exact_expectation_and_slopes(x.ravel())
    assert_matches(y, numpy.full((1, 1, 1), want), rtol=2e-7)
    assert_matches(pullback(numpy.ones(y.shape, numpy.float32))[0], numpy.reshape(slopes, x.shape), rtol=1e-6, what="gradient")


@pytest.mark.parametrize("dtype, magnitudes", [
    (numpy.float16, [6e-8, 1e-5, 1.0, 1e3, 2e4]),
    (numpy.float32, [1e-44, 1e-38, 1e-30, 1e-20, 1.0, 1e20, 1e30, 1e38]),
    (numpy.float64, [1e-320, 1e-300, 1e-30, 1.0, 1e30, 1e300, 5e307]),
])
def test_stochastic_inference_is_exact_across_the_dtype_range(dtype, magnitudes):
    # against exact rational arithmetic on the (rounded) input: one rounding of the output, a few of
    # the gradient, at every magnitude the dtype holds (windows of 1, 2, 0.5, 1 and 3, 0, 0, 1 times v)
    tol = {numpy.float16: 1e-3, numpy.float32: 1e-6, numpy.float64: 1e-15}[dtype]
    for v in magnitudes:
        x = (numpy.array([[[1, 2, 3, 0], [0.5, 1, 0, 1]]]) * v).astype(dtype)
        y, pullback = vjp(lambda t: stochastic_pool2d(t, 2, training=False), x)
        grad = pullback(numpy.ones(y.shape, dtype))[0]
        for o in range(2):
            window = x[0, :, 2 * o:2 * o + 2]
            want, slopes = _exact_expectation_and_slopes(window.ravel())
            if abs(want) >= numpy.finfo(dtype).tiny:  # a subnormal output has an absolute error only
                assert_matches(y[0, 0, o], numpy.array(want, dtype), rtol=tol, what=f"output at {v}")
            assert_matches(grad[0, :, 2 * o:2 * o + 2], numpy.reshape(slopes, (2, 2)), rtol=tol, atol=tol, what=f"gradient at {v}")


@pytest.mark.parametrize("layout", ["contiguous", "float16", "float32", "transposed", "reversed", "sliced", "unbatched"])
def test_stochastic_inference_matches_loop_reference_on_nonfinite_gradients(layout):
    # the input must be finite (it is a distribution); the upstream gradient may hold NaN and
    # infinities: each reaches exactly the taps of its window (NaN * 0 is NaN: every tap), and a
    # window of zeros passes nothing, not even a NaN
    rng = numpy.random.default_rng(50)
    x = rng.uniform(0.5, 2.0, (2, 3, 7, 8))
    x[rng.random(x.shape) < 0.3] = 0
    x[0, 0, :3, :3] = 0  # a window of zeros
    x = layouts(x, "contiguous" if layout == "unbatched" else layout)
    y, pullback = vjp(lambda t: stochastic_pool2d(t, 3, 2, training=False), x[0] if layout == "unbatched" else x)
    g = plant_nonfinite(smooth_values((2, 3, 3, 3), 51), 52, fraction=0.3).astype(x.dtype)
    g[0, 0, 0, 0] = numpy.nan  # the gradient of the window of zeros
    tol = TOL.get(x.dtype.type, 1e-12) * 10
    want = ref.stochastic_pool_backward_reference(g, numpy.array(x), (3, 3), (2, 2), training=False)
    grad = pullback(g[0] if layout == "unbatched" else g)[0]
    assert_matches(grad, want[0] if layout == "unbatched" else want, rtol=tol, atol=tol, what="gradient")
    assert not numpy.isnan(want[0, 0, :2, :2]).any()  # only the window of zeros holds these


# max pooling's backward (stochastic training and mixed pooling call it) is a scatter onto the argmax
# (or sampled tap): a NaN or infinite upstream gradient reaches that element alone, as in the loop
# references and PyTorch (it used to multiply a 0/1 mask and spread NaN over the window)


def test_stochastic_training_matches_loop_reference_on_nonfinite_gradients():
    rng = numpy.random.default_rng(53)
    x = rng.uniform(0.5, 2.0, (2, 3, 7, 8))
    y, pullback = vjp(lambda t: stochastic_pool2d(t, 3, 2, rng=54), x)
    uniforms = numpy.random.default_rng(54).random(y.shape)
    _, sampled = ref.stochastic_pool_reference(x, (3, 3), (2, 2), uniforms)
    g = plant_nonfinite(smooth_values(y.shape, 55), 56, fraction=0.3)
    want = ref.stochastic_pool_backward_reference(g, x, (3, 3), (2, 2), sampled)
    assert_matches(pullback(g)[0], want, rtol=1e-12, what="gradient")


@settings(max_examples=15)
@given(stochastic_cases(dtypes=(numpy.float64, numpy.float32)), st.booleans())
def test_stochastic_inference_matches_torch_composition(case, unbatched):
    torch = torch_or_skip()
    x, kernel, stride = case
    if unbatched and len(x):
        x = x[0]
    y, pullback = vjp(lambda t: stochastic_pool2d(t, kernel, stride, training=False), x)
    xt = to_torch(x, requires_grad=True)
    yt = stochastic_expectation_by_unfold(torch, xt, kernel, stride)
    g = smooth_values(y.shape, 6, x.dtype)
    yt.backward(to_torch(g))
    tol = TOL[x.dtype.type]
    assert_matches(y, yt.detach().numpy(), rtol=tol, atol=tol)
    assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=tol, atol=tol, what="gradient")


@given(stochastic_cases(zeros=False, batch=(1, 1)))
def test_gradcheck_stochastic_inference(case):
    x, kernel, stride = case
    assert gradcheck(lambda t: stochastic_pool2d(t, kernel, stride, training=False), x)
    assert adjoint_test(lambda t: stochastic_pool2d(t, kernel, stride, training=False), x)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gradcheck_stochastic_training_with_the_samples_fixed_by_a_seed(seed):
    # rng=seed redraws the same uniforms on every call: each output is a fixed element of x, whose
    # derivative is 1 at the sampled element (the samples are far from the cumulative-sum boundaries)
    x = numpy.random.default_rng(seed).uniform(0.5, 2.0, (1, 2, 5, 6))
    assert gradcheck(lambda t: stochastic_pool2d(t, (2, 3), (1, 2), rng=seed), x)
    assert adjoint_test(lambda t: stochastic_pool2d(t, (2, 3), (1, 2), rng=seed), x)


def test_stochastic_training_mean_equals_inference_value():
    # E[sample] = sum p_i a_i: the mean of many training draws must lie within 5 standard errors
    # (from the sample variance) of the inference value, in every window. Fixed seed: deterministic.
    x = numpy.random.default_rng(12).uniform(0.0, 3.0, (2, 3, 6, 6))
    x[x < 0.6] = 0.0
    draws = 3000
    generator = numpy.random.default_rng(13)
    samples = numpy.stack([stochastic_pool2d(x, 3, 1, rng=generator) for _ in range(draws)])
    mean = samples.mean(axis=0)
    standard_error = samples.std(axis=0, ddof=1) / math.sqrt(draws)
    expected = stochastic_pool2d(x, 3, 1, training=False)
    assert numpy.all(numpy.abs(mean - expected) <= 5 * standard_error + 1e-12)
    # the test has power: plain averaging (a wrong sampler's mean) is rejected in most windows
    wrong = poolref.avg_pool2d(x, 3, 1)
    assert numpy.mean(numpy.abs(mean - wrong) > 5 * standard_error) > 0.5


def test_stochastic_training_gradient_goes_to_the_sampled_element_only():
    x = numpy.random.default_rng(14).uniform(0.1, 1.0, (2, 2, 6, 6))
    y, pullback = vjp(lambda t: stochastic_pool2d(t, 2, rng=15), x)
    g = smooth_values(y.shape, 16)
    grad = pullback(g)[0]
    # non-overlapping 2x2 windows: exactly one element per window receives that window's gradient
    blocks = grad.reshape(2, 2, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 2, 3, 3, 4)
    assert numpy.all(numpy.count_nonzero(blocks, axis=-1) == 1)
    assert_matches(blocks.sum(axis=-1), g, rtol=0)
    # ... and the element it goes to is the one the forward output
    values = x.reshape(2, 2, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 2, 3, 3, 4)
    assert_matches(numpy.take_along_axis(values, numpy.argmax(blocks != 0, axis=-1)[..., None], -1)[..., 0], y, rtol=0)


@given(stochastic_cases())
def test_stochastic_training_conserves_gradient_outside_zero_windows(case):
    # training passes each window's gradient whole to one element; zero windows pass nothing
    x, kernel, stride = case
    nonzero = poolref.avg_pool2d(x, kernel, stride) > 0
    assert_conserves_gradient(stochastic_pool2d, x, window_mass=nonzero.astype(float), kernel_size=kernel, stride=stride, rng=5)


@pytest.mark.parametrize("training", [True, False])
def test_stochastic_zero_windows_output_zero_with_zero_gradient(training):
    x = numpy.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[1.0, 2.0], [0.0, 3.0]]  # one non-zero window out of four
    y, pullback = vjp(lambda t: stochastic_pool2d(t, 2, training=training, rng=0), x)
    assert y[0, 0, 0, 0] == y[0, 0, 0, 1] == y[0, 0, 1, 0] == 0
    grad = pullback(numpy.ones_like(y))[0]
    assert not grad[0, 0, :2].any() and not grad[0, 0, :, :2].any()
    assert numpy.isfinite(grad).all()


def test_stochastic_rng_is_reproducible():
    x = numpy.random.default_rng(17).uniform(0.0, 1.0, (2, 3, 8, 8))
    assert_matches(stochastic_pool2d(x, 2, rng=3), stochastic_pool2d(x, 2, rng=3), rtol=0)
    assert_matches(stochastic_pool2d(x, 2, rng=numpy.random.default_rng(3)), stochastic_pool2d(x, 2, rng=3), rtol=0)
    generator = numpy.random.default_rng(4)
    assert not numpy.array_equal(stochastic_pool2d(x, 2, rng=generator), stochastic_pool2d(x, 2, rng=generator))
    # unbatched draws the same uniforms, in the same order, as the batch of one
    assert_matches(stochastic_pool2d(x[:1], 2, rng=9)[0], stochastic_pool2d(x[0], 2, rng=9), rtol=0)


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32, numpy.float64])
@pytest.mark.parametrize("training", [True, False])
def test_stochastic_dtypes(dtype, training):
    x = numpy.random.default_rng(18).uniform(0.0, 2.0, (2, 3, 7, 7))
    y, pullback = vjp(lambda t: stochastic_pool2d(t, 3, 2, training=training, rng=1), x.astype(dtype))
    y64 = stochastic_pool2d(x, 3, 2, training=training, rng=1)
    grad = pullback(numpy.ones_like(y))[0]
    assert y.dtype == dtype and grad.dtype == dtype
    tol = {numpy.float16: 2e-3, numpy.float32: 1e-6, numpy.float64: 0}[dtype]
    if training:  # the rounded input may move a cumulative-sum boundary; compare with the reference
        uniforms = numpy.random.default_rng(1).random(y.shape)
        y_ref, _ = ref.stochastic_pool_reference(x.astype(dtype), (3, 3), (2, 2), uniforms)
        assert_matches(y, y_ref, rtol=0)
    else:
        assert_matches(y, y64, rtol=tol, atol=tol)


def test_stochastic_empty_batch():
    for training in (True, False):
        y, pullback = vjp(lambda t: stochastic_pool2d(t, 2, training=training, rng=0), numpy.zeros((0, 2, 6, 6)))
        assert y.shape == (0, 2, 3, 3) and pullback(numpy.zeros(y.shape))[0].shape == (0, 2, 6, 6)


def test_stochastic_inputs_are_never_modified():
    x = numpy.random.default_rng(19).uniform(0.0, 2.0, (2, 3, 7, 7)).astype(numpy.float32)
    x0 = x.copy()
    for training in (True, False):
        y, pullback = vjp(lambda t: stochastic_pool2d(t, 3, 1, training=training, rng=0), x)
        g = numpy.ones_like(y)
        pullback(g)
        numpy.testing.assert_array_equal(x, x0)
        numpy.testing.assert_array_equal(g, numpy.ones_like(y))


def test_stochastic_tensor_in_tensor_out_and_recorded_on_tape():
    x = poolref.Tensor(numpy.random.default_rng(20).uniform(0.1, 1.0, (1, 2, 4, 4)), requires_grad=True)
    with poolref.Tape() as tape:
        y = stochastic_pool2d(x, 2, rng=0)
        z = stochastic_pool2d(x, 2, training=False)
        loss = y.sum() + z.sum()
    assert isinstance(y, poolref.Tensor) and isinstance(z, poolref.Tensor)
    assert "stochastic_pool_sample" in str(tape) and "stochastic_pool_expectation" in str(tape)
    grad = tape.gradient(loss, x)
    _, pull_sample = vjp(lambda t: stochastic_pool2d(t, 2, rng=0), x.data)
    _, pull_mean = vjp(lambda t: stochastic_pool2d(t, 2, training=False), x.data)
    ones = numpy.ones((1, 2, 2, 2))
    assert_matches(grad, pull_sample(ones)[0] + pull_mean(ones)[0], rtol=1e-12)


XS = numpy.ones((1, 1, 4, 4))


@pytest.mark.parametrize("call, error, words", [
    (lambda: stochastic_pool2d(-XS, 2), ValueError, "min value -1.0"),
    (lambda: stochastic_pool2d(numpy.where(numpy.eye(4) > 0, -0.5, 1.0)[None, None], 2, training=False), ValueError, "min value -0.5"),
    (lambda: stochastic_pool2d(numpy.full((1, 1, 4, 4), numpy.nan), 2), ValueError, "x must be finite"),
    (lambda: stochastic_pool2d(numpy.full((1, 1, 4, 4), numpy.inf), 2, training=False), ValueError, "non-finite value(s), e.g. inf"),
    (lambda: stochastic_pool2d(XS.astype(numpy.int64), 2), TypeError, "dtype int64"),
    (lambda: stochastic_pool2d(XS, 0), ValueError, "kernel_size=(0, 0)"),
    (lambda: stochastic_pool2d(XS, 5), ValueError, "output size is too small"),
    (lambda: stochastic_pool2d(XS, 2, stride=(1, 0)), ValueError, "stride=(1, 0)"),
    (lambda: stochastic_pool2d(XS, 2, training="yes"), TypeError, "training='yes'"),
    (lambda: stochastic_pool2d(XS, 2, rng=1.5), TypeError, "rng=1.5"),
    (lambda: stochastic_pool2d(XS[0, 0], 2), ValueError, "shape (4, 4)"),
])
def test_stochastic_bad_input_is_refused_with_a_clear_message(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


# ===================================================================================================
# Mixed pooling
# ===================================================================================================
@st.composite
def mixed_cases(draw, *, dtypes=(numpy.float64,), batch=(1, 2)):
    case = draw(pool_cases(2, op="max", batch=batch, dilation=False))
    lam = draw(st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0, 1)))
    # mixed pooling has no ceil mode or dilation; a configuration valid in ceil mode is valid without
    kwargs = {k: case.kwargs[k] for k in ("kernel_size", "stride", "padding")}
    return case.x.astype(draw(st.sampled_from(dtypes))), kwargs, lam


def test_mixed_worked_example():
    x = numpy.array([[[1.0, 3.0], [0.0, 4.0]]])
    assert mixed_pool2d(x, 2).tolist() == [[[3.0]]]  # (4 + 2) / 2
    y, pullback = vjp(lambda t: mixed_pool2d(t, 2, lam=0.25), x)
    assert y.tolist() == [[[2.5]]]  # 0.25*4 + 0.75*2
    assert pullback(numpy.ones((1, 1, 1)))[0].tolist() == [[[0.1875, 0.1875], [0.1875, 0.4375]]]


@given(mixed_cases(dtypes=(numpy.float64, numpy.float32, numpy.float16)))
def test_mixed_matches_loop_reference(case):
    x, kw, lam = case
    y, pullback = vjp(lambda t: mixed_pool2d(t, **kw, lam=lam), x)
    k, s = (tuple(kw[name]) for name in ("kernel_size", "stride"))
    tol = TOL[x.dtype.type]
    assert_matches(y, ref.mixed_pool_reference(x, lam, k, s, tuple(kw["padding"])), rtol=tol, atol=tol)
    g = smooth_values(y.shape, 5, x.dtype)
    want = ref.mixed_pool_backward_reference(g, x, lam, k, s, tuple(kw["padding"]))
    assert_matches(pullback(g)[0], want, rtol=tol, atol=tol, what="gradient")


# avg_pool2d's window sums (poolref/ops/window.py) warn on inf + (-inf): reported to its owners; only
# warnings issued there are let through, mixed pooling's own are errors
@pytest.mark.filterwarnings("ignore::RuntimeWarning:poolref.ops.window")
@pytest.mark.parametrize("layout", ["contiguous", "float16", "float32", "transposed", "reversed", "sliced", "unbatched"])
@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_mixed_matches_loop_reference_on_nonfinite_input(lam, layout):
    # the max part takes NaN and -inf by PyTorch's rule (a NaN wins; an all -inf window gives -inf);
    # the average holds each NaN and infinity in its own windows (inf + (-inf) is NaN); a part of
    # weight 0 is left out. Forward, and the backward of a finite gradient.
    x = plant_nonfinite(smooth_values((2, 3, 7, 8), 60), 61, fraction=0.15)
    x[1, 2, :3, :3] = -numpy.inf  # a window of -inf only
    x = layouts(x, "contiguous" if layout == "unbatched" else layout)
    tol = TOL.get(x.dtype.type, 1e-12)
    want = ref.mixed_pool_reference(numpy.array(x), lam, (3, 3), (2, 2), (1, 1))
    g = smooth_values(want.shape, 62).astype(x.dtype)
    want_grad = ref.mixed_pool_backward_reference(g, numpy.array(x), lam, (3, 3), (2, 2), (1, 1))
    if layout == "unbatched":
        x, want, g, want_grad = x[0], want[0], g[0], want_grad[0]
    y, pullback = vjp(lambda t: mixed_pool2d(t, 3, 2, 1, lam=lam), x)
    assert_matches(y, want, rtol=tol, atol=tol)
    assert_matches(pullback(g)[0], want_grad, rtol=tol, atol=tol, what="gradient")


@pytest.mark.parametrize("lam", [0.3, 1.0])
def test_mixed_matches_loop_reference_on_nonfinite_gradients(lam):
    x = distinct_values((2, 3, 7, 8), 63)
    y, pullback = vjp(lambda t: mixed_pool2d(t, 3, 2, 1, lam=lam), x)
    g = plant_nonfinite(smooth_values(y.shape, 64), 65, fraction=0.3)
    want = ref.mixed_pool_backward_reference(g, x, lam, (3, 3), (2, 2), (1, 1))
    assert_matches(pullback(g)[0], want, rtol=1e-12, what="gradient")


def test_mixed_float32_is_float64_to_rounding_from_1e_minus_30_to_1e30():
    base = smooth_values((2, 3, 7, 8), 66)
    for v in (1e-30, 1e-20, 1e-10, 1e10, 1e20, 1e30):
        x = (base * v).astype(numpy.float32)
        y, pullback = vjp(lambda t: mixed_pool2d(t, 3, 2, 1, lam=0.3), x)
        y64, pullback64 = vjp(lambda t: mixed_pool2d(t, 3, 2, 1, lam=0.3), x.astype(numpy.float64))
        assert_matches(y, y64.astype(numpy.float32), rtol=1e-6, atol=float(numpy.abs(x).max()) * 1e-6, what=f"output at {v}")
        g = smooth_values(y.shape, 67).astype(numpy.float32)
        assert_matches(pullback(g)[0], pullback64(g.astype(numpy.float64))[0].astype(numpy.float32), rtol=1e-6, atol=1e-7,
                       what=f"gradient at {v}")


@given(mixed_cases(dtypes=(numpy.float64, numpy.float32)), st.booleans())
def test_mixed_matches_torch(case, unbatched):
    torch = torch_or_skip()
    x, kw, lam = case
    if unbatched and len(x):
        x = x[0]
    y, pullback = vjp(lambda t: mixed_pool2d(t, **kw, lam=lam), x)
    xt = to_torch(x, requires_grad=True)
    yt = mixed_by_max_and_avg_pool(torch, xt, **kw, lam=lam)  # count_include_pad=True
    g = smooth_values(y.shape, 6, x.dtype)
    yt.backward(to_torch(g))
    tol = TOL[x.dtype.type]
    assert_matches(y, yt.detach().numpy(), rtol=tol, atol=tol)
    assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=tol, atol=tol, what="gradient")


@given(mixed_cases())
def test_mixed_is_max_at_one_and_average_at_zero(case):
    x, kw, _ = case
    g = smooth_values(poolref.max_pool2d(x, **kw).shape, 7)
    for lam, pool in ((1.0, poolref.max_pool2d), (0.0, poolref.avg_pool2d)):
        y, pullback = vjp(lambda t: mixed_pool2d(t, **kw, lam=lam), x)
        y_pool, pull_pool = vjp(lambda t: pool(t, **kw), x)
        assert_matches(y, y_pool, rtol=0)
        assert_matches(pullback(g)[0], pull_pool(g)[0], rtol=0, what="gradient")


def test_mixed_at_one_is_max_even_with_infinities():
    # a zero-weight average is left out: 0 * inf would otherwise turn the maximum into NaN
    x = numpy.array([[[numpy.inf, 1.0], [2.0, 3.0]]])
    assert mixed_pool2d(x, 2, lam=1.0).tolist() == [[[numpy.inf]]]


@given(mixed_cases())
def test_mixed_conserves_gradient(case):
    # each window passes lam of its gradient through the max, (1 - lam) * valid/D through the average
    x, kw, lam = case
    mass = lam + (1 - lam) * avg_pool_window_mass(x.shape[2:], **kw)
    assert_conserves_gradient(mixed_pool2d, x, window_mass=mass, **kw, lam=lam)


@settings(max_examples=15)
@given(mixed_cases(batch=(1, 1)))
def test_gradcheck_mixed(case):
    x, kw, lam = case
    assert gradcheck(lambda t: mixed_pool2d(t, **kw, lam=lam), x)
    assert adjoint_test(lambda t: mixed_pool2d(t, **kw, lam=lam), x)


def test_mixed_low_precision_and_empty_batch():
    torch = torch_or_skip()
    x = smooth_values((2, 3, 9, 9), 8, numpy.float16)
    y, pullback = vjp(lambda t: mixed_pool2d(t, 3, 2, 1, lam=0.3), x)
    xt = to_torch(x.astype(numpy.float32), requires_grad=True)
    yt = mixed_by_max_and_avg_pool(torch, xt, 3, 2, 1, lam=0.3)
    g = smooth_values(y.shape, 9, numpy.float16)
    yt.backward(to_torch(g.astype(numpy.float32)))
    grad = pullback(g)[0]
    assert y.dtype == grad.dtype == numpy.float16
    assert_matches(y, yt.detach().numpy(), rtol=2e-3, atol=2e-3)
    assert_matches(grad, xt.grad.numpy(), rtol=2e-3, atol=2e-3, what="gradient")
    y, pullback = vjp(lambda t: mixed_pool2d(t, 2), numpy.zeros((0, 2, 5, 5)))
    assert y.shape == (0, 2, 2, 2) and pullback(numpy.zeros(y.shape))[0].shape == (0, 2, 5, 5)


def test_mixed_inputs_never_modified_and_tape():
    x = smooth_values((2, 3, 7, 7), 10)
    x0 = x.copy()
    y, pullback = vjp(lambda t: mixed_pool2d(t, 3, 2, 1, lam=0.4), x)
    g = numpy.ones_like(y)
    pullback(g)
    numpy.testing.assert_array_equal(x, x0)
    numpy.testing.assert_array_equal(g, numpy.ones_like(y))
    xt = poolref.Tensor(x, requires_grad=True)
    with poolref.Tape() as tape:
        loss = mixed_pool2d(xt, 3, 2, 1, lam=0.4).sum()
    assert isinstance(loss, poolref.Tensor) and "mixed_pool" in str(tape) and "lam=0.4" in str(tape)
    assert_matches(tape.gradient(loss, xt), pullback(g)[0], rtol=0)


@pytest.mark.parametrize("call, error, words", [
    (lambda: mixed_pool2d(XS, 2, lam=float("nan")), ValueError, "lam=nan"),
    (lambda: mixed_pool2d(XS, 2, lam=float("inf")), ValueError, "lam=inf"),
    (lambda: mixed_pool2d(XS, 2, lam=-0.1), ValueError, "lam=-0.1"),
    (lambda: mixed_pool2d(XS, 2, lam=1.5), ValueError, "lam=1.5"),
    (lambda: mixed_pool2d(XS, 2, lam=True), ValueError, "lam=True"),
    (lambda: mixed_pool2d(XS, 2, lam="0.5"), ValueError, "lam='0.5'"),
    (lambda: mixed_pool2d(XS, 2, padding=2), ValueError, "padding=2"),
    (lambda: mixed_pool2d(XS, 0), ValueError, "kernel_size=(0, 0)"),
    (lambda: mixed_pool2d(XS.astype(numpy.int32), 2), TypeError, "dtype int32"),
    (lambda: mixed_pool2d(XS[0, 0], 2), ValueError, "shape (4, 4)"),
])
def test_mixed_bad_input_is_refused_with_a_clear_message(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


# ===================================================================================================
# numpy / cupy parity (the cupy half skips without a GPU)
# ===================================================================================================
@pytest.mark.parametrize("call", [
    lambda x: fractional_max_pool2d(x, 2, (5, 4), return_indices=True, rng=3),
    lambda x: fractional_max_pool2d(x, 3, output_ratio=0.6, random_samples=numpy.random.default_rng(4).random((2, 3, 2))),
    lambda x: fractional_max_pool3d(x.reshape(2, 3, 3, 3, 11), 2, (1, 1, 6), return_indices=True, rng=5),
    lambda x: stochastic_pool2d(x, 3, 2, rng=6),
    lambda x: stochastic_pool2d(x, (2, 3), 1, training=False),
    lambda x: mixed_pool2d(x, 3, 2, 1, lam=0.3),
])
def test_numpy_and_cupy_agree(xp, call):
    from poolref._backend import to_numpy

    x = numpy.random.default_rng(21).uniform(0.0, 2.0, (2, 3, 9, 11))
    x[x < 0.3] = 0.0
    y, pullback = vjp(call, x)
    y_xp, pullback_xp = vjp(call, xp.asarray(x))
    values, values_xp = (y[0], y_xp[0]) if isinstance(y, tuple) else (y, y_xp)
    if isinstance(y, tuple):
        assert_matches(to_numpy(y_xp[1]), y[1], what="indices")
    assert_matches(to_numpy(values_xp), values, rtol=1e-12, atol=1e-13)
    g = smooth_values(values.shape, 22)
    assert_matches(to_numpy(pullback_xp(xp.asarray(g))[0]), pullback(g)[0], rtol=1e-12, atol=1e-13, what="gradient")


def test_fractional_max_pool_of_a_device_tensor_draws_its_samples_on_the_device(cupy):
    # the samples were drawn where array_module(x) said x lives; for a Tensor that was numpy
    # whatever its data, so a device Tensor's windows were computed from host samples and the
    # forward added a numpy array to a cupy one (refused by CuPy)
    from poolref._backend import to_numpy

    x = numpy.random.default_rng(23).uniform(0.0, 2.0, (2, 3, 9, 11))
    want = fractional_max_pool2d(x, 2, (5, 4), rng=7)
    got = fractional_max_pool2d(poolref.Tensor(cupy.asarray(x)), 2, (5, 4), rng=7)
    assert_matches(to_numpy(got.data), want)
    got_3d = fractional_max_pool3d(poolref.Tensor(cupy.asarray(x.reshape(2, 3, 3, 3, 11))), 2, (1, 1, 6), rng=8)
    assert_matches(to_numpy(got_3d.data), fractional_max_pool3d(x.reshape(2, 3, 3, 3, 11), 2, (1, 1, 6), rng=8))
