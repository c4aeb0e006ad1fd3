# The two commands a fresh machine needs: `make serve` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed

.PHONY: serve test test-fast schema schema-check demo bench clean

$(STAMP): requirements.txt requirements-demo.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

## Serve predictions on http://$(HOST):$(PORT) with the real Cog server (demo model unless weights are provided).
serve: $(STAMP)
	$(BIN)/python -m medgemma build-demo --if-missing
	PATH="$(CURDIR)/$(BIN):$$PATH" PORT=$(PORT) COG_PREDICT_TYPE_STUB=predict.py:Runner \
		$(BIN)/python -m cog.server.http --host $(HOST)

## Every test tier that runs without a GPU, demo model included.
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

## Unit and integration tiers only (seconds).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/integration

schema: $(STAMP)
	$(BIN)/python -m medgemma schema

demo: $(STAMP)
	$(BIN)/python -m medgemma build-demo --if-missing

bench: $(STAMP)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) weights/demo-gemma3-270m .pytest_cache
