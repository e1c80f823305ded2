r"""Elementwise Functions the layers need that the autograd arithmetic does not have.

Each is a forward/backward pair registered with :func:`poolref.autograd.define_function`, like every
op in poolref, plus a public function that applies it (arrays in, arrays out; Tensors in, Tensors out).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from .._backend import array_module
from ..autograd.function import apply, define_function

__all__ = ["relu"]


class ReluSaved(NamedTuple):
    passes: object  # (same shape as x) bool: where the gradient passes, x > 0 or x is NaN


def _relu_forward(x):
    xp = array_module(x)
    y = xp.maximum(x, xp.zeros((), dtype=x.dtype))  # maximum propagates NaN, as PyTorch's relu
    # PyTorch's backward tests the output, ``y <= 0 ? 0 : g``: a NaN output lets its gradient through
    return y, ReluSaved(~(y <= 0))


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
