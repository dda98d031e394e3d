"""Encoders from timm: the paper's backbones by name, and any stage-splittable timm model.

timm's ``features_only`` wrappers run a whole backbone at once; mmfuse needs to run it stage by stage
so that a fusion block's refined map feeds the next stage. :class:`TimmEncoder` therefore cuts the
module sequence that timm's ``FeatureDictNet`` recovers into one segment per feature level, and
converts channels-last families (Swin, MambaOut) to NCHW at every stage boundary.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import timm
import torch
from timm.models import FeatureDictNet
from torch import nn

import mmfuse
from mmfuse.errors import UsageError

# The backbones of the paper's Tables 6, 7, 9 and 10.
PAPER_BACKBONES = (
    "mobilenetv3_large_100",
    "swin_tiny_patch4_window7_224",
    "resnet50",
    "convnext_tiny",
)


def _split_into_stages(model: nn.Module, out_indices: tuple[int, ...]) -> FeatureDictNet:
    # ResNet keeps its stages as top-level Sequentials; MobileNetV3 and Swin nest them one level down.
    errors = []
    for flatten in (True, False):
        try:
            return FeatureDictNet(model, out_indices=out_indices, flatten_sequential=flatten)
        except (AssertionError, ValueError, TypeError) as exc:
            errors.append(str(exc))
    raise UsageError(
        f"timm model {type(model).__name__} cannot be split into stages ({'; '.join(errors)}); "
        "mmfuse needs a backbone whose feature levels are top-level modules or one Sequential deep"
    )


class TimmEncoder(mmfuse.Encoder):
    """A timm backbone run stage by stage, returning NCHW features."""

    def __init__(
        self,
        model_name: str,
        *,
        pretrained: bool = False,
        pretrained_file: str | Path | None = None,
        out_indices: tuple[int, ...] | None = None,
        img_size: int | None = None,
        **timm_kwargs,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        if pretrained_file is not None:
            path = Path(pretrained_file)
            if not path.is_file():
                raise FileNotFoundError(f"pretrained_file for {model_name!r} not found: {path}")
            timm_kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
            pretrained = True
        try:
            base = self._create(model_name, pretrained, img_size, timm_kwargs)
        except Exception as exc:
            if (
                not pretrained
                or pretrained_file is not None
                or isinstance(exc, (TypeError, mmfuse.MmfuseError))
            ):
                raise
            # The download of ImageNet weights failed (offline, Hub unreachable): say how to work offline.
            from mmfuse.hub import ModelNotFoundError

            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelNotFoundError(
                f"the ImageNet weights of {model_name!r} could not be fetched for pretrained=True "
                f"({type(exc).__name__}: {reason}). Without network, give local timm weights of the same "
                "architecture: `pretrained_files: {primary: PATH, auxiliary: PATH}` under `model:` in the run "
                "config, or build_model(..., pretrained_files={...}) (docs/hub.md, 'ImageNet-pretrained "
                "backbones without network')"
            ) from None
        self.pretrained_cfg = dict(base.pretrained_cfg)
        fmt = getattr(base, "output_fmt", "NCHW")  # a str or timm's Format enum
        self.channels_last_native = str(getattr(fmt, "value", fmt)) == "NHWC"
        if out_indices is None:
            out_indices = tuple(range(len(base.feature_info)))
        features = _split_into_stages(base, tuple(out_indices))
        self.channels = list(features.feature_info.channels())
        self.reductions = list(features.feature_info.reduction())
        segments, current = [], []
        for name, module in features.items():
            current.append((name, module))
            if name in features.return_layers:
                segments.append(nn.Sequential(OrderedDict(current)))
                current = []
        self.stages = nn.ModuleList(segments)

    @staticmethod
    def _create(model_name: str, pretrained: bool, img_size: int | None, timm_kwargs: dict) -> nn.Module:
        if img_size is not None:
            # Window-based transformers bake the input size into their layers; CNNs take no such argument.
            try:
                return timm.create_model(model_name, pretrained=pretrained, img_size=img_size, **timm_kwargs)
            except TypeError:
                pass
        return timm.create_model(model_name, pretrained=pretrained, **timm_kwargs)

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last_native and index > 0:
            x = x.permute(0, 2, 3, 1)
        x = self.stages[index](x)
        if self.channels_last_native:
            x = x.permute(0, 3, 1, 2)
        return x


def _factory(model_name: str):
    def create(pretrained: bool = False, **options) -> TimmEncoder:
        return TimmEncoder(model_name, pretrained=pretrained, **options)

    create.__doc__ = f"timm ``{model_name}`` as a stage-wise NCHW encoder."
    return create


@mmfuse.hookimpl
def register_encoders(register) -> None:
    for name in PAPER_BACKBONES:
        register(name, _factory(name))


@mmfuse.hookimpl
def resolve_encoder(name: str):
    model_name = name.removeprefix("timm:")
    if timm.is_model(model_name):
        return _factory(model_name)
    return None
