"""poolref.nn.ShapeAdaptor: Liu et al. (ECCV 2020) as the authors' code defines it.

Checked like nn.DynOPool: the sizes along a chain, the gradient to alpha, the memory-constraint
penalty, float64 gradchecks with adjoint tests, a plain-loop reference of the mix, and a PyTorch
composition of the authors' ``ShapeAdaptor`` (model_list.py) for outputs and gradients to x and alpha.
"""

import math

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import poolref
from poolref import nn
from poolref.autograd import adjoint_test, gradcheck, vjp
from poolref.autograd.tensor import Tensor


def _mix_loop(low, high, weight, gain):
    """Plain-loop reference of the mix: one output element at a time."""
    out = numpy.empty_like(low)
    with numpy.errstate(invalid="ignore"):  # 0 * inf: NaN
        for index in numpy.ndindex(low.shape):
            out[index] = gain * ((1 - weight) * low[index] + weight * high[index])
    return out


def _run_layer(layer, x, alpha, **kwargs):
    """The layer as a function of (x, alpha), for vjp/gradcheck: alpha replaces the parameter."""
    layer.alpha = alpha
    return layer(x, **kwargs)


# ----- the mix -------------------------------------------------------------------------------------
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_mix_equals_its_plain_loop_reference_with_nan_and_inf(gain):
    rng = numpy.random.default_rng(0)
    low, high = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    low[0, 0, 0, 0], high[1, 2, 3, 4], low[1, 1, 1, 1] = numpy.nan, numpy.inf, -numpy.inf
    for weight in (0.3, -0.2, 1.0):
        got = nn.shape_adaptor_mix(low, high, numpy.array(weight), gain=gain)
        numpy.testing.assert_array_equal(got, _mix_loop(low, high, weight, gain))


def test_mix_backward_equals_its_formula_with_nan_upstream_gradient():
    rng = numpy.random.default_rng(1)
    low, high = rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 2, 3, 3))
    grad = rng.standard_normal((2, 2, 3, 3))
    grad[0, 1, 2, 0] = numpy.nan
    _, pull = vjp(lambda a, b, w: nn.shape_adaptor_mix(a, b, w, gain=2.0), low, high, numpy.array(0.25))
    grad_low, grad_high, grad_weight = pull(grad)
    numpy.testing.assert_array_equal(grad_low, grad * (2.0 * 0.75))
    numpy.testing.assert_array_equal(grad_high, grad * (2.0 * 0.25))
    assert numpy.isnan(grad_weight)  # the NaN gradient reaches the weight, as it should
    finite = numpy.nan_to_num(grad)
    (_, _, grad_weight), = [pull(finite)]
    numpy.testing.assert_allclose(grad_weight, 2.0 * (finite * (high - low)).sum(), rtol=1e-13)


def test_mix_gradcheck_and_adjoint_float64():
    rng = numpy.random.default_rng(2)
    low, high, weight = rng.standard_normal((2, 3, 4, 3)), rng.standard_normal((2, 3, 4, 3)), numpy.array(0.4)
    fn = lambda a, b, w: nn.shape_adaptor_mix(a, b, w, gain=2.0)  # noqa: E731
    assert gradcheck(fn, low, high, weight, rtol=1e-6)
    assert adjoint_test(fn, low, high, weight)


@pytest.mark.parametrize("dtype", [numpy.float16, numpy.float32])
def test_mix_keeps_the_maps_dtype_and_mixes_float16_in_float32(dtype):
    low = numpy.full((1, 1, 2, 2), 1000.0, dtype=dtype)
    high = numpy.full((1, 1, 2, 2), 1001.0, dtype=dtype)
    y = nn.shape_adaptor_mix(low, high, numpy.array(0.5))
    assert y.dtype == dtype
    numpy.testing.assert_array_equal(y, numpy.full((1, 1, 2, 2), 1000.5, dtype=numpy.float32).astype(dtype))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 6), st.floats(-2.0, 3.0), st.integers(0, 2**31 - 1))
def test_mix_is_affine_in_the_weight(n, c, size, weight, seed):
    rng = numpy.random.default_rng(seed)
    low, high = rng.standard_normal((n, c, size, size)), rng.standard_normal((n, c, size, size))
    at = lambda w: nn.shape_adaptor_mix(low, high, numpy.array(w))  # noqa: E731
    numpy.testing.assert_allclose(at(weight), (1 - weight) * at(0.0) + weight * at(1.0), rtol=1e-12, atol=1e-12)


# ----- the layer -----------------------------------------------------------------------------------
def test_layer_is_the_mix_of_max_pool_and_identity_resized_bilinear_align_corners():
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal((2, 3, 12, 9))
    layer = nn.ShapeAdaptor(0.4)
    y = layer(x)
    sigma = 1 / (1 + math.exp(-0.4))
    s = 0.5 + 0.5 * sigma
    size = (int(12 * s), int(9 * s))
    low = poolref.interpolate(poolref.max_pool2d(x, 2), size=size, mode="bilinear", align_corners=True)
    high = poolref.interpolate(x, size=size, mode="bilinear", align_corners=True)
    numpy.testing.assert_allclose(y.data, (1 - sigma) * low + sigma * high, rtol=1e-14, atol=1e-14)
    assert layer.size == size and layer.true_scale == pytest.approx(s, abs=1e-15)
    assert [name for name, _ in layer.named_parameters()] == ["alpha"]
    assert "s=0.7" in repr(layer)


def test_local_structure_truncates_at_every_adaptor_and_global_rounds_once():
    x = numpy.zeros((1, 1, 32, 8))
    alpha = math.log(0.4 / 0.6)  # sigmoid 0.4: s = 0.7
    first, second = nn.ShapeAdaptor(alpha), nn.ShapeAdaptor(alpha)
    y = second(first(x), in_size=first.size)
    assert first.size == (22, 5) and second.size == (15, 3)  # int(32 * 0.7) = 22, int(22 * 0.7) = 15
    assert y.shape == (1, 1, 15, 3)
    first, second = nn.ShapeAdaptor(alpha, structure="global"), nn.ShapeAdaptor(alpha, structure="global")
    y = second(first(x), in_size=first.size)
    assert first.size == pytest.approx((22.4, 5.6)) and second.size == pytest.approx((15.68, 3.92))
    assert y.shape == (1, 1, 16, 4)  # round(15.68), round(3.92): not int(round(22.4) * 0.7) = 15


def test_output_size_is_at_least_one_when_the_tracked_size_reaches_zero():
    layer = nn.ShapeAdaptor(-9.0)
    y = layer(numpy.ones((1, 2, 2, 2)), in_size=(1, 1))
    assert layer.size == (0, 0) and y.shape == (1, 2, 1, 1)  # int(1 * 0.5) = 0, output at least 1
    numpy.testing.assert_array_equal(y.data, numpy.ones((1, 2, 1, 1)))


def test_alpha_learns_only_through_the_mixing_weight():
    rng = numpy.random.default_rng(4)
    x = rng.standard_normal((2, 2, 10, 10))
    layer = nn.ShapeAdaptor(0.3)
    layer(x).sum().backward()
    sigma = 1 / (1 + math.exp(-0.3))
    size = layer.size
    low = poolref.interpolate(poolref.max_pool2d(x, 2), size=size, mode="bilinear", align_corners=True)
    high = poolref.interpolate(x, size=size, mode="bilinear", align_corners=True)
    # dy/dalpha = sigma (1 - sigma) (high - low); the size, computed from the value of s, has no gradient
    numpy.testing.assert_allclose(layer.alpha.grad, sigma * (1 - sigma) * (high - low).sum(), rtol=1e-12)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("structure", ["local", "global"])
def test_layer_gradcheck_and_adjoint_float64(residual, structure):
    rng = numpy.random.default_rng(5)
    x = rng.standard_normal((2, 2, 9, 7))
    layer = nn.ShapeAdaptor(0.2, residual=residual, structure=structure)
    fn = lambda x, a: _run_layer(layer, x, a, penalty=0.8)  # noqa: E731 (s = 0.8 * 0.775: no size at a boundary)
    assert gradcheck(fn, x, numpy.array(0.2), rtol=1e-6)
    assert adjoint_test(fn, x, numpy.array(0.2))


def test_unbatched_float32_and_non_contiguous_inputs():
    rng = numpy.random.default_rng(6)
    x = rng.standard_normal((3, 10, 12)).astype(numpy.float32)
    layer = nn.ShapeAdaptor(0.0)
    y = layer(x)
    assert y.shape == (3, 7, 9) and y.dtype == numpy.float32  # int(10 * 0.75), int(12 * 0.75)
    numpy.testing.assert_array_equal(y.data, layer(x[None]).data[0])
    base = rng.standard_normal((2, 3, 12, 10))
    view = base.transpose(0, 1, 3, 2)[:, ::-1]  # transposed and negative-stride
    numpy.testing.assert_array_equal(layer(view).data, layer(numpy.ascontiguousarray(view)).data)
    assert layer(numpy.zeros((0, 3, 12, 10))).shape == (0, 3, 9, 7)


def test_a_nan_reaches_the_output_through_both_branches():
    x = numpy.zeros((1, 1, 8, 8))
    x[0, 0, 3, 3] = numpy.nan
    y = nn.ShapeAdaptor(0.0)(x).data
    assert numpy.isnan(y).any() and not numpy.isnan(y).all()


# ----- initialisation and the memory constraint ----------------------------------------------------
def test_shape_adaptor_init_reaches_the_output_size():
    alpha = nn.shape_adaptor_init(32, 8, 4)
    s = 0.5 + 0.5 / (1 + math.exp(-alpha))
    assert 32 * s**4 == pytest.approx(8, rel=1e-3)  # eps = 1e-4 inside the log
    assert nn.shape_adaptor_init(32, 4, 2) == math.log(1e-4)  # even two halvings leave 8 > 4


def test_penalty_is_one_below_the_limit_and_scales_to_the_limit_above():
    a, b = nn.ShapeAdaptor(0.5), nn.ShapeAdaptor(-0.3)
    total = a.scale() * b.scale()
    assert nn.shape_adaptor_penalty([a, b], total * 1.01) == 1.0
    p = nn.shape_adaptor_penalty([a, b], 0.3)
    assert (p * a.scale()) * (p * b.scale()) == pytest.approx(0.3, rel=1e-14)


def test_penalised_forward_scales_the_size_and_the_mixing_weight():
    x = numpy.random.default_rng(7).standard_normal((1, 2, 40, 20))
    layer = nn.ShapeAdaptor(1.0)
    p = 0.7
    layer(x, penalty=p).sum().backward()
    sigma = 1 / (1 + math.exp(-1.0))
    s = 0.5 + 0.5 * sigma
    assert layer.size == (int(40 * p * s), int(20 * p * s)) and layer.true_scale == pytest.approx(s)
    low = poolref.interpolate(poolref.max_pool2d(x, 2), size=layer.size, mode="bilinear", align_corners=True)
    high = poolref.interpolate(x, size=layer.size, mode="bilinear", align_corners=True)
    numpy.testing.assert_allclose(layer.alpha.grad, p * sigma * (1 - sigma) * (high - low).sum(), rtol=1e-12)


# ----- against a PyTorch composition of the authors' definition ------------------------------------
def _authors_shape_adaptor(torch, input1, input2, alpha, tracked, penalty, residual, structure, r1=0.5, r2=1.0):
    """lorenmt/shape-adaptor model_list.py's ShapeAdaptor, with the size tracked per axis."""
    sigmoid_alpha = torch.sigmoid(alpha) * penalty + r1 / (r2 - r1) * (penalty - 1)
    s_alpha = (r2 - r1) * sigmoid_alpha.item() + r1
    if structure == "local":
        current = [int(d * s_alpha) for d in tracked]
        dim = [1 if d < 1 else d for d in current]
    else:
        current = [d * s_alpha for d in tracked]
        dim = [1 if d < 1 else round(d) for d in current]
    F = torch.nn.functional
    input1_rs = F.interpolate(input1, size=dim, mode="bilinear", align_corners=True)
    input2_rs = F.interpolate(input2, size=dim, mode="bilinear", align_corners=True)
    if residual:
        return 2 * (1 - sigmoid_alpha) * input1_rs + 2 * sigmoid_alpha * input2_rs, current
    return (1 - sigmoid_alpha) * input1_rs + sigmoid_alpha * input2_rs, current


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("structure", ["local", "global"])
@pytest.mark.parametrize("penalty", [1.0, 0.83, 0.6])  # 0.6: the second weight below 0
def test_two_adaptors_match_the_authors_definition_in_torch(residual, structure, penalty):
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(8)
    x = rng.standard_normal((2, 3, 23, 17))
    g = rng.standard_normal
    alphas = (0.7, -0.4)
    first = nn.ShapeAdaptor(alphas[0], residual=residual, structure=structure)
    second = nn.ShapeAdaptor(alphas[1], residual=residual, structure=structure)
    xt = Tensor(x, requires_grad=True)
    y = second(first(xt, penalty=penalty), in_size=first.size, penalty=penalty)
    upstream = g(y.shape)
    (y * upstream).sum().backward()

    xt_torch = torch.tensor(x, requires_grad=True)
    alpha_torch = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in alphas]
    max_pool = torch.nn.functional.max_pool2d
    h, tracked = _authors_shape_adaptor(torch, max_pool(xt_torch, 2), xt_torch, alpha_torch[0], (23, 17), penalty,
                                        residual, structure)
    h, tracked = _authors_shape_adaptor(torch, max_pool(h, 2), h, alpha_torch[1], tracked, penalty, residual, structure)
    (h * torch.tensor(upstream)).sum().backward()

    assert tuple(h.shape) == y.shape
    numpy.testing.assert_allclose(y.data, h.detach().numpy(), rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(xt.grad, xt_torch.grad.numpy(), rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(first.alpha.grad, alpha_torch[0].grad.numpy(), rtol=1e-10)
    numpy.testing.assert_allclose(second.alpha.grad, alpha_torch[1].grad.numpy(), rtol=1e-10)


# ----- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"init_alpha": float("nan")}, "init_alpha"),
    ({"init_alpha": "1"}, "init_alpha"),
    ({"r1": 1.0, "r2": 0.5}, "r1"),
    ({"r1": 0.0}, "r1"),
    ({"r1": 0.25}, "low branch"),
    ({"r2": 2.0}, "high branch"),
    ({"structure": "square"}, "structure"),
])
def test_bad_construction_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.ShapeAdaptor(**kwargs)


def test_bad_forward_arguments_are_refused():
    layer, x = nn.ShapeAdaptor(), numpy.zeros((1, 1, 4, 4))
    for penalty in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="penalty"):
            layer(x, penalty=penalty)
    with pytest.raises(ValueError, match="x must be"):
        layer(numpy.zeros((4, 4)))
    with pytest.raises(ValueError, match="in_size"):
        layer(x, in_size=(4,))
    with pytest.raises(ValueError, match="in_size"):
        layer(x, in_size=(4, -1))
    with pytest.raises(ValueError, match="limit_scale"):
        nn.shape_adaptor_penalty([layer], 0.0)
    with pytest.raises(ValueError, match="adaptors"):
        nn.shape_adaptor_penalty([], 0.5)
    with pytest.raises(ValueError, match="one shape"):
        nn.shape_adaptor_mix(numpy.zeros((1, 2)), numpy.zeros((2, 1)), numpy.array(0.5))
    with pytest.raises(ValueError, match="scalar"):
        nn.shape_adaptor_mix(numpy.zeros(2), numpy.zeros(2), numpy.zeros(2))
