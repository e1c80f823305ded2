"""relu and sigmoid: gradcheck, the subgradient at 0, PyTorch (value and gradient, NaN included), dtypes."""

import numpy

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
