"""Tests of the plain-loop references for fractional, stochastic and mixed pooling.

Worked examples and rules (SEMANTICS.md sections 6-7), the sample layout, the sampler's probabilities,
finite-difference checks of the hand-derived gradients, and cross-checks against PyTorch (skipped
without torch) on small random configurations.
"""

import math

import numpy
import pytest

from poolref.reference.stochastic import (
    SAMPLE_COLUMN,
    fractional_intervals,
    fractional_max_pool_backward_reference,
    fractional_max_pool_reference,
    mixed_pool_backward_reference,
    mixed_pool_reference,
    stochastic_pool_backward_reference,
    stochastic_pool_reference,
)

NAN = float("nan")


# --------------------------------------------------------------------------------------------------
# Fractional max pooling
# --------------------------------------------------------------------------------------------------
def test_fractional_intervals_worked_cases():
    # alpha = (10 - 2)/3 = 8/3; u = 0.5: floor(1.5*8/3) - floor(4/3) = 4 - 1 = 3, floor(2.5*8/3) - 1 = 5
    assert fractional_intervals(numpy.float64(0.5), 10, 4, 2) == [0, 3, 5, 8]
    assert fractional_intervals(numpy.float64(0.0), 10, 4, 2) == [0, 2, 5, 8]
    # one window: it starts at L - k whatever u is
    assert fractional_intervals(numpy.float64(0.9), 7, 1, 3) == [4]
    # O = L - k + 1 gives alpha = 1: every start, a stride-1 max pooling
    assert fractional_intervals(numpy.float64(0.7), 6, 5, 2) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", range(5))
def test_fractional_intervals_step_by_floor_or_ceil_of_alpha(seed):
    rng = numpy.random.default_rng(seed)
    for _ in range(50):
        k = int(rng.integers(1, 4))
        L = int(rng.integers(k + 1, 40))
        O = int(rng.integers(2, L - k + 2))
        starts = fractional_intervals(numpy.float64(rng.random()), L, O, k)
        alpha = (L - k) / (O - 1)
        steps = numpy.diff(starts)
        assert starts[0] == 0 and starts[-1] == L - k
        assert all(math.floor(alpha) <= s <= math.ceil(alpha) for s in steps[:-1])
        assert all(s >= 1 for s in steps)  # alpha >= 1: no repeated window


def test_fractional_intervals_round_in_the_samples_dtype():
    # float16 arithmetic rounds every step: (i + u) * alpha differs from the float64 result
    u16 = numpy.float16(0.2998)
    half = fractional_intervals(u16, 200, 50, 2)
    double = fractional_intervals(numpy.float64(u16), 200, 50, 2)
    assert half != double and half[-1] == double[-1] == 198


def test_fractional_reference_ties_nan_and_all_minus_infinity():
    u = numpy.zeros((1, 1, 2))
    x = numpy.ones((1, 1, 4, 4))
    _, i = fractional_max_pool_reference(x, (2, 2), (2, 2), u)
    assert i.tolist() == [[[[0, 2], [8, 10]]]]  # ties: the window's first element
    x = numpy.zeros((1, 1, 4, 4))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = NAN
    x[0, 0, 1, 1] = 5.0
    y, i = fractional_max_pool_reference(x, (2, 2), (2, 2), u)
    assert math.isnan(y[0, 0, 0, 0]) and i[0, 0, 0, 0] == 4  # the last NaN in scan order
    y, i = fractional_max_pool_reference(numpy.full((1, 1, 4, 4), -numpy.inf), (2, 2), (2, 2), u)
    assert numpy.isneginf(y).all() and i.tolist() == [[[[0, 2], [8, 10]]]]


def test_fractional_sample_columns_2d_width_first_3d_time_first():
    assert SAMPLE_COLUMN == {2: (1, 0), 3: (0, 1, 2)}
    x = numpy.arange(100.0).reshape(1, 1, 10, 10)
    _, i = fractional_max_pool_reference(x, (2, 2), (4, 4), numpy.array([[[0.5, 0.0]]]))
    # u = 0.5 moves the second window to column 3 (width); the rows keep the u = 0 starts 0, 2, 5, 8
    assert (i[0, 0, 0] % 10).tolist() == [1, 4, 6, 9] and (i[0, 0, :, 0] // 10).tolist() == [1, 3, 6, 9]
    x3 = numpy.arange(1000.0).reshape(1, 1, 10, 10, 10)
    _, i = fractional_max_pool_reference(x3, (2, 2, 2), (4, 4, 4), numpy.array([[[0.5, 0.0, 0.0]]]))
    assert (i[0, 0, :, 0, 0] // 100).tolist() == [1, 4, 6, 9]  # column 0 moved the time axis
    assert (i[0, 0, 0, 0, :] % 10).tolist() == [1, 3, 6, 9]


def test_fractional_backward_accumulates_and_conserves():
    x = numpy.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0  # the centre is the maximum of every overlapping 3x3 window
    y, i = fractional_max_pool_reference(x, (3, 3), (3, 3), numpy.array([[[0.3, 0.6]]]))
    g = numpy.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    gx = fractional_max_pool_backward_reference(g, i, x.shape)
    assert gx[0, 0, 2, 2] == g.sum() and gx.sum() == g.sum()


@pytest.mark.parametrize("n", [2, 3])
def test_fractional_reference_matches_torch(n):
    torch = pytest.importorskip("torch")
    pool = torch.nn.functional.fractional_max_pool2d if n == 2 else torch.nn.functional.fractional_max_pool3d
    rng = numpy.random.default_rng(70 + n)
    strict = 1 if n == 3 else 0  # PyTorch's 3-D check wants O + k - 1 < L
    for trial in range(10 if n == 2 else 5):
        kernel = tuple(int(rng.integers(1, 4)) for _ in range(n))
        spatial = tuple(k + strict + int(rng.integers(0, 6 if n == 2 else 3)) for k in kernel)
        out = tuple(int(rng.integers(1, L - k + 2 - strict)) for L, k in zip(spatial, kernel))
        dtype = (numpy.float64, numpy.float32, numpy.float16)[trial % 3]
        shape = (2, 2) + spatial
        if trial % 2 == 0:
            x = (rng.permutation(math.prod(shape)).reshape(shape) * 0.5 - 3.0).astype(dtype)
        else:  # ties and NaNs
            x = rng.integers(0, 3, size=shape).astype(dtype)
            x[rng.random(shape) < 0.15] = NAN
        u = rng.random((2, 2, n)).astype(dtype)
        y, idx = fractional_max_pool_reference(x, kernel, out, u)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt, it = pool(xt, kernel, output_size=out, return_indices=True, _random_samples=torch.from_numpy(u))
        numpy.testing.assert_array_equal(y, yt.detach().numpy())
        numpy.testing.assert_array_equal(idx, it.numpy())
        g = rng.standard_normal(y.shape).astype(dtype)
        yt.backward(torch.from_numpy(g))
        gx = fractional_max_pool_backward_reference(g, idx, x.shape)
        tol = {numpy.float16: 2e-3, numpy.float32: 1e-6, numpy.float64: 1e-12}[dtype]
        numpy.testing.assert_allclose(gx, xt.grad.numpy(), rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------------
# Stochastic pooling
# --------------------------------------------------------------------------------------------------
def test_stochastic_reference_picks_by_cumulative_sum():
    x = numpy.array([[[[1.0, 0.0], [2.0, 1.0]]]])  # S = 4, cumulative 1, 1, 3, 4
    picks = []
    for u in (0.0, 0.24, 0.25, 0.5, 0.74, 0.75, 0.99):
        y, sampled = stochastic_pool_reference(x, (2, 2), (2, 2), numpy.array([[[[u]]]]))
        picks.append((y.item(), sampled.item()))
    # u*S in [0,1) -> tap 0; [1,3) -> tap 2 (tap 1 is zero: never picked); [3,4) -> tap 3
    assert picks == [(1.0, 0), (1.0, 0), (2.0, 2), (2.0, 2), (2.0, 2), (1.0, 3), (1.0, 3)]


def test_stochastic_reference_zero_window_and_rounding_fallback():
    x = numpy.zeros((1, 1, 2, 2))
    y, sampled = stochastic_pool_reference(x, (2, 2), (2, 2), numpy.array([[[[0.5]]]]))
    assert y.item() == 0 and sampled.item() == -1
    assert stochastic_pool_reference(x, (2, 2), (2, 2), training=False).item() == 0
    g = stochastic_pool_backward_reference(numpy.ones((1, 1, 1, 1)), x, (2, 2), (2, 2), sampled)
    assert not g.any()
    # u just below 1 and values whose float32 sum rounds: u*S may reach the final cumulative sum;
    # the pick is then the last positive tap, never the trailing zero
    x = numpy.array([[[[0.1, 0.2], [0.3, 0.0]]]], dtype=numpy.float32)
    _, sampled = stochastic_pool_reference(x, (2, 2), (2, 2), numpy.array([[[[numpy.nextafter(1.0, 0.0)]]]]))
    assert sampled.item() == 2


def test_stochastic_reference_frequencies_follow_the_probabilities():
    # one window, many uniforms: each tap is picked with frequency a_i / S (5 binomial standard errors)
    a = numpy.array([0.5, 0.0, 2.0, 1.5])
    x = a.reshape(1, 1, 2, 2)
    draws = 4000
    uniforms = numpy.random.default_rng(3).random((draws, 1, 1, 1))
    _, sampled = stochastic_pool_reference(numpy.repeat(x, draws, axis=0), (2, 2), (2, 2), uniforms)
    frequencies = numpy.bincount(sampled.ravel(), minlength=4) / draws
    p = a / a.sum()
    assert numpy.all(numpy.abs(frequencies - p) <= 5 * numpy.sqrt(p * (1 - p) / draws))
    assert frequencies[1] == 0


def test_stochastic_reference_inference_gradient_by_finite_differences():
    rng = numpy.random.default_rng(4)
    x = rng.uniform(0.2, 2.0, (1, 2, 5, 5))
    kernel, stride = (3, 2), (1, 2)  # overlapping along H: contributions must accumulate
    g = rng.standard_normal(stochastic_pool_reference(x, kernel, stride, training=False).shape)
    analytic = stochastic_pool_backward_reference(g, x, kernel, stride, training=False)
    numeric = numpy.zeros_like(x)
    eps = 1e-6
    for index in numpy.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += eps
        minus[index] -= eps
        diff = stochastic_pool_reference(plus, kernel, stride, training=False) - stochastic_pool_reference(minus, kernel, stride, training=False)
        numeric[index] = numpy.sum(g * diff) / (2 * eps)
    numpy.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_stochastic_reference_inference_matches_torch_autograd():
    # an independent derivation: y = avg_pool(x^2) / avg_pool(x), differentiated by torch
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(5)
    x = rng.uniform(0.1, 2.0, (2, 3, 7, 6))
    kernel, stride = (3, 2), (2, 1)
    y = stochastic_pool_reference(x, kernel, stride, training=False)
    g = rng.standard_normal(y.shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    F = torch.nn.functional
    yt = F.avg_pool2d(xt * xt, kernel, stride) / F.avg_pool2d(xt, kernel, stride)
    yt.backward(torch.from_numpy(g))
    numpy.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
    gx = stochastic_pool_backward_reference(g, x, kernel, stride, training=False)
    numpy.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# Mixed pooling
# --------------------------------------------------------------------------------------------------
def test_mixed_reference_worked_case_and_padding_divisor():
    x = numpy.array([[[[1.0, 3.0], [0.0, 4.0]]]])
    assert mixed_pool_reference(x, 0.5, (2, 2), (2, 2), (0, 0)).item() == 3.0  # (4 + 2) / 2
    # with padding 1, window (0, 0) holds only x[0, 0] = 1 but divides by 4 (count_include_pad=True)
    y = mixed_pool_reference(x, 0.0, (2, 2), (2, 2), (1, 1))
    assert y[0, 0, 0, 0] == 0.25


def test_mixed_reference_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = numpy.random.default_rng(6)
    for trial in range(8):
        kernel = tuple(int(rng.integers(1, 4)) for _ in range(2))
        stride = tuple(int(rng.integers(1, 4)) for _ in range(2))
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        spatial = tuple(k + int(rng.integers(0, 5)) for k in kernel)
        lam = float(rng.choice([0.0, 1.0, rng.random()]))
        x = rng.permutation(2 * 2 * math.prod(spatial)).reshape((2, 2) + spatial) * 0.25 - 2.0
        y = mixed_pool_reference(x, lam, kernel, stride, padding)
        xt = torch.from_numpy(x).requires_grad_(True)
        yt = lam * F.max_pool2d(xt, kernel, stride, padding) + (1 - lam) * F.avg_pool2d(xt, kernel, stride, padding)
        numpy.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        g = rng.standard_normal(y.shape)
        yt.backward(torch.from_numpy(g))
        gx = mixed_pool_backward_reference(g, x, lam, kernel, stride, padding)
        numpy.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
