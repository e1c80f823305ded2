r"""DynOPool: a learnable resizing module (Jang et al., "Pooling Revisited", CVPR 2022).

A fixed 2 x 2 max pool halves a feature map whatever the data; DynOPool *learns* the factor. Its
parameter ``alpha = (alpha_h, alpha_w)`` says by how much each axis shrinks (``alpha = 2``: halve;
``alpha < 1``: enlarge). The exact definition is the section "The definition" of
``docs/dynopool.rst`` (the DynOPool page of the docs); the choices it makes where the paper is
silent are poolref's, and are marked as such there.

Along one axis of length ``L`` (the same rules hold for ``H`` with ``alpha_h`` and ``W`` with
``alpha_w``)::

    L_cont = L / alpha                         continuous output length
    O      = max(1, round(L_cont))             integer output length (round half to even)
    s      = L / O                             cell size
    u(i,a) = (i + 1/4 + a/2) * s - 1/2         two query rows per output row, a in {0, 1}

Output cell ``(i, j)`` reads the four query points ``(u(i,a), v(j,b))`` bilinearly (coordinates
clamped into the image; pixel ``k`` is centred at coordinate ``k``) and keeps their maximum (or
mean). With ``alpha = 2`` on an even axis the query points are exactly the pixels ``2i`` and
``2i + 1``, so DynOPool starts out as ``max_pool2d(x, 2)``.

The output length ``O`` is an integer, so the forward is piecewise constant in ``alpha``. Its
gradient is a *straight-through* surrogate: ``O`` takes the derivative of ``L_cont``,
``dO/dalpha = -L / alpha^2``, and so ``ds/dalpha = L^2 / (O^2 alpha^2)``.

Bilinear sampling on such a grid is separable: it is a gather of two rows (``floor(u)`` and the
next) followed by a gather of two columns. The forward does exactly that on the whole batch at
once; the backward to ``x`` is the transpose of each gather, a scatter-add of each line's gradient
onto the pixels it read.

A pixel is *read* by a query point where its bilinear weight is not zero: a point lying exactly on
a pixel reads that pixel only (so ``alpha = 2`` is ``max_pool2d(x, 2)`` even next to a NaN, an
infinity or a ``-0.``). The slope ``dq/du`` reads the two pixels of its forward difference, and is
exactly zero where the coordinate is clamped. Nothing else is ever multiplied, so a NaN or an
infinity reaches only the outputs and gradients that read it. The four points of a cell are reduced
by PyTorch's running max (:mod:`poolref._running_max`, rule ``torch``), the rule of ``max_pool2d``:
first of ties, a NaN wins and the last NaN is kept.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from .. import kernels
from .._backend import array_module, data_of, is_cupy_array, to_numpy
from .._checks import accumulation_dtype, check_element_count, check_flag, check_pool_input, is_int, is_real
from .._running_max import TORCH, RunningMax
from ..autograd.function import apply, define_function
from ..autograd.tensor import Tensor

__all__ = ["dynopool2d", "dynopool_output_size"]

AGGREGATES = ("max", "avg")


# ==================================================================================================
# Geometry of one axis: sizes and query coordinates (float64, shared by the forward and backward)
# ==================================================================================================
def dynopool_output_size(length: int, alpha: float) -> int:
    """Integer output length ``max(1, round(length / alpha))``, rounding half to even (``numpy.round``).

    ``length`` is a positive int and ``alpha`` a finite number > 0 (anything else is refused).

    >>> dynopool_output_size(32, 2.0), dynopool_output_size(8, 2.6), dynopool_output_size(5, 2.0)
    (16, 3, 2)
    """
    op = "dynopool_output_size"
    if not is_int(length):
        raise TypeError(f"{op}: length must be an int, got length={length!r}")
    if length < 1:
        raise ValueError(f"{op}: length must be at least 1, got length={length!r}")
    if not is_real(alpha):
        raise TypeError(f"{op}: alpha must be a real number, got alpha={alpha!r}")
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"{op}: alpha must be a finite number > 0, got alpha={alpha!r}")
    return max(1, int(numpy.round(length / alpha)))


class QueryAxis(NamedTuple):
    """The query coordinates of one axis and everything the backward needs about them.

    All arrays have one entry per query line, ``2 * out_length`` of them, in the order
    ``(i, a) = (0, 0), (0, 1), (1, 0), ...``.
    """

    length: int  # L, input length
    out_length: int  # O, integer output length
    alpha: float
    low: numpy.ndarray  # int: floor of the clamped coordinate, the first pixel read
    high: numpy.ndarray  # int: the next pixel (min(low + 1, L - 1); its weight is 0 at the last pixel)
    t: numpy.ndarray  # float64: weight of ``high``; ``low`` gets 1 - t
    inside: numpy.ndarray  # bool: 0 < u < L - 1, where d value / d u is not zero (borders count as outside)
    phase: numpy.ndarray  # float64: i + 1/4 + a/2 = d u / d s
    d_cell_d_alpha: float  # d s / d alpha = L^2 / (O^2 alpha^2) (straight-through O)


def query_axis(length: int, alpha: float) -> QueryAxis:
    """Query coordinates along one axis (see the module docstring)."""
    out_length = dynopool_output_size(length, alpha)
    cell = length / out_length
    i = numpy.arange(out_length, dtype=numpy.float64)
    phase = (i[:, None] + 0.25 + 0.5 * numpy.array([0.0, 1.0])[None, :]).reshape(-1)  # (2O,)
    u = phase * cell - 0.5
    clamped = numpy.clip(u, 0.0, length - 1.0)
    low = numpy.floor(clamped).astype(numpy.intp)
    high = numpy.minimum(low + 1, length - 1)
    t = clamped - low
    inside = (u > 0) & (u < length - 1)
    d_cell_d_alpha = (length / (out_length * alpha)) ** 2  # H^2 / (H_out^2 alpha^2), no alpha^2 to overflow
    return QueryAxis(length, out_length, alpha, low, high, t, inside, phase, d_cell_d_alpha)


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
# Forward and backward
# ==================================================================================================
class DynOPoolSaved(NamedTuple):
    x: object  # the input (N, C, H, W), in the accumulation dtype
    query_rows: object  # (N, C, 2Ho, W) the query rows of the array-code forward (None for the kernels)
    x_dtype: numpy.dtype
    alpha_dtype: numpy.dtype
    alpha_xp: object  # numpy or cupy: where alpha (and so its gradient) lives
    rows: QueryAxis
    columns: QueryAxis
    aggregate: str
    choice: object  # (N, C, Ho, Wo) int8: the winning query point a*2 + b ("max"), else None


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


def _backward_arrays(x, query_rows, grad_y, choice, rows: QueryAxis, columns: QueryAxis, aggregate: str, xp):
    """The backward in array code: ``grad_x`` and the sums ``sum G * dq/du * phase`` per axis.

    :func:`_backward_by_points` is the definition. Speed trick: where ``x`` and ``grad_y`` are
    finite, every product with a zero (a weight of 0, a 0/1 mask, a pixel nobody read) is exactly
    0, so the same sums can be taken with matrix products (:func:`_backward_by_matrices`, BLAS),
    several times faster; with a NaN or an infinity only the point-wise definition is exact.
    """
    if bool(xp.isfinite(x).all()) and bool(xp.isfinite(grad_y).all()):
        return _backward_by_matrices(x, query_rows, grad_y, choice, rows, columns, aggregate, xp)
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


def _uses_kernels(x) -> bool:
    """CuPy float32/float64 input runs the fused CUDA kernels; everything else the array code."""
    return is_cupy_array(x) and numpy.dtype(x.dtype) in kernels.KERNEL_DTYPES


def _dynopool_forward(x, alpha, *, aggregate: str):
    # x and alpha may live apart (x on the GPU, alpha on the host): y lives with x, alpha's gradient
    # with alpha, and nothing is moved between them
    xp = array_module(x)
    alpha_xp = array_module(alpha)
    H, W = x.shape[-2:]
    alpha_h, alpha_w = _alpha_values(alpha)
    rows, columns = query_axis(H, alpha_h), query_axis(W, alpha_w)
    xa = x.astype(accumulation_dtype(x.dtype), copy=False)
    if _uses_kernels(xa):
        y, choice = kernels.dynopool_forward(xp, xa, rows, columns, aggregate == "max")
        query_rows = None  # the fused kernels keep no query values
    else:
        y, choice, query_rows = _forward_arrays(xa, rows, columns, aggregate, xp)
    saved = DynOPoolSaved(xa, query_rows, x.dtype, alpha.dtype, alpha_xp, rows, columns, aggregate, choice)
    return y.astype(x.dtype, copy=False), saved


def _alpha_values(alpha) -> tuple[float, float]:
    """The two entries of ``alpha`` (numpy or cupy, shape (2,)) as Python floats."""
    return tuple(float(a) for a in alpha.reshape(2).tolist())


# forward   y_ij = max_ab q(u_ia, v_jb)  (or the mean), q the bilinear reading of x at the query point,
#           u_ia = (i + 1/4 + a/2) s_h - 1/2 with the cell size s_h = H / H_out (likewise v)
# backward  grad_x = R_h^T G R_w  (each point's gradient G back to the pixels it read, with its weights)
#           grad_alpha_h = sum_points G dq/du (i + 1/4 + a/2) * ds_h/dalpha_h  (straight-through cell size)
def _dynopool_backward(saved: DynOPoolSaved, grad_y):
    # grad_y lives with x (and y); grad_x goes back to x's module and grad_alpha to alpha's,
    # whichever device each is on
    xp = array_module(saved.x)
    rows, columns = saved.rows, saved.columns
    g = grad_y.astype(saved.x.dtype, copy=False)
    if _uses_kernels(saved.x):
        # sums: a float64 (2,) device array, left there (no synchronisation) unless alpha is on the host
        grad_x, sums = kernels.dynopool_backward(xp, saved.x, g, saved.choice, rows, columns, saved.aggregate == "max")
        if saved.alpha_xp is not xp:
            sums = to_numpy(sums)  # a host alpha gets a host gradient: this waits for the kernels
    else:
        grad_x, sums = _backward_arrays(saved.x, saved.query_rows, g, saved.choice, rows, columns, saved.aggregate, xp)
    grad_alpha = _alpha_gradient(saved, sums)
    return grad_x.astype(saved.x_dtype, copy=False), grad_alpha


def _alpha_gradient(saved: DynOPoolSaved, sums):
    """``d L / d alpha`` through the cell sizes, in alpha's array module: ``sum_u * ds_h/dalpha_h``
    (likewise w), with ``ds/dalpha`` the straight-through derivative of the cell size. (The returned
    output size has a gradient path of its own: :func:`straight_through_size`.)

    ``sums`` = (sum_u, sum_v): Python floats or a float64 array; computed in float64, elementwise.
    """
    alpha_xp, rows, columns = saved.alpha_xp, saved.rows, saved.columns
    sums = alpha_xp.asarray(sums, dtype=numpy.float64)
    d_cell_d_alpha = alpha_xp.asarray([rows.d_cell_d_alpha, columns.d_cell_d_alpha])
    return (sums * d_cell_d_alpha).astype(saved.alpha_dtype, copy=False)


DYNOPOOL = define_function("dynopool2d", _dynopool_forward, _dynopool_backward)


# ==================================================================================================
# The straight-through output size
# ==================================================================================================
# forward   O = size, the integer output size (max(1, round(L / alpha)), half to even), or
#           max(1, round(c)) of the continuous size c when no size is given
# backward  dL/dc := dL/dO: the straight-through estimator treats the rounding as the identity
def _straight_through_forward(continuous, *, size):
    xp = array_module(continuous)
    if size is None:
        return xp.maximum(xp.round(continuous), 1).astype(continuous.dtype), None
    return xp.asarray(size, dtype=continuous.dtype), None


def _straight_through_backward(saved, grad_size):
    return (grad_size,)


STRAIGHT_THROUGH_SIZE = define_function("straight_through_size", _straight_through_forward, _straight_through_backward)


def straight_through_size(continuous, size=None):
    r"""Round a continuous size to the integer size, letting the gradient through unchanged.

    Forward :math:`O = \max(1, \mathrm{round}(c))` (half to even), or ``size`` when given (the size an
    op actually produced, so that value and shape can never disagree); backward
    :math:`\partial \mathcal{L}/\partial c := \partial \mathcal{L}/\partial O`, the straight-through
    estimator: the rounding is treated as the identity. With :math:`c = L / \alpha` this is DynOPool's
    size gradient, :math:`\partial O / \partial \alpha := -L / \alpha^2`; ``dynopool2d(...,
    return_size=True)`` and :class:`poolref.nn.DynOPool` both take their size from here.

    >>> import numpy as np
    >>> straight_through_size(np.array([4.8, 2.5, 0.2]))
    array([5., 2., 1.])
    """
    return apply(STRAIGHT_THROUGH_SIZE, continuous, size=None if size is None else tuple(size))


def _check_alpha(alpha, op: str):
    """``alpha`` as a float array or Tensor of shape (2,) with finite entries > 0."""
    if not (hasattr(alpha, "shape") and hasattr(alpha, "dtype")):
        try:
            alpha = numpy.asarray(alpha, dtype=numpy.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{op}: alpha must be a float array of shape (2,), got alpha={alpha!r}") from None
    if numpy.dtype(alpha.dtype).kind != "f":
        raise TypeError(f"{op}: alpha must be a float array of shape (2,), got alpha with dtype {alpha.dtype}")
    if tuple(alpha.shape) != (2,):
        raise ValueError(f"{op}: alpha must have shape (2,) = (alpha_h, alpha_w), got alpha with shape {tuple(alpha.shape)}")
    values = _alpha_values(data_of(alpha))
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{op}: alpha must be finite and > 0, got alpha={list(values)}")
    return alpha


def dynopool2d(x, alpha, *, aggregate="max", return_size=False):
    r"""DynOPool: resize ``x`` by a learnable factor ``1 / alpha`` per axis (Jang et al. 2022).

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (C, H, W)
        Floating-point input.
    alpha : array or Tensor, shape (2,)
        ``(alpha_h, alpha_w)``, finite and > 0: the output is about ``H / alpha_h`` by
        ``W / alpha_w``. A Tensor that requires a gradient gets the straight-through gradient.
    aggregate : {"max", "avg"}
        How the four query points of an output cell combine: their maximum (the paper's), with
        PyTorch's running max over the points in the order (0,0), (0,1), (1,0), (1,1) (ties go to the
        first, a NaN wins and the last NaN is kept, as in ``max_pool2d``; :ref:`max-rules`), or their
        mean.
    return_size : bool
        Also return the output size ``(H_out, W_out)`` as a float array or Tensor of shape (2,),
        whose gradient is the straight-through one, ``d H_out / d alpha_h = -H / alpha_h^2``: chain
        it into the next DynOPool's size or a complexity loss (:func:`poolref.nn.gmacs_loss`).

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out)
        ``H_out = max(1, round(H / alpha_h))`` (half to even), likewise ``W_out``.
    size : array or Tensor, shape (2,)
        Only with ``return_size=True``.

    Notes
    -----
    With cell sizes :math:`s_h = H / H_{out}`, :math:`s_w = W / W_{out}`, output cell
    :math:`(i, j)` reads the query points

    .. math:: u_{ia} = (i + \tfrac14 + \tfrac{a}{2}) s_h - \tfrac12, \qquad
              v_{jb} = (j + \tfrac14 + \tfrac{b}{2}) s_w - \tfrac12, \qquad a, b \in \{0, 1\}

    bilinearly, :math:`q_{ab} = \sum_{k,l} r_k(u_{ia})\, r_l(v_{jb})\, x_{kl}` with the tent weights
    :math:`r` of the coordinate clamped into the image (a pixel of weight 0 is not read: a point on a
    pixel reads that pixel only), and outputs
    :math:`y_{ij} = \max_{ab} q_{ab}` (or the mean). Backward: the gradient of :math:`y_{ij}` goes
    to the chosen query point (a quarter to each for the mean) and from there to its four pixels with
    the bilinear weights, :math:`\partial L/\partial x = R_h^\top G R_w` with :math:`R` the
    (2 H_out, H) interpolation matrix; and to alpha,

    .. math:: \frac{\partial L}{\partial \alpha_h} = \frac{H^2}{H_{out}^2 \alpha_h^2}
              \sum_{\text{points}} G_{ia,jb}\, \frac{\partial q}{\partial u_{ia}}\,
              (i + \tfrac14 + \tfrac{a}{2})

    where :math:`\partial q / \partial u` is the bilinear slope :math:`x_{k+1} - x_k` (zero where
    the coordinate lies on or beyond the border). Piecewise constant in alpha, the forward has no
    useful derivative there: this is a straight-through surrogate (see the DynOPool docs page).

    Examples
    --------
    ``alpha = (2, 2)`` on an even map is a 2 x 2 max pool:

    >>> import numpy as np, poolref
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> poolref.dynopool2d(x, np.array([2.0, 2.0]))
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> y, size = poolref.dynopool2d(x, np.array([1.5, 3.0]), return_size=True)
    >>> y.shape, size
    ((1, 1, 3, 1), array([3., 1.]))
    """
    op = "dynopool2d"
    x = check_pool_input(x, 2, op, integer_ok=False)
    alpha = _check_alpha(alpha, op)
    # the query points (N, C, 2 H_out, 2 W_out) are the largest array: refuse an absurd alpha at once
    sizes = [dynopool_output_size(length, a) for length, a in zip(x.shape[-2:], _alpha_values(data_of(alpha)))]
    check_element_count(4 * math.prod(x.shape[:-2]) * sizes[0] * sizes[1], "alpha", _alpha_values(data_of(alpha)), op,
                        "the query points")
    if aggregate not in AGGREGATES:
        raise ValueError(f"{op}: aggregate must be 'max' or 'avg', got aggregate={aggregate!r}")
    return_size = check_flag(return_size, "return_size", op)
    y = apply(DYNOPOOL, x, alpha, aggregate=aggregate)
    if not return_size:
        return y
    # the size: round(L / alpha) with the straight-through gradient, on the tape like any op
    lengths = array_module(alpha).asarray([float(v) for v in x.shape[-2:]], dtype=alpha.dtype)
    size = straight_through_size(lengths / alpha, size=y.shape[-2:])
    if isinstance(y, Tensor) and not isinstance(size, Tensor):
        size = Tensor(size)  # Tensors in, Tensors out
    return y, size
