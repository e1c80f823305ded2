"""The engine on a stand-in framework (poolref itself, run from source code as an adapter's would be):
cases pass, a planted error fails with a small runnable reproducer, and nothing needs a framework."""

import numpy
import pytest

import poolref
from poolref.oracle import engine
from poolref.cases import VIEWS, Case, generate_cases
from poolref.oracle.mapping import KnownDefect, Mapping, array_literal, format_kwargs

IMPORTS = "import poolref"


def _poolref_as_framework(error: str = ""):
    """Source code computing max_pool2d with poolref, plus an optional planted ``error`` line."""

    def code(case):
        return "\n".join([
            f"(y, y_indices), pullback = poolref.vjp(lambda t: poolref.max_pool2d(t, {format_kwargs(case.kwargs)}), x)",
            "grad_x = pullback(cotangent)[0]",
            error,
        ])

    return code


def _mapping(error: str = "") -> Mapping:
    return Mapping("max_pool2d", "standin.max_pool2d", _poolref_as_framework(error), space=dict(dilation=True))


def _check(mapping, cases=6):
    return engine.check_mapping("standin", IMPORTS, mapping, engine.plan_cases(mapping, cases, 0), 0)


def test_a_faithful_framework_passes_on_worked_and_random_cases():
    mapping = _mapping()
    planned = engine.plan_cases(mapping, 6, 0)
    assert sum(1 for c in planned.cases if c.label) == 2  # the ties and NaN examples of max_pool2d
    assert planned.counts == {"worked": 2, "finite": 1, "nan": 1, "ties": 1, "inf": 1, "strided": 1, "signed_zero": 1}
    result = _check(mapping)
    assert result.passed and result.cases == 8 and result.max_abs_error == 0.0
    assert result.counts == planned.counts and result.refused["float16"].startswith("no float16 kernel")


@pytest.mark.parametrize("error, problem", [
    ("y = y + 0.001", "output"),
    ("y_indices = y_indices + 1", "indices"),
    ("grad_x = grad_x * 4", "gradient to x"),
])
def test_a_planted_error_fails_with_a_small_runnable_reproducer(error, problem):
    result = _check(_mapping(error))
    # every finite case fails (an output error cannot show where the output is NaN or infinite)
    assert not result.passed and "finite" in {f.input_class for f in result.failures}
    failure = next(f for f in result.failures if f.input_class == "finite")
    assert any(p.startswith(problem) for p in failure.problems)
    # shrunk to one (n, c) plane where the case had more
    assert "x.shape=(1, 1," in failure.case
    namespace = {}
    with pytest.raises(AssertionError, match=problem):
        exec(compile(failure.reproducer, "<reproducer>", "exec"), namespace)
    # the reproducer is the framework code that ran, then poolref's call and the asserts
    assert error in failure.reproducer and "poolref.max_pool2d(x, " in failure.reproducer


def test_the_reproducer_of_a_passing_case_runs_clean():
    mapping = _mapping()
    case = generate_cases("max_pool2d", 1, 5, mapping.generation_space())[0]
    assert case.input_class == "finite"
    outcome, cotangent = engine.evaluate(IMPORTS, mapping, case, 0, 0)
    assert outcome.ok
    source = engine.reproducer("standin", IMPORTS, mapping, case, cotangent, outcome)
    exec(compile(source, "<reproducer>", "exec"), {})


def test_a_framework_that_raises_is_a_failure():
    result = _check(_mapping("raise RuntimeError('no kernel for this case')"), cases=1)
    assert not result.passed and "standin.max_pool2d raised RuntimeError: no kernel for this case" in result.failures[0].problems[0]


def test_refused_cases_are_not_drawn():
    mapping = Mapping("max_pool2d", "standin", _poolref_as_framework(),
                      express=lambda case: "no ceil mode" if case.kwargs.get("ceil_mode") else None)
    assert not any(c.kwargs.get("ceil_mode") for c in engine.plan_cases(mapping, 20, 0).cases)


def test_array_literals_rebuild_arrays_exactly():
    rng = numpy.random.default_rng(0)
    for a in (rng.normal(size=(2, 3)), rng.normal(size=5).astype(numpy.float32), numpy.array([numpy.nan, numpy.inf, -numpy.inf, 1e-300]),
              numpy.arange(6).reshape(2, 3), numpy.zeros((0, 3))):
        rebuilt = eval(array_literal(a), {"np": numpy})
        assert rebuilt.dtype == a.dtype and rebuilt.shape == a.shape
        numpy.testing.assert_array_equal(rebuilt, a)


def test_shrinking_keeps_a_region_case_to_its_failing_box():
    x = numpy.random.default_rng(1).normal(size=(2, 2, 5, 5))
    boxes = numpy.array([[0, 0.5, 0.5, 3, 3], [1, 1, 1, 4, 4], [1, 0, 0, 2, 2.5]])
    case = Case("roi_align", {"x": x, "boxes": boxes}, dict(output_size=2, spatial_scale=1.0, sampling_ratio=2, aligned=False),
                positional=("x", "boxes"))

    def wrong_second_box(case):  # off for the box whose x1 is 1 (the second), in every channel
        return "\n".join([
            f"y, pullback = poolref.vjp(lambda t: poolref.roi_align(t, boxes, {format_kwargs(case.kwargs)}), x)",
            "grad_x = pullback(cotangent)[0]",
            "y[np.isclose(boxes[:, 1], 1.0)] += 1.0",
        ])

    mapping = Mapping("roi_align", "standin.roi_align", wrong_second_box)
    outcome, cotangent = engine.evaluate(IMPORTS, mapping, case, 0, 0)
    assert not outcome.ok
    small, _, small_outcome = engine.shrink(IMPORTS, mapping, case, cotangent, outcome, 0, 0)
    assert not small_outcome.ok
    assert small.arrays["boxes"].shape == (1, 5) and small.x.shape == (1, 1, 5, 5)
    assert small.arrays["boxes"][0, 0] == 0 and small.arrays["boxes"][0, 1] == 1.0


def test_poolref_source_spells_the_call():
    case = Case("fractional_max_pool2d", {"x": numpy.zeros((1, 1, 4, 4)), "random_samples": numpy.zeros((1, 1, 2))},
                dict(kernel_size=(2, 2), output_size=(2, 2), return_indices=True))
    assert engine.poolref_source(case) == (
        "poolref.fractional_max_pool2d(x, random_samples=random_samples, kernel_size=(2, 2), output_size=(2, 2), return_indices=True)"
    )
    assert poolref.fractional_max_pool2d  # the name the source uses exists


def test_the_report_prints_a_table_per_framework_and_every_reproducer():
    import json

    from poolref.oracle.report import Report

    report = Report([_check(_mapping(), 2), _check(_mapping("grad_x = grad_x * 4"), 2)], {"standin": "0.1"})
    text = report.table()
    assert text.startswith("standin 0.1") and text.count("max_pool2d  native  standin.max_pool2d") == 2
    assert "FAIL (4)" in text and "pass" in text and text.count("reproducer (runnable Python):") == 4
    assert "8 cases, 4 mismatches, 0 known framework defects; 2 rows (2 native)" in text
    assert "tolerances: per element |a - b| <= atol*s + rtol*|b| (float64 rtol=1e-10 atol=1e-12" in text
    assert "input class finite:" in text and "input class worked:" in text
    assert "cases per input class" in text and "wrk  fin  nan" in text
    data = json.loads(report.to_json())
    assert not data["passed"] and data["verdict"] == "fail"
    assert data["results"][1]["failures"][0]["reproducer"].startswith("# poolref check standin")
    assert data["tolerances"]["float32"] == {"rtol": 1e-5, "atol": 2e-5} and "nan" in data["input_classes"]
    assert data["results"][0]["counts"]["worked"] == 2 and data["results"][0]["kind"] == "native"
    assert "reproducer" not in report.table(reproducers=False)


TIES = "(x == 2).any() and np.isin(x, [-1, 0, 1, 2]).all()"  # the values the ties class draws


def test_a_known_defect_is_listed_apart_and_does_not_fail_the_run():
    defect = KnownDefect("the gradient is four times too large on ties", lambda case: case.input_class == "ties")
    mapping = Mapping("max_pool2d", "standin.max_pool2d",
                      _poolref_as_framework(f"grad_x = grad_x * 4 if {TIES} else grad_x"),
                      space=dict(dilation=True), defects=(defect,))
    result = _check(mapping, 6)
    assert result.passed and result.status == "pass, 1 known defect"
    (known,) = result.known
    assert known.input_class == "ties" and known.problems[0].startswith("known standin defect: the gradient is four")
    # a defect explains only the comparisons it names: the same error in the output is a mismatch
    wrong_output = Mapping("max_pool2d", "standin.max_pool2d",
                           _poolref_as_framework(f"y = y * 4 if {TIES} else y"),
                           space=dict(dilation=True), defects=(defect,))
    assert not _check(wrong_output, 6).passed


def test_nothing_checked_never_passes():
    from poolref.oracle.report import OpResult, Report

    assert Report([OpResult("standin", "max_pool2d", kind="not covered", reason="none")]).verdict == "nothing checked"
    empty = Report([_check(Mapping("max_pool2d", "standin.max_pool2d", _poolref_as_framework(), worked=False), 0)])
    assert empty.verdict == "nothing checked" and not empty.passed and empty.results[0].status == "NO CASES"


def test_a_strided_case_reproduces_with_its_view():
    mapping = _mapping()
    case = next(c for c in engine.plan_cases(mapping, 12, 0).cases if c.input_class == "strided")
    outcome, cotangent = engine.evaluate(IMPORTS, mapping, case, 0, 0)
    source = engine.reproducer("standin", IMPORTS, mapping, case, cotangent, outcome)
    kind = case.views["x"][0]
    assert "x_base = np.array(" in source and f"x = x_base{VIEWS[kind].numpy}" in source
    namespace = {}
    exec(compile(source, "<reproducer>", "exec"), namespace)
    assert not namespace["x"].flags.c_contiguous


def test_the_nonfinite_gradient_class_sends_nan_and_inf_upstream():
    mapping = _mapping()
    case = next(c for c in engine.plan_cases(mapping, 20, 0).cases if c.input_class == "nonfinite_gradient")
    _, cotangent = engine.run_poolref(case, 0, 3)
    assert numpy.isnan(cotangent).any() or numpy.isinf(cotangent).any()


def test_an_op_without_a_mapping_is_a_row_with_its_reason_not_dropped():
    # regression: oracle.check("torch", ops=["max_pool2d", "roi_align"]) used to drop roi_align silently
    pytest.importorskip("torch")
    from poolref import oracle

    report = oracle.check("torch", ops=["max_pool2d", "roi_align"], cases=2)
    rows = {r.op: r for r in report.results}
    assert set(rows) == {"max_pool2d", "roi_align"}
    if not rows["roi_align"].covered:  # torchvision does not load here: a row saying so
        assert rows["roi_align"].status == "not covered" and "torchvision" in rows["roi_align"].reason
        assert "roi_align" in report.table() and "not covered" in report.table()


def test_a_run_over_uncovered_ops_alone_checks_nothing_and_never_passes():
    # regression: `poolref check torch --ops roi_align` printed "0 cases ... all checks passed"
    pytest.importorskip("torch")
    from poolref import oracle

    report = oracle.check("torch", ops=["ps_roi_pool"])
    if not report.checked:
        assert report.cases == 0 and report.verdict == "nothing checked" and not report.passed
        assert "NOTHING CHECKED" in report.verdict_line()


def test_each_gradient_is_compared_at_its_own_magnitude():
    # A magnitude case scales x by s = 1e-22. The gradient to x and to a bias (a sum of upstream
    # entries) are of order one, the gradient to the weight of order s: each absolute tolerance
    # follows. Seed 32 of conv2d found a float32 bias gradient 7e-7 off (another summation order)
    # compared at atol 2e-27.
    s = 1e-22
    case = Case("conv2d", {"x": numpy.ones((1, 1, 2, 2), numpy.float32) * s}, {}, input_class="magnitude", scale=s)
    mapping = Mapping("conv2d", "standin.conv2d", lambda case: "", space={})
    ours = engine.Results(numpy.zeros(1, numpy.float32), None, {
        "x": numpy.float32([0.5]), "bias": numpy.float32([-0.002044]), "weight": numpy.float32([3 * s])})

    def verdicts(x, bias, weight):
        theirs = engine.Results(ours.values, None, {"x": numpy.float32([x]), "bias": numpy.float32([bias]),
                                                    "weight": numpy.float32([weight])})
        return {name: comparison.ok for name, comparison in engine.compare_case(mapping, case, ours, theirs)}

    assert verdicts(0.5 + 7e-7, -0.002044 + 7e-7, 3 * s) == {
        "output": True, "grad_x": True, "grad_bias": True, "grad_weight": True}
    assert verdicts(0.5, -0.002044 + 1e-4, 3 * s)["grad_bias"] is False  # a wrong bias gradient still fails
    assert verdicts(0.5, -0.002044, 3 * s + 1e-25)["grad_weight"] is False  # the weight's tolerance stays at s
