"""Imports: `import logic` (a module of the standard library) and `import "file.tl"` (relative to the file).

`expand_imports` splices each imported module's statements (parsed with their own file name, so errors
point into the module) in place of the import, once per module, detecting import cycles.
"""

from __future__ import annotations

from pathlib import Path

from . import ast
from .diagnostics import Diagnostic, TLSyntaxError
from .parser import parse


def stdlib_dir() -> Path:
    """Where the standard library's .tl modules live: inside the installed package, or the checkout's stdlib/."""
    here = Path(__file__).resolve().parent.parent
    for cand in (here / "stdlib", here.parent / "stdlib"):
        if cand.is_dir():
            return cand
    return here / "stdlib"


def stdlib_modules() -> list[str]:
    return sorted(p.stem for p in stdlib_dir().glob("*.tl"))


def _resolve(imp: ast.Import, base_dir: Path | None) -> Path:
    if imp.is_path:
        p = Path(imp.module)
        return p if p.is_absolute() else (base_dir or Path.cwd()) / p
    return stdlib_dir() / (imp.module.replace(".", "/") + ".tl")


def expand_imports(program: ast.Program, base_dir: str | Path | None = None,
                   _seen: set[Path] | None = None, _stack: tuple[Path, ...] = ()) -> ast.Program:
    """The program with every import replaced by the imported module's statements."""
    seen = _seen if _seen is not None else set()
    base = Path(base_dir) if base_dir is not None else None
    out: list[ast.Statement] = []
    for st in program.statements:
        if not isinstance(st, ast.Import):
            out.append(st)
            continue
        path = _resolve(st, base).resolve()
        if path in _stack:
            raise TLSyntaxError(Diagnostic(f"import cycle: {' -> '.join(p.name for p in _stack + (path,))}",
                                           st.span))
        if path in seen:
            continue
        if not path.is_file():
            avail = ", ".join(stdlib_modules()) or "none"
            hint = None if st.is_path else f"the standard library modules are: {avail}"
            raise TLSyntaxError(Diagnostic(f"cannot import '{st.module}': no file {path}", st.span, hint))
        seen.add(path)
        sub = parse(path.read_text(), str(path))
        sub = expand_imports(sub, path.parent, seen, _stack + (path,))
        out.extend(sub.statements)
    return ast.Program(out, program.file, program.source)
