"""Plain-loop DynOPool, step by step as docs/dynopool.rst ("The definition") writes it: one output cell, one
query point at a time."""

from __future__ import annotations

import math

import numpy

from .._running_max import TORCH, window_max

__all__ = ["dynopool_reference", "dynopool_backward_reference", "query_coordinate", "bilinear_read"]


def _out_length(length: int, alpha: float) -> int:
    return max(1, int(numpy.round(length / alpha)))  # round half to even, as numpy.round


def query_coordinate(i: int, a: int, length: int, out_length: int) -> float:
    """``u(i, a) = (i + 1/4 + a/2) * s - 1/2`` with ``s = length / out_length``."""
    return (i + 0.25 + 0.5 * a) * (length / out_length) - 0.5


def _taps(u: float, length: int):
    """The two pixels a clamped coordinate reads, the weight ``t`` of the second, and whether the slope is live.

    ``inside`` is False on or beyond the border (``u <= 0`` or ``u >= length - 1``), where the
    coordinate is clamped and the value does not depend on it.
    """
    clamped = min(max(u, 0.0), length - 1.0)
    low = int(math.floor(clamped))
    high = min(low + 1, length - 1)
    t = clamped - low
    inside = 0.0 < u < length - 1
    return low, high, t, inside


def _blend(a, b, t):
    """``(1 - t) a + t b``, and exactly ``a`` where ``t == 0``: a point on a pixel reads that pixel only
    (a NaN or infinity in ``b`` is then not multiplied by zero)."""
    return a if t == 0 else (1 - t) * a + t * b


def bilinear_read(plane, u: float, v: float):
    """Value of a 2-D plane at (u, v) and its partial derivatives (d/du, d/dv), border handling as docs/dynopool.rst.

    Rows are blended first, then columns (the array code's order), and a pixel of weight 0 is not read.
    The slopes are the forward differences ``x[high] - x[low]`` (whatever the weights), and exactly 0
    where the coordinate is clamped (on or beyond the border, the value does not depend on it).
    """
    H, W = plane.shape
    k0, k1, tu, inside_u = _taps(u, H)
    l0, l1, tv, inside_v = _taps(v, W)
    with numpy.errstate(invalid="ignore", over="ignore"):  # inf - inf, inf * 0.5: NaN, inf on purpose
        return _read(plane, k0, k1, tu, inside_u, l0, l1, tv, inside_v)


def _read(plane, k0, k1, tu, inside_u, l0, l1, tv, inside_v):
    at_low_column = _blend(plane[k0, l0], plane[k1, l0], tu)
    at_high_column = _blend(plane[k0, l1], plane[k1, l1], tu)
    value = _blend(at_low_column, at_high_column, tv)
    # d/du: the row slope at each column, blended along the columns
    slope_low_column = plane[k1, l0] - plane[k0, l0] if inside_u else 0.0
    slope_high_column = plane[k1, l1] - plane[k0, l1] if inside_u else 0.0
    d_du = _blend(slope_low_column, slope_high_column, tv)
    # d/dv: the column slope of the row blends
    d_dv = at_high_column - at_low_column if inside_v else 0.0
    return value, d_du, d_dv


def dynopool_reference(x, alpha, aggregate="max"):
    """Forward: ``x`` (N, C, H, W) float64, ``alpha`` (alpha_h, alpha_w) -> (N, C, H_out, W_out)."""
    N, C, H, W = x.shape
    Ho, Wo = _out_length(H, alpha[0]), _out_length(W, alpha[1])
    y = numpy.zeros((N, C, Ho, Wo))
    with numpy.errstate(invalid="ignore", over="ignore"):  # NaN and infinities flow through on purpose
        for n in range(N):
            for c in range(C):
                for i in range(Ho):
                    for j in range(Wo):
                        values = []
                        for a in (0, 1):
                            for b in (0, 1):
                                u, v = query_coordinate(i, a, H, Ho), query_coordinate(j, b, W, Wo)
                                values.append(bilinear_read(x[n, c], u, v)[0])
                        if aggregate == "max":
                            # PyTorch's running max (poolref._running_max.TORCH): first of ties, the last NaN
                            y[n, c, i, j], _ = window_max(TORCH, list(zip(values, range(4))))
                        else:
                            y[n, c, i, j] = (((values[0] + values[1]) + values[2]) + values[3]) / 4  # in order
    return y


def dynopool_backward_reference(grad_y, x, alpha, aggregate="max", grad_size=(0.0, 0.0)):
    """Backward: ``(grad_x, grad_alpha)`` for the upstream gradients of y and of the size (H_out, W_out)."""
    N, C, H, W = x.shape
    Ho, Wo = _out_length(H, alpha[0]), _out_length(W, alpha[1])
    grad_x = numpy.zeros_like(x, dtype=numpy.float64)
    grad_u_total = grad_v_total = 0.0  # sum of G * dq/du * du/ds over every point
    with numpy.errstate(invalid="ignore", over="ignore"):  # NaN and infinities flow through on purpose
        for n in range(N):
            for c in range(C):
                for i in range(Ho):
                    for j in range(Wo):
                        points = [(a, b) for a in (0, 1) for b in (0, 1)]
                        reads = [bilinear_read(x[n, c], query_coordinate(i, a, H, Ho), query_coordinate(j, b, W, Wo))
                                 for a, b in points]
                        if aggregate == "max":
                            _, chosen = window_max(TORCH, [(value, p) for p, (value, _, _) in enumerate(reads)])
                            receivers = {chosen: 1.0}  # the chosen point takes the whole gradient
                        else:
                            receivers = {p: 0.25 for p in range(4)}
                        for p, share in receivers.items():
                            (a, b), (_, d_du, d_dv) = points[p], reads[p]
                            g = grad_y[n, c, i, j] * share
                            u, v = query_coordinate(i, a, H, Ho), query_coordinate(j, b, W, Wo)
                            k0, k1, tu, _ = _taps(u, H)
                            l0, l1, tv, _ = _taps(v, W)
                            # to the pixels the point read (weight not 0), with the weights it read them with
                            for k, wu in ((k0, 1 - tu), (k1, tu)):
                                for l, wv in ((l0, 1 - tv), (l1, tv)):
                                    if wu != 0 and wv != 0:
                                        grad_x[n, c, k, l] += g * (wu * wv)
                            grad_u_total += g * d_du * (i + 0.25 + 0.5 * a)
                            grad_v_total += g * d_dv * (j + 0.25 + 0.5 * b)
    # chain rule through the cell size s = L / O with the straight-through O
    d_sh = H**2 / (Ho**2 * alpha[0] ** 2)
    d_sw = W**2 / (Wo**2 * alpha[1] ** 2)
    grad_alpha = numpy.array([
        grad_u_total * d_sh - grad_size[0] * H / alpha[0] ** 2,
        grad_v_total * d_sw - grad_size[1] * W / alpha[1] ** 2,
    ])
    return grad_x, grad_alpha
