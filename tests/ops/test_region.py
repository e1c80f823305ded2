"""Region pooling: worked examples, loop reference vs vectorised, gradients, laws, ONNX Runtime, bad input.

torchvision is not a test dependency (benchmarks/gpu_torchvision_check.py compares with it where it
is installed); the framework cross-checks here run ONNX Runtime's RoiAlign and MaxRoiPool.
"""

import math

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolref
from helpers import NAN_FIRST_CORNER_BOX, NAN_FIRST_CORNER_X, layouts, plant_nonfinite, to_torch, torch_or_skip
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.reference import adaptive as adaptive_ref
from poolref.reference import region as ref
from poolref.testing import assert_conserves_gradient, assert_matches
from poolref.testing.strategies import distinct_values, smooth_values
from poolref.testing.torch_compositions import spatial_pyramid_by_pooling

FLT_MAX = float(numpy.finfo(numpy.float32).max)


# ---------------------------------------------------------------------------------------------------
# Cases: a feature map, boxes (both forms), bins and the op's keyword arguments
# ---------------------------------------------------------------------------------------------------
def make_rois(rng, K, N, H, W, scale, *, inside=False, ordered=False, quarter=False):
    """(K, 5) boxes: inside the map, or anywhere around it (degenerate and inverted ones included)."""
    if inside:  # every corner in [0, W - 1] x [0, H - 1] of the feature map
        xs = rng.uniform(0, W - 1, size=(K, 2)) / scale
        ys = rng.uniform(0, H - 1, size=(K, 2)) / scale
    else:
        xs = rng.uniform(-1.5, W + 1.5, size=(K, 2)) / scale  # across the borders, mostly overlapping the map
        ys = rng.uniform(-1.5, H + 1.5, size=(K, 2)) / scale
    if quarter:  # multiples of 1/4: rounding meets exact halves, sampling meets pixel centres
        xs, ys = numpy.round(xs * 4) / 4, numpy.round(ys * 4) / 4
    if ordered:
        xs.sort(axis=1)
        ys.sort(axis=1)
    if K and rng.random() < 0.3:  # a degenerate box
        xs[0, 1], ys[0, 1] = xs[0, 0], ys[0, 0]
    return numpy.column_stack([rng.integers(0, N, K), xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]]).astype(numpy.float64)


def as_list(rois, N):
    """The same boxes as a list of (K_i, 4) arrays, one per image (the rows must be sorted by image)."""
    return [rois[rois[:, 0] == n, 1:] for n in range(N)]


@st.composite
def region_cases(draw, *, ps=False, max_size=6, inside=False, ordered=False, distinct=False, positive=False, quarter=None):
    N = draw(st.integers(1, 2))
    H, W = draw(st.integers(2, max_size)), draw(st.integers(2, max_size))  # 1-pixel maps: tests of their own
    ph, pw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    C = ph * pw * draw(st.integers(1, 2)) if ps else draw(st.integers(1, 3))
    K = draw(st.integers(1, 4))
    scale = draw(st.sampled_from([1.0, 0.5, 0.75, 2.0]))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    quarter = draw(st.booleans()) if quarter is None else quarter
    rois = make_rois(rng, K, N, H, W, scale, inside=inside, ordered=ordered, quarter=quarter)
    # the first box covers most of the map, inside it: every case compares values, not empty bins
    x1, y1 = rng.uniform(0, 0.5), rng.uniform(0, 0.5)
    rois[0, 1:] = numpy.array([x1, y1, W - 1 - rng.uniform(0, 0.5), H - 1 - rng.uniform(0, 0.5)]) / scale
    rois = rois[numpy.argsort(rois[:, 0], kind="stable")]
    seed = draw(st.integers(0, 2**32 - 1))
    x = distinct_values((N, C, H, W), seed) if distinct else smooth_values((N, C, H, W), seed)
    if positive:  # distinct values stay distinct
        x = x - x.min() + 0.5
    boxes = as_list(rois, N) if draw(st.booleans()) else rois
    return x, boxes, rois, (ph, pw), scale, draw(st.integers(-1, 3))


# ---------------------------------------------------------------------------------------------------
# Worked examples (SEMANTICS.md section 8 and the kernels' rules)
# ---------------------------------------------------------------------------------------------------
RAMP = numpy.arange(100.0).reshape(1, 1, 10, 10)


@pytest.mark.parametrize("aligned, first_row", [(True, [8.25, 8.75, 9.25, 9.75]), (False, [13.75, 14.25, 14.75, 15.25])])
def test_roi_align_worked_case(aligned, first_row):
    for boxes in (numpy.array([[0, 1, 1, 3, 3]]), [numpy.array([[1.0, 1, 3, 3]])]):
        y = poolref.roi_align(RAMP, boxes, (4, 4), 1.0, 1, aligned)
        numpy.testing.assert_allclose(y[0, 0, 0], first_row, rtol=0, atol=1e-12)
        assert_matches(y, ref.roi_align_reference(RAMP, numpy.array([[0, 1, 1, 3, 3]]), (4, 4), 1.0, 1, aligned), rtol=1e-12)


def test_roi_align_not_aligned_enlarges_a_small_box_to_one_pixel():
    small = numpy.array([[0, 2.0, 2.0, 2.25, 2.25]])
    # not aligned: roi 0.25 -> 1, one sample at the centre (2.5, 2.5); aligned: a 0.25 box at (1.5..1.75) + .5
    assert poolref.roi_align(RAMP, small, 1, sampling_ratio=1)[0, 0, 0, 0] == pytest.approx(27.5)
    assert poolref.roi_align(RAMP, small, 1, sampling_ratio=1, aligned=True)[0, 0, 0, 0] == pytest.approx(10 * 1.625 + 1.625)


def test_roi_align_adaptive_sampling_counts_per_box():
    # box 4 x 4 pixels, 2 x 2 bins: ceil(4/2) = 2 samples per side; a 1-pixel box: 1
    x = smooth_values((1, 1, 8, 8), 0)
    boxes = numpy.array([[0, 1, 1, 5, 5], [0, 2, 2, 3, 3]], dtype=float)
    y = poolref.roi_align(x, boxes, 2, aligned=True)
    want = [ref.roi_align_reference(x, boxes[k:k + 1], (2, 2), 1.0, g, True)[0] for k, g in ((0, 2), (1, 1))]
    assert_matches(y, numpy.stack(want), rtol=1e-12)


def test_roi_align_of_an_inverted_aligned_box_is_zero():
    y = poolref.roi_align(RAMP + 1, numpy.array([[0, 5, 5, 2, 2]]), 2, aligned=True)
    assert numpy.all(y == 0)


def test_roi_align_onnx_max_takes_the_largest_weighted_corner():
    # negative values: every weighted corner w*v is negative; the largest is the smallest |w v|
    x = -RAMP - 1
    y = poolref.roi_align(x, numpy.array([[0, 1, 1, 3, 3]]), 2, 1.0, 2, True, mode="max", convention="onnx")
    numpy.testing.assert_allclose(y[0, 0], [[-0.0625, -0.125], [-0.6875, -0.75]])
    # positive ramp: the heaviest corner of the last sample, 0.5625 * 11, not an interpolated value
    y = poolref.roi_align(RAMP, numpy.array([[0, 1, 1, 3, 3]]), 2, 1.0, 2, True, mode="max", convention="onnx")
    assert y[0, 0, 0, 0] == pytest.approx(0.5625 * 11)
    # avg under the onnx convention is RoI Align's average, checked against the loop reference (and
    # against ONNX Runtime's RoiAlign by the oracle)
    boxes = numpy.array([[0, 1.3, 0.7, 6.1, 8.2]])
    want = ref.roi_align_reference(RAMP, boxes, (3, 3), 1.0, -1, False, "avg")
    assert_matches(poolref.roi_align(RAMP, boxes, 3, convention="onnx"), want, rtol=1e-12)


def test_roi_align_onnx_max_folds_each_point_then_the_points():
    kw = dict(output_size=(2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True, mode="max", convention="onnx")
    y = poolref.roi_align(NAN_FIRST_CORNER_X, NAN_FIRST_CORNER_BOX, **kw)
    assert y[0, 0, 0, 1] == 0.37716615000907855  # the third point's best corner; the fourth starts with NaN
    want = ref.roi_align_reference(NAN_FIRST_CORNER_X, NAN_FIRST_CORNER_BOX, (2, 2), 1.0, 2, True, "max")
    numpy.testing.assert_array_equal(y, want)
    # the gradient goes to that corner alone
    g = numpy.zeros_like(y)
    g[0, 0, 0, 1] = 1.0
    grad = vjp(lambda t: poolref.roi_align(t, NAN_FIRST_CORNER_BOX, **kw), NAN_FIRST_CORNER_X)[1](g)[0]
    want = ref.roi_align_backward_reference(g, NAN_FIRST_CORNER_X, NAN_FIRST_CORNER_BOX, (2, 2), 1.0, 2, True, "max")
    numpy.testing.assert_array_equal(grad, want)
    assert numpy.count_nonzero(grad) == 1


def test_roi_align_onnx_max_ties_go_to_the_first_sample():
    # box [0, 0, 4, 4], one bin, 2 x 2 samples at (1, 1), (1, 3), (3, 1), (3, 3): each reads one pixel
    # with weight 1, and on a constant map all four tie; std::max keeps the first
    x = numpy.full((1, 1, 5, 5), 2.0)
    fn = lambda t: poolref.roi_align(t, numpy.array([[0, 0, 0, 4, 4]]), 1, 1.0, 2, mode="max", convention="onnx")
    y, pullback = vjp(fn, x)
    grad = pullback(numpy.ones_like(y))[0][0, 0]
    assert y[0, 0, 0, 0] == 2.0 and grad[1, 1] == 1.0 and grad.sum() == 1.0


def test_roi_align_reads_pixel_zero_for_samples_outside_like_the_cpu_kernels():
    x = RAMP.copy()
    x[0, 0, 0, 0] = numpy.nan
    outside = numpy.array([[0, 20.0, 20.0, 30.0, 30.0]])
    assert numpy.isnan(poolref.roi_align(x, outside, 2, sampling_ratio=2)).all()
    assert numpy.isnan(poolref.roi_align(x, outside, 2, sampling_ratio=2, mode="max", convention="onnx")).all()
    # position-sensitive align reads nothing there: exactly 0
    assert numpy.all(poolref.ps_roi_align(numpy.repeat(x, 4, axis=1), outside, 2, sampling_ratio=2) == 0)


def test_roi_align_backward_skips_outside_samples_so_a_nan_gradient_never_reaches_pixel_zero():
    # torchvision's CPU forward reads pixel (0, 0) with weight 0 for a sample outside the image, but
    # its backward skips such a sample (bilinear_interpolate_gradient returns corner -1 and nothing
    # is added): a NaN gradient of a bin whose samples are all outside reaches no pixel. The
    # vectorised backward once sent the transpose of the forward's weight-0 reads, NaN to (0, 0).
    x = numpy.arange(25.0).reshape(1, 1, 5, 5)
    boxes = numpy.array([[0, -4.0, -4.0, -2.0, -2.0], [0, 1.0, 1.0, 3.0, 3.0]])  # all outside; inside
    y, pullback = vjp(lambda t: poolref.roi_align(t, boxes, 2, 1.0, 2), x)
    g = numpy.ones(y.shape)
    g[0] = numpy.nan
    grad = pullback(g)[0]
    assert not numpy.isnan(grad).any() and grad.sum() == 4.0  # box 1's four bins, nothing from box 0
    assert_matches(grad, ref.roi_align_backward_reference(g, x, boxes, (2, 2), 1.0, 2), rtol=0)
    x[0, 0, 0, 0] = numpy.nan  # the forward does read it: box 0's bins are NaN
    assert numpy.isnan(poolref.roi_align(x, boxes, 2, 1.0, 2)[0]).all()


def test_roi_align_zero_weight_corner_of_an_infinity_is_nan_like_the_kernels(xp):
    # One bin, one sample at (y, x) = (2.5, 1.5) of a 3 x 3 map: y is snapped to the last row, so
    # the lower corners repeat the upper ones with weight 0, and the infinity at (2, 2) is read with
    # weight 0.5 and with weight 0: the kernel's sum holds 0 * inf = NaN. (A matrix that merged the
    # two reads into one weight of 0.5 would give inf.) A sample whose four weights are positive
    # gives inf.
    from poolref._backend import to_numpy

    x = numpy.zeros((1, 1, 3, 3))
    x[0, 0, 2, 2] = numpy.inf
    snapped, interior = numpy.array([[0, 1.0, 2.0, 2.0, 3.0]]), numpy.array([[0, 1.0, 1.0, 2.0, 2.0]])
    for box, want in ((snapped, numpy.nan), (interior, numpy.inf)):
        y = to_numpy(poolref.roi_align(xp.asarray(x), xp.asarray(box), 1, 1.0, 1))
        assert_matches(y, ref.roi_align_reference(x, box, (1, 1), 1.0, 1), rtol=0)
        assert_matches(y, numpy.full((1, 1, 1, 1), want), rtol=0)


@pytest.mark.parametrize("C, size", [(1, 2), (3, 1)])
def test_the_gradient_reaching_the_op_is_never_modified(C, size):
    # One channel, or one bin: then the channels-last view of grad_y is contiguous, and a backward
    # that divided it by the sample count in place would change the gradient of y itself.
    boxes = numpy.array([[0, 0.5, 0.5, 4.5, 4.5]])
    for op, channels in ((lambda t: poolref.roi_align(t, boxes, size, 1.0, 2), C),
                         (lambda t: poolref.ps_roi_align(t, boxes, size, 1.0, 2), C * size * size)):
        x = poolref.Tensor(smooth_values((1, channels, 6, 6), 18), requires_grad=True)
        with poolref.Tape() as tape:
            y = op(x)
            loss = (y * 3.0).sum()
        grad_y, grad_x = tape.gradient(loss, [y, x])
        numpy.testing.assert_array_equal(grad_y, numpy.full(y.shape, 3.0))
        assert_matches(grad_x.sum(), 3.0 * y.size, rtol=1e-12)  # boxes inside: all mass arrives


def test_roi_pool_worked_example_and_rounding_half_away_from_zero():
    x = numpy.arange(16.0).reshape(1, 1, 4, 4)
    assert poolref.roi_pool(x, numpy.array([[0, 0, 0, 2, 2]]), 2)[0, 0].tolist() == [[5, 6], [9, 10]]
    # 0.5 -> 1 and 2.5 -> 3 (C's round), where round-half-to-even would give 0 and 2
    half = poolref.roi_pool(RAMP, numpy.array([[0, 0.5, 0.5, 2.5, 2.5]]), 2)
    assert half[0, 0].tolist() == [[22, 23], [32, 33]]
    assert half[0, 0].tolist() == poolref.roi_pool(RAMP, numpy.array([[0, 1, 1, 3, 3]]), 2)[0, 0].tolist()
    # -0.5 -> -1: the box starts one pixel before the map; its first bins are clipped
    assert poolref.roi_pool(RAMP, numpy.array([[0, -0.5, -0.5, 0.5, 0.5]]), 2)[0, 0].tolist() == [[0, 1], [10, 11]]


def test_roi_pool_empty_bins_are_zero_and_pass_no_gradient():
    x = smooth_values((1, 2, 5, 5), 1)
    outside = numpy.array([[0, 20.0, 20.0, 30.0, 30.0]])
    y, pullback = vjp(lambda t: poolref.roi_pool(t, outside, 2), x)
    assert numpy.all(y == 0) and numpy.all(pullback(numpy.ones_like(y))[0] == 0)


@pytest.mark.parametrize("convention, winner", [("torchvision", (0, 0)), ("onnx", (1, 1))])
def test_roi_pool_ties(convention, winner):
    x = numpy.full((1, 1, 2, 2), 3.0)
    _, pullback = vjp(lambda t: poolref.roi_pool(t, numpy.array([[0, 0, 0, 1, 1]]), 1, convention=convention), x)
    grad = pullback(numpy.ones((1, 1, 1, 1)))[0][0, 0]
    assert grad[winner] == 1 and grad.sum() == 1


def test_roi_pool_nan_rules_differ_between_torchvision_and_onnx():
    box = numpy.array([[0, 0, 0, 1, 1]])
    last = numpy.array([[[[1.0, 2.0], [3.0, numpy.nan]]]])
    first = numpy.array([[[[numpy.nan, 2.0], [3.0, 1.0]]]])
    assert poolref.roi_pool(last, box, 1)[0, 0, 0, 0] == 3  # torchvision: a NaN is never taken
    assert numpy.isnan(poolref.roi_pool(last, box, 1, convention="onnx")[0, 0, 0, 0])  # ORT: the last one stays
    assert poolref.roi_pool(first, box, 1, convention="onnx")[0, 0, 0, 0] == 3  # ... an earlier one is replaced


def test_roi_pool_of_minus_infinity_is_minus_flt_max_without_gradient():
    x = numpy.full((1, 1, 3, 3), -numpy.inf)
    y, pullback = vjp(lambda t: poolref.roi_pool(t, numpy.array([[0, 0, 0, 2, 2]]), 1), x)
    assert y[0, 0, 0, 0] == -FLT_MAX and not pullback(numpy.ones_like(y))[0].any()


def test_ps_roi_pool_channel_layout_and_never_reads_the_last_row_and_column():
    x = numpy.arange(64.0).reshape(1, 4, 4, 4)
    assert poolref.ps_roi_pool(x, numpy.array([[0, 0, 0, 2, 2]]), 2)[0, 0].tolist() == [[0, 17], [36, 53]]
    # a box over the whole map: torchvision's forward clips the bins to [0, W - 1]
    x = smooth_values((1, 1, 4, 4), 2)
    whole = numpy.array([[0, 0, 0, 4, 4]])
    _, pullback = vjp(lambda t: poolref.ps_roi_pool(t, whole, 1), x)
    grad = pullback(numpy.ones((1, 1, 1, 1)))[0][0, 0]
    assert not grad[3].any() and not grad[:, 3].any() and grad[:3, :3] == pytest.approx(numpy.full((3, 3), 1 / 9))


def test_ps_roi_align_channel_layout_and_empty_grid_is_nan():
    x = numpy.arange(64.0).reshape(1, 4, 4, 4)
    assert poolref.ps_roi_align(x, numpy.array([[0, 0, 0, 2, 2]]), 2, 1.0, 1)[0, 0].tolist() == [[0, 17], [36, 53]]
    # a zero-size box with adaptive sampling has no samples: torchvision divides 0 by 0
    y = poolref.ps_roi_align(x, numpy.array([[0, 1, 1, 1, 1]]), 2)
    assert numpy.isnan(y).all()
    # with a fixed sampling ratio its samples coincide: every bin reads the point (0.5, 0.5)
    point = poolref.ps_roi_align(x, numpy.array([[0, 1, 1, 1, 1]]), 2, sampling_ratio=2)
    assert point[0, 0].tolist() == [[2.5, 18.5], [34.5, 50.5]]


def test_spatial_pyramid_pool_worked_examples_and_flatten_order():
    x = numpy.arange(16.0).reshape(1, 1, 4, 4)
    assert poolref.spatial_pyramid_pool2d(x, (1, 2)).tolist() == [[15, 5, 7, 13, 15]]
    assert poolref.spatial_pyramid_pool2d(x, (1, 2), "avg").tolist() == [[7.5, 2.5, 4.5, 10.5, 12.5]]
    x = smooth_values((2, 3, 7, 9), 3)
    y = poolref.spatial_pyramid_pool2d(x, (1, 2, 4))
    # each level is adaptive max pooling, channel-major: held to the adaptive loop reference (SPP is
    # built on poolref's adaptive pooling, so comparing with that op would compare it with itself)
    parts = [adaptive_ref.adaptive_max_pool_reference(x, (n, n))[0].reshape(2, -1) for n in (1, 2, 4)]
    assert y.shape == (2, 3 * 21) and numpy.array_equal(y, numpy.concatenate(parts, axis=1))
    assert poolref.spatial_pyramid_pool2d(x[0], (1, 2, 4)).shape == (3 * 21,)  # unbatched


@pytest.mark.parametrize("binning", ["adaptive", "sppnet"])
def test_spatial_pyramid_avg_keeps_a_nan_or_an_infinity_in_its_own_bins(binning):
    # Adaptive binning once summed each bin as a product with a dense 0/1 matrix: 0 * nan = nan, so
    # one NaN made every bin of every level NaN, and one NaN in the gradient every input element.
    x = numpy.arange(36.0).reshape(1, 1, 6, 6)
    x[0, 0, 0, 0], x[0, 0, 5, 5] = numpy.nan, numpy.inf
    y, pullback = vjp(lambda t: poolref.spatial_pyramid_pool2d(t, (1, 2, 3), "avg", binning=binning), x)
    assert_matches(y, ref.spatial_pyramid_pool_reference(x, (1, 2, 3), "avg", binning), rtol=1e-15)
    # level 1: NaN; level 2: NaN, two finite bins, inf; level 3: the same pattern on a 3 x 3 grid
    assert numpy.isnan(y[0, [0, 1, 5]]).all() and numpy.isinf(y[0, [4, 13]]).all()
    assert numpy.isfinite(y[0, [2, 3, 6, 7, 8, 9, 10, 11, 12]]).all()
    g = numpy.ones(y.shape)
    g[0, 13] = numpy.nan  # the last bin of level 3: the bottom-right 2 x 2 block
    grad = pullback(g)[0]
    assert numpy.isnan(grad[0, 0, 4:, 4:]).all() and numpy.isnan(grad).sum() == 4
    want = ref.spatial_pyramid_pool_backward_reference(g, x, (1, 2, 3), "avg", binning)
    assert_matches(grad, want, rtol=1e-15, what="gradient")


def test_spatial_pyramid_pool_sppnet_windows():
    # SPPnet's conv5 is 13 x 13 with levels {1, 2, 3, 6}: windows ceil(13/n), strides floor(13/n)
    x = smooth_values((1, 2, 13, 13), 4)
    y = poolref.spatial_pyramid_pool2d(x, (1, 2, 3, 6), binning="sppnet")
    assert y.shape == (1, 2 * 50)
    level6 = poolref.max_pool2d(x, 3, 2).reshape(1, -1)  # window ceil(13/6) = 3, stride 2
    assert numpy.array_equal(y[:, -72:], level6)
    assert_matches(y, ref.spatial_pyramid_pool_reference(x, (1, 2, 3, 6), "max", "sppnet"), rtol=0)
    with pytest.raises(ValueError, match="gives 6 windows, not n = 4"):
        poolref.spatial_pyramid_pool2d(numpy.zeros((1, 1, 7, 7)), (4,), binning="sppnet")


# ---------------------------------------------------------------------------------------------------
# Loop reference == vectorised, forward and backward
# ---------------------------------------------------------------------------------------------------
@given(region_cases(), st.booleans(), st.sampled_from(["avg", "max"]))
def test_roi_align_matches_loop_reference(case, aligned, mode):
    x, boxes, rois, size, scale, ratio = case
    kw = dict(mode=mode, convention="onnx" if mode == "max" else "torchvision")
    y, pullback = vjp(lambda t: poolref.roi_align(t, boxes, size, scale, ratio, aligned, **kw), x)
    assert_matches(y, ref.roi_align_reference(x, rois, size, scale, ratio, aligned, mode), rtol=1e-12, atol=1e-14)
    g = smooth_values(y.shape, 1)
    want = ref.roi_align_backward_reference(g, x, rois, size, scale, ratio, aligned, mode)
    assert_matches(pullback(g)[0], want, rtol=1e-12, atol=1e-14, what="gradient")


@given(region_cases(), st.sampled_from(["torchvision", "onnx"]), st.booleans(), st.integers(0, 2**32 - 1))
def test_roi_pool_matches_loop_reference(case, convention, ties, seed):
    x, boxes, rois, size, scale, _ = case
    if ties:  # few distinct values, and NaNs: the tie and NaN rules decide
        rng = numpy.random.default_rng(seed)
        x = rng.integers(0, 3, size=x.shape).astype(numpy.float64)
        x[rng.random(x.shape) < 0.1] = numpy.nan
    y, pullback = vjp(lambda t: poolref.roi_pool(t, boxes, size, scale, convention=convention), x)
    y_ref, argmax = ref.roi_pool_reference(x, rois, size, scale, convention)
    assert_matches(y, y_ref, rtol=0)
    g = smooth_values(y.shape, 2)
    assert_matches(pullback(g)[0], ref.roi_pool_backward_reference(g, argmax, rois, x.shape), rtol=1e-12, what="gradient")


@given(region_cases(ps=True))
def test_ps_roi_pool_matches_loop_reference(case):
    x, boxes, rois, size, scale, _ = case
    y, pullback = vjp(lambda t: poolref.ps_roi_pool(t, boxes, size, scale), x)
    assert_matches(y, ref.ps_roi_pool_reference(x, rois, size, scale), rtol=1e-12, atol=1e-14)
    g = smooth_values(y.shape, 3)
    want = ref.ps_roi_pool_backward_reference(g, x.shape, rois, size, scale)
    assert_matches(pullback(g)[0], want, rtol=1e-12, atol=1e-14, what="gradient")


@given(region_cases(ps=True))
def test_ps_roi_align_matches_loop_reference(case):
    x, boxes, rois, size, scale, ratio = case
    y, pullback = vjp(lambda t: poolref.ps_roi_align(t, boxes, size, scale, ratio), x)
    assert_matches(y, ref.ps_roi_align_reference(x, rois, size, scale, ratio), rtol=1e-12, atol=1e-14)
    g = smooth_values(y.shape, 4)
    want = ref.ps_roi_align_backward_reference(g, x.shape, rois, size, scale, ratio)
    assert_matches(pullback(g)[0], want, rtol=1e-12, atol=1e-14, what="gradient")


@given(st.data())
def test_spatial_pyramid_pool_matches_loop_reference(data):
    mode, binning = data.draw(st.sampled_from(["max", "avg"])), data.draw(st.sampled_from(["adaptive", "sppnet"]))
    levels = tuple(data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    low = max(levels) ** 2 if binning == "sppnet" else 1  # L >= n*n always satisfies L mod n <= L div n
    H, W = data.draw(st.integers(low, low + 5)), data.draw(st.integers(low, low + 5))
    x = distinct_values((data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)), H, W), data.draw(st.integers(0, 99)))
    y, pullback = vjp(lambda t: poolref.spatial_pyramid_pool2d(t, levels, mode, binning=binning), x)
    assert_matches(y, ref.spatial_pyramid_pool_reference(x, levels, mode, binning), rtol=1e-12)
    g = smooth_values(y.shape, 5)
    want = ref.spatial_pyramid_pool_backward_reference(g, x, levels, mode, binning)
    assert_matches(pullback(g)[0], want, rtol=1e-12, atol=1e-14, what="gradient")


# Boxes across the top-left corner (outside samples read pixel (0, 0) in RoI Align), inside, wholly
# outside and degenerate, for a (2, 6, 6, 7) map at scale 1
NONFINITE_ROIS = numpy.array([[0, -3.0, -2.0, 2.5, 3.0], [1, 1.0, 0.5, 6.5, 5.0], [0, 7.0, 8.0, 12.0, 11.0],
                              [1, 2.25, 2.0, 2.25, 4.0], [1, -1.5, 3.0, 4.0, 7.5]])
AVERAGING_OPS = {  # name: (op, forward reference, backward reference (g, x)); all linear in x
    "roi_align": (lambda t: poolref.roi_align(t, NONFINITE_ROIS, (2, 3), 1.0, -1),
                  lambda x: ref.roi_align_reference(x, NONFINITE_ROIS, (2, 3), 1.0, -1),
                  lambda g, x: ref.roi_align_backward_reference(g, x, NONFINITE_ROIS, (2, 3), 1.0, -1)),
    "roi_align_aligned": (lambda t: poolref.roi_align(t, NONFINITE_ROIS, 2, 1.0, 2, aligned=True),
                          lambda x: ref.roi_align_reference(x, NONFINITE_ROIS, (2, 2), 1.0, 2, True),
                          lambda g, x: ref.roi_align_backward_reference(g, x, NONFINITE_ROIS, (2, 2), 1.0, 2, True)),
    "ps_roi_align": (lambda t: poolref.ps_roi_align(t, NONFINITE_ROIS, (2, 3), 1.0, 2),
                     lambda x: ref.ps_roi_align_reference(x, NONFINITE_ROIS, (2, 3), 1.0, 2),
                     lambda g, x: ref.ps_roi_align_backward_reference(g, x.shape, NONFINITE_ROIS, (2, 3), 1.0, 2)),
    "spp_adaptive": (lambda t: poolref.spatial_pyramid_pool2d(t, (1, 2, 4), "avg"),
                     lambda x: ref.spatial_pyramid_pool_reference(x, (1, 2, 4), "avg"),
                     lambda g, x: ref.spatial_pyramid_pool_backward_reference(g, x, (1, 2, 4), "avg")),
    "spp_sppnet": (lambda t: poolref.spatial_pyramid_pool2d(t, (1, 2, 3), "avg", binning="sppnet"),
                   lambda x: ref.spatial_pyramid_pool_reference(x, (1, 2, 3), "avg", "sppnet"),
                   lambda g, x: ref.spatial_pyramid_pool_backward_reference(g, x, (1, 2, 3), "avg", "sppnet")),
}
TOLERANCE = {"float16": dict(rtol=2e-3, atol=2e-3), "float32": dict(rtol=1e-5, atol=1e-6)}
# SPPnet's binning runs avg_pool2d, whose window sums (poolref/ops/window.py: _window_sum and
# _window_sum_adjoint) add inf + (-inf) without silencing numpy: a RuntimeWarning, an error under
# pytest. A defect of window.py, reported to its owners; strict, so that the fix shows up here.
OPS_ON_NONFINITE = AVERAGING_OPS


@pytest.mark.parametrize("layout", ["contiguous", "float16", "float32", "transposed", "reversed", "sliced"])
@pytest.mark.parametrize("poisoned", ["x", "gradient", "both"])
@pytest.mark.parametrize("name", OPS_ON_NONFINITE)
def test_averaging_ops_match_loop_reference_on_nonfinite_values(name, poisoned, layout):
    # NaN, +inf and -inf in the input and/or the upstream gradient, alone and mixed in a bin; the
    # loops and the vectorised code must agree on every NaN, every signed infinity and every value
    op, forward, backward = AVERAGING_OPS[name]
    x = smooth_values((2, 6, 6, 7), 30)
    if poisoned != "gradient":
        x = plant_nonfinite(x, 31, fraction=0.1)
    x = layouts(x, layout)
    y, pullback = vjp(op, x)
    tol = TOLERANCE.get(layout, dict(rtol=1e-12, atol=1e-14))
    assert y.dtype == x.dtype
    assert_matches(y, forward(numpy.array(x)), **tol)
    g = smooth_values(y.shape, 32)
    if poisoned != "x":
        g = plant_nonfinite(g, 33)
    g = g.astype(x.dtype)
    assert_matches(pullback(g)[0], backward(g, numpy.array(x)), **tol, what="gradient")


@pytest.mark.parametrize("binning", ["adaptive", "sppnet"])
def test_spatial_pyramid_avg_unbatched_matches_loop_reference_on_nonfinite_values(binning):
    x = plant_nonfinite(smooth_values((1, 3, 7, 6), 34), 35)
    fn = lambda t: poolref.spatial_pyramid_pool2d(t, (1, 2, 3), "avg", binning=binning)  # noqa: E731
    y, pullback = vjp(fn, x[0])
    assert_matches(y, ref.spatial_pyramid_pool_reference(x, (1, 2, 3), "avg", binning)[0], rtol=1e-12)
    g = plant_nonfinite(smooth_values(y.shape, 36), 37)
    want = ref.spatial_pyramid_pool_backward_reference(g[None], x, (1, 2, 3), "avg", binning)[0]
    assert_matches(pullback(g)[0], want, rtol=1e-12, atol=1e-14, what="gradient")


@pytest.mark.parametrize("name", AVERAGING_OPS)
def test_float32_is_float64_to_rounding_from_1e_minus_30_to_1e30(name):
    # averages of bilinear samples: no overflow or underflow at any magnitude the float32 inputs
    # hold. (Within a factor 4 g_h g_w of FLT_MAX the sum before the division by the sample count
    # overflows, as in torchvision's kernel: outside this range.)
    op = AVERAGING_OPS[name][0]
    base = smooth_values((2, 6, 6, 7), 38)
    for v in (1e-30, 1e-20, 1e-10, 1e10, 1e20, 1e30):
        x = (base * v).astype(numpy.float32)
        y, pullback = vjp(op, x)
        y64, pullback64 = vjp(op, x.astype(numpy.float64))
        assert_matches(y, y64.astype(numpy.float32), rtol=2e-6, atol=float(numpy.abs(x).max()) * 1e-6, what=f"output at {v}")
        g = smooth_values(y.shape, 39).astype(numpy.float32)
        want = pullback64(g.astype(numpy.float64))[0].astype(numpy.float32)
        assert_matches(pullback(g)[0], want, rtol=2e-6, atol=1e-6, what=f"gradient at {v}")


# ---------------------------------------------------------------------------------------------------
# Gradients: gradcheck (float64) and the adjoint test for the ops linear in x
# ---------------------------------------------------------------------------------------------------
@settings(max_examples=10)
@given(region_cases(max_size=5, positive=True, quarter=False), st.booleans())
def test_gradcheck_roi_align(case, aligned):
    x, boxes, rois, size, scale, ratio = case
    x = x[:, :1]
    assert gradcheck(lambda t: poolref.roi_align(t, boxes, size, scale, ratio, aligned), x)
    assert adjoint_test(lambda t: poolref.roi_align(t, boxes, size, scale, ratio, aligned), x)
    # max mode: positive values and box corners off the quarter grid, so that no two weighted corners
    # tie and a step of eps cannot change the winner
    assert gradcheck(lambda t: poolref.roi_align(t, boxes, size, scale, ratio, aligned, mode="max", convention="onnx"), x)


@settings(max_examples=10)
@given(region_cases(max_size=5, distinct=True))
def test_gradcheck_roi_pool(case):
    x, boxes, rois, size, scale, _ = case
    x = x[:, :1]
    assert gradcheck(lambda t: poolref.roi_pool(t, boxes, size, scale), x, rtol=1e-6)
    assert gradcheck(lambda t: poolref.roi_pool(t, boxes, size, scale, convention="onnx"), x, rtol=1e-6)


@settings(max_examples=10)
@given(region_cases(ps=True, max_size=4))
def test_gradcheck_and_adjoint_ps_ops(case):
    x, boxes, rois, size, scale, ratio = case
    assert gradcheck(lambda t: poolref.ps_roi_pool(t, boxes, size, scale), x)
    assert adjoint_test(lambda t: poolref.ps_roi_pool(t, boxes, size, scale), x)
    ratio = ratio if ratio > 0 else 1  # a degenerate box under adaptive sampling outputs NaN
    assert gradcheck(lambda t: poolref.ps_roi_align(t, boxes, size, scale, ratio), x)
    assert adjoint_test(lambda t: poolref.ps_roi_align(t, boxes, size, scale, ratio), x)


@settings(max_examples=10)
@given(st.sampled_from(["max", "avg"]), st.sampled_from(["adaptive", "sppnet"]))
def test_gradcheck_spatial_pyramid_pool(mode, binning):
    x = distinct_values((1, 2, 5, 6), 7)
    assert gradcheck(lambda t: poolref.spatial_pyramid_pool2d(t, (1, 2), mode, binning=binning), x)
    if mode == "avg":
        assert adjoint_test(lambda t: poolref.spatial_pyramid_pool2d(t, (1, 2), mode, binning=binning), x)


# ---------------------------------------------------------------------------------------------------
# Laws: conservation of gradient mass, constants, shapes
# ---------------------------------------------------------------------------------------------------
def inside_sample_mass(rois, size, scale, ratio, aligned, H, W, C):
    """(K, C, ph, pw) fraction of each bin's gradient that reaches the input: inside samples / count."""
    mass = numpy.zeros((len(rois), C) + size)
    for k, roi in enumerate(rois):
        sh, sw, bh, bw, gh, gw, _, _ = ref.align_geometry(roi, size, scale, ratio, 0.5 if aligned else 0.0, not aligned)
        for i in range(size[0]):
            for j in range(size[1]):
                points = ref.bin_samples(sh, sw, bh, bw, gh, gw, i, j)
                mass[k, :, i, j] = sum(1 for py, px in points if ref.bilinear_corners(py, px, H, W)) / max(gh * gw, 1)
    return mass


@given(region_cases(), st.booleans())
def test_roi_align_conserves_gradient_mass(case, aligned):
    x, boxes, rois, size, scale, ratio = case
    mass = inside_sample_mass(rois, size, scale, ratio, aligned, *x.shape[2:], x.shape[1])
    assert_conserves_gradient(poolref.roi_align, x, window_mass=mass, boxes=boxes, output_size=size,
                              spatial_scale=scale, sampling_ratio=ratio, aligned=aligned)


@given(region_cases(inside=True, ordered=True), st.booleans())
def test_roi_align_of_boxes_inside_the_map(case, aligned):
    x, boxes, rois, size, scale, ratio = case
    if aligned and ratio <= 0:  # an aligned box of zero size has no samples under adaptive sampling
        boxes = rois = rois[(rois[:, 3] > rois[:, 1]) & (rois[:, 4] > rois[:, 2])]
    # every sample lies inside: each bin hands on its whole gradient, and a constant map stays constant
    assert_conserves_gradient(poolref.roi_align, x, boxes=boxes, output_size=size, spatial_scale=scale,
                              sampling_ratio=ratio, aligned=aligned)
    y = poolref.roi_align(numpy.full(x.shape, 2.5), boxes, size, scale, ratio, aligned)
    numpy.testing.assert_allclose(y, 2.5, rtol=1e-12)


@given(region_cases(distinct=True), st.sampled_from(["torchvision", "onnx"]))
def test_roi_pool_conserves_gradient_over_non_empty_bins(case, convention):
    x, boxes, rois, size, scale, _ = case
    _, argmax = ref.roi_pool_reference(x, rois, size, scale, convention)
    mass = (argmax >= 0).astype(float)
    assert_conserves_gradient(poolref.roi_pool, x, window_mass=mass, boxes=boxes, output_size=size,
                              spatial_scale=scale, convention=convention)


@given(region_cases(ps=True))
def test_ps_roi_pool_conserves_gradient_over_non_empty_bins(case):
    x, boxes, rois, size, scale, _ = case
    H, W = x.shape[2:]
    c_out = x.shape[1] // (size[0] * size[1])
    mass = numpy.zeros((len(rois), c_out) + size)
    for k, roi in enumerate(rois):
        rows, cols = ref.roi_pool_bins(roi, size, scale, H, W, end_inclusive=False, clip=(H - 1, W - 1))
        for i, (h0, h1) in enumerate(rows):
            for j, (w0, w1) in enumerate(cols):
                mass[k, :, i, j] = float(h1 > h0 and w1 > w0)
    assert_conserves_gradient(poolref.ps_roi_pool, x, window_mass=mass, boxes=boxes, output_size=size, spatial_scale=scale)


@given(st.sampled_from(["max", "avg"]), st.sampled_from([(1,), (1, 2, 4), (3, 1)]))
def test_spatial_pyramid_pool_conserves_gradient_per_level(mode, levels):
    x = distinct_values((2, 3, 8, 8), 8)
    assert_conserves_gradient(poolref.spatial_pyramid_pool2d, x, levels=levels, mode=mode)


@given(region_cases(), st.sampled_from([poolref.roi_align, poolref.roi_pool]))
def test_output_shape_and_dtype(case, op):
    x, boxes, rois, size, scale, _ = case
    for dtype in (numpy.float16, numpy.float32):
        y, pullback = vjp(lambda t: op(t, boxes, size, scale), x.astype(dtype))
        assert y.shape == (len(rois), x.shape[1]) + size and y.dtype == dtype
        assert pullback(numpy.ones(y.shape, dtype))[0].dtype == dtype


def test_float32_close_to_float64():
    x = smooth_values((2, 8, 9, 11), 9)
    rois = make_rois(numpy.random.default_rng(0), 6, 2, 9, 11, 0.5)
    for op, kw in [(poolref.roi_align, dict(sampling_ratio=2)), (poolref.ps_roi_align, dict(sampling_ratio=-1)),
                   (poolref.roi_align, dict(mode="max", convention="onnx", aligned=True))]:
        y64 = op(x, rois, 2, 0.5, **kw)
        y32 = op(x.astype(numpy.float32), rois, 2, 0.5, **kw)
        assert_matches(y32, y64, rtol=1e-5, atol=1e-5)


def test_no_boxes():
    x = smooth_values((2, 4, 5, 5), 10)
    for op in (poolref.roi_align, poolref.roi_pool, poolref.ps_roi_pool, poolref.ps_roi_align):
        for boxes in (numpy.zeros((0, 5)), [numpy.zeros((0, 4)), numpy.zeros((0, 4))], []):
            y, pullback = vjp(lambda t: op(t, boxes, 2), x)
            assert y.shape[0] == 0 and y.shape[2:] == (2, 2)
            assert pullback(numpy.zeros(y.shape))[0].shape == x.shape


# ---------------------------------------------------------------------------------------------------
# ONNX Runtime: RoiAlign (both coordinate modes, avg and max) and MaxRoiPool, outputs
# ---------------------------------------------------------------------------------------------------
def _onnx_session(node, inputs, dtype):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    elem = TensorProto.FLOAT if dtype == numpy.float32 else TensorProto.DOUBLE
    types = {"batch_indices": TensorProto.INT64}
    ranks = {"X": 4, "rois": 2, "batch_indices": 1}
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, types.get(n, elem), [None] * ranks[n]) for n in inputs],
        [helper.make_tensor_value_info("Y", elem, [None] * 4)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT warns about its max mode on every session
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@settings(max_examples=25)
@given(region_cases(ordered=True), st.booleans(), st.sampled_from(["avg", "max"]), st.sampled_from([numpy.float32, numpy.float64]))
def test_roi_align_matches_onnxruntime(case, aligned, mode, dtype):
    # ordered boxes: ONNX Runtime fails ("Integer overflow") on a box inverted along one axis only
    onnx = pytest.importorskip("onnx")
    x, boxes, rois, (ph, pw), scale, ratio = case
    ratio = max(ratio, 0)  # ONNX's sampling_ratio is >= 0 (0: adaptive)
    node = onnx.helper.make_node(
        "RoiAlign", ["X", "rois", "batch_indices"], ["Y"], mode=mode, output_height=ph, output_width=pw,
        sampling_ratio=ratio, spatial_scale=scale, coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
    )
    session = _onnx_session(node, ["X", "rois", "batch_indices"], dtype)
    xs = x.astype(dtype)
    got = session.run(None, {"X": xs, "rois": rois[:, 1:].astype(dtype), "batch_indices": rois[:, 0].astype(numpy.int64)})[0]
    ours = poolref.roi_align(xs, rois.astype(dtype), (ph, pw), scale, ratio, aligned, mode=mode, convention="onnx")
    tol = 1e-5 if dtype == numpy.float32 else 1e-12
    assert_matches(ours, got, rtol=tol, atol=tol)


@settings(max_examples=25)
@given(region_cases(), st.booleans())
def test_roi_pool_matches_onnxruntime_max_roi_pool(case, nans):
    x, boxes, rois, (ph, pw), scale, _ = case
    onnx = pytest.importorskip("onnx")
    node = onnx.helper.make_node("MaxRoiPool", ["X", "rois"], ["Y"], pooled_shape=[ph, pw], spatial_scale=scale)
    session = _onnx_session(node, ["X", "rois"], numpy.float32)  # ONNX Runtime registers float only
    xs = x.astype(numpy.float32)
    if nans:
        xs[numpy.random.default_rng(0).random(xs.shape) < 0.2] = numpy.nan
    r32 = rois.astype(numpy.float32)
    got = session.run(None, {"X": xs, "rois": r32})[0]
    assert_matches(poolref.roi_pool(xs, r32, (ph, pw), scale, convention="onnx"), got, rtol=0)
    if not nans:  # the same bins and values: the conventions differ only in ties (indices) and NaN
        assert_matches(poolref.roi_pool(xs, r32, (ph, pw), scale), got, rtol=0)


def test_spatial_pyramid_pool_matches_torch_adaptive_pooling():
    torch = torch_or_skip()
    x = smooth_values((2, 3, 11, 7), 11)
    for mode in ("max", "avg"):
        xt = to_torch(x, requires_grad=True)
        yt = spatial_pyramid_by_pooling(torch, xt, (1, 2, 4), mode)
        g = smooth_values(tuple(yt.shape), 12)
        yt.backward(to_torch(g))
        y, pullback = vjp(lambda t: poolref.spatial_pyramid_pool2d(t, (1, 2, 4), mode), x)
        assert_matches(y, yt.detach().numpy(), rtol=1e-12)
        assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=1e-12, atol=1e-14, what="gradient")


@pytest.mark.parametrize("call", [
    lambda x, b: poolref.roi_align(x, b, 2, 0.5, 2),
    lambda x, b: poolref.roi_align(x, b, 3, 0.5, -1, True),
    lambda x, b: poolref.roi_align(x, b, 2, 0.5, 0, True, mode="max", convention="onnx"),
    lambda x, b: poolref.roi_pool(x, b, 2, 0.5),
    lambda x, b: poolref.ps_roi_pool(x, b, 2, 0.5),
    lambda x, b: poolref.ps_roi_align(x, b, 2, 0.5, 2),
    lambda x, b: poolref.spatial_pyramid_pool2d(x, (1, 2, 3)),
])
def test_numpy_and_cupy_agree(xp, call):
    from poolref._backend import to_numpy

    x = smooth_values((2, 8, 9, 11), 16)
    boxes = make_rois(numpy.random.default_rng(2), 6, 2, 9, 11, 0.5)
    y, pullback = vjp(lambda t: call(t, boxes), x)
    g = smooth_values(y.shape, 17)
    y_xp, pullback_xp = vjp(lambda t: call(t, xp.asarray(boxes)), xp.asarray(x))
    assert_matches(to_numpy(y_xp), y, rtol=1e-12, atol=1e-13)
    assert_matches(to_numpy(pullback_xp(xp.asarray(g))[0]), pullback(g)[0], rtol=1e-12, atol=1e-13, what="gradient")


# ---------------------------------------------------------------------------------------------------
# Tensors, the tape, inputs never modified
# ---------------------------------------------------------------------------------------------------
def test_tensors_in_tensors_out_and_recorded_on_tape():
    x = poolref.Tensor(smooth_values((1, 4, 6, 6), 13), requires_grad=True)
    boxes = poolref.Tensor(numpy.array([[0, 0.5, 1.0, 4.0, 5.5]]))
    with poolref.Tape() as tape:
        a = poolref.roi_align(x, boxes, 2)
        b = poolref.ps_roi_pool(x, boxes, 2)
        c = poolref.spatial_pyramid_pool2d(x, (1, 2))
        loss = a.sum() + b.sum() + c.sum()
    assert all(isinstance(t, poolref.Tensor) for t in (a, b, c))
    text = str(tape)
    assert "roi_align" in text and "ps_roi_pool" in text and "concat" in text
    assert tape.gradient(loss, x).shape == x.shape


@pytest.mark.parametrize("call", [
    lambda x, b: poolref.roi_align(x, b, 2, 0.5, 2),
    lambda x, b: poolref.roi_align(x, b, 2, 0.5, -1, True, mode="max", convention="onnx"),
    lambda x, b: poolref.roi_pool(x, b, 2, 0.5),
    lambda x, b: poolref.ps_roi_pool(x, b, 2, 0.5),
    lambda x, b: poolref.ps_roi_align(x, b, 2, 0.5),
    lambda x, b: poolref.spatial_pyramid_pool2d(x, (1, 2)),
])
def test_inputs_are_never_modified(call):
    x = smooth_values((2, 4, 7, 7), 14)
    boxes = make_rois(numpy.random.default_rng(1), 5, 2, 7, 7, 0.5)
    x0, b0 = x.copy(), boxes.copy()
    y, pullback = vjp(lambda t: call(t, boxes), x)
    g = numpy.ones_like(y)
    pullback(g)
    numpy.testing.assert_array_equal(x, x0)
    numpy.testing.assert_array_equal(boxes, b0)
    numpy.testing.assert_array_equal(g, numpy.ones_like(y))


# ---------------------------------------------------------------------------------------------------
# Bad input: ValueError or TypeError naming the argument and its value
# ---------------------------------------------------------------------------------------------------
X = numpy.zeros((2, 4, 5, 5))
B = numpy.array([[0, 0, 0, 2, 2]], dtype=float)


@pytest.mark.parametrize("call, error, words", [
    (lambda: poolref.roi_align(X, numpy.zeros((3, 4)), 2), ValueError, "got boxes with shape (3, 4)"),
    (lambda: poolref.roi_align(X, [numpy.zeros((3, 5))], 2), ValueError, "shapes [(3, 5)]"),
    (lambda: poolref.roi_align(X, numpy.array([[0, numpy.nan, 0, 1, 1]]), 2), ValueError, "must be finite, got box 0"),
    (lambda: poolref.roi_align(X, numpy.array([[2, 0, 0, 1, 1]]), 2), ValueError, "got batch index 2.0 in box 0"),
    (lambda: poolref.roi_align(X, numpy.array([[0.5, 0, 0, 1, 1]]), 2), ValueError, "got batch index 0.5"),
    (lambda: poolref.roi_align(X, [B[:, 1:]] * 3, 2), ValueError, "got batch index 2.0 in box 2"),
    (lambda: poolref.roi_align(X, B.astype(bool), 2), TypeError, "dtype bool"),
    (lambda: poolref.roi_align(X, B, 0), ValueError, "output_size=0"),
    (lambda: poolref.roi_align(X, B, (2, 2, 2)), TypeError, "output_size=(2, 2, 2)"),
    (lambda: poolref.roi_align(X, B, 2, 0.0), ValueError, "spatial_scale=0.0"),
    (lambda: poolref.roi_align(X, B, 2, float("nan")), ValueError, "spatial_scale=nan"),
    (lambda: poolref.roi_align(X, B, 2, 1.0, 1.5), TypeError, "sampling_ratio=1.5"),
    (lambda: poolref.roi_align(X, B, 2, aligned="yes"), TypeError, "aligned='yes'"),
    (lambda: poolref.roi_align(X, B, 2, mode="min"), ValueError, "mode='min'"),
    (lambda: poolref.roi_align(X, B, 2, mode="max"), ValueError, "convention='torchvision'"),
    (lambda: poolref.roi_align(X, B, 2, convention="tf"), ValueError, "convention='tf'"),
    (lambda: poolref.roi_align(X[0], B, 2), ValueError, "got x with shape (4, 5, 5)"),
    (lambda: poolref.roi_align(X.astype(numpy.int32), B, 2), TypeError, "dtype int32"),
    (lambda: poolref.roi_pool(X, B, -1), ValueError, "output_size=-1"),
    (lambda: poolref.roi_pool(X, B, 2, convention="caffe"), ValueError, "convention='caffe'"),
    (lambda: poolref.roi_pool(X, numpy.array([[0, 0, 0, 3e9, 1]]), 2), ValueError, "int32 range"),
    (lambda: poolref.ps_roi_pool(X, B, 3), ValueError, "got x with C=4"),
    (lambda: poolref.ps_roi_align(X, B, (1, 3)), ValueError, "multiple of ph * pw = 3"),
    (lambda: poolref.spatial_pyramid_pool2d(X, (1, 0)), ValueError, "levels=(1, 0)"),
    (lambda: poolref.spatial_pyramid_pool2d(X, ()), ValueError, "levels=()"),
    (lambda: poolref.spatial_pyramid_pool2d(X, (1,), "sum"), ValueError, "mode='sum'"),
    (lambda: poolref.spatial_pyramid_pool2d(X, (1,), binning="caffe"), ValueError, "binning='caffe'"),
    (lambda: poolref.spatial_pyramid_pool2d(X.astype(int), (1,), "avg"), TypeError, "dtype int64"),
    (lambda: poolref.spatial_pyramid_pool2d(X, (6,), binning="sppnet"), ValueError, "L = 5"),
])
def test_bad_input_is_refused_with_a_clear_message(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_inverted_and_outside_boxes_are_accepted():
    # torchvision validates shapes only: x2 < x1 and boxes off the map are valid input
    x = smooth_values((1, 4, 5, 5), 15)
    boxes = numpy.array([[0, 4, 4, 1, 1], [0, -9, -9, -7, -7], [0, 2, 2, 2, 2]], dtype=float)
    for op in (poolref.roi_align, poolref.roi_pool, poolref.ps_roi_pool):
        assert numpy.isfinite(op(x, boxes, 2)).all()
    assert math.isnan(poolref.ps_roi_align(x, boxes, 2)[2, 0, 0, 0])  # 0 / 0, as torchvision


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("binning", ["adaptive", "sppnet"])
def test_spatial_pyramid_pool_of_an_empty_batch(mode, binning):
    # the flattening used reshape(N, -1), which an empty batch cannot resolve (a numpy error leaked
    # out, found by the oracle's empty input class)
    x = numpy.zeros((0, 3, 8, 8))
    y, pullback = vjp(lambda t: poolref.spatial_pyramid_pool2d(t, (1, 2, 4), mode=mode, binning=binning), x)
    assert y.shape == (0, 3 * (1 + 4 + 16))
    assert pullback(numpy.zeros(y.shape))[0].shape == x.shape


@pytest.mark.parametrize("op", ["roi_pool", "roi_align", "ps_roi_pool", "ps_roi_align", "deform_roi_pool"])
def test_region_ops_of_zero_channels(op):
    # x with no channels (C = 0 is a multiple of ph * pw, so the position-sensitive ops take it too):
    # an empty result and an empty gradient; ps_roi_align's reshape(-1, 0) leaked numpy's "cannot
    # reshape array of size 0" (found by a fuzz of the public API)
    x = numpy.zeros((1, 0, 6, 6))
    boxes = numpy.array([[0, 1, 1, 3, 3.0], [0, 0, 0, 5, 4]])
    extra = {"offset": None} if op == "deform_roi_pool" else {}
    y, pullback = vjp(lambda t: getattr(poolref, op)(t, boxes, output_size=2, **extra), x)
    assert y.shape == (2, 0, 2, 2)
    assert pullback(numpy.zeros(y.shape))[0].shape == x.shape
