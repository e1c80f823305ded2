"""Helpers for users' own tests: conservation laws, assertions, and hypothesis strategies.

``poolref.testing.strategies`` needs hypothesis (the ``test`` extra); the rest needs only numpy.
"""

from .laws import assert_conserves_gradient, assert_matches, avg_pool_window_mass

__all__ = ["assert_conserves_gradient", "assert_matches", "avg_pool_window_mass", "strategies"]


def __getattr__(name):
    # imported on first use so that ``import poolref.testing`` works without hypothesis
    if name == "strategies":
        from . import strategies

        return strategies
    raise AttributeError(name)
