"""Figure of Shape Adaptor's two branches and their mix, for three values of alpha.

Run by the ``.. plot::`` directive at build time; every map is computed by :class:`poolref.nn.ShapeAdaptor`
and the ops it uses (``max_pool2d``, ``interpolate``).
"""

import matplotlib.pyplot as plt
import numpy as np

import poolref
from poolref import nn

ALPHAS = [-2.0, 0.0, 2.0]


def _image():
    """A 16 x 16 ring: fine detail that the max-pool branch blurs and the identity branch keeps."""
    r = np.hypot(*np.meshgrid(np.arange(16) - 7.5, np.arange(16) - 7.5, indexing="ij"))
    return ((np.abs(r - 5.0) < 1.2) * 1.0)[None, None]  # (1, 1, 16, 16)


def shape_adaptor_branches():
    """The input, then for each alpha: max-pool branch, identity branch (both resized) and output."""
    x = _image()
    fig, axes = plt.subplots(len(ALPHAS), 4, figsize=(8, 2.1 * len(ALPHAS)))
    for row, alpha in zip(axes, ALPHAS):
        layer = nn.ShapeAdaptor(alpha)
        y = layer(x).data[0, 0]
        size = layer.size
        low = poolref.interpolate(poolref.max_pool2d(x, 2), size=size, mode="bilinear", align_corners=True)[0, 0]
        high = poolref.interpolate(x, size=size, mode="bilinear", align_corners=True)[0, 0]
        sigma = 1 / (1 + np.exp(-alpha))
        panels = [(x[0, 0], "input 16 x 16"), (low, f"max pool, resized ({1 - sigma:.2f})"),
                  (high, f"identity, resized ({sigma:.2f})"), (y, f"output {size[0]} x {size[1]}")]
        for ax, (image, title) in zip(row, panels):
            ax.imshow(image, cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"alpha = {alpha:g}\ns = {layer.scale():.3f}", fontsize=8)
    fig.tight_layout()
    return fig
