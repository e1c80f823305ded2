"""The ``poolref`` command.

``poolref check [FRAMEWORK ...] [--ops OP ...] [--cases N] [--seed S] [--json PATH|-] [--quiet]``
cross-checks frameworks against poolref. Without a framework it checks every installed one
(``torch``, ``onnxruntime``, ``tensorflow``, ``jax``) and always runs poolref's self-checks (loop
references, gradcheck, conservation laws), which need no framework. Frameworks and ``--ops`` may come
in any order. Each framework runs in a worker process of its own, side by side (``--jobs``), so that
a framework that aborts its process is reported rather than ending the run (``--in-process`` runs
everything here, one after the other). It prints a progress bar (on stderr), a table per framework
with a row per public op, and every mismatch with a runnable reproducer.

``poolref atlas [--output PATH]`` writes the semantics atlas (reStructuredText) from the installed
frameworks, to standard output or to ``PATH``.

Exit status: 0 when everything agrees, 1 on a mismatch, 2 on a usage error or when nothing was
checked.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys

from . import oracle
from ._version import __version__
from .oracle.progress import ProgressBar

__all__ = ["main"]


def _suggest(name: str, choices) -> str:
    """`` (did you mean 'torch'?)`` for a near miss, else ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    if not close:  # maxpool2d -> max_pool2d: compare without underscores too
        bare = {c.replace("_", ""): c for c in choices}
        close = [bare[m] for m in difflib.get_close_matches(name.replace("_", ""), list(bare), n=1, cutoff=0.8)]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(prog="poolref", description="The reference implementation of pooling.")
    parser.add_argument("--version", action="version", version=f"poolref {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check", help="cross-check frameworks (and poolref itself) against poolref",
        description="Cross-check frameworks' pooling outputs, indices and gradients against poolref. Each public op "
                    "is a row per framework: checked natively, as a composition of the framework's ops, or not "
                    "covered, with the reason.",
    )
    names = ", ".join(oracle.FRAMEWORKS)
    check.add_argument("frameworks", nargs="*", metavar="FRAMEWORK",
                       help=f"any of {names} (default: self and every installed framework)")
    check.add_argument("--ops", nargs="+", metavar="OP", default=None, help="poolref ops to check (default: every public op)")
    check.add_argument("--cases", type=int, default=None,
                       help="seeded random cases per framework op, going round the input classes; the worked "
                            "examples come on top (default: the framework's, 20 for most)")
    check.add_argument("--seed", type=int, default=0, help="seed of the case generator (default 0)")
    check.add_argument("--json", metavar="PATH", help="also write the report as JSON to PATH ('-': standard output)")
    check.add_argument("--quiet", action="store_true", help="print the verdict only")
    check.add_argument("--jobs", type=int, default=None, help="frameworks checked at once (default: the number of cores)")
    check.add_argument("--in-process", action="store_true",
                       help="run every check in this process, one after the other (no protection against a "
                            "framework that aborts the process)")
    atlas = commands.add_parser("atlas", help="write the semantics atlas page (reStructuredText)",
                                description="Write the semantics atlas (reStructuredText) from the installed frameworks.")
    atlas.add_argument("--output", "-o", metavar="PATH", help="write to PATH instead of standard output")
    atlas.add_argument("--force", action="store_true", help="overwrite PATH even where git tracks it")
    return parser, check, atlas


def _sort_arguments(check, args) -> None:
    """Frameworks and ops in any order: a framework name after ``--ops`` is a framework."""
    frameworks, ops = list(args.frameworks), []
    for name in args.ops or ():
        if oracle.ALIASES.get(name, name) in oracle.FRAMEWORKS:
            frameworks.append(name)
        else:
            ops.append(name)
    for name in list(frameworks):
        if name in oracle.PUBLIC_OPS:  # `poolref check max_pool2d`: an op where a framework was expected
            frameworks.remove(name)
            ops.append(name)
    args.frameworks = [oracle.ALIASES.get(name, name) for name in frameworks]
    args.ops = ops or None
    for name in args.frameworks:
        if name not in oracle.FRAMEWORKS:
            check.error(f"unknown framework {name!r}{_suggest(name, list(oracle.FRAMEWORKS) + list(oracle.ALIASES))}; "
                        f"choose from {', '.join(oracle.FRAMEWORKS)}")
    for name in args.ops or ():
        if name not in oracle.PUBLIC_OPS:
            known = list(oracle.PUBLIC_OPS) + list(oracle.FRAMEWORKS)  # `--ops max_pool2d troch` means torch
            check.error(f"unknown op {name!r}{_suggest(name, known)}; choose from {', '.join(oracle.PUBLIC_OPS)}")


def _check(check, args) -> int:
    _sort_arguments(check, args)
    installed = oracle.available_frameworks()
    frameworks = args.frameworks or installed
    for name in frameworks:
        if name not in installed:
            check.error(f"framework {name!r} is not installed ({oracle.INSTALL_HINTS.get(name, 'see its adapter')})")
    if args.cases is not None and args.cases < 0:
        check.error(f"--cases must be at least 0, got {args.cases}")
    if args.jobs is not None and args.jobs < 1:
        check.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.seed < 0:  # numpy's seeds are non-negative
        check.error(f"--seed must be at least 0, got {args.seed}")
    if args.json not in (None, "-"):  # found out before the run, not after it
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK) or os.path.isdir(args.json):
            check.error(f"--json {args.json}: cannot write there (no such folder, no permission, or a folder)")
    # with --json -, standard output holds the JSON alone and the words go to standard error
    say = (lambda *a, **k: print(*a, **k, file=sys.stderr)) if args.json == "-" else print
    if installed == ["self"] and not args.frameworks and not args.quiet:
        say("no framework installed (torch, onnxruntime, tensorflow, jax): running poolref's self-checks only")

    def started(name):
        if not args.quiet:
            say(f"checking {name} ...", flush=True)

    def finished(name, seconds):
        if not args.quiet:
            say(f"checked {name} in {seconds:.1f}s", flush=True)

    report = oracle.runner.run_checks(
        frameworks, args.ops, args.cases, args.seed, progress=None if args.quiet else ProgressBar(),
        jobs=args.jobs, in_process=args.in_process, started=started, finished=finished,
    )
    if not args.quiet:
        say(report.table())
    if args.json == "-":
        print(report.to_json())
    elif args.json:
        with open(args.json, "w") as handle:
            handle.write(report.to_json())
    if report.verdict == "nothing checked":
        reasons = [f"{r.framework} {r.op}: not covered: {r.reason}" for r in report.results if not r.covered]
        say("\n".join(reasons + [report.verdict_line()]) if args.quiet else report.verdict_line())
        return 2
    say(report.verdict_line())
    return 0 if report.passed else 1


def _tracked(path) -> bool:
    """Whether git tracks ``path`` (False outside a repository or without git)."""
    import subprocess
    from pathlib import Path

    path = Path(path).resolve()
    try:
        out = subprocess.run(["git", "-C", str(path.parent), "ls-files", "--error-unmatch", path.name],
                             capture_output=True, text=True)
    except OSError:
        return False
    return out.returncode == 0


def _atlas(atlas, args) -> int:
    from .oracle.atlas import atlas_rst

    if args.output and _tracked(args.output) and not args.force:
        atlas.error(f"{args.output} is tracked by git: pass --force to overwrite it")
    text = atlas_rst()
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def main(argv=None) -> int:
    parser, check, atlas = _parser()
    args = parser.parse_args(argv)
    if args.command == "atlas":
        return _atlas(atlas, args)
    return _check(check, args)


if __name__ == "__main__":
    sys.exit(main())
