# Two commands set up and run everything on a fresh clone:
#   make train   # creates .venv if missing, installs pinned deps, trains the default run
#   make test    # same set-up, then the test suite on every core (pytest-xdist)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := dev,mpe,sisl,lbforaging,rware,sweep,plot,smax,docs,wandb

.PHONY: install train test lint docs bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0 -c constraints.txt
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]" -c constraints.txt
	touch $@

train: install
	$(BIN)/riskq-train $(ARGS)

test: install
	$(BIN)/python -m pytest -q -n auto --dist worksteal $(ARGS)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# the documentation site into site/; --strict: any broken link or reference fails the build
docs: install
	$(BIN)/mkdocs build --strict

bench: install
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
