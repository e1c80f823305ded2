r"""ONNX Runtime's linear ``Resize`` of 3-D, 4-D and 5-D tensors and its cubic ``Resize`` of 4-D
tensors (half_pixel and align_corners), as its CPU kernels compute them.

The oracle's models of :data:`poolref.oracle.defects.ORT_RESIZE_ROWS_SPREAD`,
:data:`poolref.oracle.defects.ORT_RESIZE_COORDINATES` and
:data:`poolref.oracle.defects.ORT_CUBIC_RESIZE_COORDINATES`: PyTorch's rules (which poolref's
``interpolate`` follows) and ONNX Runtime's agree to rounding on finite inputs, but not on which pixels
are read and which weights are exactly 0, so a NaN or an infinity lands differently. Held equal to
ONNX Runtime bit for bit on random cases by ``tests/oracle/test_onnxruntime.py``.
"""

from __future__ import annotations

import itertools

import numpy

from ..cases.case import Case, resize_scales, resize_size

__all__ = ["source_coordinates", "linear_axis", "ort_linear_resize", "cubic_axis", "ort_cubic_resize"]


def source_coordinates(length: int, out_length: int, scale, align_corners: bool = False):
    """ONNX Runtime's source coordinate of each output along one axis, in float32:
    ``(o + 0.5) / s - 0.5`` (half_pixel, ``s = out/in`` or the given scale) or ``o * (L - 1) / (O - 1)``
    (align_corners; 0 for an output of length 1). Where ``s`` is 1 the cubic kernel takes ``o`` itself,
    which both formulas give exactly."""
    f32 = numpy.float32
    s = f32(out_length) / f32(length) if scale is None else f32(scale)
    o = numpy.arange(out_length, dtype=f32)
    if align_corners:
        return o * f32(length - 1) / f32(out_length - 1) if out_length > 1 else numpy.zeros(1, dtype=f32)
    return (o + f32(0.5)) / s - f32(0.5)


def linear_axis(length: int, out_length: int, scale, align_corners: bool = False):
    """ONNX Runtime's linear taps along one axis (``SetupUpsampleBilinear``), in float32: the
    :func:`source_coordinates` ``c`` clamped to ``[0, L - 1]``; ``i1 = int(c)``,
    ``i2 = min(i1 + 1, L - 1)``, weights ``d1 = |c - i1|`` (of ``i2``) and ``d2 = |c - i2|`` (of
    ``i1``), both 0.5 where ``i1 = i2``."""
    f32 = numpy.float32
    coord = source_coordinates(length, out_length, scale, align_corners)
    coord = numpy.maximum(f32(0), numpy.minimum(coord, f32(length - 1)))
    i1 = numpy.minimum(coord.astype(numpy.int64), length - 1)
    i2 = numpy.minimum(i1 + 1, length - 1)
    d1, d2 = numpy.abs(coord - i1.astype(f32)), numpy.abs(coord - i2.astype(f32))
    same = i1 == i2
    d1[same], d2[same] = f32(0.5), f32(0.5)
    return i1, i2, d1, d2


def ort_linear_resize(case: Case, ours, cotangent):
    """ONNX Runtime's linear Resize (half_pixel or align_corners): every output sums all 2^n corners, each weighted by
    the product of its axes' weights (x fastest: X11, X21, X12, X22 in 2-D).

    A 3-D tensor (N, C, L) is resized as one volume of depth N and height C, whose unchanged axes
    still take two taps: each row reads the next row with weight 0 (0 * inf = NaN, so a NaN or an
    infinity spreads into the row above), and a length-1 axis reads its pixel twice, with 0.5 each."""
    x, sizes = case.x, tuple(resize_size(case))
    if sizes == tuple(x.shape[2:]):  # nothing to resize: a copy
        return ours._replace(values=x.copy())
    scales = tuple(resize_scales(case) or (None,) * (x.ndim - 2))
    aligned = bool(case.kwargs.get("align_corners"))
    if x.ndim == 3:  # (N, C, L) as a volume (1, 1, N, C, L) with scales (1, 1, s)
        return ours._replace(values=_linear_volume(x[None, None], x.shape[:2] + sizes, (None, None) + scales, aligned)[0, 0])
    return ours._replace(values=_linear_volume(x, sizes, scales, aligned))


def _linear_volume(x, sizes: tuple, scales: tuple, align_corners: bool):
    """ONNX Runtime's bilinear / trilinear sum over the spatial axes of ``x`` (N, C, *spatial)."""
    n = x.ndim - 2
    axes = [linear_axis(L, O, s, align_corners) for L, O, s in zip(x.shape[2:], sizes, scales)]
    out = None
    with numpy.errstate(invalid="ignore", over="ignore"):
        for corner in itertools.product((0, 1), repeat=n):  # axis 0 slowest, the last (x) fastest
            index = numpy.ix_(*[axis[0] if high == 0 else axis[1] for axis, high in zip(axes, corner)])
            weight = None
            for d in reversed(range(n)):  # dx * dy (* dz), left to right
                shape = [1] * n
                shape[d] = -1
                w = (axes[d][3] if corner[d] == 0 else axes[d][2]).reshape(shape)
                weight = w if weight is None else weight * w
            term = weight * x[(slice(None), slice(None)) + index]
            out = term if out is None else out + term
    return out.astype(x.dtype)


def cubic_axis(length: int, out_length: int, scale, align_corners: bool = False, a: float = -0.75):
    """ONNX Runtime's cubic taps along one axis (``ResizeBiCubic``, exclude_outside=0), in float32: of
    the :func:`source_coordinates` ``c``, the four taps ``floor(c) - 1 .. floor(c) + 2`` clamped to
    the axis, with Keys' coefficients of ``f = c - floor(c)`` (``GetCubicCoeffs``, each a float32
    expression).

    Returns ``taps (O, 4)`` and ``coefficients (O, 4)``.
    """
    f32 = numpy.float32
    coord = source_coordinates(length, out_length, scale, align_corners)
    first = numpy.floor(coord)
    f = numpy.abs(coord - first)
    a = f32(a)
    one, two = f32(1), f32(2)
    far_left, near_left, near_right, far_right = f + one, f, one - f, two - f
    coefficients = numpy.stack([
        ((a * far_left - f32(5) * a) * far_left + f32(8) * a) * far_left - f32(4) * a,
        ((a + two) * near_left - (a + f32(3))) * near_left * near_left + one,
        ((a + two) * near_right - (a + f32(3))) * near_right * near_right + one,
        ((a * far_right - f32(5) * a) * far_right + f32(8) * a) * far_right - f32(4) * a,
    ], axis=-1)
    taps = numpy.clip(first.astype(numpy.int64)[:, None] + numpy.arange(-1, 3), 0, length - 1)
    return taps, coefficients


def ort_cubic_resize(case: Case, ours, cotangent):
    """ONNX Runtime's bicubic Resize (half_pixel or align_corners, a = -0.75, exclude_outside=0): a copy where no size
    changes; else each output sums its four rows in order, each row the sum of its four pixels in
    order, ``row = sum_j (cx_j / 1) * x`` and ``y = sum_i row_i * cy_i / 1``, all in float32."""
    x = case.x
    if tuple(resize_size(case)) == tuple(x.shape[2:]):  # nothing to resize: a copy
        return ours._replace(values=x.copy())
    scales = resize_scales(case) or (None, None)
    aligned = bool(case.kwargs.get("align_corners"))
    (rows, row_weights), (cols, col_weights) = (cubic_axis(L, O, s, aligned) for L, O, s in zip(x.shape[2:], resize_size(case), scales))
    f32 = numpy.float32
    data = x.astype(f32)
    out = numpy.zeros(x.shape[:2] + (rows.shape[0], cols.shape[0]), dtype=f32)
    with numpy.errstate(invalid="ignore", over="ignore"):
        for i in range(4):  # the four rows, in order
            row = numpy.zeros_like(out)
            for j in range(4):  # the four pixels of the row, in order
                row += (col_weights[:, j] / f32(1)) * data[:, :, rows[:, i, None], cols[None, :, j]]
            out += row * row_weights[:, i, None] / f32(1)
    return ours._replace(values=out.astype(x.dtype))
