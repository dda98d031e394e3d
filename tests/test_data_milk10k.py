"""The MILK10k adapter: the real tables' facts (when available), synthetic releases, every damage reported."""

from __future__ import annotations

import csv
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from mmfuse.cli import main
from mmfuse.data.build import fit_metadata_encoding
from mmfuse.data.formats.milk10k import (
    CLASSES,
    DERMOSCOPIC,
    GROUND_TRUTH_FILE,
    METADATA_FILES,
    SITE_NOT_RECORDED,
    check_release,
    parse_release,
)
from mmfuse.data.synth.milk10k import synthesize_milk10k

REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("MMFUSE_MILK10K_DIR", REPO.parent / "shared" / "milk10k"))
needs_real_tables = pytest.mark.skipif(
    not (REAL / GROUND_TRUTH_FILE).is_file(), reason="real MILK10k tables not available"
)
README_COUNTS = {
    "BCC": 2522, "NV": 746, "BKL": 544, "SCCKA": 473, "MEL": 450, "AKIEC": 303,
    "DF": 52, "INF": 50, "VASC": 47, "BEN_OTH": 44, "MAL_OTH": 9,
}  # fmt: skip


@pytest.fixture(scope="module")
def real():
    return parse_release(REAL)


@needs_real_tables
def test_stats_on_the_real_tables_give_the_readme_counts(capsys):
    assert main(["data", "stats", "milk10k", str(REAL)]) == 0
    out, err = capsys.readouterr()
    counts = {line.split()[1]: int(line.split()[2]) for line in out.splitlines()[1:]}
    assert counts == README_COUNTS
    assert [line.split()[1] for line in out.splitlines()[1:]] == list(CLASSES)  # the file's column order
    assert "without their images" in err


@needs_real_tables
def test_real_tables_pair_each_lesion_by_image_type_and_carry_its_fields(real):
    assert real.problems == [] and len(real.records) == 5240
    _, rows = _read(REAL / METADATA_FILES["training"])
    dermoscopic = {r["lesion_id"]: r["isic_id"] for r in rows if r["image_type"] == DERMOSCOPIC}
    assert all(r.primary_path.stem == dermoscopic[r.case_id] for r in real.records)
    assert all(r.auxiliary_path.stem != dermoscopic[r.case_id] for r in real.records)
    assert all(r.primary_path.parent.name == r.case_id for r in real.records)
    sites = Counter(r.metadata["site"] for r in real.records)
    assert sites[SITE_NOT_RECORDED] == 31 and len(sites) == 8
    assert sum(r.metadata["age_approx_missing"] == "1" for r in real.records) == 20
    confirm = Counter(r.metadata["diagnosis_confirm_type"] for r in real.records)
    assert set(confirm) == {"histopathology", "single contributor clinical assessment"}
    monet = [
        r for r in real.records if r.metadata["dermoscopic_MONET_hair"] != r.metadata["clinical_MONET_hair"]
    ]
    assert len(monet) > 5000  # per-image scores: each modality keeps its own


@needs_real_tables
def test_pairing_does_not_depend_on_the_row_order(tmp_path, real):
    columns, rows = _read(REAL / METADATA_FILES["training"])
    for name in (GROUND_TRUTH_FILE, "MILK10k_Training_Supplement.csv"):
        shutil.copy(REAL / name, tmp_path / name)
    _write(tmp_path / METADATA_FILES["training"], columns, rows[::-1])  # clinical rows now come second
    shuffled = {r.case_id: r for r in parse_release(tmp_path).records}
    assert all(shuffled[r.case_id].primary_path.name == r.primary_path.name for r in real.records)


@needs_real_tables
def test_metadata_input_is_age_with_indicator_sex_tone_site_and_fourteen_monet_scores():
    encoding, report = fit_metadata_encoding({"format": "milk10k", "root": str(REAL), "metadata": True})
    assert encoding.size == 1 + 1 + 2 + 6 + 8 + 14
    assert "diagnosis_full" not in [f.name for f in encoding.fields]
    assert report.missing.get("age_approx", 0) > 0 and not report.unknown


@needs_real_tables
def test_benchmark_part_loads_without_labels(capsys):
    release = parse_release(REAL, part="benchmark")
    assert len(release.records) == 479 and release.splits == {"benchmark": list(range(479))}
    assert main(["data", "stats", "milk10k", str(REAL), "--option", "part=benchmark"]) == 0
    assert "benchmark: 479 cases, unlabelled" in capsys.readouterr().out


@needs_real_tables
def test_synth_from_the_real_tables_takes_real_rows_with_every_class(tmp_path, capsys):
    summary = synthesize_milk10k(tmp_path / "r", cases=40, size=32, seed=3, tables=REAL)
    assert all(n >= 1 for n in summary.class_counts.values()) and sum(summary.class_counts.values()) == 40
    assert summary.class_counts["BCC"] > summary.class_counts["MAL_OTH"]
    _, real_rows = _read(REAL / METADATA_FILES["training"])
    _, rows = _read(summary.root / METADATA_FILES["training"])
    real_by_isic = {r["isic_id"]: r for r in real_rows}
    assert all(real_by_isic[r["isic_id"]] == r for r in rows)
    assert check_release(summary.root) == []
    assert check_release(summary.root, part="benchmark") == []


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return synthesize_milk10k(tmp_path_factory.mktemp("milk") / "release", cases=24, size=32, seed=5).root


def test_synthetic_release_has_the_real_layout_and_is_deterministic(release, tmp_path):
    assert check_release(release) == []
    again = synthesize_milk10k(tmp_path / "again", cases=24, size=32, seed=5).root
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        assert (again / path.relative_to(release)).read_bytes() == path.read_bytes(), path
    labels = Counter(r.labels["DX"] for r in parse_release(release).records)
    assert set(labels) == set(CLASSES)


def test_check_names_every_damage_in_one_run(release, tmp_path, capsys):
    root = tmp_path / "damaged"
    shutil.copytree(release, root)
    columns, truth = _read(root / GROUND_TRUTH_FILE)
    meta_columns, meta = _read(root / METADATA_FILES["training"])
    lesions = [r["lesion_id"] for r in truth]
    truth[1] = {**truth[1], "BCC": "1.0", "NV": "1.0"}  # not one-hot
    truth.append(dict(truth[2]))  # a duplicated lesion id
    orphan = [r for r in meta if r["lesion_id"] == lesions[3]]
    _write(root / GROUND_TRUTH_FILE, columns, [r for r in truth if r["lesion_id"] != lesions[3]])
    one_image = next(r for r in meta if r["lesion_id"] == lesions[4] and r["image_type"] == DERMOSCOPIC)
    meta = [r for r in meta if r is not one_image]
    _write(root / METADATA_FILES["training"], meta_columns, meta)
    missing = next(r for r in meta if r["lesion_id"] == lesions[5])
    (root / "MILK10k_Training_Input" / lesions[5] / f"{missing['isic_id']}.jpg").unlink()
    moved = next(r for r in meta if r["lesion_id"] == lesions[6])
    image = root / "MILK10k_Training_Input" / lesions[6] / f"{moved['isic_id']}.jpg"
    image.rename(root / "MILK10k_Training_Input" / lesions[7] / image.name)
    broken = next(r for r in meta if r["lesion_id"] == lesions[8])
    (root / "MILK10k_Training_Input" / lesions[8] / f"{broken['isic_id']}.jpg").write_bytes(b"not a jpeg")

    assert main(["data", "check", "milk10k", str(root)]) == 1
    out = capsys.readouterr().out
    kinds = Counter(line.split("]")[0] + "]" for line in out.splitlines())
    assert "[not one-hot]" in kinds and lesions[1] in out
    assert "[duplicate lesion]" in kinds and lesions[2] in out
    assert "[unmatched id]" in kinds and f"lesion {orphan[0]['lesion_id']!r} has no row" in out
    assert "[one image]" in kinds and lesions[4] in out
    assert "[missing file]" in kinds and missing["isic_id"] in out
    assert "[wrong folder]" in kinds and f"lies in the folder of lesion {lesions[7]!r}" in out
    assert "[unreadable image]" in kinds and broken["isic_id"] in out


def test_training_on_a_damaged_release_fails_naming_the_problem(release, tmp_path, capsys):
    root = tmp_path / "damaged"
    shutil.copytree(release, root)
    columns, truth = _read(root / GROUND_TRUTH_FILE)
    truth[0] = {**truth[0], "BCC": "0.5"}
    _write(root / GROUND_TRUTH_FILE, columns, truth)
    assert main(["data", "stats", "milk10k", str(root)]) == 1
    assert "not one-hot" in capsys.readouterr().err


def _read(path):
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def _write(path, columns, rows):
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
