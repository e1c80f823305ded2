"""Ready for the first GPU: DynOPool's CUDA kernels tested and timed with real CuPy, in one command.

    python benchmarks/gpu_check.py              # the tests, then the benchmark; writes benchmarks/results/gpu.md
    python benchmarks/gpu_check.py --quick      # smaller shapes and fewer repeats (a smoke run)
    python benchmarks/gpu_check.py --no-bench   # the tests only
    python benchmarks/gpu_check.py --all-parity # also every numpy/cupy parity test of the suite (-k cupy)

1. Tests (pytest, real CuPy): ``tests/kernels/test_dynopool_gpu.py`` (the kernels against the array
   code: forward and grad_x bit for bit, NaN, infinities, signed zeros, ties, float32 subnormals;
   alpha sums to rounding; what CuPy itself still flushes), ``tests/ops/test_dynopool.py`` and
   ``tests/nn/test_dynopool_layer.py`` (numpy/cupy parity through the tape, x and alpha on either
   device). The GPU file must run: a skip there counts as a failure.
2. Benchmark, float32, CUDA events (median of ``--repeats`` runs), at (64, 256, 56, 56) with alpha
   (1.7, 2.6) and (128, 64, 32, 32) with alpha (2, 2):

   * poolref: ``dynopool2d`` forward, and forward + backward through the tape (``vjp``, alpha on the
     host as in ``nn.DynOPool``); the kernels alone (forward; backward = grad_x + grad_cell);
   * PyTorch on CUDA: the composition ``dynopool_by_grid_sample`` (forward, and forward + backward to x
     and alpha) and ``max_pool2d(x, 2)`` (forward + backward);
   * the HBM floor: the bytes the kernels must move (:func:`floor_bytes`) over the bandwidth of a
     device-to-device copy measured here.

   Targets: forward + backward at least 8x faster than the composition, and the kernels at least 50%
   of the HBM floor (floor time / kernel time >= 0.5), forward and forward + backward.
3. ``benchmarks/results/gpu.md``: the device, versions, the table and the verdicts.

Exit status: 0 when every test passed and every target is met, or (with a message) where CuPy or a
GPU is missing, so that there is nothing to check; 1 when a test failed or the kernels disagree with
PyTorch; 2 when the tests passed but a speed target was missed.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import poolref  # noqa: E402
from poolref import kernels  # noqa: E402
from poolref.autograd import vjp  # noqa: E402
from poolref.ops.dynopool import query_axis  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CASES = [((64, 256, 56, 56), (1.7, 2.6)), ((128, 64, 32, 32), (2.0, 2.0))]
QUICK_CASES = [((8, 64, 56, 56), (1.7, 2.6)), ((16, 64, 32, 32), (2.0, 2.0))]
SPEED_UP_TARGET = 8.0  # forward + backward, against the composition
FLOOR_TARGET = 0.5  # floor time / kernel time
TEST_FILES = ["tests/kernels/test_dynopool_gpu.py", "tests/ops/test_dynopool.py", "tests/nn/test_dynopool_layer.py"]
MUST_NOT_SKIP = "test_dynopool_gpu"


# --------------------------------------------------------------------------------------------------
# Where we are
# --------------------------------------------------------------------------------------------------
def find_gpu():
    """(cupy, device name, '') with real CuPy on a GPU, else (None, None, why not)."""
    try:
        import cupy
    except ImportError as error:
        return None, None, f"CuPy is not installed ({error})"
    if not hasattr(cupy.cuda, "nvrtc"):
        return None, None, "the cupy found is not real CuPy (no cupy.cuda.nvrtc)"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver
        return None, None, f"CuPy cannot reach a GPU ({type(error).__name__}: {error})"
    if count < 1:
        return None, None, "CuPy sees no GPU"
    return cupy, device_name(cupy), ""


def device_name(cupy) -> str:
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def torch_on(device: str):
    """PyTorch where it can run on ``device`` ("cuda" or "cpu"), else None."""
    try:
        import torch
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    return torch


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------
def summarize_junit(path) -> dict:
    """Counts of a pytest JUnit XML report, and the skipped tests of :data:`MUST_NOT_SKIP`."""
    root = ElementTree.parse(path).getroot()
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "must_not_skip": []}
    for case in root.iter("testcase"):
        counts["tests"] += 1
        for outcome in ("failure", "error", "skipped"):
            element = case.find(outcome)
            if element is not None:
                counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[outcome]] += 1
                if outcome == "skipped" and MUST_NOT_SKIP in (case.get("classname", "") + case.get("file", "")):
                    counts["must_not_skip"].append(f"{case.get('name')}: {element.get('message', '')}")
    return counts


def tests_passed(counts: dict) -> bool:
    return counts["tests"] > 0 and not counts["failures"] and not counts["errors"] and not counts["must_not_skip"]


def run_tests(all_parity: bool) -> tuple:
    """Run the GPU tests with pytest; (passed, one-line summary)."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.xml"
        command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={report}", *TEST_FILES]
        print("$", " ".join(command[2:]), flush=True)
        code = subprocess.run(command, cwd=str(ROOT)).returncode
        if all_parity:
            parity = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", "-k", "cupy"]
            print("$", " ".join(parity[2:]), flush=True)
            code = subprocess.run(parity, cwd=str(ROOT)).returncode or code
        if not report.exists():
            return False, f"pytest exited with status {code} and wrote no report"
        counts = summarize_junit(report)
    passed = tests_passed(counts) and code == 0
    summary = (f"{counts['tests']} tests: {counts['failures']} failed, {counts['errors']} errors, "
               f"{counts['skipped']} skipped")
    if counts["must_not_skip"]:
        summary += f"; the GPU tests skipped ({counts['must_not_skip'][0]})"
    return passed, summary


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------
class CudaTimer:
    """Median time of a function in ms, each run between two CUDA events on the current stream."""

    def __init__(self, cupy):
        self.cupy = cupy

    def median_ms(self, fn, repeats: int, warmup: int = 3) -> float:
        for _ in range(warmup):
            fn()
        self.cupy.cuda.Device().synchronize()
        times = []
        for _ in range(repeats):
            start, stop = self.cupy.cuda.Event(), self.cupy.cuda.Event()
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(self.cupy.cuda.get_elapsed_time(start, stop))
        return statistics.median(times)


class HostTimer:
    """The same on the host clock (for the tests of this script, which run without a GPU)."""

    def median_ms(self, fn, repeats: int, warmup: int = 1) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(1e3 * (time.perf_counter() - start))
        return statistics.median(times)


def copy_bandwidth(cupy, timer, nbytes: int, repeats: int) -> float:
    """Bytes per second of a device-to-device copy (``nbytes`` read and ``nbytes`` written)."""
    source = cupy.zeros(nbytes // 4, dtype=numpy.float32)
    target = cupy.empty_like(source)
    ms = timer.median_ms(lambda: cupy.copyto(target, source), repeats)
    return 2 * source.nbytes / (ms / 1e3)


def floor_bytes(shape, alpha, itemsize: int = 4) -> dict:
    """The bytes DynOPool must move through memory ("max"), at least, per pass:

    forward    read x, write y and choice (1 byte per output)
    backward   read grad_y, choice and x (the slopes of the alpha gradient), write grad_x
    """
    *lead, H, W = shape
    out_h, out_w = query_axis(H, alpha[0]).out_length, query_axis(W, alpha[1]).out_length
    x = int(numpy.prod(shape)) * itemsize
    outputs = int(numpy.prod(lead)) * out_h * out_w
    y, choice = outputs * itemsize, outputs
    forward = x + y + choice
    backward = y + choice + x + x
    return {"forward": forward, "backward": backward, "both": forward + backward}


def to_torch(cupy, array, torch, device: str):
    """A torch tensor with ``array``'s values on ``device`` (no copy from a real CuPy array to CUDA)."""
    if device == "cuda":
        return torch.as_tensor(array, device="cuda")
    return torch.from_numpy(cupy.asnumpy(array))


def bench_case(cupy, torch, timer, shape, alpha, repeats: int, torch_device: str = "cuda", seed: int = 0) -> dict:
    """Times in ms of one case (see the module docstring), after checking the outputs agree."""
    from poolref.testing.torch_compositions import dynopool_by_grid_sample

    rng = numpy.random.default_rng(seed)
    x = cupy.asarray(rng.standard_normal(shape).astype(numpy.float32))
    a = numpy.array(alpha, dtype=numpy.float32)  # on the host, as nn.DynOPool keeps it
    rows, columns = query_axis(shape[-2], alpha[0]), query_axis(shape[-1], alpha[1])
    y = poolref.dynopool2d(x, a)
    g = cupy.asarray(rng.standard_normal(y.shape).astype(numpy.float32))
    _, choice = kernels.dynopool_forward(cupy, x, rows, columns, True)

    def op_forward():
        poolref.dynopool2d(x, a)

    def op_both():
        _, pullback = vjp(lambda t, b: poolref.dynopool2d(t, b), x, a)
        pullback(g)

    times = {
        "poolref fwd": timer.median_ms(op_forward, repeats),
        "poolref fwd+bwd": timer.median_ms(op_both, repeats),
        "kernels fwd": timer.median_ms(lambda: kernels.dynopool_forward(cupy, x, rows, columns, True), repeats),
        "kernels bwd": timer.median_ms(lambda: kernels.dynopool_backward(cupy, x, g, choice, rows, columns, True), repeats),
    }
    if torch is not None:
        xt, gt = to_torch(cupy, x, torch, torch_device), to_torch(cupy, g, torch, torch_device)
        at = torch.tensor(alpha, dtype=torch.float32, device=torch_device)
        reference = dynopool_by_grid_sample(torch, xt, at).detach()
        numpy.testing.assert_allclose(cupy.asnumpy(y), reference.cpu().numpy(), rtol=1e-4, atol=1e-4,
                                      err_msg=f"dynopool2d and the PyTorch composition disagree at {shape}, alpha {alpha}")

        def torch_forward():
            with torch.no_grad():
                dynopool_by_grid_sample(torch, xt, at)

        def torch_both():
            xg, ag = xt.detach().requires_grad_(True), at.detach().requires_grad_(True)
            dynopool_by_grid_sample(torch, xg, ag).backward(gt)

        def max_pool_both():
            xg = xt.detach().requires_grad_(True)
            out = torch.nn.functional.max_pool2d(xg, 2)
            out.backward(torch.ones_like(out))

        times["composition fwd"] = timer.median_ms(torch_forward, repeats)
        times["composition fwd+bwd"] = timer.median_ms(torch_both, repeats)
        times["max_pool2d fwd+bwd"] = timer.median_ms(max_pool_both, repeats)
    return times


def derive(times: dict, floor: dict, bandwidth: float) -> dict:
    """Speed-up against the composition and fractions of the HBM floor, from the times in ms."""
    floor_ms = {name: 1e3 * nbytes / bandwidth for name, nbytes in floor.items()}
    kernels_both = times["kernels fwd"] + times["kernels bwd"]
    derived = {
        "floor fwd ms": floor_ms["forward"],
        "floor fwd+bwd ms": floor_ms["both"],
        "kernels fwd at floor": floor_ms["forward"] / times["kernels fwd"],
        "kernels fwd+bwd at floor": floor_ms["both"] / kernels_both,
    }
    if "composition fwd+bwd" in times:
        derived["speed-up fwd+bwd"] = times["composition fwd+bwd"] / times["poolref fwd+bwd"]
        derived["speed-up fwd"] = times["composition fwd"] / times["poolref fwd"]
    return derived


def verdicts(rows) -> list:
    """[(target, case, value, met)] for every case: speed-up >= 8 and >= 50% of the floor."""
    out = []
    for case, _, derived in rows:
        if "speed-up fwd+bwd" in derived:
            value = derived["speed-up fwd+bwd"]
            out.append((f"fwd+bwd >= {SPEED_UP_TARGET:g}x the composition", case, f"{value:.1f}x", value >= SPEED_UP_TARGET))
        else:
            out.append((f"fwd+bwd >= {SPEED_UP_TARGET:g}x the composition", case, "not measured (no CUDA PyTorch)", None))
        for part in ("fwd", "fwd+bwd"):
            value = derived[f"kernels {part} at floor"]
            out.append((f"kernels {part} >= {FLOOR_TARGET:.0%} of the HBM floor", case, f"{value:.0%}", value >= FLOOR_TARGET))
    return out


def report(device: str, bandwidth: float, rows, checks, tests_summary: str, versions: str, repeats: int) -> str:
    """The Markdown of benchmarks/results/gpu.md."""
    header = ["input", "alpha", "poolref fwd ms", "poolref fwd+bwd ms", "kernels fwd ms", "kernels bwd ms",
              "composition fwd ms", "composition fwd+bwd ms", "max_pool2d fwd+bwd ms", "floor fwd+bwd ms",
              "ratio fwd+bwd (poolref / composition)", "kernels fwd+bwd at floor"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (shape, alpha), times, derived in rows:
        cell = lambda name: f"{times[name]:.3f}" if name in times else "n/a"  # noqa: E731
        ratio = f"{times['poolref fwd+bwd'] / times['composition fwd+bwd']:.3f}" if "composition fwd+bwd" in times else "n/a"
        lines.append("| " + " | ".join([
            "x".join(map(str, shape)), f"({alpha[0]}, {alpha[1]})", cell("poolref fwd"), cell("poolref fwd+bwd"),
            cell("kernels fwd"), cell("kernels bwd"), cell("composition fwd"), cell("composition fwd+bwd"),
            cell("max_pool2d fwd+bwd"), f"{derived['floor fwd+bwd ms']:.3f}", ratio,
            f"{derived['kernels fwd+bwd at floor']:.0%}"]) + " |")
    verdict_lines = [f"- {'met' if met else 'MISSED' if met is False else 'not evaluated'}: {target} at "
                     f"{'x'.join(map(str, case[0]))} alpha {case[1]}: {value}" for target, case, value, met in checks]
    return "\n".join([
        f"DynOPool on {device}, float32, CUDA events, median of {repeats}; device copy bandwidth "
        f"{bandwidth / 1e9:.0f} GB/s; {versions} ({datetime.date.today().isoformat()})",
        "",
        *lines,
        "",
        "poolref: `dynopool2d` through the tape (alpha on the host); kernels: forward, and backward = grad_x + grad_cell;",
        "composition: `dynopool_by_grid_sample` on CUDA (backward to x and alpha); floor: bytes moved "
        "(forward: x, y, choice; backward: grad_y, choice, x, grad_x) / copy bandwidth.",
        "",
        f"Tests: {tests_summary}",
        "",
        "Targets:",
        *verdict_lines,
        "",
    ])


def run_benchmark(cupy, torch, timer, cases, repeats: int, torch_device: str = "cuda", bandwidth_bytes: int = 1 << 30):
    """(bandwidth, rows) with rows [(case, times, derived)]."""
    bandwidth = copy_bandwidth(cupy, timer, bandwidth_bytes, repeats)
    rows = []
    for shape, alpha in cases:
        times = bench_case(cupy, torch, timer, shape, alpha, repeats, torch_device)
        derived = derive(times, floor_bytes(shape, alpha), bandwidth)
        rows.append(((shape, alpha), times, derived))
        print(f"{shape} alpha {alpha}: " + ", ".join(f"{k} {v:.3f}" for k, v in {**times, **derived}.items()), flush=True)
    return bandwidth, rows


# --------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller shapes, fewer repeats")
    parser.add_argument("--no-tests", action="store_true", help="the benchmark only")
    parser.add_argument("--no-bench", action="store_true", help="the tests only")
    parser.add_argument("--all-parity", action="store_true", help="also every numpy/cupy parity test (pytest -k cupy)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--output", type=Path, default=RESULTS / "gpu.md")
    args = parser.parse_args(argv)

    cupy, device, why = find_gpu()
    if cupy is None:
        print(f"gpu_check: nothing to check here: {why}. Run it on a machine with a GPU and CuPy "
              "(the kernels' emulated tests run everywhere: pytest tests/kernels).")
        return 0
    print(f"gpu_check on {device}", flush=True)
    passed, tests_summary = (True, "not run (--no-tests)") if args.no_tests else run_tests(args.all_parity)
    print(f"tests: {tests_summary}", flush=True)
    if args.no_bench:
        return 0 if passed else 1

    torch = torch_on("cuda")
    repeats = args.repeats or (10 if args.quick else 50)
    try:
        bandwidth, rows = run_benchmark(cupy, torch, CudaTimer(cupy), QUICK_CASES if args.quick else CASES, repeats)
    except Exception:
        traceback.print_exc()
        print("gpu_check: the benchmark failed")
        return 1
    checks = verdicts(rows)
    versions = (f"CuPy {cupy.__version__}, NumPy {numpy.__version__}, "
                f"{'PyTorch ' + torch.__version__ if torch is not None else 'no CUDA PyTorch'}, Python {platform.python_version()}")
    text = report(device, bandwidth, rows, checks, tests_summary, versions, repeats)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    print(f"written: {args.output}")
    if not passed:
        return 1
    return 2 if any(met is False for *_, met in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
