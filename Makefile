# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Offline machines (this project's CI) use the LLaMA-2 tokenizer beside the repository; elsewhere the mix's
# tokenize.tokenizer (a public Hub copy) is downloaded on first use.
export INSTRUCT_PIPELINE_TOKENIZER ?= $(abspath $(wildcard ../shared/tokenizers/llama-2))

.PHONY: demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU wheel here; an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $@

demo: $(VENV)/.installed  ## build data/mix.yaml into out/demo/
	$(BIN)/pipeline build --mix data/mix.yaml

test: $(VENV)/.installed  ## ruff, mypy, then the whole test suite (exit 5, no tests collected, fails like any error)
	$(BIN)/ruff check pipeline schemas flows trainer tests bench
	$(BIN)/python -m mypy pipeline schemas flows trainer
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed  ## ingest throughput and memory (see bench/RESULTS.md)
	$(BIN)/python bench/ingest_bench.py

clean:
	rm -rf out bench/work .pytest_cache
