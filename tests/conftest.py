import os

import numpy
import pytest
from hypothesis import HealthCheck, settings

# CI runs derandomized (reproducible); locally hypothesis explores new examples each run
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("POOLREF_HYPOTHESIS") or ("ci" if os.environ.get("CI") else "dev"))




@pytest.fixture(params=["numpy", "cupy"])
def xp(request):
    """Run a test on numpy, and on cupy where cupy and a GPU are present (skipped otherwise)."""
    if request.param == "numpy":
        return numpy
    cupy = pytest.importorskip("cupy")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver or no device
        pytest.skip("cupy is installed but no GPU is available")
    return cupy
