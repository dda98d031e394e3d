"""Patient metadata as numbers: one-hot categories and standardised measurements, fitted on training data.

A :class:`MetadataEncoding` is plain data (``to_dict``/``from_dict``): the model keeps it in its config,
so a saved model encodes raw metadata at inference exactly as it did in training. Fitting sees the
training split only — category lists (unless given) and means/standard deviations come from it — so no
statistic of the validation or test cases leaks into the model.

Missing values: an empty cell (or ``na``, ``n/a``, ``nan``, ``none``, ``null``, ``unknown``, ``?``) or a
category unseen in training encodes as all zeros for a categorical field and as the training mean (0
after standardising) for a numeric one; :class:`EncodingReport` counts them per field. A case with
every field missing has ``present=False``: the model treats it like a case without an auxiliary image.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from mmfuse.errors import UsageError

__all__ = ["EncodedField", "FieldSpec", "MetadataEncoding"]

KINDS = ("categorical", "numeric")
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "none", "null", "unknown", "?"})


def is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return str(value).strip().lower() in MISSING_MARKERS


def _as_float(value: object) -> float | None:
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class FieldSpec:
    """What to encode: a metadata key, its kind (``None``: numeric if every training value parses as a
    number, else categorical) and, optionally, a fixed category list (e.g. a dataset's official one)."""

    name: str
    kind: str | None = None
    categories: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, spec: str | Mapping) -> FieldSpec:
        if isinstance(spec, str):
            return cls(spec)
        if not isinstance(spec, Mapping) or "name" not in spec and "column" not in spec:
            raise UsageError(
                f"a metadata field is a name or a mapping with 'column' (or 'name'), got {spec!r}"
            )
        unknown = set(spec) - {"name", "column", "type", "kind", "categories"}
        if unknown:
            raise UsageError(f"metadata field {spec!r}: unknown keys {sorted(unknown)}")
        kind = spec.get("type", spec.get("kind"))
        if kind is not None and kind not in KINDS:
            raise UsageError(f"metadata field {spec!r}: type must be one of {KINDS}, got {kind!r}")
        categories = spec.get("categories")
        return cls(
            str(spec.get("column", spec.get("name"))),
            kind,
            None if categories is None else tuple(str(c) for c in categories),
        )


@dataclass(frozen=True)
class EncodedField:
    """A fitted field: categorical with its category list, or numeric with the training mean and std."""

    name: str
    kind: str
    categories: tuple[str, ...] = ()
    mean: float = 0.0
    std: float = 1.0

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 1

    def to_dict(self) -> dict:
        if self.kind == "categorical":
            return {"name": self.name, "kind": self.kind, "categories": list(self.categories)}
        return {"name": self.name, "kind": self.kind, "mean": self.mean, "std": self.std}


@dataclass
class EncodingReport:
    """Per field: how many cases had no value (``missing``) or a value the encoding does not know
    (``unknown``: an unseen category, or text in a numeric field); ``absent``: cases with no field at all."""

    cases: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    unknown: dict[str, int] = field(default_factory=dict)
    absent: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def describe(self) -> str:
        parts = []
        for name in sorted(set(self.missing) | set(self.unknown)):
            m, u = self.missing.get(name, 0), self.unknown.get(name, 0)
            if m or u:
                text = f"{name}: {m} missing" + (f", {u} unknown {self.examples.get(name, [])}" if u else "")
                parts.append(text)
        head = f"metadata of {self.cases} cases"
        if not parts and not self.absent:
            return f"{head}: complete"
        tail = f"; {self.absent} cases without any metadata (treated like a missing auxiliary image)"
        return f"{head}: " + ("; ".join(parts) or "no missing values") + (tail if self.absent else "")

    def to_dict(self) -> dict:
        return {"cases": self.cases, "missing": self.missing, "unknown": self.unknown, "absent": self.absent}


class MetadataEncoding:
    """Fitted metadata fields → a float vector of :attr:`size` values per case."""

    def __init__(self, fields: Sequence[EncodedField]) -> None:
        if not fields:
            raise UsageError("a metadata encoding needs at least one field")
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise UsageError(f"metadata field names repeat: {names}")
        self.fields = tuple(fields)

    @property
    def size(self) -> int:
        return sum(f.width for f in self.fields)

    @property
    def columns(self) -> list[str]:
        """A name per encoded value: ``sex=female``, ``age``..."""
        out = []
        for f in self.fields:
            out += [f"{f.name}={c}" for c in f.categories] if f.kind == "categorical" else [f.name]
        return out

    @classmethod
    def fit(cls, rows: Sequence[Mapping], specs: Sequence[str | Mapping | FieldSpec]) -> MetadataEncoding:
        """Fit on the training split's metadata (``rows``: one mapping per case)."""
        if not rows:
            raise UsageError("cannot fit a metadata encoding on an empty training split")
        fields = []
        for raw_spec in specs:
            spec = raw_spec if isinstance(raw_spec, FieldSpec) else FieldSpec.parse(raw_spec)
            values = [row.get(spec.name) for row in rows]
            present = [str(v).strip() for v in values if not is_missing(v)]
            if spec.name not in rows[0] and not present:
                raise UsageError(
                    f"metadata field {spec.name!r} is not in the data (fields: {sorted(rows[0])})"
                )
            kind = spec.kind
            if kind is None:
                numeric = bool(present) and all(_as_float(v) is not None for v in present)
                kind = "numeric" if numeric and spec.categories is None else "categorical"
            if kind == "categorical":
                categories = spec.categories
                if categories is None:
                    categories = tuple(sorted(set(present)))
                if not categories:
                    raise UsageError(f"metadata field {spec.name!r} has no value in the training split")
                fields.append(EncodedField(spec.name, kind, tuple(categories)))
            else:
                numbers = [n for v in present if (n := _as_float(v)) is not None]
                if not numbers:
                    raise UsageError(
                        f"numeric metadata field {spec.name!r} has no number in the training split"
                    )
                mean = sum(numbers) / len(numbers)
                std = math.sqrt(sum((n - mean) ** 2 for n in numbers) / len(numbers))
                fields.append(EncodedField(spec.name, kind, mean=mean, std=std if std > 0 else 1.0))
        return cls(fields)

    def encode(self, rows: Sequence[Mapping]) -> tuple[torch.Tensor, torch.Tensor, EncodingReport]:
        """``(values float32 [N, size], present bool [N], report)`` for one mapping per case."""
        values = torch.zeros((len(rows), self.size), dtype=torch.float32)
        present = torch.zeros(len(rows), dtype=torch.bool)
        report = EncodingReport(cases=len(rows))
        for i, row in enumerate(rows):
            offset = 0
            for f in self.fields:
                raw = row.get(f.name)
                if is_missing(raw):
                    report.missing[f.name] = report.missing.get(f.name, 0) + 1
                elif f.kind == "categorical":
                    text = str(raw).strip()
                    lookup = {c.lower(): j for j, c in enumerate(f.categories)}
                    j = lookup.get(text.lower())
                    if j is None:
                        self._unknown(report, f.name, text)
                    else:
                        values[i, offset + j] = 1.0
                        present[i] = True
                else:
                    number = _as_float(raw)
                    if number is None:
                        self._unknown(report, f.name, str(raw))
                    else:
                        values[i, offset] = (number - f.mean) / f.std
                        present[i] = True
                offset += f.width
        report.absent = int((~present).sum())
        return values, present, report

    @staticmethod
    def _unknown(report: EncodingReport, name: str, text: str) -> None:
        report.unknown[name] = report.unknown.get(name, 0) + 1
        examples = report.examples.setdefault(name, [])
        if len(examples) < 3 and text not in examples:
            examples.append(text)

    def to_dict(self) -> dict:
        return {"size": self.size, "fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, data: Mapping) -> MetadataEncoding:
        try:
            fields = [
                EncodedField(
                    str(f["name"]),
                    str(f["kind"]),
                    tuple(str(c) for c in f.get("categories", ())),
                    float(f.get("mean", 0.0)),
                    float(f.get("std", 1.0)),
                )
                for f in data["fields"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"not a metadata encoding: {data!r} ({exc})") from None
        for f in fields:
            if f.kind not in KINDS:
                raise UsageError(f"metadata field {f.name!r}: kind must be one of {KINDS}, got {f.kind!r}")
        encoding = cls(fields)
        if "size" in data and int(data["size"]) != encoding.size:
            raise UsageError(
                f"metadata encoding says size {data['size']} but its fields make {encoding.size}"
            )
        return encoding

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MetadataEncoding) and self.fields == other.fields

    def __repr__(self) -> str:
        return f"MetadataEncoding({', '.join(f.name for f in self.fields)}; size {self.size})"
