"""Plain-loop reference implementations: the executable specification of SEMANTICS.md.

Used only in tests and documentation, where the shipped vectorised ops are held equal to them. Every
function loops over every output element and every window tap; geometry arguments arrive already
resolved (tuples of ints, one per spatial dimension).
"""

from .adaptive import (
    adaptive_avg_pool_backward_reference,
    adaptive_avg_pool_reference,
    adaptive_bin,
    adaptive_max_pool_backward_reference,
    adaptive_max_pool_reference,
)
from . import region, sampling
from .lp_pool import lp_pool_backward_reference, lp_pool_reference
from .window import (
    avg_pool_backward_reference,
    avg_pool_reference,
    max_pool_backward_reference,
    max_pool_reference,
    max_unpool_backward_reference,
    max_unpool_reference,
    output_length,
    window_taps,
)

# The region and sampling references are many small functions; reach them as
# ``poolref.reference.region`` and ``poolref.reference.sampling``.
__all__ = [
    "region",
    "sampling",
    "output_length",
    "window_taps",
    "max_pool_reference",
    "max_pool_backward_reference",
    "avg_pool_reference",
    "avg_pool_backward_reference",
    "lp_pool_reference",
    "lp_pool_backward_reference",
    "max_unpool_reference",
    "max_unpool_backward_reference",
    "adaptive_bin",
    "adaptive_avg_pool_reference",
    "adaptive_avg_pool_backward_reference",
    "adaptive_max_pool_reference",
    "adaptive_max_pool_backward_reference",
]
