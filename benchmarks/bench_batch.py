"""Batch sweep: forward + backward time PER SAMPLE of poolref and PyTorch as the batch grows.

poolref's array code makes a few passes over its data per op. If every pass took the whole batch,
a batch larger than the CPU's caches would stream through main memory in each pass and the time per
sample would grow with the batch; poolref instead runs the batch in cache-sized blocks
(``poolref._backend.batch_blocks``). This script measures whether that holds: for N = 1, 4, 16
and 64 it times one forward and backward pass of

* ``max_pool2d`` and ``avg_pool2d`` on x (N, 64, 56, 56), kernel 3, stride 2, padding 1 (the
  ResNet stem pooling);
* ``grid_sample`` on x (N, 64, 64, 64) and a random grid (N, 64, 64, 2) in [-1.1, 1.1] (so that
  some points fall outside the image), for every mode (bilinear, nearest) and padding mode (zeros,
  border, reflection), ``align_corners=False``, with the gradients to x and to the grid
  (``mode="bicubic"`` is not implemented in poolref, so it has no row);
* ``dynopool2d`` on x (N, 64, 56, 56) with alpha (1.7, 2.6), with the gradients to x and to alpha,
  against its PyTorch composition (``poolref.testing.torch_compositions.dynopool_by_grid_sample``:
  ``grid_sample`` with border padding and a straight-through size);

all float32, on the same data for both sides. Every batch size of a case and both sides are timed
in the same rounds (timing.py): each round calls poolref and PyTorch at N = 1 (16 calls), N = 4
(4 calls), N = 16 and N = 64, so that the machine's drift over a sweep weighs on all alike. Each row
reports the median time per sample, and the ratio poolref / PyTorch; the results file also says
whether the targets held (growth from N = 1 to N = 64 at most 1.3, ratio at N = 64 at most 1.5).
Before timing, each case checks that poolref's output and gradients match PyTorch's.

Usage::

    python benchmarks/bench_batch.py            # full sweep, prints the table (a few minutes)
    python benchmarks/bench_batch.py --write    # ... and writes results/cpu_batch.md and .json
    python benchmarks/bench_batch.py --quick    # tiny shapes, N = 1 and 4 (a few seconds)

The JSON file holds every timing (the docs' Benchmarks page plots it); the Markdown file the table.
PyTorch keeps its default number of threads unless ``--torch-threads N`` is given. Exits 0 with a
message when PyTorch is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy
from timing import add_common_arguments, environment, interleaved_median_ms, start, write_whole  # benchmarks/timing.py

RESULTS = Path(__file__).resolve().parent / "results" / "cpu_batch.md"
BATCHES = (1, 4, 16, 64)
QUICK_BATCHES = (1, 4)
GRID_MODES = ("bilinear", "nearest")
PADDING_MODES = ("zeros", "border", "reflection")
DYNOPOOL_ALPHA = (1.7, 2.6)


def _cases(quick: bool):
    """(op, label, per-sample input shape) of every row, pooling first."""
    pool_shape, grid_shape = ((4, 12, 12), (4, 8, 8)) if quick else ((64, 56, 56), (64, 64, 64))
    cases = [("max_pool2d", "max_pool2d k=3 s=2 p=1", pool_shape), ("avg_pool2d", "avg_pool2d k=3 s=2 p=1", pool_shape)]
    cases += [("grid_sample", f"grid_sample {mode} {padding}", grid_shape) for mode in GRID_MODES for padding in PADDING_MODES]
    cases.append(("dynopool2d", f"dynopool2d alpha {DYNOPOOL_ALPHA} (vs composition)", pool_shape))
    return cases


def _sides(op, label, sample_shape, n, rng, torch, poolref):
    """The poolref and PyTorch calls of one row, after checking that they compute the same thing."""
    F = torch.nn.functional
    x = rng.standard_normal((n,) + sample_shape, dtype=numpy.float32)
    x_t = torch.from_numpy(x.copy()).requires_grad_(True)
    if op == "grid_sample":
        _, mode, padding = label.split()
        grid = rng.uniform(-1.1, 1.1, (n,) + sample_shape[1:] + (2,)).astype(numpy.float32)
        grid_t = torch.from_numpy(grid.copy()).requires_grad_(True)
        primals, tensors = (x, grid), (x_t, grid_t)

        def ours(a, b):
            return poolref.grid_sample(a, b, mode=mode, padding_mode=padding, align_corners=False)

        def theirs(a, b):
            return F.grid_sample(a, b, mode=mode, padding_mode=padding, align_corners=False)
    elif op == "dynopool2d":
        from poolref.testing.torch_compositions import dynopool_by_grid_sample

        alpha = numpy.array(DYNOPOOL_ALPHA, dtype=numpy.float32)
        primals, tensors = (x, alpha), (x_t, torch.from_numpy(alpha.copy()).requires_grad_(True))

        def ours(a, b):
            return poolref.dynopool2d(a, b)

        def theirs(a, b):
            return dynopool_by_grid_sample(torch, a, b)
    else:
        primals, tensors = (x,), (x_t,)

        def ours(a):
            return getattr(poolref, op)(a, 3, 2, 1)

        def theirs(a):
            return getattr(F, op)(a, 3, 2, 1)

    g = rng.standard_normal(tuple(theirs(*(t.detach() for t in tensors)).shape), dtype=numpy.float32)
    g_t = torch.from_numpy(g.copy())

    def run_poolref():
        y, pullback = poolref.vjp(ours, *primals)
        return (y,) + pullback(g)

    def run_torch():
        for t in tensors:
            t.grad = None
        y = theirs(*tensors)
        y.backward(g_t)
        return (y.detach(),) + tuple(t.grad for t in tensors)

    # the two sides must compute the same thing before their times mean anything
    for number, (a, b) in enumerate(zip(run_poolref(), run_torch())):
        if not _agree(op, number, a, b.numpy()):
            raise SystemExit(f"{label} N={n}: poolref and torch disagree (output or gradient {number}); not timing")
    return run_poolref, run_torch


def _agree(op, number, ours, theirs) -> bool:
    """Whether output or gradient ``number`` of the two sides agree, up to float32 rounding.

    The grid's gradient sums over channels: a looser tolerance. DynOPool's composition computes its
    query points with other float32 roundings, so where two of a cell's four points nearly tie the
    two sides may pick different points: its gradient to x may differ in a handful of elements (at
    most 1 in 10,000 is allowed), and its gradient to alpha, a sum over the batch, by up to 2%.
    """
    if op != "dynopool2d" or number == 0:
        return numpy.allclose(ours, theirs, rtol=1e-4, atol=1e-3)
    if number == 2:  # d/dalpha
        return numpy.allclose(ours, theirs, rtol=2e-2, atol=1e-3)
    return numpy.mean(~numpy.isclose(ours, theirs, rtol=1e-4, atol=1e-3)) <= 1e-4


def _calls_per_round(n: int) -> int:
    """How many calls of batch ``n`` make one timed call: more for small batches, whose calls are
    short and noisier (16 at N = 1, 4 at N = 4, 1 from N = 16)."""
    return max(1, 16 // n)


def _repeated(fn, times: int):
    def run():
        for _ in range(times):
            fn()
    return run


def _sweep(case, batches, repeats, warmup, warmup_s, rng, torch, poolref) -> list[dict]:
    """The rows of one case: every batch size and both sides timed in the same interleaved rounds.

    Each round calls poolref and PyTorch at N = 1, then at N = 4, and so on, so that the machine's
    drift over the minutes of a sweep (large on a shared machine) weighs on every batch size and
    both sides alike: the growth from N = 1 to N = 64 is measured under one state, as the ratios are.
    """
    op, label, sample_shape = case
    fns = []
    for n in batches:
        run_poolref, run_torch = _sides(op, label, sample_shape, n, rng, torch, poolref)
        fns += [_repeated(run_poolref, _calls_per_round(n)), _repeated(run_torch, _calls_per_round(n))]
    times = interleaved_median_ms(fns, repeats, warmup, warmup_s)
    rows = []
    for number, n in enumerate(batches):
        per_sample = n * _calls_per_round(n)
        rows.append({"case": label, "op": op, "n": n, "sample_shape": list(sample_shape),
                     "poolref_ms": times[2 * number] / per_sample, "torch_ms": times[2 * number + 1] / per_sample})
    return rows


def _flatness(rows, label):
    """Per-sample time at the largest N over that at N = 1, for poolref and for PyTorch."""
    mine = [r for r in rows if r["case"] == label]
    first, last = mine[0], mine[-1]
    return last["poolref_ms"] / first["poolref_ms"], last["torch_ms"] / first["torch_ms"]


def _table(rows) -> str:
    """A Markdown table (also readable as plain text): one row per case and batch size."""
    lines = [
        "| case | N | poolref ms/sample | torch ms/sample | ratio poolref/torch |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['n']} | {r['poolref_ms']:.3f} | {r['torch_ms']:.3f} | {r['poolref_ms'] / r['torch_ms']:.2f} |")
    return "\n".join(lines)


#: The targets of issue 13: the time per sample at N = 64 at most this much over N = 1 ...
FLAT_TARGET = 1.3
#: ... and poolref's time at most this much over PyTorch's (or over DynOPool's composition) at N = 64.
RATIO_TARGET = 1.5


def _verdict(holds: bool) -> str:
    return "holds" if holds else "FAILS"


def _target_lines(rows) -> list[str]:
    """One bullet per case: whether the two targets hold in this run (growth and ratio at the largest N)."""
    largest = max(r["n"] for r in rows)
    lines = []
    for label in dict.fromkeys(r["case"] for r in rows):
        growth, _ = _flatness(rows, label)
        last = [r for r in rows if r["case"] == label][-1]
        ratio = last["poolref_ms"] / last["torch_ms"]
        lines.append(f"- {label}: growth {growth:.2f} (target <= {FLAT_TARGET}: {_verdict(growth <= FLAT_TARGET)}), "
                     f"ratio at N = {largest} {ratio:.2f} (target <= {RATIO_TARGET}: {_verdict(ratio <= RATIO_TARGET)})")
    return lines


def _flatness_lines(rows) -> list[str]:
    """One bullet per case: per-sample time at the largest N over that at N = 1, poolref and PyTorch."""
    largest = max(r["n"] for r in rows)
    lines = []
    for label in dict.fromkeys(r["case"] for r in rows):
        ours, theirs = _flatness(rows, label)
        lines.append(f"- {label}: poolref {ours:.2f}, torch {theirs:.2f} (N = {largest} over N = 1)")
    return lines


def _markdown(rows, env) -> str:
    parts = [
        "Forward + backward time per sample as the batch grows: poolref (NumPy) against PyTorch (CPU).",
        "",
        *[f"- {key}: {value}" for key, value in env],
        "",
        _table(rows),
        "",
        "How flat the time per sample stays from N = 1 to the largest batch (1.0: perfectly flat; below 1:",
        "cheaper per sample in a larger batch):",
        "",
        *_flatness_lines(rows),
        "",
        f"The targets in this run (poolref's growth from N = 1 to N = {max(r['n'] for r in rows)}, and its time over",
        "PyTorch's there):",
        "",
        *_target_lines(rows),
        "",
    ]
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, RESULTS, "timed rounds per case, each calling both sides at every N (default 9, 2 with --quick)")
    parser.add_argument("--only", default=None, help="run only the cases whose label contains this text")
    started = start(parser, argv, "bench_batch")
    if started is None:
        return 0
    args, torch, poolref = started

    repeats = args.repeats or (2 if args.quick else 9)
    warmup, warmup_s = (1, 0.05) if args.quick else (3, 0.5)
    batches = QUICK_BATCHES if args.quick else BATCHES
    rng = numpy.random.default_rng(args.seed)
    print(f"torch {torch.__version__} with {torch.get_num_threads()} threads; numpy {numpy.__version__}; "
          f"{os.cpu_count()} CPUs", flush=True)

    rows = []
    for case in _cases(args.quick):
        if args.only and args.only not in case[1]:
            continue
        for row in _sweep(case, batches, repeats, warmup, warmup_s, rng, torch, poolref):
            rows.append(row)
            print(f"{row['case']:32s} N={row['n']:3d}  poolref {row['poolref_ms']:8.3f} ms/sample  torch {row['torch_ms']:8.3f}  "
                  f"ratio {row['poolref_ms'] / row['torch_ms']:5.2f}", flush=True)
    print(_table(rows))
    print("\n".join(_flatness_lines(rows)))
    print("\n".join(_target_lines(rows)))

    if args.write:
        timing = (f"forward + backward, float32; median of {repeats} interleaved rounds after warm-up, each "
                  f"calling both sides at every N (N = 1 {_calls_per_round(1)} times, N = 4 {_calls_per_round(4)} times), "
                  "divided by the samples")
        env = environment(torch, poolref, timing)
        write_whole(args.output, _markdown(rows, env))
        write_whole(Path(args.output).with_suffix(".json"), json.dumps({"environment": dict(env), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
