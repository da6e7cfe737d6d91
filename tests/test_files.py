"""Tests for tensorlogic.runtime.files: reading and writing tensors from and to files."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from tensorlogic.runtime import files
from tensorlogic.runtime.files import TupleData, read_tensor_file, resolve_path, write_tensor_file
from tensorlogic.syntax.diagnostics import Span, TLRuntimeError

SPAN = Span("prog.tl", 3, 1, 3, 10, source="\n\nM = \"data.csv\"\n")


def write_rows(path: Path, rows: list[list[str]], delimiter: str = ",") -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)


def read_rows(path: Path, delimiter: str = ",") -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter=delimiter))


# --- reading ---------------------------------------------------------------------------------------------

def test_txt_read(tmp_path: Path) -> None:
    p = tmp_path / "doc.txt"
    p.write_text("Alice loves\n  Bob, 17 times.\n")
    data = read_tensor_file(p)
    assert isinstance(data, TupleData)
    assert data.rows == [(0, "Alice"), (1, "loves"), (2, "Bob,"), (3, "17"), (4, "times.")]
    assert data.weights is None and data.arity == 2


@pytest.mark.parametrize(("ext", "delim"), [(".csv", ","), (".tsv", "\t")])
def test_table_without_weights(tmp_path: Path, ext: str, delim: str) -> None:
    p = tmp_path / f"parent{ext}"
    write_rows(p, [["Bob", "Charlie"], ["Alice", "Bob"], ["7", "-3"]], delim)
    data = read_tensor_file(p)
    assert isinstance(data, TupleData)
    assert data.rows == [("Bob", "Charlie"), ("Alice", "Bob"), (7, -3)]
    assert data.weights is None and data.arity == 2


@pytest.mark.parametrize(("ext", "delim"), [(".csv", ","), (".tsv", "\t")])
def test_table_with_weights(tmp_path: Path, ext: str, delim: str) -> None:
    p = tmp_path / f"w{ext}"
    write_rows(p, [["a", "b", "0.5"], ["b", "c", "2"], ["c", "d", "1e-3"]], delim)
    data = read_tensor_file(p)
    assert isinstance(data, TupleData)
    assert data.rows == [("a", "b"), ("b", "c"), ("c", "d")]
    assert data.arity == 2
    assert data.weights is not None and data.weights.dtype == np.float64
    np.testing.assert_array_equal(data.weights, np.array([0.5, 2.0, 0.001]))


def test_integer_last_column_is_a_constant(tmp_path: Path) -> None:
    p = tmp_path / "ints.csv"
    write_rows(p, [["a", "1"], ["b", "2"]])
    data = read_tensor_file(p)
    assert isinstance(data, TupleData)
    assert data.rows == [("a", 1), ("b", 2)] and data.weights is None and data.arity == 2


def test_single_column_is_never_a_weight(tmp_path: Path) -> None:
    p = tmp_path / "one.csv"
    p.write_text("0.5\n1.5\n")
    data = read_tensor_file(p)
    assert isinstance(data, TupleData)
    assert data.rows == [("0.5",), ("1.5",)] and data.weights is None and data.arity == 1


def test_header_heuristic(tmp_path: Path) -> None:
    p = tmp_path / "h.csv"
    write_rows(p, [["src", "dst", "weight"], ["Alice", "Bob", "0.25"], ["Bob", "Carol", "0.75"]])
    data = read_tensor_file(p)
    assert isinstance(data, TupleData)
    assert data.rows == [("Alice", "Bob"), ("Bob", "Carol")]
    np.testing.assert_array_equal(data.weights, [0.25, 0.75])
    numeric = tmp_path / "n.csv"
    write_rows(numeric, [["i", "j"], ["0", "1"], ["1", "2"]])
    data = read_tensor_file(numeric)
    assert isinstance(data, TupleData) and data.rows == [(0, 1), (1, 2)]


def test_no_header_when_columns_are_all_words(tmp_path: Path) -> None:
    p = tmp_path / "nh.csv"
    write_rows(p, [["Parent", "Child"], ["Alice", "Bob"]])
    data = read_tensor_file(p)
    assert isinstance(data, TupleData) and data.rows == [("Parent", "Child"), ("Alice", "Bob")]
    single = tmp_path / "single.csv"
    write_rows(single, [["x", "1"]])
    data = read_tensor_file(single)
    assert isinstance(data, TupleData) and data.rows == [("x", 1)]


def test_comments_blank_lines_and_whitespace(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("# a comment, with a comma\nAlice , Bob\n\n   \n  # indented comment\n Bob,Carol\n")
    data = read_tensor_file(p)
    assert isinstance(data, TupleData)
    assert data.rows == [("Alice", "Bob"), ("Bob", "Carol")]


def test_integer_vs_string_tokens(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    write_rows(p, [["17", "-3", "+4", "1.0", "x1", "007"]])
    data = read_tensor_file(p)
    assert isinstance(data, TupleData)
    assert data.rows == [(17, -3, "+4", "1.0", "x1", 7)]
    assert [type(c) for c in data.rows[0]] == [int, int, str, str, str, int]


def test_ragged_rows_error(tmp_path: Path) -> None:
    p = tmp_path / "data.csv"
    p.write_text("a,b\n# comment\nc,d\ne,f,g\n")
    with pytest.raises(TLRuntimeError) as err:
        read_tensor_file(p, SPAN)
    assert "data.csv line 4 has 3 fields, expected 2" in err.value.message
    assert err.value.diagnostics[0].span == SPAN


def test_empty_table(tmp_path: Path) -> None:
    p = tmp_path / "e.csv"
    p.write_text("# nothing\n")
    assert read_tensor_file(p) == TupleData([], None, 0)


def test_npy_read(tmp_path: Path) -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "a.npy", arr)
    got = read_tensor_file(tmp_path / "a.npy")
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    np.testing.assert_array_equal(got, arr)


def test_npz_read_single_and_multi(tmp_path: Path) -> None:
    arr = np.array([[True, False], [False, True]])
    np.savez(tmp_path / "one.npz", whatever=arr)
    got = read_tensor_file(tmp_path / "one.npz")
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, arr)
    np.savez(tmp_path / "two.npz", first=arr, second=arr)
    with pytest.raises(TLRuntimeError) as err:
        read_tensor_file(tmp_path / "two.npz", SPAN)
    assert "first" in err.value.message and "second" in err.value.message
    assert "one array per" in (err.value.diagnostics[0].hint or "")


def test_missing_file_error(tmp_path: Path) -> None:
    with pytest.raises(TLRuntimeError) as err:
        read_tensor_file(tmp_path / "x.csv", SPAN)
    assert err.value.message == "cannot read 'x.csv': no such file"
    assert str(tmp_path.resolve() / "x.csv") in err.value.render()
    assert err.value.diagnostics[0].span == SPAN
    assert err.value.__cause__ is None


def test_directory_is_not_readable_as_file(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(TLRuntimeError, match="cannot read 'dir.csv'"):
        read_tensor_file(tmp_path / "dir.csv")


def test_unknown_extension_error(tmp_path: Path) -> None:
    p = tmp_path / "data.json"
    p.write_text("{}")
    with pytest.raises(TLRuntimeError) as err:
        read_tensor_file(p, SPAN)
    text = err.value.render()
    for ext in (".txt", ".csv", ".tsv", ".npy", ".npz"):
        assert ext in text
    with pytest.raises(TLRuntimeError, match="unknown file type"):
        write_tensor_file(tmp_path / "out.json", np.zeros(2))


# --- writing ---------------------------------------------------------------------------------------------

def test_npy_and_npz_write(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).normal(size=(2, 3))
    write_tensor_file(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), arr)
    write_tensor_file(tmp_path / "b.npz", arr)
    with np.load(tmp_path / "b.npz") as z:
        assert z.files == ["value"]
        np.testing.assert_array_equal(z["value"], arr)
    write_tensor_file(tmp_path / "c.npz", arr, header=["W"])
    with np.load(tmp_path / "c.npz") as z:
        assert z.files == ["W"]
    np.testing.assert_array_equal(read_tensor_file(tmp_path / "c.npz"), arr)
    with pytest.raises(TLRuntimeError, match="dense"):
        write_tensor_file(tmp_path / "d.npy", TupleData([("a",)], None, 1))


def test_csv_write_dense(tmp_path: Path) -> None:
    arr = np.array([[0.0, 0.1], [2.0, 0.0]])
    write_tensor_file(tmp_path / "d.csv", arr)
    assert read_rows(tmp_path / "d.csv") == [["0", "1", repr(0.1)], ["1", "0", "2.0"]]
    data = read_tensor_file(tmp_path / "d.csv")
    assert isinstance(data, TupleData) and data.rows == [(0, 1), (1, 0)]
    np.testing.assert_array_equal(data.weights, [0.1, 2.0])


def test_csv_write_precision(tmp_path: Path) -> None:
    x = 1 / 3
    write_tensor_file(tmp_path / "p.tsv", np.array([x]))
    [[i, v]] = read_rows(tmp_path / "p.tsv", "\t")
    assert i == "0" and float(v) == x


def test_csv_write_bool_scalar_and_header(tmp_path: Path) -> None:
    write_tensor_file(tmp_path / "b.csv", np.array([[True, False], [True, True]]), header=["x", "y"])
    assert read_rows(tmp_path / "b.csv") == [["x", "y"], ["0", "0"], ["1", "0"], ["1", "1"]]
    data = read_tensor_file(tmp_path / "b.csv")
    assert isinstance(data, TupleData) and data.rows == [(0, 0), (1, 0), (1, 1)]
    write_tensor_file(tmp_path / "s.csv", np.array(2.5))
    assert read_rows(tmp_path / "s.csv") == [["2.5"]]
    write_tensor_file(tmp_path / "i.csv", np.array([0, 3, 0, -1]))
    assert read_rows(tmp_path / "i.csv") == [["1", "3"], ["3", "-1"]]


def test_csv_write_tuples(tmp_path: Path) -> None:
    td = TupleData([("Alice", "Bob"), ("Bob", 3), (4, "x")], None, 2)
    write_tensor_file(tmp_path / "t.tsv", td)
    assert read_rows(tmp_path / "t.tsv", "\t") == [["Alice", "Bob"], ["Bob", "3"], ["4", "x"]]
    assert read_tensor_file(tmp_path / "t.tsv") == td
    # the header heuristic: a word above a column of numbers is taken as a header
    write_tensor_file(tmp_path / "h.tsv", TupleData([("Alice", "Bob"), ("Bob", 3)], None, 2))
    assert read_tensor_file(tmp_path / "h.tsv") == TupleData([("Bob", 3)], None, 2)
    wd = TupleData([("a", "b"), ("c", "d")], np.array([0.5, 1.0]), 2)
    write_tensor_file(tmp_path / "w.csv", wd, header=["from", "to", "w"])
    assert read_rows(tmp_path / "w.csv") == [["from", "to", "w"], ["a", "b", "0.5"], ["c", "d", "1.0"]]
    back = read_tensor_file(tmp_path / "w.csv")
    assert isinstance(back, TupleData) and back.rows == wd.rows
    np.testing.assert_array_equal(back.weights, wd.weights)


def test_txt_write(tmp_path: Path) -> None:
    td = TupleData([(2, "Bob"), (0, "Alice"), (1, "loves")], None, 2)
    write_tensor_file(tmp_path / "o.txt", td)
    assert (tmp_path / "o.txt").read_text() == "Alice loves Bob\n"
    with pytest.raises(TLRuntimeError, match="position, word"):
        write_tensor_file(tmp_path / "bad.txt", np.zeros(3))
    assert not (tmp_path / "bad.txt").exists()


# --- atomicity -------------------------------------------------------------------------------------------

def test_atomic_write_replace_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old contents\n")

    def boom(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(TLRuntimeError, match="cannot write 'out.csv'"):
        write_tensor_file(target, np.ones((2, 2)), SPAN)
    monkeypatch.undo()
    assert target.read_text() == "old contents\n"
    assert sorted(os.listdir(tmp_path)) == ["out.csv"]


def test_atomic_write_writer_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.npy"
    np.save(target, np.arange(3))

    def broken_save(*args: object, **kwargs: object) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(files.np, "save", broken_save)
    with pytest.raises(TLRuntimeError, match="no space left"):
        write_tensor_file(target, np.zeros(5))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert sorted(os.listdir(tmp_path)) == ["out.npy"]


def test_write_object_array_fails_cleanly(tmp_path: Path) -> None:
    target = tmp_path / "o.npy"
    target.write_bytes(b"old")
    with pytest.raises(TLRuntimeError):
        write_tensor_file(target, np.array([object()], dtype=object))
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["o.npy"]


def test_write_into_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(TLRuntimeError, match="no such folder"):
        write_tensor_file(tmp_path / "nope" / "x.csv", np.ones(2))


# --- paths -----------------------------------------------------------------------------------------------

def test_resolve_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "progs"
    base.mkdir()
    (base / "data.csv").write_text("a,b\n")
    p = resolve_path("data.csv", base)
    assert p == base / "data.csv"
    assert isinstance(read_tensor_file(p), TupleData)
    assert resolve_path("sub/x.npy", str(base)) == base / "sub" / "x.npy"
    absolute = tmp_path / "abs.csv"
    assert resolve_path(str(absolute), base) == absolute
    monkeypatch.chdir(tmp_path)
    assert resolve_path("y.csv", None) == tmp_path / "y.csv"


# --- large numeric tables: the vectorised reader ----------------------------------------------------------

def _big_table(rng: np.random.Generator, n: int, width: int, weighted: bool, negative: bool) -> tuple:
    lo = -50 if negative else 0
    ints = rng.integers(lo, 10**12, size=(n, width))
    weights = np.round(rng.normal(size=n), 6) if weighted else None
    return ints, weights


@pytest.mark.parametrize("delim", [",", "\t"])
@pytest.mark.parametrize("seed", range(6))
def test_large_integer_tables_read_as_columns_with_the_same_constants(tmp_path: Path, delim: str,
                                                                       seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(files._FAST_ROWS, 3 * files._FAST_ROWS))
    width, weighted, header = int(rng.integers(1, 4)), bool(seed % 2), seed % 3 == 0
    ints, weights = _big_table(rng, n, width, weighted and width >= 1, negative=seed % 4 == 1)
    lines = ([delim.join(["src", "dst", "w"][: width] + (["weight"] if weighted else []))] if header else [])
    for i in range(n):
        fields = [str(v) for v in ints[i]] + ([repr(float(weights[i]))] if weighted else [])
        lines.append(delim.join(fields))
    p = tmp_path / ("t.csv" if delim == "," else "t.tsv")
    p.write_text("\n".join(lines) + "\n")
    data = read_tensor_file(p)
    assert isinstance(data, TupleData) and data.arity == width
    assert data.cols is not None  # took the vectorised path
    assert data.row_list() == [tuple(int(v) for v in r) for r in ints]
    if weighted:
        np.testing.assert_array_equal(data.weights, weights)
    else:
        assert data.weights is None


@pytest.mark.parametrize("odd", ["Alice", "+5", "1.5", "", "1_0", "# c", " 7"])
def test_large_tables_with_other_fields_fall_back_to_the_general_reader(tmp_path: Path, odd: str) -> None:
    n = files._FAST_ROWS + 10
    rows = [[str(i), str(i + 1)] for i in range(n)]
    rows[n // 2][0] = odd
    p = tmp_path / "t.csv"
    p.write_text("\n".join(",".join(r) for r in rows) + "\n")
    data = read_tensor_file(p)
    assert isinstance(data, TupleData)
    if odd.startswith("#"):  # a comment line
        expect = [(int(a), int(b)) for a, b in rows[: n // 2] + rows[n // 2 + 1:]]
    else:
        want = odd.strip()
        expect = [(int(a) if a.lstrip("-").isdigit() and a == a.strip() else a.strip(), int(b)) for a, b in rows]
        expect[n // 2] = (want if not (want.lstrip("-").isdigit() and "_" not in want and "+" not in want)
                          else int(want), int(rows[n // 2][1]))
    assert data.row_list() == expect


def test_a_large_numeric_file_gives_the_same_program_results_as_facts(tmp_path: Path) -> None:
    import tensorlogic as tl

    rng = np.random.default_rng(7)
    edges = rng.integers(0, 500, size=(3 * files._FAST_ROWS, 2))
    w = np.round(rng.random(len(edges)), 4)
    (tmp_path / "e.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in edges))
    (tmp_path / "w.csv").write_text("a,b,w\n" + "".join(f"{a},{b},{x}\n" for (a, b), x in zip(edges, w)))
    prog = tl.Program('E = "e.tsv"\nW = "w.csv"\nOut[x] = E(x,y)\nS[x] = W(x,y)\n', base_dir=tmp_path)
    prog.run()
    adj = np.zeros((500, 500))
    adj[edges[:, 0], edges[:, 1]] = 1
    ws = np.zeros(edges.max() + 1)
    np.add.at(ws, edges[:, 0], w)
    np.testing.assert_allclose(np.asarray(prog["Out"]), adj.sum(1)[: len(np.asarray(prog["Out"]))])
    np.testing.assert_allclose(np.asarray(prog["S"]), ws[: len(np.asarray(prog["S"]))])


def test_integers_of_a_large_file_in_a_symbolic_domain_get_ids_in_first_occurrence_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tensorlogic as tl

    n = files._FAST_ROWS + 5
    nodes = [str(v) for v in np.random.default_rng(3).permutation(n + 1)]
    (tmp_path / "e.csv").write_text("".join(f"{nodes[i]},{nodes[i + 1]}\n" for i in range(n)))
    src = 'E = "e.csv"\nE("start", x) <- E(x, y)\nR(x, y) <- E(x, y)\n'

    def answers() -> tuple[list, list]:
        prog = tl.Program(src, base_dir=tmp_path)
        prog.run()
        return prog.query(f'R("{nodes[0]}", y)?'), prog.query('R("start", y)?')

    first, start = answers()
    assert first == [[nodes[1]]]
    assert sorted(map(tuple, start)) == sorted((v,) for v in nodes[:n] + ["start"])
    monkeypatch.setattr(files, "_FAST_ROWS", 10**9)  # the general reader: the same symbols in the same order
    assert answers() == (first, start)


@pytest.mark.parametrize("ext", [".csv", ".tsv"])
def test_a_relation_written_from_columns_reads_back_as_csv_rows(tmp_path: Path, ext: str, monkeypatch) -> None:
    monkeypatch.setattr(files, "_WRITE_BLOCK", 7)  # several blocks, some with labels that need quoting
    rng = np.random.default_rng(5)
    words = np.array(["a", "b,c", 'say "hi"', "tab\there", "plain", "x y"], dtype=object)
    n = 40
    ints, syms, w = rng.integers(-3, 10**9, n), words[rng.integers(0, len(words), n)], rng.normal(size=n)
    delim = "," if ext == ".csv" else "\t"
    p = tmp_path / f"r{ext}"
    write_tensor_file(p, TupleData(None, w, 2, cols=[ints, syms]), header=["n", "s", "w"])
    got = read_rows(p, delim)
    assert got[0] == ["n", "s", "w"]
    assert got[1:] == [[str(a), str(b), repr(float(c))] for a, b, c in zip(ints, syms, w)]


def test_tl_writes_a_large_relation_with_symbols_that_reads_back_the_same(tmp_path: Path) -> None:
    import networkx as nx

    import tensorlogic as tl

    g = nx.gnm_random_graph(300, 900, seed=2, directed=True)
    names = {v: f"v{v}" + (",x" if v % 7 == 0 else "") for v in g}
    facts = "\n".join(f'Edge("{names[a]}", "{names[b]}")' for a, b in g.edges)
    src = facts + '\nReach(x, y) <- Edge(x, y)\nReach(x, z) <- Reach(x, y), Edge(y, z)\n"reach.csv" = Reach\n'
    tl.Program(src, base_dir=tmp_path).run()
    got = {tuple(r) for r in read_rows(tmp_path / "reach.csv")}
    # paths of one or more edges (a node on a cycle reaches itself, which nx.descendants leaves out)
    want = {(names[a], names[b]) for a in g for s in g.successors(a) for b in {s} | nx.descendants(g, s)}
    assert got == want
