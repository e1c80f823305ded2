r"""Learned and smooth pooling: GeM, SoftPool and log-sum-exp pooling (bilinear pooling, the
fourth op of this table, lives in :mod:`poolref.ops.bilinear`).

These ops replace the hard maximum or the plain mean by a smooth aggregate, and each has a
parameter that moves it between the two:

===============  ==========================================================  =====================
op               forward (over a window or a whole plane of ``S`` elements)  parameter
===============  ==========================================================  =====================
``gem_pool``     :math:`(\frac{1}{S}\sum_i \max(x_i, \epsilon)^p)^{1/p}`       ``p``: 1 mean, inf max
``soft_pool2d``  :math:`\sum_i \operatorname{softmax}(x)_i\, x_i`              none
``lse_pool``     :math:`\frac{1}{r}\log \frac{1}{S}\sum_i e^{r x_i}`            ``r``: 0 mean, inf max
``bilinear``     :math:`\frac{1}{S}\sum_l x_l y_l^T`, signed sqrt, L2 norm      none
===============  ==========================================================  =====================

Three of them exponentiate, so the forward and the backward are written in a *shifted* form that
never overflows: the largest element of each window or plane is factored out first (the same trick
as a stable softmax), so every power or exponential lies in ``[0, 1]``. The backward formulas are
rewritten in the same terms (each op's Notes give the derivation). The plain-loop references in
:mod:`poolref.reference.learned` use the textbook formulas instead, which is what makes holding the
two equal a real check of the algebra.

Every op is a forward/backward pair registered with :func:`poolref.autograd.define_function`;
nothing loops over pixels, batch or channels (SoftPool loops over the few kernel taps, reading a
strided view of the input for each, as :mod:`poolref.ops.window` does).
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy

from .._backend import array_module
from .._checks import accumulation_dtype, cast_back, check_global_input, check_pool_input, check_positive_number
from .._geometry import WindowGeometry, pool_geometry
from ..autograd.function import apply, define_function
from ..autograd.tensor import Tensor

__all__ = ["gem_pool", "soft_pool2d", "lse_pool"]


def _spatial_axes(x) -> tuple[int, ...]:
    """The axes a global op reduces over: every axis after (N, C)."""
    return tuple(range(2, x.ndim))


# ==================================================================================================
# GeM: generalised-mean pooling (Radenovic et al. 2018)
# ==================================================================================================
class GemSaved(NamedTuple):
    clamped: object  # (N, C, *S) max(x, eps), in the accumulation dtype
    passes: object  # (N, C, *S) bool: x >= eps, where the clamp lets the gradient through
    y: object  # (N, C, 1..) the output, in the accumulation dtype
    weights: object  # (N, C, *S) z_i^p / sum_j z_j^p: each element's share of the power sum
    p: float
    p_shape: tuple
    p_dtype: numpy.dtype
    p_module: object  # numpy or cupy: where p (and so its gradient) lives, maybe not where x does
    dtype: numpy.dtype


def _gem_forward(x, p, *, eps: float):
    xp = array_module(x)
    accumulate = accumulation_dtype(x.dtype)
    axes = _spatial_axes(x)
    exponent = float(p.reshape(()))
    xa = x.astype(accumulate, copy=False)
    clamped = xp.maximum(xa, accumulate.type(eps))  # z = max(x, eps) > 0; a NaN stays NaN
    # Factor out the largest z of each plane: (z / z_max)^p lies in (0, 1], so it cannot overflow
    # even for p = 200 in float32, and y = z_max * mean((z / z_max)^p)^(1/p) is the same number.
    largest = clamped.max(axis=axes, keepdims=True)  # (N, C, 1..)
    with numpy.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        powered = (clamped / largest) ** exponent  # (N, C, *S) in [0, 1] (tiny ratios underflow to 0)
        power_sum = powered.sum(axis=axes, keepdims=True)  # (N, C, 1..) in [1, S]
        count = math.prod(x.shape[2:])
        y = largest * (power_sum / count) ** (1.0 / exponent)
        # an infinite input makes y infinite (inf / inf above gave NaN; the limit is inf). largest
        # is >= eps or NaN, so an infinite one is +inf
        y = xp.where(xp.isinf(largest), largest, y)
        weights = powered / power_sum
    saved = GemSaved(clamped, xa >= eps, y, weights, exponent, tuple(p.shape), p.dtype, array_module(p), x.dtype)
    return y.astype(x.dtype, copy=False), saved


# forward   y = (1/S sum_i z_i^p)^(1/p),  z_i = max(x_i, eps)   (over the S positions of a plane)
# backward  grad_x_i = g (1/S) (z_i / y)^(p-1)  where x_i >= eps (0 where the clamp holds)
#           grad_p   = sum g (y/p) sum_i w_i log(z_i / y),  w_i = z_i^p / sum_j z_j^p
def _gem_backward(saved: GemSaved, grad_y):
    xp = array_module(grad_y)
    z, y, p = saved.clamped, saved.y, saved.p
    g = grad_y.astype(z.dtype, copy=False)  # (N, C, 1..)
    count = math.prod(z.shape[2:])
    with numpy.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        # dy/dz_i = (1/S) (z_i / y)^(p-1): no power of z alone, so no overflow (for p >= 1,
        # z_i / y <= S^(1/p) bounds it by S^(-1/p))
        dy_dz = (z / y) ** (p - 1.0) / count
        grad_x = xp.where(saved.passes, g * dy_dz, 0)  # the clamp passes the gradient where x >= eps
        # dy/dp = (y/p) sum_i w_i log(z_i / y), w_i = z_i^p / sum_j z_j^p (see gem_pool's Notes)
        dy_dp = (y / p) * (saved.weights * xp.log(z / y)).sum(axis=_spatial_axes(z), keepdims=True)
        grad_p = (g * dy_dp).sum()  # a 0-d array where x lives
    if saved.p_module is not xp:  # p and x on different devices (a host p, a device x): move the one
        grad_p = float(grad_p)  # value explicitly, to where p lives
    grad_p = saved.p_module.full(saved.p_shape, grad_p, dtype=saved.p_dtype)
    return cast_back(grad_x, saved.dtype), grad_p


GEM_POOL = define_function("gem_pool", _gem_forward, _gem_backward)


def _check_exponent(p, op: str):
    """``p`` as a Tensor or array of shape () or (1,): a number becomes a float64 array."""
    if isinstance(p, numbers.Real):  # Python and numpy scalars (a bool is refused there)
        return numpy.asarray(check_positive_number(p, "p", op), dtype=numpy.float64)
    if hasattr(p, "shape") and hasattr(p, "dtype"):  # an array or a Tensor
        if tuple(p.shape) not in ((), (1,)):
            raise ValueError(f"{op}: p must be a number or have shape () or (1,), got p with shape {tuple(p.shape)}")
        if numpy.dtype(p.dtype).kind != "f":
            raise TypeError(f"{op}: p must be a floating-point array or a number, got p with dtype {p.dtype}")
        value = float((p.data if isinstance(p, Tensor) else p).reshape(()))
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{op}: p must be a finite number > 0, got p={value!r}")
        return p
    raise TypeError(f"{op}: p must be a number, or an array or Tensor of shape () or (1,), got p={p!r}")


def gem_pool(x, p=3.0, eps=1e-6):
    r"""Generalised-mean (GeM) pooling over all spatial dims, with a learnable exponent ``p``.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, *spatial)
        Floating-point input, at least one spatial dim (float16 is computed in float32).
    p : float, array or Tensor of shape () or (1,)
        The exponent, finite and > 0. As a Tensor that requires a gradient it receives one.
    eps : float
        Finite, > 0: inputs are clamped to at least ``eps`` before the power.

    Returns
    -------
    y : array or Tensor, shape (N, C, 1, ..., 1)
        Dims kept, as :func:`~poolref.global_avg_pool`. A Tensor if ``x`` or ``p`` is one.

    Notes
    -----
    With :math:`z_i = \max(x_i, \epsilon)` over the :math:`S` elements of a plane,

    .. math:: y = \Big(\frac{1}{S} \sum_i z_i^p\Big)^{1/p}

    :math:`p = 1` is the mean (of the clamped values), :math:`p \to \infty` the maximum, and
    :math:`y` is nondecreasing in :math:`p`. Computed as
    :math:`y = z_{max} (\frac{1}{S}\sum_i (z_i / z_{max})^p)^{1/p}`, which cannot overflow.

    Backward. Let :math:`m = \frac{1}{S}\sum_j z_j^p = y^p` and
    :math:`w_i = z_i^p / \sum_j z_j^p` (the softmax of :math:`p \log z`). To the input,

    .. math:: \frac{\partial y}{\partial x_i} = [x_i \ge \epsilon]\, \frac{1}{p} m^{1/p - 1}
              \frac{p\, z_i^{p-1}}{S} = [x_i \ge \epsilon]\, \frac{1}{S}
              \Big(\frac{z_i}{y}\Big)^{p-1}

    (zero where the clamp is active, :math:`x_i < \epsilon`; at :math:`x_i = \epsilon` the gradient
    passes, as ``torch.clamp`` does). To the exponent, from
    :math:`\log y = \frac{1}{p}\log m` and :math:`\partial m / \partial p = \frac{1}{S}\sum_i z_i^p \log z_i`,

    .. math:: \frac{\partial y}{\partial p} = y\Big(-\frac{\log m}{p^2}
              + \frac{\sum_i z_i^p \log z_i}{p \sum_j z_j^p}\Big)
              = \frac{y}{p} \sum_i w_i \log\frac{z_i}{y}

    summed over every (n, c) plane for the gradient of ``p``. It is :math:`\ge 0` (power-mean
    inequality). Where the textbook formula would overflow (large :math:`z^p`), PyTorch's
    composition ``x.clamp(min=eps).pow(p).mean().pow(1/p)`` returns inf; poolref returns the finite
    value.

    Non-finite values follow that composition (IEEE arithmetic on the formulas above): a NaN makes
    its plane's output NaN, and the gradients of the plane's other elements (the NaN element itself
    gets 0, since ``NaN >= eps`` is false); :math:`-\infty` is clamped to :math:`\epsilon`;
    :math:`+\infty` gives :math:`y = +\infty`, the infinite element the gradient NaN
    (:math:`(\infty / \infty)^{p-1}`), the others :math:`(z_i / \infty)^{p-1} / S`: 0 for
    :math:`p > 1`, :math:`+\infty` for :math:`p < 1`, :math:`1/S` at :math:`p = 1`. The gradient of
    ``p`` is NaN for such a plane. An upstream NaN or infinity multiplies every slope, 0 included.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.array([[[1., 2., 3.]]])
    >>> poolref.gem_pool(x, p=1.0)  # the mean
    array([[[2.]]])
    >>> poolref.gem_pool(x, p=2.0) ** 2  # the mean of squares, 14 / 3
    array([[[4.66666667]]])
    >>> poolref.gem_pool(np.array([[[-5., 4.]]]), p=2.0, eps=1.0) ** 2  # -5 is clamped to 1
    array([[[8.5]]])
    """
    op = "gem_pool"
    x = check_global_input(x, op)
    p = _check_exponent(p, op)
    eps = check_positive_number(eps, "eps", op)
    return apply(GEM_POOL, x, p, eps=eps)


# ==================================================================================================
# SoftPool (Stergiou et al. 2021)
# ==================================================================================================
class SoftPoolSaved(NamedTuple):
    x: object  # (.., H, W) the input, in the accumulation dtype
    largest: object  # (.., H_out, W_out) M, the maximum of each window (the softmax shift)
    total: object  # (.., H_out, W_out) sum of e_i = exp(x_i - M) over the window
    offset: object  # (.., H_out, W_out) y - M, in the accumulation dtype
    geometry: WindowGeometry
    dtype: numpy.dtype


def _below_largest(value, largest, xp):
    """``d = x - M``, with ``d = 0`` wherever ``x`` equals ``M``, an infinite ``M`` included.

    For a finite maximum this is the plain difference. For an infinite one it is what the limit
    needs: ``inf - inf`` would be NaN, but the elements equal to the maximum are the ones the
    softmax keeps (``e = exp(0) = 1``), the others get ``exp(-inf) = 0``. A NaN maximum gives NaN.
    """
    return xp.where(value == largest, 0, value - largest)


def _soft_pool_forward(x, *, geometry: WindowGeometry):
    xp = array_module(x)
    xa = x.astype(accumulation_dtype(x.dtype), copy=False)
    taps = [(Ellipsis,) + geometry.tap_slices(offsets) for offsets in geometry.tap_offsets()]
    # pass 1: the window maximum M, so that every exp below lies in [0, 1] (a NaN propagates)
    largest = xa[taps[0]].copy()  # (.., H_out, W_out)
    for tap in taps[1:]:
        xp.maximum(largest, xa[tap], out=largest)
    # pass 2: total = sum_i e_i and shifted = sum_i e_i d_i, with d_i = x_i - M and e_i = exp(d_i);
    # then y = M + shifted / total. Relative to M, no sum can overflow (|e_i d_i| <= 1/e), even
    # where the values are near the dtype's largest; an element of weight 0 (-inf, or far below
    # M) adds nothing, not 0 * (-inf) = NaN.
    total = xp.zeros_like(largest)
    shifted = xp.zeros_like(largest)
    with numpy.errstate(invalid="ignore", over="ignore"):  # NaN windows stay NaN; -3e38 - 3e38 is -inf
        for tap in taps:
            value = xa[tap]  # (.., H_out, W_out) strided view: tap ``offsets`` of every window
            d = _below_largest(value, largest, xp)
            e = xp.exp(d)
            total += e
            shifted += xp.where(e == 0, 0, e * d)
        offset = shifted / total  # y - M, in [min d, 0]; total >= 1 (e = 1 at the maximum) unless NaN
        y = largest + offset  # M = +-inf: y = M
    saved = SoftPoolSaved(xa, largest, total, offset, geometry, x.dtype)
    return y.astype(x.dtype, copy=False), saved


# forward   y_o = sum_{i in W_o} w_i x_i,  w_i = e^{x_i} / sum_{j in W_o} e^{x_j}   (a softmax-weighted mean)
# backward  grad_x_i = sum_{o: i in W_o} g_o w_i (1 + x_i - y_o)
def _soft_pool_backward(saved: SoftPoolSaved, grad_y):
    # dy/dx_i = w_i (1 + x_i - y) = (e_i / total) (1 + d_i - (y - M)), exactly 0 for an element of
    # weight 0; overlapping windows add into the same element. An infinite maximum gives w_i = 1/m
    # on the m elements equal to it (d_i = 0 = y - M) and 0 elsewhere.
    xp = array_module(grad_y)
    xa, geometry = saved.x, saved.geometry
    grad = xp.zeros(xa.shape, dtype=xa.dtype)
    g_over_total = grad_y.astype(xa.dtype, copy=False) / saved.total  # (.., H_out, W_out)
    # NaN where the forward gave NaN, and where a NaN or infinite gradient meets a slope of 0
    with numpy.errstate(invalid="ignore", over="ignore"):
        for offsets in geometry.tap_offsets():
            tap = (Ellipsis,) + geometry.tap_slices(offsets)
            d = _below_largest(xa[tap], saved.largest, xp)
            e = xp.exp(d)
            slope = xp.where(e == 0, 0, e * (1 + (d - saved.offset)))  # total * dy/dx_i
            view = grad[tap]  # no padding: the slices address the input itself
            view += g_over_total * slope
    return (cast_back(grad, saved.dtype),)


SOFT_POOL = define_function("soft_pool", _soft_pool_forward, _soft_pool_backward)


def soft_pool2d(x, kernel_size, stride=None):
    r"""SoftPool: the softmax-weighted average of each window (Stergiou et al. 2021).

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input (float16 is computed in float32).
    kernel_size : int or (int, int)
        Window size.
    stride : int or (int, int), optional
        Step between windows; defaults to ``kernel_size``. No padding, no ceil mode: the windows
        are those of ``max_pool2d(x, kernel_size, stride)``.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)
        ``H_out = floor((H - k) / s) + 1``.

    Notes
    -----
    Forward, over the taps :math:`i` of each window, with :math:`w_i = \operatorname{softmax}(x)_i`:

    .. math:: y = \sum_i w_i x_i, \qquad w_i = \frac{e^{x_i - M}}{\sum_j e^{x_j - M}}, \quad M = \max_j x_j

    (subtracting the window maximum :math:`M` changes nothing but keeps every exponential in
    :math:`(0, 1]`, so inputs around :math:`10^3` are fine). :math:`\min_i x_i \le y \le \max_i x_i`.

    Backward, from :math:`\partial w_j / \partial x_i = w_j(\delta_{ij} - w_i)`:

    .. math:: \frac{\partial y}{\partial x_i} = w_i + \sum_j x_j w_j (\delta_{ij} - w_i)
              = w_i\,(1 + x_i - y)

    accumulated over overlapping windows. Since :math:`\sum_i w_i (1 + x_i - y) = 1`, the input
    gradient sums to the output gradient (the conservation law of max pooling). Computed as
    :math:`y = M + \sum_i e_i (x_i - M) / \sum_i e_i` with :math:`e_i = e^{x_i - M}`, which no
    magnitude can overflow.

    Non-finite values take the limits of these formulas, forward and backward:

    * a NaN in a window makes its output and the gradient of all its elements NaN;
    * a :math:`-\infty` element has weight 0 and drops out: :math:`e^{x} x \to 0` as
      :math:`x \to -\infty`, so it adds nothing to :math:`y` and receives gradient 0;
    * a :math:`+\infty` element takes all the weight: :math:`y = +\infty`, and the :math:`m`
      elements equal to :math:`+\infty` share the gradient, :math:`1/m` each (the limit as they
      grow together), the others receive 0;
    * a window of :math:`-\infty` only gives :math:`y = -\infty` (forced by
      :math:`\min_i x_i \le y \le \max_i x_i`) and gradient :math:`1/k` to each of its :math:`k`
      elements (the limit as they fall together).

    The rule behind the last three: elements equal to an infinite maximum :math:`M` count as equal to
    it (:math:`x_i - M := 0`, weight 1 before normalising), and an element of weight 0 contributes 0,
    not :math:`0 \cdot \infty`. An upstream gradient that is NaN or infinite is multiplied by each
    slope, 0 included (IEEE: NaN). PyTorch's ``unfold`` + ``softmax`` composition, which computes the
    same thing for finite inputs, gives NaN for every window holding an infinity instead:
    :math:`\infty - \infty` inside its softmax shift, and :math:`0 \cdot (-\infty)` in the
    weighted sum.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.soft_pool2d(np.zeros((1, 2, 2)), 2)  # equal values: the plain mean
    array([[[0.]]])
    >>> x = np.array([[[0., 0.], [0., np.log(3.)]]])  # weights 1/6, 1/6, 1/6, 1/2
    >>> poolref.soft_pool2d(x, 2).round(6)  # log(3) / 2
    array([[[0.549306]]])
    >>> poolref.soft_pool2d(np.array([[[-np.inf, 0., np.inf, -np.inf]]]), (1, 2))  # the limits
    array([[[ 0., inf]]])
    """
    op = "soft_pool2d"
    x = check_pool_input(x, 2, op, integer_ok=False)
    geometry = pool_geometry(tuple(x.shape[-2:]), kernel_size, stride, 0, 1, False, "torch", op)
    return apply(SOFT_POOL, x, geometry=geometry)


# ==================================================================================================
# Log-sum-exp pooling
# ==================================================================================================
class LsePoolSaved(NamedTuple):
    softmax: object  # (N, C, *S) softmax(r x) over each plane, in the accumulation dtype
    dtype: numpy.dtype


def _lse_forward(x, *, r: float):
    xp = array_module(x)
    accumulate = accumulation_dtype(x.dtype)
    axes = _spatial_axes(x)
    xa = x.astype(accumulate, copy=False)
    largest = xa.max(axis=axes, keepdims=True)  # (N, C, 1..)
    # Shift by the plane maximum where it is finite (torch.logsumexp's rule): exp(r (x - max)) is in
    # (0, 1]; an infinite maximum is not subtracted, so +inf gives y = +inf and all -inf gives -inf.
    shift = xp.where(xp.isfinite(largest), largest, 0)
    with numpy.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        scaled = r * (xa - shift)  # (N, C, *S) r (x - M), <= 0 for a finite maximum
        e = xp.exp(scaled)
        total = e.sum(axis=axes, keepdims=True)  # (N, C, 1..) in [1, S] for a finite maximum
        count = math.prod(x.shape[2:])
        # y - M = log(mean(e)) / r. Where the inputs differ by much less than 1/r, every e rounds
        # to about 1 and log(mean(e)) keeps nothing of what lies below the rounding (at inputs
        # around 1e-30 it gives y = M instead of about the mean); mean(e) - 1 = mean(expm1(r d)) is
        # a sum of terms of one sign, accurate at any size, and log1p keeps it. Where that mean is
        # far below 0 (inputs spread over more than 1/r), log(mean(e)) is the accurate one.
        below_one = xp.expm1(scaled).sum(axis=axes, keepdims=True) / count  # mean(e) - 1, in [-1, 0]
        log_mean = xp.where(below_one > -0.5, xp.log1p(below_one), xp.log(total / count))
        y = shift + log_mean / r
        softmax = e / total
    return y.astype(x.dtype, copy=False), LsePoolSaved(softmax, x.dtype)


# forward   y = (1/r) log((1/S) sum_i e^{r x_i})
# backward  grad_x_i = g softmax(r x)_i
def _lse_backward(saved: LsePoolSaved, grad_y):
    # dy/dx_i = softmax(r x)_i: the 1/S of the mean cancels (see lse_pool's Notes)
    g = grad_y.astype(saved.softmax.dtype, copy=False)
    with numpy.errstate(invalid="ignore"):  # a NaN or infinite gradient times a weight of 0: NaN
        return (cast_back(g * saved.softmax, saved.dtype),)


LSE_POOL = define_function("lse_pool", _lse_forward, _lse_backward)


def lse_pool(x, r=1.0):
    r"""Log-sum-exp (LSE) pooling over all spatial dims: a smooth maximum with sharpness ``r``.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, *spatial)
        Floating-point input, at least one spatial dim (float16 is computed in float32).
    r : float
        Sharpness, finite and > 0: :math:`r \to 0` gives the mean, :math:`r \to \infty` the max.

    Returns
    -------
    y : array or Tensor, shape (N, C, 1, ..., 1)

    Notes
    -----
    Over the :math:`S` elements of a plane, with :math:`M = \max_j x_j`,

    .. math:: y = \frac{1}{r} \log\Big(\frac{1}{S}\sum_i e^{r x_i}\Big)
              = M + \frac{1}{r}\log\Big(\frac{1}{S}\sum_i e^{r (x_i - M)}\Big)

    (the right-hand form never overflows, so inputs around :math:`10^3` are fine), and
    :math:`\operatorname{mean}(x) \le y \le M` (Jensen). The logarithm is taken as
    :math:`\operatorname{log1p}(\frac{1}{S}\sum_i \operatorname{expm1}(r (x_i - M)))` where that
    mean lies above :math:`-\frac12`: for inputs that differ by much less than :math:`1/r` (tiny
    ones, say :math:`10^{-30}`), every :math:`e^{r (x_i - M)}` rounds to about 1 and the plain
    logarithm would return :math:`M` instead of about the mean. Backward:

    .. math:: \frac{\partial y}{\partial x_i} = \frac{1}{r}\,
              \frac{\frac{1}{S}\, r\, e^{r x_i}}{\frac{1}{S}\sum_j e^{r x_j}}
              = \operatorname{softmax}(r x)_i

    The :math:`1/S` of the mean cancels: the gradient is the softmax itself (no division by the
    count), and sums to 1 over the plane, so the input gradient sums to the output gradient. As
    ``torch.logsumexp``, a plane holding :math:`+\infty` gives :math:`+\infty`, one of
    :math:`-\infty` only gives :math:`-\infty`, and a NaN gives NaN; the gradient, the softmax
    evaluated as PyTorch does, is NaN at a :math:`+\infty` element (0 at the plane's finite ones),
    NaN over a plane of :math:`-\infty` only, 0 at a :math:`-\infty` beside finite values. An
    upstream NaN or infinity multiplies every weight, 0 included.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> poolref.lse_pool(np.array([[[1000., 1000.]]]))  # log(mean(exp)) of equal values
    array([[[1000.]]])
    >>> poolref.lse_pool(np.array([[[0., np.log(3.)]]]))  # log((1 + 3) / 2)
    array([[[0.69314718]]])
    """
    op = "lse_pool"
    x = check_global_input(x, op)
    r = check_positive_number(r, "r", op)
    return apply(LSE_POOL, x, r=r)
