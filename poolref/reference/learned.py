r"""Plain-loop references for learned and smooth pooling: GeM, SoftPool, LSE, bilinear pooling.

The executable specification of SEMANTICS.md section 7 (the learned part). Every function visits
every (n, c) plane, every window and every element with ordinary Python loops and Python floats, and
uses the *textbook* formulas, unshifted: :math:`z^p` and :math:`e^{r x}` as written, and the
backward formulas as first derived, before any rewriting. The shipped ops in
:mod:`poolref.ops.learned` factor out the maximum to avoid overflow and rewrite their backward
accordingly; holding the two equal in tests checks that algebra. The price is that these
references overflow (Python raises ``OverflowError``) where :math:`z^p` or :math:`e^{r x}` leaves
the float64 range: use them on small, moderate values, as tests and documentation do.

Arrays are channels-first, ``(N, C, *spatial)``, at least one spatial dim (SoftPool: exactly two).
Results are float64.
"""

from __future__ import annotations

import itertools
import math

import numpy

from ._ieee import ieee
from .window import output_length

__all__ = [
    "gem_pool_reference",
    "gem_pool_backward_reference",
    "soft_pool2d_reference",
    "soft_pool2d_backward_reference",
    "lse_pool_reference",
    "lse_pool_backward_reference",
    "bilinear_pool_reference",
    "bilinear_pool_backward_reference",
]


def _planes(x):
    """Every (n, c) plane of ``x`` as ``(n, c, list of positions)``, positions in row-major order."""
    N, C = x.shape[:2]
    positions = list(itertools.product(*[range(s) for s in x.shape[2:]]))
    for b, c in itertools.product(range(N), range(C)):
        yield b, c, positions


def _kept_dims(x):
    """(N, C, 1, ..., 1): the output shape of a global op, spatial dims kept as size 1."""
    return tuple(x.shape[:2]) + (1,) * (x.ndim - 2)


def _clamp(value, eps):
    """``max(value, eps)``, with a NaN kept (Python's ``max`` would drop it depending on order)."""
    return value if (value >= eps or math.isnan(value)) else eps


# --------------------------------------------------------------------------------------------------
# GeM
# --------------------------------------------------------------------------------------------------
@ieee
def gem_pool_reference(x, p, eps):
    r"""GeM over every plane: :math:`y = (\frac{1}{S}\sum_i \max(x_i, \epsilon)^p)^{1/p}`.

    Parameters
    ----------
    x : ndarray, shape (N, C, *spatial)
    p, eps : float
        Exponent (> 0) and clamp floor (> 0).

    Returns
    -------
    y : ndarray of float64, shape (N, C, 1, ..., 1)

    Examples
    --------
    >>> gem_pool_reference(numpy.array([[[1., 2., 3.]]]), 1.0, 1e-6).tolist()
    [[[2.0]]]
    """
    x = numpy.asarray(x, dtype=numpy.float64)
    y = numpy.empty(_kept_dims(x))
    for b, c, positions in _planes(x):
        power_sum = 0.0
        for position in positions:
            z = _clamp(float(x[(b, c) + position]), eps)
            power_sum += z**p
        y[b, c].flat[0] = (power_sum / len(positions)) ** (1.0 / p)
    return y


@ieee
def gem_pool_backward_reference(grad_y, x, p, eps):
    r"""Gradients of GeM with respect to ``x`` and to ``p``, from the first derivation.

    Parameters
    ----------
    grad_y : ndarray, shape (N, C, 1, ..., 1)
    x : ndarray, shape (N, C, *spatial)
    p, eps : float

    Returns
    -------
    grad_x : ndarray of float64, shape of ``x``
    grad_p : float
        Summed over every plane.

    Notes
    -----
    With :math:`z_i = \max(x_i, \epsilon)`, :math:`m = \frac{1}{S}\sum_i z_i^p` and :math:`y = m^{1/p}`:

    .. math:: \frac{\partial y}{\partial x_i} = [x_i \ge \epsilon]\; \frac{1}{p}\, m^{1/p - 1}\,
              \frac{p\, z_i^{p-1}}{S}, \qquad
              \frac{\partial y}{\partial p} = y \Big(-\frac{\log m}{p^2}
              + \frac{1}{p\, m} \frac{1}{S}\sum_i z_i^p \log z_i\Big)

    (chain rule on :math:`y = \exp(\frac{1}{p}\log m)`).

    Examples
    --------
    At :math:`p = 1` the gradient to each unclamped element is :math:`1/S`:

    >>> gx, gp = gem_pool_backward_reference(numpy.ones((1, 1, 1)), numpy.array([[[-1., 2.]]]), 1.0, 0.5)
    >>> gx.tolist()
    [[[0.0, 0.5]]]
    """
    x = numpy.asarray(x, dtype=numpy.float64)
    grad_y = numpy.asarray(grad_y, dtype=numpy.float64)
    grad_x = numpy.zeros(x.shape)
    grad_p = 0.0
    for b, c, positions in _planes(x):
        S = len(positions)
        g = float(grad_y[b, c].flat[0])
        z = {position: _clamp(float(x[(b, c) + position]), eps) for position in positions}
        m = sum(z[position] ** p for position in positions) / S
        y = m ** (1.0 / p)
        dm_dp = sum(z[position] ** p * math.log(z[position]) for position in positions) / S
        grad_p += g * y * (-math.log(m) / p**2 + dm_dp / (p * m))
        for position in positions:
            if x[(b, c) + position] >= eps:  # the clamp lets the gradient through (x = eps included)
                dy_dz = (1.0 / p) * m ** (1.0 / p - 1.0) * p * z[position] ** (p - 1.0) / S
                grad_x[(b, c) + position] = g * dy_dz
    return grad_x, grad_p


# --------------------------------------------------------------------------------------------------
# SoftPool
# --------------------------------------------------------------------------------------------------
def _soft_windows(x, kernel, stride):
    """Every window of a 2-D SoftPool: ``(b, c, (oh, ow), list of (h, w) taps)``."""
    N, C, H, W = x.shape
    out_h = output_length(H, kernel[0], stride[0], 0, 0, 1, False)
    out_w = output_length(W, kernel[1], stride[1], 0, 0, 1, False)
    for b, c, oh, ow in itertools.product(range(N), range(C), range(out_h), range(out_w)):
        taps = [(oh * stride[0] + i, ow * stride[1] + j) for i in range(kernel[0]) for j in range(kernel[1])]
        yield b, c, (oh, ow), taps


def _soft_weights(values):
    """softmax of ``values``, written as the definition :math:`e^{x_i} / \\sum_j e^{x_j}`, and its limits.

    Where the definition is NaN the limit is taken: a NaN gives NaN weights; if the largest value
    is infinite (``+inf``, or ``-inf`` for a window of ``-inf`` only) the weight is shared equally
    by the values equal to it (they are the ones the softmax keeps as they grow, or fall, together);
    a ``-inf`` beside a finite maximum has weight :math:`e^{-\\infty} = 0`.
    """
    if any(math.isnan(v) for v in values):
        return [math.nan] * len(values)
    largest = max(values)
    if math.isinf(largest):
        top = [1.0 if v == largest else 0.0 for v in values]
        return [t / sum(top) for t in top]
    exps = [math.exp(v) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def _soft_value(weights, values):
    """:math:`\\sum_i w_i x_i`, where an element of weight 0 adds 0 (not :math:`0 \\cdot (-\\infty)`)."""
    return sum(wi * vi for wi, vi in zip(weights, values) if wi != 0)


def _soft_slope(wi, vi, y):
    """:math:`w_i (1 + x_i - y)`: 0 for an element of weight 0; :math:`x_i - y := 0` where both are
    the same infinity (the elements an infinite maximum keeps)."""
    if wi == 0:
        return 0.0
    return wi * (1.0 + (0.0 if vi == y else vi - y))


@ieee
def soft_pool2d_reference(x, kernel, stride):
    r"""SoftPool over (N, C, H, W): :math:`y = \sum_i \operatorname{softmax}(x)_i\, x_i` per window.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel, stride : (int, int)
        Windows as max pooling's, no padding, floor mode.

    Returns
    -------
    y : ndarray of float64, shape (N, C, H_out, W_out)

    Notes
    -----
    Non-finite values take the limits (:func:`_soft_weights`): a NaN gives NaN; a :math:`-\infty`
    has weight 0 and adds nothing; an infinite maximum gives :math:`y` that infinity.

    Examples
    --------
    >>> soft_pool2d_reference(numpy.array([[[[0., 0.], [0., math.log(3.)]]]]), (2, 2), (2, 2)).round(6).tolist()
    [[[[0.549306]]]]
    >>> soft_pool2d_reference(numpy.array([[[[-math.inf, 0.], [math.inf, -math.inf]]]]), (1, 2), (1, 2)).tolist()
    [[[[0.0], [inf]]]]
    """
    x = numpy.asarray(x, dtype=numpy.float64)
    N, C, H, W = x.shape
    y = numpy.empty((N, C, output_length(H, kernel[0], stride[0], 0, 0, 1, False),
                     output_length(W, kernel[1], stride[1], 0, 0, 1, False)))
    for b, c, out_pos, taps in _soft_windows(x, kernel, stride):
        values = [float(x[b, c, h, w]) for h, w in taps]
        y[(b, c) + out_pos] = _soft_value(_soft_weights(values), values)
    return y


@ieee
def soft_pool2d_backward_reference(grad_y, x, kernel, stride):
    r"""Gradient of SoftPool: each tap receives :math:`g\, w_i (1 + x_i - y)`, summed over windows.

    Parameters
    ----------
    grad_y : ndarray, shape (N, C, H_out, W_out)
    x : ndarray, shape (N, C, H, W)
    kernel, stride : (int, int)

    Returns
    -------
    grad_x : ndarray of float64, shape of ``x``

    Notes
    -----
    .. math:: \frac{\partial y}{\partial x_i} = \frac{\partial}{\partial x_i}\sum_j w_j x_j
              = w_i + \sum_j x_j\, w_j (\delta_{ij} - w_i) = w_i (1 + x_i - y)

    and its limits (:func:`_soft_slope`): 0 for an element of weight 0; :math:`1/m` for each of the
    :math:`m` elements equal to an infinite maximum. The upstream gradient multiplies each slope
    (IEEE: a NaN or infinite gradient times 0 is NaN).

    Examples
    --------
    Equal values: every weight is 1/4, so every tap receives 1/4 of the gradient.

    >>> soft_pool2d_backward_reference(numpy.ones((1, 1, 1, 1)), numpy.zeros((1, 1, 2, 2)), (2, 2), (2, 2)).tolist()
    [[[[0.25, 0.25], [0.25, 0.25]]]]
    """
    x = numpy.asarray(x, dtype=numpy.float64)
    grad_y = numpy.asarray(grad_y, dtype=numpy.float64)
    grad_x = numpy.zeros(x.shape)
    for b, c, out_pos, taps in _soft_windows(x, kernel, stride):
        values = [float(x[b, c, h, w]) for h, w in taps]
        weights = _soft_weights(values)
        y = _soft_value(weights, values)
        g = float(grad_y[(b, c) + out_pos])
        for (h, w), wi, vi in zip(taps, weights, values):
            grad_x[b, c, h, w] += g * _soft_slope(wi, vi, y)  # overlapping windows accumulate
    return grad_x


# --------------------------------------------------------------------------------------------------
# LSE
# --------------------------------------------------------------------------------------------------
@ieee
def lse_pool_reference(x, r):
    r"""LSE pooling over every plane: :math:`y = \frac{1}{r}\log(\frac{1}{S}\sum_i e^{r x_i})`.

    Parameters
    ----------
    x : ndarray, shape (N, C, *spatial)
    r : float
        Sharpness, > 0.

    Returns
    -------
    y : ndarray of float64, shape (N, C, 1, ..., 1)

    Examples
    --------
    >>> lse_pool_reference(numpy.array([[[0., math.log(3.)]]]), 1.0).round(8).tolist()
    [[[0.69314718]]]
    """
    x = numpy.asarray(x, dtype=numpy.float64)
    y = numpy.empty(_kept_dims(x))
    for b, c, positions in _planes(x):
        values = [float(x[(b, c) + position]) for position in positions]
        m = max(values) if not any(math.isnan(v) for v in values) else math.nan
        if not math.isfinite(m):  # NaN, or a plane whose largest value is +inf or -inf: that value
            y[b, c].flat[0] = m
            continue
        # y = m + log(mean(e^{r (x - m)})) / r, the mean written as 1 + mean(expm1(r (x - m))):
        # exact for values far apart (no overflow) and for values close together (no cancellation)
        mean_expm1 = math.fsum(math.expm1(r * (v - m)) for v in values) / len(values)
        y[b, c].flat[0] = m + math.log1p(mean_expm1) / r
    return y


@ieee
def lse_pool_backward_reference(grad_y, x, r):
    r"""Gradient of LSE pooling: :math:`\partial y / \partial x_i = e^{r x_i} / \sum_j e^{r x_j}`.

    Parameters
    ----------
    grad_y : ndarray, shape (N, C, 1, ..., 1)
    x : ndarray, shape (N, C, *spatial)
    r : float

    Returns
    -------
    grad_x : ndarray of float64, shape of ``x``

    Notes
    -----
    .. math:: \frac{\partial y}{\partial x_i} = \frac{1}{r}\cdot
              \frac{\frac{1}{S} r e^{r x_i}}{\frac{1}{S}\sum_j e^{r x_j}}

    the :math:`1/S` cancels.

    Examples
    --------
    >>> lse_pool_backward_reference(numpy.ones((1, 1, 1)), numpy.array([[[0., math.log(3.)]]]), 1.0).round(8).tolist()
    [[[0.25, 0.75]]]
    """
    x = numpy.asarray(x, dtype=numpy.float64)
    grad_y = numpy.asarray(grad_y, dtype=numpy.float64)
    grad_x = numpy.zeros(x.shape)
    for b, c, positions in _planes(x):
        S = len(positions)
        g = float(grad_y[b, c].flat[0])
        mean = numpy.float64(sum(math.exp(r * float(x[(b, c) + position])) for position in positions) / S)
        for position in positions:
            # numpy's division: 0 / 0 is NaN for a plane of -inf only (Python's raises), as in torch
            grad_x[(b, c) + position] = g * (1.0 / r) * (r * math.exp(r * float(x[(b, c) + position])) / S) / mean
    return grad_x


# --------------------------------------------------------------------------------------------------
# Bilinear pooling
# --------------------------------------------------------------------------------------------------
def _sign(value):
    """-1, 0 or 1 (and NaN for NaN), as ``numpy.sign``."""
    value = float(value)
    if math.isnan(value):
        return value
    return float(value > 0) - float(value < 0)


def _bilinear_steps(x, y, signed_sqrt, eps):
    """Per batch element: the products B (flattened), and s (after the optional signed sqrt)."""
    N, Cx = x.shape[:2]
    Cy = y.shape[1]
    positions = list(itertools.product(*[range(s) for s in x.shape[2:]]))
    P = len(positions)
    products = numpy.zeros((N, Cx * Cy))
    for b, c, d in itertools.product(range(N), range(Cx), range(Cy)):
        total = 0.0
        for position in positions:
            total += float(x[(b, c) + position]) * float(y[(b, d) + position])
        products[b, c * Cy + d] = total / P
    s = products.copy()
    if signed_sqrt:
        for b, k in itertools.product(range(N), range(Cx * Cy)):
            B = products[b, k]
            s[b, k] = _sign(B) * math.sqrt(abs(B) + eps)
    return products, s, positions


@ieee
def bilinear_pool_reference(x, y, signed_sqrt, l2_normalize, eps):
    r"""Bilinear pooling: :math:`B = \frac{1}{P}\sum_l x_l y_l^T` flattened, signed sqrt, L2 norm.

    Parameters
    ----------
    x : ndarray, shape (N, C_x, *spatial)
    y : ndarray, shape (N, C_y, *spatial), or None for ``x`` itself
    signed_sqrt, l2_normalize : bool
    eps : float
        In :math:`\operatorname{sign}(B)\sqrt{|B| + \epsilon}` and the norm's floor
        :math:`\max(\lVert s \rVert, \epsilon)`.

    Returns
    -------
    z : ndarray of float64, shape (N, C_x * C_y)
        ``B[c, d]`` at index ``c * C_y + d``.

    Examples
    --------
    >>> bilinear_pool_reference(numpy.array([[[1., 3.], [2., 4.]]]), None, False, False, 1e-12).tolist()
    [[5.0, 7.0, 7.0, 10.0]]
    """
    x = numpy.asarray(x, dtype=numpy.float64)
    y = x if y is None else numpy.asarray(y, dtype=numpy.float64)
    _, s, _ = _bilinear_steps(x, y, signed_sqrt, eps)
    if not l2_normalize:
        return s
    z = s.copy()
    for b in range(s.shape[0]):
        norm = math.sqrt(sum(v * v for v in s[b]))
        for k in range(s.shape[1]):
            z[b, k] = s[b, k] / max(norm, eps)
    return z


@ieee
def bilinear_pool_backward_reference(grad_z, x, y, signed_sqrt, l2_normalize, eps):
    r"""Gradients of bilinear pooling with respect to ``x`` and ``y``.

    Parameters
    ----------
    grad_z : ndarray, shape (N, C_x * C_y)
    x, y, signed_sqrt, l2_normalize, eps
        As for :func:`bilinear_pool_reference`.

    Returns
    -------
    grad_x : ndarray of float64, shape of ``x``
    grad_y : ndarray of float64, shape of ``y``; None when ``y`` is None (``grad_x`` then holds the
        gradient of both factors, which are both ``x``)

    Notes
    -----
    Each step's Jacobian written out. Normalisation, :math:`n = \lVert s \rVert`:
    :math:`\partial z_k / \partial s_j = (\delta_{kj} - z_k z_j)/n` when :math:`n \ge \epsilon`, else
    :math:`\delta_{kj}/\epsilon`. Signed sqrt: :math:`\partial s / \partial B =
    \operatorname{sign}(B)^2 / (2\sqrt{|B| + \epsilon})`. Products:
    :math:`\partial B_{cd} / \partial x_{cl} = y_{dl}/P`, :math:`\partial B_{cd} / \partial y_{dl} = x_{cl}/P`.

    Non-finite values follow IEEE arithmetic in PyTorch's order of evaluation (the order decides
    where ``inf - inf`` meets): the normalisation's sum over :math:`k` is taken before the
    subtraction, and with ``y`` None the two factors' gradients are summed separately, then added.

    Examples
    --------
    Without the normalisations, :math:`B = x^2` for one channel and one position: :math:`dB/dx = 2x`.

    >>> gx, gy = bilinear_pool_backward_reference(numpy.ones((1, 1)), numpy.array([[[3.]]]), None, False, False, 1e-12)
    >>> gx.tolist(), gy
    ([[[6.0]]], None)
    """
    x = numpy.asarray(x, dtype=numpy.float64)
    second = x if y is None else numpy.asarray(y, dtype=numpy.float64)
    grad_z = numpy.asarray(grad_z, dtype=numpy.float64)
    products, s, positions = _bilinear_steps(x, second, signed_sqrt, eps)
    N, K = products.shape
    Cx, Cy = x.shape[1], second.shape[1]
    P = len(positions)

    grad_s = grad_z.copy()
    if l2_normalize:
        for b in range(N):
            norm = math.sqrt(sum(v * v for v in s[b]))
            if norm < eps:  # z = s / eps: dz_k/ds_j = delta_kj / eps
                for j in range(K):
                    grad_s[b, j] = grad_z[b, j] / eps
                continue
            # sum_k g_k (delta_kj - z_k z_j) / n, with the sum over k taken first, as
            # F.normalize's backward does: (g_j - z_j sum_k z_k g_k) / n (the same number for finite
            # g; for an infinite g, the NaN of inf - inf that PyTorch's evaluation meets)
            radial = sum((s[b, k] / norm) * grad_z[b, k] for k in range(K))
            for j in range(K):
                grad_s[b, j] = (grad_z[b, j] - (s[b, j] / norm) * radial) / norm

    grad_products = grad_s.copy()
    if signed_sqrt:
        for b, k in itertools.product(range(N), range(K)):
            B = products[b, k]
            grad_products[b, k] = grad_s[b, k] * _sign(B) ** 2 / (2.0 * math.sqrt(abs(B) + eps))

    grad_x = numpy.zeros(x.shape)
    grad_second = numpy.zeros(second.shape)
    for b, c, d in itertools.product(range(N), range(Cx), range(Cy)):
        g = grad_products[b, c * Cy + d]
        for position in positions:
            grad_x[(b, c) + position] += g * float(second[(b, d) + position]) / P
            grad_second[(b, d) + position] += g * float(x[(b, c) + position]) / P
    if y is None:
        return grad_x + grad_second, None  # both factors are x
    return grad_x, grad_second
