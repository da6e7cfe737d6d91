"""Every error path and its rendered message: syntax errors (location, source line, caret, what was
expected), `tl check` (exit status 1, diagnostics on stderr, no traceback, several errors at once), analysis
errors (undefined tensors, shapes, arities, ranges, functions, softmax, facts, domains, relations), runtime
errors (stratification) and the iteration-limit warning of numeric recursion."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tensorlogic as tl
from tensorlogic import cli

ROOT = Path(__file__).resolve().parent.parent
TL = ROOT / ".venv" / "bin" / "tl"


# ---------------------------------------------------------------------------------------------- helpers


def syntax_error(src: str, file: str = "prog.tl") -> tl.TLSyntaxError:
    with pytest.raises(tl.TLSyntaxError) as info:
        tl.Program(src, file)
    return info.value


def analysis_error(src: str, **inputs) -> tl.TLError:
    prog = tl.Program(src, "prog.tl")
    with pytest.raises(tl.TLAnalysisError) as info:
        prog.run(**inputs)
    return info.value


def diagnostics(err: tl.TLError) -> list[tuple[int, int, str, list[str]]]:
    """(line, col, message, following lines) for each `prog.tl:L:C: error: ...` header of the rendering."""
    out: list[tuple[int, int, str, list[str]]] = []
    for ln in str(err).splitlines():
        m = re.match(r"^(?:prog\.tl|<query>):(\d+):(\d+): error: (.*)$", ln)
        if m:
            out.append((int(m[1]), int(m[2]), m[3], []))
        elif out:
            out[-1][3].append(ln)
    return out


def assert_located(err: tl.TLError, src: str, line: int, col: int, *words: str, width: int | None = None) -> str:
    """The first diagnostic is at line:col, shows that source line and a caret under col; returns its message."""
    ds = diagnostics(err)
    assert ds, str(err)
    d_line, d_col, msg, rest = ds[0]
    assert (d_line, d_col) == (line, col), str(err)
    src_line = src.split("\n")[line - 1]
    assert rest[0] == "    " + src_line, str(err)
    caret = rest[1]
    assert caret.startswith("    " + " " * (col - 1) + "^"), str(err)
    if width is not None:
        assert caret.strip() == "^" + "~" * (width - 1), str(err)
    for w in words:
        assert w in msg, (w, str(err))
    return msg


def run_check(tmp_path: Path, src: str, capsys) -> tuple[int, str, str]:
    path = tmp_path / "prog.tl"
    path.write_text(src)
    code = cli.main(["check", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------- syntax errors


def test_unexpected_token():
    src = "A = [1, 2]\nY[i] = = A[i]\n"
    err = syntax_error(src)
    msg = assert_located(err, src, 2, 8, "unexpected '='", "expected", width=1)
    assert "a tensor name (capitalised)" in msg or "a number" in msg
    assert str(err).startswith("prog.tl:2:8: error: ")


def test_unexpected_token_names_the_token_and_expected_things_in_words():
    src = "Y[i] = A[i] B[i] C[i] ]\n"
    err = syntax_error(src)
    msg = assert_located(err, src, 1, 23, "unexpected ']'", "expected")
    assert "RSQB" not in msg and "_NL" not in msg and "$END" not in msg


def test_unexpected_end_of_line():
    src = "Y[i] = A[i] +\nB = 1\n"
    err = syntax_error(src)
    msg = assert_located(err, src, 1, 14, "unexpected end of line", "expected")
    assert "a tensor name (capitalised)" in msg and "a number" in msg


def test_unexpected_character():
    src = "A = [1, 2]\nY[i] = A[i] $ B[i]\n"
    err = syntax_error(src)
    assert_located(err, src, 2, 13, "unexpected character '$'", "expected", width=1)


def test_unclosed_bracket_at_end_of_input():
    src = "A = [1, 2]\nY[i] = A[i"
    err = syntax_error(src)
    msg = assert_located(err, src, 2, 11, "unexpected end of input", "expected")
    assert "']'" in msg or "bracket" in str(err)


def test_unclosed_square_bracket_expects_the_closing_bracket():
    src = "A = [1, 2]\nY[i] = A[i"
    msg = diagnostics(syntax_error(src))[0][2]
    assert "']'" in msg and "')'" not in msg, msg
    assert "expected ']'," in msg, msg  # the needed closer comes first


def test_unclosed_bracket_over_several_lines_reports_the_end_of_input():
    src = "W = [[1, 2],\n     [3, 4]\nY = 1\n"
    err = syntax_error(src)
    ds = diagnostics(err)
    assert ds and "']'" in ds[0][2] or "bracket" in str(err), str(err)


def test_single_quote_gives_a_hint_about_double_quotes():
    src = "Likes(Alice, 'Bob')\n"
    err = syntax_error(src)
    assert_located(err, src, 1, 14, "unexpected character", "'", width=1)
    assert "hint:" in str(err) and "double quotes" in str(err)


def test_scalar_followed_by_parenthesis_is_a_relation_read_not_a_product():
    # `A (B + C)` reads the relation A at B+C (LANGUAGE.md: Name(...) is Boolean): with A a scalar that is an
    # arity error located on that line, never a silent product.
    src = "A = 1\nB = 2\nC = 3\nY = A (B + C)\n"
    prog = tl.Program(src, "prog.tl")
    with pytest.raises(tl.TLError) as info:
        prog.run()
    ds = diagnostics(info.value)
    assert ds[0][:2] == (4, 5), str(info.value)
    assert "A" in ds[0][2]


def test_syntax_error_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.tl"
    path.write_text("A = 1\nB = )\n")
    with pytest.raises(tl.TLSyntaxError) as info:
        tl.load(path)
    assert str(info.value).startswith(f"{path}:2:5: error: unexpected ')'")


def test_literal_with_wrong_projection_is_a_syntax_error():
    src = "W max= [1, 2]\n"
    err = syntax_error(src)
    assert_located(err, src, 1, 1, "literal", "max=")


def test_error_classes_are_tlerror():
    for cls in (tl.TLSyntaxError, tl.TLAnalysisError, tl.TLRuntimeError):
        assert issubclass(cls, tl.TLError)


# ---------------------------------------------------------------------------------------------- tl check


def test_tl_check_ok(tmp_path, capsys):
    code, out, err = run_check(tmp_path, "A = [1, 2]\nY = A[i]\nY?\n", capsys)
    assert code == 0 and "ok" in out and err == ""


def test_tl_check_syntax_error_exit_status_and_stderr(tmp_path, capsys):
    code, out, err = run_check(tmp_path, "A = [1, 2]\nY[i] = A[i\n", capsys)
    assert code == 1
    assert out == ""
    assert re.search(r"prog\.tl:2:11: error: unexpected end of input", err), err
    assert "    Y[i] = A[i\n" in err
    assert "Traceback" not in err


def test_tl_check_subprocess_has_no_traceback(tmp_path):
    path = tmp_path / "prog.tl"
    path.write_text("A = [1, 2, 3]\nB = [1, 2, 3, 4]\nC[i] = A[i] B[i]\n")
    res = subprocess.run([str(TL), "check", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    assert f"{path}:3:" in res.stderr
    assert "inconsistent sizes" in res.stderr
    assert res.stdout == ""


def test_tl_check_syntax_error_subprocess(tmp_path):
    path = tmp_path / "prog.tl"
    path.write_text("P('Alice')\n")
    res = subprocess.run([str(TL), "check", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.startswith(f"{path}:1:3: error: unexpected character")
    assert "    P('Alice')\n      ^" in res.stderr
    assert "Traceback" not in res.stderr


def test_tl_check_missing_file(tmp_path, capsys):
    code = cli.main(["check", str(tmp_path / "nope.tl")])
    _, err = capsys.readouterr()
    assert code == 1 and "cannot read program" in err and "Traceback" not in err


def test_tl_check_reports_several_errors_at_once(tmp_path, capsys):
    src = ("A = [1, 2, 3]\n"
           "B = [1, 2, 3, 4]\n"
           "C[i] = A[i] B[i]\n"
           "Z[i] = U[i]\n"
           "Y[i] = V[i] A[i]\n")
    code, out, err = run_check(tmp_path, src, capsys)
    assert code == 1
    locs = re.findall(r"prog\.tl:(\d+):\d+: error: ", err)
    assert {"3", "4", "5"} <= set(locs), err
    assert "undefined tensor 'U'" in err and "undefined tensor 'V'" in err and "inconsistent sizes" in err


def test_tl_check_reports_several_syntax_errors_at_once(tmp_path, capsys):
    src = "A = [1, 2]\nY[i] = = A[i]\nZ = $\nW = 2\n"
    code, _, err = run_check(tmp_path, src, capsys)
    assert code == 1
    assert re.findall(r"prog\.tl:(\d+):(\d+): error: ", err) == [("2", "8"), ("3", "5")], err
    assert "Traceback" not in err


def test_tl_check_reports_several_lowering_errors_at_once(tmp_path, capsys):
    src = ("A = [1, 2, 3]\n"
           "Y[i] = foo(A[i])\n"
           "Z[i] = bar(A[i])\n"
           "W[i, j] = softmax(A[i] A[j])\n")
    code, _, err = run_check(tmp_path, src, capsys)
    assert code == 1
    assert err.count(": error: ") == 3, err
    assert "'foo'" in err and "'bar'" in err and "softmax" in err


def test_tl_check_reports_errors_of_different_phases_together(tmp_path, capsys):
    src = "A = [1, 2, 3]\nY[i] = foo(A[i])\nZ[i] = U[i]\n"
    code, _, err = run_check(tmp_path, src, capsys)
    assert code == 1
    assert "unknown function 'foo'" in err and "undefined tensor 'U'" in err, err


def test_tl_check_detects_mixed_projections(tmp_path, capsys):
    code, _, err = run_check(tmp_path, "A = [1, 2]\nY max= A[i]\nY += A[i]\n", capsys)
    assert code == 1 and "projection" in err


def test_mixed_projections_are_an_error_when_run():
    prog = tl.Program("A = [1, 2]\nY max= A[i]\nY += A[i]\n", "prog.tl")
    with pytest.raises(tl.TLError) as info:
        prog.run()
    assert "Y" in str(info.value) and "projection" in str(info.value)


def test_tl_run_reports_errors_without_traceback(tmp_path, capsys):
    path = tmp_path / "prog.tl"
    path.write_text("Y[i] = A[i]\nY?\n")
    code = cli.main(["run", str(path)])
    _, err = capsys.readouterr()
    assert code == 1 and "undefined tensor 'A'" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- analysis errors


def test_undefined_tensor():
    src = "A = [1, 2, 3]\nY[i] = A[i] B[i]\n"
    err = analysis_error(src)
    assert_located(err, src, 2, 13, "undefined tensor 'B'", width=4)
    assert "hint:" in str(err)
    assert len(diagnostics(err)) == 1


def test_undefined_tensor_in_a_query():
    src = "A = [1, 2]\nB?\n"
    err = analysis_error(src)
    assert_located(err, src, 2, 1, "undefined tensor 'B'")


def test_undefined_tensor_in_prog_query():
    prog = tl.Program("A = [1, 2]\n")
    prog.run()
    with pytest.raises(tl.TLAnalysisError) as info:
        prog.query("B[i]")
    assert "undefined tensor 'B'" in str(info.value) and "A" in str(info.value)


def test_inconsistent_shapes():
    src = "A = [1, 2, 3]\nB = [1, 2, 3, 4]\nC[i] = A[i] B[i]\n"
    err = analysis_error(src)
    msg = assert_located(err, src, 3, 13, "inconsistent sizes")
    assert "A" in msg and "B" in msg and "3" in msg and "4" in msg


def test_inconsistent_shapes_from_inputs():
    err = analysis_error("C[i] = A[i] B[i]\n", A=np.ones(3), B=np.ones(4))
    msg = diagnostics(err)[0][2]
    assert "A" in msg and "B" in msg and "3" in msg and "4" in msg


def test_arity_mismatch():
    src = "A = [1, 2, 3]\nY[i] = A[i] + A[i, j]\n"
    err = analysis_error(src)
    msg = assert_located(err, src, 2, 15, "A", width=7)
    assert "2 indices" in msg and "1" in msg
    assert "note:" in str(err)


def test_arity_mismatch_with_data():
    src = "A = [1, 2, 3]\nY[i] = A[i, j]\n"
    err = analysis_error(src)
    text = str(err)
    assert "A is used with" in text and "1 index" in text and "2" in text


def test_index_with_no_known_range():
    src = "A = [1, 2, 3]\nY[i, k] = A[i]\n"
    err = analysis_error(src)
    msg = assert_located(err, src, 2, 1, "'k'", "no known range")
    assert "Y[i, k] = A[i]" in msg
    assert "index k:" in str(err)  # the hint suggests a declaration


def test_index_range_from_declaration_resolves_it():
    prog = tl.Program("index k: 2\nA = [1, 2, 3]\nY[i, k] = A[i]\n")
    prog.run()
    assert prog["Y"].shape == (3, 2)


def test_unknown_function():
    src = "A = [1, 2]\nY[i] = foo(A[i])\n"
    err = analysis_error(src)
    assert_located(err, src, 2, 8, "unknown function 'foo'", width=9)
    assert "register_function" in str(err)


def test_registered_function_is_known():
    prog = tl.Program("A = [1, 2]\nY[i] = twice(A[i])\n")
    prog.register_function("twice", lambda x: 2 * x)
    prog.run()
    np.testing.assert_array_equal(prog["Y"], [2.0, 4.0])


def test_wrong_number_of_arguments():
    src = "A = [1]\nY[i] = sig(A[i], 1, 2)\n"
    err = analysis_error(src)
    assert_located(err, src, 2, 8, "'sig'", "3")


def test_softmax_without_a_dotted_index():
    src = "A = [[1, 2], [3, 4]]\nY[i, j] = softmax(A[i, j])\n"
    err = analysis_error(src)
    msg = assert_located(err, src, 2, 11, "softmax", "normalise")
    assert msg
    assert "." in str(err).split("hint:")[1]


def test_lnorm_without_a_dotted_index():
    err = analysis_error("A = [[1, 2], [3, 4]]\nY[i, j] = lnorm(A[i, j])\n")
    assert "lnorm" in diagnostics(err)[0][2]


def test_softmax_with_one_lhs_index_needs_no_dot():
    prog = tl.Program("A = [1, 2]\nY[i] = softmax(A[i])\n")
    prog.run()
    e = np.exp([1.0, 2.0])
    np.testing.assert_allclose(prog["Y"], e / e.sum())


def test_fact_with_a_variable():
    src = "Parent(Alice, x).\n"
    err = analysis_error(src)
    assert_located(err, src, 1, 15, "variable 'x'", width=1)


def test_integer_constant_in_a_symbolic_domain_message():
    err = analysis_error("Parent(Alice, Bob).\nQ(x) <- Parent(x, 1).\n")
    text = str(err)
    assert "integer 1" in text and "Parent" in text and "symbol" in text
    assert '"1"' in text  # the hint: quote it


def test_integer_constant_in_a_symbolic_domain_is_located():
    src = "Parent(Alice, Bob).\nQ(x) <- Parent(x, 1).\n"
    err = analysis_error(src)
    assert_located(err, src, 2, 19, "integer 1")


def test_relation_defined_with_square_brackets():
    src = "Parent(Alice, Bob).\nQ(x, y) <- Parent(x, y).\nQ[x, y] = Parent(x, y)\n"
    err = analysis_error(src)
    msg = assert_located(err, src, 3, 1, "Q", "relation", "square brackets")
    assert msg
    assert "Q(...)" in str(err)


def test_two_normalised_indices():
    src = "X = [[1, 2]]\nY[i., j.] = softmax(X[i, j])\n"
    err = analysis_error(src)
    assert_located(err, src, 2, 7, "normalised")


def test_slice_on_the_right_needs_one_on_the_left():
    src = "X = [1, 2, 3]\nY[i] = X[1:3]\n"
    err = analysis_error(src)
    assert_located(err, src, 2, 10, "slice")


def test_literal_must_be_rectangular():
    src = "W = [[1, 2], [3]]\n"
    err = analysis_error(src)
    assert_located(err, src, 1, 1, "rectangular")


def test_missing_and_unknown_files(tmp_path):
    for name, words in (("nope.csv", "no such file"), ("nope.xyz", "unknown file type")):
        prog = tl.Program(f'M = "{name}"\n', "prog.tl", base_dir=tmp_path)
        with pytest.raises(tl.TLError) as info:
            prog.run()
        assert name in str(info.value) and words in str(info.value)
        assert str(info.value).startswith("prog.tl:1:1: error: ")


def test_write_of_an_undefined_tensor():
    err = analysis_error('"out.csv" = Nope\n')
    assert "Nope" in diagnostics(err)[0][2]


def test_const_and_learnable():
    err = analysis_error("tensor W[2] const learnable\n")
    assert "const" in str(err) and "learnable" in str(err)


def test_bad_input_type():
    prog = tl.Program("Y[i] = A[i]\n")
    with pytest.raises(tl.TLError):
        prog.run(A=np.array(["a", "b"]))


# ---------------------------------------------------------------------------------------------- runtime


def test_non_stratifiable_negation():
    src = "Q(1). Q(2).\nP(x) <- Q(x), not P(x).\nP(x)?\n"
    prog = tl.Program(src, "prog.tl")
    with pytest.raises(tl.TLRuntimeError) as info:
        prog.run()
    assert "stratif" in str(info.value)
    assert "P" in str(info.value)
    assert str(info.value).startswith("prog.tl:2:1: error: ")


def test_mutual_negation_through_recursion_is_not_stratifiable():
    src = "Q(1). Q(2).\nP(x) <- Q(x), not R(x).\nR(x) <- Q(x), P(x).\nP(x)?\n"
    prog = tl.Program(src, "prog.tl")
    with pytest.raises(tl.TLError) as info:
        prog.run()
    assert "stratif" in str(info.value)


def test_stratified_negation_runs():
    prog = tl.Program("Q(1). Q(2). Q(3). R(2).\nP(x) <- Q(x), not R(x).\n")
    prog.run()
    assert prog.query("P(x)") == [[1], [3]]


def test_numeric_recursion_hitting_the_iteration_limit_warns():
    prog = tl.Program("set max_iterations = 5\nA = [1, 2]\nX[i] = X[i] + A[i]\nX?\n")
    prog.run()
    warnings = prog.report.warnings
    assert len(warnings) == 1
    assert "iteration limit" in warnings[0] and "5" in warnings[0] and "X" in warnings[0]
    [st] = [s for s in prog.report.strata if "X" in s.tensors]
    assert st.stopped_by == "iteration limit" and st.rounds == 5
    np.testing.assert_allclose(prog["X"], [5.0, 10.0])


def test_numeric_recursion_that_converges_reports_tolerance():
    prog = tl.Program("A = [1, 2]\nX[i] = 0.5 X[i] + A[i]\n")
    prog.run()
    assert prog.report.warnings == []
    [st] = [s for s in prog.report.strata if "X" in s.tensors]
    assert st.stopped_by in ("tolerance", "fixpoint")
    np.testing.assert_allclose(prog["X"], [2.0, 4.0], atol=1e-8)


def test_numeric_recursion_reaching_an_exact_fixpoint():
    prog = tl.Program("A = [1, 2]\nX[i] = 0 X[i] + A[i]\n")
    prog.run()
    [st] = [s for s in prog.report.strata if "X" in s.tensors]
    assert st.stopped_by == "fixpoint" and prog.report.warnings == []
    np.testing.assert_allclose(prog["X"], [1.0, 2.0])


def test_tl_run_prints_the_iteration_warning(tmp_path, capsys):
    path = tmp_path / "prog.tl"
    path.write_text("set max_iterations = 3\nA = [1]\nX[i] = X[i] + A[i]\nX?\n")
    code = cli.main(["run", str(path)])
    _, err = capsys.readouterr()
    assert code == 0 and "warning:" in err and "iteration limit" in err


def test_inconsistent_declared_domains_are_an_error():
    src = ("domain Person: Alice, Bob\ndomain Food: Pizza\ntensor Parent(Person, Person)\n"
           "tensor Likes(Person, Food)\nParent(Alice, Bob). Likes(Bob, Pizza)\nX(x) <- Parent(x, y), Likes(y, x).\n")
    with pytest.raises(tl.TLAnalysisError) as info:
        tl.Program(src, "prog.tl").analyze()
    msg = str(info.value)
    assert "prog.tl:6:1" in msg and "inconsistent domains" in msg and "Person" in msg and "Food" in msg
