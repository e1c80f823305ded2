r"""Plain-loop references for windowed pooling: max, average, max-unpool, forward and backward.

This module is the executable specification of SEMANTICS.md sections 1-4 (Lp pooling is in
:mod:`poolref.reference.lp_pool`, on the same window geometry). Every function visits every
output element and every window tap with ordinary Python loops, so that a reader can check it against
the rules line by line. Nothing here is vectorised and nothing here is fast: the functions are meant
for tiny arrays in tests and documentation, where they are held equal to the shipped versions.

Arrays are channels-first, ``(N, C, *spatial)`` with ``n = x.ndim - 2`` spatial dimensions (any
``n >= 1``; pooling uses 1, 2 or 3). The geometry arguments are already resolved: ``kernel``,
``stride``, ``dilation``, ``pad_begin`` and ``pad_end`` are tuples of ``n`` ints, one per spatial
dimension, and are not validated here.

Along one dimension of length ``L``, output position ``o`` reads the *taps*

.. math::

    t_m = o s - p_{begin} + m d, \qquad m = 0, \dots, k - 1,

and a tap is *inside* when ``0 <= t_m < L``; the others lie in the padding (or beyond it, in ceil
mode). A window in ``n`` dimensions is the Cartesian product of its per-dimension taps, scanned in
row-major order (last spatial dimension fastest).

The same formula covers ``lax.reduce_window``'s geometry (``convention="jax"``): a negative pad
removes cells (``p_begin < 0`` moves every window into the input, ``p_end < 0`` shortens the output),
so no tap ever reads a removed cell; a window may lie wholly in padding (no inside tap), and the
output may be empty (:func:`output_length` is then clamped at 0).
"""

from __future__ import annotations

import itertools
import math

import numpy

from .._running_max import MAX_POOL_RULES, TORCH, window_max

__all__ = [
    "output_length",
    "window_taps",
    "max_pool_reference",
    "max_pool_backward_reference",
    "avg_pool_reference",
    "avg_pool_backward_reference",
    "max_unpool_reference",
    "max_unpool_backward_reference",
]

# --------------------------------------------------------------------------------------------------
# Geometry along one dimension
# --------------------------------------------------------------------------------------------------
def output_length(L, k, s, pb, pe, d, ceil_mode):
    r"""Number of windows along one dimension (PyTorch's and ONNX's rule).

    Parameters
    ----------
    L : int
        Input length.
    k, s : int
        Kernel size and stride.
    pb, pe : int
        Padding at the beginning and at the end.
    d : int
        Dilation.
    ceil_mode : bool
        Round the number of strides up instead of down.

    Returns
    -------
    int
        The output length ``O``. Nothing is validated: a result below 1 is returned as it is.

    Notes
    -----
    With the effective kernel :math:`k_{eff} = d (k - 1) + 1`,

    .. math::

        O = \left\lfloor \frac{L + p_b + p_e - k_{eff}}{s} \right\rfloor + 1

    (ceiling instead of floor in ceil mode). In ceil mode the last window may then start in the end
    padding; such a window would see no input, so it is dropped: if :math:`(O - 1) s \ge L + p_b`,
    :math:`O \leftarrow O - 1`.

    Examples
    --------
    ``L = 5, k = 2, s = 2``: two whole windows, and a third, partial one in ceil mode.

    >>> output_length(5, 2, 2, 0, 0, 1, False), output_length(5, 2, 2, 0, 0, 1, True)
    (2, 3)

    ``L = 4, k = 2, s = 2, p = 1``: ceil((4 + 2 - 2) / 2) + 1 = 3, and the third window starts at
    ``2*2 - 1 = 3 < 4``, inside the input, so it stays.

    >>> output_length(4, 2, 2, 1, 1, 1, True)
    3
    """
    k_eff = d * (k - 1) + 1
    span = L + pb + pe - k_eff
    # integer floor and ceiling of span / s (span may be negative; Python's // floors)
    if ceil_mode:
        out = -((-span) // s) + 1
    else:
        out = span // s + 1
    if ceil_mode and (out - 1) * s >= L + pb:
        # the last window would start in the end padding: PyTorch drops it
        out -= 1
    return out


def window_taps(o, L, k, s, pb, d):
    r"""The taps of output position ``o`` along one dimension.

    Parameters
    ----------
    o : int
        Output position.
    L, k, s, pb, d : int
        Input length, kernel, stride, padding at the beginning, dilation.

    Returns
    -------
    list of (int, bool)
        ``(position, inside)`` for ``m = 0 .. k-1``, where :math:`position = o s - p_b + m d` and
        ``inside`` is :math:`0 \le position < L`.

    Examples
    --------
    >>> window_taps(0, 4, 3, 2, 1, 1)
    [(-1, False), (0, True), (1, True)]
    >>> window_taps(2, 4, 3, 2, 1, 1)
    [(3, True), (4, False), (5, False)]
    """
    taps = []
    for m in range(k):
        position = o * s - pb + m * d
        taps.append((position, 0 <= position < L))
    return taps


# --------------------------------------------------------------------------------------------------
# Small helpers (kept explicit rather than hidden in numpy.ravel_multi_index)
# --------------------------------------------------------------------------------------------------
def _flat_index(position, shape):
    """Row-major flat index of ``position`` in an array of ``shape``: ``(d*H + h)*W + w`` for 3-D."""
    index = 0
    for p, size in zip(position, shape):
        index = index * size + p
    return index


def _unflat_index(index, shape):
    """Inverse of :func:`_flat_index`: the position tuple of a row-major flat ``index``."""
    position = []
    for size in reversed(shape):
        position.append(index % size)
        index //= size
    return tuple(reversed(position))


def _output_shape(spatial, kernel, stride, pad_begin, pad_end, dilation, ceil_mode):
    """Output spatial shape: :func:`output_length` in each dimension, at least 0.

    A length below 1 is refused by every convention but ``"jax"``, where ``lax.reduce_window`` returns
    an empty output for a padded axis shorter than the window.
    """
    return tuple(
        max(output_length(L, k, s, pb, pe, d, ceil_mode), 0)
        for L, k, s, pb, pe, d in zip(spatial, kernel, stride, pad_begin, pad_end, dilation)
    )


def _window(out_pos, spatial, kernel, stride, pad_begin, dilation):
    """Per-dimension tap lists of the window at ``out_pos`` (a tuple of output positions)."""
    return [
        window_taps(o, L, k, s, pb, d)
        for o, L, k, s, pb, d in zip(out_pos, spatial, kernel, stride, pad_begin, dilation)
    ]


def _taps_in_window(per_dim_taps):
    """Every tap of an n-D window in row-major order: yields ``(position tuple, inside)``.

    ``itertools.product`` varies its last argument fastest, which is the row-major scan order.
    """
    for combo in itertools.product(*per_dim_taps):
        position = tuple(p for p, _ in combo)
        inside = all(i for _, i in combo)
        yield position, inside


def _result_dtype(dtype):
    """Floating inputs keep their dtype; anything else (integers) gets float64 for averages."""
    dtype = numpy.dtype(dtype)
    return dtype if dtype.kind == "f" else numpy.dtype(numpy.float64)


def _padded_count(per_dim_taps, spatial, pad_end):
    """Taps counted when padding counts: position ``< L + p_end`` in every dimension.

    PyTorch: ``pool_size = min(start + k, L + p) - start``, a product over dimensions. The explicit
    padding is counted; the ceil-mode overhang beyond the end padding is not. With dilation the same
    rule counts the taps that fall before ``L + p_end``.
    """
    count = 1
    for taps, L, pe in zip(per_dim_taps, spatial, pad_end):
        count *= sum(1 for position, _ in taps if position < L + pe)
    return count


def _inside_count(per_dim_taps):
    """Taps inside the input: the product over dimensions of the per-dimension inside counts."""
    count = 1
    for taps in per_dim_taps:
        count *= sum(1 for _, inside in taps if inside)
    return count


# --------------------------------------------------------------------------------------------------
# Max pooling
# --------------------------------------------------------------------------------------------------
def max_pool_reference(x, kernel, stride, pad_begin, pad_end, dilation, ceil_mode, rule="torch"):
    r"""Max pooling by plain loops, with PyTorch's argmax indices.

    Parameters
    ----------
    x : ndarray, shape (N, C, *spatial)
        Input, any real dtype (integers allowed).
    kernel, stride, pad_begin, pad_end, dilation : tuple of int, length n
        Resolved window geometry.
    ceil_mode : bool
        See :func:`output_length`.
    rule : str or :class:`poolref._running_max.MaxRule`
        The running max: a convention (``"torch"``, ``"onnx"``, ``"tensorflow"``, ``"jax"``) or a rule
        such as ``TENSORFLOW_ARGMAX``.

    Returns
    -------
    y : ndarray, shape (N, C, *out), dtype of ``x``
        Window maxima.
    indices : ndarray of int64, shape (N, C, *out)
        Flat index of each winner within its ``(n, c)`` plane of the unpadded input (``h*W + w`` in
        2-D, ``(d*H + h)*W + w`` in 3-D); -1 where the window has no winner.

    Notes
    -----
    .. math::

        y_o = \max_{t \in \text{window}(o),\ t \text{ inside}} x_t

    Each window's taps are listed in row-major order and handed to
    :func:`poolref._running_max.window_max`, the plain-loop statement of every rule. PyTorch's rule
    (the default) follows its kernel exactly: the scan starts with the window's first inside tap,
    and a later tap is taken ``if val > maxval or isnan(val)``. Hence ties go to the FIRST tap (the
    first of ``[-0., 0.]`` in value and index), a window holding a NaN yields NaN, and the index kept
    is that of the LAST NaN; a window of only :math:`-\infty` keeps its first inside tap. Padding is
    never selected, except under ``"jax"``, where it competes as :math:`-\infty` (and a padding
    winner has index -1).

    A window may lie wholly in padding when dilation steps over the input (``L = 1, k = 2, d = 2,
    p = 1``: taps -1 and 1), which PyTorch accepts. Like PyTorch, the reference then returns
    :math:`-\infty` and PyTorch's initial index, that of the first tap at or after 0, which lies
    outside the plane (PyTorch's backward then writes out of bounds;
    :func:`max_pool_backward_reference` raises instead).

    Backward (:func:`max_pool_backward_reference`): :math:`\partial L / \partial x_t = \sum_{o:
    \text{index}(o) = t} \partial L / \partial y_o`.

    Examples
    --------
    >>> x = numpy.array([[[1, 3, 3, 2, 5]]])
    >>> y, idx = max_pool_reference(x, (2,), (2,), (0,), (0,), (1,), True)
    >>> y.tolist(), idx.tolist()
    ([[[3, 3, 5]]], [[[1, 2, 4]]])
    """
    rule = MAX_POOL_RULES[rule] if isinstance(rule, str) else rule
    x = numpy.asarray(x)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    out_shape = _output_shape(spatial, kernel, stride, pad_begin, pad_end, dilation, ceil_mode)
    y = numpy.empty((N, C) + out_shape, dtype=x.dtype)
    indices = numpy.empty((N, C) + out_shape, dtype=numpy.int64)

    for b, c in itertools.product(range(N), range(C)):
        for out_pos in itertools.product(*[range(O) for O in out_shape]):
            per_dim_taps = _window(out_pos, spatial, kernel, stride, pad_begin, dilation)
            # (value, flat index) of every tap in scan order; (None, None) for a padding tap
            taps = [
                (x[(b, c) + position], _flat_index(position, spatial)) if inside else (None, None)
                for position, inside in _taps_in_window(per_dim_taps)
            ]
            maxval, maxindex = window_max(rule, taps, x.dtype)
            if maxindex is None:
                maxindex = _torch_initial_index(out_pos, stride, pad_begin, dilation, spatial) if rule is TORCH else -1
            y[(b, c) + out_pos] = maxval
            indices[(b, c) + out_pos] = maxindex
    return y, indices


def _torch_initial_index(out_pos, stride, pad_begin, dilation, spatial):
    """PyTorch's ``maxindex`` before its scan: per dimension ``start = o*s - p; while start < 0: start += d``.

    It is the first inside tap of a window that has one; for a window wholly in padding it lies outside
    the plane, and PyTorch returns it.
    """
    first = []
    for o, s, pb, d in zip(out_pos, stride, pad_begin, dilation):
        start = o * s - pb
        while start < 0:
            start += d
        first.append(start)
    return _flat_index(first, spatial)


def max_pool_backward_reference(grad_y, indices, input_shape):
    r"""Gradient of max pooling: scatter-add each output gradient to its argmax.

    Parameters
    ----------
    grad_y : ndarray, shape (N, C, *out)
        Gradient with respect to the output.
    indices : ndarray of int, shape (N, C, *out)
        The indices returned by :func:`max_pool_reference` (flat within each ``(n, c)`` plane).
    input_shape : tuple of int
        ``(N, C, *spatial)`` of the input.

    Returns
    -------
    grad_x : ndarray, shape ``input_shape``, dtype of ``grad_y`` (float64 for integer ``grad_y``)

    Notes
    -----
    .. math::

        \frac{\partial L}{\partial x_t} = \sum_{o:\ \text{index}(o) = t} \frac{\partial L}{\partial y_o}

    Overlapping windows that pick the same input accumulate (``+=``), so the sum of ``grad_x`` equals
    the sum of ``grad_y``, less the outputs of index -1, which have no winner and send nothing. This
    is the adjoint of a gather (:func:`max_unpool_backward_reference`). Any other index outside the
    plane raises ``IndexError``: :func:`max_pool_reference` returns one only for a window that lies
    wholly in padding under PyTorch's rule (see its Notes).

    Examples
    --------
    >>> g = max_pool_backward_reference(numpy.array([[[1., 2., 4.]]]), numpy.array([[[1, 1, 4]]]), (1, 1, 5))
    >>> g.tolist()
    [[[0.0, 3.0, 0.0, 0.0, 4.0]]]
    """
    grad_y = numpy.asarray(grad_y)
    indices = numpy.asarray(indices)
    input_shape = tuple(input_shape)
    N, C = input_shape[:2]
    spatial = input_shape[2:]
    plane_size = math.prod(spatial)
    grad_x = numpy.zeros(input_shape, dtype=numpy.float64)
    for b, c in itertools.product(range(N), range(C)):
        for out_pos in itertools.product(*[range(O) for O in grad_y.shape[2:]]):
            index = int(indices[(b, c) + out_pos])
            if index == -1:
                continue  # no winner (a floor rule took nothing, or padding won): no gradient
            if not 0 <= index < plane_size:
                # only a window lying wholly in padding (possible with dilation) yields such an
                # index; PyTorch's backward then writes out of bounds, the reference refuses
                raise IndexError(
                    f"max_pool backward reference: index {index} at {(b, c) + out_pos} is outside a plane "
                    f"of {plane_size} elements (input spatial shape {tuple(spatial)})"
                )
            position = _unflat_index(index, spatial)
            grad_x[(b, c) + position] += float(grad_y[(b, c) + out_pos])  # fan-in accumulates
    return grad_x.astype(_result_dtype(grad_y.dtype))


# --------------------------------------------------------------------------------------------------
# Average pooling
# --------------------------------------------------------------------------------------------------
def _avg_divisor(per_dim_taps, spatial, pad_end, count_include_pad, divisor_override):
    """The number an average window divides by (SEMANTICS.md section 3)."""
    if divisor_override is not None:
        return divisor_override
    if count_include_pad:
        return _padded_count(per_dim_taps, spatial, pad_end)
    return _inside_count(per_dim_taps)


def avg_pool_reference(
    x, kernel, stride, pad_begin, pad_end, dilation, ceil_mode, count_include_pad, divisor_override
):
    r"""Average pooling by plain loops (PyTorch's divisors; dilation as in ONNX).

    Parameters
    ----------
    x : ndarray, shape (N, C, *spatial)
        Input.
    kernel, stride, pad_begin, pad_end, dilation : tuple of int, length n
        Resolved window geometry.
    ceil_mode : bool
        See :func:`output_length`.
    count_include_pad : bool
        Whether padding taps count in the divisor.
    divisor_override : int or None
        If not None, every window divides by it.

    Returns
    -------
    y : ndarray, shape (N, C, *out)
        Window averages, in the dtype of ``x`` (float64 for integer ``x``), summed in float64.

    Notes
    -----
    .. math::

        y_o = \frac{1}{D_o} \sum_{t \in \text{window}(o),\ t \text{ inside}} x_t

    with :math:`D_o` = ``divisor_override`` if given; else, with ``count_include_pad``, the number of
    taps before the end of the padding, :math:`\prod_j \#\{m : t_{j,m} < L_j + p_{e,j}\}` (padding is
    counted, the ceil-mode overhang beyond it is not: PyTorch's
    ``pool_size = min(start + k, L + p) - start``); else the number of inside taps. A zero divisor
    arises only under ``convention="jax"``, for a window wholly in padding without
    ``count_include_pad``: its empty sum 0 over its 0 inside taps is NaN, as JAX's
    ``reduce_window(x) / reduce_window(ones)`` gives (with ``count_include_pad`` it is 0 / prod(k) = 0).

    Backward (:func:`avg_pool_backward_reference`): every inside tap of window ``o`` receives
    :math:`g_o / D_o`; it is the transpose of this linear map.

    Examples
    --------
    SEMANTICS.md's worked case: the partial last window holds only ``5`` and divides by 1.

    >>> avg_pool_reference(numpy.array([[[1., 2., 3., 4., 5.]]]), (2,), (2,), (0,), (0,), (1,),
    ...                    True, True, None).tolist()
    [[[1.5, 3.5, 5.0]]]
    """
    x = numpy.asarray(x)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    out_shape = _output_shape(spatial, kernel, stride, pad_begin, pad_end, dilation, ceil_mode)
    y = numpy.zeros((N, C) + out_shape, dtype=numpy.float64)
    for b, c in itertools.product(range(N), range(C)):
        for out_pos in itertools.product(*[range(O) for O in out_shape]):
            per_dim_taps = _window(out_pos, spatial, kernel, stride, pad_begin, dilation)
            total = 0.0
            for position, inside in _taps_in_window(per_dim_taps):
                if inside:  # padding contributes zero to the sum
                    total += float(x[(b, c) + position])
            divisor = _avg_divisor(per_dim_taps, spatial, pad_end, count_include_pad, divisor_override)
            # 0 / 0 (a jax window wholly in padding) is NaN; Python's float division would raise
            y[(b, c) + out_pos] = total / divisor if divisor != 0 else math.nan
    return y.astype(_result_dtype(x.dtype))


def avg_pool_backward_reference(
    grad_y,
    input_shape,
    kernel,
    stride,
    pad_begin,
    pad_end,
    dilation,
    ceil_mode,
    count_include_pad,
    divisor_override,
):
    r"""Gradient of average pooling: each inside tap receives ``grad / divisor``.

    Parameters
    ----------
    grad_y : ndarray, shape (N, C, *out)
        Gradient with respect to the output.
    input_shape : tuple of int
        ``(N, C, *spatial)`` of the input.
    kernel, stride, pad_begin, pad_end, dilation, ceil_mode, count_include_pad, divisor_override
        As in :func:`avg_pool_reference`.

    Returns
    -------
    grad_x : ndarray, shape ``input_shape``, dtype of ``grad_y`` (float64 for integers)

    Notes
    -----
    .. math::

        \frac{\partial L}{\partial x_t} = \sum_{o:\ t \in \text{window}(o)} \frac{g_o}{D_o}

    with the same divisor :math:`D_o` as the forward; padding taps receive nothing.

    Examples
    --------
    >>> avg_pool_backward_reference(numpy.ones((1, 1, 3)), (1, 1, 5), (2,), (2,), (0,), (0,), (1,),
    ...                             True, True, None).tolist()
    [[[0.5, 0.5, 0.5, 0.5, 1.0]]]
    """
    grad_y = numpy.asarray(grad_y)
    input_shape = tuple(input_shape)
    N, C = input_shape[:2]
    spatial = input_shape[2:]
    out_shape = _output_shape(spatial, kernel, stride, pad_begin, pad_end, dilation, ceil_mode)
    grad_x = numpy.zeros(input_shape, dtype=numpy.float64)
    # an infinite gradient meeting its opposite makes NaN, silently (as it should)
    with numpy.errstate(invalid="ignore", over="ignore"):
        for b, c in itertools.product(range(N), range(C)):
            for out_pos in itertools.product(*[range(O) for O in out_shape]):
                per_dim_taps = _window(out_pos, spatial, kernel, stride, pad_begin, dilation)
                divisor = _avg_divisor(per_dim_taps, spatial, pad_end, count_include_pad, divisor_override)
                if divisor == 0:
                    continue  # a jax window wholly in padding: it has no inside tap to send anything to
                share = float(grad_y[(b, c) + out_pos]) / divisor
                for position, inside in _taps_in_window(per_dim_taps):
                    if inside:
                        grad_x[(b, c) + position] += share  # overlapping windows accumulate
    return grad_x.astype(_result_dtype(grad_y.dtype))


# --------------------------------------------------------------------------------------------------
# Max unpooling
# --------------------------------------------------------------------------------------------------
def max_unpool_reference(x, indices, output_spatial_size):
    r"""Max unpooling: put each value at its flat index in its ``(n, c)`` plane, zeros elsewhere.

    Parameters
    ----------
    x : ndarray, shape (N, C, *in)
        Values (typically the output of max pooling).
    indices : ndarray of int, shape (N, C, *in)
        Flat indices within each output plane (as returned by :func:`max_pool_reference`).
    output_spatial_size : tuple of int
        The spatial shape of the result.

    Returns
    -------
    y : ndarray, shape (N, C, *output_spatial_size), dtype of ``x``

    Notes
    -----
    :math:`y_{n,c}[\text{index}_{n,c,i}] = x_{n,c,i}`, every other element 0; when two inputs share an
    index, the later one in row-major order wins. An index outside the plane raises ``IndexError``.

    Backward (:func:`max_unpool_backward_reference`) is the gather
    :math:`\partial L / \partial x_{n,c,i} = g_{n,c}[\text{index}_{n,c,i}]`.

    Examples
    --------
    >>> max_unpool_reference(numpy.array([[[7, 9]]]), numpy.array([[[1, 3]]]), (4,)).tolist()
    [[[0, 7, 0, 9]]]
    """
    x = numpy.asarray(x)
    indices = numpy.asarray(indices)
    N, C = x.shape[:2]
    out_spatial = tuple(output_spatial_size)
    plane_size = math.prod(out_spatial)
    y = numpy.zeros((N, C) + out_spatial, dtype=x.dtype)
    for b, c in itertools.product(range(N), range(C)):
        for in_pos in itertools.product(*[range(L) for L in x.shape[2:]]):
            index = int(indices[(b, c) + in_pos])
            if not 0 <= index < plane_size:
                raise IndexError(
                    f"max_unpool reference: index {index} at {(b, c) + in_pos} is outside a plane of "
                    f"{plane_size} elements (output_spatial_size={out_spatial})"
                )
            y[(b, c) + _unflat_index(index, out_spatial)] = x[(b, c) + in_pos]  # later writes win
    return y


def max_unpool_backward_reference(grad_y, indices):
    r"""Gradient of max unpooling: gather ``grad_y`` at the indices.

    Parameters
    ----------
    grad_y : ndarray, shape (N, C, *out)
        Gradient with respect to the unpooled output.
    indices : ndarray of int, shape (N, C, *in)
        The indices given to :func:`max_unpool_reference`.

    Returns
    -------
    grad_x : ndarray, shape of ``indices``, dtype of ``grad_y``

    Notes
    -----
    .. math::

        \frac{\partial L}{\partial x_{n,c,i}} = g_{n,c}[\text{index}_{n,c,i}]

    the adjoint of the scatter in :func:`max_pool_backward_reference`.

    Examples
    --------
    >>> max_unpool_backward_reference(numpy.array([[[1., 2., 3., 4.]]]), numpy.array([[[1, 3]]])).tolist()
    [[[2.0, 4.0]]]
    """
    grad_y = numpy.asarray(grad_y)
    indices = numpy.asarray(indices)
    N, C = indices.shape[:2]
    out_spatial = grad_y.shape[2:]
    grad_x = numpy.zeros(indices.shape, dtype=grad_y.dtype)
    for b, c in itertools.product(range(N), range(C)):
        for in_pos in itertools.product(*[range(L) for L in indices.shape[2:]]):
            index = int(indices[(b, c) + in_pos])
            grad_x[(b, c) + in_pos] = grad_y[(b, c) + _unflat_index(index, out_spatial)]
    return grad_x
