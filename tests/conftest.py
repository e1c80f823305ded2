import importlib.util
import os

import fake_cupy
import numpy
import pytest
from hypothesis import HealthCheck, settings

# CI runs derandomized (reproducible); locally hypothesis explores new examples each run
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("POOLREF_HYPOTHESIS") or ("ci" if os.environ.get("CI") else "dev"))


def _real_cupy():
    """The real ``cupy`` where it can run (installed, with a driver and a GPU), else None."""
    if importlib.util.find_spec("cupy") is None:
        return None
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:  # no driver or no device
        return None
    return cupy


REAL_CUPY = _real_cupy()
# What the device half of the `xp` tests runs on: real CuPy on a GPU machine, the stand-in elsewhere
DEVICE = "cupy" if REAL_CUPY is not None else "fake_cupy"


def device_module(monkeypatch):
    """Real ``cupy`` where it runs, else the stand-in (tests/fake_cupy), registered as ``cupy`` and
    ``cupyx`` in ``sys.modules`` until the test ends (``monkeypatch`` undoes it)."""
    if REAL_CUPY is not None:
        return REAL_CUPY
    return fake_cupy.install(monkeypatch)


@pytest.fixture(params=["numpy", DEVICE])
def xp(request, monkeypatch):
    """Run a test on numpy, and on cupy: real CuPy on a GPU, else the stand-in, which is as strict
    as CuPy about host arrays (tests/fake_cupy). Never skipped."""
    if request.param == "numpy":
        return numpy
    return device_module(monkeypatch)


@pytest.fixture
def cupy(monkeypatch):
    """The device module alone: real CuPy on a GPU, else the stand-in (as for ``xp``)."""
    return device_module(monkeypatch)
