"""The oracle's case generator: reproducible, valid under each convention, inputs that test semantics."""

import numpy
import pytest

import poolref
from poolref._geometry import pool_geometry
from poolref.cases import (
    INPUT_CLASSES,
    OPS,
    WORKED,
    ClassNotApplicable,
    classes_of,
    draw_case,
    generate_cases,
    generate_plan,
    with_indices,
    worked_examples,
)
from poolref.oracle.engine import poolref_function, poolref_refusal
from poolref.cases.regions import deform_roi_pool_coordinates
from poolref.cases.sampling import dynopool_queries
from poolref.cases.values import off_the_kinks


def _finite(op, count, seed, space=None):
    """``count`` cases of the finite class."""
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
    for case in _finite(op, 4, 0):
        outputs = poolref_function(case)(*[case.arrays[name] for name in case.grad_inputs])
        values = outputs[0] if with_indices(case) else outputs
        ndim = 2 if op in FLAT_OUTPUTS else case.x.ndim
        assert values.ndim == ndim and values.size and numpy.isfinite(values).all(), case.describe()


def test_the_composed_ops_refuse_the_classes_they_cannot_take_with_a_reason():
    with pytest.raises(ClassNotApplicable, match="unbatched input is ambiguous"):
        draw_case(numpy.random.default_rng(0), "gem_pool", dict(unbatched=True), "unbatched")
    with pytest.raises(ClassNotApplicable, match="not homogeneous"):
        draw_case(numpy.random.default_rng(0), "bilinear_pool", None, "magnitude")
    # stochastic pooling's values become probabilities: every class keeps them non-negative
    plan = generate_plan("stochastic_pool2d", 24, 0, dict(dtypes=("float64", "float16"), unbatched=True),
                         accept=lambda case: "poolref refuses non-finite input" if not numpy.isfinite(case.x).all() else None)
    assert all(float(numpy.min(c.x, initial=0)) >= 0 for c in plan.cases)
    assert {"finite", "ties", "signed_zero", "magnitude", "float16"} <= set(plan.counts) and {"nan", "inf"} <= set(plan.refused)


def test_dynopool_alpha_goes_both_ways_and_its_gradient_is_compared_onlyoff_the_kinks():
    cases = _finite("dynopool2d", 40, 0)
    alphas = numpy.concatenate([c.arrays["alpha"] for c in cases])
    assert (alphas < 1).any() and (alphas > 1).any()
    assert any("alpha" in c.grad_inputs for c in cases)
    for case in cases:
        if "alpha" in case.grad_inputs:  # no query point on a pixel coordinate
            for L, a in zip(case.x.shape[-2:], case.arrays["alpha"]):
                assert off_the_kinks(dynopool_queries(L, float(a)))


def test_deformable_cases_keep_their_sampling_pointsoff_the_kinks():
    for case in _finite("deform_roi_pool", 10, 0):
        kw = case.kwargs
        points = deform_roi_pool_coordinates(case.arrays["boxes"], case.arrays["offset"], kw["output_size"], kw["spatial_scale"],
                                     kw["sampling_ratio"], kw["gamma"])
        assert off_the_kinks(points)


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
    for case in _finite(op, 5, 2):
        values = case.x.ravel().tolist()
        assert len(set(values)) == len(values)


def test_dtypes_and_accept_narrow_the_draw():
    cases = generate_cases("avg_pool1d", 12, 0, dict(dtypes=("float32",)), accept=lambda c: None if c.kwargs["ceil_mode"] else "no")
    assert all(c.dtype == numpy.float32 and c.kwargs["ceil_mode"] for c in cases) and len(cases) == 12
    assert {c.input_class for c in cases} >= {"finite", "nan", "ties", "inf", "strided"}


def test_unpool_cases_hold_unique_indices_within_the_output():
    for case in _finite("max_unpool2d", 10, 0):
        indices = case.arrays["indices"].reshape(-1, case.x.shape[2] * case.x.shape[3])
        assert all(len(set(row.tolist())) == row.size for row in indices)
        out = case.kwargs.get("output_size")
        poolref.max_unpool2d(case.x, case.arrays["indices"], case.kwargs["kernel_size"], case.kwargs["stride"],
                             case.kwargs["padding"], out)


def test_crop_and_resize_space_draws_aligned_single_sample_boxes():
    from poolref.oracle.tensorflow_adapter import _crop_and_resize_case

    for case in _finite("roi_align", 5, 0, dict(generator=_crop_and_resize_case)):
        assert case.kwargs["aligned"] and case.kwargs["sampling_ratio"] == 1 and case.x.shape[2] >= 2


def test_ratio_two_fractional_cases_have_regular_windows():
    for case in _finite("fractional_max_pool2d", 5, 0, dict(ratio_two=True)):
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


# --------------------------------------------------------------------------------------------------
# The input classes
# --------------------------------------------------------------------------------------------------
EVERYTHING = dict(dtypes=("float64", "float32", "float16"), integer_dtypes=("int64", "uint8"), unbatched=True)


def _class_cases(op, input_class, count=6, space=EVERYTHING):
    return generate_plan(op, count, 3, dict(space, classes=(input_class,))).cases


def test_the_cases_of_an_op_go_round_the_classes_in_order():
    plan = generate_plan("max_pool2d", 2 * len(classes_of("max_pool2d", EVERYTHING)), 0, EVERYTHING, accept=poolref_refusal)
    order = [c.input_class for c in plan.cases]
    assert order[:4] == ["finite", "nan", "ties", "inf"]
    assert set(plan.counts) == set(classes_of("max_pool2d", EVERYTHING)) and min(plan.counts.values()) == 2
    assert not plan.refused


def test_a_class_the_space_cannot_take_is_refused_with_its_reason():
    plan = generate_plan("avg_pool2d", 30, 0, dict(dtypes=("float64",)), accept=poolref_refusal)
    assert plan.refused["float16"].startswith("no float16 kernel") and plan.refused["integer"] == "no integer input"
    assert "unbatched" in plan.refused and "float16" not in plan.counts
    # poolref refusing a class is a reason too: integer input to an average
    plan = generate_plan("avg_pool2d", 30, 0, EVERYTHING, accept=poolref_refusal)
    assert plan.refused["integer"].startswith("poolref refuses it (TypeError")


@pytest.mark.parametrize("op", ["max_pool1d", "avg_pool3d", "adaptive_max_pool2d", "interpolate", "roi_align", "conv2d"])
def test_nan_cases_hold_nan_and_inf_cases_both_infinities_and_a_minus_inf_block(op):
    for case in _class_cases(op, "nan"):
        assert numpy.isnan(case.x).any() and not numpy.isnan(case.x).all()
    for case in _class_cases(op, "inf"):
        assert numpy.isposinf(case.x).any() and numpy.isneginf(case.x).any()
    # the -inf block covers at least half of every spatial axis: whole windows of only -inf
    for case in _class_cases("max_pool2d", "inf"):
        H, W = case.x.shape[2:]
        assert numpy.isneginf(case.x[0, 0]).sum() >= ((H + 1) // 2) * ((W + 1) // 2) - 1


def test_ties_signed_zeros_and_magnitudes():
    for case in _class_cases("max_pool2d", "ties"):
        assert set(numpy.unique(case.x)) <= {-1.0, 0.0, 1.0, 2.0} and numpy.unique(case.x).size < case.x.size
    for case in _class_cases("max_pool2d", "signed_zero"):
        zeros = case.x[case.x == 0]
        assert numpy.signbit(zeros).any() and (~numpy.signbit(zeros)).any()
    scales = {case.scale for case in _class_cases("avg_pool2d", "magnitude", 12)}
    assert min(scales) <= 1e-10 and max(scales) >= 1e10
    for case in _class_cases("avg_pool2d", "magnitude", 12):
        assert 0.2 * case.scale <= numpy.abs(case.x).max() <= 10 * case.scale
        assert numpy.isfinite(case.x).all() and (numpy.abs(case.x) > 0).any()


def test_dtype_layout_and_batch_classes():
    for case in _class_cases("max_pool2d", "float16"):
        assert case.dtype == numpy.float16
    for case in _class_cases("max_pool2d", "integer"):
        assert case.dtype.kind in "iu" and case.grad_inputs == ()
    for case in _class_cases("max_pool3d", "unbatched"):
        assert case.x.ndim == 4 and not case.batched
    for case in _class_cases("max_unpool2d", "empty"):
        assert case.x.shape[0] == 0 and case.arrays["indices"].shape[0] == 0
    for case in _class_cases("roi_align", "empty"):
        assert case.arrays["boxes"].shape == (0, 5) and case.x.shape[0] >= 1
    kinds = set()
    for case in _class_cases("avg_pool2d", "strided", 12):
        kind, base = case.views["x"]
        kinds.add(kind)
        assert not case.x.flags.c_contiguous and base.flags.c_contiguous and case.x.base is base
    assert kinds == {"transpose", "reverse", "slice"}


def test_scale_factor_classes_draw_factors_with_a_fraction():
    for case in _class_cases("interpolate", "scale_factor", 10):
        assert "size" not in case.kwargs and case.kwargs.get("recompute_scale_factor") in (None, False)
    for case in _class_cases("interpolate", "recompute_scale_factor", 4):
        assert case.kwargs["recompute_scale_factor"] is True
    with pytest.raises(ClassNotApplicable):
        draw_case(numpy.random.default_rng(0), "max_pool2d", None, "scale_factor")


@pytest.mark.parametrize("op", OPS)
def test_random_cases_are_not_trivial(op):
    """Fewer than a quarter of any op's cases have an empty or constant output, the empty class aside."""
    plan = generate_plan(op, 20, 0, EVERYTHING, accept=poolref_refusal)
    trivial = 0
    for case in plan.cases:
        with numpy.errstate(all="ignore"):
            outputs = poolref_function(case)(*[case.arrays[name] for name in case.grad_inputs])
        values = numpy.asarray(outputs[0] if with_indices(case) else outputs, dtype=numpy.float64)
        finite = values[numpy.isfinite(values)]
        trivial += case.input_class != "empty" and (values.size == 0 or (finite.size > 1 and numpy.ptp(finite) == 0 and
                                                                         case.input_class == "finite"))
    assert trivial <= len(plan.cases) // 4, op


def test_every_class_is_described():
    assert list(INPUT_CLASSES)[:4] == ["finite", "nan", "ties", "inf"] and all(INPUT_CLASSES.values())
