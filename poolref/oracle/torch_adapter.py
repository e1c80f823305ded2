"""PyTorch adapter: which torch function computes each poolref op, and how to run it.

PyTorch is poolref's default convention, so every op maps to the ``torch.nn.functional`` function
of the same name with the same arguments; gradients come from torch's autograd.
"""

from __future__ import annotations

import numpy

__all__ = ["NAME", "available", "supports", "run"]

NAME = "torch"


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def supports(op: str) -> bool:
    import torch.nn.functional as F

    return hasattr(F, op)


def run(case, cotangent):
    """Run ``case`` in PyTorch: returns ``(values, indices or None, input gradient)`` as numpy arrays."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(numpy.ascontiguousarray(case.x)).requires_grad_(True)
    kwargs = dict(case.kwargs)
    args = ()
    if "norm_type" in kwargs:
        args = (kwargs.pop("norm_type"),)
        if case.op == "lp_pool1d":  # torch multiplies by kernel_size here, so it must be an int
            kwargs = {k: v[0] if isinstance(v, tuple) else v for k, v in kwargs.items()}
    with_indices = case.op.startswith(("max_pool", "adaptive_max_pool"))
    if with_indices:
        kwargs["return_indices"] = True
    out = getattr(F, case.op)(x, *args, **kwargs)
    values, indices = out if with_indices else (out, None)
    values.backward(torch.from_numpy(cotangent))
    return (
        values.detach().numpy(),
        None if indices is None else indices.numpy(),
        x.grad.numpy(),
    )
