r"""ONNX Runtime's linear ``Resize`` of 4-D and 5-D tensors (half_pixel), as its CPU kernel computes it.

The oracle's model of :data:`poolref.oracle.defects.ORT_RESIZE_COORDINATES`: PyTorch's rules (which
poolref's ``interpolate`` follows) and ONNX Runtime's agree to rounding on finite inputs, but not on
which weights are exactly 0, so a NaN or an infinity lands differently. Held equal to ONNX Runtime bit
for bit on random cases by ``tests/oracle/test_onnxruntime.py``.
"""

from __future__ import annotations

import itertools

import numpy

from ..cases.case import Case, resize_scales, resize_size

__all__ = ["linear_axis", "ort_linear_resize"]


def linear_axis(length: int, out_length: int, scale):
    """ONNX Runtime's linear taps along one axis (``SetupUpsampleBilinear``, half_pixel), in float32:
    ``c = (o + 0.5) / s - 0.5`` with ``s = out/in`` (or the given scale), clamped to ``[0, L - 1]``;
    ``i1 = int(c)``, ``i2 = min(i1 + 1, L - 1)``, weights ``d1 = |c - i1|`` (of ``i2``) and
    ``d2 = |c - i2|`` (of ``i1``), both 0.5 where ``i1 = i2``."""
    f32 = numpy.float32
    s = f32(out_length) / f32(length) if scale is None else f32(scale)
    coord = (numpy.arange(out_length, dtype=f32) + f32(0.5)) / s - f32(0.5)
    coord = numpy.maximum(f32(0), numpy.minimum(coord, f32(length - 1)))
    i1 = numpy.minimum(coord.astype(numpy.int64), length - 1)
    i2 = numpy.minimum(i1 + 1, length - 1)
    d1, d2 = numpy.abs(coord - i1.astype(f32)), numpy.abs(coord - i2.astype(f32))
    same = i1 == i2
    d1[same], d2[same] = f32(0.5), f32(0.5)
    return i1, i2, d1, d2


def ort_linear_resize(case: Case, ours, cotangent):
    """ONNX Runtime's bilinear / trilinear Resize (half_pixel): every output sums all 2^n corners,
    each weighted by the product of its axes' weights (x fastest: X11, X21, X12, X22 in 2-D)."""
    x = case.x
    n = x.ndim - 2
    if tuple(resize_size(case)) == tuple(x.shape[2:]):  # nothing to resize: a copy
        return ours._replace(values=x.copy())
    scales = resize_scales(case) or (None,) * n
    axes = [linear_axis(L, O, s) for L, O, s in zip(x.shape[2:], resize_size(case), scales)]
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
    return ours._replace(values=out.astype(x.dtype))
