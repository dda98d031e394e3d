"""Training: run configs, the three-head loss, the SWA trainer with checkpoints and resume, repeats over seeds.

``train``, ``run_seeds``, ``run_folds`` and ``Trainer`` end each run with evaluation, so they come from :mod:`mmfuse.pipeline`
(loaded on first use): the modules of this package never import :mod:`mmfuse.evaluation`.
"""

from mmfuse.training.config import RunConfigError, load_config, resolve
from mmfuse.training.losses import multitask_loss
from mmfuse.training.repeats import parse_seeds
from mmfuse.training.rundir import RunDirError
from mmfuse.training.trainer import NonFiniteLossError, TrainResult

__all__ = [
    "RunConfigError",
    "NonFiniteLossError",
    "RunDirError",
    "TrainResult",
    "Trainer",
    "load_config",
    "multitask_loss",
    "parse_seeds",
    "resolve",
    "run_folds",
    "run_seeds",
    "train",
]


def __getattr__(name: str):
    if name in ("train", "run_seeds", "run_folds", "Trainer"):
        from mmfuse import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
