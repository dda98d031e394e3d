"""The fusion model: two stage-wise encoders, fusion blocks between them, three multi-task heads.

Data flow (see docs/architecture.md): the primary and auxiliary encoders run in lock-step; after each
chosen primary stage, the fusion block receives that stage's map and the auxiliary map of the same
reduction, and its outputs replace both before the next stages consume them. The final maps are
average-pooled; the primary, auxiliary and fusion heads (the last on the concatenation of both pooled
vectors) give one linear classifier per task each. :meth:`FusionNetwork.predict` averages the heads'
softmax with ``head_weights`` (Eq. 4 of the paper).

This module is the architecture alone; :class:`mmfuse.FusionModel` (in :mod:`mmfuse.hub`, the layer
above) adds saving, loading and publishing, and :func:`mmfuse.build_model` builds one from a preset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from mmfuse.data.transforms import images_to_batch, resolve_data_config
from mmfuse.errors import NonFiniteOutputError, UsageError
from mmfuse.fusion_stages import fusion_pairs, resolve_fusion_stages
from mmfuse.head_mixing import (
    HEADS,
    check_head_combine,
    check_head_weights,
    check_temperatures,
    head_weight_tensor,
    head_weights_from_tensor,
    mix_heads,
    mix_logits,
)
from mmfuse.interfaces import Combiner, Encoder, Stream, StreamFusionBlock
from mmfuse.model_parts import (
    build_combiner,
    build_encoders,
    build_fusion_blocks,
    build_head,
    build_metadata_encoder,
    check_encoder_sharing,
    check_pretrained_files,
    final_stream_channels,
)
from mmfuse.presets import normalize_config
from mmfuse.tasks import TaskSpec, resolve_tasks, tasks_to_data


@dataclass
class FusionOutput:
    """``logits[head][task]`` is ``[batch, num_classes]``; ``features[branch]`` the pooled vectors.

    Only the heads that could be computed are present: all three with both modalities, ``primary``
    alone without an auxiliary input, ``auxiliary`` alone without a primary one.
    """

    logits: dict[str, dict[str, torch.Tensor]]
    features: dict[str, torch.Tensor] = field(default_factory=dict)
    # head -> bool [batch]: rows whose logits of that head are meaningless (an input it needs is missing).
    head_present: dict[str, torch.Tensor] = field(default_factory=dict)


def _pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3))


class FusionNetwork(nn.Module):
    """AMMFM and its relatives: the architecture. Use :class:`mmfuse.FusionModel` (this plus saving and
    loading), built with :func:`mmfuse.build_model`.

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
        config = normalize_config(config)
        pretrained_files = check_pretrained_files(pretrained_files)
        self.tasks: tuple[TaskSpec, ...] = resolve_tasks(config["tasks"])
        # The Hub id this model was fine-tuned from (set by from_pretrained(..., tasks=...)); the model card
        # names it as base_model.
        self.base_model: str | None = None
        self._config = config
        check_encoder_sharing(config, pretrained_files)
        self.modalities: tuple[str, ...] = tuple(config["modalities"])
        encoders = build_encoders(config, pretrained, pretrained_files)
        # Submodules register in this order, which is the state dict's key order: do not reorder.
        if len(self.modalities) == 1:
            self._init_single(config, encoders)
        else:
            self._init_fused(config, encoders)
        # Not in the state dict: config.json is the one place a saved model's head weights live.
        self.register_buffer("head_weights", head_weight_tensor(config["head_weights"]), persistent=False)
        self._temperatures: dict[str, dict[str, float]] | None = None
        self.set_temperatures(config.get("temperatures"))

    def _init_fused(self, config: dict, encoders: Mapping[str, Encoder]) -> None:
        """Both branches: encoders, fusion blocks between them, the metadata encoder, combiner and three heads."""
        self.primary_encoder: Encoder = encoders["primary"]
        if "auxiliary" in encoders:  # shared: auxiliary_encoder is primary_encoder, held (and saved) once
            self._modules["auxiliary_encoder"] = encoders["auxiliary"]
        stages = resolve_fusion_stages(config["fusion_stages"], self.primary_encoder.reductions)
        self._config["fusion_stages"] = stages
        reductions = (self.primary_encoder.reductions, self.auxiliary_encoder.reductions)
        self.fusion_pairs = fusion_pairs(stages, *reductions)
        self.fusion_blocks = nn.ModuleDict(
            build_fusion_blocks(config, self.fusion_pairs, self.primary_encoder, self.auxiliary_encoder)
        )
        self.stream_channels = final_stream_channels(list(self.fusion_blocks.values()))
        self.metadata_encoding, self.metadata_encoder = build_metadata_encoder(config)
        final_maps = (self.primary_encoder.channels[-1], self.auxiliary_encoder.channels[-1])
        fused = self.stream_channels or final_maps  # what the combiner reads: the stream, else the final maps
        self.combiner: Combiner = build_combiner(config, fused, self.metadata_encoder)
        self.heads = nn.ModuleDict(
            {
                "primary": build_head(config, final_maps[0], self.tasks),
                "auxiliary": build_head(config, final_maps[1], self.tasks),
                "fusion": build_head(config, self.combiner.out_features, self.tasks),
            }
        )

    def _init_single(self, config: dict, encoders: Mapping[str, Encoder]) -> None:
        """One branch (Tables 7, 8, 10's single-modality rows): its encoder and its head, nothing to fuse."""
        if config["metadata"] is not None:
            raise UsageError("a single-modality model takes no metadata input (it has no fusion head)")
        (branch,) = self.modalities
        if branch == "primary":
            self.primary_encoder = encoders["primary"]
        else:
            self.primary_encoder = None
            self._modules["auxiliary_encoder"] = encoders["auxiliary"]
        self._config["fusion_stages"] = []
        self.fusion_pairs = {}
        self.fusion_blocks = nn.ModuleDict()
        self.stream_channels = None
        self.metadata_encoding = None
        self.metadata_encoder = None
        self.combiner = None
        self.heads = nn.ModuleDict({branch: build_head(config, encoders[branch].channels[-1], self.tasks)})
        config["head_weights"] = {h: float(h == branch) for h in HEADS}  # the one head answers alone

    @property
    def auxiliary_encoder(self) -> Encoder:
        """The auxiliary branch's encoder: the primary one itself when ``share_encoder`` is set."""
        return self._modules.get("auxiliary_encoder") or self.primary_encoder

    @property
    def single_modality(self) -> str | None:
        """The one branch of a single-modality model (``"primary"`` or ``"auxiliary"``), else ``None``."""
        return self.modalities[0] if len(self.modalities) == 1 else None

    @property
    def uses_metadata(self) -> bool:
        """Whether the model takes a ``metadata`` input (its config holds a metadata encoding)."""
        return self.metadata_encoding is not None

    def encode_metadata(self, rows: Sequence[Mapping]) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw per-case metadata (mappings of field → value) as ``(metadata, metadata_present)`` inputs."""
        if self.metadata_encoding is None:
            raise UsageError("this model has no metadata input")
        values, present, _ = self.metadata_encoding.encode(rows)
        return values, present

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
        return head_weights_from_tensor(self.head_weights)

    def set_head_weights(self, weights: Mapping[str, float] | Sequence[float]) -> None:
        """Store Eq. 4's weights (e.g. from the validation weight search); they must lie on the simplex."""
        values = check_head_weights(weights)
        self.head_weights.copy_(torch.tensor(values, dtype=self.head_weights.dtype))

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
        self._temperatures = check_temperatures(temperatures, {t.name for t in self.tasks})

    @property
    def head_combine(self) -> str:
        """``"probabilities"`` or ``"logits"``: how :meth:`predict` mixes the heads (set by the weight search)."""
        return self._config["head_combine"]

    def set_head_combine(self, mode: str) -> None:
        self._config["head_combine"] = check_head_combine(mode)

    @property
    def preprocessing(self) -> dict:
        return {k: self._config[k] for k in ("img_size", "mean", "std")}

    @property
    def data_config(self) -> dict:
        """The complete image preprocessing (see :func:`mmfuse.resolve_data_config`)."""
        return resolve_data_config(self._config)

    def reset_heads(self, tasks) -> FusionNetwork:
        """New, freshly initialised heads for ``tasks``; encoders and fusion blocks keep their weights.

        The way to start from a trained AMMFM on another dataset (fine-tuning): ``tasks`` is a task preset
        name or a list of :class:`~mmfuse.TaskSpec` / ``{"name", "classes"}``. The head weights of Eq. 4
        go back to equal thirds (the old ones were searched for the old heads). Returns the model.
        """
        specs = resolve_tasks(tasks)
        reference = next(self.heads.parameters())
        self.tasks = specs
        self.heads = nn.ModuleDict(
            {name: build_head(self._config, head.in_features, specs) for name, head in self.heads.items()}
        ).to(device=reference.device, dtype=reference.dtype)
        self._config["tasks"] = tasks_to_data(specs)
        self.set_head_weights([1 / 3, 1 / 3, 1 / 3])
        return self

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
        p, a, _ = self.forward_fused(primary, auxiliary, auxiliary_present)
        return p, a

    def forward_fused(
        self,
        primary: torch.Tensor,
        auxiliary: torch.Tensor,
        auxiliary_present: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, Stream | None]:
        """:meth:`forward_features` plus the fusion stream of stream blocks (``None`` without)."""
        keep = (
            None
            if auxiliary_present is None
            else auxiliary_present.to(primary.device).bool().view(-1, 1, 1, 1)
        )
        p, a = primary, auxiliary
        stream: Stream | None = None
        next_aux = 0
        for s in range(self.primary_encoder.num_stages):
            p = self.primary_encoder.forward_stage(s, p)
            if s in self.fusion_pairs:
                target = self.fusion_pairs[s]
                while next_aux <= target:
                    a = self.auxiliary_encoder.forward_stage(next_aux, a)
                    next_aux += 1
                block = self.fusion_blocks[str(s)]
                if isinstance(block, StreamFusionBlock):
                    refined, a, stream = block(p, a, stream)
                else:
                    refined, a = block(p, a)
                p = refined if keep is None else torch.where(keep, refined, p)
        while next_aux < self.auxiliary_encoder.num_stages:
            a = self.auxiliary_encoder.forward_stage(next_aux, a)
            next_aux += 1
        return p, a, stream

    def forward(
        self,
        primary: torch.Tensor | None = None,
        auxiliary: torch.Tensor | None = None,
        auxiliary_present: torch.Tensor | None = None,
        metadata: torch.Tensor | None = None,
        metadata_present: torch.Tensor | None = None,
    ) -> FusionOutput:
        """All three heads' logits; with one modality missing, only that modality's head.

        ``auxiliary_present`` (bool, ``[batch]``) marks rows of a mixed batch whose auxiliary image
        is missing: fusion blocks leave their primary maps untouched, and their auxiliary and fusion
        logits are meaningless (the trainer masks them out of the loss). ``metadata`` (``[batch,
        size]``, see :meth:`encode_metadata`) is the optional third input of a model built with a
        metadata encoding; when the combiner needs it, ``metadata=None`` drops the fusion head the way
        a missing auxiliary image does, and ``metadata_present=False`` rows mark it absent per row
        (``output.head_present``).
        """
        if primary is None and auxiliary is None:
            raise UsageError("at least one of primary and auxiliary is required")
        if self.single_modality is not None:
            return self._forward_single(primary, auxiliary, metadata)
        if metadata is not None and self.metadata_encoding is None:
            raise UsageError(
                "this model has no metadata input (it was built without a metadata encoding); "
                "call it without metadata="
            )
        if metadata is not None and metadata.shape[-1] != self.metadata_encoding.size:
            raise UsageError(
                f"metadata has {metadata.shape[-1]} values per case; this model's encoding makes "
                f"{self.metadata_encoding.size} ({', '.join(self.metadata_encoding.columns)})"
            )
        if auxiliary is None:
            pooled = _pool(self.primary_encoder(primary)[-1])
            return FusionOutput({"primary": self.heads["primary"](pooled)}, {"primary": pooled})
        if primary is None:
            pooled = _pool(self.auxiliary_encoder(auxiliary)[-1])
            return FusionOutput({"auxiliary": self.heads["auxiliary"](pooled)}, {"auxiliary": pooled})
        p, a, stream = self.forward_fused(primary, auxiliary, auxiliary_present)
        p, a = _pool(p), _pool(a)
        logits = {"primary": self.heads["primary"](p), "auxiliary": self.heads["auxiliary"](a)}
        features = {"primary": p, "auxiliary": a}
        head_present: dict[str, torch.Tensor] = {}
        needs_metadata = self.combiner.uses_metadata
        if metadata is not None or not needs_metadata:
            fp, fa = (p, a) if stream is None else (_pool(stream[0]), _pool(stream[1]))
            encoded = None
            if needs_metadata:
                encoded = self.metadata_encoder(metadata.to(fp.dtype))
                features["metadata"] = encoded
                if metadata_present is not None:
                    head_present["fusion"] = metadata_present.to(fp.device).bool()
            logits["fusion"] = self.heads["fusion"](self.combiner(fp, fa, encoded))
        return FusionOutput(logits, features, head_present)

    def _forward_single(
        self, primary: torch.Tensor | None, auxiliary: torch.Tensor | None, metadata: torch.Tensor | None
    ) -> FusionOutput:
        # The other modality's input, if given (datasets always carry both), is ignored.
        branch = self.single_modality
        image = primary if branch == "primary" else auxiliary
        if image is None:
            raise UsageError(f"this single-modality model sees only the {branch} image; pass {branch}=")
        if metadata is not None:
            raise UsageError("this model has no metadata input; call it without metadata=")
        encoder = self.primary_encoder if branch == "primary" else self.auxiliary_encoder
        pooled = _pool(encoder(image)[-1])
        return FusionOutput({branch: self.heads[branch](pooled)}, {branch: pooled})

    def mix_head_probabilities(
        self,
        probabilities: Mapping[str, Mapping[str, torch.Tensor]],
        auxiliary_present: torch.Tensor | None = None,
        head_present: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Eq. 4 over per-head probabilities with this model's ``head_weights`` (see ``mix_heads``)."""
        return mix_heads(probabilities, self.head_weights_dict, auxiliary_present, head_present)

    @torch.no_grad()
    def predict(
        self,
        primary=None,
        auxiliary=None,
        auxiliary_present: torch.Tensor | None = None,
        metadata: torch.Tensor | None = None,
        metadata_present: torch.Tensor | None = None,
        *,
        calibrated: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Per-task class probabilities ``{task: [batch, num_classes]}`` (Eq. 4).

        Each input is a normalised tensor (``[B, 3, S, S]`` or one ``[3, S, S]``), or images — a file
        path, a PIL image, a uint8 ``[H, W, 3]`` RGB array, or a list of them — which are prepared with
        the model's own preprocessing (:attr:`data_config`). Without ``auxiliary`` the primary head
        answers alone (fusion blocks skipped); without ``primary`` the auxiliary head does.
        ``auxiliary_present`` marks rows of a mixed batch whose auxiliary image is missing (a ``None``
        in a list of auxiliary images does the same): those rows get exactly the primary-only answer. A
        model whose fusion head needs metadata answers without it from the other heads (``metadata=None``
        for the batch, ``metadata_present=False`` for single rows), as it does without an auxiliary image.
        ``calibrated=False`` ignores the stored temperatures (the raw softmax of each head).
        """
        device = next(self.parameters()).device
        primary, missing = images_to_batch(primary, self.data_config, name="primary", device=device)
        if missing is not None:
            raise UsageError("every case needs its primary image; None is allowed for auxiliary images only")
        auxiliary, present = images_to_batch(auxiliary, self.data_config, name="auxiliary", device=device)
        if present is not None:
            if auxiliary_present is not None:
                raise UsageError("give auxiliary_present or None entries in the auxiliary list, not both")
            auxiliary_present = present
        was_training = self.training
        self.eval()
        try:
            output = self(
                primary=primary,
                auxiliary=auxiliary,
                auxiliary_present=auxiliary_present,
                metadata=metadata,
                metadata_present=metadata_present,
            )
        finally:
            self.train(was_training)
        combined = self.mix_output(output, auxiliary_present, calibrated=calibrated)
        tracing = (
            torch.jit.is_tracing() or torch.compiler.is_compiling()
        )  # export graphs stay data-independent
        bad = [] if tracing else [task for task, p in combined.items() if not bool(torch.isfinite(p).all())]
        if bad:
            raise NonFiniteOutputError(
                f"the model produced NaN or infinite probabilities for task(s) {bad}; "
                "its weights or inputs are broken (a diverged training run, a damaged checkpoint or image)"
            )
        return combined

    def mix_output(
        self,
        output: FusionOutput,
        auxiliary_present: torch.Tensor | None = None,
        *,
        calibrated: bool = True,
    ) -> dict[str, torch.Tensor]:
        """The per-task probabilities :meth:`predict` returns for a forward pass's ``output`` (differentiable)."""
        return mix_logits(
            output.logits,
            self.head_weights_dict,
            combine=self.head_combine,
            temperatures=self._temperatures if calibrated else None,
            auxiliary_present=auxiliary_present,
            head_present=output.head_present,
        )
