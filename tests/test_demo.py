"""The demo page's logic and server: bad uploads get a message and the server keeps answering."""

from __future__ import annotations

import re
import socket
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mmfuse
from tests.demo_inputs import CONVERTED, REJECTED, bad_inputs, good_image

pytest.importorskip("gradio")
pytest.importorskip("pytorch_grad_cam")

from mmfuse.data.formats.derm7pt import seven_point_score  # noqa: E402
from mmfuse.gradio_app import (  # noqa: E402
    NOTICE,
    PageModel,
    UploadError,
    build_app,
    seven_point_markdown,
)
from mmfuse.gradio_server import launch  # noqa: E402
from mmfuse.space import space_files  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return mmfuse.build_model(
        "ammfm-swin", primary="test_convnext", auxiliary="test_efficientnet", img_size=64
    ).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    return {
        **bad_inputs(folder / "bad"),
        "primary": good_image(folder / "derm.jpg", 1),
        "auxiliary": good_image(folder / "clinic.jpg", 2),
    }


@pytest.mark.parametrize("kind", REJECTED)
def test_bad_uploads_are_refused_with_a_message_naming_the_file(model, files, kind):
    with pytest.raises(UploadError) as info:
        PageModel(model).analyse(str(files[kind]), None, (files[kind].name, None))
    assert files[kind].name in str(info.value)


@pytest.mark.parametrize("kind", CONVERTED)
def test_cmyk_and_16_bit_images_answer_with_a_note(model, files, kind):
    analysis = PageModel(model).analyse(str(files[kind]), str(files["auxiliary"]))
    assert analysis.prediction["auxiliary_used"]
    assert any(files[kind].name in note for note in analysis.notes)


def test_missing_auxiliary_is_said_and_matches_predict(model, files):
    from mmfuse.evaluation.pair import predict_pair

    analysis = PageModel(model).analyse(str(files["primary"]))
    assert analysis.prediction == predict_pair(model, files["primary"])
    assert "No clinical image" in analysis.notes[0]
    # the uploaded image, one Grad-CAM per task, no attention (the fusion blocks did not run)
    assert len(analysis.overlays) == 1 + len(model.tasks)


def test_seven_point_markdown_states_rule_and_flag():
    tasks = {t: {"predicted": "ABS"} for t in ("PN", "BWV", "VS", "STR", "PIG", "DaG", "RS")}
    tasks["PN"]["predicted"], tasks["STR"]["predicted"] = "ATP", "IR"
    text = seven_point_markdown(
        {"tasks": tasks, "seven_point": {"score": 3, "melanoma": True, "threshold": 3}}
    )
    assert "score: 3" in text and "melanoma suspected" in text
    assert "PN=ATP) +2" in text and "STR=IR) +1" in text


@given(st.lists(st.sampled_from(["ABS", "REG", "IR", "ATP", "PRS"]), min_size=7, max_size=7))
def test_the_page_explains_the_score_the_evaluation_computes(classes):
    """The points the page lists as scored add up to the seven-point score, for any predicted classes."""
    predicted = dict(zip(("PN", "BWV", "VS", "STR", "PIG", "DaG", "RS"), classes, strict=True))
    score = seven_point_score(predicted)
    tasks = {task: {"predicted": cls} for task, cls in predicted.items()}
    text = seven_point_markdown(
        {"tasks": tasks, "seven_point": {"score": score, "melanoma": score >= 3, "threshold": 3}}
    )
    assert sum(int(points) for points in re.findall(r"\) \+(\d)", text)) == score


def test_space_app_is_valid_python_that_builds_the_page():
    generated = space_files("someone/ammfm-derm7pt")
    compile(generated["app.py"], "app.py", "exec")
    assert 'from_pretrained("someone/ammfm-derm7pt")' in generated["app.py"]
    assert "sdk: gradio" in generated["README.md"]
    assert generated["requirements.txt"].startswith("mmfuse[demo]")


def test_a_generated_space_app_runs_and_builds_the_page(model, monkeypatch):
    """app.py imports the page's module by name: it must run against this mmfuse, not only compile."""
    import gradio as gr

    monkeypatch.setattr(mmfuse, "from_pretrained", lambda name: model)
    namespace = {"__name__": "app"}  # imported, as a Space's runner does: the page is built, not launched
    exec(compile(space_files("someone/ammfm-derm7pt")["app.py"], "app.py", "exec"), namespace)
    assert isinstance(namespace["demo"], gr.Blocks)
    assert namespace["demo"].title == "someone/ammfm-derm7pt"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_survives_bad_uploads_and_answers_eight_clients(model, files, tmp_path):
    from gradio_client import Client, handle_file

    app = build_app(model, examples=[[str(files["primary"]), str(files["auxiliary"])]])
    port = _free_port()
    launch(app, port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for kind in REJECTED:
            status = client.predict(handle_file(str(files[kind])), None, api_name="/classify")[0]
            assert "Cannot use this upload" in status and files[kind].name in status
        pair = (handle_file(str(files["primary"])), handle_file(str(files["auxiliary"])))

        clients = [Client(f"http://127.0.0.1:{port}/", verbose=False) for _ in range(8)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda c: c.predict(*pair, api_name="/classify"), clients))
        assert all(a[0].startswith("Result ready") for a in answers)
        assert len({a[4]["label"] for a in answers}) == 1  # every client got the same DIAG answer
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config") as response:
            page = response.read().decode()
        assert "not a medical device" in page and NOTICE[:20] in page
    finally:
        app.close()


def test_a_space_written_by_0_1_0_still_imports_the_page():
    """0.1.0's Spaces say ``from mmfuse.demo import build_app`` and install an unpinned mmfuse: they must keep building."""
    import importlib
    import sys

    from mmfuse.gradio_app import build_app

    sys.modules.pop("mmfuse.demo", None)
    with pytest.warns(DeprecationWarning, match="mmfuse.gradio_app"):
        old = importlib.import_module("mmfuse.demo")
    assert old.build_app is build_app
