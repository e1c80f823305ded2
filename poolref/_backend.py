"""Choose the array module, numpy or cupy, from the arrays an op is given.

This is the only module that knows cupy exists. Every op asks ``array_module(x)`` for its ``xp`` and
then writes plain array code against it, so the same lines run on the CPU and on the GPU.
``import poolref`` never imports cupy: we only look at ``sys.modules``, so cupy is consulted only
when the caller has already imported it (and can therefore hold cupy arrays).
"""

from __future__ import annotations

import sys
from types import ModuleType

import numpy

__all__ = ["array_module", "is_cupy_array", "to_numpy"]


def _cupy() -> ModuleType | None:
    return sys.modules.get("cupy")


def is_cupy_array(value) -> bool:
    """True when ``value`` is a ``cupy.ndarray`` (False whenever cupy has not been imported)."""
    cupy = _cupy()
    return cupy is not None and isinstance(value, cupy.ndarray)


def array_module(*values) -> ModuleType:
    """Return ``cupy`` if any of ``values`` is a cupy array, else ``numpy``.

    Values that are not arrays (None, Python scalars, tuples) are ignored. Mixing numpy and cupy
    arrays in one call is refused, because silently moving data between devices hides bugs.
    """
    on_gpu = [is_cupy_array(v) for v in values if v is not None and hasattr(v, "shape")]
    if any(on_gpu):
        if not all(on_gpu):
            raise TypeError("inputs mix numpy and cupy arrays; move them to one device first")
        return _cupy()
    return numpy


def to_numpy(value):
    """Return a numpy copy of a numpy or cupy array (used by tests, the oracle and printing)."""
    if is_cupy_array(value):
        return value.get()
    return numpy.asarray(value)
