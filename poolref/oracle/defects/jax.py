r"""JAX 0.10's known defects (CPU, under ``jax.jit`` as the oracle runs it).

* ``jnp.max`` shares its gradient among tied maxima and gives +0 of tied zeros (-0 only when all are);
* the gradient of ``lax.reduce_window(lax.add)`` along an axis of length 1 whose dilated window lies
  wholly in the padding reaches the lone element anyway (eagerly it does not);
* ``jax.vjp`` of a strided ``lax.conv_general_dilated`` can abort the process (only the abort is
  excused: a case that runs is compared);
* a float64 depthwise convolution, and a grouped one under a non-finite upstream gradient, mix the
  groups (the first modelled, the second excused for the gradients only);
* its float64 convolution's weight gradient leaves out the zero padding (modelled).

Each is a :class:`~poolref.oracle.mapping.KnownDefect`; see :mod:`poolref.oracle.defects`.
"""

from __future__ import annotations

import numpy

from ..._geometry import pool_geometry
from ...cases.case import Case
from ...cases.learned import conv_pads
from ..mapping import KnownDefect
from .common import as_pair, reduce_max_model, weight_gradient_without_padding

__all__ = ["JAX_MIXED_POOL_MAX_ROUTING", "JAX_MAX_BLUR_ROUTING", "JAX_CONV_PADDING_GRADIENT", "JAX_REDUCE_MAX", "JAX_REDUCE_WINDOW_LENGTH_ONE", "JAX_CONV_ABORT", "JAX_DEPTHWISE_FLOAT64", "JAX_GROUPED_NONFINITE_GRADIENT"]


JAX_REDUCE_MAX = KnownDefect(
    "jnp.max shares its gradient evenly among tied maxima (PyTorch, and poolref, give it to the first), gives +0 of "
    "tied zeros (-0 only when all are -0), and under jax.jit (as the oracle runs it) 0 to the other elements whatever "
    "the upstream gradient and 0 everywhere where the maximum is NaN (eagerly it multiplies by 0: an infinite or NaN "
    "upstream gradient gives NaN off the maximum, and a NaN maximum NaN everywhere)",
    lambda case: True, affects=("output", "grad_x"),  # modelled exactly: it hides nothing
    model=lambda case, ours, cotangent: reduce_max_model(case, ours, cotangent, last_zero=False, nan_gradient=0.0,
                                                         zero_elsewhere=True))


def _dilated_window_on_a_length_one_axis(case: Case) -> bool:
    """An avg pooling case with an axis of length 1 whose dilated window (kernel > 1) lies wholly in
    the padding: no tap reads the axis's only element."""
    if not case.op.startswith("avg_pool"):
        return False
    kw = case.kwargs
    n = case.x.ndim - (2 if case.batched else 1)
    geometry = pool_geometry(case.x.shape[-n:], kw["kernel_size"], kw.get("stride"), kw.get("padding", 0),
                             kw.get("dilation", 1), kw.get("ceil_mode", False), "jax", case.op)
    return any(axis.length == 1 and axis.kernel > 1 and axis.dilation > 1 and not axis.inside().any()
               for axis in geometry.axes)


JAX_REDUCE_WINDOW_LENGTH_ONE = KnownDefect(
    "under jax.jit (as the oracle runs it), the gradient of lax.reduce_window(lax.add) along an axis of length 1, "
    "with a dilated window of 2 taps wholly in the 'same' padding, hands the window's upstream gradient to the lone "
    "element, which the window never reads (eagerly: 0, as the derivative is): x of shape (1, 1, 1), window (1, 2, "
    "1), dilation (1, 2, 1), upstream -1.8 gives -1.8; averaging then divides by the window's count of 0 (-inf)",
    _dilated_window_on_a_length_one_axis, affects=("grad_x",))


def _strided(case: Case) -> bool:
    """Strides, dilated or not, in any dtype (aborts seen in float32, in float64, and in float64 with
    groups); an in-process run draws none of them, a run in workers compares every one that runs."""
    return any(s > 1 for s in as_pair(case.kwargs.get("stride", 1)))


JAX_CONV_ABORT = KnownDefect(
    "jax.vjp of lax.conv_general_dilated aborts the process (XLA's algebraic simplifier: 'Check failed: ... Window "
    "dimensions do not match RHS shape') on some input gradients (the weight gradients of the same cases run) with "
    "strides, every one seen with an output axis shorter than the kernel: in float32 with dilation, e.g. x (1, 2, 4, "
    "4), w (1, 2, 2, 3), stride (2, 2), padding (1, 1), dilation (1, 2), and without, e.g. x (1, 2, 5, 8), w (2, 2, 3, "
    "2), stride (2, 2), padding (0, 1), or x (1, 2, 4, 6), w (2, 2, 3, 2), stride (1, 2), padding (0, 1) (also in "
    "float64); in float64, e.g. x (1, 1, 7, 6), w (1, 1, 3, 2), stride (2, 2), padding (0, 1), dilation (2, 1); with "
    "groups, e.g. x (1, 2, 3, 4), w (2, 1, 2, 2), groups 2, stride (1, 2), padding (0, 1), dilation (2, 1) in float64 "
    "(float32 runs). Only an abort is excused: a case that runs is compared",
    _strided, affects=("abort",))


def _float64_depthwise_nonfinite(case: Case) -> bool:
    """A float64 conv2d with one input channel per group (and several groups) on an input with NaN or
    infinities."""
    groups = case.kwargs.get("groups", 1)
    return (case.op == "conv2d" and case.dtype == numpy.float64 and groups > 1 and case.arrays["weight"].shape[1] == 1
            and not numpy.isfinite(case.x).all())


def _dense_block_diagonal_output(case: Case, ours, cotangent):
    """XLA's output: the convolution by the dense (C_out, C_in) weight that is zero off each group's
    block, so a NaN or an infinity of any channel meets a zero weight (NaN) in every output reading its
    position (the gradients are right)."""
    from ...ops.convolution import conv2d

    weight, groups = case.arrays["weight"], case.kwargs["groups"]
    c_out, per_group = weight.shape[0] // groups, weight.shape[1]
    dense = numpy.zeros((weight.shape[0], groups * per_group) + weight.shape[2:], dtype=weight.dtype)
    for g in range(groups):  # the groups' blocks on the diagonal
        dense[g * c_out:(g + 1) * c_out, g * per_group:(g + 1) * per_group] = weight[g * c_out:(g + 1) * c_out]
    kwargs = {k: v for k, v in case.kwargs.items() if k not in ("groups", "convention")}
    with numpy.errstate(all="ignore"):
        values = conv2d(case.arrays["x"], dense, case.arrays["bias"], **kwargs)
    return ours._replace(values=values)


JAX_DEPTHWISE_FLOAT64 = KnownDefect(
    "lax.conv_general_dilated with feature_group_count = C_in in float64 (a depthwise convolution) computes, on the "
    "CPU, the dense convolution whose weight is zero outside each group's block: a NaN or an infinity in one channel "
    "makes every other group's output at the positions that read it NaN (0 * inf); float32, and groups of several "
    "channels, are right, and so are the gradients",
    _float64_depthwise_nonfinite, affects=("output",), model=_dense_block_diagonal_output)


def _float64_padded_conv_nonfinite_gradient(case: Case) -> bool:
    return (case.op == "conv2d" and case.dtype == numpy.float64 and case.input_class == "nonfinite_gradient"
            and any(p for pair in conv_pads(case) for p in pair))


JAX_CONV_PADDING_GRADIENT = KnownDefect(
    "jax.vjp of lax.conv_general_dilated in float64 leaves the zero padding out of the weight gradient: a NaN or an "
    "infinity of the upstream gradient over a tap that reads padding adds nothing, where PyTorch's float64 (which "
    "poolref follows) multiplies the padding's 0 (0 * inf = NaN): a 3 x 3 kernel with padding 1 and an infinite "
    "upstream entry at output (0, 0) gives 0 NaN, poolref 5 (float32 is refused: XLA's kernel leaves the padding out "
    "in some cases and not in others)",
    _float64_padded_conv_nonfinite_gradient, affects=("grad_weight",), model=weight_gradient_without_padding)


def _grouped_nonfinite_gradient(case: Case) -> bool:
    return case.op == "conv2d" and case.kwargs.get("groups", 1) > 1 and case.input_class == "nonfinite_gradient"


JAX_GROUPED_NONFINITE_GRADIENT = KnownDefect(
    "jax.vjp of lax.conv_general_dilated with feature_group_count > 1 sends a NaN or an infinity of the upstream "
    "gradient into other groups on the CPU: in float64 to every input channel's gradient when each group has one "
    "output channel, whatever its input channels (C 3, groups 3: NaN in 4, 4, 4 positions of the three channels for "
    "4, 0, 0; C_in 6, C_out 3: 4 in all six), in float32 to the weight gradient of the matching output channel of "
    "every group (C_out 6, groups 3: 4, 0, 4, 0, 4, 0 NaN for 4, 0, 0, 0, 0, 0), unless each group has one input and "
    "one output channel; finite gradients are right",
    _grouped_nonfinite_gradient, affects=("grad_x", "grad_weight"))


# --------------------------------------------------------------------------------------------------
# The compositions' max: lax.reduce_window's routing (poolref's convention="jax" max), where poolref's
# mixed and max-blur pooling follow PyTorch's (kornia's) max_pool2d
# --------------------------------------------------------------------------------------------------
def _with_jax_max(composed):
    """A model from ``composed(case, x)``, the mapping's composition written with poolref ops on the
    tape (its max with ``convention="jax"``): JAX's output, and its input gradient under the case's
    cotangent."""
    def model(case: Case, ours, cotangent):
        from ...autograd import vjp

        with numpy.errstate(all="ignore"):  # inf - inf and 0 * inf are NaN here as in XLA
            values, pullback = vjp(lambda x: composed(case, x), case.x)
            (grad,) = pullback(cotangent)
        return ours._replace(values=values, grads={**ours.grads, "x": grad})
    return model


def _mixed_composition(case: Case, x):
    """``lam * reduce_window(max) + (1 - lam) * reduce_window(add) / (k_H k_W)`` (the adapter's
    composition): the max with reduce_window's rules, the average counting the padding as
    poolref's mixed_pool2d does (its windows never overhang the padding, so its divisor is k_H k_W)."""
    from ...ops.window.average import avg_pool2d
    from ...ops.window.max import max_pool2d

    kw = case.kwargs
    lam, window = kw["lam"], (kw["kernel_size"], kw.get("stride"), kw.get("padding", 0))
    terms = []  # a term of weight 0 is left out, in the composition as in poolref (no 0 * inf)
    if lam > 0:
        terms.append(lam * max_pool2d(x, *window, convention="jax"))
    if lam < 1:
        terms.append((1 - lam) * avg_pool2d(x, *window, count_include_pad=True))
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def _mixed_max_differs(case: Case) -> bool:
    """mixed_pool2d with a max part (lam > 0) on a NaN, or on a -inf with padding: where
    reduce_window's gradient can leave PyTorch's argmax."""
    if case.op != "mixed_pool2d" or case.kwargs["lam"] == 0 or case.x.dtype.kind != "f":
        return False
    padded = any(as_pair(case.kwargs.get("padding", 0)))
    return bool(numpy.isnan(case.x).any() or (padded and numpy.isneginf(case.x).any()))


JAX_MIXED_POOL_MAX_ROUTING = KnownDefect(
    "mixed pooling composed as lam * lax.reduce_window(max) + (1 - lam) * reduce_window(add) / k routes the max "
    "part's gradient as reduce_window does (poolref's max_pool2d(convention='jax')), not to PyTorch's argmax (which "
    "poolref's mixed_pool2d takes): a window with a NaN sends it to the first maximum after its last NaN (to that NaN "
    "where it ends the window), and a window of only -inf that starts in the -inf padding sends it to the padding "
    "(the first of tied taps), where it is dropped. Kernel (1, 2), stride (1, 2), padding (0, 1), lam 0.5 on x = "
    "[[-inf, -inf, -inf, -inf]] (1 x 4) with upstream [[1, 2, 3]]: both output [[-inf, -inf, -inf]], JAX's gradient "
    "[[0.25, 1.5, 0.5, 2.25]], poolref's [[0.75, 1.5, 0.5, 2.25]] (the average part's 0.25 g per cell is the same; the "
    "max part's 0.5 of the first window goes to the padding)",
    _mixed_max_differs, affects=("grad_x",), model=_with_jax_max(_mixed_composition))


def _max_blur_composition(case: Case, x):
    """``blur(reduce_window(max, stride 1, 'VALID'))`` (the adapter's composition): the max with
    reduce_window's rules, the blur poolref's (kornia's zero-padded binomial filter)."""
    from ...ops.blur import blur_pool2d
    from ...ops.window.max import max_pool2d

    kw = case.kwargs
    pooled = max_pool2d(x, kw.get("max_pool_size", 2), 1, convention="jax")  # (.., H - m + 1, W - m + 1)
    return blur_pool2d(pooled, kw["kernel_size"], kw.get("stride", 2))


def _max_blur_nan(case: Case) -> bool:
    return case.op == "max_blur_pool2d" and case.x.dtype.kind == "f" and bool(numpy.isnan(case.x).any())


JAX_MAX_BLUR_ROUTING = KnownDefect(
    "max-blur pooling composed as a stride-1 lax.reduce_window max and a per-channel conv_general_dilated routes "
    "the max's gradient as reduce_window does (poolref's max_pool2d(convention='jax')), not as kornia's max_pool2d "
    "(PyTorch's, which poolref's max_blur_pool2d follows): a window with a NaN sends it to the first maximum after "
    "its last NaN, to that NaN where it ends the window, PyTorch to the last NaN. max_pool_size 2, kernel_size 1, "
    "stride 1 (the blur then the identity) on x = [[1, nan, 3], [nan, 2, 0]] with upstream [[1, 2]]: both output "
    "[[nan, nan]], JAX's gradient [[0, 0, 2], [0, 1, 0]] (read row by row, each window's first maximum after its last "
    "NaN: the 2, the 3), poolref's [[0, 2, 0], [1, 0, 0]] (each window's last NaN)",
    _max_blur_nan, affects=("grad_x",), model=_with_jax_max(_max_blur_composition))
