"""``FusionModel``: the network with huggingface_hub's ModelHubMixin (save, push, load, model card)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelHubMixin

from mmfuse.hub.files import CARD_FILE, WEIGHTS_FILE
from mmfuse.hub.loading import load_pretrained
from mmfuse.hub.serialization import hub_config, warn_script_components
from mmfuse.hub.upload import upload_model_files
from mmfuse.model import FusionNetwork
from mmfuse.model_card import render_model_card

if TYPE_CHECKING:
    from huggingface_hub import ModelCard


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
    and falls back to pickles) with :func:`from_pretrained`.
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
        metrics: Mapping | None = None,
        training_config: Mapping | None = None,
        repo_id: str | None = None,
        **card: Any,
    ) -> Path:
        """Write config.json, model.safetensors and README.md (the model card) into ``save_directory``.

        ``metrics`` (a run's metrics.json) fills the card's results table and ``model-index``;
        ``training_config`` its recipe; ``repo_id`` its loading example. ``card`` takes the Hub metadata
        ``license``, ``tags``, ``datasets`` and ``base_model`` (see
        :func:`mmfuse.model_card.render_model_card`). Returns the directory.
        """
        config = hub_config(self)
        warn_script_components(config["providers"], stacklevel=2)
        directory = Path(save_directory)
        card = self.generate_model_card(
            metrics=metrics, training_config=training_config, repo_id=repo_id, **card
        )
        directory.mkdir(parents=True, exist_ok=True)
        card.save(directory / CARD_FILE)  # written first, so the mixin keeps it rather than its template
        super().save_pretrained(directory, config=config)
        return directory

    def generate_model_card(
        self,
        *args,
        metrics: Mapping | None = None,
        training_config: Mapping | None = None,
        repo_id: str | None = None,
        license: str | None = None,
        tags: list[str] | None = None,
        datasets: list[str] | None = None,
        base_model: str | list[str] | None = None,
        **kwargs,
    ) -> ModelCard:
        return render_model_card(
            self,
            hub_config(self),
            card_data=self._hub_mixin_info.model_card_data,
            metrics=metrics,
            training_config=training_config,
            repo_id=repo_id,
            license=license,
            tags=tags,
            datasets=datasets,
            base_model=base_model,
        )

    def push_to_hub(
        self,
        repo_id: str,
        *,
        metrics: Mapping | None = None,
        training_config: Mapping | None = None,
        token: str | None = None,
        private: bool | None = None,
        branch: str | None = None,
        create_pr: bool = False,
        commit_message: str = "Upload mmfuse model",
        replace_card: bool = False,
        **card: Any,
    ) -> str:
        """Save into a temporary folder and upload its config, weights and card in one commit.

        ``card`` takes ``license``, ``tags``, ``datasets`` and ``base_model`` as :meth:`save_pretrained` does.
        A README.md already on the Hub is kept unless ``replace_card`` (see :func:`upload_model_files`).
        """
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(
                Path(tmp) / "model",
                metrics=metrics,
                training_config=training_config,
                repo_id=repo_id,
                **card,
            )
            return upload_model_files(
                folder,
                repo_id,
                token=token,
                private=private,
                branch=branch,
                create_pr=create_pr,
                commit_message=commit_message,
                replace_card=replace_card,
            )

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs) -> FusionModel:
        """Same as :func:`mmfuse.from_pretrained`, building this class."""
        return load_pretrained(cls, name_or_path, **kwargs)


class FusionModel(FusionNetwork, HubMixin):
    """AMMFM and its relatives, with saving, loading and publishing; build one with
    :func:`mmfuse.build_model`, load one with :func:`mmfuse.from_pretrained`.

    The architecture is :class:`mmfuse.model.FusionNetwork` (the layer below); this class adds
    ``save_pretrained``, ``push_to_hub``, ``from_pretrained`` and the model card.
    """


def from_pretrained(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    map_location: Any = "cpu",
    tasks: Any = None,
) -> FusionModel:
    """Load a model saved by :meth:`FusionModel.save_pretrained`, locally or from the Hub.

    :mod:`mmfuse.hub` says how ``name_or_path`` is resolved. The architecture is built from
    ``config.json`` with backbone ``pretrained=False`` (no ImageNet download just to overwrite it),
    then ``model.safetensors`` is loaded strictly. The model is returned in eval mode.

    ``tasks`` (a task preset name or task specs) starts fine-tuning on another dataset: when they differ
    from the saved tasks, the heads are new (:meth:`FusionModel.reset_heads`) while the encoders and fusion
    blocks keep the loaded weights; the model remembers a Hub source as its card's ``base_model``.
    """
    return load_pretrained(
        FusionModel,
        name_or_path,
        revision=revision,
        token=token,
        cache_dir=cache_dir,
        trust_pickle=trust_pickle,
        map_location=map_location,
        tasks=tasks,
    )
