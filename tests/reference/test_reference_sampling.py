"""Tests of the plain-loop sampling references (poolref/reference/sampling.py) on their own.

Hand-worked coordinates, the adjoint identity between each forward and backward reference, and the
references checked directly against PyTorch (skipped without torch), independently of the
vectorised ops.
"""

import itertools

import numpy
import pytest

from helpers import to_torch, torch_or_skip
from poolref.reference.sampling import (
    grid_sample_backward_reference,
    grid_sample_reference,
    grid_source_coordinate,
    interpolate_backward_reference,
    interpolate_reference,
    nearest_source_index,
    resize_taps,
)

PADDINGS = ("zeros", "border", "reflection")


@pytest.mark.parametrize("g, size, padding_mode, align_corners, want", [
    (-1.0, 5, "zeros", False, (-0.5, 2.5)),  # the outer edge of pixel 0
    (1.0, 5, "zeros", True, (4.0, 2.0)),  # the centre of the last pixel
    (-1.0, 5, "border", True, (0.0, 0.0)),  # on the clamp limit: counts as clamped
    (-1.2, 5, "border", False, (0.0, 0.0)),  # -1 clamped to 0
    (-1.2, 5, "reflection", False, (0.0, 0.0)),  # i = -1 reflects off -0.5 onto 0, the clamp limit
    (-1.6, 5, "reflection", False, (1.0, -2.5)),  # i = -2 reflects off -0.5 onto 1: slope negated
    (2.2, 3, "reflection", True, (0.8, -1.0)),  # i = 3.2 reflects off 2 onto 0.8: slope negated
    (3.0, 3, "reflection", True, (0.0, 0.0)),  # i = 4 is a whole period (2 spans) on: back onto 0
    (0.3, 1, "reflection", True, (0.0, 0.0)),  # one pixel with aligned corners: everything reads it
])
def test_grid_source_coordinate_worked_cases(g, size, padding_mode, align_corners, want):
    coord, slope = grid_source_coordinate(g, size, padding_mode, align_corners)
    assert coord == pytest.approx(want[0]) and slope == want[1]


def test_nearest_and_linear_taps_worked_cases():
    # 2 -> 5 nearest: floor(o * 0.4) = 0, 0, 0, 1, 1
    assert [nearest_source_index(o, 2, 5) for o in range(5)] == [0, 0, 0, 1, 1]
    # nearest-exact reads at centres: floor((o + .5) * 0.4) = 0, 0, 1, 1, 1
    assert [nearest_source_index(o, 2, 5, exact=True) for o in range(5)] == [0, 0, 1, 1, 1]
    # align_corners: the last output reads exactly the last input
    assert resize_taps(4, 3, 5, "linear", align_corners=True) == [(2, 1.0), (2, 0.0)]
    # one output with aligned corners reads the first input
    assert resize_taps(0, 4, 1, "linear", align_corners=True) == [(0, 1.0), (1, 0.0)]


def _dot(a, b):
    return float(numpy.sum(a * b))


GRID_OPTIONS = list(itertools.product(("bilinear", "nearest"), PADDINGS, (False, True)))


@pytest.mark.parametrize("mode, padding_mode, align_corners", GRID_OPTIONS)
def test_grid_sample_references_are_adjoint_in_x(mode, padding_mode, align_corners):
    rng = numpy.random.default_rng(0)
    x, grid = rng.standard_normal((1, 2, 3, 4)), rng.uniform(-1.5, 1.5, (1, 2, 3, 2))
    g = rng.standard_normal((1, 2, 2, 3))
    grad_x, _ = grid_sample_backward_reference(g, x, grid, mode, padding_mode, align_corners)
    # the forward is linear in x: <g, A x> = <A^T g, x>
    assert _dot(g, grid_sample_reference(x, grid, mode, padding_mode, align_corners)) == pytest.approx(_dot(grad_x, x), rel=1e-12)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "linear", "area"])
def test_interpolate_references_are_adjoint(mode):
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5))
    for size in (3, 5, 9):
        g = rng.standard_normal((1, 2, size))
        y = interpolate_reference(x, (size,), mode)
        assert _dot(g, y) == pytest.approx(_dot(interpolate_backward_reference(g, x.shape, mode), x), rel=1e-12)


@pytest.mark.parametrize("mode, padding_mode, align_corners", GRID_OPTIONS)
def test_grid_sample_references_match_torch(mode, padding_mode, align_corners):
    torch = torch_or_skip()
    rng = numpy.random.default_rng(2)
    x, grid = rng.standard_normal((2, 2, 3, 4)), rng.uniform(-2.0, 2.0, (2, 3, 2, 2))
    grid[0, 0] = numpy.round(grid[0, 0] * 4) / 4  # a few points on edges, centres or halves
    g = rng.standard_normal((2, 2, 3, 2))
    xt, gt = to_torch(x, requires_grad=True), to_torch(grid, requires_grad=True)
    yt = torch.nn.functional.grid_sample(xt, gt, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    yt.backward(to_torch(g))
    numpy.testing.assert_allclose(grid_sample_reference(x, grid, mode, padding_mode, align_corners), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    grad_x, grad_grid = grid_sample_backward_reference(g, x, grid, mode, padding_mode, align_corners)
    numpy.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(grad_grid, gt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode, n", [("nearest", 2), ("nearest-exact", 2), ("bilinear", 2), ("linear", 1), ("trilinear", 3), ("area", 2)])
def test_interpolate_references_match_torch(mode, n):
    torch = torch_or_skip()
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal((1, 2) + (3, 4, 2)[:n])
    for size in ((5, 2, 3)[:n], (2, 7, 4)[:n]):
        for align_corners in ((False, True) if mode in ("linear", "bilinear", "trilinear") else (None,)):
            xt = to_torch(x, requires_grad=True)
            yt = torch.nn.functional.interpolate(xt, size=size, mode=mode, align_corners=align_corners)
            g = rng.standard_normal(tuple(yt.shape))
            yt.backward(to_torch(g))
            align = bool(align_corners)
            numpy.testing.assert_allclose(interpolate_reference(x, size, mode, align), yt.detach().numpy(), rtol=1e-12, atol=1e-13)
            numpy.testing.assert_allclose(interpolate_backward_reference(g, x.shape, mode, align), xt.grad.numpy(), rtol=1e-12, atol=1e-13)
