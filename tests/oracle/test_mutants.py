"""The oracle tests itself: every planted framework bug is caught by the DEFAULT check of its op (the
seeded cases ``poolref check`` runs), by the input class it targets, and the same checks pass
without the bug, so a catch is the bug's doing."""

import importlib.util

import pytest

from poolref import oracle
from poolref.oracle.mutants import MUTANTS, hunt


def _installed(framework):
    return framework in oracle.available_frameworks()


def test_the_suite_is_broad():
    assert len(MUTANTS) >= 40 and len({m.op for m in MUTANTS}) >= 12
    assert {m.op[-2] for m in MUTANTS if m.op[-1] == "d" and m.op[-2] in "123"} == {"1", "2", "3"}
    targeted = {m.caught_by for m in MUTANTS}
    assert {"ties", "nan", "inf", "signed_zero", "float16", "integer", "unbatched", "empty", "strided", "magnitude",
            "scale_factor", "recompute_scale_factor", "nonfinite_gradient"} <= targeted
    assert {"ceil_mode", "count_include_pad", "divisor_override", "dilation", "asymmetric padding", "index layout",
            "gradient scale", "gradient to the last tie", "gradient into padding"} <= {m.rule for m in MUTANTS}


@pytest.mark.parametrize("framework, op", sorted({(m.framework, m.op) for m in MUTANTS}))
def test_without_a_mutant_the_checks_pass(framework, op):
    if not _installed(framework):
        pytest.skip(f"{framework} is not installed")
    report = oracle.check(framework, ops=[op])
    assert report.passed, report.table(reproducers=False)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_planted_bug_is_caught_by_the_default_check(mutant):
    if not _installed(mutant.framework) or importlib.util.find_spec(mutant.target.split(":")[0].split(".")[0]) is None:
        pytest.skip(f"{mutant.framework} is not installed")
    result = hunt(mutant)
    assert result.caught, f"{mutant.name}: not caught in {result.cases} cases"
    if mutant.caught_by:
        assert mutant.caught_by in result.classes, (mutant.name, result.classes)
