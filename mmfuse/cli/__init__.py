"""The ``mmfuse`` command line (also ``python -m mmfuse``).

Each module in this package that defines ``add_parser(subparsers)`` is a subcommand; it sets
``func`` on its parser and imports heavy dependencies inside that function, so ``mmfuse --help``
stays fast.

The error contract (docs/guarantees.md) is kept here, once, for every subcommand: a problem with
the user's inputs — an :class:`~mmfuse.errors.MmfuseError` or an ``OSError`` about a file — is
printed as one line, ``mmfuse COMMAND: error: ...``, and exits with status 1; anything else is a bug
in mmfuse, printed with its traceback and a request to report it, exit status 70.
"""

from __future__ import annotations

import argparse
import errno
import functools
import importlib
import os
import pkgutil
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from mmfuse.errors import MmfuseError

EXIT_INPUT_ERROR = 1
EXIT_USAGE = 2  # argparse's status for a malformed command line
EXIT_BUG = 70  # EX_SOFTWARE: an internal error
EXIT_INTERRUPTED = 130
REPORT_URL = "https://github.com/mmfuse/mmfuse/issues"
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def build_parser() -> argparse.ArgumentParser:
    from mmfuse import __version__

    parser = argparse.ArgumentParser(
        prog="mmfuse", description="Asymmetric multimodal fusion for medical images."
    )
    parser.add_argument("--version", action="version", version=f"mmfuse {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "add_parser"):
            module.add_parser(subparsers)
    return parser


def describe_os_error(exc: OSError) -> str:
    """One line naming the file and what is wrong with it, without Python's ``[Errno N]`` noise."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        reason = "no space left on the device (free some space, or choose another --out)"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        reason = "permission denied"
    names = [os.fsdecode(n) for n in (exc.filename, exc.filename2) if n is not None]
    if not names:
        return reason
    return f"{' -> '.join(names)}: {reason}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = f"mmfuse {args.command}"
    with warnings.catch_warnings():
        warnings.showwarning = functools.partial(_show_warning, command)
        return _run(args, command)


def _show_warning(command, message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line a user reads (``mmfuse train: warning: ...``), not Python's source excerpt.

    A library's warning keeps its category and origin, which is what its maintainers would ask for.
    """
    text = " ".join(str(message).split())
    if not str(Path(filename).resolve()).startswith(_PACKAGE_DIR):
        text = f"{text} ({category.__name__} from {Path(filename).name}:{lineno})"
    print(f"{command}: warning: {text}", file=file or sys.stderr)


def _run(args, command: str) -> int:
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at interpreter exit
        return status
    except BrokenPipeError:
        return _reader_went_away()
    except MmfuseError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except OSError as exc:  # a file or folder the user named: missing, unreadable, a directory, disk full
        print(f"{command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print(f"{command}: interrupted (a run resumes with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        traceback.print_exc()
        print(
            f"{command}: internal error: this is a bug in mmfuse, not a problem with your input. "
            f"Please report it at {REPORT_URL} with the command line and the traceback above.",
            file=sys.stderr,
        )
        return EXIT_BUG


def _reader_went_away() -> int:
    """``mmfuse data stats ... | head``: the reader closed the pipe; stop quietly, as Unix tools do.

    Python would otherwise complain again when it flushes stdout at exit, so stdout is pointed at
    /dev/null first (the recipe of the Python docs, "Note on SIGPIPE").
    """
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141  # 128 + SIGPIPE, the status a shell reports for a writer killed by a closed pipe
