r"""Gradient-conservation laws and comparison helpers that users call from their own tests.

A pooling op routes each output's gradient back onto the inputs of its window. Summing the input
gradient therefore gives back how much gradient *mass* each window passes on:

* max pooling (and adaptive max, unpooling's adjoint): every window hands its whole gradient to one
  element, so ``sum(grad_x) == sum(grad_y)``, always;
* average pooling: window ``o`` hands ``grad_y[o] * valid_o / D_o`` to its valid elements, so
  ``sum(grad_x) == sum(grad_y * valid / D)``; ``valid / D = 1`` unless the divisor counts padding or
  is overridden (:func:`avg_pool_window_mass`).
"""

from __future__ import annotations

import numpy

from .._backend import to_numpy
from .._geometry import pool_geometry

__all__ = ["assert_conserves_gradient", "assert_matches", "avg_pool_window_mass"]


def avg_pool_window_mass(
    spatial_shape,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    *,
    dilation=1,
    convention="torch",
):
    r"""(O..) fraction of each average-pooling window's gradient that reaches the input: ``valid / D``.

    >>> avg_pool_window_mass((5,), 2, 2, ceil_mode=True).tolist()
    [1.0, 1.0, 1.0]
    >>> avg_pool_window_mass((4,), 3, 2, padding=1).tolist()
    [0.6666666666666666, 1.0]
    """
    geometry = pool_geometry(
        tuple(spatial_shape), kernel_size, stride, padding, dilation, ceil_mode, convention, "avg_pool_window_mass"
    )
    valid = geometry.divisor(count_padding=False)
    count_padding = bool(count_include_pad) and convention != "tensorflow"
    return valid / geometry.divisor(count_padding, divisor_override)


def assert_conserves_gradient(fn, x, *, cotangent=None, window_mass=1.0, seed=0, rtol=1e-10, atol=1e-10, **kwargs):
    r"""Assert ``sum(grad_x) == sum(cotangent * window_mass)`` for ``y = fn(x, **kwargs)``.

    ``cotangent`` defaults to a seeded random array shaped like ``y``; ``window_mass`` (broadcast
    against ``y``) is 1 for max-type ops and :func:`avg_pool_window_mass` for average pooling. The
    sums are compared in float64.

    >>> import numpy as np, poolref
    >>> x = np.random.default_rng(0).normal(size=(2, 3, 7, 7))
    >>> assert_conserves_gradient(poolref.max_pool2d, x, kernel_size=3, stride=2, padding=1)
    """
    from ..autograd import vjp

    y, pullback = vjp(lambda t: fn(t, **kwargs), x)
    if isinstance(y, tuple):
        y = y[0]
    if cotangent is None:
        cotangent = numpy.random.default_rng(seed).normal(size=y.shape).astype(y.dtype)
    (grad_x,) = pullback(cotangent)
    got = float(numpy.sum(to_numpy(grad_x), dtype=numpy.float64))
    mass = numpy.broadcast_to(numpy.asarray(window_mass, dtype=numpy.float64), y.shape)
    want = float(numpy.sum(to_numpy(cotangent).astype(numpy.float64) * mass))
    if not numpy.isclose(got, want, rtol=rtol, atol=atol):
        raise AssertionError(
            f"gradient is not conserved: sum(grad_x) = {got!r} but sum(cotangent * window_mass) = {want!r} "
            f"(difference {got - want:.3e})"
        )


def assert_matches(actual, expected, *, rtol=1e-7, atol=0.0, equal_nan=True, what="output"):
    """Assert two arrays agree (shape, and values within tolerance), reporting the first mismatch.

    The report gives the number of mismatches, the first mismatching index with both values, and
    the largest absolute error, so a failing pooling window can be found at once.

    >>> import numpy as np
    >>> assert_matches(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    """
    actual, expected = to_numpy(actual), to_numpy(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != expected {expected.shape}")
    if actual.dtype.kind in "iub" or expected.dtype.kind in "iub":
        close = actual == expected
    else:
        close = numpy.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if close.all():
        return
    bad = numpy.argwhere(~close)
    first = tuple(int(i) for i in bad[0])
    with numpy.errstate(invalid="ignore"):
        error = numpy.abs(actual.astype(numpy.float64) - expected.astype(numpy.float64))
    raise AssertionError(
        f"{what}: {len(bad)} of {close.size} elements differ (rtol={rtol}, atol={atol}); first at index "
        f"{first}: got {actual[first]!r}, expected {expected[first]!r}; max abs error {numpy.nanmax(error):.3e}"
    )
