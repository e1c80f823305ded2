"""cross_entropy: PyTorch (value and gradient), gradcheck, stability, dtypes, unbatched, empty, bad input."""

import numpy
import pytest

from helpers import to_torch, torch_or_skip
from poolref.autograd import Tensor, gradcheck, vjp
from poolref.nn import cross_entropy
from poolref.testing import assert_matches


def torch_cross_entropy(logits, targets):
    torch = torch_or_skip()
    t = to_torch(logits, True)
    loss = torch.nn.functional.cross_entropy(t, torch.from_numpy(targets))
    loss.backward()
    return loss.item(), t.grad.numpy()


@pytest.mark.parametrize("seed", range(6))
def test_cross_entropy_matches_torch_value_and_gradient(seed):
    rng = numpy.random.default_rng(seed)
    n, k = int(rng.integers(1, 20)), int(rng.integers(2, 12))
    logits = rng.standard_normal((n, k)) * 4
    targets = rng.integers(0, k, size=n)
    loss, pullback = vjp(lambda z: cross_entropy(z, targets), logits)
    want_loss, want_grad = torch_cross_entropy(logits, targets)
    assert numpy.isclose(float(loss), want_loss, rtol=1e-13)
    assert_matches(pullback(numpy.array(1.0))[0], want_grad, rtol=1e-12, atol=1e-15)


def test_cross_entropy_gradcheck():
    rng = numpy.random.default_rng(1)
    targets = numpy.array([2, 0, 1, 2])
    assert gradcheck(lambda z: cross_entropy(z, targets), rng.standard_normal((4, 3)), rtol=1e-6)


def test_cross_entropy_is_stable_for_huge_logits():
    logits = numpy.array([[1000.0, 0.0, -1000.0], [-5000.0, 5000.0, 0.0]])
    loss, pullback = vjp(lambda z: cross_entropy(z, numpy.array([0, 0])), logits)
    # row 0 is right with certainty (loss 0); row 1 is wrong by 10000 nats
    assert float(loss) == pytest.approx(5000.0)
    assert_matches(pullback(numpy.array(1.0))[0], [[0.0, 0.0, 0.0], [-0.5, 0.5, 0.0]], atol=1e-300)


def test_cross_entropy_float32_float16_unbatched_and_empty():
    torch = torch_or_skip()
    rng = numpy.random.default_rng(2)
    logits = rng.standard_normal((5, 4)).astype(numpy.float32)
    targets = rng.integers(0, 4, size=5)
    loss = cross_entropy(logits, targets)
    assert loss.dtype == numpy.float32 and numpy.isclose(loss, torch_cross_entropy(logits, targets)[0], rtol=1e-6)
    half = cross_entropy(logits.astype(numpy.float16), targets)
    assert half.dtype == numpy.float16 and numpy.isclose(float(half), float(loss), rtol=2e-3)
    # one example (K,) with a scalar target, as PyTorch
    z = Tensor(logits[0].astype(numpy.float64), requires_grad=True)
    one = cross_entropy(z, numpy.array(targets[0]))
    one.backward()
    want_loss, want_grad = torch_cross_entropy(logits[:1].astype(numpy.float64), targets[:1])
    assert one.shape == () and numpy.isclose(one.item(), want_loss) and numpy.allclose(z.grad, want_grad[0])
    # no examples: nan, as torch.nn.functional.cross_entropy
    empty = torch.nn.functional.cross_entropy(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))
    assert numpy.isnan(cross_entropy(numpy.zeros((0, 4)), numpy.zeros(0, dtype=int))) and torch.isnan(empty)


@pytest.mark.parametrize(
    "logits, targets, error, words",
    [
        (numpy.zeros((2, 3)), numpy.array([0, 3]), ValueError, ["targets", "[0, 3)", "3"]),
        (numpy.zeros((2, 3)), numpy.array([-1, 0]), ValueError, ["targets", "-1"]),
        (numpy.zeros((2, 3)), numpy.array([0.0, 1.0]), TypeError, ["targets", "float64"]),
        (numpy.zeros((2, 3)), numpy.array([0, 1, 2]), ValueError, ["targets", "(3,)", "(2,)"]),
        (numpy.zeros((2, 3, 4)), numpy.zeros((2, 3), dtype=int), ValueError, ["logits", "(2, 3, 4)"]),
        (numpy.zeros((2, 3), dtype=int), numpy.array([0, 1]), TypeError, ["logits", "int"]),
    ],
)
def test_cross_entropy_bad_input(logits, targets, error, words):
    with pytest.raises(error) as info:
        cross_entropy(logits, targets)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
