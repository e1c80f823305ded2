"""The package and the tests have no unused imports or names, undefined names or syntax errors
(pyflakes' rules, run by ruff, which the test extra installs)."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_pyflakes_rules_hold_in_the_package_and_the_tests():
    ruff = pytest.importorskip("ruff", reason="ruff comes with the test extra: pip install -e '.[test]'")
    del ruff
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F,E9", "--output-format", "concise",
                           "--no-cache", "poolref", "tests", "benchmarks", "tutorials", "docs/figures"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
