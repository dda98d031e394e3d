"""The parts of a :class:`~mmfuse.model.FusionNetwork`, each created from its config through the registry.

Every part comes from a registered provider (a plugin may supply any of them), so each is checked here
against the interface the network relies on, and a provider that returns something else is named.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

from mmfuse.errors import PluginError, UsageError
from mmfuse.interfaces import Combiner, Encoder, FusionBlock, Head, MetadataEncoder, StreamFusionBlock
from mmfuse.metadata import MetadataEncoding
from mmfuse.registry import (
    create_combiner,
    create_fusion,
    create_head,
    create_metadata_encoder,
    encoder_entry,
)
from mmfuse.tasks import TaskSpec


def check_pretrained_files(pretrained_files: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of ``{branch: weights file}``; the keys must be branches."""
    files = dict(pretrained_files or {})
    unknown = set(files) - {"primary", "auxiliary"}
    if unknown:
        raise UsageError(f"pretrained_files keys must be 'primary' or 'auxiliary', got {sorted(unknown)}")
    return files


def check_encoder_sharing(config: Mapping, pretrained_files: Mapping[str, str]) -> None:
    """``share_encoder`` runs both images through one encoder: both names must be that encoder."""
    if not config["share_encoder"]:
        return
    if config["auxiliary"] != config["primary"] or config["auxiliary_options"] != config["primary_options"]:
        raise UsageError(
            "share_encoder: true runs both images through one encoder, so 'auxiliary' and its options "
            f"must equal 'primary' ({config['primary']!r}); got auxiliary {config['auxiliary']!r}"
        )
    if "auxiliary" in pretrained_files:
        raise UsageError(
            "share_encoder: true has one encoder; give its weights as pretrained_files['primary']"
        )
    if len(config["modalities"]) == 1:
        raise UsageError("share_encoder needs both modalities; a single-modality model has one encoder")


def build_encoders(
    config: Mapping, pretrained: bool, pretrained_files: Mapping[str, str]
) -> dict[str, Encoder]:
    """One encoder per branch that has its own: the single modality, ``primary`` alone when shared, or both."""
    modalities = config["modalities"]
    if len(modalities) == 1:
        branches = tuple(modalities)
    else:
        branches = ("primary",) if config["share_encoder"] else ("primary", "auxiliary")
    encoders = {}
    for branch in branches:
        factory = encoder_entry(config[branch]).obj
        options = dict(config[f"{branch}_options"])
        if config.get("img_size") is not None and _accepts_keyword(factory, "img_size"):
            options.setdefault("img_size", config["img_size"])
        if branch in pretrained_files:
            options["pretrained_file"] = pretrained_files[branch]
        encoders[branch] = factory(pretrained=pretrained, **options)
        if not isinstance(encoders[branch], Encoder):
            raise PluginError(f"encoder {config[branch]!r} did not return an mmfuse.Encoder")
    return encoders


def _accepts_keyword(factory, name: str) -> bool:
    """Whether ``factory`` takes ``name`` (explicitly or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def build_fusion_blocks(
    config: Mapping, pairs: Mapping[int, int], primary: Encoder, auxiliary: Encoder
) -> dict[str, FusionBlock]:
    """``{str(primary stage): block}`` for each fused stage; stream blocks get the previous one's channels."""
    blocks: dict[str, FusionBlock] = {}
    stream: tuple[int, int] | None = None
    unknown = set(config["fusion_stage_options"]) - {str(s) for s in pairs}
    if unknown:
        raise UsageError(
            f"fusion_stage_options name stages {sorted(unknown)} that do not fuse; fused stages: "
            f"{sorted(pairs)}"
        )
    for s, a in pairs.items():
        options = {**config["fusion_options"], **config["fusion_stage_options"].get(str(s), {})}
        if blocks and isinstance(next(iter(blocks.values())), StreamFusionBlock):
            options["stream_channels"] = stream
        block = create_fusion(config["fusion"], primary.channels[s], auxiliary.channels[a], **options)
        if not isinstance(block, FusionBlock):
            raise PluginError(f"fusion {config['fusion']!r} did not return an mmfuse.FusionBlock")
        if isinstance(block, StreamFusionBlock):
            stream = tuple(block.out_stream_channels)
        blocks[str(s)] = block
    return blocks


def final_stream_channels(blocks: Sequence[FusionBlock]) -> tuple[int, int] | None:
    """The channels of the fusion stream the last block hands on, or ``None`` when it keeps none."""
    if blocks and isinstance(blocks[-1], StreamFusionBlock):
        return tuple(blocks[-1].out_stream_channels)
    return None


def build_metadata_encoder(config: Mapping) -> tuple[MetadataEncoding | None, MetadataEncoder | None]:
    """The metadata encoding kept in the config and the encoder that feeds it to the combiner, or neither."""
    if config["metadata"] is None:
        return None, None
    encoding = MetadataEncoding.from_dict(config["metadata"])
    encoder = create_metadata_encoder(
        config["metadata_encoder"], encoding.size, **config["metadata_encoder_options"]
    )
    if not isinstance(encoder, MetadataEncoder):
        raise PluginError(
            f"metadata encoder {config['metadata_encoder']!r} did not return an mmfuse.MetadataEncoder"
        )
    return encoding, encoder


def build_combiner(
    config: Mapping, fused_dims: tuple[int, int], metadata_encoder: MetadataEncoder | None
) -> Combiner:
    """The fusion head's input from the final maps (or the fusion stream) and the metadata features."""
    metadata_dim = 0 if metadata_encoder is None else metadata_encoder.out_features
    combiner = create_combiner(config["combiner"], *fused_dims, metadata_dim, **config["combiner_options"])
    if not isinstance(combiner, Combiner):
        raise PluginError(f"combiner {config['combiner']!r} did not return an mmfuse.Combiner")
    return combiner


def build_head(config: Mapping, in_features: int, tasks: Sequence[TaskSpec]) -> Head:
    """One head: a classifier per task on ``in_features`` pooled features."""
    options = dict(config["head_options"])
    if config["head_dropout"]:
        options.setdefault("dropout", config["head_dropout"])
    head = create_head(config["head"], in_features, tasks, **options)
    if not isinstance(head, Head):
        raise PluginError(f"head {config['head']!r} did not return an mmfuse.Head")
    return head
