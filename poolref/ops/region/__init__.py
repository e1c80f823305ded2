r"""Region pooling: spatial pyramid pooling, RoI pool, RoI Align and their position-sensitive variants.

A *region* op pools each of ``K`` boxes (regions of interest) of a feature map ``x`` (N, C, H, W) into
a fixed grid of ``ph x pw`` bins, whatever the box's size: (K, C, ph, pw). The semantics are
torchvision's (SEMANTICS.md section 8); ``convention="onnx"`` selects ONNX Runtime's where it differs.
Boxes are a (K, 5) array of ``[batch_index, x1, y1, x2, y2]`` rows, or a list of (K_i, 4) arrays, one
per image (:func:`~poolref.ops.region.boxes.boxes_to_rois`).

One module per op family, each a forward/backward pair (or two) written side by side:

=========================  =======================================================================
``boxes``                  what the ops share: argument checks, boxes, the geometry of align and
                           pool bins, channels-last tables
``sampling_matrix``        the averaging align ops as a sparse matrix ``A`` of bilinear weights:
                           forward ``A @ table``, backward ``A.T @ grad``
``roi_align``              RoI Align: average mode (the sparse matrix) and ONNX's max mode (a
                           running max), two pairs
``roi_pool``               RoI pool (a running max over integer bins)
``position_sensitive``     position-sensitive RoI pool and RoI Align
``pyramid``                spatial pyramid pooling (levels of adaptive or windowed pooling)
=========================  =======================================================================

How the array code is organised (no loop over boxes, bins or channels):

* the geometry of every box (where its bins start, how large they are, how many sampling points a bin
  has) is a handful of (K,) arrays, and the sampling coordinates of every bin are (K, ph, pw, g)
  arrays, read with torchvision's bilinear rule (:func:`poolref._sampling_torchvision.bilinear_axis`);
* a loop over the few *taps* (a sampling point and one of its four bilinear corners,
  :func:`poolref._sampling_torchvision.bilinear_taps`, or one cell of a RoI-pool bin) handles that tap
  for every box and bin at once; the input is read channels-last, ``x[b, :, h, w]`` as one row of a
  table, so that every read takes a whole row of channels;
* the averaging align ops are linear in ``x``: the taps fill a sparse matrix once, in the forward,
  and the backward is its transpose;
* the max ops (RoI pool, ONNX's max mode of RoI Align) keep a running maximum over the taps and
  scatter-add their backward to the winners with ``bincount``.

Boxes whose adaptive sampling grid (``sampling_ratio <= 0``) is smaller than the largest box's skip
the taps they do not have, so the work stays proportional to the samples actually taken. The plain
loops of :mod:`poolref.reference.region` are the executable specification these functions are tested
against; :mod:`poolref.ops.deformable` (deformable RoI pooling) builds on the same boxes and sampling
matrix.
"""

from .position_sensitive import ps_roi_align, ps_roi_pool
from .pyramid import spatial_pyramid_pool2d
from .roi_align import roi_align
from .roi_pool import roi_pool

# The helpers the ops share live in .boxes (checks, geometry, tables), .sampling_matrix and
# poolref._sampling_weights (torchvision's bilinear rule); they are importable here too, as they were
# when this package was one module.
from .boxes import *  # noqa: F401,F403
from .sampling_matrix import SamplingMatrix, sampling_matrix  # noqa: F401
from ..._sampling_torchvision import AxisTaps, Tap, bilinear_axis, bilinear_taps  # noqa: F401

__all__ = ["spatial_pyramid_pool2d", "roi_pool", "roi_align", "ps_roi_pool", "ps_roi_align"]
