"""conv2d: All-CNN equivalence with pooling, loop reference vs vectorised, gradients, PyTorch, bad input."""

import numpy
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import poolref
from helpers import assert_conv_results_match, assert_refused_naming, layouts, plant_nonfinite, to_torch, torch_or_skip
from poolref.autograd import Tape, Tensor, adjoint_test, gradcheck, vjp
from poolref.ops.convolution import conv2d
from poolref.reference.convolution import conv2d_backward_reference, conv2d_reference
from poolref.testing import assert_matches


def conv_output_length(L, k, s, p_begin, p_end, d):
    return (L + p_begin + p_end - d * (k - 1) - 1) // s + 1


def random_case(rng, *, batch=(1, 3), unbatched=False, dtype=numpy.float64):
    """A random valid configuration: x, weight, bias (or None) and the keyword arguments."""
    while True:
        n = int(rng.integers(*batch))
        c_in, c_out = (int(v) for v in rng.integers(1, 4, size=2))
        kernel = tuple(int(v) for v in rng.integers(1, 4, size=2))
        stride = tuple(int(v) for v in rng.integers(1, 4, size=2))
        dilation = tuple(int(v) for v in rng.integers(1, 3, size=2))
        padding = tuple(int(v) for v in rng.integers(0, 4, size=2))
        size = tuple(int(v) for v in rng.integers(1, 9, size=2))
        out = [conv_output_length(L, k, s, p, p, d) for L, k, s, p, d in zip(size, kernel, stride, padding, dilation)]
        if min(out) >= 1:
            break
    shape = (c_in,) + size if unbatched else (n, c_in) + size
    x = rng.standard_normal(shape).astype(dtype)
    weight = rng.standard_normal((c_out, c_in) + kernel).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype) if rng.random() < 0.7 else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    return x, weight, bias, kwargs


def gradients(x, weight, bias, g, **kwargs):
    """(y, grad_x, grad_weight, grad_bias) of conv2d through the tape."""
    primals = (x, weight) if bias is None else (x, weight, bias)
    y, pullback = vjp(lambda *t: conv2d(*t, **kwargs), *primals)
    grads = pullback(g)
    return (y,) + tuple(grads) + ((None,) if bias is None else ())


# ---------------------------------------------------------------------------------------------------
# Worked examples: strided convolution generalises pooling (All-CNN)
# ---------------------------------------------------------------------------------------------------
def test_stride_2_convolution_with_quarter_kernel_is_2x2_average_pooling_forward_and_backward():
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 8))
    # one kernel per output channel, 1/4 on its own input channel and 0 on the others
    weight = numpy.zeros((3, 3, 2, 2))
    for c in range(3):
        weight[c, c] = 0.25
    y, pullback = vjp(lambda t: conv2d(t, weight, stride=2), x)
    y_pool, pullback_pool = vjp(lambda t: poolref.avg_pool2d(t, 2), x)
    assert_matches(y, y_pool, rtol=1e-14)
    g = rng.standard_normal(y.shape)
    assert_matches(pullback(g)[0], pullback_pool(g)[0], rtol=1e-14)


def test_hand_computed_padded_dilated_example():
    x = numpy.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # [[1 2 3] [4 5 6] [7 8 9]]
    weight = numpy.array([[[[1.0, -1.0]]]])  # x[h, w] - x[h, w + d]
    y = conv2d(x, weight, numpy.array([0.5]), padding=(0, 1), dilation=2)
    # each padded row [0 a b c 0] gives, with taps 2 apart, 0-b, a-c, b-0 (plus the bias 0.5)
    assert y.tolist() == [[[[-1.5, -1.5, 2.5], [-4.5, -1.5, 5.5], [-7.5, -1.5, 8.5]]]]


# ---------------------------------------------------------------------------------------------------
# Loop reference == vectorised (forward and all three gradients)
# ---------------------------------------------------------------------------------------------------
@given(st.data())
def test_conv2d_matches_loop_reference(data):
    draw = data.draw
    n, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    size = (draw(st.integers(1, 7)), draw(st.integers(1, 7)))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    # padding up to the kernel's reach (k - 1) * d, as "same"-style convolutions pad: wider padding
    # makes windows that read only zeros, whose outputs are the bias alone (a trivial example)
    pads = tuple((draw(st.integers(0, (k - 1) * d)), draw(st.integers(0, (k - 1) * d))) for k, d in zip(kernel, dilation))
    out = [conv_output_length(L, k, s, b, e, d) for L, k, s, (b, e), d in zip(size, kernel, stride, pads, dilation)]
    assume(min(out) >= 1)
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c_in) + size)
    weight = rng.standard_normal((c_out, c_in) + kernel)
    bias = rng.standard_normal(c_out) if draw(st.booleans()) else None
    kwargs = dict(stride=stride, padding=pads, dilation=dilation)
    geometry = dict(stride=stride, pad_begin=(pads[0][0], pads[1][0]), pad_end=(pads[0][1], pads[1][1]), dilation=dilation)

    g = rng.standard_normal((n, c_out) + tuple(out))
    y, grad_x, grad_w, grad_b = gradients(x, weight, bias, g, **kwargs)
    assert_matches(y, conv2d_reference(x, weight, bias, **geometry), rtol=1e-12, atol=1e-12)
    want_x, want_w, want_b = conv2d_backward_reference(g, x, weight, **geometry, has_bias=bias is not None)
    assert_matches(grad_x, want_x, rtol=1e-12, atol=1e-12, what="grad x")
    assert_matches(grad_w, want_w, rtol=1e-12, atol=1e-12, what="grad weight")
    if bias is not None:
        assert_matches(grad_b, want_b, rtol=1e-12, atol=1e-12, what="grad bias")


# Non-finite values: x, weight and the upstream gradient with NaN and +-inf. A NaN reaches exactly the
# outputs whose window reads it; a padding zero is multiplied like any value read (an infinite
# weight over padding gives NaN, as in PyTorch)
NONFINITE_CONV = dict(stride=(2, 1), padding=((2, 1), (1, 2)), dilation=(1, 2))
NONFINITE_GEOMETRY = dict(stride=(2, 1), pad_begin=(2, 1), pad_end=(1, 2), dilation=(1, 2))


def _nonfinite_conv_case(poisoned, seed):
    rng = numpy.random.default_rng(seed)
    x, weight, bias = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    if "x" in poisoned:
        x = plant_nonfinite(x, seed + 1, fraction=0.05)
    if "weight" in poisoned:
        weight = plant_nonfinite(weight, seed + 2, fraction=0.05)
    y_shape = (2, 4) + tuple(conv_output_length(L, k, s, b, e, d) for L, k, s, b, e, d in zip(
        (7, 6), (3, 2), NONFINITE_GEOMETRY["stride"], NONFINITE_GEOMETRY["pad_begin"], NONFINITE_GEOMETRY["pad_end"],
        NONFINITE_GEOMETRY["dilation"]))
    g = rng.standard_normal(y_shape)
    if "gradient" in poisoned:
        g = plant_nonfinite(g, seed + 3, fraction=0.1)
    return x, weight, bias, g


POISONED = ["x", "weight", "gradient", "x+gradient", "x+weight+gradient"]


@pytest.mark.parametrize("layout", ["contiguous", "float16", "float32", "transposed", "reversed", "sliced", "unbatched"])
@pytest.mark.parametrize("poisoned", POISONED)
def test_conv2d_matches_loop_reference_on_nonfinite_values(poisoned, layout):
    x, weight, bias, g = _nonfinite_conv_case(poisoned, 100)
    if layout == "unbatched":
        x, g = x[:1], g[:1]
    x = layouts(x, "contiguous" if layout == "unbatched" else layout)
    weight, bias, g = (a.astype(x.dtype) for a in (weight, bias, g))
    want = conv2d_reference(numpy.array(x), weight, bias, **NONFINITE_GEOMETRY)
    want_x, want_w, want_b = conv2d_backward_reference(g, numpy.array(x), weight, **NONFINITE_GEOMETRY)
    if layout == "unbatched":
        x, g, want, want_x = x[0], g[0], want[0], want_x[0]
    assert_conv_results_match(gradients(x, weight, bias, g, **NONFINITE_CONV), (want, want_x, want_w, want_b), layout)


@pytest.mark.parametrize("poisoned", POISONED)
def test_conv2d_matches_torch_on_nonfinite_values(poisoned):
    x, weight, bias, g = _nonfinite_conv_case(poisoned, 110)
    ours = gradients(x, weight, bias, g, **NONFINITE_CONV)  # no RuntimeWarning: an error under pytest
    torch_kwargs = dict(stride=(2, 1), padding=0, dilation=(1, 2))  # torch pads symmetrically: pad first
    padded = numpy.pad(x, ((0, 0), (0, 0), (2, 1), (1, 2)))
    theirs = list(torch_conv2d(padded, weight, bias, g, **torch_kwargs))
    theirs[1] = theirs[1][:, :, 2:-1, 1:-2]  # the gradient of the padded copy, cropped
    for what, a, b in zip(("output", "grad x", "grad weight", "grad bias"), ours, theirs):
        assert_matches(a, b, rtol=1e-10, atol=1e-12, what=what)


def test_conv2d_nan_reaches_exactly_the_outputs_whose_window_reads_it():
    # and an infinite weight over padding gives NaN there (0 * inf), as in PyTorch
    x = numpy.zeros((1, 1, 5, 5))
    x[0, 0, 2, 3] = numpy.nan
    weight = numpy.zeros((1, 1, 3, 3))  # weight 0 on every tap: 0 * nan is NaN all the same
    y = conv2d(x, weight, None, 1, 1)
    reads = poolref.max_pool2d(numpy.isnan(x).astype(float), 3, 1, 1) > 0  # windows holding the NaN
    assert numpy.array_equal(numpy.isnan(y), reads) and reads.sum() == 9
    weight[0, 0, 0, 0] = numpy.inf  # the top-left tap: over padding for the first row and column
    y = conv2d(numpy.ones((1, 1, 5, 5)), weight, None, 1, 1)
    assert numpy.isnan(y[0, 0, 0]).all() and numpy.isnan(y[0, 0, :, 0]).all() and numpy.isposinf(y[0, 0, 1:, 1:]).all()
    assert_matches(y, conv2d_reference(numpy.ones((1, 1, 5, 5)), weight, None, pad_begin=(1, 1), pad_end=(1, 1)), rtol=0)


def test_float32_is_float64_to_rounding_from_1e_minus_30_to_1e30():
    # products of an input of any float32 magnitude with weights of order 1 stay in range (a true
    # result beyond float32's range is inf, quietly: the weights can make one)
    rng = numpy.random.default_rng(120)
    base, weight, bias = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    for v in (1e-30, 1e-20, 1e-10, 1e10, 1e20, 1e30):
        x = (base * v).astype(numpy.float32)
        ours = gradients(x, weight.astype(numpy.float32), (bias * v).astype(numpy.float32), numpy.ones((2, 4, 4, 7), numpy.float32), **NONFINITE_CONV)
        truth = gradients(x.astype(numpy.float64), weight, (bias * v).astype(numpy.float32).astype(numpy.float64),
                          numpy.ones((2, 4, 4, 7)), **NONFINITE_CONV)
        for what, a, b in zip(("output", "grad x", "grad weight", "grad bias"), ours, truth):
            scale = float(numpy.abs(b).max())
            assert_matches(a, b.astype(numpy.float32), rtol=1e-5, atol=scale * 1e-6, what=f"{what} at {v}")


# ---------------------------------------------------------------------------------------------------
# Gradients: finite differences and the dot-product test, float64
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs",
    [
        ((2, 2, 5, 4), (3, 2, 3, 2), dict(stride=2, padding=1)),
        ((1, 3, 6, 6), (2, 3, 2, 2), dict(stride=(2, 1), padding=(0, 2), dilation=(2, 1))),
        ((2, 5, 5), (2, 2, 3, 3), dict(stride=1, padding=2, dilation=2)),  # unbatched
    ],
)
def test_gradcheck_x_weight_bias(x_shape, w_shape, kwargs):
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal(x_shape)
    weight = rng.standard_normal(w_shape)
    bias = rng.standard_normal(w_shape[0])
    assert gradcheck(lambda a, w, b: conv2d(a, w, b, **kwargs), x, weight, bias)
    assert gradcheck(lambda a, w: conv2d(a, w, **kwargs), x, weight)
    assert adjoint_test(lambda a, w, b: conv2d(a, w, b, **kwargs), x, weight, bias)


# ---------------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------------
def torch_conv2d(x, weight, bias, g, **kwargs):
    torch = torch_or_skip()
    tx, tw = to_torch(x, True), to_torch(weight, True)
    tb = None if bias is None else to_torch(bias, True)
    y = torch.nn.functional.conv2d(tx, tw, tb, **kwargs)
    y.backward(to_torch(g))
    return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), None if tb is None else tb.grad.numpy()


@pytest.mark.parametrize("seed", range(40))
def test_conv2d_matches_torch_output_and_gradients(seed):
    rng = numpy.random.default_rng(seed)
    x, weight, bias, kwargs = random_case(rng, unbatched=seed % 5 == 0)
    y = conv2d(x, weight, bias, **kwargs)
    g = rng.standard_normal(y.shape)
    ours = gradients(x, weight, bias, g, **kwargs)
    theirs = torch_conv2d(x, weight, bias, g, **kwargs)
    for what, a, b in zip(("output", "grad x", "grad weight", "grad bias"), ours, theirs):
        if b is None:
            assert a is None
        else:
            assert_matches(a, b, rtol=1e-10, atol=1e-12, what=what)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel, dilation", [((2, 3), (1, 1)), ((3, 4), (2, 1)), ((1, 1), (1, 3))])
@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")  # torch's note on a padded copy
def test_string_padding_matches_torch(padding, kernel, dilation):
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((2, 2, 7, 6))
    weight = rng.standard_normal((3, 2) + kernel)
    bias = rng.standard_normal(3)
    y = conv2d(x, weight, bias, padding=padding, dilation=dilation)
    g = rng.standard_normal(y.shape)
    ours = gradients(x, weight, bias, g, padding=padding, dilation=dilation)
    theirs = torch_conv2d(x, weight, bias, g, padding=padding, dilation=dilation)
    if padding == "same":
        assert y.shape[2:] == x.shape[2:]
    for a, b in zip(ours, theirs):
        assert_matches(a, b, rtol=1e-10, atol=1e-12)


def test_empty_batch_matches_torch():
    rng = numpy.random.default_rng(3)
    x = numpy.zeros((0, 2, 5, 5))
    weight = rng.standard_normal((4, 2, 3, 3))
    bias = rng.standard_normal(4)
    g = numpy.zeros((0, 4, 3, 2))
    ours = gradients(x, weight, bias, g, stride=(1, 2))
    theirs = torch_conv2d(x, weight, bias, g, stride=(1, 2))
    assert ours[0].shape == (0, 4, 3, 2)
    for a, b in zip(ours, theirs):
        assert_matches(a, b)


@pytest.mark.parametrize("dtype, rtol", [(numpy.float32, 1e-4), (numpy.float16, 1e-2)])
def test_low_precision_keeps_dtype_and_matches_float64(dtype, rtol):
    rng = numpy.random.default_rng(4)
    x, weight, bias, kwargs = random_case(rng)
    bias = rng.standard_normal(weight.shape[0])
    low = [a.astype(dtype) for a in (x, weight, bias)]
    y64 = conv2d(*[a.astype(numpy.float64) for a in low], **kwargs)
    g = rng.standard_normal(y64.shape)
    y, gx, gw, gb = gradients(*low, g.astype(dtype), **kwargs)
    want = gradients(*[a.astype(numpy.float64) for a in low], g.astype(dtype).astype(numpy.float64), **kwargs)
    for what, a, b in zip(("output", "grad x", "grad weight", "grad bias"), (y, gx, gw, gb), want):
        assert a.dtype == dtype, what
        scale = numpy.abs(b).max() if b.size else 1.0
        assert_matches(a.astype(numpy.float64), b, rtol=rtol, atol=rtol * scale, what=what)


# ---------------------------------------------------------------------------------------------------
# Arrays and Tensors, inputs left alone, numpy/cupy
# ---------------------------------------------------------------------------------------------------
def test_tensors_in_tensors_out_on_the_tape_and_arrays_out_for_arrays():
    rng = numpy.random.default_rng(5)
    x, weight, bias = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((3, 2, 2, 2)), rng.standard_normal(3)
    assert type(conv2d(x, weight, bias, stride=2)) is numpy.ndarray
    tw = Tensor(weight, requires_grad=True, name="w")
    with Tape() as tape:
        y = conv2d(x, tw, bias, stride=2)  # a mix: only the weight gets a gradient
        loss = y.sum()
    assert isinstance(y, Tensor) and "conv2d(" in str(tape) and "w" in str(tape)
    grad_w = tape.gradient(loss, tw)
    want = conv2d_backward_reference(numpy.ones(y.shape), x, weight, stride=(2, 2))[1]
    assert_matches(grad_w, want, rtol=1e-12)


def test_inputs_are_not_modified():
    rng = numpy.random.default_rng(6)
    x, weight, bias, kwargs = random_case(rng)
    bias = rng.standard_normal(weight.shape[0])
    copies = [a.copy() for a in (x, weight, bias)]
    y, pullback = vjp(lambda *t: conv2d(*t, **kwargs), x, weight, bias)
    g = numpy.ones_like(y)
    pullback(g)
    for a, b in zip((x, weight, bias), copies):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_array_equal(g, numpy.ones_like(y))


def test_numpy_and_cupy_agree(xp):
    rng = numpy.random.default_rng(7)
    x, weight, bias, kwargs = random_case(rng)
    bias = rng.standard_normal(weight.shape[0])
    want = gradients(x, weight, bias, numpy.ones(conv2d(x, weight, bias, **kwargs).shape), **kwargs)
    got = gradients(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), xp.ones(want[0].shape), **kwargs)
    for a, b in zip(got, want):
        assert type(a) is type(xp.asarray(b))
        assert_matches(a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------
X = numpy.zeros((1, 2, 5, 5))
W = numpy.zeros((3, 2, 3, 3))


@pytest.mark.parametrize(
    "args, kwargs, error, words",
    [
        ((X, numpy.zeros((3, 4, 3, 3))), {}, ValueError, ["weight", "(3, 4, 3, 3)", "C_in = 2"]),
        ((X, numpy.zeros((3, 2, 3))), {}, ValueError, ["weight", "(3, 2, 3)"]),
        ((numpy.zeros((2, 5)), W), {}, ValueError, ["x", "(2, 5)"]),
        ((numpy.zeros((1, 1, 2, 5, 5)), W), {}, ValueError, ["x", "(1, 1, 2, 5, 5)"]),
        ((X, numpy.zeros((3, 2, 8, 3))), {}, ValueError, ["larger than the padded input", "weight", "(3, 2, 8, 3)"]),
        ((X, W), dict(padding=0, dilation=3), ValueError, ["larger than the padded input", "dilation=(3, 3)"]),
        ((X, W), dict(stride=0), ValueError, ["stride", "(0, 0)"]),
        ((X, W), dict(stride=(1, -2)), ValueError, ["stride", "(1, -2)"]),
        ((X, W), dict(dilation=0), ValueError, ["dilation", "(0, 0)"]),
        ((X, W), dict(padding=-1), ValueError, ["padding", "-1"]),
        ((X, W), dict(padding=(1, -1)), ValueError, ["padding", "(1, -1)"]),
        ((X, W), dict(padding="same", stride=2), ValueError, ["padding='same'", "stride"]),
        ((X, W), dict(padding="full"), ValueError, ["padding", "'full'"]),
        ((X, W), dict(stride=1.5), TypeError, ["stride", "1.5"]),
        ((X, W, numpy.zeros(2)), {}, ValueError, ["bias", "(2,)"]),
        ((X, W, numpy.zeros((3, 1))), {}, ValueError, ["bias", "(3, 1)"]),
        ((X.astype(numpy.int64), W), {}, TypeError, ["x", "int64"]),
        ((X, W.astype(numpy.int32)), {}, TypeError, ["weight", "int32"]),
        ((X, W.astype(numpy.float32)), {}, TypeError, ["weight", "float32"]),
        ((X, W, numpy.zeros(3, dtype=numpy.float32)), {}, TypeError, ["bias", "float32"]),
    ],
)
def test_bad_input_names_the_argument_and_value(args, kwargs, error, words):
    assert_refused_naming(error, words, "conv2d:", conv2d, *args, **kwargs)


def test_padding_larger_than_the_kernel_is_allowed_as_in_torch():
    # unlike pooling, a convolution may pad by more than half its kernel: border outputs are the bias
    y = conv2d(numpy.ones((1, 1, 2, 2)), numpy.ones((1, 1, 1, 1)), numpy.array([7.0]), padding=2)
    assert y.shape == (1, 1, 6, 6) and y[0, 0, 0, 0] == 7.0 and y[0, 0, 2, 2] == 8.0
