r"""Running the checks of several frameworks: each in a worker process of its own, side by side.

Two reasons to leave the main process:

* a framework can *abort* the process that calls it (an XLA check failure, a segfault in a kernel).
  In a worker, that is a finding, not the end of the run: the supervisor sees the worker die during
  a case, records that case as a mismatch ("the framework aborted the process") with its reproducer,
  and starts a new worker that skips it and goes on;
* the frameworks are independent, so their checks run in parallel, one worker per core.

:func:`run_checks` returns one :class:`~poolref.oracle.report.Report` for all frameworks, in the
order asked for. With ``in_process=True`` everything runs here, one framework after the other (what
a test that plants a bug in a framework function in this process needs).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import tempfile
import traceback

from .report import Report

__all__ = ["run_checks", "CRASH"]

#: The problem recorded for a case during which the framework ended the worker process.
CRASH = "the framework aborted the process on this case (exit code {code}){said}: the reproducer, run alone, shows it"
MAX_RESTARTS = 20  # per framework: a framework that crashes on everything is reported, not retried forever


def _check(framework, ops, cases, seed, progress=None, on_case=None, crashed=None, isolated=False):
    from . import check

    return check(framework, ops=ops, cases=cases, seed=seed, progress=progress, on_case=on_case, crashed=crashed,
                 isolated=isolated)


def _quiet_frameworks() -> None:
    """Keep the frameworks' start-up chatter (TensorFlow's C++ and deprecation logs) off the terminal."""
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _worker(messages, framework, ops, cases, seed, crashed, log):
    """Run one framework's check, reporting each case before it runs and the report at the end.

    ``messages`` is this worker's end of a pipe: a send is written before the next line runs, so
    the case a framework aborts on has been announced (a queue's feeder thread would die with it).
    The worker's standard error goes to ``log``: the frameworks' start-up chatter stays off the
    terminal, and what a framework says as it aborts is there for the supervisor to quote.
    """
    descriptor = os.open(log, os.O_WRONLY | os.O_APPEND)
    os.dup2(descriptor, 2)
    _quiet_frameworks()
    try:
        report = _check(
            framework, ops, cases, seed,
            progress=lambda done, total, label: messages.send(("step", framework, done, total, label)),
            on_case=lambda key: messages.send(("case", framework, key)),
            crashed=crashed, isolated=True,
        )
        messages.send(("report", framework, report))
    except BaseException:  # noqa: BLE001 - an exception in the worker is reported, not lost
        messages.send(("error", framework, traceback.format_exc()))


def _last_words(log: str) -> str:
    """What a crashed worker last wrote to standard error, stack traces left out (one line)."""
    try:
        with open(log, errors="replace") as handle:
            lines = [line.strip() for line in handle if line.strip() and not line.startswith(("    @", "*** "))]
    except OSError:
        return ""
    failures = [line for line in lines if line.startswith(("F", "Fatal", "Segmentation", "terminate"))]
    return (failures or lines or [""])[-1][:300]


class _Progress:
    """Sums the progress of several workers into one bar."""

    def __init__(self, progress, frameworks):
        self.progress = progress
        self.done = {name: 0 for name in frameworks}
        self.total = {name: 0 for name in frameworks}

    def __call__(self, framework, done, total, label):
        self.done[framework], self.total[framework] = done, total
        if self.progress:
            self.progress(sum(self.done.values()), sum(self.total.values()), label)


def run_checks(frameworks, ops=None, cases=None, seed=0, *, progress=None, jobs=None, in_process=False,
               started=None, finished=None) -> Report:
    """Check each of ``frameworks``; one report, in their order.

    ``progress(done, total, label)`` is called as cases finish (summed over the workers);
    ``started(framework)`` and ``finished(framework, seconds)`` as each framework begins and ends.
    ``jobs`` workers run at once (default: the number of cores).
    """
    import time

    frameworks = list(dict.fromkeys(frameworks))
    if in_process:
        report = Report()
        for name in frameworks:
            begin = time.perf_counter()
            if started:
                started(name)
            report.extend(_check(name, ops, cases, seed, progress=progress))
            if finished:
                finished(name, time.perf_counter() - begin)
        return report

    context = multiprocessing.get_context("spawn")
    jobs = max(1, jobs or os.cpu_count() or 1)
    pending = list(frameworks)
    running = {}  # framework -> [process, our end of its pipe, start time, crashed keys, restarts, current case]
    reports, logs = {}, {}
    bar = _Progress(progress, frameworks)

    def launch(name, crashed=frozenset(), restarts=0, begin=None):
        handle, logs[name] = tempfile.mkstemp(prefix=f"poolref-{name}-", suffix=".log")
        os.close(handle)
        ours, theirs = context.Pipe(duplex=False)
        process = context.Process(target=_worker, args=(theirs, name, ops, cases, seed, crashed, logs[name]), daemon=True)
        process.start()
        theirs.close()  # the worker holds its end: when it dies, ours reads end-of-file
        running[name] = [process, ours, begin if begin is not None else time.perf_counter(), crashed, restarts, None]
        if started and begin is None:
            started(name)

    def died(name):
        """The worker ended without a report: the case it was on ended the process; go on without it."""
        process, connection, begin, crashed, restarts, current = running.pop(name)
        process.join()
        connection.close()
        if current is None or restarts >= MAX_RESTARTS:
            raise RuntimeError(f"the {name} check's worker ended (exit code {process.exitcode}) outside any case; "
                               f"run `poolref check {name} --in-process` to see why")
        said = _last_words(logs[name])
        os.remove(logs[name])
        launch(name, crashed | {current + (process.exitcode, said)}, restarts + 1, begin)

    try:
        while pending or running:
            while pending and len(running) < jobs:
                launch(pending.pop(0))
            connections = {entry[1]: name for name, entry in running.items()}
            for connection in multiprocessing.connection.wait(list(connections), timeout=1.0):
                name = connections[connection]
                try:
                    kind, _, *payload = connection.recv()
                except (EOFError, OSError):
                    died(name)
                    continue
                if kind == "step":
                    bar(name, *payload)
                elif kind == "case":
                    running[name][5] = tuple(payload[0])
                elif kind == "report":
                    process, connection, begin = running.pop(name)[:3]
                    process.join()
                    connection.close()
                    reports[name] = payload[0]
                    if finished:
                        finished(name, time.perf_counter() - begin)
                elif kind == "error":
                    raise RuntimeError(f"the {name} check failed in its worker:\n{payload[0]}")
    finally:
        for process, connection, *_ in running.values():
            process.terminate()
            connection.close()
        for log in logs.values():
            if os.path.exists(log):
                os.remove(log)
    report = Report()
    for name in frameworks:
        report.extend(reports[name])
    return report
