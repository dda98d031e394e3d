"""The error type the data layer raises on purpose, and the problems a check collects."""

from __future__ import annotations

from dataclasses import dataclass

from mmfuse.errors import DataError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: ``kind`` groups problems, ``message`` names the file, row or column."""

    kind: str
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


def raise_for_problems(problems: list[Problem], source: str, hint: str) -> None:
    """Raise one :class:`DataError` listing the first problems, so a bad table fails before training."""
    if not problems:
        return
    shown = "\n  ".join(str(p) for p in problems[:10])
    more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
    raise DataError(f"{len(problems)} problem(s) in {source}:\n  {shown}{more}\n{hint}")
