"""The example test of poolref.testing's docstring, run as written (users copy it into their suites)."""

import numpy as np
import pytest
from hypothesis import given, settings

import poolref
from poolref.testing import assert_conserves_gradient, assert_matches, strategies

torch = pytest.importorskip("torch")


@settings(max_examples=50, deadline=None)
@given(strategies.pool_cases(n=2, op="max", convention="torch"))
def test_my_max_pool_matches_poolref(case):
    kwargs = {k: v for k, v in case.kwargs.items() if k != "convention"}
    x = torch.tensor(case.x, requires_grad=True)
    y, indices = torch.nn.functional.max_pool2d(x, **kwargs, return_indices=True)
    cotangent = np.random.default_rng(0).normal(size=tuple(y.shape))
    y.backward(torch.tensor(cotangent))

    (expected, expected_indices), pullback = poolref.vjp(
        lambda t: poolref.max_pool2d(t, **case.kwargs, return_indices=True), case.x)
    assert_matches(y.detach().numpy(), expected, rtol=1e-12, x=case.x, window=case.kwargs)
    assert_matches(indices.numpy(), expected_indices, what="indices")
    assert_matches(x.grad.numpy(), pullback(cotangent)[0], rtol=1e-12, what="gradient")
    # and the law every max pooling obeys, whatever the framework
    assert_conserves_gradient(poolref.max_pool2d, case.x, **case.kwargs)


def test_the_docstring_holds_this_test():
    # the two copies must not drift apart
    import inspect

    import poolref.testing

    source = inspect.getsource(test_my_max_pool_matches_poolref)
    body = source[source.index("    kwargs ="):]
    doc = "\n".join(line[4:] for line in poolref.testing.__doc__.splitlines())
    assert body in doc
