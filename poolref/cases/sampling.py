r"""Generators of the sampling ops: grid_sample, interpolate and DynOPool.

Each ``gen(rng, op, space) -> Case`` draws a valid call of its op (see :mod:`poolref.cases.generators`).
"""

from __future__ import annotations

import numpy

from .case import Case
from .values import draw_batch_channels, draw_ints, off_the_kinks, pick, smooth_values

__all__ = ["LINEAR_MODE", "RESIZE_CONVENTIONS", "GENERATORS", "dynopool_queries"]


def _grid_sample(rng, op, space):
    """4-D, or 5-D (volumetric) where ``space["ndims"]`` allows 3; bicubic (``space["modes"]``) on 4-D only."""
    N, C = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    n = int(pick(rng, space["ndims"])) if "ndims" in space else 2
    spatial = draw_ints(rng, 1, 7 if n == 2 else 4, n)
    out = draw_ints(rng, 1, 5 if n == 2 else 3, n)
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    mode = pick(rng, space.get("modes", ("bilinear", "nearest")))
    if mode == "bicubic" and n == 3:
        mode = "bilinear"  # bicubic samples 4-D input only
    padding_mode = pick(rng, space.get("padding_modes", ("zeros", "border", "reflection")))
    align_corners = bool(pick(rng, space.get("align_corners", (False, True))))
    reach = space.get("grid_reach", 1.25)  # a little outside [-1, 1]: the padding modes matter
    grid = rng.uniform(-reach, reach, size=(N,) + tuple(out) + (n,)).astype(dtype)
    x = smooth_values(rng, (N, C) + tuple(spatial), dtype)
    kwargs = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    # nearest sampling has no gradient to the grid (it is piecewise constant): compare x only
    grads = ("x", "grid") if mode != "nearest" and space.get("grid_gradient", True) else ("x",)
    return Case(op, {"x": x, "grid": grid}, kwargs, positional=("x", "grid"), grad_inputs=grads)


LINEAR_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


#: What ``interpolate`` takes under each convention (modes, dimensions, align_corners, where
#: ``antialias`` matters): PyTorch antialiases bilinear and bicubic only (bicubic is 2-D); tf.image.resize is 2-D; jax.image.resize
#: has no legacy "nearest" and no align_corners, and antialiases by default.
RESIZE_CONVENTIONS = {
    "torch": dict(modes=("nearest", "nearest-exact", "linear", "bicubic", "area"), ndims=(1, 2, 3), align_corners=(False, True),
                  antialiased=lambda mode, n: mode in ("linear", "bicubic") and n == 2),
    "tensorflow": dict(modes=("nearest", "nearest-exact", "linear", "bicubic", "area"), ndims=(2,), align_corners=(False, True),
                       antialiased=lambda mode, n: mode in ("linear", "bicubic")),
    "jax": dict(modes=("nearest-exact", "linear", "bicubic", "area"), ndims=(1, 2, 3), align_corners=(False,),
                antialiased=lambda mode, n: mode in ("linear", "bicubic")),
}


def _interpolate(rng, op, space):
    convention = pick(rng, space["conventions"]) if space.get("conventions") else space.get("convention", "torch")
    rules = RESIZE_CONVENTIONS[convention]
    modes = tuple(m for m in space.get("modes", rules["modes"]) if m in rules["modes"])
    ndims = tuple(n for n in space.get("ndims", rules["ndims"]) if n in rules["ndims"])
    mode = pick(rng, modes)
    n = int(pick(rng, ndims))
    if mode == "bicubic":
        n = 2  # bicubic resizes 4-D input only
    max_size = 7 if n < 3 else 4
    shape = draw_ints(rng, 1, max_size, n)
    if space.get("integer_ratio"):  # sizes whose ratio is an integer either way
        size = tuple(L * int(rng.integers(1, 3)) if rng.random() < 0.5 else L for L in shape)
        shape, size = (size, shape) if rng.random() < 0.5 else (shape, size)
    else:
        size = draw_ints(rng, 1, 2 * max_size, n)
    full = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + shape
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    kwargs = dict(size=size, mode=LINEAR_MODE[n] if mode == "linear" else mode)
    if mode in ("linear", "bicubic"):
        choices = tuple(a for a in space.get("align_corners", (False, True)) if a in rules["align_corners"])
        kwargs["align_corners"] = bool(pick(rng, choices or (False,)))
    if rules["antialiased"](mode, n) and not kwargs.get("align_corners"):
        antialias = pick(rng, space.get("antialias", (False,)))
        if antialias is not False or convention == "jax":  # JAX antialiases by default: say which
            kwargs["antialias"] = antialias
    if convention != "torch":
        kwargs["convention"] = convention
    return Case(op, {"x": smooth_values(rng, full, dtype)}, kwargs)


def dynopool_queries(length: int, alpha: float) -> numpy.ndarray:
    """DynOPool's query coordinates along one axis: ``(i + 1/4 + a/2) * L / O - 1/2`` (docs/dynopool.rst)."""
    out = max(1, int(numpy.round(length / alpha)))
    phase = (numpy.arange(out)[:, None] + 0.25 + 0.5 * numpy.arange(2)[None, :]).ravel()
    return phase * (length / out) - 0.5


def _dynopool_alpha(rng) -> float:
    """A factor below 1 (enlarge) or above 1 (shrink), a multiple of 1/64 (exact in float16)."""
    value = rng.uniform(0.5, 0.95) if rng.random() < 0.4 else rng.uniform(1.05, 3.5)
    return float(numpy.round(value * 64) / 64)


def _dynopool(rng, op, space):
    """DynOPool with ``alpha`` as a (2,) array input in x's dtype, its gradient compared (the
    straight-through one) where it is defined.

    The output length ``round(L / alpha)`` must not sit near a rounding tie (L / alpha within 0.02 of a
    half-integer, where L / alpha computed in float16 and in float64 could round apart). Where a query point
    lies on a pixel coordinate (alpha = 2 on an even axis: max pooling), the value has a kink in
    alpha and its derivative is one-sided: such cases compare the gradient to x only.
    """
    N, C = draw_batch_channels(rng)
    for _ in range(1000):
        H, W = draw_ints(rng, 1, 8, 2)
        alpha = (_dynopool_alpha(rng), _dynopool_alpha(rng))
        ratios = (H / alpha[0], W / alpha[1])
        if all(abs(r - numpy.floor(r) - 0.5) > 0.02 for r in ratios):
            break
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    queries = numpy.concatenate([dynopool_queries(H, alpha[0]), dynopool_queries(W, alpha[1])])
    smooth = off_the_kinks(queries)
    arrays = {"x": smooth_values(rng, (N, C, H, W), dtype), "alpha": numpy.array(alpha, dtype=dtype)}
    kwargs = dict(aggregate=pick(rng, ("max", "avg")))
    return Case(op, arrays, kwargs, positional=("x", "alpha"), grad_inputs=("x", "alpha") if smooth else ("x",))


# --------------------------------------------------------------------------------------------------
# The ops of this family and their generators
# --------------------------------------------------------------------------------------------------
GENERATORS = {"grid_sample": _grid_sample, "interpolate": _interpolate, "dynopool2d": _dynopool}
