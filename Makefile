# The README's two commands. Both create .venv if missing and install purembrl into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.purembrl-installed

.PHONY: demo test lint bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The main job on a default that needs no set-up: Sutton & Barto's Figure 8.2 (Dyna-Q on the
# Dyna maze, 30 seeds for each n in {0, 5, 50}), printed and saved to runs/demo/.
demo: $(STAMP)
	$(BIN)/python benchmarks/dyna_maze.py --figure 8.2 --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

lint: $(STAMP)
	$(BIN)/ruff check purembrl tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/dyna_maze.py --out runs/bench
