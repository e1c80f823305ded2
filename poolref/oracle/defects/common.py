r"""What the frameworks' defect models share: a case's non-finite input, a pair of ints, and the
model of a reduce-max gradient that shares ties (TensorFlow's and JAX's, which differ in details)."""

from __future__ import annotations

import math

import numpy

from ...cases.case import Case

__all__ = ["has_nonfinite", "as_pair", "reduce_max_model"]


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
