r"""Plain-loop reference for Lp pooling (power-average pooling), forward and backward.

The executable specification of SEMANTICS.md's Lp-pooling rules, on the window geometry of
:mod:`poolref.reference.window` (same resolved arguments, same taps, same row-major scan):

.. math::

    y_o = \Big(c_o \sum_{t \in W_o} f(x_t)\Big)^{1/p},\qquad
    f(x) = x^p \ (\text{"torch"}),\quad f(x) = |x|^p \ (\text{"onnx"}, \text{"jax"}),

with ``c_o`` PyTorch's rescaling of partial ceil-mode windows under "torch" and 1 otherwise; and,
under "torch" only, ``p = inf`` and ``p = -inf`` as PyTorch computes them (not as limits of the
formula): max pooling of ``|x|``, and minus max pooling of ``-|x|`` (:func:`lp_pool_inf_reference`).
Every function loops over every output element and every tap; nothing is vectorised.
"""

from __future__ import annotations

import itertools
import math

import numpy

from .._running_max import TORCH, window_max
from .window import _output_shape, _padded_count, _result_dtype, _taps_in_window, _window

__all__ = ["lp_pool_reference", "lp_pool_backward_reference", "lp_pool_inf_reference"]

LP_CONVENTIONS = ("torch", "onnx", "jax")  # "jax": the true norm of "onnx" (JAX has no Lp pooling)


# --------------------------------------------------------------------------------------------------
# Lp pooling
# --------------------------------------------------------------------------------------------------
def _check_lp_convention(convention):
    if convention not in LP_CONVENTIONS:
        raise ValueError(f"lp_pool reference: convention must be one of {LP_CONVENTIONS}, got {convention!r}")


def _lp_window_sum(x, b, c, per_dim_taps, p, convention):
    """Sum over the inside taps of ``x**p`` (torch) or ``|x|**p`` (onnx, jax), as a float64 scalar."""
    total = numpy.float64(0.0)
    for position, inside in _taps_in_window(per_dim_taps):
        if inside:  # padding contributes zero
            value = numpy.float64(x[(b, c) + position])
            if convention != "torch":
                value = abs(value)
            # numpy float power: a negative base with a fractional exponent gives NaN (not complex)
            total += value ** numpy.float64(p)
    return total


def _lp_scale(per_dim_taps, spatial, pad_end, kernel):
    """PyTorch's rescaling ``prod(kernel) / divisor`` (the count_include_pad divisor)."""
    divisor = _padded_count(per_dim_taps, spatial, pad_end)
    return numpy.float64(math.prod(kernel)) / numpy.float64(divisor) if divisor != 0 else numpy.float64(0.0)


def lp_pool_reference(x, p, kernel, stride, pad_begin, pad_end, dilation, ceil_mode, convention):
    r"""Lp (power-average) pooling by plain loops, in PyTorch's or ONNX's convention.

    Parameters
    ----------
    x : ndarray, shape (N, C, *spatial)
        Input.
    p : float
        The norm's power (``norm_type`` in PyTorch).
    kernel, stride, pad_begin, pad_end, dilation : tuple of int, length n
        Resolved window geometry.
    ceil_mode : bool
        See :func:`output_length`.
    convention : {"torch", "onnx", "jax"}
        Which formula (see Notes); ``"jax"`` is ``"onnx"``'s true norm (JAX has no Lp pooling).

    Returns
    -------
    y : ndarray, shape (N, C, *out)
        In the dtype of ``x`` (float64 for integer ``x``), computed in float64.

    Notes
    -----
    ``"torch"`` (PyTorch's ``lp_pool``, an average pool of ``x**p`` times ``prod(kernel)``):

    .. math::

        S_o = \frac{\prod_j k_j}{D_o} \sum_{t \text{ inside}} x_t^p, \qquad y_o = S_o^{1/p}

    where :math:`D_o` is the ``count_include_pad=True`` divisor of :func:`avg_pool_reference`. There
    is no absolute value: negative inputs with odd or fractional ``p`` give a signed result (``p = 1``)
    or NaN (a negative :math:`S` to a fractional power). A partial ceil-mode window is rescaled by
    :math:`\prod k / D_o`, so it reports more than its true sum: this is PyTorch's quirk, reproduced on
    purpose (``[1, 2, 3, 4, 5]``, ``p = 1``, ``k = s = 2``, ceil mode gives ``[3, 7, 10]``).

    ``"onnx"`` (``LpPool``): :math:`y_o = (\sum_{t \text{ inside}} |x_t|^p)^{1/p}`; padding contributes
    zero and nothing is rescaled (the same case gives ``[3, 7, 5]``).

    Backward (:func:`lp_pool_backward_reference`): torch
    :math:`\partial y_o / \partial x_t = y_o / S_o \cdot (\prod k / D_o) \cdot x_t^{p-1}`; onnx
    :math:`\operatorname{sign}(x_t) |x_t|^{p-1} y_o^{1-p}`; zero where :math:`S_o` (torch) or
    :math:`y_o` (onnx) is zero.

    Examples
    --------
    >>> x = numpy.array([[[1., 2., 3., 4., 5.]]])
    >>> lp_pool_reference(x, 1, (2,), (2,), (0,), (0,), (1,), True, "torch").tolist()
    [[[3.0, 7.0, 10.0]]]
    >>> lp_pool_reference(x, 1, (2,), (2,), (0,), (0,), (1,), True, "onnx").tolist()
    [[[3.0, 7.0, 5.0]]]
    """
    _check_lp_convention(convention)
    if math.isinf(p):
        return lp_pool_inf_reference(x, None, p, kernel, stride, pad_begin, pad_end, dilation, ceil_mode, convention)[0]
    x = numpy.asarray(x)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    out_shape = _output_shape(spatial, kernel, stride, pad_begin, pad_end, dilation, ceil_mode)
    y = numpy.zeros((N, C) + out_shape, dtype=numpy.float64)
    with numpy.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for b, c in itertools.product(range(N), range(C)):
            for out_pos in itertools.product(*[range(O) for O in out_shape]):
                per_dim_taps = _window(out_pos, spatial, kernel, stride, pad_begin, dilation)
                S = _lp_window_sum(x, b, c, per_dim_taps, p, convention)
                if convention == "torch":
                    S = S * _lp_scale(per_dim_taps, spatial, pad_end, kernel)
                # numpy float power: S < 0 with fractional 1/p is NaN, silently (PyTorch's quirk)
                y[(b, c) + out_pos] = S ** (numpy.float64(1.0) / numpy.float64(p))
    return y.astype(_result_dtype(x.dtype))


def lp_pool_backward_reference(grad_y, x, p, kernel, stride, pad_begin, pad_end, dilation, ceil_mode, convention):
    r"""Gradient of Lp pooling (see :func:`lp_pool_reference` for the formulas).

    Parameters
    ----------
    grad_y : ndarray, shape (N, C, *out)
        Gradient with respect to the output.
    x : ndarray, shape (N, C, *spatial)
        The forward input (the gradient depends on it).
    p, kernel, stride, pad_begin, pad_end, dilation, ceil_mode, convention
        As in :func:`lp_pool_reference`.

    Returns
    -------
    grad_x : ndarray, shape of ``x``, dtype of ``grad_y`` (float64 for integers)

    Notes
    -----
    With :math:`S_o = c_o \sum_{t \text{ inside}} f(x_t)` (torch: :math:`f(x) = x^p` and
    :math:`c_o = \prod k / D_o`; onnx and jax: :math:`f(x) = |x|^p`, :math:`c_o = 1`) and
    :math:`y_o = S_o^{1/p}`, the chain rule gives

    .. math::

        \frac{\partial y_o}{\partial x_t} = \underbrace{\tfrac{1}{p} S_o^{1/p - 1}}_{\partial y / \partial S}
                                          \; c_o \, f'(x_t), \qquad
        f'(x) = p\, x^{p-1} \ \text{(torch)}, \quad p \operatorname{sign}(x) |x|^{p-1} \ \text{(onnx, jax)}

    :math:`\partial y / \partial S` is taken as that power of :math:`S_o`, not as
    :math:`y_o / (p S_o)`: for an infinite :math:`S_o` it is 0 (``p > 1``) or 1 (``p = 1``), where
    the quotient would be NaN. poolref's rules where the derivative does not exist: zero where
    :math:`S_o = 0` (the norm has no derivative there), and, for ``p < 1``, zero where
    :math:`x_t = 0` (:math:`|x|^p` has none there). Contributions of overlapping windows accumulate;
    padding taps receive nothing, and a cell that no window reads gets 0 whatever it holds.

    Examples
    --------
    For ``p = 2`` (onnx) the gradient of a window's norm is ``x / y``: with ``[3, 4]``, ``y = 5``.

    >>> lp_pool_backward_reference(numpy.ones((1, 1, 1)), numpy.array([[[3., 4.]]]), 2, (2,), (2,),
    ...                            (0,), (0,), (1,), False, "onnx").tolist()
    [[[0.6, 0.8]]]
    """
    _check_lp_convention(convention)
    if math.isinf(p):
        return lp_pool_inf_reference(x, grad_y, p, kernel, stride, pad_begin, pad_end, dilation, ceil_mode, convention)[1]
    grad_y = numpy.asarray(grad_y)
    x = numpy.asarray(x)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    out_shape = _output_shape(spatial, kernel, stride, pad_begin, pad_end, dilation, ceil_mode)
    grad_x = numpy.zeros(x.shape, dtype=numpy.float64)
    p64 = numpy.float64(p)
    with numpy.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for b, c in itertools.product(range(N), range(C)):
            for out_pos in itertools.product(*[range(O) for O in out_shape]):
                per_dim_taps = _window(out_pos, spatial, kernel, stride, pad_begin, dilation)
                g = numpy.float64(grad_y[(b, c) + out_pos])
                S = _lp_window_sum(x, b, c, per_dim_taps, p, convention)
                scale = _lp_scale(per_dim_taps, spatial, pad_end, kernel) if convention == "torch" else numpy.float64(1.0)
                S = S * scale
                if S == 0:
                    continue  # poolref's rule: zero gradient where the window sum is zero
                dy_dS = S ** (numpy.float64(1.0) / p64 - 1) / p64
                for position, inside in _taps_in_window(per_dim_taps):
                    if not inside:
                        continue  # padding receives nothing
                    xt = numpy.float64(x[(b, c) + position])
                    if p64 < 1 and xt == 0:
                        continue  # poolref's rule: |x|^p has no derivative at 0 for p < 1; zero
                    if convention == "torch":
                        df_dx = p64 * xt ** (p64 - 1)
                    else:
                        df_dx = p64 * numpy.sign(xt) * abs(xt) ** (p64 - 1)
                    grad_x[(b, c) + position] += g * dy_dS * scale * df_dx
    return grad_x.astype(_result_dtype(grad_y.dtype))


def lp_pool_inf_reference(x, grad_y, p, kernel, stride, pad_begin, pad_end, dilation, ceil_mode, convention="torch"):
    r"""PyTorch's Lp pooling for ``p = inf`` and ``p = -inf``, forward and backward, by plain loops.

    PyTorch 2.13's ``lp_pool{1,2,3}d`` test ``norm_type`` before their power formula and return
    ``max_pool(|x|)`` for ``inf`` and ``-max_pool(-|x|)`` for ``-inf``: with :math:`s = \pm 1`,

    .. math::

        y_o = s \max_{t \in W_o} s |x_t|, \qquad
        \frac{\partial L}{\partial x_t} = \operatorname{sgn}(x_t)\, s \sum_{o:\ t \text{ wins } W_o}
        s \frac{\partial L}{\partial y_o}

    where the winner is max pooling's (PyTorch's rule: the first of ties, the last NaN; see
    :func:`poolref._running_max.window_max`) and :math:`\operatorname{sgn}` is ``torch.sgn``: 0 at
    zero and at NaN, so a NaN winner passes no gradient (NaN for an infinite or NaN upstream
    gradient). Nothing is rescaled in ceil mode: a partial window is the largest ``|x|`` it holds.
    Only ``convention="torch"`` has it (ONNX LpPool's ``p`` is an integer).

    Parameters
    ----------
    x : ndarray, shape (N, C, *spatial)
    grad_y : ndarray, shape (N, C, *out), or None
        The gradient with respect to the output; None for the forward only.
    p : float
        ``inf`` or ``-inf``.
    kernel, stride, pad_begin, pad_end, dilation, ceil_mode
        As in :func:`lp_pool_reference`.
    convention : "torch"

    Returns
    -------
    y : ndarray, shape (N, C, *out), dtype of ``x``
    grad_x : ndarray, shape of ``x``, or None when ``grad_y`` is None

    Examples
    --------
    >>> x = numpy.array([[[-3., 1., 2., -2., 0.5]]])
    >>> y, g = lp_pool_inf_reference(x, numpy.ones((1, 1, 3)), numpy.inf, (2,), (2,), (0,), (0,), (1,), True)
    >>> y.tolist(), g.tolist()  # the last window holds 0.5 only (no rescaling); ties go to the first
    ([[[3.0, 2.0, 0.5]]], [[[-1.0, 0.0, 1.0, -0.0, 1.0]]])
    """
    if convention != "torch" or not math.isinf(p):
        raise ValueError(f"lp_pool_inf_reference: PyTorch's p = +-inf under convention='torch' only, got p={p!r}, convention={convention!r}")
    sign = 1.0 if p > 0 else -1.0
    x = numpy.asarray(x)
    N, C = x.shape[:2]
    spatial = x.shape[2:]
    out_shape = _output_shape(spatial, kernel, stride, pad_begin, pad_end, dilation, ceil_mode)
    y = numpy.empty((N, C) + out_shape, dtype=x.dtype)
    scattered = numpy.zeros(x.shape, dtype=numpy.float64)  # sum of s g_o over the windows t wins
    for b, c in itertools.product(range(N), range(C)):
        for out_pos in itertools.product(*[range(O) for O in out_shape]):
            taps = [(sign * abs(x[(b, c) + position]), position) if inside else (None, None)
                    for position, inside in _taps_in_window(_window(out_pos, spatial, kernel, stride, pad_begin, dilation))]
            best, winner = window_max(TORCH, taps, x.dtype)
            y[(b, c) + out_pos] = sign * best
            if grad_y is not None and winner is not None:
                with numpy.errstate(invalid="ignore", over="ignore"):  # inf + (-inf) is NaN, as it should be
                    scattered[(b, c) + winner] += sign * numpy.float64(grad_y[(b, c) + out_pos])
    if grad_y is None:
        return y, None
    grad_x = numpy.zeros(x.shape, dtype=numpy.float64)
    with numpy.errstate(invalid="ignore"):
        for t in itertools.product(*[range(L) for L in x.shape]):
            value = numpy.float64(x[t])
            sgn = 1.0 if value > 0 else (-1.0 if value < 0 else 0.0)  # torch.sgn: 0 at 0 and at NaN
            grad_x[t] = (sign * scattered[t]) * sgn
    return y, grad_x.astype(_result_dtype(numpy.asarray(grad_y).dtype))
