"""Forward + backward timing of poolref's max_pool2d and avg_pool2d against PyTorch on the CPU.

Both libraries run the same computation on the same float32 data in one process: the pooling
forward, then the input gradient for a fixed random upstream gradient ``g``.

* poolref: ``y, pullback = poolref.vjp(lambda t: op(t, k, s, p), x)`` then ``pullback(g)``;
* PyTorch: ``y = F.op(x_t, k, s, p)`` with ``x_t.requires_grad``, then ``y.backward(g_t)``.

Each case is warmed up, then the two sides are called in turn ``--repeats`` times (default 15) and
the median of each is reported. Before timing, poolref's output and gradient are checked against PyTorch's, so
the two sides are known to compute the same thing.

Usage::

    python benchmarks/bench_window.py            # full run, prints a table
    python benchmarks/bench_window.py --write    # ... and writes benchmarks/results/cpu.md
    python benchmarks/bench_window.py --quick    # tiny smoke configuration (a few seconds)

PyTorch keeps its default number of threads (printed) unless ``--torch-threads N`` is given.

Exits 0 with a message when PyTorch is not installed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy
from timing import add_common_arguments, environment, interleaved_median_ms, start, write_whole  # benchmarks/timing.py

RESULTS = Path(__file__).resolve().parent / "results" / "cpu.md"

# (input shape, kernel_size, stride, padding)
FULL_CASES = [
    ((8, 64, 56, 56), 3, 2, 1),  # ResNet stem pooling, batch 8
    ((32, 64, 32, 32), 2, 2, 0),  # the classic 2x2 / stride 2 downsampling
]
QUICK_CASES = [
    ((2, 4, 12, 12), 3, 2, 1),
    ((2, 4, 8, 8), 2, 2, 0),
]
OPS = ("max_pool2d", "avg_pool2d")


def _case(op_name, shape, k, s, p, repeats, warmup, warmup_s, rng, torch, poolref):
    F = torch.nn.functional
    op = getattr(poolref, op_name)
    torch_op = getattr(F, op_name)

    x = rng.standard_normal(shape, dtype=numpy.float32)
    x_t = torch.from_numpy(x.copy()).requires_grad_(True)
    out_shape = tuple(torch_op(x_t.detach(), k, s, p).shape)
    g = rng.standard_normal(out_shape, dtype=numpy.float32)
    g_t = torch.from_numpy(g.copy())

    def run_poolref():
        y, pullback = poolref.vjp(lambda t: op(t, k, s, p), x)
        (grad_x,) = pullback(g)
        return y, grad_x

    def run_torch():
        x_t.grad = None
        y = torch_op(x_t, k, s, p)
        y.backward(g_t)
        return y, x_t.grad

    # the two sides must compute the same thing before their times mean anything
    y, grad_x = run_poolref()
    y_t, grad_t = run_torch()
    if not (
        numpy.allclose(y, y_t.detach().numpy(), rtol=1e-5, atol=1e-6)
        and numpy.allclose(grad_x, grad_t.numpy(), rtol=1e-5, atol=1e-5)
    ):
        raise SystemExit(f"{op_name} {shape} k={k} s={s} p={p}: poolref and torch disagree; not timing")

    poolref_ms, torch_ms = interleaved_median_ms([run_poolref, run_torch], repeats, warmup, warmup_s)
    return {
        "op": op_name,
        "shape": "x".join(map(str, shape)),
        "window": f"k={k} s={s} p={p}",
        "poolref_ms": poolref_ms,
        "torch_ms": torch_ms,
    }


def _table(rows) -> str:
    """A Markdown table (also readable as plain text)."""
    lines = [
        "| op | input shape | window | poolref ms | torch ms | ratio poolref/torch |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["poolref_ms"] / r["torch_ms"]
        lines.append(
            f"| {r['op']} | {r['shape']} | {r['window']} | {r['poolref_ms']:.2f} | {r['torch_ms']:.2f} | {ratio:.2f} |"
        )
    return "\n".join(lines)


def _markdown(rows, env) -> str:
    parts = [
        "Forward + backward of `max_pool2d` and `avg_pool2d`: poolref (NumPy) against PyTorch (CPU).",
        "",
        *[f"- {key}: {value}" for key, value in env],
        "",
        _table(rows),
        "",
    ]
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, RESULTS, "timed runs per case (default 15, 3 with --quick)")
    started = start(parser, argv, "bench_window")
    if started is None:
        return 0
    args, torch, poolref = started

    repeats = args.repeats or (3 if args.quick else 15)
    warmup, warmup_s = (2, 0.2) if args.quick else (3, 0.5)
    cases = QUICK_CASES if args.quick else FULL_CASES
    rng = numpy.random.default_rng(args.seed)

    print(f"torch {torch.__version__} with {torch.get_num_threads()} threads; numpy {numpy.__version__}; "
          f"{os.cpu_count()} CPUs; median of {repeats} runs")
    rows = [
        _case(op_name, shape, k, s, p, repeats, warmup, warmup_s, rng, torch, poolref)
        for shape, k, s, p in cases
        for op_name in OPS
    ]
    print(_table(rows))

    if args.write:
        timing = f"forward + backward, float32; median of {repeats} interleaved runs after warm-up"
        write_whole(args.output, _markdown(rows, environment(torch, poolref, timing)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
