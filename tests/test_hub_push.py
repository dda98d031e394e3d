"""Publishing: push_to_hub and `mmfuse push` upload exactly config, weights and card; the card's content."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from huggingface_hub import CommitOperationDelete, HfApi
from huggingface_hub.hf_api import CommitInfo, RepoUrl

import mmfuse
from mmfuse.cli import main
from mmfuse.hub import MODEL_FILES

METRICS = {
    "test": {
        "final": {
            "avg_auc": 0.8123,
            "avg_acc": 0.7011,
            "mel": {"MEL": 0.9},
            "tasks": {"DIAG": {"acc": 0.6543, "classes": {"MEL": {"auc": 0.8771}}}},
        },
        "primary": {"avg_auc": 0.7555, "avg_acc": 0.6444},
    },
    "head_weights": {"primary": 0.2, "auxiliary": 0.3, "fusion": 0.5},
}
TRAINING_CONFIG = {"train": {"epochs": 250, "batch_size": 24}, "model": {"preset": "ammfm-swin"}}


@pytest.fixture
def tiny_model(tiny_model_kwargs):
    torch.manual_seed(0)
    return mmfuse.build_model("ammfm-swin", **tiny_model_kwargs).eval()


@pytest.fixture
def hub_files():
    """(repo_id, revision or None, path) of the files the mocked Hub already holds; tests add to it."""
    return set()


@pytest.fixture
def hub_uploads(monkeypatch, hub_files):
    """Replace the network calls of an upload; record each commit's files and their bytes."""
    commits = []

    def file_exists(self, repo_id, filename, *, revision=None, **kwargs):
        return (repo_id, revision, filename) in hub_files

    def create_repo(self, repo_id, **kwargs):
        owner = "" if "/" in repo_id else "me/"  # the Hub puts a bare name in the token owner's namespace
        return RepoUrl(f"https://huggingface.co/{owner}{repo_id}")

    def list_repo_files(self, repo_id, *, revision=None, **kwargs):
        return sorted(path for repo, rev, path in hub_files if (repo, rev) == (repo_id, revision))

    def create_commit(self, repo_id, operations, **kwargs):
        files, deleted = {}, []
        for op in operations:
            if isinstance(op, CommitOperationDelete):
                deleted.append(op.path_in_repo)
                continue
            with open(op.path_or_fileobj, "rb") as f:
                files[op.path_in_repo] = f.read()
        commits.append({"repo_id": repo_id, "files": files, "deleted": deleted, **kwargs})
        url = f"https://huggingface.co/{repo_id}/commit/{'0' * 40}"
        return CommitInfo(commit_url=url, commit_message="", commit_description="", oid="0" * 40)

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    monkeypatch.setattr(HfApi, "file_exists", file_exists)
    monkeypatch.setattr(HfApi, "list_repo_files", list_repo_files)
    return commits


def test_push_to_hub_uploads_exactly_config_weights_and_card(tiny_model, tmp_path, hub_uploads):
    url = tiny_model.push_to_hub("derm-lab/tiny", metrics=METRICS, private=True)
    assert url.startswith("https://huggingface.co/derm-lab/tiny/commit/")
    (commit,) = hub_uploads
    assert sorted(commit["files"]) == sorted(MODEL_FILES)
    local = tiny_model.save_pretrained(tmp_path)
    assert commit["files"]["model.safetensors"] == (local / "model.safetensors").read_bytes()
    assert json.loads(commit["files"]["config.json"]) == json.loads((local / "config.json").read_text())
    card = commit["files"]["README.md"].decode()
    assert 'mmfuse.from_pretrained("derm-lab/tiny")' in card and "81.2" in card


def test_save_pretrained_pushes_the_folder_it_wrote_like_the_mixin(tiny_model, tmp_path, hub_uploads):
    """save_pretrained(..., push_to_hub=True, repo_id=...) as huggingface_hub's mixin: the upload keywords
    go with it, the commit URL comes back, and the repository defaults to the folder's name."""
    url = tiny_model.save_pretrained(
        tmp_path / "model",
        push_to_hub=True,
        repo_id="derm-lab/tiny",
        private=True,
        branch="dev",
        commit_message="first weights",
        model_card_kwargs={"metrics": METRICS, "license": "mit"},
    )
    assert url == f"https://huggingface.co/derm-lab/tiny/commit/{'0' * 40}"
    (commit,) = hub_uploads
    assert commit["revision"] == "dev" and commit["commit_message"] == "first weights"
    assert commit["files"] == {name: (tmp_path / "model" / name).read_bytes() for name in MODEL_FILES}
    card = commit["files"]["README.md"].decode()
    assert 'mmfuse.from_pretrained("derm-lab/tiny")' in card and "81.2" in card and "license: mit" in card

    tiny_model.save_pretrained(tmp_path / "named-after-me", push_to_hub=True)
    assert hub_uploads[1]["repo_id"] == "me/named-after-me"


def test_push_patterns_choose_the_files_and_delete_stale_ones(tiny_model, hub_uploads, hub_files):
    hub_files.update({("derm-lab/tiny", None, "old.bin"), ("derm-lab/tiny", None, "config.json")})
    tiny_model.push_to_hub(
        "derm-lab/tiny", ignore_patterns="*.safetensors", delete_patterns=["*.bin", "*.json"]
    )
    (commit,) = hub_uploads
    assert sorted(commit["files"]) == ["README.md", "config.json"]
    assert commit["deleted"] == ["old.bin"]  # config.json matches too, but is being uploaded


def test_cli_push_of_a_run_fills_the_card_from_its_metrics_and_config(
    tiny_model, tmp_path, hub_uploads, capsys
):
    run = tmp_path / "run"
    tiny_model.save_pretrained(run / "model")
    (run / "metrics.json").write_text(json.dumps(METRICS))
    (run / "config.yaml").write_text(yaml.safe_dump(TRAINING_CONFIG))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.safetensors").write_bytes(b"not for upload")

    assert main(["push", str(run), "derm-lab/ammfm-swin"]) == 0
    (commit,) = hub_uploads
    assert sorted(commit["files"]) == sorted(MODEL_FILES)
    card = commit["files"]["README.md"].decode()
    assert "| final | 81.2 | 70.1 |" in card and "| DIAG | 65.4 | MEL 87.7 |" in card
    assert "batch_size: 24" in card
    assert "derm-lab/ammfm-swin" in capsys.readouterr().out


def test_cli_push_of_a_model_directory_uploads_its_files_as_they_are(tiny_model, tmp_path, hub_uploads):
    directory = tiny_model.save_pretrained(tmp_path / "model")
    (directory / "README.md").write_text("---\nlibrary_name: mmfuse\n---\nA card edited by hand.\n")
    (directory / "notes.txt").write_text("not part of the model")
    assert main(["push", str(directory), "derm-lab/tiny", "--branch", "dev"]) == 0
    (commit,) = hub_uploads
    assert commit["revision"] == "dev"
    assert {name: commit["files"][name] for name in MODEL_FILES} == {
        name: (directory / name).read_bytes() for name in MODEL_FILES
    }
    assert sorted(commit["files"]) == sorted(MODEL_FILES)


def test_push_keeps_a_card_the_repository_already_has(tiny_model, tmp_path, hub_uploads, hub_files, caplog):
    """A README.md written on the Hub by hand survives a new upload of the weights."""
    hub_files.add(("derm-lab/tiny", None, "README.md"))
    tiny_model.push_to_hub("derm-lab/tiny", metrics=METRICS)
    run = tmp_path / "run"
    tiny_model.save_pretrained(run / "model")
    assert main(["push", str(run), "derm-lab/tiny"]) == 0
    for commit in hub_uploads:
        assert sorted(commit["files"]) == ["config.json", "model.safetensors"]
    assert "already has a README.md: kept it" in caplog.text
    # The card of another branch is another file: that branch gets the new card.
    assert main(["push", str(run), "derm-lab/tiny", "--branch", "dev"]) == 0
    assert "README.md" in hub_uploads[-1]["files"]


def test_push_replaces_an_existing_card_when_told(tiny_model, tmp_path, hub_uploads, hub_files):
    hub_files.add(("derm-lab/tiny", None, "README.md"))
    run = tmp_path / "run"
    tiny_model.save_pretrained(run / "model")
    (run / "metrics.json").write_text(json.dumps(METRICS))
    assert main(["push", str(run), "derm-lab/tiny", "--replace-card"]) == 0
    tiny_model.push_to_hub("derm-lab/tiny", replace_card=True)
    for commit in hub_uploads:
        assert sorted(commit["files"]) == sorted(MODEL_FILES)
    assert "| final | 81.2 | 70.1 |" in hub_uploads[0]["files"]["README.md"].decode()


def test_cli_push_refuses_a_directory_that_holds_no_model(tmp_path, hub_uploads, capsys):
    assert main(["push", str(tmp_path), "derm-lab/tiny"]) == 1
    assert "neither a run directory" in capsys.readouterr().err
    assert hub_uploads == []


def test_a_failed_upload_names_the_repo_and_what_to_check(tiny_model):
    # No mock: HF_HUB_OFFLINE (set for the test suite) makes the first network call fail.
    with pytest.raises(mmfuse.errors.PublishError, match="derm-lab/tiny.*token"):
        tiny_model.push_to_hub("derm-lab/tiny")


def test_model_card_has_hub_metadata_size_recipe_and_the_research_only_statement(tiny_model, tmp_path):
    card = (
        tiny_model.save_pretrained(tmp_path, metrics=METRICS, training_config=TRAINING_CONFIG) / "README.md"
    ).read_text()
    front_matter = yaml.safe_load(card.split("---")[1])
    assert front_matter["library_name"] == "mmfuse"
    assert front_matter["license"] == "apache-2.0"
    assert {"mmfuse", "dermatology"} <= set(front_matter["tags"])
    assert front_matter["metrics"] == ["roc_auc", "accuracy"]
    params = sum(p.numel() for p in tiny_model.parameters())
    assert f"({params:,})" in card
    assert "It is not a medical device" in card
    assert "epochs: 250" in card
    assert "| primary | 75.5 | 64.4 |" in card


def test_a_card_without_a_run_says_there_are_no_results(tiny_model, tmp_path):
    card = (tiny_model.save_pretrained(tmp_path) / "README.md").read_text()
    assert "No evaluation results were saved with this model." in card
    assert "No training configuration was saved with this model." in card


def test_malformed_metrics_fail_before_anything_is_written(tiny_model, tmp_path):
    with pytest.raises(ValueError, match=r"metrics\['test'\]\['final'\]\['avg_auc'\]"):
        tiny_model.save_pretrained(tmp_path / "model", metrics={"test": {"final": {"avg_auc": "high"}}})
    assert not (tmp_path / "model").exists()


def _front_matter(card: str) -> dict:
    return yaml.safe_load(card.split("---")[1])


def test_card_metadata_follows_hub_conventions(tiny_model, tmp_path):
    config = {
        "model": {"preset": "ammfm-swin", "pretrained": True},
        "data": {"format": "derm7pt", "root": str(tmp_path / "secret" / "release_v0")},
        "train": {"epochs": 250},
    }
    card = (
        tiny_model.save_pretrained(tmp_path / "m", metrics=METRICS, training_config=config) / "README.md"
    ).read_text()
    meta = _front_matter(card)
    assert meta["pipeline_tag"] != "image-classification"  # two images in
    assert meta["datasets"] == ["derm7pt"]
    assert meta["base_model"] == [
        tiny_model.primary_encoder.pretrained_cfg["hf_hub_id"],
        tiny_model.auxiliary_encoder.pretrained_cfg["hf_hub_id"],
    ]
    (entry,) = meta["model-index"]
    results = {(r["dataset"]["split"], m["type"]): m["value"] for r in entry["results"] for m in r["metrics"]}
    assert results == {("test", "roc_auc"): 81.23, ("test", "accuracy"): 70.11}
    assert str(tmp_path) not in card and "root: release_v0" in card


def test_card_license_tags_and_datasets_are_configurable(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(
        tmp_path, license="cc-by-nc-4.0", tags=["skin"], datasets=["me/lesions"], base_model="me/ammfm-base"
    )
    meta = _front_matter((folder / "README.md").read_text())
    assert meta["license"] == "cc-by-nc-4.0"
    assert meta["tags"][:2] == ["mmfuse", "skin"] and "dermatology" not in meta["tags"]
    assert meta["datasets"] == ["me/lesions"] and meta["base_model"] == "me/ammfm-base"


def test_cli_push_passes_card_options_for_a_run(tiny_model, tmp_path, hub_uploads):
    run = tmp_path / "run"
    tiny_model.save_pretrained(run / "model")
    (run / "metrics.json").write_text(json.dumps(METRICS))
    assert main(["push", str(run), "me/x", "--license", "mit", "--tag", "skin", "--dataset", "me/d"]) == 0
    meta = _front_matter(hub_uploads[0]["files"]["README.md"].decode())
    assert meta["license"] == "mit" and meta["datasets"] == ["me/d"] and "skin" in meta["tags"]
    assert main(["push", str(run / "model"), "me/x", "--license", "mit"]) == 1  # a model dir's card is as is


def test_push_without_network_is_one_publish_error(tiny_model, monkeypatch, tmp_path, capsys):
    class ConnectError(Exception):  # what httpx raises when the name does not resolve
        pass

    def unreachable(self, repo_id, **kwargs):
        raise ConnectError("[Errno -2] Name or service not known")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    with pytest.raises(mmfuse.errors.PublishError, match="ConnectError: .*Name or service not known"):
        tiny_model.push_to_hub("derm-lab/tiny")
    tiny_model.save_pretrained(tmp_path / "model")
    assert main(["push", str(tmp_path / "model"), "derm-lab/tiny"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_push_with_space_writes_an_app_that_loads_the_pushed_model(tiny_model, tmp_path, hub_uploads):
    tiny_model.save_pretrained(tmp_path / "model")
    code = main(["push", str(tmp_path / "model"), "someone/tiny", "--with-space", "someone/tiny-demo"])
    assert code == 0
    space = hub_uploads[-1]
    assert space["repo_id"] == "someone/tiny-demo" and space["repo_type"] == "space"
    assert set(space["files"]) == {"app.py", "requirements.txt", "README.md"}
    app = space["files"]["app.py"].decode()
    compile(app, "app.py", "exec")
    assert 'from_pretrained("someone/tiny")' in app and "build_app" in app


INJECTED_ID = 'a/b"); __import__("os").system("id"); ("'


@pytest.mark.parametrize("repo_id", [INJECTED_ID, "a/b\ntitle: x", "a/b/c", "../b", "a/" + "b" * 200])
def test_space_files_refuse_a_repo_id_that_is_not_one(repo_id):
    from mmfuse.space import space_files

    with pytest.raises(mmfuse.errors.UsageError, match="repository id"):
        space_files(repo_id)


def test_space_files_hold_the_repo_id_only_as_quoted_literals():
    import ast

    from mmfuse.space import space_files

    files = space_files("some-one/ammfm.derm7pt_v2")
    tree = ast.parse(files["app.py"])
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)}
    assert "some-one/ammfm.derm7pt_v2" in strings
    calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert calls == {
        "mmfuse.from_pretrained",
        "build_app",
        "demo.queue(default_concurrency_limit=1, max_size=64).launch",
        "demo.queue",
    }
    assert _front_matter(files["README.md"]) == {
        "title": "ammfm.derm7pt_v2 demo",
        "sdk": "gradio",
        "app_file": "app.py",
    }


def test_push_refuses_an_injected_space_or_model_id_before_uploading_anything(
    tiny_model, tmp_path, hub_uploads, capsys
):
    tiny_model.save_pretrained(tmp_path / "model")
    assert main(["push", str(tmp_path / "model"), "me/x", "--with-space", INJECTED_ID]) == 1
    assert main(["push", str(tmp_path / "model"), INJECTED_ID, "--with-space", "me/x-demo"]) == 1
    err = capsys.readouterr().err
    assert err.count("is not a Hub repository id") == 2 and "Traceback" not in err
    assert hub_uploads == []


def test_model_card_shows_task_and_class_names_as_text_never_as_markup(tiny_model_kwargs, tmp_path):
    markdown_it = pytest.importorskip("markdown_it")
    hostile = "<script>alert(1)</script><img src=x onerror=alert(1)>| `x` [l](javascript:alert(1))"
    tasks = [{"name": "DIAG" + hostile, "classes": ["MEL" + hostile, "NEV"]}]
    model = mmfuse.build_model("ammfm-swin", **tiny_model_kwargs, tasks=tasks).eval()
    metrics = {
        "test" + hostile: {
            "final": {
                "avg_auc": 0.8,
                "avg_acc": 0.7,
                "tasks": {"DIAG" + hostile: {"acc": 0.7, "classes": {"MEL" + hostile: {"auc": 0.9}}}},
            },
            "primary" + hostile: {"avg_auc": 0.7, "avg_acc": 0.6},
        },
        "head_weights": {"primary": 0.2, "auxiliary": 0.3, "fusion": 0.5},
        "data": {
            "test": {
                "root": "/r",
                "format": "derm7pt",
                "split": "test",
                "cases": 3,
                "fingerprint": "sha256:0",
            }
        },
    }
    training_config = {"train": {"epochs": 3}, "note": "```\n<script>alert(2)</script>\n```"}
    card = (
        model.save_pretrained(tmp_path, metrics=metrics, training_config=training_config) / "README.md"
    ).read_text()
    page = markdown_it.MarkdownIt("commonmark").enable("table").render(card.split("---", 2)[2])
    assert "<script" not in page and "<img" not in page and 'href="javascript' not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # the names are there, as text
    assert "&lt;script&gt;alert(2)" in page  # the recipe stays inside its code block
    assert "### Split `data`" not in card and "/r" not in card  # the data record is not a split
