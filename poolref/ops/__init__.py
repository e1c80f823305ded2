"""The pooling ops, one module per family; each op is a forward/backward pair plus a public function."""

from .adaptive import *  # noqa: F401,F403
from .adaptive import __all__ as _adaptive_all
from .window import *  # noqa: F401,F403
from .window import __all__ as _window_all

__all__ = list(_window_all) + list(_adaptive_all)
