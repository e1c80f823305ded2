"""Plain-loop DynOPool (DYNOPOOL.md, step by step): one output cell, one query point at a time."""

from __future__ import annotations

import math

import numpy

__all__ = ["dynopool_reference", "dynopool_backward_reference", "query_coordinate", "bilinear_read"]


def _out_length(length: int, alpha: float) -> int:
    return max(1, int(numpy.round(length / alpha)))  # round half to even, as numpy.round


def query_coordinate(i: int, a: int, length: int, out_length: int) -> float:
    """``u(i, a) = (i + 1/4 + a/2) * s - 1/2`` with ``s = length / out_length``."""
    return (i + 0.25 + 0.5 * a) * (length / out_length) - 0.5


def _taps(u: float, length: int):
    """The two pixels a clamped coordinate reads, their weights, and the slope mask (0 on/beyond the border)."""
    clamped = min(max(u, 0.0), length - 1.0)
    low = int(math.floor(clamped))
    high = min(low + 1, length - 1)
    t = clamped - low
    inside = 1.0 if 0.0 < u < length - 1 else 0.0
    return low, high, t, inside


def bilinear_read(plane, u: float, v: float):
    """Value of a 2-D plane at (u, v) and its partial derivatives (d/du, d/dv), border handling as DYNOPOOL.md."""
    H, W = plane.shape
    k0, k1, tu, inside_u = _taps(u, H)
    l0, l1, tv, inside_v = _taps(v, W)
    top = (1 - tv) * plane[k0, l0] + tv * plane[k0, l1]
    bottom = (1 - tv) * plane[k1, l0] + tv * plane[k1, l1]
    value = (1 - tu) * top + tu * bottom
    d_du = (bottom - top) * inside_u
    left = (1 - tu) * plane[k0, l0] + tu * plane[k1, l0]
    right = (1 - tu) * plane[k0, l1] + tu * plane[k1, l1]
    d_dv = (right - left) * inside_v
    return value, d_du, d_dv


def _replaces(value, best) -> bool:
    """Max rule: strictly larger replaces (ties keep the first point); a NaN replaces a number."""
    return value > best or (math.isnan(value) and not math.isnan(best))


def dynopool_reference(x, alpha, aggregate="max"):
    """Forward: ``x`` (N, C, H, W) float64, ``alpha`` (alpha_h, alpha_w) -> (N, C, H_out, W_out)."""
    N, C, H, W = x.shape
    Ho, Wo = _out_length(H, alpha[0]), _out_length(W, alpha[1])
    y = numpy.zeros((N, C, Ho, Wo))
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
                        best = 0
                        for p in range(1, 4):
                            if _replaces(values[p], values[best]):
                                best = p
                        y[n, c, i, j] = values[best]
                    else:
                        y[n, c, i, j] = sum(values) / 4
    return y


def dynopool_backward_reference(grad_y, x, alpha, aggregate="max", grad_size=(0.0, 0.0)):
    """Backward: ``(grad_x, grad_alpha)`` for the upstream gradients of y and of the size (H_out, W_out)."""
    N, C, H, W = x.shape
    Ho, Wo = _out_length(H, alpha[0]), _out_length(W, alpha[1])
    grad_x = numpy.zeros_like(x, dtype=numpy.float64)
    grad_u_total = grad_v_total = 0.0  # sum of G * dq/du * du/ds over every point
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    points = [(a, b) for a in (0, 1) for b in (0, 1)]
                    reads = [bilinear_read(x[n, c], query_coordinate(i, a, H, Ho), query_coordinate(j, b, W, Wo))
                             for a, b in points]
                    if aggregate == "max":
                        best = 0
                        for p in range(1, 4):
                            if _replaces(reads[p][0], reads[best][0]):
                                best = p
                        shares = [1.0 if p == best else 0.0 for p in range(4)]
                    else:
                        shares = [0.25] * 4
                    for (a, b), (_, d_du, d_dv), share in zip(points, reads, shares):
                        g = grad_y[n, c, i, j] * share
                        if g == 0:
                            continue
                        u, v = query_coordinate(i, a, H, Ho), query_coordinate(j, b, W, Wo)
                        k0, k1, tu, _ = _taps(u, H)
                        l0, l1, tv, _ = _taps(v, W)
                        grad_x[n, c, k0, l0] += g * (1 - tu) * (1 - tv)
                        grad_x[n, c, k0, l1] += g * (1 - tu) * tv
                        grad_x[n, c, k1, l0] += g * tu * (1 - tv)
                        grad_x[n, c, k1, l1] += g * tu * tv
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
