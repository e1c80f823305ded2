r"""Bilinear sampling and interpolation: the fixed resizes (``grid_sample``, ``interpolate``).

These are the resizes a network uses when the output size is fixed in advance; DynOPool learns it
instead. Both follow PyTorch's rules exactly (SEMANTICS.md section 9); ``interpolate`` also those of
``tf.image.resize`` and ``jax.image.resize`` (``convention=``).

``grid_sample`` reads ``x`` at arbitrary points. A grid coordinate ``g`` in ``[-1, 1]`` becomes a
pixel coordinate ``i`` (``align_corners=False``: ``-1`` and ``1`` are the outer edges of the corner
pixels, ``i = (g + 1) * L/2 - 1/2``; ``True``: they are the corner pixel centres,
``i = (g + 1) * (L - 1)/2``), the padding mode maps ``i`` back into the image where needed (``border``
clamps it, ``reflection`` reflects it off the edges and then clamps it), and the value is the bilinear
blend of the four pixels around ``i`` (pixels outside the image read 0) or the nearest pixel.

For a fixed grid, sampling is linear in ``x``: every output point is a weighted sum of a few pixels.
So the forward builds that linear map once as a sparse matrix ``S`` with one row per output point
and one column per pixel, row ``p`` holding point ``p``'s four bilinear weights (sixteen bicubic)
in the columns of the pixels it reads, and computes ``y = S @ image``, where ``image`` is a
channels-last copy of ``x`` (one row of channels per pixel) inside a zero frame, so that no corner
needs a bounds test. The backward to ``x`` is then the transpose of the same matrix,
``grad_image = S.T @ grad_y``: this is the adjoint relationship ``<grad_y, S x> = <S.T grad_y, x>``
that every linear op's backward obeys, and written out it is a scatter-add of each point's gradient,
times its weights, into the pixels it read (zero weights included: 0 * inf is NaN there, as in
PyTorch). The gradient to the grid is the derivative of the bilinear weights, written as PyTorch
writes it (differences of neighbouring pixels), times the derivative of the coordinate map.
Nearest sampling is the same map with a single 1 per row, so it needs no matrix: each point reads
one pixel, the same in every channel, and the forward is a gather from each plane of ``x`` as it is
(channels first, no copy) and the backward its adjoint, a scatter-add (the helpers every max-type
op uses, :func:`poolref._windows.gather_from_planes` and :func:`~poolref._windows.scatter_to_planes`).

``interpolate`` resizes to a given size. Every mode is separable: along each spatial axis, output
``o`` reads a few input positions with weights (one for nearest, two for linear, a window for
antialiased and area resizing), so the forward gathers and weighs along one axis at a time and the
backward gathers along the same axes with the transposed tables: for each input position, the outputs
that read it. Which taps are read, and with which weights, is each framework's own rule, kept in
:mod:`poolref._sampling_weights` (``convention=`` picks PyTorch's, TensorFlow's or JAX's); only the
taps a framework reads are ever read, so a NaN or an infinity spreads exactly as far as it does there.

``grid_sample.py`` holds ``grid_sample`` (bilinear, nearest and bicubic; ``grid_sample_3d.py`` its
volumetric form; ``grid_coordinates.py`` where the points read),
``interpolate.py`` ``interpolate``, ``checks.py`` the argument checks both use.
"""

# the functions' forward/backward pairs, and the interpolation plan the oracle reads
from .grid_sample import GRID_SAMPLE, GRID_SAMPLE_NEAREST, grid_sample  # noqa: F401
from .interpolate import INTERPOLATE, interpolate, resize_plan  # noqa: F401

__all__ = ["grid_sample", "interpolate"]
