"""The model card (README.md) written next to a saved model: Hub metadata, architecture, results, use.

Rendered with plain Python rather than a Jinja template, so writing a card needs no extra dependency.
The results tables come from a training run's ``metrics.json``:
``{"<split>": {"<head>": {"avg_auc", "avg_acc", "mel": {...}, "tasks": {"<TASK>": {"acc", "classes":
{"<CLS>": {"auc", ...}}}}}}, "head_weights": {...}}`` with values as fractions in [0, 1].
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from numbers import Real
from typing import TYPE_CHECKING

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from mmfuse.data.formats import DEFAULT_FORMAT, UnknownFormatError, get_format, path_option_keys
from mmfuse.data.synth.marker import is_synthetic
from mmfuse.errors import UsageError
from mmfuse.hub.names import checked_repo_id
from mmfuse.metrics_layout import HEADLINE_METRICS, metric_splits
from mmfuse.params import count_parameters
from mmfuse.presets import list_presets, preset_config

if TYPE_CHECKING:
    from mmfuse.model import FusionNetwork

HEAD_ORDER = ("primary", "auxiliary", "fusion", "final")
CARD_METRICS = ["roc_auc", "accuracy"]
DEFAULT_LICENSE = "apache-2.0"
DEFAULT_TAGS = ("multimodal", "multi-label", "medical-imaging", "dermatology")
# The model takes two images (primary and auxiliary); no Hub pipeline has that signature, so it is not
# "image-classification" (one image in, one label set out), whose widget would send a single image.
PIPELINE_TAG = "other"
RESULTS_TASK = {"type": "other", "name": "Multi-label classification from paired images"}
# Config keys that hold paths of the machine that trained: the card shows their last component only.
PRIVATE_PATHS = (("data", "root"), ("data", "schema"), ("data", "cache_dir"))

PAPER = (
    "Peng Tang and Tobias Lasser, *Pay Less On Clinical Images: Asymmetric Multi-Modal Fusion Method "
    "For Efficient Multi-Label Skin Lesion Classification*"
)

INTENDED_USE = """\
## Intended use and limitations

This model is for research on multimodal, multi-label image classification: reproducing and extending
the asymmetric fusion method, and studying what each modality contributes. **It is not a medical device.**
It has not been validated clinically and must not be used to diagnose, screen or treat anyone. Results on
one dataset (a few hundred to a few thousand images from a small number of centres) do not carry over to
other populations, skin types, cameras or clinics."""


# Every ASCII punctuation mark that can start Markdown or HTML syntax; CommonMark reads "\<" as a literal "<".
_MARKDOWN_SYNTAX = re.compile(r"([\\`*_{}\[\]<>()#+!|~&])")


def _md(value: object) -> str:
    """``value`` as literal Markdown text on one line: names from files never become markup or HTML."""
    return _MARKDOWN_SYNTAX.sub(r"\\\1", " ".join(str(value).split()))


def _code(value: object) -> str:
    """``value`` as an inline code span, or as escaped text where a backtick or a pipe would end the span
    (GitHub tables split cells at a pipe even inside code)."""
    text = " ".join(str(value).split())
    return f"`{text}`" if text and not set(text) & {"`", "|"} else _md(text)


def _fenced(info: str, text: str) -> list[str]:
    """A fenced block longer than any run of backticks in ``text``, so the text cannot close it early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text, fence]


def _percent(value: object) -> str:
    return f"{100 * float(value):.1f}" if isinstance(value, Real) else "–"


def _with_interval(result: Mapping, key: str) -> str:
    """``88.0 [86.2, 89.9]`` when the report carries a bootstrap interval for ``key``."""
    interval = (result.get("ci") or {}).get(key) if isinstance(result.get("ci"), Mapping) else None
    text = _percent(result.get(key))
    if (
        isinstance(interval, (list, tuple))
        and len(interval) == 2
        and all(isinstance(v, Real) for v in interval)
    ):
        text += f" [{_percent(interval[0])}, {_percent(interval[1])}]"
    return text


def _dataset_name(training_config: Mapping | None) -> str | None:
    """The dataset a run trained on, when its config says so (``dataset`` at the top or under ``data``)."""
    if not training_config:
        return None
    data = training_config.get("data")
    for candidate in (
        training_config.get("dataset"),
        data.get("dataset") if isinstance(data, Mapping) else None,
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _datasets(training_config: Mapping | None) -> list[str]:
    """Hub dataset ids for the card: the config's ``dataset``, else the one its format names (``derm7pt``
    for a real Derm7pt release), never for a synthetic release."""
    named = _dataset_name(training_config)
    if named:
        return [named]
    data = (training_config or {}).get("data")
    if not isinstance(data, Mapping) or not data.get("root") or _synthetic(training_config):
        return []
    try:
        hub_dataset = get_format(data.get("format", DEFAULT_FORMAT)).hub_dataset
    except UnknownFormatError:  # a run made with a plugin that is not installed here
        return []
    return [hub_dataset] if hub_dataset else []


def _synthetic(training_config: Mapping | None) -> bool:
    data = (training_config or {}).get("data")
    if not isinstance(data, Mapping) or not data.get("root"):
        return False
    return is_synthetic(str(data["root"]))


def base_models(model: FusionNetwork, training_config: Mapping | None) -> list[str]:
    """Hub ids this model was trained from: a fine-tuned mmfuse model's source, else the ImageNet backbones."""
    source = getattr(model, "base_model", None)
    if source:
        return [str(source)]
    section = (training_config or {}).get("model")
    if not isinstance(section, Mapping) or not (section.get("pretrained") or section.get("pretrained_files")):
        return []
    ids = []
    for encoder in (model.primary_encoder, model.auxiliary_encoder):
        hub_id = (getattr(encoder, "pretrained_cfg", None) or {}).get("hf_hub_id")
        if hub_id and hub_id not in ids:
            ids.append(str(hub_id))
    return ids


def public_recipe(training_config: Mapping) -> dict:
    """The training config without the training machine's paths (their last component stays)."""
    import copy
    from pathlib import PurePath

    recipe = copy.deepcopy(dict(training_config))
    for section, key in (*PRIVATE_PATHS, *(("data", k) for k in sorted(path_option_keys()))):
        value = recipe.get(section, {}).get(key) if isinstance(recipe.get(section), Mapping) else None
        if isinstance(value, str) and value:
            recipe[section][key] = PurePath(value).name
    model = recipe.get("model")
    if isinstance(model, Mapping) and isinstance(model.get("pretrained_files"), Mapping):
        model["pretrained_files"] = {b: PurePath(str(p)).name for b, p in model["pretrained_files"].items()}
    return recipe


def eval_results(metrics: Mapping, datasets: list[str], synthetic: bool) -> list[EvalResult]:
    """``model-index`` entries: the final prediction's average AUC and accuracy (percent) per split."""
    dataset_id = datasets[0] if datasets else ("synthetic" if synthetic else "custom")
    name = {"derm7pt": "Derm7pt"}.get(dataset_id, dataset_id)
    if synthetic:
        name = "mmfuse synthetic Derm7pt-format release"
    results = []
    for split, heads in metric_splits(metrics).items():
        if not isinstance(heads, Mapping):
            continue
        final = heads.get("final")
        if not isinstance(final, Mapping):
            continue
        for key, metric_type, label in (
            ("avg_auc", "roc_auc", "average AUC"),
            ("avg_acc", "accuracy", "average accuracy"),
        ):
            if isinstance(final.get(key), Real):
                results.append(
                    EvalResult(
                        task_type=RESULTS_TASK["type"],
                        task_name=RESULTS_TASK["name"],
                        dataset_type=dataset_id,
                        dataset_name=name,
                        dataset_split=split,
                        metric_type=metric_type,
                        metric_name=f"{label} over tasks (%)",
                        metric_value=round(100 * float(final[key]), 2),
                    )
                )
    return results


def _check_metrics(metrics: Mapping) -> None:
    """Fail before anything is written when metrics.json does not have the documented shape."""
    if not isinstance(metrics, Mapping):
        raise UsageError(f"metrics must be a mapping in metrics.json format, got {type(metrics).__name__}")
    for split, heads in metric_splits(metrics).items():
        if not isinstance(heads, Mapping):
            raise UsageError(f"metrics[{split!r}] must map head names to results, got {heads!r}")
        for head, result in heads.items():
            if not isinstance(result, Mapping):
                raise UsageError(f"metrics[{split!r}][{head!r}] must be a mapping, got {result!r}")
            for key in HEADLINE_METRICS:
                if key in result and not isinstance(result[key], Real):
                    raise UsageError(
                        f"metrics[{split!r}][{head!r}][{key!r}] must be a number, got {result[key]!r}"
                    )


def _results_section(metrics: Mapping, tasks: list[dict]) -> list[str]:
    lines = [
        "## Results",
        "",
        "Percentages; AUC is one-vs-rest per class, averaged as in the paper's Tables 2–4; brackets are 95 % "
        "bootstrap intervals over the test cases where the run computed them.",
    ]
    for split, heads in metric_splits(metrics).items():
        ordered = [h for h in HEAD_ORDER if h in heads] + [h for h in heads if h not in HEAD_ORDER]
        lines += ["", f"### Split {_code(split)}", "", "| Head | avg AUC | avg accuracy |", "|---|---|---|"]
        lines += [
            f"| {_md(h)} | {_with_interval(heads[h], 'avg_auc')} | {_with_interval(heads[h], 'avg_acc')} |"
            for h in ordered
        ]
        final = heads.get("final") or heads[ordered[-1]]
        per_task = final.get("tasks") or {}
        if per_task:
            head_name = "final" if "final" in heads else ordered[-1]
            lines += [
                "",
                f"Per task ({_md(head_name)} prediction):",
                "",
                "| Task | accuracy | AUC per class |",
                "|---|---|---|",
            ]
            for task in [t["name"] for t in tasks if t["name"] in per_task] or list(per_task):
                result = per_task[task]
                classes = result.get("classes") or {}
                aucs = ", ".join(
                    f"{_md(c)} {_percent(v.get('auc'))}" for c, v in classes.items() if isinstance(v, Mapping)
                )
                lines.append(f"| {_md(task)} | {_percent(result.get('acc'))} | {aucs or '–'} |")
        mel = final.get("mel")
        if isinstance(mel, Mapping) and mel:
            cells = [f"{_md(k)} {_percent(v)}" for k, v in mel.items() if isinstance(v, Real)]
            cells += [
                f"{_md(k)} "
                + ", ".join(f"{_md(m)} {_percent(x)}" for m, x in v.items() if isinstance(x, Real))
                for k, v in mel.items()
                if isinstance(v, Mapping)
            ]
            if cells:
                lines += ["", "Melanoma-related classes (Table 4): " + "; ".join(cells) + "."]
    weights = metrics.get("head_weights")
    if isinstance(weights, Mapping):
        lines += [
            "",
            "Head weights found on the validation split: "
            + ", ".join(f"{_md(h)} {float(w):.2f}" for h, w in weights.items() if isinstance(w, Real))
            + ".",
        ]
    return lines


def _title(config: Mapping) -> str:
    """The preset's name when the config is that preset unchanged, else its parts."""
    name = config.get("preset")
    preset = preset_config(name) if name in list_presets() else None
    if preset is not None and all(config.get(k) == v for k, v in preset.items()):
        return _md(config["preset"])
    return _md(f"{config['primary']} + {config['auxiliary']}, {config['fusion']} fusion")


def render_model_card(
    model: FusionNetwork,
    config: Mapping,
    *,
    card_data: ModelCardData,
    metrics: Mapping | None = None,
    training_config: Mapping | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
    datasets: list[str] | tuple[str, ...] | None = None,
    base_model: str | list[str] | None = None,
) -> ModelCard:
    """The card of ``model``, whose saved ``config`` (with the ``providers`` of its components) it
    describes; ``metrics`` and ``training_config`` come from its training run, if any.

    ``repo_id`` (known when pushing) is what the card's loading example names; without it the example
    loads the folder that holds the card. ``license`` (default apache-2.0), ``tags`` (default
    :data:`DEFAULT_TAGS`; ``mmfuse`` is always added), ``datasets`` (default: from the training config) and
    ``base_model`` (default: the model it was fine-tuned from, or the ImageNet backbones when it was
    trained from them) fill the Hub metadata; ``model-index`` comes from ``metrics``.
    """
    if metrics is not None:
        _check_metrics(metrics)
    if repo_id is not None:
        repo_id = checked_repo_id(repo_id, owner_required=False)
    title = _title(config)
    synthetic = _synthetic(training_config)
    data = _card_metadata(
        model,
        card_data,
        title=title,
        metrics=metrics,
        training_config=training_config,
        synthetic=synthetic,
        license=license,
        tags=tags,
        datasets=datasets,
        base_model=base_model,
    )
    lines = _overview_lines(model, config, title)
    if metrics:
        lines += _results_section(metrics, config["tasks"]) + [""]
    else:
        lines += ["## Results", "", "No evaluation results were saved with this model.", ""]
    lines += _recipe_lines(training_config, synthetic) + _usage_lines(repo_id)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _card_metadata(
    model: FusionNetwork,
    card_data: ModelCardData,
    *,
    title: str,
    metrics: Mapping | None,
    training_config: Mapping | None,
    synthetic: bool,
    license: str | None,
    tags: list[str] | tuple[str, ...] | None,
    datasets: list[str] | tuple[str, ...] | None,
    base_model: str | list[str] | None,
) -> ModelCardData:
    """The card's Hub metadata (its YAML front matter): license, tags, datasets, base model, model-index."""
    data = ModelCardData(**card_data.to_dict())
    data.metrics = CARD_METRICS
    data.license = license or DEFAULT_LICENSE
    data.pipeline_tag = PIPELINE_TAG
    topical = list(DEFAULT_TAGS if tags is None else tags)
    data.tags = ["mmfuse", *[t for t in topical if t != "mmfuse"]]
    dataset_ids = list(datasets) if datasets is not None else _datasets(training_config)
    if dataset_ids:
        data.datasets = dataset_ids
    bases = (
        [base_model]
        if isinstance(base_model, str)
        else list(base_model or base_models(model, training_config))
    )
    if bases:
        data.base_model = bases if len(bases) > 1 else bases[0]
    if metrics:
        results = eval_results(metrics, dataset_ids, synthetic)
        if results:
            data.model_name = title
            data.eval_results = results
    return data


def _overview_lines(model: FusionNetwork, config: Mapping, title: str) -> list[str]:
    """The card's title, what the model is (encoders, fusion, size, input, head weights) and its tasks."""
    providers = config["providers"]
    params = count_parameters(model)
    stages = _md(", ".join(str(s) for s in config["fusion_stages"]) or "none")
    weights = ", ".join(f"{_md(h)} {w:.3f}" for h, w in config["head_weights"].items())
    size = int(config["img_size"])
    return [
        f"# {title} (mmfuse)",
        "",
        "A two-branch multi-label classifier in the style of AMMFM: a primary encoder (dermoscopy in the paper) "
        "and an auxiliary encoder (clinical images) whose features meet in fusion blocks; three heads (primary, "
        "auxiliary, fusion) are averaged with the head weights below (Eq. 4).",
        "",
        "| | |",
        "|---|---|",
        f"| Primary encoder | {_code(config['primary'])} (plugin {_code(providers['primary']['plugin'])}) |",
        f"| Auxiliary encoder | {_code(config['auxiliary'])} (plugin {_code(providers['auxiliary']['plugin'])}) |",
        f"| Fusion block | {_code(config['fusion'])} after primary stage(s) {stages} |",
        f"| Parameters | {params / 1e6:.2f} M ({params:,}) |",
        f"| Input | two RGB images, {size}×{size}, normalised with mean {_md(config['mean'])} and std "
        f"{_md(config['std'])} |",
        f"| Head weights | {weights} |",
        f"| mmfuse version | {_md(config['mmfuse_version'])} |",
        "",
        "## Tasks",
        "",
        "| Task | Classes (output order) |",
        "|---|---|",
        *[f"| {_md(t['name'])} | {', '.join(_md(c) for c in t['classes'])} |" for t in config["tasks"]],
        "",
    ]


def _recipe_lines(training_config: Mapping | None, synthetic: bool) -> list[str]:
    """The resolved training configuration, without the training machine's paths."""
    lines = ["## Training recipe", ""]
    if training_config:
        recipe = yaml.safe_dump(public_recipe(training_config), sort_keys=False, allow_unicode=True).rstrip()
        trained_on = (
            " It was trained on a synthetic release (`mmfuse data synth`), not on real images."
            if synthetic
            else ""
        )
        lines += [
            "The resolved training configuration of the run that produced these weights (dataset paths are "
            "shown by their last component)." + trained_on,
            "",
            *_fenced("yaml", recipe),
            "",
        ]
    else:
        lines += ["No training configuration was saved with this model.", ""]
    return lines


def _usage_lines(repo_id: str | None) -> list[str]:
    """How to load and export the model, what it must not be used for, and where the method comes from."""
    return [
        "## How to use",
        "",
        "```python",
        "import mmfuse",
        "",
        *(
            [f"model = mmfuse.from_pretrained({json.dumps(repo_id)})"]
            if repo_id
            else ["# FOLDER: the directory that holds this card", "model = mmfuse.from_pretrained(FOLDER)"]
        ),
        "# primary and auxiliary: float tensors [batch, 3, H, W], normalised as above",
        "probabilities = model.predict(primary=primary, auxiliary=auxiliary)  # {task: [batch, classes]}",
        "probabilities = model.predict(primary=primary, auxiliary=None)  # without the auxiliary image",
        "```",
        "",
        f"Export for offline deployment: `mmfuse export {repo_id or 'FOLDER'} --onnx model.onnx [--int8]`.",
        "",
        INTENDED_USE,
        "",
        "## Citation",
        "",
        f"The method: {PAPER}.",
        "",
    ]
