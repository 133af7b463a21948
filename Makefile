# The two commands: `make run` and `make test`. Both create .venv if it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.jfx-installed

.PHONY: run test bench install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/jfx run examples/hello/pipeline.py
	@echo
	@echo "Browse what it recorded:"
	@echo "  $(BIN)/jfx runs list"
	@echo "  $(BIN)/jfx runs show <RUN_ID>"
	@echo "  $(BIN)/jfx lineage <ARTIFACT_ID>"
	@echo "Run it again to see every node come from the cache, or change a parameter:"
	@echo "  $(BIN)/jfx run examples/hello/pipeline.py --param rows=500"

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@set -e; for b in tests/benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; echo; done

clean:
	rm -rf $(VENV) build *.egg-info
