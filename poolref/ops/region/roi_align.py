r"""RoI Align (He et al. 2017, Mask R-CNN): torchvision's ``roi_align`` and ONNX's ``RoiAlign``.

Each bin of each box averages (or, in ONNX's max mode, takes the largest of) bilinear samples of the
input. The two modes are two algorithms, so they are two forward/backward pairs:

* average mode (both frameworks) is linear in ``x``: its forward applies the sparse matrix of the
  bins' bilinear weights and its backward applies the transpose of the same matrix
  (:mod:`poolref.ops.region.sampling_matrix`);
* ONNX's max mode is not linear: its forward keeps a running maximum over the weighted corners and
  its backward sends each bin's gradient to the corner that won.

:func:`roi_align` checks the arguments and picks the pair. The box geometry and the sampling points
are :mod:`poolref.ops.region.boxes`'; the bilinear rule is
:func:`poolref._sampling_torchvision.bilinear_axis`.
"""

from __future__ import annotations

import math

from typing import NamedTuple

import numpy

from ..._backend import array_module
from ..._checks import accumulation_dtype, cast_back, check_flag
from ..._running_max import ONNX
from ..._sampling_torchvision import AxisTaps, bilinear_taps, select_boxes
from ...autograd.function import apply, define_function
from .boxes import (
    AlignGeometry,
    RowScatter,
    align_axes,
    align_geometry,
    channels_last_table,
    check_region_arguments,
    check_roi_convention,
    check_sampling_grid,
    check_sampling_ratio,
    gather_rows,
)
from .sampling_matrix import SamplingMatrix, sampling_matrix

__all__ = ["roi_align"]


def _align_samples(x, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """What both modes start from: the boxes' geometry, the bilinear taps of their sampling points
    along y (K, ph, 1, G_h) and x (K, 1, pw, G_w), the input as a channels-last table (N*H*W, C) in
    the accumulation dtype, and the (K, 1, 1) table row of each box's image's first pixel."""
    N, C, H, W = x.shape
    geometry = align_geometry(rois, output_size, spatial_scale, sampling_ratio, 0.5 if aligned else 0.0, not aligned)
    ay, ax = align_axes(geometry, output_size, H, W)
    table = channels_last_table(x, accumulation_dtype(x.dtype))  # (N*H*W, C)
    base = (geometry.batch * (H * W))[:, None, None]  # (K, 1, 1)
    return geometry, ay, ax, table, base


# ==================================================================================================
# Average mode: a linear map, its backward the transpose
# ==================================================================================================
class RoiAlignAvgSaved(NamedTuple):
    matrix: SamplingMatrix  # (K*ph*pw, N*H*W): each bin's bilinear reads of the input table
    count: object  # (K,) max(g_h * g_w, 1), the samples per bin
    x_shape: tuple
    dtype: numpy.dtype


def _roi_align_avg_forward(x, rois, *, output_size, spatial_scale, sampling_ratio, aligned):
    xp = array_module(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    K = rois.shape[0]
    geometry, ay, ax, table, base = _align_samples(x, rois, output_size, spatial_scale, sampling_ratio, aligned)
    count = xp.maximum(geometry.grid_h * geometry.grid_w, 1).astype(table.dtype)  # (K,)
    # each bin: the sum of its samples' corners times their weights, then the mean over the samples
    # (the formula is above the backward). Speed: every read of the CPU kernel (an outside sample
    # reads pixel 0 with weight 0) is an entry of the sparse matrix A, in the kernel's order of
    # addition, and out = A @ table sums them all at once
    matrix = sampling_matrix(ay, ax, geometry, W, base, 1, N * H * W, read_outside=True)
    with numpy.errstate(invalid="ignore"):  # 0 * inf is NaN here, as in the kernels
        out = matrix.times(table).reshape(K, ph, pw, C)
    out /= count[:, None, None, None]
    y = xp.ascontiguousarray(xp.moveaxis(out, -1, 1)).astype(x.dtype, copy=False)  # (K, C, ph, pw)
    return y, RoiAlignAvgSaved(matrix, count, x.shape, x.dtype)


# forward   y[k, c, i, j] = (1 / n_k) sum_{s in bin (i, j)} sum_{q = 1..4} w[s, q] x[b_k, c, p[s, q]]
#           (n_k = max(g_h g_w, 1) samples per bin; p[s, q] the pixel corner q of sample s reads,
#           w[s, q] its bilinear weight)
# backward  grad_x[b_k, c, p[s, q]] += (w[s, q] / n_k) g[k, c, i, j]   (the transpose)
# Speed: both are one sparse product over channels-last tables, out = A @ table and
# grad_table = A.T @ (g / n), with A the (K*ph*pw, N*H*W) matrix the forward built.
def _roi_align_avg_backward(saved: RoiAlignAvgSaved, grad_y):
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    # g: a fresh channels-last copy (K, ph, pw, C), since it is divided in place and grad_y belongs
    # to the caller
    g = xp.empty(grad_y.shape[:1] + grad_y.shape[2:] + (C,), dtype=saved.count.dtype)
    g[...] = xp.moveaxis(grad_y, 1, -1)
    g /= saved.count[:, None, None, None]
    with numpy.errstate(invalid="ignore"):
        grad_table = saved.matrix.transpose_times(g.reshape(math.prod(g.shape[:3]), C))  # (N*H*W, C)
    grad_x = xp.ascontiguousarray(xp.moveaxis(grad_table.reshape(N, H, W, C), -1, 1))
    return cast_back(grad_x, saved.dtype), None


ROI_ALIGN_AVG = define_function("roi_align_avg", _roi_align_avg_forward, _roi_align_avg_backward)


# ==================================================================================================
# ONNX's max mode: a running maximum, its backward a scatter to the winners
# ==================================================================================================
class RoiAlignMaxSaved(NamedTuple):
    geometry: AlignGeometry
    ay: AxisTaps  # (K, ph, 1, G_h) the interpolation of every sample: the backward replays the taps
    ax: AxisTaps  # (K, 1, pw, G_w)
    winner: object  # (K, ph, pw, C) number of the tap each bin chose (-1: none)
    x_shape: tuple
    dtype: numpy.dtype


def _roi_align_max_forward(x, rois, *, output_size, spatial_scale, sampling_ratio, aligned):
    # ONNX Runtime's two nested std::max folds (a < b ? b : a, the "onnx" running max of
    # poolref._running_max): each sampling point's value is the fold of its four weighted corners,
    # max(max(max(w1 v1, w2 v2), w3 v3), w4 v4), and the bin's the fold of its points' values. Each
    # fold takes its first operand whatever it holds and a later one when it is greater (first of
    # ties; a NaN survives only as the first), so a NaN first corner hides the rest of its point.
    xp = array_module(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    K = rois.shape[0]
    geometry, ay, ax, table, base = _align_samples(x, rois, output_size, spatial_scale, sampling_ratio, aligned)
    out = xp.zeros((K, ph, pw, C), dtype=table.dtype)
    winner = xp.full((K, ph, pw, C), -1, dtype=numpy.int32)
    for tap in bilinear_taps(ay, ax, geometry.grid_h, geometry.grid_w, W):
        rows = select_boxes(base, tap.boxes, None) + tap.pixel  # (K', ph, pw)
        value = gather_rows(table, rows)  # (K', ph, pw, C)
        with numpy.errstate(invalid="ignore"):  # 0 * inf is NaN here, as in the kernels
            value *= tap.weight[..., None]
        corner = tap.number % 4  # the taps of a point come in ORT's order w1 .. w4
        if corner == 0:  # a new point: its first weighted corner, whatever it holds
            point_value, point_tap = value, xp.full(value.shape, tap.number, dtype=numpy.int32)
        else:
            take = ONNX.takes(value, point_value)
            point_value, point_tap = xp.where(take, value, point_value), xp.where(take, tap.number, point_tap)
        if corner == 3:  # the point's value joins its bin's fold
            best = select_boxes(out, tap.boxes, None)
            chosen = select_boxes(winner, tap.boxes, None)
            take = (chosen < 0) | ONNX.takes(point_value, best)
            best = xp.where(take, point_value, best)
            chosen = xp.where(take, point_tap, chosen)
            if tap.boxes is None:
                out, winner = best, chosen
            else:
                out[tap.boxes], winner[tap.boxes] = best, chosen
    y = xp.ascontiguousarray(xp.moveaxis(out, -1, 1)).astype(x.dtype, copy=False)  # (K, C, ph, pw)
    return y, RoiAlignMaxSaved(geometry, ay, ax, winner, x.shape, x.dtype)


# forward   y[k, c, i, j] = max_s max_q w[s, q] x[b_k, c, p[s, q]]   (the largest weighted corner,
#           folded per point s, then over the points; (s*, q*) = winner[k, i, j, c], the tap that gave it)
# backward  grad_x[b_k, c, p[s*, q*]] += w[s*, q*] g[k, c, i, j]   (nothing to the other corners)
# Speed: the taps are replayed, and each one scatters the gradients of the bins it won, a row of
# channels per bin, with a RowScatter (one bincount per tap) into a channels-last table.
def _roi_align_max_backward(saved: RoiAlignMaxSaved, grad_y):
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    geometry = saved.geometry
    # g: (K, ph, pw, C) channels-last, in float64: bincount's weights, so each tap's share needs no
    # cast. The other bins' g is selected away (where), not multiplied by a 0/1 mask, so an infinite
    # or NaN g stays with its corner.
    g = xp.ascontiguousarray(xp.moveaxis(grad_y, 1, -1), dtype=numpy.float64)
    scatter = RowScatter(N * H * W, C, xp)
    base = (geometry.batch * (H * W))[:, None, None]  # (K, 1, 1)
    for tap in bilinear_taps(saved.ay, saved.ax, geometry.grid_h, geometry.grid_w, W):
        chose = select_boxes(saved.winner, tap.boxes, None) == tap.number
        g_tap = xp.where(chose, select_boxes(g, tap.boxes, None), 0.0)
        with numpy.errstate(invalid="ignore"):  # a chosen corner of weight 0 gets 0 * g: NaN for an infinite g
            scatter.add(select_boxes(base, tap.boxes, None) + tap.pixel, tap.weight, g_tap)
    grad_x = xp.ascontiguousarray(xp.moveaxis(scatter.total.reshape(N, H, W, C), -1, 1))
    return grad_x.astype(saved.dtype, copy=False), None


ROI_ALIGN_MAX = define_function("roi_align_max", _roi_align_max_forward, _roi_align_max_backward)


# ==================================================================================================
# The public op
# ==================================================================================================
def roi_align(x, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False, *, mode="avg", convention="torchvision"):
    r"""RoI Align (He et al. 2017): average of bilinear samples in each bin of each box.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W)
        Floating-point feature map.
    boxes : array, shape (K, 5); or list of N' arrays, shape (K_i, 4)
        ``[batch_index, x1, y1, x2, y2]`` rows, or per image ``[x1, y1, x2, y2]`` rows, in input
        coordinates. Boxes may be degenerate, inverted or outside the map; K may be 0.
    output_size : int or (int, int)
        ``(ph, pw)`` bins per box.
    spatial_scale : float
        Maps box coordinates onto ``x`` (e.g. 1/16 for a stride-16 feature map).
    sampling_ratio : int
        Sampling points per bin side; ``<= 0`` chooses ``ceil(roi_size / bins)`` for each box.
    aligned : bool
        Shift boxes by half a pixel so that pixel centres sit at half-integers (Detectron2's
        correction; ONNX ``half_pixel``). If False (ONNX ``output_half_pixel``), a box smaller than
        one pixel is enlarged to one.
    mode : {"avg", "max"}
        ``"max"`` exists only in ONNX's RoiAlign (``convention="onnx"``).
    convention : {"torchvision", "onnx"}
        Whose operator: the two agree on ``mode="avg"``.

    Returns
    -------
    y : array or Tensor, shape (K, C, ph, pw)

    Notes
    -----
    With ``o = 0.5`` if aligned else 0: ``start_w = x_1 s - o``, ``roi_w = x_2 s - o - start_w``
    (at least 1 when not aligned), ``bin_w = roi_w / pw``, ``g_w = sampling_ratio`` if positive
    else ``ceil(roi_w / pw)``, and likewise along ``h``. Bin :math:`(i, j)` samples the points

    .. math:: y_{i,a} = start_h + i\, bin_h + (a + \tfrac12) \frac{bin_h}{g_h}, \qquad
              x_{j,b} = start_w + j\, bin_w + (b + \tfrac12) \frac{bin_w}{g_w}

    each read bilinearly from its four neighbours with weights :math:`w_q` (a point outside
    :math:`[-1, H] \times [-1, W]` reads nothing; a coordinate is clamped below at 0 and snapped to the
    last row or column beyond it). Avg mode:

    .. math:: y_{kcij} = \frac{1}{\max(g_h g_w, 1)} \sum_{a, b} \sum_{q=1}^{4} w_q\, x_{b_k, c, q}, \qquad
              \frac{\partial L}{\partial x_{b_k, c, q}} \mathrel{+}= \frac{w_q}{g_h g_w} \frac{\partial L}{\partial y_{kcij}}

    Avg mode is linear in ``x``. With ``x`` channels-last as a table :math:`T` (one row of
    channels per pixel, :math:`N H W` rows) and :math:`A` the sparse
    :math:`(K\, ph\, pw) \times (N H W)` matrix whose row for bin :math:`(k, i, j)` holds the
    weights :math:`w_q` of its samples' corners at the pixels they read (a pixel read twice, twice),
    :math:`Y = A T / \max(g_h g_w, 1)` and the backward is the transpose of the same matrix,
    :math:`\partial L / \partial T = A^T (\partial L / \partial Y) / \max(g_h g_w, 1)`: the
    adjoint of the forward, which poolref builds once, in the forward.

    NaN and infinities (avg mode) reach exactly the bins that read them, with torchvision's CPU
    rule for a sample outside the image: the forward reads pixel (0, 0) with weight 0 for it, so a
    NaN or infinity *there* makes such bins NaN (:math:`0 \cdot \mathrm{NaN}`); the backward skips
    it (its ``bilinear_interpolate_gradient`` returns no corner), so an upstream NaN reaches no pixel
    through it. A weight-0 corner of a sample inside the image (on a pixel, or snapped to the last
    row or column) is read and written like any corner. A sum within a factor :math:`4 g_h g_w` of
    the dtype's largest value overflows before the division, as in the kernel.

    ONNX's max mode takes the largest *weighted corner*, :math:`y = \max_{a,b,q} w_q x_q` (not the
    largest interpolated value; a corner of weight 0 counts as 0, so a bin of negative values can
    output 0), folded with ONNX Runtime's ``std::max``, the ``onnx`` running max of :ref:`max-rules`
    (the first of equal values; a NaN survives only as the bin's first weighted corner); its backward
    sends :math:`w_q \partial L/\partial y` to that one corner. As in both CPU kernels, a sample
    outside the image reads pixel (0, 0) with weight 0, so a NaN there reaches such bins.

    Examples
    --------
    The worked case of SEMANTICS.md (10 x 10 ramp, box [1, 1, 3, 3], 4 x 4 bins, one sample each):

    >>> import numpy as np, poolref
    >>> x = np.arange(100.).reshape(1, 1, 10, 10)
    >>> poolref.roi_align(x, np.array([[0, 1, 1, 3, 3]]), 4, 1.0, 1, aligned=True)[0, 0, 0]
    array([8.25, 8.75, 9.25, 9.75])
    >>> poolref.roi_align(x, [np.array([[1, 1, 3, 3]])], 4, 1.0, 1, aligned=False)[0, 0, 0]
    array([13.75, 14.25, 14.75, 15.25])
    """
    op = "roi_align"
    x, rois, size, scale = check_region_arguments(x, boxes, output_size, spatial_scale, op)
    ratio = check_sampling_ratio(sampling_ratio, op)
    aligned = check_flag(aligned, "aligned", op)
    check_sampling_grid(rois, size, scale, ratio, 0.5 if aligned else 0.0, not aligned, op)
    check_roi_convention(convention, op)
    if not isinstance(mode, str) or mode not in ("avg", "max"):
        raise ValueError(f"{op}: mode must be 'avg' or 'max', got mode={mode!r}")
    if mode == "max" and convention != "onnx":
        raise ValueError(f"{op}: mode='max' is ONNX RoiAlign's (torchvision has only 'avg'); pass convention='onnx', got mode='max' with convention={convention!r}")
    function = ROI_ALIGN_AVG if mode == "avg" else ROI_ALIGN_MAX
    return apply(function, x, rois, output_size=size, spatial_scale=scale, sampling_ratio=ratio, aligned=aligned)
