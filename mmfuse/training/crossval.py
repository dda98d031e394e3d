"""``--folds K``: grouped, stratified k-fold cross-validation as K ordinary runs.

Fold k trains into ``RUN/fold_<k>/`` with ``data.cv = {folds: K, fold: k, group_by, seed}`` in its
config, so the fold is a complete run directory (resumable, evaluable, with its ``splits.csv``) whose
test split is the k-th part of the data. The test parts partition the groups, so the folds' test
predictions, put together, are out-of-fold predictions covering every case once; their summary
(``RUN/cv.json``, ``RUN/cv.md``) is :mod:`mmfuse.evaluation.crossval`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mmfuse.cv_layout import CV_JSON, PLAN_FILE, fold_dir
from mmfuse.errors import DataError, RunDirError
from mmfuse.fileio import write_json
from mmfuse.runtime.data import dataset_options

if TYPE_CHECKING:
    from mmfuse.training.launch import Launcher
    from mmfuse.training.trainer import RunEvaluator


def plan_folds(data_section: Mapping, folds: int, *, group_by: str | None = None, seed: int = 0) -> dict:
    """Check that ``folds`` folds can be made and describe them; raises :class:`DataError` naming why not.

    Returns ``{"folds", "group_by", "seed", "groups", "class_counts": {fold: {class: n}}, "notes": [...]}``
    (counts per split of each fold: ``test``, ``valid``, ``train``).
    """
    from mmfuse.data.build import case_groups, default_group_by, load_table, with_cv_splits

    base = {k: v for k, v in data_section.items() if k != "cv"}
    table = load_table(base)
    records = [r for r in table.records if r is not None]
    note = f"stratified by the first task, {table.tasks[0].name}" if len(table.tasks) != 1 else None
    group_by = group_by or default_group_by(table)
    groups = case_groups(table, group_by)
    if not isinstance(folds, int) or folds < 2:
        raise DataError(f"--folds must be at least 2, got {folds}")
    if folds > len(set(groups)):
        raise DataError(
            f"--folds {folds} is more than the {len(set(groups))} groups ({group_by}) of {len(records)} cases"
        )
    task = table.tasks[0]
    group_counts = {
        c: len({g for g, r in zip(groups, records, strict=True) if r.labels[task.name] == c})
        for c in task.classes
    }
    largest = max(group_counts.values())
    if folds > largest:
        raise DataError(
            f"--folds {folds} is more than the largest class's {largest} groups: no class could be in every test fold"
        )
    notes = [note] if note else []
    notes += [
        f"{task.name} class {c} has {n} group{'s' if n != 1 else ''}, fewer than the {folds} folds: "
        f"{n} test fold{'s hold' if n != 1 else ' holds'} one, {folds - n} none"
        for c, n in group_counts.items()
        if n < folds
    ]
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for fold in range(folds):
        split_table = with_cv_splits(
            table, {"folds": folds, "fold": fold, "group_by": group_by, "seed": seed}
        )
        counts[str(fold)] = {
            split: {
                c: sum(r.labels[task.name] == c for r in split_table.split_records(split))
                for c in task.classes
            }
            for split in ("test", "valid", "train")
        }
    return {
        "folds": folds,
        "group_by": group_by,
        "seed": seed,
        "task": task.name,
        "groups": len(set(groups)),
        "class_counts": counts,
        "notes": notes,
    }


def train_folds(
    config: Mapping,
    out: str | Path,
    folds: int,
    *,
    group_by: str | None = None,
    seed: int = 0,
    resume: bool = False,
    progress: bool | None = None,
    allow_changes: Sequence[str] = (),
    evaluator: RunEvaluator | None = None,
    launcher: Launcher | None = None,
) -> tuple[dict, dict[int, dict]]:
    """Train every fold into ``out/fold_<k>``; returns ``(fold plan, {fold: metrics})``.

    Everything is checked before the first fold trains: the fold plan (a bad ``folds`` raises
    :class:`DataError`), and, without ``resume``, that no fold folder exists already. The metrics of a
    fold are missing on a non-zero torchrun rank (rank 0 evaluates). ``launcher``
    (:mod:`mmfuse.training.launch`; inline by default) trains the folds; a fold that failed is named in the
    :class:`~mmfuse.training.launch.RunsFailedError` raised after the others end.
    """
    from mmfuse.training.launch import train_study

    out = Path(out)
    plan = plan_folds(dataset_options(config), folds, group_by=group_by, seed=seed)
    if not resume:
        taken = [str(fold_dir(out, k)) for k in range(folds) if fold_dir(out, k).exists()]
        if taken or (out / CV_JSON).exists():
            raise RunDirError(
                f"{out} already holds a cross-validation ({', '.join(taken) or CV_JSON}); "
                "add --resume to continue it, or choose another --out"
            )
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / PLAN_FILE, plan)
    folders = {fold: fold_dir(out, fold) for fold in range(folds)}
    configs = {
        folders[fold]: {
            **config,
            "data": {
                **config["data"],
                "cv": {"folds": folds, "fold": fold, "group_by": plan["group_by"], "seed": seed},
            },
        }
        for fold in range(folds)
    }
    finished_runs = train_study(
        configs,
        what="folds",
        folder=out,
        resume=resume,
        allow_changes=allow_changes,
        evaluator=evaluator,
        progress=progress,
        launcher=launcher,
    )
    runs = {fold: finished_runs[folders[fold]] for fold in range(folds) if folders[fold] in finished_runs}
    return plan, runs
