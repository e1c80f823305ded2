"""Tests of the plain-loop sampling references (poolref/reference/sampling/) on their own.

Hand-worked coordinates, the adjoint identity between each forward and backward reference, and the
references checked directly against PyTorch (skipped without torch), independently of the
vectorised ops.
"""

import itertools

import numpy
import pytest

from helpers import to_torch, torch_or_skip
from poolref.reference.sampling import (
    adaptive_bin_taps,
    grid_sample_backward_reference,
    grid_sample_reference,
    grid_source_coordinate,
    interpolate_backward_reference,
    interpolate_reference,
    jax_dense_taps,
    jax_nearest_index,
    nearest_source_index,
    resize_taps,
    tf_antialias_gradient_taps,
    tf_antialias_taps,
    tf_area_taps,
    tf_bilinear_lerp,
    tf_nearest_index,
    torch_antialias_taps,
    torch_linear_taps,
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
    # the same size: each pixel twice, with weights 1 and 0 (PyTorch's "copy")
    assert torch_linear_taps(2, 5, 5) == [(2, 1.0), (2, 0.0)]
    # float64: c = 49/49 rounded down to 0.9999999999999999, floored in float32 (floorf): pixel 1
    assert torch_linear_taps(49, 2, 50, align_corners=True) == [(1, 1.0), (1, 0.0)]
    # 1 -> 5, output 2: one fused multiply-add gives c = 2.8e-17, not 0: the second tap keeps a weight
    assert torch_linear_taps(2, 1, 5)[1][1] == pytest.approx(2.7755575615628914e-17, rel=1e-12)
    # float32 data: float32 coordinates. 1 -> 3, output 1: float32(1/3) * 1.5 - 0.5 = 1.5e-8 > 0 but
    # (1/3) * 1.5 - 0.5 < 0 in float64: PyTorch turns [inf] into [nan, inf, inf] in float32 and
    # [nan, nan, inf] in float64
    assert torch_linear_taps(1, 1, 3, dtype=numpy.float32) == [(0, 1.0), (0, 1.4901161193847656e-08)]
    assert torch_linear_taps(1, 1, 3) == [(0, 1.0), (0, 0.0)]
    # area: adaptive bins of 5 -> 3: [0, 2), [1, 4), [3, 5)
    assert [[i for i, _ in adaptive_bin_taps(o, 5, 3)] for o in range(3)] == [[0, 1], [1, 2, 3], [3, 4]]


def test_antialias_taps_worked_cases():
    # PyTorch, 6 -> 2: scale 3, the triangle 3 wide each side of the centres 1.5 and 4.5
    # output 0 reads the window [0, 5): weights 2/3, 1, 2/3, 1/3 and 0 (read all the same), normalized
    taps = torch_antialias_taps(0, 6, 2)
    assert [i for i, _ in taps] == [0, 1, 2, 3, 4]
    assert [w for _, w in taps] == pytest.approx([0.25, 0.375, 0.25, 0.125, 0.0], abs=1e-15)
    # upsampling 2 -> 6, output 1: centre 0.5, the window [0, 2) with weights 1 and 0 (read all the same)
    assert torch_antialias_taps(1, 2, 6) == [(0, 1.0), (1, 0.0)]
    # TensorFlow 2 -> 4: output 0 reads pixel 1 with weight 0 (its window is as wide as any output's)
    assert tf_antialias_taps(0, 2, 4) == [(0, 1.0), (1, 0.0)]
    # and its gradient reads, for input 0, the outputs that gave it a nonzero weight
    assert tf_antialias_gradient_taps(0, 2, 4) == [(0, 1.0), (1, 0.75), (2, 0.25)]


def test_tensorflow_and_jax_rules_worked_cases():
    # area 4 -> 3: out[1] covers [4/3, 8/3): two thirds of pixels 1 and 2
    assert [(i, round(w * 4 / 3, 4)) for i, w in tf_area_taps(1, 4, 3)] == [(1, 0.6667), (2, 0.6667)]
    # bilinear below 0: both taps are pixel 0, t the fraction of -0.25
    assert tf_bilinear_lerp(0, 2, 4) == (0, 0, 0.75)
    # legacy nearest with aligned corners rounds halves away from zero: 3 -> 5, o s = 0.5 -> 1
    assert [tf_nearest_index(o, 3, 5, half_pixel=False, align_corners=True) for o in range(5)] == [0, 1, 1, 2, 2]
    # JAX nearest: 10 -> 25, output 2 lands exactly on 1.0 in exact arithmetic, just below in XLA's
    assert [jax_nearest_index(o, 10, 25) for o in range(3)] == [0, 0, 0]
    # JAX dense weights read every input; area 3 -> 2: [0, 1.5) and [1.5, 3)
    assert [round(w, 4) for _, w in jax_dense_taps(0, 3, 2, "area")] == [0.6667, 0.3333, 0.0]


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


@pytest.mark.parametrize("mode, antialias, convention", [
    ("bilinear", True, "torch"), ("nearest", False, "tensorflow"), ("nearest-exact", False, "tensorflow"),
    ("bilinear", False, "tensorflow"), ("bilinear", True, "tensorflow"), ("area", False, "tensorflow"),
    ("nearest-exact", False, "jax"), ("bilinear", True, "jax"), ("bilinear", False, "jax"), ("area", False, "jax"),
])
def test_interpolate_references_of_every_convention_are_adjoint(mode, antialias, convention):
    # every backward reads what its framework reads, and for finite values that is the transpose
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((1, 2, 4, 5))
    for size in ((3, 7), (4, 5), (2, 2)):
        g = rng.standard_normal((1, 2) + size)
        y = interpolate_reference(x, size, mode, antialias=antialias, convention=convention)
        back = interpolate_backward_reference(g, x.shape, mode, antialias=antialias, convention=convention)
        assert _dot(g, y) == pytest.approx(_dot(back, x), rel=1e-12)


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


def _sprinkled(rng, shape):
    a = rng.standard_normal(shape)
    pick = rng.random(shape)
    a[pick < 0.06] = numpy.nan
    a[(pick >= 0.06) & (pick < 0.12)] = numpy.inf
    a[(pick >= 0.12) & (pick < 0.18)] = -numpy.inf
    return a


def test_antialias_reference_matches_torch():
    torch = torch_or_skip()
    rng = numpy.random.default_rng(4)
    x = _sprinkled(rng, (1, 2, 5, 7))
    for size in ((2, 3), (9, 4), (5, 2)):
        xt = to_torch(x, requires_grad=True)
        yt = torch.nn.functional.interpolate(xt, size=size, mode="bilinear", antialias=True)
        g = _sprinkled(rng, tuple(yt.shape))
        yt.backward(to_torch(g))
        numpy.testing.assert_allclose(interpolate_reference(x, size, "bilinear", antialias=True), yt.detach().numpy(), rtol=1e-12, atol=1e-13)
        numpy.testing.assert_allclose(interpolate_backward_reference(g, x.shape, "bilinear", antialias=True), xt.grad.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("method, kwargs", [("nearest", {}), ("bilinear", {}), ("bilinear", {"antialias": True}), ("area", {})])
def test_tensorflow_references_match_tensorflow(method, kwargs):
    tf = pytest.importorskip("tensorflow")
    rng = numpy.random.default_rng(5)
    x = _sprinkled(rng, (1, 2, 4, 6)).astype(numpy.float32)
    mode = "nearest-exact" if method == "nearest" else method
    for size in ((3, 4), (7, 9), (4, 6)):
        t = tf.constant(numpy.moveaxis(x, 1, -1))
        with tf.GradientTape() as tape:
            tape.watch(t)
            y = tf.image.resize(t, size, method=method, antialias=kwargs.get("antialias", False))
        g = _sprinkled(rng, (1, 2) + size).astype(numpy.float32)
        want = numpy.moveaxis(y.numpy(), -1, 1)
        numpy.testing.assert_allclose(interpolate_reference(x, size, mode, convention="tensorflow", **kwargs), want, rtol=3e-6, atol=3e-6)
        if method != "area":  # TensorFlow registers no gradient for ResizeArea
            grad = numpy.moveaxis(tape.gradient(y, t, output_gradients=tf.constant(numpy.moveaxis(g, 1, -1))).numpy(), -1, 1)
            back = interpolate_backward_reference(g, x.shape, mode, convention="tensorflow", dtype=numpy.float32, **kwargs)
            numpy.testing.assert_allclose(back, grad, rtol=3e-6, atol=3e-6)


@pytest.mark.parametrize("method, antialias", [("nearest", False), ("linear", True), ("linear", False), ("area", True)])
def test_jax_references_match_jax(method, antialias):
    jax = pytest.importorskip("jax")
    rng = numpy.random.default_rng(6)
    x = _sprinkled(rng, (1, 2, 4, 6))
    mode = {"nearest": "nearest-exact", "linear": "bilinear"}.get(method, method)
    size = (3, 9)
    g = _sprinkled(rng, (1, 2) + size)
    with jax.enable_x64(True):
        y, pullback = jax.vjp(lambda a: jax.image.resize(a, (1, 2) + size, method, antialias=antialias), x)
        y, grad = numpy.asarray(y), numpy.asarray(pullback(g)[0])
    flag = antialias and method == "linear"
    numpy.testing.assert_allclose(interpolate_reference(x, size, mode, antialias=flag, convention="jax"), y, rtol=1e-12, atol=1e-13)
    numpy.testing.assert_allclose(interpolate_backward_reference(g, x.shape, mode, antialias=flag, convention="jax"), grad, rtol=1e-12, atol=1e-13)
