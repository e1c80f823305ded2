r"""Fractional max pooling (Graham 2014): maxima over windows whose *starts* are drawn at random.

The output can be any size between the input and the input over two. The randomness is one number
``u`` in ``[0, 1)`` per (n, c) plane and spatial axis (SEMANTICS.md section 6); given ``u`` the op is
an ordinary max pooling over irregular windows, with max pooling's tie, NaN and backward rules
(:mod:`poolref._running_max`, :mod:`poolref._windows`).

Randomness comes from the caller: the samples themselves (``random_samples=``), or a
``numpy.random.Generator`` or an int seed (``rng=``) to draw them, so that every result can be
reproduced and a gradient check can hold the windows fixed. The plain loops of
:mod:`poolref.reference.stochastic` are the executable specification these functions are tested
against.
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import NamedTuple

import numpy

from .._backend import array_module, data_of, to_numpy
from .._checks import as_array, check_flag, check_pool_input, random_generator
from .._geometry import as_int_tuple
from .._running_max import TORCH, RunningMax
from .._windows import gather_from_planes, scatter_to_planes
from ..autograd.function import apply, define_function

__all__ = ["fractional_max_pool2d", "fractional_max_pool3d"]


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


# forward   y_o = x[index_o]          (the running max over window o, whose start u placed)
# backward  grad_x[index_o] += g_o    (the gather's adjoint, a scatter-add)
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
        samples = as_array(data_of(random_samples))
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
        drawn = random_generator(rng, op).random((batch, channels, n))  # float64 in [0, 1)
        samples = drawn.astype(x.dtype)
        # rounding to float16/float32 may reach 1.0: keep the samples below 1, as torch.rand does
        below_one = numpy.nextafter(numpy.array(1, dtype=x.dtype), numpy.array(0, dtype=x.dtype))
        samples = xp.asarray(numpy.minimum(samples, below_one))
    return samples if batched else samples[0]


def _fractional_max_pool(x, n, op, kernel_size, output_size, output_ratio, return_indices, random_samples, rng):
    x = check_pool_input(x, n, op, integer_ok=False)
    return_indices = check_flag(return_indices, "return_indices", op)
    kernel = as_int_tuple(kernel_size, n, "kernel_size", op)
    if any(k < 1 for k in kernel):
        raise ValueError(f"{op}: kernel_size must be positive, got kernel_size={kernel_size!r}")
    size = _fractional_output_size(x, n, op, kernel, output_size, output_ratio)
    samples = _fractional_samples(x, n, op, random_samples, rng)
    return apply(
        FRACTIONAL_MAX_POOL, x, samples=samples, kernel=kernel, output_size=size, with_indices=return_indices
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
    >>> from poolref.ops.fractional import fractional_max_pool2d
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
    >>> from poolref.ops.fractional import fractional_max_pool3d
    >>> x = np.arange(64.).reshape(1, 4, 4, 4)
    >>> y, i = fractional_max_pool3d(x, 2, output_size=2, return_indices=True, random_samples=np.zeros((1, 1, 3)))
    >>> i.ravel().tolist()
    [21, 23, 29, 31, 53, 55, 61, 63]
    """
    return _fractional_max_pool(x, 3, "fractional_max_pool3d", kernel_size, output_size, output_ratio, return_indices, random_samples, rng)
