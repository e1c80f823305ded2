r"""The averaging align ops as one sparse matrix: the weights their forward applies and their backward
transposes.

RoI Align's average mode, position-sensitive RoI Align and deformable RoI pooling (for given offsets)
are linear in ``x``: every bin is a weighted sum of the pixels its samples' corners read,

.. math:: y_r = \sum_{(m, w) \in \mathrm{reads}(r)} w\, t_m, \qquad
          \frac{\partial L}{\partial t_m} \mathrel{+}= w\, \frac{\partial L}{\partial y_r}

with ``t`` the input as a channels-last table (one row of channels per pixel). Speed: instead of
looping over the reads, the forward lays every bin's weights out once, as the rows of a sparse
matrix ``A`` (:func:`sampling_matrix`), and computes ``y = A @ t``; the backward is the transpose of
the same matrix, ``grad_t = A.T @ grad_y`` (:class:`SamplingMatrix`): the adjoint of a linear map,
which written out is the scatter-add of every corner's share ``w * g`` into the pixel it read (save
for the weight-0 reads torchvision's forward makes for samples outside the image, which its backward
skips: they matter only to NaN and infinities).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from ..._backend import array_module, sparse_csr
from ..._sampling_torchvision import AxisTaps, bilinear_taps, select_boxes
from .boxes import AlignGeometry, has_nonfinite

__all__ = ["SamplingMatrix", "sampling_matrix"]


class SamplingMatrix(NamedTuple):
    r"""An averaging align op, which is linear in ``x``, as a sparse matrix :math:`A`.

    Row ``r`` is one output bin ``(k, i, j)`` (boxes, then bin rows, then bin columns); column ``m``
    is one row of a channels-last table of the input (one row of channels per pixel, see
    :func:`~poolref.ops.region.boxes.channels_last_table`). Row ``r`` holds the bilinear weight of
    every corner of every sample of its bin, so that, before the division by the number of samples,

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
        As for :func:`~poolref._sampling_torchvision.bilinear_taps`: every bin's sampling points and
        their corners.
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
