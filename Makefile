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

# The benchmark run of issue 10: full (many-step) vs edge package on a held-out phantom cohort
# that no training saw, device figures in child processes, accuracy, and the report.
FULL_PKG ?= compress/packages/aphidiff-tiny-t2-fp32-ddim50
EDGE_PKG ?= compress/packages/aphidiff-tiny-t2-fp32
BENCH    ?= $(DEMO)/bench

bench: $(STAMP)
	$(BIN)/hidiff phantom bench --out benchmarks/results
	@test -f $(BENCH)/cohort/cohort.json || \
		$(BIN)/hidiff phantom cohort --n 4 --seed 2027 --grid 128 --slices 32 --out $(BENCH)/cohort
	$(BIN)/hidiff synthesize $(BENCH)/cohort --package $(FULL_PKG) --sequence t2 --out $(BENCH)/pred-full
	$(BIN)/hidiff synthesize $(BENCH)/cohort --package $(EDGE_PKG) --sequence t2 --out $(BENCH)/pred-edge
	stem=$$($(BIN)/python -m benchmarks.device.stamp) && \
	$(BIN)/hidiff bench device --package $(FULL_PKG) --package $(EDGE_PKG) --batch 1,4 \
		--repeats 20 --warmup 3 --torch-reference preset:full --torch-timed-steps 2 \
		--out benchmarks/results/$$stem-device.json && \
	$(BIN)/hidiff bench accuracy --pred full=$(BENCH)/pred-full --pred edge=$(BENCH)/pred-edge \
		--truth $(BENCH)/cohort --sequences t2 --out benchmarks/results/$$stem-accuracy --overwrite && \
	$(BIN)/hidiff bench report --device benchmarks/results/$$stem-device.json \
		--accuracy benchmarks/results/$$stem-accuracy --out $(BENCH)/report --overwrite && \
	echo "report: $(BENCH)/report/report.html"

app: $(STAMP)
	$(BIN)/hidiff app --demo

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache build *.egg-info
