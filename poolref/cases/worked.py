r"""The worked examples of SEMANTICS.md: small hand-written inputs that are both tests and docs.

Each is a convention-free :class:`~poolref.cases.case.Case` with a label naming the rule it
illustrates; an adapter adds its own convention and skips those its framework cannot express. They
run on every ``poolref check``, ahead of the random cases, and the atlas (:mod:`poolref.oracle.atlas`)
reuses their inputs.
"""

from __future__ import annotations

import numpy

from .case import Case

__all__ = ["WORKED", "worked_examples", "RAMP_4x4", "RAMP_10x10", "plane"]


def plane(values, dtype=numpy.float64):
    """A (1, 1, *shape) input from nested lists."""
    a = numpy.asarray(values, dtype=dtype)
    return a.reshape((1, 1) + a.shape)


RAMP_4x4 = numpy.arange(1.0, 17.0).reshape(1, 1, 4, 4)
RAMP_10x10 = numpy.arange(100.0).reshape(1, 1, 10, 10)
NAN = float("nan")

#: The worked examples of SEMANTICS.md, each with the section it illustrates. They carry no
#: convention: an adapter adds its own, and skips those its framework cannot express.
WORKED = (
    Case("avg_pool2d", {"x": RAMP_4x4}, dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
         label="SEMANTICS 3: ceil-mode average, last window divides by its in-padding count"),
    Case("avg_pool1d", {"x": plane([1, 2, 3, 4, 5])}, dict(kernel_size=2, stride=2, ceil_mode=True, count_include_pad=True),
         label="SEMANTICS 3: ceil-mode overhang is not counted"),
    Case("max_pool1d", {"x": plane([1, 2, 3, 4, 5])}, dict(kernel_size=2, stride=3, padding=1, ceil_mode=True, return_indices=True),
         label="SEMANTICS 1: no window starts in the end padding"),
    Case("lp_pool1d", {"x": plane([1, 2, 3, 4, 5])}, dict(norm_type=1.0, kernel_size=2, stride=2, ceil_mode=True),
         label="SEMANTICS 4: Lp pooling of a partial ceil-mode window"),
    Case("lp_pool1d", {"x": plane([-1, -2, -3, 1, 2, 3])}, dict(norm_type=3.0, kernel_size=1),
         label="SEMANTICS 4: Lp pooling of negative values"),
    Case("max_pool2d", {"x": plane([[1, 3, 3], [3, 2, 0]])}, dict(kernel_size=(2, 3), return_indices=True),
         label="SEMANTICS 2: ties go to the first in scan order"),
    Case("max_pool2d", {"x": plane([[1, NAN, 3], [NAN, 2, 0]])}, dict(kernel_size=(2, 3), return_indices=True),
         label="SEMANTICS 2: NaN propagates, the last NaN's index"),
    Case("adaptive_avg_pool1d", {"x": plane(numpy.arange(8.0))}, dict(output_size=6),
         label="SEMANTICS 5: adaptive bins 8 -> 6 overlap"),
    Case("adaptive_max_pool1d", {"x": plane([3, 1, 4, 1.5, 5, 9, 2, 6])}, dict(output_size=6, return_indices=True),
         label="SEMANTICS 5: adaptive max over overlapping bins"),
    Case("roi_align", {"x": RAMP_10x10, "boxes": numpy.array([[0.0, 1, 1, 3, 3]])},
         dict(output_size=4, spatial_scale=1.0, sampling_ratio=1, aligned=True), positional=("x", "boxes"),
         label="SEMANTICS 8: RoI Align, aligned=True (half-pixel)"),
    Case("roi_align", {"x": RAMP_10x10, "boxes": numpy.array([[0.0, 1, 1, 3, 3]])},
         dict(output_size=4, spatial_scale=1.0, sampling_ratio=1, aligned=False), positional=("x", "boxes"),
         label="SEMANTICS 8: RoI Align, aligned=False"),
    Case("interpolate", {"x": plane([0.0, 1, 2, 3, 4])}, dict(size=3, mode="nearest"),
         label="SEMANTICS 9: nearest reads floor(dst * in/out)"),
    Case("interpolate", {"x": plane([0.0, 1, 2, 3, 4])}, dict(size=3, mode="nearest-exact"),
         label="SEMANTICS 9: nearest-exact reads floor((dst + 1/2) * in/out)"),
)


WORKED = tuple(case.replace(input_class="worked") for case in WORKED)


def worked_examples(op: str) -> list[Case]:
    """The worked examples of ``op`` (see :data:`WORKED`)."""
    return [case for case in WORKED if case.op == op]
