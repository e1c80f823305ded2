"""Arithmetic Functions: every backward by gradcheck, broadcasting, dtypes, empty tensors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from poolref.autograd import Tensor, adjoint_test, gradcheck, unbroadcast


def _rand(*shape, seed=0, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


def _positive(*shape, seed=0):
    return _rand(*shape, seed=seed, low=0.5, high=2.0)  # away from 0, for / and log


BROADCAST_PAIRS = [
    ((3,), (3,)),
    ((2, 3), (3,)),
    ((3,), (2, 3)),
    ((2, 1), (1, 3)),
    ((4, 2, 3), (2, 1)),
    ((2, 3), ()),
    ((), (2, 3)),
]


@pytest.mark.parametrize("a_shape, b_shape", BROADCAST_PAIRS)
@pytest.mark.parametrize(
    "op",
    [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b],
    ids=["add", "sub", "mul", "div"],
)
def test_binary_ops_with_broadcasting(op, a_shape, b_shape):
    assert gradcheck(op, _rand(*a_shape, seed=1), _positive(*b_shape, seed=2), rtol=1e-6)


@pytest.mark.parametrize("scalar_op", [
    lambda x: x + 2.0, lambda x: 2.0 + x, lambda x: x - 2.0, lambda x: 2.0 - x,
    lambda x: x * 3.0, lambda x: 3.0 * x, lambda x: x / 4.0, lambda x: 4.0 / x, lambda x: -x,
])
def test_ops_with_python_scalars(scalar_op):
    assert gradcheck(scalar_op, _positive(2, 3), rtol=1e-6)


def test_ops_with_a_plain_array_operand():
    c = _rand(2, 3, seed=5)
    assert gradcheck(lambda x: c * x + x / (c * c + 1.0) - c, _rand(3), rtol=1e-6)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((2, 3), (3, 4)),
    ((5, 2, 3), (5, 3, 4)),  # batched
    ((5, 2, 3), (3, 4)),  # batch broadcast on b
    ((2, 1, 2, 3), (4, 3, 2)),  # batch axes broadcast on both sides
    ((3,), (3, 4)),  # 1-D on the left
    ((2, 3), (3,)),  # 1-D on the right
    ((3,), (3,)),  # inner product
    ((3,), (5, 3, 4)),
])
def test_matmul(a_shape, b_shape):
    assert gradcheck(lambda a, b: a @ b, _rand(*a_shape, seed=1), _rand(*b_shape, seed=2), rtol=1e-6)


def test_matmul_with_array_on_the_left():
    w = _rand(4, 2)
    assert gradcheck(lambda x: w @ x, _rand(2, 3), rtol=1e-6)


@pytest.mark.parametrize("exponent", [2, 3, 0.5, -1.0, 1, 0])
def test_power(exponent):
    assert gradcheck(lambda x: x**exponent, _positive(2, 3), rtol=1e-6)


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (2, 0, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_sum_and_mean(reduction, axis, keepdims):
    assert gradcheck(lambda x: getattr(x, reduction)(axis=axis, keepdims=keepdims), _rand(2, 3, 4), rtol=1e-6)


def test_reshape_and_transpose():
    x = _rand(2, 3, 4)
    assert gradcheck(lambda t: t.reshape(6, 4), x, rtol=1e-6)
    assert gradcheck(lambda t: t.reshape((4, -1)), x, rtol=1e-6)
    assert gradcheck(lambda t: t.transpose(), x, rtol=1e-6)
    assert gradcheck(lambda t: t.transpose(1, 2, 0), x, rtol=1e-6)
    assert gradcheck(lambda t: t.transpose((0, -1, 1)), x, rtol=1e-6)
    assert gradcheck(lambda t: t.T, _rand(2, 3), rtol=1e-6)


def test_exp_and_log():
    assert gradcheck(lambda x: x.exp(), _rand(2, 3), rtol=1e-6)
    assert gradcheck(lambda x: x.log(), _positive(2, 3), rtol=1e-6)


@pytest.mark.parametrize("index", [
    0,
    (slice(None), 1),
    (slice(0, 2), slice(None, None, 2)),
    (Ellipsis, None, 2),
    np.array([0, 2, 0, 0]),  # repeated rows: their gradients must add up
    (np.array([0, 1, 1]), np.array([2, 2, 2])),  # the element (1, 2) twice
    (slice(None), [3, 3, 0]),
    np.array([True, False, True]),
], ids=["int", "column", "strided", "ellipsis-newaxis", "repeated-rows", "repeated-pairs", "list", "mask"])
def test_getitem(index):
    assert gradcheck(lambda x: x[index], _rand(3, 4), rtol=1e-6)


def test_getitem_repeated_index_accumulates():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])


def test_getitem_with_an_index_tensor():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[Tensor([2, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 2.0])


def test_a_small_loss_against_the_adjoint_test():
    target = _rand(4, 2, seed=3)

    def loss(x, w, b):
        return (((x @ w + b) - target) ** 2).mean() + (w * w).sum() * 0.1

    args = _rand(4, 3, seed=1), _rand(3, 2, seed=2), _rand(2, seed=4)
    assert gradcheck(loss, *args)
    assert adjoint_test(loss, *args)


# ----- unbroadcast -----
@given(data=st.data())
def test_unbroadcast_is_the_adjoint_of_broadcasting(data):
    # <g, broadcast(v)> == <unbroadcast(g), v>: the defining property of a backward.
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    big = data.draw(hnp.broadcastable_shapes(shape, min_dims=len(shape), max_dims=4, min_side=1, max_side=3))
    out_shape = np.broadcast_shapes(shape, big)
    elements = st.floats(-10, 10, allow_nan=False)
    v = data.draw(hnp.arrays(np.float64, shape, elements=elements))
    g = data.draw(hnp.arrays(np.float64, out_shape, elements=elements))
    reduced = unbroadcast(g, shape)
    assert reduced.shape == shape
    np.testing.assert_allclose(np.sum(g * np.broadcast_to(v, out_shape)), np.sum(reduced * v), atol=1e-9)


# ----- dtypes and inputs -----
def test_float32_stays_float32_with_python_scalars():
    x = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = (2.0 * x + 1 - x / 3.0) ** 2
    z = (1.5 - y).exp().mean() * 0.5
    assert y.dtype == np.float32 and z.dtype == np.float32
    z.backward()
    assert x.grad.dtype == np.float32


def test_float16_sum_accumulates_in_float32():
    x = np.full(4096, 1.0, dtype=np.float16)  # float16 alone stops counting at 2048
    total = Tensor(x).sum()
    assert total.dtype == np.float16 and total.item() == 4096.0


def test_mixed_precision_gradients_come_back_in_each_input_dtype():
    a = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    b = Tensor(np.ones(2, dtype=np.float64), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_inputs_are_never_modified():
    a = _rand(2, 3)
    b = _rand(3)
    before = a.copy(), b.copy()
    x = Tensor(a, requires_grad=True)
    y = Tensor(b, requires_grad=True)
    loss = ((x * y + y) @ y).sum() + x[np.array([0, 0])].sum()
    loss.backward()
    loss.backward()
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])


# ----- empty tensors -----
def test_empty_tensors_flow_through_arithmetic_and_reductions():
    x = Tensor(np.zeros((0, 3)), requires_grad=True)
    w = Tensor(np.ones(3), requires_grad=True)
    y = (x * w + 1.0).sum(axis=0)  # (3,) of ones
    m = (x - w).mean(axis=1)  # (0,)
    loss = y.sum() + m.sum() + x.sum()
    loss.backward()
    assert x.grad.shape == (0, 3) and w.grad.shape == (3,)
    np.testing.assert_array_equal(w.grad, [0.0, 0.0, 0.0])


def test_mean_over_no_elements_is_nan_without_warning():
    assert np.isnan(Tensor(np.zeros((0, 3))).mean().item())


@pytest.mark.parametrize("fn", [
    lambda x: x.sum(), lambda x: x.mean(axis=1), lambda x: x.sum(axis=0), lambda x: (x * 2.0 + 1.0) / 3.0,
    lambda x: x @ np.ones((3, 2)),
])
def test_gradcheck_on_empty_tensors(fn):
    assert gradcheck(fn, np.zeros((0, 3)), rtol=1e-6)


# ----- cross-check against PyTorch -----
def test_composite_expression_matches_torch():
    torch = pytest.importorskip("torch")
    a, b, c = _rand(2, 3, seed=1), _rand(3, 4, seed=2), _positive(4, seed=3)

    def f(x, w, s):
        h = (x @ w) / s - 1.0
        return (h[:, [1, 1, 3, 0]].exp() + (h**2).mean(axis=0, keepdims=True)).log().sum()

    tensors = [Tensor(v, requires_grad=True) for v in (a, b, c)]
    f(*tensors).backward()
    torch_tensors = [torch.tensor(v, requires_grad=True) for v in (a, b, c)]
    h = (torch_tensors[0] @ torch_tensors[1]) / torch_tensors[2] - 1.0
    (h[:, [1, 1, 3, 0]].exp() + (h**2).mean(dim=0, keepdim=True)).log().sum().backward()
    for ours, theirs in zip(tensors, torch_tensors):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12)


# ---------------------------------------------------------------------------------------------------
# numpy / cupy parity (on the CuPy stand-in where no GPU is: tests/fake_cupy)
# ---------------------------------------------------------------------------------------------------
def _every_operator(a, b):
    h = (a @ b) * 2.0 - 1.0  # (2, 4)
    h = h / (b.sum(axis=0) + 10.0) + (-a).mean(axis=1, keepdims=True)
    h = (h**2).exp().log() + h.T.reshape(4, 2).transpose()  # log(exp(h^2)) = h^2
    return (h[:, [1, 1, 3, 0]] + h[1:, ::2].sum() + 3.0 * h[0]).mean(axis=0)


def test_numpy_and_cupy_agree(xp):
    from helpers import assert_device_agrees

    a, b = _rand(2, 3) * 0.5, _rand(3, 4) * 0.5
    assert_device_agrees(xp, _every_operator, a, b)
    assert_device_agrees(xp, lambda t: (t * t).sum(), a.astype(np.float32), rtol=1e-6)
