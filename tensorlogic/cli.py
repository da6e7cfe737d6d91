"""The `tl` command: run, check, show, graph.

    tl run FILE [--json] [--backend numpy|torch --device cpu|cuda]   run a program, print its queries' answers
    tl check FILE                             report every syntax and analysis error
    tl show --ast|--ir FILE                   print the parsed or lowered program
    tl graph FILE [--out g.dot]               the dataflow graph as DOT (SVG/PNG when Graphviz is installed)
    tl plan FILE [--memory-budget 1GB] [--dot]  each join's order, FLOPs, memory; the predicted peak
    tl grad FILE [--wrt W] [--loss Loss]      the gradient program, as .tl source that tl run accepts
    tl train FILE [--loss Loss --epochs N --lr X --optimizer adam --save p.npz --plot loss.png]
    tl repl [FILE]                            the interactive REPL (also `tl` alone)

Errors print as `file:line:col: error: ...` with the source line and a caret, and exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .api import Program, load
from .ir.graph import build_graph, strata, to_dot
from .ir.nodes import equation_str, expr_str
from .plan.program import human_bytes
from .plan.program import render as render_plan
from .plan.program import to_dot as plan_to_dot
from .syntax.diagnostics import TLError


def _load(path: str, backend: str = "numpy", memory_budget: str | None = None, device: str | None = None) -> Program:
    return load(path, backend=backend, memory_budget=memory_budget, device=device)


def cmd_run(args: argparse.Namespace) -> int:
    prog = _load(args.file, args.backend, args.memory_budget, args.device)
    if getattr(args, "load", None):
        prog.load_params(args.load)
    answers = prog.run()
    for a in answers:
        if args.json:
            print(json.dumps(a.to_json()))
        else:
            print(prog.format(a))
    for w in prog.report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for s in prog.report.strata:  # numeric recursion always says what stopped it
        if s.kind == "iterate" and s.stopped_by != "iteration limit":
            print(f"note: {', '.join(s.tensors)}: reached its {s.stopped_by} after {s.rounds} iterations "
                  f"(last change {s.change:.3g})", file=sys.stderr)
    if args.stats:
        print(f"[memory] peak of tensor values counted by the executor: {human_bytes(prog.executor.peak_bytes)}",
              file=sys.stderr)
        name, nbytes, ntuples = prog.executor.largest_relation
        if name:
            print(f"[memory] largest relation: {name}, {ntuples:,} tuples, {human_bytes(nbytes)} (int64 columns)",
                  file=sys.stderr)
        from .runtime.sparse_eval import storage_lines

        for line in storage_lines(prog.executor):  # the form each data tensor is stored in
            print(f"[storage] {line}", file=sys.stderr)
        for s in prog.report.strata:
            extra = f", {s.rounds} rounds, stopped by {s.stopped_by}" if s.kind != "once" else ""
            extra += f", {s.derived:,} tuples derived" if s.kind.startswith("semi-naive") else ""
            print(f"[stratum] {', '.join(s.tensors)}: {s.kind}{extra}", file=sys.stderr)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    prog = _load(args.file)
    plan = prog.plan(args.memory_budget, effort=args.effort)
    if args.dot:
        sys.stdout.write(plan_to_dot(plan))
        return 0
    print(render_plan(plan))
    if getattr(plan, "slicing", None) is not None and plan.slicing.describe():  # joins sliced under the budget
        print(plan.slicing.describe())
    return 0 if plan.memory_budget is None or plan.peak_bytes <= plan.memory_budget else 1


def cmd_check(args: argparse.Namespace) -> int:
    prog = _load(args.file)
    prog.analyze()
    n = len(prog.analyzed.equations)
    print(f"{args.file}: ok ({n} equation{'s' if n != 1 else ''}, {len(prog.analyzed.tensors)} tensors)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    prog = _load(args.file)
    if args.ast:
        for st in prog.ast.statements:
            print(st)
        return 0
    a = prog.analyze()
    print("# tensors")
    for name, t in sorted(a.tensors.items()):
        kind = "bool" if t.boolean else "real"
        dims = ", ".join(f"{d}:{n}" for d, n in zip(t.domains, t.shape))
        role = "data" if t.has_data else ("learnable" if t.learnable else "computed")
        if t.has_data and t.has_equations:
            role = "data+computed"
        print(f"tensor {name}[{dims}] {kind} {role}")
    print("# strata (in evaluation order)")
    for k, st in enumerate(strata(a.equations)):
        tag = "recursive" if st.recursive else "once"
        print(f"stratum {k}: {', '.join(st.tensors)} ({tag})")
        for eq in st.equations:
            rng = ", ".join(f"{v} in [{lo},{hi})" for v, (lo, hi) in sorted(eq.ranges.items()))
            print(f"  {equation_str(eq)}" + (f"    # {rng}" if rng else ""))
    if a.queries:
        print("# queries")
        for q in a.queries:
            print(f"  {expr_str(q.expr)}?")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    prog = _load(args.file)
    a = prog.analyze()
    dot = to_dot(build_graph(a.equations, list(a.tensors)), Path(args.file).stem)
    if not args.out:
        sys.stdout.write(dot)
        return 0
    out = Path(args.out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt in ("svg", "png", "pdf"):
        if shutil.which("dot") is None:
            dot_path = out.with_suffix(".dot")
            _atomic_write(dot_path, dot)
            print(f"Graphviz is not installed: wrote DOT to {dot_path} instead of {out}", file=sys.stderr)
            return 0
        tmp = out.with_name(f".{out.name}.tmp")
        subprocess.run(["dot", f"-T{fmt}", "-o", str(tmp)], input=dot.encode(), check=True)
        tmp.replace(out)
    else:
        _atomic_write(out, dot)
    print(f"wrote {out}")
    return 0


def _loss_name(prog: Program, given: str | None) -> str:
    if given:
        return given
    names = prog.lowered()
    lhs = {eq.lhs for eq in names.equations}
    if "Loss" in lhs:
        return "Loss"
    from .syntax.diagnostics import TLRuntimeError

    raise TLRuntimeError(f"{prog.file}: no tensor named Loss; say which tensor is the loss",
                         hint="add --loss NAME (a scalar tensor defined by an equation)")


def _learning_program(args: argparse.Namespace) -> Program:
    """The program of `tl grad` / `tl train`: its backend, seed and saved parameters."""
    prog = _load(args.file, args.backend, device=args.device)
    prog.seed = args.seed
    if args.load:
        prog.load_params(args.load)
    return prog


def cmd_grad(args: argparse.Namespace) -> int:
    prog = _learning_program(args)
    text = prog.grad_source(_loss_name(prog, args.loss), args.wrt or None)
    if args.out:
        _atomic_write(Path(args.out), text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    prog = _learning_program(args)
    loss = _loss_name(prog, args.loss)
    options = {}
    if args.momentum is not None:
        options["momentum"] = args.momentum
    if args.weight_decay is not None:
        options["weight_decay"] = args.weight_decay
    history = prog.train(loss, epochs=args.epochs, lr=args.lr, optimizer=args.optimizer, wrt=args.wrt or None,
                         progress=not args.quiet, save=args.save, plot=args.plot, options=options,
                         batch_size=args.batch_size, memory_budget=args.memory_budget, remat=args.remat)
    if history:
        print(f"{loss}: {history[0]:.6g} -> {history[-1]:.6g} after {len(history)} epochs "
              f"({args.optimizer}, lr {args.lr})")
    if args.save:
        print(f"parameters saved to {args.save}")
    if args.plot:
        print(f"loss curve drawn to {args.plot}")
    return 0


def cmd_repl(args: argparse.Namespace) -> int:
    from .repl import run_repl  # prompt-toolkit is only imported when the REPL starts

    return run_repl(getattr(args, "load", None), getattr(args, "backend", "numpy"))


def cmd_lsp(args: argparse.Namespace) -> int:
    from .lsp.server import main as lsp_main  # pygls is only imported when the server starts

    return lsp_main()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tl", description="tensor logic: run, check and inspect .tl programs")
    sub = p.add_subparsers(dest="command")
    r = sub.add_parser("run", help="run a program and print its queries' answers")
    r.add_argument("file")
    r.add_argument("--json", action="store_true", help="one JSON object per query, in program order")
    r.add_argument("--backend", default="numpy", help="numpy (default) or torch")
    r.add_argument("--device", help="torch backend: cpu (default), cuda, cuda:N")
    r.add_argument("--stats", action="store_true", help="print each stratum's evaluation (rounds, stop reason)")
    r.add_argument("--memory-budget", help="refuse to run when the plan's peak memory exceeds this (e.g. 1GB)")
    r.add_argument("--load", help="run with learned parameters from an .npz file (tl train --save)")
    r.set_defaults(fn=cmd_run)
    gd = sub.add_parser("grad", help="print the gradient program of a loss as .tl source")
    gd.add_argument("file")
    gd.add_argument("--wrt", action="append", help="a tensor to differentiate with respect to (repeatable; "
                    "default: the parameters)")
    gd.add_argument("--loss", help="the scalar loss tensor (default: Loss)")
    gd.add_argument("--load", help="parameter values from an .npz file")
    gd.add_argument("--out", help="write the program to this file instead of stdout")
    gd.add_argument("--seed", type=int, default=0)
    gd.add_argument("--backend", default="numpy")
    gd.add_argument("--device", help="torch backend: cpu (default), cuda, cuda:N")
    gd.set_defaults(fn=cmd_grad)
    t = sub.add_parser("train", help="learn a program's parameters by minimising its loss")
    t.add_argument("file")
    t.add_argument("--loss", help="the scalar loss tensor (default: Loss)")
    t.add_argument("--epochs", type=int, default=100)
    t.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    t.add_argument("--optimizer", default="adam", choices=["sgd", "momentum", "adam", "adamw"])
    t.add_argument("--momentum", type=float, help="SGD momentum (default 0 for sgd, 0.9 for momentum)")
    t.add_argument("--weight-decay", type=float, help="L2 penalty (sgd, adam) or decoupled decay (adamw)")
    t.add_argument("--wrt", action="append", help="train only these tensors (repeatable)")
    t.add_argument("--seed", type=int, default=0, help="seed of the parameters' initialisation")
    t.add_argument("--batch-size", type=int, help="minibatches of the examples indexed by a virtual index *e")
    t.add_argument("--memory-budget", help="keep the training step's peak memory under this (e.g. 200MB): "
                   "forward values are recomputed where needed")
    t.add_argument("--remat", default="auto",
                   choices=["auto", "milp", "layers", "dp", "greedy", "sqrt", "store_all"],
                   help="the keep/recompute strategy under --memory-budget (default auto)")
    t.add_argument("--save", help="write the parameters to this .npz after every epoch (atomically)")
    t.add_argument("--load", help="start from the parameters in this .npz")
    t.add_argument("--plot", help="draw the loss curve to this file (.png, .svg, .pdf)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--backend", default="numpy")
    t.add_argument("--device", help="torch backend: cpu (default), cuda, cuda:N")
    t.set_defaults(fn=cmd_train)
    pl = sub.add_parser("plan", help="print each equation's contraction order, FLOPs, memory and the peak")
    pl.add_argument("file")
    pl.add_argument("--memory-budget", help="check the predicted peak against a budget, e.g. 200MB")
    pl.add_argument("--dot", action="store_true", help="draw the plan as DOT")
    pl.add_argument("--effort", default="fast", choices=["fast", "high"], help="contraction-order search effort")
    pl.set_defaults(fn=cmd_plan)
    c = sub.add_parser("check", help="report every error in a program without running it")
    c.add_argument("file")
    c.set_defaults(fn=cmd_check)
    s = sub.add_parser("show", help="print the parsed (--ast) or lowered (--ir) program")
    s.add_argument("file")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--ast", action="store_true")
    g.add_argument("--ir", action="store_true", default=True)
    s.set_defaults(fn=cmd_show)
    gr = sub.add_parser("graph", help="write the dataflow graph as DOT, SVG or PNG")
    gr.add_argument("file")
    gr.add_argument("--out", help="g.dot, g.svg or g.png (default: DOT on stdout)")
    gr.set_defaults(fn=cmd_graph)
    rp = sub.add_parser("repl", help="the interactive REPL (also `tl` with no arguments)")
    rp.add_argument("load", nargs="?", help="a program to load first")
    rp.add_argument("--backend", default="numpy")
    rp.set_defaults(fn=cmd_repl)
    ls = sub.add_parser("lsp", help="the language server (stdio), for editors")
    ls.set_defaults(fn=cmd_lsp)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        if argv is None and len(sys.argv) <= 1 or argv == []:
            args = parser.parse_args(["repl"])
        else:
            parser.print_help()
            return 0
    try:
        return args.fn(args)
    except TLError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `tl show prog.tl | head`
        sys.stderr.close()
        return 0
    except Exception as e:  # a bug in tensorlogic itself: say so plainly, without a traceback
        if os.environ.get("TL_DEBUG"):
            raise
        print(f"internal error: {type(e).__name__}: {e}\n  hint: this is a bug in tensorlogic; rerun with "
              "TL_DEBUG=1 for the traceback and report it", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
