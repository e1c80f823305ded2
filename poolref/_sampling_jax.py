r"""JAX's resize taps (``jax.image.resize``).

:func:`jax_nearest` (one tap, XLA's float32 arithmetic) and :func:`jax_dense` (the dense weight
matrix of ``linear``, ``cubic`` and ``area``: the overlap of each output's interval with each pixel, like
TensorFlow's area and unlike PyTorch's adaptive bins), read in ``jax/_src/image/scale.py`` and
checked against jax 0.10.2 (tests/ops/test_sampling.py). Every name is also reachable as
``poolref._sampling_weights.<name>``.
"""

from __future__ import annotations

import numpy

from ._fma import fused_multiply_add
from ._taps import Taps

__all__ = ["jax_nearest", "jax_dense"]

F32 = numpy.float32
F64 = numpy.float64


def jax_nearest(length: int, out_length: int) -> Taps:
    r"""``jax.image.resize(method="nearest")``: :math:`\lfloor (o + 1/2)\, m/n \rfloor` in float32, as
    XLA evaluates it.

    JAX writes ``(arange(n, float32) + 0.5) * m / n``; XLA's algebraic simplifier turns the division
    by the constant ``n`` into a product and reassociates it, so the value computed is
    :math:`\mathrm{fl}((o + 1/2) \cdot \mathrm{fl}(m \cdot \mathrm{fl}(1/n)))`, which at an exact
    half-way point can fall just below the integer: 10 -> 25, output 2: ``(2.5 * 10)/25 = 1`` exactly,
    but XLA gets ``0.99999994`` and reads pixel 0 (PyTorch's ``nearest-exact`` reads pixel 1).
    Verified against jax 0.10.2 on the CPU for every m < 30, n < 64. Capped at ``m - 1``.

    >>> jax_nearest(10, 25).index[:4, 0].tolist()
    [0, 0, 0, 1]
    """
    factor = F32(F32(length) * (F32(1) / F32(out_length)))
    source = (numpy.arange(out_length).astype(F32) + F32(0.5)) * factor
    return Taps.one_each(length, numpy.minimum(numpy.floor(source).astype(numpy.int64), length - 1))


def jax_dense(length: int, out_length: int, method: str, antialias: bool, dtype=F64) -> Taps:
    r"""``jax.image.resize``'s weight matrix along one axis (``compute_weight_mat``), as a dense table.

    Parameters
    ----------
    length, out_length : int
    method : {"linear", "cubic", "area"}
        ``cubic``: Keys' kernel with :math:`a = -1/2` (``jax.image.resize(method="cubic")``), radius 2.
    antialias : bool
        Widen the triangle by the downsampling factor (ignored by ``area``).
    dtype : numpy dtype
        The data's dtype: JAX rounds the weights to it before the product (a float16 weight can
        underflow to 0).

    Notes
    -----
    With scale :math:`\sigma = O/L` (a Python float) and sample points
    :math:`c_o = (o + 1/2)/\sigma - 1/2`, ``linear`` weighs input :math:`i` by
    :math:`\max(0, 1 - |c_o - i|/\kappa)`, :math:`\kappa = \max(1/\sigma, 1)` with ``antialias``
    (else 1); ``area`` by the overlap of :math:`[o/\sigma, (o + 1)/\sigma)` with :math:`[i, i + 1)`.
    Each column is divided by its total (set to 0 if the total is not above ``1000 * eps(float32)``)
    and zeroed where :math:`c_o` is outside :math:`[-1/2, L - 1/2]`. Computed in float64 (JAX with
    ``jax_enable_x64``; without it JAX computes in float32) and then rounded to the data's dtype.
    The resize is a dense product with this matrix, so every weight meets its input, zeros
    included: one NaN reaches every output of its line, an infinity every output whose weight for it
    is 0 as NaN; the gradient is the dense transpose.

    Examples
    --------
    >>> jax_dense(4, 2, "linear", antialias=True).weight.round(4).tolist()  # the triangle is 2 wide
    [[0.4286, 0.4286, 0.1429, 0.0], [0.0, 0.1429, 0.4286, 0.4286]]
    >>> jax_dense(4, 2, "linear", antialias=False).weight.tolist()
    [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
    >>> jax_dense(3, 2, "area", antialias=True).weight.round(4).tolist()
    [[0.6667, 0.3333, 0.0], [0.0, 0.3333, 0.6667]]
    """
    L, O = length, out_length
    scale = O / L
    inv_scale = 1.0 / scale
    kernel_scale = max(inv_scale, 1.0) if antialias else 1.0
    out = numpy.arange(O, dtype=F64)
    inputs = numpy.arange(L, dtype=F64)
    sample = (out + 0.5) * inv_scale - 0.0 * inv_scale - 0.5
    if method == "area":
        left = out * inv_scale - 0.0 * inv_scale
        right = left + inv_scale
        weight = numpy.maximum(0.0, numpy.minimum(right[None, :], inputs[:, None] + 1.0) - numpy.maximum(left[None, :], inputs[:, None]))
    else:
        distance = numpy.abs(sample[None, :] - inputs[:, None]) / kernel_scale
        if method == "cubic":
            # _fill_keys_cubic_kernel as XLA compiles it, with fused multiply-adds: at a distance of
            # exactly 1 or 2 plain arithmetic gives a weight of 0 where JAX's is 1e-16 (so an
            # infinity there is inf in JAX, not 0 * inf = NaN; checked on 104 size pairs)
            near = fused_multiply_add(fused_multiply_add(1.5, distance, -2.5) * distance, distance, 1.0)
            far = fused_multiply_add(fused_multiply_add(fused_multiply_add(-0.5, distance, 2.5), distance, -4.0), distance, 2.0)
            weight = numpy.where(distance >= 2.0, 0.0, numpy.where(distance >= 1.0, far, near))
        else:
            weight = numpy.maximum(0.0, 1.0 - numpy.abs(distance))
    total = weight.sum(axis=0, keepdims=True)  # (1, O)
    weight = numpy.where(numpy.abs(total) > 1000.0 * float(numpy.finfo(F32).eps),
                         weight / numpy.where(total != 0, total, 1.0), 0.0)
    inside = (sample >= -0.5) & (sample <= L - 0.5)
    weight = numpy.where(inside[None, :], weight, 0.0)  # (L, O)
    weight = weight.T.astype(dtype).astype(F64)  # (O, L), rounded as JAX's .astype(x.dtype)
    return Taps(L, numpy.broadcast_to(numpy.arange(L), (O, L)), weight, None, dense=True)
