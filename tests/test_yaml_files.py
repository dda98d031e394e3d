"""The YAML files a user names (a run config, a paired-CSV schema) fail with one error that names the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmfuse.data.formats.paired_csv import read_schema
from mmfuse.errors import DataError, RunConfigError
from mmfuse.training.config import load_config

READERS = {"run config": (load_config, RunConfigError), "schema": (read_schema, DataError)}

BAD_FILES = {
    "a directory": (lambda path: path.mkdir(), "is a directory"),
    "not UTF-8": (lambda path: path.write_bytes(b"model: \xff\n"), "is not UTF-8 text"),
    "not YAML": (lambda path: path.write_text("model: [unclosed\n"), "is not valid YAML"),
    "nested too deeply": (lambda path: path.write_text("[" * 100_000 + "]" * 100_000), "nested too deeply"),
}


@pytest.mark.parametrize("what", READERS)
@pytest.mark.parametrize("bad", BAD_FILES)
def test_a_bad_yaml_file_is_named_with_what_is_wrong(tmp_path: Path, what: str, bad: str) -> None:
    read, error = READERS[what]
    make, message = BAD_FILES[bad]
    path = tmp_path / "file.yaml"
    make(path)
    with pytest.raises(error, match=f"{what} {re.escape(str(path))}.* {message}"):
        read(path)


def test_a_missing_run_config_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run config file not found: .*absent.yaml"):
        load_config(tmp_path / "absent.yaml")


def test_a_missing_schema_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="schema file not found: .*absent.yaml"):
        read_schema(tmp_path / "absent.yaml")
