"""Training: run configs, the three-head loss, the SWA trainer with checkpoints and resume, repeats over seeds.

The modules of this package never import :mod:`mmfuse.evaluation`: :class:`Trainer` ends a run with the
:class:`RunEvaluator` it is handed, and without one trains and saves the model, nothing more. What trains
*and* evaluates (``train``, ``run_seeds``, ``run_folds``) is :mod:`mmfuse.pipeline`'s.
"""

from mmfuse.errors import RunConfigError
from mmfuse.training.config import load_config, resolve
from mmfuse.training.losses import multitask_loss
from mmfuse.training.repeats import parse_seeds
from mmfuse.training.rundir import RunDirError
from mmfuse.training.trainer import NonFiniteLossError, RunEvaluator, Trainer, TrainResult

__all__ = [
    "NonFiniteLossError",
    "RunConfigError",
    "RunDirError",
    "RunEvaluator",
    "TrainResult",
    "Trainer",
    "load_config",
    "multitask_loss",
    "parse_seeds",
    "resolve",
]
