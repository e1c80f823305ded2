r"""The TensorFlow adapter's source templates (channels last in, ``tf.GradientTape``, channels first
out) and the checks of its ``"composition"`` rows (:mod:`poolref.oracle.tensorflow_adapter`): the ops
TensorFlow lacks, built from its own.

Each function returns the *source code* of one check, the lines a reader can paste to reproduce it,
reading ``x`` (and the op's other arrays) and leaving ``y`` and ``grad_<name>``; ``tf`` and ``np`` come
from the adapter's ``IMPORTS``. The compositions are written from each op's definition, independently of
poolref's array code, channels first where no pooling kernel is needed: GeM, LSE, SoftPool
(``tf.nn.softmax`` over strided taps), bilinear pooling (``tf.einsum``) and stochastic pooling at
inference (``sum(a^2) / sum(a)`` over strided taps); channels last through :func:`taped_source`: mixed
pooling (``tf.nn.max_pool2d`` + ``avg_pool2d``) and kornia's blur pools (``tf.nn.depthwise_conv2d``
with the binomial kernel, after a stride-1 ``tf.nn.max_pool2d`` for max-blur pooling).
"""

from __future__ import annotations

import math

import numpy

from .._geometry import as_int_tuple
from ..cases.case import Case

__all__ = ["channels_last", "channels_first", "taped_source", "gem", "lse", "soft_pool", "stochastic_expectation", "bilinear",
           "mixed", "blur_pool"]


def channels_last(name: str) -> str:
    """Source moving array ``name``'s channel axis last, (N, C, *spatial) -> (N, *spatial, C)."""
    return f"np.moveaxis({name}, 1, -1)"


def channels_first(name: str) -> str:
    """Source moving array ``name``'s channel axis back first, (N, *spatial, C) -> (N, C, *spatial)."""
    return f"np.moveaxis({name}, -1, 1)"


def taped_source(case: Case, call: str, outputs: str = "y_t", extra=(), gradients: bool = True) -> str:
    """Watch the differentiable inputs, evaluate ``call`` and pull the cotangent back."""
    lines = [f"x_t = tf.constant({channels_last('x')})"]
    if not gradients:
        return "\n".join(lines + [f"{outputs} = {call}", f"y = {channels_first('y_t.numpy()')}", *extra])
    lines += [
        "with tf.GradientTape() as tape:",
        "    tape.watch(x_t)",
        f"    {outputs} = {call}",
        f"grad_t = tape.gradient(y_t, x_t, output_gradients=tf.constant({channels_last('cotangent')}))",
        f"y = {channels_first('y_t.numpy()')}",
        f"grad_x = {channels_first('grad_t.numpy()')}",
        *extra,
    ]
    return "\n".join(lines)


def _taped_channels_first(case: Case, definitions: list, function: str) -> str:
    """``function(<differentiable inputs>)`` on (N, C, ...) tensors under a GradientTape, after the
    ``definitions`` (source lines); gradients to every differentiable input (zero where unconnected)."""
    names = list(case.grad_inputs)
    lines = list(definitions) + [""]
    lines += [f"{name}_t = tf.constant({name})" for name in names]
    lines += [
        "with tf.GradientTape() as tape:",
        f"    tape.watch([{', '.join(f'{name}_t' for name in names)}])",
        f"    y_t = {function}({', '.join(f'{name}_t' for name in names)})",
        f"grads = tape.gradient(y_t, [{', '.join(f'{name}_t' for name in names)}], output_gradients=tf.constant(cotangent),",
        "                      unconnected_gradients=tf.UnconnectedGradients.ZERO)",
        "y = y_t.numpy()",
    ]
    lines += [f"grad_{name} = grads[{i}].numpy()" for i, name in enumerate(names)]
    return "\n".join(lines)


def _spatial_axes(case: Case) -> list:
    return list(range(2, case.x.ndim))


def _taps(case: Case) -> list:
    """``taps(x)``: (N, C, kh*kw, H_out, W_out), tap (i, j) of every unpadded window, by strided slicing."""
    kw = case.kwargs
    kernel = as_int_tuple(kw["kernel_size"], 2, "kernel_size", case.op)
    stride = kernel if kw.get("stride") is None else as_int_tuple(kw["stride"], 2, "stride", case.op)
    spans = [s * ((L - k) // s) + 1 for L, k, s in zip(case.x.shape[-2:], kernel, stride)]
    return [
        "def taps(x):  # (N, C, kh*kw, H_out, W_out): tap (i, j) of every window",
        f"    return tf.stack([x[:, :, i:i + {spans[0]}:{stride[0]}, j:j + {spans[1]}:{stride[1]}]",
        f"                     for i in range({kernel[0]}) for j in range({kernel[1]})], axis=2)",
    ]


def gem(case: Case) -> str:
    axes, eps = _spatial_axes(case), case.kwargs.get("eps", 1e-6)
    return _taped_channels_first(case, [
        "def gem(x, p):  # the plane's largest clamped value factored out: no power overflows",
        f"    z = tf.maximum(x, {eps!r})  # a NaN stays NaN; the gradient passes where x >= eps",
        f"    largest = tf.stop_gradient(tf.reduce_max(z, axis={axes!r}, keepdims=True))  # y does not depend on it",
        "    scale = tf.where(tf.math.is_finite(largest), largest, tf.ones_like(largest))",
        f"    return scale * tf.reduce_mean((z / scale) ** p, axis={axes!r}, keepdims=True) ** (1 / p)",
    ], "gem")


def lse(case: Case) -> str:
    axes, r = _spatial_axes(case), case.kwargs["r"]
    return _taped_channels_first(case, [
        "def lse(x):  # max + log1p(mean(expm1(r (x - max)))) / r: no overflow, and the digits of tiny r x kept",
        f"    largest = tf.stop_gradient(tf.reduce_max(x, axis={axes!r}, keepdims=True))",
        "    shift = tf.where(tf.math.is_finite(largest), largest, tf.zeros_like(largest))  # as reduce_logsumexp",
        f"    return shift + tf.math.log1p(tf.reduce_mean(tf.math.expm1({r!r} * (x - shift)), axis={axes!r}, keepdims=True)) / {r!r}",
    ], "lse")


def soft_pool(case: Case) -> str:
    return _taped_channels_first(case, _taps(case) + [
        "",
        "def soft_pool(x):  # the softmax-weighted mean of each window",
        "    t = taps(x)",
        "    return tf.reduce_sum(tf.nn.softmax(t, axis=2) * t, axis=2)",
    ], "soft_pool")


def stochastic_expectation(case: Case) -> str:
    return _taped_channels_first(case, _taps(case) + [
        "",
        "def expectation(x):  # sum(a^2) / sum(a) per window (0 where it sums to 0), the maximum factored out",
        "    t = taps(x)",
        "    largest = tf.stop_gradient(tf.reduce_max(t, axis=2, keepdims=True))",
        "    scale = tf.where(largest > 0, largest, tf.ones_like(largest))",
        "    ratios = t / scale",
        "    total, squares = tf.reduce_sum(ratios, axis=2), tf.reduce_sum(ratios * ratios, axis=2)",
        "    nonzero = total > 0",
        "    safe = tf.where(nonzero, total, tf.ones_like(total))",
        "    return tf.where(nonzero, scale[:, :, 0] * squares / safe, tf.zeros_like(total))",
    ], "expectation")


def bilinear(case: Case) -> str:
    kw, x = case.kwargs, case.x
    eps = kw.get("eps", 1e-12)
    positions = int(numpy.prod(x.shape[2:]))
    channels_y = case.arrays["second"].shape[1] if "second" in case.arrays else x.shape[1]
    lines = [
        "def bilinear(x, *second):  # B = x y^T / P flattened; signed sqrt; divided by max(||s||, eps)",
        f"    first = tf.reshape(x, [{x.shape[0]}, {x.shape[1]}, {positions}])",
        f"    other = first if not second else tf.reshape(second[0], [{x.shape[0]}, {channels_y}, {positions}])",
        f"    s = tf.reshape(tf.einsum('ncl,ndl->ncd', first, other), [{x.shape[0]}, {x.shape[1] * channels_y}]) / {positions}",
    ]
    if kw["signed_sqrt"]:
        lines.append(f"    s = tf.sign(s) * tf.sqrt(tf.abs(s) + {eps!r})")
    if kw["l2_normalize"]:
        lines += [
            "    squares = tf.reduce_sum(s * s, axis=1, keepdims=True)",
            "    positive = tf.logical_not(squares <= 0)  # NaN too: it must reach the output",
            "    norm = tf.where(positive, tf.sqrt(tf.where(positive, squares, tf.ones_like(squares))), tf.zeros_like(squares))",
            f"    s = s / tf.maximum(norm, {eps!r})  # F.normalize's floor (no 0 / 0 at a zero row)",
        ]
    lines.append("    return s")
    return _taped_channels_first(case, lines, "bilinear")


def mixed(case: Case) -> str:
    kw = case.kwargs
    kernel = list(as_int_tuple(kw["kernel_size"], 2, "kernel_size", case.op))
    stride = kernel if kw.get("stride") is None else list(as_int_tuple(kw["stride"], 2, "stride", case.op))
    padding = as_int_tuple(kw.get("padding", 0), 2, "padding", case.op)
    pads = [[0, 0], [padding[0]] * 2, [padding[1]] * 2, [0, 0]]
    lam = kw["lam"]
    terms = []
    if lam > 0:  # a term of weight 0 is left out, as the definition says (no 0 * inf)
        max_padding = pads if any(padding) else "VALID"
        terms.append(f"{lam!r} * tf.nn.max_pool2d(x_t, {kernel}, {stride}, padding={max_padding!r})")
    if lam < 1:  # zeros padded in and VALID: PyTorch's count_include_pad=True
        terms.append(f"{1 - lam!r} * tf.nn.avg_pool2d(tf.pad(x_t, {pads!r}), {kernel}, {stride}, padding='VALID')")
    return taped_source(case, " + ".join(terms))


def blur_pool(case: Case) -> str:
    """kornia's blur pools: zeros padded in ((k - 1) // 2 before, k // 2 after), then a depthwise
    convolution with the normalised binomial kernel (Pascal's row, outer product); for max-blur
    pooling a stride-1 max pool first."""
    kw = case.kwargs
    k, s = kw["kernel_size"], kw.get("stride", 2)
    row = [float(math.comb(k - 1, i)) for i in range(k)]
    pads = [[0, 0], [(k - 1) // 2, k // 2], [(k - 1) // 2, k // 2], [0, 0]]
    source = "x_t"
    if case.op == "max_blur_pool2d":
        m = kw.get("max_pool_size", 2)
        source = f"tf.nn.max_pool2d(x_t, {m}, 1, padding='VALID')"
    definitions = [
        f"row = np.array({row!r}) / {sum(row)!r}  # Pascal's row, normalised",
        "filters = np.outer(row, row)[:, :, None, None] * np.ones((1, 1, x.shape[1], 1))  # (k, k, C, 1)",
    ]
    call = (f"tf.nn.depthwise_conv2d(tf.pad({source}, {pads!r}), tf.constant(filters, dtype=x_t.dtype), "
            f"strides=[1, {s}, {s}, 1], padding='VALID')")
    return "\n".join(definitions) + "\n" + taped_source(case, call)
