r"""Deformable RoI pooling (Dai et al. 2017), in its RoI Align form (mmcv's ``DeformRoIPool``).

Each bin of RoI Align (``aligned=True``) is moved by a learned offset, scaled by the box's size, so
that the bins can follow the object's parts rather than a rigid grid. The offsets receive gradients
through the derivative of bilinear interpolation: moving a sampling point by :math:`\delta` along
:math:`x` changes its value by :math:`\delta \sum_q x_q\, \partial w_q / \partial x`.

The box geometry is RoI Align's (:mod:`poolref.ops.region.boxes`), the bilinear rule torchvision's
(:func:`poolref._sampling_torchvision.bilinear_axis`, :func:`poolref._sampling_torchvision.bilinear_taps`)
and the weights a sparse matrix (:func:`poolref.ops.region.sampling_matrix.sampling_matrix`); only
the sampling coordinates differ: with a shift per bin they depend on both bin indices, (K, ph, pw, g)
instead of RoI Align's separable (K, ph, g) and (K, pw, g).

For given offsets the op is linear in ``x``, as RoI Align is: the forward builds the sparse matrix
``A`` of the bins' bilinear weights once and computes ``y = A @ table`` (``table`` the input
channels-last, one row of channels per pixel), and the gradient to ``x`` is the transpose of the
same matrix, ``A.T @ grad_y``. The gradient to the offsets multiplies the *derivatives* of the
weights by the input values, so it walks the taps, gathering each corner's channels.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy

from .._backend import array_module
from .._checks import accumulation_dtype, cast_back
from ..autograd.function import apply, define_function
from ..autograd.tensor import Tensor
from .._sampling_torchvision import AxisTaps, bilinear_axis, bilinear_taps, select_boxes
from .region.boxes import (
    AlignGeometry,
    align_geometry,
    channels_last_table,
    check_region_arguments,
    check_sampling_grid,
    check_sampling_ratio,
    gather_rows,
    sample_coordinates,
)
from .region.sampling_matrix import SamplingMatrix, sampling_matrix

__all__ = ["deform_roi_pool"]


class DeformSaved(NamedTuple):
    matrix: SamplingMatrix  # (K*ph*pw, N*H*W): every bin's bilinear reads of the input table
    table: object  # (N*H*W, C) input channels-last, in the accumulation dtype (offset gradient only)
    ay: AxisTaps  # (K, ph, pw, G_h) (offset gradient only)
    ax: AxisTaps  # (K, ph, pw, G_w)
    geometry: AlignGeometry
    count: object  # (K,) max(g_h * g_w, 1)
    gamma: float
    has_offset: bool
    x_shape: tuple
    dtype: numpy.dtype
    offset_dtype: object


def _deformed_axes(geometry: AlignGeometry, offset, gamma, output_size, H, W):
    """Interpolation along y and x of every sampling point, both shaped (K, ph, pw, g)."""
    xp = array_module(geometry.start_h)
    dtype = geometry.start_h.dtype
    ph, pw = output_size
    K = geometry.start_h.shape[0]
    if offset is None:
        shift_x = shift_y = xp.zeros((K, ph, pw), dtype=dtype)
    else:
        offset = offset.astype(dtype, copy=False)
        g = dtype.type(gamma)
        shift_x = g * geometry.roi_w[:, None, None] * offset[:, 0]  # (K, ph, pw)
        shift_y = g * geometry.roi_h[:, None, None] * offset[:, 1]
    ys = sample_coordinates(geometry.start_h, geometry.bin_h, geometry.grid_h, ph, shift_y)  # (K, ph, pw, G_h)
    xs = sample_coordinates(geometry.start_w, geometry.bin_w, geometry.grid_w, pw, xp.swapaxes(shift_x, 1, 2))
    xs = xp.swapaxes(xs, 1, 2)  # (K, pw, ph, G_w) -> (K, ph, pw, G_w)
    in_grid_y = xp.arange(ys.shape[-1])[None, :] < geometry.grid_h[:, None]  # (K, G_h)
    in_grid_x = xp.arange(xs.shape[-1])[None, :] < geometry.grid_w[:, None]
    ay = bilinear_axis(ys, H, in_grid_y[:, None, None, :])
    ax = bilinear_axis(xs, W, in_grid_x[:, None, None, :])
    return ay, ax


def _deform_roi_pool_forward(x, rois, offset, *, output_size, spatial_scale, sampling_ratio, gamma):
    xp = array_module(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    K = rois.shape[0]
    accumulate = accumulation_dtype(x.dtype)
    geometry = align_geometry(rois, output_size, spatial_scale, sampling_ratio, 0.5, False)
    ay, ax = _deformed_axes(geometry, offset, gamma, output_size, H, W)
    table = channels_last_table(x, accumulate)  # (N*H*W, C)
    base = (geometry.batch * (H * W))[:, None, None]  # (K, 1, 1) first row of each box's image
    # for fixed offsets the op is linear in x, out = A @ table; mmcv reads nothing for a sample
    # outside the image (exactly 0, even next to a NaN)
    matrix = sampling_matrix(ay, ax, geometry, W, base, 1, N * H * W, read_outside=False)
    with numpy.errstate(invalid="ignore"):  # 0 * inf is NaN, as in the kernel
        out = matrix.times(table).reshape(K, ph, pw, C)
    count = xp.maximum(geometry.grid_h * geometry.grid_w, 1).astype(accumulate)
    out /= count[:, None, None, None]
    y = xp.ascontiguousarray(xp.moveaxis(out, -1, 1)).astype(x.dtype, copy=False)
    has_offset = offset is not None
    saved = DeformSaved(matrix, table if has_offset else None, ay if has_offset else None, ax if has_offset else None,
                        geometry, count, float(gamma), has_offset,
                        x.shape, x.dtype, None if offset is None else offset.dtype)
    return y, saved


# forward   y[k, c, i, j] = (1 / n_k) sum_{s in bin (i, j)} sum_{q = 1..4} w[s, q] x[b_k, c, p[s, q]]
#           with the samples moved by (dx, dy) = gamma (roi_w o[k, 0, i, j], roi_h o[k, 1, i, j])
#           (n_k = max(g_h g_w, 1); w[s, q] the bilinear weight of corner q of sample s, at pixel p[s, q])
# backward  grad_x[b_k, c, p[s, q]] += (w[s, q] / n_k) g[k, c, i, j]   (the transpose, for fixed offsets)
#           grad_o[k, 0, i, j] = gamma roi_w sum_c (g[k, c, i, j] / n_k) sum_{s, q} x[b_k, c, p[s, q]] dw[s, q]/dx
#           grad_o[k, 1, i, j] = gamma roi_h sum_c (g[k, c, i, j] / n_k) sum_{s, q} x[b_k, c, p[s, q]] dw[s, q]/dy
#           (a sample's x moves by gamma roi_w per unit of offset; the weights' derivatives multiply x,
#           so this part is not a fixed matrix: it walks the taps)
# Speed: the gradient to x is one sparse product, grad_table = A.T @ (g / n), with the matrix A the
# forward built; the taps read the input channels-last, a row of channels per pixel.
def _deform_roi_pool_backward(saved: DeformSaved, grad_y):
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    K, _, ph, pw = grad_y.shape
    geometry = saved.geometry
    # fresh channels-last copies (K, ph, pw, C), divided in place (grad_y is the caller's)
    g = xp.empty((K, ph, pw, C), dtype=saved.count.dtype)
    g[...] = xp.moveaxis(grad_y, 1, -1)
    g /= saved.count[:, None, None, None]
    with numpy.errstate(invalid="ignore"):
        grad_table = saved.matrix.transpose_times(g.reshape(math.prod(g.shape[:3]), C))  # (N*H*W, C)
    grad_x = cast_back(xp.ascontiguousarray(xp.moveaxis(grad_table.reshape(N, H, W, C), -1, 1)), saved.dtype)
    if not saved.has_offset:
        return grad_x, None, None
    # the offset gradient sums in float64
    g = xp.empty((K, ph, pw, C), dtype=numpy.float64)
    g[...] = xp.moveaxis(grad_y, 1, -1)
    g /= saved.count[:, None, None, None]
    along_x = xp.zeros((K, ph, pw), dtype=numpy.float64)
    along_y = xp.zeros((K, ph, pw), dtype=numpy.float64)
    base = (geometry.batch * (H * W))[:, None, None]
    # NaN and infinite values follow the chain rule in IEEE arithmetic (inf * 0 is NaN, inf - inf
    # too), silently
    with numpy.errstate(invalid="ignore", over="ignore"):
        for tap in bilinear_taps(saved.ay, saved.ax, geometry.grid_h, geometry.grid_w, W, slopes=True):
            rows = select_boxes(base, tap.boxes, None) + tap.pixel
            g_tap = select_boxes(g, tap.boxes, None)
            # <g, x_q> over the channels: how much this corner's value matters to the loss. An
            # outside sample reads nothing (its tap stands in at pixel 0 with slope 0): it sends
            # nothing, not even the NaN of 0 * nan where the gradient or pixel 0 is NaN or infinite.
            matters = xp.where(tap.inside, xp.einsum("kijc,kijc->kij", g_tap, gather_rows(saved.table, rows)), 0)
            moved_x, moved_y = matters * tap.d_dx, matters * tap.d_dy
            if tap.boxes is None:
                along_x += moved_x
                along_y += moved_y
            else:
                along_x[tap.boxes] += moved_x
                along_y[tap.boxes] += moved_y
        gamma = saved.count.dtype.type(saved.gamma)
        grad_offset = xp.stack([gamma * geometry.roi_w[:, None, None] * along_x,
                                gamma * geometry.roi_h[:, None, None] * along_y], axis=1)
    grad_offset = cast_back(grad_offset, saved.offset_dtype)
    return grad_x, None, grad_offset


DEFORM_ROI_POOL = define_function("deform_roi_pool", _deform_roi_pool_forward, _deform_roi_pool_backward)


def deform_roi_pool(x, boxes, offset, output_size, spatial_scale=1.0, sampling_ratio=0, gamma=0.1):
    r"""Deformable RoI pooling (Dai et al. 2017): RoI Align with a learned shift for every bin.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W)
        Floating-point feature map.
    boxes : array, shape (K, 5); or list of arrays, shape (K_i, 4)
        As for :func:`~poolref.roi_align`.
    offset : array or Tensor, shape (K, 2, ph, pw), or None
        Normalised shifts of the bins: ``offset[k, 0]`` along x (width), ``offset[k, 1]`` along y
        (height), in units of ``gamma`` times the box's width and height. None means no shift.
    output_size : int or (int, int)
        ``(ph, pw)``.
    spatial_scale : float
        Maps box coordinates onto ``x``.
    sampling_ratio : int
        Sampling points per bin side; ``<= 0`` for ``ceil(roi_size / bins)`` per box.
    gamma : float
        Scale of the offsets (mmcv's default 0.1).

    Returns
    -------
    y : array or Tensor, shape (K, C, ph, pw)

    Notes
    -----
    :func:`~poolref.roi_align`'s geometry with ``aligned=True`` (``start = x_1 s - 0.5``,
    ``roi_w = x_2 s - x_1 s``, no minimum size), each bin's sampling points shifted by
    :math:`\Delta x_{kij} = \gamma\, roi_w\, o_{k0ij}` and :math:`\Delta y_{kij} = \gamma\, roi_h\, o_{k1ij}`:

    .. math:: y_{kcij} = \frac{1}{\max(g_h g_w, 1)} \sum_{a,b} \sum_{q=1}^{4}
              w_q(y_{ia} + \Delta y_{kij},\ x_{jb} + \Delta x_{kij})\; x_{b_k c q}

    For given offsets this is linear in ``x``, a sparse matrix :math:`A` of the weights applied to
    the input (see :func:`~poolref.roi_align`), and the backward to the input is the transpose
    :math:`A^T` applied to the output gradient, as RoI Align's; to the offsets it goes through the
    bilinear derivative:

    .. math:: \frac{\partial L}{\partial o_{k0ij}} = \frac{\gamma\, roi_w}{\max(g_h g_w, 1)}
              \sum_c \frac{\partial L}{\partial y_{kcij}} \sum_{a,b} \sum_q x_{b_k c q}
              \frac{\partial w_q}{\partial x}

    (likewise :math:`o_{k1ij}` with :math:`roi_h` and :math:`\partial w_q / \partial y`), where
    :math:`\partial w_q / \partial x` is zero wherever the coordinate is clamped (below 0, on the last
    column) or the sample is outside; at integer coordinates it is the derivative from the right.
    mmcv's CUDA backward uses the unclamped coordinate there; poolref's is the derivative of the
    forward. A sample outside the image contributes exactly 0 and receives nothing, nor does its
    offset, even next to a NaN or for a NaN upstream gradient; inside, NaN and infinities follow IEEE
    arithmetic (a weight-0 corner of a NaN is NaN; an infinite value times a slope of 0 makes the
    offset gradient NaN). With zero offsets (or ``offset=None``)
    this is ``roi_align(x, boxes, output_size, spatial_scale, sampling_ratio, aligned=True)``.

    Examples
    --------
    Shifting a one-bin box half its width to the right along a ramp ``x[h, w] = 10 h + w``:

    >>> import numpy as np, poolref
    >>> x = np.arange(100.).reshape(1, 1, 10, 10)
    >>> shift = np.array([[[[0.5]], [[0.0]]]])  # (K, 2, ph, pw)
    >>> poolref.deform_roi_pool(x, np.array([[0, 1, 1, 3, 3]]), shift, 1, sampling_ratio=1, gamma=1.0)
    array([[[[17.5]]]])
    >>> poolref.deform_roi_pool(x, np.array([[0, 1, 1, 3, 3]]), None, 1, sampling_ratio=1)
    array([[[[16.5]]]])
    """
    op = "deform_roi_pool"
    x, rois, size, scale = check_region_arguments(x, boxes, output_size, spatial_scale, op)
    ratio = check_sampling_ratio(sampling_ratio, op)
    check_sampling_grid(rois, size, scale, ratio, 0.5, False, op)
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not math.isfinite(gamma):
        raise ValueError(f"{op}: gamma must be a finite number, got gamma={gamma!r}")
    if offset is not None:
        if not (hasattr(offset, "shape") and hasattr(offset, "dtype")):
            offset = numpy.asarray(offset)
        wanted = (rois.shape[0], 2) + size
        if tuple(offset.shape) != wanted:
            raise ValueError(f"{op}: offset must have shape (K, 2, ph, pw) = {wanted}, got offset with shape {tuple(offset.shape)}")
        if numpy.dtype(offset.dtype).kind != "f":
            raise TypeError(f"{op}: offset must be a floating-point array, got offset with dtype {offset.dtype}")
        values = offset.data if isinstance(offset, Tensor) else offset
        if not bool(array_module(values).isfinite(values).all()):
            raise ValueError(f"{op}: offset must be finite, got offset with {int((~array_module(values).isfinite(values)).sum())} NaN or infinite entries")
    return apply(DEFORM_ROI_POOL, x, rois, offset, output_size=size, spatial_scale=scale, sampling_ratio=ratio, gamma=float(gamma))
