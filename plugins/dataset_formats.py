"""Built-in dataset formats: ``derm7pt`` and ``milk10k`` (release layouts) and ``paired_csv`` (a CSV + YAML schema).

Registered through ``register_dataset_formats``, the hook a third-party format uses. The loaders are
imported when a format is used, not when plugins load.
"""

from __future__ import annotations

import mmfuse
from mmfuse.data import DataOptions, DatasetFormat, FormatOption


class Derm7ptFormat(DatasetFormat):
    """The Derm7pt release: ``meta/meta.csv``, ``meta/{train,valid,test}_indexes.csv``, ``images/``."""

    description = "the Derm7pt release layout (meta/meta.csv, split index files, images/)"
    hub_dataset = "derm7pt"

    def load(self, options: DataOptions):
        from mmfuse.data.formats.derm7pt import load_release

        return load_release(
            options.root, split_seed=options.split_seed, allow_outside_root=options.allow_outside_root
        )

    def check(self, options: DataOptions, *, workers: int | None = None):
        from mmfuse.data.formats.derm7pt import check_release

        return check_release(options.root, workers=workers, allow_outside_root=options.allow_outside_root)


class Milk10kFormat(DatasetFormat):
    """The MILK10k release (ISIC 2025): ground truth, two metadata rows per lesion, ``<lesion_id>/<isic_id>.jpg``."""

    submission_id_column = "lesion_id"  # MILK10k_Sample_Submit.csv
    benchmark_options = {"part": "benchmark"}  # MILK10k_Test_Metadata.csv, MILK10k_Test_Input/
    description = "the MILK10k release layout (MILK10k_Training_*.csv, MILK10k_Training_Input/<lesion>/)"
    options = {
        "part": FormatOption(
            "which part of the release: training (labelled, default) or benchmark (the unlabelled test part)",
            metavar="PART",
        )
    }

    def load(self, options: DataOptions):
        from mmfuse.data.formats.milk10k import load_release

        return load_release(
            options.root,
            part=options.get("part", "training"),
            split_seed=options.split_seed,
            allow_outside_root=options.allow_outside_root,
        )

    def check(self, options: DataOptions, *, workers: int | None = None):
        from mmfuse.data.formats.milk10k import check_release

        return check_release(
            options.root,
            part=options.get("part", "training"),
            workers=workers,
            allow_outside_root=options.allow_outside_root,
        )


class PairedCsvFormat(DatasetFormat):
    """Any paired-modality dataset described by a CSV table and a YAML schema (docs/data.md)."""

    description = "a CSV table of image pairs and labels, described by a YAML schema"
    options = {
        "schema": FormatOption("the path of its YAML schema", required=True, path=True, metavar="SCHEMA.yaml")
    }

    def load(self, options: DataOptions):
        from mmfuse.data.formats.paired_csv import load_paired_csv

        return load_paired_csv(
            options.root,
            options["schema"],
            split_seed=options.split_seed,
            allow_outside_root=options.allow_outside_root,
        )

    def check(self, options: DataOptions, *, workers: int | None = None):
        from mmfuse.data import check_paired_csv

        return check_paired_csv(
            options.root, options["schema"], workers=workers, allow_outside_root=options.allow_outside_root
        )


@mmfuse.hookimpl
def register_dataset_formats(register) -> None:
    register("derm7pt", Derm7ptFormat)
    register("milk10k", Milk10kFormat)
    register("paired_csv", PairedCsvFormat)
