r"""Plain-loop references for region pooling: spatial pyramid pooling, RoI pool, RoI Align (torchvision
and ONNX), position-sensitive RoI pool / align and deformable RoI pooling, forward and backward.

The executable specification of SEMANTICS.md section 8. Every function loops over every box, channel,
bin, sampling point and bilinear corner with ordinary Python code, computing the geometry in float64,
so that a reader can hold it against the rules (and against torchvision's CPU kernels, which these
loops follow statement by statement). Nothing here is fast: tests run these on tiny arrays and hold
the vectorised ops of :mod:`poolref.ops.region` and :mod:`poolref.ops.deformable` equal to them.
One module per op family, as in :mod:`poolref.ops.region` (``boxes`` holds what they share); every
name is importable from this package.

Boxes arrive as ``rois``: a float array of shape (K, 5), one row ``[batch_index, x1, y1, x2, y2]`` per
box, in input-image coordinates (``spatial_scale`` maps them onto the feature map). The plain-loop
functions do not validate anything.

Bilinear sampling, shared by every "align" op, is torchvision's ``bilinear_interpolate``
(:func:`~poolref.reference.region.boxes.bilinear_corners`).
"""

from ..._running_max import FLT_MAX
from .boxes import (  # noqa: F401 - the shared helpers, reachable as region.<name>
    align_geometry,
    bilinear_corner_slopes,
    bilinear_corners,
    bin_samples,
    result_dtype,
    roi_pool_bins,
    round_half_away_from_zero,
    weighted_corners,
)
from .deformable import deform_roi_pool_backward_reference, deform_roi_pool_reference, deformed_samples  # noqa: F401
from .position_sensitive import (
    ps_roi_align_backward_reference,
    ps_roi_align_reference,
    ps_roi_pool_backward_reference,
    ps_roi_pool_reference,
)
from .pyramid import spatial_pyramid_bins, spatial_pyramid_pool_backward_reference, spatial_pyramid_pool_reference
from .roi_align import roi_align_backward_reference, roi_align_reference
from .roi_pool import roi_pool_backward_reference, roi_pool_reference

__all__ = [
    "FLT_MAX",
    "round_half_away_from_zero",
    "bilinear_corners",
    "bilinear_corner_slopes",
    "spatial_pyramid_bins",
    "spatial_pyramid_pool_reference",
    "spatial_pyramid_pool_backward_reference",
    "roi_pool_reference",
    "roi_pool_backward_reference",
    "roi_align_reference",
    "roi_align_backward_reference",
    "ps_roi_pool_reference",
    "ps_roi_pool_backward_reference",
    "ps_roi_align_reference",
    "ps_roi_align_backward_reference",
    "deform_roi_pool_reference",
    "deform_roi_pool_backward_reference",
]
