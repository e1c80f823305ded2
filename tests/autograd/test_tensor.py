"""Tensor: construction, attributes, Tensor.backward, and the Function/apply contract."""

import numpy as np
import pytest

from poolref.autograd import REGISTRY, Function, Tensor, apply, define_function


def _argmax_values_and_indices(x):
    # A tiny (values, indices) op, shaped like max pooling with return_indices=True.
    indices = np.argmax(x, axis=-1)
    return (x * 2, indices), x.shape


def _double_backward(shape, grad_values, grad_indices):
    assert grad_indices is None  # integer outputs receive no gradient
    return (2 * grad_values,)


double_with_indices = Function("double_with_indices", _argmax_values_and_indices, _double_backward)


# ----- construction and attributes -----
def test_list_becomes_numpy_array_with_attributes():
    t = Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], name="t")
    assert isinstance(t.data, np.ndarray)
    assert (t.shape, t.dtype, t.ndim, t.size, len(t)) == ((2, 3), np.float64, 2, 6, 2)
    assert t.grad is None and t.requires_grad is False and t.is_leaf and t.name == "t"


def test_array_is_kept_without_copy():
    a = np.ones(3)
    assert Tensor(a).data is a


def test_uids_are_unique():
    assert len({Tensor(0.0).uid for _ in range(100)}) == 100


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_requires_grad_on_non_float_raises_type_error(dtype):
    with pytest.raises(TypeError, match=rf"requires_grad.*{np.dtype(dtype)}"):
        Tensor(np.zeros(3, dtype=dtype), requires_grad=True)


def test_repr_item_numpy_detach():
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    assert repr(x) == "Tensor([1., 2.], dtype=float32, requires_grad=True)"
    assert Tensor(3.5).item() == 3.5
    copy = x.numpy()
    copy[0] = 100.0
    assert x.data[0] == 1.0  # numpy() returns a copy
    d = x.detach()
    assert d.data is x.data and not d.requires_grad and d.is_leaf


def test_numpy_array_on_the_left_defers_to_tensor():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = np.array([10.0, 20.0]) - x  # __array_ufunc__ = None sends this to Tensor.__rsub__
    assert isinstance(y, Tensor) and y.requires_grad
    np.testing.assert_array_equal(y.data, [9.0, 18.0])


# ----- Tensor.backward -----
def test_backward_of_x_times_x_is_two_x():
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()  # x feeds both inputs of mul: the two gradients add
    np.testing.assert_array_equal(x.grad, [2.0, -4.0, 6.0])


def test_fan_in_from_two_branches_adds():
    x = Tensor([1.0, 2.0], requires_grad=True)
    a = x * 3.0
    b = x.exp()
    (a + b).sum().backward()
    np.testing.assert_allclose(x.grad, 3.0 + np.exp([1.0, 2.0]))


def test_backward_accumulates_across_calls():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 5.0).sum().backward()
    first = x.grad
    (x * 5.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [10.0, 10.0])
    np.testing.assert_array_equal(first, [5.0, 5.0])  # accumulation made a new array


def test_gradients_handed_to_two_leaves_are_independent_arrays():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    (a + b).backward(np.ones(2))
    a.grad[0] = 99.0
    assert b.grad[0] == 1.0


def test_backward_needs_grad_for_non_scalar():
    y = Tensor([1.0, 2.0], requires_grad=True) * 2.0
    with pytest.raises(ValueError, match="single-element"):
        y.backward()
    y.backward(np.array([1.0, 10.0]))


def test_backward_with_grad_of_wrong_shape_raises():
    y = Tensor([1.0, 2.0], requires_grad=True) * 2.0
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3))


def test_backward_on_leaf_and_on_constant():
    x = Tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad == 1.0
    with pytest.raises(RuntimeError, match="does not require"):
        Tensor(2.0).backward()


def test_user_grad_array_is_never_modified_or_aliased():
    x = Tensor([1.0, 2.0], requires_grad=True)
    seed = np.array([1.0, 1.0])
    (x + 0.0).backward(seed)
    x.grad *= 10.0
    np.testing.assert_array_equal(seed, [1.0, 1.0])


def test_long_chain_needs_no_recursion():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(5000):  # far deeper than Python's recursion limit
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0


def test_constants_do_not_require_grad_and_record_nothing():
    c = Tensor([1.0, 2.0]) * 3.0
    assert isinstance(c, Tensor) and not c.requires_grad and c._node is None


# ----- Function and apply -----
def test_apply_on_arrays_returns_arrays():
    values, indices = apply(double_with_indices, np.array([[1.0, 3.0, 2.0]]))
    assert isinstance(values, np.ndarray) and isinstance(indices, np.ndarray)


def test_integer_outputs_get_no_gradient_and_no_node():
    x = Tensor([[1.0, 3.0, 2.0]], requires_grad=True)
    values, indices = apply(double_with_indices, x)
    assert values.requires_grad and values._node is not None
    assert indices.dtype.kind == "i" and not indices.requires_grad and indices._node is None
    values.sum().backward()
    np.testing.assert_array_equal(x.grad, [[2.0, 2.0, 2.0]])


def test_backward_returning_the_wrong_shape_is_reported_with_the_function_name():
    broken = Function("broken", lambda x: (x * 1.0, None), lambda saved, g: (g[:1],))
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"broken.*shape \(1,\).*\(2,\)"):
        apply(broken, x).sum().backward()


def test_backward_returning_too_few_gradients_is_reported():
    broken = Function("broken_count", lambda x, y: (x * y, None), lambda saved, g: (g,))
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="broken_count.*1 gradients for 2 inputs"):
        apply(broken, x, x).sum().backward()


def test_backward_gradient_is_cast_to_the_input_dtype():
    float64_grad = Function("float64_grad", lambda x: (x * 1, None), lambda saved, g: (g.astype(np.float64),))
    x = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    apply(float64_grad, x).sum().backward()
    assert x.grad.dtype == np.float32


def test_define_function_registers_and_refuses_duplicates():
    assert {"add", "mul", "matmul", "sum", "mean", "getitem"} <= set(REGISTRY)
    with pytest.raises(ValueError, match="'add'"):
        define_function("add", lambda a: (a, None), lambda s, g: (g,))


@pytest.mark.parametrize("call, error, words", [
    # each leaked numpy's own words before ("'float' object cannot be interpreted as an integer",
    # "axes don't match array", "tuple.index(x): x not in tuple", "integer won't fit into a C int")
    (lambda t: t.sum(axis=1.0), TypeError, "Tensor.sum: axis must be None, an int or a tuple of ints (axes), got axis=1.0"),
    (lambda t: t.sum(axis=10**12), ValueError, "Tensor.sum: axis=1000000000000 is not an axis of the tensor with 2 axes"),
    (lambda t: t.sum(axis=(0, -2)), ValueError, "Tensor.sum: axis=(0, -2) repeats an axis"),
    (lambda t: t.mean(axis=True), TypeError, "Tensor.mean: axis must be None, an int or a tuple of ints (axes), got axis=True"),
    (lambda t: t.mean(axis=2), ValueError, "axis=2 is not an axis of the tensor with 2 axes"),
    (lambda t: t.reshape(2.5, 2), TypeError, "Tensor.reshape: shape must be ints, got shape=(2.5, 2)"),
    (lambda t: t.reshape(-1, -1), ValueError, "shape must be sizes >= 0 with at most one -1, got shape=(-1, -1)"),
    (lambda t: t.reshape(4, -1), ValueError, "Tensor.reshape: shape=(4, -1) does not hold the tensor's 6 elements (shape (2, 3))"),
    (lambda t: t.reshape((7,)), ValueError, "shape=(7,) does not hold"),
    (lambda t: t.transpose(0, 0), ValueError, "Tensor.transpose: axes must order all 2 axes of the tensor once each, got axes=(0, 0)"),
    (lambda t: t.transpose(0, 2), ValueError, "Tensor.transpose: axes=2 is not an axis of the tensor with 2 axes"),
    (lambda t: t.transpose("a", 0), TypeError, "Tensor.transpose: axes must be an int (an axis), got axes='a'"),
])
def test_tensor_axes_and_shapes_are_checked_naming_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call(Tensor(np.ones((2, 3)), requires_grad=True))
    assert words in str(info.value)


def test_tensor_axes_and_shapes_numpy_takes_still_work():
    t = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert t.reshape(-1).shape == (6,) and t.reshape(3, -1).shape == (3, 2) and t.reshape((6,)).shape == (6,)
    assert t.transpose().shape == t.transpose(-1, 0).shape == t.T.shape == (3, 2)
    assert float(t.sum(axis=(0, -1)).data) == 15.0 and t.mean(axis=np.int64(-1)).shape == (2,)
    assert Tensor(np.ones((0, 3))).reshape(-1, 3).shape == (0, 3)  # numpy resolves -1 to 0 here
    t.sum(axis=-1).sum().backward()
    np.testing.assert_array_equal(t.grad, np.ones((2, 3)))
