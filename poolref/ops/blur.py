r"""Anti-aliased downsampling: blur pooling and max-blur pooling (Zhang 2019), as kornia defines them.

Subsampling a signal every ``s`` samples folds every frequency above the new Nyquist limit back onto
a lower one (*aliasing*), so a strided max pool or a strided convolution changes its output when its
input moves by one pixel. Zhang (2019, "Making Convolutional Networks Shift-Invariant Again") low-pass
filters before subsampling: a *blur pool* is a binomial blur followed by sampling every ``stride``
pixels, and a *max-blur pool* first takes a dense (stride 1) max pool, then blur-pools it.

poolref follows ``kornia.filters.blur_pool2d`` and ``kornia.filters.max_blur_pool2d`` (kornia 0.9),
checked against kornia numerically (``tests/ops/test_blur.py``):

* the kernel is the normalised binomial (Pascal) kernel, the outer product of
  :math:`w_m = \binom{k-1}{m} / 2^{k-1}` with itself, square, of any size ``k >= 1``;
* the border is **zero**-padded, :math:`\lfloor (k-1)/2 \rfloor` before and :math:`\lfloor k/2
  \rfloor` after along each axis (so a constant map darkens at the border, and an even kernel leans
  one cell towards the end), and the output has :math:`\lceil L / s \rceil` cells, sampling from
  index 0; Zhang's own code (antialiased-cnns) reflects the border instead;
* max-blur pooling is ``blur_pool2d(max_pool2d(x, max_pool_size, stride=1), kernel_size, stride)``:
  the max pool has no padding, and the stride belongs to the blur.

The blur is a *separable depthwise* filter: each channel is filtered on its own, and the 2-D kernel
is an outer product, so the vectorised code filters along one axis at a time with the weighted
window sums of :mod:`poolref._windows` (``k`` strided multiply-adds per axis instead of ``k**2``).
Being linear, its backward is its transpose, the weighted window sum's adjoint. The max pool of
max-blur pooling is poolref's own (:data:`poolref.ops.window.MAX_POOL`), recorded on the tape as its
own node, so its backward is max pooling's scatter.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from .._checks import accumulation_dtype, cast_back, check_element_count, check_flag, check_pool_input
from .._geometry import WindowGeometry, as_int_tuple, axis_windows, pool_geometry
from .._running_max import TORCH
from .._windows import window_sum, window_sum_adjoint
from ..autograd.function import apply, define_function
from .window import MAX_POOL

__all__ = ["blur_pool2d", "max_blur_pool2d"]


def binomial_weights(kernel_size: int) -> tuple[float, ...]:
    r"""The normalised binomial (Pascal) weights :math:`w_m = \binom{k-1}{m} / 2^{k-1}` along one axis.

    Computed from exact integers and rounded once (kornia sums rows of Pascal's triangle in Python
    floats, which gives the same weights up to ``k = 58``). For every kernel a network uses they are
    exact binary fractions, in float16 as well.

    >>> binomial_weights(3)
    (0.25, 0.5, 0.25)
    >>> binomial_weights(4)
    (0.125, 0.375, 0.375, 0.125)
    """
    k = int(kernel_size)
    # C(k-1, m) = C(k-1, m-1) (k - m) / m, exactly, one row of Pascal's triangle in O(k) steps (a
    # math.comb per entry takes minutes for k = 10**4), each divided by 2^(k-1) with one rounding
    coefficients = [1]
    for m in range(1, k):
        coefficients.append(coefficients[-1] * (k - m) // m)
    return tuple(c / 2 ** (k - 1) for c in coefficients)


def blur_geometry(spatial_shape, kernel: int, stride: tuple[int, int]) -> WindowGeometry:
    """Where the blur's windows lie: ``k`` taps, ``(k - 1) // 2`` zeros before, ``k // 2`` after, every
    ``stride`` cells; the output has ``ceil(L / s)`` cells.

    >>> blur_geometry((5, 6), 4, (2, 2)).out_shape
    (3, 3)
    """
    return WindowGeometry(tuple(
        axis_windows(L, kernel, s, ((kernel - 1) // 2, kernel // 2), 1, ceil_mode=False)
        for L, s in zip(spatial_shape, stride)
    ))


# ==================================================================================================
# The blur: a separable, depthwise binomial filter, sampled every `stride` cells
# ==================================================================================================
class BlurPoolSaved(NamedTuple):
    geometry: WindowGeometry
    weights: tuple  # per axis the k binomial weights
    dtype: numpy.dtype  # the input's dtype, for the gradient


def _blur_pool_forward(x, *, geometry: WindowGeometry, weights: tuple):
    # y[.., o_h, o_w] = sum_{i, j} w_i w_j x_pad[.., o_h s_h + i, o_w s_w + j], one axis at a time:
    # first sum_j along W (.., H, W) -> (.., H, O_w), then sum_i along H -> (.., O_h, O_w)
    accumulate = accumulation_dtype(x.dtype)  # float16 multiplies and adds in float32
    y = window_sum(x.astype(accumulate, copy=False), geometry, weights=weights)  # (.., O_h, O_w), a new array
    # A convolution's sum starts at +0 (kornia's F.conv2d, every framework's), so a window of only
    # -0.0 gives +0.0; a sum that starts at its first term would give -0.0. Adding +0 changes nothing else.
    y += 0.0
    return cast_back(y, x.dtype), BlurPoolSaved(geometry, weights, x.dtype)


# forward   y[o_h, o_w] = sum_{i, j} w_i w_j x_pad[o_h s_h + i, o_w s_w + j]        (linear in x)
# backward  grad_x[h, w] = sum_{(o_h, i): o_h s_h + i = h + p_h} sum_{(o_w, j): ...} w_i w_j g[o_h, o_w],
#           the transpose: each output's gradient spread over its window with the same weights, the
#           padding's share dropped
def _blur_pool_backward(saved: BlurPoolSaved, grad_y):
    g = grad_y.astype(accumulation_dtype(saved.dtype), copy=False)  # NaN and infinities follow IEEE arithmetic
    return (cast_back(window_sum_adjoint(g, saved.geometry, weights=saved.weights), saved.dtype),)


BLUR_POOL = define_function("blur_pool", _blur_pool_forward, _blur_pool_backward)


# ==================================================================================================
# Argument checks
# ==================================================================================================
def _positive_pair(value, name: str, op: str) -> tuple[int, int]:
    pair = as_int_tuple(value, 2, name, op)
    if any(v <= 0 for v in pair):
        raise ValueError(f"{op}: {name} must be positive, got {name}={value!r}")
    return pair


def _blur_arguments(x, kernel_size, stride, op: str):
    """The checked input, the square kernel's size and the stride pair."""
    x = check_pool_input(x, 2, op, integer_ok=False)
    kernel = _positive_pair(kernel_size, "kernel_size", op)
    if kernel[0] != kernel[1]:
        raise ValueError(f"{op}: kernel_size must be square (kornia's binomial kernel is), got kernel_size={kernel_size!r}")
    # every plane is padded by k - 1 cells along each axis: refuse an absurd kernel before allocating
    H, W = x.shape[-2:]
    check_element_count((H + kernel[0] - 1) * (W + kernel[0] - 1) - H * W, "kernel_size", kernel_size, op,
                        "the padding of one plane of the input")
    return x, kernel[0], _positive_pair(stride, "stride", op)


def blur_pool2d(x, kernel_size, stride=2):
    r"""Blur pooling: a binomial blur, then every ``stride``-th pixel (kornia's ``blur_pool2d``).

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input (float16 is accumulated in float32). Each channel is filtered on its own.
    kernel_size : int or (int, int)
        Size ``k`` of the square binomial kernel, any ``k >= 1`` (1 samples without blurring; Zhang
        uses 2 to 7). A pair must repeat one size: kornia's kernel is square.
    stride : int or (int, int)
        Step ``s`` between the sampled pixels (kornia types it as an int; a pair is what its
        ``F.conv2d`` accepts too).

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)
        ``H_out = ceil(H / s)``, ``W_out = ceil(W / s)``.

    Notes
    -----
    With the binomial weights :math:`w_m = \binom{k-1}{m} / 2^{k-1}` (they sum to 1) and the input
    padded with :math:`p = \lfloor (k-1)/2 \rfloor` zeros before and :math:`\lfloor k/2 \rfloor`
    after each axis, the forward is

    .. math:: y_{o_h o_w} = \sum_{i=0}^{k-1}\sum_{j=0}^{k-1} w_i w_j\, x_{o_h s_h - p + i,\; o_w s_w - p + j}

    (terms outside the input are zero), and the backward its transpose, the same weights read the
    other way:

    .. math:: \frac{\partial L}{\partial x_{hw}} = \sum_{o_h, i \,:\, o_h s_h - p + i = h}\;
              \sum_{o_w, j \,:\, o_w s_w - p + j = w} w_i w_j \frac{\partial L}{\partial y_{o_h o_w}}

    Away from the border a constant map stays that constant; at the border the zero padding
    darkens it (kornia's convention; Zhang's antialiased-cnns reflects the border instead). For
    ``s = 2`` and ``k >= 2`` every interior input pixel receives exactly a quarter of a constant
    upstream gradient: each of the two phases of the binomial weights sums to 1/2.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.blur_pool2d(np.eye(5)[None, None], 3)  # kornia's example
    array([[[[0.3125, 0.0625, 0.    ],
             [0.0625, 0.375 , 0.0625],
             [0.    , 0.0625, 0.3125]]]])
    >>> poolref.blur_pool2d(np.ones((1, 4, 4)), 3, stride=1)  # zero padding darkens the border
    array([[[0.5625, 0.75  , 0.75  , 0.5625],
            [0.75  , 1.    , 1.    , 0.75  ],
            [0.75  , 1.    , 1.    , 0.75  ],
            [0.5625, 0.75  , 0.75  , 0.5625]]])
    """
    op = "blur_pool2d"
    x, kernel, stride = _blur_arguments(x, kernel_size, stride, op)
    weights = (binomial_weights(kernel),) * 2
    return apply(BLUR_POOL, x, geometry=blur_geometry(x.shape[-2:], kernel, stride), weights=weights)


def max_blur_pool2d(x, kernel_size, stride=2, max_pool_size=2, ceil_mode=None):
    r"""Max-blur pooling: a dense (stride 1) max pool, then blur pooling (kornia's ``max_blur_pool2d``).

    Zhang's *MaxBlurPool*: ``max_pool2d(x, k, stride=s)`` is evaluated as the max at stride 1, which
    does not alias, followed by an anti-aliased subsampling.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input (float16 is accumulated in float32 in the blur).
    kernel_size : int or (int, int)
        Size of the square binomial kernel, as for :func:`blur_pool2d`.
    stride : int or (int, int)
        Step of the blur's sampling (the max pool itself runs at stride 1).
    max_pool_size : int or (int, int)
        Window ``m`` of the max pool (no padding, stride 1); the input must be at least that large.
    ceil_mode : bool or None
        Kept for kornia's signature (kornia 0.9 deprecates it): it has no effect, because a max pool
        at stride 1 without padding has ``L - m + 1`` outputs whether its size is rounded down or up.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)
        ``H_out = ceil((H - m + 1) / s)``, and so for W.

    Notes
    -----
    Forward, with :math:`B_{k,s}` the blur pool of :func:`blur_pool2d`:

    .. math:: z_{hw} = \max_{0 \le a, b < m} x_{h+a,\, w+b}, \qquad y = B_{k,s}(z)

    The max follows PyTorch's rule (first of ties, a NaN wins). Backward, the chain rule through the
    two nodes the tape records: the blur's transpose, then max pooling's scatter of each
    :math:`\partial L / \partial z_{hw}` onto the argmax of its window,

    .. math:: \frac{\partial L}{\partial x_i} = \sum_{(h, w) \,:\, \operatorname{argmax}_{hw} = i} (B_{k,s}^{\mathsf T}\, \bar y)_{hw}

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.max_blur_pool2d(np.eye(5)[None, None], 3)  # kornia's example
    array([[[[0.5625, 0.3125],
             [0.3125, 0.875 ]]]])
    """
    op = "max_blur_pool2d"
    x, kernel, stride = _blur_arguments(x, kernel_size, stride, op)
    window = _positive_pair(max_pool_size, "max_pool_size", op)
    if ceil_mode is not None:
        check_flag(ceil_mode, "ceil_mode", op)
    if any(L < m for L, m in zip(x.shape[-2:], window)):
        raise ValueError(f"{op}: the input must be at least max_pool_size={max_pool_size!r} in H and W, "
                         f"got x with shape {tuple(x.shape)}")
    pooled_geometry = pool_geometry(x.shape[-2:], window, 1, 0, 1, False, "torch", op)
    pooled = apply(MAX_POOL, x, geometry=pooled_geometry, with_indices=False, rule=TORCH)  # (.., H - m + 1, W - m + 1)
    weights = (binomial_weights(kernel),) * 2
    return apply(BLUR_POOL, pooled, geometry=blur_geometry(pooled.shape[-2:], kernel, stride), weights=weights)
