r"""``interpolate``: separable resizing by each framework's taps, forward and backward (see the package's
notes)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from ... import _sampling_weights as weights
from ..._backend import array_module
from ..._checks import accumulation_dtype, as_array, check_element_count, check_flag, check_pool_input, is_int, is_real
from ..._geometry import check_convention
from ...autograd.function import apply, define_function
from ..adaptive import ADAPTIVE_AVG_POOL
from .checks import check_align_corners, check_choice

__all__ = ["interpolate"]

INTERPOLATE_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "bicubic", "area")
LINEAR_MODES = {"linear": 1, "bilinear": 2, "trilinear": 3}  # mode -> number of spatial dims
# the modes that interpolate between pixels (align_corners, antialias): the linear ones and bicubic
INTERPOLATING_MODES = {**LINEAR_MODES, "bicubic": 2}


# ==================================================================================================
# interpolate: which taps each axis reads, per framework
# ==================================================================================================
class AxisPlan(NamedTuple):
    """How one spatial axis is resized: the forward's table and the table the gradient is read with.

    ``forward`` is a :class:`~poolref._sampling_weights.Taps`, a
    :class:`~poolref._sampling_weights.Lerp` (TensorFlow's bilinear) or None (the axis is copied);
    ``backward`` is a Taps (L, K) reading the upstream gradient, or None (copied). The backward is
    the transpose of the forward, except where a framework's backward reads other taps than its
    forward (PyTorch's antialiased and TensorFlow's bilinear backward resample axes their forward
    copies; TensorFlow's antialiased gradient has spans of its own).
    """

    forward: object
    backward: object


def _transposed(taps) -> AxisPlan:
    """A plan whose backward is the transpose of its forward (None: an identity axis)."""
    if taps is None:
        return AxisPlan(None, None)
    return AxisPlan(taps, taps.transpose())


def _weighs_as_copy(taps: weights.Taps) -> bool:
    """Whether each output o weighs its own position o by 1 and every other tap by 0."""
    on_self = taps.index == numpy.arange(taps.out_length)[:, None]
    read = numpy.ones(taps.index.shape, bool) if taps.read is None else taps.read
    weight = numpy.where(read, taps.weight, 0.0)
    return bool(numpy.all(numpy.where(on_self, weight, 0.0).sum(axis=1) == 1.0) and numpy.all(weight[~on_self] == 0.0))


def _is_identity(taps: weights.Taps) -> bool:
    """A one-tap table that reads position o for output o: a copy."""
    return (taps.index.shape[1] == 1 and taps.out_length == taps.length
            and bool((taps.index[:, 0] == numpy.arange(taps.length)).all()))


def resize_plan(in_shape, out_shape, mode: str, align_corners: bool, antialias: bool, convention: str,
                scale_factors, dtype) -> tuple[tuple[AxisPlan, ...], tuple[int, ...]]:
    """Per spatial axis an :class:`AxisPlan`, and the order in which the axes are resized.

    The rules are the frameworks' own (poolref._sampling_weights). The order follows each
    framework's loops (the last axis first, except TensorFlow's antialiased resize, which resamples
    rows before columns); it changes only the rounding, except for TensorFlow's bilinear form, whose
    NaNs depend on it.
    """
    n = len(in_shape)
    last_first = tuple(reversed(range(n)))
    plans = []
    if convention == "torch":
        for L, O, s in zip(in_shape, out_shape, scale_factors):
            if mode in ("nearest", "nearest-exact"):
                # the forward's rule: PyTorch's 2-D kernel takes nearest's shortcuts (a copy at O = L,
                # o // 2 at O = 2L, whatever the scale factor), its 1-D and 3-D kernels do not; its
                # backward takes them in every dimension, so that in 1-D and 3-D it is not the
                # forward's adjoint (poolref.oracle.defects): poolref's is
                taps = weights.torch_nearest(L, O, s, exact=mode == "nearest-exact", shortcuts=n == 2)
                plans.append(_transposed(None if _is_identity(taps) else taps))
            elif mode == "area":
                raise ValueError("resize_plan: PyTorch's area mode is adaptive average pooling (ADAPTIVE_AVG_POOL), not a resize")
            elif mode == "bicubic" and not antialias:
                # PyTorch's forward resamples every axis, even one whose size does not change (its
                # neighbours read with weight 0); its backward copies the gradient when no spatial
                # size changes (upsample_bicubic2d_backward). Where the table is a copy (weight 1 on
                # the pixel itself) that changes only where a NaN or an infinity meets a zero weight,
                # and poolref reads as PyTorch does; where it is not (a scale factor other than 1),
                # PyTorch's gradient is not its forward's derivative (poolref.oracle.defects): poolref
                # returns the derivative.
                taps = weights.torch_cubic(L, O, align_corners, s, dtype)
                copies_back = tuple(in_shape) == tuple(out_shape) and _weighs_as_copy(taps)
                plans.append(AxisPlan(taps, None) if copies_back else _transposed(taps))
            elif antialias:
                # PyTorch's forward copies an axis whose size does not change, and its backward
                # resamples that axis all the same. Where the resampling table is a copy too (weight 1
                # on the pixel itself, 0 elsewhere) that changes only where a NaN or an infinity meets
                # a zero weight, and poolref reads as PyTorch does; where it is not (a scale factor
                # other than 1: PyTorch's gradient is then not its forward's derivative, a known
                # defect of PyTorch, poolref.oracle.defects) the axis's gradient is the copy's.
                taps = weights.torch_antialias(L, O, align_corners, s, dtype, cubic=mode == "bicubic")
                if O != L:
                    plans.append(_transposed(taps))
                else:
                    plans.append(AxisPlan(None, taps.transpose() if _weighs_as_copy(taps) else None))
            else:
                plans.append(_transposed(weights.torch_linear(L, O, align_corners, s, dtype)))
        return tuple(plans), last_first
    if convention == "tensorflow":
        if mode in ("bilinear", "bicubic") and antialias:
            for L, O in zip(in_shape, out_shape):
                forward, backward = weights.tf_antialias(L, O, cubic=mode == "bicubic")
                plans.append(AxisPlan(forward, backward))
            return tuple(plans), tuple(range(n))  # rows, then columns
        for L, O in zip(in_shape, out_shape):
            if mode in ("nearest", "nearest-exact"):
                taps = weights.tf_nearest(L, O, half_pixel=mode == "nearest-exact", align_corners=align_corners)
                plans.append(_transposed(None if _is_identity(taps) else taps))
            elif mode == "area":
                plans.append(_transposed(weights.tf_area(L, O, align_corners)))
            elif mode == "bicubic":  # ResizeBicubic resamples every axis, its gradient is the transpose
                plans.append(_transposed(weights.tf_cubic(L, O, align_corners)))
            else:
                lerp = weights.tf_bilinear(L, O, align_corners)
                plans.append(AxisPlan(lerp, lerp.weighted().transpose()))
        if mode == "bilinear" and tuple(in_shape) == tuple(out_shape):
            # ResizeBilinear copies an image whose size does not change; its gradient does not
            plans = [AxisPlan(None, plan.backward) for plan in plans]
        if mode == "bicubic":
            return tuple(plans), tuple(range(n))  # ResizeBicubic interpolates each column, then along the row
        return tuple(plans), last_first
    # jax: axes whose size does not change are left alone (jax.image.resize skips them)
    for L, O in zip(in_shape, out_shape):
        if O == L:
            plans.append(AxisPlan(None, None))
        elif mode == "nearest-exact":
            plans.append(_transposed(weights.jax_nearest(L, O)))
        else:
            method = {"area": "area", "bicubic": "cubic"}.get(mode, "linear")
            plans.append(_transposed(weights.jax_dense(L, O, method, antialias, dtype)))
    return tuple(plans), last_first


# ==================================================================================================
# interpolate: forward and backward
# ==================================================================================================
class InterpolateSaved(NamedTuple):
    plans: tuple  # per spatial axis: AxisPlan
    order: tuple  # the order in which the axes are resized
    dtype: numpy.dtype


def _interpolate_forward(x, *, mode: str, size: tuple, align_corners: bool, scale_factors: tuple,
                         antialias: bool, convention: str):
    xp = array_module(x)
    n = len(size)
    plans, order = resize_plan(x.shape[x.ndim - n:], size, mode, align_corners, antialias, convention,
                               scale_factors, x.dtype)
    # one axis at a time, (.., L_a, ..) -> (.., O_a, ..), each axis's taps gathered and weighed in
    # the accumulation dtype (float32 for float16), the result rounded once
    y = x.astype(accumulation_dtype(x.dtype), copy=False)
    for a in order:
        y = weights.resample(y, plans[a].forward, y.ndim - n + a)
    out = xp.empty(y.shape, dtype=x.dtype)
    out[...] = y
    return out, InterpolateSaved(plans, order, x.dtype)


# forward  y = A_1 A_2 ... A_n x      (one (O_a, L_a) resampling map per axis)
# backward grad_x = A_n^T ... A_1^T grad_y
def _interpolate_backward(saved: InterpolateSaved, grad_y):
    # forward:  y = A_1 A_2 ... A_n x, one (O_a, L_a) map per axis (separable);
    # backward: grad_x = A_n^T ... A_1^T grad_y, each transpose a gather table of its own (for each
    # input position, the outputs that read it, with their weights): the scatter-add of each
    # output's gradient onto exactly the taps the forward read, zero weights included (0 * inf is
    # NaN there, as in PyTorch), and onto no other. Where a framework's backward reads other taps
    # than its forward, the plan's backward table says so.
    n = len(saved.plans)
    grad = grad_y.astype(accumulation_dtype(saved.dtype), copy=False)
    for a in saved.order:
        grad = weights.resample(grad, saved.plans[a].backward, grad.ndim - n + a)
    xp = array_module(grad_y)
    grad_x = xp.empty(grad.shape, dtype=saved.dtype)
    grad_x[...] = grad
    return (grad_x,)


INTERPOLATE = define_function("interpolate", _interpolate_forward, _interpolate_backward)


# interpolate, like PyTorch's, has no unbatched form: said in every shape error, since an unbatched
# (C, H, W) image is read as a batch of 1-D signals (N, C, L) and fails only at the size
_BATCHED = ("; interpolate's x is always batched, (N, C, *spatial), as in PyTorch: "
            "a 3-D x is (N, C, L), so an unbatched (C, H, W) image needs a batch axis, x[None]")


def _output_size(x, n, size, scale_factor, recompute_scale_factor, op):
    """Resolve ``size`` / ``scale_factor`` into (output size, scale factors or Nones), PyTorch's way."""
    spatial = tuple(x.shape[x.ndim - n:])
    if size is not None and scale_factor is not None:
        raise ValueError(f"{op}: give only one of size and scale_factor, got size={size!r} and scale_factor={scale_factor!r}")
    if size is None and scale_factor is None:
        raise ValueError(f"{op}: give size or scale_factor, got size=None and scale_factor=None")
    recompute_scale_factor = check_flag(recompute_scale_factor, "recompute_scale_factor", op, none_ok=True)
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit size, got size={size!r} and recompute_scale_factor=True")
        if isinstance(size, (tuple, list)):
            if len(size) != n:
                raise ValueError(f"{op}: size must have one entry per spatial dimension ({n} for x with shape {tuple(x.shape)}), got size={size!r}{_BATCHED}")
            if not all(is_int(v) for v in size):
                raise TypeError(f"{op}: size must be an int or a sequence of {n} ints, got size={size!r}")
            out = tuple(int(v) for v in size)
        elif is_int(size):
            out = (int(size),) * n
        else:
            raise TypeError(f"{op}: size must be an int or a sequence of {n} ints, got size={size!r}")
        if any(v < 1 for v in out):
            raise ValueError(f"{op}: size must be positive, got size={size!r}")
        _check_output_count(x, out, "size", size, op)
        return out, (None,) * n
    if isinstance(scale_factor, (tuple, list)):
        if len(scale_factor) != n:
            raise ValueError(f"{op}: scale_factor must have one entry per spatial dimension ({n} for x with shape {tuple(x.shape)}), got scale_factor={scale_factor!r}{_BATCHED}")
        factors = tuple(scale_factor)
    else:
        factors = (scale_factor,) * n
    if not all(is_real(s) for s in factors):
        raise TypeError(f"{op}: scale_factor must be a number or a sequence of {n} numbers, got scale_factor={scale_factor!r}")
    factors = tuple(float(s) for s in factors)
    if not all(math.isfinite(s) and s > 0 for s in factors):
        raise ValueError(f"{op}: scale_factor must be finite and > 0, got scale_factor={scale_factor!r}")
    out = tuple(math.floor(L * s) for L, s in zip(spatial, factors))  # in float64, as PyTorch
    if any(v < 1 for v in out):
        raise ValueError(
            f"{op}: scale_factor={scale_factor!r} gives an empty output for x with shape {tuple(x.shape)} "
            f"(output size floor(L * scale_factor) = {out})"
        )
    _check_output_count(x, out, "scale_factor", scale_factor, op)
    return out, ((None,) * n if recompute_scale_factor else factors)


def _check_output_count(x, out, name, value, op):
    """Refuse an output (N, C, *out) beyond MAX_ELEMENTS at once (PyTorch refuses it at allocation)."""
    batch = math.prod(x.shape[: x.ndim - len(out)])
    shown = tuple(v if v < 10**15 else float(v) for v in out)  # 1e300 rather than 301 digits
    check_element_count(batch * math.prod(out), name, value, op, f"the output (spatial size {shown})")


RESIZE_CONVENTIONS = ("torch", "tensorflow", "jax")
# What each convention calls its modes (poolref's names: "nearest" reads the left edge, floor(o L/O),
# "nearest-exact" the pixel centre, floor((o + 1/2) L/O), in every convention)
CONVENTION_MODES = {
    "torch": INTERPOLATE_MODES,
    "tensorflow": ("nearest", "nearest-exact", "bilinear", "bicubic", "area"),
    "jax": ("nearest-exact", "linear", "bilinear", "trilinear", "bicubic", "area"),
}
DEFAULT_ANTIALIAS = {"torch": False, "tensorflow": False, "jax": True}


def _check_convention_mode(mode, convention, align_corners, antialias, x, op):
    """Refuse, with the reason, what the chosen framework's resize does not have."""
    if mode not in CONVENTION_MODES[convention]:
        if convention == "jax" and mode == "nearest":
            reason = "jax.image.resize's 'nearest' reads pixel centres: that is mode='nearest-exact'"
        elif convention == "tensorflow":
            reason = "tf.image.resize is 2-D: its linear mode is 'bilinear'"
        else:
            reason = f"its modes are {', '.join(map(repr, CONVENTION_MODES[convention]))}"
        raise ValueError(f"{op}: convention={convention!r} has no mode={mode!r} ({reason})")
    if convention == "torch":
        if antialias and mode not in ("bilinear", "bicubic"):
            raise ValueError(f"{op}: antialias=True is defined for mode='bilinear' and 'bicubic' on 4-D input only, as in PyTorch, got mode={mode!r}")
        return
    if convention == "tensorflow":
        if x.ndim != 4:
            raise ValueError(f"{op}: convention='tensorflow' resizes 2-D images only (tf.image.resize), got x with shape {tuple(x.shape)}")
        if align_corners and mode == "nearest-exact":
            raise ValueError(f"{op}: TensorFlow's half-pixel nearest has no align_corners (ResizeNearestNeighbor refuses both), got align_corners=True with mode='nearest-exact'")
        if align_corners and antialias and mode in ("bilinear", "bicubic"):
            raise ValueError(f"{op}: tf.compat.v1.image.resize_{mode}(align_corners=True) has no antialias, got align_corners=True and antialias=True")
        return
    if align_corners:
        raise ValueError(f"{op}: jax.image.resize has no align_corners, got align_corners=True")


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None, *, recompute_scale_factor=None,
                antialias=None, convention="torch"):
    r"""Resize ``x`` to a given size or by a scale factor, as PyTorch's ``interpolate`` (or as
    ``tf.image.resize`` / ``jax.image.resize`` with ``convention=``).

    Parameters
    ----------
    x : array or Tensor, shape (N, C, L), (N, C, H, W) or (N, C, D, H, W)
        Floating-point input; always batched (as PyTorch: a 3-D input is (N, C, L)). ``linear``
        needs (N, C, L), ``bilinear`` (N, C, H, W), ``trilinear`` (N, C, D, H, W).
    size : int or tuple of int, optional
        Output spatial size.
    scale_factor : float or tuple of float, optional
        Multiplier of each spatial size: the output size is :math:`\lfloor L \cdot s \rfloor`.
        Exactly one of ``size`` and ``scale_factor`` is given (``convention="torch"`` only).
    mode : {"nearest", "nearest-exact", "linear", "bilinear", "trilinear", "bicubic", "area"}
        ``bicubic`` needs (N, C, H, W) (``convention="torch"`` only).
    align_corners : bool, optional
        Linear and bicubic modes only (default False): True maps the corner pixel centres onto each other.
        With ``convention="tensorflow"`` it selects the legacy ``tf.compat.v1`` ops (also for
        ``mode="nearest"`` and ``"area"``).
    recompute_scale_factor : bool, optional
        With ``scale_factor``: True derives the scale from the sizes (``L/O``) instead of using
        ``1/scale_factor``.
    antialias : bool, optional
        Widen the linear kernel by the downsampling factor (a triangle filter). None means the
        convention's default: False for "torch" and "tensorflow", True for "jax". PyTorch has it
        for ``bilinear`` and ``bicubic`` only; TensorFlow and JAX ignore it for ``nearest`` and ``area``, and so
        does poolref under their conventions.
    convention : {"torch", "tensorflow", "jax"}
        Whose resize rules: ``torch.nn.functional.interpolate``, ``tf.image.resize`` (2-D only,
        ``size`` only) or ``jax.image.resize`` (``size`` only), including which taps each reads
        where values are NaN or infinite (see Notes and docs/ops/sampling.rst).

    Returns
    -------
    y : array or Tensor, shape ``(N, C, *size)``
        In the dtype of ``x``.

    Notes
    -----
    Separable: along each axis output :math:`o` reads a few positions with weights,
    :math:`y_o = \sum_k w_{o,k} \, x_{i_{o,k}}`, and the axes are resized one after the other
    (the weights of an n-linear tap multiply). With PyTorch's scale :math:`s = L/O`, or
    :math:`1/\mathrm{scale\_factor}` when a scale factor was given (unless
    ``recompute_scale_factor``):

    * ``nearest`` reads :math:`\lfloor o\,s \rfloor`, ``nearest-exact``
      :math:`\lfloor (o + 1/2)\,s \rfloor`, both capped at :math:`L - 1` and computed in float32
      as PyTorch does (:func:`~poolref._sampling_weights.nearest_indices`);
    * linear modes read :math:`c = \max(s (o + 1/2) - 1/2, 0)`, or :math:`c = o (L - 1)/(O - 1)`
      with ``align_corners``, blending :math:`i_0 = \lfloor c \rfloor` (``floorf``) with weight
      :math:`1 - (c - i_0)` and :math:`i_0 + 1` (or :math:`i_0` again at the last pixel) with
      weight :math:`c - i_0`; an axis with :math:`O = L` reads :math:`x_o` with weight 1 and
      again with weight 0 (:func:`~poolref._sampling_weights.torch_linear`);
    * ``antialias=True`` (bilinear): output :math:`o` averages the window
      :math:`|i + 1/2 - s(o + 1/2)| < \max(s, 1)` with triangle weights
      :math:`1 - |i + 1/2 - s(o + 1/2)|/\max(s, 1)`, normalized
      (:func:`~poolref._sampling_weights.torch_antialias`);
    * ``bicubic`` reads :math:`\mathrm{clip}(\lfloor c \rfloor - 1 + k, 0, L - 1)`, :math:`k = 0..3`,
      at :math:`c = s (o + 1/2) - 1/2` (not clamped at 0) or :math:`c = s\,o` aligned, with Keys'
      cubic weights :math:`k(1 + t), k(t), k(1 - t), k(2 - t)`, :math:`t = c - \lfloor c \rfloor`,
      :math:`a = -3/4` (:func:`~poolref._sampling_weights.torch_cubic`); with ``antialias=True`` the
      cubic with :math:`a = -1/2` over :math:`2 \max(s, 1)` pixels each side, normalized (the
      window rule of the antialiased triangle). PyTorch's bicubic backward copies the gradient when
      no spatial size changes, and so does poolref where that copy is the derivative;
    * ``area`` is adaptive average pooling, as in PyTorch (whose ``interpolate`` calls
      ``adaptive_avg_pool{1,2,3}d``): poolref calls :func:`~poolref.adaptive_avg_pool2d`'s forward and
      backward too, so the two agree to the bit. Output :math:`o` is the mean of its box of bins
      :math:`[\lfloor oL/O \rfloor, \lceil (o+1)L/O \rceil)`.

    ``convention="tensorflow"``: ``nearest-exact`` is ``tf.image.resize(method="nearest")``,
    ``bilinear`` is ``method="bilinear"`` (half-pixel centres, computed as
    :math:`a + (b - a) t`, columns then rows), ``area`` is ``method="area"`` (each input pixel
    weighted by the fraction of it the output pixel covers: any sizes), ``antialias=True`` with
    ``bilinear`` is TensorFlow's ``scale_and_translate`` triangle; ``align_corners=True`` selects
    ``tf.compat.v1.image.resize_bilinear(align_corners=True)`` (or ``resize_nearest_neighbor`` /
    ``resize_area`` with it), and ``mode="nearest"`` the legacy
    ``tf.compat.v1.image.resize_nearest_neighbor`` (:math:`\lfloor o s \rfloor`); ``bicubic`` is
    ``method="bicubic"`` (``ResizeBicubic``: Keys :math:`a = -1/2`, taps off the image weighted 0 and
    the rest renormalized, weights from a table of 1/1024 steps; with ``antialias`` the
    ``keyscubic`` kernel of ``scale_and_translate``), and with ``align_corners=True``
    ``tf.compat.v1.image.resize_bicubic(align_corners=True)`` (:math:`a = -3/4`). Coordinates are
    float32 as in TensorFlow; the sums run in the accumulation dtype (TensorFlow's are float32
    whatever the input, and it returns float32 for ``bilinear`` and ``area``).

    ``convention="jax"``: ``nearest-exact`` is ``jax.image.resize(method="nearest")``, the linear
    modes ``"linear"``, ``bicubic`` ``"cubic"`` (Keys :math:`a = -1/2`) and ``area`` ``"area"``, each a dense weight matrix per axis computed in
    float64 (as JAX with ``jax_enable_x64``), ``antialias`` True by default; axes whose size does
    not change are left alone.

    Backward, the transpose: :math:`\partial L/\partial x_i = \sum_{o,k:\, i_{o,k} = i} w_{o,k}
    \, \partial L/\partial y_o`, applied one axis at a time as a gather of exactly the taps the
    forward read (a NaN or infinite gradient reaches only those inputs, and a zero weight times an
    infinite gradient is NaN, as in the frameworks). Where a framework's backward reads other taps
    than its forward and the same derivative, poolref reads as it does: PyTorch's antialiased backward
    resamples axes whose size does not change (its forward copies them) with a table that is a copy
    too, TensorFlow's bilinear gradient does so too, and TensorFlow's antialiased gradient reads
    windows of its own. Where PyTorch's resampling of such an axis is not a copy (a scale factor
    other than 1), its gradient is not its forward's derivative; poolref returns the derivative. TensorFlow has no gradient for
    ``area`` (poolref returns the true one).

    Examples
    --------
    >>> import numpy as np, poolref
    >>> x = np.array([[[0., 2.]]])
    >>> poolref.interpolate(x, size=4)
    array([[[0., 0., 2., 2.]]])
    >>> poolref.interpolate(x, scale_factor=2, mode="linear")
    array([[[0. , 0.5, 1.5, 2. ]]])
    >>> poolref.interpolate(np.array([[[0., 2., 4., 6.]]]), size=2, mode="area")
    array([[[1., 5.]]])
    >>> line = np.array([[[0., 1., 2., 3., 4., 5.]]])
    >>> poolref.interpolate(line, size=2, mode="linear", convention="jax")  # antialiased
    array([[[1.25, 3.75]]])
    >>> poolref.interpolate(line, size=2, mode="linear", convention="jax", antialias=False)
    array([[[1., 4.]]])
    """
    op = "interpolate"
    convention = check_convention(convention, op, RESIZE_CONVENTIONS)
    antialias = check_flag(antialias, "antialias", op, none_ok=True)  # None: the convention's default
    antialias = DEFAULT_ANTIALIAS[convention] if antialias is None else antialias
    check_choice(mode, "mode", INTERPOLATE_MODES, op)
    x = as_array(x, "x", op)
    if mode in INTERPOLATING_MODES:
        n = INTERPOLATING_MODES[mode]
        if x.ndim != n + 2:
            layout = ("(N, C, L)", "(N, C, H, W)", "(N, C, D, H, W)")[n - 1]
            raise ValueError(f"{op}: mode={mode!r} needs x of shape {layout}, got x with shape {tuple(x.shape)}{_BATCHED}")
        align_corners = False if align_corners is None else check_align_corners(align_corners, op)
    else:
        if x.ndim not in (3, 4, 5):
            raise ValueError(f"{op}: x must have shape (N, C, L), (N, C, H, W) or (N, C, D, H, W), got x with shape {tuple(x.shape)}{_BATCHED}")
        n = x.ndim - 2
        if align_corners is not None and convention != "tensorflow":
            raise ValueError(
                f"{op}: align_corners can only be set with the linear modes (linear, bilinear, trilinear), "
                f"got align_corners={align_corners!r} with mode={mode!r}"
            )
        align_corners = False if align_corners is None else check_align_corners(align_corners, op)
    _check_convention_mode(mode, convention, align_corners, antialias, x, op)
    if convention != "torch":
        if scale_factor is not None or recompute_scale_factor is not None:
            name = "tf.image.resize" if convention == "tensorflow" else "jax.image.resize"
            raise ValueError(
                f"{op}: convention={convention!r} takes a size only ({name} has no scale factor), "
                f"got scale_factor={scale_factor!r} and recompute_scale_factor={recompute_scale_factor!r}"
            )
        antialias = antialias and mode in INTERPOLATING_MODES  # TensorFlow and JAX ignore it for nearest and area
    x = check_pool_input(x, n, op, integer_ok=False)
    size, scale_factors = _output_size(x, n, size, scale_factor, recompute_scale_factor, op)
    if mode == "area" and convention == "torch":
        # PyTorch's area mode is adaptive average pooling (torch.nn.functional.interpolate calls
        # adaptive_avg_pool{1,2,3}d with the output size): the same op, forward and backward
        return apply(ADAPTIVE_AVG_POOL, x, output_size=size)
    return apply(INTERPOLATE, x, mode=mode, size=size, align_corners=bool(align_corners), scale_factors=scale_factors,
                 antialias=antialias, convention=convention)
