"""Imports and module uses: `import logic`, `import "file.tl"` and `use nn.linear(X=H, Y=O) as Layer1`.

`expand_imports` splices each imported file's top part (its statements before the first `module` header;
parsed with their own file name, so errors point into the file) in place of the import, once per file,
detecting import cycles. A `use` is replaced by the used module's statements renamed for that use
(`modules.Renamer`): every use expands to plain statements, so the rest of the pipeline never sees modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from .diagnostics import Diagnostic, TLError, TLSyntaxError
from .modules import Renamer, defined_names
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


@dataclass
class _File:
    """A parsed .tl file split into its top part and its module sections."""

    path: Path | None
    top: list[ast.Statement]
    modules: dict[str, tuple[ast.ModuleDecl, list[ast.Statement]]] = field(default_factory=dict)


def split_modules(statements: list[ast.Statement], path: Path | None = None) -> _File:
    """The statements before the first `module` header, and each module's section (up to the next header)."""
    out = _File(path, [])
    body = out.top
    for st in statements:
        if isinstance(st, ast.ModuleDecl):
            if st.name in out.modules:
                first = out.modules[st.name][0]
                raise TLSyntaxError(Diagnostic(f"module '{st.name}' is defined twice", st.span,
                                               notes=[("first defined here", first.span)]))
            body = []
            out.modules[st.name] = (st, body)
        else:
            body.append(st)
    return out


def _resolve(imp: ast.Import, base_dir: Path | None) -> Path:
    if imp.is_path:
        p = Path(imp.module)
        return p if p.is_absolute() else (base_dir or Path.cwd()) / p
    return stdlib_dir() / (imp.module.replace(".", "/") + ".tl")


class _Expander:
    """State of one expansion: files already imported, parsed files, and the chain of imports and uses."""

    def __init__(self) -> None:
        self.seen: set[Path] = set()
        self.files: dict[Path, _File] = {}

    def load(self, path: Path) -> _File:
        if path not in self.files:
            self.files[path] = split_modules(parse(path.read_text(), str(path)).statements, path)
        return self.files[path]

    def expand(self, statements: list[ast.Statement], here: _File, base: Path | None,
               stack: tuple) -> list[ast.Statement]:
        out: list[ast.Statement] = []
        prefixes: dict[str, ast.Use] = {}
        for st in statements:
            if isinstance(st, ast.Import):
                out.extend(self.import_(st, base, stack))
            elif isinstance(st, ast.Use):
                out.extend(self.use(st, here, base, stack, prefixes))
            else:
                out.append(st)
        return out

    def import_(self, st: ast.Import, base: Path | None, stack: tuple) -> list[ast.Statement]:
        path = _resolve(st, base).resolve()
        if path in stack:
            names = [p.name if isinstance(p, Path) else f"{p[0].stem}.{p[1]}" for p in stack + (path,)]
            raise TLSyntaxError(Diagnostic(f"import cycle: {' -> '.join(names)}", st.span))
        if path in self.seen:
            return []
        if not path.is_file():
            avail = ", ".join(stdlib_modules()) or "none"
            hint = None if st.is_path else f"the standard library modules are: {avail}"
            raise TLSyntaxError(Diagnostic(f"cannot import '{st.module}': no file {path}", st.span, hint))
        self.seen.add(path)
        sub = self.load(path)
        return self.expand(sub.top, sub, path.parent, stack + (path,))

    def _find(self, st: ast.Use, here: _File, base: Path | None) -> tuple[_File, str]:
        if "." not in st.module:
            return here, st.module
        file_part, name = st.module.rsplit(".", 1)
        rel = file_part.replace(".", "/") + ".tl"
        for cand in ((base or Path.cwd()) / rel, stdlib_dir() / rel):
            if cand.is_file():
                return self.load(cand.resolve()), name
        avail = ", ".join(stdlib_modules()) or "none"
        raise TLSyntaxError(Diagnostic(f"cannot use '{st.module}': no file {rel} next to the program or in the "
                                       "standard library", st.span, f"the standard library modules are: {avail}"))

    def use(self, st: ast.Use, here: _File, base: Path | None, stack: tuple,
            prefixes: dict[str, ast.Use]) -> list[ast.Statement]:
        try:
            file, name = self._find(st, here, base)
        except TLError as err:
            if err.diagnostics and err.diagnostics[0].span is not None and err.diagnostics[0].span != st.span:
                for d in err.diagnostics:
                    d.notes.append((f"while loading module '{st.module}' for this use", st.span))
            raise
        if name not in file.modules:
            where = file.path.name if file.path else "this program"
            avail = ", ".join(sorted(file.modules)) or "none"
            raise TLSyntaxError(Diagnostic(f"no module '{name}' in {where}", st.span,
                                           f"its modules are: {avail}"))
        header, body = file.modules[name]
        key = (file.path or Path("<program>"), name)
        if key in stack:
            raise TLSyntaxError(Diagnostic(f"module '{name}' uses itself", st.span))
        prefix = st.alias or name[:1].upper() + name[1:]
        if prefix in prefixes:
            raise TLSyntaxError(Diagnostic(f"a second use named '{prefix}'", st.span,
                                           "name each use of a module with `as Name`; its tensors are Name_...",
                                           notes=[("the first use", prefixes[prefix].span)]))
        prefixes[prefix] = st
        tensors, indices, extra = self._bind(st, header, prefix)
        what = f"in module '{st.module}', used as {prefix} here"
        inner = self.expand(body, file, file.path.parent if file.path else base, stack + (key,))
        for s in inner:
            if isinstance(s, ast.Query | ast.FileWrite):
                raise TLSyntaxError(Diagnostic("a module cannot contain queries or file writes", s.span,
                                               notes=[(what, st.span)]))
        renamer = Renamer(prefix, tensors, indices, defined_names(inner), st.span, what)
        return extra + [renamer.walk(s) for s in inner]

    @staticmethod
    def _bind(st: ast.Use, header: ast.ModuleDecl, prefix: str) -> tuple[dict, dict, list[ast.Statement]]:
        tensors: dict[str, str | float] = {}
        indices: dict[str, str] = {}
        extra: list[ast.Statement] = []
        params = ", ".join(header.params) or "none"
        for arg in st.args:
            def fail(msg: str, hint: str | None = None, arg: ast.UseArg = arg) -> TLSyntaxError:
                return TLSyntaxError(Diagnostic(msg, arg.span, hint,
                                                notes=[(f"module '{header.name}' is declared here", header.span)]))
            if arg.param not in header.params:
                raise fail(f"module '{header.name}' has no parameter '{arg.param}'", f"its parameters are: {params}")
            if arg.param in tensors or arg.param in indices:
                raise fail(f"parameter '{arg.param}' is given twice")
            v = arg.value
            if arg.param[:1].isupper():
                if isinstance(v, str) and not v[:1].isupper():
                    raise fail(f"'{arg.param}' is a tensor parameter: give a tensor name (capitalised) or a number")
                tensors[arg.param] = v
            elif isinstance(v, str):
                if v[:1].isupper():
                    raise fail(f"'{arg.param}' is an index parameter: give an index name (lower-case) or a size")
                indices[arg.param] = v
            else:
                if v != int(v) or v < 1:
                    raise fail(f"an index size must be a positive integer, not {v:g}")
                name = f"{prefix[:1].lower() + prefix[1:]}_{arg.param}"
                indices[arg.param] = name
                extra.append(ast.IndexDecl((name,), int(v), None, arg.span))
        return tensors, indices, extra


def expand_imports(program: ast.Program, base_dir: str | Path | None = None) -> ast.Program:
    """The program with every import replaced by the imported file's statements and every `use` by its
    module's renamed statements. Module sections of the program itself are available to its uses."""
    base = Path(base_dir) if base_dir is not None else None
    here = split_modules(program.statements, None)
    ex = _Expander()
    out = ex.expand(here.top, here, base, ())
    return ast.Program(out, program.file, program.source)

