# The verbs a newcomer needs. Every target creates .venv (python3.11) on first use and
# re-installs only when pyproject.toml changed.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
DEMO   ?= demo_out
# test files spread over the cores (pytest-xdist); `make test XDIST=` runs them in one process
XDIST  ?= -n auto --maxprocesses 4 --dist loadfile

.PHONY: install demo test test-slow test-gpu lint format bench app clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hidiff demo --out $(DEMO)

test: $(STAMP)
	$(BIN)/pytest $(XDIST)

# Debian packages some slow tests use; each such test skips with a reason when its tool is absent.
SLOW_DEBS := dicom3tools chromium

test-slow: $(STAMP)
	@missing=""; for p in $(SLOW_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		(apt-get update -qq && apt-get install -y -qq $$missing) || echo "could not install$$missing: tests needing them will skip"; \
	fi
	$(BIN)/pytest -m slow $(XDIST)

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
# FULL_PKG / EDGE_PKG: the shipped 512^2 packages (the small teacher as it is, DDIM 50, fp32;
# and edge-cpu's compression of it); LEDGER: the edge package's compression ledger, given to the
# report when the file exists; TORCH_REF: the teacher timed in torch eager (a run folder, or
# preset:NAME). The cohort is at the full
# package's grid, BENCH_N cases of BENCH_SLICES slices over the z FOV of
# benchmarks/accuracy/heldout-cohort.json (100 mm, the phantom's smallest: 6.25 mm slices as in
# training, the liver in about 11 of 16). The full package's synthesis dominates the time:
# 73-234 s per 512^2 slice on the 2-core CPUs measured (2026-12-03/04), so 1-3 h for 3 x 16
# slices (BENCH_N=2 takes two thirds of that).
FULL_PKG  ?= compress/packages/aphidiff-small-t2-fp32-ddim50
EDGE_PKG  ?= compress/packages/aphidiff-small-t2-ddim1-edge-cpu
LEDGER    ?= $(EDGE_PKG).ledger.json
TORCH_REF ?= models/teachers/aphidiff-small-t2
BENCH     ?= $(DEMO)/bench
BENCH_N   ?= 3
BENCH_SLICES ?= 16
BENCH_GRID = $(shell python3 -c "import json; print(json.load(open('$(FULL_PKG)/manifest.json'))['grid']['shape'][0])")
COHORT    = $(BENCH)/cohort-$(BENCH_GRID)-n$(BENCH_N)-s$(BENCH_SLICES)
# Predictions per package and cohort: `hidiff synthesize` resumes into an existing folder.
PRED_FULL = $(COHORT)-pred-$(notdir $(FULL_PKG))
PRED_EDGE = $(COHORT)-pred-$(notdir $(EDGE_PKG))

bench: $(STAMP)
	start=$$(date +%s) && \
	$(BIN)/hidiff phantom bench --out benchmarks/results && \
	{ test -f $(COHORT)/cohort.json || $(BIN)/hidiff phantom cohort --n $(BENCH_N) --seed 2027 \
		--grid $(BENCH_GRID) --slices $(BENCH_SLICES) \
		--config benchmarks/accuracy/heldout-cohort.json --out $(COHORT); } && \
	$(BIN)/hidiff synthesize $(COHORT) --package $(FULL_PKG) --sequence t2 --out $(PRED_FULL) && \
	$(BIN)/hidiff synthesize $(COHORT) --package $(EDGE_PKG) --sequence t2 --out $(PRED_EDGE) && \
	stem=$$($(BIN)/python -m benchmarks.device.stamp) && \
	$(BIN)/hidiff bench device --package $(FULL_PKG) --package $(EDGE_PKG) --batch 1,4 \
		--repeats 20 --warmup 3 --torch-reference $(TORCH_REF) --torch-timed-steps 2 \
		--out benchmarks/results/$$stem-device.json && \
	$(BIN)/hidiff bench accuracy --pred full=$(PRED_FULL) --pred edge=$(PRED_EDGE) \
		--truth $(COHORT) --sequences t2 --sequence-check warn --out benchmarks/results/$$stem-accuracy --overwrite && \
	ledger=$$(test -f "$(LEDGER)" && echo "--ledger $(LEDGER)" || true) && \
	$(BIN)/hidiff bench report --device benchmarks/results/$$stem-device.json $$ledger \
		--accuracy benchmarks/results/$$stem-accuracy --out $(BENCH)/report --overwrite && \
	echo "report: $(BENCH)/report/report.html" && \
	echo "make bench: total wall time $$(( $$(date +%s) - start )) s"

app: $(STAMP)
	$(BIN)/hidiff app --demo

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache build *.egg-info
