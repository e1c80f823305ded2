r"""The values the oracle's generators fill arrays with, and the small draws every generator uses.

Values are chosen so that a comparison tests semantics and not luck:

* max-type ops get distinct values, a quarter apart (:func:`distinct_values`), so that rounding can
  never flip an argmax and a gradient has exactly one place to go;
* the others get smooth values of order one (:func:`smooth_values`).
"""

from __future__ import annotations

import math

import numpy

__all__ = ["distinct_values", "smooth_values", "draw_ints", "pick", "draw_batch_channels", "draw_unpadded_window", "off_the_kinks"]


def distinct_values(rng, shape, dtype=numpy.float64, spacing: float = 0.25) -> numpy.ndarray:
    """A random permutation of ``spacing * (k - size/2)``: distinct values, exact in float16/32/64."""
    size = math.prod(shape)
    return rng.permutation((numpy.arange(size) - size // 2) * spacing).reshape(shape).astype(dtype)


def smooth_values(rng, shape, dtype, low=-2.0, high=2.0) -> numpy.ndarray:
    return rng.uniform(low, high, size=shape).astype(dtype)


def draw_ints(rng, low, high, n) -> tuple:
    """n ints in [low, high] (inclusive), as a tuple of Python ints."""
    return tuple(int(v) for v in rng.integers(low, high + 1, n))


def pick(rng, choices):
    """One of ``choices``, uniformly."""
    return choices[int(rng.integers(len(choices)))]


def draw_batch_channels(rng) -> tuple:
    """(N, C): a batch of 1 or 2, 1 to 3 channels (never empty: the empty class is drawn on purpose)."""
    return int(rng.integers(1, 3)), int(rng.integers(1, 4))


def off_the_kinks(coordinates, clearance: float = 1e-4) -> bool:
    """No coordinate within ``clearance`` of an integer, where bilinear sampling has a kink (a pixel
    row or column, the clamp at 0 and L - 1, the edges -1 and L of the readable range)."""
    return coordinates.size == 0 or bool(numpy.abs(coordinates - numpy.round(coordinates)).min() > clearance)


def draw_unpadded_window(rng, max_extra: int = 4):
    """A 2-D kernel, a stride (None: the kernel) and an input at least as large as the kernel."""
    kernel = draw_ints(rng, 1, 3, 2)
    stride = None if rng.random() < 0.3 else draw_ints(rng, 1, 3, 2)
    shape = tuple(k + int(rng.integers(0, max_extra + 1)) for k in kernel)
    return kernel, stride, shape
