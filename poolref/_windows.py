r"""Window helpers shared by every op that reads windows: padding, cropping, window sums and their
adjoints, and the per-plane gather and scatter of the max-type ops.

A *window op* (max, average and Lp pooling, fractional and mixed pooling, strided and dilated
convolution) asks :mod:`poolref._geometry` where its windows lie, pads its input so that every tap of
every window is addressable, and reads tap ``m`` of every window at once as one strided view of the
padded buffer (``geometry.tap_slices``; :func:`tap_views` lays the buffer out so that the view is a
contiguous run per row). Its backward runs the same steps transposed:

==========================================  ==============================================
forward                                     backward (the adjoint)
==========================================  ==============================================
:func:`pad_for_windows` (copy into padding)   :func:`crop_padding` (drop the padding cells)
:func:`window_sum` (add a window's taps)      :func:`window_sum_adjoint` (spread to the taps)
:func:`gather_from_planes` (``y = x[i]``)      :func:`scatter_to_planes` (``grad_x[i] += g``)
==========================================  ==============================================

Every function here works on NumPy and CuPy arrays alike and loops only over kernel taps, never over
output pixels, batch or channels.
"""

from __future__ import annotations

import math

import numpy

from ._backend import array_module, take_rows
from ._checks import accumulation_dtype, cast_back
from ._geometry import WindowGeometry

__all__ = [
    "pad_for_windows", "tap_views", "crop_padding", "along_axis",
    "window_sum", "window_sum_adjoint", "window_sum_plane_bytes",
    "plane_layout", "as_planes", "gather_from_planes", "scatter_to_planes",
    "PADDING_MODES", "check_padding_mode", "check_pads_fit_mode", "mode_source_positions", "pad_with_mode",
    "pad_with_mode_adjoint",
]


# ==================================================================================================
# Padding and its adjoint
# ==================================================================================================
def pad_for_windows(x, geometry: WindowGeometry, fill):
    """Copy ``x`` into a buffer padded with ``fill`` so that every tap of every window is addressable.

    (..., L_0, .., L_{n-1}) -> (..., L_0 + b_0 + e_0, ..): ``b`` is the begin padding, ``e`` the end
    padding plus the ceil-mode overhang. A negative pad (``convention="jax"``) removes cells instead,
    as ``lax.pad`` does. Returns ``x`` itself (no copy) when no padding is needed, and a view of ``x``
    when pads only remove cells.
    """
    if not geometry.needs_padding:
        return x
    source, target = geometry.interior()
    if all(b <= 0 and e <= 0 for b, e in geometry.pad_widths):
        return x[(Ellipsis,) + source]  # a crop: no cell to fill
    xp = array_module(x)
    lead = x.shape[: x.ndim - geometry.ndim]
    padded = xp.full(lead + geometry.padded_shape, fill, dtype=x.dtype)
    padded[(Ellipsis,) + target] = x[(Ellipsis,) + source]
    return padded


def tap_views(padded, geometry: WindowGeometry) -> list:
    """Tap ``m`` of every window, for every tap of the kernel in scan order: one (.., O..) view each.

    Plainly, tap ``offsets`` is the strided view ``padded[..., geometry.tap_slices(offsets)]``.
    Speed trick: with a stride s > 1 along the last axis, that view reads every s-th element of a
    row, which NumPy's ufuncs do without SIMD instructions (3 times slower here). So the buffer is
    first copied with its last axis split by phase, (.., L') -> (.., s, ceil(L'/s)), column c going
    to ``[c % s, c // s]``: the columns ``m d + o s`` of tap m (o = 0, 1, ..) are then the contiguous
    run ``[(m d) % s, (m d) // s + o]``. The views hold the same values; a phase's last cell past the
    buffer's end is never read.
    """
    axis = geometry.axes[-1]
    stride = axis.stride
    if stride == 1 or axis.out_length <= 1:
        return [padded[(Ellipsis,) + geometry.tap_slices(offsets)] for offsets in geometry.tap_offsets()]
    xp = array_module(padded)
    phased = xp.empty(padded.shape[:-1] + (stride, -(-padded.shape[-1] // stride)), dtype=padded.dtype)
    for phase in range(stride):  # a loop over the s phases of the stride
        run = padded[..., phase::stride]
        phased[..., phase, : run.shape[-1]] = run
    views = []
    for offsets in geometry.tap_offsets():
        first = offsets[-1] * axis.dilation
        columns = slice(first // stride, first // stride + axis.out_length)
        views.append(phased[(Ellipsis,) + geometry.tap_slices(offsets)[:-1] + (first % stride, columns)])
    return views


def along_axis(ndim: int, dim: int, index) -> tuple:
    """An index tuple that applies ``index`` to dimension ``dim`` and takes everything elsewhere."""
    key = [slice(None)] * ndim
    key[dim] = index
    return tuple(key)


def crop_padding(padded, geometry: WindowGeometry):
    """The adjoint of :func:`pad_for_windows`: the input's cells of a padded buffer, as a contiguous array.

    Padding cells are dropped; input cells that a negative pad removed (and so no window read) are 0.
    """
    if not geometry.needs_padding:
        return padded
    xp = array_module(padded)
    source, target = geometry.interior()
    if not geometry.crops:
        return xp.ascontiguousarray(padded[(Ellipsis,) + target])
    lead = padded.shape[: padded.ndim - geometry.ndim]
    cropped = xp.zeros(lead + geometry.in_shape, dtype=padded.dtype)
    cropped[(Ellipsis,) + source] = padded[(Ellipsis,) + target]
    return cropped


# ==================================================================================================
# Window sums and their adjoint
# ==================================================================================================
def window_sum(x, geometry: WindowGeometry, weights=None):
    """Sum of every window's taps; padding and overhang read as zero. (.., L..) -> (.., O..).

    A box sum is separable, so we sum along one axis at a time: k_0 + k_1 + .. strided adds instead
    of k_0 * k_1 * .. of them. ``weights``, if given, holds per axis the ``kernel`` weights of its
    taps (Python floats, rounded to ``x``'s dtype when multiplied): the sum is then weighted by
    their outer product, a separable filter (the binomial blur of :mod:`poolref.ops.blur`).
    """
    xp = array_module(x)
    n = geometry.ndim
    total = pad_for_windows(x, geometry, 0)
    with numpy.errstate(invalid="ignore", over="ignore"):  # inf + (-inf) is NaN, as it should be
        for a, axis in enumerate(geometry.axes):
            dim = total.ndim - n + a
            taps = None if weights is None else weights[a]
            first = total[along_axis(total.ndim, dim, axis.tap_slice(0))]
            along = first.copy() if taps is None else first * taps[0]
            for m in range(1, axis.kernel):
                xp.add(along, _weighted(total[along_axis(total.ndim, dim, axis.tap_slice(m))], taps, m), out=along)
            total = along
    return total


def window_sum_plane_bytes(geometry: WindowGeometry, dtype) -> int:
    """About how many bytes :func:`window_sum` or :func:`window_sum_adjoint` touches per plane in ``dtype``:
    the input, its padded copy, a partial sum of about that size and the output, for
    :func:`poolref._backend.batch_blocks`."""
    cells = math.prod(geometry.in_shape) + 2 * math.prod(geometry.padded_shape) + math.prod(geometry.out_shape)
    return cells * numpy.dtype(dtype).itemsize


def _weighted(view, taps, m: int):
    """Tap ``m``'s view times its weight, or the view itself for an unweighted sum."""
    return view if taps is None else view * taps[m]


def window_sum_adjoint(g, geometry: WindowGeometry, weights=None):
    """Transpose of :func:`window_sum`: each window's value is added to every one of its taps (times
    the tap's weight, for a weighted sum).

    (.., O..) -> (.., L..); what lands in padding is dropped.
    """
    xp = array_module(g)
    n = geometry.ndim
    spread = g
    for a in reversed(range(n)):
        axis = geometry.axes[a]
        dim = spread.ndim - n + a
        shape = list(spread.shape)
        shape[dim] = axis.buffer_length
        wide = xp.zeros(shape, dtype=g.dtype)  # the padded axis
        with numpy.errstate(invalid="ignore", over="ignore"):  # inf + (-inf) is NaN, as it should be
            for m in range(axis.kernel):
                view = wide[along_axis(wide.ndim, dim, axis.tap_slice(m))]
                xp.add(view, _weighted(spread, None if weights is None else weights[a], m), out=view)
        # back to the input's cells: padding is dropped, cells a negative pad removed get nothing
        source, target = axis.interior()
        if source == slice(0, axis.length):
            spread = wide[along_axis(wide.ndim, dim, target)]
        else:
            shape[dim] = axis.length
            spread = xp.zeros(shape, dtype=g.dtype)
            spread[along_axis(wide.ndim, dim, source)] = wide[along_axis(wide.ndim, dim, target)]
    return xp.ascontiguousarray(spread)


# ==================================================================================================
# Per-plane gather and scatter (the max-type ops' forward read and backward write)
# ==================================================================================================
def plane_layout(shape, n):
    """Number of (n, c) planes and elements per plane of an (.., *spatial) shape with n spatial dims."""
    return math.prod(shape[: len(shape) - n]), math.prod(shape[len(shape) - n:])


def as_planes(x, n: int):
    """(.., L_0, .., L_{n-1}) -> (P, L_0, .., L_{n-1}): the leading dims flattened into one axis of planes.

    The planes are what a window op processes independently of each other, and what it cuts into
    cache-sized blocks (:func:`poolref._backend.batch_blocks`). A view of ``x`` wherever its leading
    dims can be merged (always for a contiguous array); otherwise a copy, which never changes a value.
    """
    return x.reshape((plane_layout(x.shape, n)[0],) + tuple(x.shape[x.ndim - n:]))


def _positions_in_planes(indices, shape, n: int, xp):
    """Positions in the flattened array of ``shape`` (.., *spatial) of in-plane indices (.., O..).

    ``indices``' leading dims are those of ``shape`` or 1, an index then shared by every plane along
    that dim (one index per sample for all its channels, say). Returns ``(positions, flat)``:
    positions (.., O) with the leading dims of ``shape`` (index plus the start of its plane, so an
    index of -1 gives a position before its plane), and ``flat``, the indices as (.., O).
    """
    lead = tuple(shape[: len(shape) - n])
    planes, plane_size = plane_layout(shape, n)
    flat = indices.reshape(tuple(indices.shape[: len(lead)]) + (-1,))
    offsets = (xp.arange(planes, dtype=numpy.int64) * plane_size).reshape(lead + (1,))
    return offsets + flat, flat


def gather_from_planes(source, indices, n: int, fill=0):
    """Read ``source`` (.., L..) at each flat in-plane index of ``indices`` (.., O..); ``fill`` where -1.

    The forward of every max-type op reads its output here (``y_o = x[index_o]``); its adjoint is
    :func:`scatter_to_planes`. ``indices``' leading dims match ``source``'s or are 1 (an index shared
    by those planes: ``grid_sample``'s nearest pixel, the same for every channel of a sample). The
    result has ``source``'s leading dims and ``indices``' trailing ones.
    """
    xp = array_module(source)
    lead = tuple(source.shape[: source.ndim - n])
    out_shape = lead + tuple(indices.shape[len(lead):])
    if indices.size == 0 or source.size == 0:
        return xp.zeros(out_shape, dtype=source.dtype)
    positions, flat = _positions_in_planes(indices, source.shape, n, xp)
    # a missing entry's position lies just before its plane: take_rows reads some element there
    # (clipped, or wrapped on CuPy) ..
    read = take_rows(xp.ravel(source), positions, xp.empty(positions.shape, dtype=source.dtype))
    if int(flat.min()) < 0:  # .. which is then overwritten: filled, never computed with
        xp.copyto(read, xp.asarray(fill, dtype=source.dtype), where=flat < 0)
    return read.reshape(out_shape)


def scatter_to_planes(values, indices, in_shape, n: int, out=None):
    """Add each of ``values`` (.., O..) into zeros of ``in_shape`` at its flat index within its plane.

    The backward of every max-type op: ``grad_x[index_o] += grad_y[o]``, overlapping windows
    accumulating in order (in float32 for float16 values), an index of -1 sending its value nowhere.
    Entries are added, never multiplied by a mask, so an infinite or NaN entry reaches its own
    element and no other. ``indices``' leading dims match ``in_shape``'s or are 1, as for
    :func:`gather_from_planes`.

    ``out``, if given, is a contiguous array of ``in_shape`` in the accumulation dtype holding zeros:
    the values are added into it and it is returned (one block of a larger gradient, see
    :func:`poolref._backend.batch_blocks`). Otherwise a new array of the values' dtype is returned.
    """
    xp = array_module(values)
    planes, plane_size = plane_layout(in_shape, n)
    size = planes * plane_size
    # a new total has one spare element past the end, where the entries without an element (-1) go
    total = xp.zeros(size + 1, dtype=accumulation_dtype(values.dtype)) if out is None else out.reshape(-1)
    if indices.size and values.size:
        positions, flat = _positions_in_planes(indices, tuple(in_shape), n, xp)
        values = values.reshape(positions.shape)
        with numpy.errstate(invalid="ignore", over="ignore"):  # inf + (-inf) at a shared argmax: NaN
            if int(flat.min()) >= 0:  # every entry has an element
                xp.add.at(total, positions.reshape(-1), values.reshape(-1))
            elif out is None:  # the entries without one are added to the spare element
                xp.copyto(positions, size, where=flat < 0)
                xp.add.at(total, positions.reshape(-1), values.reshape(-1))
            else:  # only the entries with an element are added
                found = xp.broadcast_to(flat >= 0, positions.shape)
                xp.add.at(total, positions[found], values[found])
    if out is not None:
        return out
    return total[:size].astype(values.dtype, copy=False).reshape(in_shape)


# ==================================================================================================
# Padding modes and their adjoint: zeros, reflect, replicate, circular (torch.nn.functional.pad's
# rules, as torch.nn.Conv2d's padding_mode uses them). Kept apart from the window helpers above.
# ==================================================================================================
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def check_padding_mode(mode, op: str, name: str = "padding_mode") -> str:
    """Return ``mode`` if it is one of :data:`PADDING_MODES`, else raise a ValueError naming it."""
    if not isinstance(mode, str) or mode not in PADDING_MODES:
        raise ValueError(f"{op}: {name} must be one of {PADDING_MODES}, got {name}={mode!r}")
    return mode


def check_pads_fit_mode(lengths, pads, mode: str, op: str, shape=None) -> None:
    """Raise a ValueError where ``mode`` cannot pad an axis of ``lengths`` by ``pads``, as PyTorch does.

    ``reflect`` mirrors the axis about its first and last cells, which exist only for a pad below the
    length (torch: "Padding size should be less than the corresponding input dimension");
    ``circular`` wraps around at most once, so a pad up to the length (torch: "Padding value causes
    wrapping around more than once"); ``zeros`` and ``replicate`` take any pad.

    >>> check_pads_fit_mode((4,), ((3, 4),), "reflect", "conv2d")
    Traceback (most recent call last):
    ...
    ValueError: conv2d: padding_mode='reflect' needs every pad below the input length along its axis (PyTorch's rule), got pads (3, 4) on an axis of length 4
    """
    for length, (begin, end) in zip(lengths, pads):
        too_long = (mode == "reflect" and max(begin, end) >= length) or (mode == "circular" and max(begin, end) > length)
        if too_long:
            rule = "below" if mode == "reflect" else "at most"
            where = f" (x with shape {tuple(shape)})" if shape is not None else ""
            raise ValueError(
                f"{op}: padding_mode={mode!r} needs every pad {rule} the input length along its axis (PyTorch's "
                f"rule), got pads {(begin, end)} on an axis of length {length}{where}"
            )


def mode_source_positions(length: int, begin: int, end: int, mode: str) -> numpy.ndarray:
    """(begin + length + end,) the input position each cell of a padded axis copies; -1 for a zero.

    >>> [mode_source_positions(4, 2, 3, m).tolist() for m in ("reflect", "replicate", "circular")]
    [[2, 1, 0, 1, 2, 3, 2, 1, 0], [0, 0, 0, 1, 2, 3, 3, 3, 3], [2, 3, 0, 1, 2, 3, 0, 1, 2]]
    """
    position = numpy.arange(-begin, length + end)
    if mode == "zeros":
        return numpy.where((position >= 0) & (position < length), position, -1)
    if mode == "reflect":  # mirror about cell 0 and cell L-1, the edge cells themselves not repeated
        return numpy.where(position < 0, -position, numpy.where(position >= length, 2 * (length - 1) - position, position))
    if mode == "replicate":  # the edge cell, repeated
        return numpy.clip(position, 0, length - 1)
    return position % length  # circular: the axis wraps around


def pad_with_mode(x, pads, mode: str):
    """``x`` padded on its last ``len(pads)`` axes by ``pads`` (one ``(begin, end)`` pair per axis).

    ``mode`` is ``"zeros"`` (constant zeros), ``"reflect"`` (mirror, edge not repeated: ``c b | a b c |
    b a``), ``"replicate"`` (edge repeated: ``a a | a b c | c c``) or ``"circular"`` (wrap: ``b c | a b c
    | a b``), as ``torch.nn.functional.pad``. The pads must fit the mode (:func:`check_pads_fit_mode`).
    A padded cell is a copy of an input cell (or a zero), so NaN and infinities are copied as they
    are. Each axis is one gather along that axis, so a corner copies the copy: reflect about both
    axes. Returns ``x`` itself when no pad is positive. Its adjoint is :func:`pad_with_mode_adjoint`.

    >>> import numpy as np
    >>> pad_with_mode(np.array([[1., 2., 3.]]), ((0, 0), (2, 1)), "reflect")
    array([[3., 2., 1., 2., 3., 2.]])
    """
    if not any(b or e for b, e in pads):
        return x
    xp = array_module(x)
    n = len(pads)
    if mode == "zeros":
        lengths = x.shape[x.ndim - n:]
        padded = xp.zeros(x.shape[: x.ndim - n] + tuple(L + b + e for L, (b, e) in zip(lengths, pads)), dtype=x.dtype)
        padded[(Ellipsis,) + tuple(slice(b, b + L) for L, (b, _) in zip(lengths, pads))] = x
        return padded
    for a, (begin, end) in enumerate(pads):
        dim = x.ndim - n + a
        source = mode_source_positions(x.shape[dim], begin, end, mode)
        x = x[along_axis(x.ndim, dim, xp.asarray(source))]  # (.., L + b + e, ..) a gather along one axis
    return x


def pad_with_mode_adjoint(g, pads, mode: str):
    """The transpose of :func:`pad_with_mode`: every padded cell's value added back onto the input
    cell it copies. (.., L_i + b_i + e_i, ..) -> (.., L_i, ..).

    ``zeros`` drops the padding (a crop); ``reflect``, ``replicate`` and ``circular`` scatter-add the
    padding's values onto their sources (``replicate`` sends a whole pad to the edge cell). Axes are
    undone in the reverse order of the forward's. Sums run in float32 for float16 values; an
    infinity and its opposite meeting in one cell make NaN, as IEEE addition does.

    >>> import numpy as np
    >>> # the padded row [x2 x1 | x0 x1 x2 | x1] of the example of pad_with_mode, seeded 1, 2, .., 6
    >>> pad_with_mode_adjoint(np.array([[1., 2., 3., 4., 5., 6.]]), ((0, 0), (2, 1)), "reflect")
    array([[ 3., 12.,  6.]])
    """
    if not any(b or e for b, e in pads):
        return g
    xp = array_module(g)
    n = len(pads)
    if mode == "zeros":
        interior = tuple(slice(b, size - e) for size, (b, e) in zip(g.shape[g.ndim - n:], pads))
        return xp.ascontiguousarray(g[(Ellipsis,) + interior])
    dtype = g.dtype
    total = g.astype(accumulation_dtype(dtype), copy=False)
    for a in reversed(range(n)):
        begin, end = pads[a]
        dim = total.ndim - n + a
        length = total.shape[dim] - begin - end
        source = mode_source_positions(length, begin, end, mode)
        padding_cells = numpy.r_[0:begin, begin + length:begin + length + end]
        gathered = total[along_axis(total.ndim, dim, slice(begin, begin + length))].copy()  # the input's own cells
        if padding_cells.size:
            with numpy.errstate(invalid="ignore", over="ignore"):  # inf + (-inf) is NaN, as it should be
                xp.add.at(gathered, along_axis(total.ndim, dim, xp.asarray(source[padding_cells])),
                          total[along_axis(total.ndim, dim, xp.asarray(padding_cells))])
        total = gathered
    return xp.ascontiguousarray(cast_back(total, dtype))
