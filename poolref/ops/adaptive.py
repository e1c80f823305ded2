r"""Adaptive and global pooling: the output size is given, the windows (bins) follow from it.

Bin ``i`` of ``O`` over an axis of length ``L`` is ``[floor(i*L/O), ceil((i+1)*L/O))``
(:func:`poolref._geometry.adaptive_bins`): bins may overlap and need not be equal, e.g. 8 -> 6 gives
``[0,2) [1,3) [2,4) [4,6) [5,7) [6,8)``. The window of an output is the box of its per-axis bins.
Global pooling is the case ``O = 1`` on every axis.

Each axis's bins are one table of taps, :func:`poolref._geometry.adaptive_taps` (a
:class:`poolref._taps.Taps` without weights: bin ``o`` reads its cells, the taps past a shorter bin's
end read nothing), and both ops read the input through it:

* adaptive average pooling is a separable linear map: along each axis each bin's cells are summed
  (:func:`poolref._taps.resample`, which reads only the cells a bin holds, so a NaN or an infinity
  stays in the bins that hold it), then the sums are divided by the bin areas. Its backward is its
  transpose: the same sums over the transposed tables (for each input cell, the bins that hold it).
  PyTorch's ``interpolate(mode="area")`` *is* this op (``torch.nn.functional.interpolate`` calls
  ``adaptive_avg_pool{1,2,3}d``), and ``poolref.interpolate`` calls :data:`ADAPTIVE_AVG_POOL` too;
* adaptive max pooling scans the taps of each bin like max pooling, with the same tie and NaN rules
  (:mod:`poolref._running_max`), and its backward is the same scatter.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from .._backend import array_module
from .._checks import accumulation_dtype, check_element_count, check_flag, check_pool_input, check_positive_number
from .._geometry import adaptive_taps, as_int_tuple, check_convention, pool_geometry
from .._running_max import (
    TORCH,
    RunningMax,
    first_inside_tap,
    lowest_value,
    window_indices,
)
from .._taps import resample
from .._windows import gather_from_planes, scatter_to_planes
from ..autograd.function import apply, define_function
from .window import LP_POOL

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "global_avg_pool", "global_max_pool", "global_lp_pool",
]


def _axis_order(in_sizes, out_sizes):
    """(speed trick) The order to sum the axes in: shrinking axes first, so that later steps run on
    smaller arrays, and growing axes last, the last axis first, so that the largest step gathers
    whole rows. Any order gives the same sums up to rounding."""
    shrinking = [a for a, (L, O) in enumerate(zip(in_sizes, out_sizes)) if O <= L]
    growing = [a for a, (L, O) in enumerate(zip(in_sizes, out_sizes)) if O > L]
    return shrinking + growing[::-1]


# ==================================================================================================
# Adaptive average pooling
# ==================================================================================================
class AdaptiveAvgSaved(NamedTuple):
    tables: tuple  # per axis a, the (O_a, K_a) Taps of its bins
    in_shape: tuple  # (L_0, .., L_{n-1}) spatial shape of the input
    area: object  # (O_0, .., O_{n-1}) |B_o|, the cells in each bin box, in the accumulation dtype
    dtype: numpy.dtype


def _bin_areas(tables, xp, dtype):
    """(O_0, .., O_{n-1}) cells in each bin box: the outer product of the per-axis bin lengths."""
    area = numpy.ones(())
    for table in tables:
        area = numpy.multiply.outer(area, table.reads().sum(axis=1).astype(numpy.float64))
    return xp.asarray(area, dtype=dtype)


def _adaptive_avg_forward(x, *, output_size: tuple):
    n = len(output_size)
    lead = x.ndim - n  # (N, C) or (C,) before the spatial axes
    in_shape = tuple(x.shape[lead:])
    tables = tuple(adaptive_taps(L, O) for L, O in zip(in_shape, output_size))  # per axis (O_a, K_a)
    area = _bin_areas(tables, array_module(x), accumulation_dtype(x.dtype))  # (O..)
    # y_o = (1/|B_o|) sum_{i in B_o} x_i: sum the bins one axis at a time, (.., L_a, ..) -> (.., O_a, ..),
    # in the accumulation dtype (float32 for float16), then divide by the areas and round once
    summed = x.astype(area.dtype, copy=False)
    for a in _axis_order(in_shape, output_size):
        summed = resample(summed, tables[a], lead + a)
    y = (summed / area).astype(x.dtype, copy=False)  # (.., O..)
    return y, AdaptiveAvgSaved(tables, in_shape, area, x.dtype)


# forward  y_o = (1/|B_o|) sum_{i in B_o} x_i
# backward grad_x_i = sum_{o: i in B_o} g_o / |B_o|
# the transpose of the forward: divide by the areas, then along each axis sum, for every input
# cell, the bins that hold it (the transposed table), (.., O_a, ..) -> (.., L_a, ..); so a NaN or
# an infinity in g_o reaches exactly the cells of B_o
def _adaptive_avg_backward(saved: AdaptiveAvgSaved, grad_y):
    xp = array_module(grad_y)
    n = len(saved.tables)
    lead = grad_y.ndim - n
    spread = grad_y.astype(saved.area.dtype, copy=False) / saved.area  # (.., O..) g_o / |B_o|
    if all(O == 1 for O in grad_y.shape[lead:]):
        # one bin, the whole plane: every cell gets g / |B|. PyTorch computes this case as a mean
        # over the spatial axes, whose backward broadcasts g / |B| (adds it to no zero: a -0.0
        # gradient stays -0.0, where its scatter-adds into zeros below give +0.0)
        return (xp.broadcast_to(spread, grad_y.shape[:lead] + saved.in_shape).astype(saved.dtype),)
    for a in _axis_order(grad_y.shape[lead:], saved.in_shape):
        spread = resample(spread, saved.tables[a].transpose(), lead + a)
    return (xp.ascontiguousarray(spread).astype(saved.dtype, copy=False),)  # (.., L..)


ADAPTIVE_AVG_POOL = define_function("adaptive_avg_pool", _adaptive_avg_forward, _adaptive_avg_backward)


def _output_size(output_size, x, n, op):
    """PyTorch allows None for "keep this axis's input size"."""
    if isinstance(output_size, (tuple, list)) and len(output_size) == n:
        output_size = tuple(x.shape[x.ndim - n + a] if v is None else v for a, v in enumerate(output_size))
    size = as_int_tuple(output_size, n, "output_size", op)
    if any(v <= 0 for v in size):
        raise ValueError(f"{op}: output_size must be positive, got output_size={output_size!r}")
    # the bin tables and the output (N, C, O..) are sized from output_size: refuse an absurd one now
    check_element_count(math.prod(x.shape[: x.ndim - n]) * math.prod(size), "output_size", output_size, op)
    for O in size:
        check_element_count(O, "output_size", output_size, op, "the bins along one axis")
    return size


def _adaptive_avg(x, n, op, output_size):
    x = check_pool_input(x, n, op, integer_ok=False)
    return apply(ADAPTIVE_AVG_POOL, x, output_size=_output_size(output_size, x, n, op))


def adaptive_avg_pool1d(x, output_size):
    r"""1-D adaptive average pooling of (N, C, L) or (C, L) to length ``output_size``.

    Notes
    -----
    :math:`y_i = \operatorname{mean}_{j \in B_i} x_j` with
    :math:`B_i = [\lfloor iL/O \rfloor, \lceil (i+1)L/O \rceil)`; backward spreads
    :math:`\partial L/\partial y_i / |B_i|` over :math:`B_i`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.adaptive_avg_pool1d(np.array([[0., 1., 2., 3., 4.]]), 2)
    array([[1., 3.]])
    """
    return _adaptive_avg(x, 1, "adaptive_avg_pool1d", output_size)


def adaptive_avg_pool2d(x, output_size):
    r"""2-D adaptive average pooling to a given output size.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input.
    output_size : int or (int or None, int or None)
        ``(H_out, W_out)``; None keeps that axis's input size.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)

    Notes
    -----
    Along each axis bin :math:`i` is :math:`B_i = [\lfloor iL/O \rfloor, \lceil (i+1)L/O \rceil)`;
    the window of output :math:`o` is the box of its per-axis bins, and

    .. math:: y_o = \frac{1}{|W_o|} \sum_{i \in W_o} x_i, \qquad
              \frac{\partial L}{\partial x_i} = \sum_{o \,:\, i \in W_o} \frac{1}{|W_o|} \frac{\partial L}{\partial y_o}

    computed one axis at a time by summing the cells of each bin (and, backward, the bins of each
    cell), so a NaN or an infinity stays in the bins that hold it, as in PyTorch.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.adaptive_avg_pool2d(np.arange(9.).reshape(1, 3, 3), 2)
    array([[[2., 3.],
            [5., 6.]]])
    """
    return _adaptive_avg(x, 2, "adaptive_avg_pool2d", output_size)


def adaptive_avg_pool3d(x, output_size):
    r"""3-D adaptive average pooling of (N, C, D, H, W) or (C, D, H, W); see :func:`adaptive_avg_pool2d`.

    Notes
    -----
    :math:`y_o = \operatorname{mean}_{i \in W_o} x_i` over the box of per-axis bins; backward spreads
    :math:`\partial L/\partial y_o / |W_o|` over :math:`W_o`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.adaptive_avg_pool3d(np.arange(8.).reshape(1, 2, 2, 2), 1)
    array([[[[3.5]]]])
    """
    return _adaptive_avg(x, 3, "adaptive_avg_pool3d", output_size)


# ==================================================================================================
# Adaptive max pooling
# ==================================================================================================
class AdaptiveMaxSaved(NamedTuple):
    indices: object  # (.., O..) flat in-plane index of each bin's maximum
    in_shape: tuple
    ndim: int


def _adaptive_max_forward(x, *, output_size: tuple):
    xp = array_module(x)
    n = len(output_size)
    lead = x.shape[: x.ndim - n]
    in_shape = x.shape[x.ndim - n:]
    tables = tuple(adaptive_taps(L, O) for L, O in zip(in_shape, output_size))  # per axis (O_a, K_a)
    taps_per_axis = tuple(t.taps_per_output for t in tables)
    # PyTorch's running max over every bin (poolref._running_max), tap by tap
    scan = RunningMax(TORCH, lead + tuple(output_size), x.dtype, xp, taps=int(numpy.prod(taps_per_axis)),
                      first_tap=first_inside_tap(tables, taps_per_axis, xp),
                      nan_possible=bool(xp.isnan(x).any()) if x.dtype.kind == "f" else False)
    # open-mesh index arrays: axis a's positions shaped to broadcast along output axis a
    shapes = [[-1 if b == a else 1 for b in range(n)] for a in range(n)]
    for tap_number, offsets in enumerate(numpy.ndindex(*taps_per_axis)):
        gather = tuple(xp.asarray(t.index[:, m]).reshape(s) for t, m, s in zip(tables, offsets, shapes))
        inside = numpy.ones((1,) * n, dtype=bool)
        for t, m, s in zip(tables, offsets, shapes):
            inside = inside & t.reads()[:, m].reshape(s)
        value = x[(Ellipsis,) + gather]  # (.., O..): tap ``offsets`` of every bin
        if not inside.all():
            # a tap past a short bin's end is no part of that bin: make it lose every comparison
            value = xp.where(xp.asarray(inside), value, lowest_value(x.dtype))
        scan.add(value, tap_number)
    indices = window_indices(scan.winner, tables, in_shape, taps_per_axis)
    y = scan.values(lambda: gather_from_planes(x, indices, n))  # y_o = x[index_o]
    return (y, indices), AdaptiveMaxSaved(indices, x.shape, n)


# forward  y_o = x[index_o], index_o the winner of bin box B_o   (a gather)
# backward grad_x[index_o] += g_o                                 (its adjoint: a scatter-add)
def _adaptive_max_backward(saved: AdaptiveMaxSaved, grad_values, _grad_indices):
    return (scatter_to_planes(grad_values, saved.indices, saved.in_shape, saved.ndim),)


ADAPTIVE_MAX_POOL = define_function("adaptive_max_pool", _adaptive_max_forward, _adaptive_max_backward)


def _adaptive_max(x, n, op, output_size, return_indices):
    x = check_pool_input(x, n, op, integer_ok=True)
    return_indices = check_flag(return_indices, "return_indices", op)
    values, indices = apply(ADAPTIVE_MAX_POOL, x, output_size=_output_size(output_size, x, n, op))
    return (values, indices) if return_indices else values


def adaptive_max_pool1d(x, output_size, return_indices=False):
    r"""1-D adaptive max pooling of (N, C, L) or (C, L); see :func:`adaptive_max_pool2d`.

    Notes
    -----
    :math:`y_i = \max_{j \in B_i} x_j`; backward scatters :math:`\partial L/\partial y_i` to the argmax.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.adaptive_max_pool1d(np.array([[0., 4., 2., 3., 1.]]), 2, return_indices=True)
    (array([[4., 3.]]), array([[1, 3]]))
    """
    return _adaptive_max(x, 1, "adaptive_max_pool1d", output_size, return_indices)


def adaptive_max_pool2d(x, output_size, return_indices=False):
    r"""2-D adaptive max pooling to a given output size.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating or integer input.
    output_size : int or (int or None, int or None)
        ``(H_out, W_out)``; None keeps that axis's input size.
    return_indices : bool
        Also return each maximum's flat index ``h*W + w`` within its plane.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)
    indices : int64 array or Tensor (only with ``return_indices``)

    Notes
    -----
    With the bins of :func:`adaptive_avg_pool2d`,

    .. math:: y_o = \max_{i \in W_o} x_i, \qquad
              \frac{\partial L}{\partial x_i} = \sum_{o \,:\, \mathrm{index}_o = i} \frac{\partial L}{\partial y_o}

    PyTorch's running max (:ref:`max-rules`): ties go to the first element in scan order (``-0.``
    before ``0.``), a NaN wins and the last NaN's index is kept, a bin of only :math:`-\infty` keeps
    its first element. Indices are flat within each (n, c) plane; the backward scatters each upstream
    entry onto its index, so an infinite or NaN one stays there.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.adaptive_max_pool2d(np.arange(9.).reshape(1, 3, 3), 2)
    array([[[4., 5.],
            [7., 8.]]])
    """
    return _adaptive_max(x, 2, "adaptive_max_pool2d", output_size, return_indices)


def adaptive_max_pool3d(x, output_size, return_indices=False):
    r"""3-D adaptive max pooling of (N, C, D, H, W) or (C, D, H, W); see :func:`adaptive_max_pool2d`.

    Notes
    -----
    :math:`y_o = \max_{i \in W_o} x_i`; backward scatters :math:`\partial L/\partial y_o` to the argmax.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.adaptive_max_pool3d(np.arange(8.).reshape(1, 2, 2, 2), 1, return_indices=True)
    (array([[[[7.]]]]), array([[[[7]]]]))
    """
    return _adaptive_max(x, 3, "adaptive_max_pool3d", output_size, return_indices)


# ==================================================================================================
# Global pooling: one bin per (n, c) plane, dims kept
# ==================================================================================================
def _spatial_dims(x, op):
    if not hasattr(x, "shape"):
        x = numpy.asarray(x)
    if x.ndim < 3:
        raise ValueError(f"{op}: x must have shape (N, C, *spatial) with at least one spatial dim, got shape {tuple(x.shape)}")
    return x, x.ndim - 2


def global_avg_pool(x):
    r"""Mean over all spatial dims of ``(N, C, *spatial)``, keeping them as size 1: (N, C, 1, ..., 1).

    Notes
    -----
    :math:`y_{nc} = \frac{1}{|S|} \sum_{s \in S} x_{ncs}`; backward
    :math:`\partial L/\partial x_{ncs} = \frac{1}{|S|} \partial L/\partial y_{nc}`.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.global_avg_pool(np.arange(8.).reshape(1, 2, 4))
    array([[[1.5],
            [5.5]]])
    """
    x, n = _spatial_dims(x, "global_avg_pool")
    x = check_pool_input(x, n, "global_avg_pool", integer_ok=False)
    return apply(ADAPTIVE_AVG_POOL, x, output_size=(1,) * n)


def global_max_pool(x):
    r"""Max over all spatial dims of ``(N, C, *spatial)``, keeping them as size 1: (N, C, 1, ..., 1).

    Notes
    -----
    :math:`y_{nc} = \max_{s} x_{ncs}` (PyTorch's rule: first of ties, the last NaN wins;
    :ref:`max-rules`); backward sends :math:`\partial L/\partial y_{nc}` to the argmax.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.global_max_pool(np.array([[[1., 5., 2.]]]))
    array([[[5.]]])
    """
    x, n = _spatial_dims(x, "global_max_pool")
    x = check_pool_input(x, n, "global_max_pool", integer_ok=True)
    values, _ = apply(ADAPTIVE_MAX_POOL, x, output_size=(1,) * n)
    return values


def global_lp_pool(x, norm_type, *, convention="torch"):
    r"""Lp pooling with one window covering all spatial dims of ``(N, C, *spatial)``: (N, C, 1, ..., 1).

    Notes
    -----
    The whole-plane case of :func:`lp_pool2d`: ``convention="torch"`` gives
    :math:`y = (\sum_s x_s^p)^{1/p}` (no abs), ``"onnx"`` (ONNX ``GlobalLpPool``) the true norm
    :math:`y = (\sum_s |x_s|^p)^{1/p}`; backward
    :math:`\partial L/\partial x_s = \partial L/\partial y \; y^{1-p} x_s^{p-1}` (``sign(x)|x|^{p-1}``
    under onnx), zero where the sum is zero.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.global_lp_pool(np.array([[[3., -4.]]]), 2)
    array([[[5.]]])
    """
    op = "global_lp_pool"
    x, n = _spatial_dims(x, op)
    x = check_pool_input(x, n, op, integer_ok=False)
    p = check_positive_number(norm_type, "norm_type", op)
    check_convention(convention, op, allowed=("torch", "onnx"))
    spatial = tuple(x.shape[2:])
    geometry = pool_geometry(spatial, spatial, None, 0, 1, False, convention, op)
    return apply(LP_POOL, x, p=p, geometry=geometry, convention=convention)
