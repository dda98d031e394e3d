"""`mmfuse serve` against hostile input, round 2: example releases that point outside themselves, files
beside the examples, huge uploads, and options Gradio cannot take."""

from __future__ import annotations

import csv
import json
import logging
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mmfuse
from mmfuse.cli import build_parser, main
from mmfuse.data.errors import DataError

pytest.importorskip("gradio")
pytest.importorskip("pytorch_grad_cam")

from mmfuse.errors import UsageError  # noqa: E402
from mmfuse.gradio_app import (  # noqa: E402
    EXPLAIN_MAX_SIDE,
    PageModel,
    build_app,
    example_files,
    example_pairs,
)
from mmfuse.gradio_server import check_listen_address, launch  # noqa: E402

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return mmfuse.build_model(
        "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=64
    ).eval()


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A synthetic example release, written once; tests that damage one copy it first."""
    root = tmp_path_factory.mktemp("examples") / "release"
    example_pairs(root)
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_clinic(root: Path, value: str) -> None:
    """Point row 0's clinical image at ``value``, as an attacker editing ``meta.csv`` would."""
    meta = root / "meta" / "meta.csv"
    with meta.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    rows[0]["clinic"] = value
    with meta.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _copy_release(release: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(release, to))


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_an_example_release_pointing_outside_itself_is_refused(release, tmp_path, capsys, how):
    root = _copy_release(release, tmp_path / "release")
    (tmp_path / "secret.jpg").write_bytes((root / "images" / _first_image(root)).read_bytes())
    if how == "absolute":
        written = "/etc/passwd"
    elif how == "dotdot":
        written = "../../secret.jpg"
    else:
        os.symlink(tmp_path / "secret.jpg", root / "images" / "link.jpg")
        written = "link.jpg"
    _set_clinic(root, written)
    with pytest.raises(DataError, match="outside the dataset folder") as info:
        example_pairs(root)
    assert "row 0" in str(info.value) and "'clinic'" in str(info.value)
    assert f"cannot serve examples from {root}" in str(info.value)

    # the command refuses it before loading any model (MODEL need not exist), with exit 1 and one message
    port = str(_free_port())
    assert main(["serve", str(tmp_path / "no-model"), "--port", port, "--examples", str(root)]) == 1
    err = capsys.readouterr().err
    assert "outside the dataset folder" in err and "Traceback" not in err


def _first_image(root: Path) -> str:
    with (root / "meta" / "meta.csv").open(newline="") as fh:
        return next(csv.DictReader(fh))["derm"]


def test_an_example_that_is_not_an_image_file_is_refused(release, tmp_path):
    root = _copy_release(release, tmp_path / "release")
    (root / "images" / "notes.jpg").write_text("not an image\n")
    _set_clinic(root, "notes.jpg")
    with pytest.raises(DataError, match="notes.jpg"):
        example_pairs(root)


@pytest.fixture(scope="module")
def served(model, release):
    """The page with the release's examples, launched as `mmfuse serve` launches it (its default options)."""
    port = str(_free_port())
    args = build_parser().parse_args(["serve", "MODEL", "--port", port, "--max-upload-mb", "20"])
    examples = example_pairs(release)
    app = build_app(model, examples=examples)
    launch(app, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, block=False)
    try:
        yield app, examples, f"http://127.0.0.1:{args.port}/gradio_api/"
    finally:
        app.close()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_server_hands_out_the_example_files_and_nothing_beside_them(served, release):
    app, examples, api = served
    example = Path(examples[0][0])
    beside = example.with_name("private.txt")  # a file next to an example image
    beside.write_text("not for visitors\n")
    assert _status(f"{api}file={example}") == 200
    assert _status(f"{api}file={beside}") == 403
    assert _status(f"{api}file={release / 'meta' / 'meta.csv'}") == 403
    shown = {p for pair in examples for p in pair if p}
    assert app.allowed_paths == example_files(examples) == sorted(os.path.realpath(p) for p in shown)
    assert all(Path(p).is_file() for p in app.allowed_paths)  # files, never their folders


def test_the_command_line_upload_limit_reaches_gradio_in_bytes(served):
    app, _, _ = served
    assert app.max_file_size == 20 * MIB  # parsed from "--max-upload-mb 20": "20.0mb" made Gradio raise
    args = build_parser().parse_args(["serve", "M", "--max-upload-mb", "0.5"])
    assert args.max_upload_mb == 0.5
    import gradio as gr

    with pytest.raises(UsageError, match="max_upload_mb"):
        launch(gr.Blocks(), port=_free_port(), max_upload_mb=float("nan"), block=False)


def test_a_request_for_a_server_file_is_refused_and_logged_in_one_line(served, caplog, capfd):
    _, _, api = served
    body = {
        "data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, None],
        "fn_index": 0,
        "session_hash": "probe",
    }
    request = urllib.request.Request(
        f"{api}queue/join", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with caplog.at_level(logging.WARNING, logger="mmfuse.gradio_server"):
        urllib.request.urlopen(request).read()
        events = []
        with urllib.request.urlopen(f"{api}queue/data?session_hash=probe", timeout=60) as stream:
            for line in stream:  # server-sent events, until the request is answered
                if line.startswith(b"data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1].get("msg") == "process_completed":
                        break
    assert events[-1]["success"] is False and "root:x:0" not in json.dumps(events)
    refused = [r for r in caplog.records if "/etc/passwd" in r.getMessage()]
    assert len(refused) == 1 and "\n" not in refused[0].getMessage()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("value", ["99999", "-1", "0", "http"])
def test_a_port_out_of_range_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "MODEL", "--port", value])
    assert info.value.code == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf", "lots"])
def test_an_unusable_upload_limit_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "MODEL", "--max-upload-mb", value])
    assert info.value.code == 2
    assert "--max-upload-mb" in capsys.readouterr().err


def test_a_host_that_is_not_this_machines_is_named(tmp_path, capsys):
    port = str(_free_port())
    assert main(["serve", str(tmp_path / "no-model"), "--host", "999.1.1.1", "--port", port]) == 1
    err = capsys.readouterr().err
    assert "999.1.1.1" in err and "Cannot find empty port" not in err and "Traceback" not in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(UsageError, match=f"port {busy.getsockname()[1]} .* in use"):
            check_listen_address("127.0.0.1", busy.getsockname()[1])


def _lesion(path: Path, width: int, height: int) -> Path:
    pixels = np.full((height, width, 3), (214, 170, 140), np.uint8)
    y, x = np.ogrid[:height, :width]
    pixels[(x - width // 2) ** 2 + (y - height // 2) ** 2 < (height // 5) ** 2] = (80, 50, 40)
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_huge_upload_is_explained_on_a_bounded_copy(model, tmp_path, monkeypatch, suffix):
    import mmfuse.explain as explain_module

    upload = _lesion(tmp_path / f"huge{suffix}", 4000, 2000)
    sizes = []
    resize_map = explain_module._resize_map
    monkeypatch.setattr(
        explain_module,
        "_resize_map",
        lambda heat, h, w, **kw: (sizes.append((h, w)), resize_map(heat, h, w, **kw))[1],
    )
    inputs = []
    hook = model.register_forward_pre_hook(
        lambda _m, args, kwargs: inputs.append(kwargs["primary"].shape[-2:]), with_kwargs=True
    )
    try:
        analysis = PageModel(model).analyse(str(upload), str(upload))
    finally:
        hook.remove()
    assert {pixels.shape for pixels, _ in analysis.overlays} == {(512, EXPLAIN_MAX_SIDE, 3)}
    assert sizes and set(sizes) == {(512, EXPLAIN_MAX_SIDE)}  # no map was ever made at full size
    assert inputs and all(max(shape) <= 64 for shape in inputs)  # the model sees its own input size
    assert "1024×512" in analysis.overlays[0][1]


def test_serve_announces_its_address_only_once_the_port_answers(model, release, monkeypatch, capsys):
    import gradio as gr

    import mmfuse.runs as runs

    port = _free_port()
    answered = []

    def block_thread(app):  # `serve` blocks here after announcing; record what a visitor would get, then stop
        answered.append((capsys.readouterr().out, _status(f"http://127.0.0.1:{port}/")))
        app.close()

    monkeypatch.setattr(gr.Blocks, "block_thread", block_thread)
    monkeypatch.setattr(runs, "load_run_or_model", lambda name: model)
    args = ["serve", "MODEL", "--port", str(port), "--examples", str(release), "--threads", "1"]
    assert main(args) == 0
    [(printed, status)] = answered
    assert printed.strip() == f"serving MODEL on http://127.0.0.1:{port} (Ctrl-C stops)"
    assert status == 200


def test_a_port_taken_after_the_check_is_named_as_the_port_option(model, release, monkeypatch, capsys):
    """Another program can take the port while the model loads: the error names --port, not Gradio's variable."""
    import mmfuse.gradio_server as gradio_server
    import mmfuse.runs as runs

    monkeypatch.setattr(runs, "load_run_or_model", lambda name: model)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # the race: the port is taken after the check
        monkeypatch.setattr(gradio_server, "check_listen_address", lambda host, port: None)
        assert main(["serve", "MODEL", "--port", str(port), "--examples", str(release)]) == 1
    captured = capsys.readouterr()
    assert f"port {port}" in captured.err and "--port" in captured.err
    assert "GRADIO_SERVER_PORT" not in captured.err and "Traceback" not in captured.err
    assert "serving" not in captured.out  # nothing announced for a server that never listened


def test_the_page_api_names_its_outputs_and_leaves_the_auxiliary_image_optional(model):
    info = build_app(model, examples=[]).get_api_info()["named_endpoints"]["/classify"]
    primary, auxiliary = info["parameters"]
    assert primary["parameter_has_default"] is False and auxiliary["parameter_has_default"] is True
    assert "(required)" not in auxiliary["label"]
    labels = [output["label"] for output in info["returns"]]
    assert labels[:4] == ["status", "seven-point score", "head weights", "Where the model looked"]
    assert labels[4:] == [task.name for task in model.tasks]
