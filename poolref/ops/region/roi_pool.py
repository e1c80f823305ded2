r"""RoI pool (Girshick 2015, Fast R-CNN): torchvision's ``roi_pool`` and ONNX Runtime's ``MaxRoiPool``.

Each bin of each box is a rectangle of whole pixels (:func:`~poolref.ops.region.boxes.pool_bins`);
the forward takes its maximum with a running max (:mod:`poolref._running_max`), the backward sends
each bin's gradient to the pixel that won.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from ..._backend import array_module
from ..._running_max import ONNX_MAX_ROI_POOL, TORCHVISION_ROI_POOL
from ...autograd.function import apply, define_function
from .boxes import (
    channels_last_table,
    check_region_arguments,
    check_roi_convention,
    gather_rows,
    pool_bin_cells,
    pool_bins,
    select_boxes,
)

__all__ = ["roi_pool"]


class RoiPoolSaved(NamedTuple):
    rows: object  # (K, ph, pw, C) channels-last row of each output's element, -1 for none
    x_shape: tuple
    dtype: numpy.dtype


def _roi_pool_forward(x, rois, *, output_size, spatial_scale, convention):
    xp = array_module(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    bins = pool_bins(rois, output_size, spatial_scale, end_inclusive=True, clip_h=H, clip_w=W, op="roi_pool")
    table = channels_last_table(x, x.dtype)  # (N*H*W, C)
    K = rois.shape[0]
    empty = ((bins.h_end <= bins.h_start)[:, :, None] | (bins.w_end <= bins.w_start)[:, None, :])[..., None]
    # the running max of poolref._running_max: from -FLT_MAX (-inf in float16), no winner yet
    rule = TORCHVISION_ROI_POOL if convention == "torchvision" else ONNX_MAX_ROI_POOL
    best = xp.empty((K, ph, pw, C), dtype=x.dtype)
    best[...] = xp.where(empty, x.dtype.type(0), rule.floor(x.dtype))  # an empty bin outputs 0
    where = xp.full((K, ph, pw, C), -1, dtype=numpy.int64)  # argmax as channels-last table row
    base = (bins.batch * (H * W))[:, None, None]  # (K, 1, 1) first row of each box's image
    for boxes, pixel, inside in pool_bin_cells(bins, W):
        rows = select_boxes(base, boxes, None) + pixel  # (K', ph, pw)
        value = gather_rows(table, rows)  # (K', ph, pw, C)
        old = select_boxes(best, boxes, None)
        # torchvision: value > best (first of ties, NaN never taken); ONNX Runtime: std::max(v, best),
        # not (value < best) (last of ties; a NaN is taken, then replaced by the next element)
        take = rule.takes(value, old) & inside[..., None]
        new_best = xp.where(take, value, old)
        new_where = xp.where(take, rows[..., None], select_boxes(where, boxes, None))
        if boxes is None:
            best, where = new_best, new_where
        else:
            best[boxes], where[boxes] = new_best, new_where
    y = xp.ascontiguousarray(xp.moveaxis(best, -1, 1))  # (K, C, ph, pw)
    return y, RoiPoolSaved(where, x.shape, x.dtype)


# forward   y[k, c, i, j] = max_{(h, w) in bin (k, i, j)} x[b_k, c, h, w]   (the running max's winner
#           (h*, w*); 0 and no winner for an empty bin)
# backward  grad_x[b_k, c, h*, w*] += g[k, c, i, j]   (the scatter whose adjoint is the forward's gather)
# Speed: the input is read channels-last, a row of C channels per pixel, and the forward keeps the
# winner as that row; the backward's scatter is one bincount over (row, channel).
def _roi_pool_backward(saved: RoiPoolSaved, grad_y):
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    g = xp.moveaxis(grad_y, 1, -1)  # (K, ph, pw, C)
    taken = saved.rows >= 0
    flat = xp.where(taken, saved.rows * C + xp.arange(C), 0).reshape(-1)
    weights = xp.where(taken, g, 0).reshape(-1).astype(numpy.float64)
    total = xp.bincount(flat, weights=weights, minlength=N * H * W * C)
    grad_x = xp.ascontiguousarray(xp.moveaxis(total.reshape(N, H, W, C), -1, 1))
    return grad_x.astype(saved.dtype, copy=False), None


ROI_POOL = define_function("roi_pool", _roi_pool_forward, _roi_pool_backward)


def roi_pool(x, boxes, output_size, spatial_scale=1.0, *, convention="torchvision"):
    r"""RoI max pooling (Girshick 2015, Fast R-CNN): the maximum of each integer bin of each box.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W)
        Floating-point feature map.
    boxes : array, shape (K, 5); or list of arrays, shape (K_i, 4)
        As for :func:`roi_align`.
    output_size : int or (int, int)
        ``(ph, pw)``.
    spatial_scale : float
        Maps box coordinates onto ``x``.
    convention : {"torchvision", "onnx"}
        torchvision's ``roi_pool`` or ONNX Runtime's ``MaxRoiPool``: the same bins, a different
        comparison (below).

    Returns
    -------
    y : array or Tensor, shape (K, C, ph, pw)

    Notes
    -----
    Box corners are scaled and rounded half away from zero, :math:`x_1 = \mathrm{round}(x_1 s)`; the
    box is end-inclusive, :math:`roi_w = \max(x_2 - x_1 + 1, 1)`, and bin :math:`j` covers the
    columns :math:`[\lfloor j\, roi_w / pw \rfloor, \lceil (j+1)\, roi_w / pw \rceil)` shifted by
    :math:`x_1` and clipped to :math:`[0, W]` (rows alike). Then

    .. math:: y_{kcij} = \max_{(h, w) \in \mathrm{bin}_{kij}} x_{b_k c h w}, \qquad
              \frac{\partial L}{\partial x_{b_k c h w}} \mathrel{+}= \frac{\partial L}{\partial y_{kcij}}
              \ \text{at the argmax}

    An empty bin outputs 0 and passes no gradient. The running maximum (:ref:`max-rules`) starts at
    ``-FLT_MAX`` (``-inf`` in float16) and scans the bin row by row. torchvision takes an element when
    ``v > best``: the first of equal values; a NaN is never taken (unlike max pooling, where NaN
    wins); a bin of values at or below ``-FLT_MAX`` (``-inf``) outputs ``-FLT_MAX`` and passes no
    gradient. ONNX Runtime's MaxRoiPool takes it unless ``v < best`` (``std::max``): the last of equal
    values (``[-0., 0.]`` gives ``0.``), and a NaN survives only as the bin's last element. (ONNX
    defines no gradient; poolref's follows the element it took.)

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> poolref.roi_pool(x, np.array([[0, 0, 0, 2, 2]]), 2)
    array([[[[ 5.,  6.],
             [ 9., 10.]]]])
    """
    op = "roi_pool"
    x, rois, size, scale = check_region_arguments(x, boxes, output_size, spatial_scale, op)
    check_roi_convention(convention, op)
    return apply(ROI_POOL, x, rois, output_size=size, spatial_scale=scale, convention=convention)
