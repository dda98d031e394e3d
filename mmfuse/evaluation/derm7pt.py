"""What is specific to Derm7pt: Table 4's melanoma-related classes and the seven-point checklist score.

The generic metrics and the CLI call :func:`report_groups` and :func:`seven_point` and get nothing
back for other task sets, so another paired dataset never meets a dermatology rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmfuse.data.formats.derm7pt import seven_point_score
from mmfuse.tasks import DERM7PT_TASKS, TaskSpec

# Table 4 of the paper: the melanoma class and each criterion's melanoma-associated class.
MELANOMA_CLASSES: tuple[tuple[str, str], ...] = (
    ("DIAG", "MEL"),
    ("PN", "ATP"),
    ("STR", "IR"),
    ("PIG", "IR"),
    ("RS", "PRS"),
    ("DaG", "IR"),
    ("BWV", "PRS"),
    ("VS", "IR"),
)

# Argenziano's seven-point checklist flags melanoma at a score of 3 or more.
MELANOMA_THRESHOLD = 3


def is_derm7pt(tasks: Sequence[TaskSpec]) -> bool:
    return tuple(tasks) == DERM7PT_TASKS


def report_groups(tasks: Sequence[TaskSpec]) -> dict[str, tuple[tuple[str, str], ...]]:
    """``{"mel": MELANOMA_CLASSES}`` for the Derm7pt tasks, else no groups."""
    return {"mel": MELANOMA_CLASSES} if is_derm7pt(tasks) else {}


def seven_point(predicted: Mapping[str, str], tasks: Sequence[TaskSpec]) -> dict | None:
    """``{"score", "melanoma"}`` from predicted class names, or ``None`` when the tasks are not Derm7pt's.

    Major criteria (atypical pigment network, blue-whitish veil, irregular vessels) count 2 points,
    minor ones (irregular streaks, pigmentation and dots/globules, any regression) 1 point.
    """
    if not is_derm7pt(tasks):
        return None
    score = seven_point_score(predicted)
    return {"score": score, "melanoma": score >= MELANOMA_THRESHOLD, "threshold": MELANOMA_THRESHOLD}
