"""Running checks in worker processes: a framework that aborts its process on one case is reported
with that case's reproducer, and the run goes on with the next case; frameworks run side by side."""

import textwrap

import pytest

from poolref.oracle import runner

# A stand-in framework: poolref's own max_pool1d, run as an adapter's code would be, except that
# it ends its process (os.abort, as an XLA check failure does) on every case of class "ties".
ADAPTER = textwrap.dedent('''
    from poolref.oracle.mapping import Mapping, format_kwargs

    NAME = "crashy"
    IMPORTS = "import os\\nimport poolref"
    DEFAULT_CASES = 6
    UNCOVERED = {}

    def version():
        return "0.0"

    def code(case):
        lines = []
        if case.input_class == "ties":
            lines.append("os.abort()")
        lines += [
            f"(y, y_indices), pullback = poolref.vjp(lambda t: poolref.max_pool1d(t, {format_kwargs(case.kwargs)}), x)",
            "grad_x = pullback(cotangent)[0] if cotangent is not None else None",
        ]
        return "\\n".join(lines)

    MAPPINGS = [Mapping("max_pool1d", "crashy.max_pool1d", code)]
''')


@pytest.fixture
def crashy(tmp_path, monkeypatch):
    (tmp_path / "crashy_adapter.py").write_text(ADAPTER)
    monkeypatch.setenv("POOLREF_ORACLE_ADAPTERS", "crashy=crashy_adapter")
    monkeypatch.syspath_prepend(str(tmp_path))  # a spawned worker starts with this process's sys.path
    return "crashy"


def test_a_framework_that_aborts_on_a_case_is_a_reported_mismatch(crashy):
    report = runner.run_checks([crashy], ops=["max_pool1d"])
    (row,) = [r for r in report.results if r.op == "max_pool1d"]
    assert row.cases == 7  # 6 random cases and the worked example: none lost to the crash
    crashes = [f for f in row.failures if "aborted the process" in f.problems[0]]
    assert len(crashes) == len(row.failures) == 1 and crashes[0].input_class == "ties"
    assert "exit code -6" in crashes[0].problems[0]
    assert "os.abort()" in crashes[0].reproducer and "poolref.max_pool1d(x" in crashes[0].reproducer
    assert report.verdict == "fail"


def test_frameworks_run_side_by_side_and_report_in_the_order_asked(crashy):
    report = runner.run_checks(["self", crashy], ops=["max_pool1d"], cases=3, jobs=2)
    assert [r.framework for r in report.results] == ["self", "crashy"]
    assert report.results[0].passed and not report.results[1].passed
