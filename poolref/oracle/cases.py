"""Seeded case generation for the oracle: valid configurations and inputs for each op.

A case is an op name, an input and keyword arguments, drawn from a ``numpy.random.Generator`` so that
``--seed`` reproduces a run exactly. Max-type ops get distinct, well-separated values so that a
rounding difference can never flip an argmax; Lp pooling gets positive values (PyTorch's formula has
no absolute value).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from .._geometry import pool_geometry

__all__ = ["Case", "OPS", "generate_cases"]


class Case(NamedTuple):
    op: str
    x: numpy.ndarray
    kwargs: dict


def _windowed(rng, n, kind):
    """Draw torch-valid (spatial shape, kwargs) for a windowed op by rejection."""
    while True:
        kernel = tuple(int(v) for v in rng.integers(1, 4, n))
        stride = tuple(int(v) for v in rng.integers(1, 4, n))
        dilation = tuple(int(v) for v in rng.integers(1, 3, n)) if kind == "max" else (1,) * n
        # PyTorch's Lp pooling has no padding
        padding = tuple(int(rng.integers(0, k // 2 + 1)) if kind != "lp" else 0 for k in kernel)
        shape = tuple(int(v) for v in rng.integers(1, 9 if n < 3 else 6, n))
        ceil_mode = bool(rng.integers(0, 2))
        if kind == "avg" and n == 3 and any(L < k for L, k in zip(shape, kernel)):
            continue  # PyTorch's avg_pool3d alone refuses an input smaller than its kernel
        try:
            pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode, "torch", "oracle")
        except ValueError:
            continue
        kwargs = dict(kernel_size=kernel, stride=stride, ceil_mode=ceil_mode)
        if kind != "lp":
            kwargs["padding"] = padding
        if kind == "max":
            kwargs["dilation"] = dilation
        if kind == "avg":
            kwargs["count_include_pad"] = bool(rng.integers(0, 2))
            if n > 1 and rng.random() < 0.3:
                kwargs["divisor_override"] = int(rng.integers(1, 6))
        return shape, kwargs


def _distinct(rng, shape):
    size = int(numpy.prod(shape))
    return rng.permutation((numpy.arange(size) - size / 2) * 0.25).reshape(shape)


def _case(rng, op):
    n = int(op[-2]) if op[-2].isdigit() else 2
    batch = (int(rng.integers(1, 3)), int(rng.integers(1, 4)))
    if op.startswith(("max_pool", "avg_pool", "lp_pool")):
        kind = op.split("_")[0]
        shape, kwargs = _windowed(rng, n, kind)
        full = batch + shape
        if kind == "max":
            x = _distinct(rng, full)
        elif kind == "lp":
            x = rng.uniform(0.5, 2.0, full)
            kwargs = dict(norm_type=float(rng.choice([1.0, 2.0, 3.0, 1.5])), **kwargs)
        else:
            x = rng.uniform(-2.0, 2.0, full)
        return Case(op, x, kwargs)
    if op.startswith("adaptive"):
        shape = tuple(int(v) for v in rng.integers(1, 10 if n < 3 else 6, n))
        out = tuple(int(v) for v in rng.integers(1, 10 if n < 3 else 6, n))
        return Case(op, _distinct(rng, batch + shape), dict(output_size=out))
    raise KeyError(op)


OPS = (
    "max_pool1d", "max_pool2d", "max_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
)


def generate_cases(op: str, count: int, seed: int) -> list[Case]:
    """``count`` reproducible cases for ``op`` (the seed is mixed with the op's name)."""
    rng = numpy.random.default_rng([seed, sum(map(ord, op))])
    return [_case(rng, op) for _ in range(count)]
