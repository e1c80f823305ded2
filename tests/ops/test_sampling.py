"""grid_sample and interpolate: worked examples, loop reference vs vectorised, gradients, laws,
PyTorch cross-checks (forward and both gradients), bad input."""

import math

import numpy
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import poolref
from helpers import assert_blocks_change_nothing, plant_nonfinite, to_torch, torch_or_skip
from sampling_helpers import rows, sprinkle, torch_grid_sample, torch_pair
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref import _sampling_weights as weights
from poolref._geometry import adaptive_taps
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
def interpolate_cases(draw, max_size=6, max_out=12, non_finite=False, min_size=1):
    """(x, kwargs, output_size, scale_factors for the reference); with ``non_finite`` some inputs
    carry NaN and infinities; ``min_size`` is the least length of each spatial axis."""
    mode = draw(st.sampled_from(["nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area", "antialias"]))
    antialias = mode == "antialias"
    mode = "bilinear" if antialias else mode
    n = LINEAR.get(mode) or draw(st.integers(1, 3))
    small = n == 3
    spatial = tuple(draw(st.integers(min_size, 4 if small else max_size)) for _ in range(n))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 2))) + spatial)
    if non_finite and draw(st.booleans()):
        x = sprinkle(rng, x)
    kwargs = {"mode": mode}
    if antialias:
        kwargs["antialias"] = True
    if mode in LINEAR:
        kwargs["align_corners"] = draw(st.sampled_from([None, False, True]))
    if draw(st.booleans()):
        out = tuple(draw(st.integers(1, 6 if small else max_out)) for _ in range(n))
        kwargs["size"] = out if n > 1 or draw(st.booleans()) else out[0]
        factors = (None,) * n
    else:
        # scale factors with few decimals, as people write them (1.7, 0.3, ...), each giving an
        # output of 1 or more
        factors = tuple(
            draw(st.integers(math.ceil(100 / L), 300).map(lambda k: k / 100)) for L in spatial
        )
        kwargs["scale_factor"] = factors
        out = tuple(math.floor(L * s) for L, s in zip(spatial, factors))
        if mode != "area" and draw(st.integers(0, 3)) == 0:
            kwargs["recompute_scale_factor"] = draw(st.booleans())
            if kwargs["recompute_scale_factor"]:
                factors = (None,) * n
    return x, kwargs, out, factors


CONVENTION_MODES = {
    "tensorflow": ("nearest", "nearest-exact", "bilinear", "bilinear-antialias", "bilinear-align", "nearest-align", "area", "area-align"),
    "jax": ("nearest-exact", "linear", "bilinear", "trilinear", "area"),
}


@st.composite
def convention_cases(draw, convention, max_size=5, max_out=9):
    """(x, kwargs) for interpolate under ``convention``, sometimes with NaN and infinities in x."""
    choice = draw(st.sampled_from(CONVENTION_MODES[convention]))
    mode = choice.split("-")[0] if choice != "nearest-exact" else choice
    kwargs = {"mode": mode, "convention": convention}
    if choice.endswith("-align"):
        kwargs["align_corners"] = True
    if convention == "tensorflow":
        kwargs["antialias"] = choice.endswith("-antialias")
        n = 2
    else:
        kwargs["antialias"] = draw(st.booleans())
        n = LINEAR.get(mode) or draw(st.integers(1, 3))
    small = n == 3
    # every axis at least 2 in and out, except one axis in four: a 1-wide input or output broadcasts
    # one value, and a case of constant outputs cannot tell a right resize from a wrong one
    spatial = [draw(st.integers(2, 3 if small else max_size)) for _ in range(n)]
    size = [draw(st.integers(2, 4 if small else max_out)) for _ in range(n)]
    if draw(st.sampled_from([False, False, False, True])):
        axis = draw(st.integers(0, n - 1))
        (spatial if draw(st.booleans()) else size)[axis] = 1
    spatial, kwargs["size"] = tuple(spatial), tuple(size)
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 2))) + spatial)
    if draw(st.booleans()):
        x = sprinkle(rng, x)
    return x, kwargs


def reference_kwargs(kwargs):
    """The reference's keywords for an interpolate call: the effective antialias flag and the rest."""
    convention = kwargs.get("convention", "torch")
    antialias = kwargs.get("antialias")
    if antialias is None:
        antialias = convention == "jax"
    if convention != "torch" and kwargs["mode"] not in LINEAR and kwargs["mode"] != "bicubic":
        antialias = False  # TensorFlow and JAX ignore it for nearest and area
    return dict(antialias=antialias, convention=convention)




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
    theirs = torch_grid_sample(x, grid, g, mode, padding_mode, align_corners)
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
    # without the shortcuts (PyTorch's 1-D and 3-D forwards): the scale's own reads
    assert nearest_indices(4, 4, scale_factor=1.1, shortcuts=False).tolist() == [0, 0, 1, 2]
    assert nearest_indices(4, 8, scale_factor=2.2, shortcuts=False).tolist() == [0, 0, 0, 1, 1, 2, 2, 3]
    assert [ref.nearest_source_index(o, 4, 8, 2.2, shortcuts=False) for o in range(8)] == [0, 0, 0, 1, 1, 2, 2, 3]


def test_torch_nearest_1d_and_3d_forward_reads_by_the_scale_and_poolref_follows_it():
    """PyTorch's 1-D and 3-D nearest forward reads by the scale, without the O = L / O = 2L shortcuts
    that its 2-D forward and its backward (in every dimension) take. poolref's forward is PyTorch's
    forward in each dimension, and its gradient that forward's adjoint; PyTorch's 1-D and 3-D
    gradient is then a known defect (TORCH_NEAREST_SHORTCUT_GRADIENT). Before, poolref followed the
    backward and so gave other outputs than PyTorch (found by a review of the oracle's claims)."""
    torch = torch_or_skip()
    g = numpy.array([[[1.0, 10.0, 100.0, 1000.0]]])
    for shape in ((1, 1, 4), (1, 1, 4, 1, 1)):
        x = numpy.arange(4.0).reshape(shape)
        factors = (1.1,) + (1.0,) * (len(shape) - 3)
        xt = to_torch(x, requires_grad=True)
        yt = torch.nn.functional.interpolate(xt, scale_factor=factors)
        assert yt.detach().numpy().ravel().tolist() == [0, 0, 1, 2]  # floor(o / 1.1): no shortcut
        yt.backward(to_torch(g.reshape(yt.shape)))
        assert xt.grad.numpy().ravel().tolist() == [1, 10, 100, 1000]  # the backward copies
        y, pullback = vjp(lambda t: poolref.interpolate(t, scale_factor=factors), x)
        assert y.ravel().tolist() == [0, 0, 1, 2]
        assert pullback(g.reshape(y.shape))[0].ravel().tolist() == [11, 100, 1000, 0]  # the forward's adjoint
    # doubling: floor(o / 2.2) in 1-D and 3-D, o // 2 in 2-D, as PyTorch's forwards read
    x = numpy.arange(4.0)
    for shape, want in (((1, 1, 4), [0, 0, 0, 1, 1, 2, 2, 3]), ((1, 1, 4, 1), [0, 0, 1, 1, 2, 2, 3, 3]),
                        ((1, 1, 4, 1, 1), [0, 0, 0, 1, 1, 2, 2, 3])):
        factors = (2.2,) + (1.0,) * (len(shape) - 3)
        got = poolref.interpolate(x.reshape(shape), scale_factor=factors, mode="nearest")
        assert got.ravel().tolist() == want
        assert ref.interpolate_reference(x.reshape(shape), got.shape[2:], "nearest", scale_factors=factors).ravel().tolist() == want
        g = numpy.arange(1.0, 9.0).reshape(got.shape)
        assert_matches(vjp(lambda t: poolref.interpolate(t, scale_factor=factors, mode="nearest"), x.reshape(shape))[1](g)[0],
                       ref.interpolate_backward_reference(g, shape, "nearest", scale_factors=factors), rtol=0, atol=0)
        assert torch.nn.functional.interpolate(to_torch(x.reshape(shape)), scale_factor=factors).numpy().ravel().tolist() == want
    # the 2-D forward takes the copy shortcut too, as poolref does
    y2 = torch.nn.functional.interpolate(to_torch(numpy.arange(4.0).reshape(1, 1, 4, 1)), scale_factor=(1.1, 1.0))
    assert y2.numpy()[0, 0, :, 0].tolist() == [0, 1, 2, 3]
    assert poolref.interpolate(numpy.arange(4.0).reshape(1, 1, 4, 1), scale_factor=(1.1, 1.0))[0, 0, :, 0].tolist() == [0, 1, 2, 3]


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


@given(interpolate_cases(non_finite=True), st.booleans())
def test_interpolate_matches_loop_reference(case, non_finite_gradient):
    x, kwargs, out, factors = case
    mode, align = kwargs["mode"], bool(kwargs.get("align_corners"))
    y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
    assert y.shape == x.shape[:2] + out
    extra = reference_kwargs(kwargs)
    assert_matches(y, ref.interpolate_reference(x, out, mode, align, factors, **extra), rtol=1e-12, atol=1e-14)
    g = smooth_values(y.shape, 2)
    if non_finite_gradient:
        g = sprinkle(numpy.random.default_rng(y.size), g)
    want = ref.interpolate_backward_reference(g, x.shape, mode, align, factors, **extra)
    assert_matches(pullback(g)[0], want, rtol=1e-12, atol=1e-14, what="gradient")


@pytest.mark.parametrize("convention", ["tensorflow", "jax"])
@given(data=st.data())
def test_interpolate_conventions_match_loop_reference(convention, data):
    x, kwargs = data.draw(convention_cases(convention))
    extra = reference_kwargs(kwargs)
    mode, align, size = kwargs["mode"], bool(kwargs.get("align_corners")), kwargs["size"]
    y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
    assert_matches(y, ref.interpolate_reference(x, size, mode, align, **extra), rtol=1e-12, atol=1e-14)
    g = smooth_values(y.shape, 3)
    if data.draw(st.booleans()):
        g = sprinkle(numpy.random.default_rng(y.size + 1), g)
    want = ref.interpolate_backward_reference(g, x.shape, mode, align, **extra)
    assert_matches(pullback(g)[0], want, rtol=1e-12, atol=1e-14, what="gradient")


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32])
@pytest.mark.parametrize("kwargs", [
    dict(size=(7, 3), mode="bilinear"), dict(size=(7, 3), mode="bilinear", align_corners=True),
    dict(size=(2, 9), mode="bilinear", antialias=True), dict(size=(5, 4), mode="nearest-exact"),
    dict(size=(3, 2), mode="area"), dict(size=(7, 3), mode="bilinear", convention="tensorflow"),
    dict(size=(2, 9), mode="bilinear", convention="tensorflow", antialias=True),
    dict(size=(3, 7), mode="area", convention="tensorflow"), dict(size=(7, 3), mode="bilinear", convention="jax"),
    dict(size=(3, 2), mode="area", convention="jax"), dict(size=(9, 2), mode="nearest-exact", convention="jax"),
    dict(size=(7, 3), mode="bicubic"), dict(size=(7, 3), mode="bicubic", align_corners=True),
    dict(size=(2, 9), mode="bicubic", antialias=True), dict(size=(5, 6), mode="bicubic"),
    dict(size=(7, 3), mode="bicubic", convention="tensorflow"), dict(size=(7, 3), mode="bicubic", convention="jax"),
])
def test_low_precision_matches_loop_reference(dtype, kwargs):
    """float16 and float32: the taps of the data's precision (PyTorch computes float32 coordinates for
    both), the sums in float32, rounded once; NaN and infinities in the same places."""
    rng = numpy.random.default_rng(7)
    x = sprinkle(rng, rng.standard_normal((2, 2, 5, 6)), 0.1).astype(dtype)
    y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
    g = sprinkle(rng, rng.standard_normal(y.shape), 0.1).astype(dtype)
    grad = pullback(g)[0]
    assert y.dtype == dtype and grad.dtype == dtype
    extra = reference_kwargs(kwargs)
    mode, align, size = kwargs["mode"], bool(kwargs.get("align_corners")), kwargs["size"]
    tol = 2e-3 if dtype == numpy.float16 else 2e-6
    assert_matches(y, ref.interpolate_reference(x, size, mode, align, **extra), rtol=tol, atol=tol)
    want = ref.interpolate_backward_reference(g, x.shape, mode, align, **extra, dtype=dtype)
    assert_matches(grad, want, rtol=tol, atol=tol, what="gradient")


@pytest.mark.parametrize("kwargs", [
    dict(size=(7, 3), mode="bilinear"), dict(size=(2, 9), mode="bilinear", antialias=True),
    dict(size=(7, 3), mode="nearest"), dict(size=(3, 2), mode="area"),
    dict(size=(7, 3), mode="bilinear", convention="tensorflow"),
    dict(size=(2, 9), mode="bilinear", convention="tensorflow", antialias=True),
    dict(size=(4, 9), mode="area", convention="tensorflow"), dict(size=(7, 3), mode="bilinear", convention="jax"),
    dict(size=(7, 3), mode="bicubic"), dict(size=(2, 9), mode="bicubic", antialias=True),
    dict(size=(7, 3), mode="bicubic", convention="tensorflow", antialias=True), dict(size=(2, 9), mode="bicubic", convention="jax"),
])
def test_interpolate_non_contiguous_inputs_give_the_contiguous_result(kwargs):
    rng = numpy.random.default_rng(8)
    base = sprinkle(rng, rng.standard_normal((3, 2, 6, 10)), 0.1)
    for view in (base[::-1, :, ::-1, ::2], base.transpose(1, 0, 2, 3), base[:, :, 1:, 3:]):
        y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), view)
        y_copy, pullback_copy = vjp(lambda t: poolref.interpolate(t, **kwargs), numpy.ascontiguousarray(view))
        assert_matches(y, y_copy, rtol=0)
        g = sprinkle(rng, rng.standard_normal(y.shape), 0.1)[:, :, ::-1]
        assert_matches(pullback(g)[0], pullback_copy(numpy.ascontiguousarray(g))[0], rtol=0, what="gradient")




SIZES = [(3, 5), (5, 3), (4, 8), (7, 7), (1, 4), (4, 1), (14, 46), (6, 37), (2, 50), (3, 47), (1, 5), (10, 25), (2, 6), (9, 2)]


@pytest.mark.parametrize("L, O", SIZES)
@pytest.mark.parametrize("scale_factor", [None, 1.7, 0.3])
def test_index_rules_match_the_reference_rules(L, O, scale_factor):
    """Every vectorised tap rule of poolref/_sampling_weights.py equals the loop reference's rule for
    one output at a time: the same taps read, in the same order, with the same weights."""
    for exact in (False, True):
        assert nearest_indices(L, O, scale_factor, exact).tolist() == [ref.nearest_source_index(o, L, O, scale_factor, exact) for o in range(O)]
    for dtype in (numpy.float64, numpy.float32, numpy.float16):
        for align in (False, True):
            s = None if align else scale_factor
            assert rows(torch_linear(L, O, align, s, dtype)) == [ref.torch_linear_taps(o, L, O, align, s, dtype) for o in range(O)]
            assert rows(weights.torch_antialias(L, O, align, s, dtype)) == [ref.torch_antialias_taps(o, L, O, align, s, dtype) for o in range(O)]
    # PyTorch's area mode: the adaptive bins, unweighted (the average divides by the bin areas)
    assert rows(adaptive_taps(L, O)) == [[(i, 1.0) for i, _ in ref.adaptive_bin_taps(o, L, O)] for o in range(O)]
    if scale_factor is not None:
        return  # TensorFlow and JAX take sizes only
    for align in (False, True):
        for half_pixel in ((False, True) if not align else (False,)):
            assert rows(weights.tf_nearest(L, O, half_pixel, align)) == [[(ref.tf_nearest_index(o, L, O, half_pixel, align), 1.0)] for o in range(O)]
        lerp = weights.tf_bilinear(L, O, align)
        assert [(int(a), int(b), float(t)) for a, b, t in zip(lerp.lower, lerp.upper, lerp.fraction)] == [ref.tf_bilinear_lerp(o, L, O, align) for o in range(O)]
        assert rows(weights.tf_area(L, O, align)) == [ref.tf_area_taps(o, L, O, align) for o in range(O)]
    forward, backward = weights.tf_antialias(L, O)
    assert rows(forward) == [ref.tf_antialias_taps(o, L, O) for o in range(O)]
    assert rows(backward) == [ref.tf_antialias_gradient_taps(i, L, O) for i in range(L)]
    assert rows(weights.jax_nearest(L, O)) == [[(ref.jax_nearest_index(o, L, O), 1.0)] for o in range(O)]
    for method in ("linear", "area"):
        for antialias in (False, True):
            dense = weights.jax_dense(L, O, method, antialias)
            want = [ref.jax_dense_taps(o, L, O, method, antialias) for o in range(O)]
            numpy.testing.assert_allclose(dense.weight, [[w for _, w in row] for row in want], rtol=1e-13, atol=1e-15)
            assert ((dense.weight == 0) == numpy.array([[w == 0 for _, w in row] for row in want])).all()


@pytest.mark.parametrize("L, O", SIZES)
def test_a_taps_transpose_is_the_matrix_transpose(L, O):
    for taps in (torch_linear(L, O, False), weights.torch_antialias(L, O, False), weights.tf_area(L, O),
                 weights.tf_antialias(L, O)[0], weights.jax_dense(L, O, "linear", True), adaptive_taps(L, O)):
        numpy.testing.assert_allclose(taps.transpose().matrix(), taps.matrix().T, rtol=1e-15, atol=0)
        # and it reads exactly the taps the forward reads: one entry per read tap
        assert taps.transpose().reads().sum() == taps.reads().sum()


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
@given(interpolate_cases(max_size=4, max_out=6, min_size=2))  # one-pixel images resize to constants
def test_gradcheck_and_adjoint_interpolate(case):
    x, kwargs, _, _ = case
    x = x[:1, :1]
    assume(x.size > 1)  # one input element copied to every output: constant outputs prove nothing
    assert gradcheck(lambda t: poolref.interpolate(t, **kwargs), x)
    assert adjoint_test(lambda t: poolref.interpolate(t, **kwargs), x)


@settings(max_examples=15)
@pytest.mark.parametrize("convention", ["tensorflow", "jax"])
@given(data=st.data())
def test_gradcheck_and_adjoint_interpolate_conventions(convention, data):
    # linear in x: float64 central differences equal the backward, and the backward is the forward's
    # transpose (TensorFlow's own gradient tables included), for finite values
    x, kwargs = data.draw(convention_cases(convention, max_size=4, max_out=6))
    x = numpy.nan_to_num(x[:1, :1], nan=0.5, posinf=2.0, neginf=-2.0)
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
    theirs = torch_grid_sample(x, grid, g, mode, padding_mode, align_corners)
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
                    theirs = torch_grid_sample(x, grid, g, mode, padding_mode, align_corners)
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


def _torch_antialias_repeats_row_zero(kwargs, x_shape, out):
    """PyTorch's CPU antialiased bilinear resize returns the first output row for every row when the
    output width is 1 and the height changes (see test_torch_antialias_defect_with_output_width_1)."""
    return kwargs.get("antialias") and out[-1] == 1 and out[-2] != x_shape[-2]


def _torch_gradient_model(x, kwargs, grad, cotangent):
    """PyTorch's gradient: poolref's, except where PyTorch's antialiased backward resamples an axis
    its forward copies (the oracle's known defect, whose model gives PyTorch's exact answer)."""
    from poolref.cases.case import Case
    from poolref.oracle import defects
    from poolref.oracle.engine import Results

    case = Case("interpolate", {"x": x}, kwargs)
    defect = defects.TORCH_ANTIALIAS_COPIED_AXIS
    if not defect.applies(case):
        return grad
    return defect.model(case, Results(values=None, indices=None, grads={"x": grad}), cotangent).grads["x"]


@given(interpolate_cases(max_size=9, max_out=18, non_finite=True), st.booleans())
def test_interpolate_matches_torch(case, non_finite_gradient):
    torch = torch_or_skip()
    x, kwargs, out, factors = case
    xt = to_torch(x, requires_grad=True)
    yt = torch.nn.functional.interpolate(xt, **kwargs)
    g = smooth_values(tuple(yt.shape), 4)
    if non_finite_gradient:
        g = sprinkle(numpy.random.default_rng(g.size), g)
    yt.backward(to_torch(g))
    y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
    assert_matches(_torch_gradient_model(x, kwargs, pullback(g)[0], g), xt.grad.numpy(), rtol=1e-12, atol=1e-13,
                   what="gradient")
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
    if _torch_antialias_repeats_row_zero(kwargs, x.shape, out):
        return
    assert_matches(y, yt.detach().numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("mode, n", [("nearest", 1), ("nearest", 2), ("nearest", 3), ("nearest-exact", 2), ("linear", 1),
                                     ("bilinear", 2), ("trilinear", 3), ("area", 1), ("area", 2), ("area", 3), ("antialias", 2)])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_every_mode_with_nan_and_inf_matches_torch_at_every_size_rule(mode, n, dtype):
    """Non-finite values in x and in the upstream gradient, every way of giving the size (size=,
    scale_factor= with recompute_scale_factor None/False/True, factors like 1.7 and 0.3), both
    align_corners: output and gradient as PyTorch's, NaN and infinities in the same places."""
    torch = torch_or_skip()
    rng = numpy.random.default_rng(31)
    antialias = mode == "antialias"
    mode = "bilinear" if antialias else mode
    x = sprinkle(rng, rng.standard_normal((2, 2) + (5, 4, 3)[:n]), 0.2).astype(dtype)
    calls = [dict(size=(7, 3, 2)[:n]), dict(size=(2, 8, 4)[:n]), dict(size=(5, 4, 3)[:n])]
    for factor in (1.7, 0.3, 2.0, 0.5):
        if all(math.floor(L * factor) >= 1 for L in x.shape[2:]):
            calls += [dict(scale_factor=factor), dict(scale_factor=factor, recompute_scale_factor=False),
                      dict(scale_factor=factor, recompute_scale_factor=True)]
    aligns = (False, True) if mode in LINEAR else (None,)
    tol = 1e-12 if dtype == numpy.float64 else 3e-6
    for call in calls:
        for align in aligns:
            kwargs = dict(call, mode=mode, align_corners=align, **({"antialias": True} if antialias else {}))
            if mode == "area":
                kwargs.pop("recompute_scale_factor", None)
            xt = to_torch(x, requires_grad=True)
            yt = torch.nn.functional.interpolate(xt, **kwargs)
            g = sprinkle(rng, rng.standard_normal(tuple(yt.shape)), 0.2).astype(dtype)
            yt.backward(to_torch(g))
            y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
            assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=tol, atol=tol, what=f"gradient {kwargs}")
            if mode.startswith("nearest") and n != 2 and dtype == numpy.float64:
                continue  # PyTorch's 1-D/3-D nearest forward uses a float64 rule of its own (above)
            if _torch_antialias_repeats_row_zero(kwargs, x.shape, y.shape[2:]):
                continue
            assert_matches(y, yt.detach().numpy(), rtol=tol, atol=tol, what=f"output {kwargs}")


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
            theirs = torch_grid_sample(*up, mode, padding_mode, False)
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
# Non-finite values: the defects fixed here, each pinned by a test named after it
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    dict(size=8, mode="nearest"), dict(size=8, mode="nearest-exact"), dict(size=8, mode="linear"),
    dict(size=8, mode="linear", align_corners=True), dict(size=3, mode="linear"), dict(size=2, mode="area"),
    dict(size=3, mode="area"),
])
def test_interpolate_backward_keeps_an_infinite_gradient_on_the_taps_that_read_it(kwargs):
    # The backward used to multiply the upstream gradient by a dense (O, L) matrix per axis, so one
    # infinite entry met every zero of its row: nearest 4 -> 8 gave [inf, nan, nan, nan] where
    # PyTorch gives [inf, 2, 2, 2]. Now the gradient is gathered from the taps each input was read by.
    x = numpy.arange(4.0).reshape(1, 1, 4)
    g = numpy.ones((1, 1, kwargs["size"]))
    g[0, 0, 0] = numpy.inf
    (y, grad), (_, want) = torch_pair(x, g, **kwargs)
    assert_matches(grad, want, rtol=1e-12, what=str(kwargs))
    assert numpy.isfinite(grad[0, 0, 2:]).all()
    if kwargs["mode"] == "nearest":
        assert grad[0, 0].tolist() == [numpy.inf, 2.0, 2.0, 2.0]


def test_interpolate_area_keeps_a_nan_in_its_own_bins():
    # area used to be a product with a dense 0/1 bin matrix: one NaN poisoned every bin (0 * NaN)
    x = numpy.array([[[1.0, numpy.nan, 3.0, 4.0, 5.0, 6.0]]])
    y = poolref.interpolate(x, size=3, mode="area")
    assert numpy.isnan(y[0, 0, 0]) and y[0, 0, 1:].tolist() == [3.5, 5.5]
    (y, grad), (y_torch, grad_torch) = torch_pair(x, numpy.array([[[numpy.nan, 1.0, 2.0]]]), size=3, mode="area")
    assert_matches(y, y_torch, rtol=1e-15)
    assert_matches(grad, grad_torch, rtol=1e-15, what="gradient")
    assert numpy.isnan(grad[0, 0, :2]).all() and grad[0, 0, 2:].tolist() == [0.5, 0.5, 1.0, 1.0]


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.float16])
def test_interpolate_area_is_adaptive_avg_pool_to_the_bit(n, dtype):
    # PyTorch's area mode is adaptive average pooling (F.interpolate calls adaptive_avg_pool{n}d), so
    # its results are the same to the bit. poolref's area used separable 1/size weights instead of the
    # division by the bin areas: 5x13 -> 7x6 in float32 differed from poolref's own adaptive_avg_pool2d
    # in 173 of 252 outputs (and from PyTorch in 177)
    rng = numpy.random.default_rng(n)
    AVG = {1: poolref.adaptive_avg_pool1d, 2: poolref.adaptive_avg_pool2d, 3: poolref.adaptive_avg_pool3d}[n]
    base = sprinkle(rng, rng.standard_normal((2, 3) + (5, 13, 4)[:n]), 0.1).astype(dtype)
    for x in (base, base[..., ::-1], numpy.swapaxes(base, 0, 1)):  # contiguous, negative strides, transposed
        for call in (dict(size=(7, 6, 3)[:n]), dict(size=(2, 13, 9)[:n]), dict(size=(1, 1, 1)[:n]), dict(scale_factor=1.7)):
            y, pullback = vjp(lambda t: poolref.interpolate(t, mode="area", **call), x)
            size = y.shape[2:]
            y_pool, pullback_pool = vjp(lambda t: AVG(t, size), x)
            g = sprinkle(rng, rng.standard_normal(y.shape), 0.1).astype(dtype)
            for ours, theirs in ((y, y_pool), (pullback(g)[0], pullback_pool(g)[0])):
                assert ours.dtype == dtype
                numpy.testing.assert_array_equal(ours, theirs)
                assert (numpy.signbit(ours) == numpy.signbit(theirs)).all()
    torch = pytest.importorskip("torch")  # the framework fact the rule rests on
    F = torch.nn.functional
    xt = to_torch(base.astype(numpy.float32))
    numpy.testing.assert_array_equal(F.interpolate(xt, size=(7, 6, 3)[:n], mode="area").numpy(),
                                     getattr(F, f"adaptive_avg_pool{n}d")(xt, (7, 6, 3)[:n]).numpy())


def test_interpolate_gradient_of_negative_zeros_is_positive_zero_as_in_torch():
    # Every backward adds each output's gradient into a zeroed input gradient (PyTorch, TensorFlow):
    # it is never -0.0. poolref's transposed tables summed from their first tap: the gradient of
    # [-0, -0, -0, -0, -0] through linear 3 -> 5 was [+0, -0, -0] (torch 2.13: [0, 0, 0])
    x = numpy.zeros((1, 1, 3))
    for kwargs in (dict(size=5, mode="linear"), dict(size=2, mode="linear"), dict(size=5, mode="nearest"), dict(size=2, mode="area")):
        _, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
        out = kwargs["size"]
        assert_matches(pullback(numpy.full((1, 1, out), -0.0))[0], numpy.zeros((1, 1, 3)), rtol=0, zero_sign=True, what=str(kwargs))
    pytest.importorskip("torch")
    rng = numpy.random.default_rng(2)
    signed = numpy.array([0.0, -0.0, 1.0, -1.0])
    for kwargs in (dict(size=(5, 2), mode="bilinear"), dict(size=(3, 7), mode="bilinear", align_corners=True),
                   dict(size=(2, 3), mode="bilinear", antialias=True), dict(size=(5, 2), mode="nearest"),
                   dict(size=(3, 2), mode="area"), dict(size=(7, 5), mode="nearest-exact")):
        x = signed[rng.integers(0, 4, (2, 2, 4, 3))]
        (y, grad), (y_torch, grad_torch) = torch_pair(x, signed[rng.integers(0, 4, (2, 2) + kwargs["size"])], **kwargs)
        assert_matches(grad, grad_torch, rtol=1e-15, atol=1e-15, zero_sign=True, what=f"gradient {kwargs}")
        assert_matches(y, y_torch, rtol=1e-15, atol=1e-15, zero_sign=True, what=f"output {kwargs}")


def test_tensorflow_area_of_negative_zeros_is_positive_zero():
    # ResizeArea sums each output from 0 (and ScaleAndTranslate, the antialiased resize, too): never
    # -0.0. poolref's sums started with the first tap: area 4x5 -> 3x2 of -0.0 gave -0.0 everywhere
    x = numpy.full((1, 1, 4, 5), -0.0, dtype=numpy.float32)
    for kwargs in (dict(mode="area"), dict(mode="bilinear", antialias=True)):
        y = poolref.interpolate(x, size=(3, 2), convention="tensorflow", **kwargs)
        assert_matches(y, numpy.zeros((1, 1, 3, 2)), rtol=0, zero_sign=True, what=str(kwargs))
    y_tf, _ = _tensorflow(TF_CALLS["area"][1], x, (3, 2), numpy.zeros((1, 1, 3, 2), numpy.float32))
    assert not numpy.signbit(y_tf).any()


def test_interpolate_linear_to_the_same_size_reads_each_pixel_twice_like_torch():
    # PyTorch's linear "copy" of an axis whose size does not change is 1 * x[o] + 0 * x[o]: an
    # infinite pixel becomes NaN, forward and backward (poolref used to copy the axis)
    x = numpy.array([[[1.0, numpy.inf, 3.0]]])
    g = numpy.array([[[1.0, 1.0, -numpy.inf]]])
    for align in (False, True):
        (y, grad), (y_torch, grad_torch) = torch_pair(x, g, size=3, mode="linear", align_corners=align)
        assert_matches(y, y_torch, rtol=0)
        assert_matches(grad, grad_torch, rtol=0, what="gradient")
        assert numpy.isnan(y[0, 0, 1]) and numpy.isnan(grad[0, 0, 2])


def test_interpolate_linear_floors_the_coordinate_in_float32_like_torch():
    # PyTorch floors a float64 coordinate with floorf: 2 -> 50 with aligned corners, the last output
    # is at c = 49 * (1/49) = 0.9999999999999999, which floorf reads from pixel 1 (weight 1, and
    # pixel 1 again with weight 0), not from pixel 0 with weight 1e-16
    x = numpy.array([[[numpy.inf, 0.0]]])
    (y, _), (y_torch, _) = torch_pair(x, numpy.ones((1, 1, 50)), size=50, mode="linear", align_corners=True)
    assert y[0, 0, -1] == 0.0 and y_torch[0, 0, -1] == 0.0
    assert_matches(y, y_torch, rtol=1e-12)


def test_interpolate_linear_coordinate_is_one_fused_multiply_add_like_torch():
    # 1 -> 5: output 2 is at c = 0.2 * 2.5 - 0.5, which is 0 rounded twice but 2.8e-17 rounded once
    # (PyTorch's compiled fma): both taps then have nonzero weight, and an infinite pixel stays inf
    x = numpy.array([[[numpy.inf]]])
    (y, grad), (y_torch, grad_torch) = torch_pair(x, numpy.ones((1, 1, 5)), size=5, mode="linear")
    assert_matches(y, y_torch, rtol=0)
    assert y[0, 0].tolist()[2] == numpy.inf
    g = numpy.zeros((1, 1, 5))
    g[0, 0, 2] = numpy.inf
    (_, grad), (_, grad_torch) = torch_pair(numpy.zeros((1, 1, 1)), g, size=5, mode="linear")
    assert grad.tolist() == grad_torch.tolist() == [[[numpy.inf]]]


def test_interpolate_antialias_backward_resamples_an_axis_the_forward_copies():
    # PyTorch's antialiased forward copies an axis whose size does not change, its backward applies
    # the triangle taps there too: pixel i with weight 1 and pixel i + 1 with weight 0
    x = numpy.zeros((1, 1, 4, 6))
    g = numpy.ones((1, 1, 4, 3))
    g[0, 0, 1, 1] = numpy.inf
    (y, grad), (y_torch, grad_torch) = torch_pair(x, g, size=(4, 3), mode="bilinear", antialias=True)
    assert_matches(grad, grad_torch, rtol=1e-12, what="gradient")
    assert numpy.isinf(grad[0, 0, 1, 1:5]).all() and numpy.isnan(grad[0, 0, 2, 1:5]).all()


def test_torch_antialias_defect_with_output_width_1():
    """PyTorch's CPU antialiased bilinear resize, with an output width of 1 and a height that changes,
    writes the first output row into every row (its vertical pass assumes the tap tables have zero
    strides, which TensorIterator's coalescing breaks when the width is 1). poolref resizes each row
    (the true resize, which PyTorch gives for any other width). Pinned here so that a fix is noticed."""
    torch = torch_or_skip()
    F = torch.nn.functional
    x = numpy.arange(6.0).reshape(1, 1, 6, 1)
    theirs = F.interpolate(to_torch(x), size=(2, 1), mode="bilinear", antialias=True).numpy().ravel()
    wide = F.interpolate(to_torch(numpy.repeat(x, 2, axis=3)), size=(2, 2), mode="bilinear", antialias=True).numpy()[..., 0].ravel()
    ours = poolref.interpolate(x, size=(2, 1), mode="bilinear", antialias=True).ravel()
    assert theirs.tolist() == [1.25, 1.25]  # the defect
    assert wide.tolist() == [1.25, 3.75] and ours.tolist() == [1.25, 3.75]


def test_grid_sample_with_nan_and_inf_upstream_gradient_matches_torch():
    # an infinite or NaN upstream gradient reaches, through grad_x, only the corners its point read
    # (zero weights included: 0 * inf is NaN) and its own grid gradient
    torch_or_skip()
    rng = numpy.random.default_rng(22)
    x = sprinkle(rng, rng.standard_normal((2, 3, 4, 5)), 0.1)
    steps = numpy.arange(-1.5, 1.51, 0.25)
    gx, gy = numpy.meshgrid(steps, steps)
    grid = numpy.broadcast_to(numpy.stack([gx, gy], axis=-1), (2,) + gx.shape + (2,)).copy()
    g = sprinkle(rng, rng.standard_normal((2, 3) + gx.shape), 0.2)
    for mode in GRID_MODES:
        for padding_mode in PADDINGS:
            for align_corners in (False, True):
                ours = _assert_grid_sample_matches_torch(x, grid, g, mode, padding_mode, align_corners)
                assert not numpy.isfinite(ours[1]).all()
                # nearest: the grid gradient is 0 whatever the upstream gradient (PyTorch writes zeros)
                assert numpy.isfinite(ours[2]).all() == (mode == "nearest")


def test_grid_sample_grid_gradient_takes_torchs_difference_form():
    # d/dix = sum_c g_c [(v_tr - v_tl)(1 - wy) + (v_br - v_bl) wy]: with equal neighbours the bracket
    # is exactly 0, so an infinite gradient gives NaN, as in PyTorch (four separate products
    # -(1-wy) v_tl + (1-wy) v_tr - wy v_bl + wy v_br do not always cancel exactly)
    torch_or_skip()
    x = numpy.array([[[[0.3, 0.3], [0.3, 0.3]]]])
    grid = numpy.array([[[[-0.25, -0.3]]]])
    g = numpy.full((1, 1, 1, 1), numpy.inf)
    ours = _assert_grid_sample_matches_torch(x, grid, g, "bilinear", "zeros", False)
    assert numpy.isnan(ours[2]).all()


# ---------------------------------------------------------------------------------------------------
# TensorFlow: tf.image.resize and the tf.compat.v1 resize ops (convention="tensorflow")
# ---------------------------------------------------------------------------------------------------
TF_CALLS = {  # (poolref keywords, the TensorFlow call on an NHWC tensor)
    "nearest-exact": (dict(mode="nearest-exact"), "tf.image.resize(t, size, method='nearest')"),
    "bilinear": (dict(mode="bilinear"), "tf.image.resize(t, size, method='bilinear')"),
    "bilinear-antialias": (dict(mode="bilinear", antialias=True), "tf.image.resize(t, size, method='bilinear', antialias=True)"),
    "area": (dict(mode="area"), "tf.image.resize(t, size, method='area')"),
    "area-antialias": (dict(mode="area", antialias=True), "tf.image.resize(t, size, method='area', antialias=True)"),
    "nearest-antialias": (dict(mode="nearest-exact", antialias=True), "tf.image.resize(t, size, method='nearest', antialias=True)"),
    "legacy-nearest": (dict(mode="nearest"), "tf.compat.v1.image.resize_nearest_neighbor(t, size, align_corners=False, half_pixel_centers=False)"),
    "legacy-nearest-align": (dict(mode="nearest", align_corners=True), "tf.compat.v1.image.resize_nearest_neighbor(t, size, align_corners=True)"),
    "legacy-bilinear-align": (dict(mode="bilinear", align_corners=True), "tf.compat.v1.image.resize_bilinear(t, size, align_corners=True)"),
    "legacy-area-align": (dict(mode="area", align_corners=True), "tf.compat.v1.image.resize_area(t, size, align_corners=True)"),
}


def _tensorflow(call, x, size, g):
    """TensorFlow's output and gradient (None where it has none), NCHW in and out."""
    tf = pytest.importorskip("tensorflow")
    t = tf.constant(numpy.moveaxis(x, 1, -1))
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = eval(call, {"tf": tf, "t": t, "size": list(size)})  # the calls are the table's, above
    try:
        grad = tape.gradient(y, t, output_gradients=tf.constant(numpy.moveaxis(g, 1, -1).astype(y.dtype.as_numpy_dtype)))
        grad = None if grad is None else numpy.moveaxis(grad.numpy(), -1, 1)
    except (LookupError, tf.errors.InvalidArgumentError):  # no gradient registered (area), or not for this dtype
        grad = None
    return numpy.moveaxis(y.numpy(), -1, 1), grad


@pytest.mark.parametrize("name", sorted(TF_CALLS))
@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_tensorflow_convention_matches_tensorflow(name, dtype):
    """Output and gradient of every TensorFlow resize poolref models, NaN and infinities in x and in
    the gradient included, sizes that divide and sizes that do not. TensorFlow computes bilinear, area
    and the antialiased resize in float32 whatever the input (and returns float32): float64 inputs are
    compared with float32 tolerances there."""
    kwargs, call = TF_CALLS[name]
    rng = numpy.random.default_rng(41)
    tol = 1e-12 if dtype == numpy.float64 and kwargs["mode"] == "nearest" or name == "nearest-exact" and dtype == numpy.float64 else 3e-5
    for shape, sizes in (((2, 3, 4, 6), [(8, 12), (3, 4), (7, 5), (4, 6), (1, 1)]), ((1, 2, 1, 5), [(3, 7), (1, 2)])):
        x = sprinkle(rng, rng.standard_normal(shape), 0.15).astype(dtype)
        for size in sizes:
            g = sprinkle(rng, rng.standard_normal(shape[:2] + size), 0.15).astype(dtype)
            y_tf, grad_tf = _tensorflow(call, x, size, g)
            y, pullback = vjp(lambda t: poolref.interpolate(t, size=size, convention="tensorflow", **kwargs), x)
            assert_matches(y, y_tf, rtol=tol, atol=tol, what=f"{name} {size}")
            if grad_tf is not None:
                assert_matches(pullback(g)[0], grad_tf, rtol=tol, atol=tol, what=f"{name} {size} gradient")


def test_tensorflow_gradients_that_tensorflow_lacks():
    """TensorFlow registers no gradient for ResizeArea, and the antialiased gradient
    (ScaleAndTranslateGrad) for float32 only; poolref's are the true ones (gradcheck)."""
    tf = pytest.importorskip("tensorflow")
    x = numpy.random.default_rng(5).standard_normal((1, 1, 4, 5))
    _, grad = _tensorflow(TF_CALLS["area"][1], x.astype(numpy.float32), (3, 2), numpy.ones((1, 1, 3, 2)))
    assert grad is None
    _, grad = _tensorflow(TF_CALLS["bilinear-antialias"][1], x, (3, 2), numpy.ones((1, 1, 3, 2)))
    assert grad is None
    for kwargs in (dict(mode="area"), dict(mode="bilinear", antialias=True)):
        assert gradcheck(lambda t: poolref.interpolate(t, size=(3, 2), convention="tensorflow", **kwargs), x, rtol=1e-6)
    del tf


def test_tensorflow_worked_examples():
    line = numpy.array([[[[0.0, 1.0, 2.0, 3.0]]]])
    # area 4 -> 3: each output covers 4/3 pixels: out[0] = (x0 + x1/3) * 3/4
    numpy.testing.assert_allclose(poolref.interpolate(line, size=(1, 3), mode="area", convention="tensorflow"),
                                  [[[[0.25, 1.5, 2.75]]]], rtol=1e-6)
    # half-pixel nearest (tf.image.resize) against the legacy one (floor(o * 4/3))
    assert poolref.interpolate(line, size=(1, 3), mode="nearest-exact", convention="tensorflow")[0, 0, 0].tolist() == [0.0, 2.0, 3.0]
    assert poolref.interpolate(line, size=(1, 3), mode="nearest", convention="tensorflow")[0, 0, 0].tolist() == [0.0, 1.0, 2.0]
    # bilinear is a + (b - a) t: an infinite left neighbour gives NaN even where t = 0 (TensorFlow),
    # where PyTorch's weighted sum 1 * inf + 0 * b gives inf
    x = numpy.array([[[[numpy.inf, 1.0, 2.0, 3.0]]]])
    tf_y = poolref.interpolate(x, size=(1, 8), mode="bilinear", convention="tensorflow")
    torch_y = poolref.interpolate(x[0], size=8, mode="linear")  # 1-D: no 1 -> 1 axis read twice
    assert numpy.isnan(tf_y[0, 0, 0, :3]).all() and numpy.isinf(torch_y[0, 0, :2]).all()


# ---------------------------------------------------------------------------------------------------
# JAX: jax.image.resize (convention="jax")
# ---------------------------------------------------------------------------------------------------
def _jax(x, size, method, antialias, g):
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        y, pullback = jax.vjp(lambda a: jax.image.resize(a, x.shape[:2] + tuple(size), method, antialias=antialias), x)
        return numpy.asarray(y), numpy.asarray(pullback(g)[0])


@pytest.mark.parametrize("mode, n", [("nearest-exact", 1), ("nearest-exact", 2), ("linear", 1), ("bilinear", 2),
                                     ("trilinear", 3), ("area", 1), ("area", 2)])
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32])
def test_jax_convention_matches_jax(mode, n, dtype):
    """jax.image.resize with jax_enable_x64 (its weights in float64), antialias on and off, NaN and
    infinities in x and in the gradient: one NaN reaches its whole line through the dense weights."""
    rng = numpy.random.default_rng(43)
    method = {"nearest-exact": "nearest", "area": "area"}.get(mode, "linear")
    tol = 1e-12 if dtype == numpy.float64 else 3e-6
    # one NaN or infinity in a few of the (N, C) planes only: the others stay finite and check the values
    x = rng.standard_normal((2, 2) + (5, 4, 3)[:n])
    x[0, 0] = sprinkle(rng, x[0, 0], 0.2)
    x[0, 0].reshape(-1)[1] = numpy.nan
    x[1, 1].reshape(-1)[0] = numpy.inf
    x = x.astype(dtype)
    for size in ((3, 7, 2)[:n], (10, 2, 6)[:n])[:1 if n == 3 else 2]:  # one size in 3-D (compiles are slow)
        g = rng.standard_normal((2, 2) + size)
        g[1, 0] = sprinkle(rng, g[1, 0], 0.2)
        g = g.astype(dtype)
        for antialias in (True, False):
            y_jax, grad_jax = _jax(x, size, method, antialias, g)
            y, pullback = vjp(lambda t: poolref.interpolate(t, size=size, mode=mode, convention="jax", antialias=antialias), x)
            assert_matches(y, y_jax, rtol=tol, atol=tol, what=f"{mode} {size} {antialias}")
            assert_matches(pullback(g)[0], grad_jax, rtol=tol, atol=tol, what=f"{mode} {size} {antialias} gradient")
            assert numpy.isfinite(y[0, 1]).all()
            if method != "nearest":  # dense weights: the NaN reaches its whole plane
                assert numpy.isnan(y[0, 0]).all()


def test_jax_worked_examples():
    line = numpy.array([[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]])
    # antialias (JAX's default) widens the triangle to 3 pixels when shrinking 6 -> 2
    assert poolref.interpolate(line, size=2, mode="linear", convention="jax").tolist() == [[[1.25, 3.75]]]
    assert poolref.interpolate(line, size=2, mode="linear", convention="jax", antialias=False).tolist() == [[[1.0, 4.0]]]
    # one NaN reaches every output of its line (dense weights: 0 * NaN), unlike PyTorch's taps
    line[0, 0, 0] = numpy.nan
    assert numpy.isnan(poolref.interpolate(line, size=3, mode="linear", convention="jax")).all()
    assert numpy.isnan(poolref.interpolate(line, size=3, mode="linear")).tolist() == [[[True, False, False]]]
    # "nearest" at an exact half-way point: XLA computes (o + 1/2) * fl(m * fl(1/n)), just below 1
    ramp = numpy.arange(10.0).reshape(1, 1, 10)
    assert poolref.interpolate(ramp, size=25, mode="nearest-exact", convention="jax")[0, 0, 2] == 0.0
    assert poolref.interpolate(ramp, size=25, mode="nearest-exact")[0, 0, 2] == 1.0


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
    (lambda: poolref.grid_sample(X, G, mode="cubic"), ValueError, "mode='cubic'"),
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
    (lambda: poolref.interpolate(X, size=3, mode="bilinear", antialias="yes"), TypeError, "antialias='yes'"),
    (lambda: poolref.interpolate(X, size=3, mode="bilinear", antialias=1), TypeError, "antialias=1"),
    (lambda: poolref.interpolate(X, size=3, convention="onnx"), ValueError, "convention='onnx'"),
    (lambda: poolref.interpolate(X, size=3, convention=None), ValueError, "convention=None"),
    (lambda: poolref.interpolate(X, size=3, mode="nearest", antialias=True), ValueError, "mode='nearest'"),
    (lambda: poolref.interpolate(L3, size=3, mode="linear", antialias=True), ValueError, "mode='linear'"),
    (lambda: poolref.interpolate(X, size=3, mode="area", antialias=True), ValueError, "mode='area'"),
    (lambda: poolref.interpolate(X, size=3, convention="jax"), ValueError, "mode='nearest'"),
    (lambda: poolref.interpolate(X, size=3, mode="bilinear", align_corners=True, convention="jax"), ValueError, "align_corners=True"),
    (lambda: poolref.interpolate(L3, size=3, mode="linear", convention="tensorflow"), ValueError, "mode='linear'"),
    (lambda: poolref.interpolate(L3, size=3, mode="nearest-exact", convention="tensorflow"), ValueError, "x with shape (1, 2, 4)"),
    (lambda: poolref.interpolate(X, size=3, mode="nearest-exact", align_corners=True, convention="tensorflow"), ValueError, "align_corners=True"),
    (lambda: poolref.interpolate(X, size=3, mode="bilinear", align_corners=True, antialias=True, convention="tensorflow"), ValueError, "antialias=True"),
    (lambda: poolref.interpolate(X, scale_factor=2.0, mode="bilinear", convention="tensorflow"), ValueError, "scale_factor=2.0"),
    (lambda: poolref.interpolate(X, scale_factor=2.0, mode="bilinear", convention="jax"), ValueError, "scale_factor=2.0"),
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
        lambda: F.interpolate(x, size=3, mode="nearest", antialias=True),
        lambda: F.interpolate(l3, size=3, mode="linear", antialias=True),
        lambda: F.interpolate(x, size=3, mode="area", antialias=True),
    ):
        with pytest.raises((RuntimeError, ValueError, TypeError, NotImplementedError)):
            call()


def test_antialias_gradient_of_a_copied_axis_is_the_copy_not_pytorchs_resampling():
    """Regression (found by hypothesis): with scale_factor=(1.0, 1.01) on a (1, 2) input, the width is
    copied (its size does not change) but PyTorch's backward resamples it with the weights of 1/1.01,
    a gradient of 0.985 for the copied element. poolref's backward is its forward's derivative (1); the
    oracle models PyTorch's as a known defect, which must reproduce PyTorch exactly."""
    x = numpy.array([[[[0.12573022, -0.13210486]]]])
    kwargs = dict(mode="bilinear", antialias=True, scale_factor=(1.0, 1.01))
    y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
    assert numpy.array_equal(y, x) and numpy.array_equal(pullback(numpy.ones(y.shape))[0], numpy.ones(x.shape))
    assert gradcheck(lambda t: poolref.interpolate(t, **kwargs), x, rtol=1e-6)
    torch = torch_or_skip()
    from poolref.oracle import defects, engine, load_adapter
    from poolref.cases.case import Case

    mapping = next(m for m in load_adapter("torch").MAPPINGS if m.op == "interpolate")
    case = Case("interpolate", {"x": x}, kwargs)
    outcome, cotangent = engine.evaluate(load_adapter("torch").IMPORTS, mapping, case, 0, 0)
    assert not outcome.ok and engine.known_defects(mapping, case, outcome, cotangent) == [defects.TORCH_ANTIALIAS_COPIED_AXIS]
    grad_torch = outcome.theirs.grads["x"]
    assert abs(grad_torch[0, 0, 0, 1] - 0.985 * cotangent[0, 0, 0, 1]) < 1e-3 * abs(cotangent[0, 0, 0, 1])
    del torch


# ---------------------------------------------------------------------------------------------------
# The batch in cache-sized blocks (poolref._backend.batch_blocks): one sample per block gives the
# bits of one block, forward and backward, on every kind of input
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float32, numpy.float16])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
def test_grid_sample_in_blocks_of_one_sample_gives_the_bits_of_one_block(mode, padding_mode, dtype, monkeypatch):
    rng = numpy.random.default_rng(7)
    x = rng.standard_normal((4, 3, 6, 7))
    x[rng.random(x.shape) < 0.1] = -0.0
    x = plant_nonfinite(x, seed=7, fraction=0.05).astype(dtype)
    grid = rng.uniform(-1.2, 1.2, (4, 5, 4, 2))
    grid[:, 0, :, :] = [[-1.0, 1.0], [0.5, -0.5], [0.0, 1.0 / 3.0], [1.0, -1.0]]  # edges, halves, centres
    grid = grid.astype(dtype)
    transposed = numpy.ascontiguousarray(numpy.swapaxes(x, -1, -2)).swapaxes(-1, -2)  # a view of the same values
    for align_corners in (False, True):
        for image in (x, transposed, numpy.ascontiguousarray(x[:, ::-1])[:, ::-1]):
            assert_blocks_change_nothing(
                monkeypatch, lambda a, b: poolref.grid_sample(a, b, mode, padding_mode, align_corners), image, grid)


def test_grid_sample_in_blocks_runs_an_empty_batch(monkeypatch):
    import poolref._backend

    monkeypatch.setattr(poolref._backend, "BLOCK_BYTES", 1)
    y, pullback = vjp(lambda a, b: poolref.grid_sample(a, b), numpy.zeros((0, 2, 3, 3)), numpy.zeros((0, 2, 2, 2)))
    grad_x, grad_grid = pullback(numpy.zeros(y.shape))
    assert y.shape == (0, 2, 2, 2) and grad_x.shape == (0, 2, 3, 3) and grad_grid.shape == (0, 2, 2, 2)
