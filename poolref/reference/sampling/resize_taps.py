r"""The taps of one output of ``interpolate`` along one axis, one rule per framework (PyTorch, TensorFlow, JAX),
written for one output at a time in the framework's own arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy

from ..adaptive import adaptive_bin

__all__ = [
    "nearest_source_index",
    "torch_linear_taps",
    "torch_antialias_taps",
    "cubic_weight",
    "torch_cubic_taps",
    "adaptive_bin_taps",
    "tf_nearest_index",
    "tf_bilinear_lerp",
    "tf_area_taps",
    "tf_antialias_taps",
    "tf_antialias_gradient_taps",
    "jax_nearest_index",
    "jax_dense_taps",
    "tf_cubic_taps",
]

F32 = numpy.float32


def _compute(dtype):
    """PyTorch's ``opmath_t``: float64 arithmetic for float64 data, float32 otherwise."""
    return numpy.float64 if numpy.dtype(dtype) == numpy.float64 else numpy.float32


def nearest_source_index(o, L, O, scale_factor=None, exact=False, shortcuts=True):
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
    shortcuts : bool
        Whether ``nearest`` takes the two shortcuts below (PyTorch's 2-D forward does, its 1-D and
        3-D forwards do not).

    Returns
    -------
    int

    Notes
    -----
    PyTorch's rule, in its arithmetic: the scale :math:`s` is a float32;
    ``nearest`` reads :math:`\min(\lfloor o \cdot s \rfloor, L - 1)` with the product in float32,
    ``nearest-exact`` :math:`\min(\lfloor (o + 1/2)\, s \rfloor, L - 1)` with the product in float64
    rounded to float32. With ``shortcuts``, ``nearest`` copies when :math:`O = L` and reads
    :math:`\lfloor o/2 \rfloor` when :math:`O = 2L`, whatever the scale factor.

    Examples
    --------
    >>> [nearest_source_index(o, 3, 5) for o in range(5)]
    [0, 0, 1, 1, 2]
    >>> [nearest_source_index(o, 3, 5, exact=True) for o in range(5)]
    [0, 0, 1, 2, 2]
    """
    if shortcuts and not exact and O == L:
        return o
    if shortcuts and not exact and O == 2 * L:
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


def torch_antialias_taps(o, L, O, align_corners=False, scale_factor=None, dtype=numpy.float64, cubic=False):
    r"""PyTorch's antialiased taps of output ``o``: its window, every weight (zeros too).

    ``cubic``: the filter is :func:`cubic_weight` with :math:`a = -1/2` and the support twice the
    triangle's (``interp_size / 2 = 2``), PyTorch's antialiased bicubic.

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
    half_width = 2.0 if cubic else 1.0
    support = s(half_width * float(scale)) if wide else s(half_width)
    window = math.ceil(support) * 2 + 1
    invscale = s(1.0 / float(scale)) if wide else s(1.0)
    centre = s(float(scale) * (o + 0.5))
    start = max(math.trunc(float(s(centre - support)) + 0.5), 0)
    size = min(math.trunc(float(s(centre + support)) + 0.5), L) - start
    size = min(max(size, 0), window)
    taps, total = [], s(0)
    for j in range(size):
        argument = abs(s((float(s(s(j + start) - centre)) + 0.5) * float(invscale)))
        if cubic:
            weight = cubic_weight(argument, -0.5, s)
        else:
            weight = s(1.0 - float(argument)) if argument < 1 else s(0)
        taps.append([start + j, weight])
        total = s(total + weight)
    if total != 0:
        for tap in taps:
            tap[1] = s(tap[1] / total)
    return [(i, float(w)) for i, w in taps]


def _fused(a, b, c, compute):
    """``a * b + c`` rounded once, exactly (in fractions), then to ``compute``: a fused multiply-add."""
    return compute(float(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))))


def _cubic_near(t, a, s):
    """ATen's ``cubic_convolution1``, ``((a + 2) t - (a + 3)) t t + 1``, as compiled: with fused multiply-adds."""
    return _fused(s(_fused(a + 2, t, -(a + 3), s) * t), t, 1.0, s)


def _cubic_far(t, a, s):
    """ATen's ``cubic_convolution2``, ``((a t - 5a) t + 8a) t - 4a``, with fused multiply-adds."""
    return _fused(_fused(_fused(a, t, -5 * a, s), t, 8 * a, s), t, -4 * a, s)


def cubic_weight(distance, a, compute=numpy.float64):
    r"""Keys' cubic kernel at ``distance`` >= 0 in the ``compute`` dtype: the piece for :math:`t < 1`,
    :math:`((a + 2) t - (a + 3)) t^2 + 1`, for :math:`1 \le t < 2`,
    :math:`((a t - 5a) t + 8a) t - 4a`, else 0.

    >>> cubic_weight(0.5, -0.75), cubic_weight(1.5, -0.75), cubic_weight(2.0, -0.5)
    (0.59375, -0.09375, 0.0)
    """
    s = compute
    t, a = s(distance), s(a)
    if t < 1:
        return float(_cubic_near(t, a, s))
    if t < 2:
        return float(_cubic_far(t, a, s))
    return 0.0


def torch_cubic_taps(o, L, O, align_corners=False, scale_factor=None, dtype=numpy.float64):
    r"""PyTorch's bicubic taps of output ``o``: four ``(position, weight)``, positions clamped to the image.

    Notes
    -----
    In the compute dtype: :math:`c = s\,o` (aligned) or :math:`s (o + 1/2) - 1/2`, negative values
    kept; :math:`i_0 = \min(\lfloor c \rfloor, L - 1)` (of :math:`c` in float32, ``floorf``),
    :math:`t = \mathrm{clip}(c - i_0, 0, 1)`; taps :math:`i_0 - 1, \dots, i_0 + 2`, each clamped to
    :math:`[0, L - 1]`, with the weights :math:`k(t + 1), k(t), k(1 - t), k(2 - t)` of Keys' kernel
    with :math:`a = -3/4` (ATen's ``get_cubic_upsample_coefficients``, each piece fixed: the first
    and last from ``cubic_convolution2``, the middle two from ``cubic_convolution1``), stored in the
    data's dtype.

    >>> torch_cubic_taps(2, 3, 5)  # c = 1: on pixel 1, its neighbours read with weight 0
    [(0, 0.0), (1, 1.0), (2, 0.0), (2, 0.0)]
    """
    s = _compute(dtype)
    scale = _torch_scale(L, O, align_corners, scale_factor, s)
    if align_corners:
        source = s(scale * s(o))
    else:
        source = s(s(scale * s(s(o) + s(0.5))) - s(0.5))
    low = min(math.floor(numpy.float32(source)), L - 1)
    t = min(max(s(source - s(low)), s(0)), s(1))
    a, one = s(-0.75), s(1)
    weights = [_cubic_far(s(t + one), a, s), _cubic_near(t, a, s), _cubic_near(s(one - t), a, s),
               _cubic_far(s(s(one - t) + one), a, s)]
    return [(min(max(low - 1 + k, 0), L - 1), float(numpy.dtype(dtype).type(w))) for k, w in enumerate(weights)]


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


def _tf_keys_cubic(t):
    """TensorFlow's ``KeysCubicKernelFunc`` (a = -1/2) at ``|t|``, in float32."""
    x = abs(F32(t))
    if x >= F32(2):
        return F32(0)
    if x >= F32(1):
        return F32(F32(F32(F32(F32(F32(-0.5) * x) + F32(2.5)) * x) - F32(4)) * x) + F32(2)
    return F32(F32(F32(F32(F32(1.5) * x) - F32(2.5)) * x) * x) + F32(1)


def _tf_spans(L, O, cubic=False):
    """TensorFlow's ``ComputeSpansCore`` (triangle, or keys cubic of radius 2, antialias): per output
    ``(start, weights)``, and the common window width."""
    radius = F32(2) if cubic else F32(1)
    scale = F32(O) / F32(L)
    inv_scale = F32(1.0 / float(scale))
    kernel_scale = max(inv_scale, F32(1))
    width = min(2 * math.ceil(radius * kernel_scale) + 1, L)
    one_over = F32(1) / kernel_scale
    spans = []
    for o in range(O):
        sample = F32(F32(o + 0.5) * inv_scale + F32(-0.0))
        if sample < 0 or sample > L:
            spans.append((0, [0.0] * width))
            continue
        first = min(max(math.ceil(F32(F32(sample - radius * kernel_scale) - F32(0.5))), 0), L - 1)
        stop = min(max(math.floor(F32(F32(sample + radius * kernel_scale) - F32(0.5))), 0), L - 1) + 1
        raw, total = [], F32(0)
        for i in range(first, stop):
            t = abs(F32(F32(F32(i) + F32(0.5)) - sample) * one_over)
            if cubic:
                w = _tf_keys_cubic(t)
            else:
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


def tf_antialias_taps(o, L, O, cubic=False):
    r"""TensorFlow's antialiased taps of output ``o`` (``scale_and_translate``, triangle): a window of the
    common width from its span's start, cut at the image's end, zero weights past the span included.

    >>> tf_antialias_taps(0, 2, 4)
    [(0, 1.0), (1, 0.0)]
    """
    spans, width = _tf_spans(L, O, cubic)
    first, weights = spans[o]
    return [(first + k, weights[k]) for k in range(min(first + width, L) - first)]


def tf_antialias_gradient_taps(i, L, O, cubic=False):
    r"""What TensorFlow's antialiased gradient reads for input ``i``: ``[(o, w), ...]`` over outputs.

    ``ComputeGradSpansCore``: the outputs that gave input ``i`` a nonzero weight, in a window whose
    width is the widest such range over all inputs, starting at the first of them (at output 0 for an
    input no output weighs), cut at the last output; zero weight where an output gave none.

    >>> tf_antialias_gradient_taps(0, 2, 4)
    [(0, 1.0), (1, 0.75), (2, 0.25)]
    """
    spans, width = _tf_spans(L, O, cubic)
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
        elif method == "cubic":  # Keys, a = -1/2, jax's _fill_keys_cubic_kernel with XLA's fused multiply-adds
            x = abs(sample - i) / kernel_scale
            s = numpy.float64
            if x >= 2:
                column.append(0.0)
            elif x >= 1:
                column.append(float(_fused(_fused(_fused(-0.5, x, 2.5, s), x, -4.0, s), x, 2.0, s)))
            else:
                column.append(float(_fused(_fused(1.5, x, -2.5, s) * x, x, 1.0, s)))
        else:
            column.append(max(0.0, 1.0 - abs(abs(sample - i) / kernel_scale)))
    total = math.fsum(column)
    inside = -0.5 <= sample <= L - 0.5
    if not inside or not abs(total) > 1000.0 * float(numpy.finfo(F32).eps):
        return [(i, 0.0) for i in range(L)]
    return [(i, w / total) for i, w in enumerate(column)]



def tf_cubic_taps(o, L, O, align_corners=False):
    r"""TensorFlow's ``ResizeBicubic`` taps of output ``o``: four ``(position, weight)``, in float32.

    Half-pixel (``tf.image.resize``): Keys' :math:`a = -1/2`, taps off the image weighted 0 (reading
    the clamped edge pixel) and the rest divided by their sum; ``align_corners`` (``tf.compat.v1``):
    :math:`a = -3/4`, :math:`c = o (L-1)/(O-1)`, clamped taps, no renormalization. The fraction is
    rounded to a 1/1024 step and the weights read from a float32 table computed in double.

    >>> [(i, round(w, 4)) for i, w in tf_cubic_taps(0, 3, 6)]
    [(0, 0.0), (0, 0.0), (0, 1.0882), (1, -0.0882)]
    """
    keys = not align_corners
    a = -0.5 if keys else -0.75
    scale = F32(L - 1) / F32(O - 1) if (align_corners and L > 1 and O > 1) else F32(L) / F32(O)
    source = F32(F32(F32(o) + F32(0.5)) * scale) - F32(0.5) if keys else F32(F32(o) * scale)
    low = math.floor(source)
    step = int(numpy.rint(F32(F32(source - F32(low)) * F32(1024))))

    def kernel(i, far):  # table entry i: k(i/1024), or k(1 + i/1024) from the far piece
        x = float(F32(i * 1.0 / 1024))
        if far:
            x = float(F32(F32(x) + F32(1)))
            return F32(((a * x - 5 * a) * x + 8 * a) * x - 4 * a)
        return F32(((a + 2) * x - (a + 3)) * x * x + 1)

    weights = [kernel(step, True), kernel(step, False), kernel(1024 - step, False), kernel(1024 - step, True)]
    positions = [low - 1 + k for k in range(4)]
    clamped = [min(max(p, 0), L - 1) for p in positions]
    if keys:
        weights = [w if p == c else F32(0) for w, p, c in zip(weights, positions, clamped)]
        total = F32(F32(F32(weights[0] + weights[1]) + weights[2]) + weights[3])  # left to right, float32
        if abs(total) >= F32(1000) * numpy.finfo(F32).tiny:
            inverse = F32(F32(1) / total)
            weights = [F32(w * inverse) for w in weights]
    return [(c, float(w)) for c, w in zip(clamped, weights)]
