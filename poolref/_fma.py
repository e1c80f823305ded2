r"""A fused multiply-add, ``a * b + c`` with one rounding, emulated in float64 numpy.

Compiled code contracts ``a * b + c`` into one FMA instruction (PyTorch's C++ built with contraction,
XLA's fused elementwise kernels), and the single rounding decides which taps a resize reads where a
weight would otherwise be exactly 0. The sampling rules of :mod:`poolref._sampling_weights` and
:mod:`poolref._sampling_jax` use it wherever the framework's arithmetic does.
"""

from __future__ import annotations

import numpy

__all__ = ["fused_multiply_add"]

F64 = numpy.float64


def _split(a):
    """Veltkamp's split of float64 ``a`` into two halves of 26 bits: ``hi + lo == a`` exactly."""
    t = a * F64(134217729.0)  # 2**27 + 1
    hi = t - (t - a)
    return hi, a - hi


def fused_multiply_add(a, b, c):
    r"""``a * b + c`` in float64 with one rounding, as a fused multiply-add instruction computes it.

    Compilers contract PyTorch's ``scale * (o + 0.5) - 0.5`` into an FMA, and the single rounding
    decides taps: ``L = 1 -> O = 5``, output 2: ``0.2 * 2.5 - 0.5`` is 0 with two roundings but
    ``2.8e-17`` with one, so PyTorch reads its second tap with a tiny weight instead of 0. Dekker's
    exact product ``p + e = a b``, then the sum of ``p``, ``e`` and ``c`` with the error of the
    first addition carried (exact where the result is near 0, as here).

    >>> float(fused_multiply_add(0.2, 2.5, -0.5)), 0.2 * 2.5 - 0.5
    (2.7755575615628914e-17, 0.0)
    """
    a, b, c = (numpy.asarray(v, F64) for v in (a, b, c))
    p = a * b
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    e = a_lo * b_lo - (((p - a_hi * b_hi) - a_lo * b_hi) - a_hi * b_lo)  # p + e == a * b exactly
    s = p + c
    z = s - p
    t = (p - (s - z)) + (c - z)  # s + t == p + c exactly (Knuth's two-sum)
    return s + (t + e)
