r"""Position-sensitive RoI pool and RoI Align (Dai et al. 2016, R-FCN): torchvision's ``ps_roi_pool``
and ``ps_roi_align``.

Each bin reads its own group of channels: output channel ``c`` at bin ``(i, j)`` reads input channel
``(c * ph + i) * pw + j``, its score map. Otherwise ``ps_roi_pool`` averages the integer bins of RoI
pool (:func:`~poolref.ops.region.boxes.pool_bins`) and ``ps_roi_align`` the bilinear samples of RoI
Align (:func:`~poolref.ops.region.boxes.align_axes`). Both are linear in ``x``, and both backwards
are the transposes of their forwards.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from ..._backend import array_module
from ..._checks import accumulation_dtype
from ...autograd.function import apply, define_function
from .boxes import (
    PoolBins,
    align_axes,
    align_geometry,
    check_region_arguments,
    check_sampling_grid,
    check_sampling_ratio,
    pool_bin_cells,
    pool_bins,
    select_boxes,
)
from .sampling_matrix import SamplingMatrix, sampling_matrix

__all__ = ["ps_roi_pool", "ps_roi_align"]


def _ps_channels(x_shape, output_size, batch, xp):
    """(K, C_out, ph, pw) index of the first element of the input plane each output reads.

    Output channel ``c`` at bin ``(i, j)`` reads input channel ``(c * ph + i) * pw + j``.
    """
    N, C, H, W = x_shape
    ph, pw = output_size
    c_out = C // (ph * pw)
    channel = xp.arange(c_out * ph * pw, dtype=numpy.int64).reshape(c_out, ph, pw)
    return (batch[:, None, None, None] * C + channel[None]) * (H * W)


def _check_ps_channels(x, output_size, op):
    ph, pw = output_size
    if x.shape[1] % (ph * pw):
        raise ValueError(
            f"{op}: the channels of x must be a multiple of ph * pw = {ph * pw} for output_size={output_size}, "
            f"got x with C={x.shape[1]} (shape {tuple(x.shape)})"
        )


class PsRoiPoolSaved(NamedTuple):
    planes: object  # (K, C_out, ph, pw) first flat index of each output's input plane
    bins: PoolBins
    area: object  # (K, ph, pw) cells per bin (1 for an empty bin, whose output is 0)
    x_shape: tuple
    dtype: numpy.dtype


def _ps_roi_pool_forward(x, rois, *, output_size, spatial_scale):
    xp = array_module(x)
    N, C, H, W = x.shape
    accumulate = accumulation_dtype(x.dtype)
    # torchvision's forward clips the bins to [0, H - 1] (its backward to [0, H]; see ps_roi_pool)
    bins = pool_bins(rois, output_size, spatial_scale, end_inclusive=False, clip_h=H - 1, clip_w=W - 1, op="ps_roi_pool")
    planes = _ps_channels(x.shape, output_size, bins.batch, xp)  # (K, C_out, ph, pw)
    flat = x.reshape(-1).astype(accumulate, copy=False)
    total = xp.zeros(planes.shape, dtype=accumulate)
    for boxes, pixel, inside in pool_bin_cells(bins, W):
        value = xp.take(flat, select_boxes(planes, boxes, None) + pixel[:, None])
        value = xp.where(inside[:, None], value, accumulate.type(0))
        if boxes is None:
            total += value
        else:
            total[boxes] += value
    area = ((bins.h_end - bins.h_start)[:, :, None] * (bins.w_end - bins.w_start)[:, None, :]).clip(0)
    empty = area == 0
    area = xp.where(empty, 1, area).astype(accumulate)
    y = xp.where(empty[:, None], accumulate.type(0), total / area[:, None])
    return y.astype(x.dtype, copy=False), PsRoiPoolSaved(planes, bins, area, x.shape, x.dtype)


# forward   y[k, c, i, j] = (1 / |A|) sum_{(h, w) in A} x[b_k, c', h, w],  c' = (c ph + i) pw + j,
#           A = bin (k, i, j) (0 for an empty bin)
# backward  grad_x[b_k, c', h, w] += g[k, c, i, j] / |A|   (the transpose)
# Both walk the cells (dy, dx) of the largest bin, each for every bin at once (pool_bin_cells); the
# backward's scatter-add is one bincount per cell. (torchvision's backward clips the bins to [0, H]
# rather than its forward's [0, H - 1]; this one is the forward's exact transpose.)
def _ps_roi_pool_backward(saved: PsRoiPoolSaved, grad_y):
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    g = grad_y.astype(saved.area.dtype) / saved.area[:, None]
    total = xp.zeros(N * C * H * W, dtype=numpy.float64)
    for boxes, pixel, inside in pool_bin_cells(saved.bins, W):
        share = xp.where(inside[:, None], select_boxes(g, boxes, None), 0)
        index = select_boxes(saved.planes, boxes, None) + pixel[:, None]
        total += xp.bincount(index.reshape(-1), weights=share.reshape(-1).astype(numpy.float64), minlength=total.size)
    return total.reshape(saved.x_shape).astype(saved.dtype, copy=False), None


PS_ROI_POOL = define_function("ps_roi_pool", _ps_roi_pool_forward, _ps_roi_pool_backward)


def ps_roi_pool(x, boxes, output_size, spatial_scale=1.0):
    r"""Position-sensitive RoI average pooling (Dai et al. 2016, R-FCN), torchvision's rules.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W)
        ``C`` must be a multiple of ``ph * pw``.
    boxes : array, shape (K, 5); or list of arrays, shape (K_i, 4)
        As for :func:`roi_align`.
    output_size : int or (int, int)
        ``(ph, pw)``.
    spatial_scale : float

    Returns
    -------
    y : array or Tensor, shape (K, C // (ph * pw), ph, pw)

    Notes
    -----
    Output channel :math:`c` at bin :math:`(i, j)` averages input channel
    :math:`(c\, ph + i)\, pw + j` over the bin: each bin has its own score map. The bins are
    :func:`roi_pool`'s with two differences in torchvision's kernel: the box is not end-inclusive,
    :math:`roi_w = \max(x_2 - x_1, 1)`, and the forward clips bins to :math:`[0, W - 1]`, so the
    last row and column of the map are never read. With :math:`A` the bin's cells,

    .. math:: y_{kcij} = \frac{1}{|A|} \sum_{(h, w) \in A} x_{b_k,\,(c\,ph + i)\,pw + j,\,h,\,w}, \qquad
              \frac{\partial L}{\partial x_{b_k,(c\,ph+i)\,pw+j,h,w}} \mathrel{+}= \frac{1}{|A|}
              \frac{\partial L}{\partial y_{kcij}}

    and an empty bin outputs 0. torchvision's backward clips the bins to :math:`[0, W]` instead,
    so for a box reaching the last row or column its gradient is not the derivative of its forward;
    poolref's backward is the exact transpose of the forward.

    Examples
    --------
    Four input channels make one output channel of 2 x 2 bins; bin (i, j) reads channel 2i + j:

    >>> import numpy as np, poolref
    >>> x = np.arange(64.).reshape(1, 4, 4, 4)
    >>> poolref.ps_roi_pool(x, np.array([[0, 0, 0, 2, 2]]), 2)
    array([[[[ 0., 17.],
             [36., 53.]]]])
    """
    op = "ps_roi_pool"
    x, rois, size, scale = check_region_arguments(x, boxes, output_size, spatial_scale, op, position_sensitive=True)
    _check_ps_channels(x, size, op)
    return apply(PS_ROI_POOL, x, rois, output_size=size, spatial_scale=scale)


class PsRoiAlignSaved(NamedTuple):
    matrix: SamplingMatrix  # (K*ph*pw, N*H*W*ph*pw): each bin's reads of its own score map
    count: object  # (K,) g_h * g_w, unguarded (0 gives torchvision's NaN)
    x_shape: tuple
    dtype: numpy.dtype


def _ps_roi_align_forward(x, rois, *, output_size, spatial_scale, sampling_ratio):
    xp = array_module(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    bins = ph * pw
    c_out = C // bins
    K = rois.shape[0]
    accumulate = accumulation_dtype(x.dtype)
    geometry = align_geometry(rois, output_size, spatial_scale, sampling_ratio, 0.5, False)
    ay, ax = align_axes(geometry, output_size, H, W)  # (K, ph, 1, G_h), (K, 1, pw, G_w)
    # Input channel (c * ph + i) * pw + j is score map c of bin (i, j). The table has one row per
    # pixel and bin, (b, h, w, bin), holding that bin's c_out score maps, so bin (i, j) of box k
    # reads column (b_k H W + h W + w) * ph * pw + i * pw + j, and y = A @ table is (K*ph*pw, c_out).
    table = xp.empty((N, H, W, bins, c_out), dtype=accumulate)
    table[...] = x.reshape(N, c_out, bins, H, W).transpose(0, 3, 4, 2, 1)
    bin_number = xp.arange(bins, dtype=numpy.int64).reshape(1, ph, pw)
    first = geometry.batch[:, None, None] * (H * W * bins) + bin_number  # (K, ph, pw)
    # this kernel reads nothing for a sample outside the image: exactly 0, even next to a NaN
    matrix = sampling_matrix(ay, ax, geometry, W, first, bins, N * H * W * bins, read_outside=False)
    with numpy.errstate(invalid="ignore"):  # 0 * inf: NaN, as in the kernel
        total = matrix.times(table.reshape(N * H * W * bins, c_out)).reshape(K, ph, pw, c_out)  # sizes spelled out: c_out may be 0
    count = (geometry.grid_h * geometry.grid_w).astype(accumulate)
    with numpy.errstate(invalid="ignore", divide="ignore"):
        total /= count[:, None, None, None]  # no samples: torchvision's 0 / 0 = NaN
    y = xp.ascontiguousarray(xp.moveaxis(total, -1, 1)).astype(x.dtype, copy=False)
    return y, PsRoiAlignSaved(matrix, count, x.shape, x.dtype)


# forward   y[k, c, i, j] = (1 / (g_h g_w)) sum_{s in bin (i, j)} sum_{q = 1..4} w[s, q] x[b_k, c', p[s, q]],
#           c' = (c ph + i) pw + j  (0 / 0 = NaN for a box without samples, as in torchvision)
# backward  grad_x[b_k, c', p[s, q]] += (w[s, q] / (g_h g_w)) g[k, c, i, j]   (the transpose)
# Speed: both are one sparse product, out = A @ table and grad_table = A.T @ (g / count), over a
# table with one row per pixel and bin (N*H*W*ph*pw, c_out), so that each bin reads its own maps.
def _ps_roi_align_backward(saved: PsRoiAlignSaved, grad_y):
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    K, c_out, ph, pw = grad_y.shape
    count = xp.where(saved.count == 0, 1, saved.count)  # a box without samples sends nothing anyway
    g = xp.empty((K, ph, pw, c_out), dtype=saved.count.dtype)  # channels-last, like the forward's rows
    g[...] = xp.moveaxis(grad_y, 1, -1)
    g /= count[:, None, None, None]
    with numpy.errstate(invalid="ignore"):
        grad_table = saved.matrix.transpose_times(g.reshape(K * ph * pw, c_out))  # (N*H*W*ph*pw, c_out)
    grad_x = xp.empty(saved.x_shape, dtype=saved.dtype)
    with numpy.errstate(over="ignore"):  # a gradient beyond float16's range is inf (see cast_back)
        grad_x.reshape(N, c_out, ph * pw, H, W)[...] = grad_table.reshape(N, H, W, ph * pw, c_out).transpose(0, 4, 3, 1, 2)
    return grad_x, None


PS_ROI_ALIGN = define_function("ps_roi_align", _ps_roi_align_forward, _ps_roi_align_backward)


def ps_roi_align(x, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1):
    r"""Position-sensitive RoI Align: :func:`ps_roi_pool`'s channel layout with bilinear sampling.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W)
        ``C`` must be a multiple of ``ph * pw``.
    boxes : array, shape (K, 5); or list of arrays, shape (K_i, 4)
        As for :func:`roi_align`.
    output_size : int or (int, int)
        ``(ph, pw)``.
    spatial_scale : float
    sampling_ratio : int
        Sampling points per bin side; ``<= 0`` for ``ceil(roi_size / bins)`` per box.

    Returns
    -------
    y : array or Tensor, shape (K, C // (ph * pw), ph, pw)

    Notes
    -----
    torchvision's kernel uses :func:`roi_align`'s sampling with ``aligned=True`` always
    (``start = x_1 s - 0.5``) and no minimum box size, and divides by :math:`g_h g_w` itself, so a box
    without sampling points (``sampling_ratio <= 0`` and zero or negative size) outputs
    ``0 / 0 = NaN`` (``-0.0`` where the product is negative). Output channel :math:`c` at bin
    :math:`(i, j)` reads input channel :math:`c' = (c\, ph + i)\, pw + j`:

    .. math:: y_{kcij} = \frac{1}{g_h g_w} \sum_{a, b} \sum_{q=1}^{4} w_q\, x_{b_k c' q}, \qquad
              \frac{\partial L}{\partial x_{b_k c' q}} \mathrel{+}= \frac{w_q}{g_h g_w} \frac{\partial L}{\partial y_{kcij}}

    A sample outside the image contributes exactly 0 (this kernel reads nothing there) and receives
    nothing, forward and backward, even next to a NaN; otherwise a NaN or infinity reaches exactly
    the bins that read it (a weight-0 corner included). As for :func:`roi_align`, the op is a sparse
    matrix :math:`A` (one row per bin, one column per pixel and bin, so that each bin reads its own
    score maps) applied to the input, and its backward is :math:`A^T` applied to the output
    gradient.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.arange(64.).reshape(1, 4, 4, 4)
    >>> poolref.ps_roi_align(x, np.array([[0, 0, 0, 2, 2]]), 2, sampling_ratio=1)
    array([[[[ 0., 17.],
             [36., 53.]]]])
    """
    op = "ps_roi_align"
    x, rois, size, scale = check_region_arguments(x, boxes, output_size, spatial_scale, op, position_sensitive=True)
    ratio = check_sampling_ratio(sampling_ratio, op)
    _check_ps_channels(x, size, op)
    check_sampling_grid(rois, size, scale, ratio, 0.5, False, op)
    return apply(PS_ROI_ALIGN, x, rois, output_size=size, spatial_scale=scale, sampling_ratio=ratio)
