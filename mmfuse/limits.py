"""Upper bounds on the values that size an allocation, in one place.

A damaged or hostile file (a ``config.json`` with ``img_size: 200000``) or a typo on the command line
(``--bootstrap 100000000000``) would otherwise ask for tens of gigabytes or terabytes and run until the
kernel kills the process. Each bound lies far above any real use and far below what exhausts a machine;
a value past it is refused with a message naming the key (or option) and the value.
"""

from __future__ import annotations

# Square input side in pixels. The paper trains at 224; 1024 leaves room for high-resolution models, while
# an image, its activations and exact attention over every position at 2048 and beyond exhaust a host.
MAX_IMG_SIZE = 1024

# Any number in a component's options (``hidden``, ``dim``, ``num_heads``, ``max_key_tokens``, ...): a layer
# as wide as this is already far beyond the paper's models (768 channels at most).
MAX_OPTION_VALUE = 16384

# Tasks of a model, and classes of one task: each class is a row of three heads' weight matrices.
MAX_TASKS = 64
MAX_CLASSES = 1000

# Encoded patient-metadata values per case (the width of the metadata encoder's first layer).
MAX_METADATA_WIDTH = 4096

# Bootstrap resamples: a [resamples, cases] count matrix is drawn; 10 000 gives p-values to 1e-4.
MAX_RESAMPLES = 10_000

# Training runs of one --seeds list, and the range of a seed (NumPy's).
MAX_SEEDS = 1000
MAX_SEED = 2**32 - 1

# `mmfuse data synth`: cases drawn, and their side in pixels (a camera-sized frame at most).
MAX_SYNTH_CASES = 100_000
MAX_SYNTH_SIZE = 4096

# `mmfuse data probe --pixels`: the side of the downsampled images the probe's features are made of.
MAX_PROBE_PIXELS = 256

# Worker threads or processes of one command (data.num_workers has the same bound).
MAX_WORKERS = 256

# Finest step of the head-weight grid search: the grid has (1/step + 1)(1/step + 2)/2 points.
MIN_WEIGHT_STEP = 0.01
