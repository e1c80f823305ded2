"""blur_pool2d and max_blur_pool2d: kornia's worked examples and rules, loop reference vs vectorised,
gradients, laws, kornia (output and gradient), bad input."""

import warnings

import numpy
import pytest
from hypothesis import given
from hypothesis import strategies as st

import poolref
from helpers import layouts, plant_nonfinite
from poolref.autograd import Tape, Tensor, adjoint_test, gradcheck, vjp
from poolref.ops.blur import binomial_weights, blur_pool2d, max_blur_pool2d
from poolref.reference.blur import (
    blur_pool_backward_reference,
    blur_pool_reference,
    max_blur_pool_backward_reference,
    max_blur_pool_reference,
)
from poolref.testing import assert_conserves_gradient, assert_matches, blur_pool_window_mass


def gradients(fn, x, g, *args):
    """(y, grad_x) of ``fn(x, *args)`` through the tape."""
    y, pullback = vjp(lambda t: fn(t, *args), x)
    return y, pullback(g)[0]


def references(op, x, g, kernel_size, stride, max_pool_size=2):
    """(y, grad_x) of the loop references, for batched ``x``."""
    s = (stride, stride)
    if op == "blur":
        return (blur_pool_reference(x, kernel_size, s),
                blur_pool_backward_reference(g, x.shape, kernel_size, s, dtype=x.dtype))
    m = (max_pool_size, max_pool_size)
    return (max_blur_pool_reference(x, kernel_size, s, m),
            max_blur_pool_backward_reference(g, x, kernel_size, s, m))


def call(op, x, kernel_size, stride, max_pool_size=2):
    return blur_pool2d(x, kernel_size, stride) if op == "blur" else max_blur_pool2d(x, kernel_size, stride, max_pool_size)


OPS = ["blur", "max_blur"]


# ---------------------------------------------------------------------------------------------------
# Worked examples: kornia's own, the kernel, the border and the sampling
# ---------------------------------------------------------------------------------------------------
def test_kornias_docstring_examples():
    # kornia.filters.blur_pool2d / max_blur_pool2d on torch.eye(5)[None, None] (kornia 0.9)
    eye = numpy.eye(5)[None, None]
    assert blur_pool2d(eye, 3).tolist() == [[[[0.3125, 0.0625, 0.0], [0.0625, 0.375, 0.0625], [0.0, 0.0625, 0.3125]]]]
    assert max_blur_pool2d(eye, 3).tolist() == [[[[0.5625, 0.3125], [0.3125, 0.875]]]]


def test_binomial_weights_are_pascals_triangle_normalised():
    assert binomial_weights(1) == (1.0,)
    assert binomial_weights(2) == (0.5, 0.5)
    assert [w * 64 for w in binomial_weights(7)] == [1, 6, 15, 20, 15, 6, 1]
    for k in range(1, 30):
        assert sum(binomial_weights(k)) == 1.0


def test_even_kernel_pads_one_cell_more_at_the_end():
    # kornia: (k - 1) // 2 zeros before and k // 2 after; k = 4 on a constant row of 6: windows start
    # at -1, 1, 3, so the last reads cells 3, 4, 5 and one padding zero (weight 1/8)
    y = blur_pool2d(numpy.ones((1, 1, 6)), (4, 4))  # (C, H, W) unbatched, H = 1
    assert y.shape == (1, 1, 3)
    # along H (length 1) only the tap of weight 3/8 at offset 1 reads the input
    assert y.tolist() == [[[0.375 * 0.875, 0.375 * 1.0, 0.375 * 0.875]]]


def test_output_size_is_ceil_of_length_over_stride():
    for H in range(1, 9):
        for s in range(1, 5):
            for k in range(1, 7):
                assert blur_pool2d(numpy.zeros((1, H, H + 1)), k, s).shape[1:] == (-(-H // s), -(-(H + 1) // s))


def test_kernel_1_is_plain_subsampling_from_index_0():
    x = numpy.random.default_rng(0).standard_normal((2, 3, 7, 5))
    numpy.testing.assert_array_equal(blur_pool2d(x, 1, 3), x[..., ::3, ::3])


def test_max_pool_size_1_is_blur_pool():
    x = numpy.random.default_rng(1).standard_normal((2, 3, 7, 5))
    numpy.testing.assert_array_equal(max_blur_pool2d(x, 4, 2, 1), blur_pool2d(x, 4, 2))


def test_max_blur_is_blur_of_the_stride_1_max_pool():
    x = numpy.random.default_rng(2).standard_normal((2, 3, 8, 7))
    numpy.testing.assert_array_equal(max_blur_pool2d(x, 3, 2, 3), blur_pool2d(poolref.max_pool2d(x, 3, 1), 3, 2))


def test_ceil_mode_is_accepted_and_changes_nothing():
    x = numpy.random.default_rng(3).standard_normal((1, 2, 7, 6))
    want = max_blur_pool2d(x, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning from poolref
        for ceil_mode in (None, False, True):
            numpy.testing.assert_array_equal(max_blur_pool2d(x, 3, 2, 2, ceil_mode), want)


def test_a_window_of_only_negative_zeros_gives_positive_zero_as_kornia():
    # a convolution's sum starts at +0: kornia (F.conv2d) gives +0.0 for a window of -0.0 alone, in
    # every dtype; a sum started at its first term would give -0.0
    for dtype in (numpy.float16, numpy.float32, numpy.float64):
        for k in (1, 2, 3):
            y = blur_pool2d(numpy.full((1, 1, 5, 5), -0.0, dtype=dtype), k, 1)
            assert not numpy.signbit(y).any(), (dtype, k)


def test_nan_reaches_exactly_the_outputs_whose_window_reads_it():
    x = numpy.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = numpy.nan
    y = blur_pool2d(x, 3, 1)
    assert numpy.isnan(y[0, 0, 1:4, 1:4]).all() and numpy.isnan(y).sum() == 9
    x[0, 0, 2, 2], x[0, 0, 2, 3] = numpy.inf, -numpy.inf  # kornia: inf, NaN, NaN, -inf along the row
    y = blur_pool2d(x, 3, 1)
    assert y[0, 0, 2].tolist()[1] == numpy.inf and y[0, 0, 2].tolist()[4] == -numpy.inf
    assert numpy.isnan(y[0, 0, 1:4, 2:4]).all()


def test_stride_2_hands_each_interior_pixel_a_quarter_of_a_constant_gradient():
    # the two phases of the binomial weights each sum to 1/2 (k >= 2), so with s = 2 every pixel whose
    # windows all lie inside the input receives 1/4 of a constant upstream gradient
    for k in range(2, 8):
        x = numpy.zeros((1, 1, 12, 12))
        y, grad = gradients(blur_pool2d, x, numpy.ones((1, 1, 6, 6)), k, 2)
        inner = slice(k, 12 - k)
        numpy.testing.assert_array_equal(grad[0, 0, inner, inner], 0.25)


def test_max_blur_pool_is_less_shift_variant_than_max_pool():
    # Zhang's example (and the docs' figure): columns 0 0 1 1 0 0 1 1 ..., shifted by one pixel.
    # max_pool2d(2) gives 0 1 0 1 .. before and 1 1 1 1 .. after: every other output moves by 1;
    # max-blur pooling's interior outputs move by a quarter at most (1, 0.5 -> 0.75, 0.75)
    stripes = numpy.tile(numpy.array([0.0, 0.0, 1.0, 1.0] * 4), (8, 1))[None, None]  # (1, 1, 8, 16)
    shifted = numpy.roll(stripes, 1, axis=-1)
    row = (0, 0, 1, slice(1, -1))  # an interior row, the interior columns
    assert poolref.max_pool2d(stripes, 2)[row].tolist() == [1, 0, 1, 0, 1, 0]
    assert poolref.max_pool2d(shifted, 2)[row].tolist() == [1, 1, 1, 1, 1, 1]
    assert max_blur_pool2d(stripes, 3)[row].tolist() == [1, 0.5, 1, 0.5, 1, 0.5]
    assert max_blur_pool2d(shifted, 3)[row].tolist() == [0.75] * 6


# ---------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------
@st.composite
def blur_cases(draw, op="blur", min_kernel=1):
    """A random valid call: x (N, C, H, W) of smooth random values, kernel, stride, max_pool_size."""
    k = draw(st.integers(min_kernel, 6))
    s = draw(st.integers(1, 3))
    m = draw(st.integers(1, 3)) if op == "max_blur" else 1
    size = (draw(st.integers(m, 8)), draw(st.integers(m, 8)))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return rng.standard_normal((n, c) + size), k, s, m, rng


@pytest.mark.parametrize("op", OPS)
@given(data=st.data())
def test_matches_loop_reference(op, data):
    x, k, s, m, rng = data.draw(blur_cases(op))
    g = rng.standard_normal(call(op, x, k, s, m).shape)
    y, grad = gradients(lambda t: call(op, t, k, s, m), x, g)
    want_y, want_grad = references(op, x, g, k, s, m)
    assert_matches(y, want_y, rtol=1e-13, atol=1e-14)
    assert_matches(grad, want_grad, rtol=1e-13, atol=1e-14, what="grad x")


@pytest.mark.constant_outputs("the law is that a constant map blurs to the same constant away from the border")
@given(data=st.data())
def test_blur_of_a_constant_is_that_constant_away_from_the_border(data):
    x, k, s, _, rng = data.draw(blur_cases(min_kernel=3))  # k >= 3: the first window reads padding
    value = float(rng.choice([-3.0, -0.5, 0.25, 2.0, 7.0]))
    y = blur_pool2d(numpy.full_like(x, value), k, s)
    inside = blur_pool_window_mass(x.shape[2:], k, s) == 1.0  # windows wholly inside the input
    assert (y[..., inside] == value).all()
    assert (numpy.abs(y[..., ~inside]) < abs(value)).all()  # the zero padding darkens the border


@pytest.mark.parametrize("op", OPS)
@given(data=st.data())
def test_gradient_mass_is_the_weight_each_window_keeps_inside_the_input(op, data):
    x, k, s, m, _ = data.draw(blur_cases(op))
    mass = blur_pool_window_mass(x.shape[2:], k, s, max_pool_size=m if op == "max_blur" else None)
    assert_conserves_gradient(lambda t: call(op, t, k, s, m), x, window_mass=mass)


@given(data=st.data())
def test_strided_blur_samples_the_dense_blur_from_index_0(data):
    x, k, s, _, _ = data.draw(blur_cases())
    numpy.testing.assert_array_equal(blur_pool2d(x, k, s), blur_pool2d(x, k, 1)[..., ::s, ::s])


# ---------------------------------------------------------------------------------------------------
# Loop reference == vectorised on non-finite values, every dtype and layout
# ---------------------------------------------------------------------------------------------------
POISONED = ["x", "gradient", "x+gradient"]
LAYOUTS = ["contiguous", "float16", "float32", "transposed", "reversed", "sliced", "unbatched", "empty"]


def _nonfinite_case(op, poisoned, seed, k, s, m):
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 9, 8))
    if "x" in poisoned:
        x = plant_nonfinite(x, seed + 1, fraction=0.05)
    g = rng.standard_normal(call(op, x, k, s, m).shape)
    if "gradient" in poisoned:
        g = plant_nonfinite(g, seed + 2, fraction=0.1)
    return x, g


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("poisoned", POISONED)
@pytest.mark.parametrize("op, k, s, m", [("blur", 3, 2, 1), ("blur", 4, 3, 1), ("max_blur", 3, 2, 2), ("max_blur", 2, 1, 3)])
def test_matches_loop_reference_on_nonfinite_values(op, k, s, m, poisoned, layout):
    x, g = _nonfinite_case(op, poisoned, 10 + k + s + m, k, s, m)
    if layout in ("unbatched", "empty"):
        x, g = (x[:1], g[:1]) if layout == "unbatched" else (x[:0], g[:0])
    x = layouts(x, layout if layout in ("float16", "float32", "transposed", "reversed", "sliced") else "contiguous")
    g = g.astype(x.dtype)
    want_y, want_grad = references(op, numpy.array(x), g, k, s, m)
    if layout == "unbatched":
        x, g, want_y, want_grad = x[0], g[0], want_y[0], want_grad[0]
    y, grad = gradients(lambda t: call(op, t, k, s, m), x, g)
    assert y.dtype == x.dtype and grad.dtype == x.dtype and grad.shape == x.shape
    tol = {"float16": dict(rtol=2e-3, atol=2e-3), "float32": dict(rtol=1e-6, atol=1e-6)}.get(layout, dict(rtol=1e-13, atol=1e-14))
    assert_matches(y, want_y, **tol)
    assert_matches(grad, want_grad, **tol, what="grad x")


def test_float16_accumulates_in_float32_and_rounds_once():
    # row [2^-12, 1, 2^-10], k = 3, H = 1 (only the middle row weight 1/2 reads it): the true value
    # 1/2 (2^-14 + 1/2 + 2^-12) = 1/4 + 5/8 * 2^-12 rounds to 1/4 + 2^-12 in float16. Products and
    # sums rounded to float16 one by one lose both small terms against 1/2 and give 1/4.
    x = numpy.array([[[2.0 ** -12, 1.0, 2.0 ** -10]]], dtype=numpy.float16)
    y = blur_pool2d(x, 3, 1)
    assert y.dtype == numpy.float16 and y[0, 0, 1] == numpy.float16(0.25 + 2.0 ** -12)


# ---------------------------------------------------------------------------------------------------
# Gradients: finite differences and the dot-product test, float64
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, k, s, m", [((2, 2, 7, 6), 3, 2, 2), ((1, 3, 8, 9), 4, 3, 3), ((2, 6, 5), 5, 1, 2), ((1, 1, 3, 4), 2, 2, 1)])
def test_gradcheck_and_adjoint(shape, k, s, m):
    # distinct values a quarter apart: no argmax of the max step flips under the finite-difference step
    x = numpy.random.default_rng(4).permutation(numpy.prod(shape)).reshape(shape) * 0.25
    for op in OPS:
        fn = (lambda t, op=op: call(op, t, k, s, m))
        assert gradcheck(fn, x, rtol=1e-6)
        assert adjoint_test(fn, x)


# ---------------------------------------------------------------------------------------------------
# kornia (skipped without it)
# ---------------------------------------------------------------------------------------------------
def kornia_or_skip():
    torch = pytest.importorskip("torch")
    filters = pytest.importorskip("kornia.filters")
    return torch, filters


def kornia_gradients(op, x, g, k, s, m):
    torch, filters = kornia_or_skip()
    t = torch.tensor(x, requires_grad=True)
    y = filters.blur_pool2d(t, k, s) if op == "blur" else filters.max_blur_pool2d(t, k, s, m)
    y.backward(torch.tensor(g))
    return y.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("seed", range(12))
def test_matches_kornia_output_and_gradient(op, seed):
    kornia_or_skip()
    rng = numpy.random.default_rng(100 + seed)
    k, s = int(rng.integers(1, 8)), int(rng.integers(1, 4))
    m = int(rng.integers(1, 4)) if op == "max_blur" else 2
    x = rng.permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8) * 0.25 - 20  # distinct: no tied maxima
    x = x if seed % 3 else rng.standard_normal(x.shape)  # and smooth values
    g = rng.standard_normal(call(op, x, k, s, m).shape)
    ours = gradients(lambda t: call(op, t, k, s, m), x, g)
    for what, a, b in zip(("output", "grad x"), ours, kornia_gradients(op, x, g, k, s, m)):
        assert_matches(a, b, rtol=1e-12, atol=1e-13, what=what)


@pytest.mark.parametrize("poisoned", POISONED)
@pytest.mark.parametrize("op, k, s, m", [("blur", 3, 2, 1), ("blur", 4, 1, 1), ("max_blur", 3, 2, 2)])
def test_matches_kornia_on_nonfinite_values(op, k, s, m, poisoned):
    kornia_or_skip()
    x, g = _nonfinite_case(op, poisoned, 40 + k, k, s, m)
    ours = gradients(lambda t: call(op, t, k, s, m), x, g)
    for what, a, b in zip(("output", "grad x"), ours, kornia_gradients(op, x, g, k, s, m)):
        assert_matches(a, b, rtol=1e-12, atol=1e-13, what=what)


@pytest.mark.parametrize("dtype, tol", [(numpy.float32, 1e-6), (numpy.float16, 1e-3)])
@pytest.mark.parametrize("op", OPS)
def test_low_precision_matches_kornia(op, dtype, tol):
    kornia_or_skip()
    rng = numpy.random.default_rng(5)
    for k, s in ((2, 2), (3, 2), (5, 3), (7, 1)):
        x = rng.standard_normal((2, 3, 9, 10)).astype(dtype)
        g = rng.standard_normal(call(op, x, k, s).shape).astype(dtype)
        ours = gradients(lambda t: call(op, t, k, s), x, g)
        for what, a, b in zip(("output", "grad x"), ours, kornia_gradients(op, x, g, k, s, 2)):
            assert a.dtype == b.dtype == dtype
            assert_matches(a, b, rtol=tol, atol=tol * (4 if what == "grad x" else 1), what=f"{what}, k={k}, s={s}")


def test_empty_batch_matches_kornia():
    kornia_or_skip()
    for op in OPS:
        x, g = numpy.zeros((0, 2, 6, 5)), numpy.zeros((0, 2, 3, 3) if op == "blur" else (0, 2, 3, 2))
        ours = gradients(lambda t: call(op, t, 3, 2), x, g)
        for a, b in zip(ours, kornia_gradients(op, x, g, 3, 2, 2)):
            assert a.shape == b.shape


# ---------------------------------------------------------------------------------------------------
# Arrays and Tensors, inputs left alone, numpy/cupy
# ---------------------------------------------------------------------------------------------------
def test_tensors_in_tensors_out_on_the_tape_and_arrays_out_for_arrays():
    x = numpy.random.default_rng(6).standard_normal((1, 2, 6, 6))
    assert type(max_blur_pool2d(x, 3)) is numpy.ndarray
    t = Tensor(x, requires_grad=True, name="x")
    with Tape() as tape:
        loss = max_blur_pool2d(t, 3).sum()
    printed = str(tape)
    assert "max_pool(" in printed and "blur_pool(" in printed  # two nodes: the max step, then the blur
    grad = tape.gradient(loss, t)
    want = max_blur_pool_backward_reference(numpy.ones((1, 2, 3, 3)), x, 3)
    assert_matches(grad, want, rtol=1e-13)


def test_inputs_are_not_modified():
    x = numpy.random.default_rng(7).standard_normal((2, 3, 7, 6))
    for op in OPS:
        copy = x.copy()
        y, pullback = vjp(lambda t: call(op, t, 3, 2), x)
        g = numpy.ones_like(y)
        pullback(g)
        numpy.testing.assert_array_equal(x, copy)
        numpy.testing.assert_array_equal(g, numpy.ones_like(y))


def test_numpy_and_cupy_agree(xp):
    rng = numpy.random.default_rng(8)
    x = rng.standard_normal((2, 3, 7, 6))
    for op in OPS:
        y, grad = gradients(lambda t: call(op, t, 4, 2), x, numpy.ones(call(op, x, 4, 2).shape))
        y_xp, grad_xp = gradients(lambda t: call(op, t, 4, 2), xp.asarray(x), xp.ones(y.shape))
        assert type(y_xp) is type(xp.asarray(y)) and type(grad_xp) is type(xp.asarray(grad))
        assert_matches(y_xp, y, rtol=1e-13)
        assert_matches(grad_xp, grad, rtol=1e-13)


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------
X = numpy.zeros((1, 2, 5, 5))


@pytest.mark.parametrize(
    "fn, args, error, words",
    [
        (blur_pool2d, (X, 0), ValueError, ["kernel_size", "0"]),
        (blur_pool2d, (X, -1), ValueError, ["kernel_size", "-1"]),
        (blur_pool2d, (X, (3, 5)), ValueError, ["kernel_size", "square", "(3, 5)"]),
        (blur_pool2d, (X, 2.0), TypeError, ["kernel_size", "2.0"]),
        (blur_pool2d, (X, True), TypeError, ["kernel_size", "True"]),
        (blur_pool2d, (X, 3, 0), ValueError, ["stride", "0"]),
        (blur_pool2d, (X, 3, (1, -1)), ValueError, ["stride", "(1, -1)"]),
        (blur_pool2d, (X, 3, 1.5), TypeError, ["stride", "1.5"]),
        (blur_pool2d, (X.astype(numpy.int64), 3), TypeError, ["x", "int64"]),
        (blur_pool2d, (numpy.zeros((2, 5)), 3), ValueError, ["x", "(2, 5)"]),
        (blur_pool2d, (numpy.zeros((1, 2, 0, 5)), 3), ValueError, ["x", "(1, 2, 0, 5)"]),
        (max_blur_pool2d, (X, 3, 2, 0), ValueError, ["max_pool_size", "0"]),
        (max_blur_pool2d, (X, 3, 2, 6), ValueError, ["max_pool_size=6", "(1, 2, 5, 5)"]),
        (max_blur_pool2d, (X, 3, 2, (2, 6)), ValueError, ["max_pool_size=(2, 6)", "(1, 2, 5, 5)"]),
        (max_blur_pool2d, (X, 3, 2, 2.5), TypeError, ["max_pool_size", "2.5"]),
        (max_blur_pool2d, (X, 3, 2, 2, "yes"), TypeError, ["ceil_mode", "'yes'"]),
        (max_blur_pool2d, (X, (2, 3)), ValueError, ["kernel_size", "square"]),
        (max_blur_pool2d, (X.astype(numpy.uint8), 3), TypeError, ["x", "uint8"]),
    ],
)
def test_bad_input_names_the_argument_and_value(fn, args, error, words):
    with pytest.raises(error) as info:
        fn(*args)
    message = str(info.value)
    assert message.startswith(fn.__name__ + ":"), message
    for word in words:
        assert word in message, (word, message)
