r"""The frameworks' known defects and deviations, modelled exactly for the oracle.

poolref keeps the true derivative where a framework's gradient is wrong, and PyTorch's rule where a
framework's op follows one of its own that poolref's op has no convention for; the oracle still
compares, and these *models* compute the framework's answer from poolref's right one, so that a
mismatch that is exactly the known defect is reported as such (with its reproducer) and any other
difference fails (:class:`poolref.oracle.mapping.KnownDefect`). The docs' atlas lists them all
(:data:`ALL`). Each was found by the oracle and checked by hand.

One module per framework holds its defects, each with the evidence in its text and, where it can be
computed, a model of the framework's answer: :mod:`~poolref.oracle.defects.pytorch`,
:mod:`~poolref.oracle.defects.tensorflow`, :mod:`~poolref.oracle.defects.jax` and
:mod:`~poolref.oracle.defects.onnxruntime` (what they share: :mod:`~poolref.oracle.defects.common`).
"""

from __future__ import annotations

from .pytorch import TORCH_HALF_ADAPTIVE_AVG_GRADIENT, TORCH_LP_POOL, TORCH_ANTIALIAS_COPIED_AXIS, TORCH_NEAREST_SHORTCUT_GRADIENT, TORCH_HALF_ADAPTIVE_MAX_GRADIENT, TORCH_CONV_FLOAT32_PADDING_GRADIENT, TORCH_BICUBIC_COPIED_GRADIENT, TORCH_ANTIALIAS_WIDTH_ONE  # noqa: F401
from .tensorflow import TF_MAX_POOL_ROUTING, TF_MAX_POOL3D_NEAR_TIES, TF_REDUCE_MAX, TF_AVG_POOL_SAME_LONG_WINDOW, TF_FRACTIONAL_NONFINITE, TF_CROP_AND_RESIZE_LERP, TF_CONV_SINGLE_COLUMN  # noqa: F401
from .jax import JAX_MIXED_POOL_MAX_ROUTING, JAX_MAX_BLUR_ROUTING, JAX_CONV_PADDING_GRADIENT, JAX_REDUCE_MAX, JAX_REDUCE_WINDOW_LENGTH_ONE, JAX_CONV_ABORT, JAX_DEPTHWISE_FLOAT64, JAX_GROUPED_NONFINITE_GRADIENT  # noqa: F401
from .onnxruntime import ORT_RESIZE_ROWS_SPREAD, ORT_RESIZE_COORDINATES, ORT_CUBIC_RESIZE_COORDINATES, ORT_GRID_SAMPLE_TAP_PADDING  # noqa: F401

__all__ = ["TORCH_LP_POOL", "TORCH_ANTIALIAS_WIDTH_ONE", "TORCH_ANTIALIAS_COPIED_AXIS", "TF_MAX_POOL_ROUTING", "TF_MAX_POOL3D_NEAR_TIES", "TF_REDUCE_MAX", "TF_AVG_POOL_SAME_LONG_WINDOW",
           "TF_FRACTIONAL_NONFINITE", "TF_CONV_SINGLE_COLUMN", "TF_CROP_AND_RESIZE_LERP", "JAX_REDUCE_MAX", "JAX_CONV_ABORT", "JAX_DEPTHWISE_FLOAT64", "JAX_GROUPED_NONFINITE_GRADIENT", "ORT_RESIZE_ROWS_SPREAD", "ORT_RESIZE_COORDINATES", "ORT_CUBIC_RESIZE_COORDINATES",
           "ORT_GRID_SAMPLE_TAP_PADDING",
           "TORCH_HALF_ADAPTIVE_MAX_GRADIENT", "JAX_REDUCE_WINDOW_LENGTH_ONE",
           "TORCH_CONV_FLOAT32_PADDING_GRADIENT", "TORCH_NEAREST_SHORTCUT_GRADIENT", "TORCH_HALF_ADAPTIVE_AVG_GRADIENT", "JAX_CONV_PADDING_GRADIENT", "JAX_MIXED_POOL_MAX_ROUTING",
           "JAX_MAX_BLUR_ROUTING", "ALL"]


#: Every known defect, for the docs.
ALL = {
    "torch": TORCH_LP_POOL + (TORCH_ANTIALIAS_WIDTH_ONE, TORCH_ANTIALIAS_COPIED_AXIS, TORCH_BICUBIC_COPIED_GRADIENT,
              TORCH_NEAREST_SHORTCUT_GRADIENT,
              TORCH_HALF_ADAPTIVE_MAX_GRADIENT, TORCH_HALF_ADAPTIVE_AVG_GRADIENT, TORCH_CONV_FLOAT32_PADDING_GRADIENT),
    "tensorflow": (TF_MAX_POOL_ROUTING, TF_MAX_POOL3D_NEAR_TIES, TF_REDUCE_MAX, TF_AVG_POOL_SAME_LONG_WINDOW,
                   TF_FRACTIONAL_NONFINITE, TF_CONV_SINGLE_COLUMN, TF_CROP_AND_RESIZE_LERP),
    "jax": (JAX_REDUCE_MAX, JAX_REDUCE_WINDOW_LENGTH_ONE, JAX_CONV_ABORT, JAX_DEPTHWISE_FLOAT64, JAX_GROUPED_NONFINITE_GRADIENT,
            JAX_CONV_PADDING_GRADIENT, JAX_MIXED_POOL_MAX_ROUTING, JAX_MAX_BLUR_ROUTING),
    "onnxruntime": (ORT_RESIZE_ROWS_SPREAD, ORT_RESIZE_COORDINATES, ORT_CUBIC_RESIZE_COORDINATES,
                    ORT_GRID_SAMPLE_TAP_PADDING),
}
