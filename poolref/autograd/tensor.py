r"""The Tensor: an array plus the bookkeeping reverse mode needs.

A Tensor holds ``data`` (a numpy or cupy array), whether it ``requires_grad``, its ``grad`` once a
backward has run, and ``_node``: the tape entry that produced it (None for a leaf, a tensor the user
made). Operators (``+ - * / @ **``, ``sum``, ``reshape``, indexing, ...) each apply one Function from
``arithmetic.py``, so a loss can be written as ordinary expressions.
"""

from __future__ import annotations

import itertools
import math
import numbers

import numpy

from .._backend import array_module, to_numpy
from .._checks import check_axes, check_axis, check_flag, is_int
from .tape import backpropagate, seed_gradient

__all__ = ["Tensor"]

# Tensors are dict keys on the tape by uid: unlike id(), a uid is never reused after garbage collection.
_uids = itertools.count()


class Tensor:
    r"""An array that remembers the op that made it, so gradients can flow back through it.

    Parameters
    ----------
    data : array_like
        numpy or cupy array (kept as is, not copied), or a list or scalar (becomes a numpy array).
    requires_grad : bool, default False
        Whether gradients should be computed for this tensor. Needs a floating dtype.
    name : str, optional
        Shown in place of ``%k`` when a tape is printed.

    Attributes
    ----------
    data : array
    grad : array or None
        Filled (and accumulated into) by :meth:`backward`, for leaves that require a gradient.
    uid : int
        Unique id, the key of this tensor's gradient during a backward walk.

    Examples
    --------
    >>> from poolref.autograd import Tensor
    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> loss = (x * x).sum()          # d loss / dx = 2 x
    >>> loss
    Tensor(14., requires_grad=True)
    >>> loss.backward()
    >>> x.grad
    array([2., 4., 6.])
    """

    # numpy must not treat a Tensor as an array: with this, ``array + tensor`` returns NotImplemented
    # from numpy, and Python calls Tensor.__radd__, which records the op.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, name=None):
        if isinstance(data, Tensor):
            data = data.data
        data = array_module(data).asarray(data)
        requires_grad = check_flag(requires_grad, "requires_grad", "Tensor")
        if requires_grad and data.dtype.kind != "f":
            raise TypeError(f"requires_grad=True needs a floating dtype, but the data is {data.dtype}")
        self.data = data
        self.requires_grad = requires_grad
        self.grad = None
        self.name = name
        self.uid = next(_uids)
        self._node = None  # the tape Node that produced this tensor; None for a leaf

    # ----- array-like attributes -----
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)

    @property
    def is_leaf(self) -> bool:
        """True for a tensor not produced by a recorded op."""
        return self._node is None

    def __len__(self) -> int:
        return len(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        return self.data.item()

    def numpy(self):
        """A numpy copy of the data (from the GPU if needed); changing it leaves the tensor alone."""
        return to_numpy(self.data).copy()

    def detach(self) -> Tensor:
        """The same data as a new leaf that does not require a gradient (no copy)."""
        return Tensor(self.data, name=self.name)

    def __repr__(self) -> str:
        values = to_numpy(self.data)
        text = numpy.array2string(values, separator=", ", prefix="Tensor(")
        extras = []
        if values.size == 0:
            extras.append(f"shape={values.shape}")
        if values.dtype not in (numpy.float64, numpy.int64, numpy.bool_):
            extras.append(f"dtype={values.dtype}")
        if self.requires_grad:
            extras.append("requires_grad=True")
        if self.name is not None:
            extras.append(f"name={self.name!r}")
        return "Tensor(" + ", ".join([text] + extras) + ")"

    # ----- reverse mode -----
    def backward(self, grad=None) -> None:
        r"""Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires a gradient.

        Parameters
        ----------
        grad : array, optional
            Gradient flowing into this tensor, of its shape. Defaults to ones, which is allowed only
            for a single-element tensor (a scalar loss).

        Notes
        -----
        The nodes reachable from this tensor are collected with an explicit stack (no recursion) and
        run newest first, each backward called once. Calling ``backward`` twice adds the gradients,
        as in PyTorch: reset ``grad`` to None between steps.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require a gradient")
        seed = seed_gradient(self, grad.data if isinstance(grad, Tensor) else grad)
        if self._node is None:  # a leaf: d self / d self is the identity
            self._accumulate(seed)
            return
        nodes, leaves = {}, {}  # by sequence number; by uid (insertion order is deterministic)
        stack = [self._node]
        while stack:
            node = stack.pop()
            if node.seq in nodes:
                continue
            nodes[node.seq] = node
            for x in node.inputs:
                if isinstance(x, Tensor) and x.requires_grad:
                    if x._node is None:
                        leaves[x.uid] = x
                    else:
                        stack.append(x._node)
        newest_first = [nodes[seq] for seq in sorted(nodes, reverse=True)]
        grads = backpropagate(newest_first, {self.uid: seed})
        for uid, leaf in leaves.items():
            if uid in grads:
                leaf._accumulate(grads[uid])

    def _accumulate(self, grad) -> None:
        # A copy the first time: the walk may hand one array to several tensors (``a + b``).
        self.grad = array_module(grad).array(grad, copy=True) if self.grad is None else self.grad + grad

    # ----- arithmetic: each applies one Function of arithmetic.py -----
    def __add__(self, other):
        return _apply(_arithmetic.add, self, _operand(other, self))

    def __radd__(self, other):
        return _apply(_arithmetic.add, _operand(other, self), self)

    def __sub__(self, other):
        return _apply(_arithmetic.sub, self, _operand(other, self))

    def __rsub__(self, other):
        return _apply(_arithmetic.sub, _operand(other, self), self)

    def __mul__(self, other):
        return _apply(_arithmetic.mul, self, _operand(other, self))

    def __rmul__(self, other):
        return _apply(_arithmetic.mul, _operand(other, self), self)

    def __truediv__(self, other):
        return _apply(_arithmetic.div, self, _operand(other, self))

    def __rtruediv__(self, other):
        return _apply(_arithmetic.div, _operand(other, self), self)

    def __matmul__(self, other):
        return _apply(_arithmetic.matmul, self, _operand(other, self))

    def __rmatmul__(self, other):
        return _apply(_arithmetic.matmul, _operand(other, self), self)

    def __neg__(self):
        return _apply(_arithmetic.neg, self)

    def __pow__(self, exponent):
        if not isinstance(exponent, numbers.Real):
            return NotImplemented  # only a number exponent is supported, not a Tensor
        return _apply(_arithmetic.power, self, exponent=exponent)

    def sum(self, axis=None, keepdims=False):
        """Sum over ``axis`` (all axes if None), like ``numpy.sum``."""
        axis = check_axes(axis, self.ndim, "axis", "Tensor.sum", "the tensor")
        return _apply(_arithmetic.sum_, self, axis=axis, keepdims=check_flag(keepdims, "keepdims", "Tensor.sum"))

    def mean(self, axis=None, keepdims=False):
        """Mean over ``axis`` (all axes if None), like ``numpy.mean``; nan over no elements."""
        axis = check_axes(axis, self.ndim, "axis", "Tensor.mean", "the tensor")
        return _apply(_arithmetic.mean, self, axis=axis, keepdims=check_flag(keepdims, "keepdims", "Tensor.mean"))

    def reshape(self, *shape):
        """``t.reshape(2, 3)`` or ``t.reshape((2, 3))``; one entry may be -1."""
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if not all(is_int(n) for n in shape):
            raise TypeError(f"Tensor.reshape: shape must be ints, got shape={shape!r}")
        known = [n for n in shape if n != -1]
        if any(n < 0 for n in known) or len(known) < len(shape) - 1:
            raise ValueError(f"Tensor.reshape: shape must be sizes >= 0 with at most one -1, got shape={shape!r}")
        size = math.prod(known)
        if len(known) == len(shape):
            fits = size == self.size
        else:  # the -1 takes what the others leave: they must divide the size (and be no 0, as in numpy)
            fits = size != 0 and self.size % size == 0
        if not fits:
            raise ValueError(f"Tensor.reshape: shape={shape!r} does not hold the tensor's {self.size} elements "
                             f"(shape {self.shape})")
        return _apply(_arithmetic.reshape, self, shape=shape)

    def transpose(self, *axes):
        """Permute the axes (reverse them if none are given), like ``numpy.transpose``."""
        axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        if axes:
            permutation = tuple(check_axis(a, self.ndim, "axes", "Tensor.transpose", "the tensor") for a in axes)
            if sorted(permutation) != list(range(self.ndim)):
                raise ValueError(f"Tensor.transpose: axes must order all {self.ndim} axes of the tensor once each, "
                                 f"got axes={axes!r}")
        return _apply(_arithmetic.transpose, self, axes=axes or None)

    @property
    def T(self) -> Tensor:
        """The axes reversed: ``t.transpose()``."""
        return self.transpose()

    def exp(self):
        return _apply(_arithmetic.exp, self)

    def log(self):
        return _apply(_arithmetic.log, self)

    def __getitem__(self, index):
        # Tensors inside an index (integer index arrays) are used by their data.
        if isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        elif isinstance(index, Tensor):
            index = index.data
        return _apply(_arithmetic.getitem, self, index=index)


def _operand(value, like: Tensor):
    """The other operand of ``like <op> value``: a Tensor or array as is, a Python number as an array.

    A Python number takes ``like``'s floating dtype, so that float32 stays float32.
    """
    if isinstance(value, (bool, int, float)):
        dtype = like.dtype if like.dtype.kind == "f" else None
        return array_module(like.data).asarray(value, dtype=dtype)
    return value


# arithmetic.py defines its Functions with function.py, which builds Tensors: the two can only be
# imported once Tensor exists, so they come last (the operators above look them up when called).
from . import arithmetic as _arithmetic  # noqa: E402
from .function import apply as _apply  # noqa: E402
