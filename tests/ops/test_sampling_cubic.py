"""Bicubic sampling: ``interpolate(mode="bicubic")`` (plain and antialiased) and ``grid_sample(mode="bicubic")``,
and 5-D (volumetric) ``grid_sample``: the vectorised code held equal to the loop references (NaN, infinities,
float16, empty and non-contiguous inputs), gradients (gradcheck and adjoint), and PyTorch itself.
"""

import math

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolref
from helpers import torch_or_skip
from sampling_helpers import rows, sprinkle, torch_grid_sample, torch_pair
from poolref import _sampling_weights as weights
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.reference import sampling as ref
from poolref.testing import assert_matches
from poolref.testing.strategies import smooth_values

SIZES = [(3, 5), (5, 3), (4, 8), (7, 7), (1, 4), (4, 1), (14, 46), (6, 37), (2, 50), (3, 47), (1, 5), (10, 25), (2, 6), (9, 2)]






# ---------------------------------------------------------------------------------------------------
# interpolate(mode="bicubic"): the taps
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("L, O", SIZES)
@pytest.mark.parametrize("scale_factor", [None, 1.7, 0.3])
def test_bicubic_taps_match_the_reference_rules(L, O, scale_factor):
    """The vectorised bicubic tables (plain and antialiased) equal the loop reference's, bit for bit."""
    for dtype in (numpy.float64, numpy.float32, numpy.float16):
        for align in (False, True):
            s = None if align else scale_factor
            assert rows(weights.torch_cubic(L, O, align, s, dtype)) == [ref.torch_cubic_taps(o, L, O, align, s, dtype) for o in range(O)]
            assert (rows(weights.torch_antialias(L, O, align, s, dtype, cubic=True))
                    == [ref.torch_antialias_taps(o, L, O, align, s, dtype, cubic=True) for o in range(O)])


def test_cubic_kernel_is_keys_kernel():
    # k(0) = 1, k(1) = k(2) = 0, k(1/2) = (a + 2)/8 - (a + 3)/4 + 1, continuous at 1, and the four
    # coefficients of any fraction sum to 1 (a cubic convolution reproduces constants)
    for a in (-0.75, -0.5):
        k = weights.cubic_kernel(numpy.array([0.0, 0.5, 1.0, 2.0, 2.5]), a)
        assert k.tolist() == [1.0, (a + 2) / 8 - (a + 3) / 4 + 1, 0.0, 0.0, 0.0]
        assert abs(weights.cubic_kernel(numpy.array([1 - 1e-9]), a)[0]) < 1e-8
    t = numpy.linspace(0, 1, 101)
    numpy.testing.assert_allclose(weights.cubic_coefficients(t).sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert weights.cubic_coefficients(numpy.array([0.0])).tolist() == [[0.0, 1.0, 0.0, 0.0]]


def test_bicubic_taps_clamp_at_the_border():
    # 3 -> 5: output 0 sits at c = -0.2, its taps -2, -1, 0, 1 read pixels 0, 0, 0, 1
    taps = weights.torch_cubic(3, 5, False)
    assert taps.index[0].tolist() == [0, 0, 0, 1] and taps.index[-1].tolist() == [1, 2, 2, 2]
    assert taps.transpose().matrix().tolist() == taps.matrix().T.tolist()


@pytest.mark.parametrize("L, O", SIZES)
def test_antialiased_bicubic_weights_are_torchs_to_the_bit(L, O):
    """PyTorch evaluates its cubic filter with fused multiply-adds: with them (and only with them) the
    antialiased weights agree to the bit, a weight that cancels to 0 in plain arithmetic included."""
    torch = torch_or_skip()
    F = torch.nn.functional
    for align in (False, True):
        if O == L:
            continue  # the forward copies
        eye = torch.eye(L, dtype=torch.float64).reshape(1, L, 1, L)
        theirs = F.interpolate(eye, size=(1, O), mode="bicubic", align_corners=align, antialias=True)[0, :, 0, :].T.numpy()
        assert weights.torch_antialias(L, O, align, None, numpy.float64, cubic=True).matrix().tolist() == theirs.tolist()


@pytest.mark.parametrize("L, O", SIZES)
@pytest.mark.parametrize("scale_factor", [None, 1.7, 0.45])
def test_bicubic_weights_match_torch(L, O, scale_factor):
    # the plain bicubic weights agree with PyTorch's to a few ulp (its compiled polynomial rounds in
    # an order not modelled); the taps read are the same (zero weights where PyTorch's are zero)
    torch = torch_or_skip()
    F = torch.nn.functional
    for align in (False, True):
        s = None if align else scale_factor
        O_used = O if s is None else math.floor(L * s)
        if O_used < 1:
            continue
        eye = torch.eye(L, dtype=torch.float64).reshape(1, L, 1, L)
        size = dict(size=(1, O_used)) if s is None else dict(scale_factor=(1.0, s))
        theirs = F.interpolate(eye, mode="bicubic", align_corners=align, **size)[0, :, 0, :].T.numpy()
        ours = weights.torch_cubic(L, O_used, align, s).matrix()
        numpy.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------------------------------
# interpolate(mode="bicubic"): the op against its loop reference
# ---------------------------------------------------------------------------------------------------
@st.composite
def bicubic_cases(draw, max_size=6, max_out=10, non_finite=True):
    """(x, kwargs, output_size, scale_factors for the reference) for a bicubic interpolate: at least 2
    pixels in and out along each axis (one pixel resizes to a constant), a few NaN and infinities in
    some inputs (bicubic reads 16 pixels per output: more would make every output NaN)."""
    spatial = (draw(st.integers(2, max_size)), draw(st.integers(2, max_size)))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 2))) + spatial)
    if non_finite and draw(st.booleans()):
        x = sprinkle(rng, x, 0.04)
    kwargs = {"mode": "bicubic", "align_corners": draw(st.sampled_from([None, False, True])),
              "antialias": draw(st.booleans())}
    if draw(st.booleans()):
        out = (draw(st.integers(2, max_out)), draw(st.integers(2, max_out)))
        kwargs["size"] = out
        factors = (None, None)
    else:
        factors = tuple(draw(st.integers(math.ceil(200 / L), 300).map(lambda k: k / 100)) for L in spatial)
        kwargs["scale_factor"] = factors
        out = tuple(math.floor(L * s) for L, s in zip(spatial, factors))
        if draw(st.integers(0, 3)) == 0:
            kwargs["recompute_scale_factor"] = draw(st.booleans())
            if kwargs["recompute_scale_factor"]:
                factors = (None, None)
    return x, kwargs, out, factors


@given(bicubic_cases(), st.booleans())
def test_bicubic_interpolate_matches_loop_reference(case, non_finite_gradient):
    x, kwargs, out, factors = case
    align, antialias = bool(kwargs["align_corners"]), kwargs["antialias"]
    y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
    assert y.shape == x.shape[:2] + out
    assert_matches(y, ref.interpolate_reference(x, out, "bicubic", align, factors, antialias=antialias), rtol=1e-12, atol=1e-14)
    g = smooth_values(y.shape, 2)
    if non_finite_gradient:
        g = sprinkle(numpy.random.default_rng(y.size), g)
    want = ref.interpolate_backward_reference(g, x.shape, "bicubic", align, factors, antialias=antialias)
    assert_matches(pullback(g)[0], want, rtol=1e-12, atol=1e-14, what="gradient")


def test_bicubic_empty_batch():
    for kwargs in (dict(size=(7, 3), mode="bicubic"), dict(size=(2, 9), mode="bicubic", antialias=True)):
        y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), numpy.zeros((0, 2, 4, 4)))
        assert y.shape == (0, 2) + kwargs["size"] and pullback(y)[0].shape == (0, 2, 4, 4)


@settings(max_examples=15)
@given(bicubic_cases(max_size=4, max_out=6, non_finite=False))
def test_gradcheck_and_adjoint_bicubic_interpolate(case):
    x, kwargs, _, _ = case
    x = x[:1, :1]
    assert gradcheck(lambda t: poolref.interpolate(t, **kwargs), x)
    assert adjoint_test(lambda t: poolref.interpolate(t, **kwargs), x)


# ---------------------------------------------------------------------------------------------------
# interpolate(mode="bicubic") against PyTorch
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    dict(size=(9, 13), mode="bicubic"), dict(size=(9, 13), mode="bicubic", align_corners=True),
    dict(size=(3, 2), mode="bicubic"), dict(size=(3, 2), mode="bicubic", align_corners=True),
    dict(size=(6, 4), mode="bicubic"), dict(scale_factor=(1.7, 0.45), mode="bicubic"),
    dict(scale_factor=2.5, mode="bicubic", recompute_scale_factor=True), dict(size=(1, 1), mode="bicubic"),
    dict(size=(3, 2), mode="bicubic", antialias=True), dict(size=(3, 2), mode="bicubic", antialias=True, align_corners=True),
    dict(size=(9, 13), mode="bicubic", antialias=True), dict(size=(6, 2), mode="bicubic", antialias=True),
    dict(scale_factor=(0.4, 0.7), mode="bicubic", antialias=True),
])
def test_bicubic_interpolate_matches_torch(kwargs):
    """Output and input gradient against torch.nn.functional.interpolate, NaN and infinities in the
    input and in the upstream gradient landing in the same places."""
    rng = numpy.random.default_rng(11)
    for x in (rng.standard_normal((2, 3, 6, 4)), sprinkle(rng, rng.standard_normal((2, 3, 6, 4)), 0.05)):
        probe = poolref.interpolate(x, **kwargs)
        g = rng.standard_normal(probe.shape)
        for upstream in (g, sprinkle(rng, g, 0.05)):
            (y, grad), (y_torch, grad_torch) = torch_pair(x, upstream, **kwargs)
            assert_matches(y, y_torch, rtol=1e-12, atol=1e-13)
            if numpy.isfinite(x).all():  # the gradient does not depend on x
                assert_matches(grad, grad_torch, rtol=1e-12, atol=1e-13, what="gradient")


def test_bicubic_forward_reads_neighbours_even_when_the_size_does_not_change():
    # PyTorch's bicubic forward resamples an axis of unchanged size (it does not copy): a point on a
    # pixel reads its neighbours with weight 0, so an infinity spreads as NaN to them
    x = numpy.zeros((1, 1, 1, 6))
    x[..., 2] = numpy.inf
    for align in (False, True):
        (y, _), (y_torch, _) = torch_pair(x, numpy.zeros((1, 1, 1, 6)), size=(1, 6), mode="bicubic", align_corners=align)
        assert_matches(y, y_torch, rtol=0)
        assert numpy.isnan(y[0, 0, 0, :4]).all() and y[0, 0, 0, 4:].tolist() == [0.0, 0.0]


def test_bicubic_backward_copies_when_no_size_changes_like_torch():
    # ... but its backward copies the gradient when no spatial size changes: an infinite gradient
    # reaches its own pixel only (transposing the taps would make its neighbours NaN)
    g = numpy.zeros((1, 1, 3, 4))
    g[0, 0, 1, 1] = numpy.inf
    for kwargs in (dict(size=(3, 4)), dict(scale_factor=1.0), dict(size=(3, 4), align_corners=True)):
        (_, grad), (_, grad_torch) = torch_pair(numpy.zeros((1, 1, 3, 4)), g, mode="bicubic", **kwargs)
        assert_matches(grad, grad_torch, rtol=0, what="gradient")
        assert numpy.isfinite(grad[0, 0, 0]).all() and grad[0, 0, 1, 1] == numpy.inf
    # when one size changes, every axis is transposed (the unchanged one's zero-weight taps included)
    g = numpy.zeros((1, 1, 3, 8))
    g[0, 0, 1, 3] = numpy.inf
    (_, grad), (_, grad_torch) = torch_pair(numpy.zeros((1, 1, 3, 4)), g, size=(3, 8), mode="bicubic")
    assert_matches(grad, grad_torch, rtol=0, what="gradient")
    assert numpy.isnan(grad[0, 0, 0]).all()


def test_bicubic_same_size_with_a_scale_factor_keeps_the_derivative():
    # 4 -> floor(4 * 1.1) = 4 with scale 1/1.1: PyTorch's forward resamples, its backward copies, which
    # is not the forward's derivative (poolref.oracle.defects); poolref returns the derivative
    x = numpy.arange(4.0).reshape(1, 1, 1, 4)
    kwargs = dict(scale_factor=(1.0, 1.1), mode="bicubic")
    assert gradcheck(lambda t: poolref.interpolate(t, **kwargs), x)
    (y, grad), (y_torch, grad_torch) = torch_pair(x, numpy.eye(4)[1].reshape(1, 1, 1, 4), **kwargs)
    assert_matches(y, y_torch, rtol=1e-12)
    assert grad_torch.ravel().tolist() == [0.0, 1.0, 0.0, 0.0] and grad.ravel().tolist() != [0.0, 1.0, 0.0, 0.0]


def test_antialiased_bicubic_backward_resamples_an_axis_the_forward_copies():
    x = numpy.zeros((1, 1, 1, 6))
    g = numpy.zeros((1, 1, 1, 6))
    g[..., 2] = numpy.inf
    (y, grad), (y_torch, grad_torch) = torch_pair(x, g, size=(1, 6), mode="bicubic", antialias=True)
    assert_matches(grad, grad_torch, rtol=0, what="gradient")
    assert numpy.isnan(grad[0, 0, 0, [1, 3, 4]]).all() and grad[0, 0, 0, 0] == 0.0


@pytest.mark.parametrize("call, error, words", [
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 4)), size=3, mode="bicubic"), ValueError, "x with shape (1, 1, 4)"),
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 2, 4, 4)), size=3, mode="bicubic"), ValueError, "(N, C, H, W)"),
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 4, 4)), size=3, mode="bicubic", align_corners=1), TypeError, "align_corners=1"),
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 4, 4)), size=3, mode="nearest", antialias=True), ValueError, "'bicubic'"),
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 4, 4)), size=(3, 0), mode="bicubic"), ValueError, "size=(3, 0)"),
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 4, 4)), size=3, mode="bicubic", align_corners=True, antialias=True,
                                 convention="tensorflow"), ValueError, "antialias=True"),
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 4, 4)), size=3, mode="bicubic", align_corners=True, convention="jax"),
     ValueError, "align_corners=True"),
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 4, 4)), scale_factor=2.0, mode="bicubic", convention="tensorflow"),
     ValueError, "scale_factor=2.0"),
])
def test_bicubic_bad_input_names_the_argument(call, error, words):
    with pytest.raises(error) as caught:
        call()
    assert words in str(caught.value)


# ---------------------------------------------------------------------------------------------------
# grid_sample: bicubic (4-D) and volumetric (5-D)
# ---------------------------------------------------------------------------------------------------
PADDINGS = ("zeros", "border", "reflection")


@st.composite
def grid_cases(draw, volumetric=False, max_size=5, max_out=3, non_finite=True):
    """(x, grid, g, mode, padding_mode, align_corners): points in and far outside [-1, 1], sometimes
    on quarter steps (edges, centres, reflection turning points), NaN and infinities sometimes in x
    and in the upstream gradient."""
    n = 3 if volumetric else 2
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    spatial = tuple(draw(st.integers(1, 3 if volumetric else max_size)) for _ in range(n))
    out = tuple(draw(st.integers(1, max_out)) for _ in range(n))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, C) + spatial)
    grid = rng.uniform(-1, 1, (N,) + out + (n,)) * draw(st.sampled_from([1.0, 1.3, 3.5]))
    if draw(st.booleans()):
        grid = numpy.round(grid * 4) / 4
    g = rng.standard_normal((N, C) + out)
    if non_finite and draw(st.booleans()):
        x = sprinkle(rng, x)
    if non_finite and draw(st.booleans()):
        g = sprinkle(rng, g)
    mode = draw(st.sampled_from(["bilinear", "nearest"] if volumetric else ["bicubic"]))
    return x, grid, g, mode, draw(st.sampled_from(PADDINGS)), draw(st.booleans())


def _ours(x, grid, g, mode, padding_mode, align_corners):
    y, pullback = vjp(lambda a, b: poolref.grid_sample(a, b, mode, padding_mode, align_corners), x, grid)
    return (y,) + tuple(pullback(g))




@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("volumetric", [False, True])
@given(data=st.data())
def test_grid_sample_bicubic_and_volumetric_match_loop_reference(volumetric, data):
    x, grid, g, *args = data.draw(grid_cases(volumetric))
    y, grad_x, grad_grid = _ours(x, grid, g, *args)
    assert_matches(y, ref.grid_sample_reference(x, grid, *args), rtol=1e-12, atol=1e-14)
    want_x, want_grid = ref.grid_sample_backward_reference(g, x, grid, *args)
    assert_matches(grad_x, want_x, rtol=1e-12, atol=1e-14, what="grad_x")
    assert_matches(grad_grid, want_grid, rtol=1e-10, atol=1e-12, what="grad_grid")


@pytest.mark.parametrize("volumetric", [False, True])
@given(data=st.data())
def test_grid_sample_bicubic_and_volumetric_match_torch(volumetric, data):
    """Output, grad_x and grad_grid against torch.nn.functional.grid_sample, NaN and infinities in x
    and in the upstream gradient included (signed zeros too: assert_matches compares them)."""
    x, grid, g, *args = data.draw(grid_cases(volumetric))
    ours, theirs = _ours(x, grid, g, *args), torch_grid_sample(x, grid, g, *args)
    for a, b, what in zip(ours, theirs, ("y", "grad_x", "grad_grid")):
        assert_matches(a, b, rtol=1e-10, atol=1e-12, what=what)


@settings(max_examples=15)
@pytest.mark.parametrize("volumetric", [False, True])
@given(data=st.data())
def test_gradcheck_and_adjoint_grid_sample_bicubic_and_volumetric(volumetric, data):
    rng = numpy.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    padding_mode, align = data.draw(st.sampled_from(PADDINGS)), data.draw(st.booleans())
    mode = data.draw(st.sampled_from(["bilinear", "nearest"])) if volumetric else "bicubic"
    n = 3 if volumetric else 2
    spatial = tuple(int(v) for v in rng.integers(2, 4, n))
    x = rng.standard_normal((1, 2) + spatial)
    # pixel coordinates with fractions in [0.15, 0.35] or [0.65, 0.85], inside the image: away from
    # pixels, clamp limits and turning points, where the derivative jumps
    coords = [rng.integers(0, L - 1, (1,) + (2,) * n) + rng.uniform(0.15, 0.35, (1,) + (2,) * n) + 0.5 * rng.integers(0, 2, (1,) + (2,) * n)
              for L in reversed(spatial)]
    grid = numpy.stack([(c + 0.5) * 2 / L - 1 if not align else c * 2 / (L - 1) - 1
                        for c, L in zip(coords, reversed(spatial))], axis=-1)
    if mode != "nearest":
        assert gradcheck(lambda a, b: poolref.grid_sample(a, b, mode, padding_mode, align), x, grid)
    rough = numpy.round(rng.uniform(-1.5, 1.5, (1,) + (2,) * n + (n,)) * 4) / 4
    assert adjoint_test(lambda a: poolref.grid_sample(a, rough, mode, padding_mode, align), x)


@pytest.mark.parametrize("volumetric", [False, True])
def test_grid_sample_bicubic_and_volumetric_low_precision_empty_and_strided(volumetric):
    rng = numpy.random.default_rng(5)
    n = 3 if volumetric else 2
    mode = "bilinear" if volumetric else "bicubic"
    x = sprinkle(rng, rng.standard_normal((2, 3) + (4,) * n), 0.05)
    grid = rng.uniform(-1.2, 1.2, (2,) + (3,) * n + (n,))
    g = rng.standard_normal((2, 3) + (3,) * n)
    want = _ours(x, grid, g, mode, "border", False)
    for dtype, tol in ((numpy.float32, 1e-5), (numpy.float16, 4e-2)):
        low = _ours(x.astype(dtype), grid.astype(dtype), g.astype(dtype), mode, "border", False)
        for a, b in zip(low, want):
            assert a.dtype == dtype
        # float16 rounds the grid itself; compare to float64 on the rounded grid and data
        exact = _ours(x.astype(dtype).astype(float), grid.astype(dtype).astype(float), g.astype(dtype).astype(float), mode, "border", False)
        assert_matches(low[0], exact[0], rtol=tol, atol=tol)
        assert_matches(low[1], exact[1], rtol=tol, atol=tol, what="grad_x")
    # non-contiguous views give the contiguous result, bit for bit
    view_x, view_grid = x[::-1, :, ::-1], grid[:, ::-1]
    for a, b in zip(_ours(view_x, view_grid, g, mode, "zeros", True),
                    _ours(numpy.ascontiguousarray(view_x), numpy.ascontiguousarray(view_grid), g, mode, "zeros", True)):
        assert_matches(a, b, rtol=0)
    # an empty batch
    y, grad_x, grad_grid = _ours(x[:0], grid[:0], g[:0], mode, "zeros", False)
    assert y.shape == (0, 3) + (3,) * n and grad_x.shape == (0, 3) + (4,) * n and grad_grid.shape == (0,) + (3,) * n + (n,)


def test_bicubic_grid_sample_pads_each_tap_not_the_point():
    # border: a point left of the image keeps its fraction; its taps are clamped one by one, so the
    # result is the cubic blend of edge pixels, not the edge pixel (as clamping the point would give)
    x = numpy.array([[[[0.0, 1.0, 4.0, 9.0]]]])
    grid = numpy.array([[[[-1.3, 0.0]]]])  # ix = -1.1: taps -3..0 clamp to pixel 0 -> 0.0
    ours = _ours(x, grid, numpy.ones((1, 1, 1, 1)), "bicubic", "border", False)
    theirs = torch_grid_sample(x, grid, numpy.ones((1, 1, 1, 1)), "bicubic", "border", False)
    for a, b in zip(ours, theirs):
        assert_matches(a, b, rtol=1e-12)
    grid = numpy.array([[[[-0.9, 0.0]]]])  # ix = -0.3: taps -2, -1, 0, 1 read 0, 0, 0, 1 (border)
    y = poolref.grid_sample(x, grid, "bicubic", "border")
    t = 0.7  # -0.3 - floor(-0.3)
    want = sum(w * v for w, v in zip(ref.cubic_tap_weights(t)[0], [0.0, 0.0, 0.0, 1.0]))
    assert abs(y.item() - want) < 1e-12
    # and the grid gradient keeps the unnormalization's slope L/2 where the point is outside (border
    # padding of the point, as bilinear sampling does, would make it 0)
    ours = _ours(x, grid, numpy.ones((1, 1, 1, 1)), "bicubic", "border", False)
    theirs = torch_grid_sample(x, grid, numpy.ones((1, 1, 1, 1)), "bicubic", "border", False)
    assert theirs[2][0, 0, 0, 0] != 0.0 and ours[2][0, 0, 0, 0] == pytest.approx(theirs[2][0, 0, 0, 0], rel=1e-12)


def test_bicubic_grid_gradient_reads_zero_taps_under_an_infinite_gradient():
    # zeros padding: a tap off the image reads 0, and PyTorch multiplies it by the infinite upstream
    # gradient before summing: NaN (a sum over the taps first would give a finite slope times inf)
    x = numpy.ones((1, 1, 2, 2))
    grid = numpy.array([[[[0.2, 0.1]]]])
    g = numpy.full((1, 1, 1, 1), numpy.inf)
    ours, theirs = _ours(x, grid, g, "bicubic", "zeros", False), torch_grid_sample(x, grid, g, "bicubic", "zeros", False)
    assert numpy.isnan(theirs[2]).all() and numpy.isnan(ours[2]).all()


def test_volumetric_grid_sample_never_returns_negative_zero():
    # PyTorch's 3-D kernel sums from +0.0 over the corners inside: -0.0 voxels give +0.0
    x = numpy.full((1, 1, 2, 2, 2), -0.0)
    y = poolref.grid_sample(x, numpy.zeros((1, 1, 1, 1, 3)))
    assert y.item() == 0.0 and not numpy.signbit(y.item())
    assert not numpy.signbit(torch_grid_sample(x, numpy.zeros((1, 1, 1, 1, 3)), numpy.ones((1, 1, 1, 1, 1)), "bilinear", "zeros", False)[0].item())


def test_volumetric_reflection_uses_torchs_3d_rule_at_the_edges():
    # PyTorch's 3-D kernel reflects by fmod and the parity of the flips (its 2-D kernels by another
    # formula): at a point exactly on an edge the clamped slope is -0.0 or +0.0 accordingly, which
    # the grid gradient's sign of zero shows
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((1, 1, 2, 3, 2))
    grid = numpy.array([[[[[1.0, 0.25, -0.75], [1.0, -0.25, -1.25], [-1.75, 1.0, 0.5]]]]])
    g = rng.standard_normal((1, 1, 1, 1, 3))
    for align in (False, True):
        ours, theirs = _ours(x, grid, g, "bilinear", "reflection", align), torch_grid_sample(x, grid, g, "bilinear", "reflection", align)
        assert numpy.signbit(ours[2]).tolist() == numpy.signbit(theirs[2]).tolist()
        assert_matches(ours[2], theirs[2], rtol=1e-12)


@pytest.mark.parametrize("call, error, words", [
    (lambda: poolref.grid_sample(numpy.zeros((1, 1, 2, 2, 2)), numpy.zeros((1, 1, 1, 1, 3)), mode="bicubic"), ValueError, "mode='bicubic'"),
    (lambda: poolref.grid_sample(numpy.zeros((1, 1, 2, 2, 2)), numpy.zeros((1, 1, 1, 2)), mode="bilinear"), ValueError, "grid with shape (1, 1, 1, 2)"),
    (lambda: poolref.grid_sample(numpy.zeros((1, 1, 2, 2, 2)), numpy.zeros((1, 1, 1, 1, 2))), ValueError, "(N, D_out, H_out, W_out, 3)"),
    (lambda: poolref.grid_sample(numpy.zeros((1, 1, 2, 2)), numpy.zeros((1, 1, 1, 1, 3))), ValueError, "grid with shape (1, 1, 1, 1, 3)"),
    (lambda: poolref.grid_sample(numpy.zeros((1, 1, 2, 2, 2, 2)), numpy.zeros((1, 1, 1, 1, 3))), ValueError, "x with shape (1, 1, 2, 2, 2, 2)"),
    (lambda: poolref.grid_sample(numpy.zeros((1, 1, 2, 0, 2)), numpy.zeros((1, 1, 1, 1, 3))), ValueError, "x with shape (1, 1, 2, 0, 2)"),
    (lambda: poolref.grid_sample(numpy.zeros((1, 1, 2, 2)), numpy.zeros((1, 1, 1, 2)), mode="cubic"), ValueError, "mode='cubic'"),
])
def test_grid_sample_bicubic_and_volumetric_bad_input_names_the_argument(call, error, words):
    with pytest.raises(error) as caught:
        call()
    assert words in str(caught.value)


# ---------------------------------------------------------------------------------------------------
# Bicubic under convention="tensorflow" and "jax"
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("L, O", SIZES)
def test_tensorflow_and_jax_cubic_taps_match_the_reference_rules(L, O):
    for align in (False, True):
        assert rows(weights.tf_cubic(L, O, align)) == [ref.tf_cubic_taps(o, L, O, align) for o in range(O)]
    forward, backward = weights.tf_antialias(L, O, cubic=True)
    assert rows(forward) == [ref.tf_antialias_taps(o, L, O, cubic=True) for o in range(O)]
    assert rows(backward) == [ref.tf_antialias_gradient_taps(i, L, O, cubic=True) for i in range(L)]
    for antialias in (False, True):
        dense = weights.jax_dense(L, O, "cubic", antialias)
        want = [ref.jax_dense_taps(o, L, O, "cubic", antialias) for o in range(O)]
        numpy.testing.assert_allclose(dense.weight, [[w for _, w in row] for row in want], rtol=1e-13, atol=1e-15)
        assert ((dense.weight == 0) == numpy.array([[w == 0 for _, w in row] for row in want])).all()


CONVENTION_CUBIC = {
    "tf": (dict(convention="tensorflow"), "tf.image.resize(t, size, method='bicubic')"),
    "tf-antialias": (dict(convention="tensorflow", antialias=True), "tf.image.resize(t, size, method='bicubic', antialias=True)"),
    "tf-align": (dict(convention="tensorflow", align_corners=True), "tf.compat.v1.image.resize_bicubic(t, size, align_corners=True)"),
    "jax": (dict(convention="jax"), "cubic"),
    "jax-no-antialias": (dict(convention="jax", antialias=False), "cubic"),
}


def _framework_cubic(name, x, size, g):
    """The framework's output and input gradient (NCHW), float32 for TensorFlow, float64 for JAX."""
    kwargs, call = CONVENTION_CUBIC[name]
    if name.startswith("tf"):
        tf = pytest.importorskip("tensorflow")
        t = tf.constant(numpy.moveaxis(x, 1, -1).astype(numpy.float32))
        with tf.GradientTape() as tape:
            tape.watch(t)
            y = eval(call, {"tf": tf, "t": t, "size": list(size)})  # the calls of the table above
        grad = tape.gradient(y, t, output_gradients=tf.constant(numpy.moveaxis(g, 1, -1).astype(numpy.float32)))
        return numpy.moveaxis(y.numpy(), -1, 1), numpy.moveaxis(grad.numpy(), -1, 1)
    jax = pytest.importorskip("jax")
    with jax.enable_x64(True):
        y, pullback = jax.vjp(lambda a: jax.image.resize(a, x.shape[:2] + tuple(size), call, antialias=kwargs.get("antialias", True)), x)
        return numpy.asarray(y), numpy.asarray(pullback(g)[0])


@pytest.mark.parametrize("name", sorted(CONVENTION_CUBIC))
def test_tensorflow_and_jax_bicubic_match_the_frameworks(name):
    """tf.image.resize's and jax.image.resize's cubic, output and gradient, NaN and infinities in x and in
    the upstream gradient (ResizeBicubic reads the edge pixel with weight 0 for a tap off the image: 0 * inf
    is NaN there; XLA's fused kernel gives a weight of 1e-16, not 0, at a distance of exactly 1 or 2)."""
    kwargs, _ = CONVENTION_CUBIC[name]
    rng = numpy.random.default_rng(47)
    tol = 3e-5 if name.startswith("tf") else 1e-12  # TensorFlow computes in float32
    for shape, sizes in (((2, 2, 4, 6), [(8, 12), (3, 4), (7, 5), (4, 6), (1, 1)]), ((1, 2, 3, 2), [(11, 12), (1, 5)])):
        x = rng.standard_normal(shape)
        x[0, 0] = sprinkle(rng, x[0, 0], 0.2)
        if name.startswith("tf"):
            x = x.astype(numpy.float32).astype(numpy.float64)  # the values TensorFlow sees
        for size in sizes:
            g = rng.standard_normal(shape[:2] + size)
            g[-1, -1] = sprinkle(rng, g[-1, -1], 0.2)
            if name.startswith("tf"):
                g = g.astype(numpy.float32).astype(numpy.float64)
            y, pullback = vjp(lambda t: poolref.interpolate(t, size=size, mode="bicubic", **kwargs), x)
            theirs_y, theirs_grad = _framework_cubic(name, x, size, g)
            assert_matches(y, theirs_y, rtol=tol, atol=tol)
            assert_matches(pullback(g)[0], theirs_grad, rtol=tol, atol=tol, what="gradient")
    # all -inf, 3 x 2 -> 11 x 12: where JAX's cubic weight is 1e-16 instead of 0 the result is -inf, not NaN
    x = numpy.full((1, 1, 3, 2), -numpy.inf)
    if name.startswith("jax"):
        assert_matches(poolref.interpolate(x, size=(11, 12), mode="bicubic", **kwargs),
                       _framework_cubic(name, x, (11, 12), numpy.ones((1, 1, 11, 12)))[0], rtol=0)


@given(data=st.data())
def test_tensorflow_and_jax_bicubic_match_loop_reference(data):
    name = data.draw(st.sampled_from(sorted(CONVENTION_CUBIC)))
    kwargs = dict(CONVENTION_CUBIC[name][0])
    rng = numpy.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    spatial = (data.draw(st.integers(1, 5)), data.draw(st.integers(2, 5)))
    size = (data.draw(st.integers(1, 8)), data.draw(st.integers(2, 8)))
    x = rng.standard_normal((data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))) + spatial)
    if data.draw(st.booleans()):
        x = sprinkle(rng, x)
    y, pullback = vjp(lambda t: poolref.interpolate(t, size=size, mode="bicubic", **kwargs), x)
    antialias = kwargs.get("antialias", kwargs["convention"] == "jax")
    extra = dict(antialias=antialias, convention=kwargs["convention"])
    align = bool(kwargs.get("align_corners"))
    assert_matches(y, ref.interpolate_reference(x, size, "bicubic", align, **extra), rtol=1e-12, atol=1e-14)
    g = smooth_values(y.shape, 3)
    if data.draw(st.booleans()):
        g = sprinkle(rng, g)
    assert_matches(pullback(g)[0], ref.interpolate_backward_reference(g, x.shape, "bicubic", align, **extra),
                   rtol=1e-12, atol=1e-14, what="gradient")


@settings(max_examples=10)
@given(st.sampled_from(sorted(CONVENTION_CUBIC)), st.integers(0, 2**32 - 1))
def test_gradcheck_and_adjoint_tensorflow_and_jax_bicubic(name, seed):
    kwargs = CONVENTION_CUBIC[name][0]
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal((1, 1, int(rng.integers(2, 5)), int(rng.integers(2, 5))))
    size = (int(rng.integers(1, 7)), int(rng.integers(2, 7)))
    assert gradcheck(lambda t: poolref.interpolate(t, size=size, mode="bicubic", **kwargs), x)
    assert adjoint_test(lambda t: poolref.interpolate(t, size=size, mode="bicubic", **kwargs), x)


def test_tensorflow_bicubic_weights_come_from_a_table_of_1024_steps():
    # ResizeBicubic rounds the fraction to a 1/1024 step before reading its weights: 3 -> 7 has
    # fractions in sevenths, between the steps; the kernel at the exact fraction differs by ~1e-4
    taps = weights.tf_cubic(3, 7)
    o = 1  # c = 1.5 * 3/7 - 0.5 = 0.142857...: t = 1/7, step rint(1024/7) = 146
    exact = weights.cubic_kernel(numpy.array([1 + 1 / 7, 1 / 7, 1 - 1 / 7, 2 - 1 / 7]), -0.5)
    tabled = weights.cubic_kernel(numpy.array([1 + 146 / 1024, 146 / 1024, 1 - 146 / 1024, 2 - 146 / 1024]), -0.5)
    taps_weight = taps.weight[o] * (taps.weight[o] != 0)
    assert numpy.abs(taps_weight[1:] - tabled[1:] / tabled[1:].sum()).max() < 1e-6  # tap -1 is off the image
    assert numpy.abs(taps_weight[1:] - exact[1:] / exact[1:].sum()).max() > 1e-5
