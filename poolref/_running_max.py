r"""The running maximum of every max-type op: one rule per framework, one place that applies it.

Every max-type op of poolref (``max_pool{1,2,3}d``, adaptive and global max pooling, fractional max
pooling, ``roi_pool``, ONNX's max-mode ``roi_align``, DynOPool's max aggregate) scans the taps of each
window in a fixed order (row-major over the window) and keeps a running *best* and the tap holding
it, the *winner*. Frameworks agree on the scan and differ in three choices only:

* **where the scan starts**: with the window's first tap, taken whatever it holds (NaN and
  :math:`-\infty` included), or with a *floor* value and no winner;
* **when a later tap replaces the best** (the comparison, which decides ties and NaN);
* **what the output is**: the winner's value (the floor where nothing was taken), or, for JAX,
  the IEEE maximum of the whole window, which need not be the winner's value.

The gradient goes to the winner and nowhere else, and nowhere at all where there is no winner: the
backward is a scatter of each upstream entry onto its winner (:func:`poolref._windows.scatter_to_planes`), the adjoint
of the forward's gather (:func:`poolref._windows.gather_from_planes`). A scatter adds, it never multiplies, so an
infinite or NaN upstream entry reaches its winner and no other element.

The rules (checked against torch 2.13, TensorFlow 2.21, ONNX Runtime 1.32 and JAX 0.10; the docs page
"Conventions" has the table and worked examples):

==================  ====================  ==============================  ==========================
rule                start                 a later tap ``v`` replaces      used by
==================  ====================  ==============================  ==========================
``torch``           first tap             ``v > best or isnan(v)``        PyTorch max pooling (all);
                                                                          DynOPool's max
``onnx``            first tap             ``v > best``                    ORT MaxPool (with Indices,
                                                                          float64), ORT RoiAlign max
``tensorflow``      lowest finite value   ``v > best``                    ``tf.nn.max_pool{1,2,3}d``
``tensorflow        first tap             ``v > best``                    ``tf.nn.max_pool_with_argmax``
argmax``
``jax``             first tap, padding    ``not (best >= v)``             ``lax.reduce_window`` max
                    included (as -inf)                                    (its gradient); values are
                                                                          the IEEE maximum
``torchvision       ``-FLT_MAX``          ``v > best``                    ``torchvision.ops.roi_pool``
roi_pool``
``onnx              ``-FLT_MAX``          ``not (v < best)``              ORT ``MaxRoiPool``
MaxRoiPool``
==================  ====================  ==============================  ==========================

What follows, in words:

* ``torch``: ties go to the first tap; a NaN always wins, so the LAST NaN is the winner and the
  output is NaN; a window of only :math:`-\infty` outputs :math:`-\infty` with its first tap as the
  winner; ``[-0., 0.]`` gives ``-0.`` at index 0 (value and index of the first of equal values).
* ``onnx`` / ``tensorflow argmax``: ties to the first; a NaN is kept only when it is the window's
  first tap (nothing is greater than NaN, and NaN is greater than nothing).
* ``tensorflow``: NaN is ignored; a window of only NaN or :math:`-\infty` outputs the dtype's lowest
  finite value (``-FLT_MAX``, ``-DBL_MAX``, -65504) and has no winner (its output is constant).
* ``jax``: the value is NaN if the window holds a NaN, else its maximum, ``+0`` above ``-0``; the
  gradient goes to the first maximum among the taps after the window's last NaN (to that NaN if it
  ends the window); padding taps compete as :math:`-\infty`, so a window of padding and
  :math:`-\infty` sends its gradient nowhere.
* ``torchvision roi_pool``: as ``tensorflow`` from ``-FLT_MAX`` (float16: ``-inf``).
* ``onnx MaxRoiPool`` (``std::max``): the LAST of ties; a NaN is taken and replaced by the next tap,
  so it survives only as the window's last tap.

:func:`window_max` states each rule as a plain loop over one window (the loop references call it);
:class:`RunningMax` applies it to every window at once, one tap at a time (the vectorised ops call
it). Examples, one window each (``key`` names the element, None marks a padding tap):

>>> import numpy as np
>>> taps = [(np.float64(v), key) for key, v in enumerate([np.nan, 1.0, 3.0, np.nan])]
>>> for rule in (TORCH, ONNX, TENSORFLOW, JAX):
...     print(rule.name, *window_max(rule, taps))
torch nan 3
onnx nan 0
tensorflow 3.0 2
jax nan 3
>>> zeros = [(np.float64(-0.0), 0), (np.float64(0.0), 1)]
>>> for rule in (TORCH, JAX, ONNX_MAX_ROI_POOL):
...     print(rule.name, *window_max(rule, zeros))
torch -0.0 0
jax 0.0 0
onnx MaxRoiPool 0.0 1
>>> print(*window_max(TENSORFLOW, [(np.float32(-np.inf), 0), (np.float32(np.nan), 1)]))
-3.4028235e+38 None
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy

from ._backend import array_module

__all__ = [
    "MaxRule", "TORCH", "ONNX", "TENSORFLOW", "TENSORFLOW_ARGMAX", "JAX", "TORCHVISION_ROI_POOL",
    "ONNX_MAX_ROI_POOL", "MAX_POOL_RULES", "max_pool_rule", "FLT_MAX", "NO_TAP", "lowest_value", "window_max",
    "RunningMax", "first_inside_tap", "window_indices",
]

# torchvision's and ONNX Runtime's RoI pooling start every running maximum at -FLT_MAX
FLT_MAX = float(numpy.finfo(numpy.float32).max)
NO_TAP = -1  # "no winner" in a winner array, and "no element" in an index array


# ==================================================================================================
# The comparisons. Written with ``!=`` for "is NaN" and without negation, so that one definition
# serves Python floats, NumPy scalars, and NumPy or CuPy arrays alike.
# ==================================================================================================
def _greater_or_nan(value, best):
    """PyTorch: ``value > best or isnan(value)``."""
    return (value > best) | (value != value)


def _greater(value, best):
    """``value > best``: false whenever either is NaN."""
    return value > best


def _not_at_most(value, best):
    """``not (best >= value)`` (XLA's select with ``ge``): also true where either is NaN."""
    return (best < value) | (best != best) | (value != value)


def _not_below(value, best):
    """``not (value < best)`` (``std::max(value, best)`` keeps ``value`` unless it is smaller)."""
    return (value >= best) | (value != value) | (best != best)


def lowest_value(dtype):
    """What padding reads in a max: -inf for floating dtypes, the smallest integer for integer dtypes."""
    dtype = numpy.dtype(dtype)
    return -math.inf if dtype.kind == "f" else int(numpy.iinfo(dtype).min)


def _lowest_finite(dtype):
    """TensorFlow's start: ``Eigen::NumTraits<T>::lowest()``, the most negative finite value."""
    dtype = numpy.dtype(dtype)
    return dtype.type(numpy.finfo(dtype).min) if dtype.kind == "f" else dtype.type(numpy.iinfo(dtype).min)


def _minus_flt_max(dtype):
    """The RoI pooling kernels' start, ``-FLT_MAX``, in ``dtype`` (float16 rounds it to -inf)."""
    dtype = numpy.dtype(dtype)
    with numpy.errstate(over="ignore"):
        return dtype.type(-FLT_MAX)


@dataclass(frozen=True)
class MaxRule:
    """One framework's running maximum (see the module docstring for every rule in words).

    Attributes
    ----------
    name : str
    takes : callable ``(value, best) -> bool``
        Whether a later tap replaces the best so far.
    floor : callable ``dtype -> value``, or None
        The value the scan starts from, with no winner. None: the window's first tap is taken
        whatever it holds (for ``padding_competes`` rules even a padding tap).
    ieee_value : bool
        The output is the IEEE maximum of the window (NaN if any NaN, ``+0`` above ``-0``), not the
        winner's value (JAX).
    padding_competes : bool
        Padding taps are elements of the window reading -inf; one that wins sends its gradient
        nowhere (JAX's ``reduce_window`` pads its operand). Otherwise padding is never taken.
    """

    name: str
    takes: Callable
    floor: Optional[Callable] = None
    ieee_value: bool = False
    padding_competes: bool = False

    def __repr__(self) -> str:
        return f"MaxRule({self.name!r})"


TORCH = MaxRule("torch", _greater_or_nan)
ONNX = MaxRule("onnx", _greater)
TENSORFLOW = MaxRule("tensorflow", _greater, floor=_lowest_finite)
TENSORFLOW_ARGMAX = MaxRule("tensorflow argmax", _greater)
JAX = MaxRule("jax", _not_at_most, ieee_value=True, padding_competes=True)
TORCHVISION_ROI_POOL = MaxRule("torchvision roi_pool", _greater, floor=_minus_flt_max)
ONNX_MAX_ROI_POOL = MaxRule("onnx MaxRoiPool", _not_below, floor=_minus_flt_max)

MAX_POOL_RULES = {"torch": TORCH, "onnx": ONNX, "tensorflow": TENSORFLOW, "jax": JAX}


def max_pool_rule(convention: str, with_indices: bool = False) -> MaxRule:
    """The rule of ``max_pool{n}d(..., convention=...)``.

    TensorFlow has two max-pooling ops with different rules: ``tf.nn.max_pool{1,2,3}d`` (NaN ignored,
    floor at the lowest finite value) and ``tf.nn.max_pool_with_argmax``, the only one returning
    indices (first tap, then strictly greater); ``return_indices=True`` selects the second.

    >>> max_pool_rule("tensorflow"), max_pool_rule("tensorflow", with_indices=True)
    (MaxRule('tensorflow'), MaxRule('tensorflow argmax'))
    """
    if convention == "tensorflow" and with_indices:
        return TENSORFLOW_ARGMAX
    return MAX_POOL_RULES[convention]


def _ieee_maximum(best, value, xp):
    """``maximum`` as IEEE 754-2019 defines it: NaN if either is NaN, and ``+0 > -0``.

    (``numpy.maximum`` propagates NaN, but which of two equal zeros it returns depends on the dtype.)
    """
    take = (value > best) | (value != value) | ((value == best) & ~xp.signbit(value))
    return xp.where(take, value, best)


# ==================================================================================================
# One window, by a plain loop: the executable statement of every rule (used by the loop references)
# ==================================================================================================
def window_max(rule: MaxRule, taps, dtype=None):
    """Apply ``rule`` to ONE window by a plain loop: returns ``(output value, key of the winner)``.

    ``taps`` lists ``(value, key)`` in scan order; ``key`` names the element (a flat index, a
    position, ...) and is None for a padding tap, whose value is ignored: it reads as -inf where
    ``rule.padding_competes``, else it is skipped. The winner's key is None where there is no
    winner (a floor rule that took nothing, or a padding tap that won).

    >>> print(*window_max(TORCH, [(2.0, "a"), (5.0, "b"), (5.0, "c")]))
    5.0 b
    >>> print(*window_max(JAX, [(None, None), (float("-inf"), "a")]))  # a padding tap wins: no gradient
    -inf None
    """
    if dtype is None:
        first = next((v for v, key in taps if key is not None), 0.0)
        dtype = numpy.asarray(first).dtype
    lowest = numpy.asarray(lowest_value(dtype), dtype=dtype)[()]
    best = rule.floor(dtype) if rule.floor is not None else lowest
    winner = None
    started = rule.floor is not None  # floor rules compare from the start
    ieee = lowest
    for value, key in taps:
        if key is None:  # a padding tap
            if not rule.padding_competes:
                continue
            value = lowest
        if not started or rule.takes(value, best):  # the first tap is taken whatever it holds
            best, winner, started = value, key, True
        ieee = _ieee_maximum(ieee, value, numpy)[()]
    return (ieee if rule.ieee_value else best), winner


# ==================================================================================================
# Every window at once, one tap at a time (used by the vectorised ops)
# ==================================================================================================
class RunningMax:
    r"""The running maximum of every window at once, fed one tap (an array over all windows) at a time.

    Parameters
    ----------
    rule : MaxRule
    shape : tuple
        ``(.., O..)``, one entry per window.
    dtype, xp
        The values' dtype, and numpy or cupy.
    taps : int
        Taps per window.
    first_tap : int or (O..) int array
        Number of each window's first tap inside the input, where the scan starts for the
        first-tap rules (``padding_competes`` rules start at tap 0).
    nan_possible : bool
        False when the input holds no NaN, which lets PyTorch's scan skip its NaN test.

    Attributes
    ----------
    winner : (.., O..) int array
        Number of each window's winning tap, ``NO_TAP`` (-1) where there is none.

    Feed every tap with :meth:`add` in scan order, then read the output with :meth:`values`.
    """

    def __init__(self, rule: MaxRule, shape, dtype, xp, *, taps: int, first_tap=0, nan_possible: bool = True):
        dtype = numpy.dtype(dtype)
        self.rule, self.xp = rule, xp
        self.nan_possible = nan_possible and dtype.kind == "f"
        self.first_tap = 0 if rule.padding_competes else first_tap
        self.fast = rule is TORCH  # the speed trick of add(); PyTorch's rule is the default of every op
        if self.fast:
            self.best = xp.full(shape, lowest_value(dtype), dtype=dtype)
            self.winner = xp.empty(shape, dtype=numpy.min_scalar_type(taps))
            self.winner[...] = xp.asarray(first_tap)  # taking it is a no-op unless it holds -inf
            self._take = xp.empty(shape, dtype=bool)  # scratch, reused by every tap
        else:
            start = rule.floor(dtype) if rule.floor is not None else lowest_value(dtype)
            self.best = xp.full(shape, start, dtype=dtype)
            self.winner = xp.full(shape, NO_TAP, dtype=numpy.int32)
        self.ieee = xp.full(shape, lowest_value(dtype), dtype=dtype) if rule.ieee_value else None

    def add(self, value, tap_number: int):
        """Scan tap ``tap_number`` (numbered row-major over the window): ``value`` is (.., O..)."""
        xp = self.xp
        if self.fast:
            # Speed trick (PyTorch's rule only): masked copies (where/copyto) are several times
            # slower than arithmetic, so
            # * best = maximum(best, value) equals "value if take else best" except that of two
            #   equal zeros it may keep the other's sign, which no comparison sees; the output is
            #   read at the winner instead (values());
            # * a tap can only be taken after the winner so far, so winner = max(winner, take * t).
            take = self._take
            xp.greater(value, self.best, out=take)
            if self.nan_possible:
                take |= xp.isnan(value)
            xp.maximum(self.best, value, out=self.best)
            if self.winner.dtype == numpy.uint8:
                flag = take.view(numpy.uint8)  # reuse the scratch buffer: take is not needed any more
                xp.multiply(flag, numpy.uint8(tap_number), out=flag)
            else:
                flag = take.astype(self.winner.dtype) * self.winner.dtype.type(tap_number)
            xp.maximum(self.winner, flag, out=self.winner)
            return
        # the plain rule: take where the rule says so, or where this is the window's first tap
        take = self.rule.takes(value, self.best)
        if self.rule.floor is None:
            take = take | (xp.asarray(self.first_tap) == tap_number)
        self.best = xp.where(take, value, self.best)
        self.winner = xp.where(take, numpy.int32(tap_number), self.winner)
        if self.ieee is not None:
            self.ieee = _ieee_maximum(self.ieee, value, xp)

    def missed_nan(self) -> bool:
        """True when a scan told ``nan_possible=False`` met a NaN after all: scan again with True.

        Speed trick (PyTorch's fast scan): rather than search the whole input for a NaN before
        scanning (a pass over the input), a caller may scan without the NaN test and ask this after.
        ``maximum`` propagates NaN, so a window's running best is NaN exactly when one of its taps
        is; only the NaN test's winner (the last NaN) can then be wrong, and only then is a rescan
        needed. Always False for the other rules, which decide NaN in their comparison.
        """
        if not self.fast or self.nan_possible or self.best.dtype.kind != "f":
            return False
        return bool(self.xp.isnan(self.best).any())

    def values(self, read_at_winner):
        """The output of every window: the winner's value (the floor where nothing was taken), or the
        IEEE maximum (JAX).

        ``read_at_winner()`` returns the input at each winner; it is called only for PyTorch's fast
        scan, whose ``best`` may hold a zero of the wrong sign (see :meth:`add`).
        """
        if self.ieee is not None:
            return self.ieee
        if self.fast and bool((self.best == 0).any()):
            # (speed trick, continued) only a zero maximum can differ from the winner's value, so the
            # input is read at the winners only when there is one
            return read_at_winner()
        return self.best


# ==================================================================================================
# From tap numbers to flat indices, and the gather / scatter pair of the forward and backward
# ==================================================================================================
def first_inside_tap(tables, kernel, xp):
    """(O_0, .., O_{n-1}) number of each window's first tap inside the input, in row-major order.

    ``tables`` are the per-axis :class:`poolref._taps.Taps` of the windows; every window has an inside tap.
    """
    n = len(tables)
    number = xp.zeros((1,) * n, dtype=numpy.int64)
    for a, table in enumerate(tables):
        first = xp.asarray(table.reads().argmax(axis=1))
        number = number * kernel[a] + first.reshape([-1 if b == a else 1 for b in range(n)])
    return number


def window_indices(winner, tables, in_shape, kernel):
    """Turn each window's winning tap number into a flat index within its (n, c) plane.

    ``winner`` (.., O_0, .., O_{n-1}) counts taps row-major over ``kernel``; ``tables`` are the
    per-axis :class:`poolref._taps.Taps` of the windows, evenly spaced: tap ``m`` of window ``o``
    sits at ``origins[o] + m*step`` on each axis, so the flat index splits into a per-window base and
    a per-tap offset, ``base[o] + offset[winner]`` (PyTorch's layout: ``h*W + w`` in 2-D,
    ``(d*H + h)*W + w`` in 3-D). The index is -1 where there is no winner or the winner is a tap the
    window does not read (a padding tap, possible under the JAX rule).
    """
    xp = array_module(winner)
    n = len(tables)
    plane_strides = [math.prod(in_shape[a + 1:]) for a in range(n)]
    base = numpy.zeros((1,) * n, dtype=numpy.int64)  # (O_0, .., O_{n-1}) flat index of tap 0
    offset = numpy.zeros((1,) * n, dtype=numpy.int64)  # (k_0, .., k_{n-1}) flat offset of each tap
    inside = numpy.ones((1,) * (2 * n), dtype=bool)  # (O_0, .., O_{n-1}, k_0, .., k_{n-1})
    for a, (table, stride) in enumerate(zip(tables, plane_strides)):
        along = [-1 if b == a else 1 for b in range(n)]
        base = base + (table.origins() * stride).reshape(along)
        offset = offset + (numpy.arange(kernel[a]) * table.step * stride).reshape(along)
        table_shape = [table.out_length if b == a else 1 for b in range(n)]
        table_shape += [table.taps_per_output if b == a else 1 for b in range(n)]
        inside = inside & table.reads().reshape(table_shape)
    if winner.dtype.kind == "u":  # PyTorch's fast scan: a winner always, never in padding
        return xp.asarray(base) + xp.take(xp.asarray(offset.ravel()), winner)
    found = winner >= 0
    tap = xp.where(found, winner, 0).astype(numpy.int64)
    index = xp.asarray(base) + xp.take(xp.asarray(offset.ravel()), tap)
    # padding winners: the window's own inside table, read at its winning tap
    out_shape = inside.shape[:n]
    inside = xp.asarray(inside.reshape(out_shape + (math.prod(kernel),)))  # (O.., taps)
    lead = winner.shape[: winner.ndim - n]
    in_window = xp.take_along_axis(xp.broadcast_to(inside, lead + inside.shape), tap[..., None], axis=-1)[..., 0]
    return xp.where(found & in_window, index, NO_TAP)
