"""The ``poolref`` command.

``poolref check [FRAMEWORK ...] [--ops OP ...] [--cases N] [--seed S] [--json PATH]`` cross-checks
frameworks against poolref. Without a framework it checks every installed one (``torch``,
``onnxruntime``, ``tensorflow``, ``jax``) and always runs poolref's self-checks (loop references,
gradcheck, conservation laws), which need no framework. It prints a progress bar (on stderr), a table
per framework with a row per op, and every mismatch with a runnable reproducer.

``poolref atlas [PATH]`` writes the semantics atlas (reStructuredText) from the installed frameworks.

Exit status: 0 when everything agrees, 1 on a mismatch, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import oracle
from .oracle.progress import ProgressBar


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poolref", description="The reference implementation of pooling.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check", help="cross-check frameworks (and poolref itself) against poolref",
        description="Cross-check frameworks' pooling outputs, indices and gradients against poolref.",
    )
    names = ", ".join(oracle.FRAMEWORKS)
    check.add_argument("frameworks", nargs="*", metavar="FRAMEWORK",
                       help=f"any of {names} (default: self and every installed framework)")
    check.add_argument("--ops", nargs="+", metavar="OP", help="poolref ops to check (default: all)")
    check.add_argument("--cases", type=int, default=None,
                       help="random cases per framework op, besides the worked examples (default: 20; 10 for jax)")
    check.add_argument("--seed", type=int, default=0, help="seed of the case generator (default 0)")
    check.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    atlas = commands.add_parser("atlas", help="write the semantics atlas page (reStructuredText)")
    atlas.add_argument("path", nargs="?", default="docs/atlas.rst", help="where to write it (default docs/atlas.rst)")
    return parser


def _check(parser, args) -> int:
    installed = oracle.available_frameworks()
    frameworks = [oracle.ALIASES.get(name, name) for name in args.frameworks] or installed
    for name in frameworks:
        if name not in oracle.FRAMEWORKS:
            parser.error(f"unknown framework {name!r}; choose from {', '.join(oracle.FRAMEWORKS)}")
        if name not in installed:
            packages = " ".join(oracle.ADAPTERS[name][1])
            parser.error(f"framework {name!r} is not installed (pip install {packages})")
    for op in args.ops or ():
        if op not in oracle.OPS:
            parser.error(f"unknown op {op!r}; choose from {', '.join(oracle.OPS)}")
    if args.cases is not None and args.cases < 0:
        parser.error(f"--cases must be at least 0, got {args.cases}")
    if installed == ["self"] and not args.frameworks:
        print("no framework installed (torch, onnxruntime, tensorflow, jax): running poolref's self-checks only")
    report = oracle.Report()
    for name in dict.fromkeys(frameworks):
        started = time.perf_counter()
        progress = None if args.quiet else ProgressBar()
        print(f"checking {name} ...", flush=True)
        report.extend(oracle.check(name, ops=args.ops, cases=args.cases, seed=args.seed, progress=progress))
        print(f"checked {name} in {time.perf_counter() - started:.1f}s", flush=True)
    print(report.table())
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(report.to_json())
    print("all checks passed" if report.passed else f"MISMATCHES FOUND: {len(report.failures)}")
    return 0 if report.passed else 1


def _atlas(args) -> int:
    from .oracle.atlas import write_atlas

    path = write_atlas(args.path)
    print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "atlas":
        return _atlas(args)
    return _check(parser, args)


if __name__ == "__main__":
    sys.exit(main())
