r"""The oracle tests itself: planted framework bugs that the default ``poolref check`` must catch.

Each :class:`Mutant` is a small, realistic bug planted *in process* into one framework function
(``torch.nn.functional.max_pool2d`` that reads NaN as -1e30, an ``avg_pool2d`` that halves float16,
a gradient scaled by 1 + 1e-6, ...), one per input class and argument rule the oracle claims to
cover. :func:`hunt` plants it, runs the default check of its op (the same seeded cases as
``poolref check``), and says whether a mismatch was reported and by which input class. The test
suite asserts that every mutant is caught, by the class it targets, and that without the mutant the
same checks pass; the docs show the catch rate.

>>> [m.name for m in MUTANTS][:2]
['max_pool1d: garbage on tied maxima', 'max_pool3d: garbage on tied maxima']
"""

from __future__ import annotations

import contextlib
import importlib
import math
from typing import Callable, NamedTuple, Optional

__all__ = ["Mutant", "MUTANTS", "planted", "hunt", "Hunt"]


class Mutant(NamedTuple):
    name: str
    framework: str
    op: str  # the poolref op whose check must catch it
    target: str  # "module:attribute" replaced while the mutant is planted
    plant: Callable  # plant(real) -> the buggy replacement
    rule: str  # the input class or argument rule it breaks
    caught_by: Optional[str] = None  # the input class expected among the failures (None: any)


class Hunt(NamedTuple):
    mutant: Mutant
    caught: bool
    classes: tuple  # input classes of the failing cases
    cases: int


@contextlib.contextmanager
def planted(mutant: Mutant):
    """Replace the mutant's target with the buggy version for the duration of the block."""
    module_name, attribute = mutant.target.split(":")
    module = importlib.import_module(module_name)
    real = getattr(module, attribute)
    setattr(module, attribute, mutant.plant(real))
    try:
        yield
    finally:
        setattr(module, attribute, real)


def hunt(mutant: Mutant, cases=None, seed: int = 0) -> Hunt:
    """Plant ``mutant`` and run the default check of its op: was it caught, and by which classes?"""
    from . import check

    with planted(mutant):
        report = check(mutant.framework, ops=[mutant.op], cases=cases, seed=seed)
    classes = tuple(sorted({f.input_class for f in report.failures}))
    return Hunt(mutant, bool(report.failures), classes, report.cases)


# --------------------------------------------------------------------------------------------------
# Building blocks for PyTorch mutants (torch is imported only when a mutant is planted)
# --------------------------------------------------------------------------------------------------
def _torch():
    import torch

    return torch


def _values(result):
    return result[0] if isinstance(result, tuple) else result


def _with_values(result, values):
    return (values,) + tuple(result[1:]) if isinstance(result, tuple) else values


def _output(change):
    """A function whose values pass through ``change(values, input, kwargs)``; indices are kept."""
    def plant(real):
        def mutant(input, *args, **kwargs):
            result = real(input, *args, **kwargs)
            return _with_values(result, change(_values(result), input, kwargs))
        return mutant
    return plant


def _input(change):
    """A function that reads ``change(input, kwargs)`` instead of its input."""
    def plant(real):
        def mutant(input, *args, **kwargs):
            return real(change(input, kwargs), *args, **kwargs)
        return mutant
    return plant


def _keywords(change):
    """A function called with ``change(kwargs)`` instead of its keyword arguments."""
    def plant(real):
        def mutant(input, *args, **kwargs):
            return real(input, *args, **change(dict(kwargs), input))
        return mutant
    return plant


def _gradient_hook(torch, transform):
    class Hook(torch.autograd.Function):
        @staticmethod
        def forward(ctx, tensor):
            return tensor.view_as(tensor)

        @staticmethod
        def backward(ctx, grad):
            return transform(grad)

    return Hook.apply


def _input_gradient(transform):
    """A function whose gradient to its input passes through ``transform`` on the way back."""
    def plant(real):
        def mutant(input, *args, **kwargs):
            hook = _gradient_hook(_torch(), transform)
            return real(hook(input) if input.requires_grad else input, *args, **kwargs)
        return mutant
    return plant


def _upstream_gradient(transform):
    """A function whose upstream gradient passes through ``transform`` before its own backward."""
    def plant(real):
        def mutant(input, *args, **kwargs):
            result = real(input, *args, **kwargs)
            values = _values(result)
            if values.requires_grad:
                values = _gradient_hook(_torch(), transform)(values)
            return _with_values(result, values)
        return mutant
    return plant


def _first_and_last_winners(real, input, spatial, args, kwargs):
    """``(values, first, last)``: the real result and the indices of the first and of the last of
    tied maxima (the input nudged up along the scan, in float64, by far less than any value gap)."""
    torch = _torch()
    values, first = real(input, *args, **dict(kwargs, return_indices=True))
    ramp = torch.arange(input.numel(), dtype=torch.float64).reshape(input.shape) / max(input.numel(), 1)
    _, last = real(input.detach().double() + 1e-9 * ramp, *args, **dict(kwargs, return_indices=True))
    return values, first, last


def _gather(input, indices, spatial):
    """``input`` read at per-plane flat ``indices`` (differentiable: the gradient goes there)."""
    return input.flatten(-spatial).gather(-1, indices.flatten(-spatial)).reshape(indices.shape)


def _garbage_on_ties(spatial):
    """Max pooling whose value is off by one wherever the maximum of a window is tied."""
    def plant(real):
        def mutant(input, *args, **kwargs):
            values, first, last = _first_and_last_winners(real, input, spatial, args, kwargs)
            values = values + (first != last).to(values.dtype)
            return (values, first) if kwargs.get("return_indices") else values
        return mutant
    return plant


def _ties_to_the_last(spatial):
    """Max pooling that breaks ties to the LAST element: the values are exact, the index and the
    gradient go to the last of tied maxima."""
    def plant(real):
        def mutant(input, *args, **kwargs):
            values, first, last = _first_and_last_winners(real, input, spatial, args, kwargs)
            picked = _gather(input, last, spatial) if input.is_floating_point() else values
            picked = torch_where_nan(values, picked)
            return (picked, last) if kwargs.get("return_indices") else picked
        return mutant
    return plant


def torch_where_nan(values, picked):
    """Keep NaN windows as the real function left them (the mutant is about ties, not NaN)."""
    torch = _torch()
    return torch.where(torch.isnan(values), values, picked) if values.is_floating_point() else picked


def _contiguous_memory(input, kwargs):
    """Read a strided input as if its memory were laid out contiguously (ignoring its strides)."""
    torch = _torch()
    if input.is_contiguous():
        return input
    strides, size = [], 1
    for length in reversed(input.shape):
        strides.insert(0, size)
        size *= length
    return torch.as_strided(input, input.shape, strides, input.storage_offset())


def _flush_tiny(input, kwargs):
    torch = _torch()
    return torch.where(input.abs() < 1e-12, torch.zeros_like(input), input)


def _drop(*names):
    def change(kwargs, input):
        for name in names:
            kwargs.pop(name, None)
        return kwargs
    return change


def _flip(name):
    def change(kwargs, input):
        if name in kwargs:
            kwargs[name] = not kwargs[name]
        return kwargs
    return change


def _ceil_ignored(kwargs, input):
    kwargs["ceil_mode"] = False
    return kwargs


def _scale_factor_recomputed(kwargs, input):
    if kwargs.get("scale_factor") is not None and not kwargs.get("recompute_scale_factor"):
        kwargs["recompute_scale_factor"] = True
    return kwargs


def _recompute_ignored(kwargs, input):
    if kwargs.get("recompute_scale_factor"):
        kwargs["recompute_scale_factor"] = False
    return kwargs


def _index_layout_whole_tensor(spatial):
    """Indices flattened over the whole (N, C, *spatial) tensor, as ONNX does, not per plane."""
    def plant(real):
        def mutant(input, *args, **kwargs):
            return _whole_tensor_indices(real, spatial, input, args, kwargs)
        return mutant
    return plant


def _whole_tensor_indices(real, spatial, input, args, kwargs):
    torch = _torch()
    values, indices = real(input, *args, **dict(kwargs, return_indices=True))
    plane = math.prod(input.shape[-spatial:])
    planes = torch.arange(math.prod(indices.shape[:-spatial]), dtype=indices.dtype).reshape(indices.shape[:-spatial])
    indices = indices + (planes * plane).reshape(planes.shape + (1,) * spatial)
    return (values, indices) if kwargs.get("return_indices") else values


def _gradient_into_padding_by_replication(real):
    """Average pooling whose backward treats the padding as a copy of the border (replicate), so the
    gradient of padded taps lands on the border elements; the forward values stay right."""
    def mutant(input, kernel_size, *args, **kwargs):
        torch = _torch()
        padding = kwargs.get("padding", 0)
        if not input.requires_grad or padding in (0, (0, 0)):
            return real(input, kernel_size, *args, **kwargs)
        values = real(input.detach(), kernel_size, *args, **kwargs)
        pads = (padding, padding) * 2 if isinstance(padding, int) else (padding[1], padding[1], padding[0], padding[0])
        replicated = torch.nn.functional.pad(input, pads, mode="replicate")
        shadow = real(replicated, kernel_size, *args, **dict(kwargs, padding=0))
        if shadow.shape != values.shape:
            return real(input, kernel_size, *args, **kwargs)
        return values + (shadow - shadow.detach())
    return mutant


# --------------------------------------------------------------------------------------------------
# The mutants
# --------------------------------------------------------------------------------------------------
F = "torch.nn.functional"


def _torch_mutants() -> list:
    finfo_min = lambda values: _torch().finfo(values.dtype).min if values.is_floating_point() else values.min()  # noqa: E731
    return [
        # ties and plateaus
        Mutant("max_pool1d: garbage on tied maxima", "torch", "max_pool1d", f"{F}:max_pool1d", _garbage_on_ties(1), "ties", "ties"),
        Mutant("max_pool3d: garbage on tied maxima", "torch", "max_pool3d", f"{F}:max_pool3d", _garbage_on_ties(3), "ties", "ties"),
        Mutant("adaptive_max_pool2d: garbage on tied maxima", "torch", "adaptive_max_pool2d", f"{F}:adaptive_max_pool2d", _garbage_on_ties(2), "ties", "ties"),
        # NaN
        Mutant("max_pool2d: NaN read as -1e30", "torch", "max_pool2d", f"{F}:max_pool2d", _input(lambda x, k: x.nan_to_num(nan=-1e30) if x.is_floating_point() else x), "nan", "nan"),
        Mutant("avg_pool2d: NaN read as 0", "torch", "avg_pool2d", f"{F}:avg_pool2d", _input(lambda x, k: x.nan_to_num(nan=0.0, posinf=float("inf"), neginf=float("-inf"))), "nan", "nan"),
        Mutant("adaptive_avg_pool3d: NaN dropped from the mean", "torch", "adaptive_avg_pool3d", f"{F}:adaptive_avg_pool3d", _input(lambda x, k: x.nan_to_num(nan=0.0, posinf=float("inf"), neginf=float("-inf"))), "nan", "nan"),
        Mutant("interpolate: NaN read as 0", "torch", "interpolate", f"{F}:interpolate", _input(lambda x, k: x.nan_to_num(nan=0.0, posinf=float("inf"), neginf=float("-inf"))), "nan", "nan"),
        # infinities
        Mutant("max_pool3d: +inf returned as -inf", "torch", "max_pool3d", f"{F}:max_pool3d", _output(lambda y, x, k: y.masked_fill(y == float("inf"), float("-inf")) if y.is_floating_point() else y), "inf", "inf"),
        Mutant("max_pool2d: a window of only -inf gives the lowest finite value", "torch", "max_pool2d", f"{F}:max_pool2d", _output(lambda y, x, k: y.masked_fill(y == float("-inf"), finfo_min(y)) if y.is_floating_point() else y), "inf", "inf"),
        Mutant("lp_pool2d: an infinite element makes the window NaN", "torch", "lp_pool2d", f"{F}:lp_pool2d", _output(lambda y, x, k: y.masked_fill(y == float("inf"), float("nan"))), "inf", "inf"),
        # signed zeros
        Mutant("max_pool2d: the sign of zero lost", "torch", "max_pool2d", f"{F}:max_pool2d", _output(lambda y, x, k: y + 0.0 if y.is_floating_point() else y), "signed_zero", "signed_zero"),
        Mutant("adaptive_max_pool1d: the sign of zero lost", "torch", "adaptive_max_pool1d", f"{F}:adaptive_max_pool1d", _output(lambda y, x, k: y + 0.0), "signed_zero", "signed_zero"),
        # dtypes
        Mutant("avg_pool2d: float16 halved", "torch", "avg_pool2d", f"{F}:avg_pool2d", _output(lambda y, x, k: y / 2 if y.dtype == _torch().float16 else y), "float16", "float16"),
        Mutant("interpolate: float16 rounded through bfloat16", "torch", "interpolate", f"{F}:interpolate", _output(lambda y, x, k: y.to(_torch().bfloat16).to(y.dtype) if y.dtype == _torch().float16 else y), "float16", "float16"),
        Mutant("max_pool1d: integer input off by one", "torch", "max_pool1d", f"{F}:max_pool1d", _output(lambda y, x, k: y if y.is_floating_point() else y - 1), "integer", "integer"),
        # batch and layout
        Mutant("avg_pool2d: unbatched output zeroed", "torch", "avg_pool2d", f"{F}:avg_pool2d", _output(lambda y, x, k: y * 0 if x.dim() == 3 else y), "unbatched", "unbatched"),
        Mutant("max_pool3d: unbatched input read as a batch of one channel", "torch", "max_pool3d", f"{F}:max_pool3d", _input(lambda x, k: x.flip(0) if x.dim() == 4 and x.shape[0] > 1 else x), "unbatched", "unbatched"),
        Mutant("max_pool1d: an empty batch gets a wrong shape", "torch", "max_pool1d", f"{F}:max_pool1d", _output(lambda y, x, k: y[..., :-1] if x.shape[0] == 0 and x.dim() == 3 and y.shape[-1] > 1 else (y.unsqueeze(-1) if x.shape[0] == 0 and x.dim() == 3 else y)), "empty", "empty"),
        Mutant("conv2d: strides ignored (memory read as contiguous)", "torch", "conv2d", f"{F}:conv2d", _input(_contiguous_memory), "strided", "strided"),
        Mutant("avg_pool2d: strides ignored (memory read as contiguous)", "torch", "avg_pool2d", f"{F}:avg_pool2d", _input(_contiguous_memory), "strided", "strided"),
        Mutant("avg_pool3d: values below 1e-12 flushed to zero", "torch", "avg_pool3d", f"{F}:avg_pool3d", _input(_flush_tiny), "magnitude", "magnitude"),
        Mutant("grid_sample: values below 1e-12 flushed to zero", "torch", "grid_sample", f"{F}:grid_sample", _input(_flush_tiny), "magnitude", "magnitude"),
        # scale factors
        Mutant("interpolate: scale_factor treated as recompute_scale_factor=True", "torch", "interpolate", f"{F}:interpolate", _keywords(_scale_factor_recomputed), "scale_factor", "scale_factor"),
        Mutant("interpolate: recompute_scale_factor ignored", "torch", "interpolate", f"{F}:interpolate", _keywords(_recompute_ignored), "recompute_scale_factor", "recompute_scale_factor"),
        # non-finite upstream gradients
        Mutant("max_pool2d: a NaN upstream gradient spreads over its window", "torch", "max_pool2d", f"{F}:max_pool2d", _upstream_gradient(lambda g: g.nan_to_num(nan=0.0)), "nonfinite_gradient", "nonfinite_gradient"),
        Mutant("avg_pool1d: infinite upstream gradients clipped", "torch", "avg_pool1d", f"{F}:avg_pool1d", _upstream_gradient(lambda g: g.nan_to_num(posinf=1e300, neginf=-1e300)), "nonfinite_gradient", "nonfinite_gradient"),
        # argument rules
        Mutant("avg_pool2d: ceil mode ignored (the last window dropped)", "torch", "avg_pool2d", f"{F}:avg_pool2d", _keywords(_ceil_ignored), "ceil_mode"),
        Mutant("max_pool1d: ceil mode ignored (the last window dropped)", "torch", "max_pool1d", f"{F}:max_pool1d", _keywords(_ceil_ignored), "ceil_mode"),
        Mutant("avg_pool2d: count_include_pad flipped at the borders", "torch", "avg_pool2d", f"{F}:avg_pool2d", _keywords(_flip("count_include_pad")), "count_include_pad"),
        Mutant("avg_pool1d: count_include_pad flipped at the borders", "torch", "avg_pool1d", f"{F}:avg_pool1d", _keywords(_flip("count_include_pad")), "count_include_pad"),
        Mutant("avg_pool3d: divisor_override ignored", "torch", "avg_pool3d", f"{F}:avg_pool3d", _keywords(_drop("divisor_override")), "divisor_override"),
        Mutant("max_pool3d: dilation ignored", "torch", "max_pool3d", f"{F}:max_pool3d", _keywords(_drop("dilation")), "dilation"),
        Mutant("conv2d: dilation ignored", "torch", "conv2d", f"{F}:conv2d", _keywords(_drop("dilation")), "dilation"),
        Mutant("max_pool2d: indices flattened over the whole tensor", "torch", "max_pool2d", f"{F}:max_pool2d", _index_layout_whole_tensor(2), "index layout"),
        Mutant("adaptive_max_pool3d: indices flattened over the whole tensor", "torch", "adaptive_max_pool3d", f"{F}:adaptive_max_pool3d", _index_layout_whole_tensor(3), "index layout"),
        Mutant("avg_pool1d: gradient scaled by 1 + 1e-6", "torch", "avg_pool1d", f"{F}:avg_pool1d", _input_gradient(lambda g: g * (1 + 1e-6)), "gradient scale"),
        Mutant("conv2d: gradient scaled by 1 + 1e-6", "torch", "conv2d", f"{F}:conv2d", _input_gradient(lambda g: g * (1 + 1e-6)), "gradient scale"),
        Mutant("grid_sample: gradient scaled by 1 + 1e-6", "torch", "grid_sample", f"{F}:grid_sample", _input_gradient(lambda g: g * (1 + 1e-6)), "gradient scale"),
        Mutant("max_pool2d: gradient sent to the last tie", "torch", "max_pool2d", f"{F}:max_pool2d", _ties_to_the_last(2), "gradient to the last tie", "ties"),
        Mutant("avg_pool2d: gradient of padded taps sent to the border", "torch", "avg_pool2d", f"{F}:avg_pool2d", _gradient_into_padding_by_replication, "gradient into padding"),
        Mutant("max_unpool2d: each value written one element late", "torch", "max_unpool2d", f"{F}:max_unpool2d",
               lambda real: lambda input, indices, *a, **k: real(input, (indices + 1).clamp(max=int(indices.max()) if indices.numel() else 0), *a, **k), "index layout"),
        Mutant("fractional_max_pool2d: samples read in the other order", "torch", "fractional_max_pool2d", f"{F}:fractional_max_pool2d",
               lambda real: lambda input, *a, _random_samples=None, **k: real(input, *a, _random_samples=None if _random_samples is None else _random_samples.flip(-1), **k), "window placement"),
        Mutant("lp_pool1d: the partial ceil-mode window not rescaled", "torch", "lp_pool1d", f"{F}:lp_pool1d", _keywords(_ceil_ignored), "ceil_mode"),
        Mutant("adaptive_avg_pool1d: bins cut by rounding instead of floor and ceil", "torch", "adaptive_avg_pool1d", f"{F}:adaptive_avg_pool1d",
               lambda real: lambda input, output_size, *a, **k: real(input, output_size, *a, **k) if input.shape[-1] % (output_size if isinstance(output_size, int) else output_size[0]) == 0
               else _torch().nn.functional.interpolate(input if input.dim() == 3 else input[None], size=output_size, mode="linear", align_corners=False).reshape(real(input, output_size).shape), "bins"),
    ]


def _onnxruntime_mutants() -> list:
    def pads_swapped(real):
        """ONNX Runtime that reads the begin and end pads the other way round."""
        def run_node(node, feeds, outputs):
            for attribute in node.attribute:
                if attribute.name == "pads":
                    half = len(attribute.ints) // 2
                    swapped = list(attribute.ints[half:]) + list(attribute.ints[:half])
                    del attribute.ints[:]
                    attribute.ints.extend(swapped)
            return real(node, feeds, outputs)
        return run_node

    def half_pixel_flipped(real):
        def run_node(node, feeds, outputs):
            for attribute in node.attribute:
                if attribute.name == "coordinate_transformation_mode" and node.op_type == "RoiAlign":
                    attribute.s = b"output_half_pixel" if attribute.s == b"half_pixel" else b"half_pixel"
            return real(node, feeds, outputs)
        return run_node

    target = "poolref.oracle.onnxruntime_adapter:run_node"
    return [
        Mutant("onnx AveragePool: asymmetric pads swapped", "onnxruntime", "avg_pool2d", target, pads_swapped, "asymmetric padding"),
        Mutant("onnx MaxPool: asymmetric pads swapped", "onnxruntime", "max_pool1d", target, pads_swapped, "asymmetric padding"),
        Mutant("onnx RoiAlign: aligned flipped", "onnxruntime", "roi_align", target, half_pixel_flipped, "pixel model"),
    ]


MUTANTS = _torch_mutants() + _onnxruntime_mutants()
