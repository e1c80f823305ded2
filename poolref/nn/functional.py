r"""Elementwise Functions the layers need that the autograd arithmetic does not have.

Each is a forward/backward pair registered with :func:`poolref.autograd.define_function`, like every
op in poolref, plus a public function that applies it (arrays in, arrays out; Tensors in, Tensors out).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from .._backend import array_module
from ..autograd.function import apply, define_function

__all__ = ["relu", "sigmoid"]


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
