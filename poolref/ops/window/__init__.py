r"""Windowed pooling: max, average and Lp pooling in 1, 2 and 3 dimensions, and max unpooling.

``max.py`` holds max pooling, ``average.py`` average and Lp pooling (both built on window sums),
``unpool.py`` max unpooling.

Each op is a pair of pure functions, ``_<op>_forward`` and ``_<op>_backward``, registered with the
tape by :func:`poolref.autograd.define_function`, and a public function that checks its arguments,
asks :mod:`poolref._geometry` where the windows lie and applies the pair. The pairs are adjoint in the
way Chainer makes explicit:

* average pooling is linear, so its backward is its transpose: each window's gradient is spread back
  over the window's taps (:func:`window_sum_adjoint` is the transpose of :func:`window_sum`);
* max pooling selects, so its backward is a scatter of each gradient onto the selected element, whose
  adjoint is a gather; max *unpooling* is that scatter, and its backward is the gather.

The vectorised code never loops over output pixels, batch or channels: it loops over the few kernel
taps and reads, for each tap, a strided view of the padded input that holds that tap for every window
at once (``geometry.tap_slices``). The plain-loop references in :mod:`poolref.reference.window` are
the executable specification these functions are tested against.

Every (n, c) plane is pooled on its own, so the planes run in cache-sized blocks
(:func:`poolref._backend.batch_blocks`): a handful of blocks, each taken through all the passes
before the next, so that a large batch does not stream through main memory in every pass. The
blocking is a speed trick: it changes no value.
"""

# the functions' forward/backward pairs and max pooling's record, for the ops built on them
# (stochastic, mixed, region and adaptive pooling)
from .average import (  # noqa: F401
    AVG_POOL,
    LP_POOL,
    avg_pool1d,
    avg_pool2d,
    avg_pool3d,
    lp_pool1d,
    lp_pool2d,
    lp_pool3d,
)
from .max import MAX_POOL, MaxPoolSaved, max_pool1d, max_pool2d, max_pool3d  # noqa: F401
from .unpool import MAX_UNPOOL, max_unpool1d, max_unpool2d, max_unpool3d  # noqa: F401

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
]
