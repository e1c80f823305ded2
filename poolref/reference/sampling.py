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
reads a few input positions with weights, :func:`resize_taps`, by each framework's rule (PyTorch's,
TensorFlow's, JAX's), every rule written here again for one output at a time, in the framework's own
float32 or float64 arithmetic, so that it decides the same taps as the framework and as the
vectorised tables of ``poolref/_sampling_weights.py``, which the tests hold equal to these.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy

from .adaptive import adaptive_bin

__all__ = [
    "grid_source_coordinate",
    "grid_sample_reference",
    "grid_sample_backward_reference",
    "nearest_source_index",
    "torch_linear_taps",
    "torch_antialias_taps",
    "adaptive_bin_taps",
    "tf_nearest_index",
    "tf_bilinear_lerp",
    "tf_area_taps",
    "tf_antialias_taps",
    "tf_antialias_gradient_taps",
    "jax_nearest_index",
    "jax_dense_taps",
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
# interpolate: the taps of one output along one axis, one rule per framework
# --------------------------------------------------------------------------------------------------
F32 = numpy.float32


def _compute(dtype):
    """PyTorch's ``opmath_t``: float64 arithmetic for float64 data, float32 otherwise."""
    return numpy.float64 if numpy.dtype(dtype) == numpy.float64 else numpy.float32


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
    scale = F32(1.0 / scale_factor) if scale_factor is not None else F32(L) / F32(O)
    if exact:
        source = F32((o + 0.5) * float(scale))
    else:
        source = F32(o) * scale
    return min(math.floor(source), L - 1)


def _torch_scale(L, O, align_corners, scale_factor, compute):
    if align_corners:
        return compute(L - 1) / compute(O - 1) if O > 1 else compute(0)
    if scale_factor is not None:
        return compute(1.0 / scale_factor)
    return compute(L) / compute(O)


def torch_linear_taps(o, L, O, align_corners=False, scale_factor=None, dtype=numpy.float64):
    r"""PyTorch's two linear taps ``[(i0, w0), (i1, w1)]`` of output ``o``, ``L`` -> ``O``.

    Notes
    -----
    :math:`O = L` reads :math:`x_o` with weight 1 and again with weight 0. Otherwise
    :math:`c = s\,o` (aligned corners, :math:`s = (L-1)/(O-1)`, 0 if :math:`O = 1`) or
    :math:`c = \max(s (o + 1/2) - 1/2, 0)` (:math:`s = L/O` or :math:`1/\mathrm{scale\_factor}`),
    in float32 for float16/float32 data (the ``0.5`` terms in float64, then rounded) and in float64
    for float64 data, the product and the subtraction rounded once (a fused multiply-add); :math:`i_0 = \min(\lfloor \mathrm{float32}(c) \rfloor, L - 1)` (``floorf``),
    :math:`w_1 = \min(\max(c - i_0, 0), 1)`, :math:`w_0 = 1 - w_1`, :math:`i_1 = i_0 + 1` or
    :math:`i_0` at the last pixel; weights stored in the data's dtype.

    Examples
    --------
    >>> torch_linear_taps(3, 2, 4)  # c = 3.5/2 - 1/2 = 1.25: past the last pixel, read twice
    [(1, 0.75), (1, 0.25)]
    >>> torch_linear_taps(1, 3, 3, align_corners=True)
    [(1, 1.0), (1, 0.0)]
    """
    if O == L:
        return [(o, 1.0), (o, 0.0)]
    compute = _compute(dtype)
    scale = _torch_scale(L, O, align_corners, scale_factor, compute)
    if align_corners:
        c = compute(scale * compute(o))
    else:
        # scale * (o + 0.5) - 0.5 as one fused multiply-add (exact, then rounded once), as compiled
        c = compute(float(Fraction(float(scale)) * Fraction(o + 0.5) - Fraction(1, 2)))
        if c < 0:
            c = compute(0)
    i0 = min(math.floor(F32(c)), L - 1)
    w1 = min(max(compute(c - compute(i0)), compute(0)), compute(1))
    w0 = compute(compute(1) - w1)
    i1 = i0 + 1 if i0 < L - 1 else i0
    store = numpy.dtype(dtype).type
    return [(i0, float(store(w0))), (i1, float(store(w1)))]


def torch_antialias_taps(o, L, O, align_corners=False, scale_factor=None, dtype=numpy.float64):
    r"""PyTorch's antialiased (triangle) taps of output ``o``: its window, every weight (zeros too).

    Notes
    -----
    In the compute dtype (float64 for float64 data, else float32): scale :math:`s`, support
    :math:`r = s` if :math:`s \ge 1` else 1, centre :math:`c = s (o + 1/2)`, window start
    :math:`\max(\mathrm{trunc}(c - r + 1/2), 0)`, end :math:`\min(\mathrm{trunc}(c + r + 1/2), L)`
    (at most :math:`2\lceil r \rceil + 1` taps), weight of position :math:`i`
    :math:`\max(1 - |(i - c + 1/2)/\max(s, 1)|, 0)`, divided by the window's total when it is not 0.

    Examples
    --------
    >>> [(i, round(w, 4)) for i, w in torch_antialias_taps(0, 4, 2)]
    [(0, 0.4286), (1, 0.4286), (2, 0.1429)]
    >>> torch_antialias_taps(1, 2, 6)  # upsampling: the window's last tap has weight 0
    [(0, 1.0), (1, 0.0)]
    """
    s = _compute(dtype)
    scale = _torch_scale(L, O, align_corners, scale_factor, s)
    wide = scale >= 1
    support = s(1.0 * float(scale)) if wide else s(1.0)
    window = math.ceil(support) * 2 + 1
    invscale = s(1.0 / float(scale)) if wide else s(1.0)
    centre = s(float(scale) * (o + 0.5))
    start = max(math.trunc(float(s(centre - support)) + 0.5), 0)
    size = min(math.trunc(float(s(centre + support)) + 0.5), L) - start
    size = min(max(size, 0), window)
    taps, total = [], s(0)
    for j in range(size):
        argument = abs(s((float(s(s(j + start) - centre)) + 0.5) * float(invscale)))
        weight = s(1.0 - float(argument)) if argument < 1 else s(0)
        taps.append([start + j, weight])
        total = s(total + weight)
    if total != 0:
        for tap in taps:
            tap[1] = s(tap[1] / total)
    return [(i, float(w)) for i, w in taps]


def adaptive_bin_taps(o, L, O):
    """Adaptive average bin ``o`` (:func:`~poolref.reference.adaptive.adaptive_bin`), each position with weight ``1/size``.

    >>> adaptive_bin_taps(1, 5, 2)
    [(2, 0.3333333333333333), (3, 0.3333333333333333), (4, 0.3333333333333333)]
    """
    start, end = adaptive_bin(o, L, O)
    return [(i, 1.0 / (end - start)) for i in range(start, end)]


def tf_scale(L, O, align_corners=False):
    """TensorFlow's float32 scale: ``(L-1)/(O-1)`` with aligned corners (L, O > 1), else ``L/O``."""
    if align_corners and L > 1 and O > 1:
        return F32(L - 1) / F32(O - 1)
    return F32(L) / F32(O)


def tf_nearest_index(o, L, O, half_pixel=True, align_corners=False):
    r"""TensorFlow's nearest neighbour: :math:`\lfloor (o + 1/2) s \rfloor` (half-pixel, ``tf.image.resize``),
    :math:`\lfloor o s \rfloor` (legacy) or :math:`\mathrm{round}(o s)` (legacy, aligned corners, halves
    away from 0), in float32, within ``[0, L - 1]``.

    >>> [tf_nearest_index(o, 3, 5) for o in range(5)], [tf_nearest_index(o, 3, 5, False, True) for o in range(5)]
    ([0, 0, 1, 2, 2], [0, 1, 1, 2, 2])
    """
    scale = tf_scale(L, O, align_corners)
    source = (F32(o) + F32(0.5)) * scale if half_pixel else F32(o) * scale
    index = math.floor(float(source) + 0.5) if align_corners else math.floor(source)
    return min(max(index, 0), L - 1)


def tf_bilinear_lerp(o, L, O, align_corners=False):
    r"""TensorFlow's ``ResizeBilinear`` along one axis: ``(lower, upper, t)`` with ``y = a + (b - a) t``.

    :math:`c = (o + 1/2) s - 1/2` (``tf.image.resize``) or :math:`c = o s` (legacy, aligned corners),
    float32; ``lower`` :math:`= \max(\lfloor c \rfloor, 0)`, ``upper``
    :math:`= \min(\lceil c \rceil, L - 1)`, :math:`t = c - \lfloor c \rfloor`.

    >>> tf_bilinear_lerp(0, 2, 4), tf_bilinear_lerp(2, 2, 4)
    ((0, 0, 0.75), (0, 1, 0.75))
    """
    scale = tf_scale(L, O, align_corners)
    c = F32(o) * scale if align_corners else (F32(o) + F32(0.5)) * scale - F32(0.5)
    floor = F32(math.floor(c))
    return max(int(floor), 0), min(math.ceil(c), L - 1), float(F32(c - floor))


def tf_area_taps(o, L, O, align_corners=False):
    r"""TensorFlow's ``ResizeArea`` taps of output ``o``: each pixel's coverage of
    :math:`[o s, (o + 1) s)`, divided by :math:`s` (float32).

    >>> [(i, round(w * 4 / 3, 4)) for i, w in tf_area_taps(1, 4, 3)]
    [(1, 0.6667), (2, 0.6667)]
    """
    scale = tf_scale(L, O, align_corners)
    begin, end = F32(o) * scale, F32(o + 1) * scale
    taps = []
    for i in range(math.floor(begin), math.ceil(end)):
        p = F32(i)
        if p < begin:
            coverage = scale if p + F32(1) > end else F32(p + F32(1) - begin)
        else:
            coverage = F32(end - p) if p + F32(1) > end else F32(1)
        taps.append((min(max(i, 0), L - 1), float(coverage) / float(scale)))
    return taps


def _tf_spans(L, O):
    """TensorFlow's ``ComputeSpansCore`` (triangle, antialias): per output ``(start, weights)``, and the
    common window width."""
    scale = F32(O) / F32(L)
    inv_scale = F32(1.0 / float(scale))
    kernel_scale = max(inv_scale, F32(1))
    width = min(2 * math.ceil(F32(1) * kernel_scale) + 1, L)
    one_over = F32(1) / kernel_scale
    spans = []
    for o in range(O):
        sample = F32(F32(o + 0.5) * inv_scale + F32(-0.0))
        if sample < 0 or sample > L:
            spans.append((0, [0.0] * width))
            continue
        first = min(max(math.ceil(F32(F32(sample - F32(1) * kernel_scale) - F32(0.5))), 0), L - 1)
        stop = min(max(math.floor(F32(F32(sample + F32(1) * kernel_scale) - F32(0.5))), 0), L - 1) + 1
        raw, total = [], F32(0)
        for i in range(first, stop):
            t = abs(F32(F32(F32(i) + F32(0.5)) - sample) * one_over)
            w = F32(1) - t if t < F32(1) else F32(0)
            raw.append(w)
            total = F32(total + w)
        weights = [0.0] * width
        if abs(total) >= F32(1000) * numpy.finfo(F32).tiny:
            inverse = F32(F32(1) / total)
            for k, w in enumerate(raw):
                weights[k] = float(F32(w * inverse))
        spans.append((first, weights))
    return spans, width


def tf_antialias_taps(o, L, O):
    r"""TensorFlow's antialiased taps of output ``o`` (``scale_and_translate``, triangle): a window of the
    common width from its span's start, cut at the image's end, zero weights past the span included.

    >>> tf_antialias_taps(0, 2, 4)
    [(0, 1.0), (1, 0.0)]
    """
    spans, width = _tf_spans(L, O)
    first, weights = spans[o]
    return [(first + k, weights[k]) for k in range(min(first + width, L) - first)]


def tf_antialias_gradient_taps(i, L, O):
    r"""What TensorFlow's antialiased gradient reads for input ``i``: ``[(o, w), ...]`` over outputs.

    ``ComputeGradSpansCore``: the outputs that gave input ``i`` a nonzero weight, in a window whose
    width is the widest such range over all inputs, starting at the first of them (at output 0 for an
    input no output weighs), cut at the last output; zero weight where an output gave none.

    >>> tf_antialias_gradient_taps(0, 2, 4)
    [(0, 1.0), (1, 0.75), (2, 0.25)]
    """
    spans, width = _tf_spans(L, O)
    contributions = [[] for _ in range(L)]
    for o, (first, weights) in enumerate(spans):
        for k in range(width):
            if weights[k] != 0.0 and first + k < L:
                contributions[first + k].append((o, weights[k]))
    gradient_width = max((c[-1][0] - c[0][0] + 1 for c in contributions if c), default=0)
    start = contributions[i][0][0] if contributions[i] else 0
    weights = [0.0] * gradient_width
    for o, w in contributions[i]:
        weights[o - start] += w
    return [(start + m, weights[m]) for m in range(min(start + gradient_width, O) - start)]


def jax_nearest_index(o, L, O):
    r"""``jax.image.resize(method="nearest")``: :math:`\lfloor (o + 1/2) \cdot \mathrm{fl}(L \cdot \mathrm{fl}(1/O)) \rfloor`
    in float32 (XLA's rewriting of ``(o + 0.5) * L / O``), at most ``L - 1``.

    >>> [jax_nearest_index(o, 10, 25) for o in range(4)]
    [0, 0, 0, 1]
    """
    factor = F32(F32(L) * F32(F32(1) / F32(O)))
    return min(math.floor(F32(F32(F32(o) + F32(0.5)) * factor)), L - 1)


def jax_dense_taps(o, L, O, method="linear", antialias=True):
    r"""Column ``o`` of ``jax.image.resize``'s weight matrix: ``[(i, w) for every i]`` (float64).

    ``linear``: :math:`\max(0, 1 - |c_o - i|/\kappa)` with :math:`c_o = (o + 1/2) L/O - 1/2`,
    :math:`\kappa = \max(L/O, 1)` with ``antialias`` (else 1); ``area``: the overlap of
    :math:`[o L/O, (o + 1) L/O)` with :math:`[i, i + 1)`. Normalized by the column's total (0 if it
    is not above ``1000 * eps(float32)``), 0 if :math:`c_o` is outside :math:`[-1/2, L - 1/2]`.

    >>> [round(w, 4) for _, w in jax_dense_taps(0, 4, 2)]
    [0.4286, 0.4286, 0.1429, 0.0]
    """
    inv_scale = 1.0 / (O / L)
    kernel_scale = max(inv_scale, 1.0) if antialias else 1.0
    sample = (o + 0.5) * inv_scale - 0.0 * inv_scale - 0.5
    column = []
    for i in range(L):
        if method == "area":
            left = o * inv_scale - 0.0 * inv_scale
            column.append(max(0.0, min(left + inv_scale, i + 1.0) - max(left, float(i))))
        else:
            column.append(max(0.0, 1.0 - abs(abs(sample - i) / kernel_scale)))
    total = math.fsum(column)
    inside = -0.5 <= sample <= L - 0.5
    if not inside or not abs(total) > 1000.0 * float(numpy.finfo(F32).eps):
        return [(i, 0.0) for i in range(L)]
    return [(i, w / total) for i, w in enumerate(column)]


def resize_taps(o, L, O, mode, align_corners=False, scale_factor=None, *, antialias=False, convention="torch",
                dtype=numpy.float64):
    r"""The ``(input position, weight)`` pairs output ``o`` reads along one axis, ``L`` -> ``O``, in the
    forward of ``interpolate``.

    Parameters
    ----------
    o : int
    L, O : int
    mode : {"nearest", "nearest-exact", "linear", "area"}
        Any linear mode ("bilinear", "trilinear") reads like "linear" along each axis.
    align_corners : bool
    scale_factor : float or None
        As for :func:`nearest_source_index` (PyTorch only; ignored with ``align_corners``).
    antialias : bool
    convention : {"torch", "tensorflow", "jax"}
    dtype : numpy dtype
        The data's dtype (PyTorch computes float64 data's coordinates in float64).

    Returns
    -------
    list of (int, float)
        Every tap read, zero weights included. ``[(o, 1.0)]`` for an axis the framework copies.
        TensorFlow's (non-antialiased) bilinear is not a weighted sum: see :func:`tf_bilinear_lerp`.

    Examples
    --------
    >>> [resize_taps(o, 2, 4, "linear") for o in range(4)]
    [[(0, 1.0), (1, 0.0)], [(0, 0.75), (1, 0.25)], [(0, 0.25), (1, 0.75)], [(1, 0.75), (1, 0.25)]]
    >>> resize_taps(0, 4, 4, "linear", convention="jax")  # JAX leaves an unchanged axis alone
    [(0, 1.0)]
    """
    linear = mode not in ("nearest", "nearest-exact", "area")
    if convention == "torch":
        if mode in ("nearest", "nearest-exact"):
            return [(nearest_source_index(o, L, O, scale_factor, exact=mode == "nearest-exact"), 1.0)]
        if mode == "area":
            return adaptive_bin_taps(o, L, O)
        if antialias:
            return [(o, 1.0)] if O == L else torch_antialias_taps(o, L, O, align_corners, scale_factor, dtype)
        return torch_linear_taps(o, L, O, align_corners, scale_factor, dtype)
    if convention == "tensorflow":
        if mode in ("nearest", "nearest-exact"):
            return [(tf_nearest_index(o, L, O, mode == "nearest-exact", align_corners), 1.0)]
        if mode == "area":
            return tf_area_taps(o, L, O, align_corners)
        if antialias:
            return tf_antialias_taps(o, L, O)
        raise ValueError("TensorFlow's bilinear resize is a lerp, not a weighted sum: use tf_bilinear_lerp")
    if O == L:
        return [(o, 1.0)]
    if mode == "nearest-exact":
        return [(jax_nearest_index(o, L, O), 1.0)]
    return jax_dense_taps(o, L, O, "area" if mode == "area" else "linear", antialias and linear)


def _weighs_as_copy(L, O, align_corners, scale_factor, dtype) -> bool:
    """Whether PyTorch's antialiased table of a same-size axis weighs each output's own pixel 1, the rest 0."""
    for o in range(O):
        taps = torch_antialias_taps(o, L, O, align_corners, scale_factor, dtype)
        if sum(w for position, w in taps if position == o) != 1.0 or any(w != 0.0 for position, w in taps if position != o):
            return False
    return True


def _backward_reads(i, L, O, mode, align_corners, scale_factor, antialias, convention, dtype):
    """What the gradient of input position ``i`` reads along one axis: ``[(o, w), ...]``, in the order
    ``(o, tap)`` in which a scatter-add over the outputs accumulates."""
    if convention == "tensorflow" and mode == "bilinear" and antialias:
        return tf_antialias_gradient_taps(i, L, O)
    reads = []
    for o in range(O):
        if convention == "tensorflow" and mode == "bilinear":  # the forward's transpose: both taps, always
            lower, upper, t = tf_bilinear_lerp(o, L, O, align_corners)
            taps = [(lower, 1.0 - float(t)), (upper, float(t))]
        elif convention == "torch" and antialias:
            # PyTorch's backward resamples an axis whose size does not change too: as it does where
            # that table is a copy (weight 1 on o, 0 elsewhere: only the zero-weight reads differ),
            # and as the copy the forward is where it is not (PyTorch's known defect)
            taps = torch_antialias_taps(o, L, O, align_corners, scale_factor, dtype)
            if O == L and not _weighs_as_copy(L, O, align_corners, scale_factor, dtype):
                taps = [(o, 1.0)]
        else:
            taps = resize_taps(o, L, O, mode, align_corners, scale_factor, antialias=antialias,
                               convention=convention, dtype=dtype)
        reads += [(o, w) for position, w in taps if position == i]
    return reads


def interpolate_reference(x, output_size, mode="nearest", align_corners=False, scale_factors=None, *,
                          antialias=False, convention="torch"):
    r"""``interpolate`` by loops: every output element sums its taps' weighted inputs.

    Parameters
    ----------
    x : ndarray, shape ``(N, C, *spatial)``
        Its dtype selects PyTorch's coordinate arithmetic (float64 or float32); the sums run in float64.
    output_size : tuple of int
    mode : {"nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area"}
    align_corners : bool
    scale_factors : tuple of (float or None), optional
        Per axis, the user's scale factor (see :func:`nearest_source_index`); None: from the sizes.
    antialias : bool
        The effective flag (the convention's default already applied).
    convention : {"torch", "tensorflow", "jax"}

    Returns
    -------
    y : ndarray of float64, shape ``(N, C, *output_size)``

    Notes
    -----
    :math:`y_o = \sum w \, x_i` over the Cartesian product of the per-axis taps of
    :func:`resize_taps`, the weight being the product of the per-axis weights. TensorFlow's
    bilinear resize is its own nested form: along the last axis
    :math:`t_r = x_{r,l} + (x_{r,u} - x_{r,l})\,t` for the rows ``r`` of the lower and upper row
    taps, then :math:`y = t_{lower} + (t_{upper} - t_{lower})\,t'` (the image is copied when no size
    changes).

    Examples
    --------
    >>> interpolate_reference(numpy.array([[[0., 2.]]]), (4,), "linear").tolist()
    [[[0.0, 0.5, 1.5, 2.0]]]
    """
    dtype = numpy.asarray(x).dtype
    x = numpy.asarray(x, dtype=numpy.float64)
    output_size = tuple(output_size)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    scale_factors = tuple(scale_factors) if scale_factors is not None else (None,) * len(spatial)
    y = numpy.zeros((N, C) + output_size)
    tf_lerp = convention == "tensorflow" and mode == "bilinear" and not antialias
    with numpy.errstate(invalid="ignore", over="ignore"):
        if tf_lerp and spatial == output_size:
            return x.copy()
        for out_pos in itertools.product(*[range(O) for O in output_size]):
            if tf_lerp:
                (top, bottom, ty), (left, right, tx) = (
                    tf_bilinear_lerp(o, L, O, align_corners) for o, L, O in zip(out_pos, spatial, output_size))
                for b, c in itertools.product(range(N), range(C)):
                    rows = [x[b, c, r, left] + (x[b, c, r, right] - x[b, c, r, left]) * tx for r in (top, bottom)]
                    y[(b, c) + out_pos] = rows[0] + (rows[1] - rows[0]) * ty
                continue
            per_axis = [
                resize_taps(o, L, O, mode, align_corners, s, antialias=antialias, convention=convention, dtype=dtype)
                for o, L, O, s in zip(out_pos, spatial, output_size, scale_factors)
            ]
            taps = [(tuple(i for i, _ in combination), math.prod(w for _, w in combination))
                    for combination in itertools.product(*per_axis)]  # the n-linear weights multiply
            for b, c in itertools.product(range(N), range(C)):
                total = 0.0
                for position, weight in taps:
                    total += weight * x[(b, c) + position]
                y[(b, c) + out_pos] = total
    return y


def interpolate_backward_reference(grad_y, input_shape, mode="nearest", align_corners=False, scale_factors=None, *,
                                   antialias=False, convention="torch", dtype=numpy.float64):
    r"""Gradient of :func:`interpolate_reference`, as each framework's backward reads it.

    Parameters
    ----------
    grad_y : ndarray, shape ``(N, C, *output_size)``
    input_shape : tuple of int
        ``(N, C, *spatial)``.
    mode, align_corners, scale_factors, antialias, convention
        As for :func:`interpolate_reference`.
    dtype : numpy dtype
        The dtype of the forward's input.

    Returns
    -------
    grad_x : ndarray of float64, shape ``input_shape``

    Notes
    -----
    The transpose of the forward: every tap receives its weight times the gradient,

    .. math:: \frac{\partial L}{\partial x_i} = \sum_{o} \sum_{(i', w) \in taps(o),\, i' = i} w\,
              \frac{\partial L}{\partial y_o},

    written per input position as the list of outputs that read it along each axis. Where the
    framework's backward reads other taps than its forward: PyTorch's antialiased backward and
    TensorFlow's bilinear backward resample axes the forward copies (with their zero-weight
    neighbour), and TensorFlow's antialiased gradient reads the windows of
    :func:`tf_antialias_gradient_taps`.

    Examples
    --------
    >>> interpolate_backward_reference(numpy.ones((1, 1, 4)), (1, 1, 2), "linear").tolist()
    [[[2.0, 2.0]]]
    """
    grad_y = numpy.asarray(grad_y, dtype=numpy.float64)
    input_shape = tuple(input_shape)
    output_size = grad_y.shape[2:]
    N, C = input_shape[:2]
    spatial = input_shape[2:]
    scale_factors = tuple(scale_factors) if scale_factors is not None else (None,) * len(spatial)
    grad_x = numpy.zeros(input_shape)
    reads = [[_backward_reads(i, L, O, mode, align_corners, s, antialias, convention, dtype) for i in range(L)]
             for L, O, s in zip(spatial, output_size, scale_factors)]
    with numpy.errstate(invalid="ignore", over="ignore"):
        for in_pos in itertools.product(*[range(L) for L in spatial]):
            per_axis = [reads[a][i] for a, i in enumerate(in_pos)]
            for combination in itertools.product(*per_axis):
                out_pos = tuple(o for o, _ in combination)
                weight = math.prod(w for _, w in combination)
                for b, c in itertools.product(range(N), range(C)):
                    grad_x[(b, c) + in_pos] += weight * grad_y[(b, c) + out_pos]
    return grad_x
