"""benchmarks/gpu_check.py without a GPU: its pieces on the CuPy stand-in, whose kernels run in the
emulator, with the host clock for CUDA events and PyTorch on the CPU for the composition."""

import sys
from pathlib import Path

import numpy
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402
from kernels import emulator  # noqa: E402


def test_without_cupy_or_a_gpu_it_says_so_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "find_gpu", lambda: (None, None, "CuPy is not installed (no module named 'cupy')"))
    assert gpu_check.main([]) == 0
    assert "nothing to check here: CuPy is not installed" in capsys.readouterr().out


def test_the_cupy_stand_in_is_not_taken_for_a_gpu(cupy):
    if hasattr(cupy.cuda, "nvrtc"):
        pytest.skip("real CuPy here")
    found, name, why = gpu_check.find_gpu()
    assert found is None and "not real CuPy" in why


def test_floor_bytes_count_each_array_once_per_pass():
    # (128, 64, 32, 32) at alpha 2: x is 8 Mi floats, y 2 Mi floats and 2 Mi bytes of choice
    floor = gpu_check.floor_bytes((128, 64, 32, 32), (2.0, 2.0))
    x, y, choice = 128 * 64 * 32 * 32 * 4, 128 * 64 * 16 * 16 * 4, 128 * 64 * 16 * 16
    assert floor == {"forward": x + y + choice, "backward": y + choice + 2 * x, "both": 3 * x + 2 * y + 2 * choice}


def junit(tmp_path, cases):
    body = "".join(f'<testcase classname="{classname}" name="{name}">{inner}</testcase>' for classname, name, inner in cases)
    path = tmp_path / "report.xml"
    path.write_text(f'<?xml version="1.0"?><testsuites><testsuite>{body}</testsuite></testsuites>')
    return path


def test_a_skipped_gpu_test_is_a_failure_and_other_skips_are_not(tmp_path):
    fine = junit(tmp_path, [("tests.kernels.test_dynopool_gpu", "test_a", ""),
                            ("tests.ops.test_dynopool", "test_b", '<skipped message="torch missing"/>')])
    assert gpu_check.tests_passed(gpu_check.summarize_junit(fine))
    skipped = junit(tmp_path, [("tests.kernels.test_dynopool_gpu", "test_a", '<skipped message="no GPU"/>')])
    counts = gpu_check.summarize_junit(skipped)
    assert not gpu_check.tests_passed(counts) and counts["must_not_skip"] == ["test_a: no GPU"]
    failed = junit(tmp_path, [("tests.kernels.test_dynopool_gpu", "test_a", '<failure message="x"/>')])
    assert not gpu_check.tests_passed(gpu_check.summarize_junit(failed))
    assert not gpu_check.tests_passed(gpu_check.summarize_junit(junit(tmp_path, [])))  # nothing ran


def test_targets_are_met_or_missed_from_the_derived_numbers():
    times = {"poolref fwd": 1.0, "poolref fwd+bwd": 2.0, "kernels fwd": 0.5, "kernels bwd": 1.0,
             "composition fwd": 5.0, "composition fwd+bwd": 20.0}
    floor = {"forward": 3e8, "backward": 6e8, "both": 9e8}  # bytes
    derived = gpu_check.derive(times, floor, bandwidth=1e12)  # floor 0.3 ms forward, 0.9 ms both
    assert derived["speed-up fwd+bwd"] == 10.0
    assert derived["kernels fwd at floor"] == pytest.approx(0.6) and derived["kernels fwd+bwd at floor"] == pytest.approx(0.6)
    case = ((64, 256, 56, 56), (1.7, 2.6))
    assert [met for *_, met in gpu_check.verdicts([(case, times, derived)])] == [True, True, True]
    slow = dict(times, **{"poolref fwd+bwd": 4.0, "kernels bwd": 2.5})
    assert [met for *_, met in gpu_check.verdicts([(case, slow, gpu_check.derive(slow, floor, 1e12))])] == [False, True, False]
    no_torch = {k: v for k, v in times.items() if not k.startswith("composition")}
    assert gpu_check.verdicts([(case, no_torch, gpu_check.derive(no_torch, floor, 1e12))])[0][3] is None


@pytest.mark.skipif(not emulator.available(), reason=emulator.why_not() or "no C++20 compiler")
def test_the_benchmark_runs_end_to_end_on_the_stand_in(cupy, tmp_path):
    if hasattr(cupy.cuda, "nvrtc"):
        pytest.skip("real CuPy: the benchmark itself runs in gpu_check.py")
    torch = gpu_check.torch_on("cpu")
    if torch is None:
        pytest.skip("PyTorch is not installed")
    cases = [((2, 3, 12, 10), (1.7, 2.6)), ((2, 2, 8, 8), (2.0, 2.0))]
    bandwidth, rows = gpu_check.run_benchmark(cupy, torch, gpu_check.HostTimer(), cases, repeats=1, torch_device="cpu",
                                              bandwidth_bytes=1 << 16)
    assert bandwidth > 0 and len(rows) == 2
    for _, times, derived in rows:
        assert set(times) >= {"poolref fwd", "poolref fwd+bwd", "kernels fwd", "kernels bwd", "composition fwd+bwd"}
        assert all(numpy.isfinite(v) and v > 0 for v in list(times.values()) + list(derived.values()))
    checks = gpu_check.verdicts(rows)
    text = gpu_check.report("the stand-in", bandwidth, rows, checks, "3 tests: 0 failed", "versions", 1)
    # the docs' figure (docs/figures/benchmarks.py) reads the first table and its ratio column
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_figures", ROOT / "docs" / "figures" / "benchmarks.py")
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)
    (tmp_path / "gpu.md").write_text(text)
    header, table = figures.read_table(tmp_path / "gpu.md")
    assert len(table) == 2 and any(h.startswith("ratio") for h in header)
    assert "the stand-in" in text and "Targets:" in text
