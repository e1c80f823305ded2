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
from helpers import to_torch, torch_or_skip
from poolref import _sampling_weights as weights
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.reference import sampling as ref
from poolref.testing import assert_matches
from poolref.testing.strategies import smooth_values

SIZES = [(3, 5), (5, 3), (4, 8), (7, 7), (1, 4), (4, 1), (14, 46), (6, 37), (2, 50), (3, 47), (1, 5), (10, 25), (2, 6), (9, 2)]


def sprinkle(rng, a, fraction=0.15):
    """A copy of ``a`` with about ``fraction`` of its entries NaN, +inf or -inf."""
    a = numpy.array(a, dtype=numpy.float64)
    pick = rng.random(a.shape)
    a[pick < fraction / 3] = numpy.nan
    a[(pick >= fraction / 3) & (pick < 2 * fraction / 3)] = numpy.inf
    a[(pick >= 2 * fraction / 3) & (pick < fraction)] = -numpy.inf
    return a


def _rows(taps):
    """A Taps table as one list of (position, weight) per output: the taps read, in order."""
    reads = taps.reads()
    return [[(int(i), float(w)) for i, w, r in zip(taps.index[o], taps.weights()[o], reads[o]) if r]
            for o in range(taps.out_length)]


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
            assert _rows(weights.torch_cubic(L, O, align, s, dtype)) == [ref.torch_cubic_taps(o, L, O, align, s, dtype) for o in range(O)]
            assert (_rows(weights.torch_antialias(L, O, align, s, dtype, cubic=True))
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
    """(x, kwargs, output_size, scale_factors for the reference) for a bicubic interpolate."""
    spatial = (draw(st.integers(1, max_size)), draw(st.integers(1, max_size)))
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((draw(st.integers(1, 2)), draw(st.integers(1, 2))) + spatial)
    if non_finite and draw(st.booleans()):
        x = sprinkle(rng, x)
    kwargs = {"mode": "bicubic", "align_corners": draw(st.sampled_from([None, False, True])),
              "antialias": draw(st.booleans())}
    if draw(st.booleans()):
        out = (draw(st.integers(1, max_out)), draw(st.integers(1, max_out)))
        kwargs["size"] = out
        factors = (None, None)
    else:
        factors = tuple(draw(st.integers(math.ceil(100 / L), 300).map(lambda k: k / 100)) for L in spatial)
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


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32])
@pytest.mark.parametrize("kwargs", [
    dict(size=(7, 3), mode="bicubic"), dict(size=(7, 3), mode="bicubic", align_corners=True),
    dict(size=(2, 9), mode="bicubic", antialias=True), dict(size=(5, 6), mode="bicubic"),
])
def test_bicubic_low_precision_matches_loop_reference(dtype, kwargs):
    rng = numpy.random.default_rng(7)
    x = sprinkle(rng, rng.standard_normal((2, 2, 5, 6)), 0.1).astype(dtype)
    y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
    g = sprinkle(rng, rng.standard_normal(y.shape), 0.1).astype(dtype)
    grad = pullback(g)[0]
    assert y.dtype == dtype and grad.dtype == dtype
    align, antialias = bool(kwargs.get("align_corners")), bool(kwargs.get("antialias"))
    tol = 4e-3 if dtype == numpy.float16 else 2e-6
    assert_matches(y, ref.interpolate_reference(x, kwargs["size"], "bicubic", align, antialias=antialias), rtol=tol, atol=tol)
    want = ref.interpolate_backward_reference(g, x.shape, "bicubic", align, antialias=antialias, dtype=dtype)
    assert_matches(grad, want, rtol=tol, atol=tol, what="gradient")


@pytest.mark.parametrize("kwargs", [dict(size=(7, 3), mode="bicubic"), dict(size=(2, 9), mode="bicubic", antialias=True)])
def test_bicubic_non_contiguous_and_empty_inputs(kwargs):
    rng = numpy.random.default_rng(8)
    base = sprinkle(rng, rng.standard_normal((3, 2, 6, 10)), 0.1)
    for view in (base[::-1, :, ::-1, ::2], base.transpose(1, 0, 2, 3), base[:, :, 1:, 3:]):
        y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), view)
        y_copy, pullback_copy = vjp(lambda t: poolref.interpolate(t, **kwargs), numpy.ascontiguousarray(view))
        assert_matches(y, y_copy, rtol=0)
        g = sprinkle(rng, rng.standard_normal(y.shape), 0.1)[:, :, ::-1]
        assert_matches(pullback(g)[0], pullback_copy(numpy.ascontiguousarray(g))[0], rtol=0, what="gradient")
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
def _torch_pair(x, g, **kwargs):
    """PyTorch's output and input gradient, and poolref's."""
    torch = torch_or_skip()
    xt = to_torch(x, requires_grad=True)
    yt = torch.nn.functional.interpolate(xt, **kwargs)
    yt.backward(to_torch(g))
    y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
    return (y, pullback(g)[0]), (yt.detach().numpy(), xt.grad.numpy())


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
            (y, grad), (y_torch, grad_torch) = _torch_pair(x, upstream, **kwargs)
            assert_matches(y, y_torch, rtol=1e-12, atol=1e-13)
            if numpy.isfinite(x).all():  # the gradient does not depend on x
                assert_matches(grad, grad_torch, rtol=1e-12, atol=1e-13, what="gradient")


def test_bicubic_forward_reads_neighbours_even_when_the_size_does_not_change():
    # PyTorch's bicubic forward resamples an axis of unchanged size (it does not copy): a point on a
    # pixel reads its neighbours with weight 0, so an infinity spreads as NaN to them
    x = numpy.zeros((1, 1, 1, 6))
    x[..., 2] = numpy.inf
    for align in (False, True):
        (y, _), (y_torch, _) = _torch_pair(x, numpy.zeros((1, 1, 1, 6)), size=(1, 6), mode="bicubic", align_corners=align)
        assert_matches(y, y_torch, rtol=0)
        assert numpy.isnan(y[0, 0, 0, :4]).all() and y[0, 0, 0, 4:].tolist() == [0.0, 0.0]


def test_bicubic_backward_copies_when_no_size_changes_like_torch():
    # ... but its backward copies the gradient when no spatial size changes: an infinite gradient
    # reaches its own pixel only (transposing the taps would make its neighbours NaN)
    g = numpy.zeros((1, 1, 3, 4))
    g[0, 0, 1, 1] = numpy.inf
    for kwargs in (dict(size=(3, 4)), dict(scale_factor=1.0), dict(size=(3, 4), align_corners=True)):
        (_, grad), (_, grad_torch) = _torch_pair(numpy.zeros((1, 1, 3, 4)), g, mode="bicubic", **kwargs)
        assert_matches(grad, grad_torch, rtol=0, what="gradient")
        assert numpy.isfinite(grad[0, 0, 0]).all() and grad[0, 0, 1, 1] == numpy.inf
    # when one size changes, every axis is transposed (the unchanged one's zero-weight taps included)
    g = numpy.zeros((1, 1, 3, 8))
    g[0, 0, 1, 3] = numpy.inf
    (_, grad), (_, grad_torch) = _torch_pair(numpy.zeros((1, 1, 3, 4)), g, size=(3, 8), mode="bicubic")
    assert_matches(grad, grad_torch, rtol=0, what="gradient")
    assert numpy.isnan(grad[0, 0, 0]).all()


def test_bicubic_same_size_with_a_scale_factor_keeps_the_derivative():
    # 4 -> floor(4 * 1.1) = 4 with scale 1/1.1: PyTorch's forward resamples, its backward copies, which
    # is not the forward's derivative (poolref.oracle.defects); poolref returns the derivative
    x = numpy.arange(4.0).reshape(1, 1, 1, 4)
    kwargs = dict(scale_factor=(1.0, 1.1), mode="bicubic")
    assert gradcheck(lambda t: poolref.interpolate(t, **kwargs), x)
    (y, grad), (y_torch, grad_torch) = _torch_pair(x, numpy.eye(4)[1].reshape(1, 1, 1, 4), **kwargs)
    assert_matches(y, y_torch, rtol=1e-12)
    assert grad_torch.ravel().tolist() == [0.0, 1.0, 0.0, 0.0] and grad.ravel().tolist() != [0.0, 1.0, 0.0, 0.0]


def test_antialiased_bicubic_backward_resamples_an_axis_the_forward_copies():
    x = numpy.zeros((1, 1, 1, 6))
    g = numpy.zeros((1, 1, 1, 6))
    g[..., 2] = numpy.inf
    (y, grad), (y_torch, grad_torch) = _torch_pair(x, g, size=(1, 6), mode="bicubic", antialias=True)
    assert_matches(grad, grad_torch, rtol=0, what="gradient")
    assert numpy.isnan(grad[0, 0, 0, [1, 3, 4]]).all() and grad[0, 0, 0, 0] == 0.0


@pytest.mark.parametrize("call, error, words", [
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 4)), size=3, mode="bicubic"), ValueError, "x with shape (1, 1, 4)"),
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 2, 4, 4)), size=3, mode="bicubic"), ValueError, "(N, C, H, W)"),
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 4, 4)), size=3, mode="bicubic", align_corners=1), TypeError, "align_corners=1"),
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 4, 4)), size=3, mode="nearest", antialias=True), ValueError, "'bicubic'"),
    (lambda: poolref.interpolate(numpy.zeros((1, 1, 4, 4)), size=(3, 0), mode="bicubic"), ValueError, "size=(3, 0)"),
])
def test_bicubic_bad_input_names_the_argument(call, error, words):
    with pytest.raises(error) as caught:
        call()
    assert words in str(caught.value)
