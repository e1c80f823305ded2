"""Fractional max pooling: worked examples, loop reference vs vectorised, gradients,
laws, statistics, PyTorch cross-checks, bad input, dtypes, the tape."""


import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolref

from helpers import to_torch, torch_or_skip
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.ops.fractional import fractional_max_pool2d, fractional_max_pool3d, fractional_starts
from poolref.reference import stochastic as ref
from poolref.testing import assert_conserves_gradient, assert_matches
from poolref.testing.strategies import distinct_values, smooth_values

FRACTIONAL = {2: fractional_max_pool2d, 3: fractional_max_pool3d}
TOL = {numpy.float16: 2e-3, numpy.float32: 1e-6, numpy.float64: 1e-12}


# ===================================================================================================
# Fractional max pooling
# ===================================================================================================
@st.composite
def fractional_cases(draw, n=None, *, dtypes=(numpy.float64,), batch=(1, 2), ties=True):
    """(x, kernel, output_size, samples) that PyTorch accepts: O + k - 1 <= L (< L in 3-D)."""
    n = n or draw(st.sampled_from([2, 3]))
    strict = 1 if n == 3 else 0
    kernel = tuple(draw(st.integers(1, 3 if n == 2 else 2)) for _ in range(n))
    spatial = tuple(k + strict + draw(st.integers(0, 6 if n == 2 else 3)) for k in kernel)
    out = tuple(draw(st.integers(1, L - k + 1 - strict)) for L, k in zip(spatial, kernel))
    dtype = draw(st.sampled_from(dtypes))
    shape = (draw(st.integers(*batch)), draw(st.integers(1, 3))) + spatial
    seed = draw(st.integers(0, 2**32 - 1))
    rng = numpy.random.default_rng(seed)
    if ties and draw(st.booleans()):  # small integers and NaNs: the tie and NaN rules
        x = rng.integers(0, 3, size=shape).astype(dtype)
        x[rng.random(shape) < 0.1] = numpy.nan
    else:
        x = distinct_values(shape, seed, dtype)
    # rng.random is < 1, but rounding to float16 (or float32) can make it 1.0, which the op refuses
    samples = numpy.minimum(rng.random((max(shape[0], 1), shape[1], n)).astype(dtype), numpy.nextafter(dtype(1), dtype(0)))
    return x, kernel, out, samples


def test_fractional_worked_example_and_indices():
    x = numpy.arange(100.0).reshape(1, 1, 10, 10)
    y, i = fractional_max_pool2d(x, 2, output_size=4, return_indices=True, random_samples=numpy.full((1, 1, 2), 0.5))
    # starts 0, 3, 5, 8 along both axes: each window's maximum is its bottom-right element
    assert y[0, 0].tolist() == [[11, 14, 16, 19], [41, 44, 46, 49], [61, 64, 66, 69], [91, 94, 96, 99]]
    assert i.tolist() == y.astype(int).tolist()
    assert fractional_starts(numpy.array([0.5, 0.0]), 10, 4, 2).tolist() == [[0, 3, 5, 8], [0, 2, 5, 8]]


def test_fractional_sample_column_layout_differs_between_2d_and_3d():
    # 2-D: column 0 drives the width; 3-D: column 0 drives the first axis (time)
    x = numpy.arange(100.0).reshape(1, 1, 10, 10)
    _, i = fractional_max_pool2d(x, 2, output_size=4, return_indices=True, random_samples=numpy.array([[[0.5, 0.0]]]))
    assert (i[0, 0, 0] % 10).tolist() == [1, 4, 6, 9] and (i[0, 0, :, 0] // 10).tolist() == [1, 3, 6, 9]
    x3 = numpy.arange(1000.0).reshape(1, 1, 10, 10, 10)
    _, i = fractional_max_pool3d(x3, 2, output_size=4, return_indices=True, random_samples=numpy.array([[[0.5, 0.0, 0.0]]]))
    assert (i[0, 0, :, 0, 0] // 100).tolist() == [1, 4, 6, 9] and (i[0, 0, 0, 0, :] % 10).tolist() == [1, 3, 6, 9]


@given(fractional_cases(dtypes=(numpy.float64, numpy.float32, numpy.float16)))
def test_fractional_matches_loop_reference(case):
    x, kernel, out, samples = case
    n = len(kernel)
    (y, i), pullback = vjp(lambda t: FRACTIONAL[n](t, kernel, out, return_indices=True, random_samples=samples), x)
    y_ref, i_ref = ref.fractional_max_pool_reference(x, kernel, out, samples[: x.shape[0]])
    assert_matches(y, y_ref, rtol=0)
    assert_matches(i, i_ref, what="indices")
    g = smooth_values(y.shape, 1, x.dtype)
    want = ref.fractional_max_pool_backward_reference(g, i_ref, x.shape)
    assert_matches(pullback(g)[0], want, rtol=TOL[x.dtype.type], atol=TOL[x.dtype.type], what="gradient")


@given(fractional_cases(dtypes=(numpy.float64, numpy.float32, numpy.float16)), st.booleans(), st.integers(0, 1))
def test_fractional_matches_torch(case, unbatched, extra_rows):
    torch = torch_or_skip()
    x, kernel, out, samples = case
    n = len(kernel)
    if unbatched and x.shape[0] == 1:
        x = x[0]
    # PyTorch accepts more sample rows than images and uses the first ones; so does poolref
    samples = numpy.concatenate([samples] + [samples[:1]] * extra_rows)
    (y, i), pullback = vjp(lambda t: FRACTIONAL[n](t, kernel, out, return_indices=True, random_samples=samples), x)
    xt = to_torch(x, requires_grad=True)
    pool = getattr(torch.nn.functional, f"fractional_max_pool{n}d")
    yt, it = pool(xt, kernel, output_size=out, return_indices=True, _random_samples=to_torch(samples))
    g = smooth_values(y.shape, 2, x.dtype)
    yt.backward(to_torch(g))
    assert y.dtype == x.dtype
    assert_matches(y, yt.detach().numpy(), rtol=0)
    assert_matches(i, it.numpy(), what="indices")
    tol = TOL[x.dtype.type]
    assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=tol, atol=tol, what="gradient")


@pytest.mark.parametrize("n, ratio", [(2, (0.5, 0.75)), (3, 0.6), (3, (0.7, 0.5, 0.6))])
def test_fractional_output_ratio_matches_torch(n, ratio):
    torch = torch_or_skip()
    x = distinct_values((2, 3) + (9, 8, 7)[:n], 3)
    samples = numpy.random.default_rng(4).random((2, 3, n))
    y, i = FRACTIONAL[n](x, 2, output_ratio=ratio, return_indices=True, random_samples=samples)
    pool = getattr(torch.nn.functional, f"fractional_max_pool{n}d")
    yt, it = pool(to_torch(x), 2, output_ratio=ratio, return_indices=True, _random_samples=to_torch(samples))
    assert_matches(y, yt.numpy(), rtol=0)
    assert_matches(i, it.numpy(), what="indices")


@settings(max_examples=12)
@given(fractional_cases(batch=(1, 1), ties=False))
def test_gradcheck_fractional(case):
    x, kernel, out, samples = case
    n = len(kernel)
    assert gradcheck(lambda t: FRACTIONAL[n](t, kernel, out, random_samples=samples), x)
    assert adjoint_test(lambda t: FRACTIONAL[n](t, kernel, out, random_samples=samples), x)


def test_gradcheck_fractional_with_a_seed_holds_the_windows_fixed():
    # an int seed redraws the same samples on every call, so finite differences see the same windows
    x = distinct_values((1, 2, 7, 6), 5)
    assert gradcheck(lambda t: fractional_max_pool2d(t, 2, (4, 3), rng=11), x, rtol=1e-6)


@given(fractional_cases(ties=False))
def test_fractional_conserves_gradient(case):
    x, kernel, out, samples = case
    assert_conserves_gradient(FRACTIONAL[len(kernel)], x, kernel_size=kernel, output_size=out, random_samples=samples)


def test_fractional_rng_draws_reproducible_samples():
    x = distinct_values((2, 3, 9, 9), 6)
    with_seed = fractional_max_pool2d(x, 2, 5, return_indices=True, rng=7)[1]
    explicit = numpy.random.default_rng(7).random((2, 3, 2))  # what rng=7 draws: one (N, C, 2) array
    assert_matches(with_seed, fractional_max_pool2d(x, 2, 5, return_indices=True, random_samples=explicit)[1])
    assert_matches(with_seed, fractional_max_pool2d(x, 2, 5, return_indices=True, rng=numpy.random.default_rng(7))[1])
    generator = numpy.random.default_rng(8)
    first, second = (fractional_max_pool2d(x, 2, 5, return_indices=True, rng=generator)[1] for _ in range(2))
    assert not numpy.array_equal(first, second)  # a Generator advances: new windows on each call


def test_fractional_float16_samples_stay_below_one():
    # float64 draws rounded to float16 can reach 1.0; the op keeps them below 1, as torch.rand does
    from poolref.ops.fractional import _fractional_samples

    x = numpy.zeros((64, 64, 8, 8), dtype=numpy.float16)
    rounded = numpy.random.default_rng(0).random((64, 64, 2)).astype(numpy.float16)
    assert rounded.max() == 1.0  # the hazard is real for this seed
    samples = _fractional_samples(x, 2, "test", None, 0)
    assert samples.dtype == numpy.float16 and samples.max() < 1.0
    assert fractional_max_pool2d(x, 2, 4, rng=0).shape == (64, 64, 4, 4)


def test_fractional_empty_batch_and_unbatched():
    torch = torch_or_skip()
    x = numpy.zeros((0, 2, 6, 6))
    y, pullback = vjp(lambda t: fractional_max_pool2d(t, 2, 3, rng=0), x)
    assert y.shape == tuple(torch.nn.functional.fractional_max_pool2d(to_torch(x), 2, 3).shape) == (0, 2, 3, 3)
    assert pullback(numpy.zeros(y.shape))[0].shape == x.shape
    y3 = fractional_max_pool3d(numpy.zeros((0, 1, 5, 5, 5)), 2, 3, random_samples=numpy.zeros((0, 1, 3)))
    assert y3.shape == (0, 1, 3, 3, 3)
    # unbatched (C, H, W) with samples (1, C, 2) is the same as the batch of one
    x = distinct_values((1, 2, 7, 7), 9)
    samples = numpy.random.default_rng(1).random((1, 2, 2))
    assert_matches(fractional_max_pool2d(x[0], 3, 4, random_samples=samples),
                   fractional_max_pool2d(x, 3, 4, random_samples=samples)[0], rtol=0)


X4 = numpy.zeros((1, 2, 6, 6))
X5 = numpy.zeros((1, 2, 6, 6, 6))
U2 = numpy.zeros((1, 2, 2))


@pytest.mark.parametrize("call, error, words", [
    (lambda: fractional_max_pool2d(X4, 2), ValueError, "output_size=None and output_ratio=None"),
    (lambda: fractional_max_pool2d(X4, 2, 3, 0.5), ValueError, "output_size=3 and output_ratio=0.5"),
    (lambda: fractional_max_pool2d(X4, 2, (6, 5)), ValueError, "kernel_size=(2, 2) is too large"),
    (lambda: fractional_max_pool2d(X4, 7, 1), ValueError, "kernel_size=(7, 7) is too large"),
    (lambda: fractional_max_pool3d(X5, 2, (5, 3, 3)), ValueError, "output + kernel - 1 < input"),
    (lambda: fractional_max_pool3d(X5, 6, 1), ValueError, "kernel_size=(6, 6, 6) is too large"),
    (lambda: fractional_max_pool2d(X4, 0, 3), ValueError, "kernel_size=0"),
    (lambda: fractional_max_pool2d(X4, 2, (0, 3)), ValueError, "output_size=(0, 3)"),
    (lambda: fractional_max_pool2d(X4, 2, 2.5), TypeError, "output_size=2.5"),
    (lambda: fractional_max_pool2d(X4, 2, output_ratio=1.0), ValueError, "output_ratio=1.0"),
    (lambda: fractional_max_pool2d(X4, 2, output_ratio=(0.5, -0.1)), ValueError, "output_ratio=(0.5, -0.1)"),
    (lambda: fractional_max_pool2d(X4, 2, output_ratio=float("nan")), ValueError, "output_ratio=nan"),
    (lambda: fractional_max_pool2d(X4, 2, output_ratio=(0.5,) * 3), TypeError, "output_ratio=(0.5, 0.5, 0.5)"),
    (lambda: fractional_max_pool2d(X4, 2, output_ratio=0.1), ValueError, "empty output"),
    (lambda: fractional_max_pool2d(X4, 2, 3, random_samples=numpy.zeros((1, 3, 2))), ValueError, "random_samples with shape (1, 3, 2)"),
    (lambda: fractional_max_pool2d(X4, 2, 3, random_samples=numpy.zeros((1, 2, 3))), ValueError, "random_samples with shape (1, 2, 3)"),
    (lambda: fractional_max_pool2d(X4, 2, 3, random_samples=numpy.zeros((0, 2, 2))), ValueError, "random_samples with shape (0, 2, 2)"),
    (lambda: fractional_max_pool2d(X4, 2, 3, random_samples=numpy.full((1, 2, 2), 1.0)), ValueError, "[0, 1)"),
    (lambda: fractional_max_pool2d(X4, 2, 3, random_samples=numpy.full((1, 2, 2), -0.5)), ValueError, "outside, e.g. -0.5"),
    (lambda: fractional_max_pool2d(X4, 2, 3, random_samples=numpy.full((1, 2, 2), numpy.nan)), ValueError, "outside, e.g. nan"),
    (lambda: fractional_max_pool2d(X4, 2, 3, random_samples=numpy.zeros((1, 2, 2), dtype=int)), TypeError, "dtype int64"),
    (lambda: fractional_max_pool2d(X4, 2, 3, random_samples=U2, rng=0), ValueError, "not both"),
    (lambda: fractional_max_pool2d(X4, 2, 3, rng="seed"), TypeError, "rng='seed'"),
    (lambda: fractional_max_pool2d(X4, 2, 3, rng=-1), ValueError, "rng=-1"),
    (lambda: fractional_max_pool2d(X4.astype(numpy.int32), 2, 3), TypeError, "dtype int32"),
    (lambda: fractional_max_pool2d(X4[0, 0], 2, 3), ValueError, "shape (6, 6)"),
])
def test_fractional_bad_input_is_refused_with_a_clear_message(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


@pytest.mark.parametrize("n, kernel, out", [
    (2, 2, (5, 5)), (2, 2, (6, 5)), (2, 6, (1, 1)), (2, 7, (1, 1)), (2, (1, 3), (6, 4)), (2, (1, 3), (6, 5)),
    (3, 2, (4, 4, 4)), (3, 2, (5, 3, 3)), (3, 2, (3, 3, 5)), (3, 5, 1), (3, 6, 1),
])
def test_fractional_size_checks_agree_with_torch(n, kernel, out):
    # PyTorch's 2-D check is O + k - 1 <= L, its 3-D check O + k - 1 < L; poolref refuses exactly those
    torch = torch_or_skip()
    x = X4 if n == 2 else X5
    pool = getattr(torch.nn.functional, f"fractional_max_pool{n}d")
    samples = numpy.zeros((1, 2, n))
    try:
        pool(to_torch(x), kernel, output_size=out, _random_samples=to_torch(samples))
        torch_refuses = False
    except RuntimeError:
        torch_refuses = True
    try:
        FRACTIONAL[n](x, kernel, out, random_samples=samples)
        poolref_refuses = False
    except ValueError:
        poolref_refuses = True
    assert poolref_refuses == torch_refuses


def test_fractional_inputs_are_never_modified():
    x = distinct_values((2, 3, 7, 7), 10)
    samples = numpy.random.default_rng(2).random((2, 3, 2)).astype(numpy.float32)  # converted, not changed
    x0, s0 = x.copy(), samples.copy()
    y, pullback = vjp(lambda t: fractional_max_pool2d(t, 2, 4, random_samples=samples), x)
    g = numpy.ones_like(y)
    pullback(g)
    numpy.testing.assert_array_equal(x, x0)
    numpy.testing.assert_array_equal(samples, s0)
    numpy.testing.assert_array_equal(g, numpy.ones_like(y))


def test_fractional_tensor_in_tensor_out_and_recorded_on_tape():
    x = poolref.Tensor(distinct_values((1, 2, 6, 6), 0), requires_grad=True)
    with poolref.Tape() as tape:
        y, i = fractional_max_pool2d(x, 2, 3, return_indices=True, rng=0)
        loss = y.sum()
    assert isinstance(y, poolref.Tensor) and isinstance(i, poolref.Tensor) and not i.requires_grad
    assert "fractional_max_pool" in str(tape)
    grad = tape.gradient(loss, x)
    assert grad.shape == x.shape and grad.sum() == pytest.approx(y.data.size)
