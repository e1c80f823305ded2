"""Shared by the benchmark scripts: sides called in turn, medians reported; arguments, environment, writing."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy

__all__ = ["interleaved_median_ms", "add_common_arguments", "sleep_idle_openmp_workers", "start", "environment", "write_whole"]


def interleaved_median_ms(fns, repeats: int, warmup: int = 3, warmup_s: float = 0.0) -> list[float]:
    """Median wall time in milliseconds of each of ``fns``, called in turn ``repeats`` times.

    Alternating the calls (poolref, torch, poolref, torch, ...) exposes both sides to the same
    machine state: on a shared virtual machine the speed of memory-bound code drifts by up to 2x over
    a few seconds, and timing one side after the other would charge that drift to one of them.
    Each function is first called ``warmup`` times and for at least ``warmup_s`` seconds: PyTorch's
    first backward calls, and the first calls after its worker threads have gone idle, are much
    slower than its steady state, which is what we compare against.
    """
    start = time.perf_counter()
    calls = 0
    while calls < warmup or time.perf_counter() - start < warmup_s:
        for fn in fns:
            fn()
        calls += 1
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, record in zip(fns, times):
            start = time.perf_counter()
            fn()
            record.append(time.perf_counter() - start)
    return [1e3 * statistics.median(record) for record in times]


# --------------------------------------------------------------------------------------------------
# What every benchmark script does around its timings: arguments, imports, the run's environment,
# and writing its results file
# --------------------------------------------------------------------------------------------------
def add_common_arguments(parser, results, repeats_help: str) -> None:
    """--quick, --write, --output, --repeats, --torch-threads and --seed, as every script has them."""
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few repeats (smoke test)")
    parser.add_argument("--write", action="store_true", help=f"write the results to {results}")
    parser.add_argument("--output", type=Path, default=results, help="where --write writes (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=None, help=repeats_help)
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="set torch.set_num_threads (default: leave PyTorch's default)")
    parser.add_argument("--seed", type=int, default=0)


def sleep_idle_openmp_workers() -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` (unless the caller chose a policy); call before importing torch.

    PyTorch's OpenMP worker threads, by default, spin for a while after each parallel region
    before they sleep. With the two sides called in turn on a machine of few cores, a spinning
    worker takes a core from the poolref call that follows (measured here: grid_sample at N = 64,
    poolref 7.6 ms a sample alone, 12.5 right after PyTorch's calls, 10.1 with passive waiting; and
    PyTorch's own N = 1 calls took 25 ms a sample spinning against each other, 5.3 passive). The
    results files record the policy.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def start(parser, argv, script: str):
    """Parse the arguments; import torch (threads set as asked) and poolref (from this checkout when it
    is not installed). Returns ``(args, torch, poolref)``, or None when PyTorch is not installed."""
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    sleep_idle_openmp_workers()
    try:
        import torch
    except ImportError:
        print(f"{script}: PyTorch is not installed; nothing to compare against, skipping.")
        return None
    try:
        import poolref
    except ImportError:  # run from a checkout
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        import poolref
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    return args, torch, poolref


def environment(torch, poolref, timing: str) -> list[tuple[str, str]]:
    """The facts a results file records about its run: date, versions, CPUs, PyTorch's threads."""
    return [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("poolref", getattr(poolref, "__version__", "unknown")),
        ("numpy", numpy.__version__),
        ("torch", torch.__version__),
        ("python", platform.python_version()),
        ("machine", f"{platform.machine()}, {os.cpu_count()} CPUs"),
        ("torch threads", str(torch.get_num_threads())),
        ("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "(default)")),
        ("timing", timing),
    ]


def write_whole(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file moved into place: never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    print(f"wrote {path}")
