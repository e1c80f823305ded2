r"""Optimizers: SGD (with momentum, weight decay, Nesterov) and Adam, with PyTorch's update rules.

Each ``step()`` reads ``p.grad`` of every parameter (filled by ``loss.backward()``) and replaces
``p.data`` by the updated array; a parameter whose ``grad`` is None is skipped, as in PyTorch. The
update is written with new arrays rather than in place, so arrays a recorded tape still refers to
are never changed under it.
"""

from __future__ import annotations

import math

from .._backend import array_module
from .._checks import check_flag
from ..autograd.tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam"]


def _check_hyper(value, name: str, optimizer: str, *, low=0.0, high=math.inf, high_open=False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{optimizer}: {name} must be a finite number, got {name}={value!r}")
    if value < low or value > high or (high_open and value == high):
        interval = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{optimizer}: {name} must lie in {interval}, got {name}={value!r}")
    return float(value)


class Optimizer:
    """The parameters to update and ``zero_grad``; subclasses define ``step``."""

    def __init__(self, params):
        self.params = list(params)
        name = type(self).__name__
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not (isinstance(p, Tensor) and p.requires_grad):
                raise TypeError(f"{name}: params must be Tensors that require a gradient, got item {i}: {p!r}")

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to None (PyTorch's default, ``set_to_none=True``)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    r"""Stochastic gradient descent, ``torch.optim.SGD``'s rule.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
        Learning rate :math:`\eta`.
    momentum : float
        :math:`\mu`; 0 disables the momentum buffer.
    weight_decay : float
        :math:`\lambda`, an L2 penalty added to the gradient.
    dampening : float
        :math:`\tau`, scales the gradient entering the buffer after the first step.
    nesterov : bool
        Nesterov momentum (needs ``momentum > 0`` and ``dampening = 0``).

    Notes
    -----
    For each parameter with gradient :math:`g_t`:

    .. math::

        g &\leftarrow g_t + \lambda \theta_{t-1} \\
        b_t &= g \ (t = 1), \qquad b_t = \mu b_{t-1} + (1 - \tau) g \ (t > 1) \\
        g &\leftarrow g + \mu b_t \ \text{(Nesterov)}, \qquad g \leftarrow b_t \ \text{(otherwise, if } \mu \ne 0) \\
        \theta_t &= \theta_{t-1} - \eta g

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import SGD, Parameter
    >>> w = Parameter(np.array([1.0, 2.0]))
    >>> (w * w).sum().backward()              # grad = 2 w
    >>> SGD([w], lr=0.1).step()
    >>> w.data
    array([0.8, 1.6])
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, *, dampening=0.0, nesterov=False):
        super().__init__(params)
        self.lr = _check_hyper(lr, "lr", "SGD")
        self.momentum = _check_hyper(momentum, "momentum", "SGD")
        self.weight_decay = _check_hyper(weight_decay, "weight_decay", "SGD")
        self.dampening = _check_hyper(dampening, "dampening", "SGD", high=1.0)
        self.nesterov = check_flag(nesterov, "nesterov", "SGD")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got momentum={momentum!r}, dampening={dampening!r}")
        self.momentum_buffers = [None] * len(self.params)

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                buffer = self.momentum_buffers[i]
                if buffer is None:  # the first step starts the buffer at the gradient itself
                    buffer = array_module(g).array(g, copy=True)
                else:
                    buffer = self.momentum * buffer + (1 - self.dampening) * g
                self.momentum_buffers[i] = buffer
                g = g + self.momentum * buffer if self.nesterov else buffer
            p.data = p.data - self.lr * g


class Adam(Optimizer):
    r"""Adam (Kingma and Ba 2015), ``torch.optim.Adam``'s rule.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
        :math:`\eta`.
    betas : (float, float)
        :math:`\beta_1, \beta_2`, decay rates of the first and second moment estimates.
    eps : float
        :math:`\epsilon`, added to the denominator.
    weight_decay : float
        :math:`\lambda`, an L2 penalty added to the gradient (Adam, not AdamW).

    Notes
    -----
    For each parameter, with its own step count :math:`t` (steps where it had a gradient):

    .. math::

        g &= g_t + \lambda \theta_{t-1} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g^2 \\
        \theta_t &= \theta_{t-1} - \frac{\eta}{1 - \beta_1^t} \,
            \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    (:math:`m_0 = v_0 = 0`); :math:`\epsilon` is added after the bias correction of :math:`v`, as in
    PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from poolref.nn import Adam, Parameter
    >>> w = Parameter(np.array([1.0, -2.0]))
    >>> (w * w).sum().backward()
    >>> Adam([w], lr=0.1).step()   # the first step moves each entry by about lr, against its gradient
    >>> w.data.round(6)
    array([ 0.9, -1.9])
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, *, weight_decay=0.0):
        super().__init__(params)
        self.lr = _check_hyper(lr, "lr", "Adam")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair of numbers, got betas={betas!r}")
        self.betas = tuple(_check_hyper(b, "betas", "Adam", high=1.0, high_open=True) for b in betas)
        self.eps = _check_hyper(eps, "eps", "Adam")
        self.weight_decay = _check_hyper(weight_decay, "weight_decay", "Adam")
        self.steps = [0] * len(self.params)
        self.first_moments = [None] * len(self.params)  # m: running mean of the gradient
        self.second_moments = [None] * len(self.params)  # v: running mean of its square

    def step(self) -> None:
        beta1, beta2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            xp = array_module(p.data)
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            m = self.first_moments[i] if self.first_moments[i] is not None else xp.zeros_like(p.data)
            v = self.second_moments[i] if self.second_moments[i] is not None else xp.zeros_like(p.data)
            m = m + (1 - beta1) * (g - m)  # = beta1 m + (1 - beta1) g, written as PyTorch's lerp
            v = beta2 * v + (1 - beta2) * (g * g)
            self.first_moments[i], self.second_moments[i] = m, v
            self.steps[i] += 1
            t = self.steps[i]
            step_size = self.lr / (1 - beta1**t)
            denominator = xp.sqrt(v) / math.sqrt(1 - beta2**t) + self.eps
            p.data = p.data - step_size * (m / denominator)
