r"""TensorFlow's resize taps (``tf.image.resize`` and the ``tf.compat.v1`` resize ops, CPU), all in float32.

One function per rule, each a :class:`poolref._taps.Taps` (or :class:`~poolref._taps.Lerp`) along one
axis: nearest (:func:`tf_nearest`), bilinear (:func:`tf_bilinear`, the ``a + (b - a) t`` form), area
(:func:`tf_area`: the fraction of each pixel an output covers, *not* PyTorch's adaptive bins: 4 -> 3
gives ``[0.25, 1.5, 2.75]`` on ``[0, 1, 2, 3]`` where PyTorch gives ``[0.5, 1.5, 2.5]``) antialiased
bilinear and bicubic (:func:`tf_antialias`, ``ScaleAndTranslate``) and bicubic (:func:`tf_cubic`,
``ResizeBicubic``'s table). Read in TensorFlow's ``resize_*_op.cc`` and
``scale_and_translate_op.cc`` and checked against TensorFlow 2.21 (tests/ops/test_sampling.py).
Every name is also reachable as ``poolref._sampling_weights.<name>``.
"""

from __future__ import annotations

import math

import numpy

from ._taps import Lerp, Taps

__all__ = ["tf_scale", "tf_nearest", "tf_bilinear", "tf_area", "tf_antialias", "tf_cubic"]

F32 = numpy.float32
F64 = numpy.float64


def tf_scale(length: int, out_length: int, align_corners: bool = False) -> numpy.float32:
    """``CalculateResizeScale``: ``(L-1)/(O-1)`` with aligned corners (and L, O > 1), else ``L/O``, in float32.

    >>> float(tf_scale(4, 3)), float(tf_scale(4, 3, align_corners=True))
    (1.3333333730697632, 1.5)
    """
    if align_corners and length > 1 and out_length > 1:
        return F32(length - 1) / F32(out_length - 1)
    return F32(length) / F32(out_length)


def tf_nearest(length: int, out_length: int, half_pixel: bool = True, align_corners: bool = False) -> Taps:
    r"""TensorFlow's ``ResizeNearestNeighbor``: one tap.

    ``tf.image.resize(method="nearest")`` is ``half_pixel``: :math:`\lfloor (o + 1/2) s \rfloor`;
    the legacy ``tf.compat.v1.image.resize_nearest_neighbor`` reads :math:`\lfloor o s \rfloor`, or
    :math:`\mathrm{round}(o s)` (halves away from 0) with ``align_corners``; capped at ``L - 1``
    (and at 0 below), all in float32 (:func:`tf_scale`). The gradient scatters to the same tap.

    >>> tf_nearest(3, 5).index[:, 0].tolist(), tf_nearest(3, 5, half_pixel=False).index[:, 0].tolist()
    ([0, 0, 1, 2, 2], [0, 0, 1, 1, 2])
    >>> tf_nearest(3, 5, half_pixel=False, align_corners=True).index[:, 0].tolist()  # round(o/2)
    [0, 1, 1, 2, 2]
    """
    scale = tf_scale(length, out_length, align_corners)
    o = numpy.arange(out_length).astype(F32)
    source = (o + F32(0.5)) * scale if half_pixel else o * scale
    if align_corners:  # roundf: halves away from zero (the coordinate is >= 0)
        index = numpy.floor(source.astype(F64) + 0.5)
    else:
        index = numpy.floor(source)
    index = numpy.clip(index.astype(numpy.int64), 0, length - 1)
    return Taps.one_each(length, index)


def tf_bilinear(length: int, out_length: int, align_corners: bool = False) -> Lerp:
    r"""TensorFlow's ``ResizeBilinear`` along one axis, as a :class:`Lerp`.

    ``tf.image.resize(method="bilinear")`` uses half-pixel centres, :math:`c = (o + 1/2) s - 1/2`;
    ``tf.compat.v1.image.resize_bilinear(align_corners=True)`` :math:`c = o s` with
    :math:`s = (L-1)/(O-1)`; in float32. Then ``lower`` :math:`= \max(\lfloor c \rfloor, 0)`,
    ``upper`` :math:`= \min(\lceil c \rceil, L - 1)` and :math:`t = c - \lfloor c \rfloor`: at an
    integer coordinate ``lower == upper``, and below 0 (the first outputs of an upsampling) both are
    pixel 0 while :math:`t` is the fraction of the negative coordinate.

    >>> t = tf_bilinear(2, 4)
    >>> t.lower.tolist(), t.upper.tolist(), t.fraction.tolist()
    ([0, 0, 0, 1], [0, 1, 1, 1], [0.75, 0.25, 0.75, 0.25])
    """
    scale = tf_scale(length, out_length, align_corners)
    o = numpy.arange(out_length).astype(F32)
    source = o * scale if align_corners else (o + F32(0.5)) * scale - F32(0.5)
    floor = numpy.floor(source)
    lower = numpy.maximum(floor.astype(numpy.int64), 0)
    upper = numpy.minimum(numpy.ceil(source).astype(numpy.int64), length - 1)
    return Lerp(length, lower, upper, (source - floor).astype(F64))


def tf_area(length: int, out_length: int, align_corners: bool = False) -> Taps:
    r"""TensorFlow's ``ResizeArea`` along one axis: the fraction of each input pixel that the output
    pixel covers.

    Output :math:`o` covers :math:`[a, b) = [o s, (o + 1) s)` (float32, :func:`tf_scale`) and reads
    pixels :math:`\lfloor a \rfloor .. \lceil b \rceil - 1`, pixel :math:`i` with its coverage
    (:math:`\min(i + 1, b) - \max(i, a)`, computed as TensorFlow branches on it: ``i + 1 - a`` or
    the whole ``s`` for the first pixel, ``b - i`` for the last, 1 between), divided by :math:`s`
    here (TensorFlow multiplies the whole 2-D sum by :math:`1/(s_h s_w)` instead). Positions past
    the end (float32 rounding of :math:`O s`) read pixel :math:`L - 1`. TensorFlow registers no
    gradient for ``ResizeArea``; the transpose of these taps is the true one.

    >>> t = tf_area(4, 3)  # s = 4/3: out[0] = x0 + x1/3, out[1] = (2 x1 + 2 x2)/3, out[2] = x2/3 + x3
    >>> t.index.tolist(), (t.weight * 4 / 3).round(4).tolist()
    ([[0, 1], [1, 2], [2, 3]], [[1.0, 0.3333], [0.6667, 0.6667], [0.3333, 1.0]])
    """
    scale = tf_scale(length, out_length, align_corners)
    o = numpy.arange(out_length)
    begin = o.astype(F32) * scale  # x * scale: int64 times float, in float
    end = (o + 1).astype(F32) * scale
    first = numpy.floor(begin).astype(numpy.int64)
    last = numpy.ceil(end).astype(numpy.int64)  # exclusive
    width = int((last - first).max())
    k = numpy.arange(width)
    position = first[:, None] + k[None, :]
    read = position < last[:, None]
    p = position.astype(F32)
    b = begin[:, None]
    e = end[:, None]
    coverage = numpy.where(
        p < b,
        numpy.where(p + F32(1) > e, scale, p + F32(1) - b),
        numpy.where(p + F32(1) > e, e - p, F32(1)),
    ).astype(F32)
    weight = numpy.where(read, coverage.astype(F64) / F64(scale), 0.0)
    index = numpy.clip(numpy.where(read, position, first[:, None]), 0, length - 1)
    # ResizeArea's loops sum from 0 (sum = 0; sum += ...): never -0.0
    return Taps(length, index.astype(numpy.int64), weight, None if read.all() else read, from_zero=True)


def _triangle32(t):
    t = numpy.abs(t)
    return numpy.where(t < F32(1), F32(1) - t, F32(0)).astype(F32)


def _keys_cubic32(t):
    """``KeysCubicKernelFunc`` (``sampling_kernels.h``), a = -1/2, in float32."""
    x = numpy.abs(t).astype(F32)
    near = ((F32(1.5) * x - F32(2.5)) * x) * x + F32(1)
    far = ((F32(-0.5) * x + F32(2.5)) * x - F32(4)) * x + F32(2)
    return numpy.where(x >= F32(2), F32(0), numpy.where(x >= F32(1), far, near)).astype(F32)


def tf_antialias(length: int, out_length: int, cubic: bool = False) -> tuple[Taps, Taps]:
    r"""TensorFlow's antialiased resize (``tf.image.resize(..., antialias=True)``, the
    ``ScaleAndTranslate`` op with the triangle kernel, or with ``cubic`` the ``keyscubic`` kernel of
    radius 2 for ``method="bicubic"``): the forward taps and the gradient's taps.

    Returns
    -------
    (forward, backward) : (Taps, Taps)
        ``forward`` (O, K) reads the input; ``backward`` (L, K') reads the upstream gradient.

    Notes
    -----
    ``ComputeSpansCore``, in float32: scale :math:`\sigma = O/L`, kernel scale
    :math:`\kappa = \max(1/\sigma, 1)`, sample point :math:`c = (o + 1/2)/\sigma`; output
    :math:`o` has the span :math:`[\lceil c - \kappa - 1/2 \rceil, \lfloor c + \kappa - 1/2 \rfloor]`
    clamped to the image, weights :math:`f((i + 1/2 - c)/\kappa)` (triangle) normalized by their
    total (left at 0 if the total is below ``1000 * FLT_MIN``). Every output then reads a window of
    the same width, ``K = min(2 ceil(kappa) + 1, L)`` positions from its span's start (fewer at the
    end of the image), with weight 0 past its span: those zero-weight taps are read (upsampling
    2 -> 4: output 0 reads pixel 1 with weight 0). An axis whose size does not change is resampled
    too (each output reads its neighbours with weight 0).

    The gradient (``ComputeGradSpansCore``) lists, for each input, the outputs that gave it a
    *nonzero* weight, and reads the upstream gradient over a window of the same width for every
    input (the widest such range, zero weights elsewhere, from the first contributing output, or
    from output 0 for an input that no output weighs). TensorFlow registers this gradient for
    float32 only.

    Examples
    --------
    >>> forward, backward = tf_antialias(2, 4)  # output 0 reads pixel 1 with weight 0; 3 reads pixel 1 only
    >>> forward.index.tolist(), forward.reads().tolist(), forward.weight.tolist()
    ([[0, 1], [0, 1], [0, 1], [1, 1]], [[True, True], [True, True], [True, True], [True, False]], [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [1.0, 0.0]])
    >>> backward.index.tolist(), backward.weight.tolist()  # input 0 was weighed by outputs 0, 1, 2
    ([[0, 1, 2], [1, 2, 3]], [[1.0, 0.75, 0.25], [0.25, 0.75, 1.0]])
    """
    L, O = length, out_length
    scale = F32(O) / F32(L)
    inv_scale = F32(1.0 / F64(scale))
    kernel_scale = max(inv_scale, F32(1))
    radius = F32(2) if cubic else F32(1)
    kernel = _keys_cubic32 if cubic else _triangle32
    span = min(2 * int(math.ceil(radius * kernel_scale)) + 1, L)
    one_over_kernel_scale = F32(1) / kernel_scale
    sample = (numpy.arange(O).astype(F32) + F32(0.5)) * inv_scale + F32(-0.0)
    outside = (sample < 0) | (sample > L)
    reach = radius * kernel_scale
    first = numpy.clip(numpy.ceil(sample - reach - F32(0.5)).astype(numpy.int64), 0, L - 1)
    stop = numpy.clip(numpy.floor(sample + reach - F32(0.5)).astype(numpy.int64), 0, L - 1) + 1
    first = numpy.where(outside, 0, first)
    j = numpy.arange(span)
    position = first[:, None] + j[None, :]  # (O, span)
    in_span = (position < stop[:, None]) & ~outside[:, None]
    weight = numpy.where(in_span, kernel((position.astype(F32) + F32(0.5) - sample[:, None]) * one_over_kernel_scale), F32(0))
    total = numpy.zeros(O, F32)
    for k in range(span):  # the running float32 sum over the span
        total = (total + weight[:, k]).astype(F32)
    normal = numpy.abs(total) >= F32(1000) * numpy.finfo(F32).tiny
    inverse = F32(1) / numpy.where(normal, total, F32(1))
    weight = numpy.where(normal[:, None], (weight * inverse[:, None]).astype(F32), F32(0))
    read = position < L  # the window is cut at the image's end, not at the span's
    index = numpy.where(read, position, first[:, None])
    # ScaleAndTranslate's loops, forward and gradient, sum from 0: never -0.0
    forward = Taps(L, index.astype(numpy.int64), weight.astype(F64), None if read.all() else read, from_zero=True)

    # The gradient's spans: per input, the outputs whose nonzero weight reached it, in output order
    contributing = (weight != 0) & read
    outputs = numpy.broadcast_to(numpy.arange(O)[:, None], index.shape)
    by_input_first = numpy.full(L, O, numpy.int64)
    by_input_last = numpy.full(L, -1, numpy.int64)
    numpy.minimum.at(by_input_first, index[contributing], outputs[contributing])
    numpy.maximum.at(by_input_last, index[contributing], outputs[contributing])
    has = by_input_last >= 0
    grad_span = int((by_input_last - by_input_first + 1)[has].max()) if has.any() else 0
    grad_first = numpy.where(has, by_input_first, 0)
    m = numpy.arange(max(grad_span, 1))
    grad_index = grad_first[:, None] + m[None, :]
    grad_read = (grad_index < O) & (m[None, :] < grad_span)
    grad_weight = numpy.zeros((L, m.size))
    slot = outputs[contributing] - grad_first[index[contributing]]
    numpy.add.at(grad_weight, (index[contributing], slot), weight[contributing].astype(F32).astype(F64))
    grad_index = numpy.where(grad_read, grad_index, grad_first[:, None])
    backward = Taps(O, grad_index.astype(numpy.int64), grad_weight, None if grad_read.all() else grad_read, from_zero=True)
    return forward, backward


#: ResizeBicubic's table of kernel values: 1024 steps of the fraction
CUBIC_TABLE_SIZE = 1024


def _cubic_table(a: float):
    """``InitCoeffsTable``: (near, far) float32 tables, ``near[i] = k(i/1024)``, ``far[i] = k(1 + i/1024)``,
    each computed in double from the float32 fraction and stored as float32."""
    x = (numpy.arange(CUBIC_TABLE_SIZE + 1) * 1.0 / CUBIC_TABLE_SIZE).astype(F32)
    t = x.astype(F64)
    near = (((a + 2) * t - (a + 3)) * t * t + 1).astype(F32)
    u = (x + F32(1)).astype(F64)
    far = (((a * u - 5 * a) * u + 8 * a) * u - 4 * a).astype(F32)
    return near, far


def tf_cubic(length: int, out_length: int, align_corners: bool = False) -> Taps:
    r"""TensorFlow's ``ResizeBicubic``: four taps per output, in float32.

    ``tf.image.resize(method="bicubic")`` (``half_pixel_centers``): Keys' kernel with
    :math:`a = -1/2`, source :math:`c = (o + 1/2) s - 1/2`; a tap outside the image gets weight 0
    (it still reads the clamped edge pixel: :math:`0 \cdot \infty` is NaN) and the weights are
    divided by their float32 sum (when that is at least ``1000 * FLT_MIN``).
    ``align_corners=True``: the legacy ``tf.compat.v1.image.resize_bicubic(align_corners=True)``,
    :math:`a = -3/4`, :math:`c = o (L - 1)/(O - 1)`, taps clamped to the edge and not renormalized.
    The weights come from a table of 1025 steps: the fraction :math:`t = c - \lfloor c 
floor` is
    rounded to :math:`\mathrm{rint}(1024 t)/1024` first (so weights are the kernel's at the nearest
    1/1024, not at :math:`t`). An axis whose size does not change is resampled too.

    >>> t = tf_cubic(3, 6)
    >>> t.index[0].tolist(), t.weight[0].round(4).tolist()  # c = -0.25: tap -2 and -1 off the image
    ([0, 0, 0, 1], [0.0, 0.0, 1.0882, -0.0882])
    """
    L, O = length, out_length
    keys = not align_corners
    near, far = _cubic_table(-0.5 if keys else -0.75)
    scale = tf_scale(L, O, align_corners)
    o = numpy.arange(O).astype(F32)
    source = ((o + F32(0.5)) * scale - F32(0.5)).astype(F32) if keys else (o * scale).astype(F32)
    low = numpy.floor(source).astype(numpy.int64)
    step = numpy.rint((source - low.astype(F32)) * F32(CUBIC_TABLE_SIZE)).astype(numpy.int64)  # lrintf
    weight = numpy.stack([far[step], near[step], near[CUBIC_TABLE_SIZE - step], far[CUBIC_TABLE_SIZE - step]], axis=1)
    wanted = low[:, None] - 1 + numpy.arange(4)
    index = numpy.clip(wanted, 0, L - 1)
    if keys:
        weight = numpy.where(index == wanted, weight, F32(0))
        total = weight[:, 0]
        for k in range(1, 4):  # the float32 sum, left to right
            total = (total + weight[:, k]).astype(F32)
        normal = numpy.abs(total) >= F32(1000) * numpy.finfo(F32).tiny
        inverse = (F32(1) / numpy.where(normal, total, F32(1))).astype(F32)
        weight = numpy.where(normal[:, None], (weight * inverse[:, None]).astype(F32), weight)
    return Taps(L, index.astype(numpy.int64), weight.astype(F64))
