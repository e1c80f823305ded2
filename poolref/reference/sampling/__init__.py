r"""Plain-loop references for the fixed resizes, ``grid_sample`` and ``interpolate``, forward and backward.

The executable specification of SEMANTICS.md section 9, in PyTorch's semantics. Every function visits
every output element, and for each its sampling taps, with ordinary Python loops in float64; nothing
is vectorised. Inputs are ``(N, C, *spatial)`` float arrays; grids are ``(N, H_out, W_out, 2)``.

``grid_sample`` maps a normalized coordinate :math:`g \in [-1, 1]` along an axis of :math:`L` pixels
to the pixel coordinate

.. math::

    i = \frac{(g + 1) L - 1}{2} \ (\text{align\_corners=False}), \qquad
    i = \frac{(g + 1)(L - 1)}{2} \ (\text{True}),

then lets the padding mode move it (:func:`grid_source_coordinate`) and reads the four pixels around
it (bilinear) or the nearest one. ``interpolate`` is separable: along each axis, output :math:`o`
reads a few input positions with weights, :func:`resize_taps`, by each framework's rule (PyTorch's,
TensorFlow's, JAX's), every rule written here again for one output at a time, in the framework's own
float32 or float64 arithmetic, so that it decides the same taps as the framework and as the
vectorised tables of ``poolref/_sampling_weights.py``, which the tests hold equal to these.

``grid.py`` holds ``grid_sample``'s references, ``resize_taps.py`` each framework's taps of one
output, ``resize.py`` ``interpolate``'s references built on them.
"""

from .grid import *  # noqa: F401,F403
from .grid import __all__ as _grid_names
from .resize import *  # noqa: F401,F403
from .resize import __all__ as _resize_names
from .resize_taps import *  # noqa: F401,F403
from .resize_taps import __all__ as _taps_names

__all__ = _grid_names + _taps_names + _resize_names
