r"""PyTorch (and torchvision and kornia, when installed): which torch function computes each poolref op.

PyTorch is poolref's default convention, so almost every op maps to the ``torch.nn.functional``
function of the same name with the same arguments and needs no ``convention=``; gradients come from
torch's autograd. The exceptions are written down in each mapping: ``lp_pool1d`` wants int sizes,
``fractional_max_pool`` takes its samples through the private ``_random_samples`` argument, and the
global ops are spelt with ``mean`` and whole-plane pooling.

The ops PyTorch lacks (GeM, SoftPool, LSE, bilinear, mixed and stochastic pooling at inference, spatial
pyramid and deformable RoI pooling, DynOPool) are checked against compositions of its own ops, from
:mod:`poolref.testing.torch_compositions` (rows of kind ``"composition"``); where such a
composition's chain rule, rather than PyTorch, would decide a class (an upstream infinity times a
partial derivative that is zero inside the formula), that class is refused and the reason shown.

Two PyTorch libraries own ops of their own: torchvision the region ops, kornia the blur pools
(``kornia.filters.blur_pool2d`` and ``max_blur_pool2d``, whose definitions poolref follows). Where one
is installed (and loads with this torch) its functions are the native rows; without kornia the blur
pools are checked against compositions of torch's own ops instead, and without torchvision the region
ops are not covered.

The oracle loads this adapter only when torch is installed; torch itself is imported by the checks'
code (``IMPORTS``) and by :func:`version`, so the module imports without it.
"""

from __future__ import annotations

import importlib.util

from ..cases.case import VIEWS, Case, with_indices
from . import defects as known
from .artefacts import (
    DEFORM_CONV_CHAIN_RULE, EXPM1_CHAIN_RULE, GEM_CHAIN_RULE, SOFTMAX_CHAIN_RULE, SOFTPOOL_LIMITS, STOCHASTIC_CHAIN_RULE, not_for_nonfinite_gradients, refuse,
)
from .mapping import Mapping, format_kwargs

__all__ = ["NAME", "MODULES", "IMPORTS", "MAPPINGS", "UNCOVERED", "DEFAULT_CASES", "version"]

DEFAULT_CASES = 20  # random cases per mapping of a default run
NAME = "torch"
MODULES = ("torch",)
IMPORTS = "import torch\nimport torch.nn.functional as F"


def _torchvision_works() -> bool:
    """torchvision is installed and its compiled ops load (a wheel built for another torch does not)."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision.ops  # noqa: F401
    except Exception:  # noqa: BLE001 - e.g. RuntimeError: operator torchvision::nms does not exist
        return False
    return True


HAS_TORCHVISION = _torchvision_works()


def _kornia_works() -> bool:
    """kornia is installed and its filters import with this torch."""
    if importlib.util.find_spec("kornia") is None:
        return False
    try:
        import kornia.filters  # noqa: F401
    except Exception:  # noqa: BLE001 - a kornia built against another torch
        return False
    return True


HAS_KORNIA = _kornia_works()


def version() -> str:
    import torch

    text = f"torch {torch.__version__}"
    if HAS_TORCHVISION:
        import torchvision

        text += f", torchvision {torchvision.__version__}"
    if HAS_KORNIA:
        import kornia

        text += f", kornia {kornia.__version__}"
    return text.split(" ", 1)[1]


# --------------------------------------------------------------------------------------------------
# Source code templates: numpy in, torch autograd, numpy out
# --------------------------------------------------------------------------------------------------
def _inputs(case: Case) -> list[str]:
    """``<name>_t = torch.tensor(<name>)`` for every array, with a gradient where one is compared; a
    non-contiguous view is taken of its base tensor (the leaf that receives the gradient), so torch
    sees a strided input as poolref does."""
    lines = []
    for name in case.arrays:
        grad = ", requires_grad=True" if name in case.grad_inputs else ""
        if name in case.views:
            lines.append(f"{name}_base_t = torch.tensor({name}_base{grad})")
            lines.append(f"{name}_t = {name}_base_t{VIEWS[case.views[name][0]].torch}")
        else:
            lines.append(f"{name}_t = torch.tensor({name}{grad})")
    return lines


def _outputs(case: Case) -> list[str]:
    lines = ["y_t.backward(torch.tensor(cotangent))"] if case.grad_inputs else []
    lines.append("y = y_t.detach().numpy()")
    if with_indices(case):
        lines.append("y_indices = indices_t.numpy()")
    for name in case.grad_inputs:
        if name in case.views:  # the view's gradient is the same view of the base's gradient
            lines.append(f"grad_{name} = {name}_base_t.grad{VIEWS[case.views[name][0]].torch}.numpy()")
        else:
            lines.append(f"grad_{name} = {name}_t.grad.numpy()")
    return lines


def _source(case: Case, call: str) -> str:
    target = "y_t, indices_t" if with_indices(case) else "y_t"
    return "\n".join(_inputs(case) + [f"{target} = {call}"] + _outputs(case))


def _same_call(function: str):
    """``function(<positional tensors>, **kwargs)``: the op's torch twin takes poolref's arguments."""

    def code(case: Case) -> str:
        args = [f"{name}_t" for name in case.positional]
        keywords = format_kwargs(case.kwargs, drop=("convention",))
        return _source(case, f"{function}({', '.join(args + ([keywords] if keywords else []))})")

    return code


def _torchvision_call(op: str):
    same = _same_call(f"torchvision.ops.{op}")
    return lambda case: "import torchvision.ops\n" + same(case)


def _kornia_call(op: str):
    same = _same_call(f"kornia.filters.{op}")
    return lambda case: "import kornia.filters\n" + same(case)


def _lp_pool(case: Case) -> str:
    kwargs = dict(case.kwargs)
    n = case.x.ndim - (2 if case.batched else 1)
    if n == 1:  # torch's lp_pool1d multiplies by kernel_size, so it must be an int, not a 1-tuple
        kwargs = {k: (v[0] if isinstance(v, tuple) else v) for k, v in kwargs.items()}
    return _source(case, f"F.lp_pool{n}d(x_t, {format_kwargs(kwargs, drop=('convention',))})")


def _global(case: Case) -> str:
    n = case.x.ndim - (2 if case.batched else 1)
    if case.op == "global_avg_pool":
        return _source(case, f"x_t.mean(dim={tuple(range(case.x.ndim - n, case.x.ndim))}, keepdim=True)")
    if case.op == "global_max_pool":
        return _source(case, f"F.adaptive_max_pool{n}d(x_t, 1)")
    kernel = case.x.shape[-1] if n == 1 else tuple(case.x.shape[-n:])
    return _source(case, f"F.lp_pool{n}d(x_t, {case.kwargs['norm_type']!r}, kernel_size={kernel!r})")


def _composition(function: str, tensors=("x",), drop=(), keyword_tensors=()):
    """``function(torch, <tensors>, **kwargs)`` from :mod:`poolref.testing.torch_compositions`, imported
    by the check's own source so that its reproducer runs as written; an array the case does not
    hold (bilinear pooling's ``y``) is passed as None. ``keyword_tensors`` are passed by name, where
    the case holds them (deformable convolution's ``mask``, after the keywords in torchvision's order)."""

    def code(case: Case) -> str:
        args = ["torch"] + [f"{name}_t" if name in case.arrays else "None" for name in tensors]
        keywords = ", ".join([format_kwargs(case.kwargs, drop=drop)] + [f"{name}={name}_t" for name in keyword_tensors if name in case.arrays])
        keywords = keywords.strip(", ")
        call = f"{function}({', '.join(args + ([keywords] if keywords else []))})"
        return f"from poolref.testing.torch_compositions import {function}\n" + _source(case, call)

    return code


def _conv2d(case: Case) -> str:
    """``F.conv2d`` with poolref's arguments; with a ``padding_mode``, which ``F.conv2d`` lacks, the
    forward of a ``torch.nn.Conv2d`` of that mode run with the case's weights
    (``torch.func.functional_call``): its own padding rule (``F.pad``, "same" split as it splits it)."""
    padding_mode = case.kwargs.get("padding_mode", "zeros")
    if padding_mode == "zeros":
        return _same_call("F.conv2d")(case)
    c_out, c_per_group, kh, kw = case.arrays["weight"].shape
    layer_kwargs = format_kwargs(case.kwargs, drop=("convention",))
    layer = f"layer = torch.nn.Conv2d({case.x.shape[-3]}, {c_out}, {(kh, kw)!r}, {layer_kwargs}, dtype=torch.{case.x.dtype.name})"
    call = 'torch.func.functional_call(layer, {"weight": weight_t, "bias": bias_t}, (x_t,))'
    return "\n".join([layer, _source(case, call)])


def _fractional(case: Case) -> str:
    keywords = format_kwargs(case.kwargs)
    return _source(case, f"F.{case.op}(x_t, {keywords}, _random_samples=random_samples_t)")


# --------------------------------------------------------------------------------------------------
# What PyTorch cannot express
# --------------------------------------------------------------------------------------------------
def _window_express(case: Case):
    """PyTorch's pooling: symmetric int padding (at most half the kernel), dilation for max only, no
    padding or dilation for Lp pooling, no divisor_override in 1-D, 3-D averages need input >= kernel."""
    kw = case.kwargs
    n = case.x.ndim - (2 if case.batched else 1)
    kind = case.op.split("_")[0]
    padding = kw.get("padding", 0)
    if isinstance(padding, str) or (isinstance(padding, tuple) and any(isinstance(p, tuple) for p in padding)):
        return "PyTorch's pooling takes symmetric int padding only (no SAME/VALID, no (begin, end) pairs)"
    if kind == "lp" and padding not in (0, (0,) * n):
        return "PyTorch's Lp pooling has no padding"
    if kind != "max" and kw.get("dilation", 1) not in (1, (1,) * n):
        return f"PyTorch's {kind} pooling has no dilation"
    if case.op == "avg_pool1d" and kw.get("divisor_override") is not None:
        return "PyTorch's avg_pool1d has no divisor_override"
    if kw.get("convention", "torch") != "torch":
        return "not PyTorch's convention"
    return None


# --------------------------------------------------------------------------------------------------
# The mappings
# --------------------------------------------------------------------------------------------------
BOTH_FLOATS = ("float64", "float32")
ALL_FLOATS = ("float64", "float32", "float16")
INTEGERS = ("int64", "int32", "int16", "int8", "uint8")
#: What torch's CPU kernels take besides float32/64 (checked with torch 2.13, tests/oracle/test_torch.py):
#: float16 everywhere but in avg_pool3d (and lp_pool3d, which calls it); all five integer dtypes in
#: max_pool2d/3d, and in max_pool1d with return_indices=True only (without it: "max_pool1d_impl" not
#: implemented for 'Long'; every integer case drawn returns indices); no integers in adaptive pooling;
#: int64 in avg_pool1d/2d/3d, which no mapping draws; unbatched input in pooling and conv2d, not in
#: interpolate or grid_sample.
POOLING = dict(dtypes=ALL_FLOATS, unbatched=True)

#: Public ops with no torch function; compositions and torchvision rows are added where they exist.
UNCOVERED = {}


ANTIALIAS_FLOAT16 = ('torch\'s CPU antialiased interpolate has no float16 kernel: its backward raises (NotImplementedError: '
                     '"upsample_bilinear2d_aa_backward_cpu" not implemented for \'Half\', bicubic likewise), and its forward '
                     'too where a size changes ("compute_index_ranges_weights" not implemented for \'Half\'); torch 2.13')


def _interpolate_express(case: Case):
    if case.kwargs.get("antialias") and case.dtype.name == "float16":
        return ANTIALIAS_FLOAT16
    return None


def _mappings() -> list[Mapping]:
    mappings = []
    for n in (1, 2, 3):
        mappings.append(Mapping(
            f"max_pool{n}d", f"torch.nn.functional.max_pool{n}d", _same_call(f"F.max_pool{n}d"),
            space=dict(POOLING, dilation=True, integer_dtypes=INTEGERS), express=_window_express,
            notes="PyTorch's own semantics: poolref's default convention.",
        ))
        mappings.append(Mapping(
            f"avg_pool{n}d", f"torch.nn.functional.avg_pool{n}d", _same_call(f"F.avg_pool{n}d"),
            space=dict(POOLING, dtypes=ALL_FLOATS if n < 3 else BOTH_FLOATS, divisor_override=n > 1, input_at_least_kernel=n == 3),
            express=_window_express,
            notes="PyTorch's own semantics, divisor rule included (SEMANTICS.md 3).",
            skips=("avg_pool3d: inputs smaller than the kernel in some axis (PyTorch's avg_pool3d alone refuses them, padding "
                   "or not: 'input image (T: 2 H: 2 W: 2) smaller than kernel size' with kernel 3 and padding 1, which "
                   "avg_pool1d/2d and max_pool3d take)",) if n == 3 else (),
        ))
        mappings.append(Mapping(
            f"lp_pool{n}d", f"torch.nn.functional.lp_pool{n}d", _lp_pool, defects=known.TORCH_LP_POOL,
            space=dict(POOLING, dtypes=ALL_FLOATS if n < 3 else BOTH_FLOATS, padding=("none",), dilation=False,
                       input_at_least_kernel=n == 3),
            express=_window_express,
            notes="PyTorch's formula with its ceil-mode rescaling quirk (SEMANTICS.md 4).",
            skips=("padding and dilation: PyTorch's Lp pooling has neither",
                   "negative random inputs: PyTorch's formula has no absolute value (the worked example checks them)")
            + (("lp_pool3d: inputs smaller than the kernel (it calls avg_pool3d, which refuses them)",) if n == 3 else ()),
        ))
        mappings.append(Mapping(
            f"max_unpool{n}d", f"torch.nn.functional.max_unpool{n}d", _same_call(f"F.max_unpool{n}d"),
            space=dict(POOLING),
            skips=("repeated indices (overlapping pooling windows): the order of writes is unspecified",),
        ))
        for kind in ("avg", "max"):
            mappings.append(Mapping(
                f"adaptive_{kind}_pool{n}d", f"torch.nn.functional.adaptive_{kind}_pool{n}d",
                _same_call(f"F.adaptive_{kind}_pool{n}d"), space=dict(POOLING),
                defects=(known.TORCH_HALF_ADAPTIVE_MAX_GRADIENT if kind == "max" else known.TORCH_HALF_ADAPTIVE_AVG_GRADIENT,),
            ))
    mappings += [
        Mapping("global_avg_pool", "torch.Tensor.mean(keepdim=True)", _global, space=dict(POOLING)),
        Mapping("global_max_pool", "torch.nn.functional.adaptive_max_pool{n}d(x, 1)", _global, space=dict(POOLING)),
        Mapping("global_lp_pool", "torch.nn.functional.lp_pool{n}d(kernel_size=the whole plane)", _global,
                space=dict(POOLING, dtypes=BOTH_FLOATS), defects=known.TORCH_LP_POOL),
    ]
    for n in (2, 3):
        mappings.append(Mapping(
            f"fractional_max_pool{n}d", f"torch.nn.functional.fractional_max_pool{n}d(_random_samples=...)", _fractional,
            space=dict(POOLING, dtypes=ALL_FLOATS if n == 2 else BOTH_FLOATS),
            notes="The samples are passed in, so both sides place the same windows.",
        ))
    mappings += [
        Mapping("grid_sample", "torch.nn.functional.grid_sample", _same_call("F.grid_sample"),
                space=dict(dtypes=ALL_FLOATS, modes=("bilinear", "nearest", "bicubic"), ndims=(2, 3)),
                model=refuse(float16=GRID_SAMPLE_FLOAT16), skips=("float16: " + GRID_SAMPLE_FLOAT16,)),
        Mapping("interpolate", "torch.nn.functional.interpolate", _same_call("F.interpolate"),
                space=dict(dtypes=ALL_FLOATS, modes=("nearest", "nearest-exact", "linear", "bicubic", "area"), antialias=(False, True)),
                express=_interpolate_express, skips=("float16 with antialias=True: " + ANTIALIAS_FLOAT16,),
                defects=(known.TORCH_ANTIALIAS_WIDTH_ONE, known.TORCH_ANTIALIAS_COPIED_AXIS, known.TORCH_BICUBIC_COPIED_GRADIENT,
                         known.TORCH_NEAREST_SHORTCUT_GRADIENT, known.TORCH_HALF_ADAPTIVE_AVG_GRADIENT)),
        Mapping("conv2d", "torch.nn.functional.conv2d (torch.nn.Conv2d for padding_mode)", _conv2d, space=dict(POOLING),
                defects=(known.TORCH_CONV_FLOAT32_PADDING_GRADIENT,),
                notes="groups and padding='same'/'valid' as F.conv2d takes them; a padding_mode other than zeros "
                      "through torch.nn.Conv2d's forward with the case's weights (F.pad, then F.conv2d)."),
    ]
    mappings += _compositions() + _blur_pools()
    if HAS_TORCHVISION:
        for op in ("roi_align", "roi_pool", "ps_roi_align", "ps_roi_pool"):
            mappings.append(Mapping(op, f"torchvision.ops.{op}", _torchvision_call(op),
                                    notes="torchvision's semantics: poolref's default for region ops."))
    else:
        for op in ("roi_align", "roi_pool", "ps_roi_align", "ps_roi_pool"):
            UNCOVERED[op] = (f"torchvision.ops.{op}: torchvision is not installed, or its compiled ops do not load "
                             "with this torch")
    return mappings


DYNOPOOL_READS = ("grid_sample reads a neighbour of bilinear weight 0 and multiplies it (0 * inf = NaN) and sends it a "
                  "gradient; DynOPool reads only the pixels it weighs (docs/dynopool.rst), so NaN and infinities differ there")
MIXED_FLOAT16 = ("the composition rounds each of lam * max, (1 - lam) * avg and their sum to float16, where poolref "
                 "rounds once: a few ulps of the terms (3.1e-2 at 33.2, 1 ulp), many of a result where they cancel "
                 "(2.9e-3 against 2.5e-3)")
LSE_FLOAT16 = ("the composition rounds x - max, r (x - max), expm1, the mean, log1p and the division by r to float16 in "
               "turn, where poolref computes in float32 and rounds once: up to 2.0e-3 apart in 2,000 draws (0.2725 "
               "against 0.2705; 1.7e-3 at -0.130, 14 ulps)")
GRID_SAMPLE_FLOAT16 = ("torch's CPU grid_sample computes the source coordinates of a float16 input in float16, and in "
                       "bilinear mode its weights and their sum too (grid "
                       "0.250732421875 on [0, 0, 1000], align_corners=True: the coordinate 1.2507 rounds to 1.2510 and the "
                       "output is 251.0, float32's 250.73): errors up to 1.8e-2 against float64 on the same half inputs "
                       "(300 draws, |x| <= 2), where float32 rounded to float16 is within 9.3e-4")


KORNIA_UNBATCHED = ("kornia's blur pools take (B, C, H, W) only: max_blur_pool2d raises on an unbatched input (ShapeError), "
                    "blur_pool2d raises unless its channel count happens to equal its height (then F.conv2d runs it as "
                    "unbatched; kornia 0.9)")


def _blur_pools() -> list[Mapping]:
    """kornia's blur pools where kornia is installed; else the same definitions composed from torch's ops."""
    space = dict(POOLING, unbatched=KORNIA_UNBATCHED)
    if HAS_KORNIA:
        notes = "poolref's blur pools follow kornia's definitions (docs/ops/blur.rst)."
        return [Mapping(op, f"kornia.filters.{op} (kornia, a PyTorch library)", _kornia_call(op), space=space, notes=notes,
                        skips=("unbatched input: " + KORNIA_UNBATCHED,))
                for op in ("blur_pool2d", "max_blur_pool2d")]
    composed = dict(kind="composition", space=dict(POOLING),
                    notes="kornia is not installed: kornia's definition composed from torch's ops.")
    return [
        Mapping("blur_pool2d", "F.pad + depthwise F.conv2d with the binomial kernel (kornia's blur_pool2d)",
                _composition("blur_pool_by_depthwise_conv"), **composed),
        Mapping("max_blur_pool2d", "F.max_pool2d(stride=1) + F.pad + depthwise F.conv2d (kornia's max_blur_pool2d)",
                _composition("max_blur_pool_by_max_pool_and_conv"), **composed),
    ]


def _dynopool_model(case: Case):
    if case.input_class in ("nan", "inf", "nonfinite_gradient"):
        return DYNOPOOL_READS
    return None


def _compositions() -> list[Mapping]:
    """The ops PyTorch lacks, composed from its own ops (:mod:`poolref.testing.torch_compositions`)."""
    composed = dict(kind="composition")
    return [
        Mapping("stochastic_pool2d", "unfold: sum(a^2) / sum(a) per window (training=False)",
                _composition("stochastic_expectation_by_unfold", drop=("training",)), space=dict(POOLING), **composed,
                model=refuse(nonfinite_gradient=STOCHASTIC_CHAIN_RULE),
                notes="Inference only: training draws its samples from poolref's generator, which PyTorch cannot share.",
                skips=("training=True: the samples come from poolref's random generator",
                       "non-finite upstream gradients: " + STOCHASTIC_CHAIN_RULE)),
        Mapping("mixed_pool2d", "lam * F.max_pool2d + (1 - lam) * F.avg_pool2d",
                _composition("mixed_by_max_and_avg_pool"), space=dict(POOLING), **composed,
                model=refuse(float16=MIXED_FLOAT16), skips=("float16: " + MIXED_FLOAT16,)),
        Mapping("gem_pool", "clamp(min=eps).pow(p).mean().pow(1/p), the maximum factored out",
                _composition("gem_by_pow_mean", ("x", "p")), space=dict(dtypes=ALL_FLOATS), **composed,
                model=not_for_nonfinite_gradients(GEM_CHAIN_RULE), skips=("non-finite upstream gradients: " + GEM_CHAIN_RULE,),
                notes="p is a 0-d tensor with a gradient."),
        Mapping("soft_pool2d", "unfold + softmax", _composition("soft_pool_by_unfold"), space=dict(POOLING), **composed,
                model=refuse(nonfinite_gradient=SOFTMAX_CHAIN_RULE, inf=SOFTPOOL_LIMITS),
                skips=("non-finite upstream gradients: " + SOFTMAX_CHAIN_RULE, "infinities: " + SOFTPOOL_LIMITS)),
        Mapping("lse_pool", "max + log1p(mean(expm1(r (x - max)))) / r", _composition("lse_by_expm1_log1p"),
                space=dict(dtypes=ALL_FLOATS), **composed,
                model=refuse(nonfinite_gradient=f"non-finite upstream gradients: {EXPM1_CHAIN_RULE}", float16=LSE_FLOAT16),
                skips=("non-finite upstream gradients: " + EXPM1_CHAIN_RULE, "float16: " + LSE_FLOAT16)),
        Mapping("bilinear_pool", "einsum, sign * sqrt(|B| + eps), F.normalize", _composition("bilinear_by_einsum", ("x", "second")),
                space=dict(dtypes=ALL_FLOATS), **composed),
        Mapping("spatial_pyramid_pool2d", "F.adaptive_{max,avg}_pool2d or F.{max,avg}_pool2d per level, concatenated",
                _composition("spatial_pyramid_by_pooling"), space=dict(POOLING), **composed),
        Mapping("deform_roi_pool", "torch indexing: mmcv's DeformRoIPool", _composition("deform_roi_pool_by_gather", ("x", "boxes", "offset")),
                space=dict(dtypes=ALL_FLOATS), **composed),
        Mapping("deform_conv2d", "torch indexing: torchvision.ops.deform_conv2d's sampling, a grouped matmul",
                _composition("deform_conv2d_by_gather", ("x", "offset", "weight", "bias"), keyword_tensors=("mask",)),
                space=dict(dtypes=ALL_FLOATS), **composed, model=refuse(nonfinite_gradient=DEFORM_CONV_CHAIN_RULE),
                skips=("non-finite upstream gradients: " + DEFORM_CONV_CHAIN_RULE,),
                notes="Gradients to x, offset, weight, bias and mask; the offsets are drawn off the pixel rows and "
                      "columns, where the bilinear derivative jumps."),
        Mapping("dynopool2d", "F.grid_sample(padding_mode='border') at DynOPool's query points (docs/dynopool.rst)",
                _composition("dynopool_by_grid_sample", ("x", "alpha")), space=dict(POOLING), **composed,
                model=_dynopool_model, skips=("NaN and infinities: " + DYNOPOOL_READS,),
                notes="alpha's gradient is the straight-through one on both sides; compared where no query point sits "
                      "on a pixel coordinate, where the value has a kink in alpha."),
    ]


MAPPINGS = _mappings()
