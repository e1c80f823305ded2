"""Run CUDA kernels on the CPU: a ``.cu`` source compiled unchanged as C++20, loaded with ctypes.

CI has no GPU, so the kernels in ``poolref/kernels/*.cu`` are proven here on every run. The source is
compiled, as it is, after ``cuda_shim.hpp`` (the CUDA built-ins it uses: thread and block indices,
full-warp shuffles with a barrier in each, ``__syncthreads``, real atomics, CUDA's launch limits; see
that file for exactly what is emulated and how strictly), together with one launch wrapper per
``extern "C" __global__`` function, into a shared library; :class:`EmulatedModule` loads it with
ctypes and hands out :class:`EmulatedKernel` objects that are called like CuPy's ``RawKernel``::

    module = EmulatedModule(path="poolref/kernels/dynopool.cu")
    kernel = module.get_function("dynopool_forward_float32")
    kernel((blocks,), (256,), (x, y, choice, numpy.int32(total), ...))

Import it as ``from kernels import emulator`` (pytest puts ``tests/`` on the path).

Compiled libraries are cached by content (source, shim, compiler, flags) under
``$TMPDIR/poolref-emulator-<uid>/`` and loaded once per process.

What a launch accepts (stricter than CuPy, which checks nothing and would pass garbage):

* ``grid`` and ``block``: an int or a tuple of 1 to 3 ints; CUDA's limits are checked.
* ``args``: one entry per kernel parameter, in order:

  - for a pointer parameter: ``None`` (a null pointer), a ``numpy.ndarray``, or any object with an
    ``__array_interface__`` or ``__cuda_array_interface__`` (a dict with ``"data": (address,
    read_only)``, ``"typestr"`` and ``"strides"``) whose address is **host** memory: the test stand-in
    for CuPy hands its arrays' numpy buffers. The array must be C-contiguous, its dtype must be the
    pointee's (``float*`` takes float32, ``signed char*`` int8; ``void*`` takes any), and a read-only
    array goes only to a ``const`` pointer. The array must stay alive during the call (it does: the
    call returns when the kernel has finished).
  - for a scalar parameter: a numpy scalar (or 0-d array) of exactly the parameter's type
    (``int`` takes ``numpy.int32``, ``double`` ``numpy.float64``). A Python int or float is refused:
    CuPy would pass it as a 64-bit value, which an ``int`` parameter reads wrongly.
* ``shared_mem``: 0 (dynamic shared memory is not emulated).

A kernel that breaks a CUDA rule the shim checks (a lane that returns while its warp waits in a
shuffle, a thread that skips ``__syncthreads``, a deadlock, a launch beyond the limits) raises
:class:`EmulatorError` with what happened and where; nothing hangs.

Blocks run one after another by default; ``EmulatedModule(..., concurrent_blocks=k)`` runs k blocks at
once (k copies of the library, each with its own ``__shared__`` variables, on the same memory), so
that atomics from different blocks race as they do on a GPU.

Compiled with ``-fsanitize=address,undefined`` when the process runs under AddressSanitizer
(``LD_PRELOAD=$(g++ -print-file-name=libasan.so)``; see ``test_dynopool_kernel.py``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy

__all__ = ["EmulatedKernel", "EmulatedModule", "EmulatorError", "available", "compiler", "why_not"]

HERE = Path(__file__).resolve().parent
SHIM = HERE / "cuda_shim.hpp"
WRAPPER_VERSION = "1"  # bump when the generated wrappers change
# -O1: quick to compile; -ffp-contract=off: no fused multiply-adds (nvcc --fmad=false)
# -fno-gnu-unique: a static local of a template (a __shared__ array) is otherwise one STB_GNU_UNIQUE
# symbol for every loaded copy of the library, and concurrent blocks would share it
FLAGS = ("-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-ffp-contract=off", "-fno-fast-math")
GNU_UNIQUE_OFF = "-fno-gnu-unique"  # g++ only (clang never makes such symbols)
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")
KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+(\w+)\s*\(')


class EmulatorError(RuntimeError):
    """A launch refused (CUDA's limits, wrong arguments) or a kernel that broke a CUDA rule."""


# --------------------------------------------------------------------------------------------------
# The compiler
# --------------------------------------------------------------------------------------------------
_compiler_check: dict = {}


def compiler() -> str | None:
    """The C++ compiler that compiles the shim (``$CXX``, else g++, else clang++), or None."""
    if "result" not in _compiler_check:
        _compiler_check["result"] = _find_compiler()
    return _compiler_check["result"][0]


def _find_compiler():
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++"]
    reasons = []
    for name in candidates:
        path = shutil.which(name)
        if path is None:
            reasons.append(f"{name}: not found")
            continue
        # C++20 with <barrier> and std::atomic_ref<double>: what the shim needs
        probe = "#include <barrier>\n#include <atomic>\nint main() { double d = 0; std::atomic_ref<double>(d).fetch_add(1.0); std::barrier b(1); }\n"
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "probe.cpp"
            source.write_text(probe)
            result = subprocess.run([path, "-std=c++20", "-pthread", str(source), "-o", str(Path(folder) / "probe")],
                                    capture_output=True, text=True)
        if result.returncode == 0:
            unique = subprocess.run([path, GNU_UNIQUE_OFF, "-x", "c++", "-fsyntax-only", "-"], input="int main() {}\n",
                                    capture_output=True, text=True).returncode == 0
            return path, "", (GNU_UNIQUE_OFF,) if unique else ()
        reasons.append(f"{name} ({path}) does not compile C++20 with <barrier> and std::atomic_ref: {result.stderr.strip()[:300]}")
    return None, "; ".join(reasons), ()


def available() -> bool:
    """True when a C++20 compiler is present, so that kernels can be emulated."""
    return compiler() is not None


def why_not() -> str:
    """Why :func:`available` is False ('' when it is True)."""
    compiler()
    return "" if available() else "no C++20 compiler to emulate CUDA kernels with (" + _compiler_check["result"][1] + ")"


def running_under_asan() -> bool:
    """Whether AddressSanitizer's runtime is loaded in this process (then libraries are built with it)."""
    try:
        return "libasan" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# Signatures: what each parameter takes
# --------------------------------------------------------------------------------------------------
SCALAR_CODES = {"f4": numpy.float32, "f8": numpy.float64, "i1": numpy.int8, "i2": numpy.int16, "i4": numpy.int32,
                "i8": numpy.int64, "u1": numpy.uint8, "u2": numpy.uint16, "u4": numpy.uint32, "u8": numpy.uint64,
                "b1": numpy.bool_}
CTYPES = {"f4": ctypes.c_float, "f8": ctypes.c_double, "i1": ctypes.c_int8, "i2": ctypes.c_int16, "i4": ctypes.c_int32,
          "i8": ctypes.c_int64, "u1": ctypes.c_uint8, "u2": ctypes.c_uint16, "u4": ctypes.c_uint32, "u8": ctypes.c_uint64,
          "b1": ctypes.c_bool}


class Parameter:
    """One kernel parameter, from the code the shim writes (``f4``, ``i4``, ``pc:f8`` = const double*)."""

    def __init__(self, code: str):
        self.code = code
        self.pointer = code.startswith("p")
        self.const = code.startswith("pc:")
        self.pointee = code.split(":", 1)[1] if self.pointer else None
        scalar = self.pointee if self.pointer else code
        if scalar not in SCALAR_CODES and scalar != "v":
            raise EmulatorError(f"kernel parameter of a type the emulator cannot pass ({code})")
        self.dtype = None if scalar == "v" else numpy.dtype(SCALAR_CODES[scalar])

    def describe(self) -> str:
        if self.pointer:
            return f"{'const ' if self.const else ''}{'void' if self.dtype is None else self.dtype.name}*"
        return self.dtype.name


def _interface(value):
    for name in ("__cuda_array_interface__", "__array_interface__"):
        interface = getattr(value, name, None)
        if interface is not None:
            return interface
    return None


def _c_contiguous(shape, strides, itemsize) -> bool:
    if strides is None:
        return True
    expected = itemsize
    for extent, stride in zip(reversed(shape), reversed(strides)):
        if extent > 1 and stride != expected:
            return False
        expected *= extent
    return True


def _argument(kernel: str, position: int, parameter: Parameter, value, keep: list):
    """A ctypes object holding the argument's value for the kernel's parameter ``position``."""
    where = f"{kernel}: argument {position} ({parameter.describe()})"
    if parameter.pointer:
        if value is None:
            return ctypes.c_void_p(None)
        interface = _interface(value)
        if interface is None:
            raise EmulatorError(f"{where} must be an array (numpy, or with __array_interface__ / "
                                f"__cuda_array_interface__), got {type(value).__name__}")
        address, read_only = interface["data"]
        dtype = numpy.dtype(interface["typestr"])
        if parameter.dtype is not None and dtype != parameter.dtype:
            raise EmulatorError(f"{where} got an array of dtype {dtype}")
        if not _c_contiguous(tuple(interface["shape"]), interface.get("strides"), dtype.itemsize):
            raise EmulatorError(f"{where} got a non-contiguous array (strides {interface.get('strides')}): the kernel "
                                "sees a flat pointer")
        if read_only and not parameter.const:
            raise EmulatorError(f"{where} got a read-only array for a pointer the kernel may write through")
        keep.append(value)
        return ctypes.c_void_p(address)
    if isinstance(value, (bool, int, float)) and not isinstance(value, numpy.generic):
        raise EmulatorError(f"{where} got a Python {type(value).__name__}; pass numpy.{parameter.dtype.name}(...): "
                            "CuPy would pass it as a 64-bit value")
    scalar = numpy.asarray(value) if isinstance(value, (numpy.generic, numpy.ndarray)) else None
    if scalar is None or scalar.ndim != 0:
        raise EmulatorError(f"{where} must be a numpy scalar, got {type(value).__name__}")
    if scalar.dtype != parameter.dtype:
        raise EmulatorError(f"{where} got a numpy {scalar.dtype} scalar")
    return CTYPES[parameter.code].from_buffer_copy(scalar.tobytes())


def _dim3(value, what: str) -> tuple:
    if isinstance(value, (int, numpy.integer)):
        value = (value,)
    if not isinstance(value, tuple) or not 1 <= len(value) <= 3 or not all(isinstance(v, (int, numpy.integer)) for v in value):
        raise EmulatorError(f"{what} must be an int or a tuple of 1 to 3 ints, got {value!r}")
    if any(v < 0 or v >= 2**32 for v in value):
        raise EmulatorError(f"{what} {value!r}: dimensions must be unsigned 32-bit")
    return tuple(int(v) for v in value) + (1,) * (3 - len(value))


# --------------------------------------------------------------------------------------------------
# Compiling and loading
# --------------------------------------------------------------------------------------------------
OPTION_PREFIXES = ("-D", "-I", "--fmad", "-fmad", "-ftz", "--ftz", "--std", "-std", "--prec-div", "-prec-div",
                   "--prec-sqrt", "-prec-sqrt", "-lineinfo", "--generate-line-info", "-arch", "--gpu-architecture")


def _run_compiler(arguments):
    """Run the C++ compiler, without this process's LD_PRELOAD (AddressSanitizer would slow it down)."""
    env = {name: value for name, value in os.environ.items() if name not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    return subprocess.run([compiler(), *arguments], capture_output=True, text=True, env=env)


def _compile_flags(options) -> list:
    """The C++ compiler's share of CUDA compile options: -D and -I pass through; the floating-point
    and architecture options are accepted and have no C++ counterpart (the emulator keeps
    subnormals and never fuses, whatever -ftz or --fmad say); anything else is refused."""
    flags = []
    for option in options:
        if not isinstance(option, str) or not option.startswith(OPTION_PREFIXES):
            raise EmulatorError(f"compile option {option!r} is not emulated (accepted: {', '.join(OPTION_PREFIXES)})")
        if option.startswith(("-D", "-I")):
            flags.append(option)
        if option in ("--use_fast_math", "-use_fast_math"):
            raise EmulatorError("--use_fast_math is not emulated")
    return flags


def _cache_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / f"poolref-emulator-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def kernel_names(source_file: Path, flags) -> list:
    """The ``extern "C" __global__`` functions of a source, macros expanded (the preprocessor only)."""
    result = _run_compiler(["-E", "-P", "-x", "c++", "-std=c++20", *flags, str(source_file)])
    if result.returncode != 0:
        raise EmulatorError(f"preprocessing {source_file} failed:\n{result.stderr}")
    names = list(dict.fromkeys(KERNEL.findall(result.stdout)))
    if not names:
        raise EmulatorError(f'{source_file} has no extern "C" __global__ function')
    return names


def _wrappers(source_file: Path, names) -> str:
    lines = ['#include "cuda_shim.hpp"', f'#include "{source_file}"', ""]
    for name in names:
        lines += [
            f'extern "C" int poolref_emulator_launch__{name}(const unsigned* dims, unsigned long long shared_mem,',
            "        unsigned long long first_block, unsigned long long block_stride, void** args, char* error,",
            "        unsigned long long error_size) {",
            "    return poolref_emulator::launch(dims, shared_mem, first_block, block_stride, error, error_size,",
            f"                                    [args] {{ poolref_emulator::call({name}, args); }});",
            "}",
            f'extern "C" const char* poolref_emulator_signature__{name}() {{ return poolref_emulator::signature({name}); }}',
            "",
        ]
    return "\n".join(lines)


_build_lock = threading.Lock()
_loaded: dict = {}  # library path -> ctypes.CDLL (a library is loaded once per process)


def build(source: str, name: str, options=()) -> tuple:
    """Compile ``source`` (CUDA C++) with the shim into a shared library, once: (path, kernel names)."""
    if not available():
        raise EmulatorError(why_not())
    flags = _compile_flags(options)
    sanitize = running_under_asan()
    all_flags = [*FLAGS, *_compiler_check["result"][2], *(SANITIZE_FLAGS if sanitize else ()), *flags, f"-I{HERE}"]
    key = hashlib.sha256("\0".join([source, SHIM.read_text(), WRAPPER_VERSION, compiler(), *all_flags]).encode()).hexdigest()[:24]
    folder = _cache_folder() / key
    library = folder / "kernels.so"
    names_file = folder / "kernels.txt"
    with _build_lock:
        if library.exists() and names_file.exists():
            return library, names_file.read_text().split()
        work = Path(tempfile.mkdtemp(dir=_cache_folder()))
        try:
            kernel_file = work / (Path(name).stem + ".cu")
            kernel_file.write_text(source)
            names = kernel_names(kernel_file, flags)
            wrapper = work / "wrappers.cpp"
            wrapper.write_text(_wrappers(kernel_file, names))
            result = _run_compiler([*all_flags, str(wrapper), "-o", str(work / "kernels.so")])
            if result.returncode != 0:
                raise EmulatorError(f"{name} does not compile against the CUDA shim:\n{result.stderr}")
            (work / "kernels.txt").write_text("\n".join(names))
            try:
                work.rename(folder)  # atomic: another process may have built the same library meanwhile
            except OSError:
                pass
            if not library.exists():
                raise EmulatorError(f"could not store the compiled library in {folder}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return library, names


def _load(path: Path) -> ctypes.CDLL:
    with _build_lock:
        if path not in _loaded:
            _loaded[path] = ctypes.CDLL(str(path))
        return _loaded[path]


def _copy(library: Path, number: int) -> Path:
    """A copy of the library under its own name and inode: the dynamic loader loads it again, with its
    own statics (``__shared__``), so that blocks can run in different copies at once."""
    copy = library.with_name(f"kernels-copy{number}.so")
    with _build_lock:
        if not copy.exists():
            temporary = library.with_name(f"kernels-copy{number}.{os.getpid()}.tmp")
            shutil.copyfile(library, temporary)
            os.replace(temporary, copy)
    return copy


class EmulatedModule:
    """CUDA source compiled for the CPU, like ``cupy.RawModule`` (``code`` or ``path``).

    Parameters
    ----------
    code, path : str
        The CUDA source, or the path of a ``.cu`` file (one of them).
    options : tuple of str
        CUDA compile options: ``-D`` and ``-I`` are passed on; ``--fmad``, ``-ftz``, ``--std``,
        ``--prec-div``, ``--prec-sqrt``, ``-arch`` accepted and without effect (see
        :func:`_compile_flags`); any other refused.
    name_expressions : None
        Templated kernels are not supported (only ``extern "C"`` ones).
    concurrent_blocks : int
        How many blocks run at once (1: one after another).
    """

    def __init__(self, code: str = None, path: str = None, options=(), name_expressions=None, *, concurrent_blocks: int = 1):
        if (code is None) == (path is None):
            raise EmulatorError("give exactly one of code= and path=")
        if name_expressions:
            raise EmulatorError("name_expressions (templated kernels) are not emulated; use extern \"C\" kernels")
        if int(concurrent_blocks) < 1:
            raise EmulatorError(f"concurrent_blocks must be >= 1, got {concurrent_blocks}")
        self.source_name = str(path) if path is not None else "<code>"
        source = Path(path).read_text() if path is not None else code
        self.library_path, self.names = build(source, Path(path).name if path is not None else "kernel.cu", tuple(options))
        self.concurrent_blocks = int(concurrent_blocks)
        self.libraries = [_load(self.library_path)] + [_load(_copy(self.library_path, k)) for k in range(1, self.concurrent_blocks)]
        self.lock = threading.Lock()  # one launch at a time: the __shared__ statics are per library
        self._functions: dict = {}

    def get_function(self, name: str) -> EmulatedKernel:
        if name not in self.names:
            raise EmulatorError(f"{self.source_name} has no extern \"C\" __global__ function {name!r} (it has {self.names})")
        if name not in self._functions:
            self._functions[name] = EmulatedKernel(self, name)
        return self._functions[name]


class EmulatedKernel:
    """One kernel of an :class:`EmulatedModule`, called like CuPy's ``RawKernel``:
    ``kernel(grid, block, args, shared_mem=0)`` (see the module docstring for what ``args`` takes)."""

    def __init__(self, module: EmulatedModule, name: str):
        self.module, self.name = module, name
        self.launchers = []
        for library in module.libraries:
            launcher = getattr(library, f"poolref_emulator_launch__{name}")
            launcher.restype = ctypes.c_int
            launcher.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.c_ulonglong, ctypes.c_ulonglong, ctypes.c_ulonglong,
                                 ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_ulonglong]
            self.launchers.append(launcher)
        describe = getattr(module.libraries[0], f"poolref_emulator_signature__{name}")
        describe.restype = ctypes.c_char_p
        self.parameters = [Parameter(code) for code in describe().decode().split(",") if code]

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        grid3, block3 = _dim3(grid, "grid"), _dim3(block, "block")
        if not isinstance(args, tuple):
            raise EmulatorError(f"{self.name}: args must be a tuple, got {type(args).__name__}")
        if len(args) != len(self.parameters):
            raise EmulatorError(f"{self.name} takes {len(self.parameters)} arguments "
                                f"({', '.join(p.describe() for p in self.parameters)}), got {len(args)}")
        keep: list = []
        values = [_argument(self.name, position, parameter, value, keep)
                  for position, (parameter, value) in enumerate(zip(self.parameters, args))]
        pointers = (ctypes.c_void_p * max(1, len(values)))(*[ctypes.addressof(v) for v in values])
        dims = (ctypes.c_uint * 6)(*grid3, *block3)
        copies = len(self.launchers)
        errors = [ctypes.create_string_buffer(4096) for _ in range(copies)]
        codes = [0] * copies

        def run(copy: int):
            codes[copy] = self.launchers[copy](dims, int(shared_mem), copy, copies, pointers, errors[copy], 4096)

        with self.module.lock:
            if copies == 1:
                run(0)
            else:  # ctypes releases the GIL: the copies run their blocks at the same time
                workers = [threading.Thread(target=run, args=(copy,)) for copy in range(copies)]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
        failures = [errors[copy].value.decode(errors="replace") for copy in range(copies) if codes[copy]]
        if failures:
            raise EmulatorError(f"{self.name}: {failures[0]}")
        del keep


def module_for(path, concurrent_blocks: int = 1) -> EmulatedModule:
    """An :class:`EmulatedModule` of a .cu file, made once per (path, concurrency) in this process."""
    key = (str(path), concurrent_blocks)
    if key not in _modules:
        _modules[key] = EmulatedModule(path=str(path), concurrent_blocks=concurrent_blocks)
    return _modules[key]


_modules: dict = {}

if __name__ == "__main__":  # python tests/kernels/emulator.py: say whether kernels can be emulated here
    print("available" if available() else why_not())
    sys.exit(0)
