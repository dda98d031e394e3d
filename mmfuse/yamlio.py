"""Reading YAML with YAML 1.2's booleans: only ``true`` and ``false`` (any case) are booleans.

PyYAML implements YAML 1.1, where ``yes``, ``no``, ``on``, ``off``, ``y`` and ``n`` are booleans too: a
schema's label map ``{yes: 1, no: 0}`` would silently become ``{True: 1, False: 0}``, and clinical tables
are full of yes/no answers. Every config and schema in mmfuse is read through :func:`load_yaml`, so such
words stay the strings the table holds.
"""

from __future__ import annotations

import re
from pathlib import Path

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


def read_yaml_file(path: Path, what: str, error: type[Exception], missing: type[Exception] = FileNotFoundError):
    """The YAML document in the file ``path``, read by :func:`load_yaml`.

    A user hands mmfuse a config or a schema by name, so every way the file itself can be wrong (missing, a
    directory, not UTF-8, not YAML, nested past the parser's recursion limit) raises ``error`` (``missing`` for
    a file that is not there) with a message that names the file and says it should be ``what``.
    """
    if path.is_dir():
        raise error(f"{what} {path} is a directory; give the {what}'s YAML file")
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise missing(f"{what} file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{what} {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise error(f"{what} {path} is nested too deeply") from None


def boolean_hint(value: object) -> str:
    """A hint for a boolean option given a YAML 1.1 word (``yes``/``on`` ...): empty for anything else."""
    if isinstance(value, str) and value.lower() in YAML_11_BOOLEAN_WORDS:
        return f" (write true or false: mmfuse reads YAML 1.2, where {value!r} is a string)"
    return ""
