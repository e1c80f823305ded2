r"""torchvision's bilinear rule: the points the region ops and deformable convolution sample.

RoI Align, position-sensitive and deformable RoI pooling average (or take the maximum of) points
sampled inside each bin; deformable convolution reads each kernel tap at a learned, fractional
position. Both read a point with the two taps of linear interpolation along each axis
(:func:`poolref._sampling_weights.linear_point_taps`), but with torchvision's rules at the border,
which differ between the two families:

* the region ops (:func:`bilinear_axis`, one axis; :func:`bilinear_taps`, the four corners of every
  point): a coordinate in ``[-1, 0)`` is clamped to 0, one at ``L - 1`` or beyond (up to ``L``) reads
  the last pixel with weight 1, and a point further out is not read at all;
* deformable convolution (:func:`zero_padded_bilinear`): the plane is zero-padded, each corner
  outside it reads 0, and a point whose coordinate is at or beyond ``-1`` / ``L`` reads nothing.

The corners are computed on the data's own device (numpy or cupy arrays of points).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from ._backend import array_module
from ._sampling_weights import linear_point_taps

__all__ = [
    "AxisTaps",
    "bilinear_axis",
    "Tap",
    "select_boxes",
    "bilinear_taps",
    "Corner",
    "PointCorners",
    "zero_padded_bilinear",
    "zero_padded_bilinear_slopes",
]


# ==================================================================================================
# Points sampled by the region ops (torchvision's bilinear rule)
# ==================================================================================================
class AxisTaps(NamedTuple):
    r"""torchvision's bilinear interpolation along one axis for an array of coordinates (all fields
    that shape).

    ``low``/``high``: the two neighbouring indices (0 where the point is outside); ``w_low``/``w_high``:
    their weights (0 outside); ``slope``: :math:`d\,w_{high} / dc` (``-slope`` for ``w_low``), 0 where
    the coordinate is clamped or outside; ``inside``: the point is read at all.
    """

    low: object
    high: object
    w_low: object
    w_high: object
    slope: object
    inside: object


def bilinear_axis(coord, length: int, mask=None) -> AxisTaps:
    r"""torchvision's bilinear rules along one axis of ``length``, for every coordinate at once.

    A coordinate outside ``[-1, length]`` (or NaN, or where ``mask`` is False) is not read. Otherwise
    it is clamped below at 0 and read with :func:`linear_point_taps`' two taps, ``low = floor(c)``,
    ``w_high = c - low``, ``w_low = 1 - w_high``, except that if ``low >= length - 1`` the coordinate
    is snapped to ``length - 1`` (``high = low``, ``w_high = 0``). The slope
    :math:`d\,w_{high} / dc` is 1 where the coordinate moves the weights, 0 where it is clamped,
    snapped or not read.

    Parameters
    ----------
    coord : array
        Coordinates, any shape, floating.
    length : int
        Size of the axis (H or W).
    mask : bool array, optional
        Broadcastable to ``coord``; False marks points that do not exist (beyond a box's grid).

    Returns
    -------
    AxisTaps
        Each field shaped like ``coord`` (broadcast with ``mask``).

    Examples
    --------
    >>> t = bilinear_axis(numpy.array([-1.5, -0.5, 0.25, 2.5, 3.0]), 3)
    >>> t.low.tolist(), t.high.tolist(), t.w_high.tolist(), t.slope.tolist()
    ([0, 0, 0, 2, 2], [0, 1, 1, 2, 2], [0.0, 0.0, 0.25, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0])
    """
    xp = array_module(coord)
    dtype = coord.dtype
    inside = (coord >= -1) & (coord <= length)  # False for NaN, as torchvision's !(in range) test
    if mask is not None:
        inside &= mask
    c = xp.where(inside, xp.maximum(coord, dtype.type(0)), dtype.type(0))  # clamped below at 0
    floor, w_low, w_high = linear_point_taps(c, xp)
    low = floor.astype(numpy.int64)
    snapped = low >= length - 1  # on or beyond the last pixel: both taps there, all the weight on low
    low = xp.minimum(low, length - 1)
    high = xp.where(snapped | ~inside, low, low + 1)  # outside: low = high = 0
    w_high = xp.where(inside & ~snapped, w_high, dtype.type(0))
    w_low = xp.where(inside, xp.where(snapped, dtype.type(1), w_low), dtype.type(0))
    slope = (inside & (coord > 0) & ~snapped).astype(dtype)
    return AxisTaps(low, high, w_low, w_high, slope, inside)


class Tap(NamedTuple):
    """One sampling point and one of its corners, for every bin of the boxes taking part."""

    number: int  # position in scan order: samples row by row, then corners (low,low) .. (high,high)
    boxes: object  # indices of the boxes that have this sample, or None for all of them
    pixel: object  # (K', ph, pw) flat in-plane index h*W + w read (0 where the sample is outside)
    weight: object  # (K', ph, pw) bilinear weight (0 outside)
    inside: object  # (K', ph, pw) the sample lies in [-1, H] x [-1, W]
    d_dy: object  # (K', ph, pw) d weight / d y, only with slopes=True
    d_dx: object


def select_boxes(array, boxes, index):
    """``array[..., index]`` (all of it if ``index`` is None), then the rows ``boxes`` (all if None)."""
    picked = array[(Ellipsis, index)] if index is not None else array
    return picked if boxes is None else picked[boxes]


def bilinear_taps(ay: AxisTaps, ax: AxisTaps, grid_h, grid_w, width: int, slopes: bool = False):
    r"""Yield every :class:`Tap`: each sampling point ``(iy, ix)`` and each of its four corners.

    ``ay`` holds the y-coordinates' interpolation, shaped (K, ph, pw or 1, G_h); ``ax`` the x ones,
    (K, ph or 1, pw, G_w). A sample ``(iy, ix)`` exists only for the boxes with ``iy < grid_h`` and
    ``ix < grid_w``; the others are left out (``Tap.boxes``), so boxes with small adaptive grids cost
    nothing for the extra samples of large ones. An outside sample reads pixel (0, 0) with weight 0
    (as torchvision's CPU kernel does). A corner's weight is the product of its two axes' weights,
    ``w = w_y * w_x``, and with ``slopes`` its derivatives are ``dw/dy = (+-slope_y) w_x`` and
    ``dw/dx = w_y (+-slope_x)`` (minus for the low corner).

    Examples
    --------
    One box, one bin, one sample at ``(y, x) = (0.25, 1.5)`` in a 3 x 3 image:

    >>> one = numpy.ones((1, 1, 1), dtype=numpy.int64)
    >>> ay = bilinear_axis(numpy.full((1, 1, 1, 1), 0.25), 3)
    >>> ax = bilinear_axis(numpy.full((1, 1, 1, 1), 1.5), 3)
    >>> [(tap.pixel.item(), tap.weight.item()) for tap in bilinear_taps(ay, ax, one, one, 3)]
    [(1, 0.375), (2, 0.375), (4, 0.125), (5, 0.125)]
    """
    xp = array_module(grid_h)
    G_h, G_w = ay.low.shape[-1], ax.low.shape[-1]
    number = 0
    for iy in range(G_h):
        for ix in range(G_w):
            has = (grid_h > iy) & (grid_w > ix)
            if not bool(has.any()):
                number += 4
                continue
            boxes = None if bool(has.all()) else xp.nonzero(has)[0]
            inside = select_boxes(ay.inside, boxes, iy) & select_boxes(ax.inside, boxes, ix)
            for row, wy, sy in ((ay.low, ay.w_low, -1), (ay.high, ay.w_high, 1)):
                for col, wx, sx in ((ax.low, ax.w_low, -1), (ax.high, ax.w_high, 1)):
                    h, w = select_boxes(row, boxes, iy), select_boxes(col, boxes, ix)
                    pixel = xp.where(inside, h * width + w, 0)
                    wy_, wx_ = select_boxes(wy, boxes, iy), select_boxes(wx, boxes, ix)
                    weight = wy_ * wx_
                    d_dy = d_dx = None
                    if slopes:
                        d_dy = sy * select_boxes(ay.slope, boxes, iy) * wx_
                        d_dx = wy_ * sx * select_boxes(ax.slope, boxes, ix)
                    yield Tap(number, boxes, xp.broadcast_to(pixel, weight.shape), weight,
                              xp.broadcast_to(inside, weight.shape), d_dy, d_dx)
                    number += 1


# ==================================================================================================
# A single point on the zero-padded plane (torchvision's deformable convolution)
# ==================================================================================================
class Corner(NamedTuple):
    r"""One of the four pixels around every sampling point, for all points at once (arrays of the
    points' shape).

    ``row``, ``col`` : int64, the pixel, clipped into the image (so that a gather never goes out of
    bounds; ``valid`` says whether it is the real pixel); ``valid`` : bool, the pixel lies in the
    image; ``weight_y``, ``weight_x`` : the linear weights along each axis, ``1 - t`` for the low
    row (column) and ``t`` for the high one, so that the corner's bilinear weight is their product;
    ``slope_y``, ``slope_x`` : ``-1`` or ``+1``, the derivative of ``weight_y`` (``weight_x``) with
    respect to the coordinate; ``near`` : bool, the point lies within distance < 1 of the pixel
    along both axes, in the image (where the corner's weight is not 0).
    """

    row: object
    col: object
    valid: object
    weight_y: object
    weight_x: object
    slope_y: int
    slope_x: int
    near: object


class PointCorners(NamedTuple):
    """The four :class:`Corner` of every point, in the order (low, low), (low, high), (high, low),
    (high, high), and ``inside``: whether the point reads the image at all."""

    corners: tuple
    inside: object


def zero_padded_bilinear(y, x, height: int, width: int, xp=numpy) -> PointCorners:
    r"""Bilinear sampling of a plane padded with zeros, at arbitrary points ``(y, x)`` (pixel
    coordinates), by torchvision's rule for deformable convolution (``bilinear_interpolate``,
    ``get_coordinate_weight`` and ``deformable_col2im`` in ``deform_conv2d_kernel.cpp``).

    Parameters
    ----------
    y, x : float arrays of one shape
        The points, rows and columns; finite. The weights are computed in their dtype.
    height, width : int
        ``H`` and ``W`` of the plane.
    xp : module
        numpy or cupy.

    Returns
    -------
    PointCorners

    Notes
    -----
    Along each axis the point has the taps of :func:`linear_point_taps`: ``low = floor(c)`` with
    weight ``1 - t`` and ``low + 1`` with weight ``t = c - low``. The value at ``(y, x)`` is

    .. math:: f(y, x) = \sum_{q} [q \in \text{image}]\; w^y_q\, w^x_q\, v_q

    over the four corners ``q``, and exactly 0 for a point outside
    :math:`(-1, H) \times (-1, W)` (``inside`` False): such a point reads nothing, not even a NaN
    at weight 0. Inside, every corner in the image is read, weight 0 included (a point on a
    pixel row reads the next row with weight 0; a NaN there makes the value NaN). A corner outside
    the image reads as 0: this is bilinear interpolation of the image padded with zeros, which is
    continuous; the outside rule only decides what a NaN or an infinity at weight 0 does.

    The derivatives, as torchvision's ``get_coordinate_weight``, are taken from the corners in the
    image (``valid``) whether or not the point is ``inside`` (at :math:`y = -1` exactly the forward
    reads nothing, yet row 0 gives a slope: the derivative from the right), written as differences:

    .. math::
        \partial_y f &= t_x (v_{hh} - v_{lh}) + (1 - t_x)(v_{hl} - v_{ll}) \\
        \partial_x f &= t_y (v_{hh} - v_{hl}) + (1 - t_y)(v_{lh} - v_{ll})

    (:func:`zero_padded_bilinear_slopes`), the derivative from the right at an integer coordinate.
    The transpose (the gradient to the plane) sends a point's gradient times the corner's weight to
    the corners that are ``near``: in the image and at distance < 1 along both axes, so not to the
    corners of weight 0 that the forward reads (torchvision's ``deformable_col2im``).

    Examples
    --------
    >>> points = zero_padded_bilinear(numpy.array([0.25, -0.5, -1.0]), numpy.array([1.5, 2.5, 0.0]), 3, 3)
    >>> [c.row.tolist() for c in points.corners], points.inside.tolist()
    ([[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]], [True, True, False])
    >>> [(c.weight_y * c.weight_x).tolist() for c in points.corners]
    [[0.375, 0.25, 1.0], [0.375, 0.25, 0.0], [0.125, 0.25, 0.0], [0.125, 0.25, 0.0]]
    >>> [c.valid.tolist() for c in points.corners]  # the second point's only pixel is (0, 2)
    [[True, False, False], [True, False, False], [True, True, True], [True, False, True]]
    """
    row_low, wy_low, wy_high = linear_point_taps(y, xp)
    col_low, wx_low, wx_high = linear_point_taps(x, xp)
    row_low = row_low.astype(numpy.int64)
    col_low = col_low.astype(numpy.int64)
    inside = (y > -1) & (y < height) & (x > -1) & (x < width)
    corners = []
    for row, weight_y, slope_y in ((row_low, wy_low, -1), (row_low + 1, wy_high, 1)):
        row_valid = (row >= 0) & (row < height)
        near_y = xp.abs(y - row.astype(y.dtype)) < 1  # in the points' dtype, as the kernel's |y - y_p| < 1
        for col, weight_x, slope_x in ((col_low, wx_low, -1), (col_low + 1, wx_high, 1)):
            valid = row_valid & (col >= 0) & (col < width)
            near = valid & near_y & (xp.abs(x - col.astype(x.dtype)) < 1)
            corners.append(Corner(xp.clip(row, 0, height - 1), xp.clip(col, 0, width - 1), valid,
                                  weight_y, weight_x, slope_y, slope_x, near))
    return PointCorners(tuple(corners), inside)


def zero_padded_bilinear_slopes(points: PointCorners, values):
    r"""``(d/dy, d/dx)`` of :func:`zero_padded_bilinear` sampling, from the four corners' values.

    ``values`` are the corners' values in the order of ``points.corners``, each 0 where its corner
    is not ``valid`` (broadcastable against the points: one value per channel, say). Written as
    torchvision's ``get_coordinate_weight`` writes them, differences first, so that NaN and
    infinities go where they go there: ``t_x (v_hh - v_lh) + (1 - t_x)(v_hl - v_ll)`` along y, and
    likewise along x.

    >>> points = zero_padded_bilinear(numpy.array([0.5]), numpy.array([0.25]), 2, 2)
    >>> slopes = zero_padded_bilinear_slopes(points, [numpy.array([v]) for v in (0.0, 1.0, 10.0, 11.0)])
    >>> [s.tolist() for s in slopes]  # a ramp 10 y + x
    [[10.0], [1.0]]
    """
    low_low, low_high, high_low, high_high = values
    wy_low, wx_low = points.corners[0].weight_y, points.corners[0].weight_x
    wy_high, wx_high = points.corners[3].weight_y, points.corners[3].weight_x
    along_y = wx_high * (high_high - low_high) + wx_low * (high_low - low_low)
    along_x = wy_high * (high_high - high_low) + wy_low * (low_high - low_low)
    return along_y, along_x
