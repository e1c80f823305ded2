"""DynOPool timing: poolref against the PyTorch grid_sample composition and a plain 2x2 max pool.

CPU (always): poolref's NumPy array code vs ``dynopool_by_grid_sample`` on torch CPU, forward +
backward (to x and to alpha), float32, the two sides called in turn; median of the runs.

GPU (where cupy, a CUDA device and torch with CUDA are present): the fused CuPy RawKernels vs the same
composition on CUDA vs ``torch.nn.functional.max_pool2d(x, 2)``, forward and forward + backward,
timed with CUDA events (median of many runs), plus the memory-bandwidth floor of the forward: the
bytes it must move (read x once, write y once) divided by the measured device-to-device copy
bandwidth, and the kernel's fraction of it.

    python benchmarks/bench_dynopool.py               # CPU (and GPU when present)
    python benchmarks/bench_dynopool.py --quick       # small shapes, a few seconds
    python benchmarks/bench_dynopool.py --write       # also write benchmarks/results/cpu_dynopool.md and gpu.md

Shapes (N, C, H, W): (128, 64, 32, 32) and (64, 256, 56, 56); alpha (2, 2) and (1.7, 2.6).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path

import numpy
from timing import interleaved_median_ms  # benchmarks/timing.py, next to this script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import poolref  # noqa: E402
from poolref.autograd import vjp  # noqa: E402
from poolref.testing.torch_compositions import dynopool_by_grid_sample  # noqa: E402

SHAPES = [(128, 64, 32, 32), (64, 256, 56, 56)]
QUICK_SHAPES = [(8, 16, 32, 32)]
ALPHAS = [(2.0, 2.0), (1.7, 2.6)]
RESULTS = ROOT / "benchmarks" / "results"


def table(rows, header):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# CPU
# --------------------------------------------------------------------------------------------------
def cpu_case(torch, shape, alpha, repeats, rng):
    x = rng.standard_normal(shape).astype(numpy.float32)
    a = numpy.array(alpha, dtype=numpy.float32)

    def run_poolref():
        y, pullback = vjp(lambda t, b: poolref.dynopool2d(t, b), x, a)
        pullback(numpy.ones_like(y))
        return y

    def run_torch():
        xt = torch.from_numpy(x).requires_grad_(True)
        at = torch.from_numpy(a).requires_grad_(True)
        y = dynopool_by_grid_sample(torch, xt, at)
        y.backward(torch.ones_like(y))
        return y

    numpy.testing.assert_allclose(run_poolref(), run_torch().detach().numpy(), rtol=1e-4, atol=1e-4)
    ours, theirs = interleaved_median_ms([run_poolref, run_torch], repeats, warmup=2, warmup_s=1.0)
    return ours, theirs


def run_cpu(torch, shapes, repeats):
    rng = numpy.random.default_rng(0)
    rows = []
    for shape in shapes:
        for alpha in ALPHAS:
            ours, theirs = cpu_case(torch, shape, alpha, repeats, rng)
            rows.append(("dynopool2d", "x".join(map(str, shape)), f"({alpha[0]}, {alpha[1]})", f"{ours:.1f}",
                         f"{theirs:.1f}", f"{ours / theirs:.2f}"))
            print(*rows[-1], sep="  ", flush=True)
    header = ("op", "input", "alpha", "poolref ms", "torch composition ms", "ratio")
    title = (f"DynOPool forward + backward (x and alpha), float32, CPU: numpy {numpy.__version__}, "
             f"torch {torch.__version__} with {torch.get_num_threads()} threads; median of {repeats} interleaved runs")
    return title, table(rows, header)


# --------------------------------------------------------------------------------------------------
# GPU
# --------------------------------------------------------------------------------------------------
def gpu_available(torch):
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0 and torch.cuda.is_available()
    except Exception:
        return False


def cuda_median_ms(cupy, fn, repeats):
    """Median time of ``fn()`` in ms over ``repeats`` runs, each between two CUDA events."""
    for _ in range(3):
        fn()
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(repeats):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop))
    return statistics.median(times)


def copy_bandwidth(cupy, nbytes, repeats):
    """Measured device-to-device copy bandwidth in bytes/s (reads and writes nbytes each)."""
    a = cupy.empty(nbytes // 4, dtype=numpy.float32)
    b = cupy.empty_like(a)
    ms = cuda_median_ms(cupy, lambda: b.__setitem__(Ellipsis, a), repeats)
    return 2 * a.nbytes / (ms / 1e3)


def run_gpu(torch, shapes, repeats):
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    bandwidth = copy_bandwidth(cupy, 1 << 30, repeats)
    rows = []
    for shape in shapes:
        x = cupy.random.standard_normal(shape, dtype=numpy.float32)
        xt = torch.as_tensor(x, device="cuda")
        for alpha in ALPHAS:
            a = numpy.array(alpha, dtype=numpy.float32)
            at = torch.tensor(alpha, device="cuda")
            y = poolref.dynopool2d(x, a)
            g = cupy.ones_like(y)

            def ours_forward():
                poolref.dynopool2d(x, a)

            def ours_both():
                _, pullback = vjp(lambda t, b: poolref.dynopool2d(t, b), x, a)
                pullback(g)

            def torch_forward():
                with torch.no_grad():
                    dynopool_by_grid_sample(torch, xt, at)

            def torch_both():
                xg, ag = xt.detach().requires_grad_(True), at.detach().requires_grad_(True)
                out = dynopool_by_grid_sample(torch, xg, ag)
                out.backward(torch.ones_like(out))

            def max_pool_both():
                xg = xt.detach().requires_grad_(True)
                out = torch.nn.functional.max_pool2d(xg, 2)
                out.backward(torch.ones_like(out))

            reference = dynopool_by_grid_sample(torch, xt, at).detach()
            numpy.testing.assert_allclose(cupy.asnumpy(y), reference.cpu().numpy(), rtol=1e-4, atol=1e-4)
            f_ours, b_ours = cuda_median_ms(cupy, ours_forward, repeats), cuda_median_ms(cupy, ours_both, repeats)
            f_torch, b_torch = cuda_median_ms(cupy, torch_forward, repeats), cuda_median_ms(cupy, torch_both, repeats)
            b_max = cuda_median_ms(cupy, max_pool_both, repeats)
            floor_ms = (x.nbytes + y.nbytes) / bandwidth * 1e3
            rows.append(("x".join(map(str, shape)), f"({alpha[0]}, {alpha[1]})", f"{f_ours:.3f}", f"{b_ours:.3f}",
                         f"{f_torch:.3f}", f"{b_torch:.3f}", f"{b_max:.3f}", f"{b_torch / b_ours:.1f}x",
                         f"{floor_ms:.3f}", f"{100 * floor_ms / f_ours:.0f}%"))
            print(*rows[-1], sep="  ", flush=True)
    header = ("input", "alpha", "poolref fwd ms", "poolref fwd+bwd ms", "torch comp. fwd ms", "torch comp. fwd+bwd ms",
              "torch max_pool2d fwd+bwd ms", "speed-up fwd+bwd", "bandwidth floor fwd ms", "fwd at floor")
    title = (f"DynOPool on {name}, float32, CUDA events, median of {repeats}; copy bandwidth "
             f"{bandwidth / 1e9:.0f} GB/s; torch {torch.__version__}")
    return title, table(rows, header)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a few repeats")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/cpu_dynopool.md and gpu.md")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: nothing to compare with (pip install torch==2.13.0)")
        return 0
    shapes = QUICK_SHAPES if args.quick else SHAPES
    today = datetime.date.today().isoformat()
    title, text = run_cpu(torch, shapes, args.repeats or (2 if args.quick else 5))
    print(title, text, sep="\n")
    if args.write:
        (RESULTS / "cpu_dynopool.md").write_text(f"{title} ({today})\n\n{text}\n")
    if gpu_available(torch):
        title, text = run_gpu(torch, shapes, args.repeats or (10 if args.quick else 100))
        print(title, text, sep="\n")
        if args.write:
            (RESULTS / "gpu.md").write_text(f"{title} ({today})\n\n{text}\n")
    else:
        print("no CUDA device with cupy and torch.cuda here: GPU part skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
