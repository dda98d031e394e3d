"""Reading a run directory's JSON and CSV files for the report, checking the shape of every value it uses.

The report reads files a person may have edited, copied from another run or half-written by hand.
:class:`Field` wraps one parsed value with its file and the keys that reach it, so every read is checked
where it happens and a damaged value is one :class:`RunFileError` naming the file, the key path and what
was found (``run/metrics.json: ["test"]["final"]["avg_auc"] must be a number in [0, 1], got "high"``),
never a ``KeyError`` or ``TypeError`` from deep inside a section.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path

from mmfuse.errors import UsageError


class RunFileError(UsageError):
    """A file of a run directory does not have the shape the writer gives it."""


def _shown(value: object) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _as_float(value: object) -> float:
    """``value`` as a float; NaN for anything that is not a JSON number (a bool, a string, an int too large)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.nan


class Field:
    """One value of a run file (``where``: the keys from the file's top to it)."""

    def __init__(self, file: Path, value: object, where: tuple = ()):
        self.file, self.value, self.where = file, value, where

    def fail(self, expected: str) -> RunFileError:
        at = "".join(f"[{json.dumps(k)}]" for k in self.where) or "the top level"
        return RunFileError(f"{self.file}: {at} must be {expected}, got {_shown(self.value)}")

    # -- containers ------------------------------------------------------------------------------------

    def mapping(self) -> dict:
        """The value, which must be a JSON object."""
        if not isinstance(self.value, dict):
            raise self.fail("an object")
        return self.value

    def __contains__(self, key: str) -> bool:
        return key in self.mapping()

    def __getitem__(self, key: str) -> Field:
        mapping = self.mapping()
        if key not in mapping:
            raise Field(self.file, None, (*self.where, key)).fail("present")
        return Field(self.file, mapping[key], (*self.where, key))

    def get(self, *keys: str) -> Field | None:
        """The value under ``keys`` (each level an object), or ``None`` where a key is absent or null."""
        field: Field = self
        for key in keys:
            mapping = field.mapping()
            if mapping.get(key) is None:
                return None
            field = Field(self.file, mapping[key], (*field.where, key))
        return field

    def items(self) -> Iterator[tuple[str, Field]]:
        return ((k, Field(self.file, v, (*self.where, k))) for k, v in self.mapping().items())

    def keys(self) -> list[str]:
        return list(self.mapping())

    def list(self) -> list[Field]:
        if not isinstance(self.value, list):
            raise self.fail("a list")
        return [Field(self.file, v, (*self.where, i)) for i, v in enumerate(self.value)]

    # -- scalars ---------------------------------------------------------------------------------------

    def number(
        self, low: float = -math.inf, high: float = math.inf, *, optional: bool = False
    ) -> float | None:
        """A finite number in [low, high]; with ``optional``, ``null`` or NaN (an undefined metric) is ``None``."""
        value = self.value
        if optional and (value is None or (isinstance(value, float) and math.isnan(value))):
            return None
        number = _as_float(value)
        if not (math.isfinite(number) and low <= number <= high):
            bounds = "" if (low, high) == (-math.inf, math.inf) else f" in [{low:g}, {high:g}]"
            raise self.fail(f"a finite number{bounds}" + (" or null" if optional else ""))
        return number

    def fraction(self) -> float | None:
        """A metric (AUC, accuracy, ECE): a share in [0, 1], or ``None`` where it is undefined."""
        return self.number(0.0, 1.0, optional=True)

    def integer(self, low: int = 0, high: int | None = None) -> int:
        value = self.value
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            raise self.fail(f"a whole number ≥ {low}" + (f" and ≤ {high}" if high is not None else ""))
        return value

    def text(self) -> str:
        if not isinstance(self.value, str):
            raise self.fail("a string")
        return self.value

    def interval(self) -> tuple[float, float] | None:
        """A bootstrap interval ``[low, high]`` of a metric; ``None`` when it could not be computed."""
        if not isinstance(self.value, list) or len(self.value) != 2:
            raise self.fail("a [low, high] interval")
        low, high = (f.fraction() for f in self.list())
        return None if low is None or high is None else (low, high)


def read_json(path: Path) -> Field | None:
    """``path``'s content as a :class:`Field`; ``None`` when the file does not exist."""
    if not path.is_file():
        return None
    try:
        return Field(path, json.loads(path.read_text(encoding="utf-8")))
    except UnicodeDecodeError as exc:
        raise RunFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:  # not JSON, or an integer of thousands of digits
        raise RunFileError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise RunFileError(f"{path}: nested too deeply to be a file mmfuse wrote") from None


def read_csv_table(path: Path) -> tuple[list[dict], list[str]]:
    """A run's CSV table as its rows and header; a file that is not one is a :class:`RunFileError`."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            return list(reader), list(reader.fieldnames or [])
    except (csv.Error, UnicodeDecodeError) as exc:
        raise RunFileError(f"{path}: not a readable CSV table ({exc})") from None


def read_log(path: Path) -> list[dict[str, float]]:
    """``log.csv`` as numbers, one dict per epoch; every row needs its ``epoch``."""
    rows, header = read_csv_table(path)
    if rows and "epoch" not in header:
        raise RunFileError(f"{path}: no 'epoch' column (columns: {', '.join(map(str, header))})")
    parsed = []
    for number, row in enumerate(rows, start=2):
        if None in row:
            raise RunFileError(f"{path}, row {number}: more cells than the header has columns")
        try:
            values = {k: float(v) for k, v in row.items() if v not in (None, "")}
        except ValueError as exc:
            raise RunFileError(f"{path}, row {number}: {exc}") from None
        if not math.isfinite(values.get("epoch", math.nan)):
            raise RunFileError(f"{path}, row {number}: the epoch must be a number, got {row['epoch']!r}")
        parsed.append(values)
    return parsed
