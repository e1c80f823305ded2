r"""Deformable convolution (Dai et al. 2017) and its modulated form (DCN v2, Zhu et al. 2019), with
torchvision's semantics (``torchvision.ops.deform_conv2d``).

A convolution reads its input on a rigid grid: tap ``(i, j)`` of output ``(h, w)`` reads row
``h s - p + i d`` and column ``w s - p + j d``. Deformable convolution adds a learned offset to every
tap of every output, ``(Δy, Δx)``, and reads the input there by bilinear interpolation; the modulated
form also multiplies each sample by a learned mask ``m``. The sampling points then follow the
object, and the offsets learn through the derivative of the interpolation.

The vectorised code is im2col, as :func:`~poolref.ops.convolution.conv2d`'s, with the gather made
bilinear: for each of the four corners of every sampling point (a loop over four corners, never
over pixels, batch or channels) the corner's channels are gathered and weighed, giving the column
matrix of samples ``(N, C, kh kw, H_out W_out)``; the mask multiplies it; one matrix product per
group of channels with the weights does the multiply-adds. The bilinear rule, its corners, their
weights and their slopes come from :func:`poolref._sampling_torchvision.zero_padded_bilinear`, the one
home of sampling weights. The plain-loop reference in :mod:`poolref.reference.deform_conv` is the
specification it is tested against.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from .._backend import array_module
from .._checks import FLOAT_DTYPES, accumulation_dtype, cast_back, check_like_x
from .._geometry import as_int_tuple
from .._sampling_torchvision import PointCorners, zero_padded_bilinear, zero_padded_bilinear_slopes
from ..autograd.function import apply, define_function
from ..autograd.tensor import Tensor

__all__ = ["deform_conv2d"]


class DeformGeometry(NamedTuple):
    kernel: tuple  # (kh, kw)
    stride: tuple
    padding: tuple
    dilation: tuple
    out_shape: tuple  # (H_out, W_out)
    groups: int  # weight groups: C_in / weight.shape[1]
    offset_groups: int  # offset.shape[1] / (2 kh kw): each group of C_in / offset_groups channels shares its offsets


class DeformSaved(NamedTuple):
    planes: object  # (N, G, C/G, H*W) the input in the accumulation dtype, G offset groups
    points: PointCorners  # the corners of every sample, arrays shaped (N, G, 1, T*P), T = kh*kw, P = H_out*W_out
    sampled: object  # (N, G, C/G, T, P) the samples before the mask
    mask: object  # (N, G, 1, T, P) or None
    weight: object  # (groups, C_out/groups, C_in/groups * T) in the accumulation dtype
    geometry: DeformGeometry
    x_shape: tuple
    has_bias: bool
    dtype: numpy.dtype


def sampling_points(offset, geometry: DeformGeometry, dtype):
    r"""The rows and columns of every sample, ``(ys, xs)``, each (N, G, kh*kw, H_out, W_out).

    Tap ``(i, j)`` of output ``(h, w)`` in offset group ``g`` samples at
    ``(h s_H - p_H + i d_H + Δy, w s_W - p_W + j d_W + Δx)``, with ``Δy = offset[n, 2 (g kh kw + i kw + j)]``
    and ``Δx`` the channel after it. The sum is rounded to ``dtype``, the input's: torchvision stores
    the coordinate as ``scalar_t``, so a float16 input samples at float16 coordinates.

    >>> g = DeformGeometry((1, 2), (1, 1), (0, 0), (1, 1), (1, 1), 1, 1)
    >>> ys, xs = sampling_points(numpy.array([[[[0.5]], [[0.25]], [[-1.0]], [[0.0]]]]), g, numpy.float64)
    >>> ys.ravel().tolist(), xs.ravel().tolist()  # taps (0, 0) and (0, 1)
    ([0.5, -1.0], [0.25, 1.0])
    """
    xp = array_module(offset)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry.kernel, geometry.stride, geometry.padding, geometry.dilation
    h_out, w_out = geometry.out_shape
    T = kh * kw
    shifts = offset.reshape(offset.shape[0], geometry.offset_groups, T, 2, h_out, w_out)  # (dy, dx) per tap
    rows = (xp.arange(h_out) * sh - ph)[None, :] + (xp.arange(kh) * dh)[:, None]  # (kh, H_out): integers
    cols = (xp.arange(w_out) * sw - pw)[None, :] + (xp.arange(kw) * dw)[:, None]  # (kw, W_out)
    base_y = xp.broadcast_to(rows[:, None, :, None], (kh, kw, h_out, 1)).reshape(T, h_out, 1).astype(dtype)
    base_x = xp.broadcast_to(cols[None, :, None, :], (kh, kw, 1, w_out)).reshape(T, 1, w_out).astype(dtype)
    return base_y + shifts[:, :, :, 0], base_x + shifts[:, :, :, 1]


def _corner_values(planes, corner, width: int):
    """(N, G, C/G, T*P): every channel of one corner of every sample (any value where not valid)."""
    xp = array_module(planes)
    flat = corner.row * width + corner.col  # (N, G, 1, T*P)
    return xp.take_along_axis(planes, flat, axis=-1)


def _deform_conv2d_forward(x, offset, weight, bias, mask, *, geometry: DeformGeometry):
    xp = array_module(x, offset, weight, bias, mask)
    accumulate = accumulation_dtype(x.dtype)  # float16 multiplies and adds in float32
    N, C, H, W = x.shape
    G, groups = geometry.offset_groups, geometry.groups
    kh, kw = geometry.kernel
    h_out, w_out = geometry.out_shape
    T, P = kh * kw, h_out * w_out
    c_out = weight.shape[0]

    ys, xs = sampling_points(offset, geometry, x.dtype)  # (N, G, T, H_out, W_out), in x's dtype
    per_group = (N, G, 1, T * P)  # every sample of an offset group, broadcast over the group's channels
    points = zero_padded_bilinear(ys.astype(accumulate).reshape(per_group), xs.astype(accumulate).reshape(per_group), H, W, xp)
    planes = x.astype(accumulate, copy=False).reshape(N, G, C // G, H * W)

    # im2col, bilinear: a sample is the weighted sum of the corners the rule reads (a point outside
    # (-1, H) x (-1, W) reads none, a corner outside the image reads as 0), added in torchvision's
    # order. NaN and infinities follow IEEE arithmetic: a weight-0 corner that is NaN makes the
    # sample NaN, as in the kernel, silently.
    sampled = None
    with numpy.errstate(invalid="ignore", over="ignore"):
        for corner in points.corners:
            read = points.inside & corner.valid
            term = xp.where(read, (corner.weight_y * corner.weight_x) * _corner_values(planes, corner, W), 0)
            sampled = term if sampled is None else sampled + term
        sampled = sampled.reshape(N, G, C // G, T, P)
        if mask is not None:
            mask = mask.astype(accumulate, copy=False).reshape(N, G, 1, T, P)
            columns = sampled * mask  # torchvision: mask * bilinear_interpolate(...)
        else:
            columns = sampled
        # channel c, tap t is row c*T + t of the columns; weight groups split the channels
        columns = columns.reshape(N, groups, (C // groups) * T, P)
        weight_matrix = weight.astype(accumulate, copy=False).reshape(groups, c_out // groups, (C // groups) * T)
        y = (weight_matrix @ columns).reshape(N, c_out, h_out, w_out)  # (N, groups, C_out/groups, P)
        if bias is not None:
            y = y + bias.astype(accumulate, copy=False)[:, None, None]
    saved = DeformSaved(planes, points, sampled, mask, weight_matrix, geometry, x.shape, bias is not None, x.dtype)
    return cast_back(y, x.dtype), saved


# forward: for sample point (y, x) = p(n, g, t, h, w) of tap t and the bilinear value f_c(y, x)
# of channel c (zero_padded_bilinear):
#     col[n, c, t, h, w] = m[n, g, t, h, w] * f_c(y, x)
#     out[n, o, h, w]    = b[o] + sum_{c in group of o, t} W[o, c, t] col[n, c, t, h, w]
# backward: with g = dL/dout and gcol = W^T g (the gradient of the columns):
#     dL/db[o]           = sum_{n, h, w} g[n, o, h, w]
#     dL/dW[o, c, t]     = sum_{n, h, w} g[n, o, h, w] col[n, c, t, h, w]
#     dL/dm[n, g, t, ..] = sum_{c in g} gcol * f_c(y, x)
#     dL/dx[n, c, q]     = sum_{t, h, w} m * gcol * w_q(y, x)          (q a corner near (y, x))
#     dL/dΔy[n, g, t, ..] = sum_{c in g} m * gcol * df_c/dy,  dL/dΔx likewise with df_c/dx
# (the offsets enter y and x with slope 1; df/dy and df/dx are torchvision's differences of
# corner values, zero_padded_bilinear_slopes).
def _deform_conv2d_backward(saved: DeformSaved, grad_y):
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    geometry = saved.geometry
    G, groups = geometry.offset_groups, geometry.groups
    kh, kw = geometry.kernel
    h_out, w_out = geometry.out_shape
    T, P = kh * kw, h_out * w_out
    c_out = saved.weight.shape[0] * saved.weight.shape[1]
    accumulate = saved.sampled.dtype
    with numpy.errstate(invalid="ignore", over="ignore"):  # IEEE on NaN and infinities, as the forward
        g = grad_y.astype(accumulate).reshape(N, groups, c_out // groups, P)
        grad_bias = cast_back(g.sum(axis=(0, 3)).reshape(c_out), saved.dtype) if saved.has_bias else None

        columns = saved.sampled if saved.mask is None else saved.sampled * saved.mask  # (N, G, C/G, T, P)
        columns = columns.reshape(N, groups, (C // groups) * T, P)
        grad_weight = (g @ columns.swapaxes(-1, -2)).sum(axis=0)  # (groups, C_out/groups, C/groups * T)
        grad_weight = cast_back(grad_weight.reshape(c_out, C // groups, kh, kw), saved.dtype)
        grad_columns = (saved.weight.swapaxes(-1, -2) @ g).reshape(N, G, C // G, T, P)

        grad_mask = None
        grad_sampled = grad_columns
        if saved.mask is not None:
            grad_mask = (grad_columns * saved.sampled).sum(axis=2)  # (N, G, T, P)
            grad_mask = cast_back(grad_mask.reshape(N, G * T, h_out, w_out), saved.dtype)
            grad_sampled = grad_columns * saved.mask
        grad_sampled = grad_sampled.reshape(N, G, C // G, T * P)

        # x: the transpose of the bilinear gather, a scatter-add of each sample's gradient times the
        # corner's weight onto the corners near it (not the weight-0 corners the forward also reads,
        # as torchvision's col2im); bincount adds in float64.
        grad_planes = xp.zeros(N * C * H * W, dtype=numpy.float64)
        first = (xp.arange(N * C) * (H * W)).reshape(N, G, C // G, 1)  # where each channel's plane starts
        # offsets: the slopes of the interpolation, from the corners in the image
        corner_values = []
        for corner in saved.points.corners:
            share = xp.where(corner.near, (corner.weight_y * corner.weight_x) * grad_sampled, 0)
            index = first + corner.row * W + corner.col  # (N, G, C/G, T*P)
            grad_planes += xp.bincount(index.reshape(-1), weights=share.reshape(-1), minlength=grad_planes.size)
            corner_values.append(xp.where(corner.valid, _corner_values(saved.planes, corner, W), 0))
        along_y, along_x = zero_padded_bilinear_slopes(saved.points, corner_values)  # (N, G, C/G, T*P)
        grad_offset = xp.stack([(along_y * grad_sampled).sum(axis=2), (along_x * grad_sampled).sum(axis=2)], axis=2)
    grad_x = cast_back(grad_planes.reshape(N, C, H, W), saved.dtype)
    grad_offset = cast_back(grad_offset.reshape(N, G, 2, T, h_out, w_out).swapaxes(2, 3).reshape(N, 2 * G * T, h_out, w_out), saved.dtype)
    return grad_x, grad_offset, grad_weight, grad_bias, grad_mask


DEFORM_CONV2D = define_function("deform_conv2d", _deform_conv2d_forward, _deform_conv2d_backward)


# ==================================================================================================
# Argument checks
# ==================================================================================================
def _as_array(value):
    """Arrays and Tensors as they are; lists and scalars as numpy arrays."""
    return value if hasattr(value, "shape") and hasattr(value, "dtype") else numpy.asarray(value)


def _deform_geometry(x, offset, weight, mask, stride, padding, dilation, op: str) -> DeformGeometry:
    """Check the shapes as torchvision does, inferring the groups and offset groups from them."""
    N, C, H, W = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    stride = as_int_tuple(stride, 2, "stride", op)
    padding = as_int_tuple(padding, 2, "padding", op)
    dilation = as_int_tuple(dilation, 2, "dilation", op)
    for name, value, low in (("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)):
        if any(v < low for v in value):
            raise ValueError(f"{op}: {name} must be {'positive' if low else 'non-negative'}, got {name}={value}")
    if min(weight.shape) < 1:
        raise ValueError(f"{op}: weight must have non-empty axes, got weight with shape {tuple(weight.shape)}")
    groups = C // c_per_group  # torchvision: n_weight_grps = in_channels // weight.shape[1]
    if groups * c_per_group != C:
        raise ValueError(f"{op}: weight.shape[1] must divide the {C} channels of x (groups = C_in / weight.shape[1]), "
                         f"got weight with shape {tuple(weight.shape)}")
    if c_out % groups:
        raise ValueError(f"{op}: weight.shape[0] must be a multiple of the groups ({groups} = {C} / {c_per_group}), "
                         f"got weight with shape {tuple(weight.shape)}")
    h_out, w_out = ((L + 2 * p - (d * (k - 1) + 1)) // s + 1 for L, p, d, k, s in zip((H, W), padding, dilation, (kh, kw), stride))
    if h_out < 1 or w_out < 1:
        raise ValueError(f"{op}: the kernel is larger than the padded input: weight with shape {tuple(weight.shape)} and "
                         f"dilation={dilation} do not fit x with shape {tuple(x.shape)} and padding={padding}")
    taps = kh * kw
    offset_groups = offset.shape[1] // (2 * taps)
    if offset_groups == 0 or offset.shape[1] != 2 * taps * offset_groups:
        raise ValueError(f"{op}: offset.shape[1] must be a positive multiple of 2 * kh * kw = {2 * taps} "
                         f"(offset_groups * kh * kw (dy, dx) pairs), got offset with shape {tuple(offset.shape)}")
    if C % offset_groups:
        raise ValueError(f"{op}: the {offset_groups} offset groups (offset.shape[1] / {2 * taps}) must divide the {C} "
                         f"channels of x, got offset with shape {tuple(offset.shape)}")
    wanted = (N, 2 * taps * offset_groups, h_out, w_out)
    if tuple(offset.shape) != wanted:
        raise ValueError(f"{op}: offset must have shape (N, 2 * offset_groups * kh * kw, H_out, W_out) = {wanted}, "
                         f"got offset with shape {tuple(offset.shape)}")
    if mask is not None:
        wanted = (N, taps * offset_groups, h_out, w_out)
        if tuple(mask.shape) != wanted:
            raise ValueError(f"{op}: mask must have shape (N, offset_groups * kh * kw, H_out, W_out) = {wanted}, "
                             f"got mask with shape {tuple(mask.shape)}")
    return DeformGeometry((kh, kw), stride, padding, dilation, (h_out, w_out), groups, offset_groups)


def deform_conv2d(x, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    r"""Deformable convolution (Dai et al. 2017), modulated with ``mask`` (DCN v2, Zhu et al. 2019):
    ``torchvision.ops.deform_conv2d``.

    Parameters
    ----------
    x : array or Tensor, shape (N, C_in, H, W)
        Floating-point input, batched (as torchvision; float16 is accumulated in float32).
    offset : array or Tensor, shape (N, 2 * offset_groups * kH * kW, H_out, W_out)
        The shift of every tap of every output, in pixels: channel ``2 (g kH kW + i kW + j)`` is
        ``Δy`` of tap ``(i, j)`` in offset group ``g``, the next channel ``Δx``. Finite.
        ``offset_groups`` is ``offset.shape[1] / (2 kH kW)``; each group of ``C_in / offset_groups``
        consecutive channels shares its offsets.
    weight : array or Tensor, shape (C_out, C_in / groups, kH, kW)
        The kernels; ``groups = C_in / weight.shape[1]`` as in a grouped convolution.
    bias : array or Tensor, shape (C_out,), optional
    stride, padding, dilation : int or (int, int)
        As for a convolution: tap ``(i, j)`` of output ``(h, w)`` sits at
        ``(h s_H - p_H + i d_H, w s_W - p_W + j d_W)`` before its offset; padding is symmetric.
    mask : array or Tensor, shape (N, offset_groups * kH * kW, H_out, W_out), optional
        The modulation of every tap of every output (DCN v2); None for the unmodulated op.

    All arrays have the dtype of ``x``.

    Returns
    -------
    y : array or Tensor, shape (N, C_out, H_out, W_out)
        ``H_out = floor((H + 2 p_H - d_H (kH - 1) - 1) / s_H) + 1``, likewise ``W_out``.

    Notes
    -----
    Forward. Tap :math:`t = (i, j)` of output :math:`(h, w)`, for the channels of offset group
    :math:`g`, samples at

    .. math:: y_t = h s_H - p_H + i d_H + \Delta y_{n,g,t,h,w}, \qquad
              x_t = w s_W - p_W + j d_W + \Delta x_{n,g,t,h,w}

    (rounded to the dtype of ``x``, as torchvision computes it), and

    .. math:: \mathrm{out}_{n,o,h,w} = b_o + \sum_{c \in \mathrm{group}(o)} \sum_t W_{o,c,t}\;
              m_{n,g(c),t,h,w}\; f_{n,c}(y_t, x_t), \qquad
              f(y, x) = \sum_{q} w_q(y, x)\, x_q

    where :math:`f` is bilinear interpolation of the image padded with zeros: the four corners
    :math:`q` of the point with weights :math:`(1 - t_y)(1 - t_x), (1 - t_y) t_x, t_y (1 - t_x),
    t_y t_x`, a corner outside the image reading 0, and a point outside
    :math:`(-1, H) \times (-1, W)` reading nothing (exactly 0, even next to a NaN); :math:`m = 1`
    without a mask (:func:`poolref._sampling_torchvision.zero_padded_bilinear`).

    Backward, with :math:`g = \partial L / \partial \mathrm{out}` and the columns' gradient
    :math:`\gamma_{n,c,t,h,w} = \sum_o W_{o,c,t}\, g_{n,o,h,w}` (over the outputs of the group):

    .. math::

        \frac{\partial L}{\partial b_o} &= \sum_{n,h,w} g_{n,o,h,w}, \qquad
        \frac{\partial L}{\partial W_{o,c,t}} = \sum_{n,h,w} g_{n,o,h,w}\, m\, f_{n,c}(y_t, x_t) \\
        \frac{\partial L}{\partial m_{n,g,t,h,w}} &= \sum_{c \in g} \gamma_{n,c,t,h,w}\, f_{n,c}(y_t, x_t), \qquad
        \frac{\partial L}{\partial x_{n,c,q}} = \sum_{t,h,w} m\, \gamma_{n,c,t,h,w}\, w_q(y_t, x_t) \\
        \frac{\partial L}{\partial \Delta y_{n,g,t,h,w}} &= \sum_{c \in g} m\, \gamma_{n,c,t,h,w}\,
            \frac{\partial f_{n,c}}{\partial y}(y_t, x_t)

    and :math:`\Delta x` likewise with :math:`\partial f / \partial x`. The input's gradient is the
    transpose of the bilinear gather: each sample's gradient, times the corner's weight, is added to
    the corners near it (in the image, at distance < 1 along both axes). The slopes are
    torchvision's: :math:`\partial f/\partial y = t_x (x_{hh} - x_{lh}) + (1 - t_x)(x_{hl} - x_{ll})`
    from the corners in the image (0 elsewhere), the derivative from the right at an integer
    coordinate, where :math:`f` has a kink.

    NaN and infinities in ``x``, ``weight``, ``mask`` and the upstream gradient follow IEEE
    arithmetic, as in torchvision's kernels: a NaN pixel reaches every sample that reads it, weight 0
    included (a point on a pixel row reads the next row with weight 0), and the slopes of every
    sample next to it; the input's gradient skips the corners of weight 0. Offsets must be finite
    (torchvision converts ``floor`` of a NaN coordinate to an int, which C++ leaves undefined).
    Products and sums run in float32 for float16 input.

    Examples
    --------
    With zero offsets this is a convolution; an offset of one pixel down reads the next row:

    >>> import numpy as np, poolref
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> w = np.ones((1, 1, 1, 1))
    >>> offset = np.zeros((1, 2, 4, 4))
    >>> bool((poolref.deform_conv2d(x, offset, w) == x).all())
    True
    >>> offset[0, 0] = 1.0  # Δy = 1 for the one tap of every output
    >>> poolref.deform_conv2d(x, offset, w)[0, 0]
    array([[ 4.,  5.,  6.,  7.],
           [ 8.,  9., 10., 11.],
           [12., 13., 14., 15.],
           [ 0.,  0.,  0.,  0.]])

    Half a pixel to the right averages two columns; a mask of 0.5 halves the sample:

    >>> offset[0, 0], offset[0, 1] = 0.0, 0.5
    >>> poolref.deform_conv2d(x, offset, w, mask=np.full((1, 1, 4, 4), 0.5))[0, 0, 0]
    array([0.25, 0.75, 1.25, 0.75])
    """
    op = "deform_conv2d"
    x = _as_array(x)
    if x.ndim != 4:
        raise ValueError(f"{op}: x must have shape (N, C_in, H, W) (batched, as torchvision.ops.deform_conv2d), "
                         f"got x with shape {tuple(x.shape)}")
    if numpy.dtype(x.dtype) not in [numpy.dtype(d) for d in FLOAT_DTYPES]:
        raise TypeError(f"{op}: x must be a float16, float32 or float64 array, got x with dtype {numpy.dtype(x.dtype)}")
    if min(x.shape[1:]) < 1:
        raise ValueError(f"{op}: x must have channels and non-empty spatial dimensions, got x with shape {tuple(x.shape)}")
    offset = check_like_x(offset, "offset", 4, "(N, 2 * offset_groups * kH * kW, H_out, W_out)", x, op)
    weight = check_like_x(weight, "weight", 4, "(C_out, C_in / groups, kH, kW)", x, op)
    if bias is not None:
        bias = check_like_x(bias, "bias", 1, "(C_out,)", x, op)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"{op}: bias must have shape ({weight.shape[0]},), one entry per output channel, "
                             f"got bias with shape {tuple(bias.shape)}")
    if mask is not None:
        mask = check_like_x(mask, "mask", 4, "(N, offset_groups * kH * kW, H_out, W_out)", x, op)
    geometry = _deform_geometry(x, offset, weight, mask, stride, padding, dilation, op)
    values = offset.data if isinstance(offset, Tensor) else offset
    finite = array_module(values).isfinite(values)
    if not bool(finite.all()):
        raise ValueError(f"{op}: offset must be finite, got offset with {int((~finite).sum())} NaN or infinite entries")
    return apply(DEFORM_CONV2D, x, offset, weight, bias, mask, geometry=geometry)
