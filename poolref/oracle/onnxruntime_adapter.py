r"""ONNX Runtime: single-node ONNX models, built with ``onnx.helper``, against poolref's ONNX convention.

Every check builds a model of one node (``MaxPool``, ``AveragePool``, ``LpPool``, the global pools,
``MaxUnpool``, ``RoiAlign``, ``MaxRoiPool``, ``Resize``, ``GridSample``, ``Conv``) with
:func:`run_node` and runs it on the CPU provider. ONNX Runtime is an inference engine: outputs and
indices are compared, gradients are not.

What poolref's keywords model (each checked here against ONNX Runtime):

* ``convention="onnx"`` for the windowed pools: explicit asymmetric ``pads`` or ``auto_pad``
  (``SAME_UPPER`` = ``padding="same"``, ``SAME_LOWER`` = ``"same_lower"``, ``VALID``), dilations,
  ceil mode (no window starts in the end padding), ``count_include_pad`` (default 0 in ONNX, so the
  mapping passes it explicitly);
* ``LpPool`` is the true norm ``(sum |x|^p)^(1/p)``, and in ceil mode ONNX Runtime does *not* rescale
  a partial window as PyTorch does (``convention="onnx"``);
* ``MaxPool`` indices flatten the whole NCHW tensor (or each plane column-major with
  ``storage_order=1``): converted exactly by :mod:`poolref.oracle.layouts`;
* ``RoiAlign`` with ``coordinate_transformation_mode`` ``half_pixel`` = ``aligned=True``,
  ``output_half_pixel`` = ``aligned=False``, and its max mode (the max of weighted corners) =
  ``roi_align(..., mode="max", convention="onnx")``; ``MaxRoiPool`` = ``roi_pool(convention="onnx")``;
* ``Resize``: ``asymmetric`` + ``floor`` = ``"nearest"``, ``half_pixel`` + ``round_prefer_ceil`` =
  ``"nearest-exact"``, ``linear`` with ``half_pixel`` or ``align_corners`` = the linear modes.

The oracle loads this adapter only when onnx and onnxruntime are installed; they are imported by
:func:`run_node` and :func:`version`, so the module imports without them.
"""

from __future__ import annotations

import numpy

from .._geometry import as_int_tuple, unpool_output_shape
from .case import Case, resize_scales, resize_size, window_of
from .mapping import Mapping

__all__ = ["NAME", "MODULES", "IMPORTS", "MAPPINGS", "UNCOVERED", "DEFAULT_CASES", "OPSET", "run_node", "version"]

DEFAULT_CASES = 20  # random cases per mapping of a default run
NAME = "onnxruntime"
MODULES = ("onnxruntime", "onnx")
IMPORTS = "import onnx\nfrom poolref.oracle import layouts\nfrom poolref.oracle.onnxruntime_adapter import run_node"
#: One opset for every node: the newest whose versions of these ops ONNX Runtime implements on the
#: CPU (opset 22 re-versions the pools for bfloat16, and ONNX Runtime 1.32 has no float kernels
#: registered for those versions).
OPSET = 19


def version() -> str:
    import onnx
    import onnxruntime

    return f"{onnxruntime.__version__} (onnx {onnx.__version__}, opset {OPSET})"


def run_node(node, feeds: dict, outputs: dict, opset: int = OPSET) -> list:
    """Run one ONNX node in ONNX Runtime (CPU).

    ``feeds`` maps input names to arrays (an optional input left out of the node is named ``""``
    there and absent here); ``outputs`` maps output names to their numpy dtypes. Returns the
    outputs, in the order of ``outputs``.
    """
    import onnx
    import onnxruntime

    helper = onnx.helper
    rank = next(iter(feeds.values())).ndim  # every output here has the rank of the first input
    graph = helper.make_graph(
        [node], node.op_type,
        [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for name, a in feeds.items()],
        [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(numpy.dtype(t)), [None] * rank)
         for name, t in outputs.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnxruntime.set_default_logger_severity(3)  # RoiAlign's max mode warns on every session: errors only
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # failures reach Python as exceptions: no need to print them too
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(list(outputs), feeds)


# --------------------------------------------------------------------------------------------------
# Attributes from poolref's keywords
# --------------------------------------------------------------------------------------------------
AUTO_PAD = {"same": "SAME_UPPER", "same_upper": "SAME_UPPER", "same_lower": "SAME_LOWER", "valid": "VALID"}


def _padding_attributes(padding, n) -> dict:
    """``auto_pad`` for a string padding, else ``pads = [begin_0, .., begin_{n-1}, end_0, ..]``."""
    if isinstance(padding, str):
        return {"auto_pad": AUTO_PAD[padding.lower()]}
    if isinstance(padding, int):
        pairs = [(padding, padding)] * n
    else:
        pairs = [p if isinstance(p, tuple) else (p, p) for p in padding]
    if not any(b or e for b, e in pairs):
        return {}
    return {"pads": [b for b, _ in pairs] + [e for _, e in pairs]}


def _window_attributes(case: Case) -> dict:
    kw = case.kwargs
    n, kernel, stride, dilation = window_of(case)
    attributes = {"kernel_shape": list(kernel), "strides": list(stride)}
    attributes.update(_padding_attributes(kw.get("padding", 0), n))
    if dilation != (1,) * n:
        attributes["dilations"] = list(dilation)
    if kw.get("ceil_mode"):
        attributes["ceil_mode"] = 1
    return attributes


def _node(op_type: str, inputs: list, outputs: list, attributes: dict) -> str:
    pairs = "".join(f", {k}={v!r}" for k, v in attributes.items())
    return f"node = onnx.helper.make_node({op_type!r}, {inputs!r}, {outputs!r}{pairs})"


# --------------------------------------------------------------------------------------------------
# Source code of each node's check
# --------------------------------------------------------------------------------------------------
def _max_pool(storage_order: int):
    def code(case: Case) -> str:
        attributes = _window_attributes(case)
        if storage_order:
            attributes["storage_order"] = storage_order
        return "\n".join([
            _node("MaxPool", ["X"], ["Y", "I"], attributes),
            'y, y_indices_native = run_node(node, {"X": x}, {"Y": x.dtype, "I": np.int64})',
            f"y_indices = layouts.onnx_to_plane(y_indices_native, x.shape{', storage_order=1' if storage_order else ''})",
        ])

    return code


def _avg_pool(case: Case) -> str:
    attributes = _window_attributes(case)
    attributes["count_include_pad"] = int(case.kwargs["count_include_pad"])  # ONNX's default is 0
    return "\n".join([_node("AveragePool", ["X"], ["Y"], attributes), 'y, = run_node(node, {"X": x}, {"Y": x.dtype})'])


def _lp_pool(case: Case) -> str:
    attributes = _window_attributes(case)
    attributes["p"] = int(case.kwargs["norm_type"])
    return "\n".join([_node("LpPool", ["X"], ["Y"], attributes), 'y, = run_node(node, {"X": x}, {"Y": x.dtype})'])


def _global(case: Case) -> str:
    op_type = {"global_avg_pool": "GlobalAveragePool", "global_max_pool": "GlobalMaxPool", "global_lp_pool": "GlobalLpPool"}[case.op]
    attributes = {"p": int(case.kwargs["norm_type"])} if case.op == "global_lp_pool" else {}
    return "\n".join([_node(op_type, ["X"], ["Y"], attributes), 'y, = run_node(node, {"X": x}, {"Y": x.dtype})'])


def _unpool_output_shape(case: Case) -> tuple:
    """(N, C, *spatial) of the unpooled output, by poolref's own rule."""
    kw = case.kwargs
    n, kernel, stride, _ = window_of(case)
    padding = as_int_tuple(kw.get("padding", 0), n, "padding", case.op)
    spatial = unpool_output_shape(case.x.shape[2:], kernel, stride, [(p, p) for p in padding],
                                  kw.get("output_size"), case.op)
    return tuple(case.x.shape[:2]) + spatial


def _max_unpool(case: Case) -> str:
    kw = case.kwargs
    n, kernel, stride, _ = window_of(case)
    attributes = {"kernel_shape": list(kernel), "strides": list(stride)}
    attributes.update(_padding_attributes(kw.get("padding", 0), n))
    shape = _unpool_output_shape(case)
    inputs, feeds = ["X", "I"], ['"X": x', f'"I": layouts.plane_to_onnx(indices, {shape!r})']
    if kw.get("output_size") is not None:
        inputs.append("output_shape")
        feeds.append(f'"output_shape": np.array({list(shape)!r}, dtype=np.int64)')
    return "\n".join([_node("MaxUnpool", inputs, ["Y"], attributes),
                      f"y, = run_node(node, {{{', '.join(feeds)}}}, {{\"Y\": x.dtype}})"])


def _roi_align(case: Case) -> str:
    kw = case.kwargs
    ph, pw = as_int_tuple(kw["output_size"], 2, "output_size", case.op)
    attributes = dict(
        mode=kw.get("mode", "avg"), output_height=ph, output_width=pw, sampling_ratio=int(kw["sampling_ratio"]),
        spatial_scale=float(kw["spatial_scale"]),
        coordinate_transformation_mode="half_pixel" if kw["aligned"] else "output_half_pixel",
    )
    return "\n".join([
        _node("RoiAlign", ["X", "rois", "batch_indices"], ["Y"], attributes),
        'y, = run_node(node, {"X": x, "rois": np.ascontiguousarray(boxes[:, 1:]), '
        '"batch_indices": boxes[:, 0].astype(np.int64)}, {"Y": x.dtype})',
    ])


def _roi_pool(case: Case) -> str:
    kw = case.kwargs
    attributes = dict(pooled_shape=list(as_int_tuple(kw["output_size"], 2, "output_size", case.op)),
                      spatial_scale=float(kw["spatial_scale"]))
    return "\n".join([_node("MaxRoiPool", ["X", "rois"], ["Y"], attributes),
                      'y, = run_node(node, {"X": x, "rois": boxes}, {"Y": x.dtype})'])


RESIZE_MODES = {  # poolref mode (and align_corners) -> Resize attributes
    ("nearest", None): dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    ("nearest-exact", None): dict(mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil"),
    ("linear", False): dict(mode="linear", coordinate_transformation_mode="half_pixel"),
    ("linear", True): dict(mode="linear", coordinate_transformation_mode="align_corners"),
}


def _resize_key(case: Case):
    mode = case.kwargs["mode"]
    if mode in ("linear", "bilinear", "trilinear"):
        return "linear", bool(case.kwargs.get("align_corners", False))
    return mode, None


def _resize(case: Case) -> str:
    """``Resize`` with ``sizes``, or with ``scales`` where the coordinates use the scale factor itself
    (PyTorch's ``scale_factor`` without ``recompute_scale_factor``): ONNX then maps back by
    ``1/scale`` as PyTorch does."""
    scales = resize_scales(case)
    if scales is not None:
        values = [1.0, 1.0] + list(scales)
        return "\n".join([
            _node("Resize", ["X", "", "scales"], ["Y"], RESIZE_MODES[_resize_key(case)]),
            f'y, = run_node(node, {{"X": x, "scales": np.array({values!r}, dtype=np.float32)}}, {{"Y": x.dtype}})',
        ])
    sizes = list(case.x.shape[:2]) + list(resize_size(case))
    return "\n".join([
        _node("Resize", ["X", "", "", "sizes"], ["Y"], RESIZE_MODES[_resize_key(case)]),
        f'y, = run_node(node, {{"X": x, "sizes": np.array({sizes!r}, dtype=np.int64)}}, {{"Y": x.dtype}})',
    ])


def _grid_sample(case: Case) -> str:
    kw = case.kwargs
    attributes = dict(mode=kw["mode"], padding_mode=kw["padding_mode"], align_corners=int(kw["align_corners"]))
    return "\n".join([_node("GridSample", ["X", "grid"], ["Y"], attributes),
                      'y, = run_node(node, {"X": x, "grid": grid}, {"Y": x.dtype})'])


def _conv(case: Case) -> str:
    kw = case.kwargs
    (pt, pl) = as_int_tuple(kw["padding"], 2, "padding", "conv2d")
    attributes = dict(strides=list(as_int_tuple(kw["stride"], 2, "stride", "conv2d")), pads=[pt, pl, pt, pl],
                      dilations=list(as_int_tuple(kw["dilation"], 2, "dilation", "conv2d")))
    return "\n".join([_node("Conv", ["X", "W", "B"], ["Y"], attributes),
                      'y, = run_node(node, {"X": x, "W": weight, "B": bias}, {"Y": x.dtype})'])


# --------------------------------------------------------------------------------------------------
# What ONNX Runtime cannot express, and what poolref cannot model
# --------------------------------------------------------------------------------------------------
def _geometry(case: Case):
    _, kernel, stride, dilation = window_of(case)
    return kernel, stride, dilation


def _window_express(case: Case):
    padding = case.kwargs.get("padding", 0)
    if isinstance(padding, str):
        return None
    kernel, _, _ = _geometry(case)
    pads = _padding_attributes(padding, len(kernel)).get("pads", [0] * 2 * len(kernel))
    if any(p >= k for p, k in zip(pads, kernel + kernel)):
        return "ONNX Runtime requires every pad to be smaller than the (undilated) kernel"
    return None


def _window_model(case: Case):
    padding = case.kwargs.get("padding", 0)
    if isinstance(padding, str) and padding.lower().startswith("same"):
        kernel, stride, dilation = _geometry(case)
        if any(d > 1 for d in dilation):
            return ("auto_pad SAME with dilations: ONNX Runtime 1.32 computes the padding from the undilated "
                    "kernel (a smaller output than ONNX's formula); poolref follows the formula")
        for L, k, s, d in zip(case.x.shape[2:], kernel, stride, dilation):
            if (-(-L // s) - 1) * s + d * (k - 1) + 1 - L < 0:
                return ("auto_pad SAME where the stride exceeds the window: ONNX's total padding "
                        "(O - 1)*s + k - L is negative and ONNX Runtime shifts the windows into the input; "
                        "poolref clamps it at 0, as TensorFlow does")
    return None


def _max_pool_model(case: Case):
    if numpy.isnan(case.x).any():
        return ("ONNX Runtime's MaxPool ignores a NaN unless it is the first element of its window "
                "(checked with 1.32); poolref models PyTorch's rule (NaN wins, the last NaN's index)")
    return _window_model(case)


def _unpool_express(case: Case):
    kw, n = case.kwargs, case.x.ndim - 2
    kernel, stride, _ = _geometry(case)
    padding = as_int_tuple(kw.get("padding", 0), n, "padding", case.op)
    if any((L - 1) * s - 2 * p + k <= 0 for L, s, p, k in zip(case.x.shape[2:], stride, padding, kernel)):
        return ("ONNX Runtime's MaxUnpool requires the default output length (L - 1)*s - 2p + k to be "
                "positive, even when output_shape is given")
    return None


def _no_area(case: Case):
    if case.kwargs["mode"] == "area":
        return "ONNX Resize has no area mode"
    scales = resize_scales(case)
    if scales is not None and any(float(numpy.float32(s)) != s for s in scales):
        return "ONNX Resize's scales are float32: a factor float32 cannot hold exactly maps coordinates differently"
    return None


def _roi_align_express(case: Case):
    if case.kwargs["sampling_ratio"] < 0:
        return "ONNX RoiAlign's sampling_ratio is >= 0 (0 means adaptive)"
    boxes = case.arrays["boxes"]
    if ((boxes[:, 3] < boxes[:, 1]) | (boxes[:, 4] < boxes[:, 2])).any():
        return "ONNX Runtime fails on a box inverted along an axis (x2 < x1 or y2 < y1)"
    return None


WINDOW_PADDINGS = ("none", "asymmetric", "same", "same_lower", "valid")
FLOAT32 = ("float32",)
WINDOW_SKIPS = (
    "a pad >= the kernel size: ONNX Runtime refuses it",
    "auto_pad SAME with dilations > 1: ONNX Runtime 1.32 derives the padding from the undilated kernel",
    "auto_pad SAME with a stride larger than the window: ONNX's padding formula goes negative and "
    "ONNX Runtime shifts the windows; poolref clamps the padding at 0",
)
NAN_SKIP = ("NaN inputs to MaxPool: ONNX Runtime keeps a NaN only when it comes first in its window "
            "(the atlas shows it); poolref models PyTorch's NaN rule",)


#: Public ops with no ONNX node (ONNX Runtime computes no gradients, so compositions check values only).
UNCOVERED = {
    **{f"adaptive_{kind}_pool{n}d": "ONNX has no adaptive pooling (only the global pools, its output size 1)"
       for kind in ("avg", "max") for n in (1, 2, 3)},
    "fractional_max_pool2d": "ONNX has no fractional max pooling",
    "fractional_max_pool3d": "ONNX has no fractional max pooling",
    "ps_roi_pool": "ONNX has no position-sensitive RoI pooling",
    "ps_roi_align": "ONNX has no position-sensitive RoI Align",
}


def _mappings() -> list[Mapping]:
    onnx_convention = {"convention": "onnx"}
    window_space = dict(padding=WINDOW_PADDINGS, ceil_mode=True, dilation=True, divisor_override=False)
    mappings = []
    for n in (1, 2, 3):
        mappings.append(Mapping(
            f"max_pool{n}d", "onnx MaxPool", _max_pool(0), onnx_convention,
            dict(window_space, dtypes=("float64", "float32")), gradients=False,
            express=_window_express, model=_max_pool_model, skips=NAN_SKIP + WINDOW_SKIPS,
            notes="Indices flatten the whole NCHW tensor: converted to poolref's in-plane layout.",
        ))
    mappings.append(Mapping(
        "max_pool2d", "onnx MaxPool(storage_order=1)", _max_pool(1), onnx_convention,
        dict(window_space, dtypes=("float64",)), gradients=False, express=_window_express, model=_max_pool_model,
        skips=NAN_SKIP + WINDOW_SKIPS, worked=False,
        notes="Column-major indices within each plane: converted.",
    ))
    for n in (1, 2, 3):
        mappings.append(Mapping(
            f"avg_pool{n}d", "onnx AveragePool", _avg_pool, onnx_convention,
            dict(window_space, dtypes=FLOAT32), gradients=False, express=_window_express, model=_window_model,
            notes="count_include_pad is passed explicitly (ONNX's default is 0, PyTorch's is True).",
            skips=("divisor_override: ONNX has none", "float64: ONNX Runtime registers AveragePool for float32 only")
            + WINDOW_SKIPS,
        ))
        mappings.append(Mapping(
            f"lp_pool{n}d", "onnx LpPool", _lp_pool, onnx_convention,
            dict(window_space, dtypes=FLOAT32, norm_types=(1.0, 2.0, 3.0)), gradients=False,
            express=_window_express, model=_window_model,
            notes="The true p-norm; a partial ceil-mode window is not rescaled (unlike PyTorch and ONNX's reference).",
            skips=("fractional p: ONNX's p is an int", "float64: not registered in ONNX Runtime") + WINDOW_SKIPS,
        ))
        mappings.append(Mapping(
            f"max_unpool{n}d", "onnx MaxUnpool", _max_unpool, space=dict(dtypes=FLOAT32), gradients=False,
            express=_unpool_express,
            notes="poolref's in-plane indices are converted to ONNX's whole-tensor ones.",
            skips=("repeated indices (overlapping pooling windows): the order of writes is unspecified",
                   "a non-positive default output length: ONNX Runtime refuses it even with output_shape"),
        ))
    mappings += [
        Mapping("global_avg_pool", "onnx GlobalAveragePool", _global, space=dict(dtypes=FLOAT32), gradients=False),
        Mapping("global_max_pool", "onnx GlobalMaxPool", _global, space=dict(dtypes=FLOAT32), gradients=False),
        Mapping("global_lp_pool", "onnx GlobalLpPool", _global, onnx_convention,
                dict(dtypes=FLOAT32, norm_types=(1.0, 2.0, 3.0)), gradients=False),
        Mapping("roi_align", "onnx RoiAlign", _roi_align, onnx_convention,
                dict(dtypes=("float64", "float32"), modes=("avg", "max"), sampling_ratios=(0, 1, 2, 3), ordered_boxes=True),
                gradients=False, express=_roi_align_express,
                notes="half_pixel = aligned=True; max mode = the max of the four weighted corners.",
                skips=("sampling_ratio < 0: ONNX uses 0 for adaptive", "inverted boxes: ONNX Runtime fails on them")),
        Mapping("roi_pool", "onnx MaxRoiPool", _roi_pool, onnx_convention, dict(dtypes=FLOAT32), gradients=False,
                skips=("float64: not registered in ONNX Runtime",)),
        Mapping("interpolate", "onnx Resize", _resize, space=dict(dtypes=FLOAT32, modes=("nearest", "nearest-exact", "linear")),
                gradients=False, express=_no_area,
                skips=("mode='area': Resize has none", "float64: not registered in ONNX Runtime")),
        Mapping("grid_sample", "onnx GridSample", _grid_sample, space=dict(dtypes=FLOAT32), gradients=False),
        Mapping("conv2d", "onnx Conv", _conv, space=dict(dtypes=FLOAT32), gradients=False),
    ]
    return mappings


MAPPINGS = _mappings()
