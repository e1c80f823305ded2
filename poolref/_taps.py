r"""Taps along one axis: which input positions each output reads, and with which weight.

Every op of poolref that is separable reads its input one axis at a time, and along one axis of
``L`` input positions output ``o`` of ``O`` reads a few of them. One table says which:

.. math:: y_o = \sum_{k \,:\, \mathrm{read}_{o,k}} w_{o,k}\, x_{\mathrm{index}_{o,k}}

:class:`Taps` is that table, ``(index, weight, read)`` of shape (O, K), and it is the only one:

* **pooling windows** (``poolref._geometry.AxisWindows.tap_table``): tap ``m`` of window ``o`` reads
  ``o*stride - pad_begin + m*dilation``; the taps in the padding are not read. Unweighted
  (``weight=None``): a max compares the taps, it does not weigh them. The taps are evenly spaced
  (``step`` is the dilation), which lets the running max turn a winning tap number into an input
  position with arithmetic instead of a gather (``poolref._running_max.window_indices``).
* **adaptive bins** (``poolref._geometry.adaptive_taps``): bin ``o`` reads
  ``floor(o L / O) .. ceil((o + 1) L / O) - 1``; K is the longest bin and the taps past a shorter
  bin's end are not read. Unweighted, ``step = 1``: adaptive max pooling scans them, adaptive average
  pooling (and so PyTorch's ``interpolate(mode="area")``) sums them and divides by the bin areas.
* **interpolation tables** (``poolref._sampling_weights`` and the TensorFlow and JAX modules beside
  it): weighted, one rule per framework; a ``dense`` table reads every position (JAX's resize is a
  matrix product).

The difference between a window and an interpolation table is only the weights: ``weight=None``
means every read tap counts once. :meth:`Taps.transpose` is the table of the adjoint map (for each
input position, the outputs that read it), the backward of every linear op built on these tables:
adaptive average pooling and ``interpolate`` alike.

Besides :class:`Taps`: :class:`Lerp`, TensorFlow's ``a + (b - a) t`` form of linear interpolation,
which is not a weighted sum on non-finite input; :func:`resample`, which applies a table along one
axis of an array (numpy or cupy); and :func:`contract`, a matrix along one axis.

Signed zeros. A tap that is not read adds nothing: the masked value is ``-0.0``, the one number
whose addition leaves every value unchanged (``+0.0 + -0.0 == +0.0``; ``0.0`` would turn a sum of
``-0.0`` into ``+0.0``). A framework whose loop starts its sum at ``0`` (``sum = 0; sum += ...``:
every backward, which scatter-adds into a zeroed gradient, and TensorFlow's area and antialiased
resizes) never returns ``-0.0``; a table with ``from_zero`` says so, and :func:`resample` adds
``+0.0`` at the end, which gives the same result as starting from ``+0.0`` (it changes a ``-0.0`` to
``+0.0`` and nothing else).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

from ._backend import array_module

__all__ = ["Taps", "Lerp", "resample", "contract"]


@dataclass(frozen=True, eq=False)
class Taps:
    r"""One axis's taps: ``y[o] = sum_k weight[o, k] * x[index[o, k]]`` over the taps ``k`` with
    ``read[o, k]``.

    Parameters
    ----------
    length : int
        ``L``, the length of the axis that is read.
    index : (O, K) int64 array
        Positions in ``[0, L)``. Taps that are not read hold a valid position too, so that gathers
        never go out of bounds. A position may repeat within a row (PyTorch's last linear tap reads
        the last pixel twice).
    weight : (O, K) float64 array or None
        None: every read tap weighs 1 (a window of a max, a bin of a sum).
    read : (O, K) bool array or None
        None: every tap is read.
    dense : bool
        Row ``o`` reads every position ``0 .. L-1`` in order (K = L): applied as a matrix product.
    step : int or None
        Set where the taps of every row are evenly spaced, tap ``m`` of row ``o`` at
        ``origins()[o] + m*step`` wherever it is read (pooling windows: the dilation; adaptive bins: 1).
    from_zero : bool
        The framework's sum starts at ``+0.0`` (see the module's notes on signed zeros).

    Examples
    --------
    >>> t = Taps(3, numpy.array([[0, 1], [2, 2]]), numpy.array([[0.5, 0.5], [1.0, 0.0]]))
    >>> t.matrix()
    array([[0.5, 0.5, 0. ],
           [0. , 0. , 1. ]])
    >>> t.transpose().index.tolist(), t.transpose().weight.tolist()
    ([[0, 0], [0, 0], [1, 1]], [[0.5, 0.0], [0.5, 0.0], [1.0, 0.0]])
    >>> t.transpose().read.tolist()
    [[True, False], [True, False], [True, True]]
    """

    length: int
    index: numpy.ndarray
    weight: numpy.ndarray | None = None
    read: numpy.ndarray | None = None
    dense: bool = False
    step: int | None = None
    from_zero: bool = False

    @classmethod
    def one_each(cls, length: int, index) -> Taps:
        """Each output reads one position, with weight 1 (nearest-neighbour rules).

        >>> Taps.one_each(2, [0, 0, 1]).index.tolist()
        [[0], [0], [1]]
        """
        index = numpy.asarray(index, numpy.int64)
        return cls(length, index[:, None], numpy.ones((index.size, 1)))

    @property
    def out_length(self) -> int:
        return self.index.shape[0]

    @property
    def taps_per_output(self) -> int:
        return self.index.shape[1]

    def reads(self) -> numpy.ndarray:
        """(O, K) bool: which taps are read."""
        return numpy.ones(self.index.shape, bool) if self.read is None else self.read

    def weights(self) -> numpy.ndarray:
        """(O, K) float64: the weights, 1 for an unweighted table."""
        return numpy.ones(self.index.shape) if self.weight is None else self.weight

    def origins(self) -> numpy.ndarray:
        """(O,) int64: where tap 0 of each row sits for evenly spaced taps (``step`` set), padding included.

        Found from the row's first read tap ``f``: ``index[o, f] - f*step``. A row that reads nothing
        (a window wholly in padding) gets ``index[o, 0]``; no tap of it is ever named.

        >>> Taps(4, numpy.array([[0, 0, 1], [1, 2, 3]]), read=numpy.array([[False, True, True], [True] * 3]), step=1).origins().tolist()
        [-1, 1]
        """
        if self.step is None:
            raise ValueError("Taps.origins: the taps are not evenly spaced (step=None)")
        first = self.reads().argmax(axis=1)  # 0 where a row reads nothing
        return self.index[numpy.arange(self.out_length), first] - first * self.step

    def matrix(self) -> numpy.ndarray:
        """The (O, L) matrix of the map (repeated positions add up)."""
        matrix = numpy.zeros((self.out_length, self.length))
        rows = numpy.broadcast_to(numpy.arange(self.out_length)[:, None], self.index.shape)
        keep = self.reads()
        numpy.add.at(matrix, (rows[keep], self.index[keep]), self.weights()[keep])
        return matrix

    def transpose(self) -> Taps:
        """The table of the adjoint map, (L, K'): for each input position, the outputs that read it.

        Each input lists its readers in the order ``(o, k)`` (outputs ascending, then taps), the order
        in which a scatter-add over the outputs accumulates them; K' is the most readers any input
        has (at least 1). Every tap read here is a tap read by the forward, with the same weight, so
        a zero weight times an infinite gradient is NaN in the backward exactly where the forward
        read that zero-weight tap. A scatter-add accumulates into zeros: the transpose sums
        ``from_zero``.

        >>> bins = Taps(3, numpy.array([[0, 1], [1, 2]]))  # [0, 2) and [1, 3): cell 1 is in both
        >>> back = bins.transpose()
        >>> back.index.tolist(), back.reads().tolist(), back.weight
        ([[0, 0], [0, 1], [1, 0]], [[True, False], [True, True], [True, False]], None)
        """
        O, L = self.out_length, self.length
        if self.dense:
            return Taps(O, numpy.broadcast_to(numpy.arange(O), (L, O)), self.weights().T.copy(), None, dense=True)
        rows = numpy.broadcast_to(numpy.arange(O)[:, None], self.index.shape)
        keep = self.reads()
        outputs, inputs, weights = rows[keep], self.index[keep], self.weights()[keep]  # in (o, k) order
        order = numpy.argsort(inputs, kind="stable")  # grouped by input, each group still in (o, k) order
        outputs, inputs, weights = outputs[order], inputs[order], weights[order]
        counts = numpy.bincount(inputs, minlength=L)
        width = max(int(counts.max(initial=0)), 1)
        slot = numpy.arange(inputs.size) - (numpy.cumsum(counts) - counts)[inputs]  # rank within its group
        index = numpy.zeros((L, width), numpy.int64)
        weight = numpy.zeros((L, width))
        read = numpy.zeros((L, width), bool)
        index[inputs, slot], weight[inputs, slot], read[inputs, slot] = outputs, weights, True
        return Taps(O, index, None if self.weight is None else weight, None if read.all() else read, from_zero=True)


@dataclass(frozen=True, eq=False)
class Lerp:
    r"""TensorFlow's linear interpolation along one axis: ``y[o] = a + (b - a) * t`` with
    ``a = x[lower[o]]``, ``b = x[upper[o]]``, ``t = fraction[o]``.

    Not a weighted sum where values are not finite: an infinite ``a`` gives NaN whatever ``t``
    (``inf + (b - inf) t``), and ``lower == upper`` with an infinite value gives ``inf - inf = NaN``.
    Its backward (``ResizeBilinearGrad``) is the weighted scatter of :meth:`weighted`.

    >>> Lerp(2, numpy.array([0]), numpy.array([1]), numpy.array([0.25])).weighted().weight.tolist()
    [[0.75, 0.25]]
    """

    length: int
    lower: numpy.ndarray  # (O,) int64
    upper: numpy.ndarray  # (O,) int64
    fraction: numpy.ndarray  # (O,) float64 (float32 values)

    @property
    def out_length(self) -> int:
        return self.lower.shape[0]

    def weighted(self) -> Taps:
        """The same interpolation as a weighted sum of both taps, ``(1 - t) a + t b``, both always read.

        ``1 - t`` is exact in float64 (``t`` holds a float32 value), so the backward is the exact
        transpose of the forward, the true derivative (TensorFlow's ``ResizeBilinearGrad`` rounds
        ``1 - t`` to float32, a difference far below the float32 tolerance its results are held to).
        """
        t = self.fraction.astype(numpy.float64)
        weight = numpy.stack([1.0 - t, t], axis=1)
        return Taps(self.length, numpy.stack([self.lower, self.upper], axis=1), weight)


def contract(a, matrix, dim: int):
    """Apply ``matrix`` (A, B) to dimension ``dim`` (length B) of ``a``; that dimension becomes A."""
    shape = a.shape
    lead, rest = math.prod(shape[:dim]), math.prod(shape[dim + 1:])
    if rest == 1:  # the last axis: one matrix product over all lines at once
        out = a.reshape(lead, shape[dim]) @ matrix.T
    else:
        out = matrix @ a.reshape(lead, shape[dim], rest)
    return out.reshape(shape[:dim] + (matrix.shape[0],) + shape[dim + 1:])


def _along(dim: int, ndim: int) -> list:
    """The shape that broadcasts an (O,) vector along dimension ``dim`` of an ``ndim``-dimensional array."""
    return [-1 if d == dim else 1 for d in range(ndim)]


def _side_by_side(taps: Taps) -> bool:
    """Whether the rows are equal runs of consecutive positions that tile the axis (L = O * K)."""
    O, K = taps.index.shape
    return taps.read is None and O * K == taps.length and bool((taps.index.ravel() == numpy.arange(taps.length)).all())


def resample(y, reader, dim: int):
    r"""Resample dimension ``dim`` of ``y`` with a :class:`Taps` or :class:`Lerp`; None copies.

    Computed in the dtype of ``y`` (give it the accumulation dtype). A gather table is applied tap by
    tap, ``y_o = sum_k w_{o,k} y[i_{o,k}]`` starting from the first tap as the frameworks' loops do
    (``+ 0`` at the end where the table sums ``from_zero``), the unread taps masked out (they add
    ``-0.0``, nothing, and are never multiplied by 0); a dense table is a matrix product, in which
    every zero weight meets its input. No warning escapes for ``0 * inf`` or ``inf - inf``.
    Only the taps of a row are read, so a NaN or an infinity reaches exactly the outputs that read it.

    >>> x = numpy.array([[1.0, 3.0, numpy.inf]])
    >>> resample(x, Taps(3, numpy.array([[0, 1], [1, 2]]), numpy.array([[0.5, 0.5], [1.0, 0.0]])), 1)
    array([[ 2., nan]])
    >>> resample(x, Taps(3, numpy.array([[0, 1], [1, 2]])), 1)  # unweighted: bin sums
    array([[ 4., inf]])
    >>> resample(x, Lerp(3, numpy.array([0, 2]), numpy.array([1, 2]), numpy.array([0.5, 0.0])), 1)
    array([[ 2., nan]])
    """
    if reader is None:
        return y
    xp = array_module(y)
    with numpy.errstate(invalid="ignore", over="ignore"):  # inf - inf and 0 * inf are NaN, as they should be
        if isinstance(reader, Lerp):
            a = xp.take(y, xp.asarray(reader.lower), axis=dim)
            b = xp.take(y, xp.asarray(reader.upper), axis=dim)
            b -= a
            b *= xp.asarray(reader.fraction, dtype=y.dtype).reshape(_along(dim, y.ndim))
            a += b
            return a
        if reader.dense:
            return contract(y, xp.asarray(reader.weight, dtype=y.dtype), dim)
        if reader.weight is None and reader.from_zero and _side_by_side(reader):
            # (speed trick) equal bins side by side, global pooling too: a reshape and one sum, in
            # numpy's (pairwise) order of summation
            total = y.reshape(y.shape[:dim] + reader.index.shape + y.shape[dim + 1:]).sum(axis=dim + 1)
        else:
            total = _tap_by_tap(y, reader, dim, xp)
        if reader.from_zero:
            total += 0.0  # the same as starting the sum at +0.0: turns a -0.0 into +0.0, nothing else
        return total


def _tap_by_tap(y, reader: Taps, dim: int, xp):
    """``sum_k w_{o,k} y[i_{o,k}]`` over the read taps, in the order of the taps (see :func:`resample`)."""
    along = _along(dim, y.ndim)
    index, read = reader.index, reader.read
    if reader.weight is None and read is not None and reader.out_length > reader.length:
        # (speed trick) growing: the unread taps read a -0.0 cell appended to the (smaller) source
        # instead of being masked in the (larger) result; the same sums
        cell = xp.full(y.shape[:dim] + (1,) + y.shape[dim + 1:], -0.0, dtype=y.dtype)
        y = xp.concatenate([y, cell], axis=dim)
        index, read = numpy.where(read, index, reader.length), None
    total = None
    for k in range(index.shape[1]):  # a handful of taps
        if total is not None and read is not None and 2 * int(read[:, k].sum()) < read.shape[0]:
            # (speed trick) a tap that fewer than half the outputs read: added to those outputs only,
            # in the same order (the taps before it are in their sums already)
            rows = numpy.flatnonzero(read[:, k])
            position = (slice(None),) * (dim % y.ndim) + (xp.asarray(rows),)
            term = xp.take(y, xp.asarray(index[rows, k]), axis=dim)
            if reader.weight is not None:
                term *= xp.asarray(reader.weight[rows, k], dtype=y.dtype).reshape(along)
            total[position] += term
            continue
        term = xp.take(y, xp.asarray(index[:, k]), axis=dim)  # (.., O, ..) tap k of every output
        if reader.weight is not None:
            term *= xp.asarray(reader.weight[:, k], dtype=y.dtype).reshape(along)
        if read is not None and not read[:, k].all():
            # the outputs that do not read tap k add -0.0 there (nothing); overwritten in place at
            # those few positions along dim (a speed trick: a where() would copy the whole term)
            unread = xp.asarray(numpy.flatnonzero(~read[:, k]))
            term[(slice(None),) * (dim % y.ndim) + (unread,)] = y.dtype.type(-0.0)
        if total is None:
            total = term
        else:
            total += term
    return total
