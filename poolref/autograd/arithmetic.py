r"""The arithmetic a loss needs, one Function each: forward and hand-written backward side by side.

Each backward is a vector-Jacobian product: given ``grad`` (d loss / d output, shaped like the output)
it returns d loss / d input for each input, shaped like that input. Broadcasting in the forward copies
an input along some axes, so its backward sums the gradient back over those axes (:func:`unbroadcast`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .._backend import array_module
from .function import define_function

__all__ = ["unbroadcast"]


def unbroadcast(grad, shape):
    r"""Sum ``grad`` over the axes that broadcasting added or stretched, so that it has ``shape``.

    Broadcasting an input of ``shape`` to the output's shape prepends axes and stretches axes of
    length 1; each input element is used once per copy, so its gradient is the sum over the copies.

    Examples
    --------
    >>> import numpy as np
    >>> unbroadcast(np.ones((2, 3)), (3,))      # (3,) was prepended an axis of length 2
    array([2., 2., 2.])
    >>> unbroadcast(np.ones((2, 3)), (2, 1))    # (2, 1) was stretched along axis 1
    array([[3.],
           [3.]])
    """
    added = grad.ndim - len(shape)
    if added:
        grad = grad.sum(axis=tuple(range(added)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return array_module(grad).asarray(grad)  # a 0-d array, not a numpy scalar, when shape is ()


# ----- add, sub, neg: the gradient passes through (with a sign) -----
class Shapes(NamedTuple):
    a: tuple
    b: tuple


def add_forward(a, b):
    return a + b, Shapes(a.shape, b.shape)


# forward   y = a + b (broadcast)
# backward  grad_a = unbroadcast(g), grad_b = unbroadcast(g)
def add_backward(saved, grad):
    return unbroadcast(grad, saved.a), unbroadcast(grad, saved.b)


add = define_function("add", add_forward, add_backward)


def sub_forward(a, b):
    return a - b, Shapes(a.shape, b.shape)


# forward   y = a - b (broadcast)
# backward  grad_a = unbroadcast(g), grad_b = unbroadcast(-g)
def sub_backward(saved, grad):
    return unbroadcast(grad, saved.a), unbroadcast(-grad, saved.b)


sub = define_function("sub", sub_forward, sub_backward)


def neg_forward(a):
    return -a, None


# forward   y = -a
# backward  grad_a = -g
def neg_backward(saved, grad):
    return (-grad,)


neg = define_function("neg", neg_forward, neg_backward)


# ----- mul, div: product and quotient rules; each needs both operands -----
class Operands(NamedTuple):
    a: object
    b: object


def mul_forward(a, b):
    return a * b, Operands(a, b)


# forward   y = a b (broadcast)
# backward  grad_a = unbroadcast(g b), grad_b = unbroadcast(g a)
def mul_backward(saved, grad):
    # d(ab)/da = b, d(ab)/db = a
    return unbroadcast(grad * saved.b, saved.a.shape), unbroadcast(grad * saved.a, saved.b.shape)


mul = define_function("mul", mul_forward, mul_backward)


def div_forward(a, b):
    return a / b, Operands(a, b)


# forward   y = a / b (broadcast)
# backward  grad_a = unbroadcast(g / b), grad_b = unbroadcast(-g a / b^2)
def div_backward(saved, grad):
    # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
    a, b = saved
    return unbroadcast(grad / b, a.shape), unbroadcast(-grad * a / (b * b), b.shape)


div = define_function("div", div_forward, div_backward)


# ----- matmul: y = a @ b, so da = g @ b^T and db = a^T @ g (on the last two axes) -----
def matmul_forward(a, b):
    return a @ b, Operands(a, b)


# forward   Y = A @ B
# backward  grad_A = G @ B^T, grad_B = A^T @ G  (summed over broadcast batch axes)
def matmul_backward(saved, grad):
    a, b = saved
    xp = array_module(a, b, grad)
    # A 1-D operand is a row (for a) or a column (for b) whose unit axis matmul dropped: put it back.
    a2 = a[None, :] if a.ndim == 1 else a  # (..., m, k)
    b2 = b[:, None] if b.ndim == 1 else b  # (..., k, n)
    g2 = grad[..., None] if b.ndim == 1 else grad
    g2 = g2[..., None, :] if a.ndim == 1 else g2  # (..., m, n)
    grad_a = g2 @ xp.swapaxes(b2, -1, -2)  # (..., m, k)
    grad_b = xp.swapaxes(a2, -1, -2) @ g2  # (..., k, n)
    # Batch axes broadcast like elementwise ops do.
    return unbroadcast(grad_a, a2.shape).reshape(a.shape), unbroadcast(grad_b, b2.shape).reshape(b.shape)


matmul = define_function("matmul", matmul_forward, matmul_backward)


# ----- power with a number exponent: d(a^p)/da = p a^(p-1) -----
class Power(NamedTuple):
    a: object
    exponent: float


def power_forward(a, *, exponent):
    return a**exponent, Power(a, exponent)


# forward   y = a^p (p a constant)
# backward  grad_a = g p a^(p-1)  (0 for p = 0)
def power_backward(saved, grad):
    a, p = saved
    if p == 0:  # a^0 = 1 is constant; p a^(p-1) would compute 0 * inf at a = 0
        return (array_module(grad).zeros_like(grad),)
    return (grad * p * a ** (p - 1),)


power = define_function("pow", power_forward, power_backward)


# ----- sum and mean: the backward spreads the gradient back over the reduced axes -----
class Reduction(NamedTuple):
    shape: tuple  # the input's shape
    axes: tuple  # the reduced axes, non-negative
    keepdims: bool
    scale: float  # 1 for sum, 1 / (number of elements reduced) for mean


def _reduce(a, axis, keepdims, average):
    xp = array_module(a)
    # float16 accumulates in float32 (DESIGN.md: accumulation in at least float32).
    accumulate = xp.float32 if a.dtype == xp.float16 else None
    total = a.sum(axis=axis, keepdims=keepdims, dtype=accumulate)
    if axis is None:
        axis = tuple(range(a.ndim))
    axes = tuple(sorted(ax % a.ndim for ax in (axis if isinstance(axis, (tuple, list)) else (axis,))))
    count = math.prod(a.shape[ax] for ax in axes)
    # Mean over no elements is nan, as in numpy (written out so that no 0/0 warning is raised).
    scale = (1.0 / count if count else math.nan) if average else 1.0
    out = total * scale if average else total
    if accumulate is not None:
        out = out.astype(a.dtype)
    return xp.asarray(out), Reduction(a.shape, axes, keepdims, scale)


def sum_forward(a, *, axis=None, keepdims=False):
    return _reduce(a, axis, keepdims, average=False)


def mean_forward(a, *, axis=None, keepdims=False):
    return _reduce(a, axis, keepdims, average=True)


# forward   y = sum (or mean) of a over axes
# backward  grad_a = g broadcast back over those axes (times 1/count for the mean)
def reduce_backward(saved, grad):
    # Every input element contributed once (times scale) to the output element it was reduced into.
    xp = array_module(grad)
    if not saved.keepdims:
        grad = xp.expand_dims(grad, saved.axes)  # (..., 1, ...) at each reduced axis
    if saved.scale != 1.0:
        grad = grad * saved.scale
    return (xp.broadcast_to(grad, saved.shape),)


sum_ = define_function("sum", sum_forward, reduce_backward)  # `sum_`: keeps the builtin sum usable
mean = define_function("mean", mean_forward, reduce_backward)


# ----- reshape and transpose: move gradient values back to where the input values came from -----
def reshape_forward(a, *, shape):
    return a.reshape(shape), a.shape


# forward   y = a.reshape(shape)
# backward  grad_a = g.reshape(a.shape)
def reshape_backward(input_shape, grad):
    return (grad.reshape(input_shape),)


reshape = define_function("reshape", reshape_forward, reshape_backward)


def transpose_forward(a, *, axes=None):
    axes = tuple(reversed(range(a.ndim))) if axes is None else tuple(ax % a.ndim for ax in axes)
    inverse = tuple(axes.index(i) for i in range(len(axes)))  # the permutation that undoes axes
    return array_module(a).transpose(a, axes), inverse


# forward   y = a.transpose(axes)
# backward  grad_a = g.transpose(inverse of axes)
def transpose_backward(inverse, grad):
    return (array_module(grad).transpose(grad, inverse),)


transpose = define_function("transpose", transpose_forward, transpose_backward)


# ----- exp and log -----
def exp_forward(a):
    out = array_module(a).exp(a)
    return out, out  # d exp(a)/da = exp(a): save the output, not the input


# forward   y = e^a
# backward  grad_a = g y
def exp_backward(out, grad):
    return (grad * out,)


exp = define_function("exp", exp_forward, exp_backward)


def log_forward(a):
    return array_module(a).log(a), a


# forward   y = log a
# backward  grad_a = g / a
def log_backward(a, grad):
    return (grad / a,)


log = define_function("log", log_forward, log_backward)


# ----- indexing: the backward scatters the gradient back into an array of the input's shape -----
class Indexing(NamedTuple):
    shape: tuple
    index: object


def getitem_forward(a, *, index):
    return array_module(a).asarray(a[index]), Indexing(a.shape, index)


# forward   y = a[index]
# backward  grad_a = zeros, then grad_a[index] += g  (repeated elements add)
def getitem_backward(saved, grad):
    xp = array_module(grad)
    grad_input = xp.zeros(saved.shape, dtype=grad.dtype)
    if _is_basic_index(saved.index):
        grad_input[saved.index] = grad  # ints and slices select each element at most once
    else:
        # Integer arrays may select an element several times (x[[0, 0]]): its gradients must add.
        xp.add.at(grad_input, saved.index, grad)
    return (grad_input,)


getitem = define_function("getitem", getitem_forward, getitem_backward)


def _is_basic_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(
        p is None or p is Ellipsis or isinstance(p, slice) or (isinstance(p, int) and not isinstance(p, bool))
        for p in parts
    )


# ----- concatenation: the backward is the split -----
class Concatenation(NamedTuple):
    axis: int  # non-negative
    sizes: tuple  # each part's length along the axis


def concat_forward(*parts, axis=0):
    xp = array_module(*parts)
    axis = axis % parts[0].ndim
    return xp.concatenate(parts, axis=axis), Concatenation(axis, tuple(p.shape[axis] for p in parts))


# forward   y = [a_1, a_2, ...]   (the parts one after another along the axis)
# backward  grad_a_l = g[.., e_l : e_l + size_l, ..]   (e_l: the parts' lengths before part l: the split)
def concat_backward(saved, grad):
    # each output element is a copy of exactly one input element, so its gradient goes back to that one
    edges = [0]
    for size in saved.sizes:
        edges.append(edges[-1] + size)
    index = (slice(None),) * saved.axis
    return tuple(grad[index + (slice(a, b),)] for a, b in zip(edges[:-1], edges[1:]))


concat = define_function("concat", concat_forward, concat_backward)
