r"""A stand-in for ``cupyx``: ``scatter_add`` (and max, min) and :mod:`fake_cupy.cupyx.scipy.sparse`.

``cupyx.scatter_add(a, slices, value)`` is ``cupy.add.at(a, slices, value)``: unbuffered, repeated
indices add up, with the dtypes ``cupy.add.at`` takes.
"""

from __future__ import annotations

from .. import _UFUNCS
from . import scipy  # noqa: F401 (cupyx.scipy)


def scatter_add(a, slices, value):
    """``a[slices] += value`` with repeated indices adding up (``cupy.add.at``)."""
    _UFUNCS["add"].at(a, slices, value)


def scatter_max(a, slices, value):
    """``a[slices] = max(a[slices], value)`` element by element (``cupy.maximum.at``)."""
    _UFUNCS["maximum"].at(a, slices, value)


def scatter_min(a, slices, value):
    """``a[slices] = min(a[slices], value)`` element by element (``cupy.minimum.at``)."""
    _UFUNCS["minimum"].at(a, slices, value)
