r"""Comparing a framework's results with poolref's: non-finite values exactly, then a tolerance per
element and per dtype, indices exactly.

Two float arrays agree when, element by element,

1. NaN sits in the same places in both;
2. every infinity of poolref's is the same infinity (same sign) in the framework's, and the
   framework has no infinity where poolref's value is finite;
3. for max-type outputs (``zero_sign=True``), a zero has the same sign in both: the first of tied
   ``-0.0`` and ``+0.0`` is the maximum, so the sign says which element won;
4. every remaining (finite) pair satisfies

   .. math:: |a - b| \le \mathrm{atol} \cdot s + \mathrm{rtol}\,|b|

   with ``rtol`` and ``atol`` those of the *less precise* of the two dtypes (:data:`TOLERANCES`),
   and ``s`` the magnitude of the case's inputs as the case declares it (1 for inputs of order one,
   :math:`10^{e}` for the extreme-magnitude cases; for a gradient, the magnitude of that gradient:
   1 for the gradients to the values and to a bias, ``s`` for the others, see
   :func:`poolref.cases.gradient_scale`). The absolute part covers the cancellation of a
   sum of terms of order ``s``; it is never derived from the results, so a small wrong value next to
   a large right one is still wrong.

Integer results (indices, integer inputs) must be equal. The errors reported are the largest
absolute difference (divided by ``s``, so that cases of every magnitude read alike) and the largest
relative difference ``|a - b| / |b|`` over the finite pairs.

>>> import numpy as np
>>> compare_arrays(np.array([-np.inf]), np.array([np.inf]), "output").problem
'output: 1 of 1 elements differ (rtol=1e-10, atol=1e-12); first at (0,): got -inf, poolref inf (an infinity of the other sign)'
>>> compare_arrays(np.array([1e6, 0.5], np.float32), np.array([1e6, 0.0], np.float32), "output").ok
False
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy

__all__ = ["TOLERANCES", "GRADIENT_TOLERANCES", "Tolerance", "tolerance", "Comparison", "compare_arrays", "describe_tolerances"]


class Tolerance(NamedTuple):
    rtol: float
    atol: float  # at input magnitude 1; multiplied by the case's magnitude


#: Per float dtype: a few hundred ulps of relative headroom for another summation order, and an
#: absolute part for the cancellation of up to a few hundred terms of order one. Nothing looser.
#: float16 values are computed in float32 and rounded once, by poolref and by the frameworks: one ulp.
TOLERANCES = {
    numpy.dtype(numpy.float64): Tolerance(1e-10, 1e-12),
    numpy.dtype(numpy.float32): Tolerance(1e-5, 2e-5),
    numpy.dtype(numpy.float16): Tolerance(1e-3, 1e-3),
}
#: Gradients, where they differ: PyTorch accumulates a float16 gradient in float16 (each scatter-add
#: and each sum of products rounds), poolref in float32, a difference of a few ulps.
GRADIENT_TOLERANCES = {numpy.dtype(numpy.float16): Tolerance(4e-3, 4e-3)}
EXACT = Tolerance(0.0, 0.0)


def tolerance(*dtypes, gradient: bool = False) -> Tolerance:
    """The tolerance of the least precise float dtype among ``dtypes`` (exact for integers), for a
    value or, with ``gradient=True``, for a gradient."""
    floats = [numpy.dtype(d) for d in dtypes if numpy.dtype(d).kind == "f"]
    if not floats:
        return EXACT
    least = min(floats, key=lambda d: d.itemsize)
    if gradient and least in GRADIENT_TOLERANCES:
        return GRADIENT_TOLERANCES[least]
    return TOLERANCES.get(least, TOLERANCES[numpy.dtype(numpy.float16)])


def describe_tolerances() -> str:
    """The comparison rule in one line, for the report."""
    parts = ", ".join(f"{d.name} rtol={t.rtol:g} atol={t.atol:g}" for d, t in TOLERANCES.items())
    gradients = ", ".join(f"{d.name} gradients rtol={t.rtol:g} atol={t.atol:g}" for d, t in GRADIENT_TOLERANCES.items())
    return (f"per element |a - b| <= atol*s + rtol*|b| ({parts}; {gradients}; s = the case's input magnitude); "
            "NaN, +-inf and the zero sign of max-type outputs exactly; indices exactly")


class Comparison(NamedTuple):
    ok: bool
    problem: str  # "" when ok
    abs_error: float
    rel_error: float
    first: Optional[tuple]  # index of the first mismatching element, or None
    rtol: float
    atol: float  # the absolute tolerance applied (scaled by the case's magnitude)


def _shown(value) -> str:
    """A value as a reader writes it: 0.1267, -0.0, nan, -inf (no numpy repr)."""
    value = value.item() if hasattr(value, "item") else value
    return repr(value) if isinstance(value, (float, int, bool)) else str(value)


def _why(a, b, zero_sign: bool) -> str:
    """What is wrong with the pair (theirs ``a``, poolref's ``b``), in words."""
    if isinstance(a, (float, numpy.floating)) or isinstance(b, (float, numpy.floating)):
        if numpy.isnan(b) and not numpy.isnan(a):
            return " (NaN expected there)"
        if numpy.isnan(a) and not numpy.isnan(b):
            return " (a NaN where a number is expected)"
        if numpy.isinf(b) and numpy.isinf(a):
            return " (an infinity of the other sign)"
        if numpy.isinf(b) or numpy.isinf(a):
            return " (infinite on one side only)"
        if zero_sign and a == 0 and b == 0:
            return " (a zero of the other sign: another element won)"
    return ""


def compare_arrays(theirs, ours, what: str, exact: bool = False, *, zero_sign: bool = False,
                   scale: float = 1.0, expected: str = "poolref", gradient: bool = False) -> Comparison:
    """Compare ``theirs`` (the framework's) with ``ours`` (poolref's) for the report.

    ``exact`` compares for equality (indices); integer arrays are always compared exactly.
    ``zero_sign`` also requires zeros to carry the same sign (max-type outputs). ``scale`` is the
    magnitude of the case's inputs, which the absolute tolerance is multiplied by. ``expected``
    names the side ``ours`` comes from in the message (the self-checks compare with a loop reference).
    ``gradient`` selects the gradients' tolerance (:data:`GRADIENT_TOLERANCES`).
    """
    ours = numpy.asarray(ours)
    if theirs is None:
        return Comparison(False, f"{what}: the framework gave none", 0.0, 0.0, None, 0.0, 0.0)
    theirs = numpy.asarray(theirs)
    if theirs.shape != ours.shape:
        return Comparison(False, f"{what}: shape {theirs.shape} != {expected}'s {ours.shape}", 0.0, 0.0, None, 0.0, 0.0)
    if exact or (ours.dtype.kind in "iub" and theirs.dtype.kind in "iub"):
        close = theirs == ours
        rtol = atol = 0.0
        abs_error = rel_error = 0.0
    else:
        rtol, atol = tolerance(theirs.dtype, ours.dtype, gradient=gradient)
        atol *= scale
        a, b = theirs.astype(numpy.float64), ours.astype(numpy.float64)
        nan_a, nan_b = numpy.isnan(a), numpy.isnan(b)
        inf_a, inf_b = numpy.isinf(a), numpy.isinf(b)
        finite = ~(nan_a | nan_b | inf_a | inf_b)
        with numpy.errstate(invalid="ignore", over="ignore"):
            diff = numpy.where(finite, numpy.abs(a - b), 0.0)
            close = numpy.where(finite, diff <= atol + rtol * numpy.abs(b), False)
        close |= nan_a & nan_b  # NaN exactly where poolref has NaN
        close |= inf_a & inf_b & (a == b)  # the same infinity
        if zero_sign:  # max-type: -0.0 and +0.0 say which of two tied elements won
            zeros = finite & (a == 0) & (b == 0)
            close &= ~zeros | (numpy.signbit(a) == numpy.signbit(b))
        abs_error = float(diff.max()) / scale if diff.size else 0.0  # at unit input magnitude
        with numpy.errstate(divide="ignore", invalid="ignore"):
            relative = numpy.where(finite & (b != 0), diff / numpy.abs(numpy.where(b == 0, 1.0, b)), 0.0)
        rel_error = float(relative.max()) if relative.size else 0.0
    if bool(numpy.all(close)):
        return Comparison(True, "", abs_error, rel_error, None, rtol, atol)
    first = tuple(int(i) for i in numpy.argwhere(~close)[0])
    a_first, b_first = theirs[first], ours[first]
    tolerance_text = f" (rtol={rtol:g}, atol={atol:.3g})" if rtol else ""
    problem = (
        f"{what}: {int((~close).sum())} of {close.size} elements differ{tolerance_text}; first at {first}: "
        f"got {_shown(a_first)}, {expected} {_shown(b_first)}{_why(a_first, b_first, zero_sign)}"
    )
    if rtol and abs_error:
        problem += f"; max abs error {abs_error * scale:.3e}"
    return Comparison(False, problem, abs_error, rel_error, first, rtol, atol)
