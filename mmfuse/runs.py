"""A training run folder (``mmfuse train --out RUN``): the names of its files, and the model it saved.

The run folder is the command line's main noun: ``predict``, ``evaluate``, ``explain``, ``export``,
``serve``, ``push`` and ``report`` all take one. Training writes ``config.yaml``, ``log.csv``,
``splits.csv`` and ``model/``; evaluation adds ``metrics.json``, ``predictions_<split>.csv`` and
``submission_<split>.csv``. Each name is spelt here once, for the writers and the readers alike
(a cross-validation folder of fold runs is laid out by :mod:`mmfuse.cv_layout`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mmfuse.errors import RunDirError
from mmfuse.hub.files import CONFIG_FILE as MODEL_CONFIG_FILE
from mmfuse.hub.files import RUN_MODEL_DIR
from mmfuse.hub.names import HUB_PREFIX, LOCAL_PREFIX, NAMED_MODELS

CONFIG_FILE = "config.yaml"  # the run's configuration, defaults filled in
MODEL_DIR = RUN_MODEL_DIR  # the saved model (config.json, weights, card)
LOG_FILE = "log.csv"  # one row per epoch, rewritten after each
SPLITS_FILE = "splits.csv"  # case_id,split of every case the run's data config splits
METRICS_FILE = "metrics.json"  # every evaluated split's metrics, the head weights and the data records
PREDICTIONS_FILE = "predictions_{split}.csv"  # a split's final probabilities, one row per case
SUBMISSION_FILE = "submission_{split}.csv"  # a single-task model's challenge submission of a split

# Any of these makes a folder a run: a training still in its first epoch has written config.yaml only.
RUN_MARKERS = (CONFIG_FILE, METRICS_FILE, LOG_FILE, MODEL_DIR)


def run_model_dir(spec: str | os.PathLike) -> Path | None:
    """The saved model of the training run that a command-line argument names, else ``None``.

    Published short names and ``hf-hub:`` names never resolve to a local run, so a folder in the
    working directory cannot shadow them (the rule of :func:`mmfuse.from_pretrained`);
    ``local-dir:RUN`` names a run explicitly.
    """
    text = str(spec)
    if text in NAMED_MODELS or text.startswith(HUB_PREFIX):
        return None
    candidate = Path(text.removeprefix(LOCAL_PREFIX)) / MODEL_DIR
    return candidate if (candidate / MODEL_CONFIG_FILE).is_file() else None


def load_run_or_model(spec: str | os.PathLike, *, revision: str | None = None):
    """:func:`mmfuse.from_pretrained` for an argument that may also name a training run directory."""
    from mmfuse.hub import from_pretrained

    return from_pretrained(run_model_dir(spec) or spec, revision=revision)


class RunDir:
    """The files of one run folder; ``RunDir(path)`` refuses a folder that holds no run.

    >>> run = RunDir("runs/ammfm")                      # doctest: +SKIP
    >>> run.metrics_file, run.predictions_file("test")  # doctest: +SKIP
    (PosixPath('runs/ammfm/metrics.json'), PosixPath('runs/ammfm/predictions_test.csv'))
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunDirError(f"run directory not found: {self.path}")
        if not any((self.path / name).exists() for name in RUN_MARKERS):
            raise RunDirError(
                f"{self.path} is not a training run directory "
                f"(no {', '.join(RUN_MARKERS[:-1])} or {RUN_MARKERS[-1]}/)"
            )

    @classmethod
    def named_by(cls, spec: str | os.PathLike) -> RunDir | None:
        """The run with a saved model that a command-line argument names (see :func:`run_model_dir`), else ``None``."""
        model_dir = run_model_dir(spec)
        return None if model_dir is None else cls(model_dir.parent)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    @property
    def log_file(self) -> Path:
        return self.path / LOG_FILE

    @property
    def splits_file(self) -> Path:
        return self.path / SPLITS_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    def predictions_file(self, split: str) -> Path:
        return self.path / PREDICTIONS_FILE.format(split=split)

    def submission_file(self, split: str) -> Path:
        return self.path / SUBMISSION_FILE.format(split=split)

    def read_config(self) -> dict | None:
        """``config.yaml`` as training wrote it (``None`` when absent); ``mmfuse.training.load_config`` checks it."""
        from mmfuse.yamlio import load_yaml

        if not self.config_file.is_file():
            return None
        return load_yaml(self.config_file.read_text(encoding="utf-8"))

    def read_metrics(self) -> dict | None:
        """``metrics.json`` as evaluation wrote it; ``None`` before the run was evaluated."""
        if not self.metrics_file.is_file():
            return None
        return json.loads(self.metrics_file.read_text(encoding="utf-8"))

    def load_model(self):
        """The model the run saved (:func:`mmfuse.from_pretrained` of ``model/``)."""
        from mmfuse.hub import from_pretrained

        return from_pretrained(self.model_dir)
