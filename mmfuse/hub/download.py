"""Fetching one file of a model location: a local path, or a download through huggingface_hub.

huggingface_hub's cache, ``HF_HUB_OFFLINE``, ``HF_TOKEN`` and revisions apply; its errors become one
:class:`~mmfuse.errors.ModelNotFoundError` that names the repository and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mmfuse.errors import ModelNotFoundError
from mmfuse.hub.names import LOCAL_PREFIX, NAMED_MODELS, NAMESPACE_ENV, ModelLocation, hub_namespace


@dataclass(frozen=True)
class HubDownload:
    """How files are fetched from the Hub: the download keywords ``from_pretrained`` was given.

    They mean what they mean to :func:`huggingface_hub.hf_hub_download`; a local folder ignores them.
    """

    token: str | bool | None = None
    cache_dir: str | os.PathLike | None = None
    force_download: bool = False
    local_files_only: bool = False


def fetch(
    location: ModelLocation, filename: str, download: HubDownload, *, required: bool = True
) -> Path | None:
    """The local path of ``filename``; ``None`` when it does not exist and ``required`` is False."""
    if not location.on_hub:
        path = Path(location.target) / filename
        if path.is_file():
            return path
        if required:
            raise ModelNotFoundError(
                f"{location.describe()} has no {filename}; it is not a model saved with save_pretrained"
            )
        return None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = location.describe()
    try:
        return Path(
            hf_hub_download(
                location.target,
                filename,
                revision=location.revision,
                cache_dir=download.cache_dir,
                token=download.token,
                force_download=download.force_download,
                local_files_only=download.local_files_only,
            )
        )
    except LocalEntryNotFoundError:
        raise ModelNotFoundError(
            f"{filename} of {where} is not in the Hugging Face cache and cannot be downloaded (offline: "
            "HF_HUB_OFFLINE is set, local_files_only=True or the Hub is unreachable). Download it once where "
            f"there is network (`hf download {location.target}`, then copy the cache and point HF_HUB_CACHE or "
            f"cache_dir at it), or load a local copy with '{LOCAL_PREFIX}PATH'"
        ) from None
    except GatedRepoError:
        raise ModelNotFoundError(
            f"{where} is gated: accept its terms on huggingface.co and log in (`hf auth login` or HF_TOKEN)"
        ) from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"{where} does not exist, or it is private and no token was given. Check the name (published "
            f"names: {', '.join(NAMED_MODELS)} in namespace {hub_namespace()!r}, set by ${NAMESPACE_ENV}) or "
            "log in (`hf auth login`, HF_TOKEN or token=)"
        ) from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(
            f"{where} has no such revision; pass an existing branch, tag or commit"
        ) from None
    except RemoteEntryNotFoundError:
        if required:
            raise ModelNotFoundError(
                f"{where} has no {filename}; it was not published with mmfuse's save_pretrained/push_to_hub"
            ) from None
        return None
    except HfHubHTTPError as exc:
        raise ModelNotFoundError(f"downloading {filename} from {where} failed: {exc}") from None
