r"""Plain-loop reference for blur pooling and max-blur pooling (kornia's definitions), forward and backward.

The executable specification of :func:`poolref.ops.blur.blur_pool2d` and
:func:`poolref.ops.blur.max_blur_pool2d`. The 2-D binomial kernel is written out in full,
:math:`K_{ij} = \binom{k-1}{i}\binom{k-1}{j} / 4^{k-1}` (the vectorised code filters one axis at a
time), and every output element and every tap is visited by an ordinary Python loop: output
``(h, w)`` reads input row ``h*s_H - (k-1)//2 + i`` and column ``w*s_W - (k-1)//2 + j``, and a tap
outside the input reads zero (kornia's zero padding). Sums are taken in Python floats (float64),
starting at +0.0 as a convolution's do. Max-blur pooling is max pooling's own loop reference
(:func:`poolref.reference.window.max_pool_reference`, stride 1, no padding) followed by the blur.
Meant for tiny arrays in tests; nothing is validated.

Arrays are batched, (N, C, H, W); ``stride`` is a pair of ints.
"""

from __future__ import annotations

import math

import numpy

from ._ieee import ieee
from .window import max_pool_backward_reference, max_pool_reference

__all__ = [
    "binomial_kernel_2d", "blur_pool_reference", "blur_pool_backward_reference",
    "max_blur_pool_reference", "max_blur_pool_backward_reference",
]


def binomial_kernel_2d(kernel_size: int) -> numpy.ndarray:
    r"""(k, k) float64: :math:`\binom{k-1}{i}\binom{k-1}{j} / 4^{k-1}`, which sums to 1.

    >>> binomial_kernel_2d(3) * 16
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    k = kernel_size
    return numpy.array([[math.comb(k - 1, i) * math.comb(k - 1, j) / 4 ** (k - 1) for j in range(k)] for i in range(k)])


def _blurred_shape(shape, stride):
    """(N, C, ceil(H / s_H), ceil(W / s_W))."""
    return tuple(shape[:2]) + tuple(-(-L // s) for L, s in zip(shape[2:], stride))


def _taps(h, w, kernel_size, stride):
    """Every tap ``(i, j, row, column)`` of output ``(h, w)``, padding included (row-major order)."""
    before = (kernel_size - 1) // 2
    for i in range(kernel_size):
        for j in range(kernel_size):
            yield i, j, h * stride[0] - before + i, w * stride[1] - before + j


@ieee
def blur_pool_reference(x, kernel_size, stride=(2, 2)):
    r"""Blur pooling by loops: :math:`y_{hw} = \sum_{i,j} K_{ij}\, x_{h s - p + i,\, w s - p + j}`,
    :math:`p = \lfloor (k-1)/2 \rfloor`, zero outside the input.

    Returns
    -------
    ndarray, shape (N, C, ceil(H / s_H), ceil(W / s_W)), dtype of ``x``

    Examples
    --------
    >>> import numpy as np
    >>> blur_pool_reference(np.eye(5)[None, None], 3)[0, 0]
    array([[0.3125, 0.0625, 0.    ],
           [0.0625, 0.375 , 0.0625],
           [0.    , 0.0625, 0.3125]])
    """
    kernel = binomial_kernel_2d(kernel_size)
    n_batch, channels, height, width = x.shape
    y = numpy.zeros(_blurred_shape(x.shape, stride), dtype=x.dtype)
    for n in range(n_batch):
        for c in range(channels):
            for h in range(y.shape[2]):
                for w in range(y.shape[3]):
                    total = 0.0
                    for i, j, row, column in _taps(h, w, kernel_size, stride):
                        if 0 <= row < height and 0 <= column < width:  # padding reads zero: adds nothing
                            total += float(kernel[i, j]) * float(x[n, c, row, column])
                    y[n, c, h, w] = total
    return y


@ieee
def blur_pool_backward_reference(grad_y, input_shape, kernel_size, stride=(2, 2), dtype=None):
    r"""Gradient of :func:`blur_pool_reference` by the same loops: each multiply-add
    ``y[h, w] += K[i, j] * x[row, column]`` sends ``K[i, j] * g[h, w]`` back to ``x[row, column]``;
    what the padding would receive is dropped.

    Returns
    -------
    ndarray of ``input_shape``, dtype ``dtype`` (default: that of ``grad_y``)

    Examples
    --------
    >>> import numpy as np
    >>> blur_pool_backward_reference(np.ones((1, 1, 2, 2)), (1, 1, 4, 4), 2)[0, 0] * 4
    array([[1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.],
           [1., 1., 1., 1.]])
    """
    kernel = binomial_kernel_2d(kernel_size)
    height, width = input_shape[2:]
    grad_x = numpy.zeros(input_shape, dtype=numpy.float64)
    for n in range(grad_y.shape[0]):
        for c in range(grad_y.shape[1]):
            for h in range(grad_y.shape[2]):
                for w in range(grad_y.shape[3]):
                    g = float(grad_y[n, c, h, w])
                    for i, j, row, column in _taps(h, w, kernel_size, stride):
                        if 0 <= row < height and 0 <= column < width:
                            grad_x[n, c, row, column] += float(kernel[i, j]) * g
    return grad_x.astype(dtype or grad_y.dtype)


def _max_step(x, max_pool_size):
    """Max pooling's loop reference at stride 1 without padding: (values, indices)."""
    return max_pool_reference(x, tuple(max_pool_size), (1, 1), (0, 0), (0, 0), (1, 1), False)


@ieee
def max_blur_pool_reference(x, kernel_size, stride=(2, 2), max_pool_size=(2, 2)):
    r"""Max-blur pooling by loops: :func:`blur_pool_reference` of the stride-1 max pool.

    Examples
    --------
    >>> import numpy as np
    >>> max_blur_pool_reference(np.eye(5)[None, None], 3)[0, 0]
    array([[0.5625, 0.3125],
           [0.3125, 0.875 ]])
    """
    pooled, _ = _max_step(x, max_pool_size)
    return blur_pool_reference(pooled, kernel_size, stride)


@ieee
def max_blur_pool_backward_reference(grad_y, x, kernel_size, stride=(2, 2), max_pool_size=(2, 2)):
    r"""Gradient of :func:`max_blur_pool_reference`: the blur's transpose (in float64), then max
    pooling's scatter onto each window's argmax, rounded once to ``x``'s dtype."""
    pooled, indices = _max_step(x, max_pool_size)
    grad_pooled = blur_pool_backward_reference(grad_y, pooled.shape, kernel_size, stride, dtype=numpy.float64)
    return max_pool_backward_reference(grad_pooled, indices, x.shape).astype(x.dtype)
