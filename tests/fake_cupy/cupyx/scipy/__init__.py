"""A stand-in for ``cupyx.scipy``: only :mod:`fake_cupy.cupyx.scipy.sparse`."""

from . import sparse  # noqa: F401
