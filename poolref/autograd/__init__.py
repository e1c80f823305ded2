r"""poolref's manual tape: Tensor, Tape, Function (a forward/backward pair), vjp and gradient checks.

Reading order for learners: ``tape.py`` (the Wengert list and the reverse walk), ``tensor.py``,
``function.py`` (how an op is recorded), ``arithmetic.py`` (the simplest backward functions), then
``gradcheck.py`` (how every backward in poolref is verified).
"""

# tensor must be imported first: it imports arithmetic and function at its end, once Tensor exists.
from .tensor import Tensor  # isort: skip
from .arithmetic import unbroadcast
from .function import REGISTRY, Function, apply, define_function
from .gradcheck import GradcheckError, adjoint_test, gradcheck, vjp
from .tape import Tape

__all__ = [
    "Tensor",
    "Tape",
    "Function",
    "define_function",
    "apply",
    "REGISTRY",
    "vjp",
    "gradcheck",
    "adjoint_test",
    "GradcheckError",
    "unbroadcast",
]
