"""conv2d's groups (grouped, depthwise) and padding modes (zeros, reflect, replicate, circular; "same"
and "valid"): loop reference vs vectorised on finite and non-finite values and every layout,
gradients, hypothesis properties, PyTorch (output and every gradient), bad input."""

import warnings

import numpy
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from helpers import assert_conv_results_match, assert_refused_naming, layouts, plant_nonfinite, to_torch, torch_or_skip
from poolref._geometry import resolve_padding
from poolref._windows import PADDING_MODES
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.ops.convolution import conv2d
from poolref.reference.convolution import conv2d_backward_reference, conv2d_reference
from poolref.testing import assert_matches


def gradients(x, weight, bias, g, **kwargs):
    """(y, grad_x, grad_weight, grad_bias) of conv2d through the tape."""
    primals = (x, weight) if bias is None else (x, weight, bias)
    y, pullback = vjp(lambda *t: conv2d(*t, **kwargs), *primals)
    return (y,) + tuple(pullback(g)) + ((None,) if bias is None else ())


def reference_geometry(x_shape, w_shape, stride, padding, dilation):
    """The reference's keywords for a resolved padding (strings included)."""
    stride = (stride, stride) if isinstance(stride, int) else stride
    dilation = (dilation, dilation) if isinstance(dilation, int) else dilation
    pads = resolve_padding(padding, x_shape[-2:], w_shape[2:], stride, dilation, "test")
    return dict(stride=stride, pad_begin=tuple(b for b, _ in pads), pad_end=tuple(e for _, e in pads), dilation=dilation)


def torch_conv2d(x, weight, bias, g, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """Output and every gradient of torch.nn.Conv2d's forward with these weights (its padding rule for
    the modes and for "same", as nn.Conv2d applies it)."""
    torch = torch_or_skip()
    c_out, _, kh, kw = weight.shape
    layer = torch.nn.Conv2d(x.shape[-3], c_out, (kh, kw), stride, padding, dilation, groups, bias is not None, padding_mode,
                            dtype=to_torch(x).dtype)
    tx, tw = to_torch(x, True), to_torch(weight, True)
    tb = None if bias is None else to_torch(bias, True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Using padding='same'", UserWarning)  # torch's note on a padded copy
        y = torch.func.functional_call(layer, {"weight": tw, "bias": tb} if tb is not None else {"weight": tw}, (tx,))
    y.backward(to_torch(g))
    return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), None if tb is None else tb.grad.numpy()


@st.composite
def grouped_cases(draw, modes=PADDING_MODES, mirror_symmetric=False):
    """A valid grouped call: (x, weight, bias, kwargs) with pads that fit the drawn mode; with
    ``mirror_symmetric``, stride 1 and equal pads at both ends of each axis."""
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    size = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    mode = draw(st.sampled_from(modes))
    limit = {"reflect": lambda L: L - 1, "circular": lambda L: L}.get(mode, lambda L: 3)
    if mirror_symmetric:
        stride = (1, 1)
        padding = tuple((p, p) for p in (draw(st.integers(0, min(3, limit(L)))) for L in size))
    elif draw(st.booleans()):
        stride, padding = (1, 1), "same"
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        padding = tuple((draw(st.integers(0, min(3, limit(L)))), draw(st.integers(0, min(3, limit(L))))) for L in size)
    try:
        pads = resolve_padding(padding, size, kernel, stride, dilation, "test")
    except ValueError:
        assume(False)
    assume(all(max(p) <= limit(L) for p, L in zip(pads, size)))
    out = [(L + b + e - d * (k - 1) - 1) // s + 1 for L, (b, e), k, d, s in zip(size, pads, kernel, dilation, stride)]
    assume(min(out) >= 1)
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), c_in) + size)
    weight = rng.standard_normal((c_out, c_in // groups) + kernel)
    bias = rng.standard_normal(c_out) if draw(st.booleans()) else None
    return x, weight, bias, dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)


# ---------------------------------------------------------------------------------------------------
# Worked examples
# ---------------------------------------------------------------------------------------------------
def test_depthwise_box_filter_with_each_padding_mode():
    x = numpy.array([[[[1.0, 2.0, 4.0]], [[10.0, 20.0, 40.0]]]])  # (1, 2, 1, 3)
    ones = numpy.ones((2, 1, 1, 3))
    # each row padded by one cell each side, then summed three at a time
    want = {
        "zeros": [[3, 7, 6], [30, 70, 60]],  # 0 | a b c | 0
        "reflect": [[5, 7, 8], [50, 70, 80]],  # b | a b c | b
        "replicate": [[4, 7, 10], [40, 70, 100]],  # a | a b c | c
        "circular": [[7, 7, 7], [70, 70, 70]],  # c | a b c | a
    }
    for mode, rows in want.items():
        y = conv2d(x, ones, padding=(0, 1), groups=2, padding_mode=mode)
        assert y[0, :, 0].tolist() == rows, mode


def test_gradient_of_reflect_padding_returns_to_the_mirrored_cells():
    # one output per tap over [x1 | x0 x1 x2 | x1]: x1 is read three times, once through each pad
    x = numpy.array([[[[1.0, 2.0, 4.0]]]])
    _, pullback = vjp(lambda t: conv2d(t, numpy.ones((1, 1, 1, 3)), padding=(0, 1), padding_mode="reflect"), x)
    grad_x, = pullback(numpy.ones((1, 1, 1, 3)))
    assert grad_x.tolist() == [[[[2.0, 5.0, 2.0]]]]


def test_same_padding_puts_the_odd_cell_at_the_end_as_torch():
    # kernel 4, dilation 1: total padding 3, one cell before and two after; kernel 4, dilation 3:
    # total 9, four before and five after. A kernel that reads its first tap shows the shift.
    x = numpy.arange(1.0, 8.0).reshape(1, 1, 1, 7)
    for k, d, before in ((4, 1, 1), (4, 3, 4), (3, 1, 1), (2, 2, 1), (2, 1, 0)):
        first = numpy.zeros((1, 1, 1, k))
        first[..., 0] = 1.0
        y = conv2d(x, first, padding="same", dilation=(1, d))
        assert y.shape == x.shape
        assert y[0, 0, 0].tolist() == ([0.0] * before + x[0, 0, 0].tolist())[:7], (k, d)


# ---------------------------------------------------------------------------------------------------
# Loop reference == vectorised
# ---------------------------------------------------------------------------------------------------
@given(grouped_cases())
def test_conv2d_with_groups_and_modes_matches_loop_reference(case):
    x, weight, bias, kwargs = case
    geometry = reference_geometry(x.shape, weight.shape, kwargs["stride"], kwargs["padding"], kwargs["dilation"])
    modes = dict(groups=kwargs["groups"], padding_mode=kwargs["padding_mode"])
    want = conv2d_reference(x, weight, bias, **geometry, **modes)
    g = numpy.random.default_rng(int(abs(x).sum() * 1e3) % 2**32).standard_normal(want.shape)
    y, grad_x, grad_w, grad_b = gradients(x, weight, bias, g, **kwargs)
    assert_matches(y, want, rtol=1e-12, atol=1e-12)
    want_x, want_w, want_b = conv2d_backward_reference(g, x, weight, **geometry, has_bias=bias is not None, **modes)
    assert_matches(grad_x, want_x, rtol=1e-12, atol=1e-12, what="grad x")
    assert_matches(grad_w, want_w, rtol=1e-12, atol=1e-12, what="grad weight")
    if bias is not None:
        assert_matches(grad_b, want_b, rtol=1e-12, atol=1e-12, what="grad bias")


MODES_CONV = dict(stride=(2, 1), padding=((2, 1), (1, 2)), dilation=(1, 2), groups=2)
MODES_GEOMETRY = dict(stride=(2, 1), pad_begin=(2, 1), pad_end=(1, 2), dilation=(1, 2))


@pytest.mark.parametrize("layout", ["contiguous", "float16", "float32", "transposed", "reversed", "sliced", "unbatched"])
@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("poisoned", ["x", "weight", "gradient", "x+weight+gradient"])
def test_groups_and_modes_match_loop_reference_on_nonfinite_values(poisoned, mode, layout):
    rng = numpy.random.default_rng(200)
    x, weight, bias = rng.standard_normal((2, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2)), rng.standard_normal(6)
    x = plant_nonfinite(x, 201, fraction=0.05) if "x" in poisoned else x
    weight = plant_nonfinite(weight, 202, fraction=0.05) if "weight" in poisoned else weight
    g = rng.standard_normal((2, 6, 4, 7))
    g = plant_nonfinite(g, 203, fraction=0.1) if "gradient" in poisoned else g
    if layout == "unbatched":
        x, g = x[:1], g[:1]
    x = layouts(x, "contiguous" if layout == "unbatched" else layout)
    weight, bias, g = (a.astype(x.dtype) for a in (weight, bias, g))
    kwargs = dict(MODES_CONV, padding_mode=mode)
    want = conv2d_reference(numpy.array(x), weight, bias, **MODES_GEOMETRY, groups=2, padding_mode=mode)
    want_x, want_w, want_b = conv2d_backward_reference(g, numpy.array(x), weight, **MODES_GEOMETRY, groups=2, padding_mode=mode)
    if layout == "unbatched":
        x, g, want, want_x = x[0], g[0], want[0], want_x[0]
    assert_conv_results_match(gradients(x, weight, bias, g, **kwargs), (want, want_x, want_w, want_b), layout)


def test_a_nan_reaches_only_its_own_group():
    # channel 0 (group 0) holds a NaN: group 1's outputs and weight gradients stay finite
    rng = numpy.random.default_rng(210)
    x = rng.standard_normal((1, 4, 5, 5))
    x[0, 0, 2, 2] = numpy.nan
    weight = rng.standard_normal((4, 2, 3, 3))
    y, grad_x, grad_w, _ = gradients(x, weight, None, numpy.ones((1, 4, 5, 5)), padding=1, groups=2, padding_mode="circular")
    assert numpy.isnan(y[0, :2]).any() and numpy.isfinite(y[0, 2:]).all()
    assert numpy.isnan(grad_w[:2]).any() and numpy.isfinite(grad_w[2:]).all()
    assert numpy.isfinite(grad_x).all()  # the gradient of x goes through the weights, all finite


def test_an_infinite_weight_over_reflect_padding_multiplies_a_copy_not_a_zero():
    # zeros padding: 0 * inf = NaN on the border; reflect padding reads a finite copy there
    x = numpy.ones((1, 1, 4, 4))
    weight = numpy.zeros((1, 1, 3, 3))
    weight[0, 0, 0, 0] = numpy.inf
    assert numpy.isnan(conv2d(x, weight, padding=1)[0, 0, 0]).all()
    assert numpy.isposinf(conv2d(x, weight, padding=1, padding_mode="reflect")).all()


# ---------------------------------------------------------------------------------------------------
# Gradients: finite differences and the dot-product test, float64
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((2, 4, 5, 4), (6, 2, 3, 2), dict(stride=2, padding=1, groups=2)),
    ((1, 3, 6, 5), (3, 1, 3, 3), dict(padding=((2, 1), (0, 2)), dilation=(1, 2), groups=3)),  # depthwise
    ((2, 5, 5), (4, 2, 4, 2), dict(padding="same", dilation=(1, 2))),  # unbatched, "same" with an odd total
])
def test_gradcheck_groups_and_modes(mode, x_shape, w_shape, kwargs):
    rng = numpy.random.default_rng(220)
    x, weight, bias = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    kwargs = dict(kwargs, padding_mode=mode)
    assert gradcheck(lambda a, w, b: conv2d(a, w, b, **kwargs), x, weight, bias, rtol=1e-6)
    assert adjoint_test(lambda a, w, b: conv2d(a, w, b, **kwargs), x, weight, bias)


# ---------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------
@given(grouped_cases())
def test_a_grouped_convolution_is_its_groups_side_by_side(case):
    x, weight, bias, kwargs = case
    groups = kwargs["groups"]
    assume(groups > 1)
    c_in, c_out = x.shape[1] // groups, weight.shape[0] // groups
    y = conv2d(x, weight, bias, **kwargs)
    single = dict(kwargs, groups=1)
    for g in range(groups):
        part = conv2d(x[:, g * c_in:(g + 1) * c_in], weight[g * c_out:(g + 1) * c_out],
                      None if bias is None else bias[g * c_out:(g + 1) * c_out], **single)
        assert_matches(y[:, g * c_out:(g + 1) * c_out], part, rtol=1e-12, atol=1e-12)


@given(st.integers(0, 2**32 - 1), st.integers(-3, 3), st.integers(-3, 3), st.sampled_from([(3, 3), (2, 3), (1, 4)]))
def test_circular_same_convolution_commutes_with_rolls(seed, shift_h, shift_w, kernel):
    # circular padding makes the image a torus: shifting the input shifts the output
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal((1, 2, 5, 6))
    weight = rng.standard_normal((3, 2) + kernel)
    kwargs = dict(padding="same", padding_mode="circular")
    rolled = conv2d(numpy.roll(x, (shift_h, shift_w), axis=(2, 3)), weight, **kwargs)
    assert_matches(rolled, numpy.roll(conv2d(x, weight, **kwargs), (shift_h, shift_w), axis=(2, 3)), rtol=1e-12, atol=1e-12)


@given(grouped_cases(mirror_symmetric=True))
def test_flipping_input_and_kernel_flips_the_output(case):
    # with symmetric pads and stride 1 every mode is mirror-symmetric: conv(flip x, flip W) = flip conv(x, W)
    x, weight, bias, kwargs = case
    y = conv2d(x, weight, bias, **kwargs)
    flipped = conv2d(x[..., ::-1], weight[..., ::-1], bias, **kwargs)
    assert_matches(flipped, y[..., ::-1], rtol=1e-12, atol=1e-12)


@given(st.integers(0, 2**32 - 1), st.sampled_from(["replicate", "reflect", "circular"]))
def test_a_constant_image_stays_constant_with_every_copying_mode(seed, mode):
    # every padded cell copies an input cell, so each window reads the constant: y = c * sum(W) + b
    rng = numpy.random.default_rng(seed)
    c = float(rng.uniform(-2, 2))
    x = numpy.full((2, 2, 4, 5), c)
    weight, bias = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    y = conv2d(x, weight, bias, padding=(2, 3) if mode != "reflect" else (3, 3), dilation=1, padding_mode=mode)
    want = c * weight.sum(axis=(1, 2, 3)) + bias
    assert_matches(y, numpy.broadcast_to(want[None, :, None, None], y.shape), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# PyTorch: output and every gradient, each mode and groups
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("groups, c_in, c_out", [(1, 3, 2), (2, 4, 6), (3, 3, 3), (3, 3, 6)])
@pytest.mark.parametrize("padding, stride, dilation", [
    (1, 1, 1), ((2, 1), (2, 1), (1, 2)), ("same", 1, (2, 1)), ("valid", 2, 1),
])
def test_groups_and_modes_match_torch_output_and_every_gradient(mode, groups, c_in, c_out, padding, stride, dilation):
    rng = numpy.random.default_rng(230 + groups)
    x = rng.standard_normal((2, c_in, 6, 5))
    weight, bias = rng.standard_normal((c_out, c_in // groups, 2, 3)), rng.standard_normal(c_out)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode)
    y = conv2d(x, weight, bias, **kwargs)
    g = rng.standard_normal(y.shape)
    ours, theirs = gradients(x, weight, bias, g, **kwargs), torch_conv2d(x, weight, bias, g, **kwargs)
    for what, a, b in zip(("output", "grad x", "grad weight", "grad bias"), ours, theirs):
        assert_matches(a, b, rtol=1e-10, atol=1e-12, what=what)


@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("case", ["nonfinite", "unbatched", "empty", "float16", "float32"])
def test_modes_match_torch_on_nonfinite_unbatched_empty_and_low_precision(mode, case):
    rng = numpy.random.default_rng(240)
    x = rng.standard_normal((0 if case == "empty" else 2, 4, 5, 6))
    weight, bias = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    g = rng.standard_normal((x.shape[0], 4, 5, 6))
    if case == "nonfinite":
        x, weight, g = plant_nonfinite(x, 241, 0.05), plant_nonfinite(weight, 242, 0.05), plant_nonfinite(g, 243, 0.05)
    if case == "unbatched":
        x, g = x[0], g[0]
    dtype = case if case in ("float16", "float32") else "float64"
    x, weight, bias, g = (a.astype(dtype) for a in (x, weight, bias, g))
    kwargs = dict(padding="same", groups=2, padding_mode=mode)
    ours, theirs = gradients(x, weight, bias, g, **kwargs), torch_conv2d(x, weight, bias, g, **kwargs)
    tol = {"float16": dict(rtol=1e-2, atol=5e-2), "float32": dict(rtol=1e-5, atol=1e-5)}.get(dtype, dict(rtol=1e-10, atol=1e-12))
    for what, a, b in zip(("output", "grad x", "grad weight", "grad bias"), ours, theirs):
        assert a.dtype == b.dtype and a.shape == b.shape, what
        assert_matches(a, b, **tol, what=what)


def test_modes_on_the_device_match_numpy(xp):
    rng = numpy.random.default_rng(250)
    x, weight, bias = rng.standard_normal((2, 4, 5, 5)), rng.standard_normal((6, 2, 3, 3)), rng.standard_normal(6)
    for mode in PADDING_MODES:
        kwargs = dict(padding=((2, 1), (1, 2)), groups=2, padding_mode=mode)
        want = gradients(x, weight, bias, numpy.ones((2, 6, 6, 6)), **kwargs)
        got = gradients(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), xp.ones((2, 6, 6, 6)), **kwargs)
        for a, b in zip(got, want):
            assert type(a) is type(xp.asarray(b))
            assert_matches(a.get() if hasattr(a, "get") else a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Bad input: every message names the argument and its value (torch refuses each of these too)
# ---------------------------------------------------------------------------------------------------
X = numpy.zeros((1, 4, 5, 5))
W = numpy.zeros((6, 2, 3, 3))


@pytest.mark.parametrize("args, kwargs, error, words", [
    ((X, W), dict(groups=0), ValueError, ["groups", "groups=0"]),
    ((X, W), dict(groups=-2), ValueError, ["groups", "groups=-2"]),
    ((X, W), dict(groups=2.0), TypeError, ["groups", "groups=2.0"]),
    ((X, W), dict(groups=True), TypeError, ["groups", "groups=True"]),
    ((X, numpy.zeros((6, 1, 3, 3))), dict(groups=3), ValueError, ["groups", "C_in = 4", "groups=3"]),
    ((X, numpy.zeros((6, 4, 3, 3))), dict(groups=2), ValueError, ["weight", "C_in / groups = 4 / 2 = 2", "(6, 4, 3, 3)"]),
    ((X, numpy.zeros((5, 2, 3, 3))), dict(groups=2), ValueError, ["groups", "C_out = 5", "groups=2"]),
    ((X, W), dict(groups=2, padding_mode="mirror"), ValueError, ["padding_mode", "'mirror'"]),
    ((X, W), dict(groups=2, padding_mode="ZEROS"), ValueError, ["padding_mode", "'ZEROS'"]),
    ((X, W), dict(groups=2, padding=5, padding_mode="reflect"), ValueError, ["padding_mode='reflect'", "(5, 5)", "length 5"]),
    ((X, W), dict(groups=2, padding=6, padding_mode="circular"), ValueError, ["padding_mode='circular'", "(6, 6)", "length 5"]),
    ((X, W), dict(groups=2, padding="same", stride=(1, 2), padding_mode="reflect"), ValueError, ["padding='same'", "stride"]),
])
def test_bad_groups_and_modes_name_the_argument_and_value(args, kwargs, error, words):
    assert_refused_naming(error, words, "conv2d:", conv2d, *args, **kwargs)


def test_pads_at_the_limit_of_each_mode_are_taken_as_torch_takes_them():
    # reflect takes a pad of L - 1, circular of L (torch's F.pad, as nn.Conv2d calls it)
    y = conv2d(X, W, padding=4, groups=2, padding_mode="reflect")
    assert y.shape == (1, 6, 11, 11)
    assert conv2d(X, W, padding=5, groups=2, padding_mode="circular").shape == (1, 6, 13, 13)
    assert conv2d(X, W, padding=9, groups=2, padding_mode="replicate").shape == (1, 6, 21, 21)
