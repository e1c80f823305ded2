r"""Volumetric ``grid_sample``: trilinear and nearest sampling of ``x`` (N, C, D, H, W) at the points of a
grid (N, D_out, H_out, W_out, 3), forward and backward, as PyTorch's ``grid_sampler_3d`` (CPU).

The same construction as the 2-D op (:mod:`.grid_sample`): the coordinates of each point along x, y
and z (PyTorch's order in the grid's last axis: width, height, depth) are unnormalized and padded one
axis at a time by :func:`~.grid_coordinates._source_coordinate`; the eight corners of the cell around
the point (or the nearest voxel) are cells of a channels-last copy of ``x`` inside a zero frame, and
the forward is a sparse matrix ``S`` (one row per point, its eight trilinear weights in the columns of
its corners) times that image. The backward to ``x`` is ``S.T``; the grid gradient differentiates the
weights, corner by corner, as PyTorch writes it.

PyTorch's 3-D kernel sums ``out = 0; out += w * v`` over the corners *inside* the volume and skips
the others: the result is never ``-0.0`` (``0 + -0.0 = +0.0``), which the ``+ 0.0`` at the end of
each sum here reproduces, and a corner outside adds nothing to the grid gradient, even under an
infinite upstream gradient (where the 2-D bicubic kernel reads 0 and gets NaN).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from ..._backend import array_module, sparse_rows, take_rows
from ..._checks import accumulation_dtype
from ...autograd.function import define_function
from .grid_coordinates import FRAME, _copy_to_channels_last, _reflect_by_flips, _source_coordinate

__all__ = ["GRID_SAMPLE_3D"]


class GridSample3dSaved(NamedTuple):
    mode: str
    x_shape: tuple
    x_dtype: numpy.dtype
    grid_dtype: numpy.dtype
    sampling: object  # sparse (N*P, N*volume): row p holds point p's weights at the voxels it reads
    image: object  # (N*volume, C) framed channels-last copy of x (trilinear: the grid gradient)
    inside: object  # (N*P, 8) bool: which corners lie in the volume (trilinear)
    weights: tuple  # ((low, high) weight per axis x, y, z), each (N*P,) (trilinear)
    slopes: tuple  # (d ix/d gx, d iy/d gy, d iz/d gz), each (N*P,)


# the eight corners in PyTorch's order tnw, tne, tsw, tse, bnw, bne, bsw, bse: (dz, dy, dx)
CORNERS = tuple((dz, dy, dx) for dz in (0, 1) for dy in (0, 1) for dx in (0, 1))


def _voxel_cells(columns, rows, slices, sizes, xp):
    """Cell numbers in the framed (D + 4, H + 4, W + 4) volume of integer-valued voxel coordinates,
    (N, ...) -> (N, P), each first clamped to ``[-FRAME, L + 1]`` (the frame is zero: anything further
    out reads 0 as well)."""
    D, H, W = sizes
    clamp = [xp.clip(c, -FRAME, L + 1).astype(numpy.intp) + FRAME for c, L in ((columns, W), (rows, H), (slices, D))]
    cells = (clamp[2] * (H + 2 * FRAME) + clamp[1]) * (W + 2 * FRAME) + clamp[0]
    return cells.reshape(cells.shape[0], math.prod(cells.shape[1:]))


def _grid_sample_3d_forward(x, grid, *, mode: str, padding_mode: str, align_corners: bool):
    xp = array_module(x, grid)
    N, C, D, H, W = x.shape
    _, D_out, H_out, W_out, _ = grid.shape
    P = D_out * H_out * W_out
    accumulate = accumulation_dtype(x.dtype)
    volume = (D + 2 * FRAME) * (H + 2 * FRAME) * (W + 2 * FRAME)
    framed = xp.zeros((N, D + 2 * FRAME, H + 2 * FRAME, W + 2 * FRAME, C), dtype=accumulate)
    _copy_to_channels_last(x, framed, (slice(FRAME, FRAME + D), slice(FRAME, FRAME + H), slice(FRAME, FRAME + W)))
    image = framed.reshape(N * volume, C)  # one row of channels per voxel
    coords = [_source_coordinate(grid[..., a].astype(accumulate), L, padding_mode, align_corners, xp, _reflect_by_flips)
              for a, L in enumerate((W, H, D))]  # (coordinate, slope) along x, y, z
    batch_offset = (xp.arange(N, dtype=numpy.intp) * volume).reshape(N, 1)
    if mode == "nearest":
        nearest = [xp.rint(coord) for coord, _ in coords]  # halves to even, as nearbyint
        columns = (_voxel_cells(*nearest, (D, H, W), xp) + batch_offset).reshape(N * P, 1)
        y = xp.take(image, columns[:, 0], axis=0)  # (N*P, C)
        saved = GridSample3dSaved(mode, x.shape, x.dtype, grid.dtype,
                                  sparse_rows(xp.ones((N * P, 1), dtype=accumulate), columns, N * volume, 1),
                                  None, None, (), ())
    else:
        lows = [xp.floor(coord) for coord, _ in coords]
        # PyTorch's weights: (low + 1 - i) for the low corner, (i - low) for the high one, per axis
        axis_weights = [((low + 1 - coord).reshape(-1), (coord - low).reshape(-1)) for low, (coord, _) in zip(lows, coords)]
        columns, inside, corner_weights = [], [], []
        for dz, dy, dx in CORNERS:
            corner = [low + step for low, step in zip(lows, (dx, dy, dz))]  # voxel coordinates x, y, z
            columns.append((_voxel_cells(*corner, (D, H, W), xp) + batch_offset).reshape(-1))
            inside.append(((corner[0] >= 0) & (corner[0] < W) & (corner[1] >= 0) & (corner[1] < H)
                           & (corner[2] >= 0) & (corner[2] < D)).reshape(-1))
            # w = wx * wy * wz, multiplied in PyTorch's order
            corner_weights.append(axis_weights[0][dx] * axis_weights[1][dy] * axis_weights[2][dz])
        columns = xp.stack(columns, axis=1)  # (N*P, 8)
        sampling = sparse_rows(xp.stack(corner_weights, axis=1), columns, N * volume, 8)
        y = sampling @ image  # (N*P, C)
        y += 0.0  # PyTorch's sum starts at +0.0 (see the module's notes)
        saved = GridSample3dSaved(mode, x.shape, x.dtype, grid.dtype, sampling, image, xp.stack(inside, axis=1),
                                  tuple(axis_weights), tuple(slope.reshape(-1) for _, slope in coords))
    out = xp.empty((N, C, D_out, H_out, W_out), dtype=x.dtype)
    out[...] = y.reshape(N, D_out, H_out, W_out, C).transpose(0, 4, 1, 2, 3)  # back to channels-first
    return out, saved


# forward  y[n, c, p] = sum_q S_n[p, q] x[n, c, q]  (S_n: point p's eight trilinear weights at
#          (ix, iy, iz) = unnormalize(grid[n, p]) on the corners inside the volume, or a 1 at its
#          nearest voxel)
# backward grad_x = S^T g (a scatter-add); grad_grid[n, p] = sum_c g[n, c, p] (dy/dix, dy/diy, dy/diz)
#          * d(ix, iy, iz)/dgrid, over the corners inside (0 for nearest)
def _grid_sample_3d_backward(saved: GridSample3dSaved, grad_y):
    xp = array_module(grad_y)
    N, C, D, H, W = saved.x_shape
    out_shape = grad_y.shape[2:]
    P = int(numpy.prod(out_shape))
    accumulate = accumulation_dtype(saved.x_dtype)
    g_points = xp.empty((N, P, C), dtype=accumulate)  # channels-last, one row per point like y
    _copy_to_channels_last(grad_y.reshape(N, C, P), g_points)
    g_points = g_points.reshape(N * P, C)
    # forward y = S @ image, backward grad_image = S.T @ g (a scatter-add of each point's gradient,
    # times its weights, onto the voxels it read); the frame is cut off
    grad_image = (saved.sampling.T @ g_points).reshape(N, D + 2 * FRAME, H + 2 * FRAME, W + 2 * FRAME, C)
    grad_image += 0.0  # a scatter-add into zeros
    grad_x = xp.empty(saved.x_shape, dtype=saved.x_dtype)
    grad_x[...] = grad_image[:, FRAME:FRAME + D, FRAME:FRAME + H, FRAME:FRAME + W].transpose(0, 4, 1, 2, 3)
    grad_grid = xp.zeros((N * P, 3), dtype=saved.grid_dtype)
    if saved.mode == "nearest":
        return grad_x, grad_grid.reshape((N,) + out_shape + (3,))  # piecewise constant in the grid
    # d/dix = sum_c g_c sum_corners (+-) v_corner,c * wy * wz (- for the low corner along x, + for the
    # high one; likewise for y and z), over the corners inside the volume only, term by term as
    # PyTorch adds them (each value meets the gradient before the sum); then times the slope
    columns = saved.sampling.indices.astype(numpy.intp, copy=False)
    corners = take_rows(saved.image, columns, xp.empty((N * P * 8, C), dtype=accumulate)).reshape(N * P, 8, C)
    with numpy.errstate(invalid="ignore", over="ignore"):
        terms = corners * g_points[:, None, :]  # (N*P, 8, C): v g
        for axis in range(3):
            others = [a for a in range(3) if a != axis]
            factors = []
            for corner in CORNERS:
                step = corner[::-1]  # (dx, dy, dz)
                sign = 1 if step[axis] else -1
                factors.append(sign * saved.weights[others[0]][step[others[0]]] * saved.weights[others[1]][step[others[1]]])
            factors = xp.where(saved.inside, xp.stack(factors, axis=1), 0)  # (N*P, 8)
            contribution = xp.where(saved.inside[:, :, None], terms * factors[:, :, None], -0.0)  # outside corners add nothing
            grad_grid[:, axis] = (contribution.sum(axis=(1, 2)) + 0.0) * saved.slopes[axis]
    return grad_x, grad_grid.reshape((N,) + out_shape + (3,))


GRID_SAMPLE_3D = define_function("grid_sample_3d", _grid_sample_3d_forward, _grid_sample_3d_backward)
