"""Deformable RoI pooling: worked examples, RoI Align at zero offset, loop reference, gradients to x and
to the offsets, laws, bad input."""

import numpy
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import poolref
from helpers import layouts, plant_nonfinite
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.reference import region as ref
from poolref.testing import assert_conserves_gradient, assert_matches
from poolref.testing.strategies import smooth_values
from poolref.testing.torch_compositions import deform_roi_pool_by_gather

RAMP = numpy.arange(100.0).reshape(1, 1, 10, 10)


@st.composite
def deform_cases(draw, *, max_size=6, inside=False, spread=1.0):
    """x, boxes (either form), rois (K, 5), offset (K, 2, ph, pw), output size, scale, ratio, gamma."""
    N = draw(st.integers(1, 2))
    low = 3 if inside else 2
    H, W = draw(st.integers(low, max(low, max_size))), draw(st.integers(low, max(low, max_size)))
    ph, pw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    K = draw(st.integers(1, 4))
    scale = draw(st.sampled_from([1.0, 0.5, 2.0]))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if inside:
        xs, ys = rng.uniform(0.5, W - 1.5, (K, 2)) / scale, rng.uniform(0.5, H - 1.5, (K, 2)) / scale
        xs.sort(axis=1)
        ys.sort(axis=1)
    else:
        xs, ys = rng.uniform(-1.5, W + 1.5, (K, 2)) / scale, rng.uniform(-1.5, H + 1.5, (K, 2)) / scale
    rois = numpy.column_stack([numpy.sort(rng.integers(0, N, K)), xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]])
    # the first box covers most of the map: every case compares values, not bins outside the image
    rois[0, 1:] = numpy.array([rng.uniform(0, 0.5), rng.uniform(0, 0.5), W - 1 - rng.uniform(0, 0.5), H - 1 - rng.uniform(0, 0.5)]) / scale
    offset = rng.normal(scale=spread, size=(K, 2, ph, pw))
    x = smooth_values((N, draw(st.integers(1, 3)), H, W), draw(st.integers(0, 2**32 - 1)))
    boxes = [rois[rois[:, 0] == n, 1:] for n in range(N)] if draw(st.booleans()) else rois
    return x, boxes, rois, offset, (ph, pw), scale, draw(st.integers(-1, 3)), draw(st.sampled_from([0.1, 0.5, 1.0]))


# ---------------------------------------------------------------------------------------------------
# Worked examples
# ---------------------------------------------------------------------------------------------------
def test_worked_example_shifts_the_bin_by_a_fraction_of_the_box():
    box = numpy.array([[0, 1, 1, 3, 3]])  # aligned: start 0.5, size 2; one bin, one sample at (1.5, 1.5)
    right = numpy.array([[[[0.5]], [[0.0]]]])  # half the box width (gamma = 1) to the right
    down = numpy.array([[[[0.0]], [[0.25]]]])  # a quarter of its height down
    assert poolref.deform_roi_pool(RAMP, box, None, 1, sampling_ratio=1)[0, 0, 0, 0] == pytest.approx(16.5)
    assert poolref.deform_roi_pool(RAMP, box, right, 1, sampling_ratio=1, gamma=1.0)[0, 0, 0, 0] == pytest.approx(17.5)
    assert poolref.deform_roi_pool(RAMP, box, down, 1, sampling_ratio=1, gamma=1.0)[0, 0, 0, 0] == pytest.approx(21.5)


def test_offset_gradient_on_a_ramp_is_the_slope_times_gamma_and_box_size():
    # x[h, w] = 10 h + w: moving a sample by d along x changes it by d, along y by 10 d
    box = numpy.array([[0, 2, 2, 6, 7]])  # width 4, height 5
    offset = numpy.full((1, 2, 2, 2), 0.05)
    _, pullback = vjp(lambda t, o: poolref.deform_roi_pool(t, box, o, 2, 1.0, 2, 0.1), RAMP, offset)
    _, grad_offset = pullback(numpy.ones((1, 1, 2, 2)))
    numpy.testing.assert_allclose(grad_offset[0, 0], 0.1 * 4 * 1, rtol=1e-12)
    numpy.testing.assert_allclose(grad_offset[0, 1], 0.1 * 5 * 10, rtol=1e-12)


def test_clamped_coordinates_pass_no_offset_gradient():
    # every sample left of the map (x in (-1, 0)) is clamped to column 0: moving it changes nothing
    box = numpy.array([[0, -0.4, 2, -0.2, 4]])
    _, pullback = vjp(lambda t, o: poolref.deform_roi_pool(t, box, o, 1, 1.0, 2), RAMP, numpy.zeros((1, 2, 1, 1)))
    grad_x, grad_offset = pullback(numpy.ones((1, 1, 1, 1)))
    assert grad_offset[0, 0, 0, 0] == 0 and grad_offset[0, 1, 0, 0] != 0
    assert grad_x[0, 0, :, 0].sum() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------
# Zero offsets: RoI Align with aligned=True
# ---------------------------------------------------------------------------------------------------
@given(deform_cases())
def test_zero_offsets_equal_roi_align_aligned(case):
    x, boxes, rois, offset, size, scale, ratio, gamma = case
    zero = numpy.zeros_like(offset)
    want, pull_align = vjp(lambda t: poolref.roi_align(t, boxes, size, scale, ratio, aligned=True), x)
    for o in (zero, None):
        got, pullback = vjp(lambda t: poolref.deform_roi_pool(t, boxes, o, size, scale, ratio, gamma), x)
        assert_matches(got, want, rtol=0, atol=0)
        g = smooth_values(got.shape, 1)
        assert_matches(pullback(g)[0], pull_align(g)[0], rtol=1e-13, atol=1e-14, what="gradient")


# ---------------------------------------------------------------------------------------------------
# Loop reference == vectorised, forward and backward (x and offset)
# ---------------------------------------------------------------------------------------------------
@given(deform_cases())
def test_matches_loop_reference(case):
    x, boxes, rois, offset, size, scale, ratio, gamma = case
    y, pullback = vjp(lambda t, o: poolref.deform_roi_pool(t, boxes, o, size, scale, ratio, gamma), x, offset)
    assert_matches(y, ref.deform_roi_pool_reference(x, rois, offset, size, scale, ratio, gamma), rtol=1e-12, atol=1e-14)
    g = smooth_values(y.shape, 2)
    grad_x, grad_offset = pullback(g)
    want_x, want_offset = ref.deform_roi_pool_backward_reference(g, x, rois, offset, size, scale, ratio, gamma)
    assert_matches(grad_x, want_x, rtol=1e-12, atol=1e-13, what="gradient of x")
    assert_matches(grad_offset, want_offset, rtol=1e-10, atol=1e-12, what="gradient of offset")


@settings(max_examples=30)
@given(deform_cases(spread=0.5))
def test_matches_torch_composition(case):
    torch = pytest.importorskip("torch")
    x, boxes, rois, offset, size, scale, ratio, gamma = case
    # away from the kinks, where the offsets' derivative is one-sided
    coords = _sample_coordinates(rois, offset, size, scale, ratio, gamma)
    assume(coords.size == 0 or numpy.abs(coords - numpy.round(coords)).min() > 1e-6)
    y, pullback = vjp(lambda t, o: poolref.deform_roi_pool(t, boxes, o, size, scale, ratio, gamma), x, offset)
    xt, ot = torch.tensor(x, requires_grad=True), torch.tensor(offset, requires_grad=True)
    yt = deform_roi_pool_by_gather(torch, xt, torch.tensor(rois), ot, size, scale, ratio, gamma)
    g = smooth_values(y.shape, 3)
    yt.backward(torch.tensor(g))
    grad_x, grad_offset = pullback(g)
    assert_matches(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert_matches(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-13, what="gradient of x")
    assert_matches(grad_offset, ot.grad.numpy(), rtol=1e-10, atol=1e-12, what="gradient of offset")


# ---------------------------------------------------------------------------------------------------
# Gradients: gradcheck for x and the offsets, the adjoint test for x
# ---------------------------------------------------------------------------------------------------
def _sample_coordinates(rois, offset, size, scale, ratio, gamma):
    coordinates = []
    for k in range(len(rois)):
        for i in range(size[0]):
            for j in range(size[1]):
                points = ref.deformed_samples(rois[k], offset[k], size, scale, ratio, gamma, i, j)[0]
                coordinates.extend(c for point in points for c in point)
    return numpy.array(coordinates)


@settings(max_examples=12)
@given(deform_cases(max_size=5, spread=0.5))
def test_gradcheck_x_and_offset(case):
    x, boxes, rois, offset, size, scale, ratio, gamma = case
    x = x[:, :1]
    # the derivative jumps where a sample crosses a pixel row or column or a clamp (-1, 0, H - 1, H):
    # keep every sampling coordinate at least 1e-4 (100 finite-difference steps) away from an integer
    coords = _sample_coordinates(rois, offset, size, scale, ratio, gamma)
    assume(coords.size == 0 or numpy.abs(coords - numpy.round(coords)).min() > 1e-4)
    assert gradcheck(lambda t, o: poolref.deform_roi_pool(t, boxes, o, size, scale, ratio, gamma), x, offset)
    assert adjoint_test(lambda t: poolref.deform_roi_pool(t, boxes, offset, size, scale, ratio, gamma), x)


# ---------------------------------------------------------------------------------------------------
# Laws
# ---------------------------------------------------------------------------------------------------
@given(deform_cases(inside=True, spread=0.0))
def test_conserves_gradient_mass_when_every_sample_is_inside(case):
    x, boxes, rois, offset, size, scale, ratio, gamma = case
    ratio = ratio if ratio > 0 else 2  # an empty sampling grid would hand on nothing
    small = numpy.random.default_rng(0).uniform(-0.1, 0.1, offset.shape)  # shifts of < 0.1 * box < 1 pixel
    assert_conserves_gradient(poolref.deform_roi_pool, x, boxes=boxes, offset=small, output_size=size,
                              spatial_scale=scale, sampling_ratio=ratio, gamma=0.1)


@pytest.mark.constant_outputs("the law is that a constant map pools to the same constant")
@given(deform_cases(inside=True, spread=0.2), st.floats(-3, 3))  # mostly inside: the assume below rarely rejects
def test_constant_map_stays_constant_wherever_the_samples_land_inside(case, level):
    x, boxes, rois, offset, size, scale, ratio, gamma = case
    coords = _sample_coordinates(rois, offset, size, scale, 2, gamma)
    H, W = x.shape[2:]
    ys, xs = coords[0::2], coords[1::2]
    assume(numpy.all((ys >= -1) & (ys <= H) & (xs >= -1) & (xs <= W)))
    y = poolref.deform_roi_pool(numpy.full(x.shape, level), boxes, offset, size, scale, 2, gamma)
    numpy.testing.assert_allclose(y, level, rtol=1e-12, atol=1e-12)


def test_offset_gradient_of_a_bin_outside_the_image_is_zero_even_for_a_nan_gradient():
    # An outside sample reads nothing; the vectorised backward stands its tap in at pixel 0 with
    # slope 0, and once multiplied <g, x> by that 0 unmasked: a NaN gradient gave NaN, not 0.
    x = numpy.arange(25.0).reshape(1, 1, 5, 5)
    boxes = numpy.array([[0, -6.0, -6.0, -4.0, -4.0], [0, 1.0, 1.0, 3.0, 3.0]])  # all outside; inside
    offset = numpy.zeros((2, 2, 1, 1))
    y, pullback = vjp(lambda t, o: poolref.deform_roi_pool(t, boxes, o, 1, 1.0, 2, 0.1), x, offset)
    g = numpy.ones(y.shape)
    g[0] = numpy.nan
    grad_x, grad_offset = pullback(g)
    assert grad_offset[0].tolist() == [[[0.0]], [[0.0]]] and not numpy.isnan(grad_x).any()
    want_x, want_offset = ref.deform_roi_pool_backward_reference(g, x, boxes, offset, (1, 1), 1.0, 2, 0.1)
    assert_matches(grad_offset, want_offset, rtol=1e-12, what="gradient of offset")
    assert_matches(grad_x, want_x, rtol=1e-12, what="gradient of x")


@pytest.mark.parametrize("layout", ["contiguous", "float16", "float32", "transposed", "reversed", "sliced"])
@pytest.mark.parametrize("poisoned", ["x", "gradient", "both"])
def test_matches_loop_reference_on_nonfinite_values(poisoned, layout):
    # NaN, +inf and -inf in the input and/or the upstream gradient: the same NaNs, the same signed
    # infinities and the same values, for the gradients of x and of the offsets
    rois = numpy.array([[0, -3.0, -2.0, 2.5, 3.0], [1, 1.0, 0.5, 6.5, 5.0], [0, 7.0, 8.0, 12.0, 11.0], [1, -1.5, 3.0, 4.0, 7.5]])
    offset = smooth_values((4, 2, 2, 3), 40, low=-0.6, high=0.6)
    x = smooth_values((2, 3, 6, 7), 41)
    if poisoned != "gradient":
        x = plant_nonfinite(x, 42, fraction=0.1)
    x = layouts(x, layout)
    offset = offset.astype(x.dtype)
    fn = lambda t, o: poolref.deform_roi_pool(t, rois, o, (2, 3), 1.0, 2, 0.3)  # noqa: E731
    y, pullback = vjp(fn, x, offset)
    tol = {"float16": dict(rtol=2e-3, atol=2e-3), "float32": dict(rtol=1e-5, atol=1e-5)}.get(layout, dict(rtol=1e-12, atol=1e-13))
    base = numpy.array(x, dtype=numpy.float64)
    offset64 = offset.astype(numpy.float64)
    assert_matches(y, ref.deform_roi_pool_reference(base, rois, offset64, (2, 3), 1.0, 2, 0.3), **tol)
    g = smooth_values(y.shape, 43)
    if poisoned != "x":
        g = plant_nonfinite(g, 44)
    g = g.astype(x.dtype)
    grad_x, grad_offset = pullback(g)
    want_x, want_offset = ref.deform_roi_pool_backward_reference(g.astype(numpy.float64), base, rois, offset64, (2, 3), 1.0, 2, 0.3)
    assert_matches(grad_x, want_x, **tol, what="gradient of x")
    offset_tol = dict(rtol=max(tol["rtol"], 1e-10), atol=max(tol["atol"], 1e-12))
    if layout == "float16":  # the offset gradient sums products of float16 values in float64
        offset_tol = dict(rtol=1e-2, atol=1e-2)
    assert_matches(grad_offset, want_offset, **offset_tol, what="gradient of offset")


def test_float32_is_float64_to_rounding_from_1e_minus_30_to_1e30():
    rois = numpy.array([[0, -3.0, -2.0, 2.5, 3.0], [1, 1.0, 0.5, 6.5, 5.0]])
    offset = smooth_values((2, 2, 2, 3), 45, low=-0.6, high=0.6)
    base = smooth_values((2, 3, 6, 7), 46)
    for v in (1e-30, 1e-20, 1e-10, 1e10, 1e20, 1e30):
        x = (base * v).astype(numpy.float32)
        fn = lambda t, o: poolref.deform_roi_pool(t, rois, o, (2, 3), 1.0, 2, 0.3)  # noqa: E731
        y, pullback = vjp(fn, x, offset.astype(numpy.float32))
        y64, pullback64 = vjp(fn, x.astype(numpy.float64), offset)
        assert_matches(y, y64.astype(numpy.float32), rtol=2e-6, atol=float(numpy.abs(x).max()) * 1e-6, what=f"output at {v}")
        g = smooth_values(y.shape, 47).astype(numpy.float32)
        got, want = pullback(g), pullback64(g.astype(numpy.float64))
        assert_matches(got[0], want[0].astype(numpy.float32), rtol=2e-6, atol=1e-6, what=f"gradient of x at {v}")
        scale = float(numpy.abs(want[1]).max())  # the offset gradient grows with x: v times the slopes
        assert_matches(got[1], want[1].astype(numpy.float32), rtol=1e-5, atol=scale * 1e-5, what=f"gradient of offset at {v}")


def test_dtypes_and_tensors():
    x = smooth_values((1, 2, 6, 6), 3)
    box = numpy.array([[0, 0.5, 0.7, 4.2, 5.1]])
    offset = numpy.full((1, 2, 2, 2), 0.1)
    for dtype in (numpy.float16, numpy.float32):
        y, pullback = vjp(lambda t, o: poolref.deform_roi_pool(t, box, o, 2), x.astype(dtype), offset.astype(dtype))
        grads = pullback(numpy.ones(y.shape, dtype))
        assert y.dtype == dtype and grads[0].dtype == dtype and grads[1].dtype == dtype
    xt, ot = poolref.Tensor(x, requires_grad=True), poolref.Tensor(offset, requires_grad=True)
    with poolref.Tape() as tape:
        loss = poolref.deform_roi_pool(xt, box, ot, 2).sum()
    assert "deform_roi_pool" in str(tape)
    gx, go = tape.gradient(loss, [xt, ot])
    assert gx.shape == x.shape and go.shape == offset.shape


def test_numpy_and_cupy_agree(xp):
    from poolref._backend import to_numpy

    x = smooth_values((2, 3, 7, 8), 6)
    rois = numpy.array([[0, 0.5, 0.5, 5.5, 4.0], [1, -2.0, 1.0, 3.0, 9.0], [1, 1.2, 2.3, 1.2, 6.1]])
    offset = smooth_values((3, 2, 2, 3), 7, low=-0.5, high=0.5)
    fn = lambda t, o, r: poolref.deform_roi_pool(t, r, o, (2, 3), 0.8, 0, 0.3)  # noqa: E731
    y, pullback = vjp(lambda t, o: fn(t, o, rois), x, offset)
    y_xp, pullback_xp = vjp(lambda t, o: fn(t, o, xp.asarray(rois)), xp.asarray(x), xp.asarray(offset))
    g = smooth_values(y.shape, 8)
    assert_matches(to_numpy(y_xp), y, rtol=1e-12, atol=1e-13)
    for got, want in zip(pullback_xp(xp.asarray(g)), pullback(g)):
        assert_matches(to_numpy(got), want, rtol=1e-10, atol=1e-12, what="gradient")


def test_inputs_are_never_modified():
    x = smooth_values((2, 3, 7, 7), 4)
    rois = numpy.array([[0, 0.5, 0.5, 5.5, 4.0], [1, -2.0, 1.0, 3.0, 9.0]])
    offset = smooth_values((2, 2, 2, 3), 5)
    x0, r0, o0 = x.copy(), rois.copy(), offset.copy()
    y, pullback = vjp(lambda t, o: poolref.deform_roi_pool(t, rois, o, (2, 3), 1.0, 0, 0.2), x, offset)
    g = numpy.ones_like(y)
    pullback(g)
    for a, b in ((x, x0), (rois, r0), (offset, o0), (g, numpy.ones_like(y))):
        numpy.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("with_offset", [False, True])
def test_the_gradient_reaching_the_op_is_never_modified(with_offset):
    # With one channel the channels-last view of grad_y is contiguous: a backward that divided it
    # by the sample count in place would change the gradient of y itself.
    x = poolref.Tensor(smooth_values((1, 1, 6, 6), 6), requires_grad=True)
    rois = numpy.array([[0, 0.5, 0.5, 4.5, 4.0]])
    offset = smooth_values((1, 2, 2, 2), 7) if with_offset else None
    with poolref.Tape() as tape:
        y = poolref.deform_roi_pool(x, rois, offset, 2, 1.0, 2)
        loss = (y * 3.0).sum()
    grad_y, _ = tape.gradient(loss, [y, x])
    numpy.testing.assert_array_equal(grad_y, numpy.full(y.shape, 3.0))


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------
X = numpy.zeros((1, 2, 5, 5))
B = numpy.array([[0, 0, 0, 2, 2]], dtype=float)


@pytest.mark.parametrize("call, error, words", [
    (lambda: poolref.deform_roi_pool(X, B, numpy.zeros((1, 2, 3, 3)), 2), ValueError, "got offset with shape (1, 2, 3, 3)"),
    (lambda: poolref.deform_roi_pool(X, B, numpy.zeros((1, 2, 2, 2), dtype=int), 2), TypeError, "dtype int64"),
    (lambda: poolref.deform_roi_pool(X, B, numpy.full((1, 2, 2, 2), numpy.nan), 2), ValueError, "offset must be finite"),
    (lambda: poolref.deform_roi_pool(X, B, None, 2, gamma=float("inf")), ValueError, "gamma=inf"),
    (lambda: poolref.deform_roi_pool(X, B, None, 2, sampling_ratio=0.5), TypeError, "sampling_ratio=0.5"),
    (lambda: poolref.deform_roi_pool(X, B, None, 2, 0), ValueError, "spatial_scale=0"),
    (lambda: poolref.deform_roi_pool(X, numpy.zeros((1, 4)), None, 2), ValueError, "boxes with shape (1, 4)"),
    (lambda: poolref.deform_roi_pool(X, B, None, (0, 2)), ValueError, "output_size=(0, 2)"),
])
def test_bad_input_is_refused_with_a_clear_message(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
