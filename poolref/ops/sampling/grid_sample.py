r"""``grid_sample``: bilinear and nearest sampling of ``x`` at the points of a grid, forward and backward
(see the package's notes)."""

from __future__ import annotations

from typing import NamedTuple

import numpy

from ... import _sampling_weights as weights
from ..._backend import Scratch, array_module, batch_blocks, sparse_rows, take_rows
from ..._checks import accumulation_dtype, check_pool_input
from ...autograd.function import apply, define_function
from ...autograd.tensor import Tensor
from .checks import check_align_corners, check_choice
from .grid_coordinates import FRAME, PADDING_MODES, _cells, _copy_to_channels_last, _image_rows, _source_coordinate

__all__ = ["grid_sample"]

GRID_MODES = ("bilinear", "nearest")


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
    check_choice(mode, "mode", GRID_MODES, op)
    check_choice(padding_mode, "padding_mode", PADDING_MODES, op)
    align_corners = check_align_corners(False if align_corners is None else align_corners, op)
    grid_data = grid.data if isinstance(grid, Tensor) else grid
    xp = array_module(grid_data)
    if grid_data.size and not bool(xp.isfinite(grid_data).all()):
        bad = int((~xp.isfinite(grid_data)).sum())
        raise ValueError(f"{op}: grid must be finite, got grid with {bad} NaN or infinite values")
    return apply(GRID_SAMPLE, x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)

