"""``build_model``: a preset name or a config in, a :class:`mmfuse.FusionModel` out."""

from __future__ import annotations

from collections.abc import Mapping

from mmfuse.hub import FusionModel
from mmfuse.presets import resolve_config


def build_model(
    spec: str | Mapping | None = None,
    *,
    pretrained: bool = False,
    pretrained_files: Mapping[str, str] | None = None,
    **overrides,
) -> FusionModel:
    """Build a :class:`mmfuse.FusionModel` from a preset name or a config, with overrides.

    Overrides are config fields: ``primary``, ``auxiliary``, ``fusion``, ``fusion_options``,
    ``fusion_stages`` (primary stage indices or ``"all"``), ``tasks`` (a preset name or task specs),
    ``img_size``, ``head_dropout``, ``head``, ``combiner``, ``metadata``... ``pretrained=True`` loads
    timm's ImageNet weights through the Hub; ``pretrained_files={"primary": path}`` loads a local timm
    checkpoint instead, for offline machines.
    """
    return FusionModel(
        resolve_config(spec, **overrides), pretrained=pretrained, pretrained_files=pretrained_files
    )
