r"""The Wengert list: one ``Node`` per applied Function, and the reverse walk over them.

Every op applied to a Tensor that requires a gradient creates one :class:`Node`: the Function, its
inputs, what its backward needs, and the uid, shape and dtype of each output. Nodes carry a global,
increasing sequence number, so "created later" is simply "larger number": walking nodes in decreasing
sequence order visits every consumer of a tensor before the op that produced it, which is all the
ordering reverse mode needs. No topological sort, no recursion.

:func:`backpropagate` is that walk, shared by :meth:`Tensor.backward` (nodes reachable from one tensor)
and :meth:`Tape.gradient` (the nodes a :class:`Tape` recorded, newest first).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy

from .._backend import array_module

__all__ = ["Node", "Tape", "backpropagate"]

# The tapes inside whose ``with`` block we are, outermost first. Tapes nest: a node is recorded on each.
_active_tapes: list[Tape] = []


@dataclass(frozen=True, eq=False)
class Node:
    r"""One entry of the Wengert list: an applied Function and what its backward needs.

    Outputs are kept as uids, shapes, dtypes and array modules rather than as Tensors, so that a node
    does not keep its own outputs alive (the outputs point at the node, not the other way round).
    """

    seq: int  # global creation order; a larger number was created later
    function: Any  # the Function applied (function.Function)
    inputs: tuple  # the positional inputs as given: Tensors, arrays or None
    output_uids: tuple  # uid of each output Tensor
    output_shapes: tuple
    output_dtypes: tuple
    saved: Any  # what function.forward returned for its backward
    params: dict  # the keyword parameters, kept for printing
    # numpy or cupy: where each output lives (one op may return outputs on both, as dynopool2d's
    # device values and host size do), so that an output no gradient reached gets zeros there
    output_modules: tuple

    def describe(self, label) -> str:
        r"""One line such as ``%2 = mul(%0, 3.0)  -> (2,) float64``; ``label(uid)`` names tensors."""
        # Inputs first, so that a leaf seen for the first time is numbered before the outputs.
        arguments = ", ".join(label(x.uid) if hasattr(x, "uid") else _short(x) for x in self.inputs)
        outputs = ", ".join(label(uid) for uid in self.output_uids)
        # None-valued parameters are the "not given" defaults: leaving them out keeps lines short.
        params = ", ".join(f"{k}={_short(v)}" for k, v in self.params.items() if v is not None)
        results = ", ".join(
            f"{tuple(shape)} {dtype}" for shape, dtype in zip(self.output_shapes, self.output_dtypes)
        )
        return f"{outputs} = {self.function.name}({arguments}){' ' + params if params else ''}  -> {results}"


def record(node: Node) -> None:
    """Append ``node`` to every active tape (called by ``function.apply``)."""
    for tape in _active_tapes:
        tape.entries.append(node)


def seed_gradient(tensor, grad=None):
    r"""The gradient a reverse walk starts from: ``grad`` checked and cast, or ones for one element.

    A fresh array is returned, so the walk never hands the caller's own array back to them. An array
    ``grad`` must live where the tensor does (numpy or cupy): it is never moved between devices.
    """
    if tensor.dtype.kind != "f":
        raise TypeError(f"cannot differentiate a tensor of dtype {tensor.dtype}; it is not floating")
    xp = array_module(tensor.data)
    if grad is None:
        if tensor.size != 1:
            raise ValueError(
                f"grad can be left out only for a single-element tensor; this one has shape "
                f"{tensor.shape}, so pass grad= explicitly"
            )
        return xp.ones(tensor.shape, dtype=tensor.dtype)
    if hasattr(grad, "shape") and not isinstance(grad, numpy.generic) and array_module(grad) is not xp:
        raise TypeError(
            f"grad is a {array_module(grad).__name__} array, but the tensor's data is a {xp.__name__} array; "
            f"move grad to the tensor's device first"
        )
    grad = xp.asarray(grad)
    if grad.shape != tensor.shape:
        raise ValueError(f"grad has shape {grad.shape}, but the tensor has shape {tensor.shape}")
    return grad.astype(tensor.dtype, copy=True)


def backpropagate(nodes, grads: dict) -> dict:
    r"""Run each node's backward, newest node first, accumulating gradients by tensor uid.

    Parameters
    ----------
    nodes : iterable of Node
        In decreasing sequence order (consumers before producers).
    grads : dict
        ``{uid: gradient array}`` to start from; updated in place and returned. On return it holds the
        total gradient of every tensor the walk reached.

    Notes
    -----
    A node none of whose outputs received a gradient lies off the path to the target and is skipped.
    A float output that received nothing gets zeros (where that output lives); an integer output
    (indices) gets None. A tensor used by several ops receives the sum of their gradients (fan-in).

    Every gradient lives where its tensor lives: an op may take inputs from the host and the device
    at once (dynopool2d's host ``alpha`` beside a device ``x``), and its backward must return each
    input's gradient in that input's array module; one returned elsewhere is refused, never moved.
    """
    for node in nodes:
        if not any(uid in grads for uid in node.output_uids):
            continue
        grad_outputs = tuple(
            grads[uid] if uid in grads else xp.zeros(shape, dtype) if dtype.kind == "f" else None
            for uid, shape, dtype, xp in zip(node.output_uids, node.output_shapes, node.output_dtypes,
                                             node.output_modules)
        )
        grad_inputs = node.function.backward(node.saved, *grad_outputs)
        if len(grad_inputs) != len(node.inputs):
            raise RuntimeError(
                f"{node.function.name}: backward returned {len(grad_inputs)} gradients for "
                f"{len(node.inputs)} inputs; it must return one per positional input (None allowed)"
            )
        for position, (x, grad) in enumerate(zip(node.inputs, grad_inputs)):
            if grad is None or not getattr(x, "requires_grad", False):
                continue  # an array, None, an integer tensor, or no gradient defined
            if getattr(grad, "shape", None) != x.shape:
                raise RuntimeError(
                    f"{node.function.name}: backward returned a gradient of shape "
                    f"{getattr(grad, 'shape', type(grad).__name__)} for input {position}, "
                    f"whose shape is {x.shape}"
                )
            xp = array_module(x.data)  # where the input lives, and so its gradient
            if not isinstance(grad, numpy.generic) and array_module(grad) is not xp:
                raise RuntimeError(
                    f"{node.function.name}: backward returned a {array_module(grad).__name__} gradient for "
                    f"input {position}, whose data is a {xp.__name__} array; a gradient must live where its "
                    f"input lives"
                )
            grad = xp.asarray(grad, dtype=x.dtype)  # float64 math on a float32 input stays float32
            # Fan-in: a tensor used twice gets the sum. Never `+=`: the array may be the caller's.
            # inf + (-inf) is NaN here as anywhere, not a warning (gradients may hold both)
            with numpy.errstate(invalid="ignore", over="ignore"):
                grads[x.uid] = grads[x.uid] + grad if x.uid in grads else grad
    return grads


class Tape:
    r"""Record the ops applied to Tensors while active, and differentiate through them.

    ``with Tape() as tape:`` appends one :class:`Node` to ``tape.entries`` for every op applied to a
    Tensor that requires a gradient (a Wengert list, in creation order). Tapes nest; an op is recorded
    on every active tape. ``print(tape)`` shows the computation one op per line.

    Examples
    --------
    >>> from poolref.autograd import Tensor, Tape
    >>> x = Tensor([1.0, 2.0], requires_grad=True, name="x")
    >>> with Tape() as tape:
    ...     y = (x * 3.0).sum()
    >>> print(tape)
    # %k names the k-th tensor to appear: an input, or the output of the line that assigns it
    x = input  -> (2,) float64
    %0 = mul(x, 3.0)  -> (2,) float64
    %1 = sum(%0) keepdims=False  -> () float64
    >>> tape.gradient(y, x)
    array([3., 3.])
    >>> x.grad is None  # tape.gradient leaves .grad alone
    True
    """

    def __init__(self):
        self.entries: list[Node] = []

    def __enter__(self) -> Tape:
        if self in _active_tapes:
            raise RuntimeError("this Tape is already recording; use a new Tape to nest")
        _active_tapes.append(self)
        return self

    def __exit__(self, *exc_info) -> None:
        _active_tapes.remove(self)

    def __len__(self) -> int:
        return len(self.entries)

    def gradient(self, target, sources, output_gradient=None):
        r"""Gradient of ``target`` with respect to ``sources``, through the recorded entries.

        Parameters
        ----------
        target : Tensor, or list of Tensor
            What to differentiate. A list differentiates the sum of the targets' inner products
            with their output gradients (used by :func:`vjp` for ops with several outputs).
        sources : Tensor, or list/tuple of Tensor
            What to differentiate with respect to.
        output_gradient : array, optional
            Gradient flowing into ``target`` (same shape). Defaults to ones, allowed only when
            ``target`` has one element. With a list of targets, a list of arrays (or None each).

        Returns
        -------
        array, or list of array
            One gradient per source, shaped and typed like it: an array for a single Tensor, a list
            for a list or tuple. A source no recorded path reaches gets zeros.

        Notes
        -----
        Tensors' ``.grad`` is not touched. The tape can be differentiated any number of times.
        """
        if isinstance(target, (list, tuple)):
            targets = list(target)
            seeds = [None] * len(targets) if output_gradient is None else list(output_gradient)
            if len(seeds) != len(targets):
                raise ValueError(f"{len(targets)} targets but {len(seeds)} output gradients")
        else:
            targets, seeds = [target], [output_gradient]
        grads: dict = {}
        for t, seed in zip(targets, seeds):
            seed = seed_gradient(t, seed)
            grads[t.uid] = grads[t.uid] + seed if t.uid in grads else seed
        backpropagate(reversed(self.entries), grads)

        source_list = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        returned = [grads[s.uid] for s in source_list if s.uid in grads]

        def gradient_of(source):
            xp = array_module(source.data)
            if source.uid not in grads:
                return xp.zeros(source.shape, dtype=source.dtype)
            grad = grads[source.uid]
            # The walk may hand one array to several tensors (``a + b`` passes g to both): copy a
            # gradient that shares memory with another one we return, so that the caller can change
            # one without changing the other. (A large copy costs as much as a pooling backward.)
            # Only gradients on the same device can share memory (and cupy compares only cupy arrays).
            sharing = sum(1 for other in returned if array_module(other) is xp and xp.may_share_memory(grad, other))
            # A backward may return a broadcast view (``sum``'s gradient is g broadcast to the input's
            # shape: stride 0, read-only in NumPy): the caller gets an ordinary, writable array.
            broadcast = grad.size > 1 and 0 in grad.strides
            read_only = not getattr(grad.flags, "writeable", True)
            return xp.array(grad, copy=True) if sharing > 1 or broadcast or read_only else grad

        if isinstance(sources, (list, tuple)):
            return [gradient_of(s) for s in sources]
        return gradient_of(sources)

    def __str__(self) -> str:
        # Named tensors print as their name; the others as %0, %1, ... in order of first appearance.
        # A tensor the tape did not compute (a leaf, or a value from before the tape) is introduced by
        # an "input" line before its first use.
        if not self.entries:
            return "(empty tape)"
        names = {x.uid: x.name for node in self.entries for x in node.inputs if getattr(x, "name", None)}
        computed = {uid for node in self.entries for uid in node.output_uids}
        labels: dict = {}  # uid -> label
        numbers = itertools.count()

        def label(uid) -> str:
            if uid not in labels:
                labels[uid] = names.get(uid) or f"%{next(numbers)}"
            return labels[uid]

        lines = ["# %k names the k-th tensor to appear: an input, or the output of the line that assigns it"]
        for node in self.entries:
            for x in node.inputs:
                if hasattr(x, "uid") and x.uid not in labels and x.uid not in computed:
                    lines.append(f"{label(x.uid)} = input  -> {tuple(x.shape)} {x.dtype}")
            lines.append(node.describe(label))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Tape with {len(self.entries)} entries>"


def _short(value) -> str:
    """A short text for a parameter or an array input: arrays show shape and dtype, not values."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        if value.shape == () and not hasattr(value, "uid"):
            return repr(value.item())  # a scalar operand such as the 3.0 in ``x * 3.0``
        kind = "Tensor" if hasattr(value, "uid") else "array"
        return f"<{kind} {tuple(value.shape)} {value.dtype}>"
    if isinstance(value, slice):
        parts = ["" if p is None else str(p) for p in (value.start, value.stop, value.step)]
        return ":".join(parts if value.step is not None else parts[:2])
    if value is Ellipsis:
        return "..."
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if isinstance(value, numpy.generic):
        return repr(value.item())
    if isinstance(value, (str, int, float, bool)):
        return repr(value)
    # Any other object prints with str(): a parameter record that defines its own __str__ (a geometry,
    # say) shows up in full on the tape; one that does not falls back to its repr, cut short.
    text = str(value)
    if type(value).__str__ is not object.__str__:
        return text
    return text if len(text) <= 60 else text[:57] + "..."
