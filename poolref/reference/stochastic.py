r"""Plain-loop references for fractional max pooling, stochastic pooling and mixed pooling.

The executable specification of SEMANTICS.md sections 6 and 7. Every function visits every (n, c)
plane, every output element and every window tap with ordinary Python loops, so that a reader can
check it against the rules line by line; the shipped, vectorised ops in :mod:`poolref.ops.stochastic`
are held equal to these functions in the tests. Arrays are batched, ``(N, C, *spatial)``; geometry
arguments arrive already resolved (tuples of ints, one per spatial dimension) and are not validated.

Randomness enters only as arrays the caller passes in (the fractional ``samples``, the stochastic
``uniforms``), never drawn here, so the references are deterministic functions of their arguments.
"""

from __future__ import annotations

import itertools

import numpy

from ._ieee import ieee
from .._running_max import TORCH, window_max
from .window import _flat_index, _padded_count, _taps_in_window, _unflat_index, _window, output_length

__all__ = [
    "SAMPLE_COLUMN",
    "fractional_intervals",
    "fractional_max_pool_reference",
    "fractional_max_pool_backward_reference",
    "stochastic_pool_reference",
    "stochastic_pool_backward_reference",
    "mixed_pool_reference",
    "mixed_pool_backward_reference",
]

# Which column of the samples places the windows of each spatial axis (outermost axis first).
# PyTorch 2.13: in 2-D column 0 is the width and column 1 the height; in 3-D columns 0, 1, 2 are
# time (depth), height and width. The two layouts differ.
SAMPLE_COLUMN = {2: (1, 0), 3: (0, 1, 2)}


def _accumulation_type(dtype):
    """The numpy scalar type sums run in: float32 for float16 input, else the input's own type."""
    dtype = numpy.dtype(dtype)
    return numpy.float32 if dtype == numpy.float16 else dtype.type


# --------------------------------------------------------------------------------------------------
# Fractional max pooling
# --------------------------------------------------------------------------------------------------
def fractional_intervals(u, L, O, k):
    r"""Starts of the ``O`` fractional windows of length ``k`` along an axis of length ``L``.

    Parameters
    ----------
    u : numpy floating scalar
        The plane's sample in ``[0, 1)``. Its type is the arithmetic's type: every operation below
        rounds to it, as PyTorch's CPU kernel computes in the input's dtype.
    L, O, k : int
        Input length, output length, kernel size (``O + k - 1 <= L``).

    Returns
    -------
    list of int
        :math:`s_i = \lfloor (i + u)\alpha \rfloor - \lfloor u\alpha \rfloor` for :math:`i < O - 1`,
        with :math:`\alpha = (L - k)/(O - 1)`, and :math:`s_{O-1} = L - k`.

    Examples
    --------
    >>> fractional_intervals(numpy.float64(0.5), 10, 4, 2)
    [0, 3, 5, 8]
    """
    scalar = type(u)
    starts = []
    if O > 1:
        alpha = scalar(L - k) / scalar(O - 1)
        for i in range(O - 1):
            # int() truncates toward zero, which is the floor here: every operand is non-negative
            starts.append(int(scalar(scalar(i) + u) * alpha) - int(u * alpha))
    starts.append(L - k)  # the last window ends at the end of the axis
    return starts


def fractional_max_pool_reference(x, kernel, output_size, samples):
    r"""Fractional max pooling by plain loops, with PyTorch's windows and argmax indices.

    Parameters
    ----------
    x : ndarray, shape (N, C, *spatial), 2 or 3 spatial dims
        Floating-point input.
    kernel, output_size : tuple of int
        Window size and output size, one per spatial dimension.
    samples : ndarray, shape (N, C, n)
        One sample per plane and axis, in ``[0, 1)``; converted to the dtype of ``x``. Column
        ``SAMPLE_COLUMN[n][a]`` places the windows of spatial axis ``a``.

    Returns
    -------
    y : ndarray, shape (N, C, *output_size), dtype of ``x``
    indices : ndarray of int64, same shape
        Flat index of each maximum within its plane (``h*W + w``, ``(t*H + h)*W + w``).

    Notes
    -----
    The window of output :math:`o` is the box :math:`\prod_a [s_a(o_a), s_a(o_a) + k_a)` with the
    starts of :func:`fractional_intervals`; :math:`y_o` is its maximum, scanned in row-major order
    with PyTorch's running max (:data:`poolref._running_max.TORCH`, applied by
    :func:`~poolref._running_max.window_max`): the scan starts with the window's first element and
    takes a later one ``if val > maxval or isnan(val)``: ties go to the first, a NaN wins and the
    last NaN is kept.

    Examples
    --------
    >>> x = numpy.arange(16.).reshape(1, 1, 4, 4)
    >>> y, i = fractional_max_pool_reference(x, (2, 2), (2, 2), numpy.zeros((1, 1, 2)))
    >>> y.tolist(), i.tolist()
    ([[[[5.0, 7.0], [13.0, 15.0]]]], [[[[5, 7], [13, 15]]]])
    """
    x = numpy.asarray(x)
    samples = numpy.asarray(samples).astype(x.dtype)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    n = len(spatial)
    y = numpy.empty((N, C) + tuple(output_size), dtype=x.dtype)
    indices = numpy.empty((N, C) + tuple(output_size), dtype=numpy.int64)
    for b, c in itertools.product(range(N), range(C)):
        # this plane's window starts along every axis
        starts = [
            fractional_intervals(samples[b, c, SAMPLE_COLUMN[n][a]], spatial[a], output_size[a], kernel[a])
            for a in range(n)
        ]
        for out_pos in itertools.product(*[range(O) for O in output_size]):
            first = tuple(starts[a][out_pos[a]] for a in range(n))
            taps = []
            for offsets in itertools.product(*[range(k) for k in kernel]):  # row-major scan
                position = tuple(s + m for s, m in zip(first, offsets))
                taps.append((x[(b, c) + position], _flat_index(position, spatial)))
            y[(b, c) + out_pos], indices[(b, c) + out_pos] = window_max(TORCH, taps, x.dtype)
    return y, indices


def fractional_max_pool_backward_reference(grad_y, indices, input_shape):
    r"""Gradient of fractional max pooling: each output gradient is added at its argmax.

    .. math:: \frac{\partial L}{\partial x_t} = \sum_{o \,:\, \mathrm{index}_o = t} \frac{\partial L}{\partial y_o}

    Overlapping windows that pick the same element accumulate. Summed in float64; returned in the
    dtype of ``grad_y``.

    >>> fractional_max_pool_backward_reference(numpy.array([[[1., 2.]]]), numpy.array([[[1, 1]]]), (1, 1, 3)).tolist()
    [[[0.0, 3.0, 0.0]]]
    """
    grad_y = numpy.asarray(grad_y)
    input_shape = tuple(input_shape)
    spatial = input_shape[2:]
    grad_x = numpy.zeros(input_shape, dtype=numpy.float64)
    for b, c in itertools.product(range(input_shape[0]), range(input_shape[1])):
        for out_pos in itertools.product(*[range(O) for O in grad_y.shape[2:]]):
            position = _unflat_index(int(indices[(b, c) + out_pos]), spatial)
            grad_x[(b, c) + position] += float(grad_y[(b, c) + out_pos])  # fan-in accumulates
    return grad_x.astype(grad_y.dtype)


# --------------------------------------------------------------------------------------------------
# Stochastic pooling (2-D, no padding)
# --------------------------------------------------------------------------------------------------
def _stochastic_windows(spatial, kernel, stride):
    """Output shape and, per output position, the window's taps in row-major order (no padding)."""
    out_shape = tuple(output_length(L, k, s, 0, 0, 1, False) for L, k, s in zip(spatial, kernel, stride))
    windows = {}
    for out_pos in itertools.product(*[range(O) for O in out_shape]):
        per_dim_taps = _window(out_pos, spatial, kernel, stride, (0,) * len(spatial), (1,) * len(spatial))
        windows[out_pos] = [position for position, _ in _taps_in_window(per_dim_taps)]
    return out_shape, windows


@ieee
def stochastic_pool_reference(x, kernel, stride, uniforms=None, training=True):
    r"""Stochastic pooling by plain loops.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        Non-negative input.
    kernel, stride : tuple of int
        Window geometry (no padding).
    uniforms : ndarray, shape (N, C, H_out, W_out), optional
        Training mode: one number ``u`` in ``[0, 1)`` per window (converted to the accumulation
        dtype, float32 for float16 input, as the shipped op does).
    training : bool
        Sample (True) or take the expectation (False).

    Returns
    -------
    y : ndarray, shape (N, C, H_out, W_out), dtype of ``x``
    sampled : ndarray of int64, same shape (training only)
        Flat in-plane index of the sampled element, -1 for a window summing to zero.

    Notes
    -----
    Training, per window with activations :math:`a_0, .., a_{K-1}` in row-major order and
    :math:`S = \sum a`: the sampled tap is the first :math:`j` whose cumulative sum
    :math:`c_j = a_0 + .. + a_j` exceeds :math:`u S` (so :math:`P(j) = a_j / S`); if rounding lets
    :math:`u S` reach :math:`c_{K-1}`, the last tap with :math:`a_j > 0`. Sums run in the
    accumulation dtype, tap by tap, as in the shipped op, so the two pick the same tap.
    Inference: :math:`y = \sum_i (a_i / S) a_i`, in float64. A window with :math:`S = 0` gives 0.

    Examples
    --------
    >>> x = numpy.array([[[[1., 3.], [0., 0.]]]])
    >>> stochastic_pool_reference(x, (2, 2), (2, 2), training=False).tolist()
    [[[[2.5]]]]
    >>> y, sampled = stochastic_pool_reference(x, (2, 2), (2, 2), numpy.array([[[[0.2]]]]))
    >>> y.tolist(), sampled.tolist()  # u*S = 0.8 < c_0 = 1: tap 0
    ([[[[1.0]]]], [[[[0]]]])
    """
    x = numpy.asarray(x)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    out_shape, windows = _stochastic_windows(spatial, kernel, stride)
    accumulate = _accumulation_type(x.dtype)
    y = numpy.zeros((N, C) + out_shape, dtype=numpy.float64)
    sampled = numpy.full((N, C) + out_shape, -1, dtype=numpy.int64)
    for b, c in itertools.product(range(N), range(C)):
        for out_pos, taps in windows.items():
            a = [x[(b, c) + position] for position in taps]
            if not training:
                total = sum(float(v) for v in a)
                if total > 0:
                    y[(b, c) + out_pos] = sum((float(v) / total) * float(v) for v in a)
                continue
            total = accumulate(0)
            for v in a:
                total = accumulate(total + accumulate(v))
            threshold = accumulate(accumulate(uniforms[(b, c) + out_pos]) * total)
            cumulative = accumulate(0)
            pick = None
            for j, v in enumerate(a):
                cumulative = accumulate(cumulative + accumulate(v))
                if cumulative > threshold:
                    pick = j
                    break
            if pick is None:  # u*S rounded up to S: the last positive tap (none if S = 0)
                positive = [j for j, v in enumerate(a) if v > 0]
                pick = positive[-1] if positive else None
            if pick is not None:
                y[(b, c) + out_pos] = float(a[pick])
                sampled[(b, c) + out_pos] = _flat_index(taps[pick], spatial)
    y = y.astype(x.dtype)
    return y if not training else (y, sampled)


@ieee
def stochastic_pool_backward_reference(grad_y, x, kernel, stride, sampled=None, training=True):
    r"""Gradient of stochastic pooling, by plain loops (float64 sums, returned in ``grad_y``'s dtype).

    Training (``sampled`` from :func:`stochastic_pool_reference`): each output gradient goes to the
    sampled element; a window summing to zero (``sampled == -1``) passes nothing.

    Inference: for every tap :math:`i` of window :math:`o` with :math:`S_o > 0`,

    .. math:: \frac{\partial L}{\partial a_i} \mathrel{+}= \frac{\partial L}{\partial y_o}
              \, \frac{2 a_i S_o - Q_o}{S_o^2}, \qquad S_o = \sum a, \quad Q_o = \sum a^2

    (overlapping windows accumulate).

    >>> x = numpy.array([[[[1., 3.], [0., 0.]]]])
    >>> # S = 4, Q = 10: (2*1*4 - 10)/16, (2*3*4 - 10)/16, (0 - 10)/16, (0 - 10)/16
    >>> stochastic_pool_backward_reference(numpy.ones((1, 1, 1, 1)), x, (2, 2), (2, 2), training=False).tolist()
    [[[[-0.125, 0.875], [-0.625, -0.625]]]]
    """
    grad_y = numpy.asarray(grad_y)
    x = numpy.asarray(x)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    _, windows = _stochastic_windows(spatial, kernel, stride)
    grad_x = numpy.zeros(x.shape, dtype=numpy.float64)
    for b, c in itertools.product(range(N), range(C)):
        for out_pos, taps in windows.items():
            g = float(grad_y[(b, c) + out_pos])
            if training:
                index = int(sampled[(b, c) + out_pos])
                if index >= 0:
                    grad_x[(b, c) + _unflat_index(index, spatial)] += g
                continue
            a = [float(x[(b, c) + position]) for position in taps]
            s = sum(a)
            q = sum(v * v for v in a)
            if s == 0:
                continue  # no distribution: zero gradient
            for position, v in zip(taps, a):
                grad_x[(b, c) + position] += g * (2 * v * s - q) / (s * s)
    return grad_x.astype(grad_y.dtype)


# --------------------------------------------------------------------------------------------------
# Mixed pooling
# --------------------------------------------------------------------------------------------------
def _mixed_windows(spatial, kernel, stride, padding):
    out_shape = tuple(output_length(L, k, s, p, p, 1, False) for L, k, s, p in zip(spatial, kernel, stride, padding))
    for out_pos in itertools.product(*[range(O) for O in out_shape]):
        per_dim_taps = _window(out_pos, spatial, kernel, stride, padding, (1,) * len(spatial))
        # PyTorch's avg_pool divisor with count_include_pad=True: taps inside the input or its padding
        divisor = _padded_count(per_dim_taps, spatial, padding)
        yield out_pos, list(_taps_in_window(per_dim_taps)), divisor


@ieee
def mixed_pool_reference(x, lam, kernel, stride, padding):
    r"""Mixed pooling by plain loops: ``lam * max + (1 - lam) * average``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    lam : float in [0, 1]
    kernel, stride, padding : tuple of int
        Symmetric padding per axis; no ceil mode, no dilation.

    Returns
    -------
    y : ndarray, shape (N, C, H_out, W_out), dtype of ``x`` (computed in float64)

    Notes
    -----
    .. math:: y_o = \lambda \max_{t \in W_o} x_t + (1 - \lambda) \frac{1}{D_o} \sum_{t \in W_o} x_t

    over the taps inside the input (padding is :math:`-\infty` for the max, 0 for the sum), with
    :math:`D_o` counting padding taps (PyTorch's ``count_include_pad=True``). A term of weight 0 is
    left out. The max follows PyTorch's scan (``val > max or isnan(val)``).

    >>> mixed_pool_reference(numpy.array([[[[1., 3.], [0., 4.]]]]), 0.25, (2, 2), (2, 2), (0, 0)).tolist()
    [[[[2.5]]]]
    """
    y, _ = _mixed(x, lam, kernel, stride, padding)
    return y


@ieee
def _mixed(x, lam, kernel, stride, padding):
    x = numpy.asarray(x)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    out_shape = tuple(output_length(L, k, s, p, p, 1, False) for L, k, s, p in zip(spatial, kernel, stride, padding))
    y = numpy.zeros((N, C) + out_shape, dtype=numpy.float64)
    argmax = numpy.zeros((N, C) + out_shape, dtype=numpy.int64)
    for b, c in itertools.product(range(N), range(C)):
        for out_pos, taps, divisor in _mixed_windows(spatial, kernel, stride, padding):
            # (value, flat index) of every tap in scan order, (None, None) for a padding tap
            scanned = [(x[(b, c) + position], _flat_index(position, spatial)) if inside else (None, None)
                       for position, inside in taps]
            # the max half is max pooling's: PyTorch's rule (first inside tap, then val > max or NaN)
            maxval, maxindex = window_max(TORCH, scanned, x.dtype)
            total = sum(float(value) for value, index in scanned if index is not None)
            value = 0.0
            if lam > 0:
                value += lam * float(maxval)
            if lam < 1:
                value += (1 - lam) * total / divisor
            y[(b, c) + out_pos] = value
            argmax[(b, c) + out_pos] = maxindex
    return y.astype(x.dtype), argmax


@ieee
def mixed_pool_backward_reference(grad_y, x, lam, kernel, stride, padding):
    r"""Gradient of mixed pooling: ``lam`` times max pooling's scatter plus ``1 - lam`` times the spread.

    .. math:: \frac{\partial L}{\partial x_t} = \lambda \sum_{o \,:\, \mathrm{index}_o = t} g_o
              + (1 - \lambda) \sum_{o \,:\, t \in W_o} \frac{g_o}{D_o}

    >>> x = numpy.array([[[[1., 3.], [0., 4.]]]])
    >>> mixed_pool_backward_reference(numpy.ones((1, 1, 1, 1)), x, 0.5, (2, 2), (2, 2), (0, 0)).tolist()
    [[[[0.125, 0.125], [0.125, 0.625]]]]
    """
    grad_y = numpy.asarray(grad_y)
    x = numpy.asarray(x)
    spatial = x.shape[2:]
    _, argmax = _mixed(x, lam, kernel, stride, padding)
    grad_x = numpy.zeros(x.shape, dtype=numpy.float64)
    for b, c in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for out_pos, taps, divisor in _mixed_windows(spatial, kernel, stride, padding):
            g = float(grad_y[(b, c) + out_pos])
            if lam > 0:
                grad_x[(b, c) + _unflat_index(int(argmax[(b, c) + out_pos]), spatial)] += lam * g
            if lam < 1:
                for position, inside in taps:
                    if inside:
                        grad_x[(b, c) + position] += (1 - lam) * g / divisor
    return grad_x.astype(grad_y.dtype)
