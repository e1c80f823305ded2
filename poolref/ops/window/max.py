r"""Max pooling in 1, 2 and 3 dimensions: the running max of every window, and its scatter backward.

Max pooling selects, so its backward is a scatter of each gradient onto the selected element, whose
adjoint is a gather (:func:`poolref._windows.scatter_to_planes`, :func:`poolref._windows.gather_from_planes`).
Which element a window selects (ties, NaN, windows of only -inf) is each framework's rule, kept in
:mod:`poolref._running_max`.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import numpy

from ..._backend import array_module, batch_blocks
from ..._checks import accumulation_dtype, check_flag, check_pool_input
from ..._geometry import WindowGeometry, pool_geometry
from ..._running_max import (
    TORCH,
    MaxRule,
    RunningMax,
    first_inside_tap,
    lowest_value,
    max_pool_rule,
    window_indices,
)
from ..._windows import as_planes, gather_from_planes, pad_for_windows, scatter_to_planes, tap_views
from ...autograd.function import apply, define_function

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "MAX_POOL", "MaxPoolSaved"]


# ==================================================================================================
# Max pooling
# ==================================================================================================
class MaxPoolSaved(NamedTuple):
    winner: object  # (.., O..) number of each window's winning tap (RunningMax.winner), -1 for none
    geometry: WindowGeometry
    in_shape: tuple  # the input's shape (.., L..)
    dtype: numpy.dtype  # the input's dtype, for the gradient


def _max_pool_forward(x, *, geometry: WindowGeometry, with_indices: bool, rule: MaxRule = TORCH):
    # The running max of every window, tap by tap (poolref._running_max): tap ``offsets`` of every
    # window is one view of the padded input (poolref._windows.tap_views), padding reading as -inf.
    # Every plane is pooled on its own; the planes go through in cache-sized blocks (a speed trick,
    # see poolref._backend.batch_blocks), which changes no value.
    xp = array_module(x)
    n = geometry.ndim
    planes = as_planes(x, n)  # (P, L..)
    tables = geometry.tap_tables()
    first_tap = first_inside_tap(tables, geometry.kernel, xp)  # (O..)
    y = xp.empty(planes.shape[:1] + geometry.out_shape, dtype=x.dtype)  # (P, O..)
    indices = xp.empty(y.shape, dtype=numpy.int64) if with_indices else None  # (P, O..)
    winners = []  # each block's (B, O..) winning tap numbers
    # bytes a plane costs: its input and padded copy; per window the best, output, winner and index
    plane_bytes = x.dtype.itemsize * (math.prod(geometry.in_shape) + math.prod(geometry.padded_shape))
    plane_bytes += math.prod(geometry.out_shape) * (2 * x.dtype.itemsize + 10)
    for block in batch_blocks(planes.shape[0], plane_bytes, like=x):
        running = _running_max_of_planes(planes[block], geometry, rule, first_tap)
        winners.append(running.winner)
        # The flat in-plane index of each window's winner is made only where it is needed (returned,
        # or read at below); the backward finds it again from the winner (in PyTorch's scan a byte
        # a window, not 8).
        find_indices = partial(window_indices, running.winner, tables, geometry.in_shape, geometry.kernel)
        if with_indices:
            indices[block] = find_indices()
        # y_o = x[index_o]: the output is read at the winner (or is the rule's floor / IEEE maximum)
        y[block] = running.values(lambda: gather_from_planes(planes[block], indices[block] if with_indices else find_indices(), n))
    y = y.reshape(x.shape[: x.ndim - n] + geometry.out_shape)
    winner = winners[0] if len(winners) == 1 else xp.concatenate(winners)  # (P, O..)
    saved = MaxPoolSaved(winner.reshape(y.shape), geometry, tuple(x.shape), x.dtype)
    return ((y, indices.reshape(y.shape)) if with_indices else y), saved


def _running_max_of_planes(x, geometry: WindowGeometry, rule: MaxRule, first_tap) -> RunningMax:
    """The running max of every window of a block of planes (B, L..), all taps scanned."""
    xp = array_module(x)
    taps = tap_views(pad_for_windows(x, geometry, lowest_value(x.dtype)), geometry)  # (B, O..) views

    def scan(nan_possible: bool) -> RunningMax:
        running = RunningMax(rule, x.shape[:1] + geometry.out_shape, x.dtype, xp, taps=geometry.kernel_volume,
                             first_tap=first_tap, nan_possible=nan_possible)
        for tap_number, tap in enumerate(taps):
            running.add(tap, tap_number)
        return running

    # Speed trick: scan as if no NaN were there, and scan again in the rare block where one was
    # (RunningMax.missed_nan), rather than search the whole input for a NaN before every scan.
    running = scan(nan_possible=False)
    return scan(nan_possible=True) if running.missed_nan() else running


# forward  y_o = max_{i in W_o} x_i = x[index_o]    (the running max picks index_o; then a gather)
# backward grad_x[index_o] += grad_y[o]              (the gather's adjoint: a scatter-add;
#          nothing where index_o = -1, a window with no winner)
# Speed trick: cache-sized blocks of planes (poolref._backend.batch_blocks), each block's indices
# found again from its winners; the sums go straight into the gradient (in float32 for float16).
def _max_pool_backward(saved: MaxPoolSaved, grad_values, *_grad_indices):
    xp = array_module(grad_values)
    geometry = saved.geometry
    tables = geometry.tap_tables()
    winner = as_planes(saved.winner, geometry.ndim)  # (P, O..)
    grad = xp.zeros(winner.shape[:1] + geometry.in_shape, dtype=accumulation_dtype(grad_values.dtype))  # (P, L..)
    grad_planes = as_planes(grad_values, geometry.ndim)  # (P, O..)
    # bytes a plane costs: its gradient; per window the upstream entry, the winner and the index
    plane_bytes = math.prod(geometry.in_shape) * grad.dtype.itemsize + math.prod(geometry.out_shape) * (grad_values.dtype.itemsize + 17)
    for block in batch_blocks(grad.shape[0], plane_bytes, like=grad_values):
        indices = window_indices(winner[block], tables, geometry.in_shape, geometry.kernel)  # (B, O..)
        scatter_to_planes(grad_planes[block], indices, grad[block].shape, geometry.ndim, out=grad[block])
    return (grad.reshape(saved.in_shape).astype(saved.dtype, copy=False),)


MAX_POOL = define_function("max_pool", _max_pool_forward, _max_pool_backward)


def _max_pool(x, n, op, kernel_size, stride, padding, dilation, ceil_mode, return_indices, convention):
    x = check_pool_input(x, n, op, integer_ok=True)
    return_indices = check_flag(return_indices, "return_indices", op)
    geometry = pool_geometry(x.shape[-n:], kernel_size, stride, padding, dilation, ceil_mode, convention, op)
    rule = max_pool_rule(convention, with_indices=return_indices)
    return apply(MAX_POOL, x, geometry=geometry, with_indices=return_indices, rule=rule)




def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *, convention="torch"):
    r"""1-D max pooling over (N, C, L) or (C, L); see :func:`max_pool2d` for the arguments.

    Notes
    -----
    :math:`y_o = \max_{m} x[o s - p + m d]` over the taps inside the input (under ``"torch"``: first
    of ties, the last NaN wins; other conventions: :ref:`max-rules`); backward, the scatter
    :math:`\partial L / \partial x_i = \sum_{o: \mathrm{index}_o = i} \partial L / \partial y_o`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.max_pool1d(np.array([[1., 3., 2., 5., 4.]]), 2, return_indices=True)
    (array([[3., 5.]]), array([[1, 3]]))
    """
    return _max_pool(x, 1, "max_pool1d", kernel_size, stride, padding, dilation, ceil_mode, return_indices, convention)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *, convention="torch"):
    r"""2-D max pooling: the largest element of each window.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating or integer input.
    kernel_size : int or (int, int)
        Window size ``k``.
    stride : int or (int, int), optional
        Step between windows ``s``; defaults to ``kernel_size``.
    padding : int, (int, int), ((int, int), (int, int)) or str
        Symmetric, per-axis or per-axis ``(begin, end)`` padding, or ``"valid"``, ``"same"``
        (= ``"same_upper"``), ``"same_lower"``. Padding reads as :math:`-\infty`.
    dilation : int or (int, int)
        Spacing ``d`` between the taps of a window.
    ceil_mode : bool
        Round the output size up; a window may then overhang the end, but none starts in the end
        padding.
    return_indices : bool
        Also return the flat index ``h*W + w`` of each maximum within its (n, c) plane (-1 where a
        window has no winner).
    convention : {"torch", "onnx", "tensorflow", "jax"}
        Whose rules apply: the padding and argument rules (:mod:`poolref._geometry`) and the running
        max (:mod:`poolref._running_max`), which decides ties, NaN, windows of only :math:`-\infty`
        and signed zeros, so the values differ between conventions (:ref:`max-rules`). Under
        ``"tensorflow"``, ``return_indices=True`` models ``tf.nn.max_pool_with_argmax``, whose rule
        differs from ``tf.nn.max_pool2d``'s, values included. Under ``"jax"``
        (``lax.reduce_window``) pads may be negative, a window wholly in padding gives
        :math:`-\infty` (index -1, no gradient) and the output may be empty; there is no ceil mode.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)
        ``H_out = floor((H + 2p - d(k - 1) - 1)/s) + 1`` (ceil in ceil mode).
    indices : int64 array or Tensor, same shape as ``y``
        Only with ``return_indices=True``.

    Notes
    -----
    Forward, for each window :math:`W_o` (its taps inside the input; padding reads as
    :math:`-\infty`):

    .. math:: y_o = \max_{i \in W_o} x_i, \qquad \mathrm{index}_o = \operatorname{argmax}_{i \in W_o} x_i

    scanning the taps in row-major order. PyTorch's rule (the default) takes a tap when
    ``x_i > y or isnan(x_i)``: ties go to the first (``[-0., 0.]`` gives ``-0.`` at index 0), a NaN
    wins and the last NaN's index is kept, a window of only :math:`-\infty` keeps its first element.
    The other conventions' rules are in :ref:`max-rules`.

    Backward, the adjoint of the gather :math:`y_o = x_{\mathrm{index}_o}`: a scatter-add of each
    upstream entry onto its argmax (overlapping windows accumulate; the input gradient sums to the
    output gradient; an infinite or NaN entry reaches its argmax and nothing else):

    .. math:: \frac{\partial L}{\partial x_i} = \sum_{o \,:\, \mathrm{index}_o = i} \frac{\partial L}{\partial y_o}

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.arange(16.).reshape(1, 4, 4)
    >>> poolref.max_pool2d(x, 2)
    array([[[ 5.,  7.],
            [13., 15.]]])
    >>> poolref.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)[1]
    array([[[ 5,  7],
            [13, 15]]])
    """
    return _max_pool(x, 2, "max_pool2d", kernel_size, stride, padding, dilation, ceil_mode, return_indices, convention)


def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *, convention="torch"):
    r"""3-D max pooling over (N, C, D, H, W) or (C, D, H, W); see :func:`max_pool2d` for the arguments.

    Indices are flattened as ``(d*H + h)*W + w`` within each (n, c) volume.

    Notes
    -----
    :math:`y_o = \max_{i \in W_o} x_i` (under ``"torch"``: first of ties, the last NaN wins; other
    conventions: :ref:`max-rules`); backward scatters each :math:`\partial L / \partial y_o` onto
    :math:`x_{\mathrm{index}_o}`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.max_pool3d(np.arange(8.).reshape(1, 2, 2, 2), 2, return_indices=True)
    (array([[[[7.]]]]), array([[[[7]]]]))
    """
    return _max_pool(x, 3, "max_pool3d", kernel_size, stride, padding, dilation, ceil_mode, return_indices, convention)
