r"""Random and mixed pooling: fractional max pooling, stochastic pooling and mixed pooling.

Three ways to make pooling less rigid than a fixed grid of maxima (SEMANTICS.md sections 6 and 7):

* **fractional max pooling** (Graham 2014) takes maxima over windows whose *starts* are drawn at random,
  so that the output can be any size between the input and the input over two. The randomness is
  one number ``u`` in ``[0, 1)`` per (n, c) plane and spatial axis; given ``u`` the op is an ordinary
  max pooling over irregular windows, with max pooling's tie, NaN and backward rules;
* **stochastic pooling** (Zeiler & Fergus 2013) picks one element of each window at random, with
  probability proportional to its (non-negative) value; at inference it outputs the expected value
  of that pick instead;
* **mixed pooling** (Yu et al. 2014) blends max and average pooling with a fixed weight.

Randomness comes from the caller: a ``numpy.random.Generator`` or an int seed (``rng=``), or, for
fractional pooling, the samples themselves (``random_samples=``), so that every result can be
reproduced and a gradient check can hold the draws fixed. As in :mod:`poolref.ops.window`, every op is
a forward/backward pair of pure functions registered with the tape, and the array code loops over the
few kernel taps, never over output pixels, batch or channels. The plain loops of
:mod:`poolref.reference.stochastic` are the executable specification these functions are tested
against.
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import NamedTuple

import numpy

from .._backend import array_module, to_numpy
from .._checks import accumulation_dtype, cast_back, check_pool_input
from .._geometry import WindowGeometry, as_int_tuple, pool_geometry
from .._running_max import NO_TAP, TORCH, RunningMax, window_indices
from .._windows import gather_from_planes, scatter_to_planes
from ..autograd.function import apply, define_function
from .window import AVG_POOL, MAX_POOL, MaxPoolSaved

__all__ = ["fractional_max_pool2d", "fractional_max_pool3d", "stochastic_pool2d", "mixed_pool2d"]


# ==================================================================================================
# Randomness supplied by the caller
# ==================================================================================================
def _generator(rng, op: str) -> numpy.random.Generator:
    """A ``numpy.random.Generator`` from ``rng``: a Generator (used as is), an int seed, or None.

    None draws fresh entropy (not reproducible); an int seed gives the same draws on every call, which
    is what a gradient check needs; a Generator advances with every call.
    """
    if rng is None:
        return numpy.random.default_rng()
    if isinstance(rng, numpy.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise ValueError(f"{op}: an int seed rng must be non-negative, got rng={rng!r}")
        return numpy.random.default_rng(int(rng))
    raise TypeError(f"{op}: rng must be a numpy.random.Generator, an int seed or None, got rng={rng!r}")


def _as_array(value):
    """The array inside a Tensor, or ``value`` itself; array-likes become numpy arrays."""
    value = value.data if hasattr(value, "requires_grad") and hasattr(value, "data") else value
    return value if hasattr(value, "shape") and hasattr(value, "dtype") else numpy.asarray(value)


# ==================================================================================================
# Fractional max pooling
# ==================================================================================================
# Which column of ``random_samples`` drives which spatial axis, outermost axis first. This is
# PyTorch's layout, and it is NOT the same in 2-D and 3-D (checked against PyTorch 2.13):
# 2-D reads column 0 for the width and column 1 for the height; 3-D reads columns 0, 1, 2 for
# time (depth), height, width.
SAMPLE_COLUMN = {2: (1, 0), 3: (0, 1, 2)}


def fractional_starts(samples, length: int, out_length: int, kernel: int):
    r"""(.., O) start of every fractional window along one axis, for samples ``u`` of shape (..).

    PyTorch's rule (``generate_intervals``), with :math:`\alpha = (L - k)/(O - 1)`:

    .. math:: s_i = \lfloor (i + u)\,\alpha \rfloor - \lfloor u\,\alpha \rfloor \quad (i < O - 1),
              \qquad s_{O-1} = L - k

    and :math:`s_0 = L - k` when :math:`O = 1`. The arithmetic runs in the samples' dtype, one
    rounding per operation, as PyTorch's CPU kernel does in the input's dtype (float16 included), so
    that the windows match it exactly; ``int()`` truncation is the floor here because every operand
    is non-negative.

    >>> import numpy as np
    >>> fractional_starts(np.array([0.5]), 10, 4, 2).tolist()
    [[0, 3, 5, 8]]
    """
    xp = array_module(samples)
    dtype = samples.dtype
    starts = xp.empty(tuple(samples.shape) + (out_length,), dtype=numpy.int64)
    if out_length > 1:
        # alpha >= 1 because the callers require out_length + kernel - 1 <= length
        alpha = xp.asarray(length - kernel, dtype=dtype) / xp.asarray(out_length - 1, dtype=dtype)
        i = xp.arange(out_length - 1, dtype=dtype)  # (O-1,)
        u = samples[..., None]  # (.., 1)
        starts[..., :-1] = ((i + u) * alpha).astype(numpy.int64) - (u * alpha).astype(numpy.int64)
    starts[..., -1] = length - kernel  # the last window always ends at the input's end
    return starts


class FractionalSaved(NamedTuple):
    indices: object  # (.., O..) flat in-plane index of each window's maximum
    in_shape: tuple  # the input's shape, for the gradient
    ndim: int  # number of spatial dims


def _fractional_max_forward(x, *, samples, kernel: tuple, output_size: tuple, with_indices: bool):
    # x: (.., L_0, .., L_{n-1}); samples: (.., n) in x's dtype, one row per (n, c) plane
    xp = array_module(x)
    n = len(kernel)
    lead = x.shape[: x.ndim - n]
    in_shape = x.shape[x.ndim - n:]
    plane_strides = [math.prod(in_shape[a + 1:]) for a in range(n)]  # row-major flat index weights

    # base: (.., O_0, .., O_{n-1}) flat in-plane index of every window's first element. The windows
    # differ from plane to plane (each plane has its own samples), so base keeps the lead dims.
    base = xp.zeros(lead + (1,) * n, dtype=numpy.int64)
    for a in range(n):
        starts = fractional_starts(samples[..., SAMPLE_COLUMN[n][a]], in_shape[a], output_size[a], kernel[a])
        along = lead + tuple(output_size[a] if b == a else 1 for b in range(n))
        base = base + (starts * plane_strides[a]).reshape(along)
    base = xp.broadcast_to(base, lead + tuple(output_size))

    # offset of tap m (row-major over the kernel) from its window's first element
    taps = list(itertools.product(*(range(k) for k in kernel)))
    tap_offset = numpy.array([sum(m * s for m, s in zip(offsets, plane_strides)) for offsets in taps], dtype=numpy.int64)

    # PyTorch's running max over every window (poolref._running_max), tap by tap. Windows never
    # leave the input, so every scan starts at tap 0.
    planes = x.reshape(lead + (math.prod(in_shape),))  # (.., L_0*..*L_{n-1})
    window_number = base.reshape(lead + (math.prod(output_size),))  # (.., O_0*..*O_{n-1})
    scan = RunningMax(TORCH, lead + tuple(output_size), x.dtype, xp, taps=len(taps), first_tap=0,
                      nan_possible=bool(xp.isnan(x).any()))
    for tap_number, offset in enumerate(tap_offset.tolist()):
        scan.add(xp.take_along_axis(planes, window_number + offset, axis=-1).reshape(base.shape), tap_number)
    indices = base + xp.take(xp.asarray(tap_offset), scan.winner.astype(numpy.int64))
    best = scan.values(lambda: gather_from_planes(x, indices, n))  # y_o = x[index_o]
    saved = FractionalSaved(indices, tuple(x.shape), n)
    return ((best, indices) if with_indices else best), saved


def _fractional_max_backward(saved: FractionalSaved, grad_values, *_grad_indices):
    # max pooling's backward: y_o = x[index_o] is a gather, so grad_x[index_o] += grad_y[o], its
    # adjoint scatter; overlapping windows add up
    return (scatter_to_planes(grad_values, saved.indices, saved.in_shape, saved.ndim),)


FRACTIONAL_MAX_POOL = define_function("fractional_max_pool", _fractional_max_forward, _fractional_max_backward)


def _output_ratio(output_ratio, n: int, op: str) -> tuple[float, ...]:
    values = tuple(output_ratio) if isinstance(output_ratio, (tuple, list)) else (output_ratio,) * n
    if len(values) != n or not all(isinstance(r, numbers.Real) and not isinstance(r, bool) for r in values):
        raise TypeError(f"{op}: output_ratio must be a number or a sequence of {n} numbers, got output_ratio={output_ratio!r}")
    if not all(math.isfinite(r) and 0 < r < 1 for r in values):
        # torch.nn.FractionalMaxPool{2,3}d's rule (the functional form leaves it to the size check)
        raise ValueError(f"{op}: output_ratio must lie strictly between 0 and 1, got output_ratio={output_ratio!r}")
    return tuple(float(r) for r in values)


def _fractional_output_size(x, n, op, kernel, output_size, output_ratio) -> tuple[int, ...]:
    in_shape = tuple(x.shape[-n:])
    if (output_size is None) == (output_ratio is None):
        raise ValueError(
            f"{op}: give exactly one of output_size and output_ratio, got output_size={output_size!r} "
            f"and output_ratio={output_ratio!r}"
        )
    if output_size is not None:
        size = as_int_tuple(output_size, n, "output_size", op)
        if any(v < 1 for v in size):
            raise ValueError(f"{op}: output_size must be positive, got output_size={output_size!r}")
    else:
        # PyTorch: int(L * ratio), a truncation of the float product
        size = tuple(int(L * r) for L, r in zip(in_shape, _output_ratio(output_ratio, n, op)))
        if any(v < 1 for v in size):
            raise ValueError(
                f"{op}: output_ratio={output_ratio!r} gives an empty output {size} for input size {in_shape}"
            )
    for a, (L, k, O) in enumerate(zip(in_shape, kernel, size)):
        # PyTorch requires O + k - 1 <= L in 2-D (so that alpha = (L - k)/(O - 1) >= 1: starts never
        # repeat), but O + k - 1 < L, strictly, in 3-D: an off-by-one that refuses e.g. a single window
        # covering the whole axis. We mirror both, so that poolref refuses exactly what PyTorch does.
        too_large = O + k - 1 > L if n == 2 else O + k - 1 >= L
        if too_large:
            rule = "output + kernel - 1 <= input" if n == 2 else "output + kernel - 1 < input (PyTorch's 3-D rule)"
            raise ValueError(
                f"{op}: kernel_size={tuple(kernel)} is too large for output size {size} along axis {a} "
                f"of input size {in_shape}: {rule} must hold"
            )
    return size


def _fractional_samples(x, n, op, random_samples, rng):
    """(.., n) samples in x's dtype, one row per (n, c) plane of ``x`` (lead dims of ``x``)."""
    xp = array_module(x)
    batched = x.ndim == n + 2
    batch = x.shape[0] if batched else 1
    channels = x.shape[1] if batched else x.shape[0]
    if random_samples is not None:
        if rng is not None:
            raise ValueError(f"{op}: give random_samples or rng, not both (got rng={rng!r})")
        samples = _as_array(random_samples)
        if numpy.dtype(samples.dtype).kind != "f":
            raise TypeError(f"{op}: random_samples must be a float array, got random_samples with dtype {samples.dtype}")
        # PyTorch's checks: (N_s, C, n) with N_s >= the batch size (the first rows are used)
        if samples.ndim != 3 or samples.shape[1] != channels or samples.shape[2] != n or samples.shape[0] < batch:
            raise ValueError(
                f"{op}: random_samples must have shape ({batch}, {channels}, {n}) (more rows are allowed), "
                f"got random_samples with shape {tuple(samples.shape)}"
            )
        host = to_numpy(samples)
        outside = ~((host >= 0) & (host < 1))  # NaN compares False: it is outside too
        if outside.any():
            raise ValueError(
                f"{op}: random_samples must lie in [0, 1), got random_samples with {int(outside.sum())} value(s) "
                f"outside, e.g. {float(host[outside][0])!r}"
            )
        # PyTorch requires the samples in the input's dtype and computes the windows in it
        samples = xp.asarray(samples).astype(x.dtype, copy=False)[:batch]
    else:
        drawn = _generator(rng, op).random((batch, channels, n))  # float64 in [0, 1)
        samples = drawn.astype(x.dtype)
        # rounding to float16/float32 may reach 1.0: keep the samples below 1, as torch.rand does
        below_one = numpy.nextafter(numpy.array(1, dtype=x.dtype), numpy.array(0, dtype=x.dtype))
        samples = xp.asarray(numpy.minimum(samples, below_one))
    return samples if batched else samples[0]


def _fractional_max_pool(x, n, op, kernel_size, output_size, output_ratio, return_indices, random_samples, rng):
    x = check_pool_input(x, n, op, integer_ok=False)
    kernel = as_int_tuple(kernel_size, n, "kernel_size", op)
    if any(k < 1 for k in kernel):
        raise ValueError(f"{op}: kernel_size must be positive, got kernel_size={kernel_size!r}")
    size = _fractional_output_size(x, n, op, kernel, output_size, output_ratio)
    samples = _fractional_samples(x, n, op, random_samples, rng)
    return apply(
        FRACTIONAL_MAX_POOL, x, samples=samples, kernel=kernel, output_size=size, with_indices=bool(return_indices)
    )


def fractional_max_pool2d(x, kernel_size, output_size=None, output_ratio=None, return_indices=False, *, random_samples=None, rng=None):
    r"""2-D fractional max pooling: maxima over windows placed at pseudo-random, overlapping starts.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input.
    kernel_size : int or (int, int)
        Window size ``(kH, kW)``; every window has this size.
    output_size : int or (int, int), optional
        ``(H_out, W_out)``. Give exactly one of ``output_size`` and ``output_ratio``.
    output_ratio : float or (float, float), optional
        Output size as a fraction of the input size, strictly between 0 and 1:
        ``H_out = int(H * ratio)`` (truncated, as PyTorch).
    return_indices : bool
        Also return each maximum's flat index ``h*W + w`` within its (n, c) plane (PyTorch's layout,
        usable by :func:`poolref.max_unpool2d`).
    random_samples : array, shape (N, C, 2), optional
        The samples :math:`u \in [0, 1)` that place the windows, one pair per (n, c) plane (``N = 1``
        for an unbatched input; extra rows are ignored, as PyTorch does). **Column 0 drives the
        width, column 1 the height** (PyTorch's layout). Converted to the dtype of ``x``: PyTorch
        requires that dtype and computes the windows in it.
    rng : numpy.random.Generator or int, optional
        Where to draw the samples when ``random_samples`` is not given (an int is a seed; None draws
        fresh entropy). Not both.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (C, H_out, W_out)
    indices : int64 array or Tensor (only with ``return_indices``)

    Raises
    ------
    ValueError
        Neither or both of ``output_size`` and ``output_ratio``; a non-positive size or kernel;
        ``H_out + kH - 1 > H`` (or the same for W; PyTorch's "pool height too large" check); samples
        of the wrong shape or outside ``[0, 1)``.

    Notes
    -----
    Along an axis of length :math:`L`, with kernel :math:`k`, output length :math:`O` and the plane's
    sample :math:`u`, window :math:`i` starts at

    .. math:: s_i = \lfloor (i + u)\,\alpha \rfloor - \lfloor u\,\alpha \rfloor, \qquad
              \alpha = \frac{L - k}{O - 1} \quad (i < O - 1), \qquad s_{O-1} = L - k

    (:math:`s_0 = L - k` when :math:`O = 1`), so consecutive starts step by :math:`\lfloor\alpha\rfloor`
    or :math:`\lceil\alpha\rceil` and the last window ends at the input's end. The window of output
    :math:`(i, j)` is :math:`W_{ij} = [s^H_i, s^H_i + k_H) \times [s^W_j, s^W_j + k_W)` and

    .. math:: y_{ij} = \max_{t \in W_{ij}} x_t, \qquad
              \frac{\partial L}{\partial x_t} = \sum_{(i, j) \,:\, \mathrm{index}_{ij} = t} \frac{\partial L}{\partial y_{ij}}

    with max pooling's rules (PyTorch's running max, :ref:`max-rules`): taps scanned row-major, a tap
    taken when ``x_t > y or isnan(x_t)`` (ties to the first, ``-0.`` before ``0.``, a NaN wins and the
    last NaN's index is kept), and a scatter-add backward (overlapping windows accumulate; the input
    gradient sums to the output gradient; an infinite or NaN upstream entry stays at its argmax).

    The windows are computed in the dtype of ``x`` (float16 included), one rounding per operation,
    exactly as PyTorch's CPU kernel does; PyTorch's CUDA kernel computes them in float32 for float16
    input, so for float16 the two can place windows differently.

    References
    ----------
    B. Graham, "Fractional Max-Pooling", arXiv:1412.6071, 2014.

    Examples
    --------
    With ``u = 0.5`` along both axes, a 10-long axis pooled to 4 by windows of 2 starts them at
    0, 3, 5, 8:

    >>> import numpy as np
    >>> from poolref.ops.stochastic import fractional_max_pool2d
    >>> x = np.arange(100.).reshape(1, 1, 10, 10)
    >>> u = np.full((1, 1, 2), 0.5)
    >>> fractional_max_pool2d(x, 2, output_size=4, random_samples=u)
    array([[[[11., 14., 16., 19.],
             [41., 44., 46., 49.],
             [61., 64., 66., 69.],
             [91., 94., 96., 99.]]]])
    """
    return _fractional_max_pool(x, 2, "fractional_max_pool2d", kernel_size, output_size, output_ratio, return_indices, random_samples, rng)


def fractional_max_pool3d(x, kernel_size, output_size=None, output_ratio=None, return_indices=False, *, random_samples=None, rng=None):
    r"""3-D fractional max pooling over (N, C, T, H, W) or (C, T, H, W); see :func:`fractional_max_pool2d`.

    ``random_samples`` has shape (N, C, 3) and, unlike in 2-D, **column 0 drives the first spatial
    axis (time/depth), column 1 the height and column 2 the width** (PyTorch's layout). Indices are
    flat within each (n, c) volume, ``(t*H + h)*W + w``.

    PyTorch's 3-D size check is stricter than its 2-D one: it requires ``O + k - 1 < L`` (strictly)
    on every axis, refusing for example a single window that covers a whole axis; poolref mirrors it.

    Notes
    -----
    Per axis, starts :math:`s_i = \lfloor (i + u)\alpha \rfloor - \lfloor u\alpha \rfloor` with
    :math:`\alpha = (L - k)/(O - 1)` and :math:`s_{O-1} = L - k`; :math:`y_o = \max_{t \in W_o} x_t`
    (PyTorch's rule: first of ties, the last NaN wins; :ref:`max-rules`); backward scatters
    :math:`\partial L/\partial y_o` onto the argmax.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.ops.stochastic import fractional_max_pool3d
    >>> x = np.arange(64.).reshape(1, 4, 4, 4)
    >>> y, i = fractional_max_pool3d(x, 2, output_size=2, return_indices=True, random_samples=np.zeros((1, 1, 3)))
    >>> i.ravel().tolist()
    [21, 23, 29, 31, 53, 55, 61, 63]
    """
    return _fractional_max_pool(x, 3, "fractional_max_pool3d", kernel_size, output_size, output_ratio, return_indices, random_samples, rng)


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
    raw = _as_array(x)
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
    if not isinstance(training, (bool, numpy.bool_)):
        raise TypeError(f"{op}: training must be a bool, got training={training!r}")
    geometry = pool_geometry(x.shape[-2:], kernel_size, stride, 0, 1, False, "torch", op)
    _check_non_negative_finite(x, op)
    if not training:
        return apply(STOCHASTIC_POOL_EXPECTATION, x, geometry=geometry)
    generator = _generator(rng, op)
    out_shape = tuple(x.shape[:-2]) + geometry.out_shape
    xp = array_module(_as_array(x))
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
