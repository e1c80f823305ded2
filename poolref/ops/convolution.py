r"""Strided 2-D convolution: the learned downsampling that can replace pooling (All-CNN).

Springenberg et al. (2015, "Striving for Simplicity: The All Convolutional Net") observed that a
pooling layer is a fixed, per-channel, window-wise function with a stride, and that a convolution with
the same stride does the same downsampling with *learned* weights that also mix channels. A 2x2
average pool is exactly a stride-2 convolution whose kernel is 1/4 on the diagonal channel pairs and
0 elsewhere; letting the network learn that kernel gave All-CNN its accuracy without any pooling.

The windows of a convolution are the windows of pooling: output ``o`` reads the taps
``o*s - p_begin + m*d``. So the geometry comes from :mod:`poolref._geometry` (``axis_windows`` and
``WindowGeometry``) like every windowed op, without pooling's padding rules (a convolution may pad by
more than half its kernel).

The vectorised code is *im2col*: for each kernel tap (a loop over ``kH*kW`` taps, never over pixels,
batch or channels) the strided view of the padded input that holds that tap for every window is
copied into a column matrix, and one matrix product with the weights does all the multiply-adds.
The backward uses the same matrix: the weight gradient is a product with it, and the input gradient
is the transpose of the gather (*col2im*: each tap's column is added back into the padded input).
The plain-loop reference in :mod:`poolref.reference.convolution` is the specification it is tested
against.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from .._backend import array_module
from .._checks import FLOAT_DTYPES, accumulation_dtype, as_array, cast_back, check_pool_input
from .._geometry import WindowGeometry, as_int_tuple, axis_windows, resolve_padding
from .._windows import crop_padding, pad_for_windows
from ..autograd.function import apply, define_function

__all__ = ["conv2d"]


class Conv2dSaved(NamedTuple):
    columns: object  # (C_in, kH, kW, N, H_out, W_out) input patches (im2col), in the accumulation dtype
    weight: object  # (C_out, C_in, kH, kW), in the accumulation dtype
    geometry: WindowGeometry
    unbatched: bool  # the input was (C, H, W): the gradient drops the batch axis again
    has_bias: bool
    x_dtype: numpy.dtype
    weight_dtype: numpy.dtype


def _padded_shape(geometry: WindowGeometry) -> tuple[int, ...]:
    return tuple(L + b + e for L, (b, e) in zip(geometry.in_shape, geometry.pad_widths))


def _conv2d_forward(x, weight, bias, *, geometry: WindowGeometry):
    xp = array_module(x, weight, bias)
    accumulate = accumulation_dtype(x.dtype)  # float16 multiplies and adds in float32
    unbatched = x.ndim == 3
    batched = x[None] if unbatched else x  # (N, C_in, H, W)
    n = batched.shape[0]
    c_out, c_in, kh, kw = weight.shape
    h_out, w_out = geometry.out_shape

    # Channels before batch: one tap's patches of every image then form one contiguous block of the
    # column matrix, and the matrix product below needs no transposed copy.
    channels_first = xp.moveaxis(batched, 1, 0).astype(accumulate, copy=False)  # (C_in, N, H, W)
    padded = pad_for_windows(channels_first, geometry, 0)  # (C_in, N, H + pads, W + pads); padding reads as zero
    columns = xp.empty((c_in, kh, kw, n, h_out, w_out), dtype=accumulate)
    for i, j in geometry.tap_offsets():
        # tap (i, j) of every window: a strided view (C_in, N, H_out, W_out) of the padded input
        columns[:, i, j] = padded[(Ellipsis,) + geometry.tap_slices((i, j))]

    weight_matrix = weight.astype(accumulate, copy=False).reshape(c_out, c_in * kh * kw)
    # NaN and infinities follow IEEE arithmetic, silently: a NaN reaches exactly the outputs whose
    # window reads it (with any weight, 0 included), and a padding zero times an infinite weight is
    # NaN, as in PyTorch, whose padding is zeros that are multiplied too
    with numpy.errstate(invalid="ignore", over="ignore"):
        y = weight_matrix @ columns.reshape(c_in * kh * kw, n * h_out * w_out)  # (C_out, N*H_out*W_out)
        y = y.reshape(c_out, n, h_out, w_out)
        if bias is not None:
            y = y + bias.astype(accumulate, copy=False)[:, None, None, None]
    y = cast_back(xp.ascontiguousarray(xp.moveaxis(y, 0, 1)), x.dtype)  # (N, C_out, H_out, W_out)
    saved = Conv2dSaved(
        columns, weight.astype(accumulate, copy=False), geometry, unbatched, bias is not None, x.dtype, weight.dtype
    )
    return (y[0] if unbatched else y), saved


# forward   y[n, o, h, w] = b[o] + sum_{c,i,j} W[o, c, i, j] x_pad[n, c, h s_h + i d_h, w s_w + j d_w]
# backward  grad_b[o] = sum g[n, o, h, w];  grad_W = g @ columns^T;
#           grad_x = the columns' adjoint (col2im) of W^T @ g, padding dropped
def _conv2d_backward(saved: Conv2dSaved, grad_y):
    xp = array_module(grad_y)
    geometry = saved.geometry
    c_in, kh, kw, n, h_out, w_out = saved.columns.shape
    c_out = saved.weight.shape[0]
    accumulate = saved.columns.dtype
    g = grad_y[None] if saved.unbatched else grad_y  # (N, C_out, H_out, W_out)
    g = xp.moveaxis(g.astype(accumulate, copy=False), 1, 0).reshape(c_out, n * h_out * w_out)

    # y[n, o, p] = b[o] + sum_k W[o, k] columns[k, n, p], with k = (c, i, j) and p = (h, w), so
    #   dL/db[o]       = sum_{n, p} g[o, n, p]
    #   dL/dW[o, k]    = sum_{n, p} g[o, n, p] columns[k, n, p]        (g @ columns^T)
    #   dL/dcolumns[k] = sum_o W[o, k] g[o, n, p]                      (W^T @ g)
    with numpy.errstate(invalid="ignore", over="ignore"):  # IEEE on NaN and infinities, as the forward
        grad_bias = cast_back(g.sum(axis=1), saved.x_dtype) if saved.has_bias else None
        columns = saved.columns.reshape(c_in * kh * kw, n * h_out * w_out)
        grad_weight = cast_back((g @ columns.T).reshape(saved.weight.shape), saved.weight_dtype)
        grad_columns = (saved.weight.reshape(c_out, c_in * kh * kw).T @ g).reshape(c_in, kh, kw, n, h_out, w_out)

        # col2im, the transpose of the forward's gather: every tap's column goes back to the input
        # positions it was read from. Windows overlap when the stride is below the dilated kernel,
        # so the taps add into one buffer; what lands in the padding is cropped away (a NaN
        # gradient that reaches only padding positions reaches no input element).
        grad_padded = xp.zeros((c_in, n) + _padded_shape(geometry), dtype=accumulate)
        for i, j in geometry.tap_offsets():
            view = grad_padded[(Ellipsis,) + geometry.tap_slices((i, j))]  # (C_in, N, H_out, W_out)
            xp.add(view, grad_columns[:, i, j], out=view)
    grad_x = xp.moveaxis(crop_padding(grad_padded, geometry), 0, 1)  # (N, C_in, H, W)
    grad_x = cast_back(xp.ascontiguousarray(grad_x[0] if saved.unbatched else grad_x), saved.x_dtype)
    return grad_x, grad_weight, grad_bias


CONV2D = define_function("conv2d", _conv2d_forward, _conv2d_backward)


# ==================================================================================================
# Argument checks
# ==================================================================================================
def _check_parameter(value, name: str, ndim: int, layout: str, x, op: str):
    """A float array or Tensor with ``ndim`` axes and the dtype of ``x``."""
    value = as_array(value)
    if value.ndim != ndim:
        raise ValueError(f"{op}: {name} must have shape {layout}, got {name} with shape {tuple(value.shape)}")
    dtype = numpy.dtype(value.dtype)
    if dtype not in [numpy.dtype(d) for d in FLOAT_DTYPES]:
        raise TypeError(f"{op}: {name} must be a float16, float32 or float64 array, got {name} with dtype {dtype}")
    if dtype != numpy.dtype(x.dtype):
        raise TypeError(
            f"{op}: {name} must have the dtype of x ({numpy.dtype(x.dtype)}), got {name} with dtype {dtype}"
        )
    return value


def _conv2d_geometry(x_shape, weight_shape, stride, padding, dilation, op: str) -> WindowGeometry:
    """Check stride, padding and dilation and return the windows of the convolution."""
    kernel = tuple(int(k) for k in weight_shape[2:])
    stride = as_int_tuple(stride, 2, "stride", op)
    dilation = as_int_tuple(dilation, 2, "dilation", op)
    for name, value in (("stride", stride), ("dilation", dilation)):
        if any(v <= 0 for v in value):
            raise ValueError(f"{op}: {name} must be positive, got {name}={value}")
    if isinstance(padding, str) and padding.lower() != "valid" and stride != (1, 1):
        # PyTorch: "padding='same' is not supported for strided convolutions"
        raise ValueError(f"{op}: padding={padding!r} needs stride 1, got stride={stride}")
    spatial = tuple(x_shape[-2:])
    pads = resolve_padding(padding, spatial, kernel, stride, dilation, op)
    axes = tuple(
        axis_windows(L, k, s, p, d, ceil_mode=False) for L, k, s, p, d in zip(spatial, kernel, stride, pads, dilation)
    )
    for axis in axes:
        if axis.out_length < 1:
            padded = tuple(L + b + e for L, (b, e) in zip(spatial, pads))
            span = tuple(a.effective_kernel for a in axes)
            raise ValueError(
                f"{op}: the kernel is larger than the padded input: weight with shape {tuple(weight_shape)} "
                f"and dilation={dilation} spans {span}, but x with shape {tuple(x_shape)} and "
                f"padding={padding!r} is {padded}"
            )
    return WindowGeometry(axes)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    r"""2-D convolution (cross-correlation, as in every deep learning framework), with stride.

    With a stride above 1 this is the *strided convolution* that the All-CNN (Springenberg et al.
    2015) uses instead of pooling: the same downsampling as a pooling window, with learned weights.

    Parameters
    ----------
    x : array or Tensor, shape (N, C_in, H, W) or (C_in, H, W)
        Floating-point input (float16 is accumulated in float32).
    weight : array or Tensor, shape (C_out, C_in, kH, kW)
        The kernels, of the dtype of ``x``.
    bias : array or Tensor, shape (C_out,), optional
        Added to every output position of its channel.
    stride : int or (int, int)
        Step ``s`` between windows.
    padding : int, (int, int), ((int, int), (int, int)), "valid" or "same"
        Zeros added around the input: symmetric, per axis, or per-axis ``(begin, end)``; ``"same"``
        (stride 1 only, as PyTorch) keeps the size, the odd padding cell at the end.
    dilation : int or (int, int)
        Spacing ``d`` between the taps of a kernel.

    Returns
    -------
    y : array or Tensor, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        ``H_out = floor((H + 2p - d(kH - 1) - 1)/s) + 1``, the output size of pooling.

    Notes
    -----
    Forward, for output channel :math:`o` and position :math:`(h, w)`, with the input zero-padded:

    .. math:: y_{n,o,h,w} = b_o + \sum_{c=0}^{C_{in}-1} \sum_{i=0}^{k_H-1} \sum_{j=0}^{k_W-1}
              W_{o,c,i,j}\; x_{n,\,c,\; h s_H - p_H + i d_H,\; w s_W - p_W + j d_W}

    Backward, with :math:`g = \partial L / \partial y`:

    .. math::

        \frac{\partial L}{\partial b_o} &= \sum_{n,h,w} g_{n,o,h,w} \\
        \frac{\partial L}{\partial W_{o,c,i,j}} &= \sum_{n,h,w} g_{n,o,h,w}\;
            x_{n,\,c,\; h s_H - p_H + i d_H,\; w s_W - p_W + j d_W} \\
        \frac{\partial L}{\partial x_{n,c,u,v}} &= \sum_{o,i,j} \sum_{(h,w):\; h s_H - p_H + i d_H = u,\;
            w s_W - p_W + j d_W = v} g_{n,o,h,w}\, W_{o,c,i,j}

    The input gradient is a *transposed convolution*: each output's gradient is scattered back, through
    the kernel, onto the input positions its window read (positions in the padding are dropped).

    NaN and infinities follow IEEE arithmetic, as in ``torch.nn.functional.conv2d``: a NaN (or an
    infinity) in ``x`` reaches exactly the outputs whose window reads it, whatever the weight
    (:math:`0 \cdot \mathrm{NaN}` is NaN); padding is zeros that enter the products like any value
    read, so a NaN or infinite weight over the padding gives NaN there; backward, an upstream NaN
    reaches every input its window read and every weight, and what lands in the padding is
    dropped. Products and sums run in float32 for float16 input; a result beyond the dtype's range
    is :math:`\pm\infty`.

    Examples
    --------
    A 2x2 average pool is the stride-2 convolution with kernel 1/4 (All-CNN's starting point):

    >>> import numpy as np, poolref
    >>> from poolref.ops.convolution import conv2d
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> conv2d(x, np.full((1, 1, 2, 2), 0.25), stride=2)
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    >>> poolref.avg_pool2d(x, 2)
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])

    A kernel ``x[h, w] - x[h+1, w+1]`` with a bias of 10, on the input padded by one zero each side
    (the window of output (1, 1) reads ``x[1, 1] = 5`` and ``x[2, 2] = 10``):

    >>> w = np.array([[[[1., 0.], [0., -1.]]]])
    >>> conv2d(x, w, np.array([10.]), stride=2, padding=1)
    array([[[[10.,  8., 10.],
             [ 2.,  5., 17.],
             [10., 23., 25.]]]])
    """
    op = "conv2d"
    x = check_pool_input(x, 2, op, integer_ok=False)
    weight = _check_parameter(weight, "weight", 4, "(C_out, C_in, kH, kW)", x, op)
    if any(s < 1 for s in weight.shape):
        raise ValueError(f"{op}: weight must have non-empty axes, got weight with shape {tuple(weight.shape)}")
    c_in = x.shape[-3]
    if weight.shape[1] != c_in:
        raise ValueError(
            f"{op}: weight must have C_in = {c_in} input channels (x with shape {tuple(x.shape)}), "
            f"got weight with shape {tuple(weight.shape)}"
        )
    if bias is not None:
        bias = _check_parameter(bias, "bias", 1, f"(C_out,) = ({weight.shape[0]},)", x, op)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(
                f"{op}: bias must have shape ({weight.shape[0]},), one entry per output channel, "
                f"got bias with shape {tuple(bias.shape)}"
            )
    geometry = _conv2d_geometry(x.shape, weight.shape, stride, padding, dilation, op)
    return apply(CONV2D, x, weight, bias, geometry=geometry)
