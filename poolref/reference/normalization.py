r"""Plain-loop reference for batch normalization (PyTorch's ``batch_norm``), forward and backward.

The executable specification of :func:`poolref.nn.batch_norm`. Every channel is visited by a Python
loop, and every one of its :math:`M = N \prod S` values by another; sums are Python floats (float64):

* forward: :math:`\mu = \frac1M \sum x`, :math:`\sigma^2 = \frac1M \sum (x - \mu)^2` (the biased
  variance) in training, the running estimates in evaluation;
  :math:`\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}`, :math:`y = \gamma \hat x + \beta`;
* backward: :math:`\partial L/\partial\beta = \sum g`, :math:`\partial L/\partial\gamma = \sum g \hat x`,
  and :math:`\partial L/\partial x_i = \frac{\gamma}{\sqrt{\sigma^2+\epsilon}}\,(g_i - \frac1M \sum_j g_j
  - \hat x_i \frac1M \sum_j g_j \hat x_j)` in training (the batch's statistics depend on every
  :math:`x_j`), :math:`\frac{\gamma}{\sqrt{\sigma^2+\epsilon}}\, g_i` in evaluation.

The running estimates are not updated here (the tests check the update against PyTorch). Meant for
tiny arrays in tests; nothing is validated.
"""

from __future__ import annotations

import math

import numpy

__all__ = ["batch_norm_reference", "batch_norm_backward_reference"]


def _channel_values(x, c: int) -> list[float]:
    """Every value of channel ``c`` of an (N, C, *spatial) array, as Python floats."""
    return [float(v) for v in numpy.asarray(x)[:, c].ravel()]


def _statistics(values: list[float], c: int, running_mean, running_var, training: bool) -> tuple[float, float]:
    if not training:
        return float(running_mean[c]), float(running_var[c])
    mean = 0.0
    for v in values:
        mean += v
    mean /= len(values)
    var = 0.0
    for v in values:
        var += (v - mean) ** 2
    return mean, var / len(values)


def batch_norm_reference(x, running_mean, running_var, weight=None, bias=None, training=False, eps=1e-5):
    """y of batch normalization, channel by channel and value by value (float64)."""
    x = numpy.asarray(x, dtype=numpy.float64)
    y = numpy.zeros(x.shape)
    for c in range(x.shape[1]):
        mean, var = _statistics(_channel_values(x, c), c, running_mean, running_var, training)
        scale = 1.0 / math.sqrt(var + eps)
        gamma = 1.0 if weight is None else float(weight[c])
        beta = 0.0 if bias is None else float(bias[c])
        for index in numpy.ndindex(x.shape[:1] + x.shape[2:]):
            at = (index[0], c) + index[1:]
            y[at] = gamma * ((float(x[at]) - mean) * scale) + beta
    return y


def batch_norm_backward_reference(grad_y, x, running_mean, running_var, weight=None, training=False, eps=1e-5):
    """(grad_x, grad_weight, grad_bias) of batch normalization, by loops (float64)."""
    x = numpy.asarray(x, dtype=numpy.float64)
    grad_y = numpy.asarray(grad_y, dtype=numpy.float64)
    C = x.shape[1]
    grad_x, grad_weight, grad_bias = numpy.zeros(x.shape), numpy.zeros(C), numpy.zeros(C)
    places = list(numpy.ndindex(x.shape[:1] + x.shape[2:]))
    for c in range(C):
        values = _channel_values(x, c)
        mean, var = _statistics(values, c, running_mean, running_var, training)
        scale = 1.0 / math.sqrt(var + eps)
        gamma = 1.0 if weight is None else float(weight[c])
        at = [(p[0], c) + p[1:] for p in places]
        normalised = [(float(x[a]) - mean) * scale for a in at]
        sum_g, sum_g_normalised = 0.0, 0.0
        for a, h in zip(at, normalised):
            sum_g += float(grad_y[a])
            sum_g_normalised += float(grad_y[a]) * h
        grad_bias[c], grad_weight[c] = sum_g, sum_g_normalised
        M = len(at)
        for a, h in zip(at, normalised):
            if training:
                grad_x[a] = gamma * scale * (float(grad_y[a]) - sum_g / M - h * sum_g_normalised / M)
            else:
                grad_x[a] = gamma * scale * float(grad_y[a])
    return grad_x, grad_weight, grad_bias
