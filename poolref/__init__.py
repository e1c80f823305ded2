"""poolref: the reference implementation of pooling, forward and backward, in NumPy and CuPy.

Arrays in, arrays out; :class:`poolref.Tensor` in, Tensors out, recorded on the tape. Names follow
PyTorch's functional API (``max_pool2d``, ``avg_pool2d``, ...), defaults follow PyTorch's semantics and
``convention=`` selects another framework's rules.

>>> import numpy as np, poolref
>>> x = poolref.Tensor(np.array([[[1., 2.], [4., 3.]]]), requires_grad=True)
>>> y = poolref.max_pool2d(x, 2)
>>> y.sum().backward()
>>> x.grad
array([[[0., 0.],
        [1., 0.]]])
"""

from ._version import __version__
from .autograd import Tape, Tensor, vjp
from .ops import *  # noqa: F401,F403
from .ops import __all__ as _ops_all

__all__ = ["Tensor", "Tape", "vjp", "__version__"] + list(_ops_all)
