"""SGD and Adam against torch.optim: the same parameters and gradients give the same updates."""

import numpy
import pytest

from helpers import torch_or_skip
from poolref.nn import SGD, Adam, Parameter


def compare_with_torch(make_ours, make_theirs, steps=6, seed=0, skip=None):
    """Run both optimizers on the same parameters, feeding the same random gradients at every step.

    ``skip`` = (step, parameter number) whose gradient is left as None at that step (both skip it).
    """
    torch = torch_or_skip()
    rng = numpy.random.default_rng(seed)
    shapes = [(3, 4), (5,), (2, 1, 3)]
    initial = [rng.standard_normal(s) for s in shapes]
    ours = [Parameter(a) for a in initial]
    theirs = [torch.tensor(a, requires_grad=True) for a in initial]
    our_optimizer, their_optimizer = make_ours(ours), make_theirs(theirs)
    for step in range(steps):
        our_optimizer.zero_grad()
        their_optimizer.zero_grad()
        for i, (p, q) in enumerate(zip(ours, theirs)):
            g = rng.standard_normal(p.shape)
            if skip == (step, i):
                continue
            p.grad = g
            q.grad = torch.from_numpy(g.copy())
        our_optimizer.step()
        their_optimizer.step()
        for p, q in zip(ours, theirs):
            numpy.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-13, atol=1e-15, err_msg=f"step {step}")
    return ours


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=0.1),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.9, weight_decay=1e-2),
        dict(lr=0.05, weight_decay=0.1),
        dict(lr=0.05, momentum=0.8, dampening=0.3),
        dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    ],
)
def test_sgd_matches_torch(kwargs):
    torch = torch_or_skip()
    compare_with_torch(lambda ps: SGD(ps, **kwargs), lambda ps: torch.optim.SGD(ps, **kwargs))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(),
        dict(lr=0.01),
        dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6),
        dict(lr=0.02, weight_decay=0.1),
    ],
)
def test_adam_matches_torch(kwargs):
    torch = torch_or_skip()
    compare_with_torch(lambda ps: Adam(ps, **kwargs), lambda ps: torch.optim.Adam(ps, **kwargs), steps=8)


def test_a_parameter_without_gradient_is_skipped_and_keeps_its_own_step_count():
    torch = torch_or_skip()
    compare_with_torch(lambda ps: Adam(ps, lr=0.1), lambda ps: torch.optim.Adam(ps, lr=0.1), skip=(1, 2))
    compare_with_torch(lambda ps: SGD(ps, 0.1, 0.9), lambda ps: torch.optim.SGD(ps, 0.1, 0.9), skip=(0, 1))


def test_positional_order_and_float32_stays_float32():
    p = Parameter(numpy.ones(3, dtype=numpy.float32))
    p.grad = numpy.full(3, 2.0, dtype=numpy.float32)
    optimizer = SGD([p], 0.5, 0.9, 0.1)  # lr, momentum, weight_decay
    assert (optimizer.lr, optimizer.momentum, optimizer.weight_decay) == (0.5, 0.9, 0.1)
    optimizer.step()
    assert p.dtype == numpy.float32 and numpy.allclose(p.data, 1 - 0.5 * 2.1)
    adam = Adam([p], 0.01, (0.5, 0.6), 1e-4)
    assert (adam.lr, adam.betas, adam.eps) == (0.01, (0.5, 0.6), 1e-4)
    adam.step()
    assert p.dtype == numpy.float32


def test_zero_grad_and_the_update_never_changes_the_callers_array():
    data = numpy.array([1.0, 2.0])
    p = Parameter(data)
    p.grad = numpy.ones(2)
    optimizer = SGD([p], lr=1.0)
    optimizer.step()
    optimizer.zero_grad()
    assert p.grad is None and p.data.tolist() == [0.0, 1.0] and data.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda p: SGD(p, lr=-0.1), ValueError, ["lr", "-0.1"]),
        (lambda p: SGD(p, lr=0.1, momentum=-1), ValueError, ["momentum", "-1"]),
        (lambda p: SGD(p, lr=float("nan")), ValueError, ["lr", "nan"]),
        (lambda p: SGD(p, lr=0.1, nesterov=True), ValueError, ["nesterov", "momentum"]),
        (lambda p: Adam(p, betas=(0.9, 1.0)), ValueError, ["betas", "1.0"]),
        (lambda p: Adam(p, betas=0.9), ValueError, ["betas", "0.9"]),
        (lambda p: Adam(p, eps=-1e-8), ValueError, ["eps", "-1e-08"]),
        (lambda p: Adam([]), ValueError, ["empty"]),
        (lambda p: Adam([numpy.zeros(2)]), TypeError, ["params", "item 0"]),
    ],
)
def test_bad_hyperparameters(make, error, words):
    with pytest.raises(error) as info:
        make([Parameter(numpy.zeros(2))])
    for word in words:
        assert word in str(info.value), (word, str(info.value))
