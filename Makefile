# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tl run examples/family_tree.tl

test: $(STAMP)
	$(BIN)/ruff check tensorlogic tests bench
	$(BIN)/python -m pytest $(if $(SLOW),-m "slow or not slow",-m "not slow")

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python bench/closure.py
	$(BIN)/python bench/paths.py --quick
	$(BIN)/python bench/datalog.py
	$(BIN)/python bench/overhead.py --no-profile --no-diagnostics
	$(BIN)/python bench/train.py --quick
	$(BIN)/python bench/remat.py --quick
	$(BIN)/python bench/sliced.py --quick
	$(BIN)/python bench/kg.py

clean:
	rm -rf $(VENV) build *.egg-info
