"""Shared by the tests: resolve an op's keyword arguments into the geometry the references take."""

import numpy

from poolref._geometry import pool_geometry


def resolved(spatial_shape, kwargs, op="test"):
    """(kernel, stride, pad_begin, pad_end, dilation, ceil_mode) tuples for a reference function."""
    geometry = pool_geometry(
        tuple(spatial_shape),
        kwargs["kernel_size"],
        kwargs.get("stride"),
        kwargs.get("padding", 0),
        kwargs.get("dilation", 1),
        kwargs.get("ceil_mode", False),
        kwargs.get("convention", "torch"),
        op,
    )
    axes = geometry.axes
    return (
        tuple(a.kernel for a in axes),
        tuple(a.stride for a in axes),
        tuple(a.pad_begin for a in axes),
        tuple(a.pad_end for a in axes),
        tuple(a.dilation for a in axes),
        bool(kwargs.get("ceil_mode", False)),
    )


def torch_or_skip():
    import pytest

    return pytest.importorskip("torch")


def to_torch(x, requires_grad=False):
    torch = torch_or_skip()
    t = torch.from_numpy(numpy.ascontiguousarray(x))
    return t.requires_grad_(requires_grad) if requires_grad else t
