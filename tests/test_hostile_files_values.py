"""Files, values and images, round 2: hostile inputs from the second adversarial run.

An output path that is a device or a FIFO, a full disk mid-write, command-line numbers that ask for
terabytes, a config.json whose sizes exhaust memory, predictions files holding NaN or negative
"probabilities", sideways phone photos, greyscale images, float TIFFs and a dry run on a missing folder.
Each test reproduces one finding and fails without its fix.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmfuse
from mmfuse.cli import EXIT_INPUT_ERROR, EXIT_USAGE, main
from mmfuse.errors import ModelConfigError, UsageError
from mmfuse.fileio import atomic_write_bytes, check_output_file, write_json

TINY = {"primary": "test_convnext", "auxiliary": "test_efficientnet", "img_size": 32}


def one_line_error(capsys, *argv: object) -> str:
    """Run ``mmfuse argv``; assert exit 1 with one ``error:`` line and no traceback; return stderr."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT_ERROR, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert len([line for line in err.splitlines() if ": error: " in line]) == 1, err
    return err


def usage_error(capsys, *argv: object) -> str:
    """Run ``mmfuse argv``; assert argparse refused it (exit 2); return stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == EXIT_USAGE, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def is_fifo(path: Path) -> bool:
    return stat.S_ISFIFO(os.lstat(path).st_mode)


# -- 4. writing over a device or a FIFO ----------------------------------------------------------------


def test_an_atomic_write_refuses_a_fifo_and_leaves_it_a_fifo(fifo):
    with pytest.raises(UsageError, match=r"pipe is a FIFO \(named pipe\), not a regular file"):
        write_json(fifo, {"a": 1})
    assert is_fifo(fifo)
    assert sorted(p.name for p in fifo.parent.iterdir()) == ["pipe"]  # no temporary file left behind


@pytest.mark.parametrize("device", ["/dev/null", "/dev/full"])
def test_a_character_device_is_refused_before_anything_is_written(device):
    # check_output_file only stats the path: it is the check every write makes before it creates its temp file.
    if not Path(device).exists():
        pytest.skip(f"{device} does not exist here")
    with pytest.raises(UsageError, match=f"{device} is a character device, not a regular file"):
        check_output_file(device)


def test_a_directory_at_the_output_path_is_refused(tmp_path):
    with pytest.raises(UsageError, match="is a directory"):
        atomic_write_bytes(tmp_path, b"x")


def test_compare_out_a_fifo_is_one_line_and_the_fifo_survives(tmp_path, fifo, capsys):
    a = write_predictions(tmp_path / "a", probabilities_of(20, seed=1))
    b = write_predictions(tmp_path / "b", probabilities_of(20, seed=2))
    err = one_line_error(capsys, "compare", a, b, "--out", fifo, "--bootstrap", "10")
    assert f"{fifo} is a FIFO" in err
    assert is_fifo(fifo)


def test_export_onnx_to_a_fifo_is_refused_before_export_and_the_fifo_survives(tmp_path, fifo, capsys):
    model = mmfuse.build_model("ammfm-swin", **TINY).save_pretrained(tmp_path / "model")
    err = one_line_error(capsys, "export", model, "--onnx", fifo)
    assert f"{fifo} is a FIFO" in err and is_fifo(fifo)
    plain = tmp_path / "m.onnx"
    os.mkfifo(int8 := tmp_path / "m.int8.onnx")
    err = one_line_error(capsys, "export", model, "--onnx", plain, "--int8")
    assert f"{int8} is a FIFO" in err and is_fifo(int8) and not plain.exists()  # refused before any work


def test_evaluate_refuses_a_fifo_as_metrics_json_before_inference(saved_model, tmp_path, capsys):
    out = tmp_path / "eval"
    out.mkdir()
    os.mkfifo(out / "metrics.json")
    # No --data and a model with no run: only the output check can answer, and it must come first.
    err = one_line_error(capsys, "evaluate", saved_model, "--out", out, "--overwrite")
    assert "metrics.json is a FIFO" in err and is_fifo(out / "metrics.json")


def test_a_stale_fifo_under_the_temporary_name_cannot_block_a_write(tmp_path):
    target = tmp_path / "metrics.json"
    os.mkfifo(tmp_path / ".metrics.json.tmp")
    writer = threading.Thread(target=write_json, args=(target, {"auc": 0.5}), daemon=True)
    writer.start()
    writer.join(timeout=10)
    if writer.is_alive():  # blocked opening the FIFO: release it before failing
        os.close(os.open(tmp_path / ".metrics.json.tmp", os.O_RDONLY | os.O_NONBLOCK))
        pytest.fail("writing metrics.json blocked on a FIFO left under its temporary name")
    assert json.loads(target.read_text()) == {"auc": 0.5}


def test_a_full_disk_mid_write_is_one_line_keeps_the_old_file_and_leaves_no_temporary_file(
    tmp_path, capsys, monkeypatch
):
    a = write_predictions(tmp_path / "a", probabilities_of(20, seed=1))
    b = write_predictions(tmp_path / "b", probabilities_of(20, seed=2))
    out = tmp_path / "cmp.json"
    out.write_text("earlier comparison")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("mmfuse.fileio.os.fsync", full_disk)
    err = one_line_error(capsys, "compare", a, b, "--out", out, "--bootstrap", "10")
    assert "no space left on the device" in err.lower()
    assert out.read_text() == "earlier comparison"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "cmp.json"]


# -- 5. bootstrap options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--bootstrap-seed", "-1", "must be between 0 and 4294967295, got -1"),
        ("--bootstrap-seed", "4294967296", "must be between 0 and 4294967295"),
        ("--bootstrap", "100000000000", "must be between 1 and 10000, got 100000000000"),
        ("--bootstrap", "0", "must be between 1 and 10000, got 0"),
        ("--level", "nan", "must lie strictly between 0 and 1, got nan"),
        ("--level", "1", "must lie strictly between 0 and 1"),
    ],
)
def test_compare_refuses_impossible_bootstrap_options_while_parsing(tmp_path, capsys, option, value, message):
    err = usage_error(capsys, "compare", tmp_path, tmp_path, option, value)
    assert option in err and message in err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--bootstrap-seed", "-1", "must be between 0 and 4294967295, got -1"),
        ("--bootstrap", "100000000000", "must be between 0 and 10000, got 100000000000"),
        ("--robustness-seed", "-5", "must be between 0 and 4294967295, got -5"),
        ("--level", "0", "must lie strictly between 0 and 1"),
    ],
)
def test_evaluate_refuses_impossible_bootstrap_options_while_parsing(
    tmp_path, capsys, option, value, message
):
    err = usage_error(capsys, "evaluate", tmp_path, option, value)
    assert option in err and message in err


def test_the_library_caps_resamples_and_seeds_too():
    from mmfuse.evaluation.bootstrap import BootstrapOptions

    with pytest.raises(UsageError, match=r"resamples must be an integer in \[1, 10000\]"):
        BootstrapOptions(10**11)
    with pytest.raises(UsageError, match="seed must be an integer in"):
        BootstrapOptions(100, seed=-1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "synth", "OUT", "--size", "200000"], "--size: must be between 8 and 4096"),
        (["data", "synth", "OUT", "--cases", "10000000000"], "--cases: must be between 1 and 100000"),
        (["data", "synth", "OUT", "--seed", "-1"], "--seed: must be between 0 and"),
        (["data", "prepare", "derm7pt", "ROOT", "--size", "200000"], "--size: must be between 1 and 1024"),
        (["data", "probe", "derm7pt", "ROOT", "--pixels", "100000"], "--pixels: must be between 1 and 256"),
        (["params", "--img-size", "200000"], "--img-size: must be between 1 and 1024"),
        (["demo", "--img-size", "0"], "--img-size: must be between 1 and 1024"),
        (["train", "CONFIG", "--out", "RUN", "--epochs", "-3"], "--epochs: must be at least 1"),
    ],
)
def test_sizes_on_other_command_lines_are_bounded_while_parsing(capsys, argv, message):
    assert message in usage_error(capsys, *argv)


def test_run_config_bootstrap_and_weight_grid_are_bounded(tmp_path):
    from mmfuse.errors import RunConfigError
    from mmfuse.training.config import resolve

    base = {"data": {"root": str(tmp_path)}}
    for section, message in (
        (
            {"bootstrap": {"resamples": 10**11}},
            r"evaluation.bootstrap.resamples must be an integer in \[0, 10000\]",
        ),
        ({"bootstrap": {"seed": -1}}, r"evaluation.bootstrap.seed must be an integer in \[0, 4294967295\]"),
        (
            {"weight_search": {"step": 1e-6}},
            r"evaluation.weight_search.step must divide 1 evenly and be at least",
        ),
        ({"batch_size": 0}, "evaluation.batch_size must be a positive integer, got 0"),
    ):
        with pytest.raises(RunConfigError, match=message):
            resolve({**base, "evaluation": section})


# -- 7. sizes in a config.json -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    return mmfuse.build_model("ammfm-swin", **TINY).save_pretrained(tmp_path_factory.mktemp("m") / "model")


def edited_copy(saved_model: Path, tmp_path: Path, drop: tuple[str, ...] = (), **fields) -> Path:
    """A copy of the saved model whose config.json has ``fields`` set and the keys in ``drop`` removed."""
    folder = tmp_path / "edited"
    folder.mkdir()
    for file in saved_model.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    edited = {key: value for key, value in {**config, **fields}.items() if key not in drop}
    (folder / "config.json").write_text(json.dumps(edited))
    return folder


def _classes(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"img_size": 200000}, "img_size must be an integer from 1 to 1024 (pixels a side), got 200000"),
        ({"img_size": 0}, "img_size must be an integer from 1 to 1024 (pixels a side), got 0"),
        (
            {"fusion_options": {"max_key_tokens": 10**9}},
            "fusion_options.max_key_tokens must be a finite number of at most 16384",
        ),
        (
            {"head": "mlp", "head_options": {"hidden": [512, 10**6]}},
            "head_options.hidden[1] must be a finite number of at most 16384",
        ),
        (
            {"metadata_encoder_options": {"hidden": 1e300}},
            "metadata_encoder_options.hidden must be a finite number",
        ),
        (
            {"primary_options": {"drop_rate": float("nan")}},
            "primary_options.drop_rate must be a finite number",
        ),
        (
            {"tasks": [{"name": "T", "classes": _classes(1001)}]},
            "tasks: task 'T' has 1001 classes; at most 1000",
        ),
        (
            {"tasks": [{"name": f"T{i}", "classes": ["a", "b"]} for i in range(65)]},
            "tasks lists 65 tasks; at most 64",
        ),
        (
            {"metadata": {"fields": [{"name": "site", "kind": "categorical", "categories": _classes(5000)}]}},
            "metadata encodes 5000 values per case; at most 4096",
        ),
    ],
    ids=[
        "img_size-huge",
        "img_size-zero",
        "max_key_tokens",
        "mlp-hidden",
        "metadata-hidden",
        "nan-option",
        "classes",
        "tasks",
        "metadata-width",
    ],
)
def test_a_config_json_size_past_its_bound_is_refused_naming_key_and_value(
    saved_model, tmp_path, fields, message
):
    folder = edited_copy(saved_model, tmp_path, **fields)
    with pytest.raises(ModelConfigError) as caught:
        mmfuse.from_pretrained(folder)
    assert message in str(caught.value)


def test_predict_with_a_200000_px_config_is_one_line_not_an_allocation(saved_model, tmp_path, capsys):
    # Without its stored preprocessing (which would disagree) nothing else stops the 150 GB resize.
    folder = edited_copy(saved_model, tmp_path, drop=("preprocessing",), img_size=200000)
    image = tmp_path / "lesion.png"
    Image.new("RGB", (40, 40), (180, 120, 90)).save(image)
    err = one_line_error(capsys, "predict", folder, "--primary", image)
    assert "img_size" in err and "200000" in err


# -- 10. compare refuses what is not a probability -----------------------------------------------------


def probabilities_of(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.random((n, 2))
    return p / p.sum(axis=1, keepdims=True)


def write_predictions(folder: Path, probabilities: np.ndarray, cells: dict | None = None) -> Path:
    """``predictions_test.csv`` of one binary task; ``cells`` {(row, column): text} overrides cells."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["case_id,T_label,T_prob_neg,T_prob_pos"]
    for i, (neg, pos) in enumerate(probabilities):
        row = [f"c{i}", "pos" if i % 2 else "neg", f"{neg:.6f}", f"{pos:.6f}"]
        for (r, c), text in (cells or {}).items():
            if r == i:
                row[c] = text
        lines.append(",".join(row))
    (folder / "predictions_test.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "-0.2", "1.5", "high"])
def test_compare_refuses_a_probability_that_is_not_one_naming_file_line_and_column(tmp_path, capsys, bad):
    a = write_predictions(tmp_path / "a", probabilities_of(20, seed=1), cells={(6, 3): bad})
    b = write_predictions(tmp_path / "b", probabilities_of(20, seed=2))
    err = one_line_error(capsys, "compare", a, b, "--bootstrap", "10")
    assert str(a / "predictions_test.csv") in err
    assert "line 8 (case 'c6'), column 'T_prob_pos'" in err and f"{bad!r} is not a probability" in err


def test_compare_names_a_short_row_and_an_unknown_label(tmp_path, capsys):
    b = write_predictions(tmp_path / "b", probabilities_of(4, seed=2))
    short = write_predictions(tmp_path / "short", probabilities_of(4, seed=1))
    table = short / "predictions_test.csv"
    table.write_text(table.read_text().replace("c2,neg,", "c2,", 1))
    assert "line 4 (case 'c2'): 3 cells under a header of 4 columns" in one_line_error(
        capsys, "compare", short, b
    )
    odd = write_predictions(tmp_path / "odd", probabilities_of(4, seed=1), cells={(1, 1): "maybe"})
    assert "column 'T_label': label 'maybe' is none of ['neg', 'pos']" in one_line_error(
        capsys, "compare", odd, b
    )


# -- images --------------------------------------------------------------------------------------------


def test_an_exif_rotated_photo_is_decoded_upright(tmp_path):
    from mmfuse.data.images import load_resized, open_rgb
    from mmfuse.data.transforms import create_transform, resolve_data_config

    # Stored 60 wide x 40 high, left half red; EXIF 6 says "turn 90 degrees clockwise to view".
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, :30] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    upright = open_rgb(path, None)
    assert upright.size == (40, 60)
    top = np.asarray(upright)[5, 20]
    assert top[0] > 200 and top[1] < 60  # the red half is now on top
    assert load_resized(path, 20)[2, 10, 0] > 200  # the dataset and the prepared cache: top rows red
    config = resolve_data_config({"img_size": 20, "mean": (0.5,) * 3, "std": (0.5,) * 3})
    transform = create_transform(**config)
    assert np.asarray(transform.pixels(path))[2, 10, 0] > 200  # predict's decoder: top rows red too
    assert np.asarray(transform.pixels(Image.open(path)))[2, 10, 0] > 200  # and for an opened PIL image


def test_a_greyscale_image_gets_a_note_from_predict_and_explain(saved_model, tmp_path, capsys):
    grey = tmp_path / "grey.png"
    Image.new("L", (40, 40), 128).save(grey)
    colour = tmp_path / "colour.png"
    Image.new("RGB", (40, 40), (180, 120, 90)).save(colour)
    assert main(["predict", str(saved_model), "--primary", str(grey), "--auxiliary", str(colour)]) == 0
    err = capsys.readouterr().err
    assert "note: the primary image grey.png is greyscale (L)" in err and "colour.png" not in err
    assert main(["predict", str(saved_model), "--primary", str(grey), "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert len(notes) == 1 and "grey level was copied to R, G and B" in notes[0]
    assert main(["explain", str(saved_model), "--primary", str(grey), "--out", str(tmp_path / "x")]) == 0
    assert "note: the primary image grey.png is greyscale (L)" in capsys.readouterr().err



def test_explain_out_holding_a_fifo_is_refused_and_the_fifo_survives(saved_model, tmp_path, capsys):
    image = tmp_path / "colour.png"
    Image.new("RGB", (40, 40), (180, 120, 90)).save(image)
    out = tmp_path / "x"
    out.mkdir()
    os.mkfifo(pipe := out / "predictions.json")
    err = one_line_error(capsys, "explain", saved_model, "--primary", image, "--out", out)
    assert f"{pipe} is a FIFO" in err and is_fifo(pipe)


def test_the_page_notes_a_greyscale_upload_as_predict_does(tmp_path):
    pytest.importorskip("gradio")
    from mmfuse.gradio_app import check_upload

    Image.new("L", (64, 64), 128).save(grey := tmp_path / "grey.png")
    Image.new("RGB", (64, 64), (180, 120, 90)).save(colour := tmp_path / "colour.png")
    notes = check_upload(grey, "primary image")
    assert len(notes) == 1 and "grey.png" in notes[0] and "is greyscale (L)" in notes[0]
    assert check_upload(colour, "primary image") == []

@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("RGB", None),
        ("P", None),
        ("L", "is greyscale (L)"),
        ("LA", "is greyscale (LA)"),
        ("I;16", "is greyscale with 16-bit (or wider) samples (I;16)"),
        ("CMYK", "is a CMYK JPEG; it was converted to RGB"),
    ],
)
def test_conversion_notes_say_what_decoding_changed(mode, expected):
    from mmfuse.data.images import conversion_note

    note = conversion_note(mode, "JPEG")
    assert note == expected if expected is None else expected in note


def test_a_float_tiff_names_its_file_once(tmp_path):
    from mmfuse.data.images import DataError, open_rgb

    path = tmp_path / "float.tif"
    Image.fromarray(np.full((8, 8), 0.5, np.float32), "F").save(path)
    with pytest.raises(DataError) as caught:
        open_rgb(path, None)
    message = str(caught.value)
    assert message.count("cannot decode image") == 1 and message.count(str(path)) == 1, message
    assert "floating-point pixels (mode F)" in message


def test_an_image_over_the_pixel_limit_names_its_file_once(tmp_path, monkeypatch):
    from mmfuse.data.images import MAX_PIXELS_ENV, DataError, open_rgb

    path = tmp_path / "big.png"
    Image.new("RGB", (100, 100)).save(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(DataError) as caught:
        open_rgb(path, None)
    assert str(caught.value).count(str(path)) == 1 and not str(caught.value).startswith("cannot decode")


# -- reproduce -----------------------------------------------------------------------------------------


def test_reproduce_dry_run_on_a_missing_dataset_folder_fails(tmp_path, capsys):
    err = one_line_error(
        capsys, "reproduce", "table6", "--data", tmp_path / "nope", "--out", tmp_path / "o", "--dry-run"
    )
    assert "--data" in err and "nope" in err and "no such dataset folder" in err
    assert not (tmp_path / "o").exists()
