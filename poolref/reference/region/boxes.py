r"""What the region references share: C's rounding, torchvision's bilinear corners, the bins of a box.

Scalar functions of one box or one point, in float64, following torchvision's CPU kernels statement
by statement.

Bilinear sampling, shared by every "align" op (torchvision's ``bilinear_interpolate``): a point
``(y, x)`` outside ``[-1, H] x [-1, W]`` reads nothing; otherwise each coordinate is clamped below at
0, ``low = floor``, and if ``low >= L - 1`` the coordinate is snapped to ``L - 1`` (both corners on the
last row or column); the four corners get the weights ``(1-ly)(1-lx), (1-ly)lx, ly(1-lx), ly lx``.
"""

from __future__ import annotations

import math

import numpy

__all__ = [
    "round_half_away_from_zero",
    "bilinear_corners",
    "bilinear_corner_slopes",
    "result_dtype",
    "roi_pool_bins",
    "align_geometry",
    "bin_samples",
    "weighted_corners",
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


def result_dtype(dtype):
    """The dtype of a reference's result: the input's if floating, else float64."""
    return dtype if numpy.dtype(dtype).kind == "f" else numpy.float64


# --------------------------------------------------------------------------------------------------
# The integer bins of RoI pool and position-sensitive RoI pool
# --------------------------------------------------------------------------------------------------
def roi_pool_bins(roi, output_size, spatial_scale, H, W, end_inclusive=True, clip=None):
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


# --------------------------------------------------------------------------------------------------
# The sampling points of RoI Align and its position-sensitive and deformable cousins
# --------------------------------------------------------------------------------------------------
def align_geometry(roi, output_size, spatial_scale, sampling_ratio, offset, min_size):
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


def bin_samples(start_h, start_w, bin_h, bin_w, grid_h, grid_w, i, j):
    """The sampling points (y, x) of bin (i, j), row by row: ``start + i*bin + (iy + .5)*bin/grid``."""
    return [
        (start_h + i * bin_h + (iy + 0.5) * bin_h / grid_h, start_w + j * bin_w + (ix + 0.5) * bin_w / grid_w)
        for iy in range(grid_h)
        for ix in range(grid_w)
    ]


def weighted_corners(y, x, H, W):
    """torchvision's CPU pre-calculation: four corners always; an outside point reads pixel (0, 0) with weight 0."""
    return bilinear_corners(y, x, H, W) or [(0, 0, 0.0)] * 4
