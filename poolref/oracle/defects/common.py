r"""What the frameworks' defect models share: a case's non-finite input, a pair of ints, the model of
a reduce-max gradient that shares ties (TensorFlow's and JAX's, which differ in details), and a
convolution's weight gradient without its zero padding (PyTorch's and JAX's)."""

from __future__ import annotations

import math

import numpy

from ...cases.case import Case
from ...cases.learned import conv_pads

__all__ = ["has_nonfinite", "as_pair", "reduce_max_model", "weight_gradient_without_padding"]


def has_nonfinite(case: Case) -> bool:
    return case.x.dtype.kind == "f" and not numpy.isfinite(case.x).all()


def reduce_max_model(case: Case, ours, cotangent, last_zero: bool = True, nan_gradient: float = numpy.nan,
                     zero_elsewhere: bool = False):
    """``tf.reduce_max`` (``jnp.max`` with ``last_zero=False``) over the spatial axes: the maximum,
    and its gradient ``(x == y) / count(x == y) * g``. Of tied zeros TensorFlow keeps the last's sign,
    JAX gives +0 unless all of them are -0. A plane whose maximum is NaN gets ``nan_gradient`` everywhere (TensorFlow: 0/0 =
    NaN; JAX under ``jax.jit``, as the oracle runs it: 0, although eagerly it is NaN). ``zero_elsewhere``:
    the elements off the maximum get 0 whatever ``g`` (JAX under ``jax.jit``), not ``0 * g`` (TensorFlow:
    NaN for an infinite ``g``)."""
    n = case.x.ndim - (2 if case.batched else 1)
    axes = tuple(range(case.x.ndim - n, case.x.ndim))
    x = case.x.astype(numpy.float64)
    with numpy.errstate(invalid="ignore", divide="ignore"):
        y = numpy.max(x, axis=axes, keepdims=True)  # NaN propagates
        # of tied maxima the value is the LAST's (it shows for zeros: [-0., 0.] gives 0., [0., -0.] gives -0.)
        flat = x.reshape(x.shape[:x.ndim - n] + (math.prod(x.shape[x.ndim - n:]),))  # not -1: a batch may be empty
        last = flat.shape[-1] - 1 - numpy.argmax((flat == y.reshape(flat.shape[:-1] + (1,)))[..., ::-1], axis=-1)
        if last_zero:
            y = numpy.where(y == 0, numpy.take_along_axis(flat, last[..., None], axis=-1).reshape(y.shape), y)
        else:  # JAX: +0 if any of the tied zeros is +0, -0 only when all are -0 (max(-0, -0))
            positive_zero = ((flat == 0) & ~numpy.signbit(flat)).any(axis=-1).reshape(y.shape)
            y = numpy.where(y == 0, numpy.where(positive_zero, 0.0, -0.0), y)
        selected = (x == y).astype(numpy.float64)
        grad = selected / selected.sum(axis=axes, keepdims=True) * cotangent.astype(numpy.float64)
        if zero_elsewhere:
            grad = numpy.where(selected > 0, grad, 0.0)
        grad = numpy.where(numpy.isnan(y), nan_gradient, grad)
    return ours._replace(values=y.astype(ours.values.dtype), grads={**ours.grads, "x": grad.astype(case.x.dtype)})


def as_pair(value) -> tuple:
    return (value, value) if isinstance(value, int) else tuple(value)


def weight_gradient_without_padding(case: Case, ours, cotangent):
    """conv2d's weight gradient without the zero padding: ``sum g * x`` over the taps that read a real
    input cell only, a tap over the padding adding nothing (no ``g * 0``, which is NaN under an
    infinite ``g``): PyTorch's float32 CPU gradient where oneDNN computes it, JAX's float64 one."""
    groups = case.kwargs.get("groups", 1)
    x, weight = case.x.astype(numpy.float64), case.arrays["weight"]
    g = numpy.asarray(cotangent, dtype=numpy.float64)  # (N, C_out, H_out, W_out)
    if x.ndim == 3:  # unbatched: a batch of one
        x, g = x[None], g[None]
    stride, dilation = as_pair(case.kwargs.get("stride", 1)), as_pair(case.kwargs.get("dilation", 1))
    pads = conv_pads(case)
    padded = numpy.pad(x, ((0, 0), (0, 0)) + tuple(pads))
    real = numpy.pad(numpy.ones(x.shape, dtype=bool), ((0, 0), (0, 0)) + tuple(pads))
    n, (c_out, c_in_per_group, kh, kw), (h_out, w_out) = len(x), weight.shape, g.shape[2:]
    # the channels by group: g (N, G, C_out/G, 1, H_out, W_out) meets x (N, G, 1, C_in/G, ., .)
    g = g.reshape(n, groups, c_out // groups, 1, h_out, w_out)
    grad = numpy.zeros((groups, c_out // groups, c_in_per_group, kh, kw), dtype=numpy.float64)
    with numpy.errstate(invalid="ignore", over="ignore"):
        for i in range(kh):  # the kernel's taps: a handful
            for j in range(kw):
                rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (h_out - 1) + 1, stride[0])
                cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (w_out - 1) + 1, stride[1])
                tap = padded[:, :, rows, cols].reshape(n, groups, 1, c_in_per_group, h_out, w_out)
                reads_x = real[:, :, rows, cols].reshape(n, groups, 1, c_in_per_group, h_out, w_out)
                grad[..., i, j] = numpy.where(reads_x, g * tap, 0.0).sum(axis=(0, 4, 5))
    return ours._replace(grads={**ours.grads, "weight": grad.reshape(weight.shape).astype(weight.dtype)})
