r"""One oracle case: a poolref call written down as data, with the input class it belongs to.

A :class:`Case` names the op, its array arguments and its other keyword arguments (the convention
that models the framework under test, ``"onnx"`` or ``"tensorflow"``, is already among them), which
*input class* it was drawn for (:data:`poolref.cases.INPUT_CLASSES`: finite values, ties,
NaN, infinities, float16, a non-contiguous view, ...), and the magnitude of its inputs, which the
comparison's absolute tolerance is multiplied by (:mod:`poolref.oracle.compare`).

A non-contiguous input is kept as its *base* (a contiguous array) and the view taken of it
(:data:`VIEWS`): the case's array is the view, and the framework side and the reproducer rebuild
the same view from the same base, so the framework really receives a strided input where it has
strided inputs (PyTorch), and the reproducer shows how it was made.

>>> import numpy as np
>>> base = np.arange(6.0).reshape(1, 1, 2, 3)
>>> case = Case("max_pool2d", {"x": apply_view(base, "transpose")}, {"kernel_size": 2}, views={"x": ("transpose", base)})
>>> case.x.shape, case.x.flags.c_contiguous, VIEWS["transpose"].numpy
((1, 1, 3, 2), False, '.swapaxes(-1, -2)')
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from .._geometry import as_int_tuple

__all__ = ["Case", "Window", "window_of", "with_indices", "resize_size", "resize_scales", "resize_factors", "View", "VIEWS", "apply_view", "make_view", "materialise"]


class Case(NamedTuple):
    """One poolref call as data: ``getattr(poolref, op)(*positional arrays, **array kwargs, **kwargs)``.

    ``arrays`` maps argument names to numpy arrays; those named in ``positional`` are passed in that
    order, the others by keyword (``random_samples``). ``grad_inputs`` names the arrays whose
    gradients are compared (none for integer inputs). ``label`` names a worked example ("" for a
    random case); ``input_class`` says which class of input the case was drawn for; ``scale`` is the
    magnitude of its inputs; ``views`` maps an array's name to ``(view kind, contiguous base)`` where
    the array is a non-contiguous view of that base.
    """

    op: str
    arrays: dict
    kwargs: dict
    positional: tuple = ("x",)
    grad_inputs: tuple = ("x",)
    label: str = ""
    input_class: str = "finite"
    scale: float = 1.0
    views: dict = {}

    @property
    def x(self) -> numpy.ndarray:
        return self.arrays["x"]

    @property
    def dtype(self) -> numpy.dtype:
        return self.arrays["x"].dtype

    @property
    def batched(self) -> bool:
        """Whether ``x`` has its batch axis (an unbatched input is (C, *spatial))."""
        return self.input_class != "unbatched"

    def replace(self, **changes) -> "Case":
        return self._replace(**changes)

    def describe(self) -> str:
        """A one-line summary: class, shapes, keyword arguments and dtype."""
        shapes = ", ".join(
            f"{name}.shape={tuple(a.shape)}" + (f" ({self.views[name][0]} view)" if name in self.views else "")
            for name, a in self.arrays.items()
        )
        kwargs = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        label = f"[{self.label}] " if self.label else f"[{self.input_class}] "
        return f"{label}{shapes}, {kwargs} ({self.dtype})"


class Window(NamedTuple):
    n: int  # spatial dims
    kernel: tuple
    stride: tuple  # the kernel where the case gives no stride, as every framework defaults
    dilation: tuple


def window_of(case: Case) -> Window:
    """A windowed case's kernel, stride and dilation as per-axis tuples, for adapters to translate."""
    kw, n = case.kwargs, case.x.ndim - (2 if case.batched else 1)
    kernel = as_int_tuple(kw["kernel_size"], n, "kernel_size", case.op)
    stride = kernel if kw.get("stride") is None else as_int_tuple(kw["stride"], n, "stride", case.op)
    dilation = as_int_tuple(kw.get("dilation", 1), n, "dilation", case.op)
    return Window(n, kernel, stride, dilation)


def with_indices(case) -> bool:
    """Whether a case (or, given an op's name, that op's cases by default) calls poolref with
    ``return_indices=True``, so that its indices are compared. A mapping of a framework op without
    indices draws its cases without them (TensorFlow's ``tf.nn.max_pool`` follows another NaN rule
    than its ``max_pool_with_argmax``, which poolref models under ``return_indices=True``)."""
    if isinstance(case, str):
        return case.startswith(("max_pool", "adaptive_max_pool", "fractional_max_pool"))
    return bool(case.kwargs.get("return_indices", False))


def resize_size(case: Case) -> tuple:
    """An ``interpolate`` case's output size: ``size``, or PyTorch's ``floor(L * scale_factor)``."""
    n = _spatial(case)
    if case.kwargs.get("size") is not None:
        size = case.kwargs["size"]
        return (size,) * n if isinstance(size, int) else tuple(size)
    factors = resize_factors(case)
    return tuple(int(math.floor(L * f)) for L, f in zip(case.x.shape[-n:], factors))


def resize_factors(case: Case) -> tuple:
    """An ``interpolate`` case's ``scale_factor`` per spatial axis (None when it gives ``size``)."""
    factor = case.kwargs.get("scale_factor")
    if factor is None:
        return None
    return (float(factor),) * _spatial(case) if isinstance(factor, (int, float)) else tuple(float(f) for f in factor)


def resize_scales(case: Case):
    """The scale factors an ``interpolate`` case's coordinates use, or None where they use in/out
    (``size`` given, or ``recompute_scale_factor=True``)."""
    if case.kwargs.get("scale_factor") is None or case.kwargs.get("recompute_scale_factor"):
        return None
    return resize_factors(case)


def _spatial(case: Case) -> int:
    return case.x.ndim - (2 if case.batched else 1)


# --------------------------------------------------------------------------------------------------
# Non-contiguous views
# --------------------------------------------------------------------------------------------------
class View(NamedTuple):
    numpy: str  # the suffix that takes the view of the base in numpy
    torch: str  # the same view of a torch tensor (a copy where torch has no such view)
    what: str


VIEWS = {
    "transpose": View(".swapaxes(-1, -2)", ".swapaxes(-1, -2)", "the last two axes swapped in memory"),
    "reverse": View("[..., ::-1]", ".flip(-1)", "a negative stride along the last axis (torch copies: it has none)"),
    "slice": View("[..., ::2]", "[..., ::2]", "every other element of a buffer twice as long (the rest poisoned)"),
}


def apply_view(base: numpy.ndarray, kind: str) -> numpy.ndarray:
    """The view of ``kind`` taken of ``base`` (see :data:`VIEWS`)."""
    if kind == "transpose":
        return base.swapaxes(-1, -2)
    if kind == "reverse":
        return base[..., ::-1]
    if kind == "slice":
        return base[..., ::2]
    raise ValueError(f"unknown view kind {kind!r}")


def make_view(x: numpy.ndarray, kind: str):
    """``(view, base)``: a non-contiguous view equal to ``x`` and the contiguous base it is taken of.

    A sliced view's base holds poison between the elements (NaN for floats, the dtype's largest
    value for integers), so an implementation that reads the wrong stride says so loudly.
    """
    if kind == "transpose":
        base = numpy.ascontiguousarray(x.swapaxes(-1, -2))
    elif kind == "reverse":
        base = numpy.ascontiguousarray(x[..., ::-1])
    elif kind == "slice":
        base = numpy.empty(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        base[...] = numpy.nan if x.dtype.kind == "f" else numpy.iinfo(x.dtype).max
        base[..., ::2] = x
    else:
        raise ValueError(f"unknown view kind {kind!r}")
    view = apply_view(base, kind)
    assert numpy.array_equal(view, x, equal_nan=True)
    return view, base


def materialise(case: Case) -> dict:
    """Fresh copies of the case's arrays for one side of a comparison: ``{name: array}``, with each
    viewed array rebuilt as the same view of a copy of its base (also given as ``<name>_base``)."""
    arrays = {}
    for name, a in case.arrays.items():
        if name in case.views:
            kind, base = case.views[name]
            arrays[f"{name}_base"] = base.copy()
            arrays[name] = apply_view(arrays[f"{name}_base"], kind)
        else:
            arrays[name] = a.copy()
    return arrays
