r"""Functions the layers need that the autograd arithmetic does not have: relu, sigmoid, dropout,
and the checked entry to the tape's concatenation.

Each is a forward/backward pair registered with :func:`poolref.autograd.define_function`, like every
op in poolref, plus a public function that applies it (arrays in, arrays out; Tensors in, Tensors out).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from .._backend import array_module
from .._checks import as_array, check_flag, is_int, is_real, random_generator
from ..autograd.arithmetic import concat as CONCAT
from ..autograd.function import apply, define_function

__all__ = ["relu", "sigmoid", "dropout", "concat"]


class ReluSaved(NamedTuple):
    passes: object  # (same shape as x) bool: where the gradient passes, x > 0 or x is NaN


def _relu_forward(x):
    xp = array_module(x)
    y = xp.maximum(x, xp.zeros((), dtype=x.dtype))  # maximum propagates NaN, as PyTorch's relu
    # PyTorch's backward tests the output, ``y <= 0 ? 0 : g``: a NaN output lets its gradient through
    return y, ReluSaved(~(y <= 0))


# forward   y = max(x, 0)
# backward  grad_x = g where y > 0 or y is NaN, else 0
def _relu_backward(saved: ReluSaved, grad_y):
    # d relu(x) / dx = 1 where x > 0, else 0 (0 at x = 0 itself, PyTorch's choice of subgradient)
    return (grad_y * saved.passes,)


RELU = define_function("relu", _relu_forward, _relu_backward)


def relu(x):
    r"""Rectified linear unit, elementwise: :math:`\max(x, 0)`.

    Parameters
    ----------
    x : array or Tensor
        Any shape; NaN stays NaN.

    Returns
    -------
    array or Tensor
        Same shape and dtype as ``x``.

    Notes
    -----
    Forward :math:`y = \max(x, 0)`; backward
    :math:`\partial L/\partial x = \partial L/\partial y \cdot [x > 0]` (the subgradient at 0 is 0,
    as in PyTorch; where ``x`` is NaN the gradient passes, as PyTorch's ``threshold_backward``).

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn.functional import relu
    >>> relu(np.array([-2.0, 0.0, 3.0]))
    array([0., 0., 3.])
    """
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        x = numpy.asarray(x)
    return apply(RELU, x)


class SigmoidSaved(NamedTuple):
    y: object  # the output, from which the derivative y (1 - y) is computed


def _sigmoid_forward(x):
    xp = array_module(x)
    # 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) below: no exp of a positive number, no overflow
    e = xp.exp(-xp.abs(x))
    y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    y = xp.where(xp.isnan(x), x, y)  # NaN stays NaN (x >= 0 is False for it)
    return y, SigmoidSaved(y)


# forward   y = 1 / (1 + e^-x)
# backward  grad_x = g y (1 - y)
def _sigmoid_backward(saved: SigmoidSaved, grad_y):
    # y = 1 / (1 + e^-x)  =>  dy/dx = y (1 - y)
    return (grad_y * (saved.y * (1 - saved.y)),)


SIGMOID = define_function("sigmoid", _sigmoid_forward, _sigmoid_backward)


def sigmoid(x):
    r"""Logistic sigmoid, elementwise: :math:`1 / (1 + e^{-x})` (the mask of modulated deformable
    convolution, :class:`poolref.nn.DeformConv2d`).

    Parameters
    ----------
    x : array or Tensor
        Any shape; NaN stays NaN.

    Returns
    -------
    array or Tensor
        Same shape and dtype as ``x``, in [0, 1].

    Notes
    -----
    Forward :math:`y = 1/(1 + e^{-x})`, computed as :math:`e^{x}/(1 + e^{x})` for :math:`x < 0` so
    that no exponential overflows; backward :math:`\partial L/\partial x = \partial L/\partial y \cdot y (1 - y)`.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn.functional import sigmoid
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        x = numpy.asarray(x)
    return apply(SIGMOID, x)


class DropoutSaved(NamedTuple):
    noise: object  # (same shape as x) the kept mask divided by 1 - p, in x's dtype: 0 or 1/(1 - p)


def _dropout_forward(x, *, noise):
    # PyTorch's rule: y = x * noise, so a dropped NaN or infinity stays NaN (0 * NaN, 0 * inf)
    with numpy.errstate(invalid="ignore"):
        return x * noise, DropoutSaved(noise)


# forward   y = x * m / (1 - p),  m ~ Bernoulli(1 - p) per element
# backward  grad_x = g * m / (1 - p)
def _dropout_backward(saved: DropoutSaved, grad_y):
    # y is linear in x with the fixed factor noise = m / (1 - p): the gradient is scaled by the same
    with numpy.errstate(invalid="ignore"):
        return (grad_y * saved.noise,)


DROPOUT = define_function("dropout", _dropout_forward, _dropout_backward)


def dropout(x, p=0.5, training=True, *, rng=None):
    r"""Dropout (Srivastava et al. 2014), as ``torch.nn.functional.dropout``: in training each element
    is zeroed with probability ``p`` and the kept ones are scaled by :math:`1/(1-p)`; otherwise the
    input itself.

    Parameters
    ----------
    x : array or Tensor
        Any shape, a float dtype.
    p : float
        Probability of dropping an element, in [0, 1].
    training : bool
        Drop only while training (``False``: ``x`` is returned as it is).
    rng : numpy.random.Generator, int or None
        Source of the mask (a seed gives the same mask on every call). poolref's masks are its own:
        the same seed does not give PyTorch's mask.

    Returns
    -------
    array or Tensor
        Same shape and dtype as ``x``.

    Notes
    -----
    Forward :math:`y = x \cdot m / (1 - p)` with :math:`m \sim \mathrm{Bernoulli}(1 - p)` per element
    (the factor :math:`m/(1-p)` is formed first, in ``x``'s dtype, as PyTorch forms its "noise");
    backward :math:`\partial L/\partial x = \partial L/\partial y \cdot m / (1 - p)`. As in PyTorch, a
    dropped element is multiplied by zero, so a dropped NaN or infinity gives NaN, and ``p = 1``
    multiplies everything by zero (the gradient is then zero).

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn.functional import dropout
    >>> y = dropout(np.ones(8), 0.5, rng=0)
    >>> sorted(set(y.tolist()))  # dropped, or kept and scaled by 1 / (1 - p)
    [0.0, 2.0]
    >>> dropout(np.ones(3), 0.5, training=False)
    array([1., 1., 1.])
    """
    op = "dropout"
    x = as_array(x, "x", op)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: x must be a float array, got x with dtype {x.dtype}")
    if not is_real(p) or not 0 <= p <= 1:  # PyTorch: "dropout probability has to be between 0 and 1"
        raise ValueError(f"{op}: p must be a probability between 0 and 1, got p={p!r}")
    training = check_flag(training, "training", op)
    rng = random_generator(rng, op)
    if not training:
        return x
    xp = array_module(x)
    if p == 1:  # PyTorch multiplies by a zero: NaN and infinities give NaN, the rest zero
        noise = xp.zeros(x.shape, dtype=x.dtype)
    else:
        kept = xp.asarray(rng.random(x.shape) >= p)  # (x.shape) bool, True with probability 1 - p
        noise = (kept.astype(x.dtype) / x.dtype.type(1 - p)).astype(x.dtype, copy=False)
    return apply(DROPOUT, x, noise=noise)


def concat(parts, axis=0):
    r"""The arrays or Tensors of ``parts`` one after another along ``axis`` (``torch.cat``).

    The one concatenation of poolref's tape (:data:`poolref.autograd.arithmetic.concat`): ASPP joins
    its branches with it, spatial pyramid pooling its levels.

    Parameters
    ----------
    parts : sequence of arrays or Tensors
        At least one; one dtype; equal shapes except along ``axis``.
    axis : int
        Negative counts from the end.

    Returns
    -------
    array or Tensor
        A Tensor when any part is one.

    Notes
    -----
    Forward :math:`y = [a_1, a_2, \dots]` along the axis; backward: the split,
    :math:`\partial L/\partial a_l = g[\dots, e_l : e_l + n_l, \dots]`, with :math:`e_l` the lengths of
    the parts before part :math:`l` and :math:`n_l` its own. Every value is copied, NaN and signed
    zeros included.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn.functional import concat
    >>> concat([np.zeros((1, 2)), np.ones((1, 1))], axis=1)
    array([[0., 0., 1.]])
    """
    op = "concat"
    if not isinstance(parts, (list, tuple)) or not parts:
        raise ValueError(f"{op}: parts must be a non-empty list or tuple of arrays, got parts={parts!r}")
    parts = [as_array(part, f"parts[{i}]", op) for i, part in enumerate(parts)]
    first = parts[0]
    if first.ndim == 0:
        raise ValueError(f"{op}: parts must have at least one axis, got parts[0] with shape ()")
    if not is_int(axis) or not -first.ndim <= axis < first.ndim:
        raise ValueError(f"{op}: axis must be an int in [-{first.ndim}, {first.ndim}), got axis={axis!r} "
                         f"for parts with shape {tuple(first.shape)}")
    axis = int(axis) % first.ndim
    for i, part in enumerate(parts[1:], start=1):
        if part.dtype != first.dtype:
            raise TypeError(f"{op}: every part must have the dtype of parts[0] ({first.dtype}), got parts[{i}] "
                            f"with dtype {part.dtype}")
        others = [tuple(q.shape[:axis]) + tuple(q.shape[axis + 1:]) for q in (first, part)]
        if part.ndim != first.ndim or others[0] != others[1]:
            raise ValueError(f"{op}: every part must have the shape of parts[0] {tuple(first.shape)} except "
                             f"along axis {axis}, got parts[{i}] with shape {tuple(part.shape)}")
    return apply(CONCAT, *parts, axis=axis)
