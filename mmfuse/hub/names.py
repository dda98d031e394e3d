"""Name resolution: which local folder or Hub repository a ``from_pretrained`` name means.

Nothing here reads a model or touches the network; the order of the rules is in :mod:`mmfuse.hub`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from mmfuse.errors import ModelNotFoundError, UsageError
from mmfuse.hub.files import CONFIG_FILE, PICKLE_SUFFIXES, RUN_MODEL_DIR, WEIGHTS_FILE

LOCAL_PREFIX = "local-dir:"
HUB_PREFIX = "hf-hub:"
NAMESPACE_ENV = "MMFUSE_HUB_NAMESPACE"
DEFAULT_NAMESPACE = "mmfuse"
NAMED_MODELS = ("ammfm-swin", "ammfm-resnet", "ammfm-convnext")
# Short names whose weights mmfuse has published in DEFAULT_NAMESPACE. None yet: training them needs the
# Derm7pt images and a GPU (docs/reproduce.md), so loading one fails at once instead of asking the Hub.
PUBLISHED_MODELS: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ModelLocation:
    """Where a model's files are: a local directory, or a Hub repository at a revision."""

    on_hub: bool
    target: str  # a directory path or a repo id
    revision: str | None = None

    def describe(self) -> str:
        if not self.on_hub:
            return f"local directory {self.target}"
        return f"Hub repository {self.target}" + (f" at revision {self.revision}" if self.revision else "")


def hub_namespace() -> str:
    """The Hub namespace of the short names: ``$MMFUSE_HUB_NAMESPACE`` or :data:`DEFAULT_NAMESPACE`."""
    return os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE


def _is_repo_id(text: str) -> bool:
    try:
        checked_repo_id(text)
    except UsageError:
        return False
    return True


def checked_repo_id(repo_id: object, what: str = "repository id", *, owner_required: bool = True) -> str:
    """``repo_id`` if it is a Hub id ``OWNER/NAME`` (huggingface_hub's rules), else a :class:`UsageError`.

    ``owner_required=False`` also takes a bare ``NAME``, which an upload places in the uploader's own
    namespace (``save_pretrained(folder, push_to_hub=True)`` names the repository after the folder).
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    slashes = (1,) if owner_required else (0, 1)
    if not isinstance(repo_id, str) or repo_id.count("/") not in slashes:
        raise UsageError(f"{what} must be OWNER/NAME, got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise UsageError(f"{what} {repo_id!r} is not a Hub repository id: {exc}") from None
    return repo_id


def _hub_location(spec: str, revision: str | None, original: str) -> ModelLocation:
    repo_id, _, at_revision = spec.partition("@")
    if at_revision and revision and at_revision != revision:
        raise UsageError(f"{original!r} names revision {at_revision!r} but revision={revision!r} was passed")
    if not _is_repo_id(repo_id):
        raise ModelNotFoundError(f"{original!r}: {repo_id!r} is not a Hub repo id of the form OWNER/NAME")
    return ModelLocation(True, repo_id, at_revision or revision)


def resolve_name(name_or_path: str | os.PathLike, revision: str | None = None) -> ModelLocation:
    """Apply the resolution order of this module's docstring; no file is read or downloaded."""
    if isinstance(name_or_path, os.PathLike):
        return _local_location(Path(name_or_path), str(name_or_path), revision)
    name = str(name_or_path)
    if name.startswith(LOCAL_PREFIX):
        return _local_location(Path(name[len(LOCAL_PREFIX) :]), name, revision)
    if name.startswith(HUB_PREFIX):
        return _hub_location(name[len(HUB_PREFIX) :], revision, name)
    if name in NAMED_MODELS:
        location = ModelLocation(True, f"{hub_namespace()}/{name}", revision)
        if Path(name).is_dir():
            warnings.warn(
                f"{name!r} is a published model name, so it loads {location.target} from the Hub; the "
                f"folder {name!r} in the working directory is not used (load it with "
                f"'{LOCAL_PREFIX}{name}' or './{name}')",
                stacklevel=3,
            )
        return location
    if Path(name).is_dir():
        return _local_location(Path(name), name, revision)
    if _is_repo_id(name.partition("@")[0]):
        return _hub_location(name, revision, name)
    raise ModelNotFoundError(
        f"cannot resolve model {name!r}: it is not an existing directory, a Hub repo id (OWNER/NAME), "
        f"or a published name ({', '.join(NAMED_MODELS)}). Use '{LOCAL_PREFIX}PATH' for a folder saved "
        f"with save_pretrained, or '{HUB_PREFIX}OWNER/NAME' for a Hub repository"
    )


def _local_location(path: Path, original: str, revision: str | None) -> ModelLocation:
    if revision is not None:
        raise UsageError(f"revision={revision!r} applies to Hub repositories, not to the path {original!r}")
    if path.is_file():
        kind = "a pickle checkpoint" if path.suffix in PICKLE_SUFFIXES else "a file"
        raise ModelNotFoundError(
            f"{original!r} is {kind}; from_pretrained takes the directory written by save_pretrained "
            f"(holding {CONFIG_FILE} and {WEIGHTS_FILE})"
        )
    if not path.is_dir():
        raise ModelNotFoundError(f"model directory {original!r} does not exist")
    if not (path / CONFIG_FILE).is_file() and (path / RUN_MODEL_DIR / CONFIG_FILE).is_file():
        path = path / RUN_MODEL_DIR  # a training run folder: its saved model
    return ModelLocation(False, str(path))


def refuse_unpublished(name: object, location: ModelLocation) -> None:
    """A short name whose weights are not published fails here, with no network round trip."""
    if not isinstance(name, str) or name not in NAMED_MODELS or name in PUBLISHED_MODELS:
        return
    if location.target != f"{DEFAULT_NAMESPACE}/{name}":
        return  # $MMFUSE_HUB_NAMESPACE points at someone's copy: ask the Hub
    raise ModelNotFoundError(
        f"the weights of {name!r} are not published yet: training them needs the Derm7pt images and a GPU "
        f"(docs/reproduce.md). Build the untrained architecture with mmfuse.build_model({name!r}), train your "
        f"own (`mmfuse train`), load a saved copy with '{LOCAL_PREFIX}PATH', or set ${NAMESPACE_ENV} to a Hub "
        "namespace that publishes it"
    )
