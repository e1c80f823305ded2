"""The triviality plugin (tests/triviality.py) fails a run whose property tests pass on empty or
constant outputs, and lets a run of real examples through."""

import os
import pathlib

import pytest

pytest_plugins = ["pytester"]

TESTS = pathlib.Path(__file__).parent

PROPERTY_TESTS = '''
import numpy
from hypothesis import given, settings, strategies as st
import poolref

@settings(max_examples=20, database=None)
@given(st.integers(1, 60))
def test_{name}(width):
    x = numpy.{fill}(({batch}, 1, 3, width + 1))
    poolref.max_pool2d(x, 1)
'''


def run(pytester, monkeypatch, source):
    pytester.makepyfile(source)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return pytester.runpytest_subprocess("-p", "triviality", "-p", "no:randomly", "-p", "no:cacheprovider")


def test_a_property_test_of_empty_outputs_fails_the_run(pytester, monkeypatch):
    result = run(pytester, monkeypatch, PROPERTY_TESTS.format(name="empty", fill="ones", batch=0))
    result.stdout.fnmatch_lines(["*more than 25% trivial*", "*test_empty: 20 of 20 examples trivial*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_property_test_of_constant_outputs_fails_the_run(pytester, monkeypatch):
    result = run(pytester, monkeypatch, PROPERTY_TESTS.format(name="constant", fill="zeros", batch=1))
    result.stdout.fnmatch_lines(["*test_constant: 20 of 20 examples trivial*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_property_test_of_real_data_passes(pytester, monkeypatch):
    source = PROPERTY_TESTS.format(name="data", fill="ones", batch=1)
    result = run(pytester, monkeypatch, source.replace("numpy.ones(", "numpy.random.default_rng(width).standard_normal("))
    assert "trivial" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.OK


def test_a_law_about_constant_outputs_is_exempt_when_marked_with_a_reason(pytester, monkeypatch):
    source = PROPERTY_TESTS.format(name="constant", fill="zeros", batch=1).replace(
        "@settings(", '@pytest.mark.constant_outputs("zeros pool to zeros")\n@settings(').replace(
        "import numpy\n", "import numpy\nimport pytest\n")
    result = run(pytester, monkeypatch, source)
    assert "trivial" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.OK


def test_examples_turned_away_by_assume_after_running_ops_are_not_counted(pytester, monkeypatch):
    # a test may run an op to decide whether an example is worth checking, then assume() it away:
    # such rejected examples are not examples of the property, trivial or not
    source = '''
import numpy
from hypothesis import assume, given, settings, strategies as st
import poolref

@settings(max_examples=20, database=None)
@given(st.integers(1, 60))
def test_rejecting(width):
    y = poolref.max_pool2d(numpy.zeros((1, 1, 3, width + 1)) if width % 3 else
                           numpy.random.default_rng(width).standard_normal((1, 1, 3, width + 1)), 1)
    assume(not numpy.all(y == 0))  # the constant ones are turned away
'''
    result = run(pytester, monkeypatch, source)
    assert "trivial" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.OK
