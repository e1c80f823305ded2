r"""Spatial pyramid pooling (He et al. 2014, SPPnet): a fixed-length vector from any input size.

Each pyramid level is an existing pooling op (adaptive, or windowed with SPPnet's windows), so its
forward and backward are that op's; this module adds only the concatenation of the levels
(:data:`poolref.autograd.arithmetic.concat`, whose backward is the split).
"""

from __future__ import annotations

import math
import numbers

from ..._checks import check_element_count, check_pool_input
from ..._geometry import pool_geometry
from ...autograd.arithmetic import concat
from ...autograd.function import apply
from ..adaptive import ADAPTIVE_AVG_POOL, ADAPTIVE_MAX_POOL
from ..window import AVG_POOL, MAX_POOL

__all__ = ["spatial_pyramid_pool2d"]


def _sppnet_geometry(spatial, n, op):
    """He et al.'s window ``ceil(L/n)`` and stride ``floor(L/n)``, checked to give ``n`` windows."""
    kernel = tuple(-(-L // n) for L in spatial)
    stride = tuple(L // n for L in spatial)
    for L, k, s in zip(spatial, kernel, stride):
        if s == 0 or (L - k) // s + 1 != n:
            raise ValueError(
                f"{op}: binning='sppnet' (window ceil(L/n) = {k}, stride floor(L/n) = {s}) gives "
                f"{0 if s == 0 else (L - k) // s + 1} windows, not n = {n}, on an axis of length L = {L}; "
                f"it needs L >= n and L mod n <= L div n (use binning='adaptive'), got levels with n={n} for x with spatial shape {tuple(spatial)}"
            )
    return pool_geometry(spatial, kernel, stride, 0, 1, False, "torch", op)


def spatial_pyramid_pool2d(x, levels=(1, 2, 4), mode="max", *, binning="adaptive"):
    r"""Spatial pyramid pooling (He et al. 2014, SPPnet): a fixed-length vector from any input size.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Feature map (integer dtypes allowed with ``mode="max"``).
    levels : sequence of int
        Bins per side of each pyramid level.
    mode : {"max", "avg"}
    binning : {"adaptive", "sppnet"}
        ``"adaptive"``: adaptive pooling's bins ``[floor(iL/n), ceil((i+1)L/n))`` (what PyTorch ports
        use); ``"sppnet"``: the paper's windows of ``ceil(L/n)`` with stride ``floor(L/n)``, which
        yield exactly ``n`` windows only when ``L mod n <= L div n`` (else a ValueError).

    Returns
    -------
    y : array or Tensor, shape (N, C * sum(n * n)) or (C * sum(n * n),)
        Levels in the order given; each level's (N, C, n, n) map flattened channel-major (channel,
        then bin row, then bin column), as SPPnet's Caffe model and common PyTorch ports flatten it.

    Notes
    -----
    Each level is :func:`~poolref.adaptive_max_pool2d` / :func:`~poolref.adaptive_avg_pool2d`
    (``"adaptive"``) or :func:`~poolref.max_pool2d` / :func:`~poolref.avg_pool2d` with kernel
    ``ceil(L/n)`` and stride ``floor(L/n)`` (``"sppnet"``), so ties, NaN and gradients are theirs:

    .. math:: y = \big[\operatorname{vec}(P_{n_1}(x)),\ \operatorname{vec}(P_{n_2}(x)),\ \dots\big], \qquad
              \frac{\partial L}{\partial x} = \sum_\ell P_{n_\ell}^{*}\big(\tfrac{\partial L}{\partial y}\big|_\ell\big)

    where :math:`P^*` is each level's backward (scatter to the argmax, or spread over the bin) applied
    to that level's slice of the output gradient. In average mode a NaN or an infinity stays in the
    bins that hold it, forward and backward (:math:`+\infty` with :math:`-\infty` gives NaN), as in
    PyTorch's ``adaptive_avg_pool2d``.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> poolref.spatial_pyramid_pool2d(x, levels=(1, 2))
    array([[15.,  5.,  7., 13., 15.]])
    >>> poolref.spatial_pyramid_pool2d(x, levels=(1, 2), mode="avg")
    array([[ 7.5,  2.5,  4.5, 10.5, 12.5]])
    """
    op = "spatial_pyramid_pool2d"
    if not isinstance(mode, str) or mode not in ("max", "avg"):
        raise ValueError(f"{op}: mode must be 'max' or 'avg', got mode={mode!r}")
    if not isinstance(binning, str) or binning not in ("adaptive", "sppnet"):
        raise ValueError(f"{op}: binning must be 'adaptive' or 'sppnet', got binning={binning!r}")
    if isinstance(levels, numbers.Integral) and not isinstance(levels, bool):
        levels = (levels,)
    if (not isinstance(levels, (tuple, list)) or not levels
            or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0 for n in levels)):
        raise ValueError(f"{op}: levels must be a non-empty sequence of positive ints, got levels={levels!r}")
    x = check_pool_input(x, 2, op, integer_ok=mode == "max")
    # the output (N, C * sum(l*l)) is sized from levels: refuse an absurd one before allocating
    check_element_count(math.prod(x.shape[:-2]) * sum(int(v) ** 2 for v in levels), "levels", levels, op)
    lead = tuple(x.shape[:-3])  # (N,) or ()
    spatial = tuple(x.shape[-2:])
    parts = []
    for n in (int(v) for v in levels):
        if binning == "adaptive":
            function = ADAPTIVE_MAX_POOL if mode == "max" else ADAPTIVE_AVG_POOL
            pooled = apply(function, x, output_size=(n, n))
        else:
            geometry = _sppnet_geometry(spatial, n, op)
            if mode == "max":
                pooled = apply(MAX_POOL, x, geometry=geometry, with_indices=False)
            else:
                pooled = apply(AVG_POOL, x, geometry=geometry, count_padding=True, divisor_override=None)
        if isinstance(pooled, tuple):  # adaptive max returns (values, indices)
            pooled = pooled[0]
        # (N, C*n*n): channel, then bin row, bin column (the length spelled out, not -1, which an
        # empty batch cannot resolve)
        parts.append(pooled.reshape(lead + (math.prod(pooled.shape[len(lead):]),)))
    return apply(concat, *parts, axis=-1)  # backward: the split of the gradient into the levels
