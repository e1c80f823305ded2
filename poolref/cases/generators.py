r"""The oracle's configuration generators: one per op family, each drawing a valid call of its op.

A generator ``gen(rng, op, space) -> Case`` draws the op's keyword arguments and shapes from
``space`` (the options an adapter declares for a framework op: which paddings, whether ceil mode
exists, which dtypes, ...; see :func:`poolref.cases.draw_case` for the keys) and fills the
arrays with *finite* values of order one (:mod:`poolref.cases.values`). The input classes (ties,
NaN, infinities, float16, unbatched, non-contiguous views, ...) are applied on top by
:mod:`poolref.cases`, which is why a generator never thinks about them.

The generators live with their op family:

=====================================  ==============================================================
module                                 ops
=====================================  ==============================================================
:mod:`poolref.cases.windows`           max, avg, Lp, unpool, adaptive, global, fractional, stochastic,
                                       mixed, spatial pyramid, blur and max-blur pooling
:mod:`poolref.cases.sampling`          grid_sample, interpolate, dynopool2d
:mod:`poolref.cases.regions`           roi_pool, roi_align, ps_roi_pool, ps_roi_align, deform_roi_pool
:mod:`poolref.cases.learned`           conv2d, deform_conv2d, gem_pool, soft_pool2d, lse_pool,
                                       bilinear_pool
=====================================  ==============================================================
"""

from __future__ import annotations

from . import learned, regions, sampling, windows
from .sampling import LINEAR_MODE
from .values import distinct_values, smooth_values
from .windows import CONVENTION_SPACES, WINDOWED_DEFAULTS

__all__ = ["GENERATORS", "REFUSED_CLASSES", "WINDOWED_DEFAULTS", "CONVENTION_SPACES", "distinct_values", "smooth_values", "LINEAR_MODE"]

#: op name -> generator, every op the oracle draws cases for
GENERATORS = {**windows.GENERATORS, **sampling.GENERATORS, **regions.GENERATORS, **learned.GENERATORS}

#: Classes an op cannot take whatever the framework, and why (:func:`poolref.cases.draw_case`
#: refuses them with this reason).
GLOBAL_UNBATCHED = "a global op reads (N, C, *spatial) of any rank: an unbatched input is ambiguous"
DYNOPOOL_TIES = ("equal pixels make equal query values only in exact arithmetic: between interpolated points a tie "
                 "is decided by rounding, which each implementation (and its dtype) does its own way (at alpha = 2, "
                 "where the query points are the pixels, tests/ops/test_dynopool.py holds the ties to max_pool2d's)")

REFUSED_CLASSES = {
    "deform_conv2d": {"unbatched": "torchvision.ops.deform_conv2d takes (N, C, H, W) input only, and so does poolref's"},
    "dynopool2d": {"ties": DYNOPOOL_TIES, "signed_zero": DYNOPOOL_TIES},
    "gem_pool": {"unbatched": GLOBAL_UNBATCHED},
    "lse_pool": {"unbatched": GLOBAL_UNBATCHED},
    "bilinear_pool": {
        "unbatched": GLOBAL_UNBATCHED,
        # the comparison's absolute tolerance scales with one magnitude s of the inputs, the
        # gradients' with 1; bilinear pooling has no such single degree
        "magnitude": "bilinear pooling is not homogeneous in x: its output has degree 2, 1 or 0 in x (B, its "
                     "signed square root, its L2 normalisation), eps enters the root and the norm's floor, and "
                     "its gradients have one degree less, so no single input magnitude sets the tolerances",
    },
}
