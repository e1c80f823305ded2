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

The oracle loads this adapter only when JAX is installed; JAX itself is imported by the checks' code
(``IMPORTS``) and by :func:`version`, so the module imports without it.
"""

from __future__ import annotations

import importlib.util
import math

import numpy

from .._geometry import as_int_tuple
from .case import Case, resize_scales, resize_size, window_of
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
# Source code templates: jax.vjp in float64
# --------------------------------------------------------------------------------------------------
def _vjp(case: Case, function: str, gradients: bool = True) -> str:
    """``function`` is a lambda of the differentiable inputs; run it under jax.vjp in float64."""
    names = case.grad_inputs
    arrays = ", ".join(f"jnp.asarray({name})" for name in names)
    if not gradients:
        return "\n".join(["with jax.enable_x64(True):", f"    y = np.asarray(({function})({arrays}))"])
    grads = ", ".join(f"grad_{name}" for name in names)
    return "\n".join([
        "@jax.jit  # one compiled program for the forward and the backward",
        "def forward_and_backward(primals, cotangent):",
        f"    y, pullback = jax.vjp({function}, *primals)",
        "    return y, pullback(cotangent.astype(y.dtype))",
        "",
        "with jax.enable_x64(True):",
        f"    y_j, grads_j = forward_and_backward(({arrays},), jnp.asarray(cotangent))",
        f"    {grads}, = (np.asarray(g) for g in grads_j)",
        "    y = np.asarray(y_j)",
    ])


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
    """PyTorch-layout (N, C, *spatial) pooling with lax.reduce_window: the batch and channel axes get a
    window of 1 and no padding."""
    n, kernel, stride, dilation = _window(case)
    padding = _jax_padding(case.kwargs.get("padding", 0), n)
    full_padding = padding if isinstance(padding, str) else ((0, 0), (0, 0)) + padding
    shape = dict(window_dimensions=(1, 1) + kernel, window_strides=(1, 1) + stride, padding=full_padding,
                 window_dilation=(1, 1) + dilation)
    arguments = ", ".join(f"{k}={v!r}" for k, v in shape.items())
    if kind == "max":
        return _vjp(case, f"lambda x: lax.reduce_window(x, -jnp.inf, lax.max, {arguments})")
    window_sum = f"lax.reduce_window(x, 0.0, lax.add, {arguments})"
    if case.kwargs["count_include_pad"]:
        divisor = str(math.prod(kernel))  # every tap counts, padding included
    else:
        divisor = f"lax.reduce_window(jnp.ones_like(x), 0.0, lax.add, {arguments})"  # the taps inside the input
    return _vjp(case, f"lambda x: {window_sum} / {divisor}")


def _flax_pool(case: Case, kind: str) -> str:
    """flax.linen.max_pool / avg_pool, channels last."""
    n, kernel, stride, _ = _window(case)
    padding = _jax_padding(case.kwargs.get("padding", 0), n)
    if kind == "max":
        call = f"flax.linen.max_pool(jnp.moveaxis(x, 1, -1), {kernel!r}, strides={stride!r}, padding={padding!r})"
    else:
        call = (f"flax.linen.avg_pool(jnp.moveaxis(x, 1, -1), {kernel!r}, strides={stride!r}, padding={padding!r}, "
                f"count_include_pad={bool(case.kwargs['count_include_pad'])})")
    return _vjp(case, f"lambda x: jnp.moveaxis({call}, -1, 1)")


def _global(case: Case) -> str:
    axes = tuple(range(2, case.x.ndim))
    reduce = "jnp.mean" if case.op == "global_avg_pool" else "jnp.max"
    return _vjp(case, f"lambda x: {reduce}(x, axis={axes!r}, keepdims=True)")


def _resize(antialias: bool):
    def code(case: Case) -> str:
        n = case.x.ndim - 2
        size = resize_size(case)
        method = "nearest" if case.kwargs["mode"] == "nearest-exact" else "linear"
        shape = tuple(case.x.shape[:2]) + size
        return _vjp(case, f"lambda x: jax.image.resize(x, {shape!r}, method={method!r}, antialias={antialias})")

    return code


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
    return "\n".join(lines) + "\n" + _vjp(case, function)


def _conv(case: Case) -> str:
    kw = case.kwargs
    stride = as_int_tuple(kw["stride"], 2, "stride", "conv2d")
    padding = tuple((p, p) for p in as_int_tuple(kw["padding"], 2, "padding", "conv2d"))
    dilation = as_int_tuple(kw["dilation"], 2, "dilation", "conv2d")
    call = (f"lambda x, weight, bias: lax.conv_general_dilated(x, weight, {stride!r}, {padding!r}, rhs_dilation={dilation!r}, "
            "dimension_numbers=('NCHW', 'OIHW', 'NCHW')) + bias[None, :, None, None]")
    return _vjp(case, call)


# --------------------------------------------------------------------------------------------------
# What JAX cannot express, and what poolref cannot model
# --------------------------------------------------------------------------------------------------
def _window_express(case: Case):
    if case.kwargs.get("ceil_mode"):
        return "lax.reduce_window has no ceil mode"
    padding = case.kwargs.get("padding", 0)
    if isinstance(padding, str) and padding.lower() == "same_lower":
        return "JAX's SAME puts the odd cell at the end only (no SAME_LOWER)"
    if case.kwargs.get("divisor_override") is not None:
        return "no divisor_override"
    return None


def _max_express(case: Case):
    reason = _window_express(case)
    if reason is None and case.kwargs.get("dilation", 1) not in (1, (1,) * (case.x.ndim - 2)):
        return "JAX has no gradient for a dilated max reduce_window (select_and_gather's VJP: NotImplementedError)"
    return reason


def _flax_express(case: Case):
    reason = _window_express(case)
    if reason is None and case.kwargs.get("dilation", 1) not in (1, (1,) * (case.x.ndim - 2)):
        return "flax.linen pooling has no dilation"
    return reason


NAN_REASON = ("NaN: the values propagate NaN, but the gradient of a reduce_window max (select_and_scatter_add, "
              "which keeps its pick while pick >= next) moves past every NaN, since a comparison with NaN is "
              "false, and lands on a finite element; poolref models PyTorch's rule (the last NaN)")


def _no_nan(case: Case):
    return NAN_REASON if numpy.isnan(case.x).any() else None


def _resize_express(case: Case):
    if resize_scales(case) is not None:
        return "jax.image.resize takes an output shape, and maps coordinates by in/out, not by a scale factor"
    if case.kwargs["mode"] in ("area", "nearest"):
        return f"jax.image.resize has no {case.kwargs['mode']!r} mode (its nearest is half-pixel: 'nearest-exact')"
    if case.kwargs.get("align_corners"):
        return "jax.image.resize has no align_corners"
    return None


def _antialias_model(case: Case):
    size = resize_size(case)
    if any(O < L for L, O in zip(case.x.shape[2:], size)):
        return "antialias=True widens the kernel when downsampling; poolref has no antialiased resize"
    return None


JAX_WINDOW = dict(convention="onnx", padding=("none", "asymmetric", "same", "valid"), ceil_mode=False,
                  dilation=True, divisor_override=False)
FLOATS = ("float64", "float32")


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
}


def _mappings() -> list[Mapping]:
    onnx_convention = {"convention": "onnx"}
    mappings = []
    for n in (1, 2, 3):
        mappings.append(Mapping(
            f"max_pool{n}d", "jax.lax.reduce_window(lax.max, -inf)", lambda case: _reduce_window(case, "max"),
            onnx_convention, dict(JAX_WINDOW, dtypes=FLOATS), indices=False, express=_max_express, model=_no_nan,
            skips=("ceil mode, SAME_LOWER: reduce_window has neither", "NaN inputs: " + NAN_REASON,
                   "dilation: JAX has no gradient for a dilated max reduce_window"),
        ))
        mappings.append(Mapping(
            f"avg_pool{n}d", "jax.lax.reduce_window(lax.add) / count", lambda case: _reduce_window(case, "avg"),
            onnx_convention, dict(JAX_WINDOW, dtypes=FLOATS), express=_window_express,
            notes="Divided by the window size (padding counted) or by a window sum of ones (not counted), as flax.linen.avg_pool does.",
            skips=("ceil mode, SAME_LOWER, divisor_override",),
        ))
        if HAS_FLAX:
            flax_space = dict(JAX_WINDOW, dtypes=FLOATS, dilation=False)
            mappings.append(Mapping(
                f"max_pool{n}d", "flax.linen.max_pool", lambda case: _flax_pool(case, "max"), onnx_convention, flax_space,
                indices=False, express=_flax_express, model=_no_nan, skips=("dilation: flax pooling has none", "NaN inputs"),
            ))
            mappings.append(Mapping(
                f"avg_pool{n}d", "flax.linen.avg_pool", lambda case: _flax_pool(case, "avg"), onnx_convention, flax_space,
                express=_flax_express, skips=("dilation: flax pooling has none",),
            ))
    mappings += [
        Mapping("global_avg_pool", "jnp.mean(keepdims=True)", _global, space=dict(dtypes=FLOATS)),
        Mapping("global_max_pool", "jnp.max(keepdims=True)", _global, space=dict(dtypes=FLOATS), model=_no_nan),
        Mapping("interpolate", "jax.image.resize(antialias=False)", _resize(False),
                space=dict(dtypes=FLOATS, modes=("nearest-exact", "linear"), align_corners=(False,)),
                express=_resize_express, skips=("'nearest' (legacy), 'area', align_corners=True: jax.image.resize has none",)),
        Mapping("interpolate", "jax.image.resize (antialias=True, the default)", _resize(True),
                space=dict(dtypes=FLOATS, modes=("nearest-exact", "linear"), align_corners=(False,)),
                express=_resize_express, model=_antialias_model, worked=False,
                skips=("downsampling: antialiasing widens the kernel, which poolref does not model (the atlas shows it)",)),
        Mapping("grid_sample", "jax.scipy.ndimage.map_coordinates", _map_coordinates, space=dict(dtypes=FLOATS),
                notes="At grid_sample's source coordinates; padding zeros/border/reflection = constant/nearest/mirror or reflect."),
        Mapping("conv2d", "jax.lax.conv_general_dilated (+ bias)", _conv, space=dict(dtypes=FLOATS)),
    ]
    return mappings


MAPPINGS = _mappings()
