# The README's two commands. Both create .venv if missing and install purembrl into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.purembrl-installed

.PHONY: demo dyna-demo test lint bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,brax,log,stats,mujoco]"
	touch $(STAMP)

# The main job on a default that needs no set-up: MBPO on Pendulum-v1, 4 seeds under one
# jit(vmap), a few minutes on a 2-core CPU; table, curve.png, curve.csv, metrics.json in runs/demo
# (replaced by the next make demo: --overwrite).
demo: $(STAMP)
	$(BIN)/python -m purembrl train mbpo --env Pendulum-v1 --seeds 4 --set total_steps=1750 \
		--out runs/demo --overwrite

# Sutton & Barto's Figure 8.2 (Dyna-Q, 30 runs for each n in {0, 5, 50}) vs a NumPy loop.
dyna-demo: $(STAMP)
	$(BIN)/python benchmarks/dyna_maze.py --figure 8.2 --sweep-seeds 0 --out runs/dyna-demo

# One pytest worker per core (pytest-xdist); most of a test is XLA compiling its tiny-budget
# program, one core each. Measured on a clean clone of a 2-core AMD EPYC (2026-12-07, sessions
# 52-55): 554-556 tests in 29.7-34.6 min (five runs), plus about 1 min of install
# (benchmarks/RESULTS.md, "The test suite's compiles"); --durations lists the slowest, where
# budgets are worth cutting.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --durations=60 tests

lint: $(STAMP)
	$(BIN)/ruff check purembrl tests benchmarks examples docs

bench: $(STAMP)
	$(BIN)/python benchmarks/dyna_maze.py --out runs/bench
