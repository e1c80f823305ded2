r"""The JAX adapter's ``jax.vjp`` source template and the checks of its ``"composition"`` rows
(:mod:`poolref.oracle.jax_adapter`): the ops JAX lacks, built from its own.

Each function returns the *source code* of one check, the lines a reader can paste to reproduce it:
they define the op from ``jnp``, ``lax`` and ``map_coordinates`` (names the adapter's ``IMPORTS``
provide) and run it, with its gradients, under :func:`vjp_source`'s ``jax.vjp`` in float64, reading
``x`` (and the op's other arrays) and leaving ``y`` and ``grad_<name>``. The compositions are written
from each op's definition, independently of poolref's array code: GeM, LSE, SoftPool (``jax.nn.softmax``
over strided taps), bilinear pooling (``jnp.einsum``), mixed pooling (``reduce_window`` max + add) and
stochastic pooling at inference (``sum(a^2) / sum(a)`` over strided taps), DynOPool
(``map_coordinates`` at DynOPool's query points, docs/dynopool.rst) and kornia's blur pools
(``lax.conv_general_dilated`` on each channel, after a stride-1 ``reduce_window`` max for max-blur
pooling).
"""

from __future__ import annotations

import math

import numpy

from .._geometry import as_int_tuple
from ..cases.case import Case

__all__ = ["vjp_source", "spatial_axes", "gem", "lse", "soft_pool", "stochastic_expectation", "mixed", "blur_pool", "bilinear",
           "dynopool"]


def vjp_source(case: Case, function: str, gradients: bool = True) -> str:
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


def spatial_axes(case: Case) -> tuple:
    return tuple(range(2, case.x.ndim))


def _taps(case: Case) -> str:
    """``taps(x)``: (N, C, kh*kw, H_out, W_out), tap (i, j) of every unpadded window, by strided
    slicing (a gather: an infinity in one tap cannot leak into another, as a patches convolution's
    0 * inf would)."""
    kw = case.kwargs
    kernel = as_int_tuple(kw["kernel_size"], 2, "kernel_size", case.op)
    stride = kernel if kw.get("stride") is None else as_int_tuple(kw["stride"], 2, "stride", case.op)
    spans = [s * ((L - k) // s) + 1 for L, k, s in zip(case.x.shape[-2:], kernel, stride)]
    return "\n".join([
        "def taps(x):  # (N, C, kh*kw, H_out, W_out): tap (i, j) of every window",
        f"    return jnp.stack([x[:, :, i:i + {spans[0]}:{stride[0]}, j:j + {spans[1]}:{stride[1]}]",
        f"                      for i in range({kernel[0]}) for j in range({kernel[1]})], axis=2)",
    ])


def gem(case: Case) -> str:
    axes, eps = spatial_axes(case), case.kwargs.get("eps", 1e-6)
    return "\n".join([
        "def gem(x, p):  # the plane's largest clamped value factored out: no power overflows",
        "    # max(x, eps), the gradient passing where x >= eps (torch.clamp's rule, GeM's definition): none to a NaN",
        f"    z = jnp.where(x >= {eps!r}, x, lax.stop_gradient(jnp.maximum(x, {eps!r})))",
        f"    largest = lax.stop_gradient(jnp.max(z, axis={axes!r}, keepdims=True))  # y does not depend on it",
        "    scale = jnp.where(jnp.isfinite(largest), largest, 1.0)  # an infinite maximum is not factored out",
        f"    return scale * jnp.mean((z / scale) ** p, axis={axes!r}, keepdims=True) ** (1 / p)",
        "",
        vjp_source(case, "gem"),
    ])


def lse(case: Case) -> str:
    axes, r = spatial_axes(case), case.kwargs["r"]
    return "\n".join([
        "def lse(x):  # max + log1p(mean(expm1(r (x - max)))) / r: no overflow, and the digits of tiny r x kept",
        f"    largest = lax.stop_gradient(jnp.max(x, axis={axes!r}, keepdims=True))",
        "    shift = jnp.where(jnp.isfinite(largest), largest, 0.0)  # as logsumexp: an infinite maximum is not subtracted",
        f"    return shift + jnp.log1p(jnp.mean(jnp.expm1({r!r} * (x - shift)), axis={axes!r}, keepdims=True)) / {r!r}",
        "",
        vjp_source(case, "lse"),
    ])


def soft_pool(case: Case) -> str:
    return "\n".join([
        _taps(case),
        "",
        "def soft_pool(x):  # the softmax-weighted mean of each window",
        "    t = taps(x)",
        "    return jnp.sum(jax.nn.softmax(t, axis=2) * t, axis=2)",
        "",
        vjp_source(case, "soft_pool"),
    ])


def stochastic_expectation(case: Case) -> str:
    return "\n".join([
        _taps(case),
        "",
        "def expectation(x):  # sum(a^2) / sum(a) per window (0 where it sums to 0), the maximum factored out",
        "    t = taps(x)",
        "    largest = lax.stop_gradient(jnp.max(t, axis=2, keepdims=True))",
        "    scale = jnp.where(largest > 0, largest, 1.0)",
        "    ratios = t / scale",
        "    total, squares = jnp.sum(ratios, axis=2), jnp.sum(ratios * ratios, axis=2)",
        "    nonzero = total > 0",
        "    return jnp.where(nonzero, scale[:, :, 0] * squares / jnp.where(nonzero, total, 1.0), 0.0)",
        "",
        vjp_source(case, "expectation"),
    ])


def mixed(case: Case) -> str:
    kw = case.kwargs
    kernel = as_int_tuple(kw["kernel_size"], 2, "kernel_size", case.op)
    stride = kernel if kw.get("stride") is None else as_int_tuple(kw["stride"], 2, "stride", case.op)
    padding = as_int_tuple(kw.get("padding", 0), 2, "padding", case.op)
    window = (f"(1, 1) + {kernel!r}, (1, 1) + {stride!r}, ((0, 0), (0, 0)) + {tuple((p, p) for p in padding)!r}")
    lam = kw["lam"]
    terms = []
    if lam > 0:  # a term of weight 0 is left out, as the definition says (no 0 * inf)
        terms.append(f"{lam!r} * lax.reduce_window(x, -jnp.inf, lax.max, {window})")
    if lam < 1:  # PyTorch's count_include_pad=True: every tap of the window counts, padding included
        terms.append(f"{1 - lam!r} * lax.reduce_window(x, 0.0, lax.add, {window}) / {math.prod(kernel)}")
    return vjp_source(case, "lambda x: " + " + ".join(terms))


def blur_pool(case: Case) -> str:
    """kornia's blur pools: Pascal's row, normalised, as a convolution of every channel on its own (the
    channels folded into the batch) with (k - 1) // 2 zeros before and k // 2 after; for max-blur
    pooling a stride-1 max first.

    Not ``feature_group_count=C``: in float64 XLA's CPU depthwise convolution multiplies each channel
    by the zero weights linking it to the others, so a NaN or an infinity in one channel makes NaN in
    every other (the forward, and the input gradient of a non-finite upstream gradient; JAX 0.10,
    defects JAX_DEPTHWISE_FLOAT64 and JAX_GROUPED_NONFINITE_GRADIENT), which is no part of the blur
    pools' definition.
    """
    kw = case.kwargs
    k, s = kw["kernel_size"], kw.get("stride", 2)
    row = [float(math.comb(k - 1, i)) for i in range(k)]
    pads = ((k - 1) // 2, k // 2)
    lines = [
        f"row = np.array({row!r}) / {sum(row)!r}  # Pascal's row, normalised",
        "kernel = np.outer(row, row)[None, None]  # (1, 1, k, k)",
        "",
        "def blur(x):  # (N, C, H, W): every channel filtered on its own, as a batch of one-channel planes",
        "    planes = x.reshape((x.shape[0] * x.shape[1], 1) + x.shape[2:])",
        f"    y = lax.conv_general_dilated(planes, jnp.asarray(kernel, x.dtype), {(s, s)!r}, {(pads, pads)!r},",
        "                                 dimension_numbers=('NCHW', 'OIHW', 'NCHW'))",
        "    return y.reshape(x.shape[:2] + y.shape[2:])",
        "",
    ]
    step = "blur(batched)"
    if case.op == "max_blur_pool2d":
        m = kw.get("max_pool_size", 2)
        step = f"blur(lax.reduce_window(batched, -jnp.inf, lax.max, (1, 1, {m}, {m}), (1, 1, 1, 1), 'VALID'))"
    lines += [
        "def pool(x):  # unbatched (C, H, W) as a batch of one",
        "    batched = x if x.ndim == 4 else x[None]",
        f"    y = {step}",
        "    return y if x.ndim == 4 else y[0]",
        "",
        vjp_source(case, "pool"),
    ]
    return "\n".join(lines)


def bilinear(case: Case) -> str:
    kw = case.kwargs
    eps = kw.get("eps", 1e-12)
    lines = [
        "def bilinear(x, *second):  # B = x y^T / P flattened; signed sqrt; divided by max(||s||, eps)",
        "    N, P = x.shape[0], math.prod(x.shape[2:])",
        "    first = x.reshape(N, x.shape[1], P)",
        "    other = first if not second else second[0].reshape(N, second[0].shape[1], P)",
        "    s = jnp.einsum('ncl,ndl->ncd', first, other).reshape(N, first.shape[1] * other.shape[1]) / P",
    ]
    if kw["signed_sqrt"]:
        lines.append(f"    s = jnp.sign(s) * jnp.sqrt(jnp.abs(s) + {eps!r})")
    if kw["l2_normalize"]:
        lines += [
            "    squares = jnp.sum(s * s, axis=1, keepdims=True)",
            "    nonzero = ~(squares <= 0)  # NaN too: it must reach the output",
            "    norm = jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squares, 1.0)), 0.0)  # no 0 / 0 at a zero row",
            f"    s = s / jnp.maximum(norm, {eps!r})  # F.normalize's floor",
        ]
    lines += ["    return s", "", vjp_source(case, "bilinear")]
    return "import math\n" + "\n".join(lines)


def dynopool(case: Case) -> str:
    alpha = [float(a) for a in case.arrays["alpha"]]
    H, W = case.x.shape[-2:]
    sizes = [max(1, int(numpy.round(L / a))) for L, a in zip((H, W), alpha)]
    aggregate = case.kwargs["aggregate"]
    if aggregate == "max":  # the first of tied points (docs/dynopool.rst); jnp.max's gradient would split among ties
        reduce = "jnp.take_along_axis(points, jnp.argmax(points, axis=-1)[..., None], axis=-1)[..., 0]"
    else:
        reduce = "jnp.mean(points, axis=-1)"
    return "\n".join([
        "def queries(length, a, out_length):  # docs/dynopool.rst: u = (i + 1/4 + b/2) * L / O - 1/2, O straight-through",
        "    continuous = length / a",
        "    size = continuous + lax.stop_gradient(out_length - continuous)  # value O, derivative of L / alpha",
        "    phase = (jnp.arange(out_length)[:, None] + 0.25 + jnp.array([0.0, 0.5])[None, :]).reshape(-1)",
        "    return phase * (length / size) - 0.5",
        "",
        "def dynopool(x, alpha):",
        f"    rows, cols = queries({H}, alpha[0], {sizes[0]}), queries({W}, alpha[1], {sizes[1]})  # O = max(1, round(L / alpha))",
        "    grid = jnp.meshgrid(rows, cols, indexing='ij')",
        "    sample = lambda image: map_coordinates(image, grid, order=1, mode='nearest')  # clamped into the image",
        "    query = jax.vmap(jax.vmap(sample))(x)  # (N, C, 2 H_out, 2 W_out)",
        "    N, C = x.shape[:2]",
        f"    points = query.reshape(N, C, {sizes[0]}, 2, {sizes[1]}, 2).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, {sizes[0]}, {sizes[1]}, 4)",
        f"    return {reduce}",
        "",
        vjp_source(case, "dynopool" if "alpha" in case.grad_inputs else "lambda x: dynopool(x, jnp.asarray(alpha))"),
    ])
