"""A synthetic MILK10k release in the real layout: the five tables and ``<lesion_id>/<isic_id>.jpg`` images.

With ``tables`` (a folder holding the real release's CSV files), the rows are the real ones of a
class-stratified subset of lesions (every class present); without, rows are invented from the real
tables' marginals (:data:`MARGINALS`). Either way the images are drawn by
:mod:`mmfuse.data.synth.render`: each diagnosis borrows the dermoscopic criteria of a Derm7pt diagnosis
and the clinical cue of its group, so the images carry the label as a learnable signal. Everything
depends only on the arguments: the same call writes the same bytes.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmfuse.data.errors import DataError
from mmfuse.data.formats.milk10k import (
    CLASSES,
    CLINICAL,
    DERMOSCOPIC,
    GROUND_TRUTH_FILE,
    INPUT_DIRS,
    METADATA_FILES,
    MONET_COLUMNS,
    SAMPLE_SUBMIT_FILE,
    SUPPLEMENT_FILE,
)
from mmfuse.data.records import read_table
from mmfuse.data.synth.derm7pt import sample_labels
from mmfuse.data.synth.derm7pt_stats import DERM7PT_STATISTICS
from mmfuse.data.synth.marker import SYNTHETIC_MARKER
from mmfuse.data.synth.render import render_clinical, render_dermoscopy, save_jpeg, skin_tone

METADATA_HEADER = (
    "lesion_id",
    "image_type",
    "isic_id",
    "attribution",
    "copyright_license",
    "image_manipulation",
    "age_approx",
    "sex",
    "skin_tone_class",
    "site",
    *MONET_COLUMNS,
)
SUPPLEMENT_HEADER = ("isic_id", "diagnosis_full", "diagnosis_confirm_type", "invasion_thickness_interval")

# Counts in the real training tables (per lesion; MONET: mean and std per image type).
MARGINALS: Mapping[str, Mapping] = {
    "DX": {
        "AKIEC": 303,
        "BCC": 2522,
        "BEN_OTH": 44,
        "BKL": 544,
        "DF": 52,
        "INF": 50,
        "MAL_OTH": 9,
        "MEL": 450,
        "NV": 746,
        "SCCKA": 473,
        "VASC": 47,
    },
    "age_approx": {
        "5": 24,
        "10": 26,
        "15": 27,
        "20": 38,
        "25": 53,
        "30": 107,
        "35": 132,
        "40": 227,
        "45": 276,
        "50": 429,
        "55": 483,
        "60": 595,
        "65": 734,
        "70": 753,
        "75": 607,
        "80": 370,
        "85": 339,
        "": 20,
    },
    "sex": {"male": 3152, "female": 2088},
    "skin_tone_class": {"0": 6, "1": 105, "2": 506, "3": 3174, "4": 1066, "5": 383},
    "site": {
        "trunk": 1925,
        "head_neck_face": 1491,
        "lower_extremity": 1023,
        "upper_extremity": 667,
        "hand": 72,
        "foot": 23,
        "genital": 8,
        "": 31,
    },
    "image_manipulation": {"instrument only": 10145, "altered": 335},
    "diagnosis_confirm_type": {"histopathology": 10032, "single contributor clinical assessment": 448},
}
MONET_MEAN_STD: Mapping[str, tuple[float, float]] = {
    "MONET_ulceration_crust": (0.36, 0.23),
    "MONET_hair": (0.28, 0.16),
    "MONET_vasculature_vessels": (0.12, 0.17),
    "MONET_erythema": (0.36, 0.23),
    "MONET_pigmented": (0.31, 0.26),
    "MONET_gel_water_drop_fluid_dermoscopy_liquid": (0.24, 0.15),
    "MONET_skin_markings_pen_ink_purple_pen": (0.24, 0.21),
}

# Each diagnosis draws like a Derm7pt diagnosis (its criteria) with that diagnosis group's clinical cue.
LOOKS_LIKE: Mapping[str, tuple[str, str]] = {
    "AKIEC": ("miscellaneous", "MISC"),
    "BCC": ("basal cell carcinoma", "BCC"),
    "BEN_OTH": ("lentigo", "NEV"),
    "BKL": ("seborrheic keratosis", "SK"),
    "DF": ("dermatofibroma", "MISC"),
    "INF": ("melanosis", "BCC"),
    "MAL_OTH": ("melanoma metastasis", "MEL"),
    "MEL": ("melanoma (in situ)", "MEL"),
    "NV": ("clark nevus", "NEV"),
    "SCCKA": ("vascular lesion", "SK"),
    "VASC": ("vascular lesion", "MISC"),
}
BENCHMARK_SHARE = 479 / 5240  # the benchmark part is this fraction of the training part's size


@dataclass(frozen=True)
class Milk10kSynthSummary:
    root: Path
    lesions: int
    benchmark_lesions: int
    size: int
    seed: int
    source: str  # "tables" or "marginals"
    class_counts: dict[str, int]


def stratified_subset(labels: Sequence[str], n: int, rng: np.random.Generator) -> list[int]:
    """Positions of ``n`` items, every label present, shares as close to the full table's as that allows."""
    classes = sorted(set(labels))
    if n < len(classes):
        raise DataError(
            f"a subset with every one of the {len(classes)} classes needs at least that many lesions, got {n}"
        )
    if n > len(labels):
        raise DataError(f"the tables hold {len(labels)} lesions; cannot take {n}")
    members = {c: [i for i, label in enumerate(labels) if label == c] for c in classes}
    quota = {c: 1 for c in classes}
    for _ in range(
        n - len(classes)
    ):  # largest remainder: give the next lesion to the most under-served class
        c = max(
            classes,
            key=lambda c: (
                (len(members[c]) * n / len(labels) - quota[c], -classes.index(c))
                if quota[c] < len(members[c])
                else (-np.inf, 0)
            ),
        )
        quota[c] += 1
    chosen = [int(i) for c in classes for i in rng.choice(members[c], size=quota[c], replace=False)]
    return sorted(chosen)


def _draw(rng: np.random.Generator, counts: Mapping[str, int]) -> str:
    values = list(counts)
    weights = np.array([counts[v] for v in values], float)
    return str(values[rng.choice(len(values), p=weights / weights.sum())])


def _invented_lesions(rng: np.random.Generator, n: int, start: int, labelled: bool) -> list[dict]:
    """``n`` lesions with the real marginals; every class present when ``labelled`` and ``n`` allows."""
    lesions = []
    if labelled:
        counts = MARGINALS["DX"]
        labels = [CLASSES[i % len(CLASSES)] for i in range(min(n, len(CLASSES)))]
        labels += [_draw(rng, counts) for _ in range(n - len(labels))]
        labels = [labels[i] for i in rng.permutation(n)]
    for k in range(n):
        number = start + k
        rows = {}
        shared = {f: _draw(rng, MARGINALS[f]) for f in ("age_approx", "sex", "skin_tone_class", "site")}
        for j, image_type in enumerate((CLINICAL, DERMOSCOPIC)):
            row = {
                "lesion_id": f"IL_{number:07d}",
                "image_type": image_type,
                "isic_id": f"ISIC_{2 * number + j:07d}",
                "attribution": "MILK study team",
                "copyright_license": "CC-BY-NC",
                "image_manipulation": _draw(rng, MARGINALS["image_manipulation"]),
                **shared,
            }
            for column, (mean, std) in MONET_MEAN_STD.items():
                row[column] = repr(float(np.clip(rng.normal(mean, std), 0.0, 1.0)))
            rows[image_type] = row
        lesion = {"rows": rows}
        if labelled:
            lesion["label"] = labels[k]
            lesion["supplement"] = {
                rows[t]["isic_id"]: {
                    "isic_id": rows[t]["isic_id"],
                    "diagnosis_full": labels[k],
                    "diagnosis_confirm_type": _draw(rng, MARGINALS["diagnosis_confirm_type"]),
                    "invasion_thickness_interval": "",
                }
                for t in rows
            }
        lesions.append(lesion)
    return lesions


def _real_lesions(tables: Path, n: int, rng: np.random.Generator, part: str) -> list[dict]:
    _, meta = read_table(tables / METADATA_FILES[part])
    by_lesion: dict[str, dict] = {}
    for row in meta:
        by_lesion.setdefault(row["lesion_id"], {})[row["image_type"]] = row
    ids = [lesion for lesion, rows in by_lesion.items() if len(rows) == 2]
    if part == "benchmark":
        chosen = sorted(rng.choice(len(ids), size=min(n, len(ids)), replace=False))
        return [{"rows": by_lesion[ids[i]]} for i in chosen]
    columns, truth = read_table(tables / GROUND_TRUTH_FILE)
    label_of = {r["lesion_id"]: next(c for c in columns[1:] if float(r[c]) == 1.0) for r in truth}
    ids = [lesion for lesion in ids if lesion in label_of]
    supplement: dict[str, dict] = {}
    if (tables / SUPPLEMENT_FILE).is_file():
        supplement = {r["isic_id"]: r for r in read_table(tables / SUPPLEMENT_FILE)[1]}
    chosen = stratified_subset([label_of[lesion] for lesion in ids], n, rng)
    return [
        {
            "rows": by_lesion[ids[i]],
            "label": label_of[ids[i]],
            "supplement": {
                r["isic_id"]: supplement[r["isic_id"]]
                for r in by_lesion[ids[i]].values()
                if r["isic_id"] in supplement
            },
        }
        for i in chosen
    ]


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Mapping]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _draw_images(
    root: Path, part: str, lesions: Sequence[dict], size: int, seed: int, workers: int | None
) -> None:
    def draw(position: int) -> None:
        lesion = lesions[position]
        rng = np.random.default_rng([seed, PARTS_SALT[part], position])
        label = lesion.get("label") or CLASSES[int(rng.integers(len(CLASSES)))]
        raw_diagnosis, cue = LOOKS_LIKE.get(label, ("miscellaneous", "MISC"))
        raw = sample_labels(rng, 1, {raw_diagnosis: DERM7PT_STATISTICS[raw_diagnosis]})[0]
        skin = skin_tone(rng)
        derm, shape = render_dermoscopy(rng, size, raw, skin)
        clinical = render_clinical(rng, size, derm, shape, cue, skin)
        folder = root / INPUT_DIRS[part] / lesion["rows"][DERMOSCOPIC]["lesion_id"]
        save_jpeg(derm, folder / f"{lesion['rows'][DERMOSCOPIC]['isic_id']}.jpg", quality=92)
        save_jpeg(clinical, folder / f"{lesion['rows'][CLINICAL]['isic_id']}.jpg", quality=88)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(draw, range(len(lesions))))


PARTS_SALT = {"training": 0, "benchmark": 1}


def synthesize_milk10k(
    out: str | os.PathLike,
    *,
    cases: int = 200,
    size: int = 256,
    seed: int = 0,
    tables: str | os.PathLike | None = None,
    workers: int | None = None,
) -> Milk10kSynthSummary:
    """Write a synthetic release to ``out`` (which must not exist or be empty); ``cases`` training lesions."""
    if cases < len(CLASSES):
        raise DataError(
            f"a MILK10k release needs at least {len(CLASSES)} lesions (one per class), got {cases}"
        )
    if size < 32:
        raise DataError(f"images need at least 32 pixels a side, got {size}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not empty; choose a new folder")
    rng = np.random.default_rng(seed)
    n_benchmark = max(1, round(cases * BENCHMARK_SHARE))
    if tables is not None:
        tables = Path(tables)
        training = _real_lesions(tables, cases, rng, "training")
        benchmark = _real_lesions(tables, n_benchmark, rng, "benchmark")
    else:
        training = _invented_lesions(rng, cases, 1, labelled=True)
        benchmark = _invented_lesions(rng, n_benchmark, cases + 1, labelled=False)
    classes = CLASSES

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        truth = [
            {
                "lesion_id": lesion["rows"][DERMOSCOPIC]["lesion_id"],
                **{c: "1.0" if c == lesion["label"] else "0.0" for c in classes},
            }
            for lesion in training
        ]
        _write_csv(tmp / GROUND_TRUTH_FILE, ("lesion_id", *classes), truth)
        for part, lesions in (("training", training), ("benchmark", benchmark)):
            rows = [lesion["rows"][t] for lesion in lesions for t in (CLINICAL, DERMOSCOPIC)]
            _write_csv(tmp / METADATA_FILES[part], METADATA_HEADER, rows)
            _draw_images(tmp, part, lesions, size, seed, workers)
        supplement = [row for lesion in training for row in lesion["supplement"].values()]
        _write_csv(tmp / SUPPLEMENT_FILE, SUPPLEMENT_HEADER, supplement)
        sample = [
            {"lesion_id": lesion["rows"][DERMOSCOPIC]["lesion_id"], **dict.fromkeys(classes, "0.0")}
            for lesion in benchmark
        ]
        _write_csv(tmp / SAMPLE_SUBMIT_FILE, ("lesion_id", *classes), sample)
        source = "tables" if tables is not None else "marginals"
        provenance = {
            "generator": "mmfuse.data.synth.milk10k",
            "cases": cases,
            "size": size,
            "seed": seed,
            "rows": source,
        }
        (tmp / SYNTHETIC_MARKER).write_text(json.dumps(provenance, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    counts = {c: sum(lesion["label"] == c for lesion in training) for c in classes}
    return Milk10kSynthSummary(out, len(training), len(benchmark), size, seed, source, counts)
