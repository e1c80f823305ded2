"""Bilinear (second-order) pooling: worked examples, loop reference vs vectorised (finite and
non-finite values), gradcheck, PyTorch's composition, eps floors, float32 range."""

import math

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolref
from helpers import plant_nonfinite, to_torch, torch_or_skip
from poolref.autograd import gradcheck, vjp
from poolref.ops.bilinear import bilinear_pool
from poolref.ops.learned import gem_pool
from poolref.reference import learned as ref
from poolref.testing import assert_matches
from poolref.testing.strategies import smooth_values
from poolref.testing.torch_compositions import bilinear_by_einsum
from test_learned import global_shapes, seeds  # the shape strategies of the global pooling ops


def _away_from_zero_products(shape, channels_y, seed):
    """x > 0 and y of one sign per channel: every B[c, d] is at least 0.25 in size (smooth signed sqrt)."""
    rng = numpy.random.default_rng(seed)
    x = rng.uniform(0.5, 1.5, shape)
    signs = rng.choice([-1.0, 1.0], size=(1, channels_y) + (1,) * (len(shape) - 2))
    y = rng.uniform(0.5, 1.5, (shape[0], channels_y) + shape[2:]) * signs
    return x, y


FLAGS = [(s, n) for s in (False, True) for n in (False, True)]


def test_bilinear_worked_examples():
    x = numpy.array([[[1.0, 3.0], [2.0, 4.0]]])  # C = 2, two positions: x_0 = (1, 2), x_1 = (3, 4)
    B = numpy.array([[5.0, 7.0, 7.0, 10.0]])  # ((1,2)(1,2)^T + (3,4)(3,4)^T) / 2
    assert bilinear_pool(x, signed_sqrt=False, l2_normalize=False).tolist() == B.tolist()
    s = numpy.sqrt(B + 1e-12)
    assert_matches(bilinear_pool(x, l2_normalize=False), s, rtol=1e-15)
    assert_matches(bilinear_pool(x), s / numpy.linalg.norm(s), rtol=1e-15)
    # a second factor with 3 channels: (N, 2 * 3), B[c, d] at c * 3 + d
    y = numpy.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    assert bilinear_pool(x, y, signed_sqrt=False, l2_normalize=False).tolist() == [[0.5, 1.5, 2.0, 1.0, 2.0, 3.0]]


@given(global_shapes(channels=(1, 3)), st.integers(1, 3), st.sampled_from(FLAGS), st.booleans(), seeds)
def test_bilinear_matches_loop_reference(shape, channels_y, flags, with_y, seed):
    signed_sqrt, l2 = flags
    x = smooth_values(shape, seed)
    y = smooth_values((shape[0], channels_y) + shape[2:], seed + 1) if with_y else None
    out, pullback = vjp(lambda a, b: bilinear_pool(a, b, signed_sqrt=signed_sqrt, l2_normalize=l2), x, y)
    assert out.shape == (shape[0], shape[1] * (channels_y if with_y else shape[1]))
    assert_matches(out, ref.bilinear_pool_reference(x, y, signed_sqrt, l2, 1e-12), rtol=1e-12, atol=1e-14)
    g = smooth_values(out.shape, seed + 2)
    grad_x, grad_y = pullback(g)
    want_x, want_y = ref.bilinear_pool_backward_reference(g, x, y, signed_sqrt, l2, 1e-12)
    # the signed-sqrt slope 1/(2 sqrt|B|) amplifies rounding where |B| is small: relative tolerance
    assert_matches(grad_x, want_x, rtol=1e-9, atol=1e-12, what="gradient to x")
    if with_y:
        assert_matches(grad_y, want_y, rtol=1e-9, atol=1e-12, what="gradient to y")
    else:
        assert grad_y is None and want_y is None


# at least two products per sample: L2 normalisation maps a single product to +-1, a constant
@settings(max_examples=15)
@given(global_shapes(batch=(1, 2), channels=(1, 2)), st.integers(2, 3), st.sampled_from(FLAGS), seeds)
def test_bilinear_gradcheck_x_and_y(shape, channels_y, flags, seed):
    signed_sqrt, l2 = flags
    x, y = _away_from_zero_products(shape, channels_y, seed)
    fn = lambda a, b: bilinear_pool(a, b, signed_sqrt=signed_sqrt, l2_normalize=l2)  # noqa: E731
    assert gradcheck(fn, x, y, rtol=1e-6)
    assert gradcheck(lambda a: bilinear_pool(a, signed_sqrt=signed_sqrt, l2_normalize=l2), x, rtol=1e-6)


@given(global_shapes(batch=(1, 2)), st.integers(1, 3), st.sampled_from(FLAGS), st.booleans(), seeds)
def test_bilinear_matches_torch(shape, channels_y, flags, with_y, seed):
    torch = torch_or_skip()
    signed_sqrt, l2 = flags
    x, y = _away_from_zero_products(shape, channels_y, seed) if signed_sqrt else (
        smooth_values(shape, seed), smooth_values((shape[0], channels_y) + shape[2:], seed + 1))
    y = y if with_y else None
    xt = to_torch(x, requires_grad=True)
    yt = to_torch(y, requires_grad=True) if with_y else None
    zt = bilinear_by_einsum(torch, xt, yt, signed_sqrt, l2, 1e-12)
    g = smooth_values(tuple(zt.shape), seed + 5)
    zt.backward(to_torch(g))
    z, pullback = vjp(lambda a, b: bilinear_pool(a, b, signed_sqrt=signed_sqrt, l2_normalize=l2), x, y)
    assert_matches(z, zt.detach().numpy(), rtol=1e-12, atol=1e-15)
    grad_x, grad_y = pullback(g)
    assert_matches(grad_x, xt.grad.numpy(), rtol=1e-10, atol=1e-13, what="gradient to x")
    if with_y:
        assert_matches(grad_y, yt.grad.numpy(), rtol=1e-10, atol=1e-13, what="gradient to y")


def test_bilinear_y_none_is_x_with_itself_and_gets_both_gradients():
    x = smooth_values((2, 3, 4, 2), 7)
    g = smooth_values((2, 9), 8)
    alone, pullback_alone = vjp(lambda a: bilinear_pool(a), x)
    t = poolref.Tensor(x, requires_grad=True)
    with poolref.Tape() as tape:
        twice = bilinear_pool(t, t)  # x passed twice: the tape adds the two gradients (fan-in)
    assert_matches(alone, twice.data, rtol=0)
    assert_matches(pullback_alone(g)[0], tape.gradient(twice, t, g), rtol=1e-13, atol=1e-15)
    # and the gradient is the sum of the two factors' gradients, not one of them
    _, pullback_pair = vjp(lambda a, b: bilinear_pool(a, b), x, x.copy())
    grad_a, grad_b = pullback_pair(g)
    assert_matches(pullback_alone(g)[0], grad_a + grad_b, rtol=1e-13, atol=1e-15)


def test_bilinear_signed_sqrt_eps_near_zero():
    # one channel, one position: B = a b, s = sign(B) sqrt(|B| + eps), ds/dB = 1 / (2 sqrt(|B| + eps))
    eps = 1e-12
    for a, b in ((1e-10, 1e-10), (-1e-10, 3e-11), (2.0, -3.0)):
        x, y = numpy.array([[[a]]]), numpy.array([[[b]]])
        B = a * b
        s, pullback = vjp(lambda u, v: bilinear_pool(u, v, l2_normalize=False), x, y)
        assert s[0, 0] == pytest.approx(math.copysign(math.sqrt(abs(B) + eps), B), rel=1e-15)
        grad_x, grad_y = pullback(numpy.ones((1, 1)))
        slope = 1 / (2 * math.sqrt(abs(B) + eps))
        assert grad_x[0, 0, 0] == pytest.approx(slope * b, rel=1e-14)
        assert grad_y[0, 0, 0] == pytest.approx(slope * a, rel=1e-14)
        # eps caps the slope: at most 1 / (2 sqrt(eps)) = 5e5 per unit of B
        assert slope <= 1 / (2 * math.sqrt(eps))
    # B = 0 exactly: s = 0, and the gradient is 0 (finite), as PyTorch's composition gives
    zero = numpy.zeros((1, 2, 3))
    s, pullback = vjp(lambda u: bilinear_pool(u, l2_normalize=False), zero)
    assert s.tolist() == [[0.0] * 4] and pullback(numpy.ones((1, 4)))[0].tolist() == zero.tolist()
    # B = 0 from nonzero, orthogonal factors: without the zero slope, y / (2 sqrt(eps)) would flow
    x, y = numpy.array([[[1.0, -1.0]]]), numpy.array([[[1.0, 1.0]]])
    s, pullback = vjp(lambda u, v: bilinear_pool(u, v, l2_normalize=False), x, y)
    assert s.tolist() == [[0.0]]
    grad_x, grad_y = pullback(numpy.ones((1, 1)))
    assert grad_x.tolist() == [[[0.0, 0.0]]] and grad_y.tolist() == [[[0.0, 0.0]]]
    # a larger eps enters the root directly
    assert bilinear_pool(numpy.array([[[2.0]]]), eps=0.5, l2_normalize=False)[0, 0] == pytest.approx(math.sqrt(4.5))


def test_bilinear_l2_norm_floor_is_eps_as_torch_normalize():
    torch = torch_or_skip()
    eps = 1e-12
    # tiny features: ||B|| ~ 1e-14 < eps, so the row is divided by eps, not made unit length
    x = numpy.array([[[1e-7, 2e-7], [3e-7, -1e-7]]])
    B = bilinear_pool(x, signed_sqrt=False, l2_normalize=False)
    assert numpy.linalg.norm(B) < eps
    z, pullback = vjp(lambda u: bilinear_pool(u, signed_sqrt=False), x)
    assert_matches(z, B / eps, rtol=1e-15)
    assert numpy.linalg.norm(z) < 1
    xt = to_torch(x, requires_grad=True)
    zt = bilinear_by_einsum(torch, xt, None, False, True, eps)
    g = numpy.array([[1.0, -2.0, 0.5, 3.0]])
    zt.backward(to_torch(g))
    assert_matches(z, zt.detach().numpy(), rtol=1e-14)
    assert_matches(pullback(g)[0], xt.grad.numpy(), rtol=1e-12)  # g / eps through B: no projection
    # above the floor: unit length, whatever eps (here 1e-3)
    big = numpy.array([[[1.0, 2.0], [3.0, -1.0]]])
    assert numpy.linalg.norm(bilinear_pool(big, signed_sqrt=False, eps=1e-3)) == pytest.approx(1.0, rel=1e-15)
    # with the signed sqrt, every nonzero |s| >= sqrt(eps) >> eps: only an all-zero row hits the floor,
    # and it stays zero with a zero gradient
    z0, pullback0 = vjp(lambda u: bilinear_pool(u), numpy.zeros((2, 2, 3)))
    assert numpy.all(z0 == 0) and numpy.all(pullback0(numpy.ones((2, 4)))[0] == 0)


@given(global_shapes(batch=(1, 2), channels=(2, 3)), seeds, st.floats(0.1, 10.0))  # C = 1 normalises to the constant 1
def test_bilinear_l2_normalised_is_scale_invariant_and_unit_length(shape, seed, scale):
    x = smooth_values(shape, seed)
    z = bilinear_pool(x, signed_sqrt=False)
    assert_matches(numpy.linalg.norm(z, axis=1), numpy.ones(shape[0]), rtol=1e-12)
    assert_matches(bilinear_pool(scale * x, signed_sqrt=False), z, rtol=1e-10, atol=1e-14)
    # the flattened B of x with itself is symmetric: B[c, d] = B[d, c]
    C = shape[1]
    square = z.reshape(shape[0], C, C)
    assert_matches(square, square.transpose(0, 2, 1), rtol=0)


@pytest.mark.parametrize("poisoned", ["x", "y", "gradient"])
@pytest.mark.parametrize("flags", FLAGS)
def test_bilinear_of_two_maps_matches_loop_reference_and_torch_on_nonfinite_values(flags, poisoned):
    signed_sqrt, l2 = flags
    x, y = smooth_values((2, 3, 4, 5), 88), smooth_values((2, 2, 4, 5), 89)
    if poisoned == "x":
        x = plant_nonfinite(x, 90, fraction=0.1)
    if poisoned == "y":
        y = plant_nonfinite(y, 91, fraction=0.1)
    fn = lambda a, b: bilinear_pool(a, b, signed_sqrt=signed_sqrt, l2_normalize=l2)  # noqa: E731
    z, pullback = vjp(fn, x, y)
    assert_matches(z, ref.bilinear_pool_reference(x, y, signed_sqrt, l2, 1e-12), rtol=1e-11, atol=1e-14)
    g = smooth_values(z.shape, 92)
    if poisoned == "gradient":
        g = plant_nonfinite(g, 93, fraction=0.3)
    grad_x, grad_y = pullback(g)
    want_x, want_y = ref.bilinear_pool_backward_reference(g, x, y, signed_sqrt, l2, 1e-12)
    assert_matches(grad_x, want_x, rtol=1e-10, atol=1e-14, what="gradient of x")
    assert_matches(grad_y, want_y, rtol=1e-10, atol=1e-14, what="gradient of y")
    torch = torch_or_skip()
    xt, yt = to_torch(x, requires_grad=True), to_torch(y, requires_grad=True)
    zt = bilinear_by_einsum(torch, xt, yt, signed_sqrt, l2, 1e-12)
    zt.backward(to_torch(g))
    assert_matches(z, zt.detach().numpy(), rtol=1e-10, atol=1e-14)
    assert_matches(grad_x, xt.grad.numpy(), rtol=1e-9, atol=1e-13, what="gradient of x (torch)")
    assert_matches(grad_y, yt.grad.numpy(), rtol=1e-9, atol=1e-13, what="gradient of y (torch)")


def test_bilinear_self_gradient_adds_the_two_factors_after_the_products_as_torch():
    # B = x x^T / P: x receives G x + G^T x. With an infinite x the two products can be +inf and
    # -inf: their sum is NaN, as in PyTorch's autograd (which adds the two factors' gradients);
    # (G + G^T) x, computed first, gave an infinity there instead
    x = numpy.array([[[numpy.inf, 1.0], [1.0, 1.0]]])  # channel 0 is +inf at position 0
    g = numpy.array([[0.0, 1.0, -2.0, 0.0]])  # G = [[0, 1], [-2, 0]]: G[0,1] = 1, G[1,0] = -2
    _, pullback = vjp(lambda t: bilinear_pool(t, signed_sqrt=False, l2_normalize=False), x)
    grad = pullback(g)[0]
    # channel 1, position 0: (G x)[1] = -2 * inf = -inf, (G^T x)[1] = 1 * inf = +inf: NaN
    assert numpy.isnan(grad[0, 1, 0])
    assert_matches(grad, ref.bilinear_pool_backward_reference(g, x, None, False, False, 1e-12)[0], rtol=1e-15)
    torch = torch_or_skip()
    xt = to_torch(x, requires_grad=True)
    bilinear_by_einsum(torch, xt, None, False, False, 1e-12).backward(to_torch(g))
    assert_matches(grad, xt.grad.numpy(), rtol=1e-15, what="gradient (torch)")


def test_bilinear_products_do_not_overflow_or_underflow_in_float32():
    # B = x x^T / P squares the magnitude: float32 products of features around 1e20 overflowed (inf,
    # then NaN after the normalisation) and around 1e-25 underflowed to 0 (then sign(0) = 0 lost the
    # sqrt(eps) floor); the signed square root and the normalisation bring the true output back
    # into range, and float64 products hold every float32 square
    for v in (1e20, 1e30, 1e-25, 1e-30):
        x = (smooth_values((2, 3, 4, 5), 94, low=0.5, high=2.0) * v).astype(numpy.float32)
        z, pullback = vjp(lambda t: bilinear_pool(t), x)
        z64, pullback64 = vjp(lambda t: bilinear_pool(t), x.astype(numpy.float64))
        assert numpy.isfinite(z).all()
        assert_matches(z, z64, rtol=2e-6, atol=1e-7, what=f"output at {v}")
        g = smooth_values(z.shape, 95).astype(numpy.float32)
        assert_matches(pullback(g)[0], pullback64(g.astype(numpy.float64))[0].astype(numpy.float32), rtol=2e-5,
                       atol=float(numpy.abs(pullback64(g.astype(numpy.float64))[0]).max()) * 1e-6, what=f"gradient at {v}")


def test_gem_p_and_bilinear_y_are_never_modified():
    x = smooth_values((2, 3, 4), 17, low=0.1, high=2.0)
    p = numpy.array([2.5])
    _, pullback = vjp(lambda t, q: gem_pool(t, q), x, p)
    pullback(numpy.ones((2, 3, 1)))
    assert p.tolist() == [2.5]
    y = smooth_values((2, 2, 4), 18)
    y_copy, x_copy = y.copy(), x.copy()
    _, pullback = vjp(lambda a, b: bilinear_pool(a, b), x, y)
    pullback(numpy.ones((2, 6)))
    numpy.testing.assert_array_equal(y, y_copy)
    numpy.testing.assert_array_equal(x, x_copy)
