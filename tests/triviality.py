"""A pytest plugin: no property test may pass on trivial examples.

A hypothesis test whose examples are mostly empty batches or constant outputs passes whatever the
op does. This plugin watches every poolref op that runs during each hypothesis example (each
registered :class:`poolref.autograd.Function`'s forward) and calls an example *trivial* when every
output it produced was empty or constant. At the end of the session, a test of at least
``MIN_EXAMPLES`` examples more than ``MAX_TRIVIAL`` of which were trivial fails the run, with the
list. Loaded by ``pyproject.toml``'s ``-p triviality``.

A law about constant outputs (a constant map stays constant) is exempt when marked
``@pytest.mark.constant_outputs("why")``: the reason is required and shows in the test's source.
"""

from __future__ import annotations

import numpy
import pytest
from hypothesis.errors import UnsatisfiedAssumption

MAX_TRIVIAL = 0.25
MIN_EXAMPLES = 8

_outputs: list | None = None  # the outputs of the current example, or None outside an example
_tally: dict = {}  # test id -> [examples that ran an op, trivial ones]


def _is_trivial(array) -> bool:
    try:
        a = numpy.asarray(array.get() if hasattr(array, "get") else array)
    except TypeError:  # an array poolref cannot look into (a device array without .get): count it as data
        return False
    if a.size == 0:
        return True
    if a.dtype.kind not in "fiu":
        return False
    flat = a.ravel()
    if a.dtype.kind == "f":
        nan = numpy.isnan(flat)
        if nan.all():
            return True
        flat = flat[~nan]
    return bool((flat == flat[0]).all()) and a.size > 1


def _watch(function):
    forward = function.forward

    def watched(*arrays, **params):
        outputs, saved = forward(*arrays, **params)
        if _outputs is not None:
            _outputs.extend(outputs if isinstance(outputs, tuple) else (outputs,))
        return outputs, saved

    object.__setattr__(function, "forward", watched)  # Functions are frozen dataclasses


def pytest_configure(config):
    config.addinivalue_line("markers", "constant_outputs(reason): the property is about constant outputs "
                                       "(exempt from the triviality check; give the reason)")
    import poolref  # noqa: F401 - registers every op's Function
    from poolref.autograd.function import REGISTRY

    for function in REGISTRY.values():
        _watch(function)


def _counting(test_id, inner):
    def example(*args, **kwargs):
        global _outputs
        _outputs = []
        rejected = False
        try:
            return inner(*args, **kwargs)
        except UnsatisfiedAssumption:
            rejected = True  # assume() turned the example away after running ops: not an example
            raise
        finally:
            outputs, _outputs = _outputs, None
            if outputs and not rejected:
                counts = _tally.setdefault(test_id, [0, 0])
                counts[0] += 1
                counts[1] += all(_is_trivial(y) for y in outputs)

    return example


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    hypothesis = getattr(getattr(item, "obj", None), "hypothesis", None)
    exempt = item.get_closest_marker("constant_outputs")
    if exempt is not None and not exempt.args:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.constant_outputs needs a reason")
    if hypothesis is not None and exempt is None and not getattr(hypothesis.inner_test, "_counted", False):
        hypothesis.inner_test = _counting(item.nodeid, hypothesis.inner_test)
        hypothesis.inner_test._counted = True


def pytest_sessionfinish(session, exitstatus):
    offenders = sorted(
        (test, trivial, ran) for test, (ran, trivial) in _tally.items()
        if ran >= MIN_EXAMPLES and trivial > MAX_TRIVIAL * ran
    )
    if offenders:
        lines = [f"  {test}: {trivial} of {ran} examples trivial (empty or constant outputs)" for test, trivial, ran in offenders]
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "\n".join([f"property tests whose examples are more than {MAX_TRIVIAL:.0%} trivial:"] + lines)
        if reporter:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
