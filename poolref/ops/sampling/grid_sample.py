r"""``grid_sample``: bilinear and nearest sampling of ``x`` at the points of a grid, forward and backward
(see the package's notes)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from ... import _sampling_weights as weights
from ..._backend import Scratch, array_module, batch_blocks, sparse_rows, take_rows
from ..._checks import accumulation_dtype, check_element_count, check_pool_input
from ..._windows import gather_from_planes, scatter_to_planes
from ...autograd.function import apply, define_function
from ...autograd.tensor import Tensor
from .checks import check_align_corners, check_choice
from .grid_coordinates import (
    FRAME,
    PADDING_MODES,
    _cells,
    _copy_to_channels_last,
    _image_rows,
    _pad_taps,
    _source_coordinate,
)
from .grid_sample_3d import GRID_SAMPLE_3D

__all__ = ["grid_sample"]

GRID_MODES = ("bilinear", "nearest", "bicubic")


# ==================================================================================================
# grid_sample: forward and backward
# ==================================================================================================
class GridSampleBlock(NamedTuple):
    """What the backward needs of one block of samples (``B`` of them, ``P`` points each)."""

    samples: slice  # which samples of the batch
    sampling: object  # sparse (B*P, B*(H+4)*(W+4)): row p holds point p's weights at the pixels it reads
    fractions: tuple  # bilinear: (wx, wy), (B*P,) fractional parts of the coordinates;
    #                   bicubic: (d S/d ix, d S/d iy), (B*P, 16) derivatives of each point's 16 weights
    slopes: tuple  # (d ix/d gx, d iy/d gy), each (B*P,) (bilinear and bicubic)


class GridSampleSaved(NamedTuple):
    mode: str
    x: object  # (N, C, H, W) the input: the backward frames each block of it again (for the grid gradient)
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


def _framed_image(x, accumulate, scratch: Scratch):
    """The block ``x`` (B, C, H, W) channels-last, one row of channels per pixel, in a zero frame of
    FRAME pixels: (B, H + 4, W + 4, C) in the accumulation dtype, in ``scratch``'s buffer "framed".

    Only one block's copy exists at a time: the forward frames each block in turn into the same
    buffer, and the backward frames it again from x where it needs the pixel values (a speed trick:
    a framed copy of the whole batch kept from the forward to the backward would be one more array
    larger than the caches, made of fresh memory pages on every call).
    """
    B, C, H, W = x.shape
    framed = scratch.empty("framed", (B, H + 2 * FRAME, W + 2 * FRAME, C), accumulate)
    # the buffer is reused, so the frame is written each time: the rows above and below, then the
    # columns left and right
    framed[:, :FRAME] = 0
    framed[:, FRAME + H:] = 0
    framed[:, FRAME:FRAME + H, :FRAME] = 0
    framed[:, FRAME:FRAME + H, FRAME + W:] = 0
    _copy_to_channels_last(x, framed, (slice(FRAME, FRAME + H), slice(FRAME, FRAME + W)), scratch=scratch)
    return framed


def _grid_sample_forward(x, grid, *, mode: str, padding_mode: str, align_corners: bool):
    # Each sample is sampled on its own: the samples go through in cache-sized blocks (a speed
    # trick, poolref._backend.batch_blocks), each block its own sparse matrix, which changes no value.
    if mode not in ("bilinear", "bicubic"):  # nearest sampling is a Function of its own, below
        raise ValueError(f"grid_sample: GRID_SAMPLE samples 'bilinear' or 'bicubic' (nearest: GRID_SAMPLE_NEAREST), got mode={mode!r}")
    xp = array_module(x, grid)
    N, C, H, W = x.shape
    _, H_out, W_out, _ = grid.shape
    accumulate = accumulation_dtype(x.dtype)
    out = xp.empty((N, C, H_out, W_out), dtype=x.dtype)
    blocks = []
    scratch = Scratch(xp)  # the blocks' temporary buffers (their framed image), allocated once
    for samples in batch_blocks(N, _sample_bytes(x.shape, grid.shape, accumulate), like=x):
        framed = _framed_image(x[samples], accumulate, scratch)  # (B, H + 4, W + 4, C)
        out[samples], block = _grid_sample_block(framed, grid[samples], mode, padding_mode, align_corners)
        blocks.append(block._replace(samples=samples))
    return out, GridSampleSaved(mode, x, x.shape, x.dtype, grid.dtype, tuple(blocks))


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
    if mode == "bicubic":
        # the point itself is only unnormalized ("zeros" moves nothing): the padding acts on its taps
        ix, slope_x = _source_coordinate(grid[..., 0].astype(accumulate), W, "zeros", align_corners, xp)
        iy, slope_y = _source_coordinate(grid[..., 1].astype(accumulate), H, "zeros", align_corners, xp)
    else:
        ix, slope_x = _source_coordinate(grid[..., 0].astype(accumulate), W, padding_mode, align_corners, xp)
        iy, slope_y = _source_coordinate(grid[..., 1].astype(accumulate), H, padding_mode, align_corners, xp)
    if mode == "bicubic":
        columns, corner_weights, derivatives = _bicubic_taps(ix, iy, H, W, padding_mode, align_corners, xp)
        columns = _image_rows(columns, plane, xp).reshape(N * P, 16)
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
    if mode == "bicubic":
        y = sampling @ image  # (N*P, C)
        block = GridSampleBlock(slice(None), sampling, derivatives, (slope_x.reshape(-1), slope_y.reshape(-1)))
    else:
        y = sampling @ image  # (N*P, C)
        block = GridSampleBlock(slice(None), sampling, (wx, wy), (slope_x.reshape(-1), slope_y.reshape(-1)))
    return y.reshape(N, H_out, W_out, C).transpose(0, 3, 1, 2), block  # back to channels-first


def _bicubic_taps(ix, iy, H: int, W: int, padding_mode: str, align_corners: bool, xp):
    """The 16 taps of bicubic points at unnormalized pixel coordinates ``ix``, ``iy`` (N, H_out, W_out).

    Returns ``(cells, weights, (d weights/d ix, d weights/d iy))``: cells (N, P*16) of the framed
    plane, the rest (N*P, 16), tap ``4 i + j`` being row ``floor(iy) - 1 + i``, column
    ``floor(ix) - 1 + j``, each moved into the image by the padding mode on its own.
    """
    N = ix.shape[0]
    left, top = xp.floor(ix), xp.floor(iy)
    cx, dcx = weights.cubic_point_taps(ix - left, xp)  # (N, H_out, W_out, 4): columns' weights, d/d ix
    cy, dcy = weights.cubic_point_taps(iy - top, xp)  # rows' weights, d/d iy
    k = xp.arange(-1, 3, dtype=ix.dtype)
    columns = _pad_taps(left[..., None] + k, W, padding_mode, align_corners, xp)  # (N, H_out, W_out, 4)
    rows = _pad_taps(top[..., None] + k, H, padding_mode, align_corners, xp)
    shape = rows.shape + (4,)  # (N, H_out, W_out, 4 rows, 4 columns)
    cells = _cells(xp.broadcast_to(columns[..., None, :], shape), xp.broadcast_to(rows[..., :, None], shape), H, W, xp)
    flat = (-1, 16)
    tap_weights = (cy[..., :, None] * cx[..., None, :]).reshape(flat)  # w = cy_i * cx_j
    along_x = (cy[..., :, None] * dcx[..., None, :]).reshape(flat)  # d w/d ix = cy_i * cx_j'
    along_y = (dcy[..., :, None] * cx[..., None, :]).reshape(flat)  # d w/d iy = cy_i' * cx_j
    return cells.reshape(N, cells.size // N if N else 0), tap_weights, (along_x, along_y)


# forward  y[n, c, p] = sum_q S_n[p, q] x[n, c, q]  (S_n: each point p's bilinear or bicubic weights at
#          (ix, iy) = unnormalize(grid[n, p]); 0 off the image)
# backward grad_x[n, c, q] = sum_p S_n[p, q] g[n, c, p]   (the transpose: a scatter-add)
#          grad_grid[n, p] = sum_c g[n, c, p] (dy/dix, dy/diy) * d(ix, iy)/dgrid
def _grid_sample_backward(saved: GridSampleSaved, grad_y):
    # Block by block of samples, as the forward (each block's gradients are those of its samples).
    xp = array_module(grad_y)
    grad_x = xp.empty(saved.x_shape, dtype=saved.x_dtype)  # (N, C, H, W)
    grad_grid = xp.empty(grad_y.shape[:1] + grad_y.shape[2:] + (2,), dtype=saved.grid_dtype)  # (N, H_out, W_out, 2)
    scratch = Scratch(xp)  # the blocks' large temporaries, allocated once
    for block in saved.blocks:
        grad_x[block.samples], grad_grid[block.samples] = _grid_sample_block_backward(saved, block, grad_y[block.samples], scratch)
    return grad_x, grad_grid


# forward  y = S @ image, per block of samples (image channels-last, S the block's sparse weights)
# backward grad_image = S^T @ g;  grad_grid = sum_c g * (the weights' slopes) * slope of the
#          coordinate map
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
    grad_framed = grad_image.reshape(N, H + 2 * FRAME, W + 2 * FRAME, C)
    grad_x = grad_framed[:, FRAME:FRAME + H, FRAME:FRAME + W, :].transpose(0, 3, 1, 2)  # (N, C, H, W) view

    # d/dgrid: for bilinear, differentiate the weights: with
    # v the corner values (0 off the image) and g the gradient, summed over channels,
    #   d/dix = sum_c g_c [(v_tr - v_tl)(1 - wy) + (v_br - v_bl) wy]_c,
    #   d/diy = sum_c g_c [(v_bl - v_tl)(1 - wx) + (v_br - v_tr) wx]_c,
    # in PyTorch's form (differences of neighbours, not four separate products: where the two agree
    # mathematically, only this form gives exactly 0, and so exactly PyTorch's NaN for an infinite
    # gradient times it); then times the slope d ix/d gx of the coordinate map.
    # the pixel values the points read: the block's framed image again, as the forward built it
    plane = (H + 2 * FRAME) * (W + 2 * FRAME)
    image = _framed_image(saved.x[block.samples], accumulate, scratch).reshape(N * plane, C)  # (N*plane, C)
    if saved.mode == "bicubic":
        # bicubic: y = sum_k w_k v_k over the 16 taps, so d/dix = sum_c g_c sum_k (d w_k/d ix) v_k,c
        # (a tap off the image reads 0), times the slope of the unnormalization alone: the padding
        # moved the taps, not the point, and PyTorch's gradient does not see it
        return grad_x, _bicubic_grid_gradient(saved, block, image, g_points, scratch).reshape(grad_y.shape[:1] + grad_y.shape[2:] + (2,))
    wx, wy = block.fractions
    slope_x, slope_y = block.slopes
    corners = block.sampling.indices.reshape(N * P, 4)  # (N*P, 4) cells read: tl, tr, bl, br
    # The differences of PyTorch's form are differences of neighbouring pixels: tr - tl and br - bl
    # are steps to the right from tl and bl, bl - tl and br - tr steps down from tl and tr. So take
    # the image of every pixel's step to the right (and then down) once; then, per channel,
    #   along_x[p] = (1 - wy) * step_right[tl] + wy * step_right[bl]
    # is a sparse product with two weights a row (a speed trick: the same subtractions and products
    # in the same order, but one pass over the image instead of four over the points' corners).
    grad_grid = xp.empty((N * P, 2), dtype=saved.grid_dtype)
    if N * P == 0:  # no points (an empty block): nothing to differentiate
        return grad_x, grad_grid.reshape(grad_y.shape[:1] + grad_y.shape[2:] + (2,))
    with numpy.errstate(invalid="ignore", over="ignore"):  # inf - inf, 0 * inf: NaN, as in PyTorch
        for axis, (step, weight, near, far, slope) in enumerate((
                (1, wy, corners[:, 0], corners[:, 2], slope_x),  # along x: steps right from tl and bl
                (W + 2 * FRAME, wx, corners[:, 0], corners[:, 1], slope_y))):  # along y: down from tl and tr
            steps = scratch.empty("steps", (image.shape[0] - step, C), accumulate)
            xp.subtract(image[step:], image[:-step], out=steps)  # steps[q] = image[q + step] - image[q]
            mix = sparse_rows(xp.stack((1 - weight, weight), axis=1), xp.stack((near, far), axis=1), steps.shape[0], 2)
            along = mix @ steps  # (N*P, C)
            grad_grid[:, axis] = xp.einsum("pc,pc->p", along, g_points) * slope
    return grad_x, grad_grid.reshape(grad_y.shape[:1] + grad_y.shape[2:] + (2,))


def _bicubic_grid_gradient(saved: GridSampleSaved, block: GridSampleBlock, image, g_points, scratch: Scratch):
    """d/dgrid of bicubic sampling for one block of points, given its framed image (N*plane, C): (N*P, 2)."""
    xp = array_module(g_points)
    points, C = g_points.shape
    columns = block.sampling.indices.astype(numpy.intp, copy=False)  # (P*16,) cells read
    taps = take_rows(image, columns, scratch.empty("corners", (points * 16, C), g_points.dtype)).reshape(points, 16, C)
    grad_grid = xp.empty((points, 2), dtype=saved.grid_dtype)
    with numpy.errstate(invalid="ignore", over="ignore"):  # 0 * inf, inf - inf: NaN, as in PyTorch
        # PyTorch adds up the terms v_kc g_c (d w_k/d i) one by one over taps and channels: each value
        # meets the gradient before the sum, so a tap of value 0 under an infinite gradient is NaN
        # (summing over the taps first would give a finite derivative times inf instead)
        terms = taps * g_points[:, None, :]  # (P, 16, C): v_kc g_c
        for axis, (derivative, slope) in enumerate(zip(block.fractions, block.slopes)):
            grad_grid[:, axis] = xp.einsum("pkc,pk->p", terms, derivative) * slope
    return grad_grid


# ==================================================================================================
# grid_sample, nearest: a gather of one pixel per point, and its adjoint, a scatter
# ==================================================================================================
class GridSampleNearestSaved(NamedTuple):
    x_shape: tuple
    x_dtype: numpy.dtype
    grid_dtype: numpy.dtype
    pixels: object  # (N, 1, H_out, W_out) in-plane index row * W + col read by each point, -1: none


def _nearest_pixels(grid, H: int, W: int, padding_mode: str, align_corners: bool):
    """The pixel each point of ``grid`` (N, H_out, W_out, 2) reads: (N, 1, H_out, W_out) in-plane
    indices ``row * W + col``, -1 where the point lies off the image (it reads the zero padding).

    The index is one per sample and point, shared by the sample's channels (the leading 1).
    """
    xp = array_module(grid)
    accumulate = accumulation_dtype(grid.dtype)
    ix, _ = _source_coordinate(grid[..., 0].astype(accumulate), W, padding_mode, align_corners, xp)
    iy, _ = _source_coordinate(grid[..., 1].astype(accumulate), H, padding_mode, align_corners, xp)
    col, row = xp.rint(ix), xp.rint(iy)  # PyTorch rounds half to even (nearbyint), as rint does
    inside = (col >= 0) & (col <= W - 1) & (row >= 0) & (row <= H - 1)  # always, unless padding is zeros
    # clipped before the conversion, so that a point far off the image converts safely
    pixel = xp.clip(row, 0, H - 1).astype(numpy.intp) * W + xp.clip(col, 0, W - 1).astype(numpy.intp)
    return xp.where(inside, pixel, -1)[:, None]


def _nearest_sample_bytes(x_shape, grid_shape, dtype) -> int:
    """About how many bytes nearest sampling touches per sample (for batch_blocks): the image, and
    per point and channel its value and its 8-byte position."""
    _, C, H, W = x_shape
    return C * (numpy.dtype(dtype).itemsize * (H * W + grid_shape[1] * grid_shape[2]) + 8 * grid_shape[1] * grid_shape[2])


def _grid_sample_nearest_forward(x, grid, *, padding_mode: str, align_corners: bool):
    # Channels-first throughout: y[n, c, p] = x[n, c, pixel[n, p]] is a gather from each plane of x
    # (poolref._windows.gather_from_planes), 0 where the point reads the padding. Values are read,
    # never computed, so y is exact in every dtype. Cut into cache-sized blocks of samples (a speed
    # trick that changes no value).
    xp = array_module(x, grid)
    N, C, H, W = x.shape
    _, H_out, W_out, _ = grid.shape
    pixels = _nearest_pixels(grid, H, W, padding_mode, align_corners)  # (N, 1, H_out, W_out)
    y = xp.empty((N, C, H_out, W_out), dtype=x.dtype)
    for samples in batch_blocks(N, _nearest_sample_bytes(x.shape, grid.shape, x.dtype), like=x):
        y[samples] = gather_from_planes(x[samples], pixels[samples], 2)
    return y, GridSampleNearestSaved(x.shape, x.dtype, grid.dtype, pixels)


# forward  y[n, c, p] = x[n, c, pixel[n, p]]   (0 where the point lies off the image)
# backward grad_x[n, c, q] = sum over the points p with pixel[n, p] = q of g[n, c, p]   (the adjoint
#          of the gather: a scatter-add, in the order of the points, in float32 for float16)
#          grad_grid = 0   (y is piecewise constant in the grid)
def _grid_sample_nearest_backward(saved: GridSampleNearestSaved, grad_y):
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    grad_x = xp.empty(saved.x_shape, dtype=saved.x_dtype)
    for samples in batch_blocks(N, _nearest_sample_bytes(saved.x_shape, grad_y.shape[:1] + grad_y.shape[2:], saved.x_dtype), like=grad_y):
        block_shape = (samples.stop - samples.start, C, H, W)
        grad_x[samples] = scatter_to_planes(grad_y[samples], saved.pixels[samples], block_shape, 2)
    return grad_x, xp.zeros(grad_y.shape[:1] + grad_y.shape[2:] + (2,), dtype=saved.grid_dtype)


GRID_SAMPLE_NEAREST = define_function("grid_sample_nearest", _grid_sample_nearest_forward, _grid_sample_nearest_backward)
GRID_SAMPLE = define_function("grid_sample", _grid_sample_forward, _grid_sample_backward)


def grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    r"""Sample ``x`` at the points of ``grid`` (bilinear, nearest or bicubic), as PyTorch's ``grid_sample``.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, H, W) or (N, C, D, H, W)
        Floating-point input; 5-D input is sampled in volume (trilinear for ``"bilinear"``).
    grid : array or Tensor, shape (N, H_out, W_out, 2) or (N, D_out, H_out, W_out, 3)
        Sampling points ``(gx, gy)`` (or ``(gx, gy, gz)``), normalized: ``-1`` is the left/top/front
        edge of the image and ``1`` the right/bottom/back edge. Same dtype as ``x``. Values outside
        ``[-1, 1]`` are allowed; NaN and infinity are not.
    mode : {"bilinear", "nearest", "bicubic"}
        ``"bicubic"`` on 4-D input only (as PyTorch).
    padding_mode : {"zeros", "border", "reflection"}
        What a point off the image reads: 0, the nearest edge pixel (the coordinate is clamped), or
        the image reflected off its edges (then clamped). Bicubic sampling pads each of its 16 taps
        on its own instead of the point.
    align_corners : bool
        True: ``-1`` and ``1`` are the centres of the corner pixels; False: their outer edges.

    Returns
    -------
    y : array or Tensor, shape (N, C, H_out, W_out) or (N, C, D_out, H_out, W_out)
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

    Bicubic (PyTorch's, Keys' kernel :math:`k` with :math:`a = -3/4`): the point is only
    unnormalized; with :math:`t_x = i_x - x_0` it reads the 16 pixels
    :math:`(y_0 - 1 + r, x_0 - 1 + s)`, :math:`r, s = 0..3`, each moved into the image by the padding
    mode on its own (``zeros``: a tap outside reads 0), with weights
    :math:`c_r(t_y)\, c_s(t_x)`, :math:`c(t) = (k(1 + t), k(t), k(1 - t), k(2 - t))`:

    .. math:: y = \sum_{r,s} c_r(t_y)\, c_s(t_x)\, v_{rs}, \qquad
              \frac{\partial L}{\partial g_x} = \frac{\partial i_x}{\partial g_x} \sum_c
              \frac{\partial L}{\partial y_c} \sum_{r,s} c_r(t_y)\, c_s'(t_x)\, v_{rs,c},

    where :math:`\partial i_x / \partial g_x` is :math:`L/2` or :math:`(L - 1)/2` whatever the
    padding (PyTorch's gradient does not see the taps move).

    5-D input: the same along x, y and z (grid ``(gx, gy, gz)`` indexes W, H, D), eight corners with
    weights :math:`w_x w_y w_z`; :math:`\partial L/\partial g_x` sums
    :math:`\pm v\, w_y w_z\, \partial L/\partial y` over the corners inside the volume (minus for the
    lower x corner).

    For a fixed grid the forward is a sparse matrix :math:`S` (one row per output point, its
    weights in the columns of the pixels it reads) applied to the pixels, :math:`y = S x`, and the
    gradient to ``x`` is its transpose, :math:`S^T \partial L/\partial y`. A NaN pixel makes every
    point that reads it NaN, even where its weight is 0, and an infinite pixel makes such a point
    infinite, or NaN where its weight is 0 (:math:`0 \cdot \infty` is NaN); the grid gradient
    there follows suit, as in PyTorch.

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.arange(4.).reshape(1, 1, 2, 2)
    >>> grid = np.array([[[[0., 0.], [-0.5, -0.5], [-1., -1.]]]])  # centre, pixel (0, 0), corner
    >>> poolref.grid_sample(x, grid)
    array([[[[1.5, 0. , 0. ]]]])
    >>> poolref.grid_sample(x, grid, align_corners=True)
    array([[[[1.5 , 0.75, 0.  ]]]])
    >>> poolref.grid_sample(x, grid, mode="bicubic", padding_mode="border")  # the cubic overshoots
    array([[[[ 1.5    ,  0.     , -0.28125]]]])
    >>> volume = np.arange(8.).reshape(1, 1, 2, 2, 2)
    >>> poolref.grid_sample(volume, np.zeros((1, 1, 1, 1, 3)))  # the centre of the cube
    array([[[[[3.5]]]]])
    """
    op = "grid_sample"
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        x = numpy.asarray(x)
    volumetric = x.ndim == 5
    x = check_pool_input(x, 3 if volumetric else 2, op, integer_ok=False)
    if x.ndim not in (4, 5):
        raise ValueError(f"{op}: x must have shape (N, C, H, W) or (N, C, D, H, W), got x with shape {tuple(x.shape)}")
    if not (hasattr(grid, "shape") and hasattr(grid, "dtype")):
        grid = numpy.asarray(grid)
    n = x.ndim - 2
    if grid.ndim != x.ndim or grid.shape[0] != x.shape[0] or grid.shape[-1] != n:
        layout = "(N, D_out, H_out, W_out, 3)" if volumetric else "(N, H_out, W_out, 2)"
        raise ValueError(
            f"{op}: grid must have shape {layout} with N = {x.shape[0]} as in x (shape {tuple(x.shape)}), "
            f"got grid with shape {tuple(grid.shape)}"
        )
    if numpy.dtype(grid.dtype) != numpy.dtype(x.dtype):
        raise TypeError(f"{op}: grid must have the dtype of x ({numpy.dtype(x.dtype)}), got grid with dtype {numpy.dtype(grid.dtype)}")
    # the output (N, C, *out) is C times the grid's points: refuse an absurd one before allocating
    check_element_count(x.shape[1] * math.prod(grid.shape[:-1]), "grid.shape", tuple(grid.shape), op,
                        f"the output ({x.shape[1]} channels at each grid point)")
    check_choice(mode, "mode", GRID_MODES, op)
    if volumetric and mode == "bicubic":
        raise ValueError(f"{op}: mode='bicubic' samples 4-D input only (as PyTorch), got x with shape {tuple(x.shape)}")
    check_choice(padding_mode, "padding_mode", PADDING_MODES, op)
    align_corners = check_align_corners(False if align_corners is None else align_corners, op)
    grid_data = grid.data if isinstance(grid, Tensor) else grid
    xp = array_module(grid_data)
    if grid_data.size and not bool(xp.isfinite(grid_data).all()):
        bad = int((~xp.isfinite(grid_data)).sum())
        raise ValueError(f"{op}: grid must be finite, got grid with {bad} NaN or infinite values")
    if volumetric:
        return apply(GRID_SAMPLE_3D, x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    if mode == "nearest":
        return apply(GRID_SAMPLE_NEAREST, x, grid, padding_mode=padding_mode, align_corners=align_corners)
    return apply(GRID_SAMPLE, x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
