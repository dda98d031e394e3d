"""A Gradio page to try a model: upload a primary image (and optionally an auxiliary one), see every
task's prediction, the seven-point score for Derm7pt models, and where the model looked.

``build_app(model)`` returns the page (a ``gradio.Blocks``); :func:`mmfuse.gradio_server.launch` serves it
(``mmfuse serve``), and :mod:`mmfuse.space` writes the files of a Hugging Face Space that serves a Hub model
with it. (``mmfuse demo`` is something else: the synthetic training run of :mod:`mmfuse.cli.demo`.)
Uploads are checked before they are decoded (:func:`check_upload`): a file that is not an image, a
header that declares a decompression bomb, an image too small to mean anything, or one that cannot be
decoded gets a message on the page, and the server keeps serving.
"""

from __future__ import annotations

import os
import tempfile
import threading
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
# Maps and overlays are computed on a copy of the upload whose longest side is at most this: a 7000 x 7000
# upload then costs what a 1024 x 1024 one does (it took 94 s and 8.6 GB at full size).
EXPLAIN_MAX_SIDE = 1024
EXAMPLE_CASES = 8
EXAMPLE_SIZE = 256
ABOUT_THE_MAPS = (
    "Grad-CAM (library `grad-cam`) of each task's predicted class on the primary encoder's last stage; "
    "AAB attention: how much attention the clinical image's features put on each dermoscopic position. "
    f"Uploads up to {MAX_UPLOAD_MB} MiB and {MAX_PIXELS / 1e6:.0f} megapixels; the maps are made on a "
    f"copy at most {EXPLAIN_MAX_SIDE} pixels a side."
)


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
    from mmfuse.data.images import conversion_note

    note = conversion_note(mode, fmt)
    return [f"{label} ({shown}) {note}"] if note else []


class PageModel:
    """The model behind the page: one request at a time (a CPU gains nothing from more, and the
    Grad-CAM hooks must not see another request's forward pass), its maps made on a copy of the
    upload no larger than ``max_side`` a side, so one request's memory is bounded whatever is uploaded."""

    def __init__(
        self, model, device: torch.device | str = "cpu", *, max_side: int = EXPLAIN_MAX_SIDE
    ) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.max_side = max_side
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
                result = explain(
                    self.model, primary, auxiliary or None, device=self.device, max_side=self.max_side
                )
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
        height, width = result.image.shape[:2]
        overlays = [(result.image, f"dermoscopic image as uploaded (shown at {width}×{height})")]
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
    from mmfuse.data.formats.derm7pt import SEVEN_POINT_CRITERIA
    from mmfuse.evaluation.derm7pt import MELANOMA_THRESHOLD

    sp = prediction.get("seven_point")
    if sp is None:
        return "This model's tasks are not Derm7pt's: no seven-point score."
    tasks = prediction["tasks"]
    scored = [
        f"{text} ({task}={cls}) +{points}"
        for task, cls, points, text in SEVEN_POINT_CRITERIA
        if tasks[task]["predicted"] == cls
    ]
    verdict = "**melanoma suspected**" if sp["melanoma"] else "below the melanoma threshold"

    def criteria(points: int) -> str:
        return ", ".join(text for *_, worth, text in SEVEN_POINT_CRITERIA if worth == points)

    return (
        f"### Seven-point score: {sp['score']} — {verdict}\n"
        f"Rule (seven-point checklist): major criteria — {criteria(2)} — count 2; minor criteria — "
        f"{criteria(1)} — count 1; a score of {MELANOMA_THRESHOLD} or more flags melanoma.\n\n"
        f"Scored: {', '.join(scored) if scored else 'no criterion predicted present'}."
    )


def head_weights_markdown(prediction: dict) -> str:
    weights = ", ".join(f"{head} {w:.2f}" for head, w in prediction["head_weights"].items())
    tail = " (temperature-scaled)" if prediction.get("temperature_scaled") else ""
    return f"Head weights used (Eq. 4): {weights}{tail}"


def example_pairs(directory: str | os.PathLike, *, cases: int = EXAMPLE_CASES, seed: int = 0) -> list[list]:
    """``[[primary, auxiliary or None], ...]`` from a Derm7pt-format release in ``directory`` (a small
    synthetic one is written there when it holds no ``meta/meta.csv``).

    Three cases with both images and one without its clinical image (when the release has one). The
    page serves these files to every visitor, so the release is read by the loader of training data,
    whose dataset-root rule refuses a path that leads outside ``directory`` (absolute, ``../``, a
    symlink), and each chosen image must be a regular file that decodes; anything else is a
    :class:`~mmfuse.data.errors.DataError` naming the row and column. There is no way to allow a path
    outside the release here.
    """
    from mmfuse.data.errors import DataError
    from mmfuse.data.formats.derm7pt import META_FILE, load_release
    from mmfuse.data.images import verify_image
    from mmfuse.data.synth import synthesize

    root = Path(directory)
    if not (root / META_FILE).is_file():
        synthesize(root, cases=cases, size=EXAMPLE_SIZE, seed=seed, workers=1)
    refusal = f"cannot serve examples from {root} (the page never serves a file outside the release)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a release without split files is fine for examples
            release = load_release(root)
    except DataError as exc:
        raise DataError(f"{refusal}: {exc}") from None
    records = [r for r in release.records if r is not None]
    chosen = [r for r in records if r.auxiliary_path is not None][:3]
    chosen += [r for r in records if r.auxiliary_path is None][:1]
    for record in chosen:
        for path in (record.primary_path, record.auxiliary_path):
            if path is None:
                continue
            if not path.is_file():
                raise DataError(f"{refusal}: example image {path} (case {record.case_id}) is not a file")
            if (reason := verify_image(path)) is not None:
                raise DataError(f"{refusal}: case {record.case_id}: {reason}")
    return [
        [str(r.primary_path), None if r.auxiliary_path is None else str(r.auxiliary_path)] for r in chosen
    ]


def example_files(examples: Sequence[Sequence] | None) -> list[str]:
    """The example images as absolute paths with every symlink followed: the only local files the
    server may hand out besides uploads and its own outputs (Gradio's ``allowed_paths``). Never
    their folders, which would expose every file beside them."""
    return sorted({os.path.realpath(p) for pair in examples or () for p in pair if p})


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

    service = PageModel(model, device)
    overlay_files = OverlayFiles()
    task_names = [t.name for t in model.tasks]
    if examples is None:
        examples = example_pairs(tempfile.mkdtemp(prefix="mmfuse-examples-"))

    def run(primary, auxiliary=None):  # the default makes the auxiliary image optional in the page's API too
        return _answer(service, overlay_files, task_names, primary, auxiliary)

    with gr.Blocks(title=title or "mmfuse demo", analytics_enabled=False) as app:
        gr.Markdown(f"# {title or 'mmfuse: multimodal skin-lesion classification'}")
        gr.Markdown(NOTICE, elem_id="notice")
        inputs = _upload_inputs(gr)
        button = gr.Button("Classify", variant="primary", elem_id="classify")
        outputs = _result_outputs(gr, task_names)
        button.click(run, inputs=inputs, outputs=outputs, api_name="classify")
        if examples:
            gr.Examples(
                examples=[list(e) for e in examples],
                inputs=inputs,
                outputs=outputs,
                fn=run,
                run_on_click=True,
                cache_examples=False,
                label="Examples from the synthetic release (click one)",
            )
        gr.Markdown(ABOUT_THE_MAPS)
    app.mmfuse_examples = examples
    return app


def _answer(
    service: PageModel, overlay_files: OverlayFiles, task_names: list[str], primary, auxiliary
) -> list:
    """The page's outputs for one request, in :func:`_result_outputs`' order; a bad upload is a message."""
    try:
        analysis = service.analyse(_path(primary), _path(auxiliary), (_name(primary), _name(auxiliary)))
    except UploadError as exc:
        return [f"⚠️ **Cannot use this upload:** {exc}", "", "", None, *([None] * len(task_names))]
    prediction = analysis.prediction
    status = "Result ready." + "".join(f"\n\n- {note}" for note in analysis.notes)
    labels = [{c: p for c, p in prediction["tasks"][name]["probabilities"].items()} for name in task_names]
    return [
        status,
        seven_point_markdown(prediction),
        head_weights_markdown(prediction),
        overlay_files.write(analysis.overlays),
        *labels,
    ]


def _upload_inputs(gr) -> list:
    """The two upload fields, side by side: the primary image, then the optional auxiliary one."""
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
    return [primary, auxiliary]


def _result_outputs(gr, task_names: list[str]) -> list:
    """The components that show a result: status, seven-point score, head weights, the maps, one label per task.

    Their labels name the outputs of the page's API (``/classify``) as well as the components.
    """
    status = gr.Markdown(
        "Upload a dermoscopic image (and, if you have one, a clinical image).",
        label="status",
        elem_id="status",
    )
    with gr.Row():
        seven = gr.Markdown(label="seven-point score", elem_id="seven-point")
        weights = gr.Markdown(label="head weights", elem_id="head-weights")
    labels = []
    for start in range(0, len(task_names), 4):
        with gr.Row():
            for name in task_names[start : start + 4]:
                labels.append(gr.Label(label=name, num_top_classes=8, elem_id=f"task-{name}"))
    gallery = gr.Gallery(label="Where the model looked", columns=5, height="auto", elem_id="overlays")
    return [status, seven, weights, gallery, *labels]


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
