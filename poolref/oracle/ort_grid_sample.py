r"""ONNX Runtime's linear ``GridSample`` with border or reflection padding (4-D input of opset 19, 5-D
input of opset 20), as its CPU kernel computes it.

The oracle's model of :data:`poolref.oracle.defects.ORT_GRID_SAMPLE_TAP_PADDING`. PyTorch (and so
poolref) clamps or reflects the *sampling point* into the image and interpolates there; ONNX Runtime
keeps the point where it is, takes the two taps ``floor(c)`` and ``floor(c) + 1`` of each axis, moves each
tap's *index* into the image on its own (``PixelAtGrid``: clamped for border, reflected for
reflection), and weighs the taps with weights from the unmoved point. Finite outputs agree to
rounding; a NaN or an infinity lands differently (a tap of weight 0 reads another pixel, or the same
one twice). Held equal to ONNX Runtime bit for bit on random cases by
``tests/oracle/test_onnxruntime.py``.
"""

from __future__ import annotations

import numpy

from ..cases.case import Case

__all__ = ["source_coordinate", "clamped_tap", "reflected_tap", "linear_taps", "ort_grid_sample", "shows_tap_padding"]


def source_coordinate(g, length: int, align_corners: bool):
    """ONNX Runtime's pixel coordinate of normalized grid values ``g`` (``GsDenormalize``), in ``g``'s
    dtype: ``(g + 1) / 2 * (L - 1)`` with align_corners, else ``((g + 1) * L - 1) / 2``; not clamped,
    not reflected."""
    t = g.dtype.type
    if align_corners:
        return (g + t(1)) / t(2) * t(length - 1)
    return ((g + t(1)) * t(length) - t(1)) / t(2)


def clamped_tap(index, length: int, align_corners: bool, dtype):
    """Border padding of a tap's index: clamped to ``[0, L - 1]``."""
    return numpy.clip(index, 0, length - 1)


def reflected_tap(index, length: int, align_corners: bool, dtype):
    """Reflection padding of a tap's index (``GsReflect`` of the index as a float, then truncated):
    reflected off ``-1/2`` and ``L - 1/2`` (align_corners: ``0`` and ``L - 1``) until it lies between,
    ``n = int(d / range)`` whole ranges ``d`` past the edge, the rest ``r = d - n * range`` measured
    from that edge (``n`` even) or the other (``n`` odd). With align_corners and ``L = 1`` the range
    is 0 and ONNX Runtime divides by it (undefined in C++): the oracle refuses those cases
    (``GRID_REFLECT_ZERO_RANGE`` in :mod:`poolref.oracle.onnxruntime_adapter`)."""
    t = numpy.dtype(dtype).type
    low, high = (t(0), t(length - 1)) if align_corners else (t(-0.5), t(length - 0.5))
    span = high - low
    position = index.astype(dtype)
    below, above = position < low, position > high
    past = numpy.where(below, low - position, position - high)  # distance beyond the nearer edge
    ranges = numpy.trunc(past / span)
    rest = past - ranges * span
    even = ranges % 2 == 0
    from_below = numpy.where(even, low + rest, high - rest)
    from_above = numpy.where(even, high - rest, low + rest)
    position = numpy.where(below, from_below, numpy.where(above, from_above, position))
    return numpy.trunc(position).astype(numpy.int64)


#: How each padding mode moves a tap's index into the image.
TAP_PADDING = {"border": clamped_tap, "reflection": reflected_tap}


def linear_taps(g, length: int, padding_mode: str, align_corners: bool):
    """The two taps of one axis and their weights, in ``g``'s dtype: ``i1 = floor(c)``, ``i2 = i1 + 1``,
    each moved into the image by :data:`TAP_PADDING`, weights ``d2 = i2 - c`` (of ``i1``) and
    ``d1 = c - i1`` (of ``i2``) from the unmoved coordinate ``c``.

    Returns ``((tap1, tap2), (d2, d1))``, each shaped like ``g``.
    """
    coordinate = source_coordinate(g, length, align_corners)
    first = numpy.floor(coordinate).astype(numpy.int64)
    second = first + 1
    weight_of_second = coordinate - first.astype(g.dtype)
    weight_of_first = second.astype(g.dtype) - coordinate
    pad = TAP_PADDING[padding_mode]
    taps = (pad(first, length, align_corners, g.dtype), pad(second, length, align_corners, g.dtype))
    return taps, (weight_of_first, weight_of_second)


def _gather(x, indices):
    """``x[n, c, *indices[n, ...]]`` for every channel: (N, C, *spatial) and n index arrays (N, *out) ->
    (N, C, *out)."""
    N = x.shape[0]
    batch = numpy.arange(N).reshape((N,) + (1,) * (indices[0].ndim - 1))
    return numpy.moveaxis(x[(batch, slice(None)) + tuple(indices)], -1, 1)


def _interpolate(x, taps, weights, chosen: tuple):
    """The nested sum of ONNX Runtime's kernel, the first spatial axis outermost: along the axis next in
    turn, ``d2 * (the sum at tap 1) + d1 * (the sum at tap 2)``; 2-D:
    ``dy2 * (dx2 * p11 + dx1 * p12) + dy1 * (dx2 * p21 + dx1 * p22)``."""
    axis = len(chosen)
    if axis == len(taps):
        return _gather(x, chosen)
    low = _interpolate(x, taps, weights, chosen + (taps[axis][0],))
    high = _interpolate(x, taps, weights, chosen + (taps[axis][1],))
    weight_low, weight_high = (w[:, None] for w in weights[axis])  # (N, 1, *out): the same for every channel
    return weight_low * low + weight_high * high


def shows_tap_padding(case: Case) -> bool:
    """Where ONNX Runtime's rule shows: linear GridSample (2 or 3 spatial axes) with border or reflection
    padding of an input holding NaN or an infinity (finite inputs agree to rounding and are compared), on
    a finite grid; not reflection with align_corners on an axis of length 1, where the reflection divides
    by zero (refused)."""
    kw = case.kwargs
    if kw.get("mode") != "bilinear" or kw.get("padding_mode") not in ("border", "reflection"):
        return False
    undefined = kw["padding_mode"] == "reflection" and kw["align_corners"] and 1 in case.x.shape[2:]
    nonfinite = case.x.dtype.kind == "f" and not numpy.isfinite(case.x).all()
    return nonfinite and bool(numpy.isfinite(case.arrays["grid"]).all()) and not undefined


def ort_grid_sample(case: Case, ours, cotangent):
    """ONNX Runtime's linear GridSample with border or reflection padding (2 or 3 spatial axes): every
    output sums its 2^n taps, each index padded on its own (:func:`linear_taps`), in the input's dtype.
    The grid's last axis holds (x, y[, z]): x drives the last spatial axis."""
    x, grid = case.x, case.arrays["grid"].astype(case.x.dtype)
    kw = case.kwargs
    n = x.ndim - 2
    with numpy.errstate(invalid="ignore", over="ignore", divide="ignore"):
        axes = [linear_taps(grid[..., n - 1 - d], x.shape[2 + d], kw["padding_mode"], bool(kw["align_corners"]))
                for d in range(n)]  # the first spatial axis (z or y) first
        values = _interpolate(x, [taps for taps, _ in axes], [weights for _, weights in axes], ())
    return ours._replace(values=values.astype(x.dtype))
