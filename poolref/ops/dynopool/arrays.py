r"""DynOPool's array code: the forward as two gathers and a reduction, the backward as their
transposes, for every plane at once, in cache-sized blocks of planes.

The CUDA kernels (:mod:`poolref.kernels`) compute the same thing on CuPy float32/float64 input;
:mod:`poolref.ops.dynopool` chooses between the two and registers the forward/backward pair.
"""

from __future__ import annotations

import numpy

from ..._backend import batch_blocks
from ..._running_max import TORCH, RunningMax
from ..._windows import as_planes
from .geometry import QueryAxis


# ==================================================================================================
# Reading along one axis: the gather of the query lines, its adjoint, the slopes
# ==================================================================================================
def _interpolation_matrix(axis: QueryAxis, dtype, xp):
    """(2O, L) matrix ``R`` with ``R[q, low_q] += 1 - t_q`` and ``R[q, high_q] += t_q``: the gather as a matrix."""
    matrix = numpy.zeros((axis.low.size, axis.length))
    rows = numpy.arange(axis.low.size)
    numpy.add.at(matrix, (rows, axis.low), 1.0 - axis.t)
    numpy.add.at(matrix, (rows, axis.high), axis.t)
    return xp.asarray(matrix, dtype=dtype)


def _slope_matrix(axis: QueryAxis, dtype, xp):
    """(2O, L) matrix ``D`` of d(query line)/du: ``-1`` at ``low``, ``+1`` at ``high``, 0 on the border."""
    matrix = numpy.zeros((axis.low.size, axis.length))
    rows = numpy.arange(axis.low.size)
    inside = axis.inside.astype(numpy.float64)
    numpy.add.at(matrix, (rows, axis.low), -inside)
    numpy.add.at(matrix, (rows, axis.high), inside)
    return xp.asarray(matrix, dtype=dtype)


def _along(values, dim: int, ndim: int):
    """A per-line (2O,) array shaped to broadcast along dimension ``dim`` of an ``ndim``-d array."""
    shape = [1] * ndim
    shape[dim] = values.size
    return values.reshape(shape)


def _gather(x, axis: QueryAxis, dim: int, xp):
    """Blend along ``dim`` (-2: rows, -1: columns): query line q is ``(1 - t_q) x[low_q] + t_q x[high_q]``.

    Where ``t_q == 0`` the line lies on pixel ``low_q`` and is exactly ``x[low_q]``: ``x[high_q]``
    is not read (a NaN or infinity there would otherwise be multiplied by 0, and ``-0.`` would
    become ``+0.``). A gather, not a product with the interpolation matrix: a NaN or infinity reaches
    only the query lines that read it.
    """
    lines = xp.take(x, xp.asarray(axis.low), axis=dim)
    t = axis.t.astype(x.dtype)  # (2O,) host weights, as rounded to x's dtype
    reads_high = t != 0
    if not reads_high.any():
        return lines
    weight = xp.asarray(_along(t, dim, x.ndim))
    with numpy.errstate(invalid="ignore", over="ignore"):  # inf * 0 where t = 0: replaced just below
        blended = lines * (1 - weight) + xp.take(x, xp.asarray(axis.high), axis=dim) * weight
    if reads_high.all():
        return blended
    return xp.where(xp.asarray(_along(reads_high, dim, x.ndim)), blended, lines)


def _gather_adjoint(grad_lines, axis: QueryAxis, dim: int, xp):
    """Transpose of :func:`_gather` along ``dim``: (.., 2O, ..) -> (.., L, ..).

    Line q's gradient goes back to the pixels it read, with the weights it read them with:
    ``x[low_q] += (1 - t_q) g_q`` and, where ``t_q != 0``, ``x[high_q] += t_q g_q``. A scatter-add
    (lines share pixels), so an infinite or NaN gradient reaches only the pixels its line read.
    """
    dtype = grad_lines.dtype
    t = axis.t.astype(dtype)  # the weights as _gather used them
    moved = xp.moveaxis(grad_lines, dim, -1)  # (.., 2O)
    lead = moved.shape[:-1]
    flat = moved.reshape(-1, t.size)  # (R, 2O), one row per line of lines
    row_start = (xp.arange(flat.shape[0], dtype=numpy.int64) * axis.length)[:, None]  # (R, 1)
    total = xp.zeros(flat.shape[0] * axis.length, dtype=dtype)
    with numpy.errstate(invalid="ignore", over="ignore"):  # inf * (1 - t), inf + -inf: on purpose
        xp.add.at(total, (row_start + xp.asarray(axis.low)).ravel(), (flat * xp.asarray(1 - t)).ravel())
        reads_high = numpy.flatnonzero(t != 0)  # the lines that read their high pixel
        if reads_high.size:
            high_share = flat[:, reads_high] * xp.asarray(t[reads_high])
            xp.add.at(total, (row_start + xp.asarray(axis.high[reads_high])).ravel(), high_share.ravel())
    return xp.moveaxis(total.reshape(lead + (axis.length,)), -1, dim)


def _slopes(lines_source, axis: QueryAxis, dim: int, xp):
    """The forward difference ``x[high_q] - x[low_q]`` of every query line along ``dim``, and exactly
    0 where the coordinate is clamped (on or beyond the border the value does not depend on it)."""
    with numpy.errstate(invalid="ignore", over="ignore"):  # inf - inf: NaN, on purpose
        difference = xp.take(lines_source, xp.asarray(axis.high), axis=dim) - xp.take(lines_source, xp.asarray(axis.low), axis=dim)
    return xp.where(xp.asarray(_along(axis.inside, dim, lines_source.ndim)), difference, 0)


def _points(query):
    """The four query points of every cell as strided views: (..., 2Ho, 2Wo) -> [(..., Ho, Wo)] * 4.

    Point ``a*2 + b`` of cell (i, j) is ``query[..., 2i + a, 2j + b]``; no copy is made.
    """
    *lead, two_h, two_w = query.shape
    cells = query.reshape(*lead, two_h // 2, 2, two_w // 2, 2)  # (..., i, a, j, b)
    return [cells[..., a, :, b] for a in (0, 1) for b in (0, 1)]


def _running_max_of_points(points, xp):
    """PyTorch's running max over the four points (poolref._running_max.TORCH), as max_pool2d's.

    Returns the maximum and ``choice``, the number ``a*2 + b`` of the point holding it: ties go to the
    first point, a NaN wins and the last NaN is kept.
    """
    scan = RunningMax(TORCH, points[0].shape, points[0].dtype, xp, taps=4, first_tap=0)
    for number, value in enumerate(points):
        scan.add(value, number)
    choice = scan.winner

    def read_at_winner():
        best = points[0].copy()
        for number in (1, 2, 3):
            xp.copyto(best, points[number], where=choice == number)
        return best

    return scan.values(read_at_winner), choice

# ==================================================================================================
# Forward and backward of a block of planes, and the blocks
# ==================================================================================================
def _forward_arrays(x, rows: QueryAxis, columns: QueryAxis, aggregate: str, xp):
    """The forward in array code: gather the query rows, then the query columns, then reduce each cell.

    Returns ``y``, ``choice`` (the winning point per cell for "max", else None) and the query rows
    ``(N, C, 2Ho, W)``, which the backward reuses.
    """
    query_rows = _gather(x, rows, -2, xp)  # (N, C, 2Ho, W)
    with numpy.errstate(invalid="ignore", over="ignore"):
        points = _points(_gather(query_rows, columns, -1, xp))  # 4 x (N, C, Ho, Wo)
        if aggregate == "max":
            y, choice = _running_max_of_points(points, xp)
            return y, choice, query_rows
        y = ((points[0] + points[1]) + points[2]) + points[3]
    y /= 4  # the mean of the four, summed in order (as the CUDA kernel does)
    return y, None, query_rows


def _backward_arrays(x, x_is_finite: bool, grad_y, choice, rows: QueryAxis, columns: QueryAxis, aggregate: str, xp):
    """The backward in array code: ``grad_x`` and the sums ``sum G * dq/du * phase`` per axis.

    :func:`_backward_by_points` is the definition. Speed trick: where ``x`` and ``grad_y`` are
    finite, every product with a zero (a weight of 0, a 0/1 mask, a pixel nobody read) is exactly
    0, so the same sums can be taken with matrix products (:func:`_backward_by_matrices`, BLAS),
    several times faster, and in cache-sized blocks of planes (:func:`_backward_in_blocks`); with a
    NaN or an infinity only the point-wise definition is exact. The choice is made for the whole
    batch, so that the blocks never change which of the two computes a plane's gradient.
    """
    if x_is_finite and bool(xp.isfinite(grad_y).all()):
        return _backward_in_blocks(x, grad_y, choice, rows, columns, aggregate, xp)
    query_rows = _gather(x, rows, -2, xp)  # (N, C, 2Ho, W), as the forward made them
    return _backward_by_points(x, query_rows, grad_y, choice, rows, columns, aggregate, xp)


def _backward_by_points(x, query_rows, grad_y, choice, rows: QueryAxis, columns: QueryAxis, aggregate: str, xp):
    """The backward point by point (all points at once), exact for NaN and infinities.

    ``G`` (N, C, 2Ho, 2Wo) is the gradient of every query point: the chosen point's is ``grad_y``
    (the others get none), or a quarter of it each for "avg". Then::

        grad_x = the transpose of the two gathers applied to G
                 (each point's gradient goes back to the pixels it read, with their weights)
        sum_u  = sum over the points with a gradient of  G * dq/du * phase_h
        sum_v  = sum over the points with a gradient of  G * dq/dv * phase_w

    with ``dq/du`` the bilinear slope at the point (zero where its coordinate is clamped). Only the
    points the forward read and that receive a gradient enter these sums: no ``0 * NaN`` from a
    pixel nobody read, or from a point that was not chosen.
    """
    dtype = x.dtype
    *lead, out_h, out_w = grad_y.shape
    grad_query = xp.zeros((*lead, 2 * out_h, 2 * out_w), dtype=dtype)  # (N, C, 2Ho, 2Wo)
    receives = None  # every point receives a gradient ("avg")
    if aggregate == "max":
        receives = xp.zeros(grad_query.shape, dtype=bool)
        for number, (grad_point, gets) in enumerate(zip(_points(grad_query), _points(receives))):
            xp.equal(choice, number, out=gets)  # views: writing them fills receives and grad_query
            xp.copyto(grad_point, grad_y, where=gets)  # selected, not multiplied by a 0/1 mask
    else:
        for grad_point in _points(grad_query):
            xp.divide(grad_y, 4, out=grad_point)

    grad_x = _gather_adjoint(_gather_adjoint(grad_query, columns, -1, xp), rows, -2, xp)  # (N, C, H, W)

    # alpha: the slope of every query point along each axis, read like its value
    d_query_d_u = _gather(_slopes(x, rows, -2, xp), columns, -1, xp)  # (N, C, 2Ho, 2Wo)
    d_query_d_v = _slopes(query_rows, columns, -1, xp)  # (N, C, 2Ho, 2Wo)
    sums = []
    for slope, phase, dim in ((d_query_d_u, rows.phase, -2), (d_query_d_v, columns.phase, -1)):
        with numpy.errstate(invalid="ignore", over="ignore"):  # NaN and infinities flow through
            term = grad_query * slope  # (N, C, 2Ho, 2Wo), in x's dtype as in the kernel
            if receives is not None:
                term = xp.where(receives, term, 0)  # the other points' 0 * slope may be 0 * NaN
            # summed in float64 per query line, then weighted by the line's phase
            per_line = term.sum(axis=tuple(a for a in range(term.ndim) if a != term.ndim + dim), dtype=numpy.float64)
            sums.append(float(per_line @ xp.asarray(phase)))
    return grad_x, tuple(sums)


def _backward_by_matrices(x, query_rows, grad_y, choice, rows: QueryAxis, columns: QueryAxis, aggregate: str, xp):
    """The same backward with matrix products, exact only where ``x`` and ``grad_y`` are finite.

    With ``R`` the (2O, L) interpolation matrices and ``D`` the slope matrices of each axis (per
    plane; everything is batched over N and C)::

        query   Q = R_h x R_w^T          grad_x = R_h^T G R_w
        dQ/du     = D_h x R_w^T          sum_u  = sum_qk phase_h[q] D_h[q, k] M_h[q, k],  M_h = (G R_w) x^T
        dQ/dv     = R_h x D_w^T          sum_v  = sum_ql phase_w[q] D_w[q, l] M_w[q, l],  M_w = G^T (R_h x)

    summed over N and C: the trace identities ``sum(G * (D A)) = sum(D * (G A^T))`` move the slope
    matrices out of the big products, so only (2O, L) matrices are left to weigh.
    """
    dtype = x.dtype
    *lead, out_h, out_w = grad_y.shape
    grad_query = xp.zeros((*lead, 2 * out_h, 2 * out_w), dtype=dtype)  # (N, C, 2Ho, 2Wo)
    for number, grad_point in enumerate(_points(grad_query)):  # views: writing them fills grad_query
        if aggregate == "max":
            xp.multiply(grad_y, choice == number, out=grad_point)  # finite: the product selects
        else:
            xp.divide(grad_y, 4, out=grad_point)

    R_h = _interpolation_matrix(rows, dtype, xp)  # (2Ho, H)
    R_w = _interpolation_matrix(columns, dtype, xp)  # (2Wo, W)
    grad_query_rows = xp.matmul(grad_query, R_w)  # (N, C, 2Ho, W): G R_w
    grad_x = xp.matmul(R_h.T, grad_query_rows)  # (N, C, H, W): R_h^T G R_w

    # alpha: the slope terms, contracted over the batch into (2O, L) matrices
    M_h = xp.matmul(grad_query_rows, x.swapaxes(-1, -2)).sum(axis=tuple(range(x.ndim - 2)), dtype=numpy.float64)
    M_w = xp.matmul(grad_query.swapaxes(-1, -2), query_rows).sum(axis=tuple(range(x.ndim - 2)), dtype=numpy.float64)
    phase_h = xp.asarray(rows.phase)[:, None]
    phase_w = xp.asarray(columns.phase)[:, None]
    sum_u = float((phase_h * _slope_matrix(rows, numpy.float64, xp) * M_h).sum())
    sum_v = float((phase_w * _slope_matrix(columns, numpy.float64, xp) * M_w).sum())
    return grad_x, (sum_u, sum_v)


def _plane_bytes(rows: QueryAxis, columns: QueryAxis, itemsize: int) -> int:
    """About how many bytes the array code touches per plane (for batch_blocks): the plane and its
    gradient, the query rows and their gradient, the query points and their gradient, the output,
    and the (2O, L) products of the alpha terms."""
    H, W, query_h, query_w = rows.length, columns.length, rows.low.size, columns.low.size
    return itemsize * (2 * H * W + 3 * query_h * W + 3 * query_h * query_w + query_h * H + query_w * W)


def _forward_in_blocks(x, rows: QueryAxis, columns: QueryAxis, aggregate: str, xp):
    """:func:`_forward_arrays` on cache-sized blocks of planes: ``y``, ``choice`` (or None) and
    whether ``x`` is finite.

    A speed trick (poolref._backend.batch_blocks): every plane is resized on its own, so a block's
    values are those of the whole batch, bit for bit; but its query rows and points stay in the
    cache between the passes over them, where the whole batch's would stream through main memory.
    The query rows are not kept for the backward: it finds them again, block by block, from ``x``.
    """
    planes = as_planes(x, 2)  # (P, H, W)
    y = xp.empty(planes.shape[:1] + (rows.out_length, columns.out_length), dtype=x.dtype)  # (P, Ho, Wo)
    choices = []  # per block (B, Ho, Wo), "max" only
    finite = True
    for block in batch_blocks(planes.shape[0], _plane_bytes(rows, columns, x.dtype.itemsize), like=x):
        y[block], choice, _ = _forward_arrays(planes[block], rows, columns, aggregate, xp)
        choices.append(choice)
        finite = finite and bool(xp.isfinite(planes[block]).all())  # read while the block is in the cache
    lead = x.shape[:-2]
    choice = None
    if aggregate == "max":
        choice = (choices[0] if len(choices) == 1 else xp.concatenate(choices)).reshape(lead + y.shape[1:])
    return y.reshape(lead + y.shape[1:]), choice, finite


def _backward_in_blocks(x, grad_y, choice, rows: QueryAxis, columns: QueryAxis, aggregate: str, xp):
    """:func:`_backward_by_matrices` on cache-sized blocks of planes (the speed trick of
    :func:`_forward_in_blocks`): ``grad_x`` and the two alpha sums, added over the blocks.

    Each plane's gradient is that of the whole batch, bit for bit; the alpha sums are float64 sums
    over the planes taken block by block, which may round differently in their last bits.
    """
    planes, grad_planes = as_planes(x, 2), as_planes(grad_y, 2)  # (P, H, W), (P, Ho, Wo)
    choice_planes = None if choice is None else as_planes(choice, 2)
    grad_x = xp.empty(planes.shape, dtype=x.dtype)  # (P, H, W)
    sum_u = sum_v = 0.0
    for block in batch_blocks(planes.shape[0], _plane_bytes(rows, columns, x.dtype.itemsize), like=x):
        query_rows = _gather(planes[block], rows, -2, xp)  # (B, 2Ho, W), as the forward made them
        block_choice = None if choice_planes is None else choice_planes[block]
        grad_x[block], (u, v) = _backward_by_matrices(planes[block], query_rows, grad_planes[block], block_choice,
                                                      rows, columns, aggregate, xp)
        sum_u, sum_v = sum_u + u, sum_v + v
    return grad_x.reshape(x.shape), (sum_u, sum_v)
