r"""Plain-loop reference of deformable RoI pooling (Dai et al. 2017), in its RoI Align form (mmcv's
DeformRoIPool)."""

from __future__ import annotations

import itertools

import numpy

from .._ieee import ieee
from .boxes import align_geometry, bilinear_corner_slopes, bilinear_corners, bin_samples, result_dtype

__all__ = ["deformed_samples", "deform_roi_pool_reference", "deform_roi_pool_backward_reference"]


def deformed_samples(roi, offset_k, output_size, spatial_scale, sampling_ratio, gamma, i, j):
    """Geometry of one box and the shifted sampling points of its bin (i, j)."""
    sh, sw, bh, bw, gh, gw, roi_h, roi_w = align_geometry(roi, output_size, spatial_scale, sampling_ratio, 0.5, False)
    dx, dy = gamma * roi_w * float(offset_k[0, i, j]), gamma * roi_h * float(offset_k[1, i, j])
    return bin_samples(sh + dy, sw + dx, bh, bw, gh, gw, i, j), gh, gw, roi_h, roi_w


@ieee
def deform_roi_pool_reference(x, rois, offset, output_size, spatial_scale=1.0, sampling_ratio=0, gamma=0.1):
    r"""Deformable RoI pooling: RoI Align (aligned) with every bin shifted by a learned offset.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    rois : ndarray, shape (K, 5)
    offset : ndarray, shape (K, 2, ph, pw)
        Normalised shifts: ``offset[k, 0]`` along x (width), ``offset[k, 1]`` along y (height).
    output_size : (int, int)
    spatial_scale : float
    sampling_ratio : int
    gamma : float

    Returns
    -------
    y : ndarray, shape (K, C, ph, pw)

    Notes
    -----
    The geometry of :func:`roi_align_reference` with ``aligned=True``; bin ``(i, j)``'s sampling points
    move by ``(gamma * roi_w * offset[k, 0, i, j], gamma * roi_h * offset[k, 1, i, j])`` in ``(x, y)``.
    ``y = sum / max(g_h g_w, 1)``; a sample outside the image contributes exactly 0. With zero offsets
    this is :func:`roi_align_reference` with ``aligned=True`` (for finite inputs).

    Examples
    --------
    >>> x = numpy.arange(100.).reshape(1, 1, 10, 10)
    >>> shift = numpy.zeros((1, 2, 1, 1)); shift[0, 0] = 0.5  # half a box width to the right
    >>> deform_roi_pool_reference(x, numpy.array([[0, 1, 1, 3, 3]]), shift, (1, 1), 1.0, 1, 1.0).tolist()
    [[[[17.5]]]]
    """
    x = numpy.asarray(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    y = numpy.zeros((len(rois), C, ph, pw), dtype=numpy.float64)
    for k in range(len(rois)):
        b = int(rois[k][0])
        for c, i, j in itertools.product(range(C), range(ph), range(pw)):
            points, gh, gw, _, _ = deformed_samples(rois[k], offset[k], output_size, spatial_scale, sampling_ratio, gamma, i, j)
            total = sum(w * float(x[b, c, h, ww]) for py, px in points for h, ww, w in bilinear_corners(py, px, H, W))
            y[k, c, i, j] = total / max(gh * gw, 1)
    return y.astype(result_dtype(x.dtype))


@ieee
def deform_roi_pool_backward_reference(grad_y, x, rois, offset, output_size, spatial_scale=1.0, sampling_ratio=0, gamma=0.1):
    r"""Gradients of :func:`deform_roi_pool_reference` with respect to ``x`` and ``offset``.

    Returns
    -------
    grad_x : ndarray, shape of ``x``
        ``g * w / (g_h g_w)`` to each corner of each sample.
    grad_offset : ndarray, shape of ``offset``
        Through the bilinear derivative: ``d y / d offset[k, 0, i, j] = gamma * roi_w / (g_h g_w) *
        sum_samples sum_corners v * dw/dx`` (likewise ``offset[k, 1]`` with ``roi_h`` and ``dw/dy``),
        zero where a coordinate is clamped or outside (:func:`bilinear_corner_slopes`).

    Examples
    --------
    Moving right along a ramp that rises by 1 per column: ``dy/d offset_x = gamma * roi_w * 1``.

    >>> x = numpy.tile(numpy.arange(10.), (10, 1)).reshape(1, 1, 10, 10)
    >>> _, go = deform_roi_pool_backward_reference(numpy.ones((1, 1, 1, 1)), x, numpy.array([[0, 2, 2, 6, 6]]), numpy.zeros((1, 2, 1, 1)), (1, 1), 1.0, 2, 0.1)
    >>> go.ravel().round(12).tolist()
    [0.4, 0.0]
    """
    x = numpy.asarray(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    grad_x = numpy.zeros(x.shape, dtype=numpy.float64)
    grad_offset = numpy.zeros(numpy.shape(offset), dtype=numpy.float64)
    for k in range(len(rois)):
        b = int(rois[k][0])
        for c, i, j in itertools.product(range(C), range(ph), range(pw)):
            points, gh, gw, roi_h, roi_w = deformed_samples(rois[k], offset[k], output_size, spatial_scale, sampling_ratio, gamma, i, j)
            g = float(grad_y[k, c, i, j])
            for py, px in points:
                for h, ww, w in bilinear_corners(py, px, H, W):
                    grad_x[b, c, h, ww] += g * w / (gh * gw)
                for h, ww, dwy, dwx in bilinear_corner_slopes(py, px, H, W):
                    v = float(x[b, c, h, ww])
                    grad_offset[k, 0, i, j] += g * gamma * roi_w * v * dwx / (gh * gw)
                    grad_offset[k, 1, i, j] += g * gamma * roi_h * v * dwy / (gh * gw)
    dtype = result_dtype(numpy.asarray(grad_y).dtype)
    return grad_x.astype(dtype), grad_offset.astype(dtype)
