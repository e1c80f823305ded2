r"""Bilinear sampling and interpolation: the fixed resizes (``grid_sample``, ``interpolate``).

These are the resizes a network uses when the output size is fixed in advance; DynOPool learns it
instead. Both follow PyTorch's rules exactly (SEMANTICS.md section 9).

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
times its weights, into the pixels it read. The gradient to the grid is the derivative of the
bilinear weights (the same sparsity, other weights) times the derivative of the coordinate map.

``interpolate`` resizes to a given size. Every mode is separable: along each spatial axis, output
``o`` reads one input position (nearest) or two with weights (linear), so the forward gathers along
one axis at a time and the backward applies the transposed (O, L) matrix along each axis; ``area`` is
adaptive average pooling (:func:`poolref.adaptive_avg_pool2d`).
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy

from .._backend import array_module, sparse_rows
from .._checks import accumulation_dtype, check_pool_input
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


def _framed_channels_last(x, dtype, xp):
    """(N, C, H, W) -> (N * (H + 4) * (W + 4), C): one row of channels per pixel, in a zero frame."""
    N, C, H, W = x.shape
    image = xp.zeros((N, H + 2 * FRAME, W + 2 * FRAME, C), dtype=dtype)
    image[:, FRAME:FRAME + H, FRAME:FRAME + W, :] = x.transpose(0, 2, 3, 1)
    return image.reshape(N * (H + 2 * FRAME) * (W + 2 * FRAME), C)


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
class GridSampleSaved(NamedTuple):
    mode: str
    x_shape: tuple
    x_dtype: numpy.dtype
    grid_dtype: numpy.dtype
    sampling: object  # sparse (N*P, N*(H+4)*(W+4)): row p holds point p's weights at the pixels it reads
    image: object  # (N*(H+4)*(W+4), C) framed channels-last copy of x (bilinear: the grid gradient)
    fractions: tuple  # (wx, wy): (N*P,) fractional parts of the coordinates (bilinear only)
    slopes: tuple  # (d ix/d gx, d iy/d gy), each (N*P,) (bilinear only)


def _corner_offsets(W: int) -> tuple:
    """Offsets, from a bilinear point's top-left corner, of the cells of its four corners in the
    framed plane: top-left, top-right, bottom-left, bottom-right (a row of the plane is W + 4 long)."""
    row_length = W + 2 * FRAME
    return (0, 1, row_length, row_length + 1)


def _grid_sample_forward(x, grid, *, mode: str, padding_mode: str, align_corners: bool):
    xp = array_module(x, grid)
    N, C, H, W = x.shape
    _, H_out, W_out, _ = grid.shape
    P = H_out * W_out
    plane = (H + 2 * FRAME) * (W + 2 * FRAME)
    accumulate = accumulation_dtype(x.dtype)
    ix, slope_x = _source_coordinate(grid[..., 0].astype(accumulate), W, padding_mode, align_corners, xp)
    iy, slope_y = _source_coordinate(grid[..., 1].astype(accumulate), H, padding_mode, align_corners, xp)
    image = _framed_channels_last(x, accumulate, xp)  # (N*plane, C)
    if mode == "nearest":
        # PyTorch rounds half to even (nearbyint), as rint does
        cells = _cells(xp.rint(ix), xp.rint(iy), H, W, xp)
        columns = _image_rows(cells, plane, xp).reshape(N * P, 1)  # the one pixel each point reads
        weights = xp.ones((N * P, 1), dtype=accumulate)
    else:
        left, top = xp.floor(ix), xp.floor(iy)
        wx, wy = (ix - left).reshape(-1), (iy - top).reshape(-1)  # (N*P,) weights of the right / lower pixels
        cells = _cells(left, top, H, W, xp)
        offsets = xp.asarray(_corner_offsets(W), dtype=numpy.intp)
        columns = _image_rows(cells, plane, xp).reshape(N * P, 1) + offsets  # (N*P, 4): tl, tr, bl, br
        weights = xp.empty((N * P, 4), dtype=accumulate)
        weights[:, 0] = (1 - wy) * (1 - wx)
        weights[:, 1] = (1 - wy) * wx
        weights[:, 2] = wy * (1 - wx)
        weights[:, 3] = wy * wx
    # The whole op is one sparse matrix S: y[p] = sum_k weights[p, k] * image[columns[p, k]]. The
    # product adds each row's terms in the order tl, tr, bl, br, in the accumulation dtype (float32
    # for float16 input); zero weights stay stored, so a NaN or infinite corner makes the point NaN
    # even at weight 0, as PyTorch's weighted sum does.
    sampling = sparse_rows(weights, columns, N * plane, columns.shape[1])  # (N*P, N*plane)
    if mode == "nearest":
        # a single 1 per row: S @ image is a plain gather of rows, which take does faster
        y = xp.take(image, columns[:, 0], axis=0)  # (N*P, C)
        saved = GridSampleSaved(mode, x.shape, x.dtype, grid.dtype, sampling, None, (), ())
    else:
        y = sampling @ image  # (N*P, C)
        saved = GridSampleSaved(mode, x.shape, x.dtype, grid.dtype, sampling, image, (wx, wy),
                                (slope_x.reshape(-1), slope_y.reshape(-1)))
    out = xp.empty((N, C, H_out, W_out), dtype=x.dtype)
    out[...] = y.reshape(N, H_out, W_out, C).transpose(0, 3, 1, 2)  # back to channels-first, cast once
    return out, saved


def _grid_sample_backward(saved: GridSampleSaved, grad_y):
    xp = array_module(grad_y)
    N, C, H, W = saved.x_shape
    plane = (H + 2 * FRAME) * (W + 2 * FRAME)
    P = grad_y.shape[2] * grad_y.shape[3]
    accumulate = accumulation_dtype(saved.x_dtype)
    g_points = xp.empty((N, P, C), dtype=accumulate)  # channels-last, one row per point like y
    g_points[...] = grad_y.reshape(N, C, P).transpose(0, 2, 1)
    g_points = g_points.reshape(N * P, C)

    # d/dx: the forward is the linear map y = S @ image, so the backward is its adjoint, the
    # transpose of the same matrix: grad_image = S.T @ g. Written out, that is a scatter-add: every
    # point hands its gradient, times each weight, to the pixel it read with that weight (pixel q
    # sums column q of S times g). Accumulated in the accumulation dtype; the frame is cut off.
    grad_image = saved.sampling.T @ g_points  # (N*plane, C)
    framed = grad_image.reshape(N, H + 2 * FRAME, W + 2 * FRAME, C)
    grad_x = xp.empty(saved.x_shape, dtype=saved.x_dtype)
    grad_x[...] = framed[:, FRAME:FRAME + H, FRAME:FRAME + W, :].transpose(0, 3, 1, 2)

    # d/dgrid: zero for nearest (piecewise constant). For bilinear, differentiate the weights: with
    # v the corner values and <v, g> their inner products with the gradient over channels,
    #   d/dix = -(1 - wy) <v_tl, g> + (1 - wy) <v_tr, g> - wy <v_bl, g> + wy <v_br, g>,
    #   d/diy = -(1 - wx) <v_tl, g> - wx <v_tr, g> + (1 - wx) <v_bl, g> + wx <v_br, g>,
    # i.e. a matrix with the sparsity of S but these derivative weights, applied to the image, and
    # each point's row then dotted with g; times the slope d ix/d gx of the coordinate map.
    if saved.mode == "nearest":
        return grad_x, xp.zeros(grad_y.shape[:1] + grad_y.shape[2:] + (2,), dtype=saved.grid_dtype)
    wx, wy = saved.fractions
    slope_x, slope_y = saved.slopes
    columns = saved.sampling.indices  # (N*P*4,) the pixels each point reads: tl, tr, bl, br
    grad_grid = xp.empty((N * P, 2), dtype=saved.grid_dtype)
    for axis, corner_derivatives, slope in (
        (0, (-(1 - wy), 1 - wy, -wy, wy), slope_x),  # d weight / d ix for tl, tr, bl, br
        (1, (-(1 - wx), -wx, 1 - wx, wx), slope_y),  # d weight / d iy
    ):
        d_weights = xp.empty((N * P, 4), dtype=accumulate)
        for corner, derivative in enumerate(corner_derivatives):
            d_weights[:, corner] = derivative
        d_sampling = sparse_rows(d_weights, columns, N * plane, 4)  # (N*P, N*plane)
        d_coordinate = xp.einsum("pc,pc->p", d_sampling @ saved.image, g_points)  # (N*P,)
        with numpy.errstate(invalid="ignore"):  # inf * a zero slope is NaN, as the chain rule gives
            grad_grid[:, axis] = d_coordinate * slope
    return grad_x, grad_grid.reshape(grad_y.shape[:1] + grad_y.shape[2:] + (2,))


GRID_SAMPLE = define_function("grid_sample", _grid_sample_forward, _grid_sample_backward)


def _check_choice(value, name: str, allowed, op: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{op}: {name} must be one of {', '.join(map(repr, allowed))}, got {name}={value!r}")
    return value


def _check_align_corners(align_corners, op: str) -> bool:
    if not isinstance(align_corners, (bool, numpy.bool_)):
        raise TypeError(f"{op}: align_corners must be True or False, got align_corners={align_corners!r}")
    return bool(align_corners)


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
# interpolate: where each output position reads, per axis
# ==================================================================================================
class AxisTaps(NamedTuple):
    r"""Where the outputs along one axis read: ``y[o] = sum_t weights[t][o] * x[indices[t][o]]``."""

    length: int  # L, the input length
    indices: tuple  # one (O,) int64 numpy array per tap
    weights: tuple  # one (O,) float64 numpy array per tap; () for nearest (weight 1)


def nearest_indices(length: int, out_length: int, scale_factor=None, exact: bool = False):
    r"""Input position read by each output of ``nearest`` / ``nearest-exact`` resizing (PyTorch's rule).

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
    floor), whatever the dtype of the data; we do the same, so indices agree with PyTorch's even
    where float32 rounding moves them (``L = 14, O = 46``: output 23 reads 6, not 7). ``nearest``
    also copies when ``O = L`` and reads :math:`\lfloor o/2 \rfloor` when ``O = 2L``, even if a
    scale factor was given (PyTorch's ``nearest_idx``).

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
        scale = numpy.float32(1.0 / scale_factor)
    else:
        scale = numpy.float32(length) / numpy.float32(out_length)
    if exact:
        source = ((o + 0.5) * numpy.float64(scale)).astype(numpy.float32)
    else:
        source = o.astype(numpy.float32) * scale
    return numpy.minimum(numpy.floor(source).astype(numpy.int64), length - 1)


def linear_taps(length: int, out_length: int, align_corners: bool, scale_factor=None):
    r"""The two input positions and weights of each output of linear resizing (PyTorch's rule).

    Parameters
    ----------
    length, out_length : int
        Input and output lengths ``L`` and ``O``.
    align_corners : bool
    scale_factor : float or None
        As for :func:`nearest_indices` (ignored with ``align_corners``).

    Returns
    -------
    ((O,) int64, (O,) int64, (O,) float64, (O,) float64) or None
        ``(i0, i1, w0, w1)``, or None when ``O = L`` (PyTorch then copies, whatever the scale).

    Notes
    -----
    The source coordinate is :math:`c = o\,(L - 1)/(O - 1)` with ``align_corners`` (0 when
    :math:`O = 1`), else :math:`c = \max(s\,(o + 1/2) - 1/2,\ 0)` with :math:`s = L/O` or
    :math:`1/\mathrm{scale\_factor}`. Then :math:`i_0 = \min(\lfloor c \rfloor, L - 1)`,
    :math:`i_1 = \min(i_0 + 1, L - 1)`, :math:`w_1 = \mathrm{clip}(c - i_0, 0, 1)`,
    :math:`w_0 = 1 - w_1`, all in float64.

    Examples
    --------
    >>> i0, i1, w0, w1 = linear_taps(2, 4, align_corners=False)
    >>> i0.tolist(), i1.tolist(), w1.tolist()
    ([0, 0, 0, 1], [1, 1, 1, 1], [0.0, 0.25, 0.75, 0.25])
    """
    if out_length == length:
        return None
    o = numpy.arange(out_length, dtype=numpy.float64)
    if align_corners:
        scale = (length - 1) / (out_length - 1) if out_length > 1 else 0.0
        source = scale * o
    else:
        scale = 1.0 / scale_factor if scale_factor is not None else length / out_length
        source = numpy.maximum(scale * (o + 0.5) - 0.5, 0.0)
    i0 = numpy.minimum(numpy.floor(source).astype(numpy.int64), length - 1)
    w1 = numpy.clip(source - i0, 0.0, 1.0)
    i1 = numpy.minimum(i0 + 1, length - 1)
    return i0, i1, 1.0 - w1, w1


def _resize_taps(in_shape, out_shape, mode, align_corners, scale_factors):
    """Per spatial axis, an :class:`AxisTaps` or None (the axis is copied)."""
    taps = []
    for L, O, s in zip(in_shape, out_shape, scale_factors):
        if mode in ("nearest", "nearest-exact"):
            index = nearest_indices(L, O, s, exact=mode == "nearest-exact")
            same = O == L and numpy.array_equal(index, numpy.arange(O))
            taps.append(None if same else AxisTaps(L, (index,), ()))
        else:
            linear = linear_taps(L, O, align_corners, s)
            taps.append(None if linear is None else AxisTaps(L, linear[:2], linear[2:]))
    return tuple(taps)


def _axis_matrix(taps: AxisTaps, dtype, xp):
    """The (O, L) matrix of one axis's resize: row ``o`` holds the weights of the positions it reads."""
    O = len(taps.indices[0])
    matrix = numpy.zeros((O, taps.length))
    weights = taps.weights or (numpy.ones(O),)
    for index, weight in zip(taps.indices, weights):
        numpy.add.at(matrix, (numpy.arange(O), index), weight)  # the two taps may be one position
    return xp.asarray(matrix, dtype=dtype)


def _contract(a, matrix, dim: int):
    """Apply ``matrix`` (A, B) to dimension ``dim`` (length B) of ``a``; that dimension becomes A."""
    shape = a.shape
    lead, rest = math.prod(shape[:dim]), math.prod(shape[dim + 1:])
    if rest == 1:  # the last axis: one matrix product over all lines at once
        out = a.reshape(lead, shape[dim]) @ matrix.T
    else:
        out = matrix @ a.reshape(lead, shape[dim], rest)
    return out.reshape(shape[:dim] + (matrix.shape[0],) + shape[dim + 1:])


# ==================================================================================================
# interpolate: forward and backward
# ==================================================================================================
class InterpolateSaved(NamedTuple):
    taps: tuple  # per spatial axis: AxisTaps, or None where the axis is copied
    dtype: numpy.dtype


def _interpolate_forward(x, *, mode: str, size: tuple, align_corners: bool, scale_factors: tuple):
    xp = array_module(x)
    n = len(size)
    taps = _resize_taps(x.shape[x.ndim - n:], size, mode, align_corners, scale_factors)
    linear = mode in LINEAR_MODES
    y = x.astype(accumulation_dtype(x.dtype), copy=False) if linear else x
    # one axis at a time, (.., L_a, ..) -> (.., O_a, ..), the last axis first as PyTorch nests its
    # sums (and the cheap contiguous gathers along the leading axes then fall on the larger arrays)
    for a in reversed(range(n)):
        axis = taps[a]
        if axis is None:
            continue
        dim = y.ndim - n + a
        if not linear:
            y = xp.take(y, xp.asarray(axis.indices[0]), axis=dim)
            continue
        along = [-1 if d == dim else 1 for d in range(y.ndim)]  # weights broadcast along dim
        (i0, i1), (w0, w1) = axis.indices, axis.weights
        # PyTorch's form w0*x[i0] + w1*x[i1] (not x[i0] + w1*(x[i1] - x[i0])): same rounding
        first = xp.take(y, xp.asarray(i0), axis=dim)
        first *= xp.asarray(w0, dtype=y.dtype).reshape(along)
        second = xp.take(y, xp.asarray(i1), axis=dim)
        second *= xp.asarray(w1, dtype=y.dtype).reshape(along)
        first += second
        y = first
    y = xp.ascontiguousarray(y).astype(x.dtype, copy=False)
    return (y.copy() if y is x else y), InterpolateSaved(taps, x.dtype)


def _interpolate_backward(saved: InterpolateSaved, grad_y):
    # the transpose of the forward: along each axis the transposed (O, L) matrix (the axes' maps
    # commute; the last axis first keeps the single large matrix product on the largest array)
    xp = array_module(grad_y)
    n = len(saved.taps)
    accumulate = accumulation_dtype(saved.dtype)
    grad = grad_y.astype(accumulate, copy=False)
    for a in reversed(range(n)):
        axis = saved.taps[a]
        if axis is not None:
            transposed = xp.ascontiguousarray(_axis_matrix(axis, accumulate, xp).T)  # (L, O)
            grad = _contract(grad, transposed, grad.ndim - n + a)
    return (xp.ascontiguousarray(grad).astype(saved.dtype, copy=True),)


INTERPOLATE = define_function("interpolate", _interpolate_forward, _interpolate_backward)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, numpy.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, numpy.bool_))


def _output_size(x, n, size, scale_factor, recompute_scale_factor, op):
    """Resolve ``size`` / ``scale_factor`` into (output size, scale factors or Nones), PyTorch's way."""
    spatial = tuple(x.shape[x.ndim - n:])
    if size is not None and scale_factor is not None:
        raise ValueError(f"{op}: give only one of size and scale_factor, got size={size!r} and scale_factor={scale_factor!r}")
    if size is None and scale_factor is None:
        raise ValueError(f"{op}: give size or scale_factor, got size=None and scale_factor=None")
    if recompute_scale_factor is not None and not isinstance(recompute_scale_factor, (bool, numpy.bool_)):
        raise TypeError(f"{op}: recompute_scale_factor must be None, True or False, got recompute_scale_factor={recompute_scale_factor!r}")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit size, got size={size!r} and recompute_scale_factor=True")
        if isinstance(size, (tuple, list)):
            if len(size) != n:
                raise ValueError(f"{op}: size must have one entry per spatial dimension ({n} for x with shape {tuple(x.shape)}), got size={size!r}")
            if not all(_is_int(v) for v in size):
                raise TypeError(f"{op}: size must be an int or a sequence of {n} ints, got size={size!r}")
            out = tuple(int(v) for v in size)
        elif _is_int(size):
            out = (int(size),) * n
        else:
            raise TypeError(f"{op}: size must be an int or a sequence of {n} ints, got size={size!r}")
        if any(v < 1 for v in out):
            raise ValueError(f"{op}: size must be positive, got size={size!r}")
        return out, (None,) * n
    if isinstance(scale_factor, (tuple, list)):
        if len(scale_factor) != n:
            raise ValueError(f"{op}: scale_factor must have one entry per spatial dimension ({n} for x with shape {tuple(x.shape)}), got scale_factor={scale_factor!r}")
        factors = tuple(scale_factor)
    else:
        factors = (scale_factor,) * n
    if not all(_is_real(s) for s in factors):
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
    return out, ((None,) * n if recompute_scale_factor else factors)


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, *, recompute_scale_factor=None):
    r"""Resize ``x`` to a given size or by a scale factor, as PyTorch's ``interpolate``.

    Parameters
    ----------
    x : array or Tensor, shape (N, C, L), (N, C, H, W) or (N, C, D, H, W)
        Floating-point input; always batched (as PyTorch: a 3-D input is (N, C, L)). ``linear``
        needs (N, C, L), ``bilinear`` (N, C, H, W), ``trilinear`` (N, C, D, H, W).
    size : int or tuple of int, optional
        Output spatial size.
    scale_factor : float or tuple of float, optional
        Multiplier of each spatial size: the output size is :math:`\lfloor L \cdot s \rfloor`.
        Exactly one of ``size`` and ``scale_factor`` is given.
    mode : {"nearest", "nearest-exact", "linear", "bilinear", "trilinear", "area"}
    align_corners : bool, optional
        Linear modes only (default False): True maps the corner pixel centres onto each other.
    recompute_scale_factor : bool, optional
        With ``scale_factor``: True derives the scale from the sizes (``L/O``) instead of using
        ``1/scale_factor``.

    Returns
    -------
    y : array or Tensor, shape ``(N, C, *size)``
        In the dtype of ``x``.

    Notes
    -----
    Separable: along each axis output :math:`o` reads one position (nearest) or two with weights
    (linear), :math:`y_o = \sum_t w_{o,t} \, x_{i_{o,t}}`; in n dimensions the weights multiply.
    With scale :math:`s = L/O`, or :math:`1/\mathrm{scale\_factor}` when a scale factor was given
    (PyTorch's rule unless ``recompute_scale_factor``):

    * ``nearest`` reads :math:`\lfloor o\,s \rfloor`, ``nearest-exact``
      :math:`\lfloor (o + 1/2)\,s \rfloor`, both capped at :math:`L - 1` and computed in float32
      as PyTorch does (:func:`nearest_indices`);
    * linear modes read :math:`c = \max(s (o + 1/2) - 1/2, 0)`, or :math:`c = o (L - 1)/(O - 1)`
      with ``align_corners``, blending :math:`\lfloor c \rfloor` and the next position
      (:func:`linear_taps`); an axis with :math:`O = L` is copied unchanged;
    * ``area`` is adaptive average pooling to the output size.

    Backward, the transpose: :math:`\partial L/\partial x_i = \sum_{o,t:\, i_{o,t} = i} w_{o,t}
    \, \partial L/\partial y_o`, applied one axis at a time as the transposed (O, L) matrix (a
    matrix product, so an infinite or NaN gradient entry spreads along its whole line).

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
    """
    op = "interpolate"
    _check_choice(mode, "mode", INTERPOLATE_MODES, op)
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        x = numpy.asarray(x)
    if mode in LINEAR_MODES:
        n = LINEAR_MODES[mode]
        if x.ndim != n + 2:
            layout = ("(N, C, L)", "(N, C, H, W)", "(N, C, D, H, W)")[n - 1]
            raise ValueError(f"{op}: mode={mode!r} needs x of shape {layout}, got x with shape {tuple(x.shape)}")
        align_corners = False if align_corners is None else _check_align_corners(align_corners, op)
    else:
        if x.ndim not in (3, 4, 5):
            raise ValueError(f"{op}: x must have shape (N, C, L), (N, C, H, W) or (N, C, D, H, W), got x with shape {tuple(x.shape)}")
        n = x.ndim - 2
        if align_corners is not None:
            raise ValueError(
                f"{op}: align_corners can only be set with the linear modes (linear, bilinear, trilinear), "
                f"got align_corners={align_corners!r} with mode={mode!r}"
            )
    x = check_pool_input(x, n, op, integer_ok=False)
    size, scale_factors = _output_size(x, n, size, scale_factor, recompute_scale_factor, op)
    if mode == "area":
        return apply(ADAPTIVE_AVG_POOL, x, output_size=size)
    return apply(INTERPOLATE, x, mode=mode, size=size, align_corners=bool(align_corners), scale_factors=scale_factors)
