r"""Where a composition's own arithmetic, not the framework's rule, decides the answer.

A check "by composition" builds an op from the framework's building blocks (SoftPool from ``softmax``,
GeM from ``pow`` and ``mean``). On most inputs that is the op; on some, the composition's chain
rule or its order of operations gives an answer the op does not (``inf - inf`` inside a softmax's
backward where the op's derivative is finite). Comparing there would test the composition, not the
framework, so those input classes are refused for that mapping, with the reason, which the report
and the atlas print. One home for the reasons the adapters share, and for the ``model=`` helpers
that refuse classes (:class:`poolref.oracle.mapping.Mapping`).

>>> refuse(inf="why")(Case("soft_pool2d", {}, {}, input_class="inf"))
'why'
"""

from __future__ import annotations

from ..cases.case import Case

__all__ = [
    "refuse", "not_for_nonfinite_gradients", "SOFTMAX_CHAIN_RULE", "SOFTPOOL_LIMITS", "GEM_CHAIN_RULE",
    "EXPM1_CHAIN_RULE", "STOCHASTIC_CHAIN_RULE", "DEFORM_CONV_CHAIN_RULE",
]


def refuse(**reasons: str):
    """``model=``: refuse the input classes named, each with its reason."""

    def model(case: Case):
        return reasons.get(case.input_class)

    return model


def not_for_nonfinite_gradients(why: str):
    """``model=``: refuse non-finite upstream gradients where the composition's chain rule multiplies
    an infinity by a partial derivative that is zero inside the formula (``why``): the NaN it gives is
    the composition's, while poolref multiplies by the op's own (finite) derivative."""
    return refuse(nonfinite_gradient=f"non-finite upstream gradients: {why}")


SOFTMAX_CHAIN_RULE = ("the softmax's backward, w * (g - sum(w * g)), subtracts the upstream infinity from itself: NaN "
                      "for every tap of the window, where SoftPool's derivative w (1 + x - y) is finite")
SOFTPOOL_LIMITS = ("the composition's softmax subtracts a window's +inf maximum from itself and multiplies a -inf by its "
                   "weight 0 (NaN), where SoftPool has limits, which poolref takes (+inf wins; a -inf drops out)")
GEM_CHAIN_RULE = ("the composition's d/dp passes the upstream infinity through d(r^p)/dp = r^p log r, which is 0 for "
                  "the plane's largest element (r = 1): inf * 0 = NaN where dy/dp is finite")
EXPM1_CHAIN_RULE = ("the derivative of expm1 is taken as expm1(t) + 1, which rounds to 0 where t = r (x - max) is below "
                    "about -17 in float32 (-37 in float64) although exp(t) > 0: inf * 0 = NaN there, where the op's "
                    "derivative, the softmax weight, is positive")
STOCHASTIC_CHAIN_RULE = ("the composition's gradient goes through Q and S separately, g 2a/S - g Q/S^2: inf - inf = NaN "
                         "where the op's derivative (2 a S - Q)/S^2 is finite")
DEFORM_CONV_CHAIN_RULE = ("the composition's chain rule multiplies the upstream infinity by each corner's weighted value "
                          "before the corners are added (inf * v_q - inf * v_p is NaN), where torchvision, and poolref, "
                          "multiply it by the slope, the corners' difference, once (+-inf where the slope is finite and "
                          "not 0); it also sends 0 * inf = NaN to a corner of weight 0, which torchvision's col2im skips")
