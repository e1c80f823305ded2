"""Shared by the adapter tests: every mapping's reproducer must run as written."""

import pytest

from poolref import oracle
from poolref.oracle import engine


def assert_reproducers_run(framework: str, seed: int = 0) -> int:
    """Build the reproducer of one case of every mapping of ``framework`` and run it: it must pass
    (the framework and poolref agree) without help from the oracle's process state."""
    adapter = oracle.load_adapter(framework)
    ran = 0
    for mapping in adapter.MAPPINGS:
        case = engine.plan_cases(mapping, 1, seed)[-1]
        outcome, cotangent = engine.evaluate(adapter.IMPORTS, mapping, case, seed, 0)
        assert outcome.ok, (mapping.call, outcome.problems)
        source = engine.reproducer(framework, adapter.IMPORTS, mapping, case, cotangent, outcome)
        exec(compile(source, f"<reproducer of {mapping.call}>", "exec"), {})
        ran += 1
    return ran


@pytest.fixture
def reproducers_run():
    return assert_reproducers_run
