r"""Separable sampling weights: along one axis, which input positions each output reads, and how much.

Every fixed resize is separable. Along one axis of ``L`` input positions, output ``o`` of ``O`` is a
weighted sum of a few inputs,

.. math:: y_o = \sum_k w_{o,k}\, x_{i_{o,k}},

and in n dimensions the axes are resized one after the other. Frameworks agree on that and on little
else: where output ``o`` lands in the input (pixel corners, pixel centres, aligned corners), in which
precision that coordinate is rounded (PyTorch's float32 ``floorf`` even for float64 data,
TensorFlow's float32 everywhere), how wide the kernel is when downsampling (antialiasing), and which
taps are *read* at all. The last matters as much as the weights: a NaN or an infinity times a weight
0 is NaN, so a framework that reads a neighbour with weight 0 spreads an infinity where one that
skips it does not. The rules live in one module per framework; TensorFlow's and JAX's names are
reachable from this one too (``from poolref import _sampling_weights as weights; weights.tf_area``):

* the table itself, :class:`~poolref._taps.Taps` (``(index, weight, read)`` of shape (O, K): exactly
  the taps a framework reads, zero weights included, and nothing else), :class:`~poolref._taps.Lerp`,
  :func:`~poolref._taps.resample` and :func:`~poolref._taps.contract` live in :mod:`poolref._taps`,
  with the windows of pooling and the adaptive bins, which are tables of the same kind;
* PyTorch's rules, here: nearest, linear, bicubic and antialiased taps (ATen's upsample kernels,
  CPU), Keys' cubic kernel, and the taps of a single point (``grid_sample``: linear and cubic).
  PyTorch's ``area`` mode is adaptive average pooling (``torch.nn.functional.interpolate`` calls
  ``adaptive_avg_pool{1,2,3}d``): its bins are :func:`poolref._geometry.adaptive_taps`, and
  ``interpolate`` calls adaptive average pooling itself;
* TensorFlow's rules in :mod:`poolref._sampling_tensorflow`, JAX's in :mod:`poolref._sampling_jax`;
  torchvision's bilinear rule for the points of the region ops and of deformable convolution in
  :mod:`poolref._sampling_torchvision`.

Each rule reproduces its framework's arithmetic (float32 or float64, the order of the operations),
because the tap an output reads is decided by a ``floor`` of a rounded coordinate. The rules were
read in the frameworks' sources (PyTorch ``UpSample.h``/``UpSampleKernel.cpp``, TensorFlow
``resize_*_op.cc`` and ``scale_and_translate_op.cc``, ``jax/_src/image/scale.py``) and checked
numerically against torch 2.13, TensorFlow 2.21 and jax 0.10.2 (tests/ops/test_sampling.py).

The tables are small host (numpy) arrays, one per axis; :func:`~poolref._taps.resample` moves them
to the data's device.
"""

from __future__ import annotations

import math

import numpy

from ._fma import fused_multiply_add
from ._sampling_jax import jax_dense, jax_nearest
from ._sampling_tensorflow import tf_antialias, tf_area, tf_bilinear, tf_cubic, tf_nearest, tf_scale
from ._taps import Lerp, Taps, contract, resample

__all__ = [
    "Taps",
    "Lerp",
    "fused_multiply_add",
    "resample",
    "contract",
    "nearest_indices",
    "torch_nearest",
    "torch_linear",
    "torch_antialias",
    "TORCH_CUBIC_A",
    "cubic_kernel",
    "cubic_coefficients",
    "torch_cubic",
    "tf_scale",
    "tf_nearest",
    "tf_bilinear",
    "tf_area",
    "tf_antialias",
    "tf_cubic",
    "jax_nearest",
    "jax_dense",
    "linear_point_taps",
    "cubic_point_taps",
]

F32 = numpy.float32
F64 = numpy.float64


# ==================================================================================================
# PyTorch (ATen's upsample kernels, CPU)
# ==================================================================================================
def nearest_indices(length: int, out_length: int, scale_factor=None, exact: bool = False, shortcuts: bool = True):
    r"""Input position read by each output of PyTorch's ``nearest`` / ``nearest-exact`` resizing.

    Parameters
    ----------
    length, out_length : int
        Input and output lengths ``L`` and ``O``.
    scale_factor : float or None
        The user's scale factor, when one was given (and not recomputed): the scale is then
        ``1/scale_factor`` rather than ``L/O``.
    exact : bool
        ``nearest-exact`` (pixel centres) instead of ``nearest`` (left edges).
    shortcuts : bool
        ``nearest``'s two shortcuts (below): PyTorch 2.13 takes them in its 2-D forward and in every
        backward, not in its 1-D and 3-D forwards.

    Returns
    -------
    (O,) int64 numpy array

    Notes
    -----
    ``nearest``: :math:`\min(\lfloor o\,s \rfloor, L - 1)`; ``nearest-exact``:
    :math:`\min(\lfloor (o + 1/2)\,s \rfloor, L - 1)`, with :math:`s = L/O` or
    :math:`1/\mathrm{scale\_factor}`. PyTorch computes :math:`s` in float32 and, for ``nearest``,
    the product too (for ``nearest-exact`` the product in float64, rounded to float32 before the
    floor), whatever the dtype of the data (``nearest_idx``, the rule of its backward and of its 2-D
    forward); we do the same, so indices agree with PyTorch's even where float32 rounding moves them
    (``L = 14, O = 46``: output 23 reads 6, not 7). With ``shortcuts``, ``nearest`` also copies when
    ``O = L`` and reads :math:`\lfloor o/2 \rfloor` when ``O = 2L``, even if a scale factor was given
    (they differ from the rule only then: ``scale_factor=2.2`` on a length of 4).

    Examples
    --------
    >>> nearest_indices(3, 5).tolist(), nearest_indices(3, 5, exact=True).tolist()
    ([0, 0, 1, 1, 2], [0, 0, 1, 2, 2])
    >>> nearest_indices(4, 8, 2.2).tolist(), nearest_indices(4, 8, 2.2, shortcuts=False).tolist()
    ([0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 0, 1, 1, 2, 2, 3])
    """
    o = numpy.arange(out_length)
    if shortcuts and not exact and out_length == length:
        return o
    if shortcuts and not exact and out_length == 2 * length:
        return o // 2
    if scale_factor is not None:
        scale = F32(1.0 / scale_factor)
    else:
        scale = F32(length) / F32(out_length)
    if exact:
        source = ((o + 0.5) * F64(scale)).astype(F32)
    else:
        source = o.astype(F32) * scale
    return numpy.minimum(numpy.floor(source).astype(numpy.int64), length - 1)


def torch_nearest(length: int, out_length: int, scale_factor=None, exact: bool = False, shortcuts: bool = True) -> Taps:
    """PyTorch's ``nearest`` / ``nearest-exact``: one tap of weight 1 (:func:`nearest_indices`).

    >>> torch_nearest(2, 3).index.tolist()
    [[0], [0], [1]]
    """
    return Taps.one_each(length, nearest_indices(length, out_length, scale_factor, exact, shortcuts))


def _compute_dtype(dtype) -> type:
    """PyTorch's ``opmath_t``: float64 for float64 data, float32 otherwise."""
    return F64 if numpy.dtype(dtype) == numpy.float64 else F32


def _torch_scale(length: int, out_length: int, align_corners: bool, scale_factor, compute):
    """``area_pixel_compute_scale``: (L-1)/(O-1) aligned (0 when O = 1), 1/scale_factor, or L/O."""
    if align_corners:
        return compute(length - 1) / compute(out_length - 1) if out_length > 1 else compute(0)
    if scale_factor is not None:
        return compute(1.0 / scale_factor)
    return compute(length) / compute(out_length)


def torch_linear(length: int, out_length: int, align_corners: bool, scale_factor=None, dtype=F64) -> Taps:
    r"""PyTorch's linear taps (``linear``, ``bilinear``, ``trilinear`` along each axis).

    Parameters
    ----------
    length, out_length : int
        ``L`` and ``O``.
    align_corners : bool
    scale_factor : float or None
        As for :func:`nearest_indices` (ignored with ``align_corners``).
    dtype : numpy dtype
        The data's dtype: PyTorch computes coordinates in float64 for float64 data and in float32
        otherwise, and stores the weights in the data's dtype (float16 weights for float16 data).

    Returns
    -------
    Taps
        Two taps per output, both always read.

    Notes
    -----
    ``compute_source_index_and_lambda``: with :math:`O = L` output :math:`o` reads :math:`x_o` with
    weight 1 *and again* with weight 0 (so an infinite pixel gives NaN: PyTorch's ``copy`` is
    ``1 \cdot x + 0 \cdot x``). Otherwise the source coordinate is :math:`c = s\,o` with aligned
    corners (:math:`s = (L-1)/(O-1)`), else :math:`c = \max(s (o + 1/2) - 1/2, 0)`, computed in
    float64 as one fused multiply-add (:func:`fused_multiply_add`) and rounded to the compute dtype; :math:`i_0 = \min(\lfloor c \rfloor, L - 1)` where
    the floor is C's ``floorf``, i.e. of :math:`c` rounded to float32 (so for float64 data
    :math:`c = 0.9999999999999998` reads from 1, not from 0),
    :math:`w_1 = \mathrm{clip}(c - i_0, 0, 1)`, :math:`w_0 = 1 - w_1`, and
    :math:`i_1 = i_0 + 1`, or :math:`i_0` again at the last pixel.

    Examples
    --------
    >>> t = torch_linear(2, 4, align_corners=False)
    >>> t.index.tolist(), t.weight[:, 1].tolist()
    ([[0, 1], [0, 1], [0, 1], [1, 1]], [0.0, 0.25, 0.75, 0.25])
    >>> torch_linear(3, 3, align_corners=True).index.tolist()  # the 'copy' reads each pixel twice
    [[0, 0], [1, 1], [2, 2]]
    """
    L, O = length, out_length
    o = numpy.arange(O)
    if O == L:
        weight = numpy.zeros((O, 2))
        weight[:, 0] = 1.0
        return Taps(L, numpy.stack([o, o], axis=1), weight)
    compute = _compute_dtype(dtype)
    scale = _torch_scale(L, O, align_corners, scale_factor, compute)
    if align_corners:
        source = scale * o.astype(compute)
    else:
        # scale * (o + 0.5) - 0.5 with the 0.5s C++ doubles: in float64, fused, then rounded
        source = fused_multiply_add(F64(scale), o + 0.5, -0.5).astype(compute)
        source = numpy.where(source < 0, compute(0), source)
    low = numpy.minimum(numpy.floor(source.astype(F32)).astype(numpy.int64), L - 1)  # floorf
    w1 = numpy.minimum(numpy.maximum(source - low.astype(compute), compute(0)), compute(1))
    w0 = compute(1) - w1
    high = low + (low < L - 1)
    weight = numpy.stack([w0, w1], axis=1).astype(dtype).astype(F64)  # stored in the data's dtype
    return Taps(L, numpy.stack([low, high], axis=1), weight)


def torch_antialias(length: int, out_length: int, align_corners: bool, scale_factor=None, dtype=F64,
                    cubic: bool = False) -> Taps:
    r"""PyTorch's antialiased taps (``interpolate(mode="bilinear" or "bicubic", antialias=True)``).

    Parameters
    ----------
    length, out_length, align_corners, scale_factor
        As for :func:`torch_linear`.
    dtype : numpy dtype
        float64 data is computed in float64, anything else in float32 (PyTorch's CPU kernel takes
        float32 and float64 only).
    cubic : bool
        ``bicubic``: Keys' cubic filter with :math:`a = -1/2` (Pillow's, not the :math:`-3/4` of
        PyTorch's plain bicubic), :func:`cubic_kernel`, over twice the support.

    Returns
    -------
    Taps
        A variable number of taps per output (a window of the input), all read.

    Notes
    -----
    ``_compute_indices_min_size_weights_aa`` with the triangle filter :math:`f(t) = \max(1 - |t|, 0)`
    (Pillow's; ``cubic``: :func:`cubic_kernel` with :math:`a = -1/2`, support doubled): with scale
    :math:`s` (as for :func:`torch_linear`), support
    :math:`r = s` when :math:`s \ge 1` (downsampling widens the triangle) else 1, centre
    :math:`c = s (o + 1/2)`, output :math:`o` reads the window
    :math:`[\max(\mathrm{trunc}(c - r + 1/2), 0),\ \min(\mathrm{trunc}(c + r + 1/2), L))`, position
    :math:`i` with weight :math:`f((i - c + 1/2)/\max(s, 1))`, normalized by the window's total. A
    weight can be exactly 0 at the window's end (upsampling 2 -> 6: output 1 reads pixel 1 with
    weight 0) and is read all the same. The forward copies an axis whose size does not change, but
    the backward applies these taps there too (pixel ``i`` with weight 1 and ``i + 1`` with weight 0).

    Examples
    --------
    >>> t = torch_antialias(4, 2, align_corners=False)
    >>> t.index.tolist(), t.weight.round(4).tolist()
    ([[0, 1, 2], [1, 2, 3]], [[0.4286, 0.4286, 0.1429], [0.1429, 0.4286, 0.4286]])
    """
    L, O = length, out_length
    s = F64 if numpy.dtype(dtype) == numpy.float64 else F32
    scale = _torch_scale(L, O, align_corners, scale_factor, s)
    wide = scale >= 1
    half_width = 2.0 if cubic else 1.0  # interp_size / 2: the filter's support at scale 1
    support = s(F64(half_width) * F64(scale)) if wide else s(half_width)
    window = int(math.ceil(support)) * 2 + 1
    invscale = s(1.0 / F64(scale)) if wide else s(1.0)
    o = numpy.arange(O)
    centre = (F64(scale) * (o + 0.5)).astype(s)
    start = numpy.maximum(numpy.trunc(F64(1) * (centre - support) + 0.5).astype(numpy.int64), 0)
    size = numpy.minimum(numpy.trunc(F64(1) * (centre + support) + 0.5).astype(numpy.int64), L) - start
    size = numpy.clip(size, 0, window)
    j = numpy.arange(window)
    position = start[:, None] + j[None, :]  # (O, window)
    read = j[None, :] < size[:, None]
    # (j + xmin - center + 0.5) * invscale: int - float in the compute dtype, then doubles, then the
    # filter's argument rounded back to the compute dtype
    argument = ((position.astype(s) - centre[:, None]).astype(F64) + 0.5) * F64(invscale)
    argument = numpy.abs(argument.astype(s))
    if cubic:
        weight = cubic_kernel(argument, s(-0.5))  # in the compute dtype, as PyTorch's aa_filter
    else:
        weight = numpy.where(argument < 1, (F64(1) - argument).astype(s), s(0))
    weight = numpy.where(read, weight, s(0))
    total = numpy.zeros(O, s)
    for k in range(window):  # the kernel's running sum, in the compute dtype
        total = (total + weight[:, k]).astype(s)
    safe = numpy.where(total != 0, total, s(1))
    weight = numpy.where(total[:, None] != 0, (weight / safe[:, None]).astype(s), weight)
    index = numpy.where(read, position, start[:, None])
    used = max(int(size.max()), 1)  # the widest window actually read
    index, weight, read = index[:, :used], weight[:, :used], read[:, :used]
    return Taps(L, index.astype(numpy.int64), weight.astype(F64), None if read.all() else read)


#: PyTorch's cubic convolution parameter (``get_cubic_upsample_coefficients``, bicubic ``grid_sample``)
TORCH_CUBIC_A = -0.75


def cubic_kernel(distance, a):
    r"""Keys' cubic convolution kernel at ``distance`` (>= 0), in the dtype of ``distance``.

    .. math::

        k(t) = \begin{cases} ((a + 2) t - (a + 3)) t^2 + 1 & t < 1 \\
               ((a t - 5a) t + 8a) t - 4a & 1 \le t < 2 \\ 0 & t \ge 2 \end{cases}

    PyTorch uses :math:`a = -3/4`, TensorFlow's and JAX's cubic and PyTorch's antialiased bicubic
    :math:`a = -1/2` (Keys). The two pieces are evaluated in Horner's form, as ATen's
    ``cubic_convolution1`` and ``cubic_convolution2``.

    >>> cubic_kernel(numpy.array([0.0, 0.5, 1.0, 1.5, 2.0]), -0.75).tolist()
    [1.0, 0.59375, 0.0, -0.09375, 0.0]
    """
    t = numpy.asarray(distance)
    a = t.dtype.type(a)
    with numpy.errstate(invalid="ignore", over="ignore"):
        return numpy.where(t < 1, _cubic_near(t, a), numpy.where(t < 2, _cubic_far(t, a), t.dtype.type(0)))


def _fma(a, b, c):
    """``a * b + c`` rounded once to the dtype of ``b`` (float32: through float64, which holds the
    product exactly; a double rounding that matters only at a tie)."""
    dtype = numpy.asarray(b).dtype
    return fused_multiply_add(a, b, c).astype(dtype)


def _cubic_near(t, a):
    """The kernel's piece for distances below 1, ATen's ``cubic_convolution1``
    ``((a + 2) t - (a + 3)) t t + 1``, with the fused multiply-adds the compiler makes of it (with
    them PyTorch's antialiased bicubic weights agree to the bit; a weight that cancels to 0 in plain
    arithmetic is 1e-32 with them)."""
    return _fma(_fma(a + 2, t, -(a + 3)) * t, t, 1)


def _cubic_far(t, a):
    """The kernel's piece for distances in [1, 2), ATen's ``cubic_convolution2``
    ``((a t - 5a) t + 8a) t - 4a``, fused as :func:`_cubic_near`."""
    return _fma(_fma(_fma(a, t, -5 * a), t, 8 * a), t, -4 * a)


def cubic_coefficients(t, a=TORCH_CUBIC_A):
    r"""The four weights of cubic convolution at fraction ``t`` in [0, 1]: ``(O,) -> (O, 4)``.

    Taps at distances :math:`1 + t, t, 1 - t, 2 - t` from the point, as ATen's
    ``get_cubic_upsample_coefficients`` computes them (in the dtype of ``t``):
    :math:`(k(1 + t), k(t), k(1 - t), k(2 - t))` with :func:`cubic_kernel`'s pieces. At :math:`t = 0`
    they are exactly :math:`(0, 1, 0, 0)`: a point on a pixel still reads its neighbours, with weight 0.

    >>> cubic_coefficients(numpy.array([0.0, 0.5])).tolist()
    [[0.0, 1.0, 0.0, 0.0], [-0.09375, 0.59375, 0.59375, -0.09375]]
    """
    t = numpy.asarray(t)
    one, a = t.dtype.type(1), t.dtype.type(a)
    return numpy.stack([_cubic_far(t + one, a), _cubic_near(t, a), _cubic_near(one - t, a), _cubic_far((one - t) + one, a)],
                       axis=-1)


def torch_cubic(length: int, out_length: int, align_corners: bool, scale_factor=None, dtype=F64) -> Taps:
    r"""PyTorch's bicubic taps along one axis (``interpolate(mode="bicubic")``, ``upsample_bicubic2d``).

    Parameters
    ----------
    length, out_length, align_corners, scale_factor, dtype
        As for :func:`torch_linear`.

    Returns
    -------
    Taps
        Four taps per output, all read, positions clamped to :math:`[0, L - 1]` (a tap beyond the
        edge reads the edge pixel again).

    Notes
    -----
    Source coordinate :math:`c = s\,o` (aligned corners) or :math:`c = s (o + 1/2) - 1/2`, *not*
    clamped at 0 (``area_pixel_compute_source_index`` with ``cubic=true``), in the compute dtype;
    :math:`i_0 = \min(\lfloor c \rfloor, L - 1)` (``floorf``), :math:`t = \mathrm{clip}(c - i_0, 0, 1)`;
    output :math:`o` reads :math:`\mathrm{clip}(i_0 - 1 + k, 0, L - 1)`, :math:`k = 0..3`, with
    :func:`cubic_coefficients` (:math:`a = -3/4`). No axis is copied: with :math:`O = L` each
    output reads its neighbours with weight 0 (PyTorch's forward spreads an infinity as NaN to them;
    its *backward* copies the gradient when no spatial size changes, see ``interpolate``).
    PyTorch's weights differ from these by a few ulp (1e-15 in float64; its plain bicubic kernel
    rounds in an order not modelled here; its antialiased weights agree to the bit).

    Examples
    --------
    >>> t = torch_cubic(3, 5, align_corners=False)
    >>> t.index[0].tolist(), t.weight[0].round(3).tolist()  # c = -0.2: taps -2..1 clamped
    ([0, 0, 0, 1], [-0.024, 0.2, 0.92, -0.096])
    """
    L, O = length, out_length
    compute = _compute_dtype(dtype)
    scale = _torch_scale(L, O, align_corners, scale_factor, compute)
    o = numpy.arange(O).astype(compute)
    if align_corners:
        source = scale * o
    else:
        source = scale * (o + compute(0.5)) - compute(0.5)  # negative allowed: cubic reads from -1
    low = numpy.minimum(numpy.floor(source.astype(F32)).astype(numpy.int64), L - 1)  # floorf
    t = numpy.minimum(numpy.maximum(source - low.astype(compute), compute(0)), compute(1))
    weight = cubic_coefficients(t, TORCH_CUBIC_A).astype(dtype).astype(F64)  # stored in the data's dtype
    index = numpy.clip(low[:, None] - 1 + numpy.arange(4), 0, L - 1)
    return Taps(L, index, weight)


# ==================================================================================================
# A single point (grid_sample), the rule the region ops' points build on
# ==================================================================================================
def linear_point_taps(coord, xp=numpy):
    r"""The two taps of linear interpolation at arbitrary coordinates: ``(low, w_low, w_high)``.

    ``low = floor(coord)`` is the left tap (the right one is ``low + 1``), ``w_high = coord - low``
    and ``w_low = 1 - w_high``; their derivatives with respect to ``coord`` are -1 and +1. Both taps
    are read whatever the weights (PyTorch's ``grid_sample`` and RoI Align do), so a neighbour that
    is NaN or infinite spreads to a point exactly on a pixel.

    >>> low, w_low, w_high = linear_point_taps(numpy.array([1.25, -0.5, 2.0]))
    >>> low.tolist(), w_low.tolist(), w_high.tolist()
    ([1.0, -1.0, 2.0], [0.75, 0.5, 1.0], [0.25, 0.5, 0.0])
    """
    low = xp.floor(coord)
    w_high = coord - low
    return low, 1 - w_high, w_high


def cubic_point_taps(t, xp=numpy):
    r"""The four cubic weights at fractions ``t`` in [0, 1) and their derivatives: ``(..., 4)`` each.

    Bicubic ``grid_sample``'s taps (PyTorch, :math:`a = -3/4`): with ``low = floor(coord)`` and
    ``t = coord - low`` the point reads ``low - 1 .. low + 2`` with weights
    :math:`k(1 + t), k(t), k(1 - t), k(2 - t)` (:func:`cubic_kernel`) and the derivatives of those
    ``d weight / d t``: :math:`k'(1 + t), k'(t), -k'(1 - t), -k'(2 - t)`.
    Computed in plain arithmetic (ATen's vectorised grid sampler, whose vector operations are not
    fused), in the dtype of ``t``; works on numpy and cupy arrays.

    >>> c, d = cubic_point_taps(numpy.array([0.0, 0.5]))
    >>> c.tolist(), d[0].tolist()
    ([[0.0, 1.0, 0.0, 0.0], [-0.09375, 0.59375, 0.59375, -0.09375]], [-0.75, -0.0, 0.75, -0.0])
    """
    dtype = t.dtype.type
    a, one, two = dtype(TORCH_CUBIC_A), dtype(1), dtype(2)
    far = [t + one, two - t]  # distances in [1, 2]: taps 0 and 3
    near = [t, one - t]  # distances in [0, 1]: taps 1 and 2
    coefficients = xp.stack([_plain_far(far[0], a), _plain_near(near[0], a), _plain_near(near[1], a), _plain_far(far[1], a)], axis=-1)
    # d k(u)/du: far piece 3a u^2 - 10a u + 8a, near piece 3(a + 2) u^2 - 2(a + 3) u; the distance
    # grows with t for taps 0 and 1 (u = 1 + t, t) and shrinks for taps 2 and 3 (u = 1 - t, 2 - t)
    d_far = [(dtype(3) * a * u - dtype(10) * a) * u + dtype(8) * a for u in far]
    d_near = [(dtype(3) * (a + two) * u - two * (a + dtype(3))) * u for u in near]
    derivatives = xp.stack([d_far[0], d_near[0], -d_near[1], -d_far[1]], axis=-1)
    return coefficients, derivatives


def _plain_near(t, a):
    """``((a + 2) t - (a + 3)) t t + 1`` without fused operations."""
    return ((a + 2) * t - (a + 3)) * t * t + 1


def _plain_far(t, a):
    """``((a t - 5a) t + 8a) t - 4a`` without fused operations."""
    return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
