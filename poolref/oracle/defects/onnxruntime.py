r"""ONNX Runtime 1.32's known defects (CPU).

* linear ``Resize`` of a 3-D tensor resizes (N, C, L) as one volume, so a NaN or an infinity spreads
  from one row into another;
* linear ``Resize`` of 4-D and 5-D tensors takes its source coordinates as ``(o + 0.5) / s - 0.5``
  in float32 (PyTorch multiplies by ``1/s``) and sums all corners with products of the axes'
  weights: finite outputs agree to rounding, but an infinity can meet a weight of exactly 0 where
  PyTorch's is 1.5e-8 (NaN against -inf), so those cases are held to a model of ORT's own arithmetic;
* cubic ``Resize`` takes its coordinates the same way and copies where no size changes;
* linear ``GridSample`` with border or reflection padding clamps or reflects each tap's index, not
  the sampling point: a NaN or an infinity beside the edge lands differently.

Each is a :class:`~poolref.oracle.mapping.KnownDefect`; see :mod:`poolref.oracle.defects`.
"""

from __future__ import annotations

from ...cases.case import Case
from ..mapping import KnownDefect
from ..ort_grid_sample import ort_grid_sample, shows_tap_padding
from ..ort_resize import ort_cubic_resize, ort_linear_resize
from .common import has_nonfinite

__all__ = ["ORT_RESIZE_ROWS_SPREAD", "ORT_RESIZE_COORDINATES", "ORT_CUBIC_RESIZE_COORDINATES", "ORT_GRID_SAMPLE_TAP_PADDING"]


def _linear_resize_of_rows(case: Case) -> bool:
    return case.x.ndim == 3 and case.kwargs.get("mode") == "linear" and has_nonfinite(case)


ORT_RESIZE_ROWS_SPREAD = KnownDefect(
    "Resize (mode='linear') of a 3-D tensor (N, C, L) resizes it as one volume of depth N and height C, whose "
    "unchanged axes still take two taps each: every (n, c) row reads the next row with weight 0, so a NaN or an "
    "infinity spreads into the row above ([[0, 1, 2, 3], [4, 5, 6, nan]] resized to length 10 gives NaN at "
    "positions 6-9 of the finite first row, where PyTorch gives 2.1, 2.5, 2.9, 3.0), and a length-1 axis reads "
    "its pixel twice with weight 0.5 (inf where PyTorch's 1 * inf + 0 * inf is NaN); along L, the coordinates "
    "of ORT_RESIZE_COORDINATES; where the length does not change it copies (PyTorch reads the next pixel with "
    "weight 0: NaN beside an infinity)",
    _linear_resize_of_rows, affects=("output",), model=ort_linear_resize)


def _linear_resize_2d_3d_nonfinite(case: Case) -> bool:
    return case.x.ndim in (4, 5) and case.kwargs.get("mode") in ("bilinear", "trilinear") and has_nonfinite(case)


ORT_RESIZE_COORDINATES = KnownDefect(
    "Resize (mode='linear') of 4-D and 5-D tensors takes its source coordinates as (o + 0.5) / s - 0.5 "
    "in float32 (s = out/in), where PyTorch multiplies by 1/s: 3 -> 9 puts output 1 exactly on pixel 0 (weight 0 "
    "on pixel 1) where PyTorch gives pixel 1 a weight of 1.5e-8 (with align_corners, o * (L - 1) / (O - 1) in "
    "float32, where PyTorch's is in float64: a coordinate just short of a pixel reads the next one); and it sums every corner with the product of its "
    "axes' weights. Finite outputs agree to rounding; with an infinity, a weight of exactly 0 makes NaN where "
    "PyTorch's is -inf (and the other way round)",
    _linear_resize_2d_3d_nonfinite, affects=("output",), model=ort_linear_resize)


def _cubic_resize_nonfinite_or_same_size(case: Case) -> bool:
    from ...cases.case import resize_size

    return (case.x.ndim == 4 and case.kwargs.get("mode") == "bicubic"
            and (has_nonfinite(case) or tuple(resize_size(case)) == tuple(case.x.shape[2:])))


ORT_CUBIC_RESIZE_COORDINATES = KnownDefect(
    "Resize (mode='cubic', half_pixel) copies its input where no size changes, also where a scale says otherwise "
    "(PyTorch resamples: scale_factor 1.25 on a length of 2); elsewhere it takes its source coordinates as "
    "(o + 0.5) / s - 0.5 in float32 (s = out/in), where PyTorch multiplies by 1/s: 7 -> 1 "
    "puts the output at 2.9999998 (taps 1 to 4) where PyTorch's is exactly 3 (taps 2 to 5, the outer three with "
    "weight 0); with align_corners, o * (L - 1) / (O - 1) in float32. Finite outputs agree to rounding; with a NaN or an infinity, the taps read and the weights of exactly 0 "
    "differ (0 * inf = NaN)",
    _cubic_resize_nonfinite_or_same_size, affects=("output",), model=ort_cubic_resize)


ORT_GRID_SAMPLE_TAP_PADDING = KnownDefect(
    "GridSample (mode='bilinear', 4-D and 5-D input) with padding_mode='border' or 'reflection' does not clamp or "
    "reflect the sampling point c = ((g + 1) * L - 1) / 2 (align_corners: (g + 1) / 2 * (L - 1)), as PyTorch does: "
    "along each axis it takes the taps floor(c) and floor(c) + 1, clamps (border) or reflects (reflection: off -1/2 and L - 1/2, "
    "align_corners: off 0 and L - 1) each tap's index on its own, and weighs them with d2 = floor(c) + 1 - c and d1 = c - floor(c) from the unmoved "
    "point, summing dy2 * (dx2 * p11 + dx1 * p12) + dy1 * (dx2 * p21 + dx1 * p22) in float32 (3-D: dz2 * (the "
    "sum at z1) + dz1 * (the sum at z2)). The plane [[1, inf], [1, inf]] at grid point (-1, -0.5): c = (-0.5, 0), "
    "the x taps -1 and 0 both read column 0 with weights 0.5 and 0.5, so 1; PyTorch clamps x to 0 and reads "
    "1 * 1 + 0 * inf = NaN. A 1 x 1 plane [[inf]] at (0, 0): taps 0 and 1 both read the inf, 1 * inf + 0 * inf "
    "= NaN; PyTorch inf. Finite outputs agree to rounding",
    shows_tap_padding, affects=("output",), model=ort_grid_sample)
