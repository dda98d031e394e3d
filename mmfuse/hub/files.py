"""The files of a saved model: what ``save_pretrained`` writes and ``from_pretrained`` reads."""

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
HUB_PICKLE_FILE = "pytorch_model.bin"
# A training run folder (``mmfuse train --out RUN``) keeps its saved model in RUN/RUN_MODEL_DIR.
RUN_MODEL_DIR = "model"
