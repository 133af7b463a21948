# The two commands: `make run` and `make test` (`make lint` is test's ruff and mypy alone).
# All create .venv if it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.jfx-installed
# onnxruntime-web for `jfx export --format web`: npm installs the version core/_web/package-lock.json
# pins (integrity hashes checked), and the files the page needs are copied into the package.
WEB    := core/_web
WEB_VENDOR := $(WEB)/vendor/.installed
ORT_DIST   := $(WEB)/node_modules/onnxruntime-web/dist

.PHONY: run test lint bench mutation install browser clean

# docker/constraints.txt pins what the image installs to the versions the tests passed with
# (docker/constraints.py writes it from this environment): installing under it keeps the two
# the same whatever the index has published since.
$(STAMP): pyproject.toml docker/constraints.txt | $(WEB_VENDOR)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c docker/constraints.txt -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

# npm comes from apt when it is missing (Debian's nodejs), as the browser does; --ignore-scripts:
# no package's install script runs.
$(WEB_VENDOR): $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }
	cd $(WEB) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@rm -rf $(WEB)/vendor && mkdir -p $(WEB)/vendor
	cp $(ORT_DIST)/ort.wasm.bundle.min.mjs $(ORT_DIST)/ort-wasm-simd-threaded.wasm $(WEB)/vendor/
	@touch $@

run: $(STAMP)
	$(BIN)/jfx run examples/penguin/pipeline.py
	@echo
	@echo "Browse what it recorded, in a web browser (runs, DAGs, lineage, statistics, models):"
	@echo "  $(BIN)/jfx ui                           then open http://127.0.0.1:8080/"
	@echo "or from the command line:"
	@echo "  $(BIN)/jfx runs list"
	@echo "  $(BIN)/jfx runs show <RUN_ID>"
	@echo "  $(BIN)/jfx lineage <ARTIFACT_ID>       (e.g. the schema: what data made it)"
	@echo "Run it again and every node comes from the cache. Validate other data against the schema:"
	@echo "  $(BIN)/jfx run examples/penguin/pipeline.py --param new_data=/folder/with/penguins.csv"
	@echo "The same with the data work on Apache Beam:"
	@echo "  $(BIN)/jfx run examples/penguin/pipeline.py --beam-arg=--runner=DirectRunner"
	@echo
	@echo "Serve the pushed model (TensorFlow Serving's REST API, on 127.0.0.1:8501):"
	@echo "  $(BIN)/jfx serve --model_base_path $${JFX_HOME:-$$HOME/.jfx}/serving/penguin --model_name penguin"
	@echo "and query it:"
	@echo "  curl -s -X POST localhost:8501/v1/models/penguin:predict -d '{\"instances\": [{\"bill_length_mm\": 39.1, \"bill_depth_mm\": 18.7, \"flipper_length_mm\": 181, \"body_mass_g\": 3750, \"island\": \"Torgersen\", \"sex\": \"male\"}]}'"

# The UI's browser tests drive Debian's Chromium (Playwright's own browser download needs the internet).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Lint and type check come first, so that pytest's summary is the last line printed.
# mypy checks the package as `jfx`: the repository root is the package, linked as build/mypy/jfx.
lint: $(STAMP)
	$(BIN)/ruff check --quiet .
	@mkdir -p build/mypy && ln -sfn "$(CURDIR)" build/mypy/jfx
	$(BIN)/mypy

test: $(STAMP) lint browser
	$(BIN)/python -m pytest -q

bench: $(STAMP) browser
	@status=0; for b in tests/benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || status=1; echo; done; exit $$status

# Mutation testing (cosmic-ray) of the launcher, publishing, cache key, partial runs, serving
# input checks and hashing; slow (tens of minutes), so outside `make test`. Exits 1 when a
# target's kill rate is under 90 %. NAMES=... runs some targets only (see --list).
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[mutation]"
	$(BIN)/python tests/mutation/run_mutation.py $(if $(NAMES),--only $(NAMES))

clean:
	rm -rf $(VENV) build *.egg-info $(WEB)/node_modules $(WEB)/vendor
