r"""Plain-loop references of ``grid_sample``: forward and backward, point by point (see the package's notes)."""

from __future__ import annotations

import itertools
import math

import numpy

__all__ = ["grid_source_coordinate", "pad_coordinate", "cubic_tap_weights", "grid_sample_reference", "grid_sample_backward_reference"]


def grid_source_coordinate(g, size, padding_mode, align_corners):
    r"""The pixel coordinate read for grid coordinate ``g``, and its derivative with respect to ``g``.

    Parameters
    ----------
    g : float
        Normalized coordinate (``-1``: first edge or first pixel centre, ``1``: last).
    size : int
        Number of pixels ``L`` along the axis.
    padding_mode : {"zeros", "border", "reflection"}
    align_corners : bool

    Returns
    -------
    (float, float)
        ``(coordinate, slope)``: the pixel coordinate and :math:`\partial i / \partial g`.

    Notes
    -----
    Unnormalize: :math:`i = (g + 1) L/2 - 1/2` (slope :math:`L/2`), or :math:`i = (g + 1)(L - 1)/2`
    with aligned corners (slope :math:`(L - 1)/2`). ``zeros`` leaves :math:`i` as it is.
    ``reflection`` reflects it off the edges :math:`low` and :math:`low + span` (:math:`-1/2` and
    :math:`L - 1/2`, or :math:`0` and :math:`L - 1` aligned): with
    :math:`t = |i - low| \bmod 2\,span`, the result is :math:`low + t` if :math:`t \le 2\,span - t`,
    else :math:`low + 2\,span - t`, and the slope changes sign when exactly one of
    ":math:`i < low`" and "the second branch" holds (a span of 0 gives coordinate 0, slope 0).
    ``border`` and ``reflection`` then clamp to :math:`[0, L - 1]`; the slope becomes 0 unless
    :math:`0 < i < L - 1` strictly (the clamp limits count as clamped, as in PyTorch).

    Examples
    --------
    >>> grid_source_coordinate(-1.0, 4, "zeros", False), grid_source_coordinate(-1.0, 4, "zeros", True)
    ((-0.5, 2.0), (0.0, 1.5))
    >>> grid_source_coordinate(1.5, 4, "reflection", False)   # 4.5 reflects off 3.5 to 2.5
    (2.5, -2.0)
    >>> grid_source_coordinate(1.5, 4, "border", False)       # clamped: no gradient
    (3.0, 0.0)
    """
    if align_corners:
        slope = (size - 1) / 2
        coord = (g + 1) * slope
    else:
        slope = size / 2
        coord = (g + 1) * slope - 0.5
    return pad_coordinate(coord, slope, size, padding_mode, align_corners)


def pad_coordinate(coord, slope, size, padding_mode, align_corners, by_flips=False):
    """Move pixel coordinate ``coord`` into the image by the padding mode; the slope follows (see
    :func:`grid_source_coordinate`). ``zeros`` leaves both alone. ``by_flips``: reflect as PyTorch's
    scalar (3-D) kernel does, ``extra = fmod(t, span)`` and the parity of ``floor(t / span)``.

    >>> pad_coordinate(-1.0, 1.0, 4, "reflection", False), pad_coordinate(-1.0, 1.0, 4, "reflection", True)
    ((0.0, 0.0), (1.0, -1.0))
    """
    if padding_mode == "reflection":
        low, twice_span = (0.0, 2 * (size - 1)) if align_corners else (-0.5, 2 * size)
        if twice_span == 0:
            coord, slope = 0.0, 0.0
        elif by_flips:
            span = twice_span / 2
            distance = abs(coord - low)
            extra = math.fmod(distance, span)
            odd = math.floor(distance / span) % 2 == 1
            if (coord - low < 0) != odd:
                slope = -slope
            coord = (span - extra if odd else extra) + low
        else:
            distance = abs(coord - low)
            extra = distance - float(math.trunc(distance / twice_span)) * twice_span
            far_branch = extra > twice_span - extra
            reflected = twice_span - extra if far_branch else extra
            if (coord - low < 0) != far_branch:
                slope = -slope
            coord = reflected + low
    if padding_mode in ("border", "reflection"):
        if not 0 < coord < size - 1:
            slope = slope * 0.0  # no gradient, keeping the sign PyTorch's product of factors has
        coord = min(max(coord, 0.0), float(size - 1))
    return coord, slope


def cubic_tap_weights(t, a=-0.75):
    r"""The weights of the taps at distances :math:`1 + t, t, 1 - t, 2 - t` of Keys' cubic kernel, and
    their derivatives with respect to :math:`t`.

    :math:`k(s) = (a + 2)|s|^3 - (a + 3)|s|^2 + 1` for :math:`|s| \le 1`,
    :math:`a|s|^3 - 5a|s|^2 + 8a|s| - 4a` for :math:`1 < |s| < 2`, else 0.

    >>> cubic_tap_weights(0.5)[0]
    [-0.09375, 0.59375, 0.59375, -0.09375]
    """
    def near(s):
        return (a + 2) * s ** 3 - (a + 3) * s ** 2 + 1

    def near_slope(s):
        return 3 * (a + 2) * s ** 2 - 2 * (a + 3) * s

    def far(s):
        return a * s ** 3 - 5 * a * s ** 2 + 8 * a * s - 4 * a

    def far_slope(s):
        return 3 * a * s ** 2 - 10 * a * s + 8 * a

    weights = [far(1 + t), near(t), near(1 - t), far(2 - t)]
    slopes = [far_slope(1 + t), near_slope(t), -near_slope(1 - t), -far_slope(2 - t)]
    return weights, slopes


def _bicubic_taps(ix, iy, shape, padding_mode, align_corners):
    """The 16 taps of a bicubic point at unnormalized ``(ix, iy)``: ``[(row, col, w, dw/dix, dw/diy, inside)]``.

    Each tap is padded on its own (PyTorch's ``get_value_bounded``): border and reflection move it
    into the image, zeros leaves it, and it then reads 0 when outside.
    """
    H, W = shape
    left, top = math.floor(ix), math.floor(iy)
    wx, dwx = cubic_tap_weights(ix - left)
    wy, dwy = cubic_tap_weights(iy - top)
    taps = []
    for i in range(4):
        row = int(pad_coordinate(float(top - 1 + i), 0.0, H, padding_mode, align_corners)[0])
        for j in range(4):
            col = int(pad_coordinate(float(left - 1 + j), 0.0, W, padding_mode, align_corners)[0])
            taps.append((row, col, wy[i] * wx[j], wy[i] * dwx[j], dwy[i] * wx[j], 0 <= row < H and 0 <= col < W))
    return taps


def _grid_taps(grid_point, shape, mode, padding_mode, align_corners):
    """The pixels read for one grid point: a list of ``(row, col, weight)`` inside the image, the
    corner table ``[(row, col, weight, inside), ...]`` (tl, tr, bl, br), and the two slopes."""
    H, W = shape
    ix, slope_x = grid_source_coordinate(float(grid_point[0]), W, padding_mode, align_corners)
    iy, slope_y = grid_source_coordinate(float(grid_point[1]), H, padding_mode, align_corners)
    if mode == "nearest":
        col, row = round(ix), round(iy)  # Python's round: halves go to the even neighbour
        return [(row, col, 1.0, 0 <= row < H and 0 <= col < W)], (ix, iy), (slope_x, slope_y)
    left, top = math.floor(ix), math.floor(iy)
    wx, wy = ix - left, iy - top
    corners = []
    for dy, weight_y in ((0, 1 - wy), (1, wy)):
        for dx, weight_x in ((0, 1 - wx), (1, wx)):
            row, col = top + dy, left + dx
            corners.append((row, col, weight_y * weight_x, 0 <= row < H and 0 <= col < W))
    return corners, (wx, wy), (slope_x, slope_y)


def _unnormalize(g, size, align_corners):
    """Pixel coordinate of grid coordinate ``g`` and its slope, before any padding."""
    slope = (size - 1) / 2 if align_corners else size / 2
    return ((g + 1) * slope if align_corners else (g + 1) * slope - 0.5), slope


def _volume_taps(grid_point, shape, mode, padding_mode, align_corners):
    """The voxels one point of a 5-D grid reads: ``[(voxel (d, h, w), weight, step (dx, dy, dz),
    inside)]`` in PyTorch's corner order, the axis weights ``[(low, high)]`` along x, y, z, and the
    slopes."""
    D, H, W = shape
    coords, slopes = [], []
    for g, L in zip(grid_point, (W, H, D)):
        coord, slope = _unnormalize(float(g), L, align_corners)
        coord, slope = pad_coordinate(coord, slope, L, padding_mode, align_corners, by_flips=True)
        coords.append(coord)
        slopes.append(slope)
    if mode == "nearest":
        voxel = tuple(round(c) for c in reversed(coords))  # (d, h, w), halves to even
        return [(voxel, 1.0, None, all(0 <= v < L for v, L in zip(voxel, shape)))], None, slopes
    lows = [math.floor(c) for c in coords]
    axis_weights = [(low + 1 - c, c - low) for low, c in zip(lows, coords)]
    taps = []
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                step = (dx, dy, dz)
                voxel = (lows[2] + dz, lows[1] + dy, lows[0] + dx)
                weight = axis_weights[0][dx] * axis_weights[1][dy] * axis_weights[2][dz]
                taps.append((voxel, weight, step, all(0 <= v < L for v, L in zip(voxel, shape))))
    return taps, axis_weights, slopes


def _grid_sample_3d_reference(x, grid, mode, padding_mode, align_corners):
    N, C = x.shape[:2]
    y = numpy.zeros((N, C) + grid.shape[1:4])
    for n, *out in itertools.product(range(N), *map(range, grid.shape[1:4])):
        taps, _, _ = _volume_taps(grid[(n, *out)], x.shape[2:], mode, padding_mode, align_corners)
        for c in range(C):
            total = 0.0  # PyTorch's 3-D kernel: out = 0; out += w v over the voxels inside
            for voxel, weight, _, inside in taps:
                if inside:
                    total = x[(n, c) + voxel] if mode == "nearest" else total + weight * x[(n, c) + voxel]
            y[(n, c, *out)] = total
    return y


def _grid_sample_3d_backward_reference(grad_y, x, grid, mode, padding_mode, align_corners):
    N, C = x.shape[:2]
    grad_x, grad_grid = numpy.zeros(x.shape), numpy.zeros(grid.shape)
    for n, *out in itertools.product(range(N), *map(range, grid.shape[1:4])):
        taps, axis_weights, slopes = _volume_taps(grid[(n, *out)], x.shape[2:], mode, padding_mode, align_corners)
        totals = [0.0, 0.0, 0.0]
        for c in range(C):
            g = grad_y[(n, c, *out)]
            for voxel, weight, step, inside in taps:
                if not inside:
                    continue
                grad_x[(n, c) + voxel] += weight * g
                if mode == "nearest":
                    continue
                for axis in range(3):  # + v w_other w_other' g for the high corner, - for the low one
                    a, b = [other for other in range(3) if other != axis]
                    term = x[(n, c) + voxel] * axis_weights[a][step[a]] * axis_weights[b][step[b]] * g
                    totals[axis] = totals[axis] + term if step[axis] else totals[axis] - term
        if mode != "nearest":
            grad_grid[(n, *out)] = [slope * total for slope, total in zip(slopes, totals)]
    return grad_x, grad_grid


def grid_sample_reference(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    r"""``grid_sample`` by loops: bilinear, nearest or bicubic reads of ``x`` at the points of ``grid``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W) or (N, C, D, H, W)
    grid : ndarray, shape (N, H_out, W_out, 2) or (N, D_out, H_out, W_out, 3)
        ``(gx, gy)`` (or ``(gx, gy, gz)``) per output point.
    mode : {"bilinear", "nearest", "bicubic"}
        bicubic on 4-D input only: the 16 taps of :func:`cubic_tap_weights`, each padded on its own.
    padding_mode : {"zeros", "border", "reflection"}
    align_corners : bool

    Returns
    -------
    y : ndarray of float64, shape (N, C, H_out, W_out)

    Notes
    -----
    With :math:`(i_x, i_y)` from :func:`grid_source_coordinate`, :math:`x_0 = \lfloor i_x \rfloor`,
    :math:`w_x = i_x - x_0` (likewise y), bilinear sampling sums
    :math:`(1 - w_y)(1 - w_x) v_{00} + (1 - w_y) w_x v_{01} + w_y (1 - w_x) v_{10} + w_y w_x v_{11}`
    over the corners inside the image (a corner outside reads 0); nearest reads
    :math:`x[\mathrm{round}(i_y), \mathrm{round}(i_x)]`, halves to even, or 0 outside. In 3-D the
    eight corners of the cell weigh :math:`w_x w_y w_z`, with PyTorch's :math:`(x_0 + 1 - i_x)` and
    :math:`(i_x - x_0)`, summed from ``0.0`` over the corners inside the volume.

    Examples
    --------
    >>> x = numpy.arange(4.).reshape(1, 1, 2, 2)
    >>> grid_sample_reference(x, numpy.array([[[[0., 0.], [-0.5, -0.5]]]])).tolist()
    [[[[1.5, 0.0]]]]
    """
    x, grid = numpy.asarray(x, dtype=numpy.float64), numpy.asarray(grid, dtype=numpy.float64)
    if x.ndim == 5:
        return _grid_sample_3d_reference(x, grid, mode, padding_mode, align_corners)
    N, C, H, W = x.shape
    _, H_out, W_out, _ = grid.shape
    y = numpy.zeros((N, C, H_out, W_out))
    for n, ho, wo in itertools.product(range(N), range(H_out), range(W_out)):
        if mode == "bicubic":
            ix, _ = grid_source_coordinate(float(grid[n, ho, wo, 0]), W, "zeros", align_corners)
            iy, _ = grid_source_coordinate(float(grid[n, ho, wo, 1]), H, "zeros", align_corners)
            corners = [(row, col, w, inside) for row, col, w, _, _, inside in _bicubic_taps(ix, iy, (H, W), padding_mode, align_corners)]
        else:
            corners, _, _ = _grid_taps(grid[n, ho, wo], (H, W), mode, padding_mode, align_corners)
        for c in range(C):
            total = 0.0
            for row, col, weight, inside in corners:
                if inside:
                    total += weight * x[n, c, row, col]
            y[n, c, ho, wo] = total
    return y


def grid_sample_backward_reference(grad_y, x, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    r"""Gradients of :func:`grid_sample_reference` with respect to ``x`` and to ``grid``.

    Parameters
    ----------
    grad_y : ndarray, shape (N, C, H_out, W_out)
    x, grid, mode, padding_mode, align_corners
        As for :func:`grid_sample_reference`.

    Returns
    -------
    (grad_x, grad_grid) : float64 ndarrays shaped like ``x`` and ``grid``

    Notes
    -----
    Each corner inside the image receives its weight times :math:`g = \partial L/\partial y`. For
    the grid (bilinear; nearest gives 0), with corner values :math:`v` (0 outside),

    .. math::

        \frac{\partial L}{\partial g_x} = s_x \sum_c g_c \left[(1 - w_y)(v_{01} - v_{00})
        + w_y (v_{11} - v_{10})\right]_c, \quad
        \frac{\partial L}{\partial g_y} = s_y \sum_c g_c \left[(1 - w_x)(v_{10} - v_{00})
        + w_x (v_{11} - v_{01})\right]_c

    with the slopes :math:`s` of :func:`grid_source_coordinate`.

    Examples
    --------
    >>> x = numpy.arange(4.).reshape(1, 1, 2, 2)
    >>> gx, gg = grid_sample_backward_reference(numpy.ones((1, 1, 1, 1)), x, numpy.zeros((1, 1, 1, 2)))
    >>> gx.tolist(), gg.tolist()
    ([[[[0.25, 0.25], [0.25, 0.25]]]], [[[[1.0, 2.0]]]])
    """
    x, grid = numpy.asarray(x, dtype=numpy.float64), numpy.asarray(grid, dtype=numpy.float64)
    grad_y = numpy.asarray(grad_y, dtype=numpy.float64)
    if x.ndim == 5:
        return _grid_sample_3d_backward_reference(grad_y, x, grid, mode, padding_mode, align_corners)
    N, C, H, W = x.shape
    _, H_out, W_out, _ = grid.shape
    grad_x = numpy.zeros(x.shape)
    grad_grid = numpy.zeros(grid.shape)
    for n, ho, wo in itertools.product(range(N), range(H_out), range(W_out)):
        if mode == "bicubic":
            ix, slope_x = grid_source_coordinate(float(grid[n, ho, wo, 0]), W, "zeros", align_corners)
            iy, slope_y = grid_source_coordinate(float(grid[n, ho, wo, 1]), H, "zeros", align_corners)
            for c in range(C):
                g = grad_y[n, c, ho, wo]
                for row, col, w, dw_dix, dw_diy, inside in _bicubic_taps(ix, iy, (H, W), padding_mode, align_corners):
                    if inside:
                        grad_x[n, c, row, col] += w * g
                    value = x[n, c, row, col] if inside else 0.0  # a tap off the image reads 0 (and 0 * inf is NaN)
                    grad_grid[n, ho, wo, 0] += g * dw_dix * value * slope_x
                    grad_grid[n, ho, wo, 1] += g * dw_diy * value * slope_y
            continue
        corners, (wx, wy), (slope_x, slope_y) = _grid_taps(grid[n, ho, wo], (H, W), mode, padding_mode, align_corners)
        for c in range(C):
            g = grad_y[n, c, ho, wo]
            for row, col, weight, inside in corners:
                if inside:
                    grad_x[n, c, row, col] += weight * g
            if mode == "nearest":
                continue  # piecewise constant in the grid: no gradient
            v00, v01, v10, v11 = (x[n, c, row, col] if inside else 0.0 for row, col, _, inside in corners)
            grad_grid[n, ho, wo, 0] += g * ((1 - wy) * (v01 - v00) + wy * (v11 - v10)) * slope_x
            grad_grid[n, ho, wo, 1] += g * ((1 - wx) * (v10 - v00) + wx * (v11 - v01)) * slope_y
    return grad_x, grad_grid


# --------------------------------------------------------------------------------------------------
