# Two entry points for a fresh machine: `make serve` and `make test`. Both set up .venv first.
# torch is installed on its own first: the pinned CPU build; an unpinned torch pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup serve test bench eval clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[web,eval,onnx,dev]"
	touch $@

serve: setup
	$(BIN)/grader serve

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/batch.py

eval: setup
	$(BIN)/grader eval ../shared/data/mohler/mohler.csv --out eval

clean:
	rm -rf $(VENV) .pytest_cache
