"""Every exception mmfuse raises on purpose, in one hierarchy (documented in docs/guarantees.md).

All derive from :class:`MmfuseError`, so ``except mmfuse.MmfuseError`` catches every problem with a
user's inputs (files, folders, configs, images, weights, metadata, arguments) and nothing else; an
exception of any other type escaping mmfuse is a bug. Each message names the file, row, key or value at
fault and says how to fix it. Several classes also derive from the matching built-in (``ValueError``,
``FileNotFoundError``, ``LookupError``) so code written against those keeps working.

The classes were first defined next to the code that raises them; they are still importable from
there (``mmfuse.hub.ModelNotFoundError``, ``mmfuse.data.errors.DataError``, ...).
"""

from __future__ import annotations


class MmfuseError(Exception):
    """Base class of every error raised on purpose by mmfuse: a problem with an input, never a bug."""


# -- names and plugins ---------------------------------------------------------------------------------


class UnknownNameError(MmfuseError, LookupError):
    """A registry lookup failed; the message lists the names that are available."""


class DuplicateNameError(MmfuseError, ValueError):
    """A name is already registered and ``override=True`` was not given."""


class MissingPluginError(UnknownNameError):
    """A saved configuration names a component whose plugin is not installed."""


# -- arguments and configs -----------------------------------------------------------------------------


class UsageError(MmfuseError, ValueError):
    """A command-line option or function argument has a value mmfuse cannot use (``--seeds 0-1e12``)."""


class UnknownOptionError(UsageError, TypeError):
    """A component was given an option it does not take (``encoder_options: {depth: 3}``)."""


class PluginError(MmfuseError, TypeError):
    """A plugin broke its contract: it registered something unusable or returned the wrong type."""


class RunConfigError(MmfuseError, ValueError):
    """A run configuration (the YAML of ``mmfuse train``: its model, data, train and evaluation sections)
    is unreadable, or a key is unknown or a value missing, misspelt or out of range.

    Configurations come in two kinds, each with its own error: the *run* config says how to train and
    evaluate (this class); the *model* config says what network to build (:class:`ModelConfigError`).
    """


class ModelConfigError(MmfuseError, ValueError):
    """A model configuration (a preset's fields with their overrides, or a saved ``config.json``) is
    unreadable, names something it may not, holds a value the model cannot use, or cannot be built.

    The message names the field (or the file) at fault. A run config's ``model`` section that cannot be
    built is a :class:`RunConfigError`, since the user fixes it in the run's YAML.
    """


# -- data ----------------------------------------------------------------------------------------------


class DataError(MmfuseError, ValueError):
    """A dataset, image or cache problem; the message says which file, row or column is at fault."""


# -- models and weights --------------------------------------------------------------------------------


class ModelNotFoundError(MmfuseError, FileNotFoundError):
    """A directory, Hub repository, revision or file that :func:`from_pretrained` needs is not there."""


class UnsafeCheckpointError(MmfuseError):
    """Only pickle weights were found and ``trust_pickle=True`` was not given."""


class WeightsMismatchError(MmfuseError):
    """The weights file does not match the architecture its config describes."""


class CorruptWeightsError(MmfuseError):
    """A weights file is empty, truncated or not safetensors at all (the message names the file)."""


class PublishError(MmfuseError):
    """Creating the Hub repository or uploading to it failed (network, token, permissions)."""


class ExportError(MmfuseError):
    """The exported graph does not reproduce the torch model, or onnx/onnxruntime are missing."""


# -- runs ----------------------------------------------------------------------------------------------


class RunDirError(MmfuseError):
    """``--out`` cannot hold this run (unwritable, full, or already holding another run)."""


class CheckpointError(MmfuseError):
    """A checkpoint is missing, unreadable, or does not match the run being resumed."""


class NonFiniteLossError(MmfuseError):
    """The loss became NaN or infinite; the run stopped and its last good checkpoint is kept."""


class NonFiniteOutputError(MmfuseError, FloatingPointError):
    """A model produced NaN or infinite logits or probabilities; the message names the cases and heads."""


class TaskMismatchError(MmfuseError, ValueError):
    """A dataset's tasks (or its labels) do not match the model's tasks; the message names both."""


class CompareError(MmfuseError, ValueError):
    """Two runs cannot be compared: different tasks, no shared cases, or disagreeing labels."""


# What building a model from a user's configuration can raise besides mmfuse's own checks: timm, torch and
# the plugins reject hostile values (a None where a mapping belongs, a negative size) with these.
BUILD_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RuntimeError,
    AssertionError,
    RecursionError,
    OverflowError,
    ZeroDivisionError,
    MemoryError,
)


def one_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line (torch's state-dict errors span several), shortened to ``limit``."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_build_error(exc: BaseException) -> str:
    """``"IndexError: list index out of range"``; the type alone when the message is empty (timm asserts)."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else f"{type(exc).__name__} in the backbone library"


__all__ = [
    "CheckpointError",
    "CompareError",
    "CorruptWeightsError",
    "DataError",
    "DuplicateNameError",
    "ExportError",
    "MissingPluginError",
    "MmfuseError",
    "ModelConfigError",
    "ModelNotFoundError",
    "NonFiniteLossError",
    "NonFiniteOutputError",
    "PluginError",
    "PublishError",
    "RunConfigError",
    "RunDirError",
    "TaskMismatchError",
    "UnknownNameError",
    "UnknownOptionError",
    "UnsafeCheckpointError",
    "UsageError",
    "WeightsMismatchError",
]

# 0.1.0's names of the two configuration errors; they resolve, with a DeprecationWarning, until 0.3.
_RENAMED = {"ConfigError": "RunConfigError", "InvalidConfigError": "ModelConfigError"}


def __getattr__(name: str) -> type[MmfuseError]:
    if name not in _RENAMED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings

    warnings.warn(
        f"mmfuse.errors.{name} is now {_RENAMED[name]}; the old name goes in 0.3", DeprecationWarning, stacklevel=2
    )
    return globals()[_RENAMED[name]]
