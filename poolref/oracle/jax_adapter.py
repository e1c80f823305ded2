r"""JAX: ``lax.reduce_window`` pooling (and Flax's pooling layers when Flax is installed),
``jax.image.resize``, ``jax.scipy.ndimage.map_coordinates`` and ``lax.conv_general_dilated``.

JAX has no pooling functions of its own: pooling is written with ``lax.reduce_window`` (``lax.max``
from ``-inf``; ``lax.add`` divided by the window size, or by a window sum of ones to leave padding
out, which is exactly what ``flax.linen.avg_pool`` does). Every check runs in float64 inside
``jax.enable_x64(True)`` (a context manager: the process's JAX setting is left alone) and takes its
gradients with ``jax.vjp``. What poolref's keywords model (each checked here):

* ``convention="onnx"`` for windowed pooling: explicit ``(low, high)`` pads per axis, any size, or
  ``"SAME"`` (= ``padding="same"``, the odd cell at the end, never negative) and ``"VALID"``;
  window dilation; an average counts padding exactly when the idiom divides by the window size
  (``count_include_pad``); no ceil mode;
* ``jax.image.resize``: ``"linear"`` with ``antialias=False`` = the linear modes with
  ``align_corners=False``, ``"nearest"`` = ``"nearest-exact"``; with ``antialias=True`` (JAX's
  default) only when upsampling, since antialiasing widens the kernel when downsampling;
* ``map_coordinates`` (order 1 or 0) at grid_sample's source coordinates = ``grid_sample`` with
  ``padding_mode`` zeros (``mode="constant"``), border (``"nearest"``) and reflection (``"mirror"``
  with ``align_corners=True``, ``"reflect"`` without).

The ops JAX lacks are composed from its own (rows of kind ``"composition"``, with fewer cases in a
default run, :data:`COMPOSITION_CASES`): GeM, LSE, SoftPool, bilinear, mixed and stochastic
pooling at inference (``reduce_window`` and strided slices), DynOPool (``map_coordinates`` at
DynOPool's query points, docs/dynopool.rst), and kornia's blur pools (``lax.conv_general_dilated`` on each channel,
after a stride-1 ``reduce_window`` max for max-blur pooling).

The oracle loads this adapter only when JAX is installed; JAX itself is imported by the checks' code
(``IMPORTS``) and by :func:`version`, so the module imports without it.
"""

from __future__ import annotations

import importlib.util
import math

import numpy

from .._geometry import as_int_tuple
from ..cases.case import Case, resize_scales, resize_size, window_of
from ..cases.learned import conv_pads
from . import defects as known
from . import jax_compositions as compositions
from .artefacts import (
    EXPM1_CHAIN_RULE, GEM_CHAIN_RULE, SOFTMAX_CHAIN_RULE, SOFTPOOL_LIMITS, STOCHASTIC_CHAIN_RULE, not_for_nonfinite_gradients,
)
from .jax_compositions import vjp_source
from .mapping import Mapping

__all__ = ["NAME", "MODULES", "IMPORTS", "MAPPINGS", "UNCOVERED", "DEFAULT_CASES", "version"]

NAME = "jax"
MODULES = ("jax",)
HAS_FLAX = importlib.util.find_spec("flax") is not None
#: Random cases per mapping of a default run: every case compiles its own XLA program (0.1-0.5 s on
#: a CPU core), so twenty would take minutes.
DEFAULT_CASES = 10
IMPORTS = "\n".join([
    "import jax",
    "import jax.numpy as jnp",
    "from jax import lax",
    "from jax.scipy.ndimage import map_coordinates",
] + (["import flax.linen"] if HAS_FLAX else []))


def version() -> str:
    import jax

    text = jax.__version__
    if HAS_FLAX:
        import flax

        text += f" (flax {flax.__version__})"
    return text


# --------------------------------------------------------------------------------------------------
# The native rows' checks: jax.vjp in float64 (vjp_source; the compositions: poolref.oracle.jax_compositions)
# --------------------------------------------------------------------------------------------------
def _window(case: Case):
    return tuple(window_of(case))  # (n, kernel, stride, dilation)


def _jax_padding(padding, n):
    """``"SAME"``/``"VALID"``, or ``((low, high), ..)`` per spatial axis."""
    if isinstance(padding, str):
        return padding.upper().replace("SAME_UPPER", "SAME")
    if isinstance(padding, int):
        return ((padding, padding),) * n
    return tuple(p if isinstance(p, tuple) else (p, p) for p in padding)


def _reduce_window(case: Case, kind: str) -> str:
    """PyTorch-layout (N, C, *spatial) or unbatched (C, *spatial) pooling with lax.reduce_window: the
    leading axes get a window of 1 and no padding."""
    n, kernel, stride, dilation = _window(case)
    lead = case.x.ndim - n
    padding = _jax_padding(case.kwargs.get("padding", 0), n)
    full_padding = padding if isinstance(padding, str) else ((0, 0),) * lead + padding
    ones = (1,) * lead
    shape = dict(window_dimensions=ones + kernel, window_strides=ones + stride, padding=full_padding,
                 window_dilation=ones + dilation)
    arguments = ", ".join(f"{k}={v!r}" for k, v in shape.items())
    if kind == "max":
        return vjp_source(case, f"lambda x: lax.reduce_window(x, -jnp.inf, lax.max, {arguments})")
    window_sum = f"lax.reduce_window(x, 0.0, lax.add, {arguments})"
    if case.kwargs["count_include_pad"]:
        divisor = str(math.prod(kernel))  # every tap counts, padding included
    else:
        divisor = f"lax.reduce_window(jnp.ones_like(x), 0.0, lax.add, {arguments})"  # the taps inside the input
    return vjp_source(case, f"lambda x: {window_sum} / {divisor}")


def _flax_pool(case: Case, kind: str) -> str:
    """flax.linen.max_pool / avg_pool, channels last."""
    n, kernel, stride, _ = _window(case)
    padding = _jax_padding(case.kwargs.get("padding", 0), n)
    if kind == "max":
        call = f"flax.linen.max_pool(jnp.moveaxis(x, 1, -1), {kernel!r}, strides={stride!r}, padding={padding!r})"
    else:
        call = (f"flax.linen.avg_pool(jnp.moveaxis(x, 1, -1), {kernel!r}, strides={stride!r}, padding={padding!r}, "
                f"count_include_pad={bool(case.kwargs['count_include_pad'])})")
    return vjp_source(case, f"lambda x: jnp.moveaxis({call}, -1, 1)")


def _global(case: Case) -> str:
    axes = tuple(range(2, case.x.ndim))
    reduce = "jnp.mean" if case.op == "global_avg_pool" else "jnp.max"
    return vjp_source(case, f"lambda x: {reduce}(x, axis={axes!r}, keepdims=True)")


RESIZE_METHODS = {"nearest-exact": "nearest", "linear": "linear", "bilinear": "linear", "trilinear": "linear", "bicubic": "cubic",
                  "area": "area"}


def _resize(case: Case) -> str:
    """jax.image.resize; ``antialias`` as the case says it (JAX's default, True, where it says None)."""
    size = resize_size(case)
    method = RESIZE_METHODS[case.kwargs["mode"]]
    antialias = case.kwargs.get("antialias")
    antialias = True if antialias is None else bool(antialias)
    shape = tuple(case.x.shape[:2]) + size
    return vjp_source(case, f"lambda x: jax.image.resize(x, {shape!r}, method={method!r}, antialias={antialias})")


MAP_MODES = {  # (padding_mode, align_corners) -> map_coordinates mode
    ("zeros", True): "constant", ("zeros", False): "constant",
    ("border", True): "nearest", ("border", False): "nearest",
    ("reflection", True): "mirror", ("reflection", False): "reflect",
}


def _map_coordinates(case: Case) -> str:
    kw = case.kwargs
    order = 1 if kw["mode"] == "bilinear" else 0
    mode = MAP_MODES[kw["padding_mode"], bool(kw["align_corners"])]
    if kw["align_corners"]:  # grid_sample's source coordinates: (g + 1)/2 * (L - 1), or ((g + 1)*L - 1)/2
        rows, cols = "(grid[..., 1] + 1) / 2 * (H - 1)", "(grid[..., 0] + 1) / 2 * (W - 1)"
    else:
        rows, cols = "((grid[..., 1] + 1) * H - 1) / 2", "((grid[..., 0] + 1) * W - 1) / 2"
    lines = [
        "def sample(image, grid):  # image (H, W), grid (H_out, W_out, 2) holding (x, y)",
        "    H, W = image.shape",
        f"    rows, cols = {rows}, {cols}",
        f"    return map_coordinates(image, [rows, cols], order={order}, mode={mode!r}, cval=0.0)",
        "",
        "over_channels = jax.vmap(sample, in_axes=(0, None))  # one grid for every channel of an image",
        "over_batch = jax.vmap(over_channels, in_axes=(0, 0))",
    ]
    function = "over_batch" if "grid" in case.grad_inputs else "lambda x: over_batch(x, jnp.asarray(grid))"
    return "\n".join(lines) + "\n" + vjp_source(case, function)


def _conv(case: Case) -> str:
    """``lax.conv_general_dilated`` with explicit ``(low, high)`` pads ("same"/"valid" resolved as
    PyTorch resolves them) and the groups as ``feature_group_count``."""
    kw = case.kwargs
    stride = as_int_tuple(kw["stride"], 2, "stride", "conv2d")
    padding = conv_pads(case)
    dilation = as_int_tuple(kw["dilation"], 2, "dilation", "conv2d")
    call = (f"lambda x, weight, bias: lax.conv_general_dilated(x, weight, {stride!r}, {padding!r}, rhs_dilation={dilation!r}, "
            f"dimension_numbers=('NCHW', 'OIHW', 'NCHW'), feature_group_count={kw.get('groups', 1)}) + bias[None, :, None, None]")
    return vjp_source(case, call)


# --------------------------------------------------------------------------------------------------
# What JAX cannot express, and what poolref cannot model
# --------------------------------------------------------------------------------------------------
def _window_express(case: Case):
    if case.kwargs.get("ceil_mode"):
        return "lax.reduce_window has no ceil mode"
    if case.kwargs.get("divisor_override") is not None:
        return "no divisor_override"
    if _aborts(case):
        return ("a window of one cell with unit strides and a negative pad: XLA aborts the process (its algebraic "
                "simplifier's check fails, forward included, max and sum alike) where no pad is positive and the output "
                "is not empty; with a positive pad too, or an empty output, it runs (refused all the same)")
    return None


def _aborts(case: Case) -> bool:
    n, kernel, stride, _ = _window(case)
    padding = case.kwargs.get("padding", 0)
    negative = isinstance(padding, tuple) and any(b < 0 or e < 0 for b, e in _jax_padding(padding, n))
    return negative and all(k == 1 for k in kernel) and all(s == 1 for s in stride)


def _max_express(case: Case):
    """reduce_window's max: jax.vjp has no gradient for window dilation (select_and_gather:
    NotImplementedError) or a negative pad (TypeError from a slice); an empty output has one (zeros)."""
    reason = _window_express(case)
    if reason:
        return reason
    n = case.x.ndim - (2 if case.batched else 1)
    if case.kwargs.get("dilation", 1) not in (1, (1,) * n):
        return "JAX has no gradient for a dilated max reduce_window (select_and_gather's VJP: NotImplementedError)"
    padding = case.kwargs.get("padding", 0)
    if isinstance(padding, tuple) and any(b < 0 or e < 0 for b, e in _jax_padding(padding, n)):
        return "JAX has no gradient for a max reduce_window with a negative pad (TypeError)"
    return None


def _flax_express(case: Case):
    reason = _window_express(case)
    n = case.x.ndim - (2 if case.batched else 1)
    if reason is None and case.kwargs.get("dilation", 1) not in (1, (1,) * n):
        return "flax.linen pooling has no dilation"
    return reason


def _resize_express(case: Case):
    if resize_scales(case) is not None:
        return ("jax.image.resize takes an output shape, and maps coordinates by in/out, not by a scale factor "
                "(jax.image.scale_and_translate takes one; not mapped here)")
    return None


JAX_WINDOW = dict(convention="jax", padding=("none", "asymmetric", "cropping", "same", "same_lower", "valid"),
                  ceil_mode=False, dilation=True, divisor_override=False, return_indices=False, unbatched=True)
FLOATS = ("float64", "float32")


MAP_READS = ("at a clamped coordinate (border and reflection padding) map_coordinates reads other neighbours than "
             "grid_sample, which PyTorch and poolref read and weigh (0 * inf = NaN): a NaN or an infinity there differs")


MAP_GRID_GRADIENT = ("an infinite upstream gradient: map_coordinates' gradient to the coordinates subtracts the two "
                     "weighted neighbours after multiplying them by it (inf - inf = NaN), grid_sample's multiplies "
                     "their difference (+-inf)")


def _map_coordinates_model(case: Case):
    if case.input_class in ("nan", "inf") and case.kwargs["padding_mode"] != "zeros":
        return MAP_READS
    if case.input_class == "nonfinite_gradient" and "grid" in case.grad_inputs:
        return MAP_GRID_GRADIENT
    return None


def _soft_pool_model(case: Case):
    if case.input_class == "inf":
        return SOFTPOOL_LIMITS
    return not_for_nonfinite_gradients(SOFTMAX_CHAIN_RULE)(case)


def _dynopool_model(case: Case):
    if case.input_class in ("nan", "inf", "nonfinite_gradient"):
        return DYNOPOOL_BORDER
    return None


CONV_PADDING_GRADIENT = ("non-finite upstream gradients with padding in float32: JAX's float64 weight gradient leaves out the "
                         "zero padding (JAX_CONV_PADDING_GRADIENT, modelled), PyTorch's float64 (which poolref follows) "
                         "multiplies its 0 (0 * inf = NaN); in float32 XLA's kernel decides: it leaves the "
                         "padding out in some cases and multiplies it in others (of 60 random cases without groups, 7 "
                         "matched only the model without padding, 20 only poolref; float64: 19 of 40 only the model, none "
                         "only poolref); with groups, JAX_GROUPED_NONFINITE_GRADIENT's spread comes on top")


CONV_PADDING_MODES = "lax.conv_general_dilated pads with zeros only (no padding_mode)"


def _conv_express(case: Case):
    return CONV_PADDING_MODES if case.kwargs.get("padding_mode", "zeros") != "zeros" else None


def _conv_model(case: Case):
    padded = any(p for pair in conv_pads(case) for p in pair)
    if case.input_class == "nonfinite_gradient" and padded and case.dtype != numpy.float64:  # float64: modelled
        return CONV_PADDING_GRADIENT
    return None


DYNOPOOL_BORDER = ("NaN and infinities (in x or the upstream gradient): map_coordinates (mode='nearest') reads the pixel "
                   "past a clamped or integer coordinate with weight 0 and multiplies it (0 * inf = NaN); DynOPool "
                   "reads only the pixels it weighs (docs/dynopool.rst), so the two differ there")
MINUS_INF_PLANE = ("a plane of only -inf: its gradient is the softmax 0 / 0, NaN (torch.logsumexp's rule, which poolref "
                   "models); JAX's derivative of the composition (through log1p of a mean of -1s) gives NaN too where the "
                   "plane has 1, 2, 4 or 8 cells, but +-0 where it has 3, 5-7 or 9-12 (float32 and float64)")


def _lse_model(case: Case):
    if case.x.size and numpy.isneginf(case.x).all(axis=compositions.spatial_axes(case)).any():
        return MINUS_INF_PLANE
    return not_for_nonfinite_gradients(EXPM1_CHAIN_RULE)(case)


#: How many random cases the compositions get in a default run (each compiles its own program).
COMPOSITION_CASES = 6
#: flax.linen's pooling is reduce_window with padding handed through: fewer cases than reduce_window's own
FLAX_CASES = 8


#: Public ops with no JAX function or lax composition here.
UNCOVERED = {
    **{f"lp_pool{n}d": "JAX has no Lp pooling" for n in (1, 2, 3)},
    **{f"max_unpool{n}d": "JAX has no max unpooling" for n in (1, 2, 3)},
    **{f"adaptive_{kind}_pool{n}d": "JAX has no adaptive pooling" for kind in ("avg", "max") for n in (1, 2, 3)},
    "global_lp_pool": "JAX has no Lp pooling",
    "fractional_max_pool2d": "JAX has no fractional max pooling",
    "fractional_max_pool3d": "JAX has no fractional max pooling",
    "roi_pool": "JAX has no RoI pooling",
    "roi_align": "JAX has no RoI Align",
    "ps_roi_pool": "JAX has no position-sensitive RoI pooling",
    "ps_roi_align": "JAX has no position-sensitive RoI Align",
    "deform_roi_pool": "JAX has no RoI Align, which deformable RoI pooling shifts bin by bin",
    "deform_conv2d": "JAX has no deformable convolution (jax.scipy.ndimage.map_coordinates samples bilinearly, but "
                     "no composition of it is written here)",
    "spatial_pyramid_pool2d": "JAX has no adaptive pooling, which spatial pyramid pooling's adaptive levels are "
                              "(its SPPnet binning, plain max and average pooling, is not composed here)",
}


def _mappings() -> list[Mapping]:
    jax_convention = {"convention": "jax"}
    mappings = []
    for n in (1, 2, 3):
        mappings.append(Mapping(
            f"max_pool{n}d", "jax.lax.reduce_window(lax.max, -inf)", lambda case: _reduce_window(case, "max"),
            jax_convention, dict(JAX_WINDOW, dtypes=FLOATS), indices=False, express=_max_express,
            notes="convention='jax': the values are the IEEE maximum (NaN propagates, +0 above -0), the gradient goes "
                  "where select_and_scatter_add sends it (docs/conventions.rst).",
            skips=("ceil mode: reduce_window has none",
                   "dilation, negative pads: JAX has no gradient of a max reduce_window there"),
        ))
        mappings.append(Mapping(
            f"avg_pool{n}d", "jax.lax.reduce_window(lax.add) / count", lambda case: _reduce_window(case, "avg"),
            jax_convention, dict(JAX_WINDOW, dtypes=FLOATS), express=_window_express, defects=(known.JAX_REDUCE_WINDOW_LENGTH_ONE,),
            notes="Divided by the window size (padding counted) or by a window sum of ones (not counted), as "
                  "flax.linen.avg_pool does; windows wholly in padding and negative pads included (convention='jax').",
            skips=("ceil mode, divisor_override",),
        ))
        if HAS_FLAX:
            flax_space = dict(JAX_WINDOW, dtypes=FLOATS, dilation=False, padding=("none", "asymmetric", "same", "valid"),
                              unbatched=False)
            mappings.append(Mapping(
                f"max_pool{n}d", "flax.linen.max_pool", lambda case: _flax_pool(case, "max"), jax_convention, flax_space,
                indices=False, express=_max_express, cases=FLAX_CASES,
                skips=("dilation: flax pooling has none",),
            ))
            mappings.append(Mapping(
                f"avg_pool{n}d", "flax.linen.avg_pool", lambda case: _flax_pool(case, "avg"), jax_convention, flax_space,
                express=_flax_express, cases=FLAX_CASES, skips=("dilation: flax pooling has none",),
            ))
    mappings += [
        Mapping("global_avg_pool", "jnp.mean(keepdims=True)", _global, space=dict(dtypes=FLOATS)),
        Mapping("global_max_pool", "jnp.max(keepdims=True)", _global, space=dict(dtypes=FLOATS), defects=(known.JAX_REDUCE_MAX,)),
        Mapping("interpolate", "jax.image.resize", _resize, {"convention": "jax"},
                space=dict(dtypes=FLOATS, antialias=(None, False, True)), express=_resize_express,
                notes="convention='jax': dense weights per axis (a NaN reaches its whole line), antialiased by default "
                      "(antialias=None), 'nearest-exact' is its nearest, 'bicubic' its 'cubic' (Keys a=-0.5).",
                skips=("'nearest' (legacy), align_corners=True: jax.image.resize has neither",)),
        Mapping("grid_sample", "jax.scipy.ndimage.map_coordinates", _map_coordinates, space=dict(dtypes=FLOATS),
                model=_map_coordinates_model, skips=("NaN and infinities with border or reflection padding: " + MAP_READS,
                                                     MAP_GRID_GRADIENT),
                notes="At grid_sample's source coordinates; padding zeros/border/reflection = constant/nearest/mirror or reflect."),
        Mapping("conv2d", "jax.lax.conv_general_dilated (+ bias)", _conv, space=dict(dtypes=FLOATS, padding_modes=("zeros",)),
                defects=(known.JAX_CONV_ABORT, known.JAX_DEPTHWISE_FLOAT64, known.JAX_GROUPED_NONFINITE_GRADIENT,
                         known.JAX_CONV_PADDING_GRADIENT), express=_conv_express, model=_conv_model,
                notes="groups as feature_group_count; padding='same'/'valid' as explicit pads.",
                skips=(CONV_PADDING_GRADIENT, "padding_mode reflect, replicate, circular: " + CONV_PADDING_MODES)),
    ]
    composed = dict(kind="composition", cases=COMPOSITION_CASES, space=dict(dtypes=FLOATS))
    mappings += [
        Mapping("stochastic_pool2d", "strided taps: sum(a^2) / sum(a) per window (training=False)", compositions.stochastic_expectation,
                model=not_for_nonfinite_gradients(STOCHASTIC_CHAIN_RULE),
                skips=("training=True: the samples come from poolref's random generator",
                       "non-finite upstream gradients: " + STOCHASTIC_CHAIN_RULE), **composed),
        Mapping("mixed_pool2d", "lam * reduce_window(max) + (1 - lam) * reduce_window(add) / k", compositions.mixed,
                defects=(known.JAX_MIXED_POOL_MAX_ROUTING,), **composed),
        Mapping("gem_pool", "jnp.maximum, ** p, jnp.mean, the maximum factored out", compositions.gem,
                model=not_for_nonfinite_gradients(GEM_CHAIN_RULE), skips=("non-finite upstream gradients: " + GEM_CHAIN_RULE,),
                **composed),
        Mapping("soft_pool2d", "strided taps + jax.nn.softmax", compositions.soft_pool, model=_soft_pool_model,
                skips=("non-finite upstream gradients: " + SOFTMAX_CHAIN_RULE, "infinities: " + SOFTPOOL_LIMITS), **composed),
        Mapping("lse_pool", "max + log1p(mean(expm1(r (x - max)))) / r", compositions.lse, model=_lse_model,
                skips=("non-finite upstream gradients: " + EXPM1_CHAIN_RULE, MINUS_INF_PLANE), **composed),
        Mapping("bilinear_pool", "jnp.einsum, sign * sqrt(|B| + eps), / max(||s||, eps)", compositions.bilinear, **composed),
        Mapping("blur_pool2d", "lax.conv_general_dilated per channel, binomial kernel (kornia's blur_pool2d)",
                compositions.blur_pool, **dict(composed, space=dict(dtypes=FLOATS, unbatched=True))),
        Mapping("max_blur_pool2d", "reduce_window(lax.max, stride 1) + conv_general_dilated per channel (kornia's max_blur_pool2d)",
                compositions.blur_pool, defects=(known.JAX_MAX_BLUR_ROUTING,), **dict(composed, space=dict(dtypes=FLOATS, unbatched=True))),
        Mapping("dynopool2d", "map_coordinates(order=1, mode='nearest') at DynOPool's query points (docs/dynopool.rst)", compositions.dynopool,
                model=_dynopool_model, skips=(DYNOPOOL_BORDER,), **composed,
                notes="The query points are computed as docs/dynopool.rst writes them; alpha's gradient is the straight-through one."),
    ]
    return mappings


MAPPINGS = _mappings()
