"""Loading a tiny synthetic release: tensors, labels, missing auxiliaries, cache, seeding, CSV+YAML."""

from __future__ import annotations

import csv
import os
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mmfuse import DERM7PT_TASKS
from mmfuse.cli import main
from mmfuse.data import DataError, build_dataset, load_cache, prepare_cache
from mmfuse.data.formats.derm7pt import load_release
from mmfuse.data.synth import synthesize

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIZE = 32


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("synth") / "release", cases=15, size=48, seed=3).root


@pytest.fixture
def own_release(release, tmp_path):
    copy = tmp_path / "release"
    shutil.copytree(release, copy)
    return copy


def dataset(root, split="train", *, train=True, cache="off", seed=0, **extra):
    config = {"format": "derm7pt", "root": str(root), "cache": cache, **extra}
    return build_dataset(config, split, train=train, img_size=SIZE, mean=MEAN, std=STD, seed=seed)


def test_items_have_the_contracted_shapes_labels_and_missing_marks(release):
    records = load_release(release).records
    everything = [dataset(release, s, train=False) for s in ("train", "valid", "test")]
    assert sum(len(d) for d in everything) == 15
    missing = 0
    for ds in everything:
        assert ds.tasks == DERM7PT_TASKS
        labels = ds.label_matrix()
        assert labels.dtype == torch.int64 and labels.shape == (len(ds), 8)
        for i in range(len(ds)):
            item = ds[i]
            assert item["primary"].shape == item["auxiliary"].shape == (3, SIZE, SIZE)
            assert item["primary"].dtype == torch.float32
            record = ds.records[i]
            expected = [t.index(record.labels[t.name]) for t in ds.tasks]
            assert item["labels"].tolist() == expected == labels[i].tolist()
            assert item["case_id"] == record.case_id and item["index"] == i
            assert bool(item["auxiliary_present"]) == (record.auxiliary_path is not None)
            if record.auxiliary_path is None:
                missing += 1
                assert not item["auxiliary"].any()
                assert record.metadata["notes"]
    assert missing == sum(r.auxiliary_path is None for r in records) >= 1
    batch = next(iter(DataLoader(everything[0], batch_size=4)))
    assert batch["primary"].shape == (4, 3, SIZE, SIZE) and batch["auxiliary_present"].dtype == torch.bool


@pytest.mark.parametrize("backend", ["albumentations", "torchvision"])
def test_augmentation_is_a_pure_function_of_seed_epoch_and_index(release, backend):
    first = dataset(release, seed=5, backend=backend)
    second = dataset(release, seed=5, backend=backend)
    for i in reversed(range(len(second))):  # a different access order
        second[i]
    assert torch.equal(first[2]["primary"], second[2]["primary"])
    assert torch.equal(first[2]["auxiliary"], dataset(release, seed=5, backend=backend)[2]["auxiliary"])
    second.set_epoch(1)
    assert not torch.equal(first[2]["primary"], second[2]["primary"])
    assert not torch.equal(first[2]["primary"], dataset(release, seed=6, backend=backend)[2]["primary"])


def test_worker_count_does_not_change_the_batches(release):
    ds = dataset(release, seed=1)
    ds.set_epoch(3)
    serial = next(iter(DataLoader(ds, batch_size=6)))
    parallel = next(iter(DataLoader(ds, batch_size=6, num_workers=2)))
    assert torch.equal(serial["primary"], parallel["primary"])
    assert torch.equal(serial["auxiliary"], parallel["auxiliary"])


def test_cache_gives_the_same_items_and_goes_stale_when_a_source_changes(own_release, capsys):
    assert main(["data", "prepare", "derm7pt", str(own_release), "--size", str(SIZE)]) == 0
    cache = load_cache(own_release, SIZE)
    assert cache is not None and load_cache(own_release, SIZE + 1) is None
    primary = np.load(cache.directory / "primary.npy", mmap_mode="r")
    assert (
        primary.dtype == np.uint8 and primary.shape == (15, cache.side, cache.side, 3) and cache.side > SIZE
    )
    cached, decoded = dataset(own_release, cache="auto", seed=2), dataset(own_release, seed=2)
    assert cached.uses_cache and not decoded.uses_cache
    for i in range(len(cached)):
        assert torch.equal(cached[i]["primary"], decoded[i]["primary"])
        assert torch.equal(cached[i]["auxiliary"], decoded[i]["auxiliary"])
    touched = cached.records[0].primary_path
    os.utime(touched, ns=(0, 1_000_000_000))
    assert load_cache(own_release, SIZE) is None
    assert not dataset(own_release, cache="auto").uses_cache


def test_failed_prepare_keeps_the_old_cache(own_release):
    records = [r for r in load_release(own_release).records]
    prepare_cache(own_release, records, SIZE)
    before = (own_release / ".mmfuse-cache" / str(SIZE) / "manifest.json").read_bytes()
    records[0].primary_path.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=str(records[0].primary_path.name)):
        prepare_cache(own_release, records, SIZE)
    assert (own_release / ".mmfuse-cache" / str(SIZE) / "manifest.json").read_bytes() == before
    assert [p.name for p in (own_release / ".mmfuse-cache").iterdir()] == [str(SIZE)]


def test_a_bad_image_at_training_time_names_the_file_and_row(own_release):
    ds = dataset(own_release)
    ds.records[1].primary_path.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(
        DataError, match=rf"row {ds.records[1].metadata['row']}.*{ds.records[1].primary_path.name}"
    ):
        ds[1]


def test_case_insensitive_fallback_finds_a_renamed_file(own_release, caplog):
    record = load_release(own_release).records[0]
    path = record.primary_path
    path.rename(path.with_name(path.name.swapcase()))
    with caplog.at_level("WARNING"):
        found = load_release(own_release).records[0].primary_path
    assert found.name == path.name.swapcase() and "letter case" in caplog.text


def test_paired_csv_with_a_yaml_schema(tmp_path, release):
    images = tmp_path / "pics"
    images.mkdir()
    rows = []
    for i in range(9):
        src = next((release / "images").rglob("*.jpg"))
        shutil.copy(src, images / f"a{i}.jpg")
        if i % 3:
            shutil.copy(src, images / f"b{i}.jpg")
        rows.append(
            {
                "id": f"p{i}",
                "main": f"a{i}.jpg",
                "extra": f"b{i}.jpg" if i % 3 else "",
                "grade": ["lo", "high", "high"][i % 3],
                "split": ["train", "valid", "test"][i % 3],
            }
        )
    with (tmp_path / "cases.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "schema.yaml").write_text(
        "table: cases.csv\nimage_dir: pics\nprimary: main\nauxiliary: extra\ncase_id: id\nsplit: split\n"
        "tasks:\n  - name: GRADE\n    column: grade\n    classes: [low, high]\n    map: {lo: low}\n"
    )
    config = {"format": "paired_csv", "root": str(tmp_path), "schema": str(tmp_path / "schema.yaml")}
    ds = build_dataset(config, "train", train=False, img_size=SIZE, mean=MEAN, std=STD)
    assert [t.name for t in ds.tasks] == ["GRADE"] and [r.case_id for r in ds.records] == ["p0", "p3", "p6"]
    assert ds.label_matrix().tolist() == [[0], [0], [0]]
    assert not ds[0]["auxiliary_present"]
    valid = build_dataset(config, "valid", train=False, img_size=SIZE, mean=MEAN, std=STD)
    assert valid[0]["auxiliary_present"] and valid.label_matrix().tolist() == [[1], [1], [1]]
    assert (
        main(["data", "check", "paired_csv", str(tmp_path), "--schema", str(tmp_path / "schema.yaml")]) == 0
    )


def _write_rows(path, rows):
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_paired_csv_takes_a_folder_per_modality(tmp_path, release):
    """Dermoscopy and overview photographs in folders of their own, bare file names in the table."""
    src = next((release / "images").rglob("*.jpg"))
    (tmp_path / "derm").mkdir()
    (tmp_path / "overview").mkdir()
    rows = []
    for i in range(6):
        shutil.copy(src, tmp_path / "derm" / f"{i}.jpg")
        shutil.copy(src, tmp_path / "overview" / f"{i}.jpg")
        split = ("train", "valid", "test")[i // 2 % 3]
        rows.append({"main": f"{i}.jpg", "extra": f"{i}.jpg", "grade": "lo", "split": split})
    _write_rows(tmp_path / "cases.csv", rows)
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "table: cases.csv\nprimary_dir: derm\nauxiliary_dir: overview\nprimary: main\nauxiliary: extra\n"
        "split: split\ntasks:\n  - {name: GRADE, column: grade, classes: [lo, hi]}\n"
    )
    config = {"format": "paired_csv", "root": str(tmp_path), "schema": str(schema)}
    ds = build_dataset(config, "train", train=False, img_size=SIZE, mean=MEAN, std=STD)
    assert [r.primary_path.parent.name for r in ds.records] == ["derm"] * 2
    assert [r.auxiliary_path.parent.name for r in ds.records] == ["overview"] * 2
    from mmfuse.data.validate import check_paired_csv

    (tmp_path / "overview" / "4.jpg").unlink()
    missing = check_paired_csv(tmp_path, schema)
    assert len(missing) == 1 and "'extra'" in missing[0].message and "4.jpg" in missing[0].message


def test_yes_and_no_labels_in_a_schema_stay_strings(tmp_path, release):
    """YAML 1.1 would read the map's keys as True/False and no row's 'yes'/'no' would match them."""
    src = next((release / "images").rglob("*.jpg"))
    rows = []
    for i in range(6):
        shutil.copy(src, tmp_path / f"{i}.jpg")
        rows.append(
            {"main": f"{i}.jpg", "ulcer": ["yes", "no"][i % 2], "split": ("train", "valid", "test")[i // 2]}
        )
    _write_rows(tmp_path / "cases.csv", rows)
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "table: cases.csv\nprimary: main\nsplit: split\ntasks:\n"
        "  - {name: ULCER, column: ulcer, classes: [absent, present], map: {yes: present, no: absent}}\n"
    )
    config = {"format": "paired_csv", "root": str(tmp_path), "schema": str(schema)}
    ds = build_dataset(config, "train", train=False, img_size=SIZE, mean=MEAN, std=STD)
    assert ds.label_matrix().tolist() == [[1], [0]]


def test_cli_prints_a_dataset_warning_as_one_line(tmp_path, release, capsys):
    """Not Python's ``path:line: UserWarning: ...`` followed by the source line that raised it."""
    src = next((release / "images").rglob("*.jpg"))
    rows = []
    for i in range(9):
        shutil.copy(src, tmp_path / f"{i}.jpg")
        rows.append({"main": f"{i}.jpg", "grade": ["lo", "hi"][i % 2]})
    _write_rows(tmp_path / "cases.csv", rows)
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "table: cases.csv\nprimary: main\ntasks:\n  - {name: GRADE, column: grade, classes: [lo, hi]}\n"
    )
    assert main(["data", "stats", "paired_csv", str(tmp_path), "--schema", str(schema)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"mmfuse data: warning: {tmp_path / 'cases.csv'}: no split column; using a stratified split by GRADE"
    ]
