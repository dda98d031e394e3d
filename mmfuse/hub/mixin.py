"""``FusionModel``: the network with huggingface_hub's ModelHubMixin (save, push, load, model card)."""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelHubMixin

from mmfuse.errors import UsageError
from mmfuse.hub import loading
from mmfuse.hub.files import CARD_FILE, WEIGHTS_FILE
from mmfuse.hub.serialization import hub_config, warn_script_components
from mmfuse.hub.upload import upload_model_files
from mmfuse.model import FusionNetwork
from mmfuse.model_card import render_model_card

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

# The card's inputs that save_pretrained and push_to_hub also take as keywords of their own.
CARD_KEYWORDS = frozenset(
    p.name for p in inspect.signature(render_model_card).parameters.values() if p.kind is p.KEYWORD_ONLY
) - {"card_data", "repo_id"}


class HubMixin(
    ModelHubMixin,
    library_name="mmfuse",
    license="apache-2.0",
    pipeline_tag="other",  # two images in: no Hub pipeline fits (see mmfuse.model_card.PIPELINE_TAG)
    tags=["mmfuse", "multimodal", "multi-label", "medical-imaging", "dermatology"],
):
    """``save_pretrained``/``push_to_hub``/``from_pretrained`` for :class:`mmfuse.FusionModel`.

    huggingface_hub's :class:`~huggingface_hub.ModelHubMixin` supplies the card metadata and the save
    flow; mmfuse replaces its loader (which tries a same-named local folder first, loads non-strictly
    and falls back to pickles) with :func:`mmfuse.hub.loading.from_pretrained`, keeping the mixin's
    keywords. ``tests/test_hub_contract.py`` holds the three methods to the installed mixin's signatures.
    """

    def _save_pretrained(self, save_directory: Path) -> None:
        import errno

        from safetensors import SafetensorError
        from safetensors.torch import save_model

        path = save_directory / WEIGHTS_FILE
        try:
            save_model(self, str(path))  # handles shared tensors, unlike save_file
        except SafetensorError as exc:  # safetensors reports a failed write (a full disk) as its own error
            raise OSError(errno.EIO, f"cannot write the weights ({exc})", str(path)) from None

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        config: Mapping | None = None,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        model_card_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Path | str:
        """Write config.json, model.safetensors and README.md (the model card) into ``save_directory``.

        The keywords are :meth:`huggingface_hub.ModelHubMixin.save_pretrained`'s, with its meaning:
        ``push_to_hub=True`` then uploads the folder to ``repo_id`` (default: the folder's name) with
        :meth:`push_to_hub`'s upload keywords (``token``, ``private``, ``branch``...) and returns the commit
        URL; otherwise the directory is returned. ``config`` may only repeat the model's own config:
        config.json is always the model's, since another one would not load its weights.

        The card's inputs, in ``model_card_kwargs`` or as keywords of their own: ``metrics`` (a run's
        metrics.json: the results table and ``model-index``), ``training_config`` (the recipe), and the Hub
        metadata ``license``, ``tags``, ``datasets``, ``base_model`` (:func:`mmfuse.model_card.render_model_card`).
        """
        card = {**(model_card_kwargs or {}), **{k: kwargs.pop(k) for k in CARD_KEYWORDS & kwargs.keys()}}
        if kwargs and not push_to_hub:
            raise TypeError(f"save_pretrained() got unexpected keyword arguments {sorted(kwargs)}")
        warn_script_components(hub_config(self)["providers"], stacklevel=2)
        directory = Path(save_directory)
        if push_to_hub and repo_id is None:
            repo_id = directory.name  # as the mixin does; the card's loading example names it
        config = self._checked_config(config)
        model_card = self.generate_model_card(repo_id=repo_id, **card)
        directory.mkdir(parents=True, exist_ok=True)
        # Written first, so that the mixin keeps it rather than writing its template.
        model_card.save(directory / CARD_FILE)
        super().save_pretrained(directory, config=config)
        if push_to_hub:
            return upload_model_files(directory, repo_id, **kwargs)
        return directory

    def _checked_config(self, config: Mapping | None) -> dict:
        saved = hub_config(self)
        if config is not None and dict(config) not in (saved, self.config):
            raise UsageError(
                "config= must be the model's own config (model.config): config.json describes the "
                "architecture of the saved weights; build a model from the other config instead"
            )
        return saved

    def generate_model_card(self, *args, repo_id: str | None = None, **card: Any) -> ModelCard:
        return render_model_card(
            self, hub_config(self), card_data=self._hub_mixin_info.model_card_data, repo_id=repo_id, **card
        )

    def push_to_hub(
        self,
        repo_id: str,
        *,
        config: Mapping | None = None,
        commit_message: str = "Upload mmfuse model",
        private: bool | None = None,
        token: str | None = None,
        branch: str | None = None,
        create_pr: bool | None = None,
        allow_patterns: list[str] | str | None = None,
        ignore_patterns: list[str] | str | None = None,
        delete_patterns: list[str] | str | None = None,
        model_card_kwargs: Mapping[str, Any] | None = None,
        replace_card: bool = False,
        **card: Any,
    ) -> str:
        """Save into a temporary folder and upload its config, weights and card in one commit.

        The keywords are :meth:`huggingface_hub.ModelHubMixin.push_to_hub`'s, with its meaning (the
        patterns filter config.json, model.safetensors and README.md, the only files uploaded), plus
        ``replace_card``: a README.md already on the Hub is kept unless it is set
        (:func:`~mmfuse.hub.upload.upload_model_files`). The card's inputs are :meth:`save_pretrained`'s.
        Returns the commit URL.
        """
        with tempfile.TemporaryDirectory() as tmp:
            return self.save_pretrained(
                Path(tmp) / "model",
                config=config,
                repo_id=repo_id,
                push_to_hub=True,
                model_card_kwargs=model_card_kwargs,
                commit_message=commit_message,
                private=private,
                token=token,
                branch=branch,
                create_pr=create_pr,
                allow_patterns=allow_patterns,
                ignore_patterns=ignore_patterns,
                delete_patterns=delete_patterns,
                replace_card=replace_card,
                **card,
            )

    from_pretrained = classmethod(loading.from_pretrained)


class FusionModel(FusionNetwork, HubMixin):
    """AMMFM and its relatives, with saving, loading and publishing; build one with
    :func:`mmfuse.build_model`, load one with :func:`mmfuse.from_pretrained`.

    The architecture is :class:`mmfuse.model.FusionNetwork` (the layer below); this class adds
    ``save_pretrained``, ``push_to_hub``, ``from_pretrained`` and the model card.
    """


# The same function as FusionModel.from_pretrained (one signature): a name that reads well at the top level.
from_pretrained = FusionModel.from_pretrained
