"""Figure of the Benchmarks page, drawn at build time from the results files in benchmarks/results/.

Each ``*.md`` results file written by a benchmark script's ``--write`` holds one Markdown pipe table.
The columns whose header starts with ``ratio`` give poolref's time over the framework's; columns
ending in ``ms`` are times; the other columns name the case. A file that is missing is left out.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

# the plot directive runs this file with its folder (docs/figures) as the working directory and
# without __file__; run as a script, __file__ is there
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
RESULTS = HERE.parents[1] / "benchmarks" / "results"
COLOURS = {"cpu.md": "#1f77b4", "cpu_sampling.md": "#2ca02c", "cpu_dynopool.md": "#9467bd", "gpu.md": "#d62728"}
TITLES = {"cpu.md": "windowed (vs PyTorch CPU)", "cpu_sampling.md": "sampling (vs PyTorch CPU)",
          "cpu_dynopool.md": "DynOPool (vs PyTorch grid_sample composition, CPU)", "gpu.md": "GPU"}


def read_table(path):
    """(header, rows) of the first pipe table of a Markdown file; cells stripped, the rule skipped."""
    header, rows = None, []
    for line in path.read_text().splitlines():
        if not line.startswith("|"):
            if header is not None:
                break  # the table has ended
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if all(set(c) <= set(":-") and c for c in cells):
            continue  # the |---|---:| rule
        if header is None:
            header = cells
        else:
            rows.append(cells)
    return header, rows


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _ratios(name):
    """[(case label, ratio)] from one results file; [] where it is missing or has no ratio column."""
    path = RESULTS / name
    if not path.is_file():
        return []
    header, rows = read_table(path)
    if not header or not any(h.lower().startswith("ratio") for h in header):
        return []
    ratio_column = next(i for i, h in enumerate(header) if h.lower().startswith("ratio"))
    label_columns = [i for i, h in enumerate(header) if not h.lower().startswith("ratio") and not h.endswith("ms")]
    out = []
    for row in rows:
        if _is_number(row[ratio_column]):
            label = " ".join(row[i] for i in label_columns).replace("align_corners", "ac").replace("padding_mode", "pad")
            out.append((label, float(row[ratio_column])))
    return out


def benchmark_ratios():
    """Horizontal bars of poolref time / framework time, one per case, with the target of 2."""
    groups = [(name, _ratios(name)) for name in ("cpu.md", "cpu_sampling.md", "cpu_dynopool.md", "gpu.md")]
    groups = [(name, ratios) for name, ratios in groups if ratios]
    labels, values, colours = [], [], []
    for name, ratios in groups:
        for label, ratio in ratios:
            labels.append(label)
            values.append(ratio)
            colours.append(COLOURS[name])
    fig, ax = plt.subplots(figsize=(9, 0.35 * max(len(values), 3) + 1.2))
    if not values:
        ax.text(0.5, 0.5, "no results recorded in benchmarks/results/", ha="center", va="center")
        ax.axis("off")
        return
    y = np.arange(len(values))
    ax.barh(y, values, color=colours, alpha=0.8)
    for yi, v in zip(y, values):
        ax.text(v * 1.03, yi, f"{v:.2f}", va="center", fontsize=7)
    ax.axvline(1.0, color="0.3", lw=1, ls=":")
    ax.axvline(2.0, color="#d62728", lw=1, ls="--")
    ax.text(2.0, len(values) - 0.2, " target: at most 2", color="#d62728", fontsize=7, va="top")
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log", base=2)
    ax.set_xlim(min(0.25, min(values) / 1.5), max(4.0, max(values) * 1.5))
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_xlabel("poolref time / PyTorch time (forward + backward; below 1: poolref is faster)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[name], alpha=0.8) for name, _ in groups]
    # above the axes, off the bars, their values and the target's label
    ax.legend(handles, [f"{TITLES[name]}: benchmarks/results/{name}" for name, _ in groups], fontsize=7,
              loc="lower left", bbox_to_anchor=(0, 1.01), borderaxespad=0, ncol=2, frameon=False)


def region_times():
    """poolref's forward and backward times of the region ops (no CPU torchvision to compare with)."""
    path = RESULTS / "cpu_region.md"
    fig, ax = plt.subplots(figsize=(7, 2.2))
    if not path.is_file():
        ax.text(0.5, 0.5, "benchmarks/results/cpu_region.md has not been written", ha="center", va="center")
        ax.axis("off")
        return
    header, rows = read_table(path)
    forward, backward = header.index("forward ms"), header.index("backward ms")
    labels = [row[0] for row in rows]
    y = np.arange(len(rows))
    f = np.array([float(row[forward]) for row in rows])
    b = np.array([float(row[backward]) for row in rows])
    ax.barh(y, f, color="#1f77b4", alpha=0.8, label="forward")
    ax.barh(y, b, left=f, color="#ff7f0e", alpha=0.8, label="backward")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds (median), poolref on the CPU")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # beside the axes, off the bars


def batch_sweep():
    """Forward + backward time per sample against the batch size N (log scale), poolref and PyTorch,
    one panel per op, from benchmarks/results/cpu_batch.json (written by bench_batch.py --write)."""
    import json

    path = RESULTS / "cpu_batch.json"
    if not path.is_file():
        fig, ax = plt.subplots(figsize=(7, 1.5))
        ax.text(0.5, 0.5, "benchmarks/results/cpu_batch.json has not been written", ha="center", va="center")
        ax.axis("off")
        return
    rows = json.loads(path.read_text())["rows"]
    cases = list(dict.fromkeys(r["case"] for r in rows))
    columns = 4
    fig, axes = plt.subplots((len(cases) + columns - 1) // columns, columns, figsize=(10, 2.3 * ((len(cases) + columns - 1) // columns)),
                             squeeze=False, constrained_layout=True)
    for ax, case in zip(axes.flat, cases):
        mine = [r for r in rows if r["case"] == case]
        n = [r["n"] for r in mine]
        ax.plot(n, [r["poolref_ms"] for r in mine], "o-", color="#1f77b4", label="poolref")
        ax.plot(n, [r["torch_ms"] for r in mine], "s--", color="#ff7f0e", label="PyTorch")
        ax.set_xscale("log", base=2)
        ax.set_xticks(n, [str(v) for v in n])
        ax.set_ylim(0, 1.15 * max(max(r["poolref_ms"], r["torch_ms"]) for r in mine))
        ax.set_title(case.replace(" k=3 s=2 p=1", ""), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(cases):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("ms per sample", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("batch size N", fontsize=8)
    axes.flat[0].legend(fontsize=7)
