r"""Plain-loop references for adaptive (and so global) average and max pooling, forward and backward.

The executable specification of SEMANTICS.md section 5. Adaptive pooling fixes the OUTPUT size ``O``
and derives the windows ("bins") from it: along a dimension of length ``L``, bin ``i`` covers

.. math::

    \left[ \left\lfloor \frac{i L}{O} \right\rfloor,\ \left\lceil \frac{(i + 1) L}{O} \right\rceil \right)

Bins may overlap and need not have equal lengths; an n-D bin is the box product of its per-dimension
bins. Global pooling is the case ``O = 1`` (one bin: the whole input). Every function loops over every
output element and every element of its bin.
"""

from __future__ import annotations

import itertools
import math

import numpy

from .._running_max import TORCH, window_max
from .window import _flat_index, _result_dtype, max_pool_backward_reference

__all__ = [
    "adaptive_bin",
    "adaptive_avg_pool_reference",
    "adaptive_avg_pool_backward_reference",
    "adaptive_max_pool_reference",
    "adaptive_max_pool_backward_reference",
]


def adaptive_bin(i, L, O):
    r"""Bin ``i`` of ``O`` over a length ``L``: the half-open range ``[start, end)``.

    Parameters
    ----------
    i : int
        Output position, ``0 <= i < O``.
    L : int
        Input length.
    O : int
        Output length.

    Returns
    -------
    (int, int)
        :math:`start = \lfloor i L / O \rfloor`, :math:`end = \lceil (i + 1) L / O \rceil`, computed in
        integer arithmetic (no float rounding): ``start = (i*L)//O``, ``end = -((-(i+1)*L)//O)``.

    Examples
    --------
    8 -> 6 (SEMANTICS.md): the bins overlap and are not uniform.

    >>> [adaptive_bin(i, 8, 6) for i in range(6)]
    [(0, 2), (1, 3), (2, 4), (4, 6), (5, 7), (6, 8)]
    """
    start = (i * L) // O
    end = -((-(i + 1) * L) // O)  # ceiling division via floor division of the negation
    return start, end


def _bin_box(out_pos, spatial, output_size):
    """Per-dimension ranges of the n-D bin of ``out_pos``."""
    ranges = []
    for i, L, O in zip(out_pos, spatial, output_size):
        start, end = adaptive_bin(i, L, O)
        ranges.append(range(start, end))
    return ranges


def adaptive_avg_pool_reference(x, output_size):
    r"""Adaptive average pooling: the mean of each bin.

    Parameters
    ----------
    x : ndarray, shape (N, C, *spatial)
        Input.
    output_size : tuple of int, length n
        Output spatial shape.

    Returns
    -------
    y : ndarray, shape (N, C, *output_size)
        In the dtype of ``x`` (float64 for integers), summed in float64.

    Notes
    -----
    .. math::

        y_o = \frac{1}{|B_o|} \sum_{t \in B_o} x_t

    where :math:`B_o` is the box of per-dimension bins (:func:`adaptive_bin`). Backward
    (:func:`adaptive_avg_pool_backward_reference`): every :math:`t \in B_o` receives
    :math:`g_o / |B_o|`, accumulated over overlapping bins.

    Examples
    --------
    >>> adaptive_avg_pool_reference(numpy.array([[[1., 2., 3., 4., 5.]]]), (2,)).tolist()
    [[[2.0, 4.0]]]
    """
    x = numpy.asarray(x)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    output_size = tuple(output_size)
    y = numpy.zeros((N, C) + output_size, dtype=numpy.float64)
    for b, c in itertools.product(range(N), range(C)):
        for out_pos in itertools.product(*[range(O) for O in output_size]):
            box = _bin_box(out_pos, spatial, output_size)
            total = 0.0
            count = 0
            for position in itertools.product(*box):
                total += float(x[(b, c) + position])
                count += 1
            y[(b, c) + out_pos] = total / count if count else 0.0
    return y.astype(_result_dtype(x.dtype))


def adaptive_avg_pool_backward_reference(grad_y, input_shape, output_size):
    r"""Gradient of adaptive average pooling: each bin element receives ``grad / bin size``.

    Parameters
    ----------
    grad_y : ndarray, shape (N, C, *output_size)
        Gradient with respect to the output.
    input_shape : tuple of int
        ``(N, C, *spatial)`` of the input.
    output_size : tuple of int, length n
        Output spatial shape.

    Returns
    -------
    grad_x : ndarray, shape ``input_shape``, dtype of ``grad_y`` (float64 for integers)

    Notes
    -----
    .. math::

        \frac{\partial L}{\partial x_t} = \sum_{o:\ t \in B_o} \frac{g_o}{|B_o|}

    summed from 0, as PyTorch's scatter-add into a zeroed gradient (so never -0.0), except with one
    bin per plane (every output size 1), which PyTorch computes as a mean: its backward broadcasts
    :math:`g / |B|`, and a -0.0 gradient stays -0.0.

    Examples
    --------
    Bins of 3 -> 2 are ``[0, 2)`` and ``[1, 3)``; the middle element is in both.

    >>> adaptive_avg_pool_backward_reference(numpy.ones((1, 1, 2)), (1, 1, 3), (2,)).tolist()
    [[[0.5, 1.0, 0.5]]]
    """
    grad_y = numpy.asarray(grad_y)
    input_shape = tuple(input_shape)
    output_size = tuple(output_size)
    N, C = input_shape[:2]
    spatial = input_shape[2:]
    grad_x = numpy.zeros(input_shape, dtype=numpy.float64)
    one_bin = all(O == 1 for O in output_size)
    # an infinite gradient meeting its opposite makes NaN, silently (as it should)
    with numpy.errstate(invalid="ignore", over="ignore"):
        for b, c in itertools.product(range(N), range(C)):
            for out_pos in itertools.product(*[range(O) for O in output_size]):
                box = _bin_box(out_pos, spatial, output_size)
                count = math.prod(len(r) for r in box)
                if count == 0:
                    continue
                share = float(grad_y[(b, c) + out_pos]) / count
                for position in itertools.product(*box):
                    if one_bin:
                        grad_x[(b, c) + position] = share  # PyTorch's mean: the share itself
                    else:
                        grad_x[(b, c) + position] += share  # overlapping bins accumulate, from 0
    return grad_x.astype(_result_dtype(grad_y.dtype))


def adaptive_max_pool_reference(x, output_size):
    r"""Adaptive max pooling with PyTorch's flat indices and NaN/tie rules.

    Parameters
    ----------
    x : ndarray, shape (N, C, *spatial)
        Input, any real dtype.
    output_size : tuple of int, length n
        Output spatial shape.

    Returns
    -------
    y : ndarray, shape (N, C, *output_size), dtype of ``x``
    indices : ndarray of int64, shape (N, C, *output_size)
        Flat index of each maximum within its ``(n, c)`` plane.

    Notes
    -----
    :math:`y_o = \max_{t \in B_o} x_t`, PyTorch's running max
    (:data:`poolref._running_max.TORCH`, applied by :func:`~poolref._running_max.window_max`): the
    scan starts with the bin's first element and, over the bin in row-major order, takes an element
    ``if val > maxval or isnan(val)``: ties go to the first (``-0.`` before ``0.``), a NaN wins and
    the last NaN's index is kept, a bin of only :math:`-\infty` keeps its first element. Backward
    (:func:`adaptive_max_pool_backward_reference`): scatter-add to the indices.

    Examples
    --------
    >>> y, idx = adaptive_max_pool_reference(numpy.array([[[4, 1, 4, 2, 3]]]), (2,))
    >>> y.tolist(), idx.tolist()
    ([[[4, 4]]], [[[0, 2]]])
    """
    x = numpy.asarray(x)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    output_size = tuple(output_size)
    y = numpy.empty((N, C) + output_size, dtype=x.dtype)
    indices = numpy.empty((N, C) + output_size, dtype=numpy.int64)
    for b, c in itertools.product(range(N), range(C)):
        for out_pos in itertools.product(*[range(O) for O in output_size]):
            box = _bin_box(out_pos, spatial, output_size)
            taps = [(x[(b, c) + position], _flat_index(position, spatial)) for position in itertools.product(*box)]
            y[(b, c) + out_pos], indices[(b, c) + out_pos] = window_max(TORCH, taps, x.dtype)
    return y, indices


def adaptive_max_pool_backward_reference(grad_y, indices, input_shape):
    r"""Gradient of adaptive max pooling: the scatter-add of max pooling.

    Parameters
    ----------
    grad_y : ndarray, shape (N, C, *output_size)
    indices : ndarray of int, shape (N, C, *output_size)
        As returned by :func:`adaptive_max_pool_reference`.
    input_shape : tuple of int

    Returns
    -------
    grad_x : ndarray, shape ``input_shape``

    Notes
    -----
    .. math::

        \frac{\partial L}{\partial x_t} = \sum_{o:\ \text{index}(o) = t} g_o

    Identical to :func:`~poolref.reference.window.max_pool_backward_reference`, which it calls.

    Examples
    --------
    >>> adaptive_max_pool_backward_reference(numpy.array([[[1., 2.]]]), numpy.array([[[0, 0]]]), (1, 1, 3)).tolist()
    [[[3.0, 0.0, 0.0]]]
    """
    return max_pool_backward_reference(grad_y, indices, input_shape)
