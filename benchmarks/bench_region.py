"""Forward + backward timing of poolref's roi_align (and deform_roi_pool) on the CPU.

The case of issue 3: a float32 feature map (2, 256, 50, 50), 512 random boxes in image coordinates
(``spatial_scale=1``), 7 x 7 bins, ``sampling_ratio=2``:

* poolref: ``y, pullback = poolref.vjp(lambda t: poolref.roi_align(t, boxes, 7, 1.0, 2, aligned), x)``,
  then ``pullback(g)`` for a fixed random upstream gradient ``g``;
* torchvision (only where it is installed): ``torchvision.ops.roi_align`` on the same data with
  ``x.requires_grad``, then ``y.backward(g)``; its output and gradient are first checked against
  poolref's, and the table gets a ``ratio`` column (poolref time / torchvision time).

Each case is warmed up, then run ``--repeats`` times (default 7; the two libraries interleaved) and
the median is reported, split into forward and backward for poolref.

Usage::

    python benchmarks/bench_region.py            # the issue's case, both values of aligned, and deform_roi_pool
    python benchmarks/bench_region.py --quick    # tiny smoke configuration (a few seconds)
    python benchmarks/bench_region.py --write    # ... and write benchmarks/results/cpu_region.md

It runs from a checkout without installing poolref.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import poolref  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "cpu_region.md"
FULL = dict(shape=(2, 256, 50, 50), boxes=512, output=7, ratio=2)
QUICK = dict(shape=(1, 16, 20, 20), boxes=32, output=7, ratio=2)


def random_boxes(rng, count, batch, height, width):
    """(K, 5) float32 boxes ``[b, x1, y1, x2, y2]`` with corners uniform over the image, x1 <= x2."""
    xs = numpy.sort(rng.uniform(0, width, size=(count, 2)), axis=1)
    ys = numpy.sort(rng.uniform(0, height, size=(count, 2)), axis=1)
    index = rng.integers(0, batch, size=count)
    return numpy.column_stack([index, xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]]).astype(numpy.float32)


def _median_ms(samples):
    return 1e3 * statistics.median(samples)


def time_cases(fns, repeats, warmup):
    """Median time of each ``fn() -> dict of phase -> seconds``; the functions are interleaved."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    records = [dict() for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, records):
            for phase, seconds in fn().items():
                record.setdefault(phase, []).append(seconds)
    return [{phase: _median_ms(v) for phase, v in record.items()} for record in records]


def poolref_runner(op, x, g):
    def run():
        start = time.perf_counter()
        y, pullback = poolref.vjp(op, x)
        middle = time.perf_counter()
        pullback(g)
        end = time.perf_counter()
        return {"forward": middle - start, "backward": end - middle, "total": end - start}

    return run


def torchvision_runner(torch, fn, x, g):
    xt = torch.from_numpy(x)
    gt = torch.from_numpy(g)

    def run():
        start = time.perf_counter()
        leaf = xt.detach().requires_grad_(True)
        fn(leaf).backward(gt)
        return {"total": time.perf_counter() - start}

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny configuration, a few seconds")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help=f"write the table as Markdown to {RESULTS}")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where --write writes (default: %(default)s)")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    repeats = 3 if args.quick else args.repeats
    warmup = 1 if args.quick else 2

    rng = numpy.random.default_rng(args.seed)
    N, C, H, W = config["shape"]
    out, ratio = config["output"], config["ratio"]
    x = rng.normal(size=config["shape"]).astype(numpy.float32)
    boxes = random_boxes(rng, config["boxes"], N, H, W)
    g = rng.normal(size=(len(boxes), C, out, out)).astype(numpy.float32)
    offset = rng.normal(scale=0.5, size=(len(boxes), 2, out, out)).astype(numpy.float32)

    try:
        import torch
        import torchvision
    except ImportError:
        torch = torchvision = None

    cases = [(f"roi_align aligned={aligned}", aligned) for aligned in ((False,) if args.quick else (False, True))]
    print(f"poolref {poolref.__version__}, numpy {numpy.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"x {config['shape']} float32, {len(boxes)} boxes, output {out}x{out}, sampling_ratio {ratio}")
    if torchvision is None:
        print("torchvision is not installed: poolref times only (no ratio)")
    else:
        print(f"torchvision {torchvision.__version__}, torch {torch.__version__} with {torch.get_num_threads()} threads")
    print()
    header = f"{'case':<28} {'forward ms':>11} {'backward ms':>12} {'total ms':>9} {'torchvision ms':>15} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    rows = []
    for name, aligned in cases:
        op = lambda t, aligned=aligned: poolref.roi_align(t, boxes, out, 1.0, ratio, aligned)  # noqa: E731
        fns = [poolref_runner(op, x, g)]
        if torchvision is not None:
            theirs = lambda t, aligned=aligned: torchvision.ops.roi_align(t, torch.from_numpy(boxes), out, 1.0, ratio, aligned)  # noqa: E731
            _check_against_torchvision(torch, op, theirs, x, g)
            fns.append(torchvision_runner(torch, theirs, x, g))
        rows.append((name, time_cases(fns, repeats, warmup)))
    if not args.quick:
        op = lambda t: poolref.deform_roi_pool(t, boxes, offset, out, 1.0, ratio)  # noqa: E731
        rows.append(("deform_roi_pool", time_cases([poolref_runner(op, x, g)], repeats, warmup)))
    for name, timings in rows:
        ours = timings[0]
        theirs = timings[1]["total"] if len(timings) > 1 else None
        ratio_text = f"{ours['total'] / theirs:6.2f}" if theirs else f"{'-':>6}"
        theirs_text = f"{theirs:15.1f}" if theirs else f"{'-':>15}"
        print(f"{name:<28} {ours['forward']:11.1f} {ours['backward']:12.1f} {ours['total']:9.1f} {theirs_text} {ratio_text}")
    if args.write:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(output.name + ".tmp")  # written whole, then moved: never half a file
        tmp.write_text(_markdown(rows, config, repeats, torch, torchvision))
        tmp.replace(output)
        print(f"wrote {output}")
    return 0


def _markdown(rows, config, repeats, torch, torchvision) -> str:
    """The results as Markdown: a sentence, the environment as a list, the table (the docs show it)."""
    out = config["output"]
    environment = [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("poolref", poolref.__version__),
        ("numpy", numpy.__version__),
        ("torchvision", f"{torchvision.__version__} (torch {torch.__version__}, {torch.get_num_threads()} threads)"
         if torchvision is not None else "not installed: poolref times only, no ratio"),
        ("python", platform.python_version()),
        ("machine", f"{platform.machine()}, {os.cpu_count()} CPUs"),
        ("case", f"x {'x'.join(map(str, config['shape']))} float32, {config['boxes']} boxes, "
                 f"{out}x{out} bins, sampling_ratio {config['ratio']}"),
        ("timing", f"median of {repeats} runs after warm-up"),
    ]
    lines = [
        "Forward + backward of `roi_align` and `deform_roi_pool`: poolref (NumPy) on the CPU, against "
        "torchvision where it is installed.",
        "",
        *[f"- {key}: {value}" for key, value in environment],
        "",
        "| case | forward ms | backward ms | total ms | torchvision ms | ratio poolref/torchvision |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, timings in rows:
        ours = timings[0]
        theirs = timings[1]["total"] if len(timings) > 1 else None
        theirs_text, ratio_text = (f"{theirs:.1f}", f"{ours['total'] / theirs:.2f}") if theirs else ("-", "-")
        lines.append(f"| {name} | {ours['forward']:.1f} | {ours['backward']:.1f} | {ours['total']:.1f} | {theirs_text} | {ratio_text} |")
    return "\n".join(lines + [""])


def _check_against_torchvision(torch, ours, theirs, x, g):
    y, pullback = poolref.vjp(ours, x)
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(g))
    numpy.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-4, atol=1e-4)
    numpy.testing.assert_allclose(pullback(g)[0], xt.grad.numpy(), rtol=1e-3, atol=1e-3)


if __name__ == "__main__":
    sys.exit(main())
