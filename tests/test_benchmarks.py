"""The benchmark scripts run: their --quick mode on tiny shapes, results written where asked.

Only that they run and write what the docs read; no time is asserted (timings belong to the
benchmarks, not to the tests).
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_batch_sweep_quick_mode_writes_the_table_and_the_timings(tmp_path):
    pytest.importorskip("torch")
    output = tmp_path / "cpu_batch.md"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_batch.py"), "--quick", "--write", "--output", str(output),
                           "--only", "zeros"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(output.with_suffix(".json").read_text())["rows"]
    assert {(r["case"], r["n"]) for r in rows} == {(f"grid_sample {m} zeros", n) for m in ("bilinear", "nearest") for n in (1, 4)}
    assert all(r["poolref_ms"] > 0 and r["torch_ms"] > 0 for r in rows)
    text = output.read_text()
    assert "| grid_sample nearest zeros | 4 |" in text and "torch threads" in text
