"""The oracle's case generator: reproducible, valid under each convention, inputs that test semantics."""

import numpy
import pytest

import poolref
from poolref._geometry import pool_geometry
from poolref.oracle.cases import OPS, WORKED, ClassNotApplicable, draw_case, generate_cases, generate_plan, with_indices, worked_examples
from poolref.oracle.engine import poolref_function, poolref_refusal
from poolref.oracle.generators import _dynopool_queries, _off_the_kinks


def finite_cases(op, count, seed, space=None):
    """Cases of ``op`` drawn for the finite class only (the generators' own values, no class applied)."""
    rng = numpy.random.default_rng(seed)
    return [draw_case(rng, op, space, "finite") for _ in range(count)]


def test_cases_are_reproducible_from_the_seed():
    a, b = generate_cases("max_pool2d", 5, 3), generate_cases("max_pool2d", 5, 3)
    assert all(numpy.array_equal(x.x, y.x, equal_nan=True) and x.kwargs == y.kwargs for x, y in zip(a, b))
    assert not all(numpy.array_equal(x.x, y.x) for x, y in zip(a, generate_cases("max_pool2d", 5, 4)))
    # the op's name is mixed into the seed: two ops do not share their draws
    assert generate_cases("avg_pool2d", 1, 3)[0].kwargs != a[0].kwargs or not numpy.array_equal(generate_cases("avg_pool2d", 1, 3)[0].x, a[0].x)


#: Ops whose output is not (N, C, *spatial): bilinear pooling's (N, C_x * C_y), SPP's (N, C * sum(n^2)).
FLAT_OUTPUTS = ("bilinear_pool", "spatial_pyramid_pool2d")


@pytest.mark.parametrize("op", OPS)
def test_every_op_draws_finite_cases_poolref_accepts(op):
    for case in finite_cases(op, 4, 0):
        outputs = poolref_function(case)(*[case.arrays[name] for name in case.grad_inputs])
        values = outputs[0] if with_indices(case.op) else outputs
        assert values.ndim == (2 if op in FLAT_OUTPUTS else case.x.ndim) and numpy.isfinite(values).all(), case.describe()


@pytest.mark.parametrize("op", OPS)
def test_every_op_goes_round_the_classes_and_says_why_it_skips_one(op):
    plan = generate_plan(op, 16, 0, dict(dtypes=("float64", "float32", "float16"), integer_dtypes=("int64",), unbatched=True))
    assert plan.cases and plan.counts.get("finite") and all(plan.refused.values())
    assert {c.input_class for c in plan.cases} | set(plan.refused) >= {"finite", "nan", "inf", "ties", "empty"}


def test_new_ops_refuse_the_classes_they_cannot_take_with_a_reason():
    with pytest.raises(ClassNotApplicable, match="unbatched input is ambiguous"):
        draw_case(numpy.random.default_rng(0), "gem_pool", dict(unbatched=True), "unbatched")
    with pytest.raises(ClassNotApplicable, match="not homogeneous"):
        draw_case(numpy.random.default_rng(0), "bilinear_pool", None, "magnitude")
    # stochastic pooling's values become probabilities: every class keeps them non-negative
    plan = generate_plan("stochastic_pool2d", 24, 0, dict(dtypes=("float64", "float16"), unbatched=True),
                         accept=lambda case: "poolref refuses non-finite input" if not numpy.isfinite(case.x).all() else None)
    assert all(float(numpy.min(c.x, initial=0)) >= 0 for c in plan.cases)
    assert {"finite", "ties", "signed_zero", "magnitude", "float16"} <= set(plan.counts) and {"nan", "inf"} <= set(plan.refused)


def test_dynopool_alpha_goes_both_ways_and_its_gradient_is_compared_only_off_the_kinks():
    cases = finite_cases("dynopool2d", 40, 0)
    alphas = numpy.concatenate([c.arrays["alpha"] for c in cases])
    assert (alphas < 1).any() and (alphas > 1).any()
    assert any("alpha" in c.grad_inputs for c in cases)
    for case in cases:
        if "alpha" in case.grad_inputs:  # no query point on a pixel coordinate
            for L, a in zip(case.x.shape[-2:], case.arrays["alpha"]):
                assert _off_the_kinks(_dynopool_queries(L, float(a)))


@pytest.mark.parametrize("convention", ["torch", "onnx", "tensorflow"])
@pytest.mark.parametrize("op", ["max_pool1d", "avg_pool2d", "max_pool3d"])
def test_windowed_cases_are_valid_under_their_convention(op, convention):
    paddings = {"torch": ("none", "symmetric"), "onnx": ("asymmetric", "same", "same_lower", "valid"),
                "tensorflow": ("same", "valid")}[convention]
    space = dict(convention=convention, padding=paddings, ceil_mode=convention != "tensorflow", dilation=True)
    for case in generate_cases(op, 10, 1, space):
        kw = case.kwargs
        assert kw.get("convention", "torch") == convention
        pool_geometry(case.x.shape[2:], kw["kernel_size"], kw.get("stride"), kw.get("padding", 0), kw.get("dilation", 1),
                      kw["ceil_mode"], convention, op)
        if convention == "tensorflow":
            assert not kw["ceil_mode"]


@pytest.mark.parametrize("op", ["max_pool2d", "adaptive_max_pool3d", "fractional_max_pool2d", "global_max_pool", "roi_pool"])
def test_max_type_inputs_hold_distinct_values(op):
    for case in finite_cases(op, 5, 2):
        values = case.x.ravel().tolist()
        assert len(set(values)) == len(values)


def test_dtypes_and_accept_narrow_the_draw():
    cases = generate_cases("avg_pool1d", 12, 0, dict(dtypes=("float32",)), accept=lambda c: None if c.kwargs["ceil_mode"] else "no")
    assert all(c.dtype == numpy.float32 and c.kwargs["ceil_mode"] for c in cases) and len(cases) == 12


def test_unpool_cases_hold_unique_indices_within_the_output():
    for case in generate_cases("max_unpool2d", 10, 0):
        indices = case.arrays["indices"].reshape(-1, case.x.shape[2] * case.x.shape[3])
        assert all(len(set(row.tolist())) == row.size for row in indices)
        out = case.kwargs.get("output_size")
        poolref.max_unpool2d(case.x, case.arrays["indices"], case.kwargs["kernel_size"], case.kwargs["stride"],
                             case.kwargs["padding"], out)


def test_crop_and_resize_space_draws_aligned_single_sample_boxes():
    for case in generate_cases("roi_align", 5, 0, dict(crop_and_resize=True)):
        assert case.kwargs["aligned"] and case.kwargs["sampling_ratio"] == 1 and case.x.shape[2] >= 2


def test_ratio_two_fractional_cases_have_regular_windows():
    for case in finite_cases("fractional_max_pool2d", 5, 0, dict(ratio_two=True)):
        y = poolref.fractional_max_pool2d(case.x, **case.kwargs, random_samples=case.arrays["random_samples"])[0]
        assert numpy.array_equal(y, poolref.max_pool2d(case.x, 2))


def test_the_worked_examples_give_the_values_semantics_md_states():
    assert len({case.label for case in WORKED}) == len(WORKED) and all(c.label.startswith("SEMANTICS") for c in WORKED)
    run = lambda case: poolref_function(case)(*[case.arrays[n] for n in case.grad_inputs])  # noqa: E731
    avg = run(worked_examples("avg_pool2d")[0])
    numpy.testing.assert_allclose(avg[0, 0], [[1.5556, 3.3333, 2.0], [6.3333, 11.0, 6.0], [4.5, 7.5, 4.0]], atol=1e-4)
    numpy.testing.assert_array_equal(run(worked_examples("avg_pool1d")[0])[0, 0], [1.5, 3.5, 5.0])
    lp_ceil, lp_negative = worked_examples("lp_pool1d")
    numpy.testing.assert_array_equal(run(lp_ceil)[0, 0], [3.0, 7.0, 10.0])
    assert numpy.isnan(run(lp_negative)[0, 0, :3]).all()  # PyTorch's formula: no absolute value
    ties, nan = worked_examples("max_pool2d")
    assert run(ties)[1].item() == 1 and run(nan)[1].item() == 3  # first of ties; the last NaN
    aligned, unaligned = worked_examples("roi_align")
    numpy.testing.assert_allclose(run(aligned)[0, 0, 0], [8.25, 8.75, 9.25, 9.75])
    numpy.testing.assert_allclose(run(unaligned)[0, 0, 0], [13.75, 14.25, 14.75, 15.25])
    assert run(worked_examples("max_pool1d")[0])[0].shape[-1] == 2  # the window starting in padding is dropped


def test_draw_case_refuses_an_unknown_op():
    with pytest.raises(ValueError, match="unknown op 'fancy_pool'"):
        draw_case(numpy.random.default_rng(0), "fancy_pool")
