"""Tests of the plain-loop deformable convolution reference (poolref/reference/deform_conv.py).

Hand-computed samples at and beyond the border, the slopes against finite differences, the adjoint
identities its backward must satisfy, and a cross-check against an independent torch composition
(skipped without torch).
"""

import math

import numpy
import pytest

from helpers import torch_or_skip
from poolref.reference.deform_conv import (
    bilinear_interpolate,
    coordinate_weight,
    deform_conv2d_backward_reference,
    deform_conv2d_reference,
)

PLANE = numpy.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])


@pytest.mark.parametrize("y, x, want", [
    (1.0, 1.0, 5.0),  # on a pixel
    (0.5, 0.5, 3.0),  # the mean of four
    (-0.5, 1.0, 1.0),  # half of row 0: the row above reads as 0
    (2.5, 2.0, 4.5),  # half of the last row
    (-1.0, 1.0, 0.0),  # the edge of the readable range: nothing
    (1.0, 3.0, 0.0),  # x = W: nothing
    (-0.999, 0.0, 0.001),  # just inside
    (2.999, 0.0, 7.0 * 0.001),  # just inside the bottom edge
])
def test_bilinear_interpolate_at_and_beyond_the_border(y, x, want):
    assert bilinear_interpolate(PLANE, y, x) == pytest.approx(want, abs=1e-12)


def test_bilinear_interpolate_reads_a_weight_0_corner_inside_but_nothing_outside():
    plane = PLANE.copy()
    plane[2, 1] = numpy.nan
    assert math.isnan(bilinear_interpolate(plane, 1.0, 1.0))  # on pixel (1, 1): row 2 is read with weight 0
    assert bilinear_interpolate(plane, 0.5, 1.0) == 3.5  # rows 0 and 1 only
    plane = PLANE.copy()
    plane[0, 0] = numpy.inf
    # at y = -1 row 0 would have weight 0: the point is outside and reads nothing (0, not 0 * inf)
    assert bilinear_interpolate(plane, -1.0, 0.0) == 0.0
    assert bilinear_interpolate(plane, -0.5, 0.0) == math.inf


@pytest.mark.parametrize("y, x", [(0.3, 0.6), (-0.4, 1.2), (2.4, 0.3), (1.7, 2.6), (-0.7, -0.2), (1.1, -0.8)])
def test_coordinate_weight_is_the_derivative_away_from_the_kinks(y, x):
    rng = numpy.random.default_rng(0)
    plane = rng.standard_normal((3, 3))
    h = 1e-6
    dy = (bilinear_interpolate(plane, y + h, x) - bilinear_interpolate(plane, y - h, x)) / (2 * h)
    dx = (bilinear_interpolate(plane, y, x + h) - bilinear_interpolate(plane, y, x - h)) / (2 * h)
    assert coordinate_weight(plane, y, x, True) == pytest.approx(dy, abs=1e-8)
    assert coordinate_weight(plane, y, x, False) == pytest.approx(dx, abs=1e-8)


def test_coordinate_weight_is_the_derivative_from_the_right_at_an_integer_and_at_minus_one():
    h = 1e-7
    for y, x in [(1.0, 0.5), (-1.0, 1.0), (0.5, -1.0), (2.0, 1.5)]:
        right_y = (bilinear_interpolate(PLANE, y + h, x) - bilinear_interpolate(PLANE, y, x)) / h
        right_x = (bilinear_interpolate(PLANE, y, x + h) - bilinear_interpolate(PLANE, y, x)) / h
        assert coordinate_weight(PLANE, y, x, True) == pytest.approx(right_y, abs=1e-5)
        assert coordinate_weight(PLANE, y, x, False) == pytest.approx(right_x, abs=1e-5)


def test_worked_example_half_a_pixel_right_with_a_mask():
    x = PLANE[None, None]
    offset = numpy.zeros((1, 2, 3, 3))
    offset[0, 1] = 0.5
    mask = numpy.full((1, 1, 3, 3), 2.0)
    y = deform_conv2d_reference(x, offset, numpy.ones((1, 1, 1, 1)), numpy.array([1.0]), mask=mask)
    assert y[0, 0].tolist() == [[4.0, 6.0, 4.0], [10.0, 12.0, 7.0], [16.0, 18.0, 10.0]]


def _random_case(seed, mask=True):
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal((2, 4, 4, 5))
    weight = rng.standard_normal((4, 2, 2, 2))  # groups = 2
    offset = rng.normal(scale=1.5, size=(2, 2 * 2 * 4, 3, 3))  # offset groups = 2; stride (1, 2), padding (0, 1)
    m = rng.uniform(size=(2, 2 * 4, 3, 3)) if mask else None
    return rng, x, offset, weight, m, dict(stride=(1, 2), padding=(0, 1), dilation=(1, 1))


@pytest.mark.parametrize("seed", range(4))
def test_backward_is_the_adjoint_in_x_weight_and_mask(seed):
    # for fixed offsets the op is linear in x, in the weight and in the mask (without bias)
    rng, x, offset, weight, mask, geometry = _random_case(seed)
    y = deform_conv2d_reference(x, offset, weight, None, mask=mask, **geometry)
    g = rng.standard_normal(y.shape)
    gx, _, gw, gb, gm = deform_conv2d_backward_reference(g, x, offset, weight, mask=mask, has_bias=False, **geometry)
    assert gb is None
    for grad, value in ((gx, x), (gw, weight), (gm, mask)):
        assert numpy.isclose(numpy.sum(g * y), numpy.sum(grad * value))


@pytest.mark.parametrize("seed", range(3))
def test_offset_gradient_matches_central_differences(seed):
    rng, x, offset, weight, mask, geometry = _random_case(seed, mask=seed % 2 == 0)
    g = rng.standard_normal((2, 4, 3, 3))
    grad = deform_conv2d_backward_reference(g, x, offset, weight, mask=mask, **geometry)[1]
    direction = rng.standard_normal(offset.shape)
    h = 1e-6
    up = deform_conv2d_reference(x, offset + h * direction, weight, mask=mask, **geometry)
    down = deform_conv2d_reference(x, offset - h * direction, weight, mask=mask, **geometry)
    assert numpy.sum(g * (up - down)) / (2 * h) == pytest.approx(numpy.sum(grad * direction), rel=1e-6)


def test_float16_samples_at_float16_points():
    # 2.3 in float16 is 2.30078125: the point torchvision's scalar_t coordinate holds
    x = numpy.arange(16.0).reshape(1, 1, 4, 4)
    offset = numpy.zeros((1, 2, 4, 4))
    offset[0, 1, 0, 0] = 2.3
    exact = deform_conv2d_reference(x, offset, numpy.ones((1, 1, 1, 1)))[0, 0, 0, 0]
    rounded = deform_conv2d_reference(x, offset, numpy.ones((1, 1, 1, 1)), coordinate_dtype=numpy.float16)[0, 0, 0, 0]
    assert exact == pytest.approx(2.3) and rounded == float(numpy.float16(2.3)) == 2.30078125


@pytest.mark.parametrize("seed", range(3))
def test_reference_matches_the_torch_composition(seed):
    torch = torch_or_skip()
    from poolref.testing.torch_compositions import deform_conv2d_by_gather

    rng, x, offset, weight, mask, geometry = _random_case(10 + seed, mask=seed != 1)
    bias = rng.standard_normal(4)
    tensors = [torch.tensor(a, requires_grad=True) for a in (x, offset, weight, bias)]
    mask_t = None if mask is None else torch.tensor(mask, requires_grad=True)
    y_t = deform_conv2d_by_gather(torch, *tensors, mask=mask_t, **geometry)
    g = rng.standard_normal(tuple(y_t.shape))
    y_t.backward(torch.tensor(g))
    numpy.testing.assert_allclose(deform_conv2d_reference(x, offset, weight, bias, mask=mask, **geometry), y_t.detach().numpy(), rtol=1e-12, atol=1e-12)
    grads = deform_conv2d_backward_reference(g, x, offset, weight, mask=mask, **geometry)
    for got, t in zip(grads, tensors + [mask_t]):
        if t is not None:
            numpy.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-12)
