# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-oldest package lint bench bench-quick fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per set of extras, rebuilt when pyproject.toml changes.
$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all]'
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(VENV)/.stamp-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@

demo: $(VENV)/.stamp-run
	$(BIN)/softreg demo --kernels

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check src tests benchmarks fuzz
	$(BIN)/ruff format --check src tests benchmarks fuzz

test: lint
	$(BIN)/python -m pytest -q

# Build the wheel as pip does for a user and fail on any warning the build backend prints
# (pip indents the backend's output). PYTHONDONTWRITEBYTECODE, when set, only makes setuptools
# say that it skips byte-compiling.
package: $(VENV)/.stamp-dev
	rm -rf build/package && mkdir -p build/package
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pip wheel --no-deps --verbose \
		--wheel-dir build/package . > build/package/log 2>&1 || (cat build/package/log; false)
	! grep -E '^\s+.*([Ww]arning|!!)' build/package/log
	@echo "Built $$(ls build/package/*.whl) without warnings."

# The whole suite against the oldest versions pyproject.toml allows (pinned, wheels only, in
# .ci/oldest-constraints.txt), in a second environment; .ci/run runs it after `make test`.
OLDEST ?= .venv-oldest

$(OLDEST)/.stamp: pyproject.toml .ci/oldest-constraints.txt
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --only-binary=:all: \
		--constraint .ci/oldest-constraints.txt -e '.[dev]'
	touch $@

test-oldest: $(OLDEST)/.stamp
	$(OLDEST)/bin/python -m pip list --format=freeze | grep -iE \
		'^(numpy|scipy|scikit-learn|threadpoolctl|click|numba|pyarrow|pandas|matplotlib|dask)=='
	$(OLDEST)/bin/python -m pytest -q

# The coverage-guided fuzzer, where it installs (a wheel for CPython 3.8-3.11 on Linux);
# without it `make fuzz` runs the random-mutation engine.
$(VENV)/.stamp-fuzz: $(VENV)/.stamp-dev
	$(BIN)/python -m pip install --quiet 'atheris>=2.3' \
	  || echo "atheris did not install: make fuzz uses the random-mutation engine"
	touch $@

# The long fuzz campaign (docs/fuzzing.md): FUZZ_CASES mutated files per reader.
FUZZ_CASES ?= 100000
fuzz: $(VENV)/.stamp-fuzz
	$(BIN)/python -m fuzz.campaign --cases $(FUZZ_CASES) --out fuzz-out

bench: $(VENV)/.stamp-bench
	$(BIN)/python -m benchmarks.run

bench-quick: $(VENV)/.stamp-bench
	$(BIN)/python -m benchmarks.run --quick

clean:
	rm -rf $(VENV) $(OLDEST) build src/*.egg-info .pytest_cache .ruff_cache fuzz-out
