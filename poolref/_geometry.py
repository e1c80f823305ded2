r"""Window geometry: the one place that decides where every pooling window lies.

Every windowed op (max, average and Lp pooling, unpooling, and the ops of later families) asks this
module three questions and nothing else:

1. how long is the output along each spatial axis (``O``), given the input length ``L``, kernel ``k``,
   stride ``s``, dilation ``d``, padding and ceil mode;
2. which input positions does output ``o`` read (its *taps* ``o*s - p_begin + m*d`` for
   ``m = 0 .. k-1``), and which of them lie inside the input rather than in padding;
3. what does an average divide by.

Question 2 is answered as a table of taps per axis, :class:`poolref._taps.Taps`
(:meth:`AxisWindows.tap_table`), the one table every separable op reads with. Adaptive pooling's
windows are irregular, the bins of :func:`adaptive_bins` (:func:`adaptive_taps` is their table).

Per axis (``k_eff = d*(k - 1) + 1`` is the span of a dilated window)::

    O = floor((L + p_begin + p_end - k_eff) / s) + 1          (ceil instead of floor in ceil mode)
    if ceil_mode and (O - 1)*s >= L + p_begin:  O -= 1        (no window may start in the end padding)

The conventions differ only in details that are all decided here (SEMANTICS.md sections 1 and 3):

============  =======================================  ===================================  ==========
convention    padding checks                           padding counted in an average        ceil mode
============  =======================================  ===================================  ==========
torch         ``2*p <= k`` on each side                 yes if ``count_include_pad``          yes
onnx          none beyond "every window sees input"    yes if ``count_include_pad``          yes
tensorflow    none beyond "every window sees input"    never                                no
jax           none at all: pads may be negative (they  yes if ``count_include_pad``         no
              crop), windows may lie wholly in         (``/ prod(k)``), else
              padding, the output may be empty         ``/ reduce_window(ones)``
============  =======================================  ===================================  ==========

``convention="jax"`` is ``lax.reduce_window``'s geometry: per axis ``(low, high)`` pads of any sign
(a negative pad removes cells, as ``lax.pad`` does), or the strings ``"valid"``, ``"same"`` and
``"same_lower"`` resolved as :func:`jax.lax.padtype_to_pads` resolves them over the *dilated*
window (the rule above, never a negative total); the output length is the formula above clamped at
0 (``reduce_window`` then returns an empty array); no ceil mode. A window that lies wholly in
padding reads nothing: its maximum is -inf, its sum 0.

Worked example (PyTorch, ``L = 4, k = 3, s = 2, p = 1``, ceil mode): ``(4 + 2 - 3) / 2 = 1.5`` so
``O = ceil(1.5) + 1 = 3``; the last window starts at ``2*2 - 1 = 3 < L``, so it is kept:

>>> axis = axis_windows(4, kernel=3, stride=2, padding=(1, 1), dilation=1, ceil_mode=True)
>>> axis.out_length, axis.taps().tolist()
(3, [[-1, 0, 1], [1, 2, 3], [3, 4, 5]])

Tap 5 lies beyond the end padding (``L + p_end = 5``): PyTorch's average does not count it, so the last
window divides by 2, not 3:

>>> axis.counted_taps(count_padding=True).tolist()
[3, 3, 2]
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy

from ._checks import check_element_count, check_flag, is_int
from ._taps import Taps

__all__ = [
    "CONVENTIONS",
    "AxisWindows",
    "WindowGeometry",
    "axis_windows",
    "pool_geometry",
    "check_window_tables",
    "check_padded_plane",
    "geometry_of_keywords",
    "adaptive_bins",
    "adaptive_taps",
    "as_int_tuple",
    "check_convention",
    "resolve_padding",
    "unpool_output_shape",
]

CONVENTIONS = ("torch", "onnx", "tensorflow", "jax")
SAME_PADDINGS = ("same", "same_upper", "same_lower")


# --------------------------------------------------------------------------------------------------
# Argument parsing shared by every windowed op
# --------------------------------------------------------------------------------------------------
def check_convention(convention, op: str, allowed=CONVENTIONS) -> str:
    """Return ``convention`` if it is one of ``allowed``, else raise a ValueError naming it."""
    if not isinstance(convention, str) or convention not in allowed:
        raise ValueError(f"{op}: convention must be one of {allowed}, got convention={convention!r}")
    return convention


def as_int_tuple(value, n: int, name: str, op: str) -> tuple[int, ...]:
    """Expand an int or a length-``n`` sequence of ints into an n-tuple (PyTorch's ``_ntuple``).

    >>> as_int_tuple(2, 3, "kernel_size", "max_pool3d")
    (2, 2, 2)
    """
    if is_int(value):
        return (int(value),) * n
    if isinstance(value, (tuple, list)) and len(value) == n and all(is_int(v) for v in value):
        return tuple(int(v) for v in value)
    raise TypeError(f"{op}: {name} must be an int or a sequence of {n} ints, got {name}={value!r}")


def resolve_padding(padding, lengths, kernel, stride, dilation, op: str, *, allow_negative: bool = False):
    """Turn any accepted ``padding`` into per-axis ``(begin, end)`` pairs.

    Accepted forms: an int; one int per axis (symmetric); one ``(begin, end)`` pair per axis; or
    ``"valid"`` (no padding), ``"same"`` = ``"same_upper"``, ``"same_lower"``. The "same" modes make
    ``O = ceil(L / s)`` with a total padding of ``max((O - 1)*s + k_eff - L, 0)``, its odd cell at the
    end (upper) or at the beginning (lower), as ONNX's ``auto_pad``, TensorFlow's ``SAME`` and JAX's
    ``padtype_to_pads`` (``"SAME"``, ``"SAME_LOWER"``) do. Negative pads (JAX's crops) are refused
    unless ``allow_negative``.

    >>> resolve_padding("same_lower", (5,), (2,), (1,), (1,), "max_pool1d")
    ((1, 0),)
    >>> resolve_padding(((0, 1), (2, 2)), (4, 4), (3, 3), (1, 1), (1, 1), "max_pool2d")
    ((0, 1), (2, 2))
    """
    n = len(lengths)
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0),) * n
        if mode not in SAME_PADDINGS:
            raise ValueError(
                f"{op}: padding must be an int, a tuple, 'valid', 'same', 'same_upper' or "
                f"'same_lower', got padding={padding!r}"
            )
        pairs = []
        for L, k, s, d in zip(lengths, kernel, stride, dilation):
            out = -(-L // s)  # ceil(L / s)
            total = max((out - 1) * s + d * (k - 1) + 1 - L, 0)
            small, large = total // 2, total - total // 2
            pairs.append((small, large) if mode in ("same", "same_upper") else (large, small))
        return tuple(pairs)
    if is_int(padding):
        pairs = ((int(padding), int(padding)),) * n
    elif isinstance(padding, (tuple, list)) and len(padding) == n and all(is_int(p) for p in padding):
        pairs = tuple((int(p), int(p)) for p in padding)
    elif (
        isinstance(padding, (tuple, list))
        and len(padding) == n
        and all(isinstance(p, (tuple, list)) and len(p) == 2 and all(is_int(q) for q in p) for p in padding)
    ):
        pairs = tuple((int(p[0]), int(p[1])) for p in padding)
    else:
        raise TypeError(
            f"{op}: padding must be an int, {n} ints, {n} (begin, end) pairs or a string, got padding={padding!r}"
        )
    if not allow_negative and any(p < 0 for pair in pairs for p in pair):
        raise ValueError(f"{op}: padding must be non-negative, got padding={padding!r}")
    return pairs


# --------------------------------------------------------------------------------------------------
# Regular windows along one axis
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AxisWindows:
    """Geometry of the regular windows along one spatial axis.

    Output ``o`` reads the input positions ``o*stride - pad_begin + m*dilation`` for
    ``m = 0 .. kernel-1``; positions outside ``[0, length)`` are padding (or ceil-mode overhang, past
    ``length + pad_end``).
    """

    length: int
    kernel: int
    stride: int
    dilation: int
    pad_begin: int
    pad_end: int
    out_length: int

    @property
    def effective_kernel(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    @property
    def end_overhang(self) -> int:
        """Cells the last window reaches past the end padding (ceil mode only; 0 otherwise)."""
        if self.out_length < 1:
            return 0
        last_tap = (self.out_length - 1) * self.stride - self.pad_begin + self.effective_kernel - 1
        return max(0, last_tap + 1 - (self.length + self.pad_end))

    def starts(self) -> numpy.ndarray:
        """(O,) input position of each window's first tap (negative inside the begin padding)."""
        return numpy.arange(self.out_length) * self.stride - self.pad_begin

    def taps(self) -> numpy.ndarray:
        """(O, k) input position of every tap of every window."""
        return self.starts()[:, None] + numpy.arange(self.kernel)[None, :] * self.dilation

    def inside(self) -> numpy.ndarray:
        """(O, k) True where the tap reads the input, False where it reads padding or overhang."""
        taps = self.taps()
        return (taps >= 0) & (taps < self.length)

    def sees_input(self) -> numpy.ndarray:
        """(O,) True where the window reads at least one input cell (only ``convention="jax"`` has others)."""
        return self.inside().any(axis=1)

    def cells_read(self) -> numpy.ndarray:
        """(L,) True where at least one window reads the input cell.

        Strides longer than the window, dilation and the floor of the output length leave cells out:

        >>> axis_windows(5, 2, 2, (0, 0), 1, False).cells_read().tolist()
        [True, True, True, True, False]
        """
        read = numpy.zeros(self.length, dtype=bool)
        taps = self.taps()
        read[taps[self.inside()]] = True
        return read

    @property
    def buffer_length(self) -> int:
        """Cells of the padded axis: positions ``-pad_begin .. length + pad_end + overhang - 1``.

        A negative pad removes cells (``lax.pad``'s crop); when pads remove more than the axis holds
        the buffer is empty (and so is the output).
        """
        return max(self.length + self.pad_begin + self.pad_end + self.end_overhang, 0)

    def interior(self) -> tuple[slice, slice]:
        """Where the input and the padded buffer overlap: ``(slice of the input, slice of the buffer)``.

        Buffer cell ``j`` holds input position ``j - pad_begin``; with non-negative pads the whole
        input lies in the buffer, a negative pad leaves the cells it removes out of both slices.

        >>> axis_windows(5, 1, 1, (-2, 1), 1, False).interior()
        (slice(2, 5, None), slice(0, 3, None))
        """
        first = max(-self.pad_begin, 0)  # first input cell in the buffer
        last = min(self.length, self.buffer_length - self.pad_begin)  # one past the last
        if last <= first:
            return slice(0, 0), slice(0, 0)  # pads removed every cell
        return slice(first, last), slice(first + self.pad_begin, last + self.pad_begin)

    def counted_taps(self, count_padding: bool) -> numpy.ndarray:
        """(O,) how many taps an average divides by along this axis.

        With ``count_padding`` the taps inside the input or its padding (``position < L + p_end``;
        PyTorch's ``pool_size``, which leaves out the ceil-mode overhang); without, only the taps
        inside the input.
        """
        taps = self.taps()
        low, high = (-self.pad_begin, self.length + self.pad_end) if count_padding else (0, self.length)
        return ((taps >= low) & (taps < high)).sum(axis=1)

    def tap_slice(self, m: int) -> slice:
        """Slice of the *padded* axis holding tap ``m`` of every window, in output order."""
        first = m * self.dilation
        if self.out_length < 1:
            return slice(first, first)  # no window (convention="jax"); a negative stop would wrap around
        return slice(first, first + (self.out_length - 1) * self.stride + 1, self.stride)

    def tap_table(self) -> Taps:
        """The windows as unweighted :class:`~poolref._taps.Taps`: the taps in padding are not read
        (they hold the nearest input position, so a gather stays in bounds), ``step`` is the dilation.

        >>> table = axis_windows(4, 3, 2, (1, 1), 1, False).tap_table()
        >>> table.index.tolist(), table.reads().tolist(), table.origins().tolist()
        ([[0, 0, 1], [1, 2, 3]], [[False, True, True], [True, True, True]], [-1, 1])
        """
        return Taps(self.length, numpy.clip(self.taps(), 0, max(self.length - 1, 0)), None, self.inside(), step=self.dilation)


def output_length(length, kernel, stride, pad_begin, pad_end, dilation, ceil_mode) -> int:
    """Output length along one axis (PyTorch's and ONNX's formula, with the ceil-mode rule)."""
    span = length + pad_begin + pad_end - (dilation * (kernel - 1) + 1)
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= length + pad_begin:
        out -= 1  # that window would start in the end padding: PyTorch (and ONNX >= 1.16) drop it
    return out


def axis_windows(length, kernel, stride, padding, dilation, ceil_mode) -> AxisWindows:
    """Build the :class:`AxisWindows` of one axis from already-checked arguments."""
    pad_begin, pad_end = padding
    out = output_length(length, kernel, stride, pad_begin, pad_end, dilation, ceil_mode)
    return AxisWindows(length, kernel, stride, dilation, pad_begin, pad_end, out)


# --------------------------------------------------------------------------------------------------
# All axes together
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowGeometry:
    """Regular windows over all spatial axes: one :class:`AxisWindows` per axis, outermost first."""

    axes: tuple[AxisWindows, ...]
    ceil_mode: bool = False  # how the output lengths were rounded (recorded for printing)
    convention: str = "torch"  # whose padding rules placed the windows (recorded for printing)

    def __str__(self) -> str:
        # what a printed tape shows for a windowed op: the whole geometry, defaults included, so that
        # two calls that differ in any of it print differently
        pads = tuple((a.pad_begin, a.pad_end) for a in self.axes)
        return (f"(kernel_size={self.kernel}, stride={tuple(a.stride for a in self.axes)}, padding={pads}, "
                f"dilation={tuple(a.dilation for a in self.axes)}, ceil_mode={self.ceil_mode}, "
                f"convention={self.convention!r})")

    @property
    def ndim(self) -> int:
        return len(self.axes)

    def loop_reference_arguments(self) -> tuple:
        """``(kernel, stride, pad_begin, pad_end, dilation, ceil_mode)``, per-axis tuples: the resolved
        geometry the plain-loop references of :mod:`poolref.reference.window` take."""
        axes = self.axes
        return (tuple(a.kernel for a in axes), tuple(a.stride for a in axes), tuple(a.pad_begin for a in axes),
                tuple(a.pad_end for a in axes), tuple(a.dilation for a in axes), self.ceil_mode)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(a.length for a in self.axes)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(a.out_length for a in self.axes)

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(a.kernel for a in self.axes)

    @property
    def kernel_volume(self) -> int:
        return math.prod(self.kernel)

    @property
    def pad_widths(self) -> tuple[tuple[int, int], ...]:
        """Per axis ``(begin, end)`` cells to add so that every tap, overhang included, is addressable."""
        return tuple((a.pad_begin, a.pad_end + a.end_overhang) for a in self.axes)

    @property
    def needs_padding(self) -> bool:
        return any(b or e for b, e in self.pad_widths)

    @property
    def crops(self) -> bool:
        """True when a negative pad (``convention="jax"``) removes input cells."""
        return any(b < 0 or e < 0 for b, e in self.pad_widths)

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """Spatial shape of the padded buffer that every tap of every window addresses."""
        return tuple(a.buffer_length for a in self.axes)

    def interior(self) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """Per axis ``(input slices, buffer slices)`` of the cells the input and the buffer share."""
        pairs = [a.interior() for a in self.axes]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)

    def cells_read(self) -> numpy.ndarray:
        """(L_0, .., L_{n-1}) True where at least one window reads the input cell.

        A window is the box of its per-axis taps, so a cell is read exactly when each of its
        coordinates is read along its axis.
        """
        result = numpy.ones((), dtype=bool)
        for a in self.axes:
            result = numpy.logical_and.outer(result, a.cells_read())
        return result

    def sees_input(self) -> numpy.ndarray:
        """(O_0, .., O_{n-1}) True where the window reads at least one input cell.

        Always True except under ``convention="jax"``, where a window may lie wholly in padding
        (``lax.reduce_window`` then gives its initial value: -inf for a max, 0 for a sum).
        """
        result = numpy.ones((), dtype=bool)
        for a in self.axes:
            result = numpy.logical_and.outer(result, a.sees_input())
        return result

    def tap_offsets(self):
        """Every tap of the kernel as a tuple ``(m_0, .., m_{n-1})``, in row-major (scan) order."""
        return itertools.product(*(range(a.kernel) for a in self.axes))

    def tap_slices(self, offsets) -> tuple[slice, ...]:
        """Slices of the padded input holding tap ``offsets`` of every window."""
        return tuple(a.tap_slice(m) for a, m in zip(self.axes, offsets))

    def tap_tables(self) -> tuple[Taps, ...]:
        return tuple(a.tap_table() for a in self.axes)

    def divisor(self, count_padding: bool, divisor_override=None) -> numpy.ndarray:
        """(O_0, .., O_{n-1}) what each window's average divides by (a product of per-axis counts)."""
        if divisor_override is not None:
            return numpy.full(self.out_shape, float(divisor_override))
        return _outer_product([a.counted_taps(count_padding).astype(numpy.float64) for a in self.axes])


def _outer_product(vectors) -> numpy.ndarray:
    result = numpy.ones(())
    for v in vectors:
        result = numpy.multiply.outer(result, v)
    return result


def pool_geometry(
    spatial_shape,
    kernel_size,
    stride,
    padding,
    dilation,
    ceil_mode,
    convention: str,
    op: str,
) -> WindowGeometry:
    """Check a windowed op's arguments the way ``convention`` does and return its geometry.

    Raises ValueError or TypeError naming the offending argument and its value: non-positive
    kernel, stride or dilation; padding over half the kernel (PyTorch: ``2*p <= k`` on each side, the
    kernel size, not the dilated span, as PyTorch 2.13 checks); a window that sees no input element
    (padding too large); an output smaller than 1; ceil mode or ``same_lower`` under TensorFlow,
    which has neither.

    ``convention="jax"`` checks only what ``lax.reduce_window`` checks (positive kernel, stride and
    dilation) and refuses ceil mode, which it lacks: pads may be negative, a window may lie wholly in
    padding, and an output length of 0 (the formula clamped at 0) gives an empty output.

    >>> pool_geometry((5, 5), 2, None, 0, 1, False, "torch", "max_pool2d").out_shape
    (2, 2)
    >>> pool_geometry((5,), 2, 2, ((3, -1),), 1, False, "jax", "max_pool1d").axes[0].taps().tolist()
    [[-3, -2], [-1, 0], [1, 2]]
    >>> pool_geometry((5,), 8, 1, 0, 1, False, "jax", "max_pool1d").out_shape
    (0,)
    """
    n = len(spatial_shape)
    check_convention(convention, op)
    kernel = as_int_tuple(kernel_size, n, "kernel_size", op)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else (
        as_int_tuple(stride, n, "stride", op)
    )
    dilation = as_int_tuple(dilation, n, "dilation", op)
    for name, value in (("kernel_size", kernel), ("stride", stride), ("dilation", dilation)):
        if any(v <= 0 for v in value):
            raise ValueError(f"{op}: {name} must be positive, got {name}={value}")
    ceil_mode = check_flag(ceil_mode, "ceil_mode", op)
    if convention in ("tensorflow", "jax") and ceil_mode:
        raise ValueError(f"{op}: convention={convention!r} has no ceil mode, got ceil_mode={ceil_mode!r}")
    if convention == "tensorflow" and isinstance(padding, str) and padding.lower() == "same_lower":
        raise ValueError(f"{op}: convention='tensorflow' has no padding='same_lower'")
    reduce_window = convention == "jax"
    pads = resolve_padding(padding, spatial_shape, kernel, stride, dilation, op, allow_negative=reduce_window)
    explicit = not isinstance(padding, str)
    if convention == "torch" and explicit:
        for (begin, end), k in zip(pads, kernel):
            if 2 * max(begin, end) > k:
                raise ValueError(
                    f"{op}: padding must be at most half of kernel_size, got padding={padding!r} "
                    f"with kernel_size={kernel_size!r}"
                )
    check_window_tables(spatial_shape, kernel, stride, pads, dilation, kernel_size, padding, op)
    axes = tuple(
        axis_windows(L, k, s, p, d, bool(ceil_mode)) for L, k, s, p, d in zip(spatial_shape, kernel, stride, pads, dilation)
    )
    if reduce_window:
        # lax.reduce_window: a padded axis shorter than the window gives no window (never fewer)
        geometry = WindowGeometry(tuple(dataclasses.replace(a, out_length=max(a.out_length, 0)) for a in axes),
                                  bool(ceil_mode), convention)
        check_padded_plane(geometry, spatial_shape, kernel_size, padding, op)
        return geometry
    for axis in axes:
        if axis.out_length < 1:
            raise ValueError(
                f"{op}: output size is too small: input size {tuple(spatial_shape)} with "
                f"kernel_size={kernel_size!r}, stride={stride}, padding={padding!r}, dilation={dilation} "
                f"gives output length {axis.out_length}"
            )
        if not axis.inside().any(axis=1).all():
            raise ValueError(
                f"{op}: padding is too large: with padding={padding!r}, kernel_size={kernel_size!r} and "
                f"dilation={dilation} a window covers only padding"
            )
    geometry = WindowGeometry(axes, bool(ceil_mode), convention)
    check_padded_plane(geometry, spatial_shape, kernel_size, padding, op)
    return geometry


# --------------------------------------------------------------------------------------------------
# Irregular windows: adaptive bins and unpooling
# --------------------------------------------------------------------------------------------------
def _culprit(kernel_size, padding, pads) -> tuple:
    """The argument to name for an absurd window: the padding if there is any, else the kernel."""
    return ("padding", padding) if any(b > 0 or e > 0 for b, e in pads) else ("kernel_size", kernel_size)


def check_window_tables(spatial_shape, kernel, stride, pads, dilation, kernel_size, padding, op: str) -> None:
    """Refuse, before it is built, an (O, k) table of window taps beyond MAX_ELEMENTS on some axis.

    ``O <= (L + b + e + d (k - 1)) / s + 2`` bounds the windows of an axis, padding and ceil mode
    included: a kernel or padding of 10**9 is refused here, at once.
    """
    for L, k, s, (b, e), d in zip(spatial_shape, kernel, stride, pads, dilation):
        windows = (L + max(b, 0) + max(e, 0) + d * (k - 1)) // s + 2
        # name what makes the table large: the dilated span where it outgrows the padding, else _culprit's
        name, value = (("dilation", tuple(dilation)) if (d - 1) * (k - 1) > max(b, 0) + max(e, 0) + k
                       else _culprit(kernel_size, padding, pads))
        check_element_count(k * windows, name, value, op, f"the window table of one axis (kernel_size={kernel_size!r})")


def check_padded_plane(geometry, spatial_shape, kernel_size, padding, op: str) -> None:
    """Refuse a padded copy of a plane whose padding and ceil-mode overhang add more than MAX_ELEMENTS
    cells (every plane is padded as a whole before its windows are read). What is refused is what the
    arguments add, not the plane itself: a huge input is the caller's to give."""
    name, value = _culprit(kernel_size, padding, [(a.pad_begin, a.pad_end) for a in geometry.axes])
    check_element_count(math.prod(geometry.padded_shape) - math.prod(spatial_shape), name, value, op,
                        f"the padding and ceil-mode overhang of one plane of the input (kernel_size={kernel_size!r})")


def geometry_of_keywords(spatial_shape, kwargs: dict, op: str) -> WindowGeometry:
    """:func:`pool_geometry` from a windowed op's keyword arguments, with the ops' defaults (stride the
    kernel, no padding, no dilation, floor mode, PyTorch's convention): how the tests and the oracle's
    self-checks resolve a case's geometry for the loop references.

    >>> geometry_of_keywords((5,), dict(kernel_size=2, ceil_mode=True), "max_pool1d").loop_reference_arguments()
    ((2,), (2,), (0,), (0,), (1,), True)
    """
    return pool_geometry(tuple(spatial_shape), kwargs["kernel_size"], kwargs.get("stride"), kwargs.get("padding", 0),
                         kwargs.get("dilation", 1), kwargs.get("ceil_mode", False), kwargs.get("convention", "torch"), op)


def adaptive_bins(length: int, out_length: int) -> tuple[numpy.ndarray, numpy.ndarray]:
    """Bin ``i`` of ``O`` over ``L`` is ``[floor(i*L/O), ceil((i+1)*L/O))`` (integer arithmetic).

    >>> starts, ends = adaptive_bins(8, 6)
    >>> list(zip(starts.tolist(), ends.tolist()))
    [(0, 2), (1, 3), (2, 4), (4, 6), (5, 7), (6, 8)]
    """
    i = numpy.arange(out_length)
    starts = (i * length) // out_length
    ends = -((-(i + 1) * length) // out_length)
    return starts, ends


def adaptive_taps(length: int, out_length: int) -> Taps:
    """The adaptive bins of one axis (:func:`adaptive_bins`) as unweighted :class:`~poolref._taps.Taps`.

    Bin ``o`` reads ``start_o + m`` for ``m < end_o - start_o``; K is the longest bin, and the taps
    past a shorter bin's end are not read (they hold the bin's last position, so a gather stays in
    bounds). ``step = 1``. PyTorch sums a bin from 0 (``sum = 0; sum += x``), so the table sums
    ``from_zero``: a bin of ``-0.0`` sums to ``+0.0``. The one table of adaptive average and max
    pooling, and so of ``interpolate(mode="area")`` under ``convention="torch"``.

    >>> table = adaptive_taps(5, 3)  # bins [0, 2) [1, 4) [3, 5)
    >>> table.index.tolist(), table.reads().tolist()
    ([[0, 1, 1], [1, 2, 3], [3, 4, 4]], [[True, True, False], [True, True, True], [True, True, False]])
    """
    starts, ends = adaptive_bins(length, out_length)
    taps = numpy.arange(int((ends - starts).max()))
    positions = starts[:, None] + taps[None, :]  # (O, K)
    read = positions < ends[:, None]
    index = numpy.minimum(positions, ends[:, None] - 1)
    return Taps(length, index, None, None if read.all() else read, step=1, from_zero=True)


def unpool_output_shape(in_shape, kernel, stride, pads, output_size, op: str) -> tuple[int, ...]:
    """Spatial output shape of max unpooling: ``(L_in - 1)*s - p_begin - p_end + k`` per axis by default.

    A given ``output_size`` (spatial dims, optionally preceded by N and C) must lie strictly within
    ``stride`` of the default, as PyTorch requires.
    """
    n = len(in_shape)
    default = tuple(
        (L - 1) * s - b - e + k for L, s, (b, e), k in zip(in_shape, stride, pads, kernel)
    )
    if output_size is None:
        if any(v < 1 for v in default):
            raise ValueError(f"{op}: the default output size {default} is not positive")
        return default
    if not isinstance(output_size, (tuple, list)) or len(output_size) not in (n, n + 1, n + 2):
        raise TypeError(f"{op}: output_size must be a sequence of {n} ints, got output_size={output_size!r}")
    size = as_int_tuple(tuple(output_size)[-n:], n, "output_size", op)
    for d, (want, base, s) in enumerate(zip(size, default, stride)):
        if not base - s < want < base + s:
            raise ValueError(
                f"{op}: output_size={tuple(output_size)!r} must be within the stride of the default "
                f"size {default} (axis {d}: between {base - s} and {base + s}, exclusive)"
            )
    return size
