r"""Plain-loop reference for the padding modes (zeros, reflect, replicate, circular), forward and adjoint.

The executable specification of :func:`poolref._windows.pad_with_mode` and
:func:`poolref._windows.pad_with_mode_adjoint`, and the rule the convolution reference reads its
padding by. A padded cell at position ``p`` of an axis of length ``L`` (``p < 0`` in the begin pad,
``p >= L`` in the end pad) holds, as in ``torch.nn.functional.pad``:

* ``zeros``: no cell, it holds 0 (``0 0 | a b c | 0 0`` for ``L = 3``);
* ``reflect``: the mirror image about the edge cell, ``-p`` or ``2(L - 1) - p`` (``c b | a b c | b a``);
* ``replicate``: the edge cell, ``0`` or ``L - 1`` (``a a | a b c | c c``);
* ``circular``: the axis wrapped around, ``p mod L`` (``b c | a b c | a b``).

Nothing is validated: the pads are assumed to fit the mode (reflect below ``L``, circular at most
``L``). Meant for tiny arrays in tests.
"""

from __future__ import annotations

import itertools

import numpy

from ._ieee import ieee

__all__ = ["source_position", "pad_reference", "pad_adjoint_reference"]


def source_position(position: int, length: int, mode: str):
    """The input cell that padded cell ``position`` copies under ``mode``, or None for a zero.

    >>> [source_position(p, 3, "reflect") for p in range(-2, 5)]
    [2, 1, 0, 1, 2, 1, 0]
    >>> source_position(-1, 3, "zeros") is None
    True
    """
    if 0 <= position < length:
        return position
    if mode == "zeros":
        return None
    if mode == "replicate":
        return 0 if position < 0 else length - 1
    if mode == "circular":
        return position + length if position < 0 else position - length
    # reflect: the mirror image about the edge cell
    return -position if position < 0 else 2 * (length - 1) - position


def pad_reference(x, pads, mode: str):
    """``x`` padded on its last ``len(pads)`` axes, one cell at a time.

    >>> pad_reference(numpy.array([[1., 2., 3.]]), ((0, 0), (2, 2)), "circular")
    array([[2., 3., 1., 2., 3., 1., 2.]])
    """
    n = len(pads)
    lead, lengths = x.shape[: x.ndim - n], x.shape[x.ndim - n:]
    out = numpy.zeros(lead + tuple(L + b + e for L, (b, e) in zip(lengths, pads)), dtype=x.dtype)
    for index in itertools.product(*(range(s) for s in out.shape)):
        padded = index[len(lead):]
        sources = [source_position(q - b, L, mode) for q, L, (b, _) in zip(padded, lengths, pads)]
        if None not in sources:  # a cell with a zero along any axis is zero
            out[index] = x[index[: len(lead)] + tuple(sources)]
    return out


@ieee
def pad_adjoint_reference(g, pads, mode: str):
    """The gradient of :func:`pad_reference`: each padded cell's gradient added onto the cell it copies.

    >>> pad_adjoint_reference(numpy.array([[1., 2., 3., 4., 5.]]), ((0, 0), (1, 1)), "replicate")
    array([[3., 3., 9.]])
    """
    n = len(pads)
    lead = g.shape[: g.ndim - n]
    lengths = tuple(s - b - e for s, (b, e) in zip(g.shape[g.ndim - n:], pads))
    grad = numpy.zeros(lead + lengths, dtype=numpy.float64)
    for index in itertools.product(*(range(s) for s in g.shape)):
        sources = [source_position(q - b, L, mode) for q, L, (b, _) in zip(index[len(lead):], lengths, pads)]
        if None not in sources:
            grad[index[: len(lead)] + tuple(sources)] += float(g[index])
    return grad.astype(g.dtype)
