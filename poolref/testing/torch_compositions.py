"""Independent PyTorch versions of poolref ops that PyTorch lacks, built from PyTorch's own ops.

They serve as cross-checks (tests, the oracle) and as the baseline of the benchmarks. torch is
passed in (or imported lazily), so importing this module never imports torch.
"""

from __future__ import annotations

import numpy

__all__ = ["dynopool_by_grid_sample"]


def dynopool_by_grid_sample(torch, x, alpha, aggregate="max"):
    """DynOPool (DYNOPOOL.md) from ``grid_sample(padding_mode="border", align_corners=False)``.

    ``x`` is a (N, C, H, W) tensor and ``alpha`` a tensor of shape (2,); gradients reach both. The
    output size is straight-through: its value is ``max(1, round(L / alpha))`` and its derivative
    that of ``L / alpha``. Each axis gets two query lines per output line,
    ``u = (i + 1/4 + a/2) * L / size - 1/2`` in pixel coordinates, mapped to grid coordinates
    ``(u + 1/2) * 2 / L - 1``; the four points of each output cell are reduced by max or mean.

    >>> import pytest; torch = pytest.importorskip("torch")  # skips this example without PyTorch
    >>> from poolref.testing.torch_compositions import dynopool_by_grid_sample
    >>> x = torch.arange(16.).reshape(1, 1, 4, 4)
    >>> dynopool_by_grid_sample(torch, x, torch.tensor([2.0, 2.0]))
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """
    N, C, H, W = x.shape

    def grid_coordinates(length, a):
        continuous = length / a
        out_length = max(1, int(numpy.round(float(continuous.detach()))))
        size = continuous + (out_length - continuous).detach()  # value out_length, derivative of L / a
        i = torch.arange(out_length, dtype=x.dtype, device=x.device)
        half = torch.tensor([0.0, 0.5], dtype=x.dtype, device=x.device)
        phase = (i[:, None] + 0.25 + half[None, :]).reshape(-1)
        u = phase * (length / size) - 0.5
        return out_length, (u + 0.5) * 2 / length - 1

    out_h, grid_y = grid_coordinates(H, alpha[0])
    out_w, grid_x = grid_coordinates(W, alpha[1])
    grid = torch.stack(torch.broadcast_tensors(grid_x[None, :], grid_y[:, None]), -1)
    grid = grid[None].expand(N, -1, -1, -1)
    query = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    points = query.reshape(N, C, out_h, 2, out_w, 2).permute(0, 1, 2, 4, 3, 5).reshape(N, C, out_h, out_w, 4)
    return points.max(-1).values if aggregate == "max" else points.mean(-1)
