"""An example mmfuse plugin, shipped as its own package.

It implements the same hooks as mmfuse's built-in plugins, one small example per contract:

- ``register_fusions``: ``gated`` (a plain :class:`mmfuse.FusionBlock`) and ``pooled_stream`` (a
  :class:`mmfuse.StreamFusionBlock` carrying a fusion stream from stage to stage);
- ``register_encoders``: ``tiny_cnn``, a small CNN encoder needing no timm;
- ``register_metadata_encoders``: ``linear_tanh``; ``register_combiners``: ``metadata_gate``;
  ``register_heads``: ``cosine``; ``register_presets``: ``example-stream``, which uses them all.

Install it (``pip install -e examples/plugin_package``) and ``build_model(fusion="gated")`` works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import mmfuse
from mmfuse import TaskSpec
from mmfuse.data import (
    SPLIT_NAMES,
    CaseRecord,
    DataError,
    DataOptions,
    DatasetFormat,
    FormatOption,
    OutsideRootError,
    Problem,
    duplicate_case_ids,
    raise_for_problems,
    resolve_image_path,
)


class GatedFusion(mmfuse.FusionBlock):
    """``primary' = primary * (1 + tanh(g) * sigmoid(conv1x1(aux)))``: the auxiliary map gates the primary one.

    ``g`` starts at zero, so the block is the identity at initialisation.
    """

    def __init__(self, primary_channels: int, auxiliary_channels: int) -> None:
        super().__init__(primary_channels, auxiliary_channels)
        self.gate = nn.Conv2d(auxiliary_channels, primary_channels, 1)
        self.strength = nn.Parameter(torch.zeros(()))

    def forward(self, primary: torch.Tensor, auxiliary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        aligned = F.interpolate(auxiliary, size=primary.shape[-2:], mode="bilinear", align_corners=False)
        return primary * (1 + torch.tanh(self.strength) * torch.sigmoid(self.gate(aligned))), auxiliary


class TinyCNN(mmfuse.Encoder):
    """Four stride-2 conv stages (reductions 2, 4, 8, 16): a stand-in backbone for quick experiments."""

    def __init__(self, width: int = 8, img_size: int | None = None, pretrained: bool = False) -> None:
        super().__init__()
        if pretrained:
            raise ValueError("tiny_cnn has no pretrained weights")
        self.channels = [width, width * 2, width * 4, width * 8]
        self.reductions = [2, 4, 8, 16]
        in_channels = [3, *self.channels[:-1]]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(i, o, 3, stride=2, padding=1), nn.BatchNorm2d(o), nn.ReLU())
            for i, o in zip(in_channels, self.channels, strict=True)
        )

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return self.blocks[index](x)


class PooledStream(mmfuse.StreamFusionBlock):
    """Keeps a fusion stream: each stage adds its 1×1-projected maps to the previous stream, resized.

    The encoders' maps pass through unchanged; the model's fusion head reads the final stream.
    """

    def __init__(self, primary_channels: int, auxiliary_channels: int, *, stream_channels=None) -> None:
        super().__init__(primary_channels, auxiliary_channels, stream_channels=stream_channels)
        self.primary_in = nn.Conv2d(primary_channels, primary_channels, 1)
        self.auxiliary_in = nn.Conv2d(auxiliary_channels, primary_channels, 1)
        self.carry = nn.ModuleList()
        if stream_channels is not None:
            self.carry = nn.ModuleList(nn.Conv2d(c, primary_channels, 1) for c in stream_channels)
        self.out_stream_channels = (primary_channels, primary_channels)

    def forward(self, primary, auxiliary, stream):
        size = primary.shape[-2:]
        aligned = F.interpolate(auxiliary, size=size, mode="bilinear", align_corners=False)
        new = [self.primary_in(primary), self.auxiliary_in(aligned)]
        if stream is not None:
            for i, previous in enumerate(stream):
                new[i] = new[i] + self.carry[i](F.adaptive_avg_pool2d(previous, size))
        return primary, auxiliary, (new[0], new[1])


class LinearTanhMetadata(mmfuse.MetadataEncoder):
    """``tanh(Linear(metadata))``: the smallest useful metadata encoder."""

    def __init__(self, in_features: int, out_features: int = 8) -> None:
        super().__init__(in_features)
        self.out_features = out_features
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.linear(x))


class MetadataGate(mmfuse.Combiner):
    """The metadata decides, per feature, how much of each modality the fusion head sees."""

    uses_metadata = True

    def __init__(self, primary_features: int, auxiliary_features: int, metadata_features: int = 0) -> None:
        super().__init__(primary_features, auxiliary_features, metadata_features)
        if metadata_features < 1:
            raise ValueError("metadata_gate needs a model with metadata")
        self.align = nn.Linear(auxiliary_features, primary_features)
        self.gate = nn.Linear(metadata_features, primary_features)
        self.out_features = primary_features

    def forward(self, primary, auxiliary, metadata=None):
        g = torch.sigmoid(self.gate(metadata))
        return g * primary + (1 - g) * self.align(auxiliary)


class CosineHead(mmfuse.Head):
    """Per task, scaled cosine similarity between the vector and learned class prototypes."""

    def __init__(self, in_features: int, tasks, scale: float = 10.0) -> None:
        super().__init__(in_features, tasks)
        self.scale = scale
        self.prototypes = nn.ParameterDict(
            {t.name: nn.Parameter(torch.randn(t.num_classes, in_features) * 0.01) for t in tasks}
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = F.normalize(x, dim=1)
        return {name: self.scale * x @ F.normalize(w, dim=1).T for name, w in self.prototypes.items()}


@dataclass
class FolderTable:
    """The table :class:`PairedFolders` reads: one task, labelled by the class folders; no metadata."""

    root: Path
    records: list[CaseRecord | None]
    splits: dict[str, list[int]]
    tasks: tuple[TaskSpec, ...]
    metadata_fields: tuple = ()

    def split_records(self, split: str) -> list[CaseRecord]:
        if split not in self.splits:
            raise DataError(f"unknown split {split!r}; splits: {list(self.splits)}")
        return [r for i in self.splits[split] if (r := self.records[i]) is not None]


class PairedFolders(DatasetFormat):
    """``ROOT/SPLIT/CLASS/CASE.primary.EXT`` (+ an optional ``CASE.auxiliary.EXT``), like torchvision's ImageFolder.

    The splits are the folders ``train``, ``valid`` and ``test``; the class folders label one task
    (``task``, default ``label``) whose classes are every class folder name, sorted.
    """

    description = "split/class folders of image pairs: SPLIT/CLASS/CASE.primary.EXT (+ CASE.auxiliary.EXT)"
    options = {"task": FormatOption("the name of the task the class folders label (default: label)")}

    def load(self, options: DataOptions) -> FolderTable:
        root = options.root
        if not root.is_dir():
            raise DataError(f"dataset folder not found: {root}")
        problems: list[Problem] = []
        cases: list[tuple[str, str, str, dict[str, Path]]] = []  # (split, class, case, {role: path})
        for split in SPLIT_NAMES:
            if not (root / split).is_dir():
                problems.append(Problem("missing folder", f"split folder {root / split} not found"))
                continue
            for class_dir in sorted(p for p in (root / split).iterdir() if not p.name.startswith(".")):
                if not class_dir.is_dir():
                    problems.append(Problem("unexpected file", f"{class_dir}: expected a class folder"))
                    continue
                for case, images in self._pairs(root, class_dir, options, problems).items():
                    cases.append((split, class_dir.name, case, images))
        classes = sorted({label for _, label, _, _ in cases})
        if len(classes) < 2:
            problems.append(
                Problem("too few classes", f"{root}: need two or more class folders, got {classes}")
            )
        records: list[CaseRecord | None] = []
        splits: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
        task = str(options.get("task", "label"))
        for split, label, case, images in cases:
            if "primary" not in images:
                where = root / split / label / case
                problems.append(
                    Problem("missing file", f"{where}: an auxiliary image without CASE.primary.EXT")
                )
                continue
            splits[split].append(len(records))
            metadata = {"row": len(records), "split": split}
            records.append(
                CaseRecord(case, images["primary"], images.get("auxiliary"), {task: label}, metadata)
            )
        problems += duplicate_case_ids(records, str(root))
        problems += [
            Problem("empty split", f"split {n!r} has no cases") for n, rows in splits.items() if not rows
        ]
        raise_for_problems(
            problems, f"paired folders {root}", f"run: mmfuse data check paired_folders {root}"
        )
        return FolderTable(root, records, splits, (TaskSpec(task, classes),))

    @staticmethod
    def _pairs(root: Path, class_dir: Path, options: DataOptions, problems: list[Problem]) -> dict:
        pairs: dict[str, dict[str, Path]] = {}
        for file in sorted(p for p in class_dir.iterdir() if not p.name.startswith(".")):
            parts = file.name.rsplit(".", 2)  # CASE.ROLE.EXT; CASE may hold dots itself
            case, role = (parts[0], parts[1]) if len(parts) == 3 else ("", "")
            if not case or role not in ("primary", "auxiliary"):
                problems.append(
                    Problem("unexpected file", f"{file}: expected CASE.primary.EXT or CASE.auxiliary.EXT")
                )
                continue
            try:
                found = resolve_image_path(
                    class_dir, file.name, root=root, allow_outside_root=options.allow_outside_root
                )
            except OutsideRootError as exc:
                problems.append(Problem("outside root", f"{file}: {exc}"))
                continue
            if role in pairs.setdefault(case, {}):
                problems.append(
                    Problem("duplicate image", f"{file}: case {case!r} already has a {role} image")
                )
                continue
            pairs[case][role] = found or file
        return pairs


@mmfuse.hookimpl
def register_dataset_formats(register) -> None:
    register("paired_folders", PairedFolders)


@mmfuse.hookimpl
def register_fusions(register) -> None:
    register("gated", GatedFusion)
    register("pooled_stream", PooledStream)


@mmfuse.hookimpl
def register_metadata_encoders(register) -> None:
    register("linear_tanh", LinearTanhMetadata)


@mmfuse.hookimpl
def register_combiners(register) -> None:
    register("metadata_gate", MetadataGate)


@mmfuse.hookimpl
def register_heads(register) -> None:
    register("cosine", CosineHead)


@mmfuse.hookimpl
def register_presets(register) -> None:
    # Needs a metadata encoding at build time: build_model("example-stream", metadata=encoding).
    register(
        "example-stream",
        {
            "primary": "tiny_cnn",
            "auxiliary": "tiny_cnn",
            "share_encoder": True,
            "fusion": "pooled_stream",
            "fusion_stages": "all",
            "metadata_encoder": "linear_tanh",
            "combiner": "metadata_gate",
            "head": "cosine",
        },
    )


@mmfuse.hookimpl
def register_encoders(register) -> None:
    register("tiny_cnn", TinyCNN)
