"""``mmfuse reproduce tableN``: train every row of one of the paper's ablation tables over seeds.

Each row of Tables 6-10 is a configuration of :data:`mmfuse.params.PAPER_CONFIGURATIONS`; each (row, seed)
trains into ``OUT/runs/<row>/seed_<k>/`` with the run recipe (the paper's unless ``--config`` gives
another), is evaluated with TTA and the weight search, and is skipped once its ``metrics.json`` and model
exist; a killed run resumes from its last checkpoint. When every run is done the table is written in the
paper's layout, ours beside the paper's: ``OUT/tableN.md``, ``OUT/tableN.json`` and ``OUT/tableN.png``.
"""

from __future__ import annotations

import copy
import io
import json
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmfuse.errors import UsageError
from mmfuse.evaluation.writers import write_json
from mmfuse.fileio import atomic_write_bytes, atomic_write_text
from mmfuse.metrics_layout import HEADLINE_METRICS
from mmfuse.params import CONFIGURATIONS_BY_NAME, count_parameters
from mmfuse.runs import METRICS_FILE
from mmfuse.training.launch import Launcher, Outcome, RunSpec, finished, launch

# The paper's recipe beyond the run-config defaults: ImageNet weights, and FusionM4Net's weight search
# (the reference's own candidates on raw logits, as examples/configs/paper.yaml).
PAPER_RECIPE: dict = {
    "model": {"pretrained": True},
    "evaluation": {
        "weight_search": {"method": "fusionm4net", "search_num": 20, "schedule": "linear"},
        "temperature_scaling": False,
    },
}

# --quick: minutes on a CPU, for checking the pipeline end to end (numbers are not the paper's).
QUICK: dict = {
    "model": {"pretrained": False, "img_size": 32},
    "train": {
        "epochs": 2,
        "batch_size": 8,
        "lr": 1e-3,
        "swa": {"epochs": 1, "anneal_epochs": 1},
        "amp": "none",
        "device": "cpu",
        "keep_checkpoints": 1,
    },
    "data": {"num_workers": 0, "device_cache": False},
    "evaluation": {
        "tta": ["identity", "hflip"],
        "plots": False,
        "batch_size": 32,
        "bootstrap": {"resamples": 0},
    },
}
QUICK_CASES, QUICK_IMAGE_SIZE, QUICK_SEEDS = 48, 40, "0-1"


@dataclass(frozen=True)
class Row:
    """One row of a paper table: the configuration it trains and the paper's mean ± std (%)."""

    label: str
    configuration: str
    paper_auc: tuple[float, float] | None = None
    paper_acc: tuple[float, float] | None = None


@dataclass(frozen=True)
class Table:
    title: str
    rows: tuple[Row, ...]
    per_class: dict[str, tuple[float, float]] | None = (
        None  # Table 8: paper per-class AUC, keyed "row|TASK.CLASS"
    )


TABLES: dict[str, Table] = {
    "table6": Table(
        "Table 6: ablation of the asymmetric framework (AFF) and the attention block (AAB)",
        (
            Row("Baseline (SFF + CAT)", "baseline-swin", (87.2, 0.4), (76.6, 0.5)),
            Row("AFF", "aff-concat-swin", (87.2, 0.4), (76.5, 0.4)),
            Row("AFF + AAB (AMMFM)", "ammfm-swin", (87.6, 0.4), (76.7, 0.4)),
        ),
    ),
    "table7": Table(
        "Table 7: single-modal, baseline multi-modal and AMMFM",
        (
            Row("Single: Derm ST", "single-swin-derm", (86.6, 0.3), (76.2, 0.6)),
            Row("Single: Clin ST", "single-swin-clin", (77.3, 0.5), (68.7, 0.7)),
            Row("Single: Derm MN", "single-mobilenet-derm", (83.1, 0.4), (72.6, 0.3)),
            Row("Single: Clin MN", "single-mobilenet-clin", (75.7, 0.4), (67.6, 0.5)),
            Row("Baseline: ST + ST", "baseline-swin", (87.2, 0.4), (76.6, 0.5)),
            Row("Baseline: MN + MN", "baseline-mobilenet", (84.5, 0.3), (73.4, 0.2)),
            Row("AMMFM: Clin ST, Derm MN", "ammfm-swapped", (84.7, 0.3), (73.8, 0.3)),
            Row("AMMFM: Clin MN, Derm ST", "ammfm-swin", (87.6, 0.4), (76.7, 0.4)),
        ),
    ),
    "table8": Table(
        "Table 8: per-class AUC of ST-based single-modal and multi-modal models",
        (
            Row("Clin (ST)", "single-swin-clin", (77.3, 0.5)),
            Row("Derm (ST)", "single-swin-derm", (86.6, 0.3)),
            Row("Baseline (two STs)", "baseline-swin", (87.2, 0.4)),
            Row("AMMFM (Clin: MN, Derm: ST)", "ammfm-swin", (87.6, 0.4)),
        ),
    ),
    "table9": Table(
        "Table 9: fusion blocks (CAT, BAB, AAB) in the symmetric and asymmetric frameworks",
        (
            Row("SFF + CAT", "baseline-swin", (87.2, 0.4), (76.6, 0.5)),
            Row("SFF + BAB", "sff-bab-swin", (87.2, 0.3), (76.6, 0.4)),
            Row("SFF + AAB", "sff-aab-swin", (87.5, 0.4), (77.1, 0.4)),
            Row("AFF + CAT", "aff-concat-swin", (87.2, 0.4), (76.5, 0.4)),
            Row("AFF + BAB", "aff-bab-swin", (87.5, 0.3), (76.6, 0.3)),
            Row("AFF + AAB (AMMFM)", "ammfm-swin", (87.6, 0.4), (76.7, 0.4)),
        ),
    ),
    "table10": Table(
        "Table 10: AMMFM with other backbones",
        (
            Row("ResNet: Derm", "single-resnet-derm", (84.0, 0.5), (74.0, 0.4)),
            Row("ResNet: Clin", "single-resnet-clin", (76.6, 0.5), (67.5, 0.4)),
            Row("ResNet: Baseline", "baseline-resnet", (85.4, 0.2), (74.6, 0.4)),
            Row("ResNet: AMMFM", "ammfm-resnet", (85.7, 0.2), (74.9, 0.3)),
            Row("ConvNeXt: Derm", "single-convnext-derm", (86.5, 0.4), (75.9, 0.3)),
            Row("ConvNeXt: Clin", "single-convnext-clin", (77.5, 0.3), (69.0, 0.3)),
            Row("ConvNeXt: Baseline", "baseline-convnext", (87.1, 0.3), (76.5, 0.3)),
            Row("ConvNeXt: AMMFM", "ammfm-convnext", (87.3, 0.5), (76.7, 0.4)),
            Row("ST: Derm", "single-swin-derm", (86.6, 0.3), (76.2, 0.6)),
            Row("ST: Clin", "single-swin-clin", (77.3, 0.5), (68.7, 0.7)),
            Row("ST: Baseline", "baseline-swin", (87.2, 0.4), (76.6, 0.5)),
            Row("ST: AMMFM", "ammfm-swin", (87.6, 0.4), (76.7, 0.4)),
        ),
    ),
}

# Table 8 of the paper: per-class AUC (%), columns in the order of TABLES["table8"].rows.
_TABLE8 = """
DIAG.BCC 85.5 3.8 94.5 1.3 95.0 0.9 95.0 0.8
DIAG.NEV 85.8 0.7 91.8 0.5 92.4 0.4 92.4 0.4
DIAG.MEL 79.5 1.1 89.1 0.6 89.3 0.8 89.5 0.7
DIAG.MISC 86.5 1.8 93.7 0.8 93.9 0.9 94.7 0.7
DIAG.SK 74.5 4.2 87.5 3.2 88.3 2.0 90.4 1.4
PN.TYP 80.4 1.1 87.5 0.6 88.1 0.7 87.7 0.8
PN.ATP 73.4 1.6 85.1 0.7 85.7 0.7 86.2 0.8
STR.REG 79.9 2.2 89.3 1.1 88.6 1.3 89.4 1.8
STR.IR 71.0 1.6 83.9 1.0 84.2 0.9 84.6 1.1
PIG.REG 68.3 2.1 82.2 1.5 81.4 1.4 83.5 1.1
PIG.IR 73.6 1.7 85.5 1.3 85.5 0.9 85.4 1.1
RS.PRS 72.9 1.3 82.5 0.9 83.5 0.9 83.4 0.8
DaG.REG 72.6 1.4 79.3 1.0 80.2 0.9 80.3 0.6
DaG.IR 73.8 0.9 84.1 0.8 84.1 0.9 84.4 0.7
BWV.PRS 83.9 1.2 92.7 0.7 93.8 0.5 93.8 0.8
VS.REG 81.7 2.0 86.2 1.1 88.3 0.8 87.9 1.3
VS.IR 77.0 2.2 80.4 1.7 82.2 1.5 81.3 2.3
"""
TABLE8_PAPER: dict[str, list[tuple[float, float]]] = {
    line.split()[0]: [
        (float(a), float(b)) for a, b in zip(line.split()[1::2], line.split()[2::2], strict=True)
    ]
    for line in _TABLE8.strip().splitlines()
}


@dataclass(frozen=True)
class Run:
    row: str  # configuration name
    seed: int
    directory: Path

    @property
    def done(self) -> bool:
        return finished(self.directory)


def table(name: str) -> Table:
    if name not in TABLES:
        raise UsageError(f"unknown table {name!r}; choose from {', '.join(TABLES)}")
    return TABLES[name]


def configurations(name: str) -> list[str]:
    """The distinct configurations a table trains, in row order."""
    return list(dict.fromkeys(r.configuration for r in table(name).rows))


def _merge(base: Mapping, update: Mapping) -> dict:
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def row_config(base: Mapping, configuration: str, *, quick: bool = False) -> dict:
    """The run config of one row: ``base`` with its model section replaced by the row's configuration."""
    from mmfuse.training.config import resolve

    row = CONFIGURATIONS_BY_NAME[configuration]
    keep = {k: v for k, v in base.get("model", {}).items() if k in ("pretrained", "pretrained_files")}
    config = _merge(base, {})
    config["model"] = {"preset": row.preset, **copy.deepcopy(row.overrides), **keep}
    if quick:
        config = _merge(config, QUICK)
    return resolve(config)


def plan(name: str, out: Path, seeds: Sequence[int], only: Sequence[str] | None = None) -> list[Run]:
    rows = configurations(name)
    if only:
        unknown = sorted(set(only) - set(rows))
        if unknown:
            raise UsageError(f"{name} has no rows {unknown}; its rows: {rows}")
        rows = [r for r in rows if r in only]
    return [Run(r, s, out / "runs" / r / f"seed_{s}") for r in rows for s in seeds]


def run_all(
    runs: Sequence[Run],
    base: Mapping,
    *,
    quick: bool,
    progress: bool | None = None,
    launcher: Launcher | None = None,
    folder: Path | None = None,
) -> Outcome:
    """Train every unfinished run (resuming a killed one) with ``launcher``; finished runs are skipped.

    A run that fails is named in the outcome while the others go on; ``folder`` (default: the study's
    output folder) holds the launcher's logs.
    """
    from mmfuse.pipeline import RUN_EVALUATION
    from mmfuse.runs import CONFIG_FILE

    specs = []
    for run in runs:
        if run.done:
            print(f"done     {run.row} seed {run.seed}")
            continue
        config = row_config(base, run.row, quick=quick)
        config["train"]["seed"] = run.seed
        resume = (run.directory / CONFIG_FILE).is_file()
        print(
            f"{'resume' if resume else 'train':<8} {run.row} seed {run.seed} -> {run.directory}", flush=True
        )
        name = f"{run.row}/seed_{run.seed}"
        specs.append(
            RunSpec(name, config, run.directory, resume=resume, evaluator=RUN_EVALUATION, progress=progress)
        )
    if folder is None and runs:
        folder = runs[0].directory.parents[2]  # OUT/runs/<row>/seed_<k>
    return launch(specs, launcher, folder=folder or Path("."))


def dry_run_commands(
    name: str, runs: Sequence[Run], args: Mapping[str, str | None], quick: bool
) -> list[str]:
    """One shell command per run, for a scheduler; a last one writes the table."""
    common = [f"--{k}={shlex.quote(str(v))}" for k, v in args.items() if v is not None]
    flag = ["--quick"] if quick else []
    commands = [
        shlex.join(["mmfuse", "reproduce", name, "--only", r.row, "--seeds", str(r.seed)])
        + " "
        + " ".join(common + flag)
        for r in runs
    ]
    commands.append(shlex.join(["mmfuse", "reproduce", name, "--table-only"]) + " " + " ".join(common + flag))
    return [c.strip() for c in commands]


def _stats(values: Sequence[float]) -> dict:
    finite = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if finite.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(100 * finite.mean()), "std": float(100 * finite.std()), "n": int(finite.size)}


def collect(name: str, out: Path, seeds: Sequence[int], base: Mapping, *, quick: bool) -> dict:
    """The table as data: per row ours (mean ± std over the finished seeds, %) beside the paper's."""
    from mmfuse.hub import FusionModel

    spec = table(name)
    rows = []
    for row in spec.rows:
        runs = [Run(row.configuration, s, out / "runs" / row.configuration / f"seed_{s}") for s in seeds]
        metrics = [json.loads((r.directory / METRICS_FILE).read_text()) for r in runs if r.done]
        finals = [m["test"]["final"] for m in metrics if "test" in m]
        config = row_config(base, row.configuration, quick=quick)["model"]
        preset = config.pop("preset")
        config.pop("pretrained", None)
        config.pop("pretrained_files", None)
        from mmfuse.presets import resolve_config

        params = count_parameters(FusionModel(resolve_config(preset, **config)))
        entry = {
            "label": row.label,
            "configuration": row.configuration,
            "seeds": [r.seed for r in runs if r.done],
            "avg_auc": _stats([f["avg_auc"] for f in finals]),
            "avg_acc": _stats([f["avg_acc"] for f in finals]),
            "params": params,
            "paper_avg_auc": row.paper_auc,
            "paper_avg_acc": row.paper_acc,
            "paper_params": CONFIGURATIONS_BY_NAME[row.configuration].paper_millions,
        }
        if name == "table8":
            entry["per_class_auc"] = {
                f"{task}.{cls}": _stats([f["tasks"][task]["classes"][cls]["auc"] for f in finals])
                for task, cls in (key.split(".", 1) for key in TABLE8_PAPER)
                if finals and task in finals[0]["tasks"] and cls in finals[0]["tasks"][task]["classes"]
            }
        rows.append(entry)
    return {
        "table": name,
        "title": spec.title,
        "quick": quick,
        "split": "test",
        "head": "final",
        "rows": rows,
    }


def _cell(stat: Mapping | None) -> str:
    if not stat or stat.get("n", 1) == 0 or stat.get("mean") is None:
        return "-"
    if stat.get("n") == 1:  # one seed has no spread: a "±0.0" would claim one
        return f"{stat['mean']:.1f}"
    return f"{stat['mean']:.1f}±{stat['std']:.1f}"


def _paper(pair: tuple[float, float] | None) -> str:
    return "-" if pair is None else f"{pair[0]:.1f}±{pair[1]:.1f}"


def markdown(data: Mapping) -> str:
    """The table in the paper's layout: ours beside the paper's (test split, weighted final prediction)."""
    lines = [f"# {data['title']}", ""]
    if data["quick"]:
        lines += [
            "*--quick: tiny images and few epochs on the given data; a pipeline check, not the paper's numbers.*",
            "",
        ]
    lines += [
        "| row | configuration | seeds | AVG AUC ours | AVG AUC paper | AVG ACC ours | AVG ACC paper | Params ours (M) | Params paper (M) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["rows"]:
        paper_params = "-" if r["paper_params"] is None else f"{r['paper_params']:.2f}"
        lines.append(
            f"| {r['label']} | `{r['configuration']}` | {len(r['seeds'])} | {_cell(r['avg_auc'])} | "
            f"{_paper(r['paper_avg_auc'])} | {_cell(r['avg_acc'])} | {_paper(r['paper_avg_acc'])} | "
            f"{r['params'] / 1e6:.2f} | {paper_params} |"
        )
    if data["table"] == "table8":
        labels = [r["label"] for r in data["rows"]]
        lines += ["", "| task.class | " + " | ".join(f"{label} ours / paper" for label in labels) + " |"]
        lines.append("|---|" + "---:|" * len(labels))
        for key, paper in TABLE8_PAPER.items():
            cells = [
                f"{_cell(r.get('per_class_auc', {}).get(key))} / {_paper(p)}"
                for r, p in zip(data["rows"], paper, strict=True)
            ]
            lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", "Mean ± std (population) over seeds, %, test split, heads mixed with the searched weights."]
    return "\n".join(lines) + "\n"


def figure(data: Mapping, path: Path) -> None:
    """AVG AUC and AVG ACC per row, ours (mean ± std) beside the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["rows"]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 1.6 * len(rows)), 4), constrained_layout=True)
    for ax, metric, title in zip(axes, HEADLINE_METRICS, ("AVG AUC (%)", "AVG ACC (%)"), strict=True):
        ours = [r[metric]["mean"] or 0.0 for r in rows]
        ours_err = [r[metric]["std"] or 0.0 for r in rows]
        paper = [(r[f"paper_{metric}"] or (0.0, 0.0)) for r in rows]
        ax.bar(x - 0.2, ours, 0.4, yerr=ours_err, label="ours", capsize=3)
        ax.bar(x + 0.2, [p[0] for p in paper], 0.4, yerr=[p[1] for p in paper], label="paper", capsize=3)
        ax.set_xticks(x, [r["label"] for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        ax.set_ylim(0, 100)  # bars from 0: a cut axis makes a 2-point gap look like a factor of two
    axes[0].legend()
    fig.suptitle(data["title"] + (" (--quick)" if data["quick"] else ""), fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_table(name: str, out: Path, seeds: Sequence[int], base: Mapping, *, quick: bool) -> dict:
    data = collect(name, out, seeds, base, quick=quick)
    write_json(out / f"{name}.json", data)
    atomic_write_text(out / f"{name}.md", markdown(data))
    figure(data, out / f"{name}.png")
    return data
