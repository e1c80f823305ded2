r"""Hypothesis strategies for valid pooling configurations and inputs.

Use them in your own property tests, for example to check that your max pooling conserves gradient
mass over every configuration PyTorch accepts:

.. code-block:: python

    from hypothesis import given
    import poolref
    from poolref.testing import assert_conserves_gradient, strategies

    @given(strategies.pool_cases(n=2, op="max"))
    def test_max_pool_conserves_gradient(case):
        assert_conserves_gradient(poolref.max_pool2d, case.x, **case.kwargs)

Every configuration drawn is accepted by :func:`poolref._geometry.pool_geometry` under the requested
convention (so by PyTorch too under ``"torch"``). Inputs of max-type ops hold distinct, well-separated
values so that a finite-difference step cannot flip an argmax.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

try:
    from hypothesis import assume
    from hypothesis import strategies as st
except ModuleNotFoundError as missing:  # a plain install: the strategies need the test extra
    if missing.name != "hypothesis":
        raise
    raise ImportError(
        "poolref.testing.strategies needs hypothesis: pip install 'poolref[test]' (or pip install hypothesis)"
    ) from missing

from .._geometry import pool_geometry

__all__ = ["PoolCase", "pool_configs", "pool_cases", "distinct_values", "smooth_values", "adaptive_cases", "oracle_cases"]


class PoolCase(NamedTuple):
    """An input ``x`` and the keyword arguments of a windowed op (``kernel_size``, ``stride``, ...)."""

    x: numpy.ndarray
    kwargs: dict


def distinct_values(shape, seed: int, dtype=numpy.float64, spacing: float = 0.25) -> numpy.ndarray:
    """A seeded permutation of ``spacing * (k - size/2)``: distinct values, centred on zero."""
    size = int(numpy.prod(shape))
    values = (numpy.arange(size) - size / 2) * spacing
    return numpy.random.default_rng(seed).permutation(values).reshape(shape).astype(dtype)


def smooth_values(shape, seed: int, dtype=numpy.float64, low: float = -2.0, high: float = 2.0) -> numpy.ndarray:
    """Seeded uniform values in ``[low, high)``."""
    return numpy.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)


@st.composite
def pool_configs(
    draw,
    n: int = 2,
    *,
    op: str = "max",
    convention: str = "torch",
    max_kernel: int = 3,
    max_stride: int = 3,
    max_extra: int = 5,
    dilation: bool = True,
    padding: bool = True,
    string_padding: bool = False,
    asymmetric_padding: bool = False,
    overlapping: bool = True,
):
    """Draw ``(spatial_shape, kwargs)`` for a windowed op that ``convention`` accepts.

    ``op`` is ``"max"``, ``"avg"`` or ``"lp"``; it decides which keywords are drawn (average pooling
    gets ``count_include_pad`` and sometimes ``divisor_override``; PyTorch's average and Lp pooling
    have no dilation, so under ``"torch"`` it stays 1 for them).
    """
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(n))
    torch_without_dilation = convention == "torch" and op in ("avg", "lp")
    dil = tuple(draw(st.integers(1, 2)) for _ in range(n)) if dilation and not torch_without_dilation else (1,) * n
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
    # overlapping=False: every stride spans a whole dilated window, so no two windows share an element
    stride = tuple(draw(st.integers(1 if overlapping else span, max(max_stride, span))) for span in spans)
    if string_padding and padding and draw(st.booleans()):
        choices = ["valid", "same", "same_lower"] if convention != "tensorflow" else ["valid", "same"]
        padding = draw(st.sampled_from(choices))
        pad_pairs = ((0, 0),) * n
    elif asymmetric_padding and padding and convention != "torch" and draw(st.booleans()):
        padding = tuple((draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2))) for k in kernel)
        pad_pairs = padding
    else:
        padding = tuple(draw(st.integers(0, k // 2 if padding else 0)) for k in kernel)
        pad_pairs = tuple((p, p) for p in padding)
    shape = tuple(
        draw(st.integers(max(1, span - b - e), max(1, span - b - e) + max_extra))
        for span, (b, e) in zip(spans, pad_pairs)
    )
    ceil_mode = False if convention == "tensorflow" else draw(st.booleans())
    kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode, convention=convention)
    if op in ("max", "avg") or convention != "torch":
        kwargs["dilation"] = dil
    if op == "avg":
        kwargs["count_include_pad"] = draw(st.booleans())
        kwargs["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 5)))
    try:
        pool_geometry(shape, kernel, stride, padding, dil, ceil_mode, convention, "pool_configs")
    except ValueError:
        assume(False)
    return shape, kwargs


@st.composite
def pool_cases(draw, n: int = 2, *, op: str = "max", batch=(1, 2), channels=(1, 3), dtype=numpy.float64, positive=False, **config):
    """Draw a :class:`PoolCase`: a configuration from :func:`pool_configs` and a matching input.

    Max-type ops get distinct values (no ties, so no flipping argmax); others get smooth values,
    positive ones with ``positive=True`` (Lp pooling under PyTorch's formula).
    """
    shape, kwargs = draw(pool_configs(n, op=op, **config))
    full = (draw(st.integers(*batch)), draw(st.integers(*channels))) + shape
    seed = draw(st.integers(0, 2**32 - 1))
    if op == "max":
        x = distinct_values(full, seed, dtype)
    else:
        x = smooth_values(full, seed, dtype, *((0.5, 2.0) if positive else (-2.0, 2.0)))
    return PoolCase(x, kwargs)


@st.composite
def adaptive_cases(draw, n: int = 2, *, max_size: int = 9, dtype=numpy.float64, distinct=True):
    """Draw ``PoolCase(x, {"output_size": ...})`` for adaptive pooling (sizes up and down)."""
    shape = tuple(draw(st.integers(1, max_size)) for _ in range(n))
    out = tuple(draw(st.integers(1, max_size)) for _ in range(n))
    full = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + shape
    seed = draw(st.integers(0, 2**32 - 1))
    x = distinct_values(full, seed, dtype) if distinct else smooth_values(full, seed, dtype)
    return PoolCase(x, {"output_size": out})


def oracle_cases(op: str, **space):
    """Draw the oracle's cases of any op: a :class:`poolref.oracle.Case` (op, arrays, keywords).

    These are the configurations ``poolref check`` runs (:func:`poolref.cases.draw_case`;
    ``space`` keywords such as ``convention="onnx"``, ``padding=("same", "valid")`` or
    ``dtypes=("float32",)`` narrow them), so a property test of your own implementation covers what
    the oracle covers. Call poolref with ``poolref.oracle.engine.poolref_function(case)``, or spell the
    call out from ``case.arrays`` and ``case.kwargs``.

    >>> from hypothesis import given
    >>> import poolref
    >>> @given(oracle_cases("avg_pool2d", convention="tensorflow", padding=("same", "valid"), ceil_mode=False))
    ... def test_tensorflow_averages_are_means(case):
    ...     y = poolref.avg_pool2d(case.x, **case.kwargs)
    ...     assert y.shape[:2] == case.x.shape[:2]
    >>> test_tensorflow_averages_are_means()
    """
    from ..cases import draw_case

    return st.integers(0, 2**63 - 1).map(lambda seed: draw_case(numpy.random.default_rng(seed), op, space))
