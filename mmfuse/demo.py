"""A Gradio page to try a model: upload a primary image (and optionally an auxiliary one), see every
task's prediction, the seven-point score for Derm7pt models, and where the model looked.

``build_app(model)`` returns the page (a ``gradio.Blocks``); ``serve`` launches it (``mmfuse serve``);
``space_files`` writes the ``app.py`` of a Hugging Face Space that serves a Hub model with this page.
Uploads are checked before they are decoded (:func:`check_upload`): a file that is not an image, a
header that declares a decompression bomb, an image too small to mean anything, or one that cannot be
decoded gets a message on the page, and the server keeps serving.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmfuse.errors import UsageError

NOTICE = (
    "**For research only — not a medical device.** This page shows what a machine-learning model "
    "answers for the images you upload; it does not diagnose, and its output must not guide the care "
    "of a patient."
)
# Uploads larger than this are refused by the server before any decoding (``mmfuse serve --max-upload-mb``).
MAX_UPLOAD_MB = 20
# Decoded pixels (width x height) accepted: 50 MP covers any camera; larger headers are refused unread.
MAX_PIXELS = 50_000_000
# Fewer pixels than this a side carry no lesion to classify.
MIN_SIDE = 16
EXAMPLE_CASES = 8
EXAMPLE_SIZE = 256


class UploadError(UsageError):
    """An upload the page cannot use; the message is shown on the page as it is."""


@dataclass
class Analysis:
    """What the page shows for one request."""

    prediction: dict
    overlays: list[tuple]  # (H x W x 3 uint8, caption)
    notes: list[str] = field(default_factory=list)


def check_upload(path: str | os.PathLike, label: str, name: str | None = None) -> list[str]:
    """Read only the header of ``path``; raise :class:`UploadError` for what cannot be used.

    Returns notes for the page (e.g. a CMYK or 16-bit file that the loader converts).
    """
    from PIL import Image, UnidentifiedImageError

    shown = name or Path(path).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                mode, fmt = img.mode, img.format
    except Image.DecompressionBombError:
        raise UploadError(
            f"{label} ({shown}) declares more pixels than Pillow will decode safely (a decompression bomb); "
            f"the page accepts up to {MAX_PIXELS / 1e6:.0f} megapixels"
        ) from None
    except UnidentifiedImageError:
        raise UploadError(
            f"{label} ({shown}) is not an image file this page can read (JPEG, PNG, TIFF, BMP, WebP ...)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadError(f"{label} ({shown}) cannot be read as an image: {exc}") from None
    if width * height > MAX_PIXELS:
        raise UploadError(
            f"{label} ({shown}) declares {width}×{height} pixels; the page accepts up to "
            f"{MAX_PIXELS / 1e6:.0f} megapixels"
        )
    if min(width, height) < MIN_SIDE:
        raise UploadError(
            f"{label} ({shown}) is {width}×{height} pixels; at least {MIN_SIDE} pixels a side are needed"
        )
    notes = []
    if mode == "CMYK":
        notes.append(f"{label} ({shown}) is a CMYK {fmt}; it was converted to RGB")
    elif mode in ("I;16", "I;16B", "I;16L", "I", "F") or mode.endswith(";16"):
        notes.append(f"{label} ({shown}) has 16-bit (or wider) samples ({mode}); it was reduced to 8-bit RGB")
    return notes


class DemoService:
    """The model behind the page: one request at a time (a CPU gains nothing from more, and the
    Grad-CAM hooks must not see another request's forward pass)."""

    def __init__(self, model, device: torch.device | str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.device = device
        self._lock = threading.Lock()

    def analyse(
        self, primary: str | None, auxiliary: str | None = None, names: Sequence[str | None] = ()
    ) -> Analysis:
        from mmfuse.data.errors import DataError
        from mmfuse.explain import explain

        primary_name, auxiliary_name = (list(names) + [None, None])[:2]
        if not primary:
            raise UploadError("a dermoscopic (primary) image is required")
        notes = check_upload(primary, "the dermoscopic image", primary_name)
        if auxiliary:
            notes += check_upload(auxiliary, "the clinical image", auxiliary_name)
        try:
            with self._lock:
                result = explain(self.model, primary, auxiliary or None, device=self.device)
        except DataError as exc:
            message = str(exc)
            for path, name in ((primary, primary_name), (auxiliary, auxiliary_name)):
                if path:
                    message = message.replace(str(path), name or Path(path).name)
            raise UploadError(message) from None
        if not auxiliary:
            notes.insert(
                0,
                "No clinical image: the dermoscopic (primary) head answered alone; the fusion blocks and "
                "the auxiliary and fusion heads were not used.",
            )
        overlays = [(result.image, "dermoscopic image as uploaded")]
        for task, pixels in result.overlays().items():
            overlays.append((pixels, _caption(task, result.prediction)))
        return Analysis(result.prediction, overlays, notes)


def _caption(file_name: str, prediction: dict) -> str:
    stem = file_name.removesuffix(".png")
    if stem.startswith("gradcam_"):
        task = stem.removeprefix("gradcam_")
        return f"Grad-CAM {task}: {prediction['tasks'][task]['predicted']}"
    return f"AAB attention, stage {stem.removeprefix('attention_stage')} (clinical → dermoscopic)"


def seven_point_markdown(prediction: dict) -> str:
    """The score, the rule that produced it (which predicted criteria scored) and the melanoma flag."""
    from mmfuse.evaluation.derm7pt import MELANOMA_THRESHOLD

    sp = prediction.get("seven_point")
    if sp is None:
        return "This model's tasks are not Derm7pt's: no seven-point score."
    tasks = prediction["tasks"]
    criteria = (
        ("PN", "ATP", 2, "atypical pigment network"),
        ("BWV", "PRS", 2, "blue-whitish veil"),
        ("VS", "IR", 2, "irregular vessels"),
        ("STR", "IR", 1, "irregular streaks"),
        ("PIG", "IR", 1, "irregular pigmentation"),
        ("DaG", "IR", 1, "irregular dots/globules"),
        ("RS", "PRS", 1, "regression structures"),
    )
    scored = [
        f"{text} ({task}={cls}) +{points}"
        for task, cls, points, text in criteria
        if tasks[task]["predicted"] == cls
    ]
    verdict = "**melanoma suspected**" if sp["melanoma"] else "below the melanoma threshold"
    return (
        f"### Seven-point score: {sp['score']} — {verdict}\n"
        f"Rule (seven-point checklist): major criteria — atypical pigment network, blue-whitish veil, "
        f"irregular vessels — count 2; minor criteria — irregular streaks, pigmentation, dots/globules, "
        f"regression structures — count 1; a score of {MELANOMA_THRESHOLD} or more flags melanoma.\n\n"
        f"Scored: {', '.join(scored) if scored else 'no criterion predicted present'}."
    )


def head_weights_markdown(prediction: dict) -> str:
    weights = ", ".join(f"{head} {w:.2f}" for head, w in prediction["head_weights"].items())
    tail = " (temperature-scaled)" if prediction.get("temperature_scaled") else ""
    return f"Head weights used (Eq. 4): {weights}{tail}"


def example_pairs(directory: str | os.PathLike, *, cases: int = EXAMPLE_CASES, seed: int = 0) -> list[list]:
    """``[[primary, auxiliary or None], ...]`` from a small synthetic Derm7pt-format release written to ``directory``.

    Three cases with both images and one without its clinical image (when the release has one).
    """
    import csv

    from mmfuse.data.derm7pt import (
        AUXILIARY_COLUMN,
        IMAGE_DIR,
        META_FILE,
        PRIMARY_COLUMN,
        auxiliary_is_missing,
    )
    from mmfuse.data.synth import synthesize

    root = Path(directory)
    if not (root / META_FILE).is_file():
        synthesize(root, cases=cases, size=EXAMPLE_SIZE, seed=seed, workers=1)
    with (root / META_FILE).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    images = root / IMAGE_DIR
    paired = [
        [str(images / r[PRIMARY_COLUMN]), str(images / r[AUXILIARY_COLUMN])]
        for r in rows
        if not auxiliary_is_missing(r)
    ]
    alone = [[str(images / r[PRIMARY_COLUMN]), None] for r in rows if auxiliary_is_missing(r)]
    return paired[:3] + alone[:1]


def build_app(
    model,
    *,
    examples: Sequence[Sequence] | None = None,
    device: torch.device | str = "cpu",
    title: str | None = None,
):
    """The page for ``model`` as a ``gradio.Blocks``; ``examples`` default to a fresh synthetic release."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    service = DemoService(model, device)
    overlay_files = OverlayFiles()
    task_names = [t.name for t in model.tasks]
    if examples is None:
        examples = example_pairs(tempfile.mkdtemp(prefix="mmfuse-examples-"))

    def run(primary, auxiliary):
        try:
            analysis = service.analyse(_path(primary), _path(auxiliary), (_name(primary), _name(auxiliary)))
        except UploadError as exc:
            return [f"⚠️ **Cannot use this upload:** {exc}", "", "", None, *([None] * len(task_names))]
        prediction = analysis.prediction
        status = "Result ready." + "".join(f"\n\n- {note}" for note in analysis.notes)
        labels = [
            {c: p for c, p in prediction["tasks"][name]["probabilities"].items()} for name in task_names
        ]
        return [
            status,
            seven_point_markdown(prediction),
            head_weights_markdown(prediction),
            overlay_files.write(analysis.overlays),
            *labels,
        ]

    with gr.Blocks(title=title or "mmfuse demo", analytics_enabled=False) as app:
        gr.Markdown(f"# {title or 'mmfuse: multimodal skin-lesion classification'}")
        gr.Markdown(NOTICE, elem_id="notice")
        with gr.Row():
            primary = gr.File(
                label="Dermoscopic image (required)", file_count="single", type="filepath", elem_id="primary"
            )
            auxiliary = gr.File(
                label="Clinical image (optional: without it the dermoscopic head answers alone)",
                file_count="single",
                type="filepath",
                elem_id="auxiliary",
            )
        button = gr.Button("Classify", variant="primary", elem_id="classify")
        status = gr.Markdown(
            "Upload a dermoscopic image (and, if you have one, a clinical image).", elem_id="status"
        )
        with gr.Row():
            seven = gr.Markdown(elem_id="seven-point")
            weights = gr.Markdown(elem_id="head-weights")
        labels = []
        for start in range(0, len(task_names), 4):
            with gr.Row():
                for name in task_names[start : start + 4]:
                    labels.append(gr.Label(label=name, num_top_classes=8, elem_id=f"task-{name}"))
        gallery = gr.Gallery(label="Where the model looked", columns=5, height="auto", elem_id="overlays")
        outputs = [status, seven, weights, gallery, *labels]
        button.click(run, inputs=[primary, auxiliary], outputs=outputs, api_name="classify")
        if examples:
            gr.Examples(
                examples=[list(e) for e in examples],
                inputs=[primary, auxiliary],
                outputs=outputs,
                fn=run,
                run_on_click=True,
                cache_examples=False,
                label="Examples from the synthetic release (click one)",
            )
        gr.Markdown(
            "Grad-CAM (library `grad-cam`) of each task's predicted class on the primary encoder's last stage; "
            "AAB attention: how much attention the clinical image's features put on each dermoscopic position. "
            f"Uploads up to {MAX_UPLOAD_MB} MB and {MAX_PIXELS / 1e6:.0f} megapixels."
        )
    app.mmfuse_examples = examples
    return app


class OverlayFiles:
    """Each request's overlays as PNG files of their own, of which the newest ``keep`` requests' are kept.

    Gradio caches an image array under a name derived from its bytes and rewrites that file on every
    request, so two clients that get identical overlays at once can download a half-written file.
    Files with a per-request name are copied to the cache once and never rewritten.
    """

    def __init__(self, keep: int = 64) -> None:
        import collections

        self.root = Path(tempfile.mkdtemp(prefix="mmfuse-overlays-"))
        self.keep = keep
        self._recent: collections.deque[Path] = collections.deque()
        self._lock = threading.Lock()

    def write(self, overlays: list[tuple]) -> list[tuple[str, str]]:
        import shutil
        import uuid

        from PIL import Image

        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        items = []
        for index, (pixels, caption) in enumerate(overlays):
            path = folder / f"{folder.name}-{index:02d}.png"
            Image.fromarray(pixels).save(path)
            items.append((str(path), caption))
        with self._lock:
            self._recent.append(folder)
            while len(self._recent) > self.keep:
                shutil.rmtree(self._recent.popleft(), ignore_errors=True)
        return items


def _path(value) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "path", None) or getattr(value, "name", None) or value)


def _name(value) -> str | None:
    path = _path(value)
    return None if path is None else Path(path).name


def launch(
    app,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: float = MAX_UPLOAD_MB,
    block: bool = True,
):
    """Start ``app`` with a bounded queue (one request computes at a time, 64 may wait)."""
    app.queue(default_concurrency_limit=1, max_size=64)
    allowed = sorted({str(Path(p).parent) for e in getattr(app, "mmfuse_examples", []) or [] for p in e if p})
    return app.launch(
        server_name=host,
        server_port=port,
        max_file_size=f"{max_upload_mb}mb",
        allowed_paths=allowed,
        ssr_mode=False,
        share=False,
        quiet=True,
        prevent_thread_lock=not block,
    )


SPACE_APP = '''"""Hugging Face Space: the mmfuse demo page for {repo_id} (written by `mmfuse push --with-space`)."""

import mmfuse
from mmfuse.demo import build_app

model = mmfuse.from_pretrained("{repo_id}")
demo = build_app(model, title="{repo_id}")

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=1, max_size=64).launch(max_file_size="{max_upload_mb}mb")
'''


def space_files(repo_id: str, *, mmfuse_requirement: str = "mmfuse[demo]") -> dict[str, str]:
    """``{file name: text}`` of a Gradio Space that serves the Hub model ``repo_id`` with this page."""
    return {
        "app.py": SPACE_APP.format(repo_id=repo_id, max_upload_mb=MAX_UPLOAD_MB),
        "requirements.txt": f"{mmfuse_requirement}\n",
        "README.md": (
            "---\n"
            f"title: {repo_id.split('/')[-1]} demo\n"
            "sdk: gradio\n"
            "app_file: app.py\n"
            "---\n\n"
            f"Try [{repo_id}](https://huggingface.co/{repo_id}). For research only — not a medical device.\n"
        ),
    }


def wait_until_up(url: str, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers (used by tests and the latency benchmark)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


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

    api = HfApi(token=token)
    api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mmfuse-space-") as folder:
        operations = []
        for name, text in space_files(model_repo_id).items():
            (Path(folder) / name).write_text(text, encoding="utf-8")
            operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(folder) / name)))
        api.create_commit(space_id, operations, commit_message=commit_message, repo_type="space")
    return f"https://huggingface.co/spaces/{space_id}"
