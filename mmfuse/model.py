"""The fusion model: two stage-wise encoders, fusion blocks between them, three multi-task heads.

Data flow (see docs/architecture.md): the primary and auxiliary encoders run in lock-step; after each
chosen primary stage, the fusion block receives that stage's map and the auxiliary map of the same
reduction, and its outputs replace both before the next stages consume them. The final maps are
average-pooled; the primary, auxiliary and fusion heads (the last on the concatenation of both pooled
vectors) give one linear classifier per task each. :meth:`FusionModel.predict` averages the heads'
softmax with ``head_weights`` (Eq. 4 of the paper).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from mmfuse.hub import HubMixin
from mmfuse.interfaces import Encoder, FusionBlock
from mmfuse.registry import create_fusion, encoder_entry
from mmfuse.tasks import TaskSpec, resolve_tasks, tasks_to_data

HEADS = ("primary", "auxiliary", "fusion")


@dataclass
class FusionOutput:
    """``logits[head][task]`` is ``[batch, num_classes]``; ``features[branch]`` the pooled vectors.

    Only the heads that could be computed are present: all three with both modalities, ``primary``
    alone without an auxiliary input, ``auxiliary`` alone without a primary one.
    """

    logits: dict[str, dict[str, torch.Tensor]]
    features: dict[str, torch.Tensor] = field(default_factory=dict)


class MultiTaskHead(nn.Module):
    """One linear classifier per task on a pooled feature vector."""

    def __init__(self, in_features: int, tasks: Sequence[TaskSpec], dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifiers = nn.ModuleDict({t.name: nn.Linear(in_features, t.num_classes) for t in tasks})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.dropout(x)
        return {name: classifier(x) for name, classifier in self.classifiers.items()}


def mix_heads(
    probabilities: Mapping[str, Mapping[str, torch.Tensor]],
    weights: Mapping[str, float],
    auxiliary_present: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Eq. 4: the weighted average of per-head probabilities, renormalised over the heads present.

    ``probabilities[head][task]`` is ``[batch, classes]``. Rows whose ``auxiliary_present`` is False
    take the primary head alone. When the heads present have zero total weight (primary-only
    inference with ``w_primary = 0``) they share equally.
    """
    heads = [h for h in HEADS if h in probabilities]
    used = {h: float(weights[h]) for h in heads}
    total = sum(used.values())
    if total <= 0:
        used, total = dict.fromkeys(heads, 1.0), float(len(heads))
    mixed = {}
    for task in probabilities[heads[0]]:
        value = sum(used[h] * probabilities[h][task] for h in heads) / total
        if auxiliary_present is not None and "primary" in probabilities:
            keep = auxiliary_present.to(value.device).bool().view(-1, 1)
            value = torch.where(keep, value, probabilities["primary"][task])
        mixed[task] = value
    return mixed


def _accepts_keyword(factory, name: str) -> bool:
    """Whether ``factory`` takes ``name`` (explicitly or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def _pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3))


def _match_stage(reduction: int, reductions: Sequence[int]) -> int:
    """Index of the auxiliary stage whose reduction is nearest (in log scale) to ``reduction``.

    Ties go to the deeper stage.
    """
    return min(range(len(reductions)), key=lambda i: (abs(math.log2(reductions[i] / reduction)), -i))


class FusionModel(nn.Module, HubMixin):
    """AMMFM and its relatives; build one with :func:`mmfuse.build_model`.

    ``config`` is the plain-data description returned by :attr:`config` (registry names, options,
    tasks, stages, preprocessing), so ``FusionModel(model.config)`` rebuilds the same architecture.
    """

    def __init__(
        self,
        config: Mapping,
        *,
        pretrained: bool = False,
        pretrained_files: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        from mmfuse.presets import normalize_config

        config = normalize_config(config)
        pretrained_files = dict(pretrained_files or {})
        unknown = set(pretrained_files) - {"primary", "auxiliary"}
        if unknown:
            raise ValueError(f"pretrained_files keys must be 'primary' or 'auxiliary', got {sorted(unknown)}")
        self.tasks: tuple[TaskSpec, ...] = resolve_tasks(config["tasks"])
        self._config = config
        encoders = {}
        for branch in ("primary", "auxiliary"):
            factory = encoder_entry(config[branch]).obj
            options = dict(config[f"{branch}_options"])
            if config.get("img_size") is not None and _accepts_keyword(factory, "img_size"):
                options.setdefault("img_size", config["img_size"])
            if branch in pretrained_files:
                options["pretrained_file"] = pretrained_files[branch]
            encoders[branch] = factory(pretrained=pretrained, **options)
            if not isinstance(encoders[branch], Encoder):
                raise TypeError(f"encoder {config[branch]!r} did not return an mmfuse.Encoder")
        self.primary_encoder: Encoder = encoders["primary"]
        self.auxiliary_encoder: Encoder = encoders["auxiliary"]

        stages = config["fusion_stages"]
        num_stages = self.primary_encoder.num_stages
        if stages is None:
            stages = default_fusion_stages(self.primary_encoder.reductions)
        elif stages == "all":
            stages = list(range(num_stages))
        for s in stages:
            if not -num_stages <= s < num_stages:
                raise ValueError(
                    f"fusion stage {s} is out of range for a primary encoder with {num_stages} stages"
                )
        stages = sorted({s % num_stages for s in stages})
        self._config["fusion_stages"] = stages
        self.fusion_pairs = {
            s: _match_stage(self.primary_encoder.reductions[s], self.auxiliary_encoder.reductions)
            for s in stages
        }
        blocks = {}
        for s, a in self.fusion_pairs.items():
            block = create_fusion(
                config["fusion"],
                self.primary_encoder.channels[s],
                self.auxiliary_encoder.channels[a],
                **config["fusion_options"],
            )
            if not isinstance(block, FusionBlock):
                raise TypeError(f"fusion {config['fusion']!r} did not return an mmfuse.FusionBlock")
            blocks[str(s)] = block
        self.fusion_blocks = nn.ModuleDict(blocks)

        primary_dim = self.primary_encoder.channels[-1]
        auxiliary_dim = self.auxiliary_encoder.channels[-1]
        dropout = config["head_dropout"]
        self.heads = nn.ModuleDict(
            {
                "primary": MultiTaskHead(primary_dim, self.tasks, dropout),
                "auxiliary": MultiTaskHead(auxiliary_dim, self.tasks, dropout),
                "fusion": MultiTaskHead(primary_dim + auxiliary_dim, self.tasks, dropout),
            }
        )
        weights = config["head_weights"]
        # Not in the state dict: config.json is the one place a saved model's head weights live.
        self.register_buffer(
            "head_weights", torch.tensor([float(weights[h]) for h in HEADS]), persistent=False
        )
        self._temperatures: dict[str, dict[str, float]] | None = None
        self.set_temperatures(config.get("temperatures"))

    # -- configuration -------------------------------------------------------------------------
    @property
    def config(self) -> dict:
        """Plain data (JSON-serialisable) that rebuilds this architecture with its head weights."""
        config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self._config.items()}
        config["tasks"] = tasks_to_data(self.tasks)
        config["head_weights"] = self.head_weights_dict
        config["temperatures"] = self.temperatures
        return config

    @property
    def head_weights_dict(self) -> dict[str, float]:
        return {h: float(w) for h, w in zip(HEADS, self.head_weights.tolist(), strict=True)}

    def set_head_weights(self, weights: Mapping[str, float] | Sequence[float]) -> None:
        """Store Eq. 4's weights (e.g. from the validation weight search); they must lie on the simplex."""
        if isinstance(weights, Mapping):
            missing = set(HEADS) - set(weights)
            if missing:
                raise ValueError(f"head weights miss {sorted(missing)}; expected keys {list(HEADS)}")
            weights = [weights[h] for h in HEADS]
        values = torch.tensor([float(w) for w in weights], dtype=self.head_weights.dtype)
        if values.shape != (3,) or (values < 0).any() or abs(float(values.sum()) - 1.0) > 1e-6:
            raise ValueError(
                f"head weights must be 3 non-negative numbers summing to 1, got {values.tolist()}"
            )
        self.head_weights.copy_(values)

    @property
    def temperatures(self) -> dict[str, dict[str, float]] | None:
        """``{head: {task: T}}`` of temperature scaling (a copy), or ``None`` when the model has none."""
        if self._temperatures is None:
            return None
        return {head: dict(per_task) for head, per_task in self._temperatures.items()}

    def set_temperatures(self, temperatures: Mapping[str, Mapping[str, float]] | None) -> None:
        """Store per-head, per-task temperatures (see :mod:`mmfuse.evaluation.calibration`); ``None`` clears them.

        A head or task left out keeps temperature 1. Logits are divided by ``T`` before the softmax in
        :meth:`predict` and in the evaluation, never in training.
        """
        if temperatures is None:
            self._temperatures = None
            return
        task_names = {t.name for t in self.tasks}
        checked: dict[str, dict[str, float]] = {}
        for head, per_task in temperatures.items():
            if head not in HEADS:
                raise ValueError(f"temperatures name unknown head {head!r}; heads are {list(HEADS)}")
            if not isinstance(per_task, Mapping):
                raise ValueError(f"temperatures[{head!r}] must map task names to numbers, got {per_task!r}")
            for task, value in per_task.items():
                if task not in task_names:
                    raise ValueError(f"temperatures[{head!r}] names unknown task {task!r}")
                t = float(value)
                if not math.isfinite(t) or t <= 0:
                    raise ValueError(f"temperature of {head}/{task} must be a positive number, got {value!r}")
                checked.setdefault(head, {})[task] = t
        self._temperatures = checked

    def head_probabilities(
        self, logits: Mapping[str, Mapping[str, torch.Tensor]], *, calibrated: bool = True
    ) -> dict[str, dict[str, torch.Tensor]]:
        """Softmax of each head's logits, divided first by the head's temperature when ``calibrated``."""
        temperatures = (self._temperatures or {}) if calibrated else {}
        return {
            head: {
                task: (z / temperatures.get(head, {}).get(task, 1.0)).softmax(dim=-1)
                for task, z in per_task.items()
            }
            for head, per_task in logits.items()
        }

    @property
    def preprocessing(self) -> dict:
        return {k: self._config[k] for k in ("img_size", "mean", "std")}

    # -- forward ---------------------------------------------------------------------------------
    def forward_features(
        self,
        primary: torch.Tensor,
        auxiliary: torch.Tensor,
        auxiliary_present: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final NCHW maps of both branches after the fusion blocks.

        Rows whose ``auxiliary_present`` is False keep their unrefined primary maps, so their primary
        head sees exactly what it sees when no auxiliary image is given at all.
        """
        keep = (
            None
            if auxiliary_present is None
            else auxiliary_present.to(primary.device).bool().view(-1, 1, 1, 1)
        )
        p, a = primary, auxiliary
        next_aux = 0
        for s in range(self.primary_encoder.num_stages):
            p = self.primary_encoder.forward_stage(s, p)
            if s in self.fusion_pairs:
                target = self.fusion_pairs[s]
                while next_aux <= target:
                    a = self.auxiliary_encoder.forward_stage(next_aux, a)
                    next_aux += 1
                refined, a = self.fusion_blocks[str(s)](p, a)
                p = refined if keep is None else torch.where(keep, refined, p)
        while next_aux < self.auxiliary_encoder.num_stages:
            a = self.auxiliary_encoder.forward_stage(next_aux, a)
            next_aux += 1
        return p, a

    def forward(
        self,
        primary: torch.Tensor | None = None,
        auxiliary: torch.Tensor | None = None,
        auxiliary_present: torch.Tensor | None = None,
    ) -> FusionOutput:
        """All three heads' logits; with one modality missing, only that modality's head.

        ``auxiliary_present`` (bool, ``[batch]``) marks rows of a mixed batch whose auxiliary image
        is missing: fusion blocks leave their primary maps untouched, and their auxiliary and fusion
        logits are meaningless (the trainer masks them out of the loss).
        """
        if primary is None and auxiliary is None:
            raise ValueError("at least one of primary and auxiliary is required")
        if auxiliary is None:
            pooled = _pool(self.primary_encoder(primary)[-1])
            return FusionOutput({"primary": self.heads["primary"](pooled)}, {"primary": pooled})
        if primary is None:
            pooled = _pool(self.auxiliary_encoder(auxiliary)[-1])
            return FusionOutput({"auxiliary": self.heads["auxiliary"](pooled)}, {"auxiliary": pooled})
        p, a = self.forward_features(primary, auxiliary, auxiliary_present)
        p, a = _pool(p), _pool(a)
        logits = {
            "primary": self.heads["primary"](p),
            "auxiliary": self.heads["auxiliary"](a),
            "fusion": self.heads["fusion"](torch.cat([p, a], dim=1)),
        }
        return FusionOutput(logits, {"primary": p, "auxiliary": a})

    def combine(
        self,
        probabilities: Mapping[str, Mapping[str, torch.Tensor]],
        auxiliary_present: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Eq. 4 with this model's ``head_weights`` (see :func:`mix_heads`)."""
        return mix_heads(probabilities, self.head_weights_dict, auxiliary_present)

    @torch.no_grad()
    def predict(
        self,
        primary: torch.Tensor | None = None,
        auxiliary: torch.Tensor | None = None,
        auxiliary_present: torch.Tensor | None = None,
        *,
        calibrated: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Per-task class probabilities ``{task: [batch, num_classes]}`` (Eq. 4).

        Without ``auxiliary`` the primary head answers alone (fusion blocks skipped); without
        ``primary`` the auxiliary head does. ``auxiliary_present`` marks rows of a mixed batch whose
        auxiliary image is missing: those rows get exactly the primary-only answer. ``calibrated=False``
        ignores the stored temperatures (the raw softmax of each head).
        """
        was_training = self.training
        self.eval()
        try:
            output = self(primary=primary, auxiliary=auxiliary, auxiliary_present=auxiliary_present)
        finally:
            self.train(was_training)
        probabilities = self.head_probabilities(output.logits, calibrated=calibrated)
        return self.combine(probabilities, auxiliary_present)


DEFAULT_FUSION_REDUCTIONS = (16,)


def default_fusion_stages(reductions: Sequence[int]) -> list[int]:
    """The primary stage at reduction 16, chosen by measurement (docs/performance.md).

    Attention at reduction 4 (3136 tokens at 224 px) costs more than the backbone it saves; at
    reduction 8 it adds ~3 % CPU latency, which the 0.6× latency budget against the symmetric baseline
    cannot spare; at reduction 32 the 1×1 projections of wide maps (768 and 960 channels) add ~6 % of
    parameters. Every stage stays available through ``fusion_stages``.
    """
    stages = [i for i, r in enumerate(reductions) if r in DEFAULT_FUSION_REDUCTIONS]
    return stages or [len(reductions) - 1]
