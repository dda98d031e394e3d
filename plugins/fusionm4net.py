"""FusionM4Net (Tang et al., 2022) from mmfuse components, and its metadata second stage.

Read from the authors' code (github.com/pixixiaonaogou/MLSDR, ``model.py`` and
``second_stage_fusion_utils.py``) and written anew on mmfuse's public interfaces.

First stage (preset ``fusionm4net``): two ResNet-50 without interaction (``concat`` fusion), a fusion
branch on the *sum* of the two pooled 2048-wide vectors (``sum`` combiner), and on each of the three
branches an MLP head — Linear(2048, 512), BatchNorm, Swish, dropout 0.3, Linear(512, 128), BatchNorm,
Swish, dropout 0.3 — before the per-task classifiers (``mlp`` head). The three heads are averaged with
searched weights, as in AMMFM's Eq. 4.

Second stage (:class:`SecondStage`, optional): per task, a classifier on the first stage's
probabilities for every task concatenated with the patient's metadata vector (Derm7pt: the official 20
one-hot values). The reference fits a scikit-learn SVM (RBF kernel, C = 1) on predictions for cases
the first stage did not train on; so does :meth:`SecondStage.fit` (give it validation-split
predictions, see docs/choosing.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

import mmfuse
from mmfuse.errors import UsageError
from mmfuse.tasks import TaskSpec

FUSIONM4NET_PRESET = {
    "primary": "resnet50",
    "auxiliary": "resnet50",
    "fusion": "concat",
    "combiner": "sum",
    "head": "mlp",
    "head_options": {"hidden": [512, 128], "dropout": 0.3, "activation": "swish"},
}


def stage_features(
    probabilities: Mapping[str, torch.Tensor], metadata: torch.Tensor, tasks: Sequence[TaskSpec]
) -> np.ndarray:
    """``[N, Σ classes + metadata width]``: every task's first-stage probabilities, then the metadata."""
    parts = [probabilities[t.name].detach().float().cpu().numpy() for t in tasks]
    return np.concatenate([*parts, metadata.detach().float().cpu().numpy()], axis=1)


@dataclass
class SecondStage:
    """FusionM4Net's second stage: one classifier per task on first-stage probabilities + metadata.

    ``classifier`` is ``"svm"`` (the reference: RBF kernel, C = 1, Platt-scaled probabilities) or
    ``"logistic"`` (C = 0.01, balanced classes, the reference's other choice). Needs scikit-learn.
    """

    tasks: tuple[TaskSpec, ...]
    classifier: str = "svm"
    models: dict = field(default_factory=dict)

    def _new(self, target: np.ndarray):
        # scikit-learn is the reference's tool and an optional dependency of this plugin only.
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import SVC

        if self.classifier == "svm":
            # Platt-scaled SVM probabilities (what SVC(probability=True) computed, before its deprecation).
            folds = min(3, int(np.unique(target, return_counts=True)[1].min()))
            svm = SVC(C=1.0, kernel="rbf", random_state=0)
            return (
                svm if folds < 2 else CalibratedClassifierCV(svm, method="sigmoid", cv=folds, ensemble=False)
            )
        if self.classifier == "logistic":
            return LogisticRegression(C=0.01, class_weight="balanced", max_iter=1000)
        raise UsageError(f"unknown second-stage classifier {self.classifier!r}; use 'svm' or 'logistic'")

    def fit(
        self, probabilities: Mapping[str, torch.Tensor], metadata: torch.Tensor, labels: torch.Tensor
    ) -> SecondStage:
        """Fit on held-out first-stage probabilities ``{task: [N, C]}``, metadata ``[N, D]``, labels ``[N, T]``."""
        features = stage_features(probabilities, metadata, self.tasks)
        for column, task in enumerate(self.tasks):
            target = labels[:, column].cpu().numpy()
            if len(np.unique(target)) < 2:
                warnings.warn(
                    f"second stage: task {task.name!r} shows one class only in the fitting cases; "
                    "it keeps the first stage's probabilities",
                    stacklevel=2,
                )
                self.models[task.name] = None
                continue
            model = self._new(target)
            if not hasattr(model, "predict_proba"):
                raise UsageError(
                    f"second stage: task {task.name!r} has a class with one fitting case only; "
                    "fit on more cases (the validation split) or use classifier='logistic'"
                )
            self.models[task.name] = model.fit(features, target)
        return self

    def predict_proba(
        self, probabilities: Mapping[str, torch.Tensor], metadata: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Per-task probabilities ``{task: [N, C]}`` (classes the fitting cases lacked get 0; a task
        whose fitting cases showed one class keeps the first stage's probabilities)."""
        if not self.models:
            raise UsageError("the second stage is not fitted; call fit() first")
        features = stage_features(probabilities, metadata, self.tasks)
        out = {}
        for task in self.tasks:
            model = self.models[task.name]
            if model is None:
                out[task.name] = probabilities[task.name].detach().float().cpu().clone()
                continue
            known = model.predict_proba(features)
            full = np.zeros((features.shape[0], task.num_classes), dtype=np.float32)
            full[:, model.classes_.astype(int)] = known
            out[task.name] = torch.from_numpy(full)
        return out


@mmfuse.hookimpl
def register_presets(register) -> None:
    register("fusionm4net", dict(FUSIONM4NET_PRESET))
