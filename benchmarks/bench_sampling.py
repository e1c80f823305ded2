"""Forward + backward timing of poolref's grid_sample and interpolate against PyTorch on the CPU.

Both libraries run the same computation on the same float32 data in one process:

* grid_sample: the forward, then the gradients to the input AND to the grid for a fixed random
  upstream gradient ``g`` (poolref: ``poolref.vjp(lambda a, b: poolref.grid_sample(a, b, ...), x,
  grid)`` then ``pullback(g)``; PyTorch: ``F.grid_sample`` with both inputs requiring a gradient,
  then ``y.backward(g)``);
* interpolate (bilinear): 2x up and 2x down, the forward and the input gradient.

Each case is first checked (poolref's output and gradients against PyTorch's), warmed up, then the
two sides are called in turn ``--repeats`` times, interleaved so that both meet the same machine
state, and the median of each is printed with the ratio poolref / torch.

Usage::

    python benchmarks/bench_sampling.py            # full sizes: x (16, 64, 64, 64), grid (16, 64, 64, 2)
    python benchmarks/bench_sampling.py --quick    # small sizes, a few seconds
    python benchmarks/bench_sampling.py --write    # ... and write benchmarks/results/cpu_sampling.md

Standalone: imports nothing from the other benchmark scripts; runs from a checkout without
installing poolref. Exits 0 with a message when PyTorch is not installed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy
from timing import add_common_arguments, environment, interleaved_median_ms, start, write_whole  # benchmarks/timing.py

RESULTS = Path(__file__).resolve().parent / "results" / "cpu_sampling.md"

# (label, x shape, grid or output spatial shape, keyword arguments)
FULL = {
    "grid_sample": [
        ((16, 64, 64, 64), (64, 64), dict(mode="bilinear", padding_mode="zeros", align_corners=False)),
        ((16, 64, 64, 64), (64, 64), dict(mode="bilinear", padding_mode="reflection", align_corners=True)),
        ((16, 64, 64, 64), (64, 64), dict(mode="nearest", padding_mode="zeros", align_corners=False)),
    ],
    "interpolate": [
        ((16, 64, 64, 64), (128, 128), dict(mode="bilinear", align_corners=False)),
        ((16, 64, 64, 64), (32, 32), dict(mode="bilinear", align_corners=False)),
    ],
}
QUICK = {
    "grid_sample": [
        ((2, 8, 16, 16), (16, 16), dict(mode="bilinear", padding_mode="zeros", align_corners=False)),
        ((2, 8, 16, 16), (16, 16), dict(mode="nearest", padding_mode="border", align_corners=True)),
    ],
    "interpolate": [
        ((2, 8, 16, 16), (32, 32), dict(mode="bilinear", align_corners=False)),
        ((2, 8, 16, 16), (8, 8), dict(mode="bilinear", align_corners=False)),
    ],
}


def _grid_sample_case(x_shape, out_hw, kwargs, rng, torch, poolref):
    N = x_shape[0]
    x = rng.standard_normal(x_shape, dtype=numpy.float32)
    grid = rng.uniform(-1.1, 1.1, (N,) + out_hw + (2,)).astype(numpy.float32)  # a few points outside
    g = rng.standard_normal((N, x_shape[1]) + out_hw, dtype=numpy.float32)
    x_t = torch.from_numpy(x.copy()).requires_grad_(True)
    grid_t = torch.from_numpy(grid.copy()).requires_grad_(True)
    g_t = torch.from_numpy(g.copy())

    def run_poolref():
        y, pullback = poolref.vjp(lambda a, b: poolref.grid_sample(a, b, **kwargs), x, grid)
        return (y,) + pullback(g)

    def run_torch():
        x_t.grad = grid_t.grad = None
        y = torch.nn.functional.grid_sample(x_t, grid_t, **kwargs)
        y.backward(g_t)
        return y, x_t.grad, grid_t.grad

    label = "grid_sample " + " ".join(f"{k}={v}" for k, v in kwargs.items())
    return label, f"x {_dims(x_shape)}, grid {_dims((N,) + out_hw + (2,))}", run_poolref, run_torch


def _interpolate_case(x_shape, size, kwargs, rng, torch, poolref):
    x = rng.standard_normal(x_shape, dtype=numpy.float32)
    g = rng.standard_normal(x_shape[:2] + size, dtype=numpy.float32)
    x_t = torch.from_numpy(x.copy()).requires_grad_(True)
    g_t = torch.from_numpy(g.copy())

    def run_poolref():
        y, pullback = poolref.vjp(lambda a: poolref.interpolate(a, size=size, **kwargs), x)
        return (y,) + pullback(g)

    def run_torch():
        x_t.grad = None
        y = torch.nn.functional.interpolate(x_t, size=size, **kwargs)
        y.backward(g_t)
        return y, x_t.grad

    label = "interpolate " + " ".join(f"{k}={v}" for k, v in kwargs.items())
    return label, f"x {_dims(x_shape)} -> {_dims(size)}", run_poolref, run_torch


def _dims(shape) -> str:
    return "x".join(map(str, shape))


def _check(label, ours, theirs):
    """The two sides must compute the same thing before their times mean anything."""
    for what, a, b in zip(("output", "grad x", "grad grid"), ours, theirs):
        b = b.detach().numpy()
        scale = max(1.0, float(numpy.abs(b).max()) if b.size else 1.0)
        if not numpy.allclose(a, b, rtol=1e-4, atol=1e-4 * scale):
            raise SystemExit(f"{label}: poolref and torch disagree on the {what}; not timing")


def _markdown(rows, torch, poolref, repeats: int) -> str:
    """The results as Markdown: a sentence, the environment as a list, the table (the docs show it)."""
    timing = f"forward + backward, float32; median of {repeats} interleaved runs after warm-up"
    lines = [
        "Forward + backward of `grid_sample` and `interpolate`: poolref (NumPy) against PyTorch (CPU).",
        "",
        *[f"- {key}: {value}" for key, value in environment(torch, poolref, timing)],
        "",
        "| case | shapes | poolref ms | torch ms | ratio poolref/torch |",
        "|---|---|---:|---:|---:|",
        *[f"| {label} | {shapes} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |" for label, shapes, ours, theirs in rows],
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, RESULTS, "timed runs per case (default 11, 3 with --quick)")
    started = start(parser, argv, "bench_sampling")
    if started is None:
        return 0
    args, torch, poolref = started

    repeats = args.repeats or (3 if args.quick else 11)
    warmup, warmup_s = (3, 0.3) if args.quick else (2, 0.5)
    cases = QUICK if args.quick else FULL
    rng = numpy.random.default_rng(args.seed)
    print(f"torch {torch.__version__} with {torch.get_num_threads()} threads; numpy {numpy.__version__}; "
          f"{os.cpu_count()} CPUs; float32, forward + backward; median of {repeats} interleaved runs")
    print(f"{'case':<62} {'shapes':<42} {'poolref ms':>10} {'torch ms':>9} {'ratio':>6}")
    rows = []
    builders = [(_grid_sample_case, c) for c in cases["grid_sample"]] + [(_interpolate_case, c) for c in cases["interpolate"]]
    for build, (x_shape, out, kwargs) in builders:
        label, shapes, run_poolref, run_torch = build(x_shape, out, kwargs, rng, torch, poolref)
        _check(label, run_poolref(), run_torch())
        poolref_ms, torch_ms = interleaved_median_ms([run_poolref, run_torch], repeats, warmup, warmup_s)
        print(f"{label:<62} {shapes:<42} {poolref_ms:>10.1f} {torch_ms:>9.1f} {poolref_ms / torch_ms:>6.2f}")
        rows.append((label, shapes, poolref_ms, torch_ms))
    if args.write:
        write_whole(args.output, _markdown(rows, torch, poolref, repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
