r"""What the region ops share: argument checks, boxes, the geometry of their bins, channels-last tables.

A *region* op pools each of ``K`` boxes of a feature map ``x`` (N, C, H, W) into ``ph x pw`` bins. Two
kinds of bins exist, and each kind's geometry is computed here once, for every box at once, as a few
(K,) or (K, ph) arrays:

* the *align* ops (RoI Align, position-sensitive RoI Align, deformable RoI pooling) sample points at
  real coordinates: :class:`AlignGeometry` per box, :func:`sample_coordinates` along one axis, and
  :func:`align_axes`, which reads them with torchvision's bilinear rule
  (:func:`poolref._sampling_torchvision.bilinear_axis`; the four corners of every point are
  :func:`poolref._sampling_torchvision.bilinear_taps`);
* the *pool* ops (RoI pool, position-sensitive RoI pool) cover integer cells: :class:`PoolBins` and
  :func:`pool_bin_cells`.

Speed: every op reads its input channels-last, ``x[b, :, h, w]`` as one row of a table
(:func:`channels_last_table`, :func:`gather_rows`), so that each read takes a whole row of channels,
and ONNX's max mode of RoI Align scatters its gradient rows with :class:`RowScatter`.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy

from ..._backend import array_module, to_numpy
from ..._checks import accumulation_dtype, check_element_count, check_pool_input, check_positive_number
from ..._geometry import as_int_tuple
from ..._sampling_torchvision import AxisTaps, bilinear_axis, select_boxes
from ...autograd.tensor import Tensor

__all__ = [
    "ROI_CONVENTIONS",
    "check_region_input",
    "check_output_size",
    "check_sampling_ratio",
    "check_roi_convention",
    "check_region_arguments",
    "check_sampling_grid",
    "boxes_to_rois",
    "AlignGeometry",
    "align_geometry",
    "sample_coordinates",
    "align_axes",
    "round_half_away_from_zero",
    "PoolBins",
    "pool_bins",
    "pool_bin_cells",
    "select_boxes",
    "channels_last_table",
    "gather_rows",
    "RowScatter",
    "has_nonfinite",
]

ROI_CONVENTIONS = ("torchvision", "onnx")


# ==================================================================================================
# Argument checks (every region op, and deformable RoI pooling)
# ==================================================================================================
def check_region_input(x, op: str):
    """``x`` as a float array or Tensor of shape (N, C, H, W): the batch index of each box needs N."""
    x = check_pool_input(x, 2, op, integer_ok=False)
    if x.ndim != 4:
        raise ValueError(f"{op}: x must have shape (N, C, H, W), got x with shape {tuple(x.shape)}")
    return x


def check_output_size(output_size, op: str) -> tuple[int, int]:
    size = as_int_tuple(output_size, 2, "output_size", op)
    if any(v <= 0 for v in size):
        raise ValueError(f"{op}: output_size must be positive, got output_size={output_size!r}")
    return size


def check_sampling_ratio(sampling_ratio, op: str) -> int:
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, numbers.Integral):
        raise TypeError(f"{op}: sampling_ratio must be an int (<= 0 for adaptive), got sampling_ratio={sampling_ratio!r}")
    return int(sampling_ratio)


def check_roi_convention(convention, op: str) -> str:
    if not isinstance(convention, str) or convention not in ROI_CONVENTIONS:
        raise ValueError(f"{op}: convention must be one of {ROI_CONVENTIONS}, got convention={convention!r}")
    return convention


def check_region_arguments(x, boxes, output_size, spatial_scale, op: str, *, position_sensitive: bool = False):
    """The checks every region op starts with; returns ``(x, rois, (ph, pw), spatial_scale)``.

    ``x`` must be a float (N, C, H, W) array or Tensor, ``output_size`` positive, ``spatial_scale``
    finite and > 0, and ``boxes`` well formed; they become a (K, 5) ``rois`` array in the
    accumulation dtype on x's device. The output, (K, C, ph, pw) (position-sensitive: C / (ph pw)
    channels), must fit in :data:`~poolref._checks.MAX_ELEMENTS`: an absurd ``output_size`` is
    refused before anything is allocated.
    """
    x = check_region_input(x, op)
    size = check_output_size(output_size, op)
    scale = check_positive_number(spatial_scale, "spatial_scale", op)
    data = x.data if isinstance(x, Tensor) else x
    rois = boxes_to_rois(boxes, x.shape[0], op, accumulation_dtype(x.dtype), array_module(data))
    channels = max(x.shape[1] // (size[0] * size[1]), 1) if position_sensitive else x.shape[1]
    check_element_count(rois.shape[0] * channels * size[0] * size[1], "output_size", output_size, op,
                        f"the output ({rois.shape[0]} box(es), {channels} channel(s), {size[0]} x {size[1]} bins)")
    return x, rois, size, scale


def check_sampling_grid(rois, output_size, spatial_scale, sampling_ratio: int, offset: float, min_size: bool, op: str):
    r"""Refuse, before anything is allocated, an align op whose sampling grid is absurdly large.

    Every bin of box ``k`` reads ``4 g_h g_w`` input pixels (four bilinear corners of each of its
    ``g_h x g_w`` samples), and the align ops hold all of them at once (a sparse matrix of
    ``4 ph pw sum_k g_h g_w`` entries). ``g = sampling_ratio`` if positive, else ``ceil(roi / bins)``
    per box (adaptive): a box of side 1e5 would ask for 4e10 reads, a 3e9 one for 4e16. The count is
    computed from the same geometry as :func:`align_geometry` (in floating point, where an absurd box
    cannot overflow an integer) and refused with a ValueError naming ``sampling_ratio`` or the box.
    """
    ph, pw = output_size
    K = rois.shape[0]
    if K == 0:
        return
    if sampling_ratio > 0:
        check_element_count(4 * ph * pw * K * sampling_ratio**2, "sampling_ratio", sampling_ratio, op,
                            f"the sampling grid ({sampling_ratio} x {sampling_ratio} points in each of the {ph} x {pw} bins of {K} box(es))")
        return
    *_, bin_h, bin_w = _box_extent(rois, output_size, spatial_scale, offset, min_size)
    with numpy.errstate(invalid="ignore", over="ignore"):  # an overflowing box: inf or NaN, refused below
        grid_h = numpy.maximum(numpy.ceil(to_numpy(bin_h).astype(numpy.float64)), 0)  # (K,)
        grid_w = numpy.maximum(numpy.ceil(to_numpy(bin_w).astype(numpy.float64)), 0)
        per_box = 4.0 * ph * pw * grid_h * grid_w  # (K,) reads
    per_box = numpy.where(numpy.isnan(per_box), numpy.inf, per_box)
    k = int(numpy.argmax(per_box))
    box = [float(v) for v in to_numpy(rois[k])]
    check_element_count(float(per_box.sum()), f"boxes[{k}]", box, op,
                        f"the sampling grid (sampling_ratio={sampling_ratio} samples ceil(roi / bins) = "
                        f"{grid_h[k]:.6g} x {grid_w[k]:.6g} points in each of the {ph} x {pw} bins of box {k})")



def boxes_to_rois(boxes, num_images: int, op: str, dtype, xp):
    r"""Boxes in either accepted form as one (K, 5) array ``[batch_index, x1, y1, x2, y2]``.

    Parameters
    ----------
    boxes : array or Tensor, shape (K, 5); or a list/tuple of arrays, shape (K_i, 4)
        The list form gives the boxes of image ``i`` in its ``i``-th entry (torchvision's
        ``convert_boxes_to_roi_format``).
    num_images : int
        ``N``, the batch size of the input: batch indices must be integers in ``[0, N)``.
    op : str
        Named in error messages.
    dtype : numpy dtype
        Of the result (the op's accumulation dtype: torchvision computes box geometry in the input's
        dtype).
    xp : module
        numpy or cupy.

    Returns
    -------
    rois : array, shape (K, 5)

    Raises
    ------
    ValueError
        For a wrong shape, a non-finite coordinate, or a batch index that is not an integer in
        ``[0, N)``. Boxes with ``x2 < x1`` or ``y2 < y1``, and boxes partly or wholly outside the image,
        are valid (torchvision accepts them).

    Examples
    --------
    >>> import numpy as np
    >>> boxes_to_rois([np.array([[1., 2., 3., 4.]]), np.zeros((0, 4)), np.array([[0, 0, 5, 5]])], 3, "roi_align", np.float64, np)
    array([[0., 1., 2., 3., 4.],
           [2., 0., 0., 5., 5.]])
    """
    if isinstance(boxes, Tensor):
        boxes = boxes.data
    if isinstance(boxes, (list, tuple)):
        parts = [to_numpy(b.data if isinstance(b, Tensor) else b) for b in boxes]
        if any(p.ndim != 2 or p.shape[1] != 4 for p in parts):
            shapes = [tuple(p.shape) for p in parts]
            raise ValueError(f"{op}: boxes must have shape (K, 5) or be a list of (K_i, 4) arrays, got a list of arrays with shapes {shapes}")
        ids = [numpy.full((len(p), 1), i, dtype=numpy.float64) for i, p in enumerate(parts)]
        host = numpy.concatenate([numpy.concatenate([i, p.astype(numpy.float64)], axis=1) for i, p in zip(ids, parts)]) if parts else numpy.zeros((0, 5))
    else:
        if not hasattr(boxes, "shape"):
            boxes = numpy.asarray(boxes)
        if boxes.ndim != 2 or boxes.shape[1] != 5:
            raise ValueError(f"{op}: boxes must have shape (K, 5) or be a list of (K_i, 4) arrays, got boxes with shape {tuple(boxes.shape)}")
        host = to_numpy(boxes)
    if host.dtype.kind not in "iuf":
        raise TypeError(f"{op}: boxes must hold real numbers, got boxes with dtype {host.dtype}")
    host = host.astype(numpy.float64)
    if not numpy.isfinite(host).all():
        k = int(numpy.argwhere(~numpy.isfinite(host))[0, 0])
        raise ValueError(f"{op}: boxes must be finite, got box {k} = {host[k].tolist()}")
    index = host[:, 0]
    bad = (index != numpy.floor(index)) | (index < 0) | (index >= num_images)
    if bad.any():
        k = int(numpy.argmax(bad))
        raise ValueError(
            f"{op}: a box's batch index must be an integer in [0, {num_images}) for x with N={num_images}, "
            f"got batch index {float(index[k])!r} in box {k}"
        )
    with numpy.errstate(over="ignore"):  # a coordinate beyond x's dtype becomes inf: the size checks refuse it
        return xp.asarray(host, dtype=dtype)


# ==================================================================================================
# Geometry of the align ops: RoI Align and its position-sensitive and deformable cousins
# ==================================================================================================
class AlignGeometry(NamedTuple):
    r"""Per-box geometry of an "align" op, every field a (K,) array in the accumulation dtype.

    ``start_* = corner * scale - offset``; ``roi_* = end - start`` (at least 1 if ``min_size``);
    ``bin_* = roi_* / bins``; ``grid_*`` the sampling points per bin side (int64, may be <= 0 for a
    degenerate box under adaptive sampling, which then has no samples).
    """

    batch: object
    start_h: object
    start_w: object
    roi_h: object
    roi_w: object
    bin_h: object
    bin_w: object
    grid_h: object
    grid_w: object


def _box_extent(rois, output_size, spatial_scale, offset, min_size) -> tuple:
    """``(start_h, start_w, roi_h, roi_w, bin_h, bin_w)``: where each box starts, its size and its bins'
    size, (K,) each, in the dtype of ``rois`` (the fields of :class:`AlignGeometry` but the grids)."""
    xp = array_module(rois)
    dtype = rois.dtype
    scale, shift = dtype.type(spatial_scale), dtype.type(offset)
    ph, pw = output_size
    with numpy.errstate(over="ignore", invalid="ignore"):  # an absurd box overflows; check_sampling_grid refuses it
        start_w, start_h = rois[:, 1] * scale - shift, rois[:, 2] * scale - shift
        roi_w = (rois[:, 3] * scale - shift) - start_w
        roi_h = (rois[:, 4] * scale - shift) - start_h
        if min_size:  # torchvision: "force malformed ROIs to be 1x1" (roi_align with aligned=False only)
            roi_w, roi_h = xp.maximum(roi_w, dtype.type(1)), xp.maximum(roi_h, dtype.type(1))
        bin_h, bin_w = roi_h / dtype.type(ph), roi_w / dtype.type(pw)
    return start_h, start_w, roi_h, roi_w, bin_h, bin_w


def align_geometry(rois, output_size, spatial_scale, sampling_ratio, offset, min_size) -> AlignGeometry:
    """torchvision's box geometry, evaluated in the dtype of ``rois`` in the kernel's order.

    The ops call :func:`check_sampling_grid` first, so that the grids cast to int64 here are sane.
    """
    xp = array_module(rois)
    start_h, start_w, roi_h, roi_w, bin_h, bin_w = _box_extent(rois, output_size, spatial_scale, offset, min_size)
    if sampling_ratio > 0:
        grid_h = grid_w = xp.full(rois.shape[0], sampling_ratio, dtype=numpy.int64)
    else:  # ceil(roi / bins), per box; <= 0 for an empty or inverted box
        grid_h, grid_w = xp.ceil(bin_h).astype(numpy.int64), xp.ceil(bin_w).astype(numpy.int64)
    batch = rois[:, 0].astype(numpy.int64)
    return AlignGeometry(batch, start_h, start_w, roi_h, roi_w, bin_h, bin_w, grid_h, grid_w)


def sample_coordinates(start, bin_size, grid, bins: int, shift=None):
    r"""Sampling coordinates along one axis: (K, bins, G), ``G`` the largest grid.

    ``c[k, i, s] = (start_k + shift) + i * bin_k + ((s + 0.5) * bin_k) / grid_k`` (torchvision's
    order of operations). ``shift`` (K, bins, bins') moves every bin separately (deformable pooling);
    the result then has a bin axis for each spatial axis: (K, bins, bins', G). Entries with
    ``s >= grid_k`` are meaningless; :func:`~poolref._sampling_torchvision.bilinear_axis` masks them.
    """
    xp = array_module(start)
    dtype = start.dtype
    G = int(grid.max()) if grid.size else 0
    G = max(G, 0)
    s = xp.arange(G, dtype=dtype)
    i = xp.arange(bins, dtype=dtype)
    safe_grid = xp.maximum(grid, 1).astype(dtype)  # a box without samples must not divide by 0
    start = start[:, None]
    within = ((s + dtype.type(0.5)) * bin_size[:, None]) / safe_grid[:, None]  # (K, G)
    if shift is not None:
        start = (start[:, None] + shift)[..., None]  # (K, bins, bins', 1)
        step = (i[None, :, None] * bin_size[:, None, None])[..., None]
        return start + step + within[:, None, None, :]
    step = i[None, :] * bin_size[:, None]  # (K, bins)
    return (start + step)[:, :, None] + within[:, None, :]


def align_axes(geometry: AlignGeometry, output_size, H: int, W: int) -> tuple[AxisTaps, AxisTaps]:
    """Interpolation along y (K, ph, 1, G_h) and x (K, 1, pw, G_w) of every sampling point.

    Separable: bin ``(i, j)`` samples the rows of bin row ``i`` times the columns of bin column ``j``
    (RoI Align, position-sensitive RoI Align; deformable pooling moves each bin, and is not).
    """
    xp = array_module(geometry.start_h)
    ph, pw = output_size
    ys = sample_coordinates(geometry.start_h, geometry.bin_h, geometry.grid_h, ph)  # (K, ph, G_h)
    xs = sample_coordinates(geometry.start_w, geometry.bin_w, geometry.grid_w, pw)  # (K, pw, G_w)
    in_grid_y = xp.arange(ys.shape[-1])[None, None, :] < geometry.grid_h[:, None, None]
    in_grid_x = xp.arange(xs.shape[-1])[None, None, :] < geometry.grid_w[:, None, None]
    ay = bilinear_axis(ys[:, :, None, :], H, in_grid_y[:, :, None, :])
    ax = bilinear_axis(xs[:, None, :, :], W, in_grid_x[:, None, :, :])
    return ay, ax


# ==================================================================================================
# Integer bins of the pool ops: RoI pool and position-sensitive RoI pool
# ==================================================================================================
def round_half_away_from_zero(v):
    """C's ``round`` on an array: halves away from zero (NumPy's ``round`` sends them to even)."""
    xp = array_module(v)
    t = xp.trunc(v)
    frac = v - t  # exact: subtracting the integer part loses no bits
    return (t + (frac >= 0.5) - (frac <= -0.5)).astype(numpy.int64)


class PoolBins(NamedTuple):
    """Integer bins of the pool ops: (K, ph) row ranges and (K, pw) column ranges, clipped; (K,) batch."""

    batch: object
    h_start: object
    h_end: object
    w_start: object
    w_end: object


def pool_bins(rois, output_size, spatial_scale, *, end_inclusive: bool, clip_h: int, clip_w: int, op: str) -> PoolBins:
    r"""torchvision's integer bins, in the dtype of ``rois``: ``[floor(i * bin), ceil((i+1) * bin))``.

    Corners are rounded half away from zero after scaling; ``roi = max(x2 - x1 + 1, 1)`` when
    ``end_inclusive`` (RoI pool) else ``max(x2 - x1, 1)`` (PS RoI pool); ``bin = roi / bins``; bins are
    shifted by the box's first corner and clipped to ``[0, clip]``.
    """
    xp = array_module(rois)
    dtype = rois.dtype
    ph, pw = output_size
    scaled = rois[:, 1:5] * dtype.type(spatial_scale)
    if bool((xp.abs(scaled) >= 2.0**31).any()):
        raise ValueError(f"{op}: box coordinates times spatial_scale must lie within the int32 range of torchvision's kernel, got up to {float(xp.abs(scaled).max())!r}")
    x1, y1, x2, y2 = (round_half_away_from_zero(scaled[:, m]) for m in range(4))
    extra = 1 if end_inclusive else 0
    roi_w, roi_h = xp.maximum(x2 - x1 + extra, 1), xp.maximum(y2 - y1 + extra, 1)
    bin_h, bin_w = roi_h.astype(dtype) / dtype.type(ph), roi_w.astype(dtype) / dtype.type(pw)

    def edges(bin_size, first, bins, clip):
        i = xp.arange(bins, dtype=dtype)
        start = xp.floor(i[None, :] * bin_size[:, None]).astype(numpy.int64) + first[:, None]
        end = xp.ceil((i[None, :] + 1) * bin_size[:, None]).astype(numpy.int64) + first[:, None]
        return xp.clip(start, 0, clip), xp.clip(end, 0, clip)

    h_start, h_end = edges(bin_h, y1, ph, clip_h)
    w_start, w_end = edges(bin_w, x1, pw, clip_w)
    return PoolBins(rois[:, 0].astype(numpy.int64), h_start, h_end, w_start, w_end)


def pool_bin_cells(bins: PoolBins, width: int):
    r"""Yield ``(boxes, pixel, inside)`` for every cell ``(dy, dx)`` of the largest bin, row by row.

    ``pixel`` (K', ph, pw) is the flat index ``h*W + w`` of cell ``(dy, dx)`` of every bin (0 where
    the bin is smaller), ``inside`` whether the bin has that cell; boxes whose bins are all smaller
    are left out (``boxes`` lists those taking part, None for all).
    """
    xp = array_module(bins.h_start)
    heights, widths = bins.h_end - bins.h_start, bins.w_end - bins.w_start  # (K, ph), (K, pw)
    tall = heights.max(axis=1) if heights.size else xp.zeros(0, dtype=numpy.int64)
    wide = widths.max(axis=1) if widths.size else xp.zeros(0, dtype=numpy.int64)
    for dy in range(int(tall.max()) if tall.size else 0):
        for dx in range(int(wide.max()) if wide.size else 0):
            has = (tall > dy) & (wide > dx)
            if not bool(has.any()):
                continue
            boxes = None if bool(has.all()) else xp.nonzero(has)[0]
            h = select_boxes(bins.h_start, boxes, None) + dy
            w = select_boxes(bins.w_start, boxes, None) + dx
            inside = (h < select_boxes(bins.h_end, boxes, None))[:, :, None] & (w < select_boxes(bins.w_end, boxes, None))[:, None, :]
            pixel = xp.where(inside, h[:, :, None] * width + w[:, None, :], 0)
            yield boxes, pixel, inside


# ==================================================================================================
# Speed: channels-last tables (one row of channels per pixel) and their row scatter
# ==================================================================================================
def channels_last_table(x, dtype):
    """(N, C, H, W) -> (N*H*W, C): row ``(b*H + h)*W + w`` is ``x[b, :, h, w]``, so a gather copies rows."""
    xp = array_module(x)
    N, C, H, W = x.shape
    return xp.ascontiguousarray(xp.moveaxis(x, 1, -1)).reshape(N * H * W, C).astype(dtype, copy=False)


def gather_rows(table, rows):
    """``table[rows]`` for an integer array ``rows`` of any shape: ``(*rows.shape, C)``."""
    return array_module(table).take(table, rows, axis=0)


class RowScatter:
    r"""Accumulates ``total[rows, :] += weight * values`` over many calls, with ``bincount``.

    Speed: the backward of ONNX's max mode of RoI Align (:mod:`poolref.ops.region.roi_align`), one tap
    at a time, without a Python loop over rows (the averaging align ops need no scatter of their
    own: their backward is the transpose of their
    :class:`~poolref.ops.region.sampling_matrix.SamplingMatrix`).

    Parameters
    ----------
    R, C : int
        Shape of :attr:`total`, the (R, C) float64 sum (a channels-last table of the input gradient).
    xp : module
        numpy or cupy.

    Notes
    -----
    Each :meth:`add` scatters one tap: ``rows`` of shape ``(*S)`` (repeats accumulate), ``weight``
    ``(*S)`` and ``values`` ``(*S, C)``. Element ``(r, c)`` is bin ``r*C + c`` of one ``bincount``.
    The index and weight buffers (``S*C`` entries each) are allocated once and reused by every call:
    rewriting them costs less than fresh allocations, which dominate a large scatter on the CPU.

    Examples
    --------
    >>> import numpy as np
    >>> scatter = RowScatter(3, 2, np)
    >>> scatter.add(np.array([0, 2, 0]), np.array([1.0, 1.0, 0.5]), np.arange(6.0).reshape(3, 2))
    >>> scatter.total  # row 0: 1 * [0, 1] + 0.5 * [4, 5]
    array([[2. , 3.5],
           [0. , 0. ],
           [2. , 3. ]])
    """

    def __init__(self, R: int, C: int, xp):
        self.xp, self.C = xp, C
        self.total = xp.zeros((R, C), dtype=numpy.float64)
        self.columns = xp.arange(C, dtype=numpy.int64)
        self._index = self._share = None

    def add(self, rows, weight, values):
        """``total[rows, :] += weight[..., None] * values`` (see the class)."""
        xp, C = self.xp, self.C
        S = rows.size
        if self._index is None or self._index.shape[0] < S:
            self._index = xp.empty((S, C), dtype=numpy.int64)
            self._share = xp.empty((S, C), dtype=numpy.float64)
        index, share = self._index[:S], self._share[:S]
        xp.multiply(rows.reshape(S, 1), C, out=index)
        index += self.columns
        xp.multiply(values.reshape(S, C), weight.reshape(S, 1), out=share)
        flat = self.total.reshape(-1)
        flat += xp.bincount(index.reshape(-1), weights=share.reshape(-1), minlength=flat.size)


def has_nonfinite(x) -> bool:
    """Whether ``x`` holds a NaN or an infinity (then ``0 * x`` is not 0, and masks are needed)."""
    return x.dtype.kind == "f" and not bool(array_module(x).isfinite(x).all())
