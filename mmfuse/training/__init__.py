"""Training: run configs, the three-head loss, the SWA trainer with checkpoints and resume, repeats over seeds."""

from mmfuse.training.config import ConfigError, load_config, resolve
from mmfuse.training.losses import multitask_loss
from mmfuse.training.repeats import parse_seeds, run_seeds
from mmfuse.training.rundir import RunDirError
from mmfuse.training.trainer import NonFiniteLossError, Trainer, TrainResult, train

__all__ = [
    "ConfigError",
    "NonFiniteLossError",
    "RunDirError",
    "TrainResult",
    "Trainer",
    "load_config",
    "multitask_loss",
    "parse_seeds",
    "resolve",
    "run_seeds",
    "train",
]
