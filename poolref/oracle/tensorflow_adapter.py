r"""TensorFlow: ``tf.nn`` pooling, ``max_pool_with_argmax``, ``fractional_max_pool``, ``crop_and_resize``,
``tf.image.resize`` and ``conv2d`` against poolref's TensorFlow convention.

TensorFlow is channels-last (NWC, NHWC, NDHWC): each check moves the channel axis with
``np.moveaxis`` on the way in and back on the way out, cotangent included, and takes gradients with
``tf.GradientTape``. What poolref's keywords model (each checked here):

* ``convention="tensorflow"``: ``SAME`` (= ``padding="same"``, the odd cell at the end, padding
  never negative) and ``VALID``; an average never counts padding, whatever ``count_include_pad``;
  no ceil mode; explicit padding exists only for ``max_pool1d``/``max_pool2d`` (each pad smaller than
  the window);
* ``tf.nn.pool`` with ``dilations`` (``VALID`` and stride 1 only, TensorFlow's own limits);
* ``max_pool_with_argmax`` flattens ``((n*H + h)*W + w)*C + c`` (or without the batch term):
  converted exactly by :func:`poolref.oracle.layouts.tf_argmax_to_plane`;
* ``fractional_max_pool`` only where its windows are regular (pooling ratio 2 on even sizes, not
  overlapping), which ``fractional_max_pool2d`` reproduces with kernel 2 (any samples);
* ``crop_and_resize`` = ``roi_align(aligned=True, sampling_ratio=1)`` of converted boxes, where every
  crop point lies inside the image (:func:`poolref.oracle.layouts.crop_boxes_to_rois`); with a NaN or
  an infinity (image or upstream gradient) TensorFlow's own interpolation, modelled exactly
  (:mod:`poolref.oracle.tf_crop_and_resize`);
* ``tf.image.resize``: ``bilinear`` = ``interpolate(mode="bilinear", align_corners=False)``,
  ``nearest`` = ``"nearest-exact"``, ``area`` = ``"area"`` where the sizes divide evenly;
  ``tf.compat.v1.image.resize_bilinear(align_corners=True)`` and ``resize_nearest_neighbor`` (legacy
  ``"nearest"``).

The ops TensorFlow lacks are composed from its own (rows of kind ``"composition"``): GeM, LSE,
SoftPool, bilinear, mixed (``tf.nn.max_pool2d`` + ``avg_pool2d``) and stochastic pooling at
inference, channels first where no pooling kernel is needed, and kornia's blur pools
(``tf.nn.depthwise_conv2d`` with the binomial kernel, after a stride-1 ``tf.nn.max_pool2d`` for
max-blur pooling).

The oracle loads this adapter only when TensorFlow is installed; TensorFlow itself is imported by the
checks' code (``IMPORTS``) and by :func:`version`, so the module imports without it.
"""

from __future__ import annotations

import os

import numpy

from .._geometry import as_int_tuple
from ..cases.case import Case, resize_scales, resize_size, window_of
from ..cases.learned import conv_pads
from ..cases.values import smooth_values
from . import defects as known
from . import tf_compositions as compositions
from .artefacts import (
    GEM_CHAIN_RULE, SOFTMAX_CHAIN_RULE, SOFTPOOL_LIMITS, STOCHASTIC_CHAIN_RULE, not_for_nonfinite_gradients, refuse,
)
from .layouts import crop_boxes_to_rois
from .mapping import Mapping
from .tf_compositions import channels_first, channels_last, taped_source

# set before TensorFlow is first imported: its C++ start-up chatter, info level and below
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["NAME", "MODULES", "IMPORTS", "MAPPINGS", "UNCOVERED", "DEFAULT_CASES", "version"]

DEFAULT_CASES = 20  # random cases per mapping of a default run
NAME = "tensorflow"
MODULES = ("tensorflow",)
IMPORTS = "import tensorflow as tf\nfrom poolref.oracle import layouts"


def version() -> str:
    import tensorflow as tf

    return tf.__version__


# --------------------------------------------------------------------------------------------------
# The native rows' checks: channels last in, GradientTape, channels first out (taped_source;
# the templates and the compositions: poolref.oracle.tf_compositions)
# --------------------------------------------------------------------------------------------------
def _window(case: Case):
    n, kernel, stride, _ = window_of(case)
    return n, list(kernel), list(stride)


def _tf_padding(padding, n):
    """``"SAME"``/``"VALID"``, or TensorFlow's explicit ``[[0, 0], [b, e], .., [0, 0]]`` (NHWC)."""
    if isinstance(padding, str):
        return padding.upper().replace("SAME_UPPER", "SAME")
    if isinstance(padding, int):
        pairs = [(padding, padding)] * n
    else:
        pairs = [p if isinstance(p, tuple) else (p, p) for p in padding]
    if not any(b or e for b, e in pairs):
        return "VALID"
    return [[0, 0]] + [list(p) for p in pairs] + [[0, 0]]


def _pool(function: str):
    def code(case: Case) -> str:
        n, kernel, stride = _window(case)
        padding = _tf_padding(case.kwargs.get("padding", 0), n)
        return taped_source(case, f"{function.format(n=n)}(x_t, ksize={kernel}, strides={stride}, padding={padding!r})")

    return code


def _dilated_pool(pooling_type: str):
    def code(case: Case) -> str:
        n, kernel, stride = _window(case)
        dilation = list(as_int_tuple(case.kwargs.get("dilation", 1), n, "dilation", case.op))
        call = f"tf.nn.pool(x_t, window_shape={kernel}, pooling_type={pooling_type!r}, strides={stride}, padding='VALID', dilations={dilation})"
        return taped_source(case, call)

    return code


def _argmax(include_batch: bool):
    def code(case: Case) -> str:
        n, kernel, stride = _window(case)
        padding = _tf_padding(case.kwargs.get("padding", 0), n)
        call = (f"tf.nn.max_pool_with_argmax(x_t, ksize={kernel}, strides={stride}, padding={padding!r}, "
                f"include_batch_in_index={include_batch})")
        extra = (
            f"y_indices_native = {channels_first('argmax_t.numpy()')}",
            f"y_indices = layouts.tf_argmax_to_plane(y_indices_native, x.shape, include_batch_in_index={include_batch})",
        )
        return taped_source(case, call, outputs="y_t, argmax_t", extra=extra)

    return code


def _fractional(case: Case) -> str:
    # ratio 2 on even sizes: TensorFlow's pooling sequences are 0, 2, 4, .. whatever the seed; the
    # asserts make a change there an error of the check, not a silent mismatch
    call = "tf.nn.fractional_max_pool(x_t, [1.0, 2.0, 2.0, 1.0], pseudo_random=True, overlapping=False, seed=1)"
    extra = (
        "assert (rows_t.numpy() == np.arange(0, x.shape[2] + 1, 2)).all(), rows_t.numpy()",
        "assert (cols_t.numpy() == np.arange(0, x.shape[3] + 1, 2)).all(), cols_t.numpy()",
    )
    return taped_source(case, call, outputs="y_t, rows_t, cols_t", extra=extra)


def _crop_and_resize_case(rng, op, space) -> Case:
    """RoI Align cases that TensorFlow's crop_and_resize samples identically: aligned, one sample per
    bin, every sample inside the image (see :func:`poolref.oracle.layouts.crop_boxes_to_rois`)."""
    N, C, H, W = int(rng.integers(1, 3)), int(rng.integers(1, 4)), *tuple(int(v) for v in rng.integers(2, 8, 2))
    crop, K = tuple(int(v) for v in rng.integers(1, 4, 2)), int(rng.integers(1, 4))
    normalised = rng.uniform(0, 1, size=(K, 4))  # [y1, x1, y2, x2]; y2 < y1 flips the crop
    dtype = numpy.dtype(space["dtypes"][int(rng.integers(len(space["dtypes"])))])
    boxes = crop_boxes_to_rois(normalised, rng.integers(0, N, K), crop, H, W).astype(dtype)
    kwargs = dict(output_size=crop, spatial_scale=1.0, sampling_ratio=1, aligned=True)
    return Case(op, {"x": smooth_values(rng, (N, C, H, W), dtype), "boxes": boxes}, kwargs, positional=("x", "boxes"))


def _crop_and_resize(case: Case) -> str:
    crop = list(as_int_tuple(case.kwargs["output_size"], 2, "output_size", case.op))
    lines = [f"crop_boxes, box_indices = layouts.rois_to_crop_boxes(boxes, {tuple(crop)!r}, x.shape[2], x.shape[3])"]
    call = "tf.image.crop_and_resize(x_t, crop_boxes, box_indices, crop_size=" + repr(crop) + ")"
    return "\n".join(lines) + "\n" + taped_source(case, call)


def _size(case: Case) -> list:
    return list(resize_size(case))


def _resize(case: Case) -> str:
    mode, size = case.kwargs["mode"], _size(case)
    if mode == "bilinear" and case.kwargs.get("align_corners"):
        call = f"tf.compat.v1.image.resize_bilinear(x_t, {size}, align_corners=True)"
    elif mode == "bilinear":
        antialias = bool(case.kwargs.get("antialias"))
        call = f"tf.image.resize(x_t, {size}, method='bilinear', antialias={antialias})"
    elif mode == "bicubic" and case.kwargs.get("align_corners"):
        call = f"tf.compat.v1.image.resize_bicubic(x_t, {size}, align_corners=True)"
    elif mode == "bicubic":
        antialias = bool(case.kwargs.get("antialias"))
        call = f"tf.image.resize(x_t, {size}, method='bicubic', antialias={antialias})"
    elif mode == "nearest-exact":
        call = f"tf.image.resize(x_t, {size}, method='nearest')"
    elif mode == "nearest":
        call = f"tf.compat.v1.image.resize_nearest_neighbor(x_t, {size}, align_corners=False, half_pixel_centers=False)"
    else:  # area: TensorFlow registers no gradient for ResizeArea
        return taped_source(case, f"tf.image.resize(x_t, {size}, method='area')", gradients=False)
    return taped_source(case, call)


#: torch.nn.Conv2d's padding modes that tf.pad has (its modes are CONSTANT, REFLECT and SYMMETRIC:
#: REFLECT is PyTorch's reflect; SYMMETRIC repeats the edge cell, so a pad of at most 1 is PyTorch's
#: replicate, which _conv_express holds it to).
TF_PAD_MODES = {"zeros": "CONSTANT", "reflect": "REFLECT", "replicate": "SYMMETRIC"}


def _conv(case: Case) -> str:
    """``tf.pad`` (zeros or reflect; "same"/"valid" resolved as PyTorch resolves them), then
    ``tf.nn.conv2d`` with ``padding="VALID"``: TensorFlow 2.21's CPU gradient refuses explicit pads with
    groups or dilations ("Gradients for grouped convolutions are not supported on CPU", "do not yet
    support dilation rates larger than 1") and takes both with VALID in float32 (not in float16 or
    float64). The groups are implied by the filter's input depth, C_in / groups, as in PyTorch."""
    kw = case.kwargs
    pads = [[0, 0]] + [list(pair) for pair in conv_pads(case)] + [[0, 0]]
    mode = TF_PAD_MODES[kw.get("padding_mode", "zeros")]
    stride, dilation = list(as_int_tuple(kw["stride"], 2, "stride", "conv2d")), list(as_int_tuple(kw["dilation"], 2, "dilation", "conv2d"))
    return "\n".join([
        f"x_t, filters_t, bias_t = tf.constant({channels_last('x')}), tf.constant(weight.transpose(2, 3, 1, 0)), tf.constant(bias)",
        "with tf.GradientTape() as tape:",
        "    tape.watch([x_t, filters_t, bias_t])",
        f"    padded_t = tf.pad(x_t, {pads!r}, mode={mode!r})",
        f"    y_t = tf.nn.conv2d(padded_t, filters_t, strides={stride}, padding='VALID', dilations={dilation}) + bias_t",
        f"grads = tape.gradient(y_t, [x_t, filters_t, bias_t], output_gradients=tf.constant({channels_last('cotangent')}))",
        f"y = {channels_first('y_t.numpy()')}",
        f"grad_x, grad_weight, grad_bias = {channels_first('grads[0].numpy()')}, grads[1].numpy().transpose(3, 2, 0, 1), grads[2].numpy()",
    ])


def _global(case: Case) -> str:
    n = case.x.ndim - 2
    reduce = "tf.reduce_mean" if case.op == "global_avg_pool" else "tf.reduce_max"
    return taped_source(case, f"{reduce}(x_t, axis={list(range(1, n + 1))}, keepdims=True)")


# --------------------------------------------------------------------------------------------------
# What TensorFlow cannot express, and what poolref cannot model
# --------------------------------------------------------------------------------------------------
def _window_express(explicit_ok: bool):
    def express(case: Case):
        kw = case.kwargs
        if kw.get("ceil_mode"):
            return "TensorFlow has no ceil mode"
        if kw.get("dilation", 1) not in (1, (1,) * (case.x.ndim - 2)):
            return "tf.nn.max_pool/avg_pool have no dilation (tf.nn.pool has, VALID with stride 1 only)"
        padding = kw.get("padding", 0)
        if isinstance(padding, str):
            return "TensorFlow has no SAME_LOWER padding" if padding.lower() == "same_lower" else None
        tf_padding = _tf_padding(padding, case.x.ndim - 2)
        if tf_padding != "VALID":
            if not explicit_ok:
                return "this TensorFlow op takes only SAME or VALID padding"
            _, kernel, _ = _window(case)
            if any(p >= k for pair, k in zip(tf_padding[1:-1], kernel) for p in pair):
                return "TensorFlow requires every explicit pad to be smaller than the window"
        return None

    return express


def _dilated_express(case: Case):
    kw, n = case.kwargs, case.x.ndim - 2
    if kw.get("ceil_mode") or kw.get("padding", 0) not in (0, "valid", (0,) * n):
        return "tf.nn.pool with dilations takes VALID padding only, and has no ceil mode"
    _, _, stride = _window(case)
    if any(s != 1 for s in stride):
        return "tf.nn.pool does not combine strides > 1 with dilations > 1"
    return None


def _resize_express(case: Case):
    if case.x.ndim != 4:
        return "tf.image.resize is 2-D (NHWC)"
    if resize_scales(case) is not None:
        return "tf.image.resize takes an output size, and maps coordinates by in/out, not by a scale factor"
    if case.kwargs["mode"] == "area":
        return "area resizing is its own mapping (tf.image.resize(method='area'))"
    return None


def _area_express(case: Case):
    if case.x.ndim != 4:
        return "tf.image.resize is 2-D (NHWC)"
    if resize_scales(case) is not None:
        return "tf.image.resize takes an output size, not a scale factor"
    if case.kwargs["mode"] != "area":
        return "this mapping is the area mode"
    return None


def _resize_model(case: Case):
    if case.kwargs.get("antialias") and case.kwargs.get("mode") in ("bilinear", "bicubic") and case.dtype != numpy.float32:
        return ("tf.image.resize's antialiased kernels have a gradient for float32 only (ScaleAndTranslateGrad: float16 "
                "and float64 raise InvalidArgumentError)")
    return None


CONV_PADDING_MODES = ("padding_mode circular, and replicate with a pad over 1: tf.pad has no such mode (CONSTANT, "
                      "REFLECT and SYMMETRIC, which mirrors from the edge cell on: replicate only for pads of 0 or 1)")


CONV_GROUPS_DILATION = ("groups or dilation > 1 in float16 and float64: TensorFlow 2.21's CPU gradient has them in "
                        "float32 only (Conv2DBackpropInput: 'Gradients for grouped convolutions are not supported on "
                        "CPU', 'Current CPU implementations do not yet support dilation rates larger than 1')")


def _conv_express(case: Case):
    if case.input_class == "empty" and case.dtype == numpy.float32:
        return CONV_EMPTY
    if case.input_class == "empty" and case.kwargs.get("padding_mode") in ("reflect", "replicate"):
        return REFLECT_EMPTY
    mode = case.kwargs.get("padding_mode", "zeros")
    if mode not in TF_PAD_MODES or (mode == "replicate" and max(p for pair in conv_pads(case) for p in pair) > 1):
        return CONV_PADDING_MODES
    grouped = case.kwargs.get("groups", 1) > 1
    dilated = any(d > 1 for d in as_int_tuple(case.kwargs["dilation"], 2, "dilation", "conv2d"))
    if (grouped or dilated) and case.dtype != numpy.float32:
        return CONV_GROUPS_DILATION
    return None


def _crop_express(case: Case):
    kw = case.kwargs
    if not (kw.get("aligned") and kw.get("sampling_ratio") == 1 and kw.get("spatial_scale") == 1.0 and kw.get("mode", "avg") == "avg"):
        return "crop_and_resize is roi_align(aligned=True, sampling_ratio=1, spatial_scale=1) only"
    return None


def _crop_model(case: Case):
    """Every crop point inside the image, where crop_and_resize and RoI Align sample alike (a NaN or an
    infinity, which the two interpolations treat differently, is TF_CROP_AND_RESIZE_LERP's, modelled)."""
    ph, pw = as_int_tuple(case.kwargs["output_size"], 2, "output_size", case.op)
    H, W = case.x.shape[2:]
    boxes = case.arrays["boxes"].astype(numpy.float64)
    for low, high, c, L in ((1, 3, pw, W), (2, 4, ph, H)):
        step = (boxes[:, high] - boxes[:, low]) / c
        points = boxes[:, low, None] - 0.5 + (numpy.arange(c) + 0.5) * step[:, None]
        if L < 2 or (points < 0).any() or (points > L - 1).any():
            return "a crop point outside the image: " + CROP_OUTSIDE
    return None


FLOATS = ("float64", "float32")
TF_WINDOW = dict(convention="tensorflow", padding=("same", "valid"), ceil_mode=False, dilation=False,
                 count_include_pad=(False,), divisor_override=False, return_indices=False)
CONV_EMPTY = ("tf.nn.conv2d in float32 (oneDNN, TensorFlow's default on x86) returns an empty batch in the input's shape, "
              "channels included: (0, 7, 8, 2) for kernel (3, 3, 2, 3), stride 2, VALID, not (0, 3, 3, 3), so the bias "
              "does not broadcast; float64 and float16 are right, outputs and gradients")
REFLECT_EMPTY = ("tf.pad(mode='REFLECT') refuses an empty batch: MirrorPad wants every pad smaller than its axis, the "
                 "batch axis's 0 included ('paddings must be less than the dimension size: 0, 0 not less than 0'); "
                 "mode='SYMMETRIC' (replicate) runs, but its gradient refuses it ('MirrorPadGrad: Total paddings must be "
                 "less than the input dimension size: 0 was not less than 0')")
ARGMAX_EMPTY = "tf.nn.max_pool_with_argmax refuses an empty batch (InvalidArgumentError: 'tensor_in must not be empty')"
FRACTIONAL_EMPTY = "tf.nn.fractional_max_pool refuses an empty batch ('Pooling ratio is higher than input dimension size')"
CROP_OUTSIDE = "crop_and_resize returns extrapolation_value there, RoI Align interpolates toward the border"
WINDOW_SKIPS = ("ceil mode, SAME_LOWER, dilation: tf.nn.max_pool/avg_pool have none of them (tf.nn.pool has dilation, "
                "with VALID and stride 1 only: its own rows)",)


LOWEST_PADDING = ("-inf with lam > 0: tf.nn.max_pool2d starts from the lowest finite float (its padding reads as it "
                  "too), so a window of only -inf gives -1.8e308 (float64; -3.4e38 in float32) where PyTorch's max, "
                  "which poolref's mixed_pool2d takes, gives -inf")


def _mixed_model(case: Case):
    if case.kwargs["lam"] == 0:
        return None
    if numpy.isneginf(case.x).any():
        return LOWEST_PADDING
    return MIXED_NAN if numpy.isnan(case.x).any() else None


MIXED_NAN = ("NaN with lam > 0: poolref's mixed_pool2d takes PyTorch's max (a NaN wins), tf.nn.max_pool2d ignores NaN")
DEPTHWISE_EMPTY = ("tf.nn.depthwise_conv2d (and tf.nn.conv2d) in float32 (oneDNN, TensorFlow's default on x86) returns "
                   "an empty batch in the input's shape: (0, 4, 7, 1) with a 1 x 1 kernel, stride 2, VALID, gives "
                   "(0, 4, 7, 1), not (0, 2, 4, 1); float64 is right")


def _depthwise_empty(case: Case):
    return DEPTHWISE_EMPTY if case.input_class == "empty" and case.dtype == numpy.float32 else None
MAX_BLUR_RULES = {
    "nan": "NaN: tf.nn.max_pool2d ignores NaN, kornia's max_pool2d (which poolref's max_blur_pool2d follows) propagates it",
    "inf": ("-inf: tf.nn.max_pool2d starts from the lowest finite float, so a window of only -inf gives -1.8e308 "
            "(float64; -3.4e38 in float32) where kornia's max_pool2d gives -inf"),
}


def _max_blur_model(case: Case):
    return refuse(**MAX_BLUR_RULES)(case) or _depthwise_empty(case)


def _soft_pool_model(case: Case):
    if case.input_class == "inf":
        return SOFTPOOL_LIMITS
    return not_for_nonfinite_gradients(SOFTMAX_CHAIN_RULE)(case)


#: Public ops with no TensorFlow function.
UNCOVERED = {
    **{f"lp_pool{n}d": "TensorFlow has no Lp pooling" for n in (1, 2, 3)},
    **{f"max_unpool{n}d": "TensorFlow has no max unpooling" for n in (1, 2, 3)},
    **{f"adaptive_{kind}_pool{n}d": "TensorFlow has no adaptive pooling" for kind in ("avg", "max") for n in (1, 2, 3)},
    "global_lp_pool": "TensorFlow has no Lp pooling",
    "fractional_max_pool3d": "TensorFlow's fractional max pooling is 2-D",
    "roi_pool": "TensorFlow has no RoI pooling",
    "ps_roi_pool": "TensorFlow has no position-sensitive RoI pooling",
    "ps_roi_align": "TensorFlow has no position-sensitive RoI Align",
    "grid_sample": "TensorFlow has no grid sampling (tfa.image.resampler is not part of TensorFlow)",
    "dynopool2d": "TensorFlow has no bilinear sampling at arbitrary points (no grid_sample or map_coordinates; "
                  "tfa.image.resampler is not part of TensorFlow), which DynOPool's query points need",
    "deform_roi_pool": "TensorFlow has no RoI Align with per-bin shifts (crop_and_resize samples one regular grid per box)",
    "deform_conv2d": "TensorFlow has no deformable convolution, and no bilinear sampling at arbitrary points (no "
                     "grid_sample or map_coordinates; tfa.image.resampler is not part of TensorFlow) to compose it from",
    "spatial_pyramid_pool2d": "TensorFlow has no adaptive pooling, which spatial pyramid pooling's adaptive levels are "
                              "(its SPPnet binning, plain max and average pooling, is not composed here)",
}


def _mappings() -> list[Mapping]:
    tf_convention = {"convention": "tensorflow"}
    mappings = []
    for n in (1, 2, 3):
        explicit = n < 3
        dtypes = FLOATS if n < 3 else ("float32",)  # MaxPool3D and AvgPool3D: float32 kernels only on the CPU
        float_skip = () if n < 3 else ("float64: TensorFlow's 3-D pools are float32 only on the CPU",)
        mappings.append(Mapping(
            f"max_pool{n}d", f"tf.nn.max_pool{n}d", _pool("tf.nn.max_pool{n}d"), tf_convention,
            dict(TF_WINDOW, dtypes=dtypes, padding=("same", "valid", "asymmetric") if explicit else ("same", "valid")),
            indices=False, express=_window_express(explicit),
            defects=(known.TF_MAX_POOL_ROUTING,) if n < 3 else (known.TF_MAX_POOL3D_NEAR_TIES,),
            skips=WINDOW_SKIPS + float_skip,
            notes="NaN ignored, the lowest finite value for windows of only -inf or NaN (convention='tensorflow'); "
                  "indices come from max_pool_with_argmax.",
        ))
        mappings.append(Mapping(
            f"avg_pool{n}d", f"tf.nn.avg_pool{n}d", _pool("tf.nn.avg_pool{n}d"), tf_convention,
            dict(TF_WINDOW, dtypes=dtypes), express=_window_express(False), defects=(known.TF_AVG_POOL_SAME_LONG_WINDOW,),
            skips=WINDOW_SKIPS + float_skip + ("explicit padding: tf.nn.avg_pool takes only SAME or VALID",),
            notes="SAME never counts padding in the divisor (convention='tensorflow').",
        ))
    for kind in ("MAX", "AVG"):
        op = "max_pool2d" if kind == "MAX" else "avg_pool2d"
        mappings.append(Mapping(
            op, f"tf.nn.pool(pooling_type={kind!r}, dilations=...)", _dilated_pool(kind), tf_convention,
            dict(TF_WINDOW, dtypes=FLOATS, padding=("valid",), dilation=True, max_stride=1),
            indices=False, express=_dilated_express, defects=(known.TF_MAX_POOL_ROUTING,) if kind == "MAX" else (),
            skips=("SAME, strides > 1: tf.nn.pool refuses them with dilations",), worked=False,
        ))
    for include_batch in (True, False):
        mappings.append(Mapping(
            "max_pool2d", f"tf.nn.max_pool_with_argmax(include_batch_in_index={include_batch})", _argmax(include_batch),
            tf_convention, dict(TF_WINDOW, dtypes=FLOATS, return_indices=True, empty=ARGMAX_EMPTY), express=_window_express(False),
            skips=("explicit padding: max_pool_with_argmax takes SAME or VALID", "empty batches: " + ARGMAX_EMPTY),
            notes="NHWC flat indices, converted exactly to poolref's in-plane layout.",
        ))
    mappings += [
        Mapping("global_avg_pool", "tf.reduce_mean(keepdims=True)", _global, space=dict(dtypes=FLOATS)),
        Mapping("global_max_pool", "tf.reduce_max(keepdims=True)", _global, space=dict(dtypes=FLOATS),
                defects=(known.TF_REDUCE_MAX,)),
        Mapping("fractional_max_pool2d", "tf.nn.fractional_max_pool (ratio 2)", _fractional,
                space=dict(dtypes=FLOATS, ratio_two=True, empty=FRACTIONAL_EMPTY), indices=False, worked=False,
                defects=(known.TF_FRACTIONAL_NONFINITE,),
                skips=("pooling ratios other than 2, overlapping=True: TensorFlow's random interval sequences are "
                       "not PyTorch's fixed-size windows, which poolref models", "empty batches: " + FRACTIONAL_EMPTY)),
        Mapping("roi_align", "tf.image.crop_and_resize", _crop_and_resize, space=dict(dtypes=("float32",), generator=_crop_and_resize_case),
                express=_crop_express, model=_crop_model, defects=(known.TF_CROP_AND_RESIZE_LERP,),
                notes="Boxes converted to pixels; equal to roi_align(aligned=True, sampling_ratio=1) on finite values.",
                skips=("crop points outside the image: " + CROP_OUTSIDE,
                       "float64: crop_and_resize computes in float32")),
        Mapping("interpolate", "tf.image.resize / tf.compat.v1.image.resize_*", _resize, tf_convention,
                space=dict(dtypes=("float32",), ndims=(2,), modes=("nearest", "nearest-exact", "linear", "bicubic"), antialias=(False, True)),
                express=_resize_express, model=_resize_model, skips=("lanczos, gaussian, mitchellcubic: poolref has no such mode",),
                notes="convention='tensorflow': 'nearest-exact' is tf.image.resize's nearest, 'nearest' the legacy "
                      "resize_nearest_neighbor, align_corners=True the v1 resize_bilinear / resize_bicubic; bicubic is "
                      "ResizeBicubic (Keys a=-0.5, taps off the image weighted 0 and renormalized, fractions on a 1/1024 "
                      "table), antialiased ScaleAndTranslate's keyscubic; bilinear and bicubic return float32 "
                      "whatever the input: checked in float32."),
        Mapping("interpolate", "tf.image.resize(method='area')", _resize, tf_convention,
                space=dict(dtypes=FLOATS, ndims=(2,), modes=("area",)), gradients=False,
                express=_area_express, worked=False,
                notes="Any sizes: TensorFlow's area resize weighs each pixel by the fraction of it a bin covers "
                      "(convention='tensorflow').",
                skips=("gradients: TensorFlow registers none for ResizeArea",)),
        Mapping("conv2d", "tf.pad + tf.nn.conv2d (+ bias)", _conv,
                space=dict(dtypes=FLOATS, padding_modes=("zeros", "reflect", "replicate")), express=_conv_express,
                defects=(known.TF_CONV_SINGLE_COLUMN,),
                notes="Padded by tf.pad (CONSTANT; REFLECT for padding_mode='reflect'; SYMMETRIC, the edge cell once, for "
                      "'replicate' with pads of at most 1), then conv2d with VALID "
                      "padding, which has CPU gradients for groups and dilations in float32 (explicit pads have neither).",
                skips=("empty batches in float32: " + CONV_EMPTY, "empty batches, padding_mode reflect or replicate: " + REFLECT_EMPTY,
                       CONV_PADDING_MODES, CONV_GROUPS_DILATION)),
    ]
    composed = dict(kind="composition", space=dict(dtypes=FLOATS))
    mappings += [
        Mapping("stochastic_pool2d", "strided taps: sum(a^2) / sum(a) per window (training=False)", compositions.stochastic_expectation,
                model=not_for_nonfinite_gradients(STOCHASTIC_CHAIN_RULE),
                skips=("training=True: the samples come from poolref's random generator",
                       "non-finite upstream gradients: " + STOCHASTIC_CHAIN_RULE), **composed),
        Mapping("mixed_pool2d", "lam * tf.nn.max_pool2d + (1 - lam) * tf.nn.avg_pool2d(tf.pad(x))", compositions.mixed, model=_mixed_model,
                skips=(MIXED_NAN, LOWEST_PADDING),
                **composed),
        Mapping("gem_pool", "tf.maximum, ** p, tf.reduce_mean, the maximum factored out", compositions.gem,
                model=not_for_nonfinite_gradients(GEM_CHAIN_RULE), skips=("non-finite upstream gradients: " + GEM_CHAIN_RULE,),
                **composed),
        Mapping("soft_pool2d", "strided taps + tf.nn.softmax", compositions.soft_pool, model=_soft_pool_model,
                skips=("non-finite upstream gradients: " + SOFTMAX_CHAIN_RULE, "infinities: " + SOFTPOOL_LIMITS), **composed),
        Mapping("lse_pool", "max + log1p(mean(expm1(r (x - max)))) / r", compositions.lse, **composed),
        Mapping("blur_pool2d", "tf.pad + tf.nn.depthwise_conv2d with the binomial kernel (kornia's blur_pool2d)", compositions.blur_pool,
                model=_depthwise_empty, skips=("empty batches in float32: " + DEPTHWISE_EMPTY,), **composed),
        Mapping("max_blur_pool2d", "tf.nn.max_pool2d(stride 1) + tf.pad + tf.nn.depthwise_conv2d (kornia's max_blur_pool2d)",
                compositions.blur_pool, model=_max_blur_model,
                skips=tuple(MAX_BLUR_RULES.values()) + ("empty batches in float32: " + DEPTHWISE_EMPTY,), **composed),
        Mapping("bilinear_pool", "tf.einsum, sign * sqrt(|B| + eps), / max(||s||, eps)", compositions.bilinear, **composed),
    ]
    return mappings


MAPPINGS = _mappings()
