# Two entry points for a fresh machine: `make serve` and `make test`. Both set up .venv first.
# torch is installed on its own first: the pinned CPU build; an unpinned torch pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup serve test browser postgres bench eval clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[web,eval,onnx,postgres,ray,dev]"
	touch $@

serve: setup
	$(BIN)/grader serve

test: setup browser postgres
	$(BIN)/python -m pytest -q

# Debian's Chromium for the playground's browser test (never a downloaded browser build); the test
# skips with its reason when Chromium cannot be installed (no root, no apt).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "chromium could not be installed: the playground browser test will be skipped"

# Debian's PostgreSQL server binaries for the store tests; the tests start a throwaway server
# (initdb + pg_ctl in a temporary directory, tests/pgserver.py) and stop it, nothing system-wide runs.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
		|| echo "postgresql could not be installed: the PostgreSQL store tests will be skipped"

bench: setup
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/batch.py
	$(BIN)/python benchmarks/encoders.py
	$(BIN)/python benchmarks/ray_batch.py

eval: setup
	$(BIN)/python -m eval.report --data-dir ../shared/data --out eval
	$(BIN)/python -m eval.attacks

clean:
	rm -rf $(VENV) .pytest_cache
