# The verbs a newcomer needs. Every target creates .venv (python3.11) on first use and
# re-installs only when pyproject.toml changed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
DEMO   ?= demo_out

.PHONY: install demo test test-slow test-gpu lint format bench app clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hidiff phantom case --seed 7 --grid 256 --slices 40 --out $(DEMO)/phantom-0007 --overwrite
	@echo "Preview: $(DEMO)/phantom-0007/preview.png"

test: $(STAMP)
	$(BIN)/pytest

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

test-gpu: $(STAMP)
	$(BIN)/pytest -m gpu

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/hidiff phantom bench --out benchmarks/results

app: $(STAMP)
	@echo "The app arrives with issue 9 (apps/)."; exit 2

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache build *.egg-info
