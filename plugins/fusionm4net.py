"""FusionM4Net (Tang et al., 2022) from mmfuse components, and its metadata second stage.

Read from the authors' code (github.com/pixixiaonaogou/MLSDR, ``model.py`` and
``second_stage_fusion_utils.py``) and written anew on mmfuse's public interfaces.

First stage (preset ``fusionm4net``): two ResNet-50 without interaction (``concat`` fusion), a fusion
branch on the *sum* of the two pooled 2048-wide vectors (``sum`` combiner), and on each of the three
branches an MLP head — Linear(2048, 512), BatchNorm, Swish, dropout 0.3, Linear(512, 128), BatchNorm,
Swish, dropout 0.3 — before the per-task classifiers (``mlp`` head). The three heads are averaged with
searched weights, as in AMMFM's Eq. 4.

Second stage (:class:`~mmfuse.evaluation.second_stage.SecondStage`, re-exported here; in a run,
``evaluation.second_stage: svm``): per task, a classifier on the first stage's probabilities for every
task concatenated with the patient's metadata vector (Derm7pt: the official 20 one-hot values). The
reference fits a scikit-learn SVM (RBF kernel, C = 1) on predictions for cases the first stage did not
train on; so does :meth:`SecondStage.fit` (give it validation-split predictions, see docs/choosing.md).
"""

from __future__ import annotations

import mmfuse
from mmfuse.evaluation import SecondStage, stage_features

__all__ = ["FUSIONM4NET_PRESET", "SecondStage", "stage_features"]

FUSIONM4NET_PRESET = {
    "primary": "resnet50",
    "auxiliary": "resnet50",
    "fusion": "concat",
    "combiner": "sum",
    "head": "mlp",
    "head_options": {"hidden": [512, 128], "dropout": 0.3, "activation": "swish"},
}


@mmfuse.hookimpl
def register_presets(register) -> None:
    register("fusionm4net", dict(FUSIONM4NET_PRESET))
