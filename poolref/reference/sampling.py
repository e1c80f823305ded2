r"""Plain-loop references for the fixed resizes, ``grid_sample`` and ``interpolate``, forward and backward.

The executable specification of SEMANTICS.md section 9, in PyTorch's semantics. Every function visits
every output element, and for each its sampling taps, with ordinary Python loops in float64; nothing
is vectorised. Inputs are ``(N, C, *spatial)`` float arrays; grids are ``(N, H_out, W_out, 2)``.

``grid_sample`` maps a normalized coordinate :math:`g \in [-1, 1]` along an axis of :math:`L` pixels
to the pixel coordinate

.. math::

    i = \frac{(g + 1) L - 1}{2} \ (\text{align\_corners=False}), \qquad
    i = \frac{(g + 1)(L - 1)}{2} \ (\text{True}),

then lets the padding mode move it (:func:`grid_source_coordinate`) and reads the four pixels around
it (bilinear) or the nearest one. ``interpolate`` is separable: along each axis, output :math:`o`
reads one input position (nearest) or two with weights (linear), :func:`resize_taps`.
"""

from __future__ import annotations

import itertools
import math

import numpy

from .adaptive import adaptive_avg_pool_backward_reference, adaptive_avg_pool_reference

__all__ = [
    "grid_source_coordinate",
    "grid_sample_reference",
    "grid_sample_backward_reference",
    "nearest_source_index",
    "resize_taps",
    "interpolate_reference",
    "interpolate_backward_reference",
]


# --------------------------------------------------------------------------------------------------
# grid_sample
# --------------------------------------------------------------------------------------------------
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
    if padding_mode == "reflection":
        low, twice_span = (0.0, 2 * (size - 1)) if align_corners else (-0.5, 2 * size)
        if twice_span == 0:
            coord, slope = 0.0, 0.0
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
            slope = 0.0
        coord = min(max(coord, 0.0), float(size - 1))
    return coord, slope


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


def grid_sample_reference(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    r"""``grid_sample`` by loops: bilinear or nearest reads of ``x`` at the points of ``grid``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    grid : ndarray, shape (N, H_out, W_out, 2)
        ``(gx, gy)`` per output point.
    mode : {"bilinear", "nearest"}
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
    :math:`x[\mathrm{round}(i_y), \mathrm{round}(i_x)]`, halves to even, or 0 outside.

    Examples
    --------
    >>> x = numpy.arange(4.).reshape(1, 1, 2, 2)
    >>> grid_sample_reference(x, numpy.array([[[[0., 0.], [-0.5, -0.5]]]])).tolist()
    [[[[1.5, 0.0]]]]
    """
    x, grid = numpy.asarray(x, dtype=numpy.float64), numpy.asarray(grid, dtype=numpy.float64)
    N, C, H, W = x.shape
    _, H_out, W_out, _ = grid.shape
    y = numpy.zeros((N, C, H_out, W_out))
    for n, ho, wo in itertools.product(range(N), range(H_out), range(W_out)):
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
    N, C, H, W = x.shape
    _, H_out, W_out, _ = grid.shape
    grad_x = numpy.zeros(x.shape)
    grad_grid = numpy.zeros(grid.shape)
    for n, ho, wo in itertools.product(range(N), range(H_out), range(W_out)):
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
# interpolate
# --------------------------------------------------------------------------------------------------
def nearest_source_index(o, L, O, scale_factor=None, exact=False):
    r"""Input position read by output ``o`` of nearest (or nearest-exact) resizing from ``L`` to ``O``.

    Parameters
    ----------
    o : int
        Output position.
    L, O : int
        Input and output lengths.
    scale_factor : float or None
        The user's scale factor when one was given: the scale is then ``1/scale_factor``, else ``L/O``.
    exact : bool
        ``nearest-exact`` (reads at pixel centres) instead of ``nearest``.

    Returns
    -------
    int

    Notes
    -----
    PyTorch's rule, in its arithmetic: the scale :math:`s` is a float32;
    ``nearest`` reads :math:`\min(\lfloor o \cdot s \rfloor, L - 1)` with the product in float32,
    ``nearest-exact`` :math:`\min(\lfloor (o + 1/2)\, s \rfloor, L - 1)` with the product in float64
    rounded to float32. ``nearest`` copies when :math:`O = L` and reads :math:`\lfloor o/2 \rfloor`
    when :math:`O = 2L`, whatever the scale factor.

    Examples
    --------
    >>> [nearest_source_index(o, 3, 5) for o in range(5)]
    [0, 0, 1, 1, 2]
    >>> [nearest_source_index(o, 3, 5, exact=True) for o in range(5)]
    [0, 0, 1, 2, 2]
    """
    if not exact and O == L:
        return o
    if not exact and O == 2 * L:
        return o // 2
    scale = numpy.float32(1.0 / scale_factor) if scale_factor is not None else numpy.float32(L) / numpy.float32(O)
    if exact:
        source = numpy.float32((o + 0.5) * float(scale))
    else:
        source = numpy.float32(o) * scale
    return min(math.floor(source), L - 1)


def resize_taps(o, L, O, mode, align_corners=False, scale_factor=None):
    r"""The ``(input position, weight)`` pairs output ``o`` reads along one axis, ``L`` -> ``O``.

    Parameters
    ----------
    o : int
    L, O : int
    mode : {"nearest", "nearest-exact", "linear"}
        Any linear mode ("bilinear", "trilinear") reads like "linear" along each axis.
    align_corners : bool
    scale_factor : float or None
        As for :func:`nearest_source_index` (ignored with ``align_corners``).

    Returns
    -------
    list of (int, float)

    Notes
    -----
    Linear: :math:`O = L` copies. Otherwise the source coordinate is
    :math:`c = o\,(L - 1)/(O - 1)` with ``align_corners`` (0 if :math:`O = 1`), else
    :math:`c = \max(s\,(o + 1/2) - 1/2, 0)` with :math:`s = L/O` or :math:`1/\mathrm{scale\_factor}`;
    :math:`i_0 = \min(\lfloor c \rfloor, L - 1)`, :math:`w_1 = \min(\max(c - i_0, 0), 1)`,
    and the pairs are :math:`(i_0, 1 - w_1)` and :math:`(i_0 + 1, w_1)` (or :math:`(i_0, w_1)`
    at the last position).

    Examples
    --------
    >>> [resize_taps(o, 2, 4, "linear") for o in range(4)]
    [[(0, 1.0), (1, 0.0)], [(0, 0.75), (1, 0.25)], [(0, 0.25), (1, 0.75)], [(1, 0.75), (1, 0.25)]]
    """
    if mode in ("nearest", "nearest-exact"):
        return [(nearest_source_index(o, L, O, scale_factor, exact=mode == "nearest-exact"), 1.0)]
    if O == L:
        return [(o, 1.0)]
    if align_corners:
        c = o * ((L - 1) / (O - 1)) if O > 1 else 0.0
    else:
        scale = 1.0 / scale_factor if scale_factor is not None else L / O
        c = max(scale * (o + 0.5) - 0.5, 0.0)
    i0 = min(math.floor(c), L - 1)
    w1 = min(max(c - i0, 0.0), 1.0)
    i1 = i0 + 1 if i0 < L - 1 else i0
    return [(i0, 1.0 - w1), (i1, w1)]


def _taps_of(out_pos, spatial, output_size, mode, align_corners, scale_factors):
    per_axis = [
        resize_taps(o, L, O, mode, align_corners, s)
        for o, L, O, s in zip(out_pos, spatial, output_size, scale_factors)
    ]
    for combination in itertools.product(*per_axis):  # the n-linear weights multiply
        yield tuple(i for i, _ in combination), math.prod(w for _, w in combination)


def interpolate_reference(x, output_size, mode="nearest", align_corners=False, scale_factors=None):
    r"""``interpolate`` by loops: every output element sums its taps' weighted inputs.

    Parameters
    ----------
    x : ndarray, shape ``(N, C, *spatial)``
    output_size : tuple of int
    mode : {"nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area"}
    align_corners : bool
    scale_factors : tuple of (float or None), optional
        Per axis, the user's scale factor (see :func:`nearest_source_index`); None: from the sizes.

    Returns
    -------
    y : ndarray of float64, shape ``(N, C, *output_size)``

    Notes
    -----
    :math:`y_o = \sum_{(i, w)} w \, x_i` over the Cartesian product of the per-axis taps of
    :func:`resize_taps`, the weight being the product of the per-axis weights; ``area`` is
    :func:`~poolref.reference.adaptive.adaptive_avg_pool_reference`.

    Examples
    --------
    >>> interpolate_reference(numpy.array([[[0., 2.]]]), (4,), "linear").tolist()
    [[[0.0, 0.5, 1.5, 2.0]]]
    """
    x = numpy.asarray(x, dtype=numpy.float64)
    output_size = tuple(output_size)
    if mode == "area":
        return adaptive_avg_pool_reference(x, output_size)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    scale_factors = tuple(scale_factors) if scale_factors is not None else (None,) * len(spatial)
    y = numpy.zeros((N, C) + output_size)
    for out_pos in itertools.product(*[range(O) for O in output_size]):
        taps = list(_taps_of(out_pos, spatial, output_size, mode, align_corners, scale_factors))
        for b, c in itertools.product(range(N), range(C)):
            y[(b, c) + out_pos] = sum(weight * x[(b, c) + position] for position, weight in taps)
    return y


def interpolate_backward_reference(grad_y, input_shape, mode="nearest", align_corners=False, scale_factors=None):
    r"""Gradient of :func:`interpolate_reference`: each tap receives its weight times the gradient.

    Parameters
    ----------
    grad_y : ndarray, shape ``(N, C, *output_size)``
    input_shape : tuple of int
        ``(N, C, *spatial)``.
    mode, align_corners, scale_factors
        As for :func:`interpolate_reference`.

    Returns
    -------
    grad_x : ndarray of float64, shape ``input_shape``

    Notes
    -----
    .. math:: \frac{\partial L}{\partial x_i} = \sum_{o} \sum_{(i', w) \in taps(o),\, i' = i} w\,
              \frac{\partial L}{\partial y_o}

    Examples
    --------
    >>> interpolate_backward_reference(numpy.ones((1, 1, 4)), (1, 1, 2), "linear").tolist()
    [[[2.0, 2.0]]]
    """
    grad_y = numpy.asarray(grad_y, dtype=numpy.float64)
    input_shape = tuple(input_shape)
    output_size = grad_y.shape[2:]
    if mode == "area":
        return adaptive_avg_pool_backward_reference(grad_y, input_shape, output_size)
    N, C = input_shape[:2]
    spatial = input_shape[2:]
    scale_factors = tuple(scale_factors) if scale_factors is not None else (None,) * len(spatial)
    grad_x = numpy.zeros(input_shape)
    for out_pos in itertools.product(*[range(O) for O in output_size]):
        for position, weight in _taps_of(out_pos, spatial, output_size, mode, align_corners, scale_factors):
            for b, c in itertools.product(range(N), range(C)):
                grad_x[(b, c) + position] += weight * grad_y[(b, c) + out_pos]
    return grad_x
