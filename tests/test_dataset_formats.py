"""Dataset formats are a registry filled through a hook: built-in and third-party formats load, check,
train and evaluate through the same path, and every dispatch point names the registered formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import mmfuse
from mmfuse.cli import main
from mmfuse.data import (
    DataError,
    DataOptions,
    DatasetFormat,
    FormatOption,
    UnknownFormatError,
    build_dataset,
    get_format,
    load_table,
)
from mmfuse.data.build import check_data_options
from mmfuse.errors import RunConfigError, UnknownNameError
from mmfuse.registry import DATASET_FORMATS, list_dataset_formats
from mmfuse.training.config import absolute_paths, resolve

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("benign", "malignant")


def write_paired_folders(root: Path, cases_per_class: int = 3, size: int = 32) -> Path:
    """ROOT/SPLIT/CLASS/CASE.primary.png (+ .auxiliary.png on all but one case), classes told apart by colour."""
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        for c, label in enumerate(CLASSES):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(cases_per_class):
                case = f"{split}-{label}-{i}"
                base = np.full((size, size, 3), 60 + 130 * c, np.uint8)
                for role in ("primary", "auxiliary"):
                    if role == "auxiliary" and split == "test" and c == 0 and i == 0:
                        continue  # one case without an auxiliary image
                    noise = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
                    Image.fromarray(base + noise).save(folder / f"{case}.{role}.png")
    return root


class SubfolderRelease(DatasetFormat):
    """A run-time format: a Derm7pt release kept in the subfolder that the required ``release`` option names."""

    description = "a Derm7pt release in a subfolder"
    options = {"release": FormatOption("the subfolder holding the release", required=True)}

    def load(self, options: DataOptions):
        from mmfuse.data.formats.derm7pt import load_release

        return load_release(options.root / options["release"], split_seed=options.split_seed)


class SubfolderPlugin:
    @staticmethod
    @mmfuse.hookimpl
    def register_dataset_formats(register):
        register("subfolder_release", SubfolderRelease)


@pytest.fixture
def subfolder_plugin():
    name = mmfuse.register_plugin(SubfolderPlugin, name="subfolder-plugin")
    yield name
    mmfuse.unregister_plugin(name)


def test_builtin_formats_are_registered_by_a_builtin_plugin():
    assert {"derm7pt", "milk10k", "paired_csv"} <= set(list_dataset_formats())
    for name in ("derm7pt", "milk10k", "paired_csv"):
        assert DATASET_FORMATS.entry(name).provider == "mmfuse_plugins.dataset_formats"
    assert get_format("paired_csv").options["schema"].required
    assert not get_format("derm7pt").options


def test_an_unknown_format_lists_the_registered_ones():
    with pytest.raises(
        UnknownFormatError, match=r"unknown data format 'nope'; registered: derm7pt, milk10k, paired_csv"
    ):
        load_table({"format": "nope", "root": "anywhere"})
    assert issubclass(UnknownFormatError, DataError) and issubclass(UnknownFormatError, UnknownNameError)
    with pytest.raises(UnknownFormatError):
        check_data_options({"format": ["derm7pt"], "root": "anywhere"})  # unhashable: still a clear error
    with pytest.raises(
        RunConfigError, match=r"data\.format must be a registered dataset format \(derm7pt, milk10k, paired_csv"
    ):
        resolve({"data": {"root": "anywhere", "format": "nope"}})


def test_the_cli_takes_its_format_choices_from_the_registry(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", "nope", "anywhere"])
    assert exit_info.value.code == 2
    assert (
        "argument FORMAT: unknown data format 'nope'; registered: derm7pt, milk10k, paired_csv"
        in capsys.readouterr().err
    )
    assert main(["data", "check", "paired_csv", "anywhere"]) == 1
    assert "paired_csv needs --schema SCHEMA.yaml" in capsys.readouterr().err


def test_a_format_registered_at_run_time_is_used_everywhere(tmp_path, subfolder_plugin, capsys):
    from test_training_fixtures import make_release

    make_release(tmp_path / "data" / "v1", cases=12, size=32)
    config = {"format": "subfolder_release", "root": str(tmp_path / "data"), "release": "v1"}
    table = load_table(config)
    assert len([r for r in table.records if r is not None]) == 12
    assert DATASET_FORMATS.entry("subfolder_release").provider == subfolder_plugin
    with pytest.raises(
        DataError, match="data format 'subfolder_release' needs 'release', the subfolder holding"
    ):
        load_table({"format": "subfolder_release", "root": str(tmp_path / "data")})
    # The default check decodes every image the table names; the CLI passes the format's own options.
    assert main(["data", "check", "subfolder_release", str(tmp_path / "data"), "--option", "release=v1"]) == 0
    assert main(["data", "check", "subfolder_release", str(tmp_path / "data")]) == 1
    assert "subfolder_release needs --option release=..." in capsys.readouterr().err
    assert main(["data", "stats", "subfolder_release", str(tmp_path / "data"), "--option", "tier=1"]) == 1
    assert "has no option 'tier' (its options: release)" in capsys.readouterr().err
    sorted((tmp_path / "data" / "v1" / "images").rglob("*.*"))[0].write_bytes(b"not an image")
    assert main(["data", "check", "subfolder_release", str(tmp_path / "data"), "--option", "release=v1"]) == 1
    assert "cannot decode image" in capsys.readouterr().out
    # A run config accepts the format and its option; the unplugged format is gone with its plugin.
    assert resolve({"data": config})["data"]["release"] == "v1"
    mmfuse.unregister_plugin(subfolder_plugin)
    assert "subfolder_release" not in list_dataset_formats()
    with pytest.raises(UnknownFormatError, match="registered: derm7pt, milk10k, paired_csv"):
        load_table(config)
    mmfuse.register_plugin(SubfolderPlugin, name=subfolder_plugin)  # for the fixture's teardown


def test_a_path_option_is_made_absolute_when_a_run_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = {"data": {"format": "paired_csv", "root": "mine", "schema": "mine/schema.yaml"}}
    resolved = absolute_paths(config)["data"]
    assert resolved["schema"] == str(tmp_path / "mine" / "schema.yaml")


@given(
    key=st.text(min_size=1).filter(lambda k: "=" not in k and k.strip()),
    value=st.text(),
)
def test_an_option_value_is_kept_verbatim(key, value):
    """``--option KEY=VALUE`` splits at the first ``=``: a value may itself hold ``=`` or spaces."""
    from mmfuse.cli.argtypes import key_value

    assert key_value(f"{key}={value}") == (key.strip(), value)


def test_an_option_without_a_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "stats", "paired_csv", "anywhere", "--option", "schema"])
    assert exit_info.value.code == 2
    assert "expected KEY=VALUE, got 'schema'" in capsys.readouterr().err


class LabelsFile(DatasetFormat):
    description = "images with their labels in a separate file"
    options = {"labels": FormatOption("the CSV of labels", required=True, path=True)}
    hub_dataset = "me/lesions-v2"


def test_a_format_decides_its_card_dataset_and_private_paths(tmp_path, monkeypatch):
    from mmfuse.model_card import _datasets, public_recipe

    mmfuse.registry.register_dataset_format("labels_file")(LabelsFile)
    try:
        monkeypatch.chdir(tmp_path)
        config = {"data": {"format": "labels_file", "root": "/secret/images", "labels": "secret/labels.csv"}}
        assert absolute_paths(config)["data"]["labels"] == str(tmp_path / "secret" / "labels.csv")
        assert public_recipe(config)["data"] == {
            "format": "labels_file",
            "root": "images",
            "labels": "labels.csv",
        }
        assert _datasets(config) == ["me/lesions-v2"]
        assert _datasets({"data": {**config["data"], "format": "paired_csv"}}) == []
        assert _datasets({"data": {**config["data"], "format": "uninstalled"}}) == []
    finally:
        DATASET_FORMATS.unregister("labels_file")


def test_help_loads_no_plugin():
    """``mmfuse data check --help`` must not pay for plugin loading: formats are read when one is given."""
    code = (
        "import sys; from mmfuse.cli import main; import mmfuse.registry as r\n"
        "for argv in (['--help'], ['data', 'check', '--help'], ['evaluate', '--help']):\n"
        "    try: main(argv)\n"
        "    except SystemExit: pass\n"
        "assert r._plugin_manager is None, 'plugins loaded'; assert 'torch' not in sys.modules, 'torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, capture_output=True)


# -- the third-party format of examples/plugin_package -------------------------------------------------

example = pytest.importorskip(
    "mmfuse_example_plugin", reason="the example plugin (examples/plugin_package) is not installed"
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_paired_folders(tmp_path_factory.mktemp("folders") / "pairs")


def test_the_example_format_arrives_through_the_entry_point(capsys):
    assert DATASET_FORMATS.entry("paired_folders").provider == "example"
    assert main(["data", "formats", "--json"]) == 0
    listed = {f["name"]: f for f in json.loads(capsys.readouterr().out)}
    assert listed["paired_folders"]["plugin"] == "example"
    assert listed["paired_csv"]["options"]["schema"]["required"] is True


def test_the_example_format_is_checked_and_counted_by_the_cli(folders, capsys):
    assert main(["data", "check", "paired_folders", str(folders)]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert (
        main(["data", "stats", "paired_folders", str(folders), "--json", "--option", "task=malignancy"]) == 0
    )
    stats = json.loads(capsys.readouterr().out)
    assert stats["train"] == {"malignancy": {"benign": 3, "malignant": 3}}
    assert stats["all"]["malignancy"] == {"benign": 9, "malignant": 9}


def test_the_example_format_reports_each_bad_file(folders, tmp_path, capsys):
    import shutil

    damaged = shutil.copytree(folders, tmp_path / "damaged")
    (damaged / "valid" / "malignant" / "valid-malignant-1.primary.png").unlink()
    (damaged / "train" / "benign" / "notes.txt").write_text("not an image")
    assert main(["data", "check", "paired_folders", str(damaged)]) == 1
    out = capsys.readouterr().out
    assert "valid-malignant-1: an auxiliary image without CASE.primary.EXT" in out
    assert "notes.txt: expected CASE.primary.EXT or CASE.auxiliary.EXT" in out
    with pytest.raises(DataError, match="2 problem"):
        load_table({"format": "paired_folders", "root": str(damaged)})


def test_the_example_format_builds_a_dataset(folders):
    config = {"format": "paired_folders", "root": str(folders), "cache": "off"}
    table = load_table(config)
    assert [(t.name, t.classes) for t in table.tasks] == [("label", CLASSES)]
    dataset = build_dataset(config, "test", train=False, img_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert len(dataset) == 6
    items = [dataset[i] for i in range(len(dataset))]
    assert sum(bool(item["auxiliary_present"]) for item in items) == 5
    assert items[0]["primary"].shape == (3, 32, 32)
    assert sorted(int(item["labels"][0]) for item in items) == [0, 0, 0, 1, 1, 1]


@pytest.mark.slow
def test_a_model_trains_and_evaluates_on_the_example_format(folders, tmp_path, capsys):
    from test_training_fixtures import tiny_config, write_config

    config = tiny_config(folders, train={"epochs": 2, "swa": {"epochs": 1, "anneal_epochs": 1}})
    config["model"].pop("tasks", None)  # the tasks come from the class folders
    config["data"].update(format="paired_folders", task="malignancy")
    write_config(tmp_path / "run.yaml", config)
    assert main(["train", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "run"), "--no-eval"]) == 0
    model = mmfuse.from_pretrained(tmp_path / "run" / "model")
    assert [(t.name, t.classes) for t in model.tasks] == [("malignancy", CLASSES)]
    capsys.readouterr()
    args = ["evaluate", str(tmp_path / "run"), "--split", "test", "--bootstrap", "0", "--json"]
    assert main(args) == 0  # the run's format and its option apply
    assert "malignancy" in capsys.readouterr().out
    # A model folder knows no dataset: the format and its option come from the command line.
    model_dir = str(tmp_path / "run" / "model")
    args = ["evaluate", model_dir, "--data", str(folders), "--format", "paired_folders", "--bootstrap", "0"]
    assert main([*args, "--option", "task=malignancy", "--json"]) == 0
    assert "malignancy" in capsys.readouterr().out
    assert main(args) == 1  # without it the task is "label": not the model's
    assert "malignancy" in capsys.readouterr().err
