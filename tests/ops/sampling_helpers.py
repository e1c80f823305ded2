"""Helpers shared by the sampling tests (test_sampling.py, test_sampling_cubic.py)."""

import numpy

import poolref
from helpers import to_torch, torch_or_skip
from poolref.autograd import vjp


def sprinkle(rng, a, fraction=0.15):
    """A copy of ``a`` with about ``fraction`` of its entries NaN, +inf or -inf."""
    a = numpy.array(a, dtype=numpy.float64)
    pick = rng.random(a.shape)
    a[pick < fraction / 3] = numpy.nan
    a[(pick >= fraction / 3) & (pick < 2 * fraction / 3)] = numpy.inf
    a[(pick >= 2 * fraction / 3) & (pick < fraction)] = -numpy.inf
    return a


def rows(taps):
    """A Taps table as one list of (position, weight) per output: the taps read, in order."""
    reads = taps.reads()
    return [[(int(i), float(w)) for i, w, r in zip(taps.index[o], taps.weights()[o], reads[o]) if r]
            for o in range(taps.out_length)]


def torch_pair(x, g, **kwargs):
    """PyTorch's interpolate output and input gradient, and poolref's."""
    torch = torch_or_skip()
    xt = to_torch(x, requires_grad=True)
    yt = torch.nn.functional.interpolate(xt, **kwargs)
    yt.backward(to_torch(g))
    y, pullback = vjp(lambda t: poolref.interpolate(t, **kwargs), x)
    return (y, pullback(g)[0]), (yt.detach().numpy(), xt.grad.numpy())


def torch_grid_sample(x, grid, g, mode, padding_mode, align_corners):
    """PyTorch's grid_sample output and its gradients to x and to the grid."""
    torch = torch_or_skip()
    xt, gt = to_torch(x, requires_grad=True), to_torch(grid, requires_grad=True)
    yt = torch.nn.functional.grid_sample(xt, gt, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    yt.backward(to_torch(g))
    return yt.detach().numpy(), xt.grad.numpy(), gt.grad.numpy()
