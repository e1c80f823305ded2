r"""Where ``grid_sample`` reads: grid coordinates to pixel coordinates (padding modes), and the framed
channels-last image its sparse sampling matrix addresses."""

from __future__ import annotations

import math

import numpy

from ..._backend import array_module

PADDING_MODES = ("zeros", "border", "reflection")


# The zero frame around the channels-last copy of x in grid_sample: a bilinear cell's top-left
# corner is clamped to [-2, L], so that both of its corners lie in the frame whenever it is off the
# image, and it and its right/lower neighbour are always addressable.
FRAME = 2


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


def _reflect_by_flips(coord, size: int, align_corners: bool, xp):
    """:func:`_reflect` as PyTorch's scalar kernels write it (``reflect_coordinates_set_grad``, which its
    3-D CPU grid sampler uses): ``t = |coord - low|``, ``extra = fmod(t, span)`` (exact), and the
    number of flips ``floor(t / span)`` decides: even, ``low + extra`` with the sign of
    ``coord - low``; odd, ``low + span - extra`` with the other sign. The same reflection, but a
    coordinate exactly on an edge can land on the other branch (and the slope on the other sign)
    than with :func:`_reflect`, and the rounding differs.
    """
    low, span = (0.0, size - 1) if align_corners else (-0.5, size)
    if span == 0:
        return xp.zeros_like(coord), xp.zeros_like(coord)
    dtype = coord.dtype.type
    shifted = coord - dtype(low)
    below = shifted < 0
    distance = xp.abs(shifted)
    extra = xp.fmod(distance, dtype(span))
    odd = xp.floor(distance / dtype(span)) % 2 == 1
    reflected = xp.where(odd, dtype(span) - extra, extra) + dtype(low)
    sign = xp.where(odd ^ below, dtype(-1), dtype(1))
    return reflected, sign


def _source_coordinate(g, size: int, padding_mode: str, align_corners: bool, xp, reflect=_reflect):
    """Pixel coordinate of normalized grid coordinates ``g`` along an axis of ``size`` pixels.

    Returns ``(coord, slope)``, both shaped like ``g``: ``slope = d coord / d g``, which is ``L/2`` or
    ``(L - 1)/2``, times ``-1`` where a reflection flipped it, times ``0`` where border or reflection
    padding clamped the coordinate. The clamp limits themselves count as clamped (PyTorch: "borders
    are considered out of bounds"), so the slope is 0 at exactly ``0`` and ``L - 1``. ``reflect``:
    :func:`_reflect` (PyTorch's vectorised 2-D kernels) or :func:`_reflect_by_flips` (its 3-D kernel).
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
        coord, sign = reflect(coord, size, align_corners, xp)
        slope *= sign
    if padding_mode in ("border", "reflection"):
        inside = (coord > 0) & (coord < size - 1)
        coord = xp.clip(coord, dtype(0), dtype(size - 1))
        slope *= inside
    return coord, slope


def _pad_taps(taps, size: int, padding_mode: str, align_corners: bool, xp):
    """Integer-valued tap positions (floats) moved into the image one by one, as bicubic sampling does.

    PyTorch's bicubic ``grid_sample`` does not move the point: it pads each of its 16 taps on its own
    (``get_value_bounded``): ``border`` clamps a tap to ``[0, L - 1]``, ``reflection`` reflects it off
    the edges and clamps it, ``zeros`` leaves it (a tap off the image reads the zero frame).
    """
    dtype = taps.dtype.type
    if padding_mode == "reflection":
        taps, _ = _reflect(taps, size, align_corners, xp)
    if padding_mode in ("border", "reflection"):
        taps = xp.clip(taps, dtype(0), dtype(size - 1))
    return taps


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

