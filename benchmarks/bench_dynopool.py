"""DynOPool timing on the CPU: poolref against the PyTorch grid_sample composition.

poolref's NumPy array code vs ``dynopool_by_grid_sample`` on torch CPU, forward + backward (to x and
to alpha), float32, the two sides called in turn; median of the runs. The GPU benchmark (the CUDA
kernels with CUDA events against the composition on CUDA, ``max_pool2d`` and the HBM floor) is part
of ``python benchmarks/gpu_check.py``.

    python benchmarks/bench_dynopool.py               # print the table
    python benchmarks/bench_dynopool.py --quick       # small shapes, a few seconds
    python benchmarks/bench_dynopool.py --write       # also write benchmarks/results/cpu_dynopool.md

Shapes (N, C, H, W): (128, 64, 32, 32) and (64, 256, 56, 56); alpha (2, 2) and (1.7, 2.6).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

import numpy
from timing import interleaved_median_ms, sleep_idle_openmp_workers  # benchmarks/timing.py, next to this script

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
             f"torch {torch.__version__} with {torch.get_num_threads()} threads (OMP_WAIT_POLICY "
             f"{os.environ.get('OMP_WAIT_POLICY', 'default')}); median of {repeats} interleaved runs")
    return title, table(rows, header)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, a few repeats")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results/cpu_dynopool.md")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    sleep_idle_openmp_workers()
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
    print("the GPU benchmark: python benchmarks/gpu_check.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
