"""The ``poolref`` command and the oracle behind it."""

import json
import subprocess
import sys

import numpy
import pytest

from poolref import oracle
from poolref.cli import main
from poolref.oracle import torch_adapter
from poolref.oracle.cases import generate_cases


def test_self_check_passes_and_writes_json(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["check", "self", "--ops", "max_pool2d", "avg_pool1d", "--cases", "3", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "max_pool2d" in out and "all checks passed" in out
    data = json.loads(path.read_text())
    assert data["passed"] and {r["op"] for r in data["results"]} == {"max_pool2d", "avg_pool1d"}


def test_usage_errors_exit_2():
    for argv in (["check", "caffe"], ["check", "self", "--ops", "fancy_pool"], ["check", "--cases", "0"], []):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2


def test_cases_are_reproducible_from_the_seed():
    a, b = generate_cases("max_pool2d", 5, 3), generate_cases("max_pool2d", 5, 3)
    assert all(numpy.array_equal(x.x, y.x) and x.kwargs == y.kwargs for x, y in zip(a, b))
    assert not all(numpy.array_equal(x.x, y.x) for x, y in zip(a, generate_cases("max_pool2d", 5, 4)))


def test_torch_check_passes():
    pytest.importorskip("torch")
    report = oracle.check("torch", ops=["max_pool2d", "lp_pool1d", "adaptive_max_pool3d"], cases=5)
    assert report.passed and len(report.results) == 3


def test_oracle_catches_a_planted_bug(monkeypatch):
    pytest.importorskip("torch")
    real_run = torch_adapter.run

    def off_by_a_little(case, cotangent):
        values, indices, grad = real_run(case, cotangent)
        return values, indices, grad * 1.001  # a gradient scaled slightly wrong

    monkeypatch.setattr(torch_adapter, "run", off_by_a_little)
    report = oracle.check("torch", ops=["avg_pool2d"], cases=3)
    assert not report.passed and "gradients differ" in report.table()


def test_python_dash_m_poolref_runs():
    out = subprocess.run([sys.executable, "-m", "poolref", "check", "self", "--ops", "max_pool1d", "--cases", "2"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "all checks passed" in out.stdout
