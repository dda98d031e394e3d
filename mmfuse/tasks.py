"""Tasks as data: a multi-label problem is a list of named single-label tasks.

The core never hard-codes a dataset's labels; presets are plain data so a new paired-modality
dataset only needs a list of :class:`TaskSpec` (or a YAML file, see :mod:`mmfuse.data`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mmfuse.errors import TaskMismatchError, UsageError


@dataclass(frozen=True)
class TaskSpec:
    """One classification task: its name and its class names, in logit order."""

    name: str
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.name:
            raise UsageError("a task needs a non-empty name")
        if len(self.classes) < 2:
            raise UsageError(f"task {self.name!r} needs at least two classes, got {list(self.classes)}")
        if len(set(self.classes)) != len(self.classes):
            raise UsageError(f"task {self.name!r} repeats a class name: {list(self.classes)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def index(self, class_name: str) -> int:
        """Position of ``class_name``; the error lists the valid names."""
        try:
            return self.classes.index(class_name)
        except ValueError:
            raise UsageError(
                f"unknown class {class_name!r} for task {self.name!r}; expected one of {list(self.classes)}"
            ) from None

    def to_dict(self) -> dict:
        return {"name": self.name, "classes": list(self.classes)}


# Table 1 of the AMMFM paper (Derm7pt): the diagnosis and the seven-point checklist criteria.
DERM7PT_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec("DIAG", ("BCC", "NEV", "MEL", "MISC", "SK")),
    TaskSpec("PN", ("ABS", "TYP", "ATP")),
    TaskSpec("STR", ("ABS", "REG", "IR")),
    TaskSpec("PIG", ("ABS", "REG", "IR")),
    TaskSpec("RS", ("ABS", "PRS")),
    TaskSpec("DaG", ("ABS", "REG", "IR")),
    TaskSpec("BWV", ("ABS", "PRS")),
    TaskSpec("VS", ("ABS", "REG", "IR")),
)

TASK_PRESETS: dict[str, tuple[TaskSpec, ...]] = {"derm7pt": DERM7PT_TASKS}


def resolve_tasks(tasks: str | Iterable[TaskSpec | Mapping] | None) -> tuple[TaskSpec, ...]:
    """Turn a preset name, a list of specs or a list of ``{"name", "classes"}`` dicts into specs."""
    if tasks is None:
        tasks = "derm7pt"
    if isinstance(tasks, str):
        try:
            return TASK_PRESETS[tasks]
        except KeyError:
            raise UsageError(f"unknown task preset {tasks!r}; available: {sorted(TASK_PRESETS)}") from None
    specs = tuple(t if isinstance(t, TaskSpec) else TaskSpec(t["name"], tuple(t["classes"])) for t in tasks)
    if not specs:
        raise UsageError("at least one task is required")
    names = [t.name for t in specs]
    if len(set(names)) != len(names):
        raise UsageError(f"task names must be unique, got {names}")
    return specs


def tasks_to_data(tasks: Sequence[TaskSpec]) -> list[dict]:
    return [t.to_dict() for t in tasks]


def describe_tasks(tasks: Sequence[TaskSpec]) -> str:
    """``DIAG(BCC,NEV,MEL,MISC,SK), PN(ABS,TYP,ATP)``: names and classes, for error messages."""
    return ", ".join(f"{t.name}({','.join(t.classes)})" for t in tasks)


def check_same_tasks(model_tasks: Sequence[TaskSpec], data_tasks: Sequence[TaskSpec], source: str) -> None:
    """Raise :class:`TaskMismatchError` unless the model's tasks are exactly the data's, in order.

    Labels are matched to heads by position, so any difference in names, classes or order would train
    (or score) each head on another task's column.
    """
    if tuple(model_tasks) == tuple(data_tasks):
        return
    raise TaskMismatchError(
        f"the model's tasks differ from the tasks of the data in {source}:\n"
        f"  model: {describe_tasks(model_tasks)}\n"
        f"  data:  {describe_tasks(data_tasks)}\n"
        "give the model the data's tasks (model.tasks in a run config, tasks= in build_model), "
        "or use data with the model's tasks"
    )
