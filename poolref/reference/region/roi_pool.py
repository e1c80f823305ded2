r"""Plain-loop reference of RoI pool (Fast R-CNN; torchvision's roi_pool, ONNX MaxRoiPool)."""

from __future__ import annotations

import itertools

import numpy

from ..._running_max import ONNX_MAX_ROI_POOL, TORCHVISION_ROI_POOL, window_max
from .boxes import result_dtype, roi_pool_bins

__all__ = ["roi_pool_reference", "roi_pool_backward_reference"]


def roi_pool_reference(x, rois, output_size, spatial_scale=1.0, convention="torchvision"):
    r"""RoI max pooling (Girshick 2015) with torchvision's rules; ONNX Runtime's MaxRoiPool under "onnx".

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    rois : ndarray, shape (K, 5)
        ``[batch_index, x1, y1, x2, y2]`` per box.
    output_size : (int, int)
    spatial_scale : float
    convention : {"torchvision", "onnx"}

    Returns
    -------
    y : ndarray, shape (K, C, ph, pw)
    argmax : ndarray of int64, shape (K, C, ph, pw)
        Flat index ``h*W + w`` of the element each output took, -1 where none (empty bin, or no
        element above the starting value).

    Notes
    -----
    Corners are rounded half away from zero, ``x1 = round(x1 * scale)``; the box is end-inclusive,
    ``roi_w = max(x2 - x1 + 1, 1)``; bin ``j`` covers ``[floor(j * roi_w / pw), ceil((j+1) * roi_w / pw))``
    shifted by ``x1`` and clipped to ``[0, W]``. An empty bin outputs 0. Otherwise the running maximum
    (:func:`poolref._running_max.window_max`) starts at ``-FLT_MAX`` (``-inf`` in float16) and scans the
    bin row by row; torchvision takes an element when ``val > best`` (:data:`~poolref._running_max.TORCHVISION_ROI_POOL`:
    first of ties; NaN never taken; values at or below ``-FLT_MAX`` never taken, so a bin of ``-inf``
    outputs ``-FLT_MAX`` with no argmax); ONNX Runtime when ``not (val < best)``
    (:data:`~poolref._running_max.ONNX_MAX_ROI_POOL`, ``std::max``: last of ties; a NaN is taken and
    then replaced by the next element, so it survives only as the bin's last element).

    Examples
    --------
    >>> y, arg = roi_pool_reference(numpy.arange(16.).reshape(1, 1, 4, 4), numpy.array([[0, 0, 0, 2, 2]]), (2, 2))
    >>> y[0, 0].tolist(), arg[0, 0].tolist()
    ([[5.0, 6.0], [9.0, 10.0]], [[5, 6], [9, 10]])
    """
    x = numpy.asarray(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    K = len(rois)
    rule = TORCHVISION_ROI_POOL if convention == "torchvision" else ONNX_MAX_ROI_POOL
    y = numpy.zeros((K, C, ph, pw), dtype=numpy.float64)
    argmax = numpy.full((K, C, ph, pw), -1, dtype=numpy.int64)
    for k in range(K):
        b = int(rois[k][0])
        rows, cols = roi_pool_bins(rois[k], output_size, spatial_scale, H, W)
        for c, i, j in itertools.product(range(C), range(ph), range(pw)):
            (h0, h1), (w0, w1) = rows[i], cols[j]
            if h1 <= h0 or w1 <= w0:
                continue  # empty bin: 0, no argmax
            taps = [(x[b, c, h, w], h * W + w) for h in range(h0, h1) for w in range(w0, w1)]  # row by row
            best, where = window_max(rule, taps, x.dtype)
            y[k, c, i, j], argmax[k, c, i, j] = best, (-1 if where is None else where)
    return y.astype(result_dtype(x.dtype)), argmax


def roi_pool_backward_reference(grad_y, argmax, rois, x_shape):
    r"""Gradient of RoI pool: each output's gradient is added at its argmax (nothing where it is -1).

    >>> roi_pool_backward_reference(numpy.ones((1, 1, 1, 1)), numpy.array([[[[3]]]]), numpy.array([[0, 0, 0, 1, 1]]), (1, 1, 2, 2)).tolist()
    [[[[0.0, 0.0], [0.0, 1.0]]]]
    """
    grad_y = numpy.asarray(grad_y)
    N, C, H, W = x_shape
    grad_x = numpy.zeros(x_shape, dtype=numpy.float64)
    K, _, ph, pw = grad_y.shape
    for k, c, i, j in itertools.product(range(K), range(C), range(ph), range(pw)):
        a = int(argmax[k, c, i, j])
        if a >= 0:
            grad_x[int(rois[k][0]), c, a // W, a % W] += float(grad_y[k, c, i, j])
    return grad_x.astype(result_dtype(grad_y.dtype))
