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
skips it does not. This module is the one home for those rules:

* :class:`Taps` is one axis's gather table, ``(index, weight, read)`` of shape (O, K): exactly the
  taps a framework reads, zero weights included, and nothing else. ``Taps.transpose`` is the table
  of the adjoint (the backward of a linear map is its transpose); :meth:`Taps.matrix` the dense
  (O, L) matrix. A ``dense`` table reads every input (JAX's resize is a dense matrix product).
* :class:`Lerp` is TensorFlow's bilinear form ``a + (b - a) t``, which is not a weighted sum on
  non-finite input (an infinite ``a`` gives NaN even at ``t = 0``).
* one function per rule: PyTorch's nearest, linear and antialiased taps and adaptive (``area``)
  bins; TensorFlow's nearest, bilinear, area and antialiased (``scale_and_translate``) taps; JAX's
  nearest taps and dense weight matrices; the two taps of a single point (``grid_sample``);
  torchvision's bilinear rule for the points the region ops sample (:func:`bilinear_axis`, one
  axis; :func:`bilinear_taps`, the four corners of every point); and the four corners of a point
  on a zero-padded plane, with their slopes (torchvision's deformable convolution,
  :func:`zero_padded_bilinear`).
* :func:`resample` applies a table along one axis of an array (numpy or cupy).

Each rule reproduces its framework's arithmetic (float32 or float64, the order of the operations),
because the tap an output reads is decided by a ``floor`` of a rounded coordinate. The rules were
read in the frameworks' sources (PyTorch ``UpSample.h``/``UpSampleKernel.cpp``, TensorFlow
``resize_*_op.cc`` and ``scale_and_translate_op.cc``, ``jax/_src/image/scale.py``) and checked
numerically against torch 2.13, TensorFlow 2.21 and jax 0.10.2 (tests/ops/test_sampling.py).

The tables are small host (numpy) arrays, one per axis; :func:`resample` moves them to the data's
device; the points of the region ops and of deformable convolution (the last two sections) are
computed on the data's own device, numpy or cupy. DynOPool and adaptive pooling are meant to build
their taps here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy

from ._backend import array_module
from ._geometry import adaptive_bins

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
    "adaptive_average",
    "tf_scale",
    "tf_nearest",
    "tf_bilinear",
    "tf_area",
    "tf_antialias",
    "jax_nearest",
    "jax_dense",
    "linear_point_taps",
    "AxisTaps",
    "bilinear_axis",
    "Tap",
    "select_boxes",
    "bilinear_taps",
    "Corner",
    "PointCorners",
    "zero_padded_bilinear",
    "zero_padded_bilinear_slopes",
]

F32 = numpy.float32
F64 = numpy.float64


# ==================================================================================================
# The tables
# ==================================================================================================
@dataclass(frozen=True, eq=False)
class Taps:
    r"""One axis of a separable linear map: ``y[o] = sum_k weight[o, k] * x[index[o, k]]`` over the
    taps ``k`` with ``read[o, k]``.

    ``length`` is ``L``, the length of the axis that is read; ``index`` (O, K) int64 holds positions
    in ``[0, L)`` (unread taps hold a valid position too, so that gathers never go out of bounds);
    ``weight`` (O, K) float64; ``read`` (O, K) bool, or None when every tap is read. A position may
    repeat within a row (PyTorch's last linear tap reads the last pixel twice). ``dense`` marks the
    table whose row ``o`` reads every position ``0 .. L-1`` in order (K = L): it is applied as a
    matrix product.

    >>> t = Taps(3, numpy.array([[0, 1], [2, 2]]), numpy.array([[0.5, 0.5], [1.0, 0.0]]))
    >>> t.matrix()
    array([[0.5, 0.5, 0. ],
           [0. , 0. , 1. ]])
    >>> t.transpose().index.tolist(), t.transpose().weight.tolist()
    ([[0, 0], [0, 0], [1, 1]], [[0.5, 0.0], [0.5, 0.0], [1.0, 0.0]])
    >>> t.transpose().read.tolist()
    [[True, False], [True, False], [True, True]]
    """

    length: int
    index: numpy.ndarray
    weight: numpy.ndarray
    read: numpy.ndarray | None = None
    dense: bool = False

    @property
    def out_length(self) -> int:
        return self.index.shape[0]

    def reads(self) -> numpy.ndarray:
        """(O, K) bool: which taps are read."""
        return numpy.ones(self.index.shape, bool) if self.read is None else self.read

    def matrix(self) -> numpy.ndarray:
        """The (O, L) matrix of the map (repeated positions add up)."""
        matrix = numpy.zeros((self.out_length, self.length))
        rows = numpy.broadcast_to(numpy.arange(self.out_length)[:, None], self.index.shape)
        keep = self.reads()
        numpy.add.at(matrix, (rows[keep], self.index[keep]), self.weight[keep])
        return matrix

    def transpose(self) -> Taps:
        """The table of the adjoint map, (L, K'): for each input position, the outputs that read it.

        Each input lists its readers in the order ``(o, k)`` (outputs ascending, then taps), the order
        in which a scatter-add over the outputs accumulates them; K' is the most readers any input
        has (at least 1). Every tap read here is a tap read by the forward, with the same weight, so
        a zero weight times an infinite gradient is NaN in the backward exactly where the forward
        read that zero-weight tap.
        """
        O, L = self.out_length, self.length
        if self.dense:
            return Taps(O, numpy.broadcast_to(numpy.arange(O), (L, O)), self.weight.T.copy(), None, dense=True)
        rows = numpy.broadcast_to(numpy.arange(O)[:, None], self.index.shape)
        keep = self.reads()
        outputs, inputs, weights = rows[keep], self.index[keep], self.weight[keep]  # in (o, k) order
        order = numpy.argsort(inputs, kind="stable")  # grouped by input, each group still in (o, k) order
        outputs, inputs, weights = outputs[order], inputs[order], weights[order]
        counts = numpy.bincount(inputs, minlength=L)
        width = max(int(counts.max()) if counts.size else 0, 1)
        slot = numpy.arange(inputs.size) - (numpy.cumsum(counts) - counts)[inputs]  # rank within its group
        index = numpy.zeros((L, width), numpy.int64)
        weight = numpy.zeros((L, width))
        read = numpy.zeros((L, width), bool)
        index[inputs, slot], weight[inputs, slot], read[inputs, slot] = outputs, weights, True
        return Taps(O, index, weight, None if read.all() else read)


@dataclass(frozen=True, eq=False)
class Lerp:
    r"""TensorFlow's linear interpolation along one axis: ``y[o] = a + (b - a) * t`` with
    ``a = x[lower[o]]``, ``b = x[upper[o]]``, ``t = fraction[o]``.

    Not a weighted sum where values are not finite: an infinite ``a`` gives NaN whatever ``t``
    (``inf + (b - inf) t``), and ``lower == upper`` with an infinite value gives ``inf - inf = NaN``.
    Its backward (``ResizeBilinearGrad``) is the weighted scatter of :meth:`weighted`.

    >>> Lerp(2, numpy.array([0]), numpy.array([1]), numpy.array([0.25])).weighted().weight.tolist()
    [[0.75, 0.25]]
    """

    length: int
    lower: numpy.ndarray  # (O,) int64
    upper: numpy.ndarray  # (O,) int64
    fraction: numpy.ndarray  # (O,) float64 (float32 values)

    @property
    def out_length(self) -> int:
        return self.lower.shape[0]

    def weighted(self) -> Taps:
        """The same interpolation as a weighted sum of both taps, ``(1 - t) a + t b``, both always read.

        ``1 - t`` is exact in float64 (``t`` holds a float32 value), so the backward is the exact
        transpose of the forward, the true derivative (TensorFlow's ``ResizeBilinearGrad`` rounds
        ``1 - t`` to float32, a difference far below the float32 tolerance its results are held to).
        """
        t = self.fraction.astype(F64)
        weight = numpy.stack([1.0 - t, t], axis=1)
        return Taps(self.length, numpy.stack([self.lower, self.upper], axis=1), weight)


# ==================================================================================================
# Applying a table along one axis
# ==================================================================================================
def contract(a, matrix, dim: int):
    """Apply ``matrix`` (A, B) to dimension ``dim`` (length B) of ``a``; that dimension becomes A."""
    shape = a.shape
    lead, rest = math.prod(shape[:dim]), math.prod(shape[dim + 1:])
    if rest == 1:  # the last axis: one matrix product over all lines at once
        out = a.reshape(lead, shape[dim]) @ matrix.T
    else:
        out = matrix @ a.reshape(lead, shape[dim], rest)
    return out.reshape(shape[:dim] + (matrix.shape[0],) + shape[dim + 1:])


def resample(y, reader, dim: int):
    r"""Resample dimension ``dim`` of ``y`` with a :class:`Taps` or :class:`Lerp`; None copies.

    Computed in the dtype of ``y`` (give it the accumulation dtype). A gather table is applied tap by
    tap, ``y_o = sum_k w_{o,k} y[i_{o,k}]`` starting from the first tap as the frameworks' loops do,
    with the unread taps masked out (not multiplied by 0); a dense table is a matrix product, in
    which every zero weight meets its input. No warning escapes for ``0 * inf`` or ``inf - inf``.

    >>> x = numpy.array([[1.0, 3.0, numpy.inf]])
    >>> resample(x, Taps(3, numpy.array([[0, 1], [1, 2]]), numpy.array([[0.5, 0.5], [1.0, 0.0]])), 1)
    array([[ 2., nan]])
    >>> resample(x, Lerp(3, numpy.array([0, 2]), numpy.array([1, 2]), numpy.array([0.5, 0.0])), 1)
    array([[ 2., nan]])
    """
    if reader is None:
        return y
    xp = array_module(y)
    along = [1] * y.ndim
    along[dim] = -1
    with numpy.errstate(invalid="ignore", over="ignore"):
        if isinstance(reader, Lerp):
            a = xp.take(y, xp.asarray(reader.lower), axis=dim)
            b = xp.take(y, xp.asarray(reader.upper), axis=dim)
            b -= a
            b *= xp.asarray(reader.fraction, dtype=y.dtype).reshape(along)
            a += b
            return a
        if reader.dense:
            return contract(y, xp.asarray(reader.weight, dtype=y.dtype), dim)
        total = None
        for k in range(reader.index.shape[1]):  # a handful of taps
            term = xp.take(y, xp.asarray(reader.index[:, k]), axis=dim)
            term *= xp.asarray(reader.weight[:, k], dtype=y.dtype).reshape(along)
            if reader.read is not None and not reader.read[:, k].all():
                term = xp.where(xp.asarray(reader.read[:, k]).reshape(along), term, y.dtype.type(0))
            if total is None:
                total = term
            else:
                total += term
        return total


# ==================================================================================================
# PyTorch (ATen's upsample kernels, CPU)
# ==================================================================================================
def nearest_indices(length: int, out_length: int, scale_factor=None, exact: bool = False):
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
    (``L = 14, O = 46``: output 23 reads 6, not 7). ``nearest`` also copies when ``O = L`` and reads
    :math:`\lfloor o/2 \rfloor` when ``O = 2L``, even if a scale factor was given.

    Examples
    --------
    >>> nearest_indices(3, 5).tolist(), nearest_indices(3, 5, exact=True).tolist()
    ([0, 0, 1, 1, 2], [0, 0, 1, 2, 2])
    """
    o = numpy.arange(out_length)
    if not exact and out_length == length:
        return o
    if not exact and out_length == 2 * length:
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


def _one_tap(length: int, index) -> Taps:
    index = numpy.asarray(index, numpy.int64)
    return Taps(length, index[:, None], numpy.ones((index.size, 1)))


def torch_nearest(length: int, out_length: int, scale_factor=None, exact: bool = False) -> Taps:
    """PyTorch's ``nearest`` / ``nearest-exact``: one tap of weight 1 (:func:`nearest_indices`).

    >>> torch_nearest(2, 3).index.tolist()
    [[0], [0], [1]]
    """
    return _one_tap(length, nearest_indices(length, out_length, scale_factor, exact))


def _split(a):
    """Veltkamp's split of float64 ``a`` into two halves of 26 bits: ``hi + lo == a`` exactly."""
    t = a * F64(134217729.0)  # 2**27 + 1
    hi = t - (t - a)
    return hi, a - hi


def fused_multiply_add(a, b, c):
    r"""``a * b + c`` in float64 with one rounding, as a fused multiply-add instruction computes it.

    Compilers contract PyTorch's ``scale * (o + 0.5) - 0.5`` into an FMA, and the single rounding
    decides taps: ``L = 1 -> O = 5``, output 2: ``0.2 * 2.5 - 0.5`` is 0 with two roundings but
    ``2.8e-17`` with one, so PyTorch reads its second tap with a tiny weight instead of 0. Dekker's
    exact product ``p + e = a b``, then the sum of ``p``, ``e`` and ``c`` with the error of the
    first addition carried (exact where the result is near 0, as here).

    >>> float(fused_multiply_add(0.2, 2.5, -0.5)), 0.2 * 2.5 - 0.5
    (2.7755575615628914e-17, 0.0)
    """
    a, b, c = (numpy.asarray(v, F64) for v in (a, b, c))
    p = a * b
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    e = a_lo * b_lo - (((p - a_hi * b_hi) - a_lo * b_hi) - a_hi * b_lo)  # p + e == a * b exactly
    s = p + c
    z = s - p
    t = (p - (s - z)) + (c - z)  # s + t == p + c exactly (Knuth's two-sum)
    return s + (t + e)


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


def torch_antialias(length: int, out_length: int, align_corners: bool, scale_factor=None, dtype=F64) -> Taps:
    r"""PyTorch's antialiased linear taps (``interpolate(mode="bilinear", antialias=True)``).

    Parameters
    ----------
    length, out_length, align_corners, scale_factor
        As for :func:`torch_linear`.
    dtype : numpy dtype
        float64 data is computed in float64, anything else in float32 (PyTorch's CPU kernel takes
        float32 and float64 only).

    Returns
    -------
    Taps
        A variable number of taps per output (a window of the input), all read.

    Notes
    -----
    ``_compute_indices_min_size_weights_aa`` with the triangle filter :math:`f(t) = \max(1 - |t|, 0)`
    (Pillow's): with scale :math:`s` (as for :func:`torch_linear`), support
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
    support = s(F64(1.0) * F64(scale)) if wide else s(1.0)
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


def adaptive_average(length: int, out_length: int) -> Taps:
    r"""Adaptive average bins (PyTorch's ``area`` mode): bin ``o`` is
    ``[floor(o L / O), ceil((o + 1) L / O))``, each position with weight ``1 / size``.

    >>> t = adaptive_average(5, 2)
    >>> t.index.tolist(), t.reads().tolist(), t.weight[:, 0].round(4).tolist()
    ([[0, 1, 2], [2, 3, 4]], [[True, True, True], [True, True, True]], [0.3333, 0.3333])
    """
    starts, ends = adaptive_bins(length, out_length)
    sizes = ends - starts
    k = numpy.arange(int(sizes.max()))
    read = k[None, :] < sizes[:, None]
    index = numpy.where(read, starts[:, None] + k[None, :], starts[:, None])
    weight = numpy.where(read, 1.0 / sizes[:, None], 0.0)
    return Taps(length, index.astype(numpy.int64), weight, None if read.all() else read)


# ==================================================================================================
# TensorFlow (tf.image.resize and the tf.compat.v1 resize ops, CPU), all in float32
# ==================================================================================================
def tf_scale(length: int, out_length: int, align_corners: bool = False) -> numpy.float32:
    """``CalculateResizeScale``: ``(L-1)/(O-1)`` with aligned corners (and L, O > 1), else ``L/O``, in float32.

    >>> float(tf_scale(4, 3)), float(tf_scale(4, 3, align_corners=True))
    (1.3333333730697632, 1.5)
    """
    if align_corners and length > 1 and out_length > 1:
        return F32(length - 1) / F32(out_length - 1)
    return F32(length) / F32(out_length)


def tf_nearest(length: int, out_length: int, half_pixel: bool = True, align_corners: bool = False) -> Taps:
    r"""TensorFlow's ``ResizeNearestNeighbor``: one tap.

    ``tf.image.resize(method="nearest")`` is ``half_pixel``: :math:`\lfloor (o + 1/2) s \rfloor`;
    the legacy ``tf.compat.v1.image.resize_nearest_neighbor`` reads :math:`\lfloor o s \rfloor`, or
    :math:`\mathrm{round}(o s)` (halves away from 0) with ``align_corners``; capped at ``L - 1``
    (and at 0 below), all in float32 (:func:`tf_scale`). The gradient scatters to the same tap.

    >>> tf_nearest(3, 5).index[:, 0].tolist(), tf_nearest(3, 5, half_pixel=False).index[:, 0].tolist()
    ([0, 0, 1, 2, 2], [0, 0, 1, 1, 2])
    >>> tf_nearest(3, 5, half_pixel=False, align_corners=True).index[:, 0].tolist()  # round(o/2)
    [0, 1, 1, 2, 2]
    """
    scale = tf_scale(length, out_length, align_corners)
    o = numpy.arange(out_length).astype(F32)
    source = (o + F32(0.5)) * scale if half_pixel else o * scale
    if align_corners:  # roundf: halves away from zero (the coordinate is >= 0)
        index = numpy.floor(source.astype(F64) + 0.5)
    else:
        index = numpy.floor(source)
    index = numpy.clip(index.astype(numpy.int64), 0, length - 1)
    return _one_tap(length, index)


def tf_bilinear(length: int, out_length: int, align_corners: bool = False) -> Lerp:
    r"""TensorFlow's ``ResizeBilinear`` along one axis, as a :class:`Lerp`.

    ``tf.image.resize(method="bilinear")`` uses half-pixel centres, :math:`c = (o + 1/2) s - 1/2`;
    ``tf.compat.v1.image.resize_bilinear(align_corners=True)`` :math:`c = o s` with
    :math:`s = (L-1)/(O-1)`; in float32. Then ``lower`` :math:`= \max(\lfloor c \rfloor, 0)`,
    ``upper`` :math:`= \min(\lceil c \rceil, L - 1)` and :math:`t = c - \lfloor c \rfloor`: at an
    integer coordinate ``lower == upper``, and below 0 (the first outputs of an upsampling) both are
    pixel 0 while :math:`t` is the fraction of the negative coordinate.

    >>> t = tf_bilinear(2, 4)
    >>> t.lower.tolist(), t.upper.tolist(), t.fraction.tolist()
    ([0, 0, 0, 1], [0, 1, 1, 1], [0.75, 0.25, 0.75, 0.25])
    """
    scale = tf_scale(length, out_length, align_corners)
    o = numpy.arange(out_length).astype(F32)
    source = o * scale if align_corners else (o + F32(0.5)) * scale - F32(0.5)
    floor = numpy.floor(source)
    lower = numpy.maximum(floor.astype(numpy.int64), 0)
    upper = numpy.minimum(numpy.ceil(source).astype(numpy.int64), length - 1)
    return Lerp(length, lower, upper, (source - floor).astype(F64))


def tf_area(length: int, out_length: int, align_corners: bool = False) -> Taps:
    r"""TensorFlow's ``ResizeArea`` along one axis: the fraction of each input pixel that the output
    pixel covers.

    Output :math:`o` covers :math:`[a, b) = [o s, (o + 1) s)` (float32, :func:`tf_scale`) and reads
    pixels :math:`\lfloor a \rfloor .. \lceil b \rceil - 1`, pixel :math:`i` with its coverage
    (:math:`\min(i + 1, b) - \max(i, a)`, computed as TensorFlow branches on it: ``i + 1 - a`` or
    the whole ``s`` for the first pixel, ``b - i`` for the last, 1 between), divided by :math:`s`
    here (TensorFlow multiplies the whole 2-D sum by :math:`1/(s_h s_w)` instead). Positions past
    the end (float32 rounding of :math:`O s`) read pixel :math:`L - 1`. TensorFlow registers no
    gradient for ``ResizeArea``; the transpose of these taps is the true one.

    >>> t = tf_area(4, 3)  # s = 4/3: out[0] = x0 + x1/3, out[1] = (2 x1 + 2 x2)/3, out[2] = x2/3 + x3
    >>> t.index.tolist(), (t.weight * 4 / 3).round(4).tolist()
    ([[0, 1], [1, 2], [2, 3]], [[1.0, 0.3333], [0.6667, 0.6667], [0.3333, 1.0]])
    """
    scale = tf_scale(length, out_length, align_corners)
    o = numpy.arange(out_length)
    begin = o.astype(F32) * scale  # x * scale: int64 times float, in float
    end = (o + 1).astype(F32) * scale
    first = numpy.floor(begin).astype(numpy.int64)
    last = numpy.ceil(end).astype(numpy.int64)  # exclusive
    width = int((last - first).max())
    k = numpy.arange(width)
    position = first[:, None] + k[None, :]
    read = position < last[:, None]
    p = position.astype(F32)
    b = begin[:, None]
    e = end[:, None]
    coverage = numpy.where(
        p < b,
        numpy.where(p + F32(1) > e, scale, p + F32(1) - b),
        numpy.where(p + F32(1) > e, e - p, F32(1)),
    ).astype(F32)
    weight = numpy.where(read, coverage.astype(F64) / F64(scale), 0.0)
    index = numpy.clip(numpy.where(read, position, first[:, None]), 0, length - 1)
    return Taps(length, index.astype(numpy.int64), weight, None if read.all() else read)


def _triangle32(t):
    t = numpy.abs(t)
    return numpy.where(t < F32(1), F32(1) - t, F32(0)).astype(F32)


def tf_antialias(length: int, out_length: int) -> tuple[Taps, Taps]:
    r"""TensorFlow's antialiased bilinear resize (``tf.image.resize(..., antialias=True)``, the
    ``ScaleAndTranslate`` op with the triangle kernel): the forward taps and the gradient's taps.

    Returns
    -------
    (forward, backward) : (Taps, Taps)
        ``forward`` (O, K) reads the input; ``backward`` (L, K') reads the upstream gradient.

    Notes
    -----
    ``ComputeSpansCore``, in float32: scale :math:`\sigma = O/L`, kernel scale
    :math:`\kappa = \max(1/\sigma, 1)`, sample point :math:`c = (o + 1/2)/\sigma`; output
    :math:`o` has the span :math:`[\lceil c - \kappa - 1/2 \rceil, \lfloor c + \kappa - 1/2 \rfloor]`
    clamped to the image, weights :math:`f((i + 1/2 - c)/\kappa)` (triangle) normalized by their
    total (left at 0 if the total is below ``1000 * FLT_MIN``). Every output then reads a window of
    the same width, ``K = min(2 ceil(kappa) + 1, L)`` positions from its span's start (fewer at the
    end of the image), with weight 0 past its span: those zero-weight taps are read (upsampling
    2 -> 4: output 0 reads pixel 1 with weight 0). An axis whose size does not change is resampled
    too (each output reads its neighbours with weight 0).

    The gradient (``ComputeGradSpansCore``) lists, for each input, the outputs that gave it a
    *nonzero* weight, and reads the upstream gradient over a window of the same width for every
    input (the widest such range, zero weights elsewhere, from the first contributing output, or
    from output 0 for an input that no output weighs). TensorFlow registers this gradient for
    float32 only.

    Examples
    --------
    >>> forward, backward = tf_antialias(2, 4)  # output 0 reads pixel 1 with weight 0; 3 reads pixel 1 only
    >>> forward.index.tolist(), forward.reads().tolist(), forward.weight.tolist()
    ([[0, 1], [0, 1], [0, 1], [1, 1]], [[True, True], [True, True], [True, True], [True, False]], [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [1.0, 0.0]])
    >>> backward.index.tolist(), backward.weight.tolist()  # input 0 was weighed by outputs 0, 1, 2
    ([[0, 1, 2], [1, 2, 3]], [[1.0, 0.75, 0.25], [0.25, 0.75, 1.0]])
    """
    L, O = length, out_length
    scale = F32(O) / F32(L)
    inv_scale = F32(1.0 / F64(scale))
    kernel_scale = max(inv_scale, F32(1))
    radius = F32(1)
    span = min(2 * int(math.ceil(radius * kernel_scale)) + 1, L)
    one_over_kernel_scale = F32(1) / kernel_scale
    sample = (numpy.arange(O).astype(F32) + F32(0.5)) * inv_scale + F32(-0.0)
    outside = (sample < 0) | (sample > L)
    reach = radius * kernel_scale
    first = numpy.clip(numpy.ceil(sample - reach - F32(0.5)).astype(numpy.int64), 0, L - 1)
    stop = numpy.clip(numpy.floor(sample + reach - F32(0.5)).astype(numpy.int64), 0, L - 1) + 1
    first = numpy.where(outside, 0, first)
    j = numpy.arange(span)
    position = first[:, None] + j[None, :]  # (O, span)
    in_span = (position < stop[:, None]) & ~outside[:, None]
    weight = numpy.where(in_span, _triangle32((position.astype(F32) + F32(0.5) - sample[:, None]) * one_over_kernel_scale), F32(0))
    total = numpy.zeros(O, F32)
    for k in range(span):  # the running float32 sum over the span
        total = (total + weight[:, k]).astype(F32)
    normal = numpy.abs(total) >= F32(1000) * numpy.finfo(F32).tiny
    inverse = F32(1) / numpy.where(normal, total, F32(1))
    weight = numpy.where(normal[:, None], (weight * inverse[:, None]).astype(F32), F32(0))
    read = position < L  # the window is cut at the image's end, not at the span's
    index = numpy.where(read, position, first[:, None])
    forward = Taps(L, index.astype(numpy.int64), weight.astype(F64), None if read.all() else read)

    # The gradient's spans: per input, the outputs whose nonzero weight reached it, in output order
    contributing = (weight != 0) & read
    outputs = numpy.broadcast_to(numpy.arange(O)[:, None], index.shape)
    by_input_first = numpy.full(L, O, numpy.int64)
    by_input_last = numpy.full(L, -1, numpy.int64)
    numpy.minimum.at(by_input_first, index[contributing], outputs[contributing])
    numpy.maximum.at(by_input_last, index[contributing], outputs[contributing])
    has = by_input_last >= 0
    grad_span = int((by_input_last - by_input_first + 1)[has].max()) if has.any() else 0
    grad_first = numpy.where(has, by_input_first, 0)
    m = numpy.arange(max(grad_span, 1))
    grad_index = grad_first[:, None] + m[None, :]
    grad_read = (grad_index < O) & (m[None, :] < grad_span)
    grad_weight = numpy.zeros((L, m.size))
    slot = outputs[contributing] - grad_first[index[contributing]]
    numpy.add.at(grad_weight, (index[contributing], slot), weight[contributing].astype(F32).astype(F64))
    grad_index = numpy.where(grad_read, grad_index, grad_first[:, None])
    backward = Taps(O, grad_index.astype(numpy.int64), grad_weight, None if grad_read.all() else grad_read)
    return forward, backward


# ==================================================================================================
# JAX (jax.image.resize)
# ==================================================================================================
def jax_nearest(length: int, out_length: int) -> Taps:
    r"""``jax.image.resize(method="nearest")``: :math:`\lfloor (o + 1/2)\, m/n \rfloor` in float32, as
    XLA evaluates it.

    JAX writes ``(arange(n, float32) + 0.5) * m / n``; XLA's algebraic simplifier turns the division
    by the constant ``n`` into a product and reassociates it, so the value computed is
    :math:`\mathrm{fl}((o + 1/2) \cdot \mathrm{fl}(m \cdot \mathrm{fl}(1/n)))`, which at an exact
    half-way point can fall just below the integer: 10 -> 25, output 2: ``(2.5 * 10)/25 = 1`` exactly,
    but XLA gets ``0.99999994`` and reads pixel 0 (PyTorch's ``nearest-exact`` reads pixel 1).
    Verified against jax 0.10.2 on the CPU for every m < 30, n < 64. Capped at ``m - 1``.

    >>> jax_nearest(10, 25).index[:4, 0].tolist()
    [0, 0, 0, 1]
    """
    factor = F32(F32(length) * (F32(1) / F32(out_length)))
    source = (numpy.arange(out_length).astype(F32) + F32(0.5)) * factor
    return _one_tap(length, numpy.minimum(numpy.floor(source).astype(numpy.int64), length - 1))


def jax_dense(length: int, out_length: int, method: str, antialias: bool, dtype=F64) -> Taps:
    r"""``jax.image.resize``'s weight matrix along one axis (``compute_weight_mat``), as a dense table.

    Parameters
    ----------
    length, out_length : int
    method : {"linear", "area"}
    antialias : bool
        Widen the triangle by the downsampling factor (ignored by ``area``).
    dtype : numpy dtype
        The data's dtype: JAX rounds the weights to it before the product (a float16 weight can
        underflow to 0).

    Notes
    -----
    With scale :math:`\sigma = O/L` (a Python float) and sample points
    :math:`c_o = (o + 1/2)/\sigma - 1/2`, ``linear`` weighs input :math:`i` by
    :math:`\max(0, 1 - |c_o - i|/\kappa)`, :math:`\kappa = \max(1/\sigma, 1)` with ``antialias``
    (else 1); ``area`` by the overlap of :math:`[o/\sigma, (o + 1)/\sigma)` with :math:`[i, i + 1)`.
    Each column is divided by its total (set to 0 if the total is not above ``1000 * eps(float32)``)
    and zeroed where :math:`c_o` is outside :math:`[-1/2, L - 1/2]`. Computed in float64 (JAX with
    ``jax_enable_x64``; without it JAX computes in float32) and then rounded to the data's dtype.
    The resize is a dense product with this matrix, so every weight meets its input, zeros
    included: one NaN reaches every output of its line, an infinity every output whose weight for it
    is 0 as NaN; the gradient is the dense transpose.

    Examples
    --------
    >>> jax_dense(4, 2, "linear", antialias=True).weight.round(4).tolist()  # the triangle is 2 wide
    [[0.4286, 0.4286, 0.1429, 0.0], [0.0, 0.1429, 0.4286, 0.4286]]
    >>> jax_dense(4, 2, "linear", antialias=False).weight.tolist()
    [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
    >>> jax_dense(3, 2, "area", antialias=True).weight.round(4).tolist()
    [[0.6667, 0.3333, 0.0], [0.0, 0.3333, 0.6667]]
    """
    L, O = length, out_length
    scale = O / L
    inv_scale = 1.0 / scale
    kernel_scale = max(inv_scale, 1.0) if antialias else 1.0
    out = numpy.arange(O, dtype=F64)
    inputs = numpy.arange(L, dtype=F64)
    sample = (out + 0.5) * inv_scale - 0.0 * inv_scale - 0.5
    if method == "area":
        left = out * inv_scale - 0.0 * inv_scale
        right = left + inv_scale
        weight = numpy.maximum(0.0, numpy.minimum(right[None, :], inputs[:, None] + 1.0) - numpy.maximum(left[None, :], inputs[:, None]))
    else:
        distance = numpy.abs(sample[None, :] - inputs[:, None]) / kernel_scale
        weight = numpy.maximum(0.0, 1.0 - numpy.abs(distance))
    total = weight.sum(axis=0, keepdims=True)  # (1, O)
    weight = numpy.where(numpy.abs(total) > 1000.0 * float(numpy.finfo(F32).eps),
                         weight / numpy.where(total != 0, total, 1.0), 0.0)
    inside = (sample >= -0.5) & (sample <= L - 0.5)
    weight = numpy.where(inside[None, :], weight, 0.0)  # (L, O)
    weight = weight.T.astype(dtype).astype(F64)  # (O, L), rounded as JAX's .astype(x.dtype)
    return Taps(L, numpy.broadcast_to(numpy.arange(L), (O, L)), weight, None, dense=True)


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


# ==================================================================================================
# Points sampled by the region ops (torchvision's bilinear rule)
# ==================================================================================================
class AxisTaps(NamedTuple):
    r"""torchvision's bilinear interpolation along one axis for an array of coordinates (all fields
    that shape).

    ``low``/``high``: the two neighbouring indices (0 where the point is outside); ``w_low``/``w_high``:
    their weights (0 outside); ``slope``: :math:`d\,w_{high} / dc` (``-slope`` for ``w_low``), 0 where
    the coordinate is clamped or outside; ``inside``: the point is read at all.
    """

    low: object
    high: object
    w_low: object
    w_high: object
    slope: object
    inside: object


def bilinear_axis(coord, length: int, mask=None) -> AxisTaps:
    r"""torchvision's bilinear rules along one axis of ``length``, for every coordinate at once.

    A coordinate outside ``[-1, length]`` (or NaN, or where ``mask`` is False) is not read. Otherwise
    it is clamped below at 0 and read with :func:`linear_point_taps`' two taps, ``low = floor(c)``,
    ``w_high = c - low``, ``w_low = 1 - w_high``, except that if ``low >= length - 1`` the coordinate
    is snapped to ``length - 1`` (``high = low``, ``w_high = 0``). The slope
    :math:`d\,w_{high} / dc` is 1 where the coordinate moves the weights, 0 where it is clamped,
    snapped or not read.

    Parameters
    ----------
    coord : array
        Coordinates, any shape, floating.
    length : int
        Size of the axis (H or W).
    mask : bool array, optional
        Broadcastable to ``coord``; False marks points that do not exist (beyond a box's grid).

    Returns
    -------
    AxisTaps
        Each field shaped like ``coord`` (broadcast with ``mask``).

    Examples
    --------
    >>> t = bilinear_axis(numpy.array([-1.5, -0.5, 0.25, 2.5, 3.0]), 3)
    >>> t.low.tolist(), t.high.tolist(), t.w_high.tolist(), t.slope.tolist()
    ([0, 0, 0, 2, 2], [0, 1, 1, 2, 2], [0.0, 0.0, 0.25, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0])
    """
    xp = array_module(coord)
    dtype = coord.dtype
    inside = (coord >= -1) & (coord <= length)  # False for NaN, as torchvision's !(in range) test
    if mask is not None:
        inside &= mask
    c = xp.where(inside, xp.maximum(coord, dtype.type(0)), dtype.type(0))  # clamped below at 0
    floor, w_low, w_high = linear_point_taps(c, xp)
    low = floor.astype(numpy.int64)
    snapped = low >= length - 1  # on or beyond the last pixel: both taps there, all the weight on low
    low = xp.minimum(low, length - 1)
    high = xp.where(snapped | ~inside, low, low + 1)  # outside: low = high = 0
    w_high = xp.where(inside & ~snapped, w_high, dtype.type(0))
    w_low = xp.where(inside, xp.where(snapped, dtype.type(1), w_low), dtype.type(0))
    slope = (inside & (coord > 0) & ~snapped).astype(dtype)
    return AxisTaps(low, high, w_low, w_high, slope, inside)


class Tap(NamedTuple):
    """One sampling point and one of its corners, for every bin of the boxes taking part."""

    number: int  # position in scan order: samples row by row, then corners (low,low) .. (high,high)
    boxes: object  # indices of the boxes that have this sample, or None for all of them
    pixel: object  # (K', ph, pw) flat in-plane index h*W + w read (0 where the sample is outside)
    weight: object  # (K', ph, pw) bilinear weight (0 outside)
    inside: object  # (K', ph, pw) the sample lies in [-1, H] x [-1, W]
    d_dy: object  # (K', ph, pw) d weight / d y, only with slopes=True
    d_dx: object


def select_boxes(array, boxes, index):
    """``array[..., index]`` (all of it if ``index`` is None), then the rows ``boxes`` (all if None)."""
    picked = array[(Ellipsis, index)] if index is not None else array
    return picked if boxes is None else picked[boxes]


def bilinear_taps(ay: AxisTaps, ax: AxisTaps, grid_h, grid_w, width: int, slopes: bool = False):
    r"""Yield every :class:`Tap`: each sampling point ``(iy, ix)`` and each of its four corners.

    ``ay`` holds the y-coordinates' interpolation, shaped (K, ph, pw or 1, G_h); ``ax`` the x ones,
    (K, ph or 1, pw, G_w). A sample ``(iy, ix)`` exists only for the boxes with ``iy < grid_h`` and
    ``ix < grid_w``; the others are left out (``Tap.boxes``), so boxes with small adaptive grids cost
    nothing for the extra samples of large ones. An outside sample reads pixel (0, 0) with weight 0
    (as torchvision's CPU kernel does). A corner's weight is the product of its two axes' weights,
    ``w = w_y * w_x``, and with ``slopes`` its derivatives are ``dw/dy = (+-slope_y) w_x`` and
    ``dw/dx = w_y (+-slope_x)`` (minus for the low corner).

    Examples
    --------
    One box, one bin, one sample at ``(y, x) = (0.25, 1.5)`` in a 3 x 3 image:

    >>> one = numpy.ones((1, 1, 1), dtype=numpy.int64)
    >>> ay = bilinear_axis(numpy.full((1, 1, 1, 1), 0.25), 3)
    >>> ax = bilinear_axis(numpy.full((1, 1, 1, 1), 1.5), 3)
    >>> [(tap.pixel.item(), tap.weight.item()) for tap in bilinear_taps(ay, ax, one, one, 3)]
    [(1, 0.375), (2, 0.375), (4, 0.125), (5, 0.125)]
    """
    xp = array_module(grid_h)
    G_h, G_w = ay.low.shape[-1], ax.low.shape[-1]
    number = 0
    for iy in range(G_h):
        for ix in range(G_w):
            has = (grid_h > iy) & (grid_w > ix)
            if not bool(has.any()):
                number += 4
                continue
            boxes = None if bool(has.all()) else xp.nonzero(has)[0]
            inside = select_boxes(ay.inside, boxes, iy) & select_boxes(ax.inside, boxes, ix)
            for row, wy, sy in ((ay.low, ay.w_low, -1), (ay.high, ay.w_high, 1)):
                for col, wx, sx in ((ax.low, ax.w_low, -1), (ax.high, ax.w_high, 1)):
                    h, w = select_boxes(row, boxes, iy), select_boxes(col, boxes, ix)
                    pixel = xp.where(inside, h * width + w, 0)
                    wy_, wx_ = select_boxes(wy, boxes, iy), select_boxes(wx, boxes, ix)
                    weight = wy_ * wx_
                    d_dy = d_dx = None
                    if slopes:
                        d_dy = sy * select_boxes(ay.slope, boxes, iy) * wx_
                        d_dx = wy_ * sx * select_boxes(ax.slope, boxes, ix)
                    yield Tap(number, boxes, xp.broadcast_to(pixel, weight.shape), weight,
                              xp.broadcast_to(inside, weight.shape), d_dy, d_dx)
                    number += 1


# ==================================================================================================
# A single point on the zero-padded plane (torchvision's deformable convolution)
# ==================================================================================================
class Corner(NamedTuple):
    r"""One of the four pixels around every sampling point, for all points at once (arrays of the
    points' shape).

    ``row``, ``col`` : int64, the pixel, clipped into the image (so that a gather never goes out of
    bounds; ``valid`` says whether it is the real pixel); ``valid`` : bool, the pixel lies in the
    image; ``weight_y``, ``weight_x`` : the linear weights along each axis, ``1 - t`` for the low
    row (column) and ``t`` for the high one, so that the corner's bilinear weight is their product;
    ``slope_y``, ``slope_x`` : ``-1`` or ``+1``, the derivative of ``weight_y`` (``weight_x``) with
    respect to the coordinate; ``near`` : bool, the point lies within distance < 1 of the pixel
    along both axes, in the image (where the corner's weight is not 0).
    """

    row: object
    col: object
    valid: object
    weight_y: object
    weight_x: object
    slope_y: int
    slope_x: int
    near: object


class PointCorners(NamedTuple):
    """The four :class:`Corner` of every point, in the order (low, low), (low, high), (high, low),
    (high, high), and ``inside``: whether the point reads the image at all."""

    corners: tuple
    inside: object


def zero_padded_bilinear(y, x, height: int, width: int, xp=numpy) -> PointCorners:
    r"""Bilinear sampling of a plane padded with zeros, at arbitrary points ``(y, x)`` (pixel
    coordinates), by torchvision's rule for deformable convolution (``bilinear_interpolate``,
    ``get_coordinate_weight`` and ``deformable_col2im`` in ``deform_conv2d_kernel.cpp``).

    Parameters
    ----------
    y, x : float arrays of one shape
        The points, rows and columns; finite. The weights are computed in their dtype.
    height, width : int
        ``H`` and ``W`` of the plane.
    xp : module
        numpy or cupy.

    Returns
    -------
    PointCorners

    Notes
    -----
    Along each axis the point has the taps of :func:`linear_point_taps`: ``low = floor(c)`` with
    weight ``1 - t`` and ``low + 1`` with weight ``t = c - low``. The value at ``(y, x)`` is

    .. math:: f(y, x) = \sum_{q} [q \in \text{image}]\; w^y_q\, w^x_q\, v_q

    over the four corners ``q``, and exactly 0 for a point outside
    :math:`(-1, H) \times (-1, W)` (``inside`` False): such a point reads nothing, not even a NaN
    at weight 0. Inside, every corner in the image is read, weight 0 included (a point on a
    pixel row reads the next row with weight 0; a NaN there makes the value NaN). A corner outside
    the image reads as 0: this is bilinear interpolation of the image padded with zeros, which is
    continuous; the outside rule only decides what a NaN or an infinity at weight 0 does.

    The derivatives, as torchvision's ``get_coordinate_weight``, are taken from the corners in the
    image (``valid``) whether or not the point is ``inside`` (at :math:`y = -1` exactly the forward
    reads nothing, yet row 0 gives a slope: the derivative from the right), written as differences:

    .. math::
        \partial_y f &= t_x (v_{hh} - v_{lh}) + (1 - t_x)(v_{hl} - v_{ll}) \\
        \partial_x f &= t_y (v_{hh} - v_{hl}) + (1 - t_y)(v_{lh} - v_{ll})

    (:func:`zero_padded_bilinear_slopes`), the derivative from the right at an integer coordinate.
    The transpose (the gradient to the plane) sends a point's gradient times the corner's weight to
    the corners that are ``near``: in the image and at distance < 1 along both axes, so not to the
    corners of weight 0 that the forward reads (torchvision's ``deformable_col2im``).

    Examples
    --------
    >>> points = zero_padded_bilinear(numpy.array([0.25, -0.5, -1.0]), numpy.array([1.5, 2.5, 0.0]), 3, 3)
    >>> [c.row.tolist() for c in points.corners], points.inside.tolist()
    ([[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]], [True, True, False])
    >>> [(c.weight_y * c.weight_x).tolist() for c in points.corners]
    [[0.375, 0.25, 1.0], [0.375, 0.25, 0.0], [0.125, 0.25, 0.0], [0.125, 0.25, 0.0]]
    >>> [c.valid.tolist() for c in points.corners]  # the second point's only pixel is (0, 2)
    [[True, False, False], [True, False, False], [True, True, True], [True, False, True]]
    """
    row_low, wy_low, wy_high = linear_point_taps(y, xp)
    col_low, wx_low, wx_high = linear_point_taps(x, xp)
    row_low = row_low.astype(numpy.int64)
    col_low = col_low.astype(numpy.int64)
    inside = (y > -1) & (y < height) & (x > -1) & (x < width)
    corners = []
    for row, weight_y, slope_y in ((row_low, wy_low, -1), (row_low + 1, wy_high, 1)):
        row_valid = (row >= 0) & (row < height)
        near_y = xp.abs(y - row.astype(y.dtype)) < 1  # in the points' dtype, as the kernel's |y - y_p| < 1
        for col, weight_x, slope_x in ((col_low, wx_low, -1), (col_low + 1, wx_high, 1)):
            valid = row_valid & (col >= 0) & (col < width)
            near = valid & near_y & (xp.abs(x - col.astype(x.dtype)) < 1)
            corners.append(Corner(xp.clip(row, 0, height - 1), xp.clip(col, 0, width - 1), valid,
                                  weight_y, weight_x, slope_y, slope_x, near))
    return PointCorners(tuple(corners), inside)


def zero_padded_bilinear_slopes(points: PointCorners, values):
    r"""``(d/dy, d/dx)`` of :func:`zero_padded_bilinear` sampling, from the four corners' values.

    ``values`` are the corners' values in the order of ``points.corners``, each 0 where its corner
    is not ``valid`` (broadcastable against the points: one value per channel, say). Written as
    torchvision's ``get_coordinate_weight`` writes them, differences first, so that NaN and
    infinities go where they go there: ``t_x (v_hh - v_lh) + (1 - t_x)(v_hl - v_ll)`` along y, and
    likewise along x.

    >>> points = zero_padded_bilinear(numpy.array([0.5]), numpy.array([0.25]), 2, 2)
    >>> slopes = zero_padded_bilinear_slopes(points, [numpy.array([v]) for v in (0.0, 1.0, 10.0, 11.0)])
    >>> [s.tolist() for s in slopes]  # a ramp 10 y + x
    [[10.0], [1.0]]
    """
    low_low, low_high, high_low, high_high = values
    wy_low, wx_low = points.corners[0].weight_y, points.corners[0].weight_x
    wy_high, wx_high = points.corners[3].weight_y, points.corners[3].weight_x
    along_y = wx_high * (high_high - low_high) + wx_low * (high_low - low_low)
    along_x = wy_high * (high_high - high_low) + wy_low * (low_high - low_low)
    return along_y, along_x
