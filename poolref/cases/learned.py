r"""Generators of the convolutions (strided, dilated, deformable) and of the learned and smooth
pools (GeM, SoftPool, LSE, bilinear).

Each ``gen(rng, op, space) -> Case`` draws a valid call of its op (see :mod:`poolref.cases.generators`).
"""

from __future__ import annotations

import numpy

from .._geometry import as_int_tuple, resolve_padding
from .._windows import PADDING_MODES
from .case import Case
from .values import draw_batch_channels, draw_ints, draw_unpadded_window, off_the_kinks, pick, smooth_values

__all__ = ["GENERATORS", "deform_conv_coordinates", "conv_pads"]


def _conv2d(rng, op, space):
    """Groups (unless ``space["groups"]`` is False: 1 half the time, else 2 or 3, depthwise now and
    then), a padding mode from ``space["padding_modes"]`` (all four of torch.nn.Conv2d's by default;
    zeros half the time) with pads that fit it, and now and then ``"same"`` (stride 1) or ``"valid"``
    padding."""
    modes = [m for m in space.get("padding_modes", PADDING_MODES) if m in PADDING_MODES] or ["zeros"]
    # zeros half the time where it is allowed: the other modes copy the input (torch.nn.Conv2d pads with
    # F.pad first), so only zero padding shows how a framework reads the caller's strided memory
    copying = [m for m in modes if m != "zeros"]
    padding_mode = "zeros" if "zeros" in modes and (not copying or rng.random() < 0.5) else str(pick(rng, copying))
    groups = 1 if rng.random() < 0.5 or space.get("groups") is False else int(rng.integers(2, 4))
    per_group = int(rng.integers(1, 3))
    Cin = groups * per_group
    Cout = groups * (per_group if rng.random() < 0.3 else int(rng.integers(1, 3)))  # depthwise now and then
    N = int(rng.integers(1, 3))
    for _ in range(1000):
        kernel = draw_ints(rng, 1, 3, 2)
        stride, dilation = draw_ints(rng, 1, 2, 2), draw_ints(rng, 1, 2, 2)
        H, W = draw_ints(rng, 1, 8, 2)
        kind = rng.random()
        if kind < 0.15:
            stride, padding = (1, 1), "same"
        elif kind < 0.3:
            padding = "valid"
        else:
            padding = tuple(int(rng.integers(0, k)) for k in kernel)
        pads = resolve_padding(padding, (H, W), kernel, stride, dilation, op)
        spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        fits = {"reflect": lambda p, L: p < L, "circular": lambda p, L: p <= L}.get(padding_mode, lambda p, L: True)
        if all(L + b + e >= s and fits(max(b, e), L) for L, (b, e), s in zip((H, W), pads, spans)):
            break
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    arrays = {
        "x": smooth_values(rng, (N, Cin, H, W), dtype),
        "weight": smooth_values(rng, (Cout, Cin // groups) + kernel, dtype, -1.0, 1.0),
        "bias": smooth_values(rng, (Cout,), dtype, -1.0, 1.0),
    }
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    if groups > 1:
        kwargs["groups"] = groups
    if padding_mode != "zeros":
        kwargs["padding_mode"] = padding_mode
    names = ("x", "weight", "bias")
    return Case(op, arrays, kwargs, positional=names, grad_inputs=names)


def conv_pads(case: Case) -> tuple:
    """The ``(begin, end)`` pads per spatial axis of a conv2d case, its ``"same"``/``"valid"`` resolved
    (for the frameworks that take explicit pads only)."""
    kw = case.kwargs
    kernel = case.arrays["weight"].shape[2:]
    stride, dilation = as_int_tuple(kw.get("stride", 1), 2, "stride", case.op), as_int_tuple(kw.get("dilation", 1), 2, "dilation", case.op)
    return resolve_padding(kw.get("padding", 0), case.x.shape[-2:], kernel, stride, dilation, case.op)


def _deform_conv2d(rng, op, space):
    """torchvision's deformable convolution: groups and offset groups of 1 or 2, half the time a mask
    (DCN v2), offsets of order one that send some samples off the image.

    The offsets are redrawn until no sampling coordinate (rounded to the case's dtype, as the op
    computes it) lies within 1e-4 of an integer, where the bilinear derivative jumps: a pixel row
    or column, and the edges -1 and H of the readable range (a finite-difference step must not
    cross one). float16 coordinates, a 256th of a pixel apart from 4 on, land on integers too often
    for that; both sides of a comparison then take the same one-sided derivative.
    """
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    groups, offset_groups = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    per_group = int(rng.integers(1, 3))
    C = groups * offset_groups * per_group  # both kinds of group divide the channels
    c_out = groups * int(rng.integers(1, 3))
    N = int(rng.integers(1, 3))
    for _ in range(1000):
        kernel = draw_ints(rng, 1, 3, 2)
        stride, dilation = draw_ints(rng, 1, 2, 2), draw_ints(rng, 1, 2, 2)
        padding = tuple(int(rng.integers(0, k)) for k in kernel)
        H, W = draw_ints(rng, 1, 6, 2)
        out = [(L + 2 * p - d * (k - 1) - 1) // s + 1 for L, p, d, k, s in zip((H, W), padding, dilation, kernel, stride)]
        if min(out) >= 1:
            break
    taps = kernel[0] * kernel[1]
    for _ in range(100):
        offset = (rng.normal(scale=1.0, size=(N, 2 * offset_groups * taps) + tuple(out))).astype(dtype)
        if dtype == numpy.float16 or off_the_kinks(deform_conv_coordinates(offset, kernel, stride, padding, dilation)):
            break
    arrays = {
        "x": smooth_values(rng, (N, C, H, W), dtype),
        "offset": offset,
        "weight": smooth_values(rng, (c_out, C // groups) + kernel, dtype, -1.0, 1.0),
    }
    if rng.random() < 0.7:
        arrays["bias"] = smooth_values(rng, (c_out,), dtype, -1.0, 1.0)
    if rng.random() < 0.5:
        arrays["mask"] = smooth_values(rng, (N, offset_groups * taps) + tuple(out), dtype, 0.0, 1.0)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    positional = ("x", "offset", "weight") + (("bias",) if "bias" in arrays else ())
    return Case(op, arrays, kwargs, positional=positional, grad_inputs=tuple(arrays))


def deform_conv_coordinates(offset, kernel, stride, padding, dilation) -> numpy.ndarray:
    """Every sampling coordinate of deformable convolution (rows and columns, flattened), as the op
    computes them: the tap's place plus its offset, in the offset's dtype."""
    N, channels, h_out, w_out = offset.shape
    kh, kw = kernel
    shifts = offset.reshape(N, -1, kh, kw, 2, h_out, w_out)
    rows = (numpy.arange(h_out) * stride[0] - padding[0])[None, :] + (numpy.arange(kh) * dilation[0])[:, None]  # (kh, H_out)
    cols = (numpy.arange(w_out) * stride[1] - padding[1])[None, :] + (numpy.arange(kw) * dilation[1])[:, None]  # (kw, W_out)
    ys = rows[:, None, :, None].astype(offset.dtype) + shifts[:, :, :, :, 0]
    xs = cols[None, :, None, :].astype(offset.dtype) + shifts[:, :, :, :, 1]
    return numpy.concatenate([ys.ravel(), xs.ravel()]).astype(numpy.float64)


def draw_global_shape(rng) -> tuple:
    """(N, C, *spatial) with 1 to 3 small spatial dims, for the global ops."""
    n = int(rng.integers(1, 4))
    return draw_batch_channels(rng) + draw_ints(rng, 1, 5 if n < 3 else 3, n)


def _gem(rng, op, space):
    """Values in [-1, 2] (some clamped to eps) and the exponent ``p`` as a 0-d array with a gradient.

    No value lies within 1e-3 of eps, so a finite-difference step never crosses the clamp; ``p`` is a
    multiple of 1/16, exact in every float dtype, and has x's dtype (so both sides compute alike).
    """
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    eps = 1e-6 if rng.random() < 0.7 else 0.05
    x = rng.uniform(-1.0, 2.0, size=draw_global_shape(rng))
    x = numpy.where(numpy.abs(x - eps) < 1e-3, 0.5, x).astype(dtype)
    p = numpy.array(numpy.round(rng.uniform(0.5, 6.0) * 16) / 16, dtype=dtype)
    kwargs = {} if eps == 1e-6 else dict(eps=eps)
    return Case(op, {"x": x, "p": p}, kwargs, positional=("x", "p"), grad_inputs=("x", "p"))


def _soft(rng, op, space):
    kernel, stride, shape = draw_unpadded_window(rng)
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    return Case(op, {"x": smooth_values(rng, draw_batch_channels(rng) + shape, dtype)}, dict(kernel_size=kernel, stride=stride))


def _lse(rng, op, space):
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    r = float(pick(rng, (0.5, 1.0, 2.5))) if rng.random() < 0.5 else round(float(rng.uniform(0.1, 5.0)), 3)
    return Case(op, {"x": smooth_values(rng, draw_global_shape(rng), dtype)}, dict(r=r))


def _bilinear(rng, op, space):
    """``x > 0`` and, half the time, a second map (poolref's ``y``, named ``second`` here: every
    framework's check names its output ``y``) of one sign per channel, so that every product
    ``B[c, d]`` is at least 0.25 in size: the signed square root is smooth there (its slope near
    ``B = 0`` is ``1 / (2 sqrt(eps))``, which finite differences cannot follow). Both flags drawn."""
    dtype = numpy.dtype(pick(rng, space["dtypes"]))
    shape = draw_global_shape(rng)
    arrays = {"x": rng.uniform(0.5, 1.5, size=shape).astype(dtype)}
    if rng.random() < 0.5:
        channels_y = int(rng.integers(1, 4))
        signs = rng.choice([-1.0, 1.0], size=(1, channels_y) + (1,) * (len(shape) - 2))
        arrays["second"] = (rng.uniform(0.5, 1.5, size=(shape[0], channels_y) + shape[2:]) * signs).astype(dtype)
    kwargs = dict(signed_sqrt=bool(rng.random() < 0.5), l2_normalize=bool(rng.random() < 0.5))
    names = tuple(arrays)
    return Case(op, arrays, kwargs, positional=names, grad_inputs=names)


# --------------------------------------------------------------------------------------------------
# The ops of this family and their generators
# --------------------------------------------------------------------------------------------------
GENERATORS = {"conv2d": _conv2d, "deform_conv2d": _deform_conv2d, "gem_pool": _gem, "soft_pool2d": _soft,
              "lse_pool": _lse, "bilinear_pool": _bilinear}
