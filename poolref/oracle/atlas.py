r"""The semantics atlas: where frameworks differ, each shown on a worked input with every framework's
output side by side, generated from the oracle's adapters.

Each :class:`Topic` is one small convention-free case (a poolref call) and a few sentences. For every
installed framework, every mapping of that op (:mod:`poolref.oracle.mapping`) whose framework can
express the case runs its own code, exactly as ``poolref check`` does, on the input with a cotangent
of ones; the page shows the framework's output (its indices in its own layout, and its gradient), and
whether poolref, with the mapping's ``convention=``, reproduces it, or else the declared reason it
cannot. Nothing on the page is typed in by hand except the topics' inputs and prose.

Write the page with ``poolref atlas docs/atlas.rst`` (or :func:`write_atlas`); it needs the
frameworks installed to show them, and says which versions it used.
"""

from __future__ import annotations

import datetime
import re
import textwrap
from pathlib import Path
from typing import NamedTuple

import numpy

from . import available_frameworks, load_adapter
from ..cases.case import Case
from ..cases.worked import RAMP_4x4, RAMP_10x10
from ..cases.worked import plane as _plane
from .engine import Outcome, known_defects, compare_case, run_framework, run_poolref
from .mapping import format_kwargs

__all__ = ["Topic", "TOPICS", "atlas_rst", "write_atlas"]

NAN = float("nan")
INF = float("inf")


class Topic(NamedTuple):
    title: str
    text: str
    cases: tuple  # convention-free Cases


def _case(op, x, label="", **kwargs) -> Case:
    return Case(op, {"x": x}, kwargs, label=label)


TOPICS = (
    Topic(
        "Ceil mode: the last window",
        "With ``ceil_mode`` the output length is rounded up, so the last window may hang over the end. "
        "PyTorch and ONNX Runtime (1.32, below) count the padding it covers but not the overhang "
        "beyond it in an average's divisor, and never let a window start in the end padding. TensorFlow "
        "and JAX have no ceil mode.",
        (
            _case("avg_pool2d", RAMP_4x4, kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
            _case("avg_pool1d", _plane([1.0, 2, 3, 4, 5]), kernel_size=2, stride=2, ceil_mode=True, count_include_pad=True),
            _case("max_pool1d", _plane([1.0, 2, 3, 4, 5]), kernel_size=2, stride=3, padding=1, ceil_mode=True, return_indices=True),
        ),
    ),
    Topic(
        "SAME padding in averages",
        "``SAME`` pads so that ``O = ceil(L / s)``, the odd cell at the end. Whether the padded cells count "
        "in the divisor differs: TensorFlow never counts them; ONNX counts them only with "
        "``count_include_pad=1`` (its default is 0, PyTorch's is True); the JAX idiom that divides by the "
        "window size (``flax.linen.avg_pool``'s default) counts them. PyTorch's pooling has no ``SAME``.",
        (_case("avg_pool2d", _plane(numpy.arange(1.0, 10.0).reshape(3, 3)), kernel_size=2, stride=1, padding="same",
               count_include_pad=True),),
    ),
    Topic(
        "SAME padding when the stride exceeds the window",
        "ONNX's formula for the total padding, ``(O - 1)*s + k - L``, goes negative when the stride is larger "
        "than the window. TensorFlow and JAX clamp it at zero (the first window starts at 0), ONNX Runtime "
        "keeps the negative padding and shifts the windows into the input. poolref clamps, as TensorFlow "
        "does.",
        (_case("max_pool1d", _plane([0.0, 1, 2]), kernel_size=1, stride=3, padding="same", return_indices=True),),
    ),
    Topic(
        "SAME padding with dilation",
        "ONNX's formula pads for the dilated window ``d*(k - 1) + 1``; ONNX Runtime 1.32 pads for the "
        "undilated one and so returns fewer windows. JAX's ``SAME`` follows the formula.",
        (_case("max_pool1d", _plane([0.0, 1, 2, 3, 4]), kernel_size=2, stride=2, padding="same", dilation=2, return_indices=True),),
    ),
    Topic(
        "Lp pooling: partial windows and negative values",
        "PyTorch computes Lp pooling as ``(avg_pool(x**p) * prod(k)) ** (1/p)``: no absolute value, and a "
        "partial ceil-mode window rescaled as if it were full (``3, 7, 10`` below, not ``3, 7, 5``). "
        "ONNX's ``LpPool`` is the true norm ``(sum |x|^p)^(1/p)`` and ONNX Runtime does not rescale "
        "(ONNX's own reference evaluator does). poolref models both (``convention='onnx'``).",
        (
            _case("lp_pool1d", _plane([1.0, 2, 3, 4, 5]), norm_type=1.0, kernel_size=2, stride=2, ceil_mode=True),
            _case("lp_pool1d", _plane([-1.0, -2, -3, 1, 2, 3]), norm_type=3.0, kernel_size=1),
        ),
    ),
    Topic(
        "Adaptive bins",
        "Adaptive pooling cuts ``L`` into ``O`` bins ``[floor(i*L/O), ceil((i+1)*L/O))``, which overlap and "
        "need not be equal (8 -> 6 below). Only PyTorch has adaptive pooling; ONNX, TensorFlow and JAX "
        "have the global case only.",
        (
            _case("adaptive_avg_pool1d", _plane(numpy.arange(8.0)), output_size=6),
            _case("adaptive_max_pool1d", _plane([3.0, 1, 4, 1.5, 5, 9, 2, 6]), output_size=6, return_indices=True),
        ),
    ),
    Topic(
        "RoI Align: the pixel model",
        "Where is a pixel's centre? torchvision's ``aligned=True`` and ONNX's ``half_pixel`` shift the box by "
        "half a pixel, so that a box ``[1, 3]`` samples ``0.75 .. 2.25``; ``aligned=False`` "
        "(``output_half_pixel``) samples ``1.25 .. 2.75`` and stretches boxes shorter than one pixel. "
        "TensorFlow's ``crop_and_resize`` samples corner-aligned points of normalised boxes: it is "
        "``roi_align(aligned=True, sampling_ratio=1)`` of converted boxes wherever every point is inside "
        "the image.",
        (
            Case("roi_align", {"x": RAMP_10x10, "boxes": numpy.array([[0.0, 1, 1, 3, 3]])},
                 dict(output_size=4, spatial_scale=1.0, sampling_ratio=1, aligned=True), positional=("x", "boxes")),
            Case("roi_align", {"x": RAMP_10x10, "boxes": numpy.array([[0.0, 1, 1, 3, 3]])},
                 dict(output_size=4, spatial_scale=1.0, sampling_ratio=1, aligned=False), positional=("x", "boxes")),
        ),
    ),
    Topic(
        "Index layouts",
        "Max pooling's indices: PyTorch and poolref flatten within each (n, c) plane, ``h*W + w``; ONNX "
        "flattens the whole NCHW tensor (or each plane column-major with ``storage_order=1``); "
        "TensorFlow's ``max_pool_with_argmax`` flattens NHWC, ``((n*H + h)*W + w)*C + c``, or without the "
        "batch term. Shown in each framework's own layout; the oracle converts them exactly.",
        (_case("max_pool2d", numpy.arange(32.0).reshape(2, 2, 2, 4) % 7, kernel_size=2, return_indices=True),),
    ),
    Topic(
        "NaN and ties",
        "One rule per framework (the conventions page has the table). PyTorch takes a tap when "
        "``value > max or isnan(value)``: ties go to the first element in scan order, a NaN propagates and "
        "the last NaN's index is kept. TensorFlow's ``tf.nn.max_pool`` ignores NaN and starts from the lowest "
        "finite value (a window of only NaN or -inf gives it), while its ``max_pool_with_argmax`` and ONNX "
        "Runtime's MaxPool (with its Indices output) take the window's first element, then only a strictly "
        "greater one, so a NaN survives only where it comes first. JAX's values are the IEEE maximum (NaN "
        "propagates), and its gradient goes where ``select_and_scatter_add`` sends it. poolref models each "
        "(``convention=``); TensorFlow's ``tf.nn.max_pool`` routes its *gradient* by the argmax rule, which "
        "is a known defect (below).",
        (
            _case("max_pool2d", _plane([[1.0, 3, 3], [3, 2, 0]]), kernel_size=(2, 3), return_indices=True),
            _case("max_pool2d", _plane([[1.0, NAN, 3], [NAN, 2, 0]]), kernel_size=(2, 3), return_indices=True),
            _case("max_pool2d", _plane([[NAN, NAN], [NAN, NAN]]), kernel_size=2, return_indices=True),
            _case("max_pool1d", _plane([-INF, -INF, 1.0]), kernel_size=2, return_indices=True),
        ),
    ),
    Topic(
        "JAX: windows wholly in padding, negative pads, SAME_LOWER",
        "``lax.reduce_window`` accepts what no other framework does: a window lying wholly in padding (a max "
        "of it is -inf, a sum 0, a mean by a window sum of ones 0/0 = NaN), negative pads, which crop the "
        "input, and ``\"SAME_LOWER\"``. poolref models it with ``convention='jax'``; the other frameworks "
        "cannot express these cases.",
        (
            _case("avg_pool1d", _plane([1.0, 2, 3]), kernel_size=2, stride=2, padding=((3, 2),), count_include_pad=False,
                  convention="jax"),
            _case("avg_pool1d", _plane([1.0, 2, 3, 4, 5]), kernel_size=2, stride=1, padding=((-1, -1),), count_include_pad=True,
                  convention="jax"),
            _case("avg_pool1d", _plane([1.0, 2, 3, 4, 5]), kernel_size=2, stride=1, padding="same_lower", count_include_pad=True,
                  convention="jax"),
        ),
    ),
    Topic(
        "Nearest-neighbour resizing",
        "PyTorch's ``nearest`` reads ``floor(dst * in/out)`` (ONNX ``asymmetric`` + ``floor``, TensorFlow 1's "
        "``resize_nearest_neighbor``); ``nearest-exact`` reads ``floor((dst + 1/2) * in/out)``, which is what "
        "``tf.image.resize`` and ``jax.image.resize`` mean by nearest.",
        (
            _case("interpolate", _plane(numpy.arange(5.0).reshape(1, 5)), size=(1, 3), mode="nearest"),
            _case("interpolate", _plane(numpy.arange(5.0).reshape(1, 5)), size=(1, 3), mode="nearest-exact"),
        ),
    ),
    Topic(
        "Antialiasing and area resizing",
        "``jax.image.resize`` antialiases by default: when downsampling, its linear kernel is widened to the "
        "output's pixel size, so it reads more than two neighbours. PyTorch (``antialias=True``) and "
        "``tf.image.resize`` (``antialias=True``) can too, but do not by default; ONNX's ``Resize`` here does not. "
        "An area resize of sizes that do not divide is adaptive average pooling in PyTorch, but TensorFlow and "
        "JAX weigh each pixel by the fraction of it a bin covers. poolref models each "
        "(``interpolate(..., antialias=, convention=)``).",
        (
            _case("interpolate", _plane(numpy.arange(8.0).reshape(1, 8) ** 2), size=(1, 3), mode="bilinear", align_corners=False),
            _case("interpolate", _plane(numpy.arange(4.0).reshape(1, 4)), size=(1, 3), mode="area"),
        ),
    ),
    Topic(
        "Known framework defects",
        "Where a framework's answer is wrong, poolref keeps the right one and the oracle reports the "
        "difference as a known defect, with its reproducer; the framework must give exactly the modelled wrong "
        "answer, so a defect excuses nothing else (``poolref/oracle/defects.py``; every one is listed at the "
        "end of this page). Below: TensorFlow's SAME average with a window longer than the input (its gradient), "
        "TensorFlow's 3-D max pooling sending its gradient to every element within 1e-5 of the maximum, "
        "``tf.nn.max_pool`` routing the gradient of ``[nan, 1]`` to the NaN it ignored, ``tf.reduce_max`` and "
        "``jnp.max`` sharing the gradient among ties, and PyTorch's Lp pooling sending NaN to a cell no window "
        "reads.",
        (
            _case("avg_pool1d", _plane([1.0, 2, 3, 4]), kernel_size=5, stride=3, padding="same", count_include_pad=False),
            _case("max_pool3d", numpy.array([1.0, 1.000005, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0]).reshape(1, 1, 2, 2, 2), kernel_size=2,
                  return_indices=True),
            _case("max_pool1d", _plane([NAN, 1.0]), kernel_size=2, return_indices=True),
            _case("global_max_pool", _plane([2.0, 2.0, 1.0])),
            _case("lp_pool1d", _plane([1.0, 2.0, INF]), norm_type=2.0, kernel_size=2),
        ),
    ),
)


# --------------------------------------------------------------------------------------------------
# Running a topic's cases
# --------------------------------------------------------------------------------------------------
class Cell(NamedTuple):
    framework: str
    call: str
    output: str  # what the framework gave, or why it cannot express the case
    poolref: str  # whether poolref reproduces it
    data: bool = False  # whether ``output`` holds arrays (shown as a literal block)


def _format(a) -> str:
    a = numpy.asarray(a)
    while a.ndim > 1 and a.shape[0] == 1:
        a = a[0]
    if a.dtype.kind == "f":
        return numpy.array2string(a.astype(numpy.float64), precision=4, suppress_small=True, max_line_width=60)
    return numpy.array2string(a, max_line_width=60)


def _run(framework: str, adapter, mapping, case: Case) -> Cell:
    case = mapping.adapt(case)
    reason = mapping.refusal(case, modelled_only=False)
    if reason:
        return Cell(framework, mapping.call, f"cannot express: {reason}", "")
    try:
        values = run_poolref(case, gradients=False)[0].values  # the output's shape, for a cotangent of ones
        ones = numpy.ones_like(values)
        ours, _ = run_poolref(case, gradients=mapping.gradients, cotangent=ones)
    except (ValueError, TypeError) as error:
        return Cell(framework, mapping.call, "", f"poolref refuses the case: {error}")
    try:
        theirs = run_framework(adapter.IMPORTS, mapping, case, ones)
    except Exception as error:  # the framework refusing the case is part of the picture
        message = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        return Cell(framework, mapping.call, f"raises {type(error).__name__}: {message}", "")
    parts = [_format(theirs.values)]
    if theirs.native_indices is not None:
        parts += ["indices:", _format(theirs.native_indices)]
    if mapping.gradients and theirs.grads.get("x") is not None and case.op != "roi_align":
        parts += ["gradient:", _format(theirs.grads["x"])]
    comparisons = compare_case(mapping, case, ours, theirs)
    keywords = format_kwargs(mapping.convention) or "the defaults"
    if all(c.ok for _, c in comparisons):
        verdict = f"reproduces it with {keywords}"
    else:
        unmodelled = mapping.model(case) if mapping.model else None
        known = known_defects(mapping, case, Outcome(comparisons, "", ours, theirs), ones)
        if known:
            unmodelled = "a known " + framework + " defect: " + "; ".join(d.text for d in known)
        what = ", ".join(name.replace("grad_", "gradient to ") for name, c in comparisons if not c.ok)
        verdict = f"differs ({what}) with {keywords}: " + (unmodelled or "NOT DECLARED: a mismatch the oracle reports")
        if any(name == "output" for name, c in comparisons if not c.ok):
            verdict += f"; poolref gives {_format(ours.values)}"
    return Cell(framework, mapping.call, "\n".join(parts), verdict, data=True)


def topic_cells(case: Case, frameworks=None) -> list[Cell]:
    """Every installed framework's result for ``case`` (one cell per mapping of its op)."""
    cells = []
    if frameworks is None:
        frameworks = [f for f in available_frameworks() if f != "self"]
    for framework in frameworks:
        adapter = load_adapter(framework)
        mappings = [m for m in adapter.MAPPINGS if m.op == case.op]
        if not mappings:
            cells.append(Cell(framework, "", f"no {case.op} in {framework}", ""))
            continue
        framework_cells = [_run(framework, adapter, m, case) for m in mappings]
        expressed = [c for c in framework_cells if c.data or c.output.startswith("raises")]
        cells.extend(expressed or framework_cells[:1])
    return cells


# --------------------------------------------------------------------------------------------------
# reStructuredText
# --------------------------------------------------------------------------------------------------
def _literal_cell(text: str, first: bool, literal: bool = False, markup: bool = False) -> list[str]:
    """One cell of a list-table: plain text (escaped), markup (as is), or a literal block (arrays)."""
    bullet = "   * - " if first else "     - "
    if not text:
        return [bullet.rstrip()]
    if markup:
        return [bullet + text]
    if not literal:
        return [bullet + _escape(text).replace("\n", " ")]
    lines = [bullet + ".. code-block:: text", ""]
    lines += ["          " + line for line in text.splitlines()]
    lines.append("")
    return lines


def _escape(text: str) -> str:
    """Plain text for reStructuredText: no emphasis stars, no backquotes, no ``word_`` references."""
    text = text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "'").replace("|", "\\|")
    return re.sub(r"(\w)_(?=\W|$)", r"\1\\_", text)


def _source(a) -> str:
    """``np.array([...]).reshape(shape)``: the array without its unit axes, then its real shape."""
    a = numpy.asarray(a)
    body = numpy.array2string(numpy.squeeze(a), separator=", ", max_line_width=90, prefix="x = np.array(")
    body = re.sub(r"\b(nan|inf)\b", r"np.\1", body)
    return f"np.array({body}).reshape{tuple(a.shape)!r}"


def _case_block(case: Case) -> list[str]:
    call = f"poolref.{case.op}(x{', boxes' if 'boxes' in case.arrays else ''}, {format_kwargs(case.kwargs)})"
    lines = [".. code-block:: python", ""]
    for name, a in case.arrays.items():
        lines += ["    " + line for line in f"{name} = {_source(a)}".splitlines()]
    lines += [f"    {call}", ""]
    return lines


def atlas_rst(frameworks=None) -> str:
    """The atlas page as reStructuredText."""
    if frameworks is None:
        frameworks = [f for f in available_frameworks() if f != "self"]
    versions = ", ".join(f"{f} {load_adapter(f).version()}" for f in frameworks) or "none"
    out = [
        ":orphan:",
        "",
        ".. This page is generated by poolref.oracle.atlas (poolref atlas docs/atlas.rst): do not edit.",
        "",
        "Semantics atlas",
        "===============",
        "",
        "Where pooling differs between frameworks, each difference on a small worked input with every "
        "framework's output side by side. Each output is computed by the same adapter code that "
        "``poolref check`` runs (gradients for a cotangent of ones); the last column says whether poolref, "
        "with the keywords that model the framework, reproduces it, or else why it cannot (the adapters "
        "declare it, and ``poolref check`` skips those cases).",
        "",
        f"Generated {datetime.date.today().isoformat()} with {versions}.",
        "",
    ]
    for topic in TOPICS:
        out += [topic.title, "-" * len(topic.title), "", textwrap.fill(topic.text, 100), ""]
        for case in topic.cases:
            out += _case_block(case)
            cells = topic_cells(case, frameworks)
            if not cells:
                out += ["No framework was installed when this page was generated.", ""]
                continue
            out += [".. list-table::", "   :header-rows: 1", "   :widths: 12 22 36 30", ""]
            out += ["   * - framework", "     - call", "     - output", "     - poolref"]
            for cell in cells:
                out += _literal_cell(cell.framework, True)
                out += _literal_cell(f"``{cell.call}``" if cell.call else "", False, markup=True)
                out += _literal_cell(cell.output, False, literal=cell.data)
                out += _literal_cell(cell.poolref, False)
            out.append("")
    out += _defects()
    out += _declarations(frameworks)
    return "\n".join(out).rstrip() + "\n"


def _defects() -> list[str]:
    """Every known framework defect the oracle models (:mod:`poolref.oracle.defects`)."""
    from .defects import ALL

    out = ["Every known framework defect", "----------------------------", "",
           "The oracle still compares these cases; a mismatch that is exactly the defect is listed under "
           "KNOWN DEFECT with its reproducer, and does not fail the run. Found by the oracle.", ""]
    for framework, defects in ALL.items():
        out += [framework, "~" * len(framework), ""]
        out += [f"* {_escape(defect.text)}" for defect in defects]
        out.append("")
    return out


def _declarations(frameworks) -> list[str]:
    """Every adapter's mappings: which framework op is which poolref op, and what is not checked."""
    out = ["What each adapter checks", "------------------------", "",
           "Generated from the adapters' ``MAPPINGS``: the framework op, the poolref call that models it, "
           "and the configurations ``poolref check`` leaves out, with the reason.", ""]
    for framework in frameworks:
        adapter = load_adapter(framework)
        title = f"{framework} {adapter.version()}"
        out += [title, "~" * len(title), ""]
        for m in adapter.MAPPINGS:
            gradients = "" if m.gradients else " (outputs only)"
            out.append(f"* ``{m.call}`` -> ``poolref.{m.label}``{gradients}" + (f". {_escape(m.notes)}" if m.notes else ""))
            for skip in m.skips:
                out.append(f"    * not checked: {_escape(skip)}")
        out.append("")
    return out


def write_atlas(path="docs/atlas.rst", frameworks=None) -> Path:
    """Write :func:`atlas_rst` to ``path`` (its folder must exist); returns the path."""
    path = Path(path)
    path.write_text(atlas_rst(frameworks))
    return path


if __name__ == "__main__":  # python -m poolref.oracle.atlas [PATH]
    import sys

    print(f"wrote {write_atlas(*sys.argv[1:2])}")
