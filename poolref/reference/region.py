r"""Plain-loop references for region pooling: spatial pyramid pooling, RoI pool, RoI Align (torchvision
and ONNX), position-sensitive RoI pool / align and deformable RoI pooling, forward and backward.

The executable specification of SEMANTICS.md section 8. Every function loops over every box, channel,
bin, sampling point and bilinear corner with ordinary Python code, computing the geometry in float64,
so that a reader can hold it against the rules (and against torchvision's CPU kernels, which these
loops follow statement by statement). Nothing here is fast: tests run these on tiny arrays and hold
the vectorised ops of :mod:`poolref.ops.region` and :mod:`poolref.ops.deformable` equal to them.

Boxes arrive as ``rois``: a float array of shape (K, 5), one row ``[batch_index, x1, y1, x2, y2]`` per
box, in input-image coordinates (``spatial_scale`` maps them onto the feature map). The plain-loop
functions do not validate anything.

Bilinear sampling, shared by every "align" op (torchvision's ``bilinear_interpolate``): a point
``(y, x)`` outside ``[-1, H] x [-1, W]`` reads nothing; otherwise each coordinate is clamped below at
0, ``low = floor``, and if ``low >= L - 1`` the coordinate is snapped to ``L - 1`` (both corners on the
last row or column); the four corners get the weights ``(1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly lx``.
"""

from __future__ import annotations

import itertools
import math

import numpy

from ._ieee import ieee
from .._running_max import FLT_MAX, ONNX, ONNX_MAX_ROI_POOL, TORCHVISION_ROI_POOL, window_max
from .adaptive import adaptive_bin

__all__ = [
    "FLT_MAX",
    "round_half_away_from_zero",
    "bilinear_corners",
    "bilinear_corner_slopes",
    "spatial_pyramid_bins",
    "spatial_pyramid_pool_reference",
    "spatial_pyramid_pool_backward_reference",
    "roi_pool_reference",
    "roi_pool_backward_reference",
    "roi_align_reference",
    "roi_align_backward_reference",
    "ps_roi_pool_reference",
    "ps_roi_pool_backward_reference",
    "ps_roi_align_reference",
    "ps_roi_align_backward_reference",
    "deform_roi_pool_reference",
    "deform_roi_pool_backward_reference",
]



# --------------------------------------------------------------------------------------------------
# Scalar helpers
# --------------------------------------------------------------------------------------------------
def round_half_away_from_zero(v) -> int:
    r"""C's ``round``: to the nearest integer, halves away from zero (``2.5 -> 3``, ``-0.5 -> -1``).

    Python's and NumPy's ``round`` send halves to the even neighbour instead (``2.5 -> 2``). The integer
    part is split off first, so the test ``|v - trunc(v)| >= 0.5`` is exact in floating point.

    >>> [round_half_away_from_zero(v) for v in (0.5, 1.5, 2.5, -0.5, 0.49999997)]
    [1, 2, 3, -1, 0]
    """
    t = math.trunc(v)
    frac = v - t
    return int(t + (1 if frac >= 0.5 else -1 if frac <= -0.5 else 0))


def _axis_corners(c, length):
    """(low, high, weight_low, weight_high, slope) of one coordinate, or None when it is outside.

    ``slope`` is d(weight_high)/dc: 1 where the coordinate moves the weights, 0 where it is clamped.
    """
    if not (-1.0 <= c <= length):
        return None
    moving = 1.0
    if c <= 0:
        c, moving = 0.0, 0.0
    low = int(c)  # c >= 0, so int() is floor
    if low >= length - 1:
        low = high = length - 1
        c, moving = float(low), 0.0
    else:
        high = low + 1
    frac = c - low
    return low, high, 1.0 - frac, frac, moving


def bilinear_corners(y, x, H, W):
    r"""The four ``(h, w, weight)`` corners that bilinear sampling at ``(y, x)`` reads.

    Returns ``[]`` for a point outside ``[-1, H] x [-1, W]`` (torchvision's "empty" case). Corners are
    listed in torchvision's order: (low, low), (low, high), (high, low), (high, high).

    >>> bilinear_corners(0.25, 1.5, 3, 3)
    [(0, 1, 0.375), (0, 2, 0.375), (1, 1, 0.125), (1, 2, 0.125)]
    >>> bilinear_corners(-0.5, 2.7, 3, 3)  # y clamped to 0, x snapped to the last column
    [(0, 2, 1.0), (0, 2, 0.0), (1, 2, 0.0), (1, 2, 0.0)]
    >>> bilinear_corners(-1.5, 0.0, 3, 3)
    []
    """
    ay, ax = _axis_corners(y, H), _axis_corners(x, W)
    if ay is None or ax is None:
        return []
    y_low, y_high, hy, ly, _ = ay
    x_low, x_high, hx, lx, _ = ax
    return [(y_low, x_low, hy * hx), (y_low, x_high, hy * lx), (y_high, x_low, ly * hx), (y_high, x_high, ly * lx)]


def bilinear_corner_slopes(y, x, H, W):
    r"""The derivatives ``(h, w, dweight/dy, dweight/dx)`` of the four corner weights at ``(y, x)``.

    Zero outside and wherever the coordinate is clamped (below 0, or snapped to the last row or
    column): there the sampled value does not move with the coordinate. At an integer coordinate the
    derivative jumps; this is the derivative from the right (``low = floor``).

    >>> bilinear_corner_slopes(0.25, 1.5, 3, 3)
    [(0, 1, -0.5, -0.75), (0, 2, -0.5, 0.75), (1, 1, 0.5, -0.25), (1, 2, 0.5, 0.25)]
    """
    ay, ax = _axis_corners(y, H), _axis_corners(x, W)
    if ay is None or ax is None:
        return []
    y_low, y_high, hy, ly, sy = ay
    x_low, x_high, hx, lx, sx = ax
    return [
        (y_low, x_low, -sy * hx, -hy * sx),
        (y_low, x_high, -sy * lx, hy * sx),
        (y_high, x_low, sy * hx, -ly * sx),
        (y_high, x_high, sy * lx, ly * sx),
    ]


def _result_dtype(dtype):
    return dtype if numpy.dtype(dtype).kind == "f" else numpy.float64



# --------------------------------------------------------------------------------------------------
# Spatial pyramid pooling
# --------------------------------------------------------------------------------------------------
def spatial_pyramid_bins(length, n, binning):
    r"""The ``n`` bins ``[start, end)`` of one pyramid level along an axis of ``length``.

    ``"adaptive"``: adaptive pooling's bins ``[floor(iL/n), ceil((i+1)L/n))``. ``"sppnet"``: He et al.'s
    windows, size ``ceil(L/n)`` and stride ``floor(L/n)``, which give exactly ``n`` windows only when
    ``L mod n <= L div n`` (the caller checks that).

    >>> spatial_pyramid_bins(13, 4, "adaptive")
    [(0, 4), (3, 7), (6, 10), (9, 13)]
    >>> spatial_pyramid_bins(13, 4, "sppnet")
    [(0, 4), (3, 7), (6, 10), (9, 13)]
    >>> spatial_pyramid_bins(10, 3, "sppnet")
    [(0, 4), (3, 7), (6, 10)]
    """
    if binning == "adaptive":
        return [adaptive_bin(i, length, n) for i in range(n)]
    window, stride = -(-length // n), length // n
    return [(i * stride, i * stride + window) for i in range(n)]


@ieee
def spatial_pyramid_pool_reference(x, levels, mode="max", binning="adaptive"):
    r"""Spatial pyramid pooling (He et al. 2014): every level pooled, flattened and concatenated.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    levels : sequence of int
        Bins per side of each level.
    mode : {"max", "avg"}
    binning : {"adaptive", "sppnet"}

    Returns
    -------
    y : ndarray, shape (N, C * sum(n * n))
        Level by level (in the order given); within a level channel-major, then bin row, then bin
        column (a (N, C, n, n) map flattened), as SPPnet's Caffe model and common PyTorch ports do.

    Notes
    -----
    Max takes ``val > best or isnan(val)`` in row-major order from :math:`-\infty` (PyTorch's max
    pooling rule: first of ties, a NaN wins); avg is the bin mean. Backward
    (:func:`spatial_pyramid_pool_backward_reference`): the argmax gets the gradient, or every bin
    element gets ``g / |bin|``.

    Examples
    --------
    >>> spatial_pyramid_pool_reference(numpy.arange(16.).reshape(1, 1, 4, 4), (1, 2)).tolist()
    [[15.0, 5.0, 7.0, 13.0, 15.0]]
    """
    x = numpy.asarray(x)
    N, C, H, W = x.shape
    columns = []
    for n in levels:
        rows, cols = spatial_pyramid_bins(H, n, binning), spatial_pyramid_bins(W, n, binning)
        level = numpy.zeros((N, C, n, n), dtype=numpy.float64)
        for b, c, i, j in itertools.product(range(N), range(C), range(n), range(n)):
            cells = [float(x[b, c, h, w]) for h in range(*rows[i]) for w in range(*cols[j])]
            if mode == "avg":
                level[b, c, i, j] = sum(cells) / len(cells)
            else:
                best = -math.inf
                for v in cells:
                    if v > best or math.isnan(v):
                        best = v
                level[b, c, i, j] = best
        columns.append(level.reshape(N, C * n * n))
    return numpy.concatenate(columns, axis=1).astype(_result_dtype(x.dtype))


@ieee
def spatial_pyramid_pool_backward_reference(grad_y, x, levels, mode="max", binning="adaptive"):
    r"""Gradient of :func:`spatial_pyramid_pool_reference` with respect to ``x``.

    Each level's slice of ``grad_y`` flows back through that level's pooling: to the argmax (max) or
    spread evenly over the bin (avg); levels add up.

    >>> g = spatial_pyramid_pool_backward_reference(numpy.ones((1, 5)), numpy.arange(16.).reshape(1, 1, 4, 4), (1, 2))
    >>> g[0, 0].tolist()
    [[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 2.0]]
    """
    x = numpy.asarray(x)
    N, C, H, W = x.shape
    grad_x = numpy.zeros(x.shape, dtype=numpy.float64)
    column = 0
    for n in levels:
        rows, cols = spatial_pyramid_bins(H, n, binning), spatial_pyramid_bins(W, n, binning)
        for b, c, i, j in itertools.product(range(N), range(C), range(n), range(n)):
            g = float(grad_y[b, column + (c * n + i) * n + j])
            cells = [(h, w) for h in range(*rows[i]) for w in range(*cols[j])]
            if mode == "avg":
                for h, w in cells:
                    grad_x[b, c, h, w] += g / len(cells)
            else:
                best, where = -math.inf, cells[0]
                for h, w in cells:
                    v = float(x[b, c, h, w])
                    if v > best or math.isnan(v):
                        best, where = v, (h, w)
                grad_x[(b, c) + where] += g
        column += C * n * n
    return grad_x.astype(_result_dtype(numpy.asarray(grad_y).dtype))


# --------------------------------------------------------------------------------------------------
# RoI pool (Fast R-CNN; torchvision's roi_pool, ONNX MaxRoiPool)
# --------------------------------------------------------------------------------------------------
def _roi_pool_bins(roi, output_size, spatial_scale, H, W, end_inclusive=True, clip=None):
    """Per-box integer bins: lists of (start, end) rows and columns, clipped; torchvision's rules."""
    ph, pw = output_size
    x1, y1, x2, y2 = (round_half_away_from_zero(float(v) * spatial_scale) for v in roi[1:5])
    extra = 1 if end_inclusive else 0
    roi_w, roi_h = max(x2 - x1 + extra, 1), max(y2 - y1 + extra, 1)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    clip_h, clip_w = (H, W) if clip is None else clip
    rows = [(min(max(math.floor(i * bin_h) + y1, 0), clip_h), min(max(math.ceil((i + 1) * bin_h) + y1, 0), clip_h)) for i in range(ph)]
    cols = [(min(max(math.floor(j * bin_w) + x1, 0), clip_w), min(max(math.ceil((j + 1) * bin_w) + x1, 0), clip_w)) for j in range(pw)]
    return rows, cols


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
        rows, cols = _roi_pool_bins(rois[k], output_size, spatial_scale, H, W)
        for c, i, j in itertools.product(range(C), range(ph), range(pw)):
            (h0, h1), (w0, w1) = rows[i], cols[j]
            if h1 <= h0 or w1 <= w0:
                continue  # empty bin: 0, no argmax
            taps = [(x[b, c, h, w], h * W + w) for h in range(h0, h1) for w in range(w0, w1)]  # row by row
            best, where = window_max(rule, taps, x.dtype)
            y[k, c, i, j], argmax[k, c, i, j] = best, (-1 if where is None else where)
    return y.astype(_result_dtype(x.dtype)), argmax


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
    return grad_x.astype(_result_dtype(grad_y.dtype))


# --------------------------------------------------------------------------------------------------
# RoI Align (Mask R-CNN; torchvision's roi_align, ONNX RoiAlign)
# --------------------------------------------------------------------------------------------------
def _align_geometry(roi, output_size, spatial_scale, sampling_ratio, offset, min_size):
    """start_h, start_w, bin_h, bin_w, grid_h, grid_w, roi_h, roi_w of one box (torchvision's rules)."""
    ph, pw = output_size
    start_w, start_h = float(roi[1]) * spatial_scale - offset, float(roi[2]) * spatial_scale - offset
    roi_w = float(roi[3]) * spatial_scale - offset - start_w
    roi_h = float(roi[4]) * spatial_scale - offset - start_h
    if min_size:  # torchvision: "force malformed ROIs to be 1x1" (only when not aligned)
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_h, bin_w = roi_h / ph, roi_w / pw
    grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / ph)
    grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pw)
    return start_h, start_w, bin_h, bin_w, grid_h, grid_w, roi_h, roi_w


def _samples(start_h, start_w, bin_h, bin_w, grid_h, grid_w, i, j):
    """The sampling points (y, x) of bin (i, j), row by row: ``start + i*bin + (iy + .5)*bin/grid``."""
    return [
        (start_h + i * bin_h + (iy + 0.5) * bin_h / grid_h, start_w + j * bin_w + (ix + 0.5) * bin_w / grid_w)
        for iy in range(grid_h)
        for ix in range(grid_w)
    ]


def _weighted_corners(y, x, H, W):
    """torchvision's CPU pre-calculation: four corners always; an outside point reads pixel (0, 0) with weight 0."""
    return bilinear_corners(y, x, H, W) or [(0, 0, 0.0)] * 4


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
    ``val = max_corners (w v)`` per sample, then the maximum over the samples, folded with
    ``std::max`` (``a < b ? b : a``: the first of ties; a NaN survives only as the very first operand);
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
        sh, sw, bh, bw, gh, gw, _, _ = _align_geometry(rois[k], output_size, spatial_scale, sampling_ratio, offset, not aligned)
        for c, i, j in itertools.product(range(C), range(ph), range(pw)):
            points = _samples(sh, sw, bh, bw, gh, gw, i, j)
            if mode == "avg":
                total = sum(w * float(x[b, c, h, ww]) for py, px in points for h, ww, w in _weighted_corners(py, px, H, W))
                y[k, c, i, j] = total / max(gh * gw, 1)
            else:
                # ONNX Runtime's std::max fold, the "onnx" running max: the first weighted corner,
                # then any greater one
                weighted = [w * float(x[b, c, h, ww]) for py, px in points for h, ww, w in _weighted_corners(py, px, H, W)]
                best, _ = window_max(ONNX, list(zip(weighted, itertools.count())), numpy.float64)
                y[k, c, i, j] = best if weighted else 0.0  # a bin without samples outputs 0
    return y.astype(_result_dtype(x.dtype))


@ieee
def roi_align_backward_reference(grad_y, x, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False, mode="avg"):
    r"""Gradient of :func:`roi_align_reference` with respect to ``x``.

    Avg: every corner of every sample receives ``g * w / (g_h g_w)`` (samples outside the image send
    nothing). Max: the whole ``g * w`` goes to the one weighted corner the forward chose (the first
    maximum in scan order, samples row by row, corners in order).

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
        sh, sw, bh, bw, gh, gw, _, _ = _align_geometry(rois[k], output_size, spatial_scale, sampling_ratio, offset, not aligned)
        for c, i, j in itertools.product(range(C), range(ph), range(pw)):
            g = float(grad_y[k, c, i, j])
            points = _samples(sh, sw, bh, bw, gh, gw, i, j)
            if mode == "avg":
                for py, px in points:
                    for h, ww, w in bilinear_corners(py, px, H, W):
                        grad_x[b, c, h, ww] += g * w / (gh * gw)
            else:
                corners = [(h, ww, w) for py, px in points for h, ww, w in _weighted_corners(py, px, H, W)]
                _, where = window_max(ONNX, [(w * float(x[b, c, h, ww]), (h, ww, w)) for h, ww, w in corners], numpy.float64)
                if where is not None:
                    grad_x[b, c, where[0], where[1]] += g * where[2]
    return grad_x.astype(_result_dtype(numpy.asarray(grad_y).dtype))


# --------------------------------------------------------------------------------------------------
# Position-sensitive RoI pool and align (R-FCN; torchvision's ps_roi_pool, ps_roi_align)
# --------------------------------------------------------------------------------------------------
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
        rows, cols = _roi_pool_bins(rois[k], output_size, spatial_scale, H, W, end_inclusive=False, clip=(H - 1, W - 1))
        for c, i, j in itertools.product(range(c_out), range(ph), range(pw)):
            (h0, h1), (w0, w1) = rows[i], cols[j]
            if h1 <= h0 or w1 <= w0:
                continue
            channel = (c * ph + i) * pw + j
            total = sum(float(x[b, channel, h, w]) for h in range(h0, h1) for w in range(w0, w1))
            y[k, c, i, j] = total / ((h1 - h0) * (w1 - w0))
    return y.astype(_result_dtype(x.dtype))


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
        rows, cols = _roi_pool_bins(rois[k], output_size, spatial_scale, H, W, end_inclusive=False, clip=clip)
        for c, i, j in itertools.product(range(C // (ph * pw)), range(ph), range(pw)):
            (h0, h1), (w0, w1) = rows[i], cols[j]
            if h1 <= h0 or w1 <= w0:
                continue
            share = float(grad_y[k, c, i, j]) / ((h1 - h0) * (w1 - w0))
            for h in range(h0, h1):
                for w in range(w0, w1):
                    grad_x[b, (c * ph + i) * pw + j, h, w] += share
    return grad_x.astype(_result_dtype(numpy.asarray(grad_y).dtype))


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
        sh, sw, bh, bw, gh, gw, _, _ = _align_geometry(rois[k], output_size, spatial_scale, sampling_ratio, 0.5, False)
        for c, i, j in itertools.product(range(c_out), range(ph), range(pw)):
            channel = (c * ph + i) * pw + j
            total = 0.0
            for py, px in _samples(sh, sw, bh, bw, gh, gw, i, j):
                total += sum(w * float(x[b, channel, h, ww]) for h, ww, w in bilinear_corners(py, px, H, W))
            with numpy.errstate(invalid="ignore", divide="ignore"):
                y[k, c, i, j] = numpy.float64(total) / numpy.float64(gh * gw)
    return y.astype(_result_dtype(x.dtype))


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
        sh, sw, bh, bw, gh, gw, _, _ = _align_geometry(rois[k], output_size, spatial_scale, sampling_ratio, 0.5, False)
        for c, i, j in itertools.product(range(C // (ph * pw)), range(ph), range(pw)):
            g = float(grad_y[k, c, i, j])
            for py, px in _samples(sh, sw, bh, bw, gh, gw, i, j):
                for h, ww, w in bilinear_corners(py, px, H, W):
                    grad_x[b, (c * ph + i) * pw + j, h, ww] += g * w / (gh * gw)
    return grad_x.astype(_result_dtype(numpy.asarray(grad_y).dtype))


# --------------------------------------------------------------------------------------------------
# Deformable RoI pooling (Dai et al. 2017), in its RoI Align form (mmcv's DeformRoIPool)
# --------------------------------------------------------------------------------------------------
def _deformed_samples(roi, offset_k, output_size, spatial_scale, sampling_ratio, gamma, i, j):
    """Geometry of one box and the shifted sampling points of its bin (i, j)."""
    sh, sw, bh, bw, gh, gw, roi_h, roi_w = _align_geometry(roi, output_size, spatial_scale, sampling_ratio, 0.5, False)
    dx, dy = gamma * roi_w * float(offset_k[0, i, j]), gamma * roi_h * float(offset_k[1, i, j])
    return _samples(sh + dy, sw + dx, bh, bw, gh, gw, i, j), gh, gw, roi_h, roi_w


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
            points, gh, gw, _, _ = _deformed_samples(rois[k], offset[k], output_size, spatial_scale, sampling_ratio, gamma, i, j)
            total = sum(w * float(x[b, c, h, ww]) for py, px in points for h, ww, w in bilinear_corners(py, px, H, W))
            y[k, c, i, j] = total / max(gh * gw, 1)
    return y.astype(_result_dtype(x.dtype))


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
            points, gh, gw, roi_h, roi_w = _deformed_samples(rois[k], offset[k], output_size, spatial_scale, sampling_ratio, gamma, i, j)
            g = float(grad_y[k, c, i, j])
            for py, px in points:
                for h, ww, w in bilinear_corners(py, px, H, W):
                    grad_x[b, c, h, ww] += g * w / (gh * gw)
                for h, ww, dwy, dwx in bilinear_corner_slopes(py, px, H, W):
                    v = float(x[b, c, h, ww])
                    grad_offset[k, 0, i, j] += g * gamma * roi_w * v * dwx / (gh * gw)
                    grad_offset[k, 1, i, j] += g * gamma * roi_h * v * dwy / (gh * gw)
    dtype = _result_dtype(numpy.asarray(grad_y).dtype)
    return grad_x.astype(dtype), grad_offset.astype(dtype)
