"""The run directory as training needs it: checked before anything is trained, so a bad ``--out`` fails
in the first second, locked while it is written, and compared with the config of a run it resumes.

A run needs a directory it can create and write, enough free space for its checkpoints and final
model, and — unless it resumes — no earlier run in the same place. Its files are named in
:mod:`mmfuse.runs`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmfuse.errors import RunDirError
from mmfuse.runs import CONFIG_FILE

CHECKPOINTS = "checkpoints"

# Keys that may differ between a run and its resumption without changing the trained weights.
_RESUME_FREE = {
    ("data", "num_workers"),
    ("train", "log_every"),
    ("train", "threads"),
    ("train", "keep_checkpoints"),
    ("train", "checkpoint_every"),
    ("train", "track"),  # watching a run differently changes nothing it computes
    ("train", "validate_every"),  # validation runs on its own RNG state (see training.monitor)
}


# Keys ``--resume`` may change when asked to explicitly (``--allow-change KEY``): what a user lowers or
# raises to recover a diverged run or extend it. Architecture, data and seeds never change mid-run.
RECOVERY_KEYS = ("train.lr", "train.grad_clip", "train.amp", "train.epochs")
LOCK_FILE = ".lock"


class RunLock:
    """An exclusive ``flock`` on ``RUN/.lock`` held while a training writes the run folder.

    Checking "no run here" and then writing is a race two trainings can both win; the lock makes the
    second one fail at once. The kernel drops it when its process dies (even by SIGKILL), so a killed
    run never blocks ``--resume``.
    """

    def __init__(self, out: Path) -> None:
        import fcntl

        self.path = Path(out) / LOCK_FILE
        self._handle = open(self.path, "a+")  # noqa: SIM115 - held open for the life of the run
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._handle.seek(0)
            holder = self._handle.read().strip() or "another process"
            self._handle.close()
            raise RunDirError(
                f"--out {out} is being written by another training ({holder}); wait for it to finish, "
                "or choose another directory"
            ) from None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(f"pid {os.getpid()}\n")
        self._handle.flush()

    def release(self) -> None:
        """Remove the lock file, then drop the lock: a run folder no training writes holds no ``.lock``."""
        if not self._handle.closed:
            self.path.unlink(missing_ok=True)  # still ours: nobody else can hold it before the close
            self._handle.close()  # closing drops the flock


def required_bytes(num_parameters: int, keep_checkpoints: int) -> int:
    """Disk a run needs: checkpoints (weights, average, two Adam moments) while one more is written, plus the model."""
    per_checkpoint = 4 * num_parameters * 4
    return per_checkpoint * (max(keep_checkpoints, 1) + 1) + 4 * num_parameters + 16 * 2**20


def refuse_existing_run(out: str | Path, *, resume: bool) -> None:
    """Raise :class:`RunDirError` when ``out`` is not a folder, or holds a run and ``resume`` is false.

    Cheap, so a training calls it before reading any data; :func:`check_run_dir` repeats it.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} exists and is not a directory")
    if not resume and ((out / CHECKPOINTS).exists() or (out / CONFIG_FILE).exists()):
        raise RunDirError(
            f"--out {out} already holds a run; pass --resume to continue it, or choose an empty directory"
        )


def check_run_dir(out: str | Path, *, resume: bool, needed: int) -> Path:
    """Create ``out`` and prove it is writable and has ``needed`` bytes free; raise :class:`RunDirError` if not."""
    out = Path(out)
    refuse_existing_run(out, resume=resume)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    refuse_existing_run(out, resume=resume)
    probe = out / f".write-test-{os.getpid()}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise RunDirError(f"--out {out} is not writable: {exc.strerror or exc}") from None
    finally:
        probe.unlink(missing_ok=True)
    free = shutil.disk_usage(out).free
    if free < needed:
        raise RunDirError(
            f"--out {out} has {free / 2**20:.0f} MiB free but this run needs about {needed / 2**20:.0f} MiB "
            "(checkpoints and the final model); free some space or choose another directory"
        )
    return out


def changed_keys(
    stored: Mapping, given: Mapping, path: tuple[str, ...] = ()
) -> list[tuple[str, object, object]]:
    """``(dotted key, stored value, given value)`` for every difference that affects the weights."""
    changes = []
    for key in sorted(set(stored) | set(given)):
        where = (*path, key)
        if where in _RESUME_FREE or (len(where) == 1 and key == "evaluation"):
            continue
        a, b = stored.get(key), given.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes += changed_keys(a, b, where)
        elif a != b:
            changes.append((".".join(where), a, b))
    return changes


def config_differences(stored: Mapping, given: Mapping, path: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ (ignoring keys that do not affect the weights)."""
    return [f"{key}: {a!r} in the run, {b!r} given" for key, a, b in changed_keys(stored, given, path)]


def check_allowed_changes(keys: Sequence[str]) -> tuple[str, ...]:
    """The ``--allow-change`` keys, each one of :data:`RECOVERY_KEYS`."""
    unknown = [k for k in keys if k not in RECOVERY_KEYS]
    if unknown:
        raise RunDirError(
            f"--allow-change {', '.join(unknown)}: only {', '.join(RECOVERY_KEYS)} may change when a run resumes "
            "(the architecture, data and seeds of a run are fixed)"
        )
    return tuple(keys)

