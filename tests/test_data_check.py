"""Synthetic release -> check passes; each kind of damage is reported by name, all in one run."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from mmfuse.cli import main
from mmfuse.data import DataError
from mmfuse.data.formats.derm7pt import check_release, load_release
from mmfuse.data.synth import synthesize


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return synthesize(tmp_path_factory.mktemp("synth") / "release", cases=12, size=48, seed=7).root


@pytest.fixture
def damaged(release, tmp_path):
    copy = tmp_path / "release"
    shutil.copytree(release, copy)
    return copy


def _rows(root):
    with (root / "meta" / "meta.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def _write_rows(root, rows):
    with (root / "meta" / "meta.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_synthetic_release_has_the_derm7pt_layout_and_passes_check(release, capsys):
    rows = _rows(release)
    assert list(rows[0])[:3] == ["case_num", "diagnosis", "seven_point_score"]
    assert any(r["notes"] and r["clinic"] == r["derm"] for r in rows)  # a missing clinical image
    assert any(r["derm"].split("/")[1][:3] != r["derm"].split("/")[0] for r in rows)  # mixed case
    for name in ("train", "valid", "test"):
        assert (release / "meta" / f"{name}_indexes.csv").read_text().startswith("indexes\n")
    assert check_release(release) == []
    assert main(["data", "check", "derm7pt", str(release)]) == 0


def test_synthesis_is_deterministic_per_seed(release, tmp_path):
    again = synthesize(tmp_path / "again", cases=12, size=48, seed=7).root
    files = sorted(p.relative_to(release) for p in release.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((release / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_processes_racing_to_make_one_release_all_use_the_winners(release, tmp_path):
    """``mmfuse reproduce --quick`` lines started at once all create OUT/synthetic."""
    import multiprocessing

    out = tmp_path / "shared"
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        summaries = pool.starmap(_synthesize_shared, [(str(out),)] * 3)
    assert {s.root for s in summaries} == {out} and len({s.missing_auxiliary for s in summaries}) == 1
    assert check_release(out) == []
    assert [p.name for p in tmp_path.iterdir()] == ["shared"]  # no temporary folder left behind
    files = sorted(p.relative_to(release) for p in release.rglob("*") if p.is_file())
    assert all((release / f).read_bytes() == (out / f).read_bytes() for f in files)
    with pytest.raises(DataError, match="holds a synthetic release"):
        synthesize(out, cases=12, size=48, seed=8, exist_ok=True)
    with pytest.raises(DataError, match="not empty"):
        synthesize(out, cases=12, size=48, seed=7)


def _synthesize_shared(out: str):
    return synthesize(out, cases=12, size=48, seed=7, workers=1, exist_ok=True)


def test_every_problem_is_reported_in_one_run(damaged, capsys):
    rows = _rows(damaged)
    truncated = damaged / "images" / rows[0]["derm"]
    truncated.write_bytes(truncated.read_bytes()[:300])
    deleted = damaged / "images" / rows[1]["clinic"]
    deleted.unlink()
    rows[2]["streaks"] = "zigzag"
    _write_rows(damaged, rows)
    (damaged / "meta" / "valid_indexes.csv").write_text("indexes\n")  # empty split
    with (damaged / "meta" / "test_indexes.csv").open("a") as fh:
        fh.write("99\n")  # outside the table
    train = (damaged / "meta" / "train_indexes.csv").read_text().split()
    with (damaged / "meta" / "test_indexes.csv").open("a") as fh:
        fh.write(f"{train[1]}\n")  # in two splits

    assert main(["data", "check", "derm7pt", str(damaged)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert f"{rows[0]['derm']}: Truncated File Read" in out.out
    assert rows[1]["clinic"] in out.out and "not found" in out.out
    assert "row 2" in out.out and "'streaks'" in out.out and "'zigzag'" in out.out
    assert "split 'valid'" in out.out and "no cases" in out.out
    assert "index 99 is outside" in out.out
    assert f"index {train[1]} is already in split 'train'" in out.out


def test_missing_column_is_reported(damaged, capsys):
    rows = _rows(damaged)
    for row in rows:
        del row["blue_whitish_veil"]
    _write_rows(damaged, rows)
    assert main(["data", "check", "derm7pt", str(damaged)]) == 1
    assert "no column 'blue_whitish_veil'" in capsys.readouterr().out


def test_loading_a_damaged_table_fails_before_training_and_names_the_row(damaged):
    rows = _rows(damaged)
    rows[3]["diagnosis"] = "space wart"
    _write_rows(damaged, rows)
    with pytest.raises(Exception, match=r"row 3.*'diagnosis'.*space wart"):
        load_release(damaged)


def test_stats_json_counts_classes_per_split_without_images(damaged, capsys):
    shutil.rmtree(damaged / "images")
    assert main(["data", "stats", "derm7pt", str(damaged), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert list(stats) == ["all", "train", "valid", "test"]
    assert list(stats["all"]["DIAG"]) == ["BCC", "NEV", "MEL", "MISC", "SK"]
    assert sum(stats["all"]["DIAG"].values()) == 12
    for task, classes in stats["all"].items():
        for cls, n in classes.items():
            assert n == sum(stats[s][task][cls] for s in ("train", "valid", "test"))


def test_missing_release_is_one_line_error(tmp_path, capsys):
    assert main(["data", "stats", "derm7pt", str(tmp_path / "nowhere")]) == 1
    assert "metadata file not found" in capsys.readouterr().err
