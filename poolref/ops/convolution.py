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
from .._checks import accumulation_dtype, cast_back, check_like_x, check_pool_input, is_int
from .._geometry import WindowGeometry, as_int_tuple, axis_windows, check_padded_plane, check_window_tables, resolve_padding
from .._windows import check_padding_mode, check_pads_fit_mode, pad_with_mode, pad_with_mode_adjoint
from ..autograd.function import apply, define_function

__all__ = ["conv2d"]


class Conv2dSaved(NamedTuple):
    columns: object  # (C_in, kH, kW, N, H_out, W_out) input patches (im2col), in the accumulation dtype
    weight: object  # (C_out, C_in / groups, kH, kW), in the accumulation dtype
    geometry: WindowGeometry
    groups: int
    padding_mode: str  # what fills the padding: zeros, reflect, replicate or circular
    unbatched: bool  # the input was (C, H, W): the gradient drops the batch axis again
    has_bias: bool
    x_dtype: numpy.dtype
    weight_dtype: numpy.dtype


def _conv2d_forward(x, weight, bias, *, geometry: WindowGeometry, groups: int, padding_mode: str):
    xp = array_module(x, weight, bias)
    accumulate = accumulation_dtype(x.dtype)  # float16 multiplies and adds in float32
    unbatched = x.ndim == 3
    batched = x[None] if unbatched else x  # (N, C_in, H, W)
    n = batched.shape[0]
    c_out, c_per_group, kh, kw = weight.shape
    c_in = c_per_group * groups
    h_out, w_out = geometry.out_shape

    # Channels before batch: one tap's patches of every image then form one contiguous block of the
    # column matrix, and the matrix product below needs no transposed copy.
    channels_first = xp.moveaxis(batched, 1, 0).astype(accumulate, copy=False)  # (C_in, N, H, W)
    # (C_in, N, H + pads, W + pads): zeros, or copies of the input's own cells (reflect, replicate, circular)
    padded = pad_with_mode(channels_first, geometry.pad_widths, padding_mode)
    columns = xp.empty((c_in, kh, kw, n, h_out, w_out), dtype=accumulate)
    for i, j in geometry.tap_offsets():
        # tap (i, j) of every window: a strided view (C_in, N, H_out, W_out) of the padded input
        columns[:, i, j] = padded[(Ellipsis,) + geometry.tap_slices((i, j))]

    # Groups: output channel o of group g reads the C_in / groups input channels of group g only,
    # so the product is one (C_out/G, C_in/G * kH*kW) @ (C_in/G * kH*kW, N*H_out*W_out) per group.
    # Input channels come first in the columns: group g's rows are one contiguous block.
    weight_matrix = weight.astype(accumulate, copy=False).reshape(groups, c_out // groups, c_per_group * kh * kw)
    column_matrix = columns.reshape(groups, c_per_group * kh * kw, n * h_out * w_out)
    # NaN and infinities follow IEEE arithmetic, silently: a NaN reaches exactly the outputs whose
    # window reads it (with any weight, 0 included), and a padding zero times an infinite weight is
    # NaN, as in PyTorch, whose padding is zeros that are multiplied too
    with numpy.errstate(invalid="ignore", over="ignore"):
        y = (weight_matrix @ column_matrix).reshape(c_out, n, h_out, w_out)  # (G, C_out/G, N*H_out*W_out)
        if bias is not None:
            y = y + bias.astype(accumulate, copy=False)[:, None, None, None]
    y = cast_back(xp.ascontiguousarray(xp.moveaxis(y, 0, 1)), x.dtype)  # (N, C_out, H_out, W_out)
    saved = Conv2dSaved(columns, weight.astype(accumulate, copy=False), geometry, groups, padding_mode, unbatched,
                        bias is not None, x.dtype, weight.dtype)
    return (y[0] if unbatched else y), saved


# forward   y[n, o, h, w] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] x_pad[n, c, h s_h + i d_h, w s_w + j d_w]
# backward  grad_b[o] = sum g[n, o, h, w];  grad_W = g @ columns^T per group;
#           grad_x_pad = the columns' adjoint (col2im) of W^T @ g per group;
#           grad_x = the padding's adjoint of grad_x_pad (zeros: the padding dropped; reflect, replicate,
#           circular: each padding cell's gradient added onto the input cell it copies)
def _conv2d_backward(saved: Conv2dSaved, grad_y):
    xp = array_module(grad_y)
    geometry, groups = saved.geometry, saved.groups
    c_in, kh, kw, n, h_out, w_out = saved.columns.shape
    c_out, c_per_group = saved.weight.shape[:2]
    accumulate = saved.columns.dtype
    g = grad_y[None] if saved.unbatched else grad_y  # (N, C_out, H_out, W_out)
    g = xp.moveaxis(g.astype(accumulate, copy=False), 1, 0).reshape(groups, c_out // groups, n * h_out * w_out)

    # Within group G: y[n, o, p] = b[o] + sum_k W[o, k] columns[k, n, p], with k = (c, i, j) over the
    # group's channels and p = (h, w), so
    #   dL/db[o]       = sum_{n, p} g[o, n, p]
    #   dL/dW[o, k]    = sum_{n, p} g[o, n, p] columns[k, n, p]        (g @ columns^T)
    #   dL/dcolumns[k] = sum_{o in G} W[o, k] g[o, n, p]               (W^T @ g)
    with numpy.errstate(invalid="ignore", over="ignore"):  # IEEE on NaN and infinities, as the forward
        grad_bias = cast_back(g.sum(axis=2).reshape(c_out), saved.x_dtype) if saved.has_bias else None
        column_matrix = saved.columns.reshape(groups, c_per_group * kh * kw, n * h_out * w_out)
        grad_weight = g @ xp.swapaxes(column_matrix, 1, 2)  # (G, C_out/G, C_in/G * kH*kW)
        grad_weight = cast_back(grad_weight.reshape(saved.weight.shape), saved.weight_dtype)
        weight_matrix = saved.weight.reshape(groups, c_out // groups, c_per_group * kh * kw)
        grad_columns = (xp.swapaxes(weight_matrix, 1, 2) @ g).reshape(c_in, kh, kw, n, h_out, w_out)

        # col2im, the transpose of the forward's gather: every tap's column goes back to the padded
        # input positions it was read from. Windows overlap when the stride is below the dilated
        # kernel, so the taps add into one buffer.
        grad_padded = xp.zeros((c_in, n) + geometry.padded_shape, dtype=accumulate)
        for i, j in geometry.tap_offsets():
            view = grad_padded[(Ellipsis,) + geometry.tap_slices((i, j))]  # (C_in, N, H_out, W_out)
            xp.add(view, grad_columns[:, i, j], out=view)
    # Then the padding's adjoint: zeros drops what lands in the padding (a NaN gradient that reaches
    # only padding positions reaches no input element); reflect, replicate and circular add it onto
    # the input cells the padding copied.
    grad_x = pad_with_mode_adjoint(grad_padded, geometry.pad_widths, saved.padding_mode)  # (C_in, N, H, W)
    grad_x = xp.moveaxis(grad_x, 0, 1)
    grad_x = cast_back(xp.ascontiguousarray(grad_x[0] if saved.unbatched else grad_x), saved.x_dtype)
    return grad_x, grad_weight, grad_bias


CONV2D = define_function("conv2d", _conv2d_forward, _conv2d_backward)


# ==================================================================================================
# Argument checks
# ==================================================================================================
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
    check_window_tables(spatial, kernel, stride, pads, dilation, kernel, padding, op)  # absurd padding: refused at once
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
    geometry = WindowGeometry(axes)
    check_padded_plane(geometry, spatial, kernel, padding, op)
    return geometry


def _check_groups(groups, x_shape, weight_shape, op: str) -> int:
    """``groups`` as an int that divides both channel counts, with ``weight`` holding C_in / groups channels."""
    if not is_int(groups):
        raise TypeError(f"{op}: groups must be a positive int, got groups={groups!r}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got groups={groups}")
    c_in, c_out = x_shape[-3], weight_shape[0]
    if c_in % groups:
        raise ValueError(f"{op}: groups must divide the C_in = {c_in} input channels of x (shape {tuple(x_shape)}), "
                         f"got groups={groups}")
    if weight_shape[1] * groups != c_in:
        wanted = f"C_in = {c_in}" if groups == 1 else f"C_in / groups = {c_in} / {groups} = {c_in // groups}"
        raise ValueError(f"{op}: weight must have {wanted} input channels (x with shape {tuple(x_shape)}), "
                         f"got weight with shape {tuple(weight_shape)}")
    if c_out % groups:
        raise ValueError(f"{op}: groups must divide the C_out = {c_out} output channels of weight (shape "
                         f"{tuple(weight_shape)}), got groups={groups}")
    return groups


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, padding_mode="zeros"):
    r"""2-D convolution (cross-correlation, as in every deep learning framework): strided, dilated,
    grouped, with any of PyTorch's padding modes.

    With a stride above 1 this is the *strided convolution* that the All-CNN (Springenberg et al.
    2015) uses instead of pooling: the same downsampling as a pooling window, with learned weights.
    With ``groups = C_in`` (and one kernel per channel) it is a *depthwise* convolution, a pooling
    window with learned per-channel weights; with a dilation it is DeepLab's *atrous* convolution.

    Parameters
    ----------
    x : array or Tensor, shape (N, C_in, H, W) or (C_in, H, W)
        Floating-point input (float16 is accumulated in float32).
    weight : array or Tensor, shape (C_out, C_in / groups, kH, kW)
        The kernels, of the dtype of ``x``.
    bias : array or Tensor, shape (C_out,), optional
        Added to every output position of its channel.
    stride : int or (int, int)
        Step ``s`` between windows.
    padding : int, (int, int), ((int, int), (int, int)), "valid" or "same"
        Cells added around the input: symmetric, per axis, or per-axis ``(begin, end)``; ``"valid"``
        none; ``"same"`` (stride 1 only, as PyTorch) keeps the size, with a total of
        :math:`d (k - 1)` per axis split as PyTorch does, :math:`\lfloor d(k-1)/2 \rfloor` before and
        the rest (one more when the total is odd) after.
    dilation : int or (int, int)
        Spacing ``d`` between the taps of a kernel.
    groups : int
        Input and output channels are split into ``groups`` consecutive blocks; output block ``g``
        reads input block ``g`` only. Divides ``C_in`` and ``C_out``.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, keyword-only
        What the padding holds, as ``torch.nn.Conv2d``'s ``padding_mode``: zeros; the input mirrored
        about its edge cell (``c b | a b c | b a``, each pad below the input length); the edge cell
        repeated (``a a | a b c | c c``); the input wrapped around (``b c | a b c | a b``, each pad at
        most the input length).

    Returns
    -------
    y : array or Tensor, shape (N, C_out, H_out, W_out) or (C_out, H_out, W_out)
        ``H_out = floor((H + p_begin + p_end - d(kH - 1) - 1)/s) + 1``, the output size of pooling.

    Notes
    -----
    Forward, for output channel :math:`o` in group :math:`g(o) = \lfloor o G / C_{out} \rfloor` and
    position :math:`(h, w)`, with :math:`\tilde x` the padded input:

    .. math:: y_{n,o,h,w} = b_o + \sum_{c=0}^{C_{in}/G-1} \sum_{i=0}^{k_H-1} \sum_{j=0}^{k_W-1}
              W_{o,c,i,j}\; \tilde x_{n,\, g(o) C_{in}/G + c,\; h s_H - p_H + i d_H,\; w s_W - p_W + j d_W}

    where :math:`\tilde x_{n,c,u,v} = x_{n,c,\sigma(u),\sigma(v)}` and :math:`\sigma` maps a padded
    position to the input cell it copies (:math:`\sigma(u) = u` inside; reflect :math:`-u` and
    :math:`2(H-1) - u`; replicate the nearest edge; circular :math:`u \bmod H`), or to a zero with
    ``padding_mode="zeros"``.

    Backward, with :math:`g = \partial L / \partial y`:

    .. math::

        \frac{\partial L}{\partial b_o} &= \sum_{n,h,w} g_{n,o,h,w} \\
        \frac{\partial L}{\partial W_{o,c,i,j}} &= \sum_{n,h,w} g_{n,o,h,w}\;
            \tilde x_{n,\, g(o) C_{in}/G + c,\; h s_H - p_H + i d_H,\; w s_W - p_W + j d_W} \\
        \frac{\partial L}{\partial \tilde x_{n,c,u,v}} &= \sum_{o \in \mathrm{group}(c)} \sum_{i,j}
            \sum_{(h,w):\; h s_H - p_H + i d_H = u,\; w s_W - p_W + j d_W = v} g_{n,o,h,w}\, W_{o,c',i,j} \\
        \frac{\partial L}{\partial x_{n,c,a,b}} &= \sum_{(u,v):\; \sigma(u) = a,\; \sigma(v) = b}
            \frac{\partial L}{\partial \tilde x_{n,c,u,v}}

    (:math:`c'` the index of :math:`c` within its group). The gradient of the padded input is a
    *transposed convolution*: each output's gradient is scattered back, through the kernel, onto the
    positions its window read. The last line is the padding's adjoint: zeros drop what lands in the
    padding; reflect, replicate and circular add each padding cell's gradient onto the input cell it
    copies (:func:`poolref._windows.pad_with_mode_adjoint`).

    NaN and infinities follow IEEE arithmetic, as in ``torch.nn.functional.conv2d``: a NaN (or an
    infinity) in ``x`` reaches exactly the outputs whose window reads it or a copy of it, whatever
    the weight (:math:`0 \cdot \mathrm{NaN}` is NaN), and no output of another group; zero padding
    is zeros that enter the products like any value read, so a NaN or infinite weight over the
    padding gives NaN there; backward, an upstream NaN reaches every input its window read and every
    weight of its group, and what lands in zero padding is dropped. Products and sums run in float32
    for float16 input; a result beyond the dtype's range is :math:`\pm\infty`.

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

    Depthwise (``groups = C_in``): each channel has its own kernel, here a sum of three neighbours
    along the row, the row padded by reflection (``x[1] | x[0] x[1] x[2] | x[1]``):

    >>> two = np.array([[[[1., 2., 4.]], [[10., 20., 40.]]]])  # (N, C, H, W) = (1, 2, 1, 3)
    >>> conv2d(two, np.ones((2, 1, 1, 3)), padding=(0, 1), groups=2, padding_mode="reflect")
    array([[[[ 5.,  7.,  8.]],
    <BLANKLINE>
            [[50., 70., 80.]]]])
    """
    op = "conv2d"
    x = check_pool_input(x, 2, op, integer_ok=False)
    weight = check_like_x(weight, "weight", 4, "(C_out, C_in / groups, kH, kW)", x, op)
    if any(s < 1 for s in weight.shape):
        raise ValueError(f"{op}: weight must have non-empty axes, got weight with shape {tuple(weight.shape)}")
    groups = _check_groups(groups, x.shape, weight.shape, op)
    if bias is not None:
        bias = check_like_x(bias, "bias", 1, f"(C_out,) = ({weight.shape[0]},)", x, op)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(
                f"{op}: bias must have shape ({weight.shape[0]},), one entry per output channel, "
                f"got bias with shape {tuple(bias.shape)}"
            )
    padding_mode = check_padding_mode(padding_mode, op)
    geometry = _conv2d_geometry(x.shape, weight.shape, stride, padding, dilation, op)
    check_pads_fit_mode(x.shape[-2:], geometry.pad_widths, padding_mode, op, x.shape)
    return apply(CONV2D, x, weight, bias, geometry=geometry, groups=groups, padding_mode=padding_mode)
