"""vjp, gradcheck and adjoint_test: they pass on right backwards and catch wrong ones."""

import re

import numpy as np
import pytest

from poolref._backend import array_module, to_numpy
from poolref.autograd import Function, GradcheckError, Tensor, adjoint_test, apply, gradcheck, vjp


# A tiny (values, indices) op, shaped like max pooling with return_indices=True.
def _double_and_argmax_forward(x):
    return (x * 2, np.argmax(x, axis=-1)), None


def _double_backward(saved, grad_values, grad_indices):
    return (2 * grad_values,)


double_and_argmax = Function("double_and_argmax", _double_and_argmax_forward, _double_backward)

# The same op with a backward off by a factor of 2: what the checks must catch.
wrong_double = Function("wrong_double", _double_and_argmax_forward, lambda saved, gv, gi: (4 * gv,))


# Two float outputs and one integer output, with a second (non-differentiable) integer input.
def _two_outputs_forward(x, y, shift):
    return (x * y, x + shift, np.argsort(x)), (x, y)


def _two_outputs_backward(saved, grad_product, grad_shifted, grad_order):
    x, y = saved
    return grad_product * y + grad_shifted, grad_product * x, None


two_outputs = Function("two_outputs", _two_outputs_forward, _two_outputs_backward)


# ----- vjp -----
def test_vjp_with_values_and_indices():
    x = np.array([[1.0, 3.0, 2.0], [6.0, 5.0, 4.0]])
    (values, indices), pullback = vjp(lambda t: apply(double_and_argmax, t), x)
    assert isinstance(values, np.ndarray) and isinstance(indices, np.ndarray)
    np.testing.assert_array_equal(indices, [1, 0])
    (grad,) = pullback(np.ones_like(values))  # the cotangent is for the values only
    np.testing.assert_array_equal(grad, np.full((2, 3), 2.0))


def test_vjp_with_several_float_outputs_and_a_non_float_primal():
    x, y, shift = np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([1, 1])
    outputs, pullback = vjp(lambda a, b, s: apply(two_outputs, a, b, s), x, y, shift)
    assert len(outputs) == 3
    grad_x, grad_y, grad_shift = pullback((np.ones(2), np.array([10.0, 10.0])))
    np.testing.assert_array_equal(grad_x, y + 10.0)
    np.testing.assert_array_equal(grad_y, x)
    assert grad_shift is None
    with pytest.raises(ValueError, match="2 float outputs but 1"):
        pullback((np.ones(2),))


def test_vjp_accepts_none_primals_and_keeps_dtype():
    x = np.array([1.0, 2.0], dtype=np.float32)
    out, pullback = vjp(lambda t, nothing: t * 2.0, x, None)
    assert out.dtype == np.float32
    grad, none = pullback(np.ones(2, dtype=np.float32))
    assert grad.dtype == np.float32 and none is None


# ----- gradcheck -----
def test_gradcheck_passes_with_integer_outputs():
    assert gradcheck(lambda t: apply(double_and_argmax, t), np.array([[1.0, 3.0, 2.0]]), rtol=1e-6)
    assert gradcheck(lambda a, b, s: apply(two_outputs, a, b, s), np.array([1.0, 2.0]), np.array([3.0, 4.0]),
                     np.array([1, 1]), rtol=1e-6)


def test_gradcheck_raises_on_a_wrong_backward_with_a_report():
    x = np.array([[1.0, 3.0, 2.0]])
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda w, t: w * apply(wrong_double, t)[0], np.array(1.0), x, rtol=1e-6)
    message = str(info.value)
    assert "primal 1" in message and "shape (1, 3)" in message
    assert re.search(r"numerical \(central differences\) = (2\.0|1\.9999)", message)
    assert "analytical (backward)           = 4.0" in message
    assert "max abs error" in message
    assert isinstance(info.value, AssertionError)


def test_gradcheck_names_the_worst_entry():
    # Only d y[2] / d x[2] is wrong.
    def forward(x):
        return x * x, x

    def backward(x, grad):
        g = 2 * x * grad
        g[2] += grad[2]  # d y[2] / d x[2] off by one; the rest right
        return (g,)

    bad = Function("bad_third", forward, backward)
    with pytest.raises(GradcheckError, match=r"d output 0\[2\] / d primal 0\[2\]"):
        gradcheck(lambda t: apply(bad, t), np.array([1.0, 2.0, 3.0]), rtol=1e-6)


def test_gradcheck_never_modifies_inputs_and_accepts_float32():
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    before = x.copy()
    assert gradcheck(lambda t: (t * t).sum(axis=1), x, rtol=1e-6)
    np.testing.assert_array_equal(x, before)
    assert x.dtype == np.float32


def test_gradcheck_with_empty_output_and_empty_input():
    assert gradcheck(lambda t: t[:0] * 2.0, np.array([1.0, 2.0]), rtol=1e-6)
    assert gradcheck(lambda t: t.sum(), np.zeros((0, 3)), rtol=1e-6)
    assert gradcheck(lambda t: t * 2.0, np.zeros((0, 3)), rtol=1e-6)


def test_gradcheck_of_a_constant_output_is_zero_on_both_sides():
    assert gradcheck(lambda t: (t * 0.0, np.ones(2)), np.array([1.0, 2.0]), rtol=1e-6)


# ----- adjoint_test -----
def test_adjoint_test_passes_on_a_linear_function():
    m = np.random.default_rng(0).standard_normal((4, 3))
    assert adjoint_test(lambda x: m @ x, np.ones((3, 2)))


def test_adjoint_test_passes_with_integer_outputs_and_several_seeds():
    x = np.array([[1.0, 3.0, 2.0], [6.0, 5.0, 4.0]])
    for seed in range(3):
        assert adjoint_test(lambda t: apply(double_and_argmax, t), x, seed=seed)


def test_adjoint_test_fails_on_a_wrong_backward():
    x = np.array([[1.0, 3.0, 2.0]])
    with pytest.raises(GradcheckError, match=r"<gy, J v>.*\n.*<J\^T gy, v>"):
        adjoint_test(lambda t: apply(wrong_double, t), x)


def test_adjoint_test_never_modifies_inputs():
    x = np.array([1.0, 2.0, 3.0])
    adjoint_test(lambda t: (t * t).exp(), x)
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])


def test_vjp_and_gradcheck_accept_tensor_primals():
    x = Tensor([1.0, 2.0])
    outputs, pullback = vjp(lambda t: t * 3.0, x)
    np.testing.assert_array_equal(pullback(np.ones(2))[0], [3.0, 3.0])
    assert gradcheck(lambda t: t * 3.0, x, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------
# Host and device (the `cupy` fixture: real CuPy on a GPU, else the CuPy stand-in of tests/fake_cupy)
# ---------------------------------------------------------------------------------------------------
def _scale_forward(x, alpha):
    return x * float(alpha[0]), (x, alpha)  # x on the device, alpha (2,) on the host


def _scale_backward(saved, grad_y):
    x, alpha = saved
    grad_alpha = array_module(alpha).asarray([float((grad_y * x).sum()), 0.0])  # where alpha lives
    return grad_y * float(alpha[0]), grad_alpha


scale_by_host_alpha = Function("scale_by_host_alpha", _scale_forward, _scale_backward)


def test_vjp_gives_each_primal_its_gradient_where_it_lives(cupy):
    # a host alpha got a device gradient through the pullback (the tape's conversion)
    x, alpha = cupy.asarray(np.arange(4.0)), np.array([3.0, 1.0])
    y, pullback = vjp(lambda t, a: apply(scale_by_host_alpha, t, a), x, alpha)
    grad_x, grad_alpha = pullback(cupy.ones(4))
    assert array_module(y) is cupy and array_module(grad_x) is cupy and isinstance(grad_alpha, np.ndarray)
    assert to_numpy(grad_x).tolist() == [3.0] * 4 and grad_alpha.tolist() == [6.0, 0.0]


def test_gradcheck_and_adjoint_test_take_primals_on_host_and_device(cupy):
    x, alpha = cupy.asarray(np.array([0.5, -1.0, 2.0])), np.array([1.5, 2.0])
    assert gradcheck(lambda t, a: apply(scale_by_host_alpha, t, a), x, alpha, rtol=1e-6)
    assert adjoint_test(lambda t, a: apply(scale_by_host_alpha, t, a), x, alpha)
