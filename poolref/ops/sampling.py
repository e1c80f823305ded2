r"""Bilinear sampling and interpolation: the fixed resizes (``grid_sample``, ``interpolate``).

These are the resizes a network uses when the output size is fixed in advance; DynOPool learns it
instead. Both follow PyTorch's rules exactly (SEMANTICS.md section 9); ``interpolate`` also those of
``tf.image.resize`` and ``jax.image.resize`` (``convention=``).

``grid_sample`` reads ``x`` at arbitrary points. A grid coordinate ``g`` in ``[-1, 1]`` becomes a
pixel coordinate ``i`` (``align_corners=False``: ``-1`` and ``1`` are the outer edges of the corner
pixels, ``i = (g + 1) * L/2 - 1/2``; ``True``: they are the corner pixel centres,
``i = (g + 1) * (L - 1)/2``), the padding mode maps ``i`` back into the image where needed (``border``
clamps it, ``reflection`` reflects it off the edges and then clamps it), and the value is the bilinear
blend of the four pixels around ``i`` (pixels outside the image read 0) or the nearest pixel.

For a fixed grid, sampling is linear in ``x``: every output point is a weighted sum of a few pixels.
So the forward builds that linear map once as a sparse matrix ``S`` with one row per output point
and one column per pixel, row ``p`` holding point ``p``'s four bilinear weights (or a single 1 for
nearest) in the columns of the pixels it reads, and computes ``y = S @ image``, where ``image`` is a
channels-last copy of ``x`` (one row of channels per pixel) inside a zero frame, so that no corner
needs a bounds test. The backward to ``x`` is then the transpose of the same matrix,
``grad_image = S.T @ grad_y``: this is the adjoint relationship ``<grad_y, S x> = <S.T grad_y, x>``
that every linear op's backward obeys, and written out it is a scatter-add of each point's gradient,
times its weights, into the pixels it read (zero weights included: 0 * inf is NaN there, as in
PyTorch). The gradient to the grid is the derivative of the bilinear weights, written as PyTorch
writes it (differences of neighbouring pixels), times the derivative of the coordinate map.

``interpolate`` resizes to a given size. Every mode is separable: along each spatial axis, output
``o`` reads a few input positions with weights (one for nearest, two for linear, a window for
antialiased and area resizing), so the forward gathers and weighs along one axis at a time and the
backward gathers along the same axes with the transposed tables: for each input position, the outputs
that read it. Which taps are read, and with which weights, is each framework's own rule, kept in
:mod:`poolref._sampling_weights` (``convention=`` picks PyTorch's, TensorFlow's or JAX's); only the
taps a framework reads are ever read, so a NaN or an infinity spreads exactly as far as it does there.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from .. import _sampling_weights as weights
from .._backend import Scratch, array_module, batch_blocks, sparse_rows, take_rows
from .._checks import accumulation_dtype, as_array, check_element_count, check_flag, check_pool_input, is_int, is_real
from .._geometry import check_convention
from ..autograd.function import apply, define_function
from ..autograd.tensor import Tensor
from .adaptive import ADAPTIVE_AVG_POOL

__all__ = ["grid_sample", "interpolate"]

GRID_MODES = ("bilinear", "nearest")
PADDING_MODES = ("zeros", "border", "reflection")
INTERPOLATE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area")
LINEAR_MODES = {"linear": 1, "bilinear": 2, "trilinear": 3}  # mode -> number of spatial dims

# The zero frame around the channels-last copy of x in grid_sample: a bilinear cell's top-left
# corner is clamped to [-2, L], so that both of its corners lie in the frame whenever it is off the
# image, and it and its right/lower neighbour are always addressable.
FRAME = 2


# ==================================================================================================
# grid_sample: coordinates
# ==================================================================================================
def _reflect(coord, size: int, align_corners: bool, xp):
    """Reflect pixel coordinates off the image edges; return them and the sign of d reflected / d coord.

    ``align_corners=True`` reflects off the corner pixel centres ``0`` and ``L - 1``, ``False`` off the
    outer edges ``-1/2`` and ``L - 1/2``. With ``low`` the lower edge and ``span`` the distance between
    the edges, ``t = |coord - low| mod 2*span`` and the result is ``low + min(t, 2*span - t)``; the
    sign is ``-1`` where exactly one of "coord was below low" and "took the far branch" holds.
    """
    low, twice_span = (0.0, 2 * (size - 1)) if align_corners else (-0.5, 2 * size)
    if twice_span == 0:  # a single pixel with aligned corners: everything reflects onto it
        return xp.zeros_like(coord), xp.zeros_like(coord)
    dtype = coord.dtype.type
    shifted = coord - dtype(low) if low else coord
    below = shifted < 0
    distance = xp.abs(shifted)
    # distance mod 2*span, as PyTorch computes it (trunc, not fmod: the rounding differs)
    extra = distance - xp.trunc(distance / dtype(twice_span)) * dtype(twice_span)
    far = dtype(twice_span) - extra
    flip = extra > far
    reflected = xp.where(flip, far, extra)
    if low:
        reflected = reflected + dtype(low)
    sign = xp.where(flip ^ below, dtype(-1), dtype(1))
    return reflected, sign


def _source_coordinate(g, size: int, padding_mode: str, align_corners: bool, xp):
    """Pixel coordinate of normalized grid coordinates ``g`` along an axis of ``size`` pixels.

    Returns ``(coord, slope)``, both shaped like ``g``: ``slope = d coord / d g``, which is ``L/2`` or
    ``(L - 1)/2``, times ``-1`` where a reflection flipped it, times ``0`` where border or reflection
    padding clamped the coordinate. The clamp limits themselves count as clamped (PyTorch: "borders
    are considered out of bounds"), so the slope is 0 at exactly ``0`` and ``L - 1``.
    """
    dtype = g.dtype.type
    if align_corners:
        scale = dtype((size - 1) / 2)
        coord = (g + dtype(1)) * scale
    else:
        scale = dtype(size / 2)
        coord = (g + dtype(1)) * scale - dtype(0.5)
    slope = xp.full(g.shape, scale, dtype=g.dtype)
    if padding_mode == "reflection":
        coord, sign = _reflect(coord, size, align_corners, xp)
        slope *= sign
    if padding_mode in ("border", "reflection"):
        inside = (coord > 0) & (coord < size - 1)
        coord = xp.clip(coord, dtype(0), dtype(size - 1))
        slope *= inside
    return coord, slope


#: channels moved together by _copy_to_channels_last
CHANNEL_GROUP = 8


def _copy_to_channels_last(x, out, window=(Ellipsis,), scratch=None):
    """``out[n, *window, c] = x[n, c]``: copy x (N, C, *S) into ``out`` (N, *S', C), contiguous, at ``window``.

    Speed trick; the math is just this copy. Copied in one step, NumPy walks ``out`` in memory
    order and so reads ``x`` a whole plane apart at every element, one element per cache line (3 to 4
    times slower than a plain copy here). Instead the channels move in groups of 8: first into a
    buffer laid out (N, C/8, *S, 8), then from there into ``out``; each of the two copies reads 8 or
    C/8 rows in step, which the cache holds. Values are copied, never computed (float16 is widened
    to ``out``'s dtype exactly).
    """
    xp = array_module(x)
    N, C = x.shape[:2]
    spatial = tuple(x.shape[2:])
    group = math.gcd(C, CHANNEL_GROUP)
    groups = C // group
    shape = (N, groups) + spatial + (group,)  # (N, C/8, *S, 8)
    buffer = xp.empty(shape, dtype=out.dtype) if scratch is None else scratch.empty("channel groups", shape, out.dtype)
    buffer[...] = xp.moveaxis(x.reshape((N, groups, group) + spatial), 2, -1)
    # out split into (.., C/8, 8): a view, since out is contiguous; then the window of each plane
    grouped = out.reshape(out.shape[:-1] + (groups, group))[(slice(None),) + tuple(window)]  # (N, *S, C/8, 8)
    grouped[...] = xp.moveaxis(buffer, 1, -2)


def _cells(col, row, H: int, W: int, xp):
    """Cell numbers in the framed (H + 4, W + 4) plane of integer-valued pixel coordinates (N, ..) -> (N, P).

    Coordinates are clamped to ``[-FRAME, L]`` first: anything further out reads the zero frame as
    well, and the clamp keeps ``col + 1`` and ``row + 1`` inside the framed plane.
    """
    col = xp.clip(col, -FRAME, W).astype(numpy.intp) + FRAME
    row = xp.clip(row, -FRAME, H).astype(numpy.intp) + FRAME
    return (row * (W + 2 * FRAME) + col).reshape(col.shape[0], math.prod(col.shape[1:]))


def _image_rows(cells, plane: int, xp):
    """(N, P) cells of each batch's plane -> (N*P,) rows of the framed channels-last image."""
    N = cells.shape[0]
    return (cells + xp.arange(N, dtype=numpy.intp).reshape(N, 1) * plane).reshape(-1)


# ==================================================================================================
# grid_sample: forward and backward
# ==================================================================================================
class GridSampleBlock(NamedTuple):
    """What the backward needs of one block of samples (``B`` of them, ``P`` points each)."""

    samples: slice  # which samples of the batch
    sampling: object  # sparse (B*P, B*(H+4)*(W+4)): row p holds point p's weights at the pixels it reads
    image: object  # (B*(H+4)*(W+4), C) framed channels-last copy of x (bilinear: the grid gradient)
    fractions: tuple  # (wx, wy): (B*P,) fractional parts of the coordinates (bilinear only)
    slopes: tuple  # (d ix/d gx, d iy/d gy), each (B*P,) (bilinear only)


class GridSampleSaved(NamedTuple):
    mode: str
    x_shape: tuple
    x_dtype: numpy.dtype
    grid_dtype: numpy.dtype
    blocks: tuple  # one GridSampleBlock per block of samples


def _corner_offsets(W: int) -> tuple:
    """Offsets, from a bilinear point's top-left corner, of the cells of its four corners in the
    framed plane: top-left, top-right, bottom-left, bottom-right (a row of the plane is W + 4 long)."""
    row_length = W + 2 * FRAME
    return (0, 1, row_length, row_length + 1)


def _sample_bytes(x_shape, grid_shape, dtype) -> int:
    """About how many bytes grid_sample touches per sample, forward or backward (for batch_blocks):
    the framed image and its gradient, and per point its C values, gradients and four corners."""
    _, C, H, W = x_shape
    points = grid_shape[1] * grid_shape[2]
    return numpy.dtype(dtype).itemsize * C * (2 * (H + 2 * FRAME) * (W + 2 * FRAME) + 8 * points)


def _grid_sample_forward(x, grid, *, mode: str, padding_mode: str, align_corners: bool):
    # Each sample is sampled on its own: the samples go through in cache-sized blocks (a speed
    # trick, poolref._backend.batch_blocks), each block its own sparse matrix, which changes no value.
    xp = array_module(x, grid)
    N, C, H, W = x.shape
    _, H_out, W_out, _ = grid.shape
    accumulate = accumulation_dtype(x.dtype)
    out = xp.empty((N, C, H_out, W_out), dtype=x.dtype)
    # the image channels-last, one row of channels per pixel, in a zero frame: (N, H + 4, W + 4, C),
    # filled block by block (allocated once: each block keeps its part for the backward)
    framed = xp.zeros((N, H + 2 * FRAME, W + 2 * FRAME, C), dtype=accumulate)
    interior = (slice(FRAME, FRAME + H), slice(FRAME, FRAME + W))
    blocks = []
    scratch = Scratch(xp)  # the blocks' temporary buffer, allocated once
    for samples in batch_blocks(N, _sample_bytes(x.shape, grid.shape, accumulate), like=x):
        _copy_to_channels_last(x[samples], framed[samples], interior, scratch=scratch)
        out[samples], block = _grid_sample_block(framed[samples], grid[samples], mode, padding_mode, align_corners)
        blocks.append(block._replace(samples=samples))
    return out, GridSampleSaved(mode, x.shape, x.dtype, grid.dtype, tuple(blocks))


def _grid_sample_block(framed, grid, mode: str, padding_mode: str, align_corners: bool):
    """grid_sample of a block of samples, given their framed channels-last image (N, H + 4, W + 4, C).

    Returns ``(y, GridSampleBlock)`` with y (N, C, H_out, W_out).
    """
    xp = array_module(framed, grid)
    N, H, W, C = framed.shape[0], framed.shape[1] - 2 * FRAME, framed.shape[2] - 2 * FRAME, framed.shape[3]
    _, H_out, W_out, _ = grid.shape
    P = H_out * W_out
    plane = (H + 2 * FRAME) * (W + 2 * FRAME)
    accumulate = framed.dtype
    image = framed.reshape(N * plane, C)  # one row of channels per pixel
    ix, slope_x = _source_coordinate(grid[..., 0].astype(accumulate), W, padding_mode, align_corners, xp)
    iy, slope_y = _source_coordinate(grid[..., 1].astype(accumulate), H, padding_mode, align_corners, xp)
    if mode == "nearest":
        # PyTorch rounds half to even (nearbyint), as rint does
        cells = _cells(xp.rint(ix), xp.rint(iy), H, W, xp)
        columns = _image_rows(cells, plane, xp).reshape(N * P, 1)  # the one pixel each point reads
        corner_weights = xp.ones((N * P, 1), dtype=accumulate)
    else:
        left, _, wx = weights.linear_point_taps(ix, xp)
        top, _, wy = weights.linear_point_taps(iy, xp)
        wx, wy = wx.reshape(-1), wy.reshape(-1)  # (N*P,) weights of the right / lower pixels
        cells = _cells(left, top, H, W, xp)
        offsets = xp.asarray(_corner_offsets(W), dtype=numpy.intp)
        columns = _image_rows(cells, plane, xp).reshape(N * P, 1) + offsets  # (N*P, 4): tl, tr, bl, br
        corner_weights = xp.empty((N * P, 4), dtype=accumulate)
        corner_weights[:, 0] = (1 - wy) * (1 - wx)
        corner_weights[:, 1] = (1 - wy) * wx
        corner_weights[:, 2] = wy * (1 - wx)
        corner_weights[:, 3] = wy * wx
    # The whole op is one sparse matrix S: y[p] = sum_k corner_weights[p, k] * image[columns[p, k]]. The
    # product adds each row's terms in the order tl, tr, bl, br, in the accumulation dtype (float32
    # for float16 input); zero weights stay stored, so a NaN or infinite corner makes the point NaN
    # even at weight 0, as PyTorch's weighted sum does.
    sampling = sparse_rows(corner_weights, columns, N * plane, columns.shape[1])  # (N*P, N*plane)
    if mode == "nearest":
        # a single 1 per row: S @ image is a plain gather of rows, which take does faster
        y = xp.take(image, columns[:, 0], axis=0)  # (N*P, C)
        block = GridSampleBlock(slice(None), sampling, None, (), ())
    else:
        y = sampling @ image  # (N*P, C)
        block = GridSampleBlock(slice(None), sampling, image, (wx, wy), (slope_x.reshape(-1), slope_y.reshape(-1)))
    return y.reshape(N, H_out, W_out, C).transpose(0, 3, 1, 2), block  # back to channels-first


def _grid_sample_backward(saved: GridSampleSaved, grad_y):
    # Block by block of samples, as the forward (each block's gradients are those of its samples).
    xp = array_module(grad_y)
    grad_x = xp.empty(saved.x_shape, dtype=saved.x_dtype)  # (N, C, H, W)
    grad_grid = xp.empty(grad_y.shape[:1] + grad_y.shape[2:] + (2,), dtype=saved.grid_dtype)  # (N, H_out, W_out, 2)
    scratch = Scratch(xp)  # the blocks' large temporaries, allocated once
    for block in saved.blocks:
        grad_x[block.samples], grad_grid[block.samples] = _grid_sample_block_backward(saved, block, grad_y[block.samples], scratch)
    return grad_x, grad_grid


def _grid_sample_block_backward(saved: GridSampleSaved, block: GridSampleBlock, grad_y, scratch: Scratch):
    """The gradients to x (N, C, H, W) and to the grid (N, H_out, W_out, 2) of one block of samples."""
    xp = array_module(grad_y)
    N, C, H, W = grad_y.shape[:2] + saved.x_shape[2:]
    P = grad_y.shape[2] * grad_y.shape[3]
    accumulate = accumulation_dtype(saved.x_dtype)
    g_points = scratch.empty("g_points", (N, P, C), accumulate)  # channels-last, one row per point like y
    _copy_to_channels_last(grad_y.reshape(N, C, P), g_points, scratch=scratch)
    g_points = g_points.reshape(N * P, C)

    # d/dx: the forward is the linear map y = S @ image, so the backward is its adjoint, the
    # transpose of the same matrix: grad_image = S.T @ g. Written out, that is a scatter-add: every
    # point hands its gradient, times each weight, to the pixel it read with that weight (pixel q
    # sums column q of S times g). Accumulated in the accumulation dtype; the frame is cut off.
    grad_image = block.sampling.T @ g_points  # (N*plane, C)
    framed = grad_image.reshape(N, H + 2 * FRAME, W + 2 * FRAME, C)
    grad_x = framed[:, FRAME:FRAME + H, FRAME:FRAME + W, :].transpose(0, 3, 1, 2)  # (N, C, H, W) view

    # d/dgrid: zero for nearest (piecewise constant). For bilinear, differentiate the weights: with
    # v the corner values (0 off the image) and g the gradient, summed over channels,
    #   d/dix = sum_c g_c [(v_tr - v_tl)(1 - wy) + (v_br - v_bl) wy]_c,
    #   d/diy = sum_c g_c [(v_bl - v_tl)(1 - wx) + (v_br - v_tr) wx]_c,
    # in PyTorch's form (differences of neighbours, not four separate products: where the two agree
    # mathematically, only this form gives exactly 0, and so exactly PyTorch's NaN for an infinite
    # gradient times it); then times the slope d ix/d gx of the coordinate map.
    if saved.mode == "nearest":
        return grad_x, xp.zeros(grad_y.shape[:1] + grad_y.shape[2:] + (2,), dtype=saved.grid_dtype)
    wx, wy = block.fractions
    slope_x, slope_y = block.slopes
    columns = block.sampling.indices.astype(numpy.intp, copy=False)  # (N*P*4,) cells read: tl, tr, bl, br
    corners = take_rows(block.image, columns, scratch.empty("corners", (N * P * 4, C), accumulate)).reshape(N * P, 4, C)
    tl, tr, bl, br = corners[:, 0], corners[:, 1], corners[:, 2], corners[:, 3]  # (N*P, C) each
    grad_grid = xp.empty((N * P, 2), dtype=saved.grid_dtype)
    with numpy.errstate(invalid="ignore", over="ignore"):  # inf - inf, 0 * inf: NaN, as in PyTorch
        # along_x = (tr - tl) * (1 - wy) + (br - bl) * wy, and along_y likewise, computed in place
        # (a speed trick: the same operations in the same order, in two reused buffers, not six new)
        along_x = _weighted_difference(tr, tl, 1 - wy, out=scratch.empty("along", (N * P, C), accumulate))
        other = _weighted_difference(br, bl, wy, out=scratch.empty("other", (N * P, C), accumulate))
        along_x += other
        grad_grid[:, 0] = xp.einsum("pc,pc->p", along_x, g_points) * slope_x
        along_y, other = _weighted_difference(bl, tl, 1 - wx, out=along_x), _weighted_difference(br, tr, wx, out=other)
        along_y += other
        grad_grid[:, 1] = xp.einsum("pc,pc->p", along_y, g_points) * slope_y
    return grad_x, grad_grid.reshape(grad_y.shape[:1] + grad_y.shape[2:] + (2,))


def _weighted_difference(a, b, weight, out=None):
    """``(a - b) * weight[:, None]`` for (P, C) ``a`` and ``b`` and (P,) ``weight``, into ``out`` if given."""
    xp = array_module(a)
    difference = xp.subtract(a, b, out=out)
    return xp.multiply(difference, weight[:, None], out=difference)


GRID_SAMPLE = define_function("grid_sample", _grid_sample_forward, _grid_sample_backward)


def _check_choice(value, name: str, allowed, op: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{op}: {name} must be one of {', '.join(map(repr, allowed))}, got {name}={value!r}")
    return value


def _check_align_corners(align_corners, op: str) -> bool:
    return check_flag(align_corners, "align_corners", op)


def grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    r"""Sample ``x`` at the points of ``grid`` (bilinear or nearest), as PyTorch's ``grid_sample``.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W)
        Floating-point input.
    grid : array or Tensor, shape (N, H_out, W_out, 2)
        Sampling points ``(gx, gy)``, normalized: ``-1`` is the left/top edge of the image and ``1``
        the right/bottom edge. Same dtype as ``x``. Values outside ``[-1, 1]`` are allowed; NaN and
        infinity are not.
    mode : {"bilinear", "nearest"}
    padding_mode : {"zeros", "border", "reflection"}
        What a point off the image reads: 0, the nearest edge pixel (the coordinate is clamped), or
        the image reflected off its edges (then clamped).
    align_corners : bool
        True: ``-1`` and ``1`` are the centres of the corner pixels; False: their outer edges.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out)
        In the dtype of ``x``. Gradients flow to ``x`` and to ``grid``.

    Notes
    -----
    Along an axis of :math:`L` pixels a grid coordinate :math:`g` becomes the pixel coordinate

    .. math:: i = \frac{(g + 1) L - 1}{2} \ \ (\text{align\_corners=False}), \qquad
              i = \frac{(g + 1)(L - 1)}{2} \ \ (\text{True}),

    then ``border`` clamps :math:`i` to :math:`[0, L - 1]`, and ``reflection`` first reflects it
    off the edges (:math:`-1/2` and :math:`L - 1/2`, or :math:`0` and :math:`L - 1` with aligned
    corners) and then clamps it. With :math:`x_0 = \lfloor i_x \rfloor`,
    :math:`w_x = i_x - x_0` and likewise along y, bilinear sampling is

    .. math:: y = (1 - w_y)(1 - w_x)\, v_{00} + (1 - w_y) w_x\, v_{01}
                  + w_y (1 - w_x)\, v_{10} + w_y w_x\, v_{11},

    :math:`v_{ab} = x[y_0 + a, x_0 + b]`, a pixel outside the image reading 0; nearest sampling
    reads :math:`x[\mathrm{rint}(i_y), \mathrm{rint}(i_x)]` (halves round to even, as PyTorch's
    ``nearbyint``). Backward: each corner receives its weight times :math:`\partial L/\partial y`,
    and

    .. math:: \frac{\partial L}{\partial g_x} = \frac{\partial i_x}{\partial g_x} \sum_c
              \frac{\partial L}{\partial y_c} \left[(1 - w_y)(v_{01} - v_{00})
              + w_y (v_{11} - v_{10})\right]_c

    (likewise for :math:`g_y`), where :math:`\partial i_x / \partial g_x` is :math:`L/2` or
    :math:`(L - 1)/2`, negated where a reflection flipped the coordinate and 0 where padding clamped
    it; the clamp limits :math:`0` and :math:`L - 1` themselves count as clamped. The grid gradient
    of nearest sampling is 0.

    For a fixed grid the forward is a sparse matrix :math:`S` (one row per output point, its
    weights in the columns of the pixels it reads) applied to the pixels, :math:`y = S x`, and the
    gradient to ``x`` is its transpose, :math:`S^T \partial L/\partial y`. In bilinear mode a NaN
    pixel makes every point that has it among its four corners NaN, even where its weight is 0, and
    an infinite pixel makes such a point infinite, or NaN where its weight is 0
    (:math:`0 \cdot \infty` is NaN); the grid gradient there follows suit, as in PyTorch.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.arange(4.).reshape(1, 1, 2, 2)
    >>> grid = np.array([[[[0., 0.], [-0.5, -0.5], [-1., -1.]]]])  # centre, pixel (0, 0), corner
    >>> poolref.grid_sample(x, grid)
    array([[[[1.5, 0. , 0. ]]]])
    >>> poolref.grid_sample(x, grid, align_corners=True)
    array([[[[1.5 , 0.75, 0.  ]]]])
    """
    op = "grid_sample"
    x = check_pool_input(x, 2, op, integer_ok=False)
    if x.ndim != 4:
        raise ValueError(f"{op}: x must have shape (N, C, H, W), got x with shape {tuple(x.shape)}")
    if not (hasattr(grid, "shape") and hasattr(grid, "dtype")):
        grid = numpy.asarray(grid)
    if grid.ndim != 4 or grid.shape[0] != x.shape[0] or grid.shape[3] != 2:
        raise ValueError(
            f"{op}: grid must have shape (N, H_out, W_out, 2) with N = {x.shape[0]} as in x, "
            f"got grid with shape {tuple(grid.shape)}"
        )
    if numpy.dtype(grid.dtype) != numpy.dtype(x.dtype):
        raise TypeError(f"{op}: grid must have the dtype of x ({numpy.dtype(x.dtype)}), got grid with dtype {numpy.dtype(grid.dtype)}")
    # the output (N, C, H_out, W_out) is C times the grid's points: refuse an absurd one before allocating
    check_element_count(x.shape[1] * math.prod(grid.shape[:-1]), "grid.shape", tuple(grid.shape), op,
                        f"the output ({x.shape[1]} channels at each grid point)")
    _check_choice(mode, "mode", GRID_MODES, op)
    _check_choice(padding_mode, "padding_mode", PADDING_MODES, op)
    align_corners = _check_align_corners(False if align_corners is None else align_corners, op)
    grid_data = grid.data if isinstance(grid, Tensor) else grid
    xp = array_module(grid_data)
    if grid_data.size and not bool(xp.isfinite(grid_data).all()):
        bad = int((~xp.isfinite(grid_data)).sum())
        raise ValueError(f"{op}: grid must be finite, got grid with {bad} NaN or infinite values")
    return apply(GRID_SAMPLE, x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)


# ==================================================================================================
# interpolate: which taps each axis reads, per framework
# ==================================================================================================
class AxisPlan(NamedTuple):
    """How one spatial axis is resized: the forward's table and the table the gradient is read with.

    ``forward`` is a :class:`~poolref._sampling_weights.Taps`, a
    :class:`~poolref._sampling_weights.Lerp` (TensorFlow's bilinear) or None (the axis is copied);
    ``backward`` is a Taps (L, K) reading the upstream gradient, or None (copied). The backward is
    the transpose of the forward, except where a framework's backward reads other taps than its
    forward (PyTorch's antialiased and TensorFlow's bilinear backward resample axes their forward
    copies; TensorFlow's antialiased gradient has spans of its own).
    """

    forward: object
    backward: object


def _transposed(taps) -> AxisPlan:
    """A plan whose backward is the transpose of its forward (None: an identity axis)."""
    if taps is None:
        return AxisPlan(None, None)
    return AxisPlan(taps, taps.transpose())


def _weighs_as_copy(taps: weights.Taps) -> bool:
    """Whether each output o weighs its own position o by 1 and every other tap by 0."""
    on_self = taps.index == numpy.arange(taps.out_length)[:, None]
    read = numpy.ones(taps.index.shape, bool) if taps.read is None else taps.read
    weight = numpy.where(read, taps.weight, 0.0)
    return bool(numpy.all(numpy.where(on_self, weight, 0.0).sum(axis=1) == 1.0) and numpy.all(weight[~on_self] == 0.0))


def _is_identity(taps: weights.Taps) -> bool:
    """A one-tap table that reads position o for output o: a copy."""
    return (taps.index.shape[1] == 1 and taps.out_length == taps.length
            and bool((taps.index[:, 0] == numpy.arange(taps.length)).all()))


def resize_plan(in_shape, out_shape, mode: str, align_corners: bool, antialias: bool, convention: str,
                scale_factors, dtype) -> tuple[tuple[AxisPlan, ...], tuple[int, ...]]:
    """Per spatial axis an :class:`AxisPlan`, and the order in which the axes are resized.

    The rules are the frameworks' own (poolref._sampling_weights). The order follows each
    framework's loops (the last axis first, except TensorFlow's antialiased resize, which resamples
    rows before columns); it changes only the rounding, except for TensorFlow's bilinear form, whose
    NaNs depend on it.
    """
    n = len(in_shape)
    last_first = tuple(reversed(range(n)))
    plans = []
    if convention == "torch":
        for L, O, s in zip(in_shape, out_shape, scale_factors):
            if mode in ("nearest", "nearest-exact"):
                taps = weights.torch_nearest(L, O, s, exact=mode == "nearest-exact")
                plans.append(_transposed(None if _is_identity(taps) else taps))
            elif mode == "area":
                raise ValueError("resize_plan: PyTorch's area mode is adaptive average pooling (ADAPTIVE_AVG_POOL), not a resize")
            elif antialias:
                # PyTorch's forward copies an axis whose size does not change, and its backward
                # resamples that axis all the same. Where the resampling table is a copy too (weight 1
                # on the pixel itself, 0 elsewhere) that changes only where a NaN or an infinity meets
                # a zero weight, and poolref reads as PyTorch does; where it is not (a scale factor
                # other than 1: PyTorch's gradient is then not its forward's derivative, a known
                # defect of PyTorch, poolref.oracle.defects) the axis's gradient is the copy's.
                taps = weights.torch_antialias(L, O, align_corners, s, dtype)
                if O != L:
                    plans.append(_transposed(taps))
                else:
                    plans.append(AxisPlan(None, taps.transpose() if _weighs_as_copy(taps) else None))
            else:
                plans.append(_transposed(weights.torch_linear(L, O, align_corners, s, dtype)))
        return tuple(plans), last_first
    if convention == "tensorflow":
        if mode == "bilinear" and antialias:
            for L, O in zip(in_shape, out_shape):
                forward, backward = weights.tf_antialias(L, O)
                plans.append(AxisPlan(forward, backward))
            return tuple(plans), tuple(range(n))  # rows, then columns
        for L, O in zip(in_shape, out_shape):
            if mode in ("nearest", "nearest-exact"):
                taps = weights.tf_nearest(L, O, half_pixel=mode == "nearest-exact", align_corners=align_corners)
                plans.append(_transposed(None if _is_identity(taps) else taps))
            elif mode == "area":
                plans.append(_transposed(weights.tf_area(L, O, align_corners)))
            else:
                lerp = weights.tf_bilinear(L, O, align_corners)
                plans.append(AxisPlan(lerp, lerp.weighted().transpose()))
        if mode == "bilinear" and tuple(in_shape) == tuple(out_shape):
            # ResizeBilinear copies an image whose size does not change; its gradient does not
            plans = [AxisPlan(None, plan.backward) for plan in plans]
        return tuple(plans), last_first
    # jax: axes whose size does not change are left alone (jax.image.resize skips them)
    for L, O in zip(in_shape, out_shape):
        if O == L:
            plans.append(AxisPlan(None, None))
        elif mode == "nearest-exact":
            plans.append(_transposed(weights.jax_nearest(L, O)))
        else:
            method = "area" if mode == "area" else "linear"
            plans.append(_transposed(weights.jax_dense(L, O, method, antialias, dtype)))
    return tuple(plans), last_first


# ==================================================================================================
# interpolate: forward and backward
# ==================================================================================================
class InterpolateSaved(NamedTuple):
    plans: tuple  # per spatial axis: AxisPlan
    order: tuple  # the order in which the axes are resized
    dtype: numpy.dtype


def _interpolate_forward(x, *, mode: str, size: tuple, align_corners: bool, scale_factors: tuple,
                         antialias: bool, convention: str):
    xp = array_module(x)
    n = len(size)
    plans, order = resize_plan(x.shape[x.ndim - n:], size, mode, align_corners, antialias, convention,
                               scale_factors, x.dtype)
    # one axis at a time, (.., L_a, ..) -> (.., O_a, ..), each axis's taps gathered and weighed in
    # the accumulation dtype (float32 for float16), the result rounded once
    y = x.astype(accumulation_dtype(x.dtype), copy=False)
    for a in order:
        y = weights.resample(y, plans[a].forward, y.ndim - n + a)
    out = xp.empty(y.shape, dtype=x.dtype)
    out[...] = y
    return out, InterpolateSaved(plans, order, x.dtype)


def _interpolate_backward(saved: InterpolateSaved, grad_y):
    # forward:  y = A_1 A_2 ... A_n x, one (O_a, L_a) map per axis (separable);
    # backward: grad_x = A_n^T ... A_1^T grad_y, each transpose a gather table of its own (for each
    # input position, the outputs that read it, with their weights): the scatter-add of each
    # output's gradient onto exactly the taps the forward read, zero weights included (0 * inf is
    # NaN there, as in PyTorch), and onto no other. Where a framework's backward reads other taps
    # than its forward, the plan's backward table says so.
    n = len(saved.plans)
    grad = grad_y.astype(accumulation_dtype(saved.dtype), copy=False)
    for a in saved.order:
        grad = weights.resample(grad, saved.plans[a].backward, grad.ndim - n + a)
    xp = array_module(grad_y)
    grad_x = xp.empty(grad.shape, dtype=saved.dtype)
    grad_x[...] = grad
    return (grad_x,)


INTERPOLATE = define_function("interpolate", _interpolate_forward, _interpolate_backward)


# interpolate, like PyTorch's, has no unbatched form: said in every shape error, since an unbatched
# (C, H, W) image is read as a batch of 1-D signals (N, C, L) and fails only at the size
_BATCHED = ("; interpolate's x is always batched, (N, C, *spatial), as in PyTorch: "
            "a 3-D x is (N, C, L), so an unbatched (C, H, W) image needs a batch axis, x[None]")


def _output_size(x, n, size, scale_factor, recompute_scale_factor, op):
    """Resolve ``size`` / ``scale_factor`` into (output size, scale factors or Nones), PyTorch's way."""
    spatial = tuple(x.shape[x.ndim - n:])
    if size is not None and scale_factor is not None:
        raise ValueError(f"{op}: give only one of size and scale_factor, got size={size!r} and scale_factor={scale_factor!r}")
    if size is None and scale_factor is None:
        raise ValueError(f"{op}: give size or scale_factor, got size=None and scale_factor=None")
    recompute_scale_factor = check_flag(recompute_scale_factor, "recompute_scale_factor", op, none_ok=True)
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit size, got size={size!r} and recompute_scale_factor=True")
        if isinstance(size, (tuple, list)):
            if len(size) != n:
                raise ValueError(f"{op}: size must have one entry per spatial dimension ({n} for x with shape {tuple(x.shape)}), got size={size!r}{_BATCHED}")
            if not all(is_int(v) for v in size):
                raise TypeError(f"{op}: size must be an int or a sequence of {n} ints, got size={size!r}")
            out = tuple(int(v) for v in size)
        elif is_int(size):
            out = (int(size),) * n
        else:
            raise TypeError(f"{op}: size must be an int or a sequence of {n} ints, got size={size!r}")
        if any(v < 1 for v in out):
            raise ValueError(f"{op}: size must be positive, got size={size!r}")
        _check_output_count(x, out, "size", size, op)
        return out, (None,) * n
    if isinstance(scale_factor, (tuple, list)):
        if len(scale_factor) != n:
            raise ValueError(f"{op}: scale_factor must have one entry per spatial dimension ({n} for x with shape {tuple(x.shape)}), got scale_factor={scale_factor!r}{_BATCHED}")
        factors = tuple(scale_factor)
    else:
        factors = (scale_factor,) * n
    if not all(is_real(s) for s in factors):
        raise TypeError(f"{op}: scale_factor must be a number or a sequence of {n} numbers, got scale_factor={scale_factor!r}")
    factors = tuple(float(s) for s in factors)
    if not all(math.isfinite(s) and s > 0 for s in factors):
        raise ValueError(f"{op}: scale_factor must be finite and > 0, got scale_factor={scale_factor!r}")
    out = tuple(math.floor(L * s) for L, s in zip(spatial, factors))  # in float64, as PyTorch
    if any(v < 1 for v in out):
        raise ValueError(
            f"{op}: scale_factor={scale_factor!r} gives an empty output for x with shape {tuple(x.shape)} "
            f"(output size floor(L * scale_factor) = {out})"
        )
    _check_output_count(x, out, "scale_factor", scale_factor, op)
    return out, ((None,) * n if recompute_scale_factor else factors)


def _check_output_count(x, out, name, value, op):
    """Refuse an output (N, C, *out) beyond MAX_ELEMENTS at once (PyTorch refuses it at allocation)."""
    batch = math.prod(x.shape[: x.ndim - len(out)])
    shown = tuple(v if v < 10**15 else float(v) for v in out)  # 1e300 rather than 301 digits
    check_element_count(batch * math.prod(out), name, value, op, f"the output (spatial size {shown})")


RESIZE_CONVENTIONS = ("torch", "tensorflow", "jax")
# What each convention calls its modes (poolref's names: "nearest" reads the left edge, floor(o L/O),
# "nearest-exact" the pixel centre, floor((o + 1/2) L/O), in every convention)
CONVENTION_MODES = {
    "torch": INTERPOLATE_MODES,
    "tensorflow": ("nearest", "nearest-exact", "bilinear", "area"),
    "jax": ("nearest-exact", "linear", "bilinear", "trilinear", "area"),
}
DEFAULT_ANTIALIAS = {"torch": False, "tensorflow": False, "jax": True}


def _check_convention_mode(mode, convention, align_corners, antialias, x, op):
    """Refuse, with the reason, what the chosen framework's resize does not have."""
    if mode not in CONVENTION_MODES[convention]:
        if convention == "jax" and mode == "nearest":
            reason = "jax.image.resize's 'nearest' reads pixel centres: that is mode='nearest-exact'"
        elif convention == "tensorflow":
            reason = "tf.image.resize is 2-D: its linear mode is 'bilinear'"
        else:
            reason = f"its modes are {', '.join(map(repr, CONVENTION_MODES[convention]))}"
        raise ValueError(f"{op}: convention={convention!r} has no mode={mode!r} ({reason})")
    if convention == "torch":
        if antialias and (mode != "bilinear"):
            raise ValueError(f"{op}: antialias=True is defined for mode='bilinear' (and 'bicubic') on 4-D input only, as in PyTorch, got mode={mode!r}")
        return
    if convention == "tensorflow":
        if x.ndim != 4:
            raise ValueError(f"{op}: convention='tensorflow' resizes 2-D images only (tf.image.resize), got x with shape {tuple(x.shape)}")
        if align_corners and mode == "nearest-exact":
            raise ValueError(f"{op}: TensorFlow's half-pixel nearest has no align_corners (ResizeNearestNeighbor refuses both), got align_corners=True with mode='nearest-exact'")
        if align_corners and antialias and mode == "bilinear":
            raise ValueError(f"{op}: tf.compat.v1.image.resize_bilinear(align_corners=True) has no antialias, got align_corners=True and antialias=True")
        return
    if align_corners:
        raise ValueError(f"{op}: jax.image.resize has no align_corners, got align_corners=True")


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, *, recompute_scale_factor=None,
                antialias=None, convention="torch"):
    r"""Resize ``x`` to a given size or by a scale factor, as PyTorch's ``interpolate`` (or as
    ``tf.image.resize`` / ``jax.image.resize`` with ``convention=``).

    Parameters
    ----------
    x : array or Tensor, shape (N, C, L), (N, C, H, W) or (N, C, D, H, W)
        Floating-point input; always batched (as PyTorch: a 3-D input is (N, C, L)). ``linear``
        needs (N, C, L), ``bilinear`` (N, C, H, W), ``trilinear`` (N, C, D, H, W).
    size : int or tuple of int, optional
        Output spatial size.
    scale_factor : float or tuple of float, optional
        Multiplier of each spatial size: the output size is :math:`\lfloor L \cdot s \rfloor`.
        Exactly one of ``size`` and ``scale_factor`` is given (``convention="torch"`` only).
    mode : {"nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area"}
        "bicubic" is not implemented yet.
    align_corners : bool, optional
        Linear modes only (default False): True maps the corner pixel centres onto each other.
        With ``convention="tensorflow"`` it selects the legacy ``tf.compat.v1`` ops (also for
        ``mode="nearest"`` and ``"area"``).
    recompute_scale_factor : bool, optional
        With ``scale_factor``: True derives the scale from the sizes (``L/O``) instead of using
        ``1/scale_factor``.
    antialias : bool, optional
        Widen the linear kernel by the downsampling factor (a triangle filter). None means the
        convention's default: False for "torch" and "tensorflow", True for "jax". PyTorch has it
        for ``bilinear`` only; TensorFlow and JAX ignore it for ``nearest`` and ``area``, and so
        does poolref under their conventions.
    convention : {"torch", "tensorflow", "jax"}
        Whose resize rules: ``torch.nn.functional.interpolate``, ``tf.image.resize`` (2-D only,
        ``size`` only) or ``jax.image.resize`` (``size`` only), including which taps each reads
        where values are NaN or infinite (see Notes and docs/ops/sampling.rst).

    Returns
    -------
    y : array or Tensor, shape ``(N, C, *size)``
        In the dtype of ``x``.

    Notes
    -----
    Separable: along each axis output :math:`o` reads a few positions with weights,
    :math:`y_o = \sum_k w_{o,k} \, x_{i_{o,k}}`, and the axes are resized one after the other
    (the weights of an n-linear tap multiply). With PyTorch's scale :math:`s = L/O`, or
    :math:`1/\mathrm{scale\_factor}` when a scale factor was given (unless
    ``recompute_scale_factor``):

    * ``nearest`` reads :math:`\lfloor o\,s \rfloor`, ``nearest-exact``
      :math:`\lfloor (o + 1/2)\,s \rfloor`, both capped at :math:`L - 1` and computed in float32
      as PyTorch does (:func:`~poolref._sampling_weights.nearest_indices`);
    * linear modes read :math:`c = \max(s (o + 1/2) - 1/2, 0)`, or :math:`c = o (L - 1)/(O - 1)`
      with ``align_corners``, blending :math:`i_0 = \lfloor c \rfloor` (``floorf``) with weight
      :math:`1 - (c - i_0)` and :math:`i_0 + 1` (or :math:`i_0` again at the last pixel) with
      weight :math:`c - i_0`; an axis with :math:`O = L` reads :math:`x_o` with weight 1 and
      again with weight 0 (:func:`~poolref._sampling_weights.torch_linear`);
    * ``antialias=True`` (bilinear): output :math:`o` averages the window
      :math:`|i + 1/2 - s(o + 1/2)| < \max(s, 1)` with triangle weights
      :math:`1 - |i + 1/2 - s(o + 1/2)|/\max(s, 1)`, normalized
      (:func:`~poolref._sampling_weights.torch_antialias`);
    * ``area`` is adaptive average pooling, as in PyTorch (whose ``interpolate`` calls
      ``adaptive_avg_pool{1,2,3}d``): poolref calls :func:`~poolref.adaptive_avg_pool2d`'s forward and
      backward too, so the two agree to the bit. Output :math:`o` is the mean of its box of bins
      :math:`[\lfloor oL/O \rfloor, \lceil (o+1)L/O \rceil)`.

    ``convention="tensorflow"``: ``nearest-exact`` is ``tf.image.resize(method="nearest")``,
    ``bilinear`` is ``method="bilinear"`` (half-pixel centres, computed as
    :math:`a + (b - a) t`, columns then rows), ``area`` is ``method="area"`` (each input pixel
    weighted by the fraction of it the output pixel covers: any sizes), ``antialias=True`` with
    ``bilinear`` is TensorFlow's ``scale_and_translate`` triangle; ``align_corners=True`` selects
    ``tf.compat.v1.image.resize_bilinear(align_corners=True)`` (or ``resize_nearest_neighbor`` /
    ``resize_area`` with it), and ``mode="nearest"`` the legacy
    ``tf.compat.v1.image.resize_nearest_neighbor`` (:math:`\lfloor o s \rfloor`). Coordinates are
    float32 as in TensorFlow; the sums run in the accumulation dtype (TensorFlow's are float32
    whatever the input, and it returns float32 for ``bilinear`` and ``area``).

    ``convention="jax"``: ``nearest-exact`` is ``jax.image.resize(method="nearest")``, the linear
    modes ``"linear"`` and ``area`` ``"area"``, each a dense weight matrix per axis computed in
    float64 (as JAX with ``jax_enable_x64``), ``antialias`` True by default; axes whose size does
    not change are left alone.

    Backward, the transpose: :math:`\partial L/\partial x_i = \sum_{o,k:\, i_{o,k} = i} w_{o,k}
    \, \partial L/\partial y_o`, applied one axis at a time as a gather of exactly the taps the
    forward read (a NaN or infinite gradient reaches only those inputs, and a zero weight times an
    infinite gradient is NaN, as in the frameworks). Where a framework's backward reads other taps
    than its forward and the same derivative, poolref reads as it does: PyTorch's antialiased backward
    resamples axes whose size does not change (its forward copies them) with a table that is a copy
    too, TensorFlow's bilinear gradient does so too, and TensorFlow's antialiased gradient reads
    windows of its own. Where PyTorch's resampling of such an axis is not a copy (a scale factor
    other than 1), its gradient is not its forward's derivative; poolref returns the derivative. TensorFlow has no gradient for
    ``area`` (poolref returns the true one).

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.array([[[0., 2.]]])
    >>> poolref.interpolate(x, size=4)
    array([[[0., 0., 2., 2.]]])
    >>> poolref.interpolate(x, scale_factor=2, mode="linear")
    array([[[0. , 0.5, 1.5, 2. ]]])
    >>> poolref.interpolate(np.array([[[0., 2., 4., 6.]]]), size=2, mode="area")
    array([[[1., 5.]]])
    >>> line = np.array([[[0., 1., 2., 3., 4., 5.]]])
    >>> poolref.interpolate(line, size=2, mode="linear", convention="jax")  # antialiased
    array([[[1.25, 3.75]]])
    >>> poolref.interpolate(line, size=2, mode="linear", convention="jax", antialias=False)
    array([[[1., 4.]]])
    """
    op = "interpolate"
    convention = check_convention(convention, op, RESIZE_CONVENTIONS)
    antialias = check_flag(antialias, "antialias", op, none_ok=True)  # None: the convention's default
    antialias = DEFAULT_ANTIALIAS[convention] if antialias is None else antialias
    if mode == "bicubic":
        raise NotImplementedError(f"{op}: mode='bicubic' is not implemented yet (PyTorch's, TensorFlow's and JAX's cubic kernels differ)")
    _check_choice(mode, "mode", INTERPOLATE_MODES, op)
    x = as_array(x, "x", op)
    if mode in LINEAR_MODES:
        n = LINEAR_MODES[mode]
        if x.ndim != n + 2:
            layout = ("(N, C, L)", "(N, C, H, W)", "(N, C, D, H, W)")[n - 1]
            raise ValueError(f"{op}: mode={mode!r} needs x of shape {layout}, got x with shape {tuple(x.shape)}{_BATCHED}")
        align_corners = False if align_corners is None else _check_align_corners(align_corners, op)
    else:
        if x.ndim not in (3, 4, 5):
            raise ValueError(f"{op}: x must have shape (N, C, L), (N, C, H, W) or (N, C, D, H, W), got x with shape {tuple(x.shape)}{_BATCHED}")
        n = x.ndim - 2
        if align_corners is not None and convention != "tensorflow":
            raise ValueError(
                f"{op}: align_corners can only be set with the linear modes (linear, bilinear, trilinear), "
                f"got align_corners={align_corners!r} with mode={mode!r}"
            )
        align_corners = False if align_corners is None else _check_align_corners(align_corners, op)
    _check_convention_mode(mode, convention, align_corners, antialias, x, op)
    if convention != "torch":
        if scale_factor is not None or recompute_scale_factor is not None:
            name = "tf.image.resize" if convention == "tensorflow" else "jax.image.resize"
            raise ValueError(
                f"{op}: convention={convention!r} takes a size only ({name} has no scale factor), "
                f"got scale_factor={scale_factor!r} and recompute_scale_factor={recompute_scale_factor!r}"
            )
        antialias = antialias and mode in LINEAR_MODES  # TensorFlow and JAX ignore it for nearest and area
    x = check_pool_input(x, n, op, integer_ok=False)
    size, scale_factors = _output_size(x, n, size, scale_factor, recompute_scale_factor, op)
    if mode == "area" and convention == "torch":
        # PyTorch's area mode is adaptive average pooling (torch.nn.functional.interpolate calls
        # adaptive_avg_pool{1,2,3}d with the output size): the same op, forward and backward
        return apply(ADAPTIVE_AVG_POOL, x, output_size=size)
    return apply(INTERPOLATE, x, mode=mode, size=size, align_corners=bool(align_corners), scale_factors=scale_factors,
                 antialias=antialias, convention=convention)
