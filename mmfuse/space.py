"""The files of a Hugging Face Space that serves a Hub model with mmfuse's demo page.

The model's repository id ends up in Python source (``app.py``) and YAML (``README.md``'s front matter), so
it is checked with huggingface_hub's own validator first and then written only as a quoted literal: JSON
for the Python string, ``yaml.safe_dump`` for the front matter. No id can add a statement or a key.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml

from mmfuse.hub.names import checked_repo_id

SPACE_APP = '''"""Hugging Face Space: the mmfuse demo page for {repo_id} (written by `mmfuse push --with-space`)."""

import mmfuse
from mmfuse.gradio_app import build_app

model = mmfuse.from_pretrained({literal})
demo = build_app(model, title={literal})

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=1, max_size=64).launch(max_file_size={max_file_size})
'''


def space_files(repo_id: str, *, mmfuse_requirement: str = "mmfuse[demo]") -> dict[str, str]:
    """``{file name: text}`` of a Gradio Space that serves the Hub model ``repo_id`` with the demo page."""
    from mmfuse.gradio_app import MAX_UPLOAD_MB

    repo_id = checked_repo_id(repo_id, "the model's repository id")
    front_matter = {"title": f"{repo_id.split('/')[-1]} demo", "sdk": "gradio", "app_file": "app.py"}
    return {
        "app.py": SPACE_APP.format(
            repo_id=repo_id,  # in the docstring: validated ids have no quote or backslash
            literal=json.dumps(repo_id),
            max_file_size=json.dumps(f"{int(MAX_UPLOAD_MB)}mb"),
        ),
        "requirements.txt": f"{mmfuse_requirement}\n",
        "README.md": (
            f"---\n{yaml.safe_dump(front_matter, sort_keys=False)}---\n\n"
            f"Try [{repo_id}](https://huggingface.co/{repo_id}). For research only — not a medical device.\n"
        ),
    }


def push_space(
    model_repo_id: str,
    space_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str = "Add the mmfuse demo page",
) -> str:
    """Create (or update) the Gradio Space ``space_id`` that serves ``model_repo_id``; returns its URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    space_id = checked_repo_id(space_id, "--with-space")
    files = space_files(model_repo_id)
    api = HfApi(token=token)
    api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mmfuse-space-") as folder:
        operations = []
        for name, text in files.items():
            (Path(folder) / name).write_text(text, encoding="utf-8")
            operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(folder) / name)))
        api.create_commit(space_id, operations, commit_message=commit_message, repo_type="space")
    return f"https://huggingface.co/spaces/{space_id}"
