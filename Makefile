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
	$(BIN)/hidiff demo --out $(DEMO)

test: $(STAMP)
	$(BIN)/pytest

# Debian packages some slow tests use; each such test skips with a reason when its tool is absent.
SLOW_DEBS := dicom3tools chromium

test-slow: $(STAMP)
	@missing=""; for p in $(SLOW_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		(apt-get update -qq && apt-get install -y -qq $$missing) || echo "could not install$$missing: tests needing them will skip"; \
	fi
	$(BIN)/pytest -m slow

test-gpu: $(STAMP)
	$(BIN)/pytest -m gpu; rc=$$?; if [ $$rc -eq 5 ]; then echo "no gpu tests selected"; else exit $$rc; fi

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
