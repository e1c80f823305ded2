"""A dependency-free progress bar for ``poolref check``, written to stderr.

On a terminal it redraws one line in place (``\\r``); elsewhere (a CI log, a pipe) it prints a line
each time the label changes, so logs stay short and readable.
"""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressBar"]


class ProgressBar:
    """``bar(done, total, label)`` draws ``label [#####.....] done/total  elapsed``."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.perf_counter()
        self.last_label = None

    def __call__(self, done: int, total: int, label: str) -> None:
        elapsed = time.perf_counter() - self.started
        if self.interactive:
            filled = int(self.width * done / max(total, 1))
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r{label[:40]:<40} [{bar}] {done}/{total} {elapsed:5.1f}s")
            if done == total:
                self.stream.write("\n")
            self.stream.flush()
        elif label != self.last_label or done == total:
            self.stream.write(f"  {done:>5}/{total} {label} ({elapsed:.1f}s)\n")
            self.stream.flush()
        self.last_label = label
