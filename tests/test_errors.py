"""The error contract: input problems are one line naming the file, bugs are tracebacks asking for a report.

Each test of the second half is a defect from an adversarial run that ended in a raw traceback.
"""

from __future__ import annotations

import errno
import importlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from test_training_fixtures import make_release, tiny_config, write_config

import mmfuse
import mmfuse.errors
from mmfuse.cli import EXIT_BUG, EXIT_INPUT_ERROR, describe_os_error, main

TINY = {"primary": "test_convnext", "auxiliary": "test_efficientnet", "img_size": 32}


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *must_name: object) -> None:
    """Exit status 1, no traceback, and the message names each of ``must_name``."""
    assert code == EXIT_INPUT_ERROR, err
    assert "Traceback" not in err and "internal error" not in err, err
    # progress lines may come before the error line, a table's problem list after it
    errors = [line for line in err.splitlines() if line.startswith("mmfuse ") and ": error: " in line]
    assert len(errors) == 1, err
    for thing in must_name:
        assert str(thing) in err, (thing, err)


def assert_reported(code: int, out: str, err: str, *must_name: object) -> None:
    """``data check``'s report: exit status 1, no traceback, each of ``must_name`` in the listed problems."""
    assert code == EXIT_INPUT_ERROR, out + err
    assert "Traceback" not in err and "internal error" not in err, err
    for thing in must_name:
        assert str(thing) in out + err, (thing, out + err)


def run_check(capsys, *argv: object) -> tuple[int, str, str]:
    code = main(["data", "check", *(str(a) for a in argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- the hierarchy --------------------------------------------------------------------------------------


def test_every_documented_exception_derives_from_mmfuse_error():
    for name in mmfuse.errors.__all__:
        cls = getattr(mmfuse.errors, name)
        assert issubclass(cls, mmfuse.MmfuseError), name


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("mmfuse.hub", "ModelNotFoundError"),
        ("mmfuse.hub", "UnsafeCheckpointError"),
        ("mmfuse.hub", "WeightsMismatchError"),
        ("mmfuse.hub", "ModelConfigError"),
        ("mmfuse.hub", "PublishError"),
        ("mmfuse.data.errors", "DataError"),
        ("mmfuse.training.config", "RunConfigError"),
        ("mmfuse.training.checkpoint", "CheckpointError"),
        ("mmfuse.training.rundir", "RunDirError"),
        ("mmfuse.training.trainer", "NonFiniteLossError"),
        ("mmfuse.export", "ExportError"),
        ("mmfuse.evaluation.compare", "CompareError"),
    ],
)
def test_exceptions_stay_importable_where_they_were_first_defined(module, name):
    assert getattr(importlib.import_module(module), name) is getattr(mmfuse.errors, name)


def test_input_errors_keep_their_builtin_bases():
    """Code written against ValueError/FileNotFoundError/TypeError keeps catching them."""
    assert issubclass(mmfuse.errors.UsageError, ValueError)
    assert issubclass(mmfuse.errors.DataError, ValueError)
    assert issubclass(mmfuse.errors.ModelNotFoundError, FileNotFoundError)
    assert issubclass(mmfuse.errors.UnknownOptionError, TypeError)
    with pytest.raises(ValueError):
        mmfuse.build_model("no-such-preset")


# -- the CLI contract -------------------------------------------------------------------------------------


def test_a_bug_prints_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    import mmfuse.cli.params as params_command

    def broken(args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(params_command, "run", broken)
    code, err = run_cli(capsys, "params")
    assert code == EXIT_BUG
    assert "Traceback" in err and "ZeroDivisionError: boom" in err
    assert "bug in mmfuse" in err and "report" in err


def test_an_os_error_is_one_line_naming_the_file():
    full = OSError(errno.ENOSPC, "No space left on device", "/runs/a/checkpoints/x.safetensors")
    assert describe_os_error(full).startswith("/runs/a/checkpoints/x.safetensors: no space left")
    assert "Errno" not in describe_os_error(PermissionError(errno.EACCES, "Permission denied", "/x"))


# -- fixtures for the defects -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = mmfuse.build_model("ammfm-swin", **TINY)
    return model.save_pretrained(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture
def model_copy(saved_model, tmp_path) -> Path:
    return Path(shutil.copytree(saved_model, tmp_path / "model"))


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "lesion.png"
    Image.new("RGB", (40, 40), (180, 120, 90)).save(path)
    return path


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return make_release(tmp_path_factory.mktemp("data") / "derm7pt", cases=24, size=32)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, release) -> Path:
    """A one-epoch run with its checkpoint, copied by the resume tests."""
    tmp = tmp_path_factory.mktemp("run")
    config = tiny_config(release, train={"epochs": 2, "swa": {"epochs": 1, "anneal_epochs": 1}})
    config_file = write_config(tmp / "run.yaml", config)
    assert main(["train", str(config_file), "--out", str(tmp / "run"), "--no-eval", "--epochs", "1"]) == 0
    return tmp / "run"


def _latest_checkpoint(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("epoch_*"))[-1]


# -- weights ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0, 7, 100, -100])
def test_truncated_or_empty_safetensors_is_one_line_from_predict(model_copy, image, capsys, keep):
    weights = model_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: keep if keep >= 0 else len(data) + keep])
    code, err = run_cli(capsys, "predict", model_copy, "--primary", image)
    assert_one_line_error(code, err, weights)
    with pytest.raises(mmfuse.errors.CorruptWeightsError, match="model.safetensors"):
        mmfuse.from_pretrained(model_copy)


def test_a_corrupt_checkpoint_on_resume_names_the_file(finished_run, tmp_path, capsys):
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    weights = _latest_checkpoint(run) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, err = run_cli(capsys, "train", "--resume", "--out", run, "--no-eval")
    assert_one_line_error(code, err, weights)


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '{"epoch": 1}'])
def test_a_bad_state_json_on_resume_names_the_checkpoint(finished_run, tmp_path, capsys, content):
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    checkpoint = _latest_checkpoint(run)
    (checkpoint / "state.json").write_text(content)
    code, err = run_cli(capsys, "train", "--resume", "--out", run, "--no-eval")
    assert_one_line_error(code, err, checkpoint)


def test_an_architecture_change_on_resume_is_refused_with_the_checkpoint_named(
    finished_run, tmp_path, capsys
):
    run = Path(shutil.copytree(finished_run, tmp_path / "run"))
    stored = yaml.safe_load((run / "config.yaml").read_text())
    stored["model"]["fusion"] = "concat"  # the run's own config edited: no difference to report
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    code, err = run_cli(capsys, "train", "--resume", "--out", run, "--no-eval")
    assert_one_line_error(code, err, _latest_checkpoint(run))


# -- configs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"out_indices": [9]}, {"drop_rate": -1}, {"depths": [1]}, {"stem_type": "nope"}, {"output_stride": 7}],
)
def test_encoder_options_timm_rejects_are_one_line(release, tmp_path, capsys, options):
    config = tiny_config(release, model={"primary_options": options})
    config_file = write_config(tmp_path / "run.yaml", config)
    code, err = run_cli(capsys, "train", config_file, "--out", tmp_path / "run", "--no-eval")
    assert_one_line_error(code, err, config_file)


def test_encoder_options_timm_rejects_in_config_json_are_one_line(model_copy, image, capsys):
    config = json.loads((model_copy / "config.json").read_text())
    config["primary_options"] = {"out_indices": [9]}
    (model_copy / "config.json").write_text(json.dumps(config))
    code, err = run_cli(capsys, "predict", model_copy, "--primary", image)
    assert_one_line_error(code, err, "config.json")


def test_a_deeply_nested_config_is_one_line(model_copy, image, tmp_path, capsys):
    (model_copy / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    code, err = run_cli(capsys, "predict", model_copy, "--primary", image)
    assert_one_line_error(code, err, "config.json")
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    code, err = run_cli(capsys, "train", deep, "--out", tmp_path / "run")
    assert_one_line_error(code, err, deep)


def test_a_config_path_that_is_a_directory_is_one_line(tmp_path, capsys):
    code, err = run_cli(capsys, "train", tmp_path, "--out", tmp_path / "run")
    assert_one_line_error(code, err, tmp_path)


def test_a_latin1_config_is_one_line(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_bytes("data:\n  root: caf\xe9\n".encode("latin-1"))
    code, err = run_cli(capsys, "train", config, "--out", tmp_path / "run")
    assert_one_line_error(code, err, config, "UTF-8")


# -- data ------------------------------------------------------------------------------------------------


def _paired_release(root: Path, schema: dict) -> Path:
    root.mkdir(parents=True)
    (root / "cases.csv").write_text("case,image,diagnosis\n1,a.png,benign\n")
    path = root / "schema.yaml"
    path.write_text(yaml.safe_dump(schema))
    return path


@pytest.mark.parametrize(
    "tasks",
    [[], [{"name": "DIAG", "classes": ["benign", "malignant"], "map": [1, 2]}], "DIAG", [{"name": "X"}]],
)
def test_paired_csv_schema_errors_are_one_line(tmp_path, capsys, tasks):
    schema = _paired_release(tmp_path / "rel", {"table": "cases.csv", "primary": "image", "tasks": tasks})
    code, out, err = run_check(capsys, "paired_csv", tmp_path / "rel", "--schema", schema)
    assert_reported(code, out, err, schema)


def test_a_paired_csv_schema_that_is_a_directory_is_one_line(tmp_path, capsys):
    (tmp_path / "schema.yaml").mkdir()
    code, out, err = run_check(capsys, "paired_csv", tmp_path, "--schema", tmp_path / "schema.yaml")
    assert_reported(code, out, err, tmp_path / "schema.yaml", "directory")


def test_a_latin1_meta_csv_names_the_file(release, tmp_path, capsys):
    root = Path(shutil.copytree(release, tmp_path / "rel"))
    meta = root / "meta" / "meta.csv"
    meta.write_bytes(meta.read_text().replace("clark nevus", "n\xe6vus").encode("latin-1"))
    code, out, err = run_check(capsys, "derm7pt", root)
    assert_reported(code, out, err, meta, "UTF-8")


def test_a_non_ascii_digit_in_meta_csv_is_reported_not_raised(release, tmp_path, capsys):
    root = Path(shutil.copytree(release, tmp_path / "rel"))
    meta = root / "meta" / "meta.csv"
    lines = meta.read_text().splitlines()
    cells = lines[1].split(",")
    cells[2] = "\u00b2"  # seven_point_score: str.isdigit() accepts it, int() does not
    lines[1] = ",".join(cells)
    meta.write_text("\n".join(lines) + "\n")
    index = root / "meta" / "valid_indexes.csv"
    if index.is_file():
        index.write_text(index.read_text().rstrip("\n") + "\n\u0663\n")  # an Arabic-Indic 3
    code, out, err = run_check(capsys, "derm7pt", root)
    assert "Traceback" not in err and code in (0, 1), err
    if index.is_file():
        assert_reported(code, out, err, "valid_indexes.csv", "'\u0663'")


# -- arguments -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seeds", ["0-100000000000", "-5", "0,x", "4294967296"])
def test_absurd_seed_lists_are_one_line(release, tmp_path, capsys, seeds):
    config_file = write_config(tmp_path / "run.yaml", tiny_config(release))
    code, err = run_cli(capsys, "train", config_file, "--out", tmp_path / "run", "--seeds", seeds)
    assert_one_line_error(code, err, "--seeds")


@pytest.mark.parametrize("device", ["tpu", "cuda:7", "gpu0", ""])
def test_an_unknown_device_is_one_line(release, tmp_path, capsys, device):
    config_file = write_config(tmp_path / "run.yaml", tiny_config(release))
    code, err = run_cli(capsys, "train", config_file, "--out", tmp_path / "run", "--device", device)
    assert_one_line_error(code, err, repr(device))


def test_predict_with_an_unknown_device_is_one_line(saved_model, image, capsys):
    code, err = run_cli(capsys, "predict", saved_model, "--primary", image, "--device", "tpu")
    assert_one_line_error(code, err, "'tpu'")


@pytest.mark.parametrize(
    "option", [("--opset", "99"), ("--opset", "x"), ("--batch", "0"), ("--threads", "-2"), ("--repeats", "0")]
)
def test_export_rejects_impossible_numbers_while_parsing(saved_model, tmp_path, capsys, option):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(saved_model), "--onnx", str(tmp_path / "m.onnx"), *option])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert option[0] in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_evaluate_out_that_is_a_file_is_one_line(saved_model, release, tmp_path, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    code, err = run_cli(capsys, "evaluate", saved_model, "--data", release, "--out", taken)
    assert_one_line_error(code, err, taken)
    assert taken.read_text() == "keep me"


def test_train_out_that_cannot_be_created_is_one_line(release, tmp_path, capsys):
    config_file = write_config(tmp_path / "run.yaml", tiny_config(release))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run_cli(capsys, "train", config_file, "--out", blocker / "run")
    assert_one_line_error(code, err, blocker)


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(
    release, tmp_path, capsys, monkeypatch
):
    from mmfuse.training import checkpoint

    written = []
    real_save_file = checkpoint.save_file

    def full_disk_after_one_checkpoint(tensors, filename, *args, **kwargs):
        if len({Path(f).parent for f in written}) >= 1 and Path(filename).parent not in {
            Path(f).parent for f in written
        }:
            Path(filename).write_bytes(b"\0" * 10)
            raise OSError(errno.ENOSPC, "No space left on device", filename)
        written.append(filename)
        return real_save_file(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", full_disk_after_one_checkpoint)
    config = tiny_config(release, train={"epochs": 2, "swa": {"epochs": 1, "anneal_epochs": 1}})
    config_file = write_config(tmp_path / "run.yaml", config)
    run = tmp_path / "run"
    code, err = run_cli(capsys, "train", config_file, "--out", run, "--no-eval")
    assert_one_line_error(code, err, "No space left", "epoch_0001")
    kept = _latest_checkpoint(run)
    assert kept.name == "epoch_0001"
    assert not list((run / "checkpoints").glob(".*.tmp"))
    monkeypatch.setattr(checkpoint, "save_file", real_save_file)
    assert main(["train", "--resume", "--out", str(run), "--no-eval"]) == 0
