r"""Helpers for users' own tests: conservation laws, assertions, and hypothesis strategies.

* :func:`assert_matches` compares your op's output (or gradient, or indices) with poolref's and, on a
  mismatch, shows the neighbourhood of the first mismatching element and, given the input and the
  window keywords, the input window that produced it;
* :func:`assert_conserves_gradient` checks the gradient-mass law of a pooling op: max-type ops hand
  each output's gradient to one input (``sum(grad_x) == sum(grad_y)``), averages hand on
  ``valid / divisor`` of it (:func:`avg_pool_window_mass`), and a max-pooling window wholly in the
  padding nothing (:func:`max_pool_window_mass`);
* :mod:`poolref.testing.strategies` draws valid configurations and inputs (distinct values for
  max-type ops, so no argmax flips), for every convention; ``strategies.oracle_cases(op)`` draws
  exactly what ``poolref check`` runs.

``strategies`` needs hypothesis (the ``test`` extra); the rest needs only numpy.

An example test to copy into your suite; it checks a framework's max pooling (here PyTorch's, in
float64) against poolref over every configuration PyTorch accepts, values, indices and gradients:

.. code-block:: python

    import numpy as np
    import torch
    from hypothesis import given, settings

    import poolref
    from poolref.testing import assert_conserves_gradient, assert_matches, strategies


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

The same test, with the import of torch replaced by your framework's call, is what a kernel author
needs; ``tests/testing/test_user_example.py`` runs it as written.
"""

from .laws import assert_conserves_gradient, assert_matches, avg_pool_window_mass, blur_pool_window_mass, max_pool_window_mass

__all__ = ["assert_conserves_gradient", "assert_matches", "avg_pool_window_mass", "blur_pool_window_mass", "max_pool_window_mass", "strategies"]


def __getattr__(name):
    # imported on first use so that ``import poolref.testing`` works without hypothesis; without it,
    # the attribute is missing (``hasattr`` says False) and the message says what to install
    if name == "strategies":
        import importlib

        try:
            return importlib.import_module(f"{__name__}.strategies")
        except ImportError as missing:
            raise AttributeError(f"module {__name__!r} has no attribute 'strategies': {missing}") from missing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
