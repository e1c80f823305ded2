r"""ONNX graphs for the ops ONNX lacks, and the source of a single node: the checks of the
ONNX Runtime adapter's ``"composition"`` rows (:mod:`poolref.oracle.onnxruntime_adapter`).

Each function returns the *source code* of one check, the lines a reader can paste to reproduce it:
they build the nodes with ``onnx.helper.make_node`` and run them with ``run_graph`` or ``run_node``
(names the adapter's ``IMPORTS`` provide), reading ``x`` (and the op's other arrays) and leaving the
result in ``y``. The compositions are written from each op's definition, independently of poolref's
array code: GeM (``Max``, ``ReduceMax``, ``Pow``, ``ReduceMean``), LSE (``ReduceLogSumExp``), mixed
pooling (``MaxPool`` + ``AveragePool``), stochastic pooling at inference (``AveragePool(a^2) /
AveragePool(a)``), bilinear pooling (``MatMul``, ``Sign``, ``Sqrt``, ``ReduceL2``), DynOPool
(``GridSample`` at DynOPool's query points (docs/dynopool.rst)) and kornia's blur pools (a depthwise ``Conv``, after a
stride-1 ``MaxPool`` for max-blur pooling).
"""

from __future__ import annotations

import math

import numpy

from .._geometry import as_int_tuple
from ..cases.case import Case

__all__ = ["node_source", "graph_source", "gem", "lse", "mixed", "stochastic_expectation", "bilinear", "dynopool", "blur_pool"]


def node_source(op_type: str, inputs: list, outputs: list, attributes: dict) -> str:
    pairs = "".join(f", {k}={v!r}" for k, v in attributes.items())
    return f"node = onnx.helper.make_node({op_type!r}, {inputs!r}, {outputs!r}{pairs})"


def graph_source(nodes: list, feeds: str, preamble=()) -> str:
    """Source that builds ``nodes`` (each ``(op_type, inputs, outputs, attributes)``) and runs the graph,
    after the ``preamble`` lines (the arrays the feeds name)."""
    lines = list(preamble) + ["make = onnx.helper.make_node", "nodes = ["]
    for op_type, inputs, outputs, attributes in nodes:
        pairs = "".join(f", {k}={v!r}" for k, v in attributes.items())
        lines.append(f"    make({op_type!r}, {inputs!r}, {outputs!r}{pairs}),")
    lines += ["]", f'y, = run_graph(nodes, {feeds}, {{"Y": x.dtype}})']
    return "\n".join(lines)


def _window(case: Case) -> dict:
    """``kernel_shape`` and ``strides`` of a 2-D pooling node from the case's keywords (stride None: the kernel)."""
    kw = case.kwargs
    kernel = list(as_int_tuple(kw["kernel_size"], 2, "kernel_size", case.op))
    stride = kernel if kw.get("stride") is None else list(as_int_tuple(kw["stride"], 2, "stride", case.op))
    return dict(kernel_shape=kernel, strides=stride)


def _axes(case: Case) -> list:
    return list(range(2, case.x.ndim))


def _constant(name: str, value: float):
    return ("Constant", [], [name], dict(value_float=float(value)))


def gem(case: Case) -> str:
    """max(x, eps), its plane's maximum factored out (not where it is NaN or infinite), Pow, ReduceMean, Pow(1/p)."""
    return graph_source([
        ("Constant", [], ["axes"], dict(value_ints=_axes(case))),
        _constant("eps", case.kwargs.get("eps", 1e-6)),
        _constant("one", 1.0),
        ("Max", ["X", "eps"], ["Z"], {}),
        ("ReduceMax", ["Z", "axes"], ["largest"], {}),
        ("IsInf", ["largest"], ["infinite"], {}),
        ("IsNaN", ["largest"], ["nan"], {}),
        ("Or", ["infinite", "nan"], ["unusable"], {}),
        ("Where", ["unusable", "one", "largest"], ["scale"], {}),  # an infinite maximum is not factored out
        ("Div", ["Z", "scale"], ["ratio"], {}),
        ("Pow", ["ratio", "P"], ["powered"], {}),
        ("ReduceMean", ["powered", "axes"], ["mean"], {}),
        ("Div", ["one", "P"], ["inverse"], {}),
        ("Pow", ["mean", "inverse"], ["root"], {}),
        ("Mul", ["scale", "root"], ["Y"], {}),
    ], '{"X": x, "P": p}')


def lse(case: Case) -> str:
    """(ReduceLogSumExp(r x) - log S) / r."""
    r, count = case.kwargs["r"], math.prod(case.x.shape[2:])
    return graph_source([
        ("Constant", [], ["axes"], dict(value_ints=_axes(case))),
        _constant("r", r),
        _constant("log_count", math.log(count)),
        ("Mul", ["X", "r"], ["scaled"], {}),
        ("ReduceLogSumExp", ["scaled", "axes"], ["total"], {}),
        ("Sub", ["total", "log_count"], ["mean"], {}),
        ("Div", ["mean", "r"], ["Y"], {}),
    ], '{"X": x}')


def mixed(case: Case) -> str:
    """lam * MaxPool + (1 - lam) * AveragePool(count_include_pad=1); a term of weight 0 left out."""
    padding = list(as_int_tuple(case.kwargs.get("padding", 0), 2, "padding", case.op))
    window = dict(_window(case), pads=padding + padding)
    lam = case.kwargs["lam"]
    nodes, terms = [], []
    if lam > 0:
        # with its Indices output MaxPool runs the kernel that follows one rule (the "onnx" rule of
        # docs/conventions.rst): without, float32 goes through MLAS, which has none for NaN or -inf
        nodes += [_constant("lam", lam), ("MaxPool", ["X"], ["maxima", "winners"], window),
                  ("Mul", ["lam", "maxima"], ["max_term"], {})]
        terms.append("max_term")
    if lam < 1:
        nodes += [_constant("rest", 1 - lam), ("AveragePool", ["X"], ["means"], dict(window, count_include_pad=1)),
                  ("Mul", ["rest", "means"], ["avg_term"], {})]
        terms.append("avg_term")
    nodes.append(("Add", terms, ["Y"], {}) if len(terms) == 2 else ("Identity", terms, ["Y"], {}))
    return graph_source(nodes, '{"X": x}')


def stochastic_expectation(case: Case) -> str:
    """AveragePool(a^2) / AveragePool(a) (the window size cancels), 0 where the window sums to 0."""
    window = _window(case)
    return graph_source([
        _constant("zero", 0.0),
        _constant("one", 1.0),
        ("Mul", ["X", "X"], ["squares"], {}),
        ("AveragePool", ["squares"], ["square_mean"], window),
        ("AveragePool", ["X"], ["mean"], window),
        ("Greater", ["mean", "zero"], ["nonzero"], {}),
        ("Where", ["nonzero", "mean", "one"], ["divisor"], {}),
        ("Div", ["square_mean", "divisor"], ["ratio"], {}),
        ("Where", ["nonzero", "ratio", "zero"], ["Y"], {}),
    ], '{"X": x}')


def bilinear(case: Case) -> str:
    """MatMul of the flattened maps / P; Sign * Sqrt(Abs + eps); divided by Max(ReduceL2, eps)."""
    kw, x = case.kwargs, case.x
    eps = kw.get("eps", 1e-12)
    positions = math.prod(x.shape[2:])
    second = "second" in case.arrays
    channels_y = case.arrays["second"].shape[1] if second else x.shape[1]
    nodes = [
        ("Constant", [], ["x_shape"], dict(value_ints=[x.shape[0], x.shape[1], positions])),
        ("Constant", [], ["y_shape"], dict(value_ints=[x.shape[0], channels_y, positions])),
        ("Constant", [], ["flat"], dict(value_ints=[x.shape[0], x.shape[1] * channels_y])),
        _constant("count", positions),
        _constant("eps", eps),
        ("Reshape", ["X", "x_shape"], ["first"], {}),
        ("Reshape", ["Y2" if second else "X", "y_shape"], ["other"], {}),
        ("Transpose", ["other"], ["other_t"], dict(perm=[0, 2, 1])),
        ("MatMul", ["first", "other_t"], ["sums"], {}),
        ("Reshape", ["sums", "flat"], ["flat_sums"], {}),
        ("Div", ["flat_sums", "count"], ["B" if kw["signed_sqrt"] or kw["l2_normalize"] else "Y"], {}),
    ]
    last = "B"
    if kw["signed_sqrt"]:
        nodes += [("Abs", ["B"], ["magnitude"], {}), ("Add", ["magnitude", "eps"], ["lifted"], {}),
                  ("Sqrt", ["lifted"], ["root"], {}), ("Sign", ["B"], ["sign"], {}),
                  ("Mul", ["sign", "root"], ["S" if kw["l2_normalize"] else "Y"], {})]
        last = "S"
    if kw["l2_normalize"]:
        nodes += [("Constant", [], ["rows"], dict(value_ints=[1])), ("ReduceL2", [last, "rows"], ["norm"], {}),
                  ("Max", ["norm", "eps"], ["divisor"], {}), ("Div", [last, "divisor"], ["Y"], {})]
    return graph_source(nodes, '{"X": x, "Y2": second}' if second else '{"X": x}')


def dynopool(case: Case) -> str:
    """GridSample (bilinear, border, align_corners=0) at DynOPool's query points (docs/dynopool.rst), computed here in
    float64 and cast to the grid's float32; the four points of each cell reduced by numpy."""
    alpha = [float(a) for a in case.arrays["alpha"]]
    H, W = case.x.shape[-2:]
    sizes = [max(1, int(numpy.round(L / a))) for L, a in zip((H, W), alpha)]
    reduce = "max" if case.kwargs["aggregate"] == "max" else "mean"
    return "\n".join([
        "def grid_coordinates(length, out_length):  # u = (i + 1/4 + a/2) * L / O - 1/2, as grid coordinates",
        "    phase = (np.arange(out_length)[:, None] + 0.25 + np.array([0.0, 0.5])[None, :]).ravel()",
        "    return ((phase * (length / out_length) - 0.5) + 0.5) * 2 / length - 1",
        "",
        f"rows, cols = grid_coordinates({H}, {sizes[0]}), grid_coordinates({W}, {sizes[1]})  # O = max(1, round(L / alpha))",
        "grid = np.stack(np.broadcast_arrays(cols[None, :], rows[:, None]), axis=-1)  # (2 H_out, 2 W_out, (x, y))",
        "grid = np.broadcast_to(grid, (x.shape[0],) + grid.shape).astype(x.dtype)",
        node_source("GridSample", ["X", "grid"], ["Y"], dict(mode="bilinear", padding_mode="border", align_corners=0)),
        'query, = run_node(node, {"X": x, "grid": grid}, {"Y": x.dtype})',
        f"points = query.reshape(x.shape[0], x.shape[1], {sizes[0]}, 2, {sizes[1]}, 2)",
        f"y = points.{reduce}(axis=(3, 5))",
    ])


def blur_pool(case: Case) -> str:
    """kornia's blur pools: a depthwise ``Conv`` (``group`` = C) with the normalised binomial kernel,
    ``(k - 1) // 2`` zeros before and ``k // 2`` after; for max-blur pooling a stride-1 ``MaxPool``
    first (with its Indices output: the kernel that follows one rule, as in :func:`mixed`)."""
    kw = case.kwargs
    k, s = kw["kernel_size"], kw.get("stride", 2)
    row = [float(math.comb(k - 1, i)) for i in range(k)]
    before, after = (k - 1) // 2, k // 2
    nodes = []
    source = "X"
    if case.op == "max_blur_pool2d":
        m = kw.get("max_pool_size", 2)
        nodes.append(("MaxPool", ["X"], ["maxima", "winners"], dict(kernel_shape=[m, m], strides=[1, 1])))
        source = "maxima"
    nodes.append(("Conv", [source, "W"], ["Y"], dict(group=case.x.shape[1], kernel_shape=[k, k], strides=[s, s],
                                                   pads=[before, before, after, after])))
    preamble = [
        f"row = np.array({row!r}) / {sum(row)!r}  # Pascal's row, normalised",
        "weight = np.broadcast_to(np.outer(row, row), (x.shape[1], 1, len(row), len(row))).astype(x.dtype)  # (C, 1, k, k)",
    ]
    return graph_source(nodes, '{"X": x, "W": weight}', preamble)
