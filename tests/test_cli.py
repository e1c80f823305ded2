"""The ``poolref`` command: ``poolref check`` and ``poolref atlas``."""

import inspect
import json
import re
import subprocess
import sys

import pytest

from poolref import oracle
from poolref.cli import main


def test_check_keeps_the_api_signature():
    parameters = inspect.signature(oracle.check).parameters
    assert list(parameters)[:4] == ["framework", "ops", "cases", "seed"]
    assert parameters["ops"].default is None and parameters["seed"].default == 0
    assert all(p.kind == p.KEYWORD_ONLY for name, p in parameters.items() if name not in ("framework", "ops", "cases", "seed"))


def test_self_check_passes_and_writes_json(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["check", "self", "--ops", "max_pool2d", "avg_pool1d", "--cases", "3", "--json", str(path), "--in-process"]) == 0
    captured = capsys.readouterr()
    assert "max_pool2d" in captured.out and "all checks passed" in captured.out
    assert "self avg_pool1d" in captured.err  # the progress lines go to stderr
    data = json.loads(path.read_text())
    assert data["passed"] and {r["op"] for r in data["results"]} == {"max_pool2d", "avg_pool1d"}
    # worked examples come on top of the random cases: max_pool2d has two (ties, NaN)
    assert {r["op"]: r["cases"] for r in data["results"]} == {"max_pool2d": 5, "avg_pool1d": 4}
    assert data["results"][0]["counts"] == {"worked": 2, "finite": 1, "nan": 1, "ties": 1}


def test_usage_errors_exit_2_with_the_subcommand_usage(capsys):
    # a negative seed leaked numpy's "expected non-negative integer" as a traceback, and --json into a
    # missing folder a FileNotFoundError after the whole run: both are refused before it
    for argv in (["check", "caffe"], ["check", "self", "--ops", "fancy_pool"], ["check", "--cases", "-1"],
                 ["check", "--seed", "x"], ["check", "--jobs", "0"], ["check", "--seed", "-5"],
                 ["check", "--json", "/nonexistent-folder/report.json"], ["check", "--json", "."]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "usage: poolref check" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_near_misses_get_a_suggestion(capsys):
    for argv, suggestion in ((["check", "troch"], "did you mean 'torch'?"), (["check", "--ops", "maxpool2d"], "did you mean 'max_pool2d'?"),
                             (["check", "--ops", "max_pool2d", "troch"], "did you mean 'torch'?")):
        with pytest.raises(SystemExit):
            main(argv)
        assert suggestion in capsys.readouterr().err


def test_frameworks_and_ops_in_any_order(capsys):
    assert main(["check", "--ops", "max_pool1d", "self", "--cases", "1", "--in-process", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == "all checks passed"  # --quiet: the verdict alone
    assert main(["check", "max_pool1d", "self", "--cases", "1", "--in-process", "--quiet"]) == 0


def test_version(capsys):
    from poolref import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_json_to_standard_output(capsys):
    assert main(["check", "self", "--ops", "max_pool1d", "--cases", "1", "--json", "-", "--in-process"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # standard output is the JSON alone
    assert data["verdict"] == "pass" and "all checks passed" in captured.err


def test_only_uncovered_ops_exit_2_with_the_reason(capsys):
    pytest.importorskip("torch")
    assert main(["check", "torch", "--ops", "roi_align", "--in-process"]) == 2
    out = capsys.readouterr().out
    assert "not covered" in out and "NOTHING CHECKED" in out and "passed" not in out


def test_a_framework_that_is_not_installed_is_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(oracle, "available_frameworks", lambda: ["self"])
    with pytest.raises(SystemExit) as info:
        main(["check", "tensorflow"])
    assert info.value.code == 2 and "not installed" in capsys.readouterr().err


def test_without_frameworks_the_default_run_is_the_self_check(monkeypatch, capsys):
    monkeypatch.setattr(oracle, "available_frameworks", lambda: ["self"])
    assert main(["check", "--ops", "adaptive_max_pool1d", "--cases", "2", "--in-process"]) == 0
    out = capsys.readouterr().out
    assert "running poolref's self-checks only" in out and "checking self" in out and "checking torch" not in out


def test_a_mismatch_exits_1_and_prints_a_reproducer(monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    real = torch.nn.functional.avg_pool1d
    monkeypatch.setattr(torch.nn.functional, "avg_pool1d", lambda *a, **k: real(*a, **k) * 1.01)
    assert main(["check", "torch", "--ops", "avg_pool1d", "--cases", "2", "--in-process"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "MISMATCHES FOUND" in out
    assert "reproducer (runnable Python)" in out and "F.avg_pool1d(x_t" in out


def test_every_installed_framework_by_default(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(oracle, "available_frameworks", lambda: ["self", "torch"])
    seen = []
    real_check = oracle.check
    monkeypatch.setattr(oracle, "check", lambda name, **kw: seen.append(name) or real_check(name, **kw))
    assert main(["check", "--ops", "max_pool1d", "--cases", "1", "--quiet", "--in-process"]) == 0
    assert seen == ["self", "torch"]


def test_atlas_command_writes_the_page(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(oracle, "available_frameworks", lambda: ["self"])
    monkeypatch.setattr("poolref.oracle.atlas.available_frameworks", lambda: ["self"])
    path = tmp_path / "atlas.rst"
    assert main(["atlas", "--output", str(path)]) == 0
    assert path.read_text().startswith(":orphan:") and str(path) in capsys.readouterr().err
    assert main(["atlas"]) == 0 and capsys.readouterr().out.startswith(":orphan:")  # standard output by default


def test_atlas_never_overwrites_a_tracked_file_unasked(monkeypatch, capsys):
    from pathlib import Path

    monkeypatch.setattr("poolref.oracle.atlas.available_frameworks", lambda: ["self"])
    tracked = Path(__file__).resolve().parent.parent / "docs" / "atlas.rst"
    before = tracked.read_text()
    with pytest.raises(SystemExit) as info:
        main(["atlas", "--output", str(tracked)])
    assert info.value.code == 2 and "--force" in capsys.readouterr().err and tracked.read_text() == before


def test_python_dash_m_poolref_runs():
    out = subprocess.run([sys.executable, "-m", "poolref", "check", "self", "--ops", "max_pool1d", "--cases", "2"],
                         capture_output=True, text=True)  # in a worker process, as by default
    assert out.returncode == 0, out.stderr
    assert "all checks passed" in out.stdout


def test_the_progress_bar_redraws_on_a_terminal_and_logs_lines_elsewhere():
    import io

    from poolref.oracle.progress import ProgressBar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, log = Terminal(), io.StringIO()
    for stream in (terminal, log):
        bar = ProgressBar(stream, width=10)
        for done in range(1, 5):
            bar(done, 4, "torch max_pool2d" if done < 3 else "torch avg_pool2d")
    assert terminal.getvalue().count("\r") == 4 and "[##########] 4/4" in terminal.getvalue()
    assert log.getvalue().splitlines()[0].split() == ["1/4", "torch", "max_pool2d", log.getvalue().split()[3]]
    assert len(log.getvalue().splitlines()) == 3  # a line per new label, and the last


# --------------------------------------------------------------------------------------------------
# Issue 15's CLI bullets that had no regression test of their own
# --------------------------------------------------------------------------------------------------
def test_quiet_prints_the_verdict_alone_and_no_progress_lines(capsys):
    # "--quiet still prints progress lines"
    assert main(["check", "self", "--ops", "max_pool1d", "--cases", "2", "--in-process", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "all checks passed\n" and captured.err == ""


def test_counts_are_singular_for_one():
    # "1 framework ops"
    from poolref.oracle.report import plural

    assert plural(1, "framework op") == "1 framework op" and plural(2, "framework op") == "2 framework ops"
    assert plural(1, "mismatch") == "1 mismatch" and plural(0, "mismatch") == "0 mismatches"
    report = oracle.check("self", ops=["max_pool1d"], cases=0)
    assert report.summary().endswith("; 1 row (1 self)") and report.summary().startswith("1 case,")


def test_a_missing_framework_raises_module_not_found_in_the_api_with_a_pinned_install_hint(monkeypatch):
    # oracle.check raised ValueError, and the hint was an unpinned "pip install torch" (GBs of CUDA)
    monkeypatch.setattr(oracle, "installed", lambda name: name == "self")
    with pytest.raises(ModuleNotFoundError, match=r"framework='torch' is not installed \(pip install torch==2\.13\.0, a CPU build"):
        oracle.check("torch")
    for framework, extra in (("tensorflow", "tf"), ("jax", "jax"), ("onnxruntime", "onnx")):
        with pytest.raises(ImportError, match=re.escape(f"pip install 'poolref[{extra}]'")):
            oracle.check(framework)


def test_atlas_works_from_any_directory(tmp_path, monkeypatch, capsys):
    # outside the repository it died with a FileNotFoundError traceback
    monkeypatch.setattr("poolref.oracle.atlas.available_frameworks", lambda: ["self"])
    monkeypatch.chdir(tmp_path)
    assert main(["atlas"]) == 0 and capsys.readouterr().out.startswith(":orphan:")
    assert main(["atlas", "--output", "atlas.rst"]) == 0 and (tmp_path / "atlas.rst").read_text().startswith(":orphan:")


def test_the_json_names_the_convention_of_every_row(capsys):
    # the JSON had "convention": "" wherever poolref's default keywords model the framework
    pytest.importorskip("torch")
    assert main(["check", "torch", "--ops", "max_pool1d", "--cases", "1", "--json", "-", "--in-process"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(row["convention"] for row in data["results"])


def test_the_table_and_the_json_state_tolerances_and_dtypes(capsys):
    # neither said which tolerances held or which dtypes were drawn
    assert main(["check", "self", "--ops", "max_pool1d", "--cases", "3", "--json", "-", "--in-process"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["tolerances"]["float64"] == {"rtol": 1e-10, "atol": 1e-12} and data["results"][0]["dtypes"]
    assert main(["check", "self", "--ops", "max_pool1d", "--cases", "3", "--in-process"]) == 0
    table = capsys.readouterr().out
    assert "tolerances: per element" in table and "float64 rtol=1e-10 atol=1e-12" in table
    header = next(line for line in table.splitlines() if line.startswith("cases per input class"))
    assert "dtypes" in header and "float64" in table
