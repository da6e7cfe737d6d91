"""tensorlogic: the tensor logic language (Domingos, 2025) - one construct, the tensor equation.

    import tensorlogic as tl
    prog = tl.Program("Y[i] = step(W[i,j] X[j])\nY?")
    prog.run(W=..., X=...)
"""

from .api import Answer, Program, load
from .syntax.diagnostics import TLAnalysisError, TLError, TLRuntimeError, TLSyntaxError
from .syntax.parser import parse

__all__ = ["Program", "load", "Answer", "parse", "TLError", "TLSyntaxError", "TLAnalysisError",
           "TLRuntimeError", "TorchModule"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`tl.TorchModule`, imported on first use (so `import tensorlogic` does not import torch)."""
    if name == "TorchModule":
        from .backends.torch_module import TorchModule

        return TorchModule
    raise AttributeError(f"module 'tensorlogic' has no attribute '{name}'")


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext tensorlogic`: the `%%tl` cell magic (see tensorlogic.repl.magic)."""
    from .repl.magic import load_ipython_extension as _load

    _load(ipython)
