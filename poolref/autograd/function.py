r"""A Function is a forward/backward pair; ``apply`` runs the forward and records it for the backward.

Every differentiable op in poolref (the arithmetic here, every pooling op in ``poolref.ops``) is one
:class:`Function`: two pure functions written side by side. ``forward`` computes the outputs and returns
what its backward will need; ``backward`` turns the gradients of the outputs into gradients of the
inputs (a vector-Jacobian product). The tape never differentiates anything itself: it only calls the
backward functions in the right order.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

from .._backend import array_module
from .tape import Node, record
from .tensor import Tensor

__all__ = ["Function", "REGISTRY", "define_function", "apply"]

# Every Function made by define_function, by name: the table of primitives and their backward rules.
REGISTRY: dict[str, Function] = {}

# Nodes are numbered in creation order; a reverse walk visits them by decreasing number.
_sequence = itertools.count()


@dataclass(frozen=True)
class Function:
    r"""A differentiable op: a forward function and its hand-written backward.

    Attributes
    ----------
    name : str
        Printed on the tape.
    forward : callable
        ``forward(*input_arrays, **params) -> (outputs, saved)``. ``outputs`` is one array or a tuple
        of arrays (for example ``(values, indices)``); ``saved`` is whatever the backward needs,
        typically a small NamedTuple.
    backward : callable
        ``backward(saved, *grad_outputs) -> tuple``, one entry per positional input: an array of that
        input's shape, or None for no gradient. It receives one gradient per output: an array for a
        float output (zeros if nothing flowed into it), None for an integer output.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.autograd import Function, Tensor, apply
    >>> triple = Function("triple", lambda x: (3 * x, None), lambda saved, g: (3 * g,))
    >>> apply(triple, np.array([1.0, 2.0]))  # arrays in, arrays out
    array([3., 6.])
    >>> x = Tensor([1.0, 2.0], requires_grad=True)
    >>> apply(triple, x).sum().backward()
    >>> x.grad
    array([3., 3.])
    """

    name: str
    forward: Callable
    backward: Callable


def define_function(name: str, forward: Callable, backward: Callable) -> Function:
    r"""Create a :class:`Function`, register it in ``REGISTRY`` under ``name``, and return it.

    Raises
    ------
    ValueError
        If a Function of that name is already registered.
    """
    if name in REGISTRY:
        raise ValueError(f"a Function named {name!r} is already registered")
    REGISTRY[name] = function = Function(name, forward, backward)
    return function


def apply(function: Function, *inputs, **params):
    r"""Run ``function.forward`` on the inputs and, for Tensors, record a node for the backward.

    Parameters
    ----------
    function : Function
    *inputs : array, Tensor or None
        The positional inputs; None stands for an absent optional input.
    **params
        Non-differentiable parameters (kernel size, axis, ...), passed to the forward unchanged.

    Returns
    -------
    array, Tensor, or tuple of them
        If no input is a Tensor, the forward's outputs unchanged (arrays in, arrays out). Otherwise
        each output array wrapped in a Tensor. When some input requires a gradient, the float outputs
        require one too and point at one new :class:`~poolref.autograd.tape.Node`, which is also
        appended to every active Tape. Integer outputs (indices) never require a gradient.
    """
    arrays = tuple(x.data if isinstance(x, Tensor) else x for x in inputs)
    outputs, saved = function.forward(*arrays, **params)
    tensor_inputs = [x for x in inputs if isinstance(x, Tensor)]
    if not tensor_inputs:
        return outputs

    single = not isinstance(outputs, tuple)
    output_arrays = (outputs,) if single else outputs
    needs_grad = any(x.requires_grad for x in tensor_inputs)
    results = tuple(Tensor(y, requires_grad=needs_grad and y.dtype.kind == "f") for y in output_arrays)
    if needs_grad:
        node = Node(
            seq=next(_sequence),
            function=function,
            inputs=inputs,
            output_uids=tuple(y.uid for y in results),
            output_shapes=tuple(y.shape for y in results),
            output_dtypes=tuple(y.dtype for y in results),
            saved=saved,
            params=params,
            output_modules=tuple(array_module(y.data) for y in results),  # numpy or cupy, per output
        )
        for y in results:
            if y.requires_grad:  # integer outputs have no gradient, so no node to send one to
                y._node = node
        record(node)
    return results[0] if single else results
