r"""DynOPool's geometry along one axis: the output length, the query coordinates, and what the
backward needs of them (float64, shared by the array code, the CUDA kernels and the figures).

The definition is the section "The definition" of ``docs/dynopool.rst``; :mod:`poolref.ops.dynopool`
sums it up.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from ..._checks import is_int, is_real

__all__ = ["QueryAxis", "dynopool_output_size", "query_axis"]


def dynopool_output_size(length: int, alpha: float) -> int:
    """Integer output length ``max(1, round(length / alpha))``, rounding half to even (``numpy.round``).

    ``length`` is a positive int and ``alpha`` a finite number > 0 (anything else is refused).

    >>> dynopool_output_size(32, 2.0), dynopool_output_size(8, 2.6), dynopool_output_size(5, 2.0)
    (16, 3, 2)
    """
    op = "dynopool_output_size"
    if not is_int(length):
        raise TypeError(f"{op}: length must be an int, got length={length!r}")
    if length < 1:
        raise ValueError(f"{op}: length must be at least 1, got length={length!r}")
    if not is_real(alpha):
        raise TypeError(f"{op}: alpha must be a real number, got alpha={alpha!r}")
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"{op}: alpha must be a finite number > 0, got alpha={alpha!r}")
    return max(1, int(numpy.round(length / alpha)))


class QueryAxis(NamedTuple):
    """The query coordinates of one axis and everything the backward needs about them.

    All arrays have one entry per query line, ``2 * out_length`` of them, in the order
    ``(i, a) = (0, 0), (0, 1), (1, 0), ...``.
    """

    length: int  # L, input length
    out_length: int  # O, integer output length
    alpha: float
    low: numpy.ndarray  # int: floor of the clamped coordinate, the first pixel read
    high: numpy.ndarray  # int: the next pixel (min(low + 1, L - 1); its weight is 0 at the last pixel)
    t: numpy.ndarray  # float64: weight of ``high``; ``low`` gets 1 - t
    inside: numpy.ndarray  # bool: 0 < u < L - 1, where d value / d u is not zero (borders count as outside)
    phase: numpy.ndarray  # float64: i + 1/4 + a/2 = d u / d s
    d_cell_d_alpha: float  # d s / d alpha = L^2 / (O^2 alpha^2) (straight-through O)


def query_axis(length: int, alpha: float) -> QueryAxis:
    """Query coordinates along one axis (see the module docstring)."""
    out_length = dynopool_output_size(length, alpha)
    cell = length / out_length
    i = numpy.arange(out_length, dtype=numpy.float64)
    phase = (i[:, None] + 0.25 + 0.5 * numpy.array([0.0, 1.0])[None, :]).reshape(-1)  # (2O,)
    u = phase * cell - 0.5
    clamped = numpy.clip(u, 0.0, length - 1.0)
    low = numpy.floor(clamped).astype(numpy.intp)
    high = numpy.minimum(low + 1, length - 1)
    t = clamped - low
    inside = (u > 0) & (u < length - 1)
    d_cell_d_alpha = (length / (out_length * alpha)) ** 2  # H^2 / (H_out^2 alpha^2), no alpha^2 to overflow
    return QueryAxis(length, out_length, alpha, low, high, t, inside, phase, d_cell_d_alpha)
