r"""Windowed pooling: max, average and Lp pooling in 1, 2 and 3 dimensions, and max unpooling.

Each op is a pair of pure functions, ``_<op>_forward`` and ``_<op>_backward``, registered with the
tape by :func:`poolref.autograd.define_function`, and a public function that checks its arguments,
asks :mod:`poolref._geometry` where the windows lie and applies the pair. The pairs are adjoint in the
way Chainer makes explicit:

* average pooling is linear, so its backward is its transpose: each window's gradient is spread back
  over the window's taps (:func:`window_sum_adjoint` is the transpose of :func:`window_sum`);
* max pooling selects, so its backward is a scatter of each gradient onto the selected element, whose
  adjoint is a gather; max *unpooling* is that scatter, and its backward is the gather.

The vectorised code never loops over output pixels, batch or channels: it loops over the few kernel
taps and reads, for each tap, a strided view of the padded input that holds that tap for every window
at once (``geometry.tap_slices``). The plain-loop references in :mod:`poolref.reference.window` are
the executable specification these functions are tested against.

Every (n, c) plane is pooled on its own, so the planes run in cache-sized blocks
(:func:`poolref._backend.batch_blocks`): a handful of blocks, each taken through all the passes
before the next, so that a large batch does not stream through main memory in every pass. The
blocking is a speed trick: it changes no value.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import numpy

from .._backend import array_module, batch_blocks
from .._checks import accumulation_dtype, check_pool_input, check_positive_number
from .._geometry import (
    WindowGeometry,
    as_int_tuple,
    check_convention,
    pool_geometry,
    resolve_padding,
    unpool_output_shape,
)
from .._running_max import (
    TORCH,
    MaxRule,
    RunningMax,
    first_inside_tap,
    lowest_value,
    max_pool_rule,
    window_indices,
)
from .._windows import (
    as_planes,
    window_sum_plane_bytes,
    gather_from_planes,
    pad_for_windows,
    plane_layout,
    scatter_to_planes,
    tap_views,
    window_sum,
    window_sum_adjoint,
)
from ..autograd.function import apply, define_function

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
]


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


def _max_pool_backward(saved: MaxPoolSaved, grad_values, *_grad_indices):
    # forward  y_o = x[index_o]              (a gather)
    # backward grad_x[index_o] += grad_y[o]  (its adjoint: a scatter-add; nothing where index_o = -1)
    # In cache-sized blocks of planes (poolref._backend.batch_blocks), each block's indices found
    # again from its winners; the sums go straight into the gradient (in float32 for float16).
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
    geometry = pool_geometry(x.shape[-n:], kernel_size, stride, padding, dilation, ceil_mode, convention, op)
    rule = max_pool_rule(convention, with_indices=bool(return_indices))
    return apply(MAX_POOL, x, geometry=geometry, with_indices=bool(return_indices), rule=rule)




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


# ==================================================================================================
# Average pooling
# ==================================================================================================
class AvgPoolSaved(NamedTuple):
    divisor: object  # (O..) what each window divides by, in the accumulation dtype
    geometry: WindowGeometry
    in_shape: tuple  # the input's shape (.., L..)
    dtype: numpy.dtype  # the input's dtype, for the gradient


def _avg_pool_forward(x, *, geometry: WindowGeometry, count_padding: bool, divisor_override):
    # Plane by plane, in cache-sized blocks of planes (a speed trick, poolref._backend.batch_blocks).
    xp = array_module(x)
    accumulate = accumulation_dtype(x.dtype)
    divisor = xp.asarray(geometry.divisor(count_padding, divisor_override), dtype=accumulate)  # (O..)
    planes = as_planes(x, geometry.ndim)  # (P, L..)
    y = xp.empty(planes.shape[:1] + geometry.out_shape, dtype=x.dtype)  # (P, O..)
    for block in batch_blocks(planes.shape[0], window_sum_plane_bytes(geometry, accumulate), like=x):
        # A zero divisor arises only under convention="jax" without count_include_pad, for a window
        # wholly in padding: its sum is 0, so it gives 0/0 = NaN, as reduce_window(x) /
        # reduce_window(ones) does.
        with numpy.errstate(invalid="ignore"):
            y[block] = window_sum(planes[block].astype(accumulate, copy=False), geometry) / divisor
    saved = AvgPoolSaved(divisor, geometry, tuple(x.shape), x.dtype)
    return y.reshape(x.shape[: x.ndim - geometry.ndim] + geometry.out_shape), saved


def _avg_pool_backward(saved: AvgPoolSaved, grad_y):
    # y_o = (1/D_o) sum_{i in W_o} x_i, so dL/dx_i = sum_{o: i in W_o} g_o / D_o: average pooling is
    # linear, its backward is its transpose, the window sum's adjoint of g / divisor. A window with
    # D_o = 0 (jax, wholly in padding) gives inf or NaN here, but it has no tap in the input, so the
    # adjoint drops it with the padding. In cache-sized blocks of planes, as the forward.
    xp = array_module(grad_y)
    geometry = saved.geometry
    g_planes = as_planes(grad_y, geometry.ndim)  # (P, O..)
    grad = xp.empty(g_planes.shape[:1] + geometry.in_shape, dtype=saved.dtype)  # (P, L..)
    for block in batch_blocks(grad.shape[0], window_sum_plane_bytes(geometry, saved.divisor.dtype), like=grad_y):
        with numpy.errstate(divide="ignore", invalid="ignore"):
            g = g_planes[block].astype(saved.divisor.dtype, copy=False) / saved.divisor
        grad[block] = window_sum_adjoint(g, geometry)
    return (grad.reshape(saved.in_shape),)


AVG_POOL = define_function("avg_pool", _avg_pool_forward, _avg_pool_backward)


def _avg_pool(x, n, op, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, convention):
    x = check_pool_input(x, n, op, integer_ok=False)
    geometry = pool_geometry(x.shape[-n:], kernel_size, stride, padding, dilation, ceil_mode, convention, op)
    if divisor_override is not None:
        if convention == "jax":
            raise ValueError(
                f"{op}: convention='jax' has no divisor_override (reduce_window's averages divide by prod(kernel_size) "
                f"or by a window sum of ones), got divisor_override={divisor_override!r}"
            )
        if isinstance(divisor_override, bool) or not isinstance(divisor_override, (int, numpy.integer)):
            raise TypeError(f"{op}: divisor_override must be an int or None, got divisor_override={divisor_override!r}")
        if divisor_override == 0:
            raise ValueError(f"{op}: divisor_override must not be zero, got divisor_override={divisor_override!r}")
    # TensorFlow never counts padding in an average (SAME padding is not data)
    count_padding = bool(count_include_pad) and convention != "tensorflow"
    return apply(AVG_POOL, x, geometry=geometry, count_padding=count_padding, divisor_override=divisor_override)




def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None, *, dilation=1, convention="torch"):
    r"""1-D average pooling over (N, C, L) or (C, L); see :func:`avg_pool2d` for the arguments.

    Notes
    -----
    :math:`y_o = \frac{1}{D_o}\sum_{i \in W_o} x_i`; backward
    :math:`\partial L/\partial x_i = \sum_{o: i \in W_o} \frac{1}{D_o} \partial L/\partial y_o`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.avg_pool1d(np.array([[1., 2., 3., 4., 5.]]), 2, 2, ceil_mode=True)
    array([[1.5, 3.5, 5. ]])
    """
    return _avg_pool(x, 1, "avg_pool1d", kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, convention)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None, *, dilation=1, convention="torch"):
    r"""2-D average pooling: the mean of each window.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input (float16 is accumulated in float32).
    kernel_size, stride, padding, ceil_mode
        As for :func:`max_pool2d`; padding reads as zero.
    count_include_pad : bool
        Count padding cells in the divisor (never under ``convention="tensorflow"``).
    divisor_override : int, optional
        Divide every window by this instead.
    dilation : int or (int, int)
        Spacing between taps (ONNX has it; PyTorch does not).
    convention : {"torch", "onnx", "tensorflow", "jax"}
        Whose argument and divisor rules apply. ``"jax"``: ``count_include_pad=True`` divides by
        ``prod(kernel_size)``, ``False`` by the number of input cells, so a window wholly in padding
        gives 0 or NaN (0/0); no ``divisor_override``.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)

    Notes
    -----
    Forward, for each window :math:`W_o` with its taps inside the input (padding reads as zero):

    .. math:: y_o = \frac{1}{D_o} \sum_{i \in W_o} x_i

    The divisor :math:`D_o` is ``divisor_override`` if given; else, with ``count_include_pad``, the
    number of taps inside the input or its padding (PyTorch's ``pool_size``: a ceil-mode overhang
    past the end padding is not counted); else the number of taps inside the input. Under
    ``convention="tensorflow"`` padding is never counted (``count_include_pad`` is ignored).

    Backward, the transpose of the forward:

    .. math:: \frac{\partial L}{\partial x_i} = \sum_{o \,:\, i \in W_o} \frac{1}{D_o} \frac{\partial L}{\partial y_o}

    So the input gradient sums to :math:`\sum_o \frac{|W_o|}{D_o} \frac{\partial L}{\partial y_o}`,
    the output gradient's sum exactly when no window counts padding or overhang.

    Examples
    --------
    The ceil-mode case from PyTorch's bug tracker (the last window divides by 2, not 3, per axis):

    >>> import numpy as np, poolref
    >>> x = np.arange(1., 17.).reshape(1, 1, 4, 4)
    >>> poolref.avg_pool2d(x, 3, 2, 1, ceil_mode=True).round(4)
    array([[[[ 1.5556,  3.3333,  2.    ],
             [ 6.3333, 11.    ,  6.    ],
             [ 4.5   ,  7.5   ,  4.    ]]]])
    """
    return _avg_pool(x, 2, "avg_pool2d", kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, convention)


def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None, *, dilation=1, convention="torch"):
    r"""3-D average pooling over (N, C, D, H, W) or (C, D, H, W); see :func:`avg_pool2d`.

    Notes
    -----
    :math:`y_o = \frac{1}{D_o}\sum_{i \in W_o} x_i`; backward
    :math:`\partial L/\partial x_i = \sum_{o: i \in W_o} \frac{1}{D_o} \partial L/\partial y_o`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.avg_pool3d(np.arange(8.).reshape(1, 2, 2, 2), 2)
    array([[[[3.5]]]])
    """
    return _avg_pool(x, 3, "avg_pool3d", kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation, convention)


# ==================================================================================================
# Lp pooling
# ==================================================================================================
#: TensorFlow has no Lp pooling. JAX has none either: under "jax" poolref takes the true norm of
#: ONNX's LpPool, (reduce_window(add, |x|**p)) ** (1/p), over reduce_window's geometry.
LP_CONVENTIONS = ("torch", "onnx", "jax")


class LpPoolSaved(NamedTuple):
    x: object  # (P, L..) the input's planes (cast to the accumulation dtype block by block)
    window_sum: object  # (P, O..) S of every window (rescaled under "torch"), in the accumulation dtype
    scale: object  # (O..) prod(k) / D under "torch" (rescaling of partial windows), 1 otherwise
    p: float
    convention: str
    geometry: WindowGeometry
    in_shape: tuple  # the input's shape (.., L..)
    dtype: numpy.dtype


def _lp_pool_forward(x, *, p: float, geometry: WindowGeometry, convention: str):
    # Plane by plane, in cache-sized blocks of planes (a speed trick, poolref._backend.batch_blocks).
    xp = array_module(x)
    accumulate = accumulation_dtype(x.dtype)
    if convention == "torch":
        # PyTorch: avg_pool(x**p) * prod(k), then ** (1/p). No abs: negative windows with odd or
        # fractional p give NaN. A partial ceil-mode window is rescaled by prod(k)/count (a quirk).
        scale = xp.asarray(geometry.kernel_volume / geometry.divisor(count_padding=True), dtype=accumulate)
    else:
        # ONNX LpPool (and poolref's "jax"): the true p-norm of the window; padding contributes
        # zero, nothing is rescaled. A jax window wholly in padding sums to 0 and gives 0.
        scale = xp.ones(geometry.out_shape, dtype=accumulate)
    planes = as_planes(x, geometry.ndim)  # (P, L..)
    y = xp.empty(planes.shape[:1] + geometry.out_shape, dtype=x.dtype)  # (P, O..)
    powered_sum = xp.empty(y.shape, dtype=accumulate)  # (P, O..)
    for block in batch_blocks(planes.shape[0], window_sum_plane_bytes(geometry, accumulate), like=x):
        xa = _contiguous(planes[block], accumulate)  # (B, L..)
        with numpy.errstate(invalid="ignore", divide="ignore", over="ignore"):
            powered = xa**p if convention == "torch" else xp.abs(xa) ** p
            powered_sum[block] = window_sum(powered, geometry) * scale
            y[block] = powered_sum[block] ** (1.0 / p)
    saved = LpPoolSaved(planes, powered_sum, scale, p, convention, geometry, tuple(x.shape), x.dtype)
    return y.reshape(x.shape[: x.ndim - geometry.ndim] + geometry.out_shape), saved


def _lp_pool_backward(saved: LpPoolSaved, grad_y):
    # y_o = S_o^(1/p) with S_o = c_o sum_{i in W_o} f(x_i), f(x) = x^p ("torch") or |x|^p ("onnx",
    # "jax"), c_o the torch rescaling (1 otherwise); so
    #   dL/dx_i = sum_{o: i in W_o} g_o * (1/p) S_o^(1/p - 1) * c_o * f'(x_i).
    # dy/dS is computed as a power of S, not as y / (p S): where S is infinite the two differ
    # (inf / inf is NaN, while S^(1/p - 1) is 0 for p > 1 and 1 for p = 1, the true limits).
    # In cache-sized blocks of planes, as the forward.
    xp = array_module(grad_y)
    p, geometry = saved.p, saved.geometry
    accumulate = saved.window_sum.dtype
    # Cells whose gradient is 0 whatever the product says (0 * inf and 0 * NaN would be NaN):
    # cells that no window reads (PyTorch's lp_pool gradient leaks a NaN there), and, for p < 1,
    # cells holding 0, where |x|^p has no derivative (poolref's rule: zero).
    read = geometry.cells_read()  # (L..)
    read = None if read.all() else xp.asarray(read)
    g_planes = as_planes(grad_y, geometry.ndim)  # (P, O..)
    grad = xp.empty(saved.x.shape, dtype=saved.dtype)  # (P, L..)
    for block in batch_blocks(grad.shape[0], window_sum_plane_bytes(geometry, accumulate), like=grad_y):
        x, s = _contiguous(saved.x[block], accumulate), saved.window_sum[block]  # (B, L..), (B, O..)
        with numpy.errstate(invalid="ignore", divide="ignore", over="ignore"):
            dy_ds = s ** (1.0 / p - 1.0) / p
            per_window = g_planes[block].astype(accumulate, copy=False) * dy_ds * saved.scale  # (B, O..)
            # poolref's rule: a window whose sum is zero sends nothing (the norm has no derivative
            # there), not even a NaN or infinite g_o, as PyTorch's relu backward does
            per_window = xp.where(s == 0, 0, per_window)
            spread = window_sum_adjoint(per_window, geometry)  # (B, L..)
            # f'(x) = p x^(p-1) under "torch"; p sign(x) |x|^(p-1) under "onnx" and "jax"
            if saved.convention == "torch":
                dpow = p * x ** (p - 1)
            else:
                dpow = p * xp.sign(x) * xp.abs(x) ** (p - 1)
            grad_x = spread * dpow
        keep = read
        if p < 1:
            keep = (x != 0) if keep is None else keep & (x != 0)
        grad[block] = grad_x if keep is None else xp.where(keep, grad_x, 0)
    return (grad.reshape(saved.in_shape),)


def _contiguous(x, dtype):
    """``x`` in ``dtype``, as a C-contiguous array (a copy only where it is not one already).

    Powers are taken of contiguous arrays only: NumPy computes ``x ** p`` (for p other than 0.5, 1
    and 2) with SIMD code on contiguous data and with the C library's ``pow`` on some strided
    views, and the two may round the last bit differently. On a contiguous block the result is the
    same whatever the input's layout and however the planes are cut into blocks.
    """
    return array_module(x).ascontiguousarray(x, dtype=dtype)


LP_POOL = define_function("lp_pool", _lp_pool_forward, _lp_pool_backward)


def _lp_pool(x, n, op, norm_type, kernel_size, stride, ceil_mode, padding, dilation, convention):
    x = check_pool_input(x, n, op, integer_ok=False)
    p = check_positive_number(norm_type, "norm_type", op)
    check_convention(convention, op, allowed=LP_CONVENTIONS)
    geometry = pool_geometry(x.shape[-n:], kernel_size, stride, padding, dilation, ceil_mode, convention, op)
    return apply(LP_POOL, x, p=p, geometry=geometry, convention=convention)




def lp_pool1d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, padding=0, dilation=1, convention="torch"):
    r"""1-D power-average (Lp) pooling over (N, C, L) or (C, L); see :func:`lp_pool2d`.

    Notes
    -----
    torch: :math:`y_o = (\frac{\prod k}{D_o} \sum_{i \in W_o} x_i^p)^{1/p}`; onnx:
    :math:`y_o = (\sum_{i \in W_o} |x_i|^p)^{1/p}`; backward
    :math:`\partial L/\partial x_i = \sum_o \partial L/\partial y_o \, (y_o / S_o) \, c_o \, x_i^{p-1}`.

    Examples
    --------
    PyTorch rescales the partial last window (3 + 7 + 5*2), ONNX Runtime does not:

    >>> import numpy as np, poolref
    >>> x = np.array([[1., 2., 3., 4., 5.]])
    >>> poolref.lp_pool1d(x, 1, 2, 2, ceil_mode=True)
    array([[ 3.,  7., 10.]])
    >>> poolref.lp_pool1d(x, 1, 2, 2, ceil_mode=True, convention="onnx")
    array([[3., 7., 5.]])
    """
    return _lp_pool(x, 1, "lp_pool1d", norm_type, kernel_size, stride, ceil_mode, padding, dilation, convention)


def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, padding=0, dilation=1, convention="torch"):
    r"""2-D power-average (Lp) pooling: the p-norm of each window.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input.
    norm_type : float
        The power ``p > 0``; ``p = 1`` is sum pooling, large ``p`` tends to max pooling.
    kernel_size, stride, ceil_mode, padding, dilation
        As for :func:`avg_pool2d` (PyTorch has no padding or dilation for Lp pooling; poolref
        generalises its formula, ONNX has both).
    convention : {"torch", "onnx", "jax"}
        PyTorch's formula (with its quirks) or ONNX's true norm; ``"jax"`` is the true norm over
        ``lax.reduce_window``'s geometry (JAX has no Lp pooling). TensorFlow has no Lp pooling.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)

    Notes
    -----
    ``convention="torch"`` reproduces PyTorch's formula, quirks included:

    .. math:: S_o = \frac{\prod k}{D_o} \sum_{i \in W_o} x_i^p, \qquad y_o = S_o^{1/p}

    with :math:`D_o` average pooling's divisor counting padding, so a partial ceil-mode window is
    rescaled as if it were full, and no absolute value: negative windows give NaN for fractional
    :math:`1/p` and signed results for ``p = 1`` (a quirk). ``convention="onnx"`` is the true norm,
    :math:`y_o = (\sum_{i \in W_o} |x_i|^p)^{1/p}` (ONNX Runtime; padding adds zero, nothing is rescaled).

    Backward (chain rule; zero where :math:`S_o = 0`, poolref's choice where the derivative blows up):

    .. math:: \frac{\partial L}{\partial x_i} = \sum_{o \,:\, i \in W_o} \frac{\partial L}{\partial y_o}
              \frac{y_o}{S_o} \frac{\prod k}{D_o} x_i^{p-1}
              \quad\text{(onnx: } \frac{y_o}{S_o} \operatorname{sign}(x_i) |x_i|^{p-1}\text{)}

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.lp_pool2d(np.array([[[3., 4.], [0., 0.]]]), 2, 2)
    array([[[5.]]])
    """
    return _lp_pool(x, 2, "lp_pool2d", norm_type, kernel_size, stride, ceil_mode, padding, dilation, convention)


def lp_pool3d(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, padding=0, dilation=1, convention="torch"):
    r"""3-D power-average (Lp) pooling over (N, C, D, H, W) or (C, D, H, W); see :func:`lp_pool2d`.

    Notes
    -----
    torch: :math:`y_o = (\frac{\prod k}{D_o} \sum_{i \in W_o} x_i^p)^{1/p}`; onnx:
    :math:`y_o = (\sum_{i \in W_o} |x_i|^p)^{1/p}`; backward
    :math:`\partial L/\partial x_i = \sum_o \partial L/\partial y_o \, (y_o / S_o) \, c_o \, x_i^{p-1}`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.lp_pool3d(np.ones((1, 2, 2, 2)), 1, 2)
    array([[[[8.]]]])
    """
    return _lp_pool(x, 3, "lp_pool3d", norm_type, kernel_size, stride, ceil_mode, padding, dilation, convention)


# ==================================================================================================
# Max unpooling
# ==================================================================================================
class MaxUnpoolSaved(NamedTuple):
    indices: object
    ndim: int


def _max_unpool_forward(x, indices, *, out_spatial: tuple):
    xp = array_module(x)
    n = len(out_spatial)
    lead = x.shape[: x.ndim - n]
    planes, plane_size = plane_layout(lead + tuple(out_spatial), n)
    y = xp.zeros((planes, plane_size), dtype=x.dtype)
    rows = xp.arange(planes).reshape(planes, 1)
    # each value goes to its index in its plane; with repeated indices the last write wins
    values_per_plane = plane_layout(x.shape, n)[1]
    y[rows, indices.reshape(planes, values_per_plane)] = x.reshape(planes, values_per_plane)
    return y.reshape(lead + tuple(out_spatial)), MaxUnpoolSaved(indices, n)


def _max_unpool_backward(saved: MaxUnpoolSaved, grad_y):
    # the adjoint of a scatter is a gather; the indices get no gradient
    return gather_from_planes(grad_y, saved.indices, saved.ndim), None


MAX_UNPOOL = define_function("max_unpool", _max_unpool_forward, _max_unpool_backward)


def _max_unpool(x, indices, n, op, kernel_size, stride, padding, output_size):
    x = check_pool_input(x, n, op, integer_ok=True)
    if not (hasattr(indices, "shape") and hasattr(indices, "dtype")):
        indices = numpy.asarray(indices)
    if tuple(indices.shape) != tuple(x.shape):
        raise ValueError(f"{op}: indices must have the shape of x {tuple(x.shape)}, got indices with shape {tuple(indices.shape)}")
    if numpy.dtype(indices.dtype).kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer array, got indices with dtype {indices.dtype}")
    kernel = as_int_tuple(kernel_size, n, "kernel_size", op)
    strides = kernel if stride is None else as_int_tuple(stride, n, "stride", op)
    pads = _unpool_padding(padding, n, op)
    for name, value in (("kernel_size", kernel), ("stride", strides)):
        if any(v <= 0 for v in value):
            raise ValueError(f"{op}: {name} must be positive, got {name}={value}")
    out_spatial = unpool_output_shape(tuple(x.shape[-n:]), kernel, strides, pads, output_size, op)
    raw = indices.data if hasattr(indices, "requires_grad") else indices
    plane_size = math.prod(out_spatial)
    if raw.size and (int(raw.min()) < 0 or int(raw.max()) >= plane_size):
        raise ValueError(
            f"{op}: indices must lie in [0, {plane_size}) for output size {out_spatial}, got indices "
            f"from {int(raw.min())} to {int(raw.max())}"
        )
    return apply(MAX_UNPOOL, x, indices, out_spatial=out_spatial)


def _unpool_padding(padding, n, op):
    """The pooling's padding as (begin, end) pairs; unpooling has no "same" or "valid" strings."""
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be ints or (begin, end) pairs, got padding={padding!r}")
    return resolve_padding(padding, (1,) * n, (1,) * n, (1,) * n, (1,) * n, op)




def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    r"""1-D max unpooling of (N, C, L) or (C, L); see :func:`max_unpool2d`.

    Notes
    -----
    :math:`y_{\mathrm{index}_o} = x_o`, zeros elsewhere; backward
    :math:`\partial L/\partial x_o = \partial L/\partial y_{\mathrm{index}_o}`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.max_unpool1d(np.array([[3., 5.]]), np.array([[1, 3]]), 2)
    array([[0., 3., 0., 5.]])
    """
    return _max_unpool(x, indices, 1, "max_unpool1d", kernel_size, stride, padding, output_size)


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    r"""2-D max unpooling: put each value back where :func:`max_pool2d` found it.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Pooled values (floating or integer).
    indices : integer array or Tensor, same shape as ``x``
        Flat in-plane indices, as returned by ``max_pool2d(..., return_indices=True)``.
    kernel_size, stride, padding
        The pooling's arguments, used for the default output size.
    output_size : sequence of ints, optional
        The spatial output size (optionally preceded by N and C); must lie within ``stride`` of the
        default.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)

    Notes
    -----
    The partial inverse of max pooling: each value is written at its index in its (n, c) plane and
    every other output is zero,

    .. math:: y_{\mathrm{index}_o} = x_o, \qquad y_j = 0 \text{ for every other } j

    Backward, the adjoint gather:
    :math:`\partial L / \partial x_o = \partial L / \partial y_{\mathrm{index}_o}`. The default output length
    is :math:`(L_{in} - 1) s - 2p + k`.

    Repeated indices (from overlapping pooling windows) follow PyTorch: the forward keeps the last
    write, and the backward still gathers for every entry, so there it is not the derivative of the
    forward. With unique indices (``stride >= kernel_size``) the pair is exactly adjoint.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.array([[[1., 4.], [3., 2.]]])
    >>> y, i = poolref.max_pool2d(x, 2, return_indices=True)
    >>> poolref.max_unpool2d(y, i, 2)
    array([[[0., 4.],
            [0., 0.]]])
    """
    return _max_unpool(x, indices, 2, "max_unpool2d", kernel_size, stride, padding, output_size)


def max_unpool3d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    r"""3-D max unpooling of (N, C, D, H, W) or (C, D, H, W); see :func:`max_unpool2d`.

    Notes
    -----
    :math:`y_{\mathrm{index}_o} = x_o`, zeros elsewhere; backward
    :math:`\partial L/\partial x_o = \partial L/\partial y_{\mathrm{index}_o}`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.max_unpool3d(np.array([[[[2.]]]]), np.array([[[[7]]]]), 2).ravel()
    array([0., 0., 0., 0., 0., 0., 0., 2.])
    """
    return _max_unpool(x, indices, 3, "max_unpool3d", kernel_size, stride, padding, output_size)
