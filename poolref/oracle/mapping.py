r"""How an adapter declares that a framework op corresponds to a poolref op under a convention.

Each adapter module (``torch_adapter``, ``onnxruntime_adapter``, ``tensorflow_adapter``,
``jax_adapter``) holds a list ``MAPPINGS`` of :class:`Mapping` records. A mapping says:

* which framework function (``call``) computes which poolref op (``op``), and with which poolref
  keyword arguments (``convention``) poolref reproduces it exactly: ``{"convention": "tensorflow"}``
  for TensorFlow's SAME averages, ``{"convention": "onnx"}`` for ONNX's LpPool, and so on;
* which configurations to draw (``space``, see :func:`poolref.cases.draw_case`);
* which cases the framework cannot *express* (``express``: no ceil mode in TensorFlow, no asymmetric
  padding in PyTorch) and which it expresses but poolref cannot *model* (``model``: TensorFlow's
  max pooling ignores NaN); both return the reason, or None;
* ``skips``: the same limits in words, for the report and the docs. Nothing is hidden by a looser
  tolerance: what poolref cannot model is skipped and said;
* ``kind``: ``"native"`` where the framework has the op, ``"composition"`` where the check composes
  it from the framework's own ops (GeM from ``pow`` and ``mean``, DynOPool from ``grid_sample``);
* ``cases``: how many random cases a default run draws for this mapping, where it must be fewer than
  the adapter's ``DEFAULT_CASES`` (JAX compiles a program per case); an explicit count overrides it;
* ``defects``: the framework's *known* defects (:class:`KnownDefect`): cases where the framework is
  wrong and poolref keeps the true answer. They are still run and compared; a mismatch they explain
  is reported as a known defect with its reproducer, not as a new mismatch, and the adapter's
  ``UNCOVERED`` says why an op has no mapping at all.

The framework side of a mapping is *code*: ``code(case)`` returns Python source that reads the case's
arrays (``x``, ``grid``, ``boxes``, ...) and ``cotangent`` and sets ``y`` (and ``y_indices``, with
``y_indices_native`` before any layout conversion, and ``grad_<name>`` for each input with a
gradient). The oracle runs exactly that source, and prints it as the reproducer of a mismatch, so
what a reader reruns is what was checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy

from ..cases.case import Case

__all__ = ["Mapping", "KnownDefect", "format_kwargs", "format_value", "array_literal"]


@dataclass(frozen=True)
class KnownDefect:
    """A framework defect: ``applies(case)`` says whether a case can show it, ``text`` what is wrong.

    Best, ``model(case, ours, cotangent)`` returns the framework's wrong answer computed from
    poolref's right one (a :class:`~poolref.oracle.engine.Results`): the framework must then give
    exactly that, so the defect excuses nothing else. Without a model, ``affects`` names the
    comparisons it may spoil (``"output"``, ``"indices"``, ``"grad_x"``, ...; ``"raises"`` for a
    framework that raises on such cases, ``"abort"`` for one that ends the process), and the case's
    other comparisons must still agree.
    """

    text: str
    applies: Callable[[Case], bool]
    affects: tuple = ("grad_x",)
    model: Optional[Callable] = None


@dataclass(frozen=True)
class Mapping:
    op: str
    call: str
    code: Callable[[Case], str]
    convention: dict = field(default_factory=dict)
    space: dict = field(default_factory=dict)
    gradients: bool = True
    indices: bool = True  # False where the framework op returns no indices (tf.nn.max_pool2d)
    notes: str = ""
    skips: tuple = ()
    express: Optional[Callable[[Case], Optional[str]]] = None
    model: Optional[Callable[[Case], Optional[str]]] = None
    worked: bool = True
    kind: str = "native"  # or "composition": built from the framework's own ops
    defects: tuple = ()  # KnownDefect records
    cases: Optional[int] = None  # random cases of a default run, where fewer than the adapter's DEFAULT_CASES

    @property
    def label(self) -> str:
        """``op`` and the convention keywords, as a reader would write the poolref call."""
        extra = ", ".join(f"{k}={v!r}" for k, v in self.convention.items())
        return f"{self.op}({extra})" if extra else self.op

    def generation_space(self) -> dict:
        """The case space with the mapping's convention in it (cases are drawn valid for it)."""
        space = dict(self.space)
        space.setdefault("gradients", self.gradients)
        if "convention" in self.convention:
            space.setdefault("convention", self.convention["convention"])
        return space

    def refusal(self, case: Case, *, modelled_only: bool = True) -> Optional[str]:
        """Why this mapping does not check ``case`` (None when it does)."""
        if self.express is not None:
            reason = self.express(case)
            if reason:
                return reason
        if modelled_only and self.model is not None:
            return self.model(case)
        return None

    def adapt(self, case: Case) -> Case:
        """A convention-free case (a worked example) with this mapping's convention added, its float
        arrays cast to the mapping's first dtype when the framework lacks the case's own."""
        dtypes = [numpy.dtype(d) for d in self.space.get("dtypes", ("float64",))]
        arrays = case.arrays
        if case.dtype not in dtypes:
            arrays = {name: a.astype(dtypes[0]) if a.dtype.kind == "f" else a for name, a in arrays.items()}
        kwargs = {**case.kwargs, **self.convention}
        if "return_indices" in kwargs and self.space.get("return_indices") is False:
            del kwargs["return_indices"]  # the framework op returns none (and may follow another rule)
        return case.replace(arrays=arrays, kwargs=kwargs)


def format_value(value) -> str:
    """A Python literal for a keyword value (tuples of ints, floats, strings, bools)."""
    if isinstance(value, numpy.generic):
        value = value.item()
    return repr(value)


def format_kwargs(kwargs: dict, drop=()) -> str:
    """``k1=v1, k2=v2`` for the items of ``kwargs`` not in ``drop``."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in kwargs.items() if k not in drop)


def array_literal(a: numpy.ndarray) -> str:
    """Python source that rebuilds ``a`` exactly (shortest round-trip digits; NaN and inf spelt out)."""
    a = numpy.asarray(a)
    dtype = f"np.{a.dtype.name}"
    if a.size == 0:
        return f"np.zeros({tuple(a.shape)!r}, dtype={dtype})"
    # repr(float) is the shortest string that reads back to the same float64 (and a float32 widens
    # exactly to float64), so the literal rebuilds the array bit for bit
    formatter = {"float_kind": lambda v: repr(float(v))} if a.dtype.kind == "f" else None
    body = numpy.array2string(a, separator=", ", threshold=a.size + 1, max_line_width=110, prefix="    ", formatter=formatter)
    body = body.replace("nan", "np.nan").replace("inf", "np.inf")
    return f"np.array({body}, dtype={dtype})"
