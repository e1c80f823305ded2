r"""Losses: cross-entropy over class logits, with its hand-written backward."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy

from .._backend import array_module
from .._checks import FLOAT_DTYPES, accumulation_dtype
from ..autograd.function import apply, define_function
from ..autograd.tensor import Tensor

__all__ = ["cross_entropy"]


class CrossEntropySaved(NamedTuple):
    probabilities: object  # (N, K) softmax of the logits, in the accumulation dtype
    targets: object  # (N,) class index of each example
    dtype: numpy.dtype  # the logits' dtype, for the gradient


def _cross_entropy_forward(logits, targets):
    xp = array_module(logits, targets)
    n = logits.shape[0]
    z = logits.astype(accumulation_dtype(logits.dtype), copy=False)  # (N, K)
    # log-softmax, stable: subtracting each row's max leaves softmax unchanged and keeps exp() <= 1
    shifted = z - z.max(axis=1, keepdims=True)
    log_probabilities = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))  # (N, K)
    rows = xp.arange(n)
    if n:
        loss = -log_probabilities[rows, targets].mean()
    else:
        loss = math.nan  # the mean over no examples, as PyTorch returns (written out: no 0/0 warning)
    saved = CrossEntropySaved(xp.exp(log_probabilities), targets, logits.dtype)
    return xp.asarray(loss, dtype=logits.dtype), saved


# forward   L = -(1/N) sum_n log softmax(z_n)_{t_n}
# backward  grad_z[n, k] = g (softmax(z_n)_k - [k = t_n]) / N
def _cross_entropy_backward(saved: CrossEntropySaved, grad_loss):
    # d/dz_k of -log softmax(z)_t is softmax(z)_k - [k = t]; the mean divides by N.
    xp = array_module(grad_loss)
    n = saved.probabilities.shape[0]
    grad = saved.probabilities.copy()  # (N, K)
    grad[xp.arange(n), saved.targets] -= 1
    if n:
        grad *= grad_loss.astype(grad.dtype) / n
    return grad.astype(saved.dtype, copy=False), None


CROSS_ENTROPY = define_function("cross_entropy", _cross_entropy_forward, _cross_entropy_backward)


def cross_entropy(logits, targets):
    r"""Mean cross-entropy of class logits against class indices (``torch.nn.functional.cross_entropy``).

    Parameters
    ----------
    logits : array or Tensor, shape (N, K) or (K,)
        Unnormalised scores; float16 is accumulated in float32.
    targets : int array or Tensor, shape (N,) or ()
        The class of each example, in ``[0, K)``.

    Returns
    -------
    array or Tensor, shape ()
        The loss, of the logits' dtype (nan for N = 0, as PyTorch).

    Notes
    -----
    Forward, with :math:`t_n` the target of example :math:`n` and a stable log-softmax
    (:math:`m_n = \max_k z_{n,k}`):

    .. math:: L = -\frac{1}{N} \sum_n \Bigl(z_{n,t_n} - m_n - \log \sum_k e^{z_{n,k} - m_n}\Bigr)

    Backward:

    .. math:: \frac{\partial L}{\partial z_{n,k}} = \frac{1}{N}\bigl(\operatorname{softmax}(z_n)_k - [k = t_n]\bigr)

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import cross_entropy
    >>> float(cross_entropy(np.array([[0.0, 0.0]]), np.array([1])))  # log 2
    0.6931471805599453
    >>> from poolref.autograd import Tensor
    >>> z = Tensor([[0.0, 0.0]], requires_grad=True)
    >>> cross_entropy(z, np.array([1])).backward()
    >>> z.grad
    array([[ 0.5, -0.5]])
    """
    op = "cross_entropy"
    if not (hasattr(logits, "shape") and hasattr(logits, "dtype")):
        logits = numpy.asarray(logits)
    targets = targets.data if isinstance(targets, Tensor) else targets
    if not hasattr(targets, "shape"):
        targets = numpy.asarray(targets)
    if numpy.dtype(logits.dtype) not in [numpy.dtype(d) for d in FLOAT_DTYPES]:
        raise TypeError(f"{op}: logits must be a float16, float32 or float64 array, got logits with dtype {logits.dtype}")
    if logits.ndim not in (1, 2):
        raise ValueError(f"{op}: logits must have shape (N, K) or (K,), got logits with shape {tuple(logits.shape)}")
    if targets.dtype.kind not in "iu":
        raise TypeError(f"{op}: targets must be integer class indices, got targets with dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"{op}: targets must have shape {tuple(logits.shape[:-1])} (one class per row of logits with "
            f"shape {tuple(logits.shape)}), got targets with shape {tuple(targets.shape)}"
        )
    classes = logits.shape[-1]
    if targets.size and (int(targets.min()) < 0 or int(targets.max()) >= classes):
        bad = int(targets.min()) if int(targets.min()) < 0 else int(targets.max())
        raise ValueError(f"{op}: targets must lie in [0, {classes}), got a target of {bad}")
    if logits.ndim == 1:  # one example: a batch of one, and back to shape () (reshape is recorded)
        return cross_entropy(logits.reshape(1, classes), targets.reshape(1))
    return apply(CROSS_ENTROPY, logits, targets)
