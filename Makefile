PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint clean

# The venv is the stamp: make test / make demo create it on a fresh clone.
$(BIN)/mmfuse: pyproject.toml examples/plugin_package/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev,demo,track,cluster]' -e examples/plugin_package
	touch $(BIN)/mmfuse

setup: $(BIN)/mmfuse

demo: setup
	$(BIN)/mmfuse demo

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q
	$(BIN)/ruff check .

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
