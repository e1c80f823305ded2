"""relu, sigmoid, dropout and concat: gradcheck, the subgradient at 0, PyTorch (value and gradient, NaN included), dtypes."""

import numpy
import pytest

from helpers import to_torch, torch_or_skip
from poolref.autograd import Tensor, gradcheck, vjp
from poolref.nn import relu, sigmoid
from poolref.testing import assert_matches


# ----- relu -----
def test_relu_gradcheck_and_subgradient_at_zero():
    x = numpy.array([[-1.5, -0.25, 0.5], [2.0, -3.0, 0.75]])
    assert gradcheck(relu, x, rtol=1e-6)
    y, pullback = vjp(relu, numpy.array([-1.0, 0.0, 2.0]))
    assert y.tolist() == [0.0, 0.0, 2.0] and pullback(numpy.ones(3))[0].tolist() == [0.0, 0.0, 1.0]


def test_relu_matches_torch_including_nan_and_zero():
    torch = torch_or_skip()
    x = numpy.array([-2.0, -0.0, 0.0, 1e-300, numpy.nan, numpy.inf, -numpy.inf, 3.0])
    g = numpy.arange(1.0, 9.0)
    y, pullback = vjp(relu, x)
    tx = to_torch(x, True)
    ty = torch.relu(tx)
    ty.backward(to_torch(g))
    assert_matches(y, ty.detach().numpy(), rtol=0)
    assert_matches(pullback(g)[0], tx.grad.numpy(), rtol=0)


def test_relu_keeps_dtype_and_does_not_modify_input():
    x = numpy.array([-1.0, 2.0], dtype=numpy.float16)
    y = relu(x)
    assert y.dtype == numpy.float16 and x.tolist() == [-1.0, 2.0]
    assert relu(numpy.array([-3, 4])).tolist() == [0, 4]  # integers work (no gradient to define)
    assert isinstance(relu(Tensor(x)), Tensor)


# ----- sigmoid -----
def test_sigmoid_gradcheck_and_matches_torch_including_extremes_and_nan():
    torch = torch_or_skip()
    assert gradcheck(sigmoid, numpy.array([[-3.0, -0.25, 0.5], [2.0, 7.5, 0.0]]))
    x = numpy.array([-1000.0, -30.0, -0.0, 0.0, 1e-300, 30.0, 1000.0, numpy.nan, numpy.inf, -numpy.inf])
    g = numpy.arange(1.0, 11.0)
    y, pullback = vjp(sigmoid, x)
    tx = to_torch(x, True)
    ty = torch.sigmoid(tx)
    ty.backward(to_torch(g))
    assert_matches(y, ty.detach().numpy(), rtol=1e-15, atol=0)
    assert_matches(pullback(g)[0], tx.grad.numpy(), rtol=1e-15, atol=1e-300)


def test_sigmoid_keeps_dtype_and_does_not_overflow():
    x = numpy.array([-100.0, 0.0, 100.0], dtype=numpy.float16)
    with numpy.errstate(over="raise", invalid="raise"):
        y = sigmoid(x)
    assert y.dtype == numpy.float16 and y.tolist() == [0.0, 0.5, 1.0]


# ----- dropout -----
def test_dropout_scales_the_kept_and_zeroes_the_dropped_with_the_same_factor_backward():
    from poolref.nn import dropout

    x = numpy.random.default_rng(0).standard_normal(400)
    y, pullback = vjp(lambda x: dropout(x, 0.25, rng=7), x)
    kept = y != 0
    assert 0.65 < kept.mean() < 0.85
    noise = 1 / 0.75  # the factor is formed first, then multiplied (PyTorch's order)
    numpy.testing.assert_array_equal(y[kept], x[kept] * noise)
    g = numpy.arange(400.0)
    numpy.testing.assert_array_equal(pullback(g)[0], numpy.where(kept, g * noise, 0.0))
    assert gradcheck(lambda x: dropout(x, 0.25, rng=7), x[:20], rtol=1e-6)


def test_dropout_same_seed_same_mask_and_evaluation_is_the_identity():
    from poolref.nn import Dropout, dropout

    x = numpy.ones(64)
    assert (dropout(x, 0.5, rng=3) == dropout(x, 0.5, rng=3)).all()
    assert dropout(x, 0.5, training=False) is x and dropout(x, 0.0, rng=1).tolist() == x.tolist()
    layer = Dropout(0.5, rng=3)
    first, second = layer(x), layer(x)
    assert (first != second).any()  # a layer's generator advances
    assert layer.eval()(x) is x


def test_dropout_keeps_torchs_rule_for_dropped_nan_and_infinity_and_p_one():
    # PyTorch multiplies by the noise m / (1 - p): a dropped NaN or infinity gives NaN; p = 1 is x * 0
    torch = torch_or_skip()
    from poolref.nn import dropout

    x = numpy.array([numpy.nan, numpy.inf, -numpy.inf, 1.0, -2.0] * 20)
    kept = dropout(numpy.ones_like(x), 0.5, rng=0) != 0  # the mask seed 0 draws for this shape
    y = dropout(x, 0.5, rng=0)
    finite = numpy.isfinite(x)
    assert numpy.isnan(y[~kept & ~finite]).all() and (y[~kept & finite] == 0).all()
    assert_matches(y[kept], 2 * x[kept], rtol=0)
    their = torch.nn.functional.dropout(torch.tensor(x), 1.0, True).numpy()
    ours, pullback = vjp(lambda x: dropout(x, 1.0), x)
    assert_matches(ours, their, rtol=0)  # NaN where x is NaN or infinite, zero elsewhere
    assert (pullback(numpy.ones_like(x))[0] == 0).all()
    tx = torch.tensor(x[3:5], requires_grad=True)
    torch.nn.functional.dropout(tx, 1.0, True).backward(torch.ones(2))
    assert tx.grad.tolist() == [0.0, 0.0]


def test_dropout_float16_noise_is_formed_in_float16_as_torch():
    from poolref.nn import dropout

    x = numpy.full(50, 3.0, numpy.float16)
    y = dropout(x, 0.3, rng=1)
    factor = (numpy.float16(1) / numpy.float16(0.7)).astype(numpy.float16)
    assert y.dtype == numpy.float16 and set(y.tolist()) <= {0.0, float(x[0] * factor)}


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True])
def test_dropout_refuses_a_p_outside_zero_one(p):
    from poolref.nn import Dropout

    with pytest.raises(ValueError, match="p="):
        Dropout(p)


# ----- concat -----
def test_concat_copies_every_value_and_its_backward_is_the_split():
    from poolref.nn import concat

    a = numpy.array([[[-0.0, numpy.nan]]], dtype=numpy.float16)  # (1, 1, 2)
    b = numpy.array([[[numpy.inf, 1.0]], [[2.0, 3.0]]], dtype=numpy.float16)[::-1][:1]  # (1, 1, 2) a negative-stride view
    y = concat([a, b], axis=-2)
    assert y.shape == (1, 2, 2) and y.dtype == numpy.float16
    assert_matches(y, numpy.concatenate([a, b], axis=1), rtol=0, zero_sign=True)
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    g = numpy.arange(4.0, dtype=numpy.float16).reshape(1, 2, 2)
    concat([ta, tb], axis=1).backward(g)
    assert ta.grad.tolist() == [[[0.0, 1.0]]] and tb.grad.tolist() == [[[2.0, 3.0]]]


def test_concat_gradcheck_and_adjoint_over_three_parts():
    from poolref.autograd import adjoint_test
    from poolref.nn import concat

    rng = numpy.random.default_rng(0)
    parts = [rng.standard_normal((2, n, 3)) for n in (1, 3, 2)]
    assert gradcheck(lambda *p: concat(list(p), axis=1), *parts, rtol=1e-6)
    assert adjoint_test(lambda *p: concat(list(p), axis=1), *parts)


@pytest.mark.parametrize("parts, axis, error, words", [
    ([], 0, ValueError, "parts=[]"),
    ([numpy.zeros((2, 3)), numpy.zeros((3, 3))], 1, ValueError, "parts[1] with shape (3, 3)"),
    ([numpy.zeros((2, 3)), numpy.zeros((2, 3), numpy.float32)], 0, TypeError, "parts[1] with dtype float32"),
    ([numpy.zeros((2, 3))], 2, ValueError, "axis=2"),
    ([numpy.zeros(())], 0, ValueError, "at least one axis"),
])
def test_concat_bad_input_names_the_argument(parts, axis, error, words):
    from poolref.nn import concat

    with pytest.raises(error) as info:
        concat(parts, axis)
    assert words in str(info.value)
