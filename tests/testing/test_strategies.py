from hypothesis import given
from hypothesis import strategies as st

import poolref
from poolref._geometry import pool_geometry
from poolref.testing.strategies import adaptive_cases, pool_cases, pool_configs


@given(st.sampled_from(["torch", "onnx", "tensorflow"]).flatmap(
    lambda c: pool_configs(2, op="avg", convention=c, string_padding=True, asymmetric_padding=True)))
def test_drawn_configurations_are_accepted(config):
    shape, kwargs = config
    geometry = pool_geometry(shape, kwargs["kernel_size"], kwargs["stride"], kwargs["padding"],
                             kwargs.get("dilation", 1), kwargs["ceil_mode"], kwargs["convention"], "t")
    assert all(o >= 1 for o in geometry.out_shape)
    if kwargs["convention"] == "torch":
        assert kwargs.get("dilation", (1, 1)) == (1, 1)  # PyTorch's average pooling has no dilation


@given(pool_cases(2, op="max"))
def test_max_cases_have_distinct_values(case):
    assert len(set(case.x.ravel().tolist())) == case.x.size
    assert poolref.max_pool2d(case.x, **case.kwargs).shape[:2] == case.x.shape[:2]


@given(pool_cases(1, op="max", overlapping=False))
def test_non_overlapping_windows_share_no_element(case):
    # each input element is the maximum of at most one window
    _, indices = poolref.max_pool1d(case.x, **case.kwargs, return_indices=True)
    for plane in indices.reshape(-1, indices.shape[-1]):
        assert len(set(plane.tolist())) == plane.size


@given(adaptive_cases(3, max_size=4))
def test_adaptive_cases(case):
    assert len(case.kwargs["output_size"]) == 3 and case.x.ndim == 5


WITHOUT_HYPOTHESIS = """
import sys
sys.modules["hypothesis"] = None  # as on a plain install: importing hypothesis fails
import poolref.testing
assert not hasattr(poolref.testing, "strategies")
try:
    import poolref.testing.strategies
except ImportError as error:
    print("ImportError:", error)
try:
    from poolref.testing import strategies
except ImportError as error:
    print("from-import:", error)
"""


def test_without_hypothesis_the_strategies_say_what_to_install_and_hasattr_is_false():
    # a plain install raised a bare ModuleNotFoundError for hypothesis, and hasattr raised instead of
    # returning False
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", WITHOUT_HYPOTHESIS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all("pip install 'poolref[test]'" in line for line in lines), done.stdout
