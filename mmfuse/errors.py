"""Exceptions users can catch; each message says what was looked for and how to fix it."""


class MmfuseError(Exception):
    """Base class of every error raised on purpose by mmfuse."""


class UnknownNameError(MmfuseError, LookupError):
    """A registry lookup failed; the message lists the names that are available."""


class DuplicateNameError(MmfuseError, ValueError):
    """A name is already registered and ``override=True`` was not given."""


class MissingPluginError(UnknownNameError):
    """A saved configuration names a component whose plugin is not installed."""


class NonFiniteOutputError(MmfuseError, FloatingPointError):
    """A model produced NaN or infinite logits or probabilities; the message names the cases and heads."""
