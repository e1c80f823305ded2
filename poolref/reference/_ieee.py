"""One decorator for the plain-loop references: IEEE arithmetic on NaN and infinities, without warnings.

The loops add into numpy arrays, and numpy scalars warn where Python floats do not: ``inf - inf``,
``0 * inf`` and ``nan + 1`` are NaN on purpose in a reference that follows a kernel's reads and
writes one by one, and an overflow is the overflow the kernel would meet. Under pytest these
warnings are errors, so every reference that may meet them runs under :func:`ieee`.
"""

from __future__ import annotations

import functools

import numpy

__all__ = ["ieee"]


def ieee(function):
    """Run ``function`` with numpy's invalid-value, overflow and division warnings silenced.

    >>> @ieee
    ... def difference(a, b):
    ...     return numpy.float64(a) - numpy.float64(b)
    >>> difference(numpy.inf, numpy.inf)
    np.float64(nan)
    """

    @functools.wraps(function)
    def quietly(*args, **kwargs):
        with numpy.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return function(*args, **kwargs)

    return quietly
