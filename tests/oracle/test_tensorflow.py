"""The TensorFlow adapter: every mapping passes, a planted bug is caught, and the differences the
adapter declares (and the atlas shows) are what TensorFlow really does."""

import numpy
import pytest

import poolref
from poolref import oracle

tf = pytest.importorskip("tensorflow")


def _nhwc(x):
    return tf.constant(numpy.moveaxis(x, 1, -1))


def test_every_tensorflow_mapping_passes():
    report = oracle.check("tensorflow", cases=2, seed=3)
    assert report.passed, report.table()
    calls = {r.call for r in report.results}
    assert {"tf.nn.max_pool_with_argmax(include_batch_in_index=True)", "tf.image.crop_and_resize",
            "tf.nn.fractional_max_pool (ratio 2)", "tf.pad + tf.nn.conv2d (+ bias)"} <= calls


def test_a_planted_gradient_bug_is_caught(monkeypatch):
    real = tf.nn.avg_pool2d

    def avg_pool2d(input, ksize, strides, padding, **kwargs):
        @tf.custom_gradient
        def scaled(t):
            y = real(t, ksize, strides, padding, **kwargs)

            def backward(g):
                with tf.GradientTape() as tape:
                    tape.watch(t)
                    z = real(t, ksize, strides, padding, **kwargs)
                return 4.0 * tape.gradient(z, t, output_gradients=g)  # scaled by the kernel size

            return y, backward

        return scaled(input)

    monkeypatch.setattr(tf.nn, "avg_pool2d", avg_pool2d)
    report = oracle.check("tensorflow", ops=["avg_pool2d"], cases=3)
    failed = [r for r in report.results if r.failures]
    assert [r.call for r in failed] == ["tf.nn.avg_pool2d"]  # tf.nn.pool (dilated) is untouched
    failure = failed[0].failures[0]
    assert failure.problems == [p for p in failure.problems if p.startswith("gradient to x")]
    with pytest.raises(AssertionError, match="gradient to x"):
        exec(compile(failure.reproducer, "<reproducer>", "exec"), {})


# --------------------------------------------------------------------------------------------------
# What TensorFlow does, as the adapter declares it (TensorFlow 2.21, CPU)
# --------------------------------------------------------------------------------------------------
def test_max_pooling_ignores_nan():
    x = numpy.array([[[[1.0, numpy.nan, 3.0], [numpy.nan, 2.0, 0.0]]]])
    assert tf.nn.max_pool2d(_nhwc(x), (2, 3), 1, "VALID").numpy().item() == 3.0
    only_nan = numpy.full((1, 1, 2, 2), numpy.nan)
    assert tf.nn.max_pool2d(_nhwc(only_nan), 2, 1, "VALID").numpy().item() == -numpy.finfo(numpy.float64).max


def test_fractional_max_pooling_ignores_nan_and_routes_like_argmax_or_raises():
    # ratio 2 on even sizes: windows (0, 1) and (2, 3) of each row, as max_pool2d(2, 2)
    def fractional(x, g):
        x_t = _nhwc(x)
        with tf.GradientTape() as tape:
            tape.watch(x_t)
            y_t = tf.nn.fractional_max_pool(x_t, [1.0, 2.0, 2.0, 1.0], pseudo_random=True, overlapping=False, seed=1)[0]
        grad = tape.gradient(y_t, x_t, output_gradients=_nhwc(g))
        return numpy.moveaxis(y_t.numpy(), -1, 1), numpy.moveaxis(grad.numpy(), -1, 1)

    x = numpy.array([[[[1.0, 5.0], [numpy.nan, 2.0]]]], dtype=numpy.float32)  # the NaN is not first
    y, grad = fractional(x, numpy.ones((1, 1, 1, 1), dtype=numpy.float32))
    assert y.item() == 5.0 and grad.tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]
    numpy.testing.assert_array_equal(y, poolref.max_pool2d(x, 2, 2, convention="tensorflow"))
    # a NaN first in its window: the gradient's re-run forward keeps it, unlike the forward
    first = numpy.array([[[[numpy.nan, 5.0], [1.0, 2.0]]]], dtype=numpy.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match="tensor_out_dup is not the same as tensor_out"):
        fractional(first, numpy.ones((1, 1, 1, 1), dtype=numpy.float32))
    # and the oracle's model of it holds on random NaN and infinite cases (it failed them before)
    report = oracle.check("tensorflow", ops=["fractional_max_pool2d"], cases=100, seed=4)
    assert report.passed, report.table()


def test_same_averages_never_count_padding():
    x = numpy.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = numpy.moveaxis(tf.nn.avg_pool2d(_nhwc(x), 2, 1, "SAME").numpy(), -1, 1)
    assert y[0, 0, -1, -1] == 9.0  # one input cell, three padding cells: divided by 1
    numpy.testing.assert_array_equal(y, poolref.avg_pool2d(x, 2, 1, "same", convention="tensorflow"))
    assert poolref.avg_pool2d(x, 2, 1, "same", count_include_pad=True, convention="onnx")[0, 0, -1, -1] == 9.0 / 4


def test_crop_and_resize_is_aligned_roi_align_of_converted_boxes():
    from poolref.oracle.layouts import crop_boxes_to_rois

    x = numpy.random.default_rng(0).normal(size=(1, 2, 6, 7)).astype(numpy.float32)
    crop_boxes = numpy.array([[0.1, 0.2, 0.9, 0.7]], dtype=numpy.float32)
    y = numpy.moveaxis(tf.image.crop_and_resize(_nhwc(x), crop_boxes, [0], (3, 4)).numpy(), -1, 1)
    rois = crop_boxes_to_rois(crop_boxes, [0], (3, 4), 6, 7)
    numpy.testing.assert_allclose(y, poolref.roi_align(x, rois, (3, 4), 1.0, 1, True), rtol=1e-5, atol=1e-5)


def test_every_mapping_has_a_reproducer_that_runs(reproducers_run):
    assert reproducers_run("tensorflow") == len(oracle.load_adapter("tensorflow").MAPPINGS)


# --------------------------------------------------------------------------------------------------
# The ops TensorFlow lacks, checked against compositions of its own ops
# --------------------------------------------------------------------------------------------------
from conftest import assert_agrees_but_for_poolref_defects, assert_every_public_op_is_a_row  # noqa: E402

TF_COMPOSED = ["stochastic_pool2d", "mixed_pool2d", "gem_pool", "soft_pool2d", "lse_pool", "bilinear_pool"]


def test_every_public_op_is_checked_or_says_why():
    assert_every_public_op_is_a_row("tensorflow")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # poolref's own warnings on non-finite input (conftest)
def test_the_compositions_agree_with_poolref_but_for_its_listed_defects():
    report = oracle.check("tensorflow", ops=TF_COMPOSED, cases=14, seed=1)
    assert [r.op for r in report.results] == TF_COMPOSED and {r.kind for r in report.results} == {"composition"}
    assert_agrees_but_for_poolref_defects(report)


def test_explicit_max_pool_padding_reads_as_the_lowest_float_not_minus_infinity():
    x = tf.constant(numpy.full((1, 1, 2, 1), -numpy.inf))  # NHWC: one column of -inf
    y = tf.nn.max_pool2d(x, [1, 2], [1, 2], padding=[[0, 0], [0, 0], [1, 1], [0, 0]]).numpy()
    assert y.ravel().tolist() == [-numpy.finfo(numpy.float64).max] * 2


def test_every_composition_has_a_reproducer_that_runs(reproducers_run):
    composed = [m for m in oracle.load_adapter("tensorflow").MAPPINGS if m.kind == "composition"]
    assert composed and reproducers_run("tensorflow", kind="composition") == len(composed)


# --------------------------------------------------------------------------------------------------
# The adapter's reasons (skips, refusals, known defects), each held to TensorFlow 2.21 on the CPU
# --------------------------------------------------------------------------------------------------
import os  # noqa: E402

NAN, INF = numpy.nan, numpy.inf
#: float32 convolutions run on oneDNN unless TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's default on x86)
ONEDNN = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
needs_onednn = pytest.mark.skipif(not ONEDNN, reason="the float32 behaviour stated is oneDNN's (TF_ENABLE_ONEDNN_OPTS=0)")


def _taped(function, x, upstream=None):
    """(output, gradient) of ``function`` at the NHWC array ``x`` (the gradient of sum(y) without ``upstream``)."""
    x_t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        y_t = function(x_t)
    grad = tape.gradient(y_t, x_t, output_gradients=None if upstream is None else tf.constant(upstream))
    return y_t.numpy(), None if grad is None else grad.numpy()


def test_tf_nn_pool_takes_dilations_with_valid_padding_and_stride_one_only():
    x = tf.constant(numpy.arange(49.0).reshape(1, 7, 7, 1))
    y = tf.nn.pool(x, [2, 2], "MAX", strides=[1, 1], padding="VALID", dilations=[2, 2]).numpy()
    numpy.testing.assert_array_equal(numpy.moveaxis(y, -1, 1), poolref.max_pool2d(numpy.moveaxis(x.numpy(), -1, 1), 2, 1, dilation=2))
    for kind in ("MAX", "AVG"):
        with pytest.raises(ValueError, match="'SAME' padding is not implemented for `dilation_rate` > 1"):
            tf.nn.pool(x, [2, 2], kind, strides=[1, 1], padding="SAME", dilations=[2, 2])
        with pytest.raises(ValueError, match="`strides > 1` not supported in conjunction with `dilation_rate > 1`"):
            tf.nn.pool(x, [2, 2], kind, strides=[2, 2], padding="VALID", dilations=[2, 2])
    with pytest.raises(TypeError, match="dilations"):  # tf.nn.max_pool/avg_pool have no dilation at all
        tf.nn.max_pool2d(x, 2, 1, "VALID", dilations=2)


def test_only_max_pool1d_and_2d_take_explicit_padding_each_pad_smaller_than_the_window():
    x2, x3 = tf.constant(numpy.ones((1, 5, 5, 1))), tf.constant(numpy.ones((1, 4, 4, 4, 1), numpy.float32))
    explicit2, explicit3 = [[0, 0], [1, 1], [1, 1], [0, 0]], [[0, 0], [1, 1], [1, 1], [1, 1], [0, 0]]
    for call in (lambda: tf.nn.avg_pool2d(x2, 2, 1, explicit2), lambda: tf.nn.avg_pool1d(x2[0], 2, 1, explicit2[1:]),
                 lambda: tf.nn.max_pool3d(x3, 2, 1, explicit3), lambda: tf.nn.avg_pool3d(x3, 2, 1, explicit3),
                 lambda: tf.nn.max_pool_with_argmax(x2, 2, 1, explicit2)):
        with pytest.raises(TypeError, match="Expected string for argument 'padding'"):
            call()
    assert tf.nn.max_pool2d(x2, 2, 1, [[0, 0], [1, 0], [0, 0], [0, 0]]).shape == (1, 5, 4, 1)  # pad 1 < window 2
    assert tf.nn.max_pool1d(x2[0], 3, 1, [[0, 0], [0, 2], [0, 0]]).shape == (5, 5, 1)  # NWC; pad 2 < window 3
    with pytest.raises(tf.errors.InvalidArgumentError, match="Top padding 2 needs to be smaller than the window size 2"):
        tf.nn.max_pool2d(x2, 2, 1, [[0, 0], [2, 0], [0, 0], [0, 0]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="Right padding 3 needs to be smaller than the window size 3"):
        tf.nn.max_pool1d(x2[0], 3, 1, [[0, 0], [0, 3], [0, 0]])


@pytest.mark.parametrize("dtype", [numpy.float64, numpy.float16])
@pytest.mark.parametrize("pool", ["max_pool3d", "avg_pool3d"])
def test_3d_pools_are_float32_only_on_the_cpu(pool, dtype):
    x = tf.constant(numpy.ones((1, 4, 4, 4, 1), dtype))
    with pytest.raises((tf.errors.InvalidArgumentError, tf.errors.NotFoundError)):
        getattr(tf.nn, pool)(x, 2, 2, "VALID")
    assert getattr(tf.nn, pool)(tf.cast(x, tf.float32), 2, 2, "VALID").shape == (1, 2, 2, 2, 1)


def test_max_pool_with_argmax_and_fractional_max_pool_refuse_an_empty_batch():
    empty = tf.constant(numpy.ones((0, 4, 4, 1)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="tensor_in must not be empty"):
        tf.nn.max_pool_with_argmax(empty, 2, 2, "VALID")
    with pytest.raises(tf.errors.InvalidArgumentError, match="Pooling ratio is higher than input dimension size"):
        tf.nn.fractional_max_pool(empty, [1.0, 2.0, 2.0, 1.0], pseudo_random=True, seed=1)


@needs_onednn
def test_float32_conv2d_and_depthwise_conv2d_return_an_empty_batch_in_the_input_shape():
    def shapes(dtype):
        x = numpy.ones((0, 7, 8, 2), dtype)
        conv = tf.nn.conv2d(x, numpy.ones((3, 3, 2, 3), dtype), [1, 2, 2, 1], "VALID").shape
        depthwise = tf.nn.depthwise_conv2d(numpy.ones((0, 4, 7, 1), dtype), numpy.ones((1, 1, 1, 1), dtype), [1, 2, 2, 1], "VALID").shape
        return tuple(conv), tuple(depthwise)

    assert shapes(numpy.float32) == ((0, 7, 8, 2), (0, 4, 7, 1))  # the input's shape, channels included
    assert shapes(numpy.float64) == ((0, 3, 3, 3), (0, 2, 4, 1))
    # float64: the adapter's conv2d (tf.pad, VALID, + bias) runs with an empty batch, gradients included
    x, w, b = (tf.constant(numpy.ones(shape)) for shape in ((0, 5, 6, 2), (3, 3, 2, 3), (3,)))
    with tf.GradientTape() as tape:
        tape.watch([x, w, b])
        y = tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), w, [1, 2, 2, 1], "VALID") + b
    grads = tape.gradient(y, [x, w, b], output_gradients=tf.zeros(y.shape, tf.float64))
    assert y.shape == (0, 3, 3, 3) and [g.shape for g in grads] == [(0, 5, 6, 2), (3, 3, 2, 3), (3,)]
    assert not grads[1].numpy().any() and not grads[2].numpy().any()
    with pytest.raises(tf.errors.InvalidArgumentError, match="paddings must be less than the dimension size: 0, 0 not less than 0"):
        tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")  # REFLECT: any dtype
    # and the oracle now compares float64 empty batches of these rows (it refused every empty batch)
    report = oracle.check("tensorflow", ops=["conv2d", "blur_pool2d", "max_blur_pool2d"], cases=12, seed=2)
    assert report.passed, report.table()
    assert all(r.counts.get("empty") for r in report.results), report.table()


def test_conv2d_gradients_take_groups_and_dilation_only_in_float32_with_valid_padding():
    x = numpy.random.default_rng(0).normal(size=(1, 6, 6, 4))

    def input_gradient(dtype, groups, dilation, padding):
        filters = tf.constant(numpy.ones((2, 2, 4 // groups, 4), dtype))
        return _taped(lambda t: tf.nn.conv2d(t, filters, 1, padding, dilations=dilation), x.astype(dtype))[1]

    assert input_gradient(numpy.float32, 2, 1, "VALID").shape == input_gradient(numpy.float32, 1, 2, "VALID").shape == x.shape
    explicit = [[0, 0], [1, 1], [1, 1], [0, 0]]
    for dtype, padding in ((numpy.float64, "VALID"), (numpy.float16, "VALID"), (numpy.float32, explicit)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="Gradients for grouped convolutions are not supported on CPU"):
            input_gradient(dtype, 2, 1, padding)
        with pytest.raises(tf.errors.InvalidArgumentError, match="do not yet support dilation rates larger than 1"):
            input_gradient(dtype, 1, 2, padding)


def test_tf_pad_has_no_replicate_or_circular_mode_and_symmetric_repeats_the_edge_cell():
    line = tf.constant([1.0, 2.0, 3.0])
    assert tf.pad(line, [[2, 2]], "SYMMETRIC").numpy().tolist() == [2.0, 1.0, 1.0, 2.0, 3.0, 3.0, 2.0]
    assert tf.pad(line, [[2, 2]], "REFLECT").numpy().tolist() == [3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]  # PyTorch's reflect
    for mode in ("REPLICATE", "CIRCULAR"):
        with pytest.raises(ValueError, match='one of "CONSTANT", "REFLECT", or "SYMMETRIC"'):
            tf.pad(line, [[1, 1]], mode)
    # a pad of at most 1: SYMMETRIC is PyTorch's replicate, which the conv2d row now checks through it
    assert tf.pad(line, [[1, 1]], "SYMMETRIC").numpy().tolist() == [1.0, 1.0, 2.0, 3.0, 3.0]


def test_conv2d_row_checks_replicate_padding_of_at_most_one_through_symmetric():
    # the row refused replicate altogether; SYMMETRIC's gradient refuses an empty batch, as REFLECT does
    from poolref.cases.learned import conv_pads
    from poolref.oracle import engine
    from poolref.oracle.tensorflow_adapter import MAPPINGS

    with pytest.raises(tf.errors.InvalidArgumentError, match="0 was not less than 0"):
        _taped(lambda t: tf.pad(t, [[0, 0], [1, 1], [1, 1], [0, 0]], "SYMMETRIC"), numpy.zeros((0, 2, 2, 1)))
    mapping = next(m for m in MAPPINGS if m.op == "conv2d")
    drawn = [case for case in engine.plan_cases(mapping, 300, 1).cases if case.kwargs.get("padding_mode") == "replicate"]
    assert len(drawn) > 20 and all(case.input_class != "empty" for case in drawn)
    assert all(max(p for pair in conv_pads(case) for p in pair) <= 1 for case in drawn)
    assert oracle.check("tensorflow", ops=["conv2d"], cases=300, seed=1).passed


def _crop(image, box, crop_size, **kwargs):
    """crop_and_resize of one (H, W) plane by one normalised box [y1, x1, y2, x2]: (h, w)."""
    y = tf.image.crop_and_resize(image[None, :, :, None], numpy.array([box], numpy.float32), [0], crop_size, **kwargs)
    return y.numpy()[0, :, :, 0]


def test_crop_and_resize_interpolates_infinities_to_nan_unless_alone_at_the_bottom_right():
    # points 0, 0.5, 1 on both axes: a + (b - a) t across, then down, also at t = 0 (one pixel read)
    corner = numpy.array([[1.0, 2.0], [3.0, INF]], numpy.float32)
    numpy.testing.assert_array_equal(_crop(corner, [0, 0, 1, 1], (3, 3)), [[1, 1.5, 2], [2, INF, NAN], [3, NAN, NAN]])
    first = numpy.array([[INF, 1.0], [1.0, 1.0]], numpy.float32)  # an infinite a: NaN even on its own pixel
    numpy.testing.assert_array_equal(_crop(first, [0, 0, 1, 1], (3, 3)), [[NAN, NAN, 1], [NAN, NAN, 1], [1, 1, 1]])
    for a, b in ((-INF, -INF), (INF, INF), (-INF, INF)):  # two infinities across one row read twice (in_y = 0.5)
        assert numpy.isnan(_crop(numpy.array([[a, b], [a, b]], numpy.float32), [0, 0, 1, 1], (1, 3))).all()
    # torchvision's RoI Align, which poolref models, weighs the pixels (0 * inf included): inf where TF has NaN
    from poolref.oracle.layouts import crop_boxes_to_rois

    rois = crop_boxes_to_rois([[0.0, 0.0, 1.0, 1.0]], [0], (3, 3), 2, 2).astype(numpy.float32)
    ours = poolref.roi_align(first[None, None], rois, (3, 3), 1.0, 1, True)[0, 0]
    numpy.testing.assert_array_equal(ours, [[INF, INF, 1], [INF, INF, 1], [1, 1, 1]])


def test_crop_and_resize_returns_extrapolation_value_outside_the_image_and_computes_in_float32():
    plane = numpy.array([[1.0, 2.0], [3.0, 4.0]], numpy.float32)
    box = [0.0, -0.5, 1.0, 1.0]  # x points -0.5, 0, 0.5, 1: the first is outside the image
    numpy.testing.assert_array_equal(_crop(plane, box, (2, 4)), [[0, 1, 1.5, 2], [0, 3, 3.5, 4]])
    assert _crop(plane, box, (2, 4), extrapolation_value=7.0)[:, 0].tolist() == [7.0, 7.0]
    from poolref.oracle.layouts import crop_boxes_to_rois

    rois = crop_boxes_to_rois([box], [0], (2, 4), 2, 2).astype(numpy.float32)
    assert poolref.roi_align(plane[None, None], rois, (2, 4), 1.0, 1, True)[0, 0, :, 0].tolist() == [1.0, 3.0]  # the border
    assert tf.image.crop_and_resize(numpy.ones((1, 2, 2, 1)), [[0.0, 0.0, 1.0, 1.0]], [0], (2, 2)).dtype == tf.float32


@pytest.mark.parametrize("method", ["bilinear", "bicubic", "lanczos3"])
def test_antialiased_resize_has_a_gradient_for_float32_only(method):
    x = numpy.ones((1, 4, 5, 1))
    resize = lambda t: tf.image.resize(t, (3, 2), method=method, antialias=True)  # noqa: E731
    assert _taped(resize, x.astype(numpy.float32))[1].shape == x.shape
    for dtype in (numpy.float16, numpy.float64):
        with pytest.raises(tf.errors.InvalidArgumentError, match="ScaleAndTranslateGrad"):
            _taped(resize, x.astype(dtype))
    with pytest.raises(ValueError, match="must have either 3 or 4 dimensions"):  # 2-D images only
        tf.image.resize(numpy.ones((1, 2, 4, 5, 1), numpy.float32), (3, 2))


def test_reduce_max_shares_tied_gradients_multiplies_inf_by_zero_and_keeps_the_last_zero():
    reduce_max = lambda t: tf.reduce_max(t, axis=[0], keepdims=True)  # noqa: E731
    one = numpy.ones(1)
    assert _taped(reduce_max, numpy.array([1.0, 3.0, 3.0, 2.0]), one)[1].tolist() == [0.0, 0.5, 0.5, 0.0]
    y, grad = _taped(reduce_max, numpy.array([1.0, 3.0]), numpy.array([INF]))
    assert y.tolist() == [3.0] and numpy.isnan(grad[0]) and grad[1] == INF  # 0 * inf
    y, grad = _taped(reduce_max, numpy.array([1.0, NAN, 2.0]), one)
    assert numpy.isnan(y).all() and numpy.isnan(grad).all()
    for dtype in (numpy.float32, numpy.float64):
        last = lambda *values: numpy.signbit(tf.reduce_max(numpy.array(values, dtype)).numpy())  # noqa: E731
        assert last(0.0, -0.0) and not last(-0.0, 0.0) and last(*[0.0, -0.0] * 9)


def test_avg_pool_same_gradient_spreads_a_long_window_over_the_whole_input_but_in_float32():
    x, upstream = numpy.arange(1.0, 5.0).reshape(1, 4, 1), numpy.array([1.0, 2.0]).reshape(1, 2, 1)
    pool = lambda t: tf.nn.avg_pool1d(t, 5, 3, "SAME")  # noqa: E731
    for dtype, rtol in ((numpy.float64, 1e-12), (numpy.float16, 1e-3)):
        y, grad = _taped(pool, x.astype(dtype), upstream.astype(dtype))
        assert y.ravel().tolist() == [2.0, 3.0]
        numpy.testing.assert_allclose(grad.ravel(), [0.25, 11 / 12, 11 / 12, 11 / 12], rtol=rtol)  # window 0 over 4 cells
    true = poolref.vjp(lambda t: poolref.avg_pool1d(t, 5, 3, "same", convention="tensorflow"), x.reshape(1, 1, 4))[1]
    numpy.testing.assert_allclose(true(upstream.reshape(1, 1, 2))[0].ravel(), [1 / 3, 1, 1, 2 / 3], rtol=1e-12)
    if ONEDNN:
        numpy.testing.assert_allclose(_taped(pool, x.astype(numpy.float32), upstream.astype(numpy.float32))[1].ravel(),
                                      [1 / 3, 1, 1, 2 / 3], rtol=1e-6)
    # a window longer than the input whose cut-down size happens to be the whole input is right (k 3, L 2)
    assert _taped(lambda t: tf.nn.avg_pool1d(t, 3, 1, "SAME"), numpy.array([[[1.0], [2.0]]]), upstream)[1].ravel().tolist() == [1.5, 1.5]


def test_fractional_max_pool_floors_only_minus_inf_and_nan_windows_and_their_gradient_raises():
    pool = lambda t: tf.nn.fractional_max_pool(t, [1.0, 2.0, 2.0, 1.0], pseudo_random=True, overlapping=False, seed=1)[0]  # noqa: E731
    for value in (-INF, NAN):
        window = numpy.full((1, 2, 2, 1), value, numpy.float32)
        assert pool(window).numpy().item() == -numpy.finfo(numpy.float32).max
        with pytest.raises(tf.errors.InvalidArgumentError, match="tensor_out_dup is not the same as tensor_out"):
            _taped(pool, window)
    # one finite element: it wins and takes the gradient
    assert _taped(pool, numpy.array([-INF, 1, -INF, -INF], numpy.float32).reshape(1, 2, 2, 1))[1].ravel().tolist() == [0, 1, 0, 0]


def test_fractional_max_pool_is_2d_and_regular_only_for_ratio_two_on_even_sizes():
    rows = lambda L, ratio, seed, **kw: tf.nn.fractional_max_pool(  # noqa: E731
        numpy.ones((1, L, L, 1), numpy.float32), [1.0, ratio, ratio, 1.0], seed=seed, **kw)[1].numpy().tolist()
    for seed in (1, 5, 123):
        for L in (4, 6, 8):
            assert rows(L, 2.0, seed, pseudo_random=True) == rows(L, 2.0, seed, pseudo_random=False) == list(range(0, L + 1, 2))
    assert rows(9, 1.5, 1, pseudo_random=True) == [0, 2, 4, 5, 7, 8, 9]  # windows of 2 and 1 cells, by the seed
    assert rows(9, 1.5, 2, pseudo_random=True) == [0, 2, 3, 5, 6, 8, 9]
    with pytest.raises(ValueError, match="pooling_ratio should be of length 1, 2 or 4"):
        tf.nn.fractional_max_pool(numpy.ones((1, 4, 4, 4, 1), numpy.float32), [1.0, 2.0, 2.0, 2.0, 1.0], seed=1)


def test_max_pool3d_gradient_reaches_every_element_within_1e5_of_a_finite_maximum():
    def gradient(values):
        pool = lambda t: tf.nn.max_pool3d(t, (1, 1, 2), (1, 1, 2), "VALID")  # noqa: E731
        return _taped(pool, numpy.array(values, numpy.float32).reshape(1, 1, 1, 2, 1))[1].ravel().tolist()

    assert gradient([1.0, 1.000005]) == [1.0, 1.0] and gradient([100.0, 100.00001]) == [1.0, 1.0]  # 7.6e-6 apart
    assert gradient([1.0, 1.00001]) == [0.0, 1.0]  # 1.001e-5 apart: an absolute threshold
    assert gradient([INF, 1.0]) == gradient([INF, INF]) == gradient([-INF, -INF]) == [0.0, 0.0]  # inf - inf is NaN
    assert gradient([NAN, 1.0]) == [0.0, 1.0]


def test_max_pools_route_like_argmax_and_floor_at_the_dtype_lowest_float():
    # tf.nn.max_pool1d and tf.nn.pool's dilated MAX, as tf.nn.max_pool2d (tests/test_running_max.py)
    dilated = lambda t: tf.nn.pool(t, [2], "MAX", strides=[1], padding="VALID", dilations=[2])  # noqa: E731
    plain = lambda t: tf.nn.max_pool1d(t, 2, 2, "VALID")  # noqa: E731
    for pool, values in ((dilated, [NAN, 5.0, 1.0]), (plain, [NAN, 1.0])):
        y, grad = _taped(pool, numpy.array(values).reshape(1, -1, 1))
        assert y.ravel()[0] == 1.0 and grad.ravel()[0] == 1.0 and not grad.ravel()[1:].any()  # the NaN's
        y, grad = _taped(pool, numpy.array([-INF] * len(values)).reshape(1, -1, 1))
        assert y.ravel()[0] == -1.7976931348623157e308 and grad.ravel()[0] == 1.0
    floor32 = tf.nn.max_pool2d(numpy.full((1, 1, 2, 1), -INF, numpy.float32), (1, 2), 1, "VALID").numpy().item()
    assert floor32 == -numpy.finfo(numpy.float32).max == numpy.float32(-3.4028235e38)


@needs_onednn
def test_float32_conv2d_of_one_strided_column_returns_garbage():
    x = numpy.arange(-4.0, 6.0).reshape(2, 5, 1, 1)  # NHWC, padded to width 3 below

    def conv(dtype, batch=2):
        padded = tf.pad(x[:batch].astype(dtype), [[0, 0], [0, 0], [1, 1], [0, 0]])
        return tf.nn.conv2d(padded, numpy.ones((1, 3, 1, 1), dtype), strides=[1, 1, 2, 1], padding="VALID").numpy().ravel()

    wrong = conv(numpy.float32)
    assert wrong[[0, 2, 5, 7]].tolist() == [-4.0, -1.0, 1.0, 4.0]  # x[0], x[3], x[5], x[8], misplaced
    assert not numpy.array_equal(wrong, x.ravel())
    for dtype in (numpy.float64, numpy.float16):
        assert conv(dtype).tolist() == x.ravel().tolist()
    assert conv(numpy.float32, batch=1).tolist() == x.ravel()[:5].tolist()
    assert _taped(lambda t: tf.nn.conv2d(tf.pad(t, [[0, 0], [0, 0], [1, 1], [0, 0]]), numpy.ones((1, 3, 1, 1), numpy.float32),
                                         strides=[1, 1, 2, 1], padding="VALID"), x.astype(numpy.float32))[1].ravel().tolist() == [1.0] * 10


def test_tensorflow_has_no_op_for_the_uncovered_ops():
    ops = [name.lower() for name in dir(tf.raw_ops)]
    for missing in ("unpool", "adaptive", "lppool", "roipool", "roialign", "psroi", "gridsample", "resampler", "deform",
                    "mapcoordinates", "fractionalmaxpool3d"):
        assert not [name for name in ops if missing in name], missing
    assert {"fractionalmaxpool", "cropandresize", "maxpool3d"} <= set(ops)  # the search finds what exists


def test_the_compositions_chain_rules_give_nan_where_the_reasons_say():
    # SoftPool: softmax's backward subtracts the upstream infinity from itself in every tap
    taps = tf.constant([1.0, 2.0, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(taps)
        y = tf.reduce_sum(tf.nn.softmax(taps) * taps)
    assert numpy.isnan(tape.gradient(y, taps, output_gradients=tf.constant(INF)).numpy()).all()
    # SoftPool's limits: a +inf maximum minus itself, a -inf times its weight 0; poolref takes the limits
    for window, limit in (([INF, 1.0], INF), ([-INF, 1.0], 1.0)):
        assert numpy.isnan(tf.reduce_sum(tf.nn.softmax(window) * window).numpy())
        assert poolref.soft_pool2d(numpy.array(window).reshape(1, 1, 1, 2), (1, 2)).item() == limit
    # GeM: d(r^p)/dp = r^p log r is 0 for the largest element (r = 1): inf * 0 in dy/dp
    x, p = tf.constant([0.5, 2.0]), tf.constant(3.0)
    with tf.GradientTape() as tape:
        tape.watch([x, p])
        largest = tf.stop_gradient(tf.reduce_max(x))
        y = largest * tf.reduce_mean((x / largest) ** p) ** (1 / p)
    grad_x, grad_p = tape.gradient(y, [x, p], output_gradients=tf.constant(INF))
    assert numpy.isnan(grad_p.numpy()) and (grad_x.numpy() == INF).all()
    # stochastic pooling's expectation Q / S: g 2a / S - g Q / S^2 is inf - inf
    a = tf.constant([1.0, 2.0, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(a)
        y = tf.reduce_sum(a * a) / tf.reduce_sum(a)
    assert numpy.isnan(tape.gradient(y, a, output_gradients=tf.constant(INF)).numpy()).all()


def test_avg_pool_same_gradient_model_is_eigens_window_rule():
    # TF_AVG_POOL_SAME_LONG_WINDOW's model (it excused every such gradient before): Eigen's windows,
    # cut at the padding, then at the end of the input with min(L - b, k); held to TensorFlow on random
    # float64 and float16 cases, an infinite upstream entry included
    from poolref.cases.case import Case
    from poolref.oracle.compare import compare_arrays
    from poolref.oracle.defects import TF_AVG_POOL_SAME_LONG_WINDOW
    from poolref.oracle.engine import Results

    rng = numpy.random.default_rng(2)
    wrong = 0
    for trial in range(60):
        n = 1 + trial % 2
        lengths, kernel, stride = (tuple(int(v) for v in rng.integers(1, high, n)) for high in (7, 8, 5))
        dtype = (numpy.float64, numpy.float16)[trial % 3 == 0]
        x = rng.standard_normal((2,) + lengths + (3,)).astype(dtype)  # channels last, as TensorFlow takes it
        pool = lambda t: tf.nn.avg_pool(t, list(kernel), list(stride), "SAME")  # noqa: E731,B023
        upstream = rng.standard_normal(pool(x).shape).astype(dtype)
        upstream.reshape(-1)[0] = (1.0, INF)[trial % 4 == 0]
        got = numpy.moveaxis(_taped(pool, x, upstream)[1], -1, 1)
        case = Case(f"avg_pool{n}d", {"x": numpy.moveaxis(x, -1, 1)}, dict(kernel_size=kernel, stride=stride, padding="same"))
        model = TF_AVG_POOL_SAME_LONG_WINDOW.model(case, Results(None, None, {}), numpy.moveaxis(upstream, -1, 1)).grads["x"]
        assert compare_arrays(got, model, "gradient", gradient=True).ok, (lengths, kernel, stride, dtype)
        true = poolref.vjp(lambda t: poolref.avg_pool1d(t, kernel, stride, "same", convention="tensorflow") if n == 1 else  # noqa: B023
                           poolref.avg_pool2d(t, kernel, stride, "same", convention="tensorflow"), numpy.moveaxis(x, -1, 1))[1]
        wrong += not compare_arrays(got, true(numpy.moveaxis(upstream, -1, 1))[0], "gradient", gradient=True).ok
    assert wrong > 0  # the cases show the defect


# --------------------------------------------------------------------------------------------------
# TF_CROP_AND_RESIZE_LERP: crop_and_resize's own interpolation, modelled (poolref.oracle.tf_crop_and_resize)
# --------------------------------------------------------------------------------------------------
def _crop_case(rng, boxes_kind: str):
    """A roi_align case the crop_and_resize row checks: the row's own generator, or boxes on pixel
    rows and columns (normalised k / (L - 1): crop points with t = 0), or boxes reaching outside."""
    from poolref.cases.case import Case
    from poolref.cases.values import smooth_values
    from poolref.oracle.layouts import crop_boxes_to_rois
    from poolref.oracle.tensorflow_adapter import _crop_and_resize_case

    if boxes_kind == "generator":
        return _crop_and_resize_case(rng, "roi_align", {"dtypes": ("float32",)})
    N, C, H, W = int(rng.integers(1, 3)), int(rng.integers(1, 4)), *(int(v) for v in rng.integers(2, 8, 2))
    crop, K = tuple(int(v) for v in rng.integers(1, 5, 2)), int(rng.integers(1, 4))
    if boxes_kind == "pixels":
        ys, xs = rng.integers(0, H, (K, 2)) / (H - 1), rng.integers(0, W, (K, 2)) / (W - 1)
        normalised = numpy.stack([ys[:, 0], xs[:, 0], ys[:, 1], xs[:, 1]], axis=1)
    else:  # "outside"
        normalised = rng.uniform(-0.6, 1.6, (K, 4))
    boxes = crop_boxes_to_rois(normalised, rng.integers(0, N, K), crop, H, W).astype(numpy.float32)
    kwargs = dict(output_size=crop, spatial_scale=1.0, sampling_ratio=1, aligned=True)
    return Case("roi_align", {"x": smooth_values(rng, (N, C, H, W), numpy.float32), "boxes": boxes}, kwargs,
                positional=("x", "boxes"))


def _sprinkle_nonfinite(rng, a):
    """``a`` with about 15% +inf, 10% -inf and 5% NaN."""
    u = rng.uniform(size=a.shape)
    return numpy.where(u < 0.15, INF, numpy.where(u < 0.25, -INF, numpy.where(u < 0.3, NAN, a))).astype(a.dtype)


def _bits_equal(a, b) -> bool:
    """Equal float32 arrays: NaN where NaN, every other value and zero sign the same."""
    a, b = numpy.asarray(a), numpy.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    nan = numpy.isnan(a)
    return bool((nan == numpy.isnan(b)).all() and (a[~nan] == b[~nan]).all()
                and (numpy.signbit(a[~nan]) == numpy.signbit(b[~nan])).all())


def _crop_model_mismatches(trials: int = 96, seed: int = 5) -> tuple:
    """``(model wrong, poolref different)``: of ``trials`` random crop_and_resize cases (boxes of
    every kind, NaN and +-inf in the image, the upstream gradient or both), how many outputs or
    gradients TF_CROP_AND_RESIZE_LERP's model gets wrong, bit for bit, and how many poolref's differ."""
    from poolref.oracle import engine
    from poolref.oracle.defects import TF_CROP_AND_RESIZE_LERP
    from poolref.oracle.tensorflow_adapter import IMPORTS, MAPPINGS

    mapping = next(m for m in MAPPINGS if m.call == "tf.image.crop_and_resize")
    rng = numpy.random.default_rng(seed)
    wrong = different = 0
    for trial in range(trials):
        case = _crop_case(rng, ("generator", "pixels", "outside")[trial % 3])
        if trial % 4 != 1:  # 0, 2, 3: the image; 1, 3: the upstream gradient
            case = case.replace(arrays={**case.arrays, "x": _sprinkle_nonfinite(rng, case.x)})
        ours, cotangent = engine.run_poolref(case, seed, trial)
        if trial % 2 == 1:
            cotangent = _sprinkle_nonfinite(rng, cotangent)
            ours, cotangent = engine.run_poolref(case, seed, trial, cotangent=cotangent)
        theirs = engine.run_framework(IMPORTS, mapping, case, cotangent)
        model = TF_CROP_AND_RESIZE_LERP.model(case, ours, cotangent)
        wrong += not (_bits_equal(theirs.values, model.values) and _bits_equal(theirs.grads["x"], model.grads["x"]))
        different += not (_bits_equal(theirs.values, ours.values) and _bits_equal(theirs.grads["x"], ours.grads["x"]))
    return wrong, different


def test_crop_and_resize_model_is_tensorflows_kernel_bit_for_bit():
    wrong, different = _crop_model_mismatches()
    assert wrong == 0
    assert different > 30  # poolref's RoI Align differs on many of them: the cases show the defect


@pytest.mark.parametrize("mutant", ["next_pixel", "down_then_across", "weighted_sum", "zero_weight_skipped"])
def test_a_mutant_of_the_crop_and_resize_model_fails(monkeypatch, mutant):
    from poolref.oracle import tf_crop_and_resize as crop

    one = numpy.float32(1)
    if mutant == "next_pixel":  # torchvision's neighbours: the next row and column, also on a pixel
        taps = crop.crop_taps

        def next_pixel(points, length):
            low, _, lerp, inside = taps(points, length)
            return low, numpy.minimum(low + 1, length - 1), lerp, inside

        monkeypatch.setattr(crop, "crop_taps", next_pixel)
    elif mutant == "down_then_across":  # the same lerps, down first
        monkeypatch.setattr(crop, "interpolate", lambda tl, tr, bl, br, t_x, t_y: (
            lambda left, right: left + (right - left) * t_x)(tl + (bl - tl) * t_y, tr + (br - tr) * t_y))
    elif mutant == "weighted_sum":  # RoI Align's weighted sum of the four pixels
        monkeypatch.setattr(crop, "interpolate", lambda tl, tr, bl, br, t_x, t_y: (
            (one - t_y) * (one - t_x) * tl + (one - t_y) * t_x * tr + t_y * (one - t_x) * bl + t_y * t_x * br))
    else:  # a gradient that skips the shares of weight 0 (TensorFlow adds 0 * g, NaN for an infinite g)
        shares = crop.point_shares

        def skipping(g, t_x, t_y):
            return [numpy.where(weight == 0, numpy.float32(0), share) for weight, share in
                    zip(((one - t_y) * (one - t_x), (one - t_y) * t_x, t_y * (one - t_x), t_y * t_x), shares(g, t_x, t_y))]

        monkeypatch.setattr(crop, "point_shares", skipping)
    assert _crop_model_mismatches(trials=48)[0] > 0


def _crop_3x3_of_2x2(plane, upstream=None):
    """(TensorFlow, TF_CROP_AND_RESIZE_LERP's model, poolref) outputs, and gradients for ``upstream``,
    of the 3 x 3 crop of a whole 2 x 2 plane: crop points 0, 0.5, 1 each way."""
    from poolref.cases.case import Case
    from poolref.oracle import engine
    from poolref.oracle.defects import TF_CROP_AND_RESIZE_LERP
    from poolref.oracle.layouts import crop_boxes_to_rois
    from poolref.oracle.tensorflow_adapter import IMPORTS, MAPPINGS

    mapping = next(m for m in MAPPINGS if m.call == "tf.image.crop_and_resize")
    rois = crop_boxes_to_rois([[0.0, 0.0, 1.0, 1.0]], [0], (3, 3), 2, 2).astype(numpy.float32)
    case = Case("roi_align", {"x": numpy.array(plane, numpy.float32)[None, None], "boxes": rois},
                dict(output_size=(3, 3), spatial_scale=1.0, sampling_ratio=1, aligned=True), positional=("x", "boxes"))
    upstream = numpy.ones((1, 1, 3, 3), numpy.float32) if upstream is None else numpy.array(upstream, numpy.float32)[None, None]
    ours, _ = engine.run_poolref(case, cotangent=upstream)
    theirs = engine.run_framework(IMPORTS, mapping, case, upstream)
    model = TF_CROP_AND_RESIZE_LERP.model(case, ours, upstream)
    return [(r.values[0, 0], r.grads["x"][0, 0]) for r in (theirs, model, ours)]


def test_crop_and_resize_lerp_defect_text_numbers_are_tensorflows():
    # the defect's worked example: an infinity alone at the bottom-right
    (tf_y, _), (model_y, _), (ours_y, _) = _crop_3x3_of_2x2([[1.0, 2.0], [3.0, INF]])
    numpy.testing.assert_array_equal(tf_y, [[1, 1.5, 2], [2, INF, NAN], [3, NAN, NAN]])
    numpy.testing.assert_array_equal(model_y, tf_y)
    # poolref (torchvision's weighted sum) reads pixel (1, 1) with weight 0 from every point: 0 * inf
    numpy.testing.assert_array_equal(ours_y, [[NAN, NAN, NAN], [NAN, INF, NAN], [NAN, NAN, NAN]])
    # an infinite upstream entry at a point on a pixel: inf + 0 * inf on that pixel, nothing on the next row
    upstream = [[INF, 0, 0], [0, 0, 0], [0, 0, 0]]
    (_, tf_grad), (_, model_grad), (_, ours_grad) = _crop_3x3_of_2x2([[1.0, 2.0], [3.0, 4.0]], upstream)
    numpy.testing.assert_array_equal(tf_grad, [[NAN, 0], [0, 0]])
    numpy.testing.assert_array_equal(model_grad, tf_grad)
    numpy.testing.assert_array_equal(ours_grad, [[INF, NAN], [NAN, NAN]])


def test_crop_and_resize_lerp_applies_to_nonfinite_images_and_upstream_gradients_only():
    from poolref.oracle.defects import ALL, TF_CROP_AND_RESIZE_LERP
    from poolref.oracle.tensorflow_adapter import MAPPINGS

    mapping = next(m for m in MAPPINGS if m.call == "tf.image.crop_and_resize")
    assert TF_CROP_AND_RESIZE_LERP in mapping.defects and TF_CROP_AND_RESIZE_LERP in ALL["tensorflow"]
    case = _crop_case(numpy.random.default_rng(0), "generator")
    applies = TF_CROP_AND_RESIZE_LERP.applies
    assert not applies(case) and not applies(case.replace(input_class="signed_zero"))
    assert applies(case.replace(input_class="nonfinite_gradient"))
    for value in (INF, -INF, NAN):
        x = case.x.copy()
        x.flat[0] = value
        assert applies(case.replace(arrays={**case.arrays, "x": x}))
        assert mapping.refusal(case.replace(arrays={**case.arrays, "x": x}, input_class="inf")) is None  # checked now


@pytest.mark.parametrize("seed", [0, 4])
def test_crop_and_resize_row_passes_on_infinities_with_the_lerp_modelled(seed):
    from poolref.oracle.defects import TF_CROP_AND_RESIZE_LERP

    report = oracle.check("tensorflow", ops=["roi_align"], cases=40, seed=seed)
    assert report.passed, report.table()
    (row,) = [r for r in report.results if r.call == "tf.image.crop_and_resize"]
    assert row.counts.get("inf", 0) >= 3 and row.counts.get("nonfinite_gradient", 0) >= 3
    assert row.known  # the inf cases differ from poolref's RoI Align, as the model says
    assert all(f.problems[0] == "known tensorflow defect: " + TF_CROP_AND_RESIZE_LERP.text for f in row.known)


def test_crop_and_resize_row_fails_with_a_mutant_of_the_lerp_model(monkeypatch):
    from poolref.oracle import tf_crop_and_resize as crop

    one = numpy.float32(1)
    monkeypatch.setattr(crop, "interpolate", lambda tl, tr, bl, br, t_x, t_y: (  # RoI Align's weighted sum
        (one - t_y) * (one - t_x) * tl + (one - t_y) * t_x * tr + t_y * (one - t_x) * bl + t_y * t_x * br))
    report = oracle.check("tensorflow", ops=["roi_align"], cases=40, seed=0)
    assert not report.passed
