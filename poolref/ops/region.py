r"""Region pooling: spatial pyramid pooling, RoI pool, RoI Align and their position-sensitive variants.

A *region* op pools each of ``K`` boxes (regions of interest) of a feature map ``x`` (N, C, H, W) into
a fixed grid of ``ph x pw`` bins, whatever the box's size: (K, C, ph, pw). The semantics are
torchvision's (SEMANTICS.md section 8); ``convention="onnx"`` selects ONNX Runtime's where it differs.
Boxes are a (K, 5) array of ``[batch_index, x1, y1, x2, y2]`` rows, or a list of (K_i, 4) arrays, one
per image (:func:`boxes_to_rois`).

How the array code is organised (no loop over boxes, bins or channels):

* the geometry of every box (where its bins start, how large they are, how many sampling points a bin
  has) is a handful of (K,) arrays, and the sampling coordinates of every bin are (K, ph, pw, g)
  arrays (:func:`align_geometry`, :func:`bilinear_axis`);
* a loop over the few *taps* (a sampling point and one of its four bilinear corners, or one cell of a
  RoI-pool bin) handles that tap for every box and bin at once (:func:`bilinear_taps`); the input
  is read channels-last, ``x[b, :, h, w]`` as one row of a table (:func:`channels_last_table`), so
  that every read takes a whole row of channels;
* the averaging align ops (RoI Align, its position-sensitive form, deformable RoI pooling) are
  linear in ``x``: every bin is a weighted sum of table rows. The taps fill a sparse matrix ``A``,
  one row per bin holding the bilinear weights of its samples' corners, once, in the forward
  (:func:`sampling_matrix`); then ``y = A @ table`` and the backward is the transpose of the same
  matrix, ``grad_table = A.T @ grad_y`` (:class:`SamplingMatrix`): the adjoint of a linear map,
  which written out is the scatter-add of every corner's share ``w * g`` into the pixel it read
  (save for the weight-0 reads torchvision's forward makes for samples outside the image, which its
  backward skips: they matter only to NaN and infinities);
* the max ops (RoI pool, ONNX's max mode of RoI Align) are not linear: their forward keeps a running
  maximum over the taps and their backward scatter-adds the gradient to the winners with
  ``bincount`` (:class:`RowScatter` for RoI Align); position-sensitive RoI pool, which sums the
  integer cells of its bins, scatter-adds its backward with ``bincount`` too.

Boxes whose adaptive sampling grid (``sampling_ratio <= 0``) is smaller than the largest box's skip
the taps they do not have (and their rows of ``A`` are shorter), so the work stays proportional to
the samples actually taken. The plain loops of :mod:`poolref.reference.region` are the executable
specification these functions are tested against; :mod:`poolref.ops.deformable` reuses the bilinear
helpers and the sampling matrix.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy

from .._backend import array_module, sparse_csr, to_numpy
from .._checks import accumulation_dtype, cast_back, check_pool_input, check_positive_number
from .._geometry import as_int_tuple, pool_geometry
from .._running_max import ONNX, ONNX_MAX_ROI_POOL, TORCHVISION_ROI_POOL
from ..autograd.function import apply, define_function
from ..autograd.tensor import Tensor
from .adaptive import ADAPTIVE_AVG_POOL, ADAPTIVE_MAX_POOL
from .window import AVG_POOL, MAX_POOL

__all__ = ["spatial_pyramid_pool2d", "roi_pool", "roi_align", "ps_roi_pool", "ps_roi_align"]

ROI_CONVENTIONS = ("torchvision", "onnx")


# ==================================================================================================
# Argument checks shared by the region ops (and deformable.py)
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
    return xp.asarray(host, dtype=dtype)


# ==================================================================================================
# Geometry of RoI Align (and of its position-sensitive and deformable cousins)
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


def align_geometry(rois, output_size, spatial_scale, sampling_ratio, offset, min_size) -> AlignGeometry:
    """torchvision's box geometry, evaluated in the dtype of ``rois`` in the kernel's order."""
    xp = array_module(rois)
    dtype = rois.dtype
    scale, shift = dtype.type(spatial_scale), dtype.type(offset)
    ph, pw = output_size
    start_w, start_h = rois[:, 1] * scale - shift, rois[:, 2] * scale - shift
    roi_w = (rois[:, 3] * scale - shift) - start_w
    roi_h = (rois[:, 4] * scale - shift) - start_h
    if min_size:  # torchvision: "force malformed ROIs to be 1x1" (roi_align with aligned=False only)
        roi_w, roi_h = xp.maximum(roi_w, dtype.type(1)), xp.maximum(roi_h, dtype.type(1))
    bin_h, bin_w = roi_h / dtype.type(ph), roi_w / dtype.type(pw)
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
    ``s >= grid_k`` are meaningless; :func:`bilinear_axis` masks them.
    """
    xp = array_module(start)
    dtype = start.dtype
    G = int(grid.max()) if grid.size else 0
    G = max(G, 0)
    s = xp.arange(G, dtype=dtype)
    i = xp.arange(bins, dtype=dtype)
    safe_grid = xp.maximum(grid, 1).astype(dtype)  # a box without samples must not divide by 0
    start = start[:, None]
    if shift is not None:
        start = (start[:, None] + shift)[..., None]  # (K, bins, bins', 1)
        step = (i[None, :, None] * bin_size[:, None, None])[..., None]
        within = ((s + dtype.type(0.5)) * bin_size[:, None]) / safe_grid[:, None]  # (K, G)
        return start + step + within[:, None, None, :]
    step = i[None, :] * bin_size[:, None]  # (K, bins)
    within = ((s + dtype.type(0.5)) * bin_size[:, None]) / safe_grid[:, None]  # (K, G)
    return (start + step)[:, :, None] + within[:, None, :]


class AxisTaps(NamedTuple):
    r"""Bilinear interpolation along one axis for an array of coordinates (all fields that shape).

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
    it is clamped below at 0; ``low = floor(c)``; if ``low >= length - 1`` the coordinate is snapped
    to ``length - 1`` (``high = low``); ``w_high = c - low``, ``w_low = 1 - w_high``.

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
    >>> import numpy as np
    >>> t = bilinear_axis(np.array([-1.5, -0.5, 0.25, 2.5, 3.0]), 3)
    >>> t.low.tolist(), t.high.tolist(), t.w_high.tolist(), t.slope.tolist()
    ([0, 0, 0, 2, 2], [0, 1, 1, 2, 2], [0.0, 0.0, 0.25, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0, 0.0])
    """
    xp = array_module(coord)
    dtype = coord.dtype
    inside = (coord >= -1) & (coord <= length)  # False for NaN, as torchvision's !(in range) test
    if mask is not None:
        inside &= mask
    c = xp.where(inside, xp.maximum(coord, dtype.type(0)), dtype.type(0))
    low = c.astype(numpy.int64)  # c >= 0, so the cast is floor
    snapped = low >= length - 1
    low = xp.minimum(low, length - 1)
    high = xp.where(snapped | ~inside, low, low + 1)  # outside: low = high = 0
    c = xp.where(snapped, low.astype(dtype), c)
    w_high = xp.where(inside, c - low.astype(dtype), dtype.type(0))
    w_low = xp.where(inside, dtype.type(1) - w_high, dtype.type(0))
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
    (as torchvision's CPU kernel does).
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

    The backward of ONNX's max mode of :func:`roi_align`, one tap at a time (the averaging align ops
    need no scatter of their own: their backward is the transpose of their :class:`SamplingMatrix`).

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


def check_region_arguments(x, boxes, output_size, spatial_scale, op: str):
    """The checks every region op starts with; returns ``(x, rois, (ph, pw), spatial_scale)``.

    ``x`` must be a float (N, C, H, W) array or Tensor, ``output_size`` positive, ``spatial_scale``
    finite and > 0, and ``boxes`` well formed; they become a (K, 5) ``rois`` array in the
    accumulation dtype on x's device.
    """
    x = check_region_input(x, op)
    size = check_output_size(output_size, op)
    scale = check_positive_number(spatial_scale, "spatial_scale", op)
    data = x.data if isinstance(x, Tensor) else x
    rois = boxes_to_rois(boxes, x.shape[0], op, accumulation_dtype(x.dtype), array_module(data))
    return x, rois, size, scale


def has_nonfinite(x) -> bool:
    """Whether ``x`` holds a NaN or an infinity (then ``0 * x`` is not 0, and masks are needed)."""
    return x.dtype.kind == "f" and not bool(array_module(x).isfinite(x).all())


# ==================================================================================================
# The averaging align ops as one sparse matrix
# ==================================================================================================
class SamplingMatrix(NamedTuple):
    r"""An averaging align op, which is linear in ``x``, as a sparse matrix :math:`A`.

    Row ``r`` is one output bin ``(k, i, j)`` (boxes, then bin rows, then bin columns); column ``m``
    is one row of a channels-last table of the input (one row of channels per pixel, see
    :func:`channels_last_table`). Row ``r`` holds the bilinear weight of every corner of every sample
    of its bin, so that, before the division by the number of samples,

    .. math:: \mathrm{out} = A\, \mathrm{table}, \qquad \mathrm{grad\_table} = A^T\, \mathrm{grad\_out}:

    the backward is the transpose of the same matrix (the adjoint, :math:`\langle g, A t\rangle =
    \langle A^T g, t\rangle`), which written out is the scatter-add of every corner's share
    ``w * g`` into the pixel it read. The entries of a row are in scan order (samples row by row,
    then the corners (low, low) .. (high, high)); a pixel read by several samples, or by both
    corners of a coordinate snapped to the last row or column, appears once per read, and the
    products add these reads one by one in that order, as the kernels do.

    Reads of weight 0 add nothing for finite values, but ``0 * nan`` and ``0 * inf`` are NaN, and
    the kernels let that reach the bin (forward) or the pixel (backward). They are kept in two
    matrices of their own, because the kernels treat them differently:

    * a weight-0 corner of a sample inside the image (a coordinate on a pixel, or snapped to the last
      row or column) is read by the forward and written by the backward, like any corner;
    * a sample outside the image: torchvision's RoI Align CPU forward reads pixel (0, 0) with weight
      0 for it (``pre_calc``), but its backward skips it (``bilinear_interpolate_gradient`` returns
      corner -1, and nothing is added): so a NaN at pixel (0, 0) reaches such bins, while a NaN
      gradient of such a bin reaches no pixel. :meth:`times` reads these, :meth:`transpose_times`
      does not. (Position-sensitive and deformable pooling read nothing outside: no such reads.)

    Attributes
    ----------
    weights : sparse matrix, (R, M)
        The reads with a nonzero weight.
    zero_reads : sparse matrix of ones, (R, M), or None
        The weight-0 reads of samples inside the image. Where the operand holds a NaN or an
        infinity, ``zero_reads @ (operand * 0)`` (0 where finite, NaN where not) is added. They are
        kept apart from ``weights`` because cupyx merges repeated columns before a product, and
        ``(0 + w) * inf`` would lose the NaN of ``0 * inf + w * inf``.
    outside_reads : sparse matrix of ones, (R, M), or None
        torchvision's weight-0 reads of pixel (0, 0) for samples outside the image: added the same
        way by :meth:`times` only.
    """

    weights: object
    zero_reads: object
    outside_reads: object

    def times(self, dense):
        """``A @ dense``: (R, C) from an (M, C) table in the dtype of the weights."""
        return self._product(self.weights, (self.zero_reads, self.outside_reads), dense)

    def transpose_times(self, dense):
        """``A.T @ dense``: (M, C) from an (R, C) gradient, the backward of :meth:`times`.

        The outside samples' reads are left out, as torchvision's backward leaves them out.
        """
        zero_reads = None if self.zero_reads is None else self.zero_reads.T
        return self._product(self.weights.T, (zero_reads,), dense)

    @staticmethod
    def _product(weights, zero_reads, dense):
        xp = array_module(dense)
        if weights.nnz:
            out = weights @ dense
        else:  # no reads at all (no boxes, or no samples): skip the sparse library's corner cases
            out = xp.zeros((weights.shape[0], dense.shape[1]), dtype=dense.dtype)
        zero_reads = [matrix for matrix in zero_reads if matrix is not None]
        if zero_reads and has_nonfinite(dense):
            with numpy.errstate(invalid="ignore"):  # inf * 0: NaN, on purpose
                poisoned = dense * dense.dtype.type(0)  # 0 where finite, NaN where not
                for matrix in zero_reads:
                    out += matrix @ poisoned
        return out


def sampling_matrix(ay: AxisTaps, ax: AxisTaps, geometry: AlignGeometry, width: int, column_base, column_step: int,
                    n_columns: int, *, read_outside: bool) -> SamplingMatrix:
    r"""Build the :class:`SamplingMatrix` of an align op from its interpolation along both axes.

    Parameters
    ----------
    ay, ax : AxisTaps
        As for :func:`bilinear_taps`: every bin's sampling points and their corners.
    geometry : AlignGeometry
        Its ``grid_h``, ``grid_w`` say how many samples each box's bins have.
    width : int
        ``W``: a corner's pixel is ``h * W + w`` in its plane.
    column_base : int array, broadcastable to (K, ph, pw)
        With ``column_step``: the column of a corner of bin ``(k, i, j)`` read at pixel ``p`` (in
        its plane) is ``column_base[k, i, j] + p * column_step``. RoI Align: ``b_k H W + p``, one
        table row per pixel; position-sensitive: ``(b_k H W + p) ph pw + i pw + j``, one table row
        per pixel and bin.
    column_step : int
    n_columns : int
        ``M``, the rows of the table.
    read_outside : bool
        Whether a sample outside the image reads pixel 0 with weight 0 in the forward (torchvision's
        RoI Align CPU kernel; its backward does not: :attr:`SamplingMatrix.outside_reads`) or reads
        nothing (position-sensitive and deformable pooling).

    Notes
    -----
    Every bin of box ``k`` has ``4 g_h g_w`` reads (none when a grid is <= 0), so the rows are laid
    out in advance, box after box; one pass over the taps (a sample and one of its corners, for all
    bins at once) writes each tap's weight and column at the next free place of every row it
    belongs to. The reads are then split into the three matrices: nonzero weights, weight-0 reads
    inside the image, and the outside samples' reads of pixel 0.
    """
    xp = array_module(ay.low)
    K = geometry.grid_h.shape[0]
    dtype = ay.w_low.dtype
    bins_shape = numpy.broadcast_shapes(ay.low.shape[1:3], ax.low.shape[1:3])  # (ph, pw)
    n_bins = bins_shape[0] * bins_shape[1]
    per_bin = 4 * xp.maximum(geometry.grid_h, 0) * xp.maximum(geometry.grid_w, 0)  # (K,) reads of each bin
    box_end = xp.cumsum(per_bin * n_bins)
    bin_start = ((box_end - per_bin * n_bins)[:, None] + per_bin[:, None] * xp.arange(n_bins)).reshape((K,) + bins_shape)
    n_reads = int(box_end[-1]) if K else 0
    weight = xp.empty(n_reads, dtype=dtype)
    column = xp.empty(n_reads, dtype=numpy.int64)
    inside = xp.ones(n_reads, dtype=bool)  # the read belongs to a sample inside the image
    written = xp.zeros(K, dtype=numpy.int64)  # reads written so far into each bin of box k
    for tap in bilinear_taps(ay, ax, geometry.grid_h, geometry.grid_w, width):
        # the tap's place in every row it belongs to: the row's start plus the reads before it
        place = select_boxes(bin_start, tap.boxes, None) + select_boxes(written, tap.boxes, None)[:, None, None]
        weight[place] = tap.weight
        column[place] = select_boxes(xp.broadcast_to(column_base, bin_start.shape), tap.boxes, None) + tap.pixel * column_step
        inside[place] = tap.inside
        if tap.boxes is None:
            written += 1
        else:
            written[tap.boxes] += 1
    # row r starts at row_start[r]; keeping a subset of the reads, in order, it starts after the
    # kept reads before row_start[r]
    row_start = xp.concatenate([bin_start.reshape(-1), xp.asarray([n_reads], dtype=bin_start.dtype)])

    def keep(mask, data):
        before = xp.concatenate([xp.zeros(1, dtype=numpy.int64), xp.cumsum(mask)])
        return sparse_csr(data, column[mask], before[row_start], n_columns)

    nonzero = inside & (weight != 0)  # an outside sample's weights are all 0
    zero = inside & ~nonzero
    outside = ~inside if read_outside else xp.zeros_like(inside)

    def ones(mask):
        return keep(mask, xp.ones(int(mask.sum()), dtype=dtype)) if bool(mask.any()) else None

    return SamplingMatrix(keep(nonzero, weight[nonzero]), ones(zero), ones(outside))


# ==================================================================================================
# RoI Align
# ==================================================================================================
class RoiAlignSaved(NamedTuple):
    x_shape: tuple
    dtype: numpy.dtype
    geometry: AlignGeometry
    count: object  # (K,) the divisor of avg mode
    matrix: SamplingMatrix  # avg: the sparse map from the input table to the bins, else None
    ay: AxisTaps  # max: the interpolation of every sample (the backward replays the taps), else None
    ax: AxisTaps
    winner: object  # max: (K, ph, pw, C) number of the tap max mode chose (-1: none), else None


def _align_axes(geometry: AlignGeometry, output_size, H, W):
    """Interpolation along y (K, ph, 1, G_h) and x (K, 1, pw, G_w) of every sampling point."""
    xp = array_module(geometry.start_h)
    ph, pw = output_size
    ys = sample_coordinates(geometry.start_h, geometry.bin_h, geometry.grid_h, ph)  # (K, ph, G_h)
    xs = sample_coordinates(geometry.start_w, geometry.bin_w, geometry.grid_w, pw)  # (K, pw, G_w)
    in_grid_y = xp.arange(ys.shape[-1])[None, None, :] < geometry.grid_h[:, None, None]
    in_grid_x = xp.arange(xs.shape[-1])[None, None, :] < geometry.grid_w[:, None, None]
    ay = bilinear_axis(ys[:, :, None, :], H, in_grid_y[:, :, None, :])
    ax = bilinear_axis(xs[:, None, :, :], W, in_grid_x[:, None, :, :])
    return ay, ax


def _roi_align_forward(x, rois, *, output_size, spatial_scale, sampling_ratio, aligned, mode):
    xp = array_module(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    accumulate = accumulation_dtype(x.dtype)
    geometry = align_geometry(rois, output_size, spatial_scale, sampling_ratio, 0.5 if aligned else 0.0, not aligned)
    ay, ax = _align_axes(geometry, output_size, H, W)
    table = channels_last_table(x, accumulate)  # (N*H*W, C)
    base = (geometry.batch * (H * W))[:, None, None]  # (K, 1, 1) first row of each box's image
    K = rois.shape[0]
    count = xp.maximum(geometry.grid_h * geometry.grid_w, 1).astype(accumulate)
    if mode == "avg":
        # linear in x: out = A @ table, with an entry of A for every read of the CPU kernel
        # (an outside sample reads pixel 0 with weight 0), added in the kernel's order; then the
        # mean over the samples
        matrix = sampling_matrix(ay, ax, geometry, W, base, 1, N * H * W, read_outside=True)
        with numpy.errstate(invalid="ignore"):  # 0 * inf is NaN here, as in the kernels
            out = matrix.times(table).reshape(K, ph, pw, C)
        out /= count[:, None, None, None]
        y = xp.ascontiguousarray(xp.moveaxis(out, -1, 1)).astype(x.dtype, copy=False)
        return y, RoiAlignSaved(x.shape, x.dtype, geometry, count, matrix, None, None, None)
    # ONNX max (not linear): fold the weighted corners tap by tap with ORT's std::max(best, v), the
    # "onnx" running max of poolref._running_max: each bin's first weighted corner is taken whatever
    # it holds, a later one when it is greater (first of ties; a NaN survives only as the first)
    out = xp.zeros((K, ph, pw, C), dtype=accumulate)
    winner = xp.full((K, ph, pw, C), -1, dtype=numpy.int32)
    for tap in bilinear_taps(ay, ax, geometry.grid_h, geometry.grid_w, W):
        rows = select_boxes(base, tap.boxes, None) + tap.pixel
        value = gather_rows(table, rows)  # (K', ph, pw, C)
        with numpy.errstate(invalid="ignore"):  # 0 * inf is NaN here, as in the kernels
            value *= tap.weight[..., None]
        best = select_boxes(out, tap.boxes, None)
        chosen = select_boxes(winner, tap.boxes, None)
        take = (chosen < 0) | ONNX.takes(value, best)
        best = xp.where(take, value, best)
        chosen = xp.where(take, tap.number, chosen)
        if tap.boxes is None:
            out, winner = best, chosen
        else:
            out[tap.boxes], winner[tap.boxes] = best, chosen
    y = xp.ascontiguousarray(xp.moveaxis(out, -1, 1)).astype(x.dtype, copy=False)
    return y, RoiAlignSaved(x.shape, x.dtype, geometry, count, None, ay, ax, winner)


def _roi_align_backward(saved: RoiAlignSaved, grad_y):
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    geometry = saved.geometry
    if saved.matrix is not None:
        # avg: the transpose of the forward's matrix, grad_table = A.T @ (g / count): every corner
        # of every sample gets g * w / count. g is a fresh channels-last copy (K, ph, pw, C), since
        # it is divided in place and grad_y belongs to the caller.
        g = xp.empty(grad_y.shape[:1] + grad_y.shape[2:] + (C,), dtype=saved.count.dtype)
        g[...] = xp.moveaxis(grad_y, 1, -1)
        g /= saved.count[:, None, None, None]
        with numpy.errstate(invalid="ignore"):
            grad_table = saved.matrix.transpose_times(g.reshape(-1, C))  # (N*H*W, C)
        grad_x = xp.ascontiguousarray(xp.moveaxis(grad_table.reshape(N, H, W, C), -1, 1))
        return cast_back(grad_x, saved.dtype), None
    # max: g * w to the corner the forward chose, tap by tap; (K, ph, pw, C) channels-last, in
    # float64: bincount's weights, so each tap's share needs no cast. The other bins' g is selected
    # away (where), not multiplied by a 0/1 mask, so an infinite or NaN g stays with its corner.
    g = xp.ascontiguousarray(xp.moveaxis(grad_y, 1, -1), dtype=numpy.float64)
    scatter = RowScatter(N * H * W, C, xp)
    base = (geometry.batch * (H * W))[:, None, None]
    for tap in bilinear_taps(saved.ay, saved.ax, geometry.grid_h, geometry.grid_w, W):
        chose = select_boxes(saved.winner, tap.boxes, None) == tap.number
        g_tap = xp.where(chose, select_boxes(g, tap.boxes, None), 0.0)
        with numpy.errstate(invalid="ignore"):  # a chosen corner of weight 0 gets 0 * g: NaN for an infinite g
            scatter.add(select_boxes(base, tap.boxes, None) + tap.pixel, tap.weight, g_tap)
    grad_x = xp.ascontiguousarray(xp.moveaxis(scatter.total.reshape(N, H, W, C), -1, 1))
    return grad_x.astype(saved.dtype, copy=False), None


ROI_ALIGN = define_function("roi_align", _roi_align_forward, _roi_align_backward)


def roi_align(x, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False, *, mode="avg", convention="torchvision"):
    r"""RoI Align (He et al. 2017): average of bilinear samples in each bin of each box.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W)
        Floating-point feature map.
    boxes : array, shape (K, 5); or list of N' arrays, shape (K_i, 4)
        ``[batch_index, x1, y1, x2, y2]`` rows, or per image ``[x1, y1, x2, y2]`` rows, in input
        coordinates. Boxes may be degenerate, inverted or outside the map; K may be 0.
    output_size : int or (int, int)
        ``(ph, pw)`` bins per box.
    spatial_scale : float
        Maps box coordinates onto ``x`` (e.g. 1/16 for a stride-16 feature map).
    sampling_ratio : int
        Sampling points per bin side; ``<= 0`` chooses ``ceil(roi_size / bins)`` for each box.
    aligned : bool
        Shift boxes by half a pixel so that pixel centres sit at half-integers (Detectron2's
        correction; ONNX ``half_pixel``). If False (ONNX ``output_half_pixel``), a box smaller than
        one pixel is enlarged to one.
    mode : {"avg", "max"}
        ``"max"`` exists only in ONNX's RoiAlign (``convention="onnx"``).
    convention : {"torchvision", "onnx"}
        Whose operator: the two agree on ``mode="avg"``.

    Returns
    -------
    y : array or Tensor, shape (K, C, ph, pw)

    Notes
    -----
    With ``o = 0.5`` if aligned else 0: ``start_w = x_1 s - o``, ``roi_w = x_2 s - o - start_w``
    (at least 1 when not aligned), ``bin_w = roi_w / pw``, ``g_w = sampling_ratio`` if positive
    else ``ceil(roi_w / pw)``, and likewise along ``h``. Bin :math:`(i, j)` samples the points

    .. math:: y_{i,a} = start_h + i\, bin_h + (a + \tfrac12) \frac{bin_h}{g_h}, \qquad
              x_{j,b} = start_w + j\, bin_w + (b + \tfrac12) \frac{bin_w}{g_w}

    each read bilinearly from its four neighbours with weights :math:`w_q` (a point outside
    :math:`[-1, H] \times [-1, W]` reads nothing; a coordinate is clamped below at 0 and snapped to the
    last row or column beyond it). Avg mode:

    .. math:: y_{kcij} = \frac{1}{\max(g_h g_w, 1)} \sum_{a, b} \sum_{q=1}^{4} w_q\, x_{b_k, c, q}, \qquad
              \frac{\partial L}{\partial x_{b_k, c, q}} \mathrel{+}= \frac{w_q}{g_h g_w} \frac{\partial L}{\partial y_{kcij}}

    Avg mode is linear in ``x``. With ``x`` channels-last as a table :math:`T` (one row of
    channels per pixel, :math:`N H W` rows) and :math:`A` the sparse
    :math:`(K\, ph\, pw) \times (N H W)` matrix whose row for bin :math:`(k, i, j)` holds the
    weights :math:`w_q` of its samples' corners at the pixels they read (a pixel read twice, twice),
    :math:`Y = A T / \max(g_h g_w, 1)` and the backward is the transpose of the same matrix,
    :math:`\partial L / \partial T = A^T (\partial L / \partial Y) / \max(g_h g_w, 1)`: the
    adjoint of the forward, which poolref builds once, in the forward.

    NaN and infinities (avg mode) reach exactly the bins that read them, with torchvision's CPU
    rule for a sample outside the image: the forward reads pixel (0, 0) with weight 0 for it, so a
    NaN or infinity *there* makes such bins NaN (:math:`0 \cdot \mathrm{NaN}`); the backward skips
    it (its ``bilinear_interpolate_gradient`` returns no corner), so an upstream NaN reaches no pixel
    through it. A weight-0 corner of a sample inside the image (on a pixel, or snapped to the last
    row or column) is read and written like any corner. A sum within a factor :math:`4 g_h g_w` of
    the dtype's largest value overflows before the division, as in the kernel.

    ONNX's max mode takes the largest *weighted corner*, :math:`y = \max_{a,b,q} w_q x_q` (not the
    largest interpolated value; a corner of weight 0 counts as 0, so a bin of negative values can
    output 0), folded with ONNX Runtime's ``std::max``, the ``onnx`` running max of :ref:`max-rules`
    (the first of equal values; a NaN survives only as the bin's first weighted corner); its backward
    sends :math:`w_q \partial L/\partial y` to that one corner. As in both CPU kernels, a sample
    outside the image reads pixel (0, 0) with weight 0, so a NaN there reaches such bins.

    Examples
    --------
    The worked case of SEMANTICS.md (10 x 10 ramp, box [1, 1, 3, 3], 4 x 4 bins, one sample each):

    >>> import numpy as np, poolref
    >>> x = np.arange(100.).reshape(1, 1, 10, 10)
    >>> poolref.roi_align(x, np.array([[0, 1, 1, 3, 3]]), 4, 1.0, 1, aligned=True)[0, 0, 0]
    array([8.25, 8.75, 9.25, 9.75])
    >>> poolref.roi_align(x, [np.array([[1, 1, 3, 3]])], 4, 1.0, 1, aligned=False)[0, 0, 0]
    array([13.75, 14.25, 14.75, 15.25])
    """
    op = "roi_align"
    x, rois, size, scale = check_region_arguments(x, boxes, output_size, spatial_scale, op)
    ratio = check_sampling_ratio(sampling_ratio, op)
    if not isinstance(aligned, (bool, numpy.bool_)):
        raise TypeError(f"{op}: aligned must be a bool, got aligned={aligned!r}")
    if not isinstance(convention, str) or convention not in ROI_CONVENTIONS:
        raise ValueError(f"{op}: convention must be one of {ROI_CONVENTIONS}, got convention={convention!r}")
    if not isinstance(mode, str) or mode not in ("avg", "max"):
        raise ValueError(f"{op}: mode must be 'avg' or 'max', got mode={mode!r}")
    if mode == "max" and convention != "onnx":
        raise ValueError(f"{op}: mode='max' is ONNX RoiAlign's (torchvision has only 'avg'); pass convention='onnx', got mode='max' with convention={convention!r}")
    return apply(ROI_ALIGN, x, rois, output_size=size, spatial_scale=scale, sampling_ratio=ratio, aligned=bool(aligned), mode=mode)


# ==================================================================================================
# RoI pool
# ==================================================================================================
def round_half_away_from_zero(v):
    """C's ``round`` on an array: halves away from zero (NumPy's ``round`` sends them to even)."""
    xp = array_module(v)
    t = xp.trunc(v)
    frac = v - t  # exact: subtracting the integer part loses no bits
    return (t + (frac >= 0.5) - (frac <= -0.5)).astype(numpy.int64)


class PoolBins(NamedTuple):
    """Integer bins of RoI pool: (K, ph) row ranges and (K, pw) column ranges, clipped; (K,) batch."""

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


class RoiPoolSaved(NamedTuple):
    rows: object  # (K, ph, pw, C) channels-last row of each output's element, -1 for none
    x_shape: tuple
    dtype: numpy.dtype


def _roi_pool_forward(x, rois, *, output_size, spatial_scale, convention):
    xp = array_module(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    bins = pool_bins(rois, output_size, spatial_scale, end_inclusive=True, clip_h=H, clip_w=W, op="roi_pool")
    table = channels_last_table(x, x.dtype)
    K = rois.shape[0]
    empty = ((bins.h_end <= bins.h_start)[:, :, None] | (bins.w_end <= bins.w_start)[:, None, :])[..., None]
    # the running max of poolref._running_max: from -FLT_MAX (-inf in float16), no winner yet
    rule = TORCHVISION_ROI_POOL if convention == "torchvision" else ONNX_MAX_ROI_POOL
    best = xp.empty((K, ph, pw, C), dtype=x.dtype)
    best[...] = xp.where(empty, x.dtype.type(0), rule.floor(x.dtype))  # an empty bin outputs 0
    where = xp.full((K, ph, pw, C), -1, dtype=numpy.int64)  # argmax as channels-last table row
    base = (bins.batch * (H * W))[:, None, None]
    for boxes, pixel, inside in pool_bin_cells(bins, W):
        rows = select_boxes(base, boxes, None) + pixel
        value = gather_rows(table, rows)
        old = select_boxes(best, boxes, None)
        # torchvision: value > best (first of ties, NaN never taken); ONNX Runtime: std::max(v, best),
        # not (value < best) (last of ties; a NaN is taken, then replaced by the next element)
        take = rule.takes(value, old) & inside[..., None]
        new_best = xp.where(take, value, old)
        new_where = xp.where(take, rows[..., None], select_boxes(where, boxes, None))
        if boxes is None:
            best, where = new_best, new_where
        else:
            best[boxes], where[boxes] = new_best, new_where
    y = xp.ascontiguousarray(xp.moveaxis(best, -1, 1))
    return y, RoiPoolSaved(where, x.shape, x.dtype)


def _roi_pool_backward(saved: RoiPoolSaved, grad_y):
    # each output's gradient goes to the element it took (nothing for an empty bin)
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    g = xp.moveaxis(grad_y, 1, -1)  # (K, ph, pw, C)
    taken = saved.rows >= 0
    flat = xp.where(taken, saved.rows * C + xp.arange(C), 0).reshape(-1)
    weights = xp.where(taken, g, 0).reshape(-1).astype(numpy.float64)
    total = xp.bincount(flat, weights=weights, minlength=N * H * W * C)
    grad_x = xp.ascontiguousarray(xp.moveaxis(total.reshape(N, H, W, C), -1, 1))
    return grad_x.astype(saved.dtype, copy=False), None


ROI_POOL = define_function("roi_pool", _roi_pool_forward, _roi_pool_backward)


def roi_pool(x, boxes, output_size, spatial_scale=1.0, *, convention="torchvision"):
    r"""RoI max pooling (Girshick 2015, Fast R-CNN): the maximum of each integer bin of each box.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W)
        Floating-point feature map.
    boxes : array, shape (K, 5); or list of arrays, shape (K_i, 4)
        As for :func:`roi_align`.
    output_size : int or (int, int)
        ``(ph, pw)``.
    spatial_scale : float
        Maps box coordinates onto ``x``.
    convention : {"torchvision", "onnx"}
        torchvision's ``roi_pool`` or ONNX Runtime's ``MaxRoiPool``: the same bins, a different
        comparison (below).

    Returns
    -------
    y : array or Tensor, shape (K, C, ph, pw)

    Notes
    -----
    Box corners are scaled and rounded half away from zero, :math:`x_1 = \mathrm{round}(x_1 s)`; the
    box is end-inclusive, :math:`roi_w = \max(x_2 - x_1 + 1, 1)`, and bin :math:`j` covers the
    columns :math:`[\lfloor j\, roi_w / pw \rfloor, \lceil (j+1)\, roi_w / pw \rceil)` shifted by
    :math:`x_1` and clipped to :math:`[0, W]` (rows alike). Then

    .. math:: y_{kcij} = \max_{(h, w) \in \mathrm{bin}_{kij}} x_{b_k c h w}, \qquad
              \frac{\partial L}{\partial x_{b_k c h w}} \mathrel{+}= \frac{\partial L}{\partial y_{kcij}}
              \ \text{at the argmax}

    An empty bin outputs 0 and passes no gradient. The running maximum (:ref:`max-rules`) starts at
    ``-FLT_MAX`` (``-inf`` in float16) and scans the bin row by row. torchvision takes an element when
    ``v > best``: the first of equal values; a NaN is never taken (unlike max pooling, where NaN
    wins); a bin of values at or below ``-FLT_MAX`` (``-inf``) outputs ``-FLT_MAX`` and passes no
    gradient. ONNX Runtime's MaxRoiPool takes it unless ``v < best`` (``std::max``): the last of equal
    values (``[-0., 0.]`` gives ``0.``), and a NaN survives only as the bin's last element. (ONNX
    defines no gradient; poolref's follows the element it took.)

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> poolref.roi_pool(x, np.array([[0, 0, 0, 2, 2]]), 2)
    array([[[[ 5.,  6.],
             [ 9., 10.]]]])
    """
    op = "roi_pool"
    x, rois, size, scale = check_region_arguments(x, boxes, output_size, spatial_scale, op)
    if not isinstance(convention, str) or convention not in ROI_CONVENTIONS:
        raise ValueError(f"{op}: convention must be one of {ROI_CONVENTIONS}, got convention={convention!r}")
    return apply(ROI_POOL, x, rois, output_size=size, spatial_scale=scale, convention=convention)


# ==================================================================================================
# Position-sensitive RoI pool and RoI Align (R-FCN)
# ==================================================================================================
def _ps_channels(x_shape, output_size, batch, xp):
    """(K, C_out, ph, pw) index of the first element of the input plane each output reads.

    Output channel ``c`` at bin ``(i, j)`` reads input channel ``(c * ph + i) * pw + j``.
    """
    N, C, H, W = x_shape
    ph, pw = output_size
    c_out = C // (ph * pw)
    channel = xp.arange(c_out * ph * pw, dtype=numpy.int64).reshape(c_out, ph, pw)
    return (batch[:, None, None, None] * C + channel[None]) * (H * W)


def _check_ps_channels(x, output_size, op):
    ph, pw = output_size
    if x.shape[1] % (ph * pw):
        raise ValueError(
            f"{op}: the channels of x must be a multiple of ph * pw = {ph * pw} for output_size={output_size}, "
            f"got x with C={x.shape[1]} (shape {tuple(x.shape)})"
        )


class PsRoiPoolSaved(NamedTuple):
    planes: object  # (K, C_out, ph, pw) first flat index of each output's input plane
    bins: PoolBins
    area: object  # (K, ph, pw) cells per bin (1 for an empty bin, whose output is 0)
    x_shape: tuple
    dtype: numpy.dtype


def _ps_roi_pool_forward(x, rois, *, output_size, spatial_scale):
    xp = array_module(x)
    N, C, H, W = x.shape
    accumulate = accumulation_dtype(x.dtype)
    # torchvision's forward clips the bins to [0, H - 1] (its backward to [0, H]; see ps_roi_pool)
    bins = pool_bins(rois, output_size, spatial_scale, end_inclusive=False, clip_h=H - 1, clip_w=W - 1, op="ps_roi_pool")
    planes = _ps_channels(x.shape, output_size, bins.batch, xp)
    flat = x.reshape(-1).astype(accumulate, copy=False)
    total = xp.zeros(planes.shape, dtype=accumulate)
    for boxes, pixel, inside in pool_bin_cells(bins, W):
        value = xp.take(flat, select_boxes(planes, boxes, None) + pixel[:, None])
        value = xp.where(inside[:, None], value, accumulate.type(0))
        if boxes is None:
            total += value
        else:
            total[boxes] += value
    area = ((bins.h_end - bins.h_start)[:, :, None] * (bins.w_end - bins.w_start)[:, None, :]).clip(0)
    empty = area == 0
    area = xp.where(empty, 1, area).astype(accumulate)
    y = xp.where(empty[:, None], accumulate.type(0), total / area[:, None])
    return y.astype(x.dtype, copy=False), PsRoiPoolSaved(planes, bins, area, x.shape, x.dtype)


def _ps_roi_pool_backward(saved: PsRoiPoolSaved, grad_y):
    # the transpose of the forward: g / area to every cell of the bin (empty bins: nothing)
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    g = grad_y.astype(saved.area.dtype) / saved.area[:, None]
    total = xp.zeros(N * C * H * W, dtype=numpy.float64)
    for boxes, pixel, inside in pool_bin_cells(saved.bins, W):
        share = xp.where(inside[:, None], select_boxes(g, boxes, None), 0)
        index = select_boxes(saved.planes, boxes, None) + pixel[:, None]
        total += xp.bincount(index.reshape(-1), weights=share.reshape(-1).astype(numpy.float64), minlength=total.size)
    return total.reshape(saved.x_shape).astype(saved.dtype, copy=False), None


PS_ROI_POOL = define_function("ps_roi_pool", _ps_roi_pool_forward, _ps_roi_pool_backward)


def ps_roi_pool(x, boxes, output_size, spatial_scale=1.0):
    r"""Position-sensitive RoI average pooling (Dai et al. 2016, R-FCN), torchvision's rules.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W)
        ``C`` must be a multiple of ``ph * pw``.
    boxes : array, shape (K, 5); or list of arrays, shape (K_i, 4)
        As for :func:`roi_align`.
    output_size : int or (int, int)
        ``(ph, pw)``.
    spatial_scale : float

    Returns
    -------
    y : array or Tensor, shape (K, C // (ph * pw), ph, pw)

    Notes
    -----
    Output channel :math:`c` at bin :math:`(i, j)` averages input channel
    :math:`(c\, ph + i)\, pw + j` over the bin: each bin has its own score map. The bins are
    :func:`roi_pool`'s with two differences in torchvision's kernel: the box is not end-inclusive,
    :math:`roi_w = \max(x_2 - x_1, 1)`, and the forward clips bins to :math:`[0, W - 1]`, so the
    last row and column of the map are never read. With :math:`A` the bin's cells,

    .. math:: y_{kcij} = \frac{1}{|A|} \sum_{(h, w) \in A} x_{b_k,\,(c\,ph + i)\,pw + j,\,h,\,w}, \qquad
              \frac{\partial L}{\partial x_{b_k,(c\,ph+i)\,pw+j,h,w}} \mathrel{+}= \frac{1}{|A|}
              \frac{\partial L}{\partial y_{kcij}}

    and an empty bin outputs 0. torchvision's backward clips the bins to :math:`[0, W]` instead,
    so for a box reaching the last row or column its gradient is not the derivative of its forward;
    poolref's backward is the exact transpose of the forward.

    Examples
    --------
    Four input channels make one output channel of 2 x 2 bins; bin (i, j) reads channel 2i + j:

    >>> import numpy as np, poolref
    >>> x = np.arange(64.).reshape(1, 4, 4, 4)
    >>> poolref.ps_roi_pool(x, np.array([[0, 0, 0, 2, 2]]), 2)
    array([[[[ 0., 17.],
             [36., 53.]]]])
    """
    op = "ps_roi_pool"
    x, rois, size, scale = check_region_arguments(x, boxes, output_size, spatial_scale, op)
    _check_ps_channels(x, size, op)
    return apply(PS_ROI_POOL, x, rois, output_size=size, spatial_scale=scale)


class PsRoiAlignSaved(NamedTuple):
    matrix: SamplingMatrix  # (K*ph*pw, N*H*W*ph*pw): each bin's reads of its own score map
    count: object  # (K,) g_h * g_w, unguarded (0 gives torchvision's NaN)
    x_shape: tuple
    dtype: numpy.dtype


def _ps_roi_align_forward(x, rois, *, output_size, spatial_scale, sampling_ratio):
    xp = array_module(x)
    N, C, H, W = x.shape
    ph, pw = output_size
    bins = ph * pw
    c_out = C // bins
    K = rois.shape[0]
    accumulate = accumulation_dtype(x.dtype)
    geometry = align_geometry(rois, output_size, spatial_scale, sampling_ratio, 0.5, False)
    ay, ax = _align_axes(geometry, output_size, H, W)
    # Input channel (c * ph + i) * pw + j is score map c of bin (i, j). The table has one row per
    # pixel and bin, (b, h, w, bin), holding that bin's c_out score maps, so bin (i, j) of box k
    # reads column (b_k H W + h W + w) * ph * pw + i * pw + j, and y = A @ table is (K*ph*pw, c_out).
    table = xp.empty((N, H, W, bins, c_out), dtype=accumulate)
    table[...] = x.reshape(N, c_out, bins, H, W).transpose(0, 3, 4, 2, 1)
    bin_number = xp.arange(bins, dtype=numpy.int64).reshape(1, ph, pw)
    first = geometry.batch[:, None, None] * (H * W * bins) + bin_number  # (K, ph, pw)
    # this kernel reads nothing for a sample outside the image: exactly 0, even next to a NaN
    matrix = sampling_matrix(ay, ax, geometry, W, first, bins, N * H * W * bins, read_outside=False)
    with numpy.errstate(invalid="ignore"):  # 0 * inf: NaN, as in the kernel
        total = matrix.times(table.reshape(-1, c_out)).reshape(K, ph, pw, c_out)
    count = (geometry.grid_h * geometry.grid_w).astype(accumulate)
    with numpy.errstate(invalid="ignore", divide="ignore"):
        total /= count[:, None, None, None]  # no samples: torchvision's 0 / 0 = NaN
    y = xp.ascontiguousarray(xp.moveaxis(total, -1, 1)).astype(x.dtype, copy=False)
    return y, PsRoiAlignSaved(matrix, count, x.shape, x.dtype)


def _ps_roi_align_backward(saved: PsRoiAlignSaved, grad_y):
    # the transpose of the forward's matrix: grad_table = A.T @ (g / count)
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    K, c_out, ph, pw = grad_y.shape
    count = xp.where(saved.count == 0, 1, saved.count)  # a box without samples sends nothing anyway
    g = xp.empty((K, ph, pw, c_out), dtype=saved.count.dtype)  # channels-last, like the forward's rows
    g[...] = xp.moveaxis(grad_y, 1, -1)
    g /= count[:, None, None, None]
    with numpy.errstate(invalid="ignore"):
        grad_table = saved.matrix.transpose_times(g.reshape(-1, c_out))  # (N*H*W*ph*pw, c_out)
    grad_x = xp.empty(saved.x_shape, dtype=saved.dtype)
    with numpy.errstate(over="ignore"):  # a gradient beyond float16's range is inf (see cast_back)
        grad_x.reshape(N, c_out, ph * pw, H, W)[...] = grad_table.reshape(N, H, W, ph * pw, c_out).transpose(0, 4, 3, 1, 2)
    return grad_x, None


PS_ROI_ALIGN = define_function("ps_roi_align", _ps_roi_align_forward, _ps_roi_align_backward)


def ps_roi_align(x, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1):
    r"""Position-sensitive RoI Align: :func:`ps_roi_pool`'s channel layout with bilinear sampling.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W)
        ``C`` must be a multiple of ``ph * pw``.
    boxes : array, shape (K, 5); or list of arrays, shape (K_i, 4)
        As for :func:`roi_align`.
    output_size : int or (int, int)
        ``(ph, pw)``.
    spatial_scale : float
    sampling_ratio : int
        Sampling points per bin side; ``<= 0`` for ``ceil(roi_size / bins)`` per box.

    Returns
    -------
    y : array or Tensor, shape (K, C // (ph * pw), ph, pw)

    Notes
    -----
    torchvision's kernel uses :func:`roi_align`'s sampling with ``aligned=True`` always
    (``start = x_1 s - 0.5``) and no minimum box size, and divides by :math:`g_h g_w` itself, so a box
    without sampling points (``sampling_ratio <= 0`` and zero or negative size) outputs
    ``0 / 0 = NaN`` (``-0.0`` where the product is negative). Output channel :math:`c` at bin
    :math:`(i, j)` reads input channel :math:`c' = (c\, ph + i)\, pw + j`:

    .. math:: y_{kcij} = \frac{1}{g_h g_w} \sum_{a, b} \sum_{q=1}^{4} w_q\, x_{b_k c' q}, \qquad
              \frac{\partial L}{\partial x_{b_k c' q}} \mathrel{+}= \frac{w_q}{g_h g_w} \frac{\partial L}{\partial y_{kcij}}

    A sample outside the image contributes exactly 0 (this kernel reads nothing there) and receives
    nothing, forward and backward, even next to a NaN; otherwise a NaN or infinity reaches exactly
    the bins that read it (a weight-0 corner included). As for :func:`roi_align`, the op is a sparse
    matrix :math:`A` (one row per bin, one column per pixel and bin, so that each bin reads its own
    score maps) applied to the input, and its backward is :math:`A^T` applied to the output
    gradient.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.arange(64.).reshape(1, 4, 4, 4)
    >>> poolref.ps_roi_align(x, np.array([[0, 0, 0, 2, 2]]), 2, sampling_ratio=1)
    array([[[[ 0., 17.],
             [36., 53.]]]])
    """
    op = "ps_roi_align"
    x, rois, size, scale = check_region_arguments(x, boxes, output_size, spatial_scale, op)
    ratio = check_sampling_ratio(sampling_ratio, op)
    _check_ps_channels(x, size, op)
    return apply(PS_ROI_ALIGN, x, rois, output_size=size, spatial_scale=scale, sampling_ratio=ratio)


# ==================================================================================================
# Spatial pyramid pooling
# ==================================================================================================
class ConcatSaved(NamedTuple):
    sizes: tuple  # length of each part along the last axis


def _concat_forward(*parts):
    xp = array_module(*parts)
    return xp.concatenate(parts, axis=-1), ConcatSaved(tuple(p.shape[-1] for p in parts))


def _concat_backward(saved: ConcatSaved, grad):
    # the adjoint of a concatenation is the split
    edges = numpy.cumsum((0,) + saved.sizes)
    return tuple(grad[..., a:b] for a, b in zip(edges[:-1], edges[1:]))


SPP_CONCAT = define_function("spp_concat", _concat_forward, _concat_backward)


def _sppnet_geometry(spatial, n, op):
    """He et al.'s window ``ceil(L/n)`` and stride ``floor(L/n)``, checked to give ``n`` windows."""
    kernel = tuple(-(-L // n) for L in spatial)
    stride = tuple(L // n for L in spatial)
    for L, k, s in zip(spatial, kernel, stride):
        if s == 0 or (L - k) // s + 1 != n:
            raise ValueError(
                f"{op}: binning='sppnet' (window ceil(L/n) = {k}, stride floor(L/n) = {s}) gives "
                f"{0 if s == 0 else (L - k) // s + 1} windows, not n = {n}, on an axis of length L = {L}; "
                f"it needs L >= n and L mod n <= L div n (use binning='adaptive'), got levels with n={n} for x with spatial shape {tuple(spatial)}"
            )
    return pool_geometry(spatial, kernel, stride, 0, 1, False, "torch", op)


def spatial_pyramid_pool2d(x, levels=(1, 2, 4), mode="max", *, binning="adaptive"):
    r"""Spatial pyramid pooling (He et al. 2014, SPPnet): a fixed-length vector from any input size.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Feature map (integer dtypes allowed with ``mode="max"``).
    levels : sequence of int
        Bins per side of each pyramid level.
    mode : {"max", "avg"}
    binning : {"adaptive", "sppnet"}
        ``"adaptive"``: adaptive pooling's bins ``[floor(iL/n), ceil((i+1)L/n))`` (what PyTorch ports
        use); ``"sppnet"``: the paper's windows of ``ceil(L/n)`` with stride ``floor(L/n)``, which
        yield exactly ``n`` windows only when ``L mod n <= L div n`` (else a ValueError).

    Returns
    -------
    y : array or Tensor, shape (N, C * sum(n * n)) or (C * sum(n * n),)
        Levels in the order given; each level's (N, C, n, n) map flattened channel-major (channel,
        then bin row, then bin column), as SPPnet's Caffe model and common PyTorch ports flatten it.

    Notes
    -----
    Each level is :func:`~poolref.adaptive_max_pool2d` / :func:`~poolref.adaptive_avg_pool2d`
    (``"adaptive"``) or :func:`~poolref.max_pool2d` / :func:`~poolref.avg_pool2d` with kernel
    ``ceil(L/n)`` and stride ``floor(L/n)`` (``"sppnet"``), so ties, NaN and gradients are theirs:

    .. math:: y = \big[\operatorname{vec}(P_{n_1}(x)),\ \operatorname{vec}(P_{n_2}(x)),\ \dots\big], \qquad
              \frac{\partial L}{\partial x} = \sum_\ell P_{n_\ell}^{*}\big(\tfrac{\partial L}{\partial y}\big|_\ell\big)

    where :math:`P^*` is each level's backward (scatter to the argmax, or spread over the bin) applied
    to that level's slice of the output gradient. In average mode a NaN or an infinity stays in the
    bins that hold it, forward and backward (:math:`+\infty` with :math:`-\infty` gives NaN), as in
    PyTorch's ``adaptive_avg_pool2d``.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> poolref.spatial_pyramid_pool2d(x, levels=(1, 2))
    array([[15.,  5.,  7., 13., 15.]])
    >>> poolref.spatial_pyramid_pool2d(x, levels=(1, 2), mode="avg")
    array([[ 7.5,  2.5,  4.5, 10.5, 12.5]])
    """
    op = "spatial_pyramid_pool2d"
    if not isinstance(mode, str) or mode not in ("max", "avg"):
        raise ValueError(f"{op}: mode must be 'max' or 'avg', got mode={mode!r}")
    if not isinstance(binning, str) or binning not in ("adaptive", "sppnet"):
        raise ValueError(f"{op}: binning must be 'adaptive' or 'sppnet', got binning={binning!r}")
    if isinstance(levels, numbers.Integral) and not isinstance(levels, bool):
        levels = (levels,)
    if (not isinstance(levels, (tuple, list)) or not levels
            or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0 for n in levels)):
        raise ValueError(f"{op}: levels must be a non-empty sequence of positive ints, got levels={levels!r}")
    x = check_pool_input(x, 2, op, integer_ok=mode == "max")
    lead = tuple(x.shape[:-3])  # (N,) or ()
    spatial = tuple(x.shape[-2:])
    parts = []
    for n in (int(v) for v in levels):
        if binning == "adaptive":
            function = ADAPTIVE_MAX_POOL if mode == "max" else ADAPTIVE_AVG_POOL
            pooled = apply(function, x, output_size=(n, n))
        else:
            geometry = _sppnet_geometry(spatial, n, op)
            if mode == "max":
                pooled = apply(MAX_POOL, x, geometry=geometry, with_indices=False)
            else:
                pooled = apply(AVG_POOL, x, geometry=geometry, count_padding=True, divisor_override=None)
        if isinstance(pooled, tuple):  # adaptive max returns (values, indices)
            pooled = pooled[0]
        parts.append(pooled.reshape(lead + (-1,)))  # (N, C*n*n): channel, then bin row, bin column
    return apply(SPP_CONCAT, *parts)
