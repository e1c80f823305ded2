r"""Comparing a framework's results with poolref's: tolerances per dtype, exact indices.

Two float arrays agree when every element satisfies

.. math:: |a - b| \le \mathrm{atol} + \mathrm{rtol}\,|b|, \qquad \mathrm{atol} = \tau \cdot \max(1, \max|b|)

with ``rtol`` and ``tau`` chosen by the *less precise* of the two dtypes (:data:`TOLERANCES`), and NaN
exactly where poolref has NaN. The absolute part scales with the result's magnitude because two
correct implementations differ by rounding in their summation order, which is relative to the sizes
of the summed terms, not to a result that cancels to nearly zero. Integer results (indices) must be
equal. The errors reported are the largest absolute difference and the normwise relative error
``max|a - b| / max|b|``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy

__all__ = ["TOLERANCES", "tolerance", "Comparison", "compare_arrays"]

#: (rtol, tau) per float dtype: a few hundred ulps of headroom for summation order, nothing more.
TOLERANCES = {
    numpy.dtype(numpy.float64): (1e-10, 1e-12),
    numpy.dtype(numpy.float32): (1e-5, 1e-6),
    numpy.dtype(numpy.float16): (1e-2, 1e-3),
}


def tolerance(*dtypes) -> tuple[float, float]:
    """(rtol, tau) of the least precise float dtype among ``dtypes``."""
    floats = [numpy.dtype(d) for d in dtypes if numpy.dtype(d).kind == "f"]
    if not floats:
        return 0.0, 0.0
    least = min(floats, key=lambda d: d.itemsize)
    return TOLERANCES.get(least, TOLERANCES[numpy.dtype(numpy.float16)])


class Comparison(NamedTuple):
    ok: bool
    problem: str  # "" when ok
    abs_error: float
    rel_error: float
    first: Optional[tuple]  # index of the first mismatching element, or None
    rtol: float
    atol: float


def compare_arrays(theirs, ours, what: str, exact: bool = False) -> Comparison:
    """Compare ``theirs`` (the framework's) with ``ours`` (poolref's) for the report."""
    ours = numpy.asarray(ours)
    if theirs is None:
        return Comparison(False, f"{what}: the framework gave none", 0.0, 0.0, None, 0.0, 0.0)
    theirs = numpy.asarray(theirs)
    if theirs.shape != ours.shape:
        return Comparison(False, f"{what}: shape {theirs.shape} != poolref's {ours.shape}", 0.0, 0.0, None, 0.0, 0.0)
    if ours.size == 0:
        return Comparison(True, "", 0.0, 0.0, None, 0.0, 0.0)
    if exact or ours.dtype.kind in "iub":
        equal = theirs == ours
        first = None if equal.all() else tuple(int(i) for i in numpy.argwhere(~equal)[0])
        problem = "" if first is None else (
            f"{what}: {int((~equal).sum())} of {equal.size} differ; first at {first}: "
            f"got {theirs[first]!r}, poolref {ours[first]!r}"
        )
        return Comparison(first is None, problem, 0.0, 0.0, first, 0.0, 0.0)
    rtol, tau = tolerance(theirs.dtype, ours.dtype)
    a, b = theirs.astype(numpy.float64), ours.astype(numpy.float64)
    finite_b = numpy.abs(b[numpy.isfinite(b)])
    scale = max(1.0, float(finite_b.max())) if finite_b.size else 1.0
    atol = tau * scale
    nan_a, nan_b = numpy.isnan(a), numpy.isnan(b)
    with numpy.errstate(invalid="ignore", over="ignore"):
        diff = numpy.where(nan_a | nan_b, 0.0, numpy.abs(a - b))
        diff = numpy.where(numpy.isinf(a) & numpy.isinf(b) & (a == b), 0.0, diff)
        bound = atol + rtol * numpy.where(nan_b, 0.0, numpy.abs(b))
        close = (diff <= bound) & (nan_a == nan_b)
    abs_error = float(numpy.nanmax(diff)) if diff.size else 0.0
    rel_error = abs_error / float(finite_b.max()) if finite_b.size and finite_b.max() > 0 else abs_error
    if close.all():
        return Comparison(True, "", abs_error, rel_error, None, rtol, atol)
    first = tuple(int(i) for i in numpy.argwhere(~close)[0])
    problem = (
        f"{what}: {int((~close).sum())} of {close.size} elements differ (rtol={rtol:g}, atol={atol:.3g}); "
        f"first at {first}: got {theirs[first]!r}, poolref {ours[first]!r}; max abs error {abs_error:.3e}"
    )
    return Comparison(False, problem, abs_error, rel_error, first, rtol, atol)
