PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint clean

# A wheel index for torch, e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu for a CPU-only torch
# (no 3.2 GB of CUDA libraries); where that index cannot be reached, the default install follows.
TORCH_INDEX ?=

# The venv is the stamp: make test / make demo create it on a fresh clone.
$(BIN)/mmfuse: pyproject.toml setup.py examples/plugin_package/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(BIN)/pip install torch torchvision --index-url '$(TORCH_INDEX)' \
		|| echo "TORCH_INDEX $(TORCH_INDEX) not reachable: installing the default torch")
	$(BIN)/pip install -e '.[dev,demo,track,cluster]' -e examples/plugin_package
	touch $(BIN)/mmfuse

setup: $(BIN)/mmfuse

demo: setup
	$(BIN)/mmfuse demo

# The ISIC challenges' official scorer, which the ISIC metrics are tested against, needs pandas < 3: it
# gets an environment of its own (tests/test_evaluation_isic.py calls its command line).
ISIC_VENV := .venv-isic
ISIC_SCORER := $(ISIC_VENV)/bin/isic-challenge-scoring
$(ISIC_SCORER):
	$(PYTHON) -m venv $(ISIC_VENV)
	$(ISIC_VENV)/bin/pip install 'isic-challenge-scoring==5.6.0' 'pandas<3'

test: setup $(ISIC_SCORER)
	MMFUSE_ISIC_SCORING=$(abspath $(ISIC_SCORER)) HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q
	$(BIN)/ruff check .

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(ISIC_VENV) build *.egg-info
