r"""Gradient-conservation laws and comparison helpers that users call from their own tests.

A pooling op routes each output's gradient back onto the inputs of its window. Summing the input
gradient therefore gives back how much gradient *mass* each window passes on:

* max pooling (and adaptive max, unpooling's adjoint): every window hands its whole gradient to one
  element, so ``sum(grad_x) == sum(grad_y)``, always;
* average pooling: window ``o`` hands ``grad_y[o] * valid_o / D_o`` to its valid elements, so
  ``sum(grad_x) == sum(grad_y * valid / D)``; ``valid / D = 1`` unless the divisor counts padding or
  is overridden (:func:`avg_pool_window_mass`);
* blur pooling (and max-blur pooling, whose max step conserves): window ``o`` hands ``grad_y[o]``
  times the binomial weights of its taps inside the input, which sum to 1 unless the window reaches
  the zero padding (:func:`blur_pool_window_mass`).
"""

from __future__ import annotations

import numpy

from .._backend import to_numpy
from .._checks import check_flag
from .._geometry import as_int_tuple, pool_geometry
from ..ops.blur import binomial_weights, blur_geometry

__all__ = ["assert_conserves_gradient", "assert_matches", "avg_pool_window_mass", "blur_pool_window_mass", "max_pool_window_mass"]


def avg_pool_window_mass(
    spatial_shape,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    *,
    dilation=1,
    convention="torch",
):
    r"""(O..) fraction of each average-pooling window's gradient that reaches the input: ``valid / D``.

    >>> avg_pool_window_mass((5,), 2, 2, ceil_mode=True).tolist()
    [1.0, 1.0, 1.0]
    >>> avg_pool_window_mass((4,), 3, 2, padding=1).tolist()
    [0.6666666666666666, 1.0]
    """
    geometry = pool_geometry(
        tuple(spatial_shape), kernel_size, stride, padding, dilation, ceil_mode, convention, "avg_pool_window_mass"
    )
    valid = geometry.divisor(count_padding=False)
    count_padding = bool(count_include_pad) and convention != "tensorflow"
    divisor = geometry.divisor(count_padding, divisor_override)
    # a window wholly in the padding (JAX's 'same' with dilation can place one) reaches no input
    # element: its mass is 0, not 0 / 0 (its output is NaN, and no gradient leaves it)
    return numpy.divide(valid, divisor, out=numpy.zeros(numpy.shape(valid)), where=numpy.asarray(valid) > 0)


def max_pool_window_mass(spatial_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                         convention="torch"):
    r"""(O..) 1 where a max-pooling window reads an input element, 0 where it lies wholly in the
    padding (JAX's ``'same'`` with a dilation can place one there: its output is the padding's -inf and
    its gradient reaches no input element). For finite inputs.

    >>> max_pool_window_mass((1,), 2, 3, "same", 2, convention="jax").tolist()  # taps -1 and 1 of a length-1 axis
    [0.0]
    >>> max_pool_window_mass((4,), 2, 2).tolist()
    [1.0, 1.0]
    """
    geometry = pool_geometry(
        tuple(spatial_shape), kernel_size, stride, padding, dilation, ceil_mode, convention, "max_pool_window_mass"
    )
    return (numpy.asarray(geometry.divisor(count_padding=False)) > 0).astype(numpy.float64)


def blur_pool_window_mass(spatial_shape, kernel_size, stride=2, *, max_pool_size=None):
    r"""(O_h, O_w) fraction of each blur-pooling window's gradient that reaches the input: the sum of
    the binomial weights :math:`w_i w_j` of its taps inside the input (1 away from the border).

    For :func:`poolref.max_blur_pool2d` pass its ``max_pool_size``: the blur then reads the max
    pool's ``(H - m + 1, W - m + 1)`` output, and the max pool hands on all it receives.

    >>> blur_pool_window_mass((4,), 3, 2).tolist()  # taps -1, 0, 1 and 1, 2, 3; weights 1/4 1/2 1/4
    [0.75, 1.0]
    >>> blur_pool_window_mass((3, 3), 3, 1, max_pool_size=2).tolist()
    [[0.5625, 0.5625], [0.5625, 0.5625]]
    """
    n = len(spatial_shape)
    kernel = as_int_tuple(kernel_size, n, "kernel_size", "blur_pool_window_mass")[0]
    strides = as_int_tuple(stride, n, "stride", "blur_pool_window_mass")
    if max_pool_size is not None:
        windows = as_int_tuple(max_pool_size, n, "max_pool_size", "blur_pool_window_mass")
        spatial_shape = tuple(L - m + 1 for L, m in zip(spatial_shape, windows))
    weights = numpy.array(binomial_weights(kernel))
    mass = numpy.ones(())
    for axis in blur_geometry(tuple(spatial_shape), kernel, strides).axes:
        mass = numpy.multiply.outer(mass, axis.inside() @ weights)  # (O,) the weight of the inside taps
    return mass


def assert_conserves_gradient(fn, x, *, cotangent=None, window_mass=1.0, seed=0, rtol=1e-10, atol=1e-10, **kwargs):
    r"""Assert ``sum(grad_x) == sum(cotangent * window_mass)`` for ``y = fn(x, **kwargs)``.

    ``cotangent`` defaults to a seeded random array shaped like ``y``; ``window_mass`` (broadcast
    against ``y``) is 1 for max-type ops (:func:`max_pool_window_mass` where a window can lie wholly
    in the padding), :func:`avg_pool_window_mass` for average pooling and
    :func:`blur_pool_window_mass` for blur and max-blur pooling. The
    sums are compared in float64.

    >>> import numpy as np, poolref
    >>> x = np.random.default_rng(0).normal(size=(2, 3, 7, 7))
    >>> assert_conserves_gradient(poolref.max_pool2d, x, kernel_size=3, stride=2, padding=1)
    """
    from ..autograd import vjp

    y, pullback = vjp(lambda t: fn(t, **kwargs), x)
    if isinstance(y, tuple):
        y = y[0]
    if cotangent is None:
        cotangent = numpy.random.default_rng(seed).normal(size=y.shape).astype(y.dtype)
    (grad_x,) = pullback(cotangent)
    got = float(numpy.sum(to_numpy(grad_x), dtype=numpy.float64))
    mass = numpy.broadcast_to(numpy.asarray(window_mass, dtype=numpy.float64), y.shape)
    want = float(numpy.sum(to_numpy(cotangent).astype(numpy.float64) * mass))
    if not numpy.isclose(got, want, rtol=rtol, atol=atol):
        raise AssertionError(
            f"gradient is not conserved: sum(grad_x) = {got!r} but sum(cotangent * window_mass) = {want!r} "
            f"(difference {got - want:.3e})"
        )


def assert_matches(actual, expected, *, rtol=1e-7, atol=0.0, equal_nan=True, zero_sign=False, what="output", x=None, window=None,
                   radius=2):
    r"""Assert two arrays agree (shape, and values within tolerance), with a readable diff of the first
    mismatch.

    The report gives the number of mismatches, the first mismatching index with both values and the
    largest absolute error, then the neighbourhood of that element in the last two axes, ``got`` above
    ``expected``, each mismatch marked with ``*``. Pass the op's input ``x`` and its windowed
    keywords ``window`` (``kernel_size``, ``stride``, ``padding``, ``dilation``, ``ceil_mode``,
    ``convention``) to also see the input *window* that produced the first mismatching output.

    Integer arrays (indices) must be equal; NaN equals NaN unless ``equal_nan=False``; an infinity
    equals only the same infinity; with ``zero_sign=True`` (max-type outputs) a zero must also carry
    the same sign.

    >>> import numpy as np
    >>> assert_matches(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> wrong = np.array([[[[5.0, 7.0], [13.0, 14.0]]]])  # a max pooling that lost the last column
    >>> assert_matches(wrong, np.array([[[[5.0, 7.0], [13.0, 15.0]]]]), x=x, window=dict(kernel_size=2))
    Traceback (most recent call last):
    ...
    AssertionError: output: 1 of 4 elements differ (rtol=1e-07, atol=0.0); first at index (0, 0, 1, 1): got 14.0, expected 15.0; max abs error 1.000e+00
    around (0, 0, 1, 1), rows 0..1, columns 0..1 (* marks a mismatch):
      got:
                 5          7
                13         14*
      expected:
                 5          7
                13         15
    input window of output (0, 0, 1, 1): rows 2..3, columns 2..3 of x[0, 0]:
                10         11
                14         15
    """
    equal_nan = check_flag(equal_nan, "equal_nan", "assert_matches")
    zero_sign = check_flag(zero_sign, "zero_sign", "assert_matches")
    actual, expected = to_numpy(actual), to_numpy(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != expected {expected.shape}")
    if actual.dtype.kind in "iub" or expected.dtype.kind in "iub":
        close = actual == expected
    else:
        close = numpy.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=equal_nan)
        if zero_sign:
            zeros = (actual == 0) & (expected == 0)
            close &= ~zeros | (numpy.signbit(actual) == numpy.signbit(expected))
    if close.all():
        return
    bad = numpy.argwhere(~close)
    first = tuple(int(i) for i in bad[0])
    with numpy.errstate(invalid="ignore"):
        error = numpy.abs(actual.astype(numpy.float64) - expected.astype(numpy.float64))
    lines = [
        f"{what}: {len(bad)} of {close.size} elements differ (rtol={rtol}, atol={atol}); first at index "
        f"{first}: got {actual[first].item()!r}, expected {expected[first].item()!r}; max abs error "
        f"{(numpy.nanmax(error) if numpy.isfinite(error).any() else float('nan')):.3e}"
    ]
    if actual.ndim:
        lines += _neighbourhood(actual, expected, close, first, radius)
    if x is not None and window is not None:
        lines += _input_window(to_numpy(x), window, first)
    raise AssertionError("\n".join(lines))


def _cell(value) -> str:
    if isinstance(value, (float, numpy.floating)):
        return f"{float(value):.6g}"
    return str(value)


def _grid(block, marks) -> list[str]:
    """Rows of right-aligned cells, ``*`` after each marked one."""
    block = numpy.atleast_2d(block)
    marks = numpy.atleast_2d(marks)
    return ["    " + "".join(f"{_cell(v):>11}{'*' if m else ' '}" for v, m in zip(row, mark_row)).rstrip()
            for row, mark_row in zip(block, marks)]


def _neighbourhood(actual, expected, close, first, radius) -> list[str]:
    """The last one or two axes around ``first``, got above expected."""
    lead = first[:-2] if actual.ndim >= 2 else ()
    plane = tuple(lead)
    if actual.ndim >= 2:
        i, j = first[-2], first[-1]
        rows = slice(max(i - radius, 0), min(i + radius + 1, actual.shape[-2]))
        cols = slice(max(j - radius, 0), min(j + radius + 1, actual.shape[-1]))
        key = plane + (rows, cols)
        where = f"rows {rows.start}..{rows.stop - 1}, columns {cols.start}..{cols.stop - 1}"
    else:
        j = first[-1]
        cols = slice(max(j - radius, 0), min(j + radius + 1, actual.shape[-1]))
        key = (cols,)
        where = f"elements {cols.start}..{cols.stop - 1}"
    marks = ~close[key]
    return ([f"around {first}, {where} (* marks a mismatch):", "  got:"] + _grid(actual[key], marks)
            + ["  expected:"] + _grid(expected[key], numpy.zeros_like(marks)))


def _input_window(x, window: dict, first) -> list[str]:
    """The input taps of the output element ``first`` of a windowed op (padding shown as ``pad``)."""
    keywords = dict(window)
    kernel = keywords["kernel_size"]
    # spatial dims: from a tuple kernel, else (N, C, *spatial) is assumed
    n = len(kernel) if isinstance(kernel, (tuple, list)) else x.ndim - 2
    geometry = pool_geometry(
        x.shape[-n:], kernel, keywords.get("stride"), keywords.get("padding", 0), keywords.get("dilation", 1),
        keywords.get("ceil_mode", False), keywords.get("convention", "torch"), "assert_matches",
    )
    out = first[-n:]
    plane = first[:-n]
    taps = [axis.taps()[o] for axis, o in zip(geometry.axes, out)]  # per axis: the input positions read
    if n == 1:
        values = [[_tap(x, plane, (t,)) for t in taps[0]]]
        where = f"elements {taps[0][0]}..{taps[0][-1]}"
    else:
        # the last two axes; outer axes (3-D) at the window's first tap
        outer = tuple(int(t[0]) for t in taps[:-2])
        values = [[_tap(x, plane, outer + (int(r), int(c))) for c in taps[-1]] for r in taps[-2]]
        where = f"rows {taps[-2][0]}..{taps[-2][-1]}, columns {taps[-1][0]}..{taps[-1][-1]}"
        if outer:
            where = f"depth {outer[0]} (first tap), " + where
    lines = [f"input window of output {first}: {where} of x[{', '.join(map(str, plane))}]:"]
    lines += ["    " + "".join(f"{v:>11} " for v in row).rstrip() for row in values]
    return lines


def _tap(x, plane, position) -> str:
    if any(p < 0 or p >= L for p, L in zip(position, x.shape[len(plane):])):
        return "pad"
    return _cell(x[tuple(plane) + tuple(position)])
