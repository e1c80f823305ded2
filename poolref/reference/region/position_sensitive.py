r"""Plain-loop references of position-sensitive RoI pool and align (R-FCN; torchvision's ps_roi_pool,
ps_roi_align)."""

from __future__ import annotations

import itertools

import numpy

from .._ieee import ieee
from .boxes import align_geometry, bilinear_corners, bin_samples, result_dtype, roi_pool_bins

__all__ = [
    "ps_roi_pool_reference",
    "ps_roi_pool_backward_reference",
    "ps_roi_align_reference",
    "ps_roi_align_backward_reference",
]


def ps_roi_pool_reference(x, rois, output_size, spatial_scale=1.0):
    r"""Position-sensitive RoI average pooling with torchvision's rules.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        ``C`` a multiple of ``ph * pw``.
    rois : ndarray, shape (K, 5)
    output_size : (int, int)
    spatial_scale : float

    Returns
    -------
    y : ndarray, shape (K, C // (ph * pw), ph, pw)

    Notes
    -----
    Output channel ``c`` at bin ``(i, j)`` averages input channel ``(c * ph + i) * pw + j`` over the
    bin. Unlike :func:`roi_pool_reference` the box is NOT end-inclusive, ``roi_w = max(x2 - x1, 1)``
    after rounding, and the bins are clipped to ``[0, W - 1]`` (so the last row and column of the
    image are never read); an empty bin outputs 0. Backward
    (:func:`ps_roi_pool_backward_reference`): ``g / area`` to every element of the bin.

    Examples
    --------
    >>> x = numpy.arange(64.).reshape(1, 4, 4, 4)  # 4 channels = one output channel of 2 x 2 bins
    >>> ps_roi_pool_reference(x, numpy.array([[0, 0, 0, 2, 2]]), (2, 2))[0, 0].tolist()
    [[0.0, 17.0], [36.0, 53.0]]
    """
    x = numpy.asarray(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    c_out = C // (ph * pw)
    y = numpy.zeros((len(rois), c_out, ph, pw), dtype=numpy.float64)
    for k in range(len(rois)):
        b = int(rois[k][0])
        rows, cols = roi_pool_bins(rois[k], output_size, spatial_scale, H, W, end_inclusive=False, clip=(H - 1, W - 1))
        for c, i, j in itertools.product(range(c_out), range(ph), range(pw)):
            (h0, h1), (w0, w1) = rows[i], cols[j]
            if h1 <= h0 or w1 <= w0:
                continue
            channel = (c * ph + i) * pw + j
            total = sum(float(x[b, channel, h, w]) for h in range(h0, h1) for w in range(w0, w1))
            y[k, c, i, j] = total / ((h1 - h0) * (w1 - w0))
    return y.astype(result_dtype(x.dtype))


def ps_roi_pool_backward_reference(grad_y, x_shape, rois, output_size, spatial_scale=1.0, *, torchvision_backward=False):
    r"""Gradient of :func:`ps_roi_pool_reference`: ``g / area`` to each element of the forward's bin.

    With ``torchvision_backward=True``, what torchvision's backward kernel computes instead: the same
    rule on bins clipped to ``[0, W]`` rather than the forward's ``[0, W - 1]``, which differs for boxes
    that reach the last row or column (there it is not the derivative of the forward).

    >>> g = ps_roi_pool_backward_reference(numpy.ones((1, 1, 1, 1)), (1, 1, 3, 3), numpy.array([[0, 0, 0, 2, 2]]), (1, 1))
    >>> g[0, 0].tolist()
    [[0.25, 0.25, 0.0], [0.25, 0.25, 0.0], [0.0, 0.0, 0.0]]
    >>> g = ps_roi_pool_backward_reference(numpy.ones((1, 1, 1, 1)), (1, 1, 3, 3), numpy.array([[0, 1, 1, 3, 3]]), (1, 1))
    >>> g[0, 0].tolist()  # the forward reads only pixel (1, 1): bins are clipped to [0, 2]
    [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    >>> g = ps_roi_pool_backward_reference(numpy.ones((1, 1, 1, 1)), (1, 1, 3, 3), numpy.array([[0, 1, 1, 3, 3]]), (1, 1), torchvision_backward=True)
    >>> g[0, 0].tolist()  # torchvision's backward spreads over the 2 x 2 pixels its bins reach
    [[0.0, 0.0, 0.0], [0.0, 0.25, 0.25], [0.0, 0.25, 0.25]]
    """
    N, C, H, W = x_shape
    ph, pw = output_size
    clip = (H, W) if torchvision_backward else (H - 1, W - 1)
    grad_x = numpy.zeros(x_shape, dtype=numpy.float64)
    for k in range(len(rois)):
        b = int(rois[k][0])
        rows, cols = roi_pool_bins(rois[k], output_size, spatial_scale, H, W, end_inclusive=False, clip=clip)
        for c, i, j in itertools.product(range(C // (ph * pw)), range(ph), range(pw)):
            (h0, h1), (w0, w1) = rows[i], cols[j]
            if h1 <= h0 or w1 <= w0:
                continue
            share = float(grad_y[k, c, i, j]) / ((h1 - h0) * (w1 - w0))
            for h in range(h0, h1):
                for w in range(w0, w1):
                    grad_x[b, (c * ph + i) * pw + j, h, w] += share
    return grad_x.astype(result_dtype(numpy.asarray(grad_y).dtype))


@ieee
def ps_roi_align_reference(x, rois, output_size, spatial_scale=1.0, sampling_ratio=-1):
    r"""Position-sensitive RoI Align with torchvision's rules.

    Notes
    -----
    The channel layout of :func:`ps_roi_pool_reference`; the geometry of :func:`roi_align_reference`
    with ``aligned=True`` always (``start = x1 * scale - 0.5``, no minimum box size), except that the
    average divides by ``g_h * g_w`` itself: a box with no sampling points (``sampling_ratio <= 0`` and
    a box of zero or negative size) gives torchvision's ``0 / 0 = NaN`` (``-0.0`` for a negative
    product). A sample outside the image contributes exactly 0 (this kernel reads nothing there).

    Examples
    --------
    >>> x = numpy.arange(64.).reshape(1, 4, 4, 4)
    >>> ps_roi_align_reference(x, numpy.array([[0, 0, 0, 2, 2]]), (2, 2), 1.0, 1)[0, 0].tolist()
    [[0.0, 17.0], [36.0, 53.0]]
    """
    x = numpy.asarray(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    c_out = C // (ph * pw)
    y = numpy.zeros((len(rois), c_out, ph, pw), dtype=numpy.float64)
    for k in range(len(rois)):
        b = int(rois[k][0])
        sh, sw, bh, bw, gh, gw, _, _ = align_geometry(rois[k], output_size, spatial_scale, sampling_ratio, 0.5, False)
        for c, i, j in itertools.product(range(c_out), range(ph), range(pw)):
            channel = (c * ph + i) * pw + j
            total = 0.0
            for py, px in bin_samples(sh, sw, bh, bw, gh, gw, i, j):
                total += sum(w * float(x[b, channel, h, ww]) for h, ww, w in bilinear_corners(py, px, H, W))
            with numpy.errstate(invalid="ignore", divide="ignore"):
                y[k, c, i, j] = numpy.float64(total) / numpy.float64(gh * gw)
    return y.astype(result_dtype(x.dtype))


@ieee
def ps_roi_align_backward_reference(grad_y, x_shape, rois, output_size, spatial_scale=1.0, sampling_ratio=-1):
    r"""Gradient of :func:`ps_roi_align_reference`: ``g * w / (g_h g_w)`` to each corner of each sample.

    >>> g = ps_roi_align_backward_reference(numpy.ones((1, 1, 1, 1)), (1, 1, 2, 2), numpy.array([[0, 0, 0, 2, 2]]), (1, 1), 1.0, 1)
    >>> g[0, 0].tolist()
    [[0.25, 0.25], [0.25, 0.25]]
    """
    N, C, H, W = x_shape
    ph, pw = output_size
    grad_x = numpy.zeros(x_shape, dtype=numpy.float64)
    for k in range(len(rois)):
        b = int(rois[k][0])
        sh, sw, bh, bw, gh, gw, _, _ = align_geometry(rois[k], output_size, spatial_scale, sampling_ratio, 0.5, False)
        for c, i, j in itertools.product(range(C // (ph * pw)), range(ph), range(pw)):
            g = float(grad_y[k, c, i, j])
            for py, px in bin_samples(sh, sw, bh, bw, gh, gw, i, j):
                for h, ww, w in bilinear_corners(py, px, H, W):
                    grad_x[b, (c * ph + i) * pw + j, h, ww] += g * w / (gh * gw)
    return grad_x.astype(result_dtype(numpy.asarray(grad_y).dtype))
