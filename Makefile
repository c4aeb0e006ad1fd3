# The two commands a fresh machine needs: `make serve` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
HOST ?= 127.0.0.1
# Predictions served at once by `make serve` (batched together on one model; see README.md).
CONCURRENCY ?= 8
STAMP := $(VENV)/.installed

.PHONY: serve test test-fast schema demo bench bench-serving bench-gpu guard-report train-guard image clean

$(STAMP): requirements.txt requirements-demo.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

## Serve predictions on http://$(HOST):$(PORT) with the real Cog server (demo model unless weights are provided).
serve: $(STAMP)
	$(BIN)/python -m medgemma build-demo --if-missing
	PATH="$(CURDIR)/$(BIN):$$PATH" PORT=$(PORT) COG_PREDICT_TYPE_STUB=predict.py:Runner \
		COG_MAX_CONCURRENCY=$(CONCURRENCY) $(BIN)/python -m cog.server.http --host $(HOST)

## Every test tier that runs without a GPU, demo model and guard retraining included.
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

## Everything but the slow tests (demo model build, guard retraining, compiled path): a few minutes.
test-fast: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not slow"

schema: $(STAMP)
	$(BIN)/python -m tools.schema

demo: $(STAMP)
	$(BIN)/python -m medgemma build-demo --if-missing

## Wrapper overhead and warm setup on the demo model.
bench: $(STAMP) demo
	$(BIN)/python bench/overhead.py

## Concurrent vs sequential predictions through the real Cog server (demo model, CPU).
bench-serving: $(STAMP) demo
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/serving.py

## The GPU benchmark (MedGemma-shaped random weights); `--tiny` runs it on a CPU.
bench-gpu: $(STAMP)
	$(BIN)/python bench/gpu.py $(ARGS)

## The guard's quality tables (README), cross-validation included.
guard-report: $(STAMP)
	$(BIN)/python bench/guard_report.py

## Retrain the guard from its corpus and ../shared/guard (rewrites medgemma/guard/artifact/).
train-guard: $(STAMP)
	$(BIN)/python -m medgemma train-guard -v

## The production image: refuses to build unless weights/medgemma-4b-it holds complete MedGemma weights.
image: $(STAMP)
	$(BIN)/python -m medgemma check-weights weights/medgemma-4b-it
	cog build -t medgemma-4b-it

clean:
	rm -rf $(VENV) weights/demo-gemma3-270m .pytest_cache
