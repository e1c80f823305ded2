r"""Batch normalization (Ioffe and Szegedy 2015), with PyTorch's training and evaluation rules.

In training each channel is normalised by the mean and the *biased* variance of its values over the
batch and the spatial positions, and the running estimates move towards the batch's mean and
*unbiased* variance (:math:`\frac{M}{M-1}` times the biased one, ``M`` values per channel) by
``momentum``; in evaluation the running estimates normalise instead, and the op is an affine map
per channel. These are ``torch.nn.functional.batch_norm``'s rules, checked against it in
tests/nn/test_normalization.py.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from .._backend import array_module
from .._checks import accumulation_dtype, as_array, cast_back, check_flag, check_like_x, check_parameter_size, check_positive_int, is_real
from ..autograd.function import apply, define_function
from .module import Module, Parameter

__all__ = ["batch_norm", "BatchNorm2d"]


class BatchNormSaved(NamedTuple):
    normalized: object  # (N, C, *S) x_hat = (x - mean) / sqrt(var + eps), in the accumulation dtype
    inv_std: object  # (C,) 1 / sqrt(var + eps): the batch's variance in training, the running one else
    weight: object  # (C,) gamma in the accumulation dtype, or None (then 1)
    batch_statistics: bool  # the mean and variance came from the batch (they depend on x)
    has_weight: bool
    has_bias: bool
    dtype: numpy.dtype


def _per_channel(values, ndim: int):
    """(C,) -> (1, C, 1, ..): broadcast over the batch and the spatial axes."""
    return values.reshape((1, -1) + (1,) * (ndim - 2))


def _batch_norm_forward(x, weight, bias, *, running_mean, running_var, batch_statistics: bool, momentum: float,
                        eps: float):
    xp = array_module(x)
    accumulate = accumulation_dtype(x.dtype)  # float16 normalises in float32
    values = x.astype(accumulate, copy=False)  # (N, C, *S)
    reduce_axes = (0,) + tuple(range(2, x.ndim))  # all but the channel axis
    count = x.size // x.shape[1] if x.shape[1] else 0  # M: values per channel
    with numpy.errstate(invalid="ignore", over="ignore", divide="ignore"):  # NaN and inf spread by IEEE rules
        if batch_statistics:
            mean = values.mean(axis=reduce_axes) if count else xp.zeros(x.shape[1], accumulate)  # (C,)
            centred = values - _per_channel(mean, x.ndim)
            variance = (centred * centred).mean(axis=reduce_axes) if count else xp.ones(x.shape[1], accumulate)  # biased
            if running_mean is not None and count:  # PyTorch leaves them as they are for an empty batch
                unbiased = variance * (count / (count - 1))  # M / (M - 1): Bessel's correction
                running_mean[...] = ((1 - momentum) * running_mean + momentum * mean).astype(running_mean.dtype)
                running_var[...] = ((1 - momentum) * running_var + momentum * unbiased).astype(running_var.dtype)
        else:
            mean, variance = running_mean.astype(accumulate), running_var.astype(accumulate)
            centred = values - _per_channel(mean, x.ndim)
        inv_std = 1 / xp.sqrt(variance + eps)  # (C,)
        normalized = centred * _per_channel(inv_std, x.ndim)  # (N, C, *S)
        y = normalized
        w = weight.astype(accumulate, copy=False) if weight is not None else None
        if w is not None:
            y = y * _per_channel(w, x.ndim)
        if bias is not None:
            y = y + _per_channel(bias.astype(accumulate, copy=False), x.ndim)
    saved = BatchNormSaved(normalized, inv_std, w, batch_statistics, weight is not None, bias is not None, x.dtype)
    return cast_back(y, x.dtype), saved


# forward   x_hat = (x - mu) / sqrt(var + eps);  y = gamma x_hat + beta   (per channel c; M values each)
# backward  grad_beta = sum g;  grad_gamma = sum g x_hat;
#           batch statistics: grad_x = gamma / (M sqrt(var + eps)) (M g - sum g - x_hat sum g x_hat)
#           running statistics (constants): grad_x = gamma g / sqrt(var + eps)
def _batch_norm_backward(saved: BatchNormSaved, grad_y):
    xp = array_module(grad_y)
    accumulate = saved.normalized.dtype
    ndim = grad_y.ndim
    reduce_axes = (0,) + tuple(range(2, ndim))
    g = grad_y.astype(accumulate, copy=False)  # (N, C, *S)
    count = grad_y.size // grad_y.shape[1] if grad_y.shape[1] else 0
    with numpy.errstate(invalid="ignore", over="ignore"):
        sum_g = g.sum(axis=reduce_axes)  # (C,)
        sum_g_normalized = (g * saved.normalized).sum(axis=reduce_axes)  # (C,)
        scale = saved.inv_std if saved.weight is None else saved.inv_std * saved.weight  # gamma / sqrt(var + eps)
        if saved.batch_statistics and count:
            # mu and var depend on every x of the channel: d x_hat_i / d x_j = (delta_ij - 1/M - x_hat_i x_hat_j / M) / sigma
            grad_x = _per_channel(scale / count, ndim) * (count * g - _per_channel(sum_g, ndim)
                                                          - saved.normalized * _per_channel(sum_g_normalized, ndim))
        else:
            grad_x = g * _per_channel(scale, ndim)
    grad_weight = cast_back(sum_g_normalized, saved.dtype) if saved.has_weight else None
    grad_bias = cast_back(sum_g, saved.dtype) if saved.has_bias else None
    return cast_back(xp.asarray(grad_x), saved.dtype), grad_weight, grad_bias


BATCH_NORM = define_function("batch_norm", _batch_norm_forward, _batch_norm_backward)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    r"""Batch normalization over the batch and spatial axes of each channel, as
    ``torch.nn.functional.batch_norm`` (same arguments, same order).

    Parameters
    ----------
    x : array or Tensor, shape (N, C, *spatial)
        A float dtype (float16 normalises in float32).
    running_mean, running_var : array, shape (C,), or None
        The running estimates. In training they are *updated in place* (as PyTorch updates its
        buffers) unless None; in evaluation they normalise and must be given.
    weight, bias : array or Tensor, shape (C,), optional
        :math:`\gamma` and :math:`\beta` (1 and 0 when None).
    training : bool
        Normalise by the batch's statistics (and update the running ones), or by the running ones.
    momentum : float
        Weight of the batch in the running update.
    eps : float
        Added to the variance under the square root.

    Returns
    -------
    y : array or Tensor, shape of x

    Notes
    -----
    Forward, per channel :math:`c` with its :math:`M = N \prod S` values:

    .. math:: \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \hat x + \beta

    In training :math:`\mu` and :math:`\sigma^2` are the batch's mean and biased variance
    (:math:`\frac1M \sum (x - \mu)^2`), and the running estimates become
    :math:`(1 - m)\,r_\mu + m \mu` and :math:`(1 - m)\,r_{\sigma^2} + m \frac{M}{M-1} \sigma^2` (the
    unbiased variance); an empty batch leaves them as they are, and a channel of one value is
    refused (PyTorch: "Expected more than 1 value per channel when training"). In evaluation
    :math:`\mu, \sigma^2` are the running estimates.

    Backward, with :math:`g = \partial L / \partial y`: :math:`\partial L/\partial\beta = \sum g`,
    :math:`\partial L/\partial\gamma = \sum g \hat x`, and

    .. math:: \frac{\partial L}{\partial x} = \frac{\gamma}{M\sqrt{\sigma^2 + \epsilon}}
              \Big(M g - \sum g - \hat x \sum g \hat x\Big)

    in training (the batch's statistics depend on every value of the channel), or
    :math:`\gamma g / \sqrt{\sigma^2 + \epsilon}` in evaluation. A NaN or an infinity makes its whole
    channel NaN in training (its mean is NaN), as in PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn.normalization import batch_norm
    >>> x = np.array([[[[1.0, 3.0]]], [[[5.0, 7.0]]]])  # (N, C, H, W) = (2, 1, 1, 2): mean 4, variance 5
    >>> mean, var = np.zeros(1), np.ones(1)
    >>> batch_norm(x, mean, var, training=True, eps=0.0).ravel() * np.sqrt(5)
    array([-3., -1.,  1.,  3.])
    >>> mean, var  # moved by 0.1 towards the mean 4 and the unbiased variance 20 / 3
    (array([0.4]), array([1.56666667]))
    """
    op = "batch_norm"
    x = as_array(x, "x", op)
    if x.ndim < 2:
        raise ValueError(f"{op}: x must have shape (N, C, *spatial), got x with shape {tuple(x.shape)}")
    if numpy.dtype(x.dtype) not in (numpy.float16, numpy.float32, numpy.float64):
        raise TypeError(f"{op}: x must be a float16, float32 or float64 array, got x with dtype {x.dtype}")
    training = check_flag(training, "training", op)
    channels = x.shape[1]
    layout = f"(C,) = ({channels},)"
    if weight is not None:
        weight = check_like_x(weight, "weight", 1, layout, x, op)
    if bias is not None:
        bias = check_like_x(bias, "bias", 1, layout, x, op)
    for name, stat in (("running_mean", running_mean), ("running_var", running_var)):
        if stat is not None and (not hasattr(stat, "shape") or tuple(stat.shape) != (channels,)):
            raise ValueError(f"{op}: {name} must be an array of shape ({channels},), got {name}={stat!r}")
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != (channels,):
            raise ValueError(f"{op}: {name} must have shape {layout}, got {name} with shape {tuple(value.shape)}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must both be arrays or both None, got "
                         f"running_mean={type(running_mean).__name__} and running_var={type(running_var).__name__}")
    if not training and running_mean is None:
        raise ValueError(f"{op}: evaluation (training=False) normalises by running_mean and running_var, got None")
    for name, value, low in (("momentum", momentum, 0.0), ("eps", eps, 0.0)):
        if not is_real(value) or not numpy.isfinite(value) or value < low:
            raise ValueError(f"{op}: {name} must be a finite number >= {low}, got {name}={value!r}")
    if training and x.size // max(channels, 1) == 1 and channels:
        raise ValueError(f"{op}: training needs more than 1 value per channel (PyTorch's rule), got x with shape "
                         f"{tuple(x.shape)}")
    return apply(BATCH_NORM, x, weight, bias, running_mean=running_mean, running_var=running_var,
                 batch_statistics=training, momentum=float(momentum), eps=float(eps))


class BatchNorm2d(Module):
    r"""Batch normalization of (N, C, H, W) input, as ``torch.nn.BatchNorm2d`` (same arguments).

    Parameters
    ----------
    num_features : int
        C.
    eps : float
    momentum : float or None
        Weight of each batch in the running estimates; None: their cumulative average
        (a weight of ``1 / num_batches_tracked``), as PyTorch.
    affine : bool
        Learn :math:`\gamma` (``weight``, ones at first) and :math:`\beta` (``bias``, zeros).
    track_running_stats : bool
        Keep running estimates (``running_mean`` zeros, ``running_var`` ones at first) and use them in
        evaluation; without, evaluation normalises by the batch too.
    dtype : numpy dtype
        Of the parameters and running estimates.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import BatchNorm2d
    >>> layer = BatchNorm2d(2)
    >>> x = np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2)
    >>> y = layer(x)
    >>> np.round(y.data.mean(axis=(0, 2, 3)), 6).tolist(), layer.num_batches_tracked
    ([0.0, 0.0], 1)
    >>> layer.running_mean  # 0.1 of each channel's mean, 5.5 and 9.5
    array([0.55, 0.95], dtype=float32)
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *,
                 dtype=numpy.float32):
        super().__init__()
        layer = "BatchNorm2d"
        self.num_features, self.eps, self.momentum = check_positive_int(num_features, "num_features", layer), eps, momentum
        check_parameter_size((self.num_features,), "weight", layer, num_features=num_features)
        self.affine = check_flag(affine, "affine", layer)
        self.track_running_stats = check_flag(track_running_stats, "track_running_stats", layer)
        self.weight = Parameter(numpy.ones(self.num_features, dtype)) if self.affine else None
        self.bias = Parameter(numpy.zeros(self.num_features, dtype)) if self.affine else None
        if self.track_running_stats:  # buffers: state, not parameters (no gradient, not in parameters())
            self.running_mean = numpy.zeros(self.num_features, dtype)
            self.running_var = numpy.ones(self.num_features, dtype)
            self.num_batches_tracked = 0
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x):
        if getattr(x, "ndim", None) != 4:
            raise ValueError(f"BatchNorm2d: x must have shape (N, C, H, W) (PyTorch: expected 4D input), "
                             f"got x with shape {tuple(getattr(x, 'shape', ()))}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:  # torch.nn.modules.batchnorm._BatchNorm.forward
            self.num_batches_tracked += 1
            if self.momentum is None:
                factor = 1.0 / self.num_batches_tracked  # cumulative moving average
        # evaluation without running estimates normalises by the batch, as in PyTorch
        use_batch = self.training or self.running_mean is None
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")
