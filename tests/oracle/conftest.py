"""Shared by the adapter tests: every mapping's reproducer must run as written."""

import pytest

from poolref import oracle
from poolref.oracle import engine


def assert_reproducers_run(framework: str, seed: int = 0, kind=None) -> int:
    """Build the reproducer of one case of every mapping of ``framework`` (of that ``kind`` only, if
    given) and run it: it must pass (the framework and poolref agree) without help from the oracle's
    process state."""
    adapter = oracle.load_adapter(framework)
    ran = 0
    for mapping in adapter.MAPPINGS:
        if kind is not None and mapping.kind != kind:
            continue
        case = engine.plan_cases(mapping, 1, seed).cases[-1]  # the first random case (finite values)
        outcome, cotangent = engine.evaluate(adapter.IMPORTS, mapping, case, seed, 0)
        assert outcome.ok, (mapping.call, outcome.problems)
        source = engine.reproducer(framework, adapter.IMPORTS, mapping, case, cotangent, outcome)
        exec(compile(source, f"<reproducer of {mapping.call}>", "exec"), {})
        ran += 1
    return ran


@pytest.fixture
def reproducers_run():
    return assert_reproducers_run


#: The ops the oracle checks through compositions of a framework's own ops (none has them natively).
COMPOSED_OPS = ("stochastic_pool2d", "mixed_pool2d", "gem_pool", "soft_pool2d", "lse_pool", "bilinear_pool",
                "spatial_pyramid_pool2d", "deform_roi_pool", "dynopool2d")

#: Mismatches of the compositions that are poolref's defects, by (op, input class), found by these
#: checks and left for poolref's fixes (the oracle is not bent around them). Remove an entry when its
#: defect is fixed: the tests below then hold the class to agreement again.
POOLREF_DEFECTS = {
    ("stochastic_pool2d", "magnitude"): "inference sums a^2 in the input's float: inf from a = 2e19, subnormal "
                                        "(digits lost, 0 / 0 in the gradient) below 1e-19 in float32",
    ("mixed_pool2d", "nonfinite_gradient"): "an infinite upstream gradient gives NaN where the max and average "
                                            "backwards give +-inf (0 * inf inside the max/avg backward)",
    ("lse_pool", "magnitude"): "for |r x| below the float's epsilon, exp(r (x - max)) rounds to 1 and y = max(x) "
                               "instead of about mean(x) (every digit lost; log1p/expm1 keep them)",
    ("bilinear_pool", "inf"): "y=None: (G + G^T) x gives +-inf where the two factors' gradients G x + G^T x "
                              "(PyTorch's autograd, the loop reference) give inf - inf = NaN",
    ("spatial_pyramid_pool2d", "nan"): "adaptive average levels: NaN spreads past its own bins",
    ("spatial_pyramid_pool2d", "inf"): "adaptive average levels: a bin of -inf gives NaN, not -inf",
    ("spatial_pyramid_pool2d", "nonfinite_gradient"): "adaptive average levels: an infinite upstream gradient "
                                                      "gives NaN in bins it does not reach",
    ("deform_roi_pool", "nonfinite_gradient"): "the offsets' gradient of a bin with a sample outside the image is "
                                               "NaN (its zero slope times an infinite upstream gradient); mmcv "
                                               "skips such samples: 0",
    ("dynopool2d", "inf"): "a clamped or integer query coordinate reads the next pixel with weight 0: 0 * inf = NaN "
                           "where the one pixel read gives its value",
    ("dynopool2d", "nan"): "as for inf: a NaN read with weight 0 next to a clamped or integer query coordinate",
    ("dynopool2d", "nonfinite_gradient"): "the backward's dense interpolation products multiply an infinite upstream "
                                          "gradient by the zero weights of pixels a point does not read: NaN there",
}


def assert_agrees_but_for_poolref_defects(report) -> None:
    """Every row of ``report`` checked cases, and every mismatch is a listed poolref defect."""
    assert all(r.cases for r in report.results), report.table(reproducers=False)
    unexplained = [f"{r.op} [{f.input_class}]: {'; '.join(f.problems)}" for r in report.results for f in r.failures
                   if (r.op, f.input_class) not in POOLREF_DEFECTS]
    assert not unexplained, "\n".join(unexplained)


def assert_every_public_op_is_a_row(framework: str) -> None:
    """Every public op is checked by a mapping (native or a composition) or not covered with its own
    reason, in the adapter and in the report."""
    adapter = oracle.load_adapter(framework)
    uncovered = []
    for op in oracle.PUBLIC_OPS:
        mappings = [m for m in adapter.MAPPINGS if m.op == op]
        assert all(m.kind in ("native", "composition") for m in mappings)
        if not mappings:
            assert adapter.UNCOVERED.get(op), f"{framework}: {op} has no mapping and no reason"
            uncovered.append(op)
    report = oracle.check(framework, ops=uncovered, cases=0)
    assert [r.op for r in report.results] == uncovered
    for row in report.results:
        assert row.kind == "not covered" and row.reason == adapter.UNCOVERED[row.op]
        assert "is declared" not in row.reason  # the generic placeholder of an op nobody thought about
