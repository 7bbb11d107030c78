# lossbench: `make help` lists the targets. Everything runs inside .venv, created on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# torch is installed first, pinned, so nothing later pulls a multi-GB CUDA build by accident.
# Users with other CUDA needs: make setup TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PORT ?= 5000
EXPERIMENT ?= lossbench
# pytest-xdist processes for make test (a test file stays in one process: its fixtures are shared);
# TEST_WORKERS=0 runs the suite in this process
TEST_WORKERS ?= 2
ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.DEFAULT_GOAL := help
.PHONY: help setup run test test-all lint format ui clean bench bench-tables bench-gpu

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet --no-compile -e ".[dev]"
# pip byte-compiles on one core, compileall on every core (as under pip, the few files of some
# packages that are not valid Python 3 are left uncompiled: hence -qq and `|| true`)
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
	$(BIN)/python -m lossbench.experiment.warmup
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install lossbench with its dev tools (once; again when pyproject.toml changes)

run: $(STAMP) ## train, index, evaluate and log one run on the embedded default (extra overrides: ARGS="loss=ranknet seed=1")
	$(BIN)/python -m pipeline.run $(ARGS)

test: $(STAMP) ## run the test suite (fast tests, TEST_WORKERS processes; a few minutes on 2 cores)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(ARGS)

test-all: $(STAMP) ## run every test, slow ones included
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "" $(ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy
	$(BIN)/ruff check src pipeline tests
	$(BIN)/ruff format --check src pipeline tests
	$(BIN)/mypy

format: $(STAMP) ## format the code with ruff
	$(BIN)/ruff check --fix src pipeline tests
	$(BIN)/ruff format src pipeline tests

bench: $(STAMP) ## CPU benchmarks -> bench/results/*.json, then bench/RESULTS.md's tables from them (~1-2 h; ARGS=--quick: a check)
	$(BIN)/python -m bench.train_step $(ARGS)
	$(BIN)/python -m bench.encode $(ARGS)
	$(BIN)/python -m bench.search $(ARGS)
	$(BIN)/python -m bench.faiss_recall $(ARGS)
	$(BIN)/python -m bench.run_breakdown $(ARGS)
	$(BIN)/python -m bench.sweep $(ARGS)
	$(BIN)/python -m bench.scaling $(ARGS)
	$(BIN)/python -m bench.grad_cache $(ARGS)
	$(BIN)/python -m bench.ranx_first_call $(ARGS)
	$(BIN)/python -m bench.maxsim $(ARGS)
	$(BIN)/python -m bench.summary $(filter --quick,$(ARGS))

bench-tables: $(STAMP) ## rewrite bench/RESULTS.md's tables from the committed bench/results/*.json (seconds)
	$(BIN)/python -m bench.summary

bench-gpu: $(STAMP) ## GPU benchmarks (bf16, BERT-base and MiniLM) and the bf16 smoke test -> bench/results/, then the tables
	PYTHON=$(BIN)/python bash bench/run_gpu.sh
	$(BIN)/python -m bench.summary

ui: $(STAMP) ## open the MLflow UI on the default store; prints the link to the runs table (EXPERIMENT=lossbench)
	@$(BIN)/python -m lossbench.experiment.ui --uri "sqlite:///$(CURDIR)/mlflow.db" \
		--experiment "$(EXPERIMENT)" --url "http://127.0.0.1:$(PORT)"
	$(BIN)/mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlflow.db" \
		--default-artifact-root "$(CURDIR)/mlartifacts" --host 127.0.0.1 --port $(PORT) --workers 1

clean: ## remove outputs, caches, the MLflow store and .venv
	rm -rf outputs multirun .cache mlflow.db mlartifacts .pytest_cache .ruff_cache .mypy_cache $(VENV)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
