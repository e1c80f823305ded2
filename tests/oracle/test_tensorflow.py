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
