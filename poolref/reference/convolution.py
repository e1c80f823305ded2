r"""Plain-loop reference for 2-D convolution (strided, padded, dilated, grouped), forward and backward.

The executable specification of :func:`poolref.ops.convolution.conv2d`. Every output element, every
input channel of its group and every kernel tap is visited by an ordinary Python loop, with the same
tap rule as pooling (:mod:`poolref.reference.window`): output ``(h, w)`` reads input row
``h*s_H - p_H + i*d_H`` and column ``w*s_W - p_W + j*d_W`` for tap ``(i, j)``. A tap outside the
input reads the padding: with ``padding_mode="zeros"`` a zero, multiplied like any value read (as
PyTorch's padding is zeros that enter the products: an infinite or NaN weight over padding makes the
output NaN, and a NaN or infinite upstream gradient makes that weight's gradient NaN); with
``"reflect"``, ``"replicate"`` or ``"circular"`` the input cell that
:func:`poolref.reference.padding.source_position` names, whose gradient that tap then receives.
Output channel ``o`` reads the input channels of its group only: with ``G`` groups,
``C_in / G`` channels per group, channels ``g C_in/G .. (g+1) C_in/G - 1`` for ``o`` in group
``g = o // (C_out / G)``. Meant for tiny arrays in tests; nothing is validated.

Arrays are batched, ``x`` (N, C_in, H, W) and ``weight`` (C_out, C_in / groups, kH, kW); ``stride``,
``pad_begin``, ``pad_end`` and ``dilation`` are pairs of ints (already resolved).
"""

from __future__ import annotations

import numpy

from ._ieee import ieee
from .padding import source_position
from .window import output_length

__all__ = ["conv2d_reference", "conv2d_backward_reference"]


def _output_shape(x_shape, weight_shape, stride, pad_begin, pad_end, dilation):
    return tuple(
        output_length(L, k, s, pb, pe, d, False)
        for L, k, s, pb, pe, d in zip(x_shape[2:], weight_shape[2:], stride, pad_begin, pad_end, dilation)
    )


def _read_position(row, column, height, width, padding_mode):
    """The input cell that tap position ``(row, column)`` reads, or None where it reads a padding zero."""
    source_row = source_position(row, height, padding_mode)
    source_column = source_position(column, width, padding_mode)
    return None if source_row is None or source_column is None else (source_row, source_column)


@ieee
def conv2d_reference(x, weight, bias=None, stride=(1, 1), pad_begin=(0, 0), pad_end=(0, 0), dilation=(1, 1),
                     groups=1, padding_mode="zeros"):
    r"""Convolution by loops: :math:`y_{n,o,h,w} = b_o + \sum_{c \in \mathrm{group}(o),i,j} W_{o,c,i,j}\, x_{n,c,hs-p+id,\,ws-p+jd}`.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, H, W)
    weight : ndarray, shape (C_out, C_in / groups, kH, kW)
    bias : ndarray, shape (C_out,), optional
    stride, pad_begin, pad_end, dilation : (int, int)
    groups : int
    padding_mode : "zeros", "reflect", "replicate" or "circular"

    Returns
    -------
    ndarray, shape (N, C_out, H_out, W_out), dtype of ``x``
        Sums are taken in Python floats (float64).

    Examples
    --------
    >>> import numpy as np
    >>> conv2d_reference(np.arange(9.).reshape(1, 1, 3, 3), np.ones((1, 1, 2, 2)))
    array([[[[ 8., 12.],
             [20., 24.]]]])
    """
    n_batch, _, height, width = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    h_out, w_out = _output_shape(x.shape, weight.shape, stride, pad_begin, pad_end, dilation)
    y = numpy.zeros((n_batch, c_out, h_out, w_out), dtype=x.dtype)
    for n in range(n_batch):
        for o in range(c_out):
            first_channel = (o // (c_out // groups)) * c_per_group  # the first input channel of o's group
            for h in range(h_out):
                for w in range(w_out):
                    total = 0.0 if bias is None else float(bias[o])
                    for c in range(c_per_group):
                        for i in range(kh):
                            row = h * stride[0] - pad_begin[0] + i * dilation[0]
                            for j in range(kw):
                                column = w * stride[1] - pad_begin[1] + j * dilation[1]
                                cell = _read_position(row, column, height, width, padding_mode)
                                value = 0.0 if cell is None else float(x[(n, first_channel + c) + cell])
                                total += float(weight[o, c, i, j]) * value  # a padding zero is multiplied too
                    y[n, o, h, w] = total
    return y


@ieee
def conv2d_backward_reference(
    grad_y, x, weight, stride=(1, 1), pad_begin=(0, 0), pad_end=(0, 0), dilation=(1, 1), has_bias=True,
    groups=1, padding_mode="zeros",
):
    r"""Gradients of :func:`conv2d_reference` by the same loops: each multiply-add of the forward,
    ``y[n,o,h,w] += W[o,c,i,j] * x[n,c,row,col]``, sends ``g * x`` to the weight and ``g * W`` to the
    input cell read (the padding's source cell for reflect, replicate and circular padding; nothing
    for a padding zero); the bias receives every ``g`` of its channel.

    Returns
    -------
    (grad_x, grad_weight, grad_bias)
        Shaped like ``x``, ``weight`` and (C_out,); ``grad_bias`` is None without a bias.

    Examples
    --------
    >>> import numpy as np
    >>> gx, gw, gb = conv2d_backward_reference(np.ones((1, 1, 2, 2)), np.arange(9.).reshape(1, 1, 3, 3),
    ...                                        np.ones((1, 1, 2, 2)))
    >>> gx[0, 0]  # how many windows read each input element
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> gw[0, 0], gb
    (array([[ 8., 12.],
           [20., 24.]]), array([4.]))
    """
    n_batch, _, height, width = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    h_out, w_out = grad_y.shape[2:]
    grad_x = numpy.zeros(x.shape, dtype=numpy.float64)
    grad_weight = numpy.zeros(weight.shape, dtype=numpy.float64)
    grad_bias = numpy.zeros(c_out, dtype=numpy.float64)
    for n in range(n_batch):
        for o in range(c_out):
            first_channel = (o // (c_out // groups)) * c_per_group
            for h in range(h_out):
                for w in range(w_out):
                    g = float(grad_y[n, o, h, w])
                    grad_bias[o] += g
                    for c in range(c_per_group):
                        for i in range(kh):
                            row = h * stride[0] - pad_begin[0] + i * dilation[0]
                            for j in range(kw):
                                column = w * stride[1] - pad_begin[1] + j * dilation[1]
                                cell = _read_position(row, column, height, width, padding_mode)
                                if cell is not None:
                                    at = (n, first_channel + c) + cell
                                    grad_weight[o, c, i, j] += g * float(x[at])
                                    grad_x[at] += g * float(weight[o, c, i, j])
                                else:  # the padding zero was multiplied too; its gradient is dropped
                                    grad_weight[o, c, i, j] += g * 0.0
    return (
        grad_x.astype(x.dtype),
        grad_weight.astype(weight.dtype),
        grad_bias.astype(weight.dtype) if has_bias else None,
    )
