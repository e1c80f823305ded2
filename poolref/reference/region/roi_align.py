r"""Plain-loop reference of RoI Align (Mask R-CNN; torchvision's roi_align, ONNX RoiAlign)."""

from __future__ import annotations

import itertools

import numpy

from ..._running_max import ONNX, window_max
from .._ieee import ieee
from .boxes import align_geometry, bilinear_corners, bin_samples, result_dtype, weighted_corners

__all__ = ["roi_align_reference", "roi_align_backward_reference"]


@ieee
def roi_align_reference(x, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False, mode="avg"):
    r"""RoI Align (He et al. 2017) with torchvision's rules; ``mode="max"`` is ONNX RoiAlign's max mode.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    rois : ndarray, shape (K, 5)
    output_size : (int, int)
        ``(ph, pw)``.
    spatial_scale : float
    sampling_ratio : int
        Sampling points per bin side; ``<= 0`` for ``ceil(roi / bins)``, chosen per box.
    aligned : bool
        Shift the box by half a pixel (ONNX ``half_pixel``); if False (ONNX ``output_half_pixel``)
        a box smaller than a pixel is enlarged to 1.
    mode : {"avg", "max"}

    Returns
    -------
    y : ndarray, shape (K, C, ph, pw)

    Notes
    -----
    ``offset = 0.5 if aligned else 0``; ``start = x1 * scale - offset``,
    ``roi_w = x2 * scale - offset - start`` (at least 1 when not aligned), ``bin_w = roi_w / pw``,
    ``g_w = sampling_ratio`` if positive else ``ceil(roi_w / pw)``; the samples of bin ``(i, j)`` are
    ``y = start_h + i * bin_h + (iy + .5) * bin_h / g_h`` and likewise for ``x``, each read with
    :func:`bilinear_corners`. Avg: ``y = sum_samples sum_corners w v / max(g_h g_w, 1)``. Max (ONNX):
    ``val = max_corners (w v)`` per sample, then the maximum over the samples, each folded with
    ``std::max`` (``a < b ? b : a``: the first of ties; a NaN survives only as the very first operand
    of its fold, so a NaN first corner hides the rest of its sample);
    a bin without samples outputs 0. As in the CPU kernels of torchvision and ONNX Runtime, a sample
    outside the image reads pixel (0, 0) with weight 0, so a NaN or infinity there reaches such bins.

    Examples
    --------
    The worked case of SEMANTICS.md:

    >>> x = numpy.arange(100.).reshape(1, 1, 10, 10)
    >>> roi_align_reference(x, numpy.array([[0, 1, 1, 3, 3]]), (4, 4), 1.0, 1, True)[0, 0, 0].tolist()
    [8.25, 8.75, 9.25, 9.75]
    >>> roi_align_reference(x, numpy.array([[0, 1, 1, 3, 3]]), (4, 4), 1.0, 1, False)[0, 0, 0].tolist()
    [13.75, 14.25, 14.75, 15.25]
    """
    x = numpy.asarray(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    K = len(rois)
    y = numpy.zeros((K, C, ph, pw), dtype=numpy.float64)
    offset = 0.5 if aligned else 0.0
    for k in range(K):
        b = int(rois[k][0])
        sh, sw, bh, bw, gh, gw, _, _ = align_geometry(rois[k], output_size, spatial_scale, sampling_ratio, offset, not aligned)
        for c, i, j in itertools.product(range(C), range(ph), range(pw)):
            points = bin_samples(sh, sw, bh, bw, gh, gw, i, j)
            if mode == "avg":
                total = sum(w * float(x[b, c, h, ww]) for py, px in points for h, ww, w in weighted_corners(py, px, H, W))
                y[k, c, i, j] = total / max(gh * gw, 1)
            else:
                best, _ = _onnx_max_of_points(x[b, c], points)
                y[k, c, i, j] = best if points else 0.0  # a bin without samples outputs 0
    return y.astype(result_dtype(x.dtype))


def _onnx_max_of_points(plane, points):
    """ONNX Runtime's max mode over one bin of one channel: ``(value, (h, w, weight))`` of the chosen
    weighted corner, or ``(None, None)`` without points. Two folds with ``std::max``: the four
    weighted corners of each point, then the points' values."""
    H, W = plane.shape
    folded = []
    for py, px in points:
        corners = weighted_corners(py, px, H, W)
        value, where = window_max(ONNX, [(w * float(plane[h, ww]), (h, ww, w)) for h, ww, w in corners], numpy.float64)
        folded.append((value, where))
    return window_max(ONNX, folded, numpy.float64) if folded else (None, None)


@ieee
def roi_align_backward_reference(grad_y, x, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False, mode="avg"):
    r"""Gradient of :func:`roi_align_reference` with respect to ``x``.

    Avg: every corner of every sample receives ``g * w / (g_h g_w)`` (samples outside the image send
    nothing). Max: the whole ``g * w`` goes to the one weighted corner the forward chose (the first
    maximum of the first maximal sample, samples row by row, corners in order, each fold as in
    :func:`roi_align_reference`).

    >>> g = roi_align_backward_reference(numpy.ones((1, 1, 1, 1)), numpy.zeros((1, 1, 2, 2)), numpy.array([[0, 0, 0, 2, 2]]), (1, 1), 1.0, 1, True)
    >>> g[0, 0].tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    x = numpy.asarray(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    grad_x = numpy.zeros(x.shape, dtype=numpy.float64)
    offset = 0.5 if aligned else 0.0
    for k in range(len(rois)):
        b = int(rois[k][0])
        sh, sw, bh, bw, gh, gw, _, _ = align_geometry(rois[k], output_size, spatial_scale, sampling_ratio, offset, not aligned)
        for c, i, j in itertools.product(range(C), range(ph), range(pw)):
            g = float(grad_y[k, c, i, j])
            points = bin_samples(sh, sw, bh, bw, gh, gw, i, j)
            if mode == "avg":
                for py, px in points:
                    for h, ww, w in bilinear_corners(py, px, H, W):
                        grad_x[b, c, h, ww] += g * w / (gh * gw)
            else:
                _, where = _onnx_max_of_points(x[b, c], points)
                if where is not None:
                    grad_x[b, c, where[0], where[1]] += g * where[2]
    return grad_x.astype(result_dtype(numpy.asarray(grad_y).dtype))
