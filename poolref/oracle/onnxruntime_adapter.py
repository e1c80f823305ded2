r"""ONNX Runtime: single-node ONNX models, built with ``onnx.helper``, against poolref's ONNX convention.

Every check builds a model of one node (``MaxPool``, ``AveragePool``, ``LpPool``, the global pools,
``MaxUnpool``, ``RoiAlign``, ``MaxRoiPool``, ``Resize``, ``GridSample``, ``Conv``, ``DeformConv``) with
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

The ops ONNX lacks are checked (values) against small graphs of its nodes, run by :func:`run_graph`
(rows of kind ``"composition"``): GeM, LSE (``ReduceLogSumExp``), mixed (``MaxPool`` +
``AveragePool``), stochastic pooling at inference, bilinear pooling, DynOPool (``GridSample`` at
DynOPool's query points, docs/dynopool.rst).

The oracle loads this adapter only when onnx and onnxruntime are installed; they are imported by
:func:`run_node` and :func:`version`, so the module imports without them.
"""

from __future__ import annotations


import numpy

from .._geometry import as_int_tuple, unpool_output_shape
from ..cases.case import Case, resize_scales, resize_size, window_of
from ..cases.learned import conv_pads
from . import defects as known
from . import onnx_compositions as compositions
from .artefacts import refuse
from .onnx_compositions import node_source
from .mapping import Mapping

__all__ = ["NAME", "MODULES", "IMPORTS", "MAPPINGS", "UNCOVERED", "DEFAULT_CASES", "OPSET", "run_node", "run_graph", "version"]

DEFAULT_CASES = 20  # random cases per mapping of a default run
NAME = "onnxruntime"
MODULES = ("onnxruntime", "onnx")
IMPORTS = "import onnx\nfrom poolref.oracle import layouts\nfrom poolref.oracle.onnxruntime_adapter import run_graph, run_node"
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
    return run_graph([node], feeds, outputs, opset)


def run_graph(nodes: list, feeds: dict, outputs: dict, opset: int = OPSET) -> list:
    """Run a graph of ONNX ``nodes`` (in order; a composition of several ops) in ONNX Runtime (CPU),
    as :func:`run_node` runs one."""
    import onnx
    import onnxruntime

    helper = onnx.helper
    rank = next(iter(feeds.values())).ndim  # every output here has the rank of the first input
    graph = helper.make_graph(
        nodes, nodes[-1].op_type,
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


# --------------------------------------------------------------------------------------------------
# Source code of each node's check
# --------------------------------------------------------------------------------------------------
def _max_pool(storage_order: int):
    def code(case: Case) -> str:
        attributes = _window_attributes(case)
        if storage_order:
            attributes["storage_order"] = storage_order
        return "\n".join([
            node_source("MaxPool", ["X"], ["Y", "I"], attributes),
            'y, y_indices_native = run_node(node, {"X": x}, {"Y": x.dtype, "I": np.int64})',
            f"y_indices = layouts.onnx_to_plane(y_indices_native, x.shape{', storage_order=1' if storage_order else ''})",
        ])

    return code


def _avg_pool(case: Case) -> str:
    attributes = _window_attributes(case)
    attributes["count_include_pad"] = int(case.kwargs["count_include_pad"])  # ONNX's default is 0
    return "\n".join([node_source("AveragePool", ["X"], ["Y"], attributes), 'y, = run_node(node, {"X": x}, {"Y": x.dtype})'])


def _lp_pool(case: Case) -> str:
    attributes = _window_attributes(case)
    attributes["p"] = int(case.kwargs["norm_type"])
    return "\n".join([node_source("LpPool", ["X"], ["Y"], attributes), 'y, = run_node(node, {"X": x}, {"Y": x.dtype})'])


def _global(case: Case) -> str:
    op_type = {"global_avg_pool": "GlobalAveragePool", "global_max_pool": "GlobalMaxPool", "global_lp_pool": "GlobalLpPool"}[case.op]
    attributes = {"p": int(case.kwargs["norm_type"])} if case.op == "global_lp_pool" else {}
    return "\n".join([node_source(op_type, ["X"], ["Y"], attributes), 'y, = run_node(node, {"X": x}, {"Y": x.dtype})'])


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
    return "\n".join([node_source("MaxUnpool", inputs, ["Y"], attributes),
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
        node_source("RoiAlign", ["X", "rois", "batch_indices"], ["Y"], attributes),
        'y, = run_node(node, {"X": x, "rois": np.ascontiguousarray(boxes[:, 1:]), '
        '"batch_indices": boxes[:, 0].astype(np.int64)}, {"Y": x.dtype})',
    ])


def _roi_pool(case: Case) -> str:
    kw = case.kwargs
    attributes = dict(pooled_shape=list(as_int_tuple(kw["output_size"], 2, "output_size", case.op)),
                      spatial_scale=float(kw["spatial_scale"]))
    return "\n".join([node_source("MaxRoiPool", ["X", "rois"], ["Y"], attributes),
                      'y, = run_node(node, {"X": x, "rois": boxes}, {"Y": x.dtype})'])


RESIZE_MODES = {  # poolref mode (and align_corners) -> Resize attributes
    ("nearest", None): dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    ("nearest-exact", None): dict(mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil"),
    ("linear", False): dict(mode="linear", coordinate_transformation_mode="half_pixel"),
    ("linear", True): dict(mode="linear", coordinate_transformation_mode="align_corners"),
    # PyTorch's bicubic: a = -0.75, taps beyond the edge clamped (not excluded), half-pixel centres
    # (not "pytorch_half_pixel", which maps an output of length 1 to 0 where PyTorch bicubic keeps
    # the half-pixel rule: checked, 2.19 apart on a 4 -> 1 axis)
    ("bicubic", False): dict(mode="cubic", cubic_coeff_a=-0.75, exclude_outside=0, coordinate_transformation_mode="half_pixel"),
    ("bicubic", True): dict(mode="cubic", cubic_coeff_a=-0.75, exclude_outside=0, coordinate_transformation_mode="align_corners"),
}


def _resize_key(case: Case):
    mode = case.kwargs["mode"]
    if mode in ("linear", "bilinear", "trilinear"):
        return "linear", bool(case.kwargs.get("align_corners", False))
    if mode == "bicubic":
        return "bicubic", bool(case.kwargs.get("align_corners", False))
    return mode, None


def _resize(case: Case) -> str:
    """``Resize`` with ``sizes``, or with ``scales`` where the coordinates use the scale factor itself
    (PyTorch's ``scale_factor`` without ``recompute_scale_factor``): ONNX then maps back by
    ``1/scale`` as PyTorch does."""
    scales = resize_scales(case)
    if scales is not None:
        values = [1.0, 1.0] + list(scales)
        return "\n".join([
            node_source("Resize", ["X", "", "scales"], ["Y"], RESIZE_MODES[_resize_key(case)]),
            f'y, = run_node(node, {{"X": x, "scales": np.array({values!r}, dtype=np.float32)}}, {{"Y": x.dtype}})',
        ])
    sizes = list(case.x.shape[:2]) + list(resize_size(case))
    return "\n".join([
        node_source("Resize", ["X", "", "", "sizes"], ["Y"], RESIZE_MODES[_resize_key(case)]),
        f'y, = run_node(node, {{"X": x, "sizes": np.array({sizes!r}, dtype=np.int64)}}, {{"Y": x.dtype}})',
    ])


def _grid_sample(case: Case) -> str:
    """GridSample of opset 19 (modes bilinear, nearest, bicubic; 4-D), or of opset 20 for 5-D input
    (3 spatial axes; its modes are named linear, nearest, cubic, and ONNX Runtime has no 3-D cubic)."""
    kw = case.kwargs
    volumetric = case.x.ndim == 5
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(kw["mode"], kw["mode"]) if volumetric else kw["mode"]
    attributes = dict(mode=mode, padding_mode=kw["padding_mode"], align_corners=int(kw["align_corners"]))
    opset = ", opset=20" if volumetric else ""
    return "\n".join([node_source("GridSample", ["X", "grid"], ["Y"], attributes),
                      f'y, = run_node(node, {{"X": x, "grid": grid}}, {{"Y": x.dtype}}{opset})'])


#: torch.nn.Conv2d's padding modes as ONNX Pad's modes (checked equal to torch.nn.functional.pad on
#: ONNX Runtime 1.32, NaN copied, pads up to the length for wrap: reflect refuses a pad >= the length
#: as PyTorch does).
ONNX_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _conv(case: Case) -> str:
    """``Conv`` with explicit pads (``[top, left, bottom, right]``, "same"/"valid" resolved as PyTorch
    resolves them) and the ``group`` attribute; with a ``padding_mode`` other than zeros, a ``Pad``
    node of that mode (reflect, edge, wrap) first and a ``Conv`` without pads."""
    kw = case.kwargs
    (top, bottom), (left, right) = conv_pads(case)
    attributes = dict(strides=list(as_int_tuple(kw["stride"], 2, "stride", "conv2d")), pads=[top, left, bottom, right],
                      dilations=list(as_int_tuple(kw["dilation"], 2, "dilation", "conv2d")), group=kw.get("groups", 1))
    padding_mode = kw.get("padding_mode", "zeros")
    if padding_mode == "zeros":
        return "\n".join([node_source("Conv", ["X", "W", "B"], ["Y"], attributes),
                          'y, = run_node(node, {"X": x, "W": weight, "B": bias}, {"Y": x.dtype})'])
    attributes["pads"] = [0, 0, 0, 0]
    return compositions.graph_source([
        ("Constant", [], ["pads"], dict(value_ints=[0, 0, top, left, 0, 0, bottom, right])),  # ONNX: all begins, then all ends
        ("Pad", ["X", "pads"], ["padded"], dict(mode=ONNX_PAD_MODES[padding_mode])),
        ("Conv", ["padded", "W", "B"], ["Y"], attributes),
    ], '{"X": x, "W": weight, "B": bias}')


def _deform_conv(case: Case) -> str:
    """``DeformConv`` (opset 19): the groups and offset groups are attributes, which poolref infers
    from the shapes as torchvision does; absent optional inputs are named ``""`` (a trailing one dropped)."""
    kw, arrays = case.kwargs, case.arrays
    c_out, c_per_group, kh, kw_ = arrays["weight"].shape
    (ph, pw) = as_int_tuple(kw["padding"], 2, "padding", "deform_conv2d")
    attributes = dict(kernel_shape=[kh, kw_], strides=list(as_int_tuple(kw["stride"], 2, "stride", "deform_conv2d")),
                      pads=[ph, pw, ph, pw], dilations=list(as_int_tuple(kw["dilation"], 2, "dilation", "deform_conv2d")),
                      group=case.x.shape[1] // c_per_group, offset_group=arrays["offset"].shape[1] // (2 * kh * kw_))
    inputs = ["X", "W", "offset", "B" if "bias" in arrays else "", "mask" if "mask" in arrays else ""]
    while not inputs[-1]:
        inputs.pop()
    names = dict(X="x", W="weight", offset="offset", B="bias", mask="mask")
    feeds = ", ".join(f'"{name}": {names[name]}' for name in inputs if name)
    return "\n".join([node_source("DeformConv", inputs, ["Y"], attributes), f'y, = run_node(node, {{{feeds}}}, {{"Y": x.dtype}})'])


def _deform_conv_model(case: Case):
    """Refuse float16 (sampled at float32 points) and the cases where ONNX Runtime's zero-weight reads of
    pixel (0, 0) meet a NaN or an infinity."""
    if case.dtype == numpy.float16:
        return DEFORM_CONV_FLOAT16
    corner = case.x[..., 0, 0]
    if corner.dtype.kind == "f" and not numpy.isfinite(corner).all():
        return DEFORM_CONV_PIXEL_ZERO
    return None


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
        if any(d > 1 and k > 1 for k, d in zip(kernel, dilation)):  # a window of 1 is the same dilated or not
            return ("auto_pad SAME with dilations: ONNX Runtime 1.32 computes the padding from the undilated "
                    "kernel (a smaller output than ONNX's formula); poolref follows the formula")
        lower = padding.lower() == "same_lower"
        for L, k, s, d in zip(case.x.shape[2:], kernel, stride, dilation):
            total = (-(-L // s) - 1) * s + d * (k - 1) + 1 - L
            # ONNX Runtime's padding before the input, total/2 (SAME_LOWER (total + 1)/2) rounded toward 0 as
            # C++ divides: a total of -1 (SAME_LOWER -1 and -2) leaves it 0 and the windows where poolref's are
            if total < 0 and int((total + lower) / 2) != 0:
                return ("auto_pad SAME where the stride exceeds the window: ONNX's total padding "
                        "(O - 1)*s + k - L is negative and ONNX Runtime shifts the windows into the input by "
                        "-total/2 (SAME_LOWER -(total + 1)/2), rounded toward 0; poolref clamps it at 0, as "
                        "TensorFlow does")
    return None


def _max_pool_model(case: Case):
    # NaN and infinities are compared: with its Indices output, MaxPool takes the first element of
    # the window and then only a strictly greater one, poolref's "onnx" rule (docs/conventions.rst)
    return _window_model(case)


MLAS_MAX = ("ONNX Runtime's float32 GlobalMaxPool (MLAS) starts from the lowest finite value (a plane of only -inf "
            "gives -FLT_MAX) and keeps or drops a NaN by its place in the SIMD lanes (ones with a NaN at index 3 of "
            "4 or 7 of 8 give NaN, at any other index 1; three NaN give -FLT_MAX, four NaN); poolref's "
            "global_max_pool follows PyTorch and has no convention to model it")
GRID_REFLECT_ZERO_RANGE = ("ONNX Runtime's GridSample reflects a tap's index off 0 and L - 1 with align_corners (GsReflect), "
                           "dividing the distance past the edge by L - 1: on an axis of length 1 that is int(1 / 0.0), "
                           "undefined behaviour in C++, so which pixel that tap (of weight 0) reads is no rule to model "
                           "(measured on 1.32, x86-64: bilinear as if it read the axis' only pixel, bit-equal to "
                           "ORT_GRID_SAMPLE_TAP_PADDING's model so extended on 300 of 300 random NaN and inf cases; "
                           "bicubic equal to poolref on 300 of 300; nearest never reflects there and is compared)")
DYNOPOOL_GRID = ("GridSample's reads of neighbours of weight 0 are not DynOPool's (which reads only the pixels it "
                 "weighs): NaN and infinities differ there")


def _grid_sample_model(case: Case):
    # NaN and infinities are compared: nearest and bicubic pad each tap's index as PyTorch does, and the
    # bilinear rule of border and reflection padding is modelled (ORT_GRID_SAMPLE_TAP_PADDING)
    kw = case.kwargs
    if (case.input_class in ("nan", "inf") and kw["mode"] != "nearest" and kw["padding_mode"] == "reflection"
            and kw["align_corners"] and 1 in case.x.shape[2:]):
        return GRID_REFLECT_ZERO_RANGE
    return None


def _unpool_express(case: Case):
    kw, n = case.kwargs, case.x.ndim - 2
    kernel, stride, _ = _geometry(case)
    padding = as_int_tuple(kw.get("padding", 0), n, "padding", case.op)
    if any((L - 1) * s - 2 * p + k <= 0 for L, s, p, k in zip(case.x.shape[2:], stride, padding, kernel)):
        return ("ONNX Runtime's MaxUnpool requires the default output length (L - 1)*s - 2p + k to be "
                "positive, even when output_shape is given")
    return None


RESIZE_CUBIC_ANTIALIAS = ("ONNX Runtime's antialiased Resize is not PyTorch's antialiased interpolate, cubic or linear "
                          "(checked: on a 9 x 8 -> 4 x 3 resize of standard normal numbers (numpy seed 0), cubic 0.073 "
                          "apart with cubic_coeff_a=-0.5, 0.070 with -0.75, linear 0.131 apart); the row draws no antialias")


CONV_WRAP_EMPTY = ("an empty batch with padding_mode='circular': ONNX Runtime 1.32's Pad refuses mode='wrap' on an "
                   "input with a zero-length axis ('Unexpected mode of 3'), whatever the pads")


def _conv_express(case: Case):
    if case.kwargs.get("padding_mode") == "circular" and case.x.size == 0:
        return CONV_WRAP_EMPTY
    return None


def _no_area(case: Case):
    if case.kwargs["mode"] == "area":
        return "ONNX Resize has no area mode"
    scales = resize_scales(case)
    if scales is not None and any(float(numpy.float32(s)) != s for s in scales):
        return ("ONNX Resize's scales are float32, and ONNX Runtime divides by them: a factor float32 cannot hold exactly "
                "can move a source pixel (checked: scale_factor=2.3, nearest, on a length of 31 reads pixel 30 at output 69, "
                "PyTorch pixel 29)")
    return None


def _roi_align_express(case: Case):
    if case.kwargs["sampling_ratio"] < 0:
        return "ONNX RoiAlign's sampling_ratio is >= 0 (0 means adaptive)"
    boxes = case.arrays["boxes"]
    if case.kwargs["sampling_ratio"] == 0 and case.kwargs["aligned"] and ((boxes[:, 3] < boxes[:, 1]) | (boxes[:, 4] < boxes[:, 2])).any():
        return ("ONNX Runtime fails (SafeInt 'Integer overflow') on a box inverted along one axis by a bin or more "
                "with the adaptive sampling_ratio 0 and half_pixel, where its grid ceil(size / bins) is negative "
                "(a fixed ratio, or output_half_pixel's sizes of at least 1, give poolref's values)")
    return None


WINDOW_PADDINGS = ("none", "asymmetric", "same", "same_lower", "valid")
FLOAT32 = ("float32",)
DEFORM_CONV_PIXEL_ZERO = ("ONNX Runtime reads pixel (0, 0) of the plane with weight 0 in place of every corner outside "
                          "the image, and four times for a point outside it (0 * inf = NaN there), where torchvision, and "
                          "poolref, read nothing (checked: a 1x1 plane holding inf sampled at (0, 0) gives NaN, not inf; a "
                          "point at (-0.5, 0) next to an infinite pixel (0, 0) gives NaN)")
DEFORM_CONV_FLOAT16 = ("ONNX Runtime computes a float16 DeformConv's sampling points in float32 from the float16 offsets, "
                       "where torchvision (and poolref) round them to float16 (checked: ONNX Runtime's float16 output equals "
                       "poolref's on float32 copies, rounded to float16, bit for bit on 30 random cases, and differs from it "
                       "by up to 1.2e-2 on the float16 inputs)")
WINDOW_SKIPS = (
    "a pad >= the kernel size: ONNX Runtime refuses it",
    "auto_pad SAME with dilations > 1 (kernel > 1): ONNX Runtime 1.32 derives the padding from the undilated kernel",
    "auto_pad SAME with a stride larger than the window: ONNX's padding formula goes negative and "
    "ONNX Runtime shifts the windows (not where -total/2 rounds to 0); poolref clamps the padding at 0",
)

SQUARES = ("magnitudes: a^2 overflows float32 from |a| = 1.85e19 and is subnormal below 1.08e-19, in AveragePool(a^2); "
           "an artefact of the composition (poolref must factor out each window's maximum, as the PyTorch check does)")
LOG_COUNT = ("magnitudes below 1: ReduceLogSumExp(r x) is about log S + r mean(x), and subtracting log S loses every "
             "digit of r x below log S's ulp; ONNX has no expm1 or log1p to keep them (the PyTorch check does)")


def _stochastic_model(case: Case):
    return SQUARES if case.input_class == "magnitude" else None


def _lse_model(case: Case):
    return LOG_COUNT if case.input_class == "magnitude" and case.scale < 1 else None


MIXED_NAN = ("NaN: poolref's mixed_pool2d takes PyTorch's max (a NaN wins), ONNX's MaxPool keeps a NaN only when it "
             "comes first in its window")
MAX_BLUR_NAN = ("NaN: ONNX's MaxPool keeps a NaN only when it comes first in its window, kornia's max_pool2d (which "
                "poolref's max_blur_pool2d follows) always")
ZERO_SIGN_MLAS = ("signed zeros: ONNX Runtime's float32 GlobalMaxPool (MLAS) returns the tied zero its SIMD lanes keep: "
                  "of a plane of zeros, the one at index 4 * (L // 4) - 1 (3 of 4 to 7, 7 of 8 to 11), and the first "
                  "where L < 4; poolref's global_max_pool returns the first, as PyTorch")


def _mixed_model(case: Case):
    if case.kwargs["lam"] > 0 and case.input_class == "nan":
        return MIXED_NAN
    return _window_model(case) if case.kwargs["lam"] > 0 else None


#: Public ops with no ONNX node (ONNX Runtime computes no gradients, so compositions check values only).
UNCOVERED = {
    **{f"adaptive_{kind}_pool{n}d": "ONNX has no adaptive pooling (only the global pools, its output size 1)"
       for kind in ("avg", "max") for n in (1, 2, 3)},
    "fractional_max_pool2d": "ONNX has no fractional max pooling",
    "fractional_max_pool3d": "ONNX has no fractional max pooling",
    "ps_roi_pool": "ONNX has no position-sensitive RoI pooling",
    "ps_roi_align": "ONNX has no position-sensitive RoI Align",
    "soft_pool2d": "ONNX has no patch extraction (Im2Col, Unfold) for a softmax over each window; "
                   "AveragePool(x e^x) / AveragePool(e^x) overflows where SoftPool does not",
    "spatial_pyramid_pool2d": "ONNX has no adaptive pooling, which spatial pyramid pooling's adaptive levels are "
                              "(its SPPnet binning, plain MaxPool and AveragePool, is not composed here)",
    "deform_roi_pool": "ONNX's RoiAlign has no per-bin offsets",
}


def _mappings() -> list[Mapping]:
    onnx_convention = {"convention": "onnx"}
    window_space = dict(padding=WINDOW_PADDINGS, ceil_mode=True, dilation=True, divisor_override=False)
    mappings = []
    for n in (1, 2, 3):
        mappings.append(Mapping(
            f"max_pool{n}d", "onnx MaxPool", _max_pool(0), onnx_convention,
            dict(window_space, dtypes=("float64", "float32")), gradients=False,
            express=_window_express, model=_max_pool_model, skips=WINDOW_SKIPS,
            notes="Indices flatten the whole NCHW tensor: converted to poolref's in-plane layout.",
        ))
    mappings.append(Mapping(
        "max_pool2d", "onnx MaxPool(storage_order=1)", _max_pool(1), onnx_convention,
        dict(window_space, dtypes=("float64",)), gradients=False, express=_window_express, model=_max_pool_model,
        skips=WINDOW_SKIPS, worked=False,
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
        Mapping("global_max_pool", "onnx GlobalMaxPool", _global, space=dict(dtypes=FLOAT32), gradients=False,
                model=refuse(nan=MLAS_MAX, inf=MLAS_MAX, signed_zero=ZERO_SIGN_MLAS),
                skips=("NaN and infinities: " + MLAS_MAX, ZERO_SIGN_MLAS)),
        Mapping("global_lp_pool", "onnx GlobalLpPool", _global, onnx_convention,
                dict(dtypes=FLOAT32, norm_types=(1.0, 2.0, 3.0)), gradients=False),
        Mapping("roi_align", "onnx RoiAlign", _roi_align, onnx_convention,
                dict(dtypes=("float64", "float32"), modes=("avg", "max"), sampling_ratios=(0, 1, 2, 3)),
                gradients=False, express=_roi_align_express,
                notes="half_pixel = aligned=True; max mode = the max of the four weighted corners of each sample, then over the samples.",
                skips=("sampling_ratio < 0: ONNX uses 0 for adaptive", "inverted boxes with the adaptive sampling_ratio 0 and aligned=True: ONNX Runtime fails on them")),
        Mapping("roi_pool", "onnx MaxRoiPool", _roi_pool, onnx_convention, dict(dtypes=FLOAT32), gradients=False,
                skips=("float64: not registered in ONNX Runtime",)),
        Mapping("interpolate", "onnx Resize", _resize,
                space=dict(dtypes=FLOAT32, modes=("nearest", "nearest-exact", "linear", "bicubic")),
                gradients=False, express=_no_area, defects=(known.ORT_RESIZE_ROWS_SPREAD, known.ORT_RESIZE_COORDINATES,
                                                                     known.ORT_CUBIC_RESIZE_COORDINATES),
                skips=("mode='area': Resize has none", "float64: not registered in ONNX Runtime",
                       "antialias=True: " + RESIZE_CUBIC_ANTIALIAS)),
        Mapping("grid_sample", "onnx GridSample", _grid_sample,
                space=dict(dtypes=FLOAT32, modes=("bilinear", "nearest", "bicubic"), ndims=(2, 3)), gradients=False,
                model=_grid_sample_model, defects=(known.ORT_GRID_SAMPLE_TAP_PADDING,),
                skips=("NaN and infinities with reflection padding, align_corners and an axis of length 1 (bilinear, bicubic): "
                       + GRID_REFLECT_ZERO_RANGE,)),
        Mapping("conv2d", "onnx Conv (Pad, Conv for padding_mode)", _conv, space=dict(dtypes=("float32", "float16")), gradients=False,
                express=_conv_express, skips=(CONV_WRAP_EMPTY,),
                notes="groups as the group attribute; padding='same'/'valid' as explicit pads; padding_mode "
                      "reflect, replicate, circular as a Pad node of mode reflect, edge, wrap before the Conv."),
        Mapping("deform_conv2d", "onnx DeformConv", _deform_conv, space=dict(dtypes=("float64", "float32", "float16")), gradients=False,
                model=_deform_conv_model,
                notes="Groups and offset groups as attributes; torchvision's bilinear rule otherwise (checked on points "
                      "on the pixels, at -1, past the last row and column, next to NaN and infinities).",
                skips=("float16: " + DEFORM_CONV_FLOAT16, "a NaN or an infinity at pixel (0, 0) of a plane: " + DEFORM_CONV_PIXEL_ZERO)),
    ]
    composed = dict(kind="composition", gradients=False, space=dict(dtypes=FLOAT32))
    mappings += [
        Mapping("stochastic_pool2d", "AveragePool(a^2) / AveragePool(a) (training=False)", compositions.stochastic_expectation,
                model=_stochastic_model, skips=("training=True: the samples come from poolref's random generator", SQUARES),
                **composed),
        Mapping("mixed_pool2d", "lam * MaxPool + (1 - lam) * AveragePool(count_include_pad=1)", compositions.mixed, model=_mixed_model,
                skips=(MIXED_NAN,), **composed),
        Mapping("gem_pool", "Max(x, eps), ReduceMax, Div, Pow, ReduceMean, Pow(1/p), Mul", compositions.gem, **composed),
        Mapping("lse_pool", "(ReduceLogSumExp(r x) - log S) / r", compositions.lse, model=_lse_model, skips=(LOG_COUNT,), **composed),
        Mapping("bilinear_pool", "MatMul, Sign * Sqrt(Abs + eps), Div by Max(ReduceL2, eps)", compositions.bilinear, **composed),
        Mapping("blur_pool2d", "Conv(group=C) with the binomial kernel (kornia's blur_pool2d)", compositions.blur_pool, **composed),
        Mapping("max_blur_pool2d", "MaxPool(strides 1) + Conv(group=C) (kornia's max_blur_pool2d)", compositions.blur_pool,
                model=refuse(nan=MAX_BLUR_NAN), skips=(MAX_BLUR_NAN,), **composed),
        Mapping("dynopool2d", "GridSample(bilinear, border) at DynOPool's query points (docs/dynopool.rst), max or mean of four", compositions.dynopool,
                **composed, model=refuse(nan=DYNOPOOL_GRID, inf=DYNOPOOL_GRID), skips=("NaN and infinities: " + DYNOPOOL_GRID,), notes="The grid is computed in float64 from alpha and cast to float32, as GridSample takes it."),
    ]
    return mappings


MAPPINGS = _mappings()
