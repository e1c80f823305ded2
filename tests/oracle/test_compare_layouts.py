"""Comparisons (tolerances per dtype, NaN, exact indices) and index/box layout conversions."""

import numpy
import pytest

from poolref.oracle.compare import TOLERANCES, compare_arrays, tolerance
from poolref.oracle.layouts import (
    crop_boxes_to_rois,
    onnx_to_plane,
    plane_to_onnx,
    plane_to_tf_argmax,
    rois_to_crop_boxes,
    tf_argmax_to_plane,
)


def test_tolerance_is_that_of_the_least_precise_dtype():
    assert tolerance(numpy.float64, numpy.float32) == TOLERANCES[numpy.dtype(numpy.float32)]
    assert tolerance(numpy.float64) == TOLERANCES[numpy.dtype(numpy.float64)]
    assert tolerance(numpy.int64) == (0.0, 0.0)


def test_float64_catches_a_relative_error_of_1e_9_and_float32_forgives_rounding():
    ours = numpy.linspace(1.0, 2.0, 7)
    assert not compare_arrays(ours * (1 + 1e-9), ours, "output").ok
    assert compare_arrays(ours * (1 + 1e-13), ours, "output").ok
    ours32 = ours.astype(numpy.float32)
    assert compare_arrays((ours32 * numpy.float32(1 + 3e-7)).astype(numpy.float32), ours32, "output").ok
    bad = compare_arrays(ours32 * numpy.float32(1.001), ours32, "output")
    assert not bad.ok and "7 of 7 elements differ" in bad.problem and bad.first == (0,)


def test_nan_must_sit_where_poolref_has_nan():
    ours = numpy.array([1.0, numpy.nan, 3.0])
    assert compare_arrays(ours.copy(), ours, "output").ok
    moved = compare_arrays(numpy.array([numpy.nan, 2.0, 3.0]), ours, "output")
    assert not moved.ok and moved.first == (0,)
    assert not compare_arrays(numpy.array([1.0, 2.0, 3.0]), ours, "output").ok


# Regression tests: the comparison of the first oracle let these pass (|a - b| = inf was tested against
# atol + rtol*|inf| = inf, and atol scaled with the largest value of the whole array).
def test_minus_inf_where_poolref_has_plus_inf_is_a_mismatch():
    result = compare_arrays(numpy.array([-numpy.inf]), numpy.array([numpy.inf]), "output")
    assert not result.ok and "an infinity of the other sign" in result.problem


def test_a_finite_value_where_poolref_has_inf_is_a_mismatch():
    assert not compare_arrays(numpy.array([123.0]), numpy.array([numpy.inf]), "output").ok
    assert not compare_arrays(numpy.array([numpy.inf]), numpy.array([123.0]), "output").ok
    assert compare_arrays(numpy.array([numpy.inf, -numpy.inf]), numpy.array([numpy.inf, -numpy.inf]), "output").ok


def test_the_absolute_tolerance_does_not_scale_with_the_largest_value():
    ours32 = numpy.array([1e6, 0.0, 0.0], dtype=numpy.float32)
    assert not compare_arrays(numpy.array([1e6, 0.5, -0.9], dtype=numpy.float32), ours32, "output").ok
    assert not compare_arrays(numpy.array([1e6, 1e-6]), numpy.array([1e6, 0.0]), "output").ok


def test_the_absolute_tolerance_scales_with_the_case_magnitude_only():
    ours = numpy.array([1e-30, 2e-30])
    assert compare_arrays(ours * (1 + 1e-12), ours, "output", scale=1e-30).ok
    # a value that is wrong by a factor of two at magnitude 1e-30 is wrong, whatever atol is at magnitude 1
    assert not compare_arrays(ours * 2, ours, "output", scale=1e-30).ok
    assert compare_arrays(ours * 2, ours, "output").ok  # (what an atol of 1e-12 alone would forgive)


def test_the_zero_sign_of_max_type_outputs_is_exact():
    ours = numpy.array([-0.0, 0.0, 1.0])
    assert not compare_arrays(numpy.array([0.0, 0.0, 1.0]), ours, "output", zero_sign=True).ok
    assert compare_arrays(numpy.array([0.0, 0.0, 1.0]), ours, "output").ok  # sums: the sign of zero is free
    assert "another element won" in compare_arrays(numpy.array([0.0, 0.0, 1.0]), ours, "output", zero_sign=True).problem


def test_problems_show_plain_numbers():
    problem = compare_arrays(numpy.array([0.5], dtype=numpy.float32), numpy.array([0.25], dtype=numpy.float32), "output").problem
    assert "got 0.5, poolref 0.25" in problem and "np.float" not in problem


def test_indices_are_exact_and_shapes_must_agree():
    assert not compare_arrays(numpy.array([1, 2]), numpy.array([1, 3]), "indices", exact=True).ok
    assert "shape" in compare_arrays(numpy.zeros(3), numpy.zeros(4), "output").problem
    assert "gave none" in compare_arrays(None, numpy.zeros(4), "gradient to x").problem


def test_onnx_indices_convert_exactly_and_never_wrap_into_the_plane():
    rng = numpy.random.default_rng(0)
    shape = (2, 3, 4, 5)
    plane = rng.integers(0, 20, size=(2, 3, 2, 2))
    onnx = plane_to_onnx(plane, shape)
    assert onnx.max() < 2 * 3 * 20 and numpy.array_equal(onnx_to_plane(onnx, shape), plane)
    # an index into the next plane is an error, not index % plane_size
    wrong = onnx.copy()
    wrong[0, 0, 0, 0] += 20
    assert onnx_to_plane(wrong, shape)[0, 0, 0, 0] == -1
    # storage_order=1: column-major within the plane, w*H + h
    h, w = 1, 3
    assert onnx_to_plane(numpy.array([[[[w * 4 + h]]]]), (1, 1, 4, 5), storage_order=1).item() == h * 5 + w


@pytest.mark.parametrize("include_batch", [True, False])
def test_tensorflow_argmax_converts_exactly(include_batch):
    rng = numpy.random.default_rng(1)
    shape = (2, 3, 4, 5)
    plane = rng.integers(0, 20, size=(2, 3, 2, 2))
    tf = plane_to_tf_argmax(plane, shape, include_batch)
    n, c, h, w = 1, 2, 3, 4  # one element, by the formula ((n*H + h)*W + w)*C + c
    expected = ((n * 4 + h) * 5 + w) * 3 + c if include_batch else (h * 5 + w) * 3 + c
    assert plane_to_tf_argmax(numpy.full((2, 3, 1, 1), h * 5 + w), shape, include_batch)[n, c, 0, 0] == expected
    assert numpy.array_equal(tf_argmax_to_plane(tf, shape, include_batch), plane)
    wrong = tf.copy()
    wrong[1, 1, 0, 0] += 1  # the next channel's element
    assert tf_argmax_to_plane(wrong, shape, include_batch)[1, 1, 0, 0] == -1


def test_crop_boxes_and_rois_convert_both_ways():
    boxes = numpy.random.default_rng(2).uniform(0, 1, size=(4, 4))
    for crop in [(2, 3), (4, 4), (3, 2)]:
        rois = crop_boxes_to_rois(boxes, [0, 1, 0, 1], crop, 7, 9)
        back, indices = rois_to_crop_boxes(rois, crop, 7, 9)
        numpy.testing.assert_allclose(back, boxes, atol=1e-12)
        assert indices.tolist() == [0, 1, 0, 1]
