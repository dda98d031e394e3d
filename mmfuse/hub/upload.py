"""Publishing a saved model folder to the Hub in one commit."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mmfuse.errors import ModelNotFoundError, PublishError
from mmfuse.hub.files import CARD_FILE, MODEL_FILES

log = logging.getLogger(__name__)


def upload_model_files(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    branch: str | None = None,
    create_pr: bool | None = None,
    commit_message: str = "Upload mmfuse model",
    allow_patterns: list[str] | str | None = None,
    ignore_patterns: list[str] | str | None = None,
    delete_patterns: list[str] | str | None = None,
    replace_card: bool = False,
) -> str:
    """Upload exactly config.json, model.safetensors and README.md of ``folder`` in one commit.

    Returns the commit URL. The repository is created if needed. A README.md already in the repository
    (on ``branch``) is kept, since its owner may have written it by hand, unless ``replace_card``. The
    patterns mean what they mean to :meth:`huggingface_hub.HfApi.upload_folder`: ``allow_patterns`` and
    ``ignore_patterns`` choose among the three files, and files of the repository that match
    ``delete_patterns`` (and are not being uploaded) are deleted in the same commit.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelNotFoundError(f"{folder} lacks {missing}; write it with save_pretrained first")
    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        names = list(
            filter_repo_objects(MODEL_FILES, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns)
        )
        if CARD_FILE in names and not replace_card and api.file_exists(repo_id, CARD_FILE, revision=branch):
            names.remove(CARD_FILE)
            log.warning(
                "%s already has a %s: kept it (replace_card=True, or `mmfuse push --replace-card`, overwrites it)",
                repo_id,
                CARD_FILE,
            )
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=folder / name) for name in names]
        if delete_patterns is not None:
            stale = filter_repo_objects(
                api.list_repo_files(repo_id, revision=branch), allow_patterns=delete_patterns
            )
            operations += [CommitOperationDelete(path_in_repo=name) for name in stale if name not in names]
        commit = api.create_commit(
            repo_id, operations, commit_message=commit_message, revision=branch, create_pr=create_pr
        )
    except Exception as exc:  # noqa: BLE001 - HTTP, connection (httpx) and offline errors all mean: not published
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PublishError(
            f"uploading {folder} to the Hub repository {repo_id} failed ({type(exc).__name__}: {reason}). Check "
            "the network (and that HF_HUB_OFFLINE is not set) and the token (`hf auth login`, HF_TOKEN or "
            "--token) with write access"
        ) from None
    return str(commit.commit_url)
