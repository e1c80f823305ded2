r"""``Module`` and ``Parameter``: layers that own their weights, built on poolref's tape.

A :class:`Parameter` is a Tensor that requires a gradient and belongs to a layer. A :class:`Module`
finds its parameters by walking its own attributes: a Parameter attribute (or a list or tuple of
them) is one of its parameters, a Module attribute (or a list or tuple of Modules) is a child whose
parameters it also owns. There is
no registration step, and the walk follows attribute order, so ``parameters()`` is deterministic.

Training follows PyTorch's loop, with poolref's tape doing the backward::

    for x, y in batches:
        optimizer.zero_grad()                    # grads to None
        loss = cross_entropy(model(x), y)        # every op records itself on the tape
        loss.backward()                          # fills each parameter's .grad
        optimizer.step()                         # updates each parameter's .data
"""

from __future__ import annotations

import numpy

from .._backend import array_module
from .._checks import check_flag
from ..autograd.tensor import Tensor

__all__ = ["Parameter", "Module"]


class Parameter(Tensor):
    r"""A trainable Tensor: ``requires_grad=True``, its own copy of the data, float dtype only.

    Parameters
    ----------
    data : array_like
        Copied, so that an optimizer step never changes the caller's array.
    name : str, optional
        Shown on a printed tape.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import Parameter
    >>> w = Parameter(np.array([1.0, 2.0]))
    >>> w.requires_grad, w.is_leaf
    (True, True)
    """

    def __init__(self, data, name=None):
        if isinstance(data, Tensor):
            data = data.data
        data = array_module(data).array(data, copy=True)
        if data.dtype.kind != "f":
            raise TypeError(f"Parameter: data must be a floating array, got data with dtype {data.dtype}")
        super().__init__(data, requires_grad=True, name=name)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Module:
    r"""Base class of layers and models: parameters found by attribute walk, ``__call__`` -> ``forward``.

    Subclasses call ``super().__init__()``, assign Parameters and child Modules as attributes, and
    define ``forward``. ``training`` is a flag for layers that behave differently in training and
    evaluation (stochastic pooling, for one); :meth:`train` and :meth:`eval` set it on every module.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import Linear, Module, ReLU
    >>> class TwoLayers(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = Linear(3, 4, rng=0)
    ...         self.act = ReLU()
    ...         self.out = Linear(4, 2, rng=1)
    ...     def forward(self, x):
    ...         return self.out(self.act(self.hidden(x)))
    >>> model = TwoLayers()
    >>> [name for name, _ in model.named_parameters()]
    ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
    >>> model(np.ones((5, 3), dtype=np.float32)).shape
    (5, 2)
    >>> model.eval().training, model.hidden.training
    (False, False)
    """

    training = True  # also a class attribute, so a subclass that forgets super().__init__() still works

    def __init__(self):
        self.training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ----- the attribute walk -----
    def named_children(self):
        """``(name, module)`` for each direct child, in attribute order; list items are ``name.i``."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item

    def children(self):
        return [module for _, module in self.named_children()]

    def modules(self):
        """This module and all its descendants, depth first (each once)."""
        found, stack = {}, [self]
        while stack:
            module = stack.pop()
            if id(module) in found:
                continue
            found[id(module)] = module
            stack.extend(reversed(module.children()))
        return list(found.values())

    def named_parameters(self, prefix: str = ""):
        """``(dotted name, Parameter)`` for every parameter, own ones first, each once (shared
        parameters are reported under their first name)."""
        seen = set()
        result = []

        def walk(module, prefix):
            for name, value in vars(module).items():
                # a Parameter attribute, or a list or tuple of them (named ``name.i``)
                if isinstance(value, Parameter):
                    own = [(name, value)]
                elif isinstance(value, (list, tuple)):
                    own = [(f"{name}.{i}", item) for i, item in enumerate(value) if isinstance(item, Parameter)]
                else:
                    own = []
                for full_name, p in own:
                    if id(p) not in seen:
                        seen.add(id(p))
                        result.append((prefix + full_name, p))
            for name, child in module.named_children():
                walk(child, f"{prefix}{name}.")

        walk(self, prefix)
        return result

    def parameters(self) -> list:
        """Every Parameter of this module and its descendants, in a deterministic order."""
        return [p for _, p in self.named_parameters()]

    # ----- state -----
    def train(self, mode: bool = True) -> Module:
        mode = check_flag(mode, "mode", f"{type(self).__name__}.train")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to None (a backward then starts from nothing)."""
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> dict:
        """``{dotted name: array}``, copies of the parameters' data (PyTorch's names for the same model)."""
        return {name: array_module(p.data).array(p.data, copy=True) for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays (numpy, cupy, or anything ``numpy.asarray`` takes) into the parameters by name.

        The names must match exactly and every shape must agree; values are cast to each parameter's
        dtype and moved to its array module.
        """
        params = dict(self.named_parameters())
        missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, p in params.items():
            value = state[name]
            value = numpy.asarray(value) if not hasattr(value, "shape") else value
            if tuple(value.shape) != p.shape:
                raise ValueError(f"load_state_dict: {name} has shape {p.shape}, got an array of shape {tuple(value.shape)}")
            p.data = array_module(p.data).array(value, dtype=p.dtype, copy=True)

    # ----- printing -----
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, child in children:
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        return "\n".join(lines) + "\n)"
