"""A second stage on the first stage's outputs: FusionM4Net's (Tang et al., 2022) metadata classifier.

Per task, a classifier reads the first stage's final probabilities for every task concatenated with the
patient's metadata vector. It is fitted on cases the model did not train on (the validation split) and
applied to the others. In a run, ``evaluation.second_stage: svm`` (the reference's RBF SVM, C = 1, Platt-
scaled) or ``logistic`` does this after the weight search and writes ``second_stage.json``: the metrics
of the stacked prediction per split beside those of the first stage. Needs scikit-learn.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mmfuse.errors import UsageError
from mmfuse.tasks import TaskSpec

CLASSIFIERS = ("svm", "logistic")
SECOND_STAGE_FILE = "second_stage.json"


def stage_features(
    probabilities: Mapping[str, torch.Tensor], metadata: torch.Tensor, tasks: Sequence[TaskSpec]
) -> np.ndarray:
    """``[N, Σ classes + metadata width]``: every task's first-stage probabilities, then the metadata."""
    parts = [probabilities[t.name].detach().float().cpu().numpy() for t in tasks]
    return np.concatenate([*parts, metadata.detach().float().cpu().numpy()], axis=1)


@dataclass
class SecondStage:
    """A second stage (FusionM4Net's): one classifier per task on first-stage probabilities + metadata.

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


def split_metadata(
    model, data_section: Mapping, split: str, case_ids: Sequence[str], train_split: str = "train"
) -> torch.Tensor:
    """The encoded metadata ``[N, size]`` of ``case_ids`` (in that order) of ``split``.

    The model's own encoding when it has one; otherwise every metadata field the data format declares,
    encoded with statistics of the training split (``data.metadata: true`` without feeding the model).
    """
    from mmfuse.data.build import fit_metadata_encoding, load_table

    encoding = getattr(model, "metadata_encoding", None)
    if encoding is None:
        encoding, _ = fit_metadata_encoding({**data_section, "metadata": True}, train_split)
    records = {r.case_id: r for r in load_table(data_section).split_records(split)}
    missing = [c for c in case_ids if c not in records]
    if missing:
        raise UsageError(
            f"second stage: cases {missing[:3]} of the {split!r} predictions are not in its table"
        )
    return encoding.encode([records[c].metadata for c in case_ids])[0]


def run_second_stage(
    model,
    data_section: Mapping,
    predictions: Mapping,
    *,
    fit_split: str,
    splits: Sequence[str],
    classifier: str = "svm",
    train_split: str = "train",
    out: str | Path | None = None,
) -> dict:
    """Fit the second stage on ``fit_split``'s final probabilities and report it on ``splits``.

    ``predictions`` maps each split to its :class:`~mmfuse.evaluation.inference.Predictions` (mixed as the
    model mixes its heads). Returns, and with ``out`` writes to ``second_stage.json``, per split the
    ``second_stage`` and ``first_stage`` reports of :func:`~mmfuse.evaluation.metrics.head_metrics`.
    """
    from mmfuse.evaluation.metrics import head_metrics
    from mmfuse.evaluation.report import final_probabilities
    from mmfuse.evaluation.writers import write_json

    if classifier not in CLASSIFIERS:
        raise UsageError(f"second stage classifier must be one of {list(CLASSIFIERS)}, got {classifier!r}")
    weights = model.head_weights_dict
    first = {s: final_probabilities(predictions[s], weights) for s in dict.fromkeys([fit_split, *splits])}
    metadata = {s: split_metadata(model, data_section, s, predictions[s].case_ids, train_split) for s in first}
    stage = SecondStage(tuple(model.tasks), classifier).fit(
        first[fit_split], metadata[fit_split], predictions[fit_split].labels
    )
    result: dict = {"classifier": classifier, "fitted_on": fit_split}
    for split in splits:
        labels = predictions[split].labels
        stacked = stage.predict_proba(first[split], metadata[split])
        result[split] = {
            "second_stage": head_metrics(stacked, labels, model.tasks),
            "first_stage": head_metrics(first[split], labels, model.tasks),
        }
    if out is not None:
        write_json(Path(out) / SECOND_STAGE_FILE, result)
    return result
