r"""Neural-network building blocks on poolref's tape: enough to train the tutorials' small networks.

* :mod:`~poolref.nn.module`: :class:`Module` (parameters found by walking attributes) and
  :class:`Parameter`;
* :mod:`~poolref.nn.layers`: :class:`Conv2d`, :class:`DeformConv2d`, :class:`Linear`, :class:`ReLU`, :class:`Flatten`,
  :class:`MaxPool2d`, :class:`AvgPool2d`, :class:`Sequential`;
* :mod:`~poolref.nn.functional`: elementwise Functions (:func:`~poolref.nn.functional.relu`,
  :func:`~poolref.nn.functional.sigmoid`);
* :mod:`~poolref.nn.losses`: :func:`cross_entropy`;
* :mod:`~poolref.nn.optim`: :class:`SGD` and :class:`Adam`, with PyTorch's update rules;
* :mod:`~poolref.nn.dynopool`: :class:`DynOPool` (learned alpha), :func:`gmacs_loss`;
* :mod:`~poolref.nn.shape_adaptor`: :class:`ShapeAdaptor` (Liu et al. 2020), :func:`shape_adaptor_penalty`;
* :mod:`~poolref.nn.normalization`: :class:`BatchNorm2d` (:func:`~poolref.nn.normalization.batch_norm`);
* :mod:`~poolref.nn.aspp`: :class:`ASPP` (DeepLab v3's atrous spatial pyramid pooling).

Every backward is a hand-written Function; the layers only own weights and settings.
"""

from .aspp import ASPP
from .dynopool import DynOPool, conv2d_gmacs, gmacs_loss, straight_through_size
from .functional import concat, dropout, relu, sigmoid
from .layers import AdaptiveAvgPool2d, AvgPool2d, Conv2d, DeformConv2d, Dropout, Flatten, Linear, MaxPool2d, ReLU, Sequential
from .losses import cross_entropy
from .module import Module, Parameter
from .normalization import BatchNorm2d, batch_norm
from .optim import SGD, Adam, Optimizer
from .shape_adaptor import ShapeAdaptor, shape_adaptor_init, shape_adaptor_mix, shape_adaptor_penalty

__all__ = [
    "Module",
    "Parameter",
    "Conv2d",
    "DeformConv2d",
    "Linear",
    "ReLU",
    "Flatten",
    "MaxPool2d",
    "AvgPool2d",
    "Sequential",
    "relu",
    "sigmoid",
    "cross_entropy",
    "Optimizer",
    "SGD",
    "Adam",
    "DynOPool",
    "gmacs_loss",
    "conv2d_gmacs",
    "straight_through_size",
    "ShapeAdaptor",
    "shape_adaptor_init",
    "shape_adaptor_mix",
    "shape_adaptor_penalty",
    "ASPP",
    "BatchNorm2d",
    "batch_norm",
    "Dropout",
    "dropout",
    "AdaptiveAvgPool2d",
    "concat",
]
