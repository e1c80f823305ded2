"""The pooling ops, one module per family; each op is a forward/backward pair plus a public function."""

from . import adaptive, bilinear, blur, convolution, deform_conv, deformable, dynopool, fractional, learned, region, sampling, stochastic, window
from .adaptive import *  # noqa: F401,F403
from .bilinear import *  # noqa: F401,F403
from .blur import *  # noqa: F401,F403
from .convolution import *  # noqa: F401,F403
from .deform_conv import *  # noqa: F401,F403
from .deformable import *  # noqa: F401,F403
from .dynopool import *  # noqa: F401,F403
from .fractional import *  # noqa: F401,F403
from .learned import *  # noqa: F401,F403
from .region import *  # noqa: F401,F403
from .sampling import *  # noqa: F401,F403
from .stochastic import *  # noqa: F401,F403
from .window import *  # noqa: F401,F403

__all__ = [name for module in (window, adaptive, fractional, stochastic, learned, bilinear, convolution, deform_conv, blur, region, deformable, sampling, dynopool) for name in module.__all__]
