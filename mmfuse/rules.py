"""Value rules: how mmfuse checks the values of a configuration, one small function per value.

A rule is ``rule(name, value) -> problem``: the sentence naming what is wrong (``"train.lr must be a
finite number >= 0, got -1"``), or ``None``. A configuration is checked against a table of rules keyed by
field (the model config: :data:`mmfuse.presets.VALUE_RULES`) or by key path (the run config:
:data:`mmfuse.training.config.VALUE_RULES`), so a new key adds one line to its table. The constructors
below build the common rules; anything else is a plain function of the same shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection

Rule = Callable[[str, object], "str | None"]


def is_integer(value: object) -> bool:
    """An ``int`` that is not a ``bool`` (YAML's ``true`` would otherwise count as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """A finite ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def integer_in(low: int, high: int | None = None, *, says: str | None = None) -> Rule:
    """An integer from ``low`` to ``high`` inclusive (``None``: no bound); ``says`` words the range
    (default: "a positive integer" from 1 up, else "an integer in [low, high]")."""
    if says is None:
        says = "a positive integer" if (low, high) == (1, None) else f"an integer in [{low}, {high}]"

    def rule(name: str, value: object) -> str | None:
        if is_integer(value) and value >= low and (high is None or value <= high):
            return None
        return f"{name} must be {says}, got {value!r}"

    return rule


def number_at_least(low: float, *, optional: bool = False) -> Rule:
    """A finite number no smaller than ``low``; ``None`` too when ``optional``."""

    def rule(name: str, value: object) -> str | None:
        if (value is None and optional) or (is_finite_number(value) and value >= low):
            return None
        return f"{name} must be a finite number >= {low:g}, got {value!r}"

    return rule


def one_of(choices: Collection[object]) -> Rule:
    """One of ``choices`` (compared with ``==``, so ``None`` may be one)."""

    def rule(name: str, value: object) -> str | None:
        return None if value in choices else f"{name} must be one of {list(choices)}, got {value!r}"

    return rule
