r"""Stochastic pooling and mixed pooling: two ways to make pooling less rigid than a fixed max.

* **stochastic pooling** (Zeiler & Fergus 2013) picks one element of each window at random, with
  probability proportional to its (non-negative) value; at inference it outputs the expected value
  of that pick instead;
* **mixed pooling** (Yu et al. 2014) blends max and average pooling with a fixed weight.

(Fractional max pooling, the third op of SEMANTICS.md's "random pooling" sections, lives in
:mod:`poolref.ops.fractional`.) Randomness comes from the caller: a ``numpy.random.Generator`` or an
int seed (``rng=``), so that every result can be reproduced and a gradient check can hold the draws
fixed. As in :mod:`poolref.ops.window`, every op is a forward/backward pair of pure functions
registered with the tape, and the array code loops over the few kernel taps, never over output
pixels, batch or channels. The plain loops of :mod:`poolref.reference.stochastic` are the executable
specification these functions are tested against.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy

from .._backend import array_module, data_of, to_numpy
from .._checks import accumulation_dtype, as_array, cast_back, check_flag, check_pool_input, random_generator
from .._geometry import WindowGeometry, pool_geometry
from .._running_max import NO_TAP
from ..autograd.function import apply, define_function
from .window import AVG_POOL, MAX_POOL, MaxPoolSaved

__all__ = ["stochastic_pool2d", "mixed_pool2d"]


# ==================================================================================================
# Stochastic pooling
# ==================================================================================================
class StochasticSampleSaved(NamedTuple):
    max_pool: MaxPoolSaved  # the sampled tap of each window, in max pooling's record


class StochasticExpectationSaved(NamedTuple):
    x: object  # the input, in the accumulation dtype
    exponent: object  # (.., O..) e, the binary exponent of the window maximum: M = m 2^e, m in [0.5, 1)
    ratio_sum: object  # (.., O..) S' = sum of a 2^-e over the window (0 for a window of zeros)
    square_sum: object  # (.., O..) Q' = sum of (a 2^-e)^2 over the window
    geometry: WindowGeometry
    dtype: numpy.dtype


def _stochastic_sample_forward(x, *, uniforms, geometry: WindowGeometry):
    # uniforms: (.., O..) one u in [0, 1) per window, in the accumulation dtype
    xp = array_module(x)
    accumulate = accumulation_dtype(x.dtype)
    xa = x.astype(accumulate, copy=False)
    tap_slices = [geometry.tap_slices(offsets) for offsets in geometry.tap_offsets()]
    taps = len(tap_slices)

    # pass 1: S, the window sums, added in row-major tap order like the cumulative sums below
    window_sum = xp.zeros(uniforms.shape, dtype=accumulate)
    for key in tap_slices:
        window_sum += xa[(Ellipsis,) + key]
    threshold = uniforms * window_sum  # r = u*S: the pick is the first tap whose cumulative sum passes r

    # pass 2: running cumulative sum c_j = a_0 + .. + a_j; tap j is picked when c_j > r >= c_{j-1},
    # which happens with probability a_j / S. A zero tap never passes (c_j = c_{j-1}).
    cumulative = xp.zeros(uniforms.shape, dtype=accumulate)
    sampled = xp.full(uniforms.shape, taps, dtype=numpy.min_scalar_type(taps))  # taps = "none yet"
    value = xp.zeros(uniforms.shape, dtype=accumulate)
    last_positive = xp.full(uniforms.shape, taps, dtype=sampled.dtype)  # fallback, see below
    last_positive_value = xp.zeros(uniforms.shape, dtype=accumulate)
    for tap_number, key in enumerate(tap_slices):
        a = xa[(Ellipsis,) + key]  # (.., O..) tap j of every window
        cumulative += a
        picked_now = (cumulative > threshold) & (sampled == taps)
        sampled[picked_now] = tap_number
        value[picked_now] = a[picked_now]
        positive = a > 0
        last_positive[positive] = tap_number
        last_positive_value[positive] = a[positive]
    # Rounding can make r = u*S reach the final cumulative sum (u close to 1): then the pick is the
    # last tap with a positive value, which is where the pick lands in exact arithmetic. A window
    # summing to zero has no positive tap: it keeps the "none" marker, outputs 0 and gets no gradient.
    unpicked = sampled == taps
    sampled[unpicked] = last_positive[unpicked]
    value[unpicked] = last_positive_value[unpicked]
    winner = xp.where(sampled == taps, NO_TAP, sampled.astype(numpy.int32))  # the sampled tap, -1 for none
    saved = StochasticSampleSaved(MaxPoolSaved(winner, geometry, tuple(x.shape), x.dtype))
    return value.astype(x.dtype, copy=False), saved


# forward   y_o = a[index_o]  (the tap sampled with probability a_i / sum a, the sample held fixed)
# backward  grad_a[index_o] += g_o
def _stochastic_sample_backward(saved: StochasticSampleSaved, grad_y):
    # y_o = a at the sampled tap, the sample held fixed: max pooling's backward with the sampled tap
    # in place of the argmax (an all-zero window has index -1: zero gradient)
    return MAX_POOL.backward(saved.max_pool, grad_y)


def _stochastic_expectation_forward(x, *, geometry: WindowGeometry):
    # y = Q/S = sum a^2 / sum a, with every a first divided by 2^e, the power of two of the window
    # maximum M = m 2^e (m in [0.5, 1)): y = 2^e Q'/S' with S' = sum a 2^-e in [0.5, k] and
    # Q' = sum (a 2^-e)^2 in [0.25, k]. Dividing by a power of two is exact, so these are the
    # textbook sums, rounded alike, only rescaled: no square overflows or underflows (a^2 would in
    # float32 from a ~ 1e19 up or 1e-19 down), whatever the magnitude, and M/(2k) < y <= M.
    xp = array_module(x)
    accumulate = accumulation_dtype(x.dtype)
    xa = x.astype(accumulate, copy=False)
    taps = [(Ellipsis,) + geometry.tap_slices(offsets) for offsets in geometry.tap_offsets()]
    largest = xa[taps[0]].copy()  # (.., O..) M, the window maximum
    for tap in taps[1:]:
        xp.maximum(largest, xa[tap], out=largest)
    _, exponent = xp.frexp(largest)  # M = m 2^e; e = 0 for a window of zeros
    ratio_sum = xp.zeros_like(largest)
    square_sum = xp.zeros_like(largest)
    for tap in taps:  # tap ``offsets`` of every window, a strided view of the input
        ratio = xp.ldexp(xa[tap], -exponent)  # (.., O..) a 2^-e in [0, 1)
        ratio_sum += ratio
        square_sum += ratio * ratio
    nonzero = largest > 0  # a window of zeros has no distribution: it outputs 0
    y = xp.where(nonzero, xp.ldexp(square_sum / xp.where(nonzero, ratio_sum, 1), exponent), 0)
    saved = StochasticExpectationSaved(xa, exponent, ratio_sum, square_sum, geometry, x.dtype)
    return y.astype(x.dtype, copy=False), saved


# forward   y_o = sum_i a_i^2 / sum_i a_i  (the expected value of the sampled tap)
# backward  grad_a_i = sum_{o: i in W_o} g_o (2 a_i S_o - Q_o) / S_o^2,  S_o = sum a, Q_o = sum a^2
def _stochastic_expectation_backward(saved: StochasticExpectationSaved, grad_y):
    # y_o = Q_o / S_o, so dy_o/da_i = (2 a_i S_o - Q_o) / S_o^2 for every tap i of window o. This is
    # homogeneous of degree 0 in a: with the forward's r_i = a_i 2^-e_o it is
    #   dy_o/da_i = (2 r_i S'_o - Q'_o) / S'_o^2,
    # the same number, rounded alike, with every term of order 1 (no a^2, no 1/S^2 to overflow).
    # Each tap adds its share into the input; overlapping windows add up. Windows of zeros send
    # nothing.
    xp = array_module(grad_y)
    xa, geometry = saved.x, saved.geometry
    nonzero = saved.ratio_sum > 0
    s = xp.where(nonzero, saved.ratio_sum, 1)
    g = grad_y.astype(xa.dtype, copy=False)
    grad = xp.zeros(xa.shape, dtype=xa.dtype)
    with numpy.errstate(invalid="ignore", over="ignore"):  # a NaN or inf gradient times 0: NaN
        for offsets in geometry.tap_offsets():
            tap = (Ellipsis,) + geometry.tap_slices(offsets)
            ratio = xp.ldexp(xa[tap], -saved.exponent)  # (.., O..) r_i of tap ``offsets`` in every window
            slope = (2 * ratio * s - saved.square_sum) / (s * s)  # dy/da_i
            view = grad[tap]  # no padding: the slices address the input itself
            view += xp.where(nonzero, g * slope, 0)
    return (cast_back(grad, saved.dtype),)


STOCHASTIC_POOL_SAMPLE = define_function("stochastic_pool_sample", _stochastic_sample_forward, _stochastic_sample_backward)
STOCHASTIC_POOL_EXPECTATION = define_function(
    "stochastic_pool_expectation", _stochastic_expectation_forward, _stochastic_expectation_backward
)


def _check_non_negative_finite(x, op: str):
    """Stochastic pooling's probabilities a_i / sum a need finite, non-negative activations."""
    raw = as_array(data_of(x))
    if raw.size == 0:
        return
    xp = array_module(raw)
    finite = xp.isfinite(raw)
    if not bool(finite.all()):
        bad = to_numpy(raw[~finite])
        raise ValueError(
            f"{op}: x must be finite (its values become probabilities a_i / sum a), got x with "
            f"{bad.size} non-finite value(s), e.g. {float(bad[0])!r}"
        )
    smallest = float(xp.min(raw))
    if smallest < 0:
        raise ValueError(
            f"{op}: x must be non-negative (its values become probabilities a_i / sum a; apply a ReLU "
            f"first), got x with min value {smallest!r}"
        )


def stochastic_pool2d(x, kernel_size, stride=None, *, training=True, rng=None):
    r"""2-D stochastic pooling: sample one element per window with probability proportional to its value.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Non-negative, finite floating-point activations (after a ReLU, say).
    kernel_size : int or (int, int)
        Window size ``k``.
    stride : int or (int, int), optional
        Step between windows; defaults to ``kernel_size``. No padding, no ceil mode.
    training : bool
        True: sample (the training-time op). False: the expected value of the sample (inference).
    rng : numpy.random.Generator or int, optional
        Source of the samples in training mode: a Generator (advanced by each call) or an int seed
        (the same samples on every call). None draws fresh entropy. Unused when ``training=False``.
        One uniform number is drawn per window, as a single ``rng.random`` array of the output's
        shape in C order.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)
        ``H_out = floor((H - k)/s) + 1``.

    Raises
    ------
    ValueError
        Negative or non-finite values in ``x`` (the message gives the smallest value), or bad window
        arguments (as :func:`poolref.max_pool2d`).

    Notes
    -----
    In window :math:`W_o` with activations :math:`a_i \ge 0`, :math:`S_o = \sum_{i \in W_o} a_i` and
    :math:`p_i = a_i / S_o`.

    Training: one tap :math:`j` is sampled with probability :math:`p_j` and :math:`y_o = a_j`. The
    sample uses one uniform :math:`u_o \in [0, 1)` per window: with cumulative sums
    :math:`c_j = a_0 + \dots + a_j` over the taps in row-major order, :math:`j` is the first tap with
    :math:`c_j > u_o S_o`. Holding the sample fixed, the gradient goes to the sampled tap only:

    .. math:: \frac{\partial L}{\partial a_i} = \sum_{o \,:\, j_o = i} \frac{\partial L}{\partial y_o}

    Inference: the expectation of that sample,

    .. math:: y_o = \sum_{i \in W_o} p_i a_i = \frac{Q_o}{S_o}, \qquad Q_o = \sum_{i \in W_o} a_i^2,

    whose derivative is :math:`\partial y_o / \partial a_i = (2 a_i S_o - Q_o) / S_o^2` (quotient rule:
    :math:`\partial Q_o/\partial a_i = 2 a_i`, :math:`\partial S_o/\partial a_i = 1`); overlapping
    windows add their contributions:

    .. math:: \frac{\partial L}{\partial a_i} = \sum_{o \,:\, i \in W_o} \frac{\partial L}{\partial y_o}
              \, \frac{2 a_i S_o - Q_o}{S_o^2}

    A window whose sum is zero has no distribution: it outputs 0 with zero gradient, in both modes.
    Sums are accumulated in float32 for float16 input.

    Inference is computed scaled: with :math:`M_o = m\, 2^{e}` (:math:`m \in [0.5, 1)`) the window
    maximum and :math:`r_i = a_i 2^{-e}`, :math:`y_o = 2^{e} Q'_o / S'_o` and
    :math:`\partial y_o / \partial a_i = (2 r_i S'_o - Q'_o) / S_o'^2`, where :math:`S'_o = \sum r_i`
    and :math:`Q'_o = \sum r_i^2` are of order 1. Division by a power of two is exact, so these are
    the textbook sums rounded alike, at every magnitude (:math:`a^2` alone would overflow float32
    from about :math:`10^{19}` and lose precision below :math:`10^{-19}`). Training sums the
    activations themselves: a window whose sum exceeds the dtype's largest value overflows.

    ``x`` must be finite; an upstream gradient may hold NaN or infinities. In inference mode it
    multiplies every slope of its window, 0 included (NaN); a window of zeros passes nothing. In
    training mode it goes to the sampled element.

    References
    ----------
    M. D. Zeiler and R. Fergus, "Stochastic Pooling for Regularization of Deep Convolutional Neural
    Networks", ICLR 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.ops.stochastic import stochastic_pool2d
    >>> x = np.array([[[1., 3.], [0., 0.]]])
    >>> stochastic_pool2d(x, 2, training=False)  # (1*1 + 3*3) / (1 + 3)
    array([[[2.5]]])

    Training draws one uniform per window; with seed 0 it is 0.637, so ``u*S = 2.55`` and the first
    cumulative sum past it (1, 4, 4, 4) is tap 1's (probability 3/4):

    >>> float(np.random.default_rng(0).random())
    0.6369616873214543
    >>> stochastic_pool2d(x, 2, rng=0)
    array([[[3.]]])
    """
    op = "stochastic_pool2d"
    x = check_pool_input(x, 2, op, integer_ok=False)
    training = check_flag(training, "training", op)
    geometry = pool_geometry(x.shape[-2:], kernel_size, stride, 0, 1, False, "torch", op)
    _check_non_negative_finite(x, op)
    if not training:
        return apply(STOCHASTIC_POOL_EXPECTATION, x, geometry=geometry)
    generator = random_generator(rng, op)
    out_shape = tuple(x.shape[:-2]) + geometry.out_shape
    xp = array_module(x)
    uniforms = xp.asarray(generator.random(out_shape)).astype(accumulation_dtype(x.dtype))  # (.., O..)
    return apply(STOCHASTIC_POOL_SAMPLE, x, uniforms=uniforms, geometry=geometry)


# ==================================================================================================
# Mixed pooling
# ==================================================================================================
class MixedSaved(NamedTuple):
    max_pool: object  # max pooling's record (None when lam = 0)
    avg_pool: object  # average pooling's record (None when lam = 1)
    lam: float
    dtype: numpy.dtype


def _mixed_forward(x, *, geometry: WindowGeometry, lam: float):
    # Both halves run in the accumulation dtype and their records say so, so that the blend and the
    # two gradients are added before the single rounding back to x's dtype. A term of weight zero is
    # left out entirely: at lam = 1 mixed pooling IS max pooling (no 0 * inf = NaN from the average).
    accumulate = accumulation_dtype(x.dtype)
    y = 0
    max_saved = avg_saved = None
    if lam > 0:
        maxima, max_saved = MAX_POOL.forward(x, geometry=geometry, with_indices=False)
        max_saved = max_saved._replace(dtype=accumulate)
        y = lam * maxima.astype(accumulate, copy=False)
    if lam < 1:
        # PyTorch's avg_pool2d default: count_include_pad=True (padding cells count in the divisor)
        means, avg_saved = AVG_POOL.forward(x.astype(accumulate, copy=False), geometry=geometry, count_padding=True, divisor_override=None)
        y = y + (1 - lam) * means
    return y.astype(x.dtype, copy=False), MixedSaved(max_saved, avg_saved, lam, x.dtype)


# forward   y_o = lam max_{i in W_o} x_i + (1 - lam) (1/D_o) sum_{i in W_o} x_i
# backward  grad_x = lam (max pooling's scatter of g) + (1 - lam) (average pooling's spread of g)
def _mixed_backward(saved: MixedSaved, grad_y):
    # linear in the two halves: lam * (max pooling's scatter) + (1 - lam) * (average pooling's spread)
    g = grad_y.astype(accumulation_dtype(saved.dtype), copy=False)
    grad = 0
    if saved.max_pool is not None:
        (grad_max,) = MAX_POOL.backward(saved.max_pool, saved.lam * g)
        grad = grad + grad_max
    if saved.avg_pool is not None:
        (grad_avg,) = AVG_POOL.backward(saved.avg_pool, (1 - saved.lam) * g)
        with numpy.errstate(invalid="ignore", over="ignore"):  # inf + (-inf) from the two parts: NaN
            grad = grad + grad_avg
    return (cast_back(grad, saved.dtype),)


MIXED_POOL = define_function("mixed_pool", _mixed_forward, _mixed_backward)


def mixed_pool2d(x, kernel_size, stride=None, padding=0, *, lam=0.5):
    r"""2-D mixed pooling: a fixed blend of max pooling and average pooling.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input.
    kernel_size, stride, padding
        As for :func:`poolref.max_pool2d` (PyTorch's rules: ``2*padding <= kernel_size``).
    lam : float
        The weight :math:`\lambda \in [0, 1]` of max pooling; ``1 - lam`` weighs average pooling.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)

    Notes
    -----
    .. math:: y_o = \lambda \max_{i \in W_o} x_i + (1 - \lambda) \frac{1}{D_o} \sum_{i \in W_o} x_i

    with PyTorch's defaults for both halves: padding reads as :math:`-\infty` in the max and as 0 in
    the average, whose divisor :math:`D_o` counts the padding cells (``count_include_pad=True``, so
    :math:`D_o = k_H k_W` whenever no window overhangs). Backward, the same blend of the two backwards:

    .. math:: \frac{\partial L}{\partial x_i} = \lambda \sum_{o \,:\, \mathrm{index}_o = i}
              \frac{\partial L}{\partial y_o} + (1 - \lambda) \sum_{o \,:\, i \in W_o}
              \frac{1}{D_o} \frac{\partial L}{\partial y_o}

    where :math:`\mathrm{index}_o` is max pooling's argmax (first of ties, NaN wins). ``lam = 1`` is
    exactly max pooling and ``lam = 0`` exactly average pooling: a part of weight 0 is left out, so
    that :math:`0 \cdot \infty` cannot make the other NaN (PyTorch's composition
    ``lam * max_pool2d(x) + (1 - lam) * avg_pool2d(x)`` would). Otherwise each part keeps its rules on
    NaN and infinities: the maximum PyTorch's (a NaN wins, a window of :math:`-\infty` gives
    :math:`-\infty`), the average holds each NaN or infinity in its own windows (:math:`+\infty`
    with :math:`-\infty` gives NaN); backward, an upstream NaN or infinity goes through the max part
    to the argmax only and through the average to every element of its window.

    References
    ----------
    D. Yu, H. Wang, P. Chen and Z. Wei, "Mixed Pooling for Convolutional Neural Networks", RSKT 2014.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.ops.stochastic import mixed_pool2d
    >>> x = np.array([[[1., 3.], [0., 4.]]])
    >>> mixed_pool2d(x, 2, lam=0.5)  # (4 + 2) / 2
    array([[[3.]]])
    """
    op = "mixed_pool2d"
    x = check_pool_input(x, 2, op, integer_ok=False)
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not math.isfinite(lam) or not 0 <= lam <= 1:
        raise ValueError(f"{op}: lam must be a finite number in [0, 1], got lam={lam!r}")
    geometry = pool_geometry(x.shape[-2:], kernel_size, stride, padding, 1, False, "torch", op)
    return apply(MIXED_POOL, x, geometry=geometry, lam=float(lam))
