r"""Plain-loop reference for deformable convolution (v1 and the modulated v2), forward and backward.

The executable specification of :func:`poolref.ops.deform_conv.deform_conv2d`, written as
torchvision's CPU kernels (``deform_conv2d_kernel.cpp``) compute it, statement by statement, in
Python floats (float64): ``deformable_im2col`` (every channel, tap and output samples the input
bilinearly at its shifted point, times the mask), the matrix product with the weights per group,
``deformable_col2im`` (the input's gradient, to the pixels within distance < 1 of each point) and
``deformable_col2im_coord`` (the gradients of the offsets and the mask, through
``get_coordinate_weight``). Only the sampling point itself is rounded to the input's dtype, as the
kernels store it as ``scalar_t``. Meant for tiny arrays in tests; nothing is validated.

Arrays are batched: ``x`` (N, C, H, W), ``offset`` (N, 2 G kh kw, H_out, W_out), ``weight``
(C_out, C / groups, kh, kw), ``mask`` (N, G kh kw, H_out, W_out) or None; ``stride``, ``padding``
and ``dilation`` are pairs of ints. The groups and offset groups ``G`` come from the shapes.
"""

from __future__ import annotations

import math

import numpy

from ._ieee import ieee

__all__ = ["bilinear_interpolate", "coordinate_weight", "deform_conv2d_reference", "deform_conv2d_backward_reference"]


def bilinear_interpolate(plane, y: float, x: float) -> float:
    r"""torchvision's ``bilinear_interpolate`` of deformable convolution: the value of ``plane`` (H, W)
    at ``(y, x)``, 0 outside :math:`(-1, H) \times (-1, W)`, a corner outside the image reading 0.

    >>> plane = numpy.arange(9.0).reshape(3, 3)
    >>> bilinear_interpolate(plane, 0.5, 1.5), bilinear_interpolate(plane, -0.5, 0.0), bilinear_interpolate(plane, -1.0, 0.0)
    (3.0, 0.0, 0.0)
    """
    H, W = plane.shape
    y, x = float(y), float(x)  # Python floats: IEEE arithmetic, no numpy warnings
    if y <= -1 or H <= y or x <= -1 or W <= x:
        return 0.0
    y_low, x_low = math.floor(y), math.floor(x)
    y_high, x_high = y_low + 1, x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    v1 = float(plane[y_low, x_low]) if y_low >= 0 and x_low >= 0 else 0.0
    v2 = float(plane[y_low, x_high]) if y_low >= 0 and x_high <= W - 1 else 0.0
    v3 = float(plane[y_high, x_low]) if y_high <= H - 1 and x_low >= 0 else 0.0
    v4 = float(plane[y_high, x_high]) if y_high <= H - 1 and x_high <= W - 1 else 0.0
    return hy * hx * v1 + hy * lx * v2 + ly * hx * v3 + ly * lx * v4


def coordinate_weight(plane, y: float, x: float, along_y: bool) -> float:
    r"""torchvision's ``get_coordinate_weight``: the derivative of :func:`bilinear_interpolate` along
    y (or x) at ``(y, x)``, from the corners in the image (whether or not the point is inside).

    >>> ramp = 10.0 * numpy.arange(3.0)[:, None] + numpy.arange(3.0)  # 10 y + x
    >>> coordinate_weight(ramp, 0.5, 0.25, True), coordinate_weight(ramp, 0.5, 0.25, False)
    (10.0, 1.0)
    >>> coordinate_weight(ramp, 2.5, 0.0, True)  # the last row falls to the zero padding below it
    -20.0
    """
    H, W = plane.shape
    y, x = float(y), float(x)
    y_low, x_low = math.floor(y), math.floor(x)
    y_high, x_high = y_low + 1, x_low + 1

    def value(row, col):
        return float(plane[row, col]) if 0 <= row < H and 0 <= col < W else 0.0

    v_yx, v_yX, v_Yx, v_YX = value(y_low, x_low), value(y_low, x_high), value(y_high, x_low), value(y_high, x_high)
    if along_y:
        dx = x - x_low
        return dx * (v_YX - v_yX) + (1 - dx) * (v_Yx - v_yx)
    dy = y - y_low
    return dy * (v_YX - v_Yx) + (1 - dy) * (v_yX - v_yx)


def _shapes(x, offset, weight, stride, padding, dilation):
    N, C, H, W = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    h_out = (H + 2 * padding[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    w_out = (W + 2 * padding[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    offset_groups = offset.shape[1] // (2 * kh * kw)
    return N, C, H, W, c_out, c_per_group, kh, kw, h_out, w_out, C // c_per_group, offset_groups


def _point(x, offset, mask, n, c, i, j, h, w, kh, kw, stride, padding, dilation, offset_groups, dtype):
    """The sampling point ``(y, x)`` of channel ``c``, tap ``(i, j)``, output ``(h, w)``, and its mask."""
    group = c // (x.shape[1] // offset_groups)
    tap = group * kh * kw + i * kw + j
    to = numpy.dtype(dtype).type
    # torchvision: scalar_t y = (out_y * stride_h - pad_h) + i * dilation_h + offset_h, in x's dtype
    y = float(to(h * stride[0] - padding[0] + i * dilation[0]) + to(offset[n, 2 * tap, h, w]))
    x_ = float(to(w * stride[1] - padding[1] + j * dilation[1]) + to(offset[n, 2 * tap + 1, h, w]))
    m = 1.0 if mask is None else float(mask[n, tap, h, w])
    return y, x_, m, 2 * tap, tap


def _columns(x, offset, mask, stride, padding, dilation, kh, kw, h_out, w_out, offset_groups, dtype):
    """``deformable_im2col``: (N, C, kh, kw, H_out, W_out) samples, times the mask."""
    N, C = x.shape[:2]
    columns = numpy.zeros((N, C, kh, kw, h_out, w_out))
    for n in range(N):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    for h in range(h_out):
                        for w in range(w_out):
                            y, x_, m, _, _ = _point(x, offset, mask, n, c, i, j, h, w, kh, kw, stride, padding, dilation,
                                                    offset_groups, dtype)
                            columns[n, c, i, j, h, w] = m * bilinear_interpolate(x[n, c], y, x_)
    return columns


@ieee
def deform_conv2d_reference(x, offset, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), mask=None,
                            coordinate_dtype=None):
    r"""Deformable convolution by loops: sample, modulate, then a grouped convolution of the samples.

    Parameters
    ----------
    x, offset, weight, bias, mask : ndarray
        As for :func:`poolref.deform_conv2d` (batched).
    stride, padding, dilation : (int, int)
    coordinate_dtype : numpy dtype, optional
        The dtype the sampling points are rounded to: that of ``x`` unless given (so that a float16
        case run on float64 copies of its arrays samples where the float16 op does).

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out), dtype of ``x``

    Examples
    --------
    >>> x = numpy.arange(9.0).reshape(1, 1, 3, 3)
    >>> offset = numpy.zeros((1, 2, 3, 3)); offset[0, 1] = 0.5  # half a pixel right
    >>> deform_conv2d_reference(x, offset, numpy.ones((1, 1, 1, 1)))[0, 0]
    array([[0.5, 1.5, 1. ],
           [3.5, 4.5, 2.5],
           [6.5, 7.5, 4. ]])
    """
    N, C, H, W, c_out, c_per_group, kh, kw, h_out, w_out, groups, offset_groups = _shapes(x, offset, weight, stride, padding, dilation)
    dtype = x.dtype if coordinate_dtype is None else coordinate_dtype
    columns = _columns(x, offset, mask, stride, padding, dilation, kh, kw, h_out, w_out, offset_groups, dtype)
    out_per_group = c_out // groups
    y = numpy.zeros((N, c_out, h_out, w_out), dtype=x.dtype)
    for n in range(N):
        for o in range(c_out):
            first = (o // out_per_group) * c_per_group  # the group's first input channel
            for h in range(h_out):
                for w in range(w_out):
                    total = 0.0
                    for c in range(c_per_group):
                        for i in range(kh):
                            for j in range(kw):
                                total += float(weight[o, c, i, j]) * columns[n, first + c, i, j, h, w]
                    y[n, o, h, w] = total + (0.0 if bias is None else float(bias[o]))
    return y


@ieee
def deform_conv2d_backward_reference(grad_y, x, offset, weight, stride=(1, 1), padding=(0, 0), dilation=(1, 1), mask=None,
                                     has_bias=True, coordinate_dtype=None):
    r"""Gradients of :func:`deform_conv2d_reference` by torchvision's backward loops.

    The columns' gradient is ``weight^T @ grad_y`` per group; then ``deformable_col2im`` sends
    ``mask * w * gcol`` to every pixel within distance < 1 of the point along both axes, ``w`` =
    ``(1 - |y - y_p|)(1 - |x - x_p|)``; ``deformable_col2im_coord`` gives each offset
    ``mask * get_coordinate_weight * gcol`` summed over the group's channels, and the mask
    ``gcol * bilinear_interpolate``; the weight gets ``grad_y`` times the columns, the bias the sum
    of ``grad_y``.

    Returns
    -------
    (grad_x, grad_offset, grad_weight, grad_bias, grad_mask)
        Shaped like the inputs; ``grad_bias`` None without a bias, ``grad_mask`` None without a mask.

    Examples
    --------
    >>> x = numpy.arange(9.0).reshape(1, 1, 3, 3)  # a ramp 3 y + x
    >>> offset = numpy.full((1, 2, 3, 3), 0.25)
    >>> gx, goff, gw, gb, gm = deform_conv2d_backward_reference(numpy.ones((1, 1, 3, 3)), x, offset, numpy.ones((1, 1, 1, 1)))
    >>> goff[0, :, 0, 0].tolist(), gb.tolist()  # the ramp's slopes along y and x
    ([3.0, 1.0], [9.0])
    """
    N, C, H, W, c_out, c_per_group, kh, kw, h_out, w_out, groups, offset_groups = _shapes(x, offset, weight, stride, padding, dilation)
    dtype = x.dtype if coordinate_dtype is None else coordinate_dtype
    out_per_group = c_out // groups
    columns = _columns(x, offset, mask, stride, padding, dilation, kh, kw, h_out, w_out, offset_groups, dtype)
    grad_columns = numpy.zeros_like(columns)
    grad_weight = numpy.zeros(weight.shape)
    grad_bias = numpy.zeros(c_out)
    for n in range(N):
        for o in range(c_out):
            first = (o // out_per_group) * c_per_group
            for h in range(h_out):
                for w in range(w_out):
                    g = float(grad_y[n, o, h, w])
                    grad_bias[o] += g
                    for c in range(c_per_group):
                        for i in range(kh):
                            for j in range(kw):
                                grad_columns[n, first + c, i, j, h, w] += float(weight[o, c, i, j]) * g
                                grad_weight[o, c, i, j] += g * columns[n, first + c, i, j, h, w]
    grad_x = numpy.zeros(x.shape)
    grad_offset = numpy.zeros(offset.shape)
    grad_mask = None if mask is None else numpy.zeros(mask.shape)
    for n in range(N):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    for h in range(h_out):
                        for w in range(w_out):
                            y, x_, m, dy_channel, tap = _point(x, offset, mask, n, c, i, j, h, w, kh, kw, stride, padding,
                                                               dilation, offset_groups, dtype)
                            gcol = grad_columns[n, c, i, j, h, w]
                            # deformable_col2im: the pixels within distance < 1 (int() truncates, as C's cast)
                            for row in range(int(y) - 1, int(y) + 2):
                                for col in range(int(x_) - 1, int(x_) + 2):
                                    if 0 <= row < H and 0 <= col < W and abs(y - row) < 1 and abs(x_ - col) < 1:
                                        weight_q = (1 - abs(y - row)) * (1 - abs(x_ - col))
                                        grad_x[n, c, row, col] += m * weight_q * gcol
                            # deformable_col2im_coord
                            plane = x[n, c]
                            grad_offset[n, dy_channel, h, w] += m * coordinate_weight(plane, y, x_, True) * gcol
                            grad_offset[n, dy_channel + 1, h, w] += m * coordinate_weight(plane, y, x_, False) * gcol
                            if mask is not None:
                                grad_mask[n, tap, h, w] += gcol * bilinear_interpolate(plane, y, x_)
    return (
        grad_x.astype(x.dtype),
        grad_offset.astype(offset.dtype),
        grad_weight.astype(weight.dtype),
        grad_bias.astype(weight.dtype) if has_bias else None,
        None if mask is None else grad_mask.astype(mask.dtype),
    )
