"""The self-check: every public op against its plain-loop reference, gradcheck and the laws; the ops
checked through compositions elsewhere have their loop references wired in too."""

import numpy
import pytest

from poolref import oracle
from poolref.autograd import GradcheckError, gradcheck
from poolref.cases import PUBLIC_OPS, draw_case
from poolref.oracle.engine import poolref_function
from poolref.oracle.selfcheck import NO_FINITE_DIFFERENCES, SELF_OPS, reference

from conftest import COMPOSED_OPS


def test_every_public_op_has_a_loop_reference():
    assert set(PUBLIC_OPS) <= set(SELF_OPS)
    report = oracle.check("self", cases=0)
    assert not [r.op for r in report.results if not r.covered]


def test_the_composed_ops_agree_with_their_loop_references_and_gradcheck():
    report = oracle.check("self", ops=list(COMPOSED_OPS), cases=1, seed=3)  # a finite case: gradcheck runs on it
    assert report.passed, report.table()
    assert [r.op for r in report.results] == list(COMPOSED_OPS) and all(r.counts.get("finite") for r in report.results)


def _smooth_dynopool_case(seed):
    rng = numpy.random.default_rng(seed)
    while True:
        case = draw_case(rng, "dynopool2d", None, "finite")
        if "alpha" in case.grad_inputs:
            return case


def test_dynopool_alpha_gets_the_straight_through_gradient_not_finite_differences():
    case = _smooth_dynopool_case(0)
    assert NO_FINITE_DIFFERENCES["dynopool2d"] == ("alpha",)
    # the output size round(L / alpha) is piecewise constant: central differences see the surrogate's
    # error, so alpha is left out of the gradcheck, and held to the loop reference instead
    with pytest.raises(GradcheckError):
        gradcheck(poolref_function(case), case.x, case.arrays["alpha"], rtol=1e-6)
    gradcheck(poolref_function(case.replace(grad_inputs=("x",))), case.x, rtol=1e-6)
    cotangent = numpy.ones(poolref_function(case)(case.x, case.arrays["alpha"]).shape)
    from poolref.autograd import vjp
    _, pullback = vjp(poolref_function(case), case.x, case.arrays["alpha"])
    _, _, grads = reference(case, cotangent)
    numpy.testing.assert_allclose(pullback(cotangent)[1], grads["alpha"], rtol=1e-10, atol=1e-12)


def test_the_self_check_of_conv2d_follows_groups_padding_strings_and_padding_modes():
    # the loop reference was called with zero padding and one group whatever the case said: 13 of
    # `poolref check`'s 20 conv2d cases failed once the cases drew groups and padding modes
    report = oracle.check("self", ops=["conv2d"], cases=20, seed=0)
    assert report.passed, report.table()
    from poolref.cases import generate_plan

    plan = generate_plan("conv2d", 20, 0)
    kinds = {(c.kwargs.get("groups", 1) > 1, c.kwargs.get("padding_mode", "zeros") != "zeros") for c in plan.cases}
    assert {(True, False), (False, True)} <= kinds  # the drawn cases do exercise both


def test_no_gradcheck_where_the_output_is_nan_by_definition():
    # torchvision's ps_roi_align divides an inverted box's empty bins by a count of 0: NaN from finite
    # input, with no derivative to check; the self-check gradchecked it and failed (seed 14)
    assert oracle.check("self", ops=["ps_roi_align"], cases=40, seed=14).passed


def test_gem_dp_on_a_constant_plane_under_an_infinite_gradient_is_refused_with_its_reason():
    # dy/dp is exactly 0 there: the op gives 0 * inf = NaN, the first-derivation loop reference its
    # rounding times inf (seed 20 compared them); such a case is now drawn again, for its reason
    from poolref.cases.case import Case
    from poolref.oracle.selfcheck import _reference_refusal

    one = Case("gem_pool", {"x": numpy.full((1, 1, 1), 0.7, dtype=numpy.float32), "p": numpy.array(3.0, dtype=numpy.float32)},
               {"eps": 0.05}, positional=("x", "p"), grad_inputs=("x", "p"), input_class="nonfinite_gradient")
    assert "dy/dp is exactly 0" in _reference_refusal(one)
    varied = one.replace(arrays={**one.arrays, "x": numpy.array([[[0.7, 0.2]]], dtype=numpy.float32)})
    assert _reference_refusal(varied) is None
    assert oracle.check("self", ops=["gem_pool"], cases=40, seed=20).passed
