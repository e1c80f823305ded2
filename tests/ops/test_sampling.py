"""grid_sample and interpolate: worked examples, loop reference vs vectorised, gradients, laws,
PyTorch cross-checks (forward and both gradients), bad input."""

import math

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolref
from helpers import to_torch, torch_or_skip
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref._sampling_weights import nearest_indices, torch_linear
from poolref.reference import sampling as ref
from poolref.testing import assert_conserves_gradient, assert_matches
from poolref.testing.strategies import smooth_values

GRID_MODES = ("bilinear", "nearest")
PADDINGS = ("zeros", "border", "reflection")
LINEAR = {"linear": 1, "bilinear": 2, "trilinear": 3}


# ---------------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------------
@st.composite
def grid_cases(draw, max_size=5, max_out=4, batch=(1, 2), channels=(1, 2), special=True):
    """(x, grid, mode, padding_mode, align_corners): random points, some far outside [-1, 1]; with
    ``special`` sometimes snapped to quarter steps, which hit edges, centres and borders exactly."""
    N, C = draw(st.integers(*batch)), draw(st.integers(*channels))
    H, W = draw(st.integers(1, max_size)), draw(st.integers(1, max_size))
    H_out, W_out = draw(st.integers(1, max_out)), draw(st.integers(1, max_out))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, C, H, W))
    spread = draw(st.sampled_from([1.0, 1.2, 3.5]))
    grid = rng.uniform(-spread, spread, (N, H_out, W_out, 2))
    if special and draw(st.booleans()):
        grid = numpy.round(grid * 4) / 4
    return x, grid, draw(st.sampled_from(GRID_MODES)), draw(st.sampled_from(PADDINGS)), draw(st.booleans())


def smooth_grid(rng, shape, H, W, align_corners):
    """A grid whose pixel coordinates have fractional parts in [0.15, 0.35] or [0.65, 0.85]: away from
    pixel positions, half-pixels, clamp limits and reflection turning points, where the derivative jumps."""
    def axis(L, size):
        whole = rng.integers(-L - 1, 2 * L + 1, size)
        fraction = rng.uniform(0.15, 0.35, size) + 0.5 * rng.integers(0, 2, size)
        coord = whole + fraction
        # invert the unnormalization: i = (g + 1) L/2 - 1/2  or  i = (g + 1)(L - 1)/2
        return (coord + 0.5) * 2 / L - 1 if not align_corners else coord * 2 / max(L - 1, 1) - 1
    return numpy.stack([axis(W, shape), axis(H, shape)], axis=-1)


@st.composite
def interpolate_cases(draw, max_size=6, max_out=12):
    """(x, kwargs, output_size, scale_factors for the reference)."""
    mode = draw(st.sampled_from(["nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area"]))
    n = LINEAR.get(mode) or draw(st.integers(1, 3))
    small = n == 3
    spatial = tuple(draw(st.integers(1, 4 if small else max_size)) for _ in range(n))
    x = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(
        (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + spatial)
    kwargs = {"mode": mode}
    if mode in LINEAR:
        kwargs["align_corners"] = draw(st.sampled_from([None, False, True]))
    if draw(st.booleans()):
        out = tuple(draw(st.integers(1, 6 if small else max_out)) for _ in range(n))
        kwargs["size"] = out if n > 1 or draw(st.booleans()) else out[0]
        factors = (None,) * n
    else:
        # scale factors with few decimals, as people write them, each giving an output of 1 or more
        factors = tuple(
            draw(st.integers(math.ceil(100 / L), 300).map(lambda k: k / 100)) for L in spatial
        )
        kwargs["scale_factor"] = factors
        out = tuple(math.floor(L * s) for L, s in zip(spatial, factors))
        if mode != "area" and draw(st.integers(0, 3)) == 0:
            kwargs["recompute_scale_factor"] = True
            factors = (None,) * n
    return x, kwargs, out, factors


def _torch_grid_sample(x, grid, g, mode, padding_mode, align_corners):
    torch = torch_or_skip()
    xt, gt = to_torch(x, requires_grad=True), to_torch(grid, requires_grad=True)
    yt = torch.nn.functional.grid_sample(xt, gt, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    yt.backward(to_torch(g))
    return yt.detach().numpy(), xt.grad.numpy(), gt.grad.numpy()


def _ours_grid_sample(x, grid, g, *args):
    y, pullback = vjp(lambda a, b: poolref.grid_sample(a, b, *args), x, grid)
    grad_x, grad_grid = pullback(g)
    return y, grad_x, grad_grid


# ---------------------------------------------------------------------------------------------------
# Worked examples
# ---------------------------------------------------------------------------------------------------
def test_grid_sample_worked_example_every_padding_mode():
    x = numpy.arange(1.0, 7.0).reshape(1, 1, 2, 3)  # [[1, 2, 3], [4, 5, 6]]
    # gx = 1.5 with align_corners=False: i_x = 2.5 * 3/2 - 1/2 = 3.25, past the last pixel (2)
    grid = numpy.array([[[[1.5, -0.5]]]])  # i_y = 0.5 * 2/2 - 1/2 = 0: the first row
    # zeros: bilinear between x[0, 3] (outside, 0) and ... both corners are outside: 0
    assert poolref.grid_sample(x, grid, padding_mode="zeros")[0, 0, 0, 0] == 0.0
    # border: clamped to i_x = 2: x[0, 2] = 3
    assert poolref.grid_sample(x, grid, padding_mode="border")[0, 0, 0, 0] == 3.0
    # reflection off the right edge 2.5: 3.25 -> 1.75, between x[0, 1] = 2 and x[0, 2] = 3
    assert poolref.grid_sample(x, grid, padding_mode="reflection")[0, 0, 0, 0] == pytest.approx(2.75)


def test_grid_sample_gradients_at_clamped_and_reflected_points():
    x = numpy.arange(1.0, 7.0).reshape(1, 1, 2, 3)
    g = numpy.ones((1, 1, 1, 1))
    # a point past the right edge: border padding clamps it, so the x-coordinate gets no gradient
    _, _, grad_grid = _ours_grid_sample(x, numpy.array([[[[1.5, -0.25]]]]), g, "bilinear", "border", False)
    assert grad_grid[0, 0, 0, 0] == 0.0 and grad_grid[0, 0, 0, 1] != 0.0
    # exactly on the clamp limit (align_corners=True: gx = -1 is pixel 0): the limit counts as clamped
    _, _, grad_grid = _ours_grid_sample(x, numpy.array([[[[-1.0, 0.3]]]]), g, "bilinear", "border", True)
    assert grad_grid[0, 0, 0, 0] == 0.0
    # zeros padding has no clamp: at gx = -1 (align_corners=True) the slope to the right is x[.,1]-x[.,0]
    _, _, grad_grid = _ours_grid_sample(x, numpy.array([[[[-1.0, -1.0]]]]), g, "bilinear", "zeros", True)
    assert grad_grid[0, 0, 0, 0] == pytest.approx(1.0)  # (2 - 1) * (W - 1)/2
    # reflection: past the right edge the image is mirrored, so moving right reads leftwards
    _, _, inside = _ours_grid_sample(x, numpy.array([[[[0.3, -0.5]]]]), g, "bilinear", "reflection", False)
    _, _, mirrored = _ours_grid_sample(x, numpy.array([[[[1.5, -0.5]]]]), g, "bilinear", "reflection", False)
    assert inside[0, 0, 0, 0] == pytest.approx(1.5) and mirrored[0, 0, 0, 0] == pytest.approx(-1.5)


def test_grid_sample_nan_next_to_a_point_spreads_even_at_weight_zero():
    # A point exactly on pixel (0, 0) gives its neighbours weight 0, but 0 * NaN is NaN: PyTorch's
    # weighted sum reads every corner inside the image, and so does poolref's sampling matrix, which
    # keeps its zero weights stored. A NaN only in the zero frame's place (outside) is never read.
    x = numpy.array([[[[1.0, numpy.nan], [3.0, 4.0]]]])  # the NaN is pixel (0, 1)
    on_pixel = numpy.array([[[[-0.5, -0.5]]]])  # align_corners=False: the centre of pixel (0, 0)
    y, grad_x, grad_grid = _ours_grid_sample(x, on_pixel, numpy.ones((1, 1, 1, 1)), "bilinear", "zeros", False)
    assert numpy.isnan(y[0, 0, 0, 0])
    # the backward is the transpose of the same matrix: the finite gradient goes to all four
    # corners, pixel (0, 0) with weight 1 and the others with weight 0
    assert grad_x.tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]
    # the derivative weights of the NaN corner are 0 (d/dix) and -0 (d/diy): both are NaN as well
    assert numpy.isnan(grad_grid).all()
    # nearest sampling reads one pixel only
    assert poolref.grid_sample(x, on_pixel, mode="nearest")[0, 0, 0, 0] == 1.0


def test_grid_sample_nearest_rounds_half_to_even():
    x = numpy.arange(4.0).reshape(1, 1, 1, 4)
    # align_corners=False, W = 4: g -> i = 2g + 1.5; i = 0.5, 1.5, 2.5 -> pixels 0, 2, 2
    grid = numpy.array([[[[-0.5, 0.0], [0.0, 0.0], [0.5, 0.0]]]])
    assert poolref.grid_sample(x, grid, mode="nearest")[0, 0, 0].tolist() == [0.0, 2.0, 2.0]


def _assert_grid_sample_matches_torch(x, grid, g, mode, padding_mode, align_corners):
    """Output, gradient to x and gradient to the grid equal PyTorch's; returns poolref's three."""
    ours = _ours_grid_sample(x, grid, g, mode, padding_mode, align_corners)
    theirs = _torch_grid_sample(x, grid, g, mode, padding_mode, align_corners)
    for what, a, b in zip(("output", "grad_x", "grad_grid"), ours, theirs):
        assert_matches(a, b, rtol=1e-12, atol=1e-12, what=f"{what} {mode} {padding_mode} {align_corners}")
    return ours


def test_grid_sample_matches_torch_at_exact_borders_centres_and_halves():
    torch_or_skip()
    x = numpy.random.default_rng(3).standard_normal((1, 2, 3, 4))
    # every quarter step of [-2, 2] on both axes: edges, centres, halves, clamp limits, reflections
    steps = numpy.arange(-2.0, 2.01, 0.25)
    gx, gy = numpy.meshgrid(steps, steps)
    grid = numpy.stack([gx, gy], axis=-1)[None]
    g = numpy.random.default_rng(4).standard_normal((1, 2) + gx.shape)
    for mode in GRID_MODES:
        for padding_mode in PADDINGS:
            for align_corners in (False, True):
                _assert_grid_sample_matches_torch(x, grid, g, mode, padding_mode, align_corners)


def test_interpolate_worked_examples():
    x = numpy.array([[[0.0, 3.0, 6.0]]])
    numpy.testing.assert_array_equal(poolref.interpolate(x, size=5), [[[0, 0, 3, 3, 6]]])  # floor(o * 3/5)
    numpy.testing.assert_array_equal(poolref.interpolate(x, size=5, mode="nearest-exact"), [[[0, 0, 3, 6, 6]]])
    # align_corners=True: c = o * 2/4, so the ends map onto the ends
    numpy.testing.assert_allclose(poolref.interpolate(x, size=5, mode="linear", align_corners=True), [[[0, 1.5, 3, 4.5, 6]]])
    # align_corners=False: c = (o + 1/2) * 3/5 - 1/2 = -0.2 (-> 0), 0.4, 1, 1.6, 2.2 (-> the last pixel)
    numpy.testing.assert_allclose(poolref.interpolate(x, size=5, mode="linear"), [[[0, 1.2, 3, 4.8, 6]]])
    numpy.testing.assert_array_equal(poolref.interpolate(numpy.arange(8.0).reshape(1, 1, 2, 4), size=(1, 2), mode="area"), [[[[2.5, 4.5]]]])


def test_interpolate_scale_factor_uses_its_reciprocal_not_the_size_ratio():
    # L = 4, scale_factor = 2.1: the output has floor(8.4) = 8 points and reads c = (o + 1/2)/2.1 - 1/2,
    # not (o + 1/2) * 4/8 - 1/2 (that is what recompute_scale_factor=True does)
    x = numpy.arange(4.0).reshape(1, 1, 4)
    o = numpy.arange(8)
    want = numpy.minimum(numpy.maximum((o + 0.5) / 2.1 - 0.5, 0), 3)
    numpy.testing.assert_allclose(poolref.interpolate(x, scale_factor=2.1, mode="linear")[0, 0], want, rtol=1e-14)
    recomputed = poolref.interpolate(x, scale_factor=2.1, mode="linear", recompute_scale_factor=True)
    numpy.testing.assert_allclose(recomputed[0, 0], numpy.clip((o + 0.5) / 2 - 0.5, 0, 3), rtol=1e-14)
    # an axis whose size does not change is copied, whatever the scale factor (PyTorch)
    numpy.testing.assert_array_equal(poolref.interpolate(x, scale_factor=1.1, mode="linear"), x)


def test_nearest_indices_follow_torchs_float32_arithmetic():
    # 14 -> 46: exactly, 23 * 14/46 = 7, but float32(14/46) * 23 = 6.9999995 -> 6 (PyTorch)
    assert nearest_indices(14, 46)[23] == 6
    assert ref.nearest_source_index(23, 14, 46) == 6
    # nearest copies at O = L and halves at O = 2L even when a scale factor says otherwise
    assert nearest_indices(4, 4, scale_factor=1.1).tolist() == [0, 1, 2, 3]
    assert nearest_indices(4, 8, scale_factor=2.1).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert nearest_indices(4, 4, scale_factor=1.24, exact=True).tolist() == [0, 1, 2, 2]  # no shortcut


def test_torch_nearest_1d_forward_is_not_the_adjoint_of_its_backward():
    """PyTorch's 1-D and 3-D nearest forward computes indices in float64 without the O = L / O = 2L
    shortcuts, while its backward (and its 2-D forward) uses float32 and the shortcuts; poolref follows
    the backward, so its forward and backward are adjoint. Pinned here so that a change is noticed."""
    torch = torch_or_skip()
    x = numpy.arange(4.0).reshape(1, 1, 4)
    xt = to_torch(x, requires_grad=True)
    yt = torch.nn.functional.interpolate(xt, scale_factor=1.1)
    assert yt.detach().numpy()[0, 0].tolist() == [0, 0, 1, 2]  # floor(o / 1.1): no shortcut
    yt.backward(to_torch(numpy.array([[[1.0, 10.0, 100.0, 1000.0]]])))
    assert xt.grad.numpy()[0, 0].tolist() == [1, 10, 100, 1000]  # the backward copies
    y, pullback = vjp(lambda t: poolref.interpolate(t, scale_factor=1.1), x)
    assert y[0, 0].tolist() == [0, 1, 2, 3] and pullback(numpy.array([[[1.0, 10.0, 100.0, 1000.0]]]))[0][0, 0].tolist() == [1, 10, 100, 1000]
    # the 2-D forward takes the shortcut, as poolref does
    y2 = torch.nn.functional.interpolate(to_torch(numpy.arange(4.0).reshape(1, 1, 4, 1)), scale_factor=(1.1, 1.0))
    assert y2.numpy()[0, 0, :, 0].tolist() == [0, 1, 2, 3]


# ---------------------------------------------------------------------------------------------------
# Loop reference == vectorised (forward and backward)
# ---------------------------------------------------------------------------------------------------
@given(grid_cases())
def test_grid_sample_matches_loop_reference(case):
    x, grid, mode, padding_mode, align_corners = case
    g = smooth_values((x.shape[0], x.shape[1]) + grid.shape[1:3], 1)
    y, grad_x, grad_grid = _ours_grid_sample(x, grid, g, mode, padding_mode, align_corners)
    assert_matches(y, ref.grid_sample_reference(x, grid, mode, padding_mode, align_corners), rtol=1e-12, atol=1e-14)
    want_x, want_grid = ref.grid_sample_backward_reference(g, x, grid, mode, padding_mode, align_corners)
    assert_matches(grad_x, want_x, rtol=1e-12, atol=1e-14, what="grad_x")
    assert_matches(grad_grid, want_grid, rtol=1e-10, atol=1e-12, what="grad_grid")


@given(interpolate_cases())
def test_interpolate_matches_loop_reference(case):
    x, kwargs, out, factors = case
    mode, align = kwargs["mode"], bool(kwargs.get("align_corners"))
    y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
    assert y.shape == x.shape[:2] + out
    assert_matches(y, ref.interpolate_reference(x, out, mode, align, factors), rtol=1e-12, atol=1e-14)
    g = smooth_values(y.shape, 2)
    want = ref.interpolate_backward_reference(g, x.shape, mode, align, factors)
    assert_matches(pullback(g)[0], want, rtol=1e-12, atol=1e-14, what="gradient")


@pytest.mark.parametrize("L, O", [(3, 5), (5, 3), (4, 8), (7, 7), (1, 4), (4, 1), (14, 46), (6, 37)])
@pytest.mark.parametrize("scale_factor", [None, 1.7])
def test_index_rules_match_the_reference_rules(L, O, scale_factor):
    for exact in (False, True):
        assert nearest_indices(L, O, scale_factor, exact).tolist() == [ref.nearest_source_index(o, L, O, scale_factor, exact) for o in range(O)]
    for align in (False, True):
        taps = linear_taps(L, O, align, scale_factor)
        want = [ref.resize_taps(o, L, O, "linear", align, scale_factor) for o in range(O)]
        got = [[(o, 1.0)] for o in range(O)] if taps is None else [
            [(int(taps[0][o]), float(taps[2][o])), (int(taps[1][o]), float(taps[3][o]))] for o in range(O)]
        assert got == want


# ---------------------------------------------------------------------------------------------------
# Gradients: gradcheck (float64, central differences) and the adjoint (dot-product) test
# ---------------------------------------------------------------------------------------------------
@settings(max_examples=15)
@given(st.integers(0, 2**32 - 1), st.sampled_from(GRID_MODES), st.sampled_from(PADDINGS), st.booleans())
def test_gradcheck_grid_sample_for_x_and_grid(seed, mode, padding_mode, align_corners):
    rng = numpy.random.default_rng(seed)
    H, W = rng.integers(1, 5, 2)
    x = rng.standard_normal((1, 2, H, W))
    grid = smooth_grid(rng, (1, 2, 3), H, W, align_corners)
    assert gradcheck(lambda a, b: poolref.grid_sample(a, b, mode, padding_mode, align_corners), x, grid)
    # linear in x: the backward is the transpose of the forward (any grid, even points on edges)
    rough = numpy.round(rng.uniform(-1.5, 1.5, (1, 3, 2, 2)) * 4) / 4
    assert adjoint_test(lambda a: poolref.grid_sample(a, rough, mode, padding_mode, align_corners), x)


@settings(max_examples=15)
@given(interpolate_cases(max_size=4, max_out=6))
def test_gradcheck_and_adjoint_interpolate(case):
    x, kwargs, _, _ = case
    x = x[:1, :1]
    assert gradcheck(lambda t: poolref.interpolate(t, **kwargs), x)
    assert adjoint_test(lambda t: poolref.interpolate(t, **kwargs), x)


# ---------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------
def identity_grid(N, H, W):
    """Grid of the pixel centres with align_corners=False: g = (2i + 1)/L - 1."""
    gx = (2 * numpy.arange(W) + 1) / W - 1
    gy = (2 * numpy.arange(H) + 1) / H - 1
    return numpy.broadcast_to(numpy.stack(numpy.meshgrid(gx, gy), axis=-1), (N, H, W, 2)).copy()


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7), st.sampled_from(GRID_MODES),
       st.sampled_from(PADDINGS), st.integers(0, 2**32 - 1))
def test_identity_grid_reproduces_x(N, C, H, W, mode, padding_mode, seed):
    x = numpy.random.default_rng(seed).standard_normal((N, C, H, W))
    y = poolref.grid_sample(x, identity_grid(N, H, W), mode, padding_mode, align_corners=False)
    assert_matches(y, x, rtol=1e-12, atol=1e-12)


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.integers(1, 6), st.booleans(), st.integers(0, 2**32 - 1))
def test_grid_sample_on_a_regular_grid_is_bilinear_interpolate(H, W, H_out, W_out, align_corners, seed):
    # interpolate's source coordinate is grid_sample's at the output pixel centres (or at linspace
    # points with aligned corners), clamped to the image as border padding clamps it
    x = numpy.random.default_rng(seed).standard_normal((1, 2, H, W))
    if align_corners:
        gx, gy = numpy.linspace(-1, 1, W_out), numpy.linspace(-1, 1, H_out)
        if W_out == 1:
            gx = numpy.array([-1.0])
        if H_out == 1:
            gy = numpy.array([-1.0])
    else:
        gx, gy = (2 * numpy.arange(W_out) + 1) / W_out - 1, (2 * numpy.arange(H_out) + 1) / H_out - 1
    grid = numpy.stack(numpy.meshgrid(gx, gy), axis=-1)[None]
    y = poolref.grid_sample(x, grid, "bilinear", "border", align_corners)
    assert_matches(y, poolref.interpolate(x, size=(H_out, W_out), mode="bilinear", align_corners=align_corners), rtol=1e-10, atol=1e-12)


@given(st.sampled_from(["nearest", "nearest-exact", "linear", "area"]), st.integers(1, 3), st.integers(1, 6), st.integers(0, 2**32 - 1), st.booleans())
def test_interpolate_to_the_same_size_is_the_identity(mode, n, L, seed, by_factor):
    mode = {1: mode, 2: "bilinear", 3: "trilinear"}[n] if mode == "linear" else mode
    x = numpy.random.default_rng(seed).standard_normal((2, 2) + (L,) * n)
    kwargs = {"scale_factor": 1.0} if by_factor else {"size": (L,) * n}
    y, pullback = vjp(lambda t: poolref.interpolate(t, mode=mode, **kwargs), x)
    assert_matches(y, x, rtol=0)
    assert_matches(pullback(x)[0], x, rtol=0, what="gradient")


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_nearest_upsampling_then_area_downsampling_gives_x_back(n, L, factor, seed):
    x = numpy.random.default_rng(seed).standard_normal((2, 3) + (L,) * n)
    up = poolref.interpolate(x, scale_factor=factor, mode="nearest")
    assert up.shape == x.shape[:2] + (L * factor,) * n
    assert_matches(poolref.interpolate(up, size=(L,) * n, mode="area"), x, rtol=1e-12, atol=1e-14)


@given(interpolate_cases())
def test_interpolate_conserves_gradient(case):
    # every output's weights sum to 1 (one tap, two blending taps, or a bin average)
    x, kwargs, _, _ = case
    assert_conserves_gradient(poolref.interpolate, x, **kwargs)


@given(grid_cases(special=False))
def test_grid_sample_with_clamping_padding_conserves_gradient(case):
    # border and reflection keep every corner that has weight inside the image
    x, grid, mode, _, align_corners = case
    for padding_mode in ("border", "reflection"):
        assert_conserves_gradient(lambda t: poolref.grid_sample(t, grid, mode, padding_mode, align_corners), x)


# ---------------------------------------------------------------------------------------------------
# PyTorch cross-checks: forward and gradients over randomized configurations
# ---------------------------------------------------------------------------------------------------
@given(grid_cases(max_size=6, max_out=5, batch=(1, 3), channels=(1, 3)))
def test_grid_sample_matches_torch(case):
    torch_or_skip()
    x, grid, mode, padding_mode, align_corners = case
    g = smooth_values((x.shape[0], x.shape[1]) + grid.shape[1:3], 3)
    ours = _ours_grid_sample(x, grid, g, mode, padding_mode, align_corners)
    theirs = _torch_grid_sample(x, grid, g, mode, padding_mode, align_corners)
    for what, a, b in zip(("output", "grad_x", "grad_grid"), ours, theirs):
        assert_matches(a, b, rtol=1e-12, atol=1e-12, what=what)


def test_grid_sample_every_configuration_matches_torch():
    torch_or_skip()
    rng = numpy.random.default_rng(11)
    for mode in GRID_MODES:
        for padding_mode in PADDINGS:
            for align_corners in (False, True):
                for H, W in ((1, 1), (1, 4), (3, 5), (6, 2)):
                    x = rng.standard_normal((2, 3, H, W))
                    grid = rng.uniform(-2.5, 2.5, (2, 4, 3, 2))
                    g = rng.standard_normal((2, 3, 4, 3))
                    ours = _ours_grid_sample(x, grid, g, mode, padding_mode, align_corners)
                    theirs = _torch_grid_sample(x, grid, g, mode, padding_mode, align_corners)
                    for what, a, b in zip(("output", "grad_x", "grad_grid"), ours, theirs):
                        assert_matches(a, b, rtol=1e-12, atol=1e-12, what=f"{what} {mode} {padding_mode} {align_corners} {H}x{W}")


def test_grid_sample_with_nan_and_inf_in_x_matches_torch():
    # What a NaN or an infinity in x does (PyTorch defines it): it spreads to every point that has it
    # among its corners, even at weight 0 (0 * inf is NaN), to the grid gradient there, and not to
    # the gradient of x. Quarter steps put many points exactly on pixels and edges, where some
    # corner weights are exactly 0; random points fill in between. No warning may escape either.
    torch_or_skip()
    rng = numpy.random.default_rng(21)
    x = rng.standard_normal((2, 3, 4, 5))
    x[0, 0, 1, 2] = numpy.nan
    x[0, 2, 0, 0] = numpy.inf  # a corner pixel: reached by clamping and reflection too
    x[1, 1, 3, 4] = -numpy.inf
    x[1, 2, 2, 1] = numpy.nan
    steps = numpy.arange(-1.5, 1.51, 0.25)
    gx, gy = numpy.meshgrid(steps, steps)
    on_steps = numpy.broadcast_to(numpy.stack([gx, gy], axis=-1), (2,) + gx.shape + (2,))
    grid = numpy.concatenate([on_steps, rng.uniform(-1.5, 1.5, (2, 4) + gx.shape[1:] + (2,))], axis=1)
    g = rng.standard_normal((2, 3) + grid.shape[1:3])
    for mode in GRID_MODES:
        for padding_mode in PADDINGS:
            for align_corners in (False, True):
                ours = _assert_grid_sample_matches_torch(x, grid, g, mode, padding_mode, align_corners)
                assert numpy.isnan(ours[0]).any() and not numpy.isnan(ours[1]).any()


def _generic_torch_nearest(L, O, factor, exact):
    """PyTorch's 1-D / 3-D nearest forward on float64: float64 arithmetic rounded to float32, no shortcuts."""
    scale = 1.0 / factor if factor is not None else L / O
    o = numpy.arange(O, dtype=numpy.float64)
    source = scale * (o + 0.5) if exact else scale * o
    return numpy.minimum(numpy.floor(source.astype(numpy.float32)).astype(numpy.int64), L - 1)


@given(interpolate_cases(max_size=9, max_out=18))
def test_interpolate_matches_torch(case):
    torch = torch_or_skip()
    x, kwargs, out, factors = case
    xt = to_torch(x, requires_grad=True)
    yt = torch.nn.functional.interpolate(xt, **kwargs)
    g = smooth_values(tuple(yt.shape), 4)
    yt.backward(to_torch(g))
    y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
    assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=1e-12, atol=1e-13, what="gradient")
    n, mode = x.ndim - 2, kwargs["mode"]
    if mode.startswith("nearest") and n != 2:
        # PyTorch's 1-D/3-D forward follows its own float64 rule (see the test above); where that rule
        # picks other pixels, check that PyTorch's forward is exactly that rule
        exact = mode == "nearest-exact"
        generic = [_generic_torch_nearest(L, O, s, exact) for L, O, s in zip(x.shape[2:], out, factors)]
        ours = [nearest_indices(L, O, s, exact) for L, O, s in zip(x.shape[2:], out, factors)]
        if not all(numpy.array_equal(a, b) for a, b in zip(generic, ours)):
            assert_matches(yt.detach().numpy(), x[numpy.ix_(range(x.shape[0]), range(x.shape[1]), *generic)], rtol=0)
            return
    assert_matches(y, yt.detach().numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype, tol", [(numpy.float32, 2e-6), (numpy.float16, 3e-3)])
def test_low_precision_matches_torch(dtype, tol):
    """float32 against PyTorch's float32. float16 against PyTorch's float32 on the same values: poolref
    computes coordinates and sums of float16 data in float32 (and rounds the result once), while
    PyTorch's CPU kernels compute float16 coordinates in float16, which moves nearest picks."""
    torch = torch_or_skip()
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 9)).astype(dtype)
    grid = rng.uniform(-1.3, 1.3, (2, 5, 4, 2)).astype(dtype)
    g = rng.standard_normal((2, 3, 5, 4)).astype(dtype)
    up = [a.astype(numpy.float32) for a in (x, grid, g)]
    for mode in GRID_MODES:
        for padding_mode in PADDINGS:
            ours = _ours_grid_sample(x, grid, g, mode, padding_mode, False)
            theirs = _torch_grid_sample(*up, mode, padding_mode, False)
            for what, a, b in zip(("output", "grad_x", "grad_grid"), ours, theirs):
                assert a.dtype == dtype
                assert_matches(a, b, rtol=tol, atol=tol * 4, what=what)
    for mode, size in (("nearest", (14, 46)), ("nearest-exact", (5, 13)), ("bilinear", (12, 5)), ("area", (3, 4))):
        xt = to_torch(up[0], requires_grad=True)
        yt = torch.nn.functional.interpolate(xt, size=size, mode=mode)
        h = rng.standard_normal(tuple(yt.shape)).astype(dtype)
        yt.backward(to_torch(h.astype(numpy.float32)))
        y, pullback = vjp(lambda t: poolref.interpolate(t, size=size, mode=mode), x)
        assert y.dtype == dtype and pullback(h)[0].dtype == dtype
        assert_matches(y, yt.detach().numpy(), rtol=tol, atol=tol, what=mode)
        assert_matches(pullback(h)[0], xt.grad.numpy(), rtol=tol, atol=tol * 4, what=f"{mode} gradient")


def test_empty_inputs_match_torch_shapes():
    for N, C, H_out in ((0, 2, 3), (2, 0, 3), (2, 2, 0)):
        x, grid = numpy.zeros((N, C, 4, 5)), numpy.zeros((N, H_out, 2, 2))
        y, pullback = vjp(lambda a, b: poolref.grid_sample(a, b), x, grid)
        assert y.shape == (N, C, H_out, 2)
        grad_x, grad_grid = pullback(numpy.zeros(y.shape))
        assert grad_x.shape == x.shape and grad_grid.shape == grid.shape
    y, pullback = vjp(lambda t: poolref.interpolate(t, size=(3, 2), mode="bilinear"), numpy.zeros((0, 2, 4, 4)))
    assert y.shape == (0, 2, 3, 2) and pullback(numpy.zeros(y.shape))[0].shape == (0, 2, 4, 4)


def test_numpy_and_cupy_agree(xp):
    """The same array code on the GPU (skipped where cupy or a GPU is missing)."""
    rng = numpy.random.default_rng(12)
    x, grid = rng.standard_normal((2, 3, 5, 6)), rng.uniform(-1.4, 1.4, (2, 4, 3, 2))
    g = rng.standard_normal((2, 3, 4, 3))
    for mode in GRID_MODES:
        for padding_mode in PADDINGS:
            want = _ours_grid_sample(x, grid, g, mode, padding_mode, True)
            got = _ours_grid_sample(xp.asarray(x), xp.asarray(grid), xp.asarray(g), mode, padding_mode, True)
            for what, a, b in zip(("output", "grad_x", "grad_grid"), got, want):
                assert_matches(a, b, rtol=1e-12, atol=1e-12, what=what)
    for kwargs in (dict(size=(7, 4), mode="bilinear"), dict(scale_factor=1.5, mode="nearest"), dict(size=(2, 3), mode="area")):
        y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
        y_xp, pullback_xp = vjp(lambda t: poolref.interpolate(t, **kwargs), xp.asarray(x))
        assert_matches(y_xp, y, rtol=1e-12, atol=1e-12)
        h = rng.standard_normal(y.shape)
        assert_matches(pullback_xp(xp.asarray(h))[0], pullback(h)[0], rtol=1e-12, atol=1e-12, what="gradient")


# ---------------------------------------------------------------------------------------------------
# Tensors, the tape, dtypes, and inputs never modified
# ---------------------------------------------------------------------------------------------------
def test_tensors_in_tensors_out_recorded_on_tape():
    x = poolref.Tensor(smooth_values((1, 2, 4, 4), 0), requires_grad=True)
    grid = poolref.Tensor(smooth_values((1, 3, 3, 2), 1, low=-1, high=1), requires_grad=True)
    with poolref.Tape() as tape:
        y = poolref.grid_sample(x, grid, padding_mode="border")
        z = poolref.interpolate(y, size=(6, 6), mode="bilinear")
        loss = z.sum()
    assert isinstance(y, poolref.Tensor) and isinstance(z, poolref.Tensor)
    assert "grid_sample" in str(tape) and "interpolate" in str(tape)
    grad_x, grad_grid = tape.gradient(loss, [x, grid])
    assert grad_x.shape == x.shape and grad_grid.shape == grid.shape


def test_inputs_are_never_modified():
    x = smooth_values((2, 3, 5, 6), 7)
    grid = smooth_values((2, 4, 3, 2), 8)
    g = smooth_values((2, 3, 4, 3), 9)
    copies = x.copy(), grid.copy(), g.copy()
    for mode in GRID_MODES:
        _, pullback = vjp(lambda a, b: poolref.grid_sample(a, b, mode, "reflection"), x, grid)
        pullback(g)
    for mode, size in (("nearest", (5, 6)), ("bilinear", (7, 3)), ("area", (2, 2))):
        y, pullback = vjp(lambda t: poolref.interpolate(t, size=size, mode=mode), x)
        h = numpy.ones_like(y)
        pullback(h)
        numpy.testing.assert_array_equal(h, numpy.ones_like(y))
    for array, copy in zip((x, grid, g), copies):
        numpy.testing.assert_array_equal(array, copy)
    # an identity resize returns a new array, never x itself
    assert poolref.interpolate(x, size=(5, 6)) is not x


# ---------------------------------------------------------------------------------------------------
# Bad input: ValueError or TypeError naming the argument and its value
# ---------------------------------------------------------------------------------------------------
X = numpy.zeros((1, 2, 4, 5))
G = numpy.zeros((1, 3, 3, 2))
L3 = numpy.zeros((1, 2, 4))


@pytest.mark.parametrize("call, error, words", [
    (lambda: poolref.grid_sample(X, G, mode="bicubic"), ValueError, "mode='bicubic'"),
    (lambda: poolref.grid_sample(X, G, padding_mode="wrap"), ValueError, "padding_mode='wrap'"),
    (lambda: poolref.grid_sample(X, G, align_corners="yes"), TypeError, "align_corners='yes'"),
    (lambda: poolref.grid_sample(X, G.astype(numpy.float32)), TypeError, "grid with dtype float32"),
    (lambda: poolref.grid_sample(X, numpy.zeros((2, 3, 3, 2))), ValueError, "grid with shape (2, 3, 3, 2)"),
    (lambda: poolref.grid_sample(X, numpy.zeros((1, 3, 3, 3))), ValueError, "grid with shape (1, 3, 3, 3)"),
    (lambda: poolref.grid_sample(X, numpy.zeros((1, 3, 2))), ValueError, "grid with shape (1, 3, 2)"),
    (lambda: poolref.grid_sample(X[0], G), ValueError, "x with shape (2, 4, 5)"),
    (lambda: poolref.grid_sample(numpy.zeros((1, 1, 0, 3)), G), ValueError, "x with shape (1, 1, 0, 3)"),
    (lambda: poolref.grid_sample(X.astype(int), G.astype(int)), TypeError, "x with dtype int64"),
    (lambda: poolref.grid_sample(X, numpy.full((1, 3, 3, 2), numpy.nan)), ValueError, "18 NaN or infinite"),
    (lambda: poolref.interpolate(L3, size=3, mode="cubic"), ValueError, "mode='cubic'"),
    (lambda: poolref.interpolate(L3, size=3, mode="bilinear"), ValueError, "x with shape (1, 2, 4)"),
    (lambda: poolref.interpolate(X, size=3, mode="linear"), ValueError, "x with shape (1, 2, 4, 5)"),
    (lambda: poolref.interpolate(numpy.zeros((2, 4)), size=3), ValueError, "x with shape (2, 4)"),
    (lambda: poolref.interpolate(L3, size=3, align_corners=False), ValueError, "align_corners=False"),
    (lambda: poolref.interpolate(L3, size=3, mode="area", align_corners=True), ValueError, "align_corners=True"),
    (lambda: poolref.interpolate(L3, size=3, mode="linear", align_corners=1), TypeError, "align_corners=1"),
    (lambda: poolref.interpolate(L3, size=3, scale_factor=2.0), ValueError, "size=3 and scale_factor=2.0"),
    (lambda: poolref.interpolate(L3), ValueError, "size=None and scale_factor=None"),
    (lambda: poolref.interpolate(L3, size=(2, 3)), ValueError, "size=(2, 3)"),
    (lambda: poolref.interpolate(L3, size=2.5), TypeError, "size=2.5"),
    (lambda: poolref.interpolate(L3, size=(2.0,)), TypeError, "size=(2.0,)"),
    (lambda: poolref.interpolate(L3, size=True), TypeError, "size=True"),
    (lambda: poolref.interpolate(L3, size=0), ValueError, "size=0"),
    (lambda: poolref.interpolate(L3, scale_factor=(2.0, 3.0)), ValueError, "scale_factor=(2.0, 3.0)"),
    (lambda: poolref.interpolate(L3, scale_factor="2"), TypeError, "scale_factor='2'"),
    (lambda: poolref.interpolate(L3, scale_factor=-2.0), ValueError, "scale_factor=-2.0"),
    (lambda: poolref.interpolate(L3, scale_factor=float("inf")), ValueError, "scale_factor=inf"),
    (lambda: poolref.interpolate(L3, scale_factor=0.2), ValueError, "scale_factor=0.2"),
    (lambda: poolref.interpolate(L3, scale_factor=0.2, mode="area"), ValueError, "scale_factor=0.2"),
    (lambda: poolref.interpolate(L3, size=3, recompute_scale_factor=True), ValueError, "recompute_scale_factor=True"),
    (lambda: poolref.interpolate(L3.astype(int), size=3), TypeError, "dtype int64"),
    (lambda: poolref.interpolate(numpy.zeros((1, 2, 0)), size=3), ValueError, "shape (1, 2, 0)"),
])
def test_bad_input_is_refused_with_a_clear_message(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_torch_rejects_what_poolref_rejects():
    torch = torch_or_skip()
    F = torch.nn.functional
    x, l3 = to_torch(X), to_torch(L3)
    for call in (
        lambda: F.grid_sample(x, to_torch(G), mode="bicubic_x", align_corners=False),
        lambda: F.grid_sample(x, to_torch(G), padding_mode="wrap", align_corners=False),
        lambda: F.grid_sample(x, to_torch(G.astype(numpy.float32)), align_corners=False),
        lambda: F.grid_sample(x, to_torch(numpy.zeros((2, 3, 3, 2))), align_corners=False),
        lambda: F.interpolate(l3, size=3, align_corners=False),
        lambda: F.interpolate(l3, size=3, scale_factor=2.0),
        lambda: F.interpolate(l3),
        lambda: F.interpolate(l3, size=(2, 3)),
        lambda: F.interpolate(l3, size=0),
        lambda: F.interpolate(l3, scale_factor=0.2),
        lambda: F.interpolate(l3, size=3, mode="bilinear"),
        lambda: F.interpolate(l3, size=3, recompute_scale_factor=True),
    ):
        with pytest.raises((RuntimeError, ValueError, TypeError, NotImplementedError)):
            call()
