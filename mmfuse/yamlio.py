"""Reading YAML with YAML 1.2's booleans: only ``true`` and ``false`` (any case) are booleans.

PyYAML implements YAML 1.1, where ``yes``, ``no``, ``on``, ``off``, ``y`` and ``n`` are booleans too: a
schema's label map ``{yes: 1, no: 0}`` would silently become ``{True: 1, False: 0}``, and clinical tables
are full of yes/no answers. Every config and schema in mmfuse is read through :func:`load_yaml`, so such
words stay the strings the table holds.
"""

from __future__ import annotations

import re

import yaml

BOOL_TAG = "tag:yaml.org,2002:bool"
YAML_11_BOOLEAN_WORDS = frozenset({"yes", "no", "on", "off", "y", "n"})


class Yaml12SafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose implicit booleans are YAML 1.2's ``true``/``false`` only."""


Yaml12SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12SafeLoader.add_implicit_resolver(
    BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str):
    """``yaml.safe_load`` with YAML 1.2 booleans (see the module docstring)."""
    return yaml.load(text, Loader=Yaml12SafeLoader)  # noqa: S506 - a SafeLoader subclass


def boolean_hint(value: object) -> str:
    """A hint for a boolean option given a YAML 1.1 word (``yes``/``on`` ...): empty for anything else."""
    if isinstance(value, str) and value.lower() in YAML_11_BOOLEAN_WORDS:
        return f" (write true or false: mmfuse reads YAML 1.2, where {value!r} is a string)"
    return ""
