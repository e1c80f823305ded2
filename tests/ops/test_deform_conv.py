"""Deformable convolution (torchvision.ops.deform_conv2d): worked examples, the loop reference on random
cases and at and beyond the border, NaN and infinities, gradients to x, offset, weight, bias and
mask (gradcheck and the adjoint test), laws (a convolution at zero offsets, integer shifts, linearity),
the torch composition, bad input."""

from typing import NamedTuple, Optional

import numpy
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import poolref
from helpers import layouts, plant_nonfinite
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.reference import deform_conv as ref
from poolref.testing import assert_matches
from poolref.testing.strategies import smooth_values

NAMES = ("x", "offset", "weight", "bias", "mask")


class DeformCase(NamedTuple):
    x: numpy.ndarray
    offset: numpy.ndarray
    weight: numpy.ndarray
    bias: Optional[numpy.ndarray]
    mask: Optional[numpy.ndarray]
    kwargs: dict  # stride, padding, dilation

    def arrays(self) -> dict:
        return {name: a for name, a in zip(NAMES, self[:5]) if a is not None}

    def call(self):
        """``f(*arrays)`` over the arrays the case holds, in NAMES order."""
        names = tuple(self.arrays())

        def f(*values):
            a = dict(zip(names, values))
            return poolref.deform_conv2d(a["x"], a["offset"], a["weight"], a.get("bias"), mask=a.get("mask"), **self.kwargs)

        return f

    def reference(self, grad_y=None, **dtype):
        """The loop reference's output, or with ``grad_y`` its gradients as a dict."""
        geometry = (self.kwargs["stride"], self.kwargs["padding"], self.kwargs["dilation"])
        if grad_y is None:
            return ref.deform_conv2d_reference(self.x, self.offset, self.weight, self.bias, *geometry, self.mask, **dtype)
        grads = ref.deform_conv2d_backward_reference(grad_y, self.x, self.offset, self.weight, *geometry, self.mask,
                                                     has_bias=self.bias is not None, **dtype)
        return {name: g for name, g in zip(NAMES, grads) if g is not None}

    def coordinates(self):
        """Every sampling coordinate (rows and columns), as the op computes them."""
        from poolref.cases.learned import deform_conv_coordinates

        return deform_conv_coordinates(self.offset, self.weight.shape[2:], self.kwargs["stride"], self.kwargs["padding"],
                                        self.kwargs["dilation"])


def make_case(seed, *, N=2, groups=1, offset_groups=1, per_group=1, c_out_per_group=1, kernel=(2, 2), stride=(1, 1),
              padding=(0, 0), dilation=(1, 1), size=(4, 5), spread=1.0, bias=True, mask=True, dtype=numpy.float64):
    rng = numpy.random.default_rng(seed)
    C = groups * offset_groups * per_group
    c_out = groups * c_out_per_group
    out = [(L + 2 * p - d * (k - 1) - 1) // s + 1 for L, p, d, k, s in zip(size, padding, dilation, kernel, stride)]
    taps = kernel[0] * kernel[1]
    return DeformCase(
        rng.uniform(-2, 2, (N, C) + tuple(size)).astype(dtype),
        rng.normal(scale=spread, size=(N, 2 * offset_groups * taps) + tuple(out)).astype(dtype),
        rng.uniform(-1, 1, (c_out, C // groups) + tuple(kernel)).astype(dtype),
        rng.uniform(-1, 1, c_out).astype(dtype) if bias else None,
        rng.uniform(0, 1, (N, offset_groups * taps) + tuple(out)).astype(dtype) if mask else None,
        dict(stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation)),
    )


@st.composite
def deform_cases(draw, *, max_extra=3, spread=1.0, mask=None, bias=None):
    """Random valid configurations: groups and offset groups of 1 or 2, stride, padding, dilation."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    size = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, max_extra)) for k, d, p in zip(kernel, dilation, padding))
    return make_case(
        draw(st.integers(0, 2**32 - 1)), N=draw(st.integers(1, 2)), groups=draw(st.integers(1, 2)),
        offset_groups=draw(st.integers(1, 2)), per_group=draw(st.integers(1, 2)), c_out_per_group=draw(st.integers(1, 2)),
        kernel=kernel, stride=stride, padding=padding, dilation=dilation, size=size, spread=spread,
        bias=draw(st.booleans()) if bias is None else bias, mask=draw(st.booleans()) if mask is None else mask,
    )


def off_the_kinks(case, clearance=1e-4) -> bool:
    coordinates = case.coordinates()
    return bool(numpy.abs(coordinates - numpy.round(coordinates)).min() > clearance)


def check_against_reference(case, grad_y=None, tol=None, grad_tol=None, seed=0):
    tol = tol or dict(rtol=1e-12, atol=1e-13)
    y, pullback = vjp(case.call(), *case.arrays().values())
    assert_matches(y, case.reference(**({"coordinate_dtype": case.x.dtype} if case.x.dtype != numpy.float64 else {})), **tol)
    if grad_y is None:
        grad_y = smooth_values(y.shape, seed).astype(y.dtype)
    got = dict(zip(case.arrays(), pullback(grad_y)))
    want = case.reference(grad_y)
    for name in got:
        assert got[name].dtype == case.arrays()[name].dtype
        assert_matches(got[name], want[name], **(grad_tol or tol), what=f"gradient of {name}")


# ---------------------------------------------------------------------------------------------------
# Worked examples
# ---------------------------------------------------------------------------------------------------
RAMP = numpy.arange(16.0).reshape(1, 1, 4, 4)  # x[h, w] = 4 h + w


def test_worked_example_a_tap_moved_half_a_pixel_reads_the_mean_of_two_pixels():
    offset = numpy.zeros((1, 2, 4, 4))
    offset[0, 0] = 0.5  # down half a row: 4 h + w + 2, and half of the last row below the image
    y = poolref.deform_conv2d(RAMP, offset, numpy.ones((1, 1, 1, 1)))
    assert y[0, 0].tolist() == [[2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0], [10.0, 11.0, 12.0, 13.0], [6.0, 6.5, 7.0, 7.5]]


def test_worked_example_offset_gradient_on_a_ramp_is_its_slope():
    # x = 6 h + w: moving a sample by d along y changes it by 6 d, along x by d; a mask of 0.5 halves both
    ramp = numpy.arange(36.0).reshape(1, 1, 6, 6)
    offset = numpy.full((1, 2 * 4, 5, 5), 0.25)
    mask = numpy.full((1, 4, 5, 5), 0.5)
    _, pullback = vjp(lambda o: poolref.deform_conv2d(ramp, o, numpy.ones((1, 1, 2, 2)), mask=mask), offset)
    (grad_offset,) = pullback(numpy.ones((1, 1, 5, 5)))
    inside = grad_offset[0, :, :4, :4]  # the last row and column of outputs move taps past the image
    numpy.testing.assert_allclose(inside[0::2], 0.5 * 6.0, rtol=1e-15)
    numpy.testing.assert_allclose(inside[1::2], 0.5 * 1.0, rtol=1e-15)


def test_worked_example_the_mask_gradient_is_the_sample():
    offset = numpy.zeros((1, 2, 4, 4))
    _, pullback = vjp(lambda m: poolref.deform_conv2d(RAMP, offset, numpy.full((1, 1, 1, 1), 3.0), mask=m), numpy.ones((1, 1, 4, 4)))
    (grad_mask,) = pullback(numpy.ones((1, 1, 4, 4)))
    numpy.testing.assert_array_equal(grad_mask, 3.0 * RAMP)


def test_offset_channels_are_dy_dx_pairs_tap_by_tap_and_group_by_group():
    # two channels in two offset groups, a 1x2 kernel: channels (dy, dx) of tap (0, 0), then of tap
    # (0, 1), for group 0, then the same for group 1
    x = numpy.stack([RAMP[0, 0], 100 + RAMP[0, 0]])[None]  # (1, 2, 4, 4)
    weight = numpy.zeros((2, 1, 1, 2))
    weight[0, 0, 0, 1] = 1.0  # output 0: tap (0, 1) of channel 0
    weight[1, 0, 0, 0] = 1.0  # output 1: tap (0, 0) of channel 1
    offset = numpy.zeros((1, 8, 4, 3))
    offset[0, 2] = 1.0  # group 0, tap (0, 1), dy = 1
    offset[0, 5] = 2.0  # group 1, tap (0, 0), dx = 2
    y = poolref.deform_conv2d(x, offset, weight)
    numpy.testing.assert_array_equal(y[0, 0, :3], RAMP[0, 0, 1:, 1:])  # one row down from column j + 1
    numpy.testing.assert_array_equal(y[0, 1, :, :2], 100 + RAMP[0, 0, :, 2:])  # two columns right


def test_groups_and_offset_groups_are_inferred_from_the_shapes():
    case = make_case(1, groups=2, offset_groups=2, per_group=2, c_out_per_group=2)
    y = case.call()(*case.arrays().values())
    assert y.shape == (2, 4, 3, 4)
    assert_matches(y, case.reference(), rtol=1e-12, atol=1e-13)


def test_zero_padded_bilinear_is_the_reference_rule_point_by_point():
    # poolref._sampling_weights.zero_padded_bilinear (the corners, weights and slopes the op uses)
    # against the loop reference's bilinear_interpolate and coordinate_weight, at random points,
    # on pixels, at -1, 0, H - 1 and H, and far outside; NaN and inf in the plane
    from poolref._sampling_torchvision import zero_padded_bilinear, zero_padded_bilinear_slopes

    rng = numpy.random.default_rng(17)
    plane = plant_nonfinite(rng.uniform(-2, 2, (4, 5)), 18, fraction=0.15)
    edges = numpy.array([-2.0, -1.0, -0.5, 0.0, 1.0, 2.5, 3.0, 4.0, 5.0, 6.5])
    ys = numpy.concatenate([rng.uniform(-2, 6, 200), numpy.repeat(edges, edges.size)])
    xs = numpy.concatenate([rng.uniform(-2, 7, 200), numpy.tile(edges, edges.size)])
    points = zero_padded_bilinear(ys, xs, 4, 5)
    with numpy.errstate(invalid="ignore"):
        terms = [numpy.where(points.inside & c.valid, c.weight_y * c.weight_x * plane[c.row, c.col], 0.0) for c in points.corners]
        values = terms[0] + terms[1] + terms[2] + terms[3]
        along_y, along_x = zero_padded_bilinear_slopes(points, [numpy.where(c.valid, plane[c.row, c.col], 0.0) for c in points.corners])
    want = numpy.array([ref.bilinear_interpolate(plane, y, x) for y, x in zip(ys, xs)])
    want_y = numpy.array([ref.coordinate_weight(plane, y, x, True) for y, x in zip(ys, xs)])
    want_x = numpy.array([ref.coordinate_weight(plane, y, x, False) for y, x in zip(ys, xs)])
    assert_matches(values, want, rtol=1e-15, atol=1e-15)
    assert_matches(along_y, want_y, rtol=1e-15, atol=1e-15, what="d/dy")
    assert_matches(along_x, want_x, rtol=1e-15, atol=1e-15, what="d/dx")


# ---------------------------------------------------------------------------------------------------
# Loop reference == vectorised, forward and every gradient
# ---------------------------------------------------------------------------------------------------
@given(deform_cases(spread=1.5))
def test_matches_loop_reference(case):
    check_against_reference(case)


@pytest.mark.parametrize("where", ["on pixels", "on the border", "outside"])
def test_matches_loop_reference_at_integer_points_the_border_and_outside(where):
    # on pixel rows and columns (the weight-0 corners are read; the slopes are one-sided), exactly at
    # -1, 0, H - 1 and H (the edges of what is read), and far outside
    case = make_case(3, groups=2, offset_groups=2, kernel=(2, 3), padding=(1, 1), size=(4, 5))
    rng = numpy.random.default_rng(4)
    if where == "on pixels":
        offset = rng.integers(-2, 3, case.offset.shape).astype(float)
    elif where == "on the border":
        offset = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], case.offset.shape)
        offset[..., 0, :] = -1.0 - 1.0 * (rng.random(offset[..., 0, :].shape) < 0.5)  # rows -1 and -2 (sample at -1, -2 + tap)
    else:
        offset = rng.choice([-7.0, -1.5, 5.5, 9.0], case.offset.shape)
    case = case._replace(offset=offset)
    check_against_reference(case)


@pytest.mark.parametrize("layout", ["contiguous", "float16", "float32", "transposed", "reversed", "sliced"])
@pytest.mark.parametrize("poisoned", ["x", "weight", "mask", "gradient", "all"])
def test_matches_loop_reference_on_nonfinite_values(poisoned, layout):
    # NaN, +inf and -inf in x, the weight, the mask and/or the upstream gradient: the same NaNs, the
    # same signed infinities and the same values, for every gradient; offsets with points on pixels
    case = make_case(5, groups=2, offset_groups=2, per_group=1, kernel=(2, 2), padding=(1, 0), size=(4, 5), spread=1.2)
    offset = case.offset.copy()
    offset[..., ::3, :] = numpy.round(offset[..., ::3, :])  # some points on pixel rows and columns
    arrays = dict(case.arrays(), offset=offset)
    for i, name in enumerate(("x", "weight", "mask")):
        if poisoned in (name, "all"):
            arrays[name] = plant_nonfinite(arrays[name], 10 + i, fraction=0.1)
    x = layouts(arrays["x"], layout)
    dtype = x.dtype
    arrays = {name: (x if name == "x" else a.astype(dtype)) for name, a in arrays.items()}
    case = case._replace(**arrays)
    g = smooth_values(case.reference().shape, 6)
    if poisoned in ("gradient", "all"):
        g = plant_nonfinite(g, 13)
    tol = {"float16": dict(rtol=2e-3, atol=2e-3), "float32": dict(rtol=1e-5, atol=1e-5)}.get(layout, dict(rtol=1e-12, atol=1e-12))
    grad_tol = dict(rtol=1e-2, atol=1e-2) if layout == "float16" else tol
    check_against_reference(case, g.astype(dtype), tol, grad_tol)


@pytest.mark.parametrize("name", ["offset", "weight", "mask"])
def test_noncontiguous_offset_weight_and_mask(name):
    case = make_case(7, groups=2, offset_groups=2, kernel=(2, 2), size=(4, 4))
    view = layouts(getattr(case, name), "reversed")
    assert not view.flags.c_contiguous
    check_against_reference(case._replace(**{name: view}))


def test_empty_batch_gives_an_empty_output_and_zero_parameter_gradients():
    case = make_case(8, N=0, groups=2, offset_groups=2)
    y, pullback = vjp(case.call(), *case.arrays().values())
    assert y.shape == (0, 2, 3, 4)
    grads = dict(zip(case.arrays(), pullback(numpy.zeros(y.shape))))
    assert grads["x"].shape == case.x.shape and grads["offset"].shape == case.offset.shape
    assert not grads["weight"].any() and not grads["bias"].any()


def test_the_gradient_to_x_skips_the_weight_0_corners_as_torchvision_does():
    # Points on pixels read their neighbours with weight 0 (a NaN there is NaN), but an infinite
    # upstream gradient must not send 0 * inf = NaN back to them: torchvision's col2im adds only to
    # the pixels within distance < 1.
    offset = numpy.zeros((1, 2, 4, 4))
    _, pullback = vjp(lambda x: poolref.deform_conv2d(x, offset, numpy.ones((1, 1, 1, 1))), RAMP)
    g = numpy.ones((1, 1, 4, 4))
    g[0, 0, 1, 1] = numpy.inf
    (grad_x,) = pullback(g)
    want = g.copy()
    assert_matches(grad_x, want, rtol=0, atol=0)


def test_the_offset_gradient_of_a_point_outside_takes_a_nan_upstream_gradient_as_torchvision_does():
    # torchvision multiplies mask * slope * gcol for every point: a point outside has slope 0, and
    # 0 * NaN is NaN; poolref's vectorised code and its loop reference agree
    offset = numpy.zeros((1, 2, 4, 4))
    offset[0, 0, 0, 0] = -5.0  # output (0, 0) samples far above the image
    _, pullback = vjp(lambda o: poolref.deform_conv2d(RAMP, o, numpy.ones((1, 1, 1, 1))), offset)
    g = numpy.ones((1, 1, 4, 4))
    g[0, 0, 0, 0] = numpy.nan
    (grad_offset,) = pullback(g)
    assert numpy.isnan(grad_offset[0, :, 0, 0]).all() and numpy.isfinite(grad_offset[0, :, 1:]).all()


def test_bias_gradient_sums_each_output_channel_not_each_group():
    # a defect of the first draft: the bias gradient summed the (N, groups, C_out/groups, P) view of
    # the upstream gradient over the wrong axes, giving one entry per group
    case = make_case(9, groups=2, c_out_per_group=2)
    y, pullback = vjp(case.call(), *case.arrays().values())
    g = smooth_values(y.shape, 1)
    grads = dict(zip(case.arrays(), pullback(g)))
    numpy.testing.assert_allclose(grads["bias"], g.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_float32_is_float64_to_rounding_from_1e_minus_30_to_1e30():
    base = make_case(11, groups=2, offset_groups=2, spread=0.8)
    for v in (1e-30, 1e-10, 1e10, 1e30):
        case32 = base._replace(**{name: (a * v if name == "x" else a).astype(numpy.float32) for name, a in base.arrays().items()})
        case64 = base._replace(x=case32.x.astype(numpy.float64), **{n: getattr(case32, n).astype(numpy.float64) for n in ("offset", "weight", "bias", "mask")})
        y, pullback = vjp(case32.call(), *case32.arrays().values())
        y64, pullback64 = vjp(case64.call(), *case64.arrays().values())
        scale = float(numpy.abs(y64).max())
        assert_matches(y, y64.astype(numpy.float32), rtol=2e-5, atol=scale * 1e-6, what=f"output at {v}")
        g = smooth_values(y.shape, 2).astype(numpy.float32)
        for name, got, want in zip(case32.arrays(), pullback(g), pullback64(g.astype(numpy.float64))):
            scale = float(numpy.abs(want).max())
            assert_matches(got, want.astype(numpy.float32), rtol=2e-5, atol=scale * 1e-5, what=f"gradient of {name} at {v}")


# ---------------------------------------------------------------------------------------------------
# Gradients: gradcheck and the adjoint test
# ---------------------------------------------------------------------------------------------------
@settings(max_examples=12)
@given(deform_cases(max_extra=2, spread=0.8))
def test_gradcheck_every_input(case):
    # the derivative jumps where a point crosses a pixel row or column (and at -1 and H): keep every
    # coordinate 1e-4 (100 finite-difference steps) away from an integer
    assume(off_the_kinks(case))
    assert gradcheck(case.call(), *case.arrays().values(), rtol=1e-6)


@settings(max_examples=12)
@given(deform_cases(spread=1.5))
def test_adjoint_in_x_weight_and_mask(case):
    # for fixed offsets the op is linear in x, and (separately) in the weight and the mask
    arrays = case.arrays()
    for name in ("x", "weight", "mask"):
        if name in arrays:
            others = {k: v for k, v in arrays.items() if k != name}

            def f(value, name=name, others=others):
                a = dict(others, **{name: value})
                return poolref.deform_conv2d(a["x"], a["offset"], a["weight"], None, mask=a.get("mask"), **case.kwargs)

            assert adjoint_test(f, arrays[name])


# ---------------------------------------------------------------------------------------------------
# Laws
# ---------------------------------------------------------------------------------------------------
@given(deform_cases(bias=True))
def test_zero_offsets_and_a_mask_of_ones_are_a_convolution(case):
    zero = numpy.zeros_like(case.offset)
    ones = numpy.ones(case.mask.shape) if case.mask is not None else None
    groups = case.x.shape[1] // case.weight.shape[1]
    per_out = case.weight.shape[0] // groups
    per_in = case.weight.shape[1]
    want = numpy.concatenate([
        poolref.conv2d(case.x[:, g * per_in:(g + 1) * per_in], case.weight[g * per_out:(g + 1) * per_out],
                       case.bias[g * per_out:(g + 1) * per_out], **case.kwargs)
        for g in range(groups)], axis=1)
    for mask in (None, ones):
        got = poolref.deform_conv2d(case.x, zero, case.weight, case.bias, mask=mask, **case.kwargs)
        assert_matches(got, want, rtol=1e-12, atol=1e-12)


@given(deform_cases(mask=False), st.integers(-2, 2), st.integers(-2, 2))
def test_an_integer_offset_everywhere_is_a_convolution_of_the_shifted_input(case, dy, dx):
    # every tap moved by (dy, dx) reads the zero-padded input at (r + dy, c + dx): the convolution,
    # without padding, of the padded input shifted, zeros coming in
    offset = numpy.zeros_like(case.offset)
    offset[:, 0::2], offset[:, 1::2] = dy, dx
    ph, pw = case.kwargs["padding"]
    padded = numpy.pad(case.x, ((0, 0), (0, 0), (ph + 2, ph + 2), (pw + 2, pw + 2)))  # 2 more: room for the shift
    H, W = padded.shape[2:]
    shifted = padded[:, :, 2 + dy:H - 2 + dy, 2 + dx:W - 2 + dx]  # (N, C, H + 2 ph, W + 2 pw)
    unpadded = dict(case.kwargs, padding=(0, 0))
    want = poolref.deform_conv2d(shifted, numpy.zeros_like(case.offset), case.weight, case.bias, **unpadded)
    # a shift that moves every tap into the zeros gives the bias alone: a constant that proves nothing
    assume(want.size and not numpy.all(want == want.reshape(-1)[0]))
    assert_matches(poolref.deform_conv2d(case.x, offset, case.weight, case.bias, **case.kwargs), want, rtol=1e-12, atol=1e-12)


@given(deform_cases(bias=False), st.floats(-3, 3), st.floats(-3, 3))
def test_linear_in_x_and_in_the_weight(case, a, b):
    other = smooth_values(case.x.shape, 5)
    f = lambda x, w: poolref.deform_conv2d(x, case.offset, w, mask=case.mask, **case.kwargs)  # noqa: E731
    assert_matches(f(a * case.x + b * other, case.weight), a * f(case.x, case.weight) + b * f(other, case.weight), rtol=1e-10, atol=1e-10)
    w2 = smooth_values(case.weight.shape, 6)
    assert_matches(f(case.x, a * case.weight + b * w2), a * f(case.x, case.weight) + b * f(case.x, w2), rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------------------------------
# The torch composition (an independent PyTorch implementation)
# ---------------------------------------------------------------------------------------------------
@settings(max_examples=30)
@given(deform_cases(spread=1.5))
def test_matches_torch_composition(case):
    torch = pytest.importorskip("torch")
    from poolref.testing.torch_compositions import deform_conv2d_by_gather

    assume(off_the_kinks(case, 1e-9))  # the one-sided slopes at a kink are the op's rule, not the composition's
    arrays = case.arrays()
    y, pullback = vjp(case.call(), *arrays.values())
    tensors = {name: torch.tensor(a, requires_grad=True) for name, a in arrays.items()}
    y_t = deform_conv2d_by_gather(torch, tensors["x"], tensors["offset"], tensors["weight"], tensors.get("bias"),
                                  mask=tensors.get("mask"), **case.kwargs)
    g = smooth_values(y.shape, 3)
    y_t.backward(torch.tensor(g))
    assert_matches(y, y_t.detach().numpy(), rtol=1e-12, atol=1e-13)
    for name, got in zip(arrays, pullback(g)):
        assert_matches(got, tensors[name].grad.numpy(), rtol=1e-10, atol=1e-12, what=f"gradient of {name}")


def test_float16_matches_torch_composition_with_float16_sampling_points():
    torch = pytest.importorskip("torch")
    from poolref.testing.torch_compositions import deform_conv2d_by_gather

    case = make_case(12, groups=2, offset_groups=2, spread=2.0, size=(6, 7), dtype=numpy.float16)
    y = case.call()(*case.arrays().values())
    t = {name: torch.tensor(a) for name, a in case.arrays().items()}
    y_t = deform_conv2d_by_gather(torch, t["x"], t["offset"], t["weight"], t["bias"], mask=t["mask"], **case.kwargs)
    assert_matches(y, y_t.numpy(), rtol=1e-3, atol=1e-3)
    # sampling at float32 points instead differs by more than float16's rounding
    case32 = case._replace(**{name: a.astype(numpy.float32) for name, a in case.arrays().items()})
    unrounded = case32.call()(*case32.arrays().values()).astype(numpy.float16)
    assert numpy.abs(unrounded.astype(float) - y.astype(float)).max() > 2e-3


# ---------------------------------------------------------------------------------------------------
# Tensors, dtypes, devices, inputs left alone
# ---------------------------------------------------------------------------------------------------
def test_tensors_in_tensors_out_on_the_tape():
    case = make_case(13, groups=2, offset_groups=2)
    tensors = [poolref.Tensor(a, requires_grad=True) for a in case.arrays().values()]
    with poolref.Tape() as tape:
        loss = case.call()(*tensors).sum()
    assert "deform_conv2d" in str(tape)
    for tensor, grad in zip(tensors, tape.gradient(loss, tensors)):
        assert grad.shape == tensor.shape


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32])
def test_low_precision_keeps_its_dtype(dtype):
    case = make_case(14, dtype=dtype)
    y, pullback = vjp(case.call(), *case.arrays().values())
    assert y.dtype == dtype
    assert all(g.dtype == dtype for g in pullback(numpy.ones(y.shape, dtype)))


def test_inputs_are_never_modified():
    case = make_case(15, groups=2, offset_groups=2)
    copies = {name: a.copy() for name, a in case.arrays().items()}
    y, pullback = vjp(case.call(), *case.arrays().values())
    g = numpy.ones(y.shape)
    pullback(g)
    for name, a in case.arrays().items():
        numpy.testing.assert_array_equal(a, copies[name])
    numpy.testing.assert_array_equal(g, numpy.ones(y.shape))


def test_numpy_and_cupy_agree(xp):
    from poolref._backend import to_numpy

    case = make_case(16, groups=2, offset_groups=2, spread=1.5)
    y, pullback = vjp(case.call(), *case.arrays().values())
    y_xp, pullback_xp = vjp(case.call(), *[xp.asarray(a) for a in case.arrays().values()])
    g = smooth_values(y.shape, 8)
    assert_matches(to_numpy(y_xp), y, rtol=1e-12, atol=1e-13)
    for got, want in zip(pullback_xp(xp.asarray(g)), pullback(g)):
        assert_matches(to_numpy(got), want, rtol=1e-10, atol=1e-12, what="gradient")


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------
X = numpy.zeros((1, 4, 5, 5))
W = numpy.zeros((2, 4, 3, 3))
OFF = numpy.zeros((1, 18, 3, 3))


@pytest.mark.parametrize("call, error, words", [
    (lambda: poolref.deform_conv2d(X[0], OFF[0], W), ValueError, "x must have shape (N, C_in, H, W)"),
    (lambda: poolref.deform_conv2d(X.astype(int), OFF, W), TypeError, "got x with dtype int64"),
    (lambda: poolref.deform_conv2d(X, OFF.astype(numpy.float32), W), TypeError, "got offset with dtype float32"),
    (lambda: poolref.deform_conv2d(X, OFF, W.astype(numpy.float32)), TypeError, "got weight with dtype float32"),
    (lambda: poolref.deform_conv2d(X, OFF, W, numpy.zeros(3)), ValueError, "got bias with shape (3,)"),
    (lambda: poolref.deform_conv2d(X, OFF, W, numpy.zeros((2, 1))), ValueError, "got bias with shape (2, 1)"),
    (lambda: poolref.deform_conv2d(X, OFF[:, :17], W), ValueError, "offset.shape[1] must be a positive multiple of 2 * kh * kw = 18"),
    (lambda: poolref.deform_conv2d(X, OFF[:, :9], W), ValueError, "got offset with shape (1, 9, 3, 3)"),
    (lambda: poolref.deform_conv2d(X, numpy.zeros((1, 54, 3, 3)), W), ValueError, "3 offset groups"),
    (lambda: poolref.deform_conv2d(X, OFF[:, :, :2], W), ValueError, "(N, 2 * offset_groups * kh * kw, H_out, W_out) = (1, 18, 3, 3)"),
    (lambda: poolref.deform_conv2d(X, numpy.zeros((2, 18, 3, 3)), W), ValueError, "got offset with shape (2, 18, 3, 3)"),
    (lambda: poolref.deform_conv2d(X, OFF, W, mask=numpy.zeros((1, 18, 3, 3))), ValueError, "got mask with shape (1, 18, 3, 3)"),
    (lambda: poolref.deform_conv2d(X, OFF, W, mask=numpy.zeros((1, 9, 3))), ValueError, "got mask with shape (1, 9, 3)"),
    (lambda: poolref.deform_conv2d(X, OFF, W, mask=numpy.zeros((1, 9, 3, 3), numpy.float32)), TypeError, "got mask with dtype float32"),
    (lambda: poolref.deform_conv2d(X, OFF, numpy.zeros((2, 3, 3, 3))), ValueError, "weight.shape[1] must divide the 4 channels"),
    (lambda: poolref.deform_conv2d(X, OFF, numpy.zeros((3, 2, 3, 3))), ValueError, "must be a multiple of the groups (2"),
    (lambda: poolref.deform_conv2d(X, OFF, numpy.zeros((2, 4, 3))), ValueError, "got weight with shape (2, 4, 3)"),
    (lambda: poolref.deform_conv2d(X, numpy.zeros((1, 2, 5, 5)), numpy.zeros((2, 4, 0, 1))), ValueError, "non-empty axes"),
    (lambda: poolref.deform_conv2d(X, numpy.full((1, 18, 3, 3), numpy.nan), W), ValueError, "offset must be finite"),
    (lambda: poolref.deform_conv2d(X, OFF, W, stride=0), ValueError, "stride=(0, 0)"),
    (lambda: poolref.deform_conv2d(X, OFF, W, padding=-1), ValueError, "padding=(-1, -1)"),
    (lambda: poolref.deform_conv2d(X, OFF, W, dilation=(1, 0)), ValueError, "dilation=(1, 0)"),
    (lambda: poolref.deform_conv2d(X, OFF, W, padding="same"), TypeError, "padding='same'"),
    (lambda: poolref.deform_conv2d(X, OFF, numpy.zeros((2, 4, 7, 7))), ValueError, "the kernel is larger than the padded input"),
    (lambda: poolref.deform_conv2d(numpy.zeros((1, 4, 0, 5)), OFF, W), ValueError, "non-empty spatial dimensions"),
])
def test_bad_input_is_refused_with_a_clear_message(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_the_gpu_script_runs_its_deform_conv2d_rows():
    # benchmarks/gpu_torchvision_check.py compares with torchvision where it is installed (a GPU
    # machine); here its code path runs with the torch composition standing in for torchvision, on
    # the kinds of case where the composition is torchvision's rule (smooth offsets, NaN and inf in x)
    torch = pytest.importorskip("torch")
    import importlib.util
    from pathlib import Path

    from poolref.testing.torch_compositions import deform_conv2d_by_gather

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_torchvision_check.py"
    spec = importlib.util.spec_from_file_location("gpu_torchvision_check", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    def stand_in(x, offset, weight, bias, stride, padding, dilation, mask=None):
        return deform_conv2d_by_gather(torch, x, offset, weight, bias, stride, padding, dilation, mask=mask)

    for dtype in (numpy.float64, numpy.float32):
        dy, dg, failure = script.check_deform_conv2d(torch, stand_in, "cpu", dtype, 6, 0, kinds=("smooth", "nan_inf"))
        assert failure is None, failure
        assert dy <= script.DEFORM_TOLERANCE[dtype] and dg <= script.DEFORM_TOLERANCE[dtype]
