r"""Plain-loop reference of spatial pyramid pooling (He et al. 2014), forward and backward."""

from __future__ import annotations

import itertools
import math

import numpy

from .._ieee import ieee
from ..adaptive import adaptive_bin
from .boxes import result_dtype

__all__ = ["spatial_pyramid_bins", "spatial_pyramid_pool_reference", "spatial_pyramid_pool_backward_reference"]


def spatial_pyramid_bins(length, n, binning):
    r"""The ``n`` bins ``[start, end)`` of one pyramid level along an axis of ``length``.

    ``"adaptive"``: adaptive pooling's bins ``[floor(iL/n), ceil((i+1)L/n))``. ``"sppnet"``: He et al.'s
    windows, size ``ceil(L/n)`` and stride ``floor(L/n)``, which give exactly ``n`` windows only when
    ``L mod n <= L div n`` (the caller checks that).

    >>> spatial_pyramid_bins(13, 4, "adaptive")
    [(0, 4), (3, 7), (6, 10), (9, 13)]
    >>> spatial_pyramid_bins(13, 4, "sppnet")
    [(0, 4), (3, 7), (6, 10), (9, 13)]
    >>> spatial_pyramid_bins(10, 3, "sppnet")
    [(0, 4), (3, 7), (6, 10)]
    """
    if binning == "adaptive":
        return [adaptive_bin(i, length, n) for i in range(n)]
    window, stride = -(-length // n), length // n
    return [(i * stride, i * stride + window) for i in range(n)]


@ieee
def spatial_pyramid_pool_reference(x, levels, mode="max", binning="adaptive"):
    r"""Spatial pyramid pooling (He et al. 2014): every level pooled, flattened and concatenated.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    levels : sequence of int
        Bins per side of each level.
    mode : {"max", "avg"}
    binning : {"adaptive", "sppnet"}

    Returns
    -------
    y : ndarray, shape (N, C * sum(n * n))
        Level by level (in the order given); within a level channel-major, then bin row, then bin
        column (a (N, C, n, n) map flattened), as SPPnet's Caffe model and common PyTorch ports do.

    Notes
    -----
    Max takes ``val > best or isnan(val)`` in row-major order from :math:`-\infty` (PyTorch's max
    pooling rule: first of ties, a NaN wins); avg is the bin mean. Backward
    (:func:`spatial_pyramid_pool_backward_reference`): the argmax gets the gradient, or every bin
    element gets ``g / |bin|``.

    Examples
    --------
    >>> spatial_pyramid_pool_reference(numpy.arange(16.).reshape(1, 1, 4, 4), (1, 2)).tolist()
    [[15.0, 5.0, 7.0, 13.0, 15.0]]
    """
    x = numpy.asarray(x)
    N, C, H, W = x.shape
    columns = []
    for n in levels:
        rows, cols = spatial_pyramid_bins(H, n, binning), spatial_pyramid_bins(W, n, binning)
        level = numpy.zeros((N, C, n, n), dtype=numpy.float64)
        for b, c, i, j in itertools.product(range(N), range(C), range(n), range(n)):
            cells = [float(x[b, c, h, w]) for h in range(*rows[i]) for w in range(*cols[j])]
            if mode == "avg":
                level[b, c, i, j] = sum(cells) / len(cells)
            else:
                best = -math.inf
                for v in cells:
                    if v > best or math.isnan(v):
                        best = v
                level[b, c, i, j] = best
        columns.append(level.reshape(N, C * n * n))
    return numpy.concatenate(columns, axis=1).astype(result_dtype(x.dtype))


@ieee
def spatial_pyramid_pool_backward_reference(grad_y, x, levels, mode="max", binning="adaptive"):
    r"""Gradient of :func:`spatial_pyramid_pool_reference` with respect to ``x``.

    Each level's slice of ``grad_y`` flows back through that level's pooling: to the argmax (max) or
    spread evenly over the bin (avg); levels add up.

    >>> g = spatial_pyramid_pool_backward_reference(numpy.ones((1, 5)), numpy.arange(16.).reshape(1, 1, 4, 4), (1, 2))
    >>> g[0, 0].tolist()
    [[0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 2.0]]
    """
    x = numpy.asarray(x)
    N, C, H, W = x.shape
    grad_x = numpy.zeros(x.shape, dtype=numpy.float64)
    column = 0
    for n in levels:
        rows, cols = spatial_pyramid_bins(H, n, binning), spatial_pyramid_bins(W, n, binning)
        for b, c, i, j in itertools.product(range(N), range(C), range(n), range(n)):
            g = float(grad_y[b, column + (c * n + i) * n + j])
            cells = [(h, w) for h in range(*rows[i]) for w in range(*cols[j])]
            if mode == "avg":
                for h, w in cells:
                    grad_x[b, c, h, w] += g / len(cells)
            else:
                best, where = -math.inf, cells[0]
                for h, w in cells:
                    v = float(x[b, c, h, w])
                    if v > best or math.isnan(v):
                        best, where = v, (h, w)
                grad_x[(b, c) + where] += g
        column += C * n * n
    return grad_x.astype(result_dtype(numpy.asarray(grad_y).dtype))
