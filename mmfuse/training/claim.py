"""A training's claim on its run folder: the checks of ``--out``, the lock, and what ``--resume`` may change.

Rank 0 claims the folder before any data is read for training: it checks the folder and the free
space, takes the lock, checks again under it, and writes ``RUN/config.yaml`` (a new run) or compares the
given config with it (``--resume``). A resumed run must train what it started training, so every
difference is refused unless it is a recovery key (:data:`~mmfuse.training.rundir.RECOVERY_KEYS`) named
with ``--allow-change``; allowed changes are appended to :data:`CHANGES_FILE`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path

from mmfuse.errors import RunDirError
from mmfuse.runs import CONFIG_FILE
from mmfuse.training import checkpoint
from mmfuse.training.config import dump_config, load_config
from mmfuse.training.rundir import (
    CHECKPOINTS,
    LOCK_FILE,
    RECOVERY_KEYS,
    RunLock,
    changed_keys,
    check_run_dir,
)

# Appended on every --resume that changes a recovery key: what changed, when, and from which checkpoint.
CHANGES_FILE = "config_changes.log"


def check_resume_changes(
    stored: Mapping, config: Mapping, *, run_dir: Path, allowed: Collection[str], last: Path | None
) -> list[tuple[str, object, object]]:
    """The changes from the run's ``stored`` config to ``config``, once each is allowed and recorded.

    Raises :class:`RunDirError` naming every refused change (and the ``--allow-change`` that would
    accept a recovery key), or an epoch count below the epochs already trained (``last``: the latest
    checkpoint, ``None`` before the first).
    """
    changes = changed_keys(stored, config)
    refused = [c for c in changes if c[0] not in allowed]
    if refused:
        recoverable = [c for c in refused if c[0] in RECOVERY_KEYS]
        hint = (
            f"; to recover or extend the run, allow it explicitly: {' '.join('--allow-change ' + c[0] for c in recoverable)}"
            if recoverable
            else ""
        )
        raise RunDirError(
            f"--resume: the config differs from the one {run_dir} was started with: "
            + "; ".join(f"{k}: {a!r} in the run, {b!r} given" for k, a, b in refused)
            + hint
        )
    if not changes:
        return changes
    epochs = int(config["train"]["epochs"])
    if ("train.epochs" in {c[0] for c in changes}) and last is not None:
        done = int(last.name.split("_")[1])
        if epochs < done:
            raise RunDirError(f"--resume: train.epochs {epochs} is below the {done} epochs already trained")
    with open(run_dir / CHANGES_FILE, "a", encoding="utf-8") as log:
        for key, a, b in changes:
            print(f"--resume: {key} changed from {a!r} to {b!r}", file=sys.stderr)
            log.write(
                f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {last.name if last else 'start'} {key}: {a!r} -> {b!r}\n"
            )
    return changes


class RunClaim:
    """Rank 0's hold on ``run_dir`` from its checks to the end of the run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._lock: RunLock | None = None
        self._started_here = False  # this start wrote RUN/config.yaml, so a failed start removes it

    def take(
        self, config: Mapping, *, resume: bool, needed: int, allowed: Collection[str]
    ) -> list[tuple[str, object, object]]:
        """Check, lock and write the folder; returns the allowed changes of a ``resume`` (see
        :func:`check_resume_changes`). Needs ``needed`` bytes free; releases the lock if it fails."""
        try:
            check_run_dir(self.run_dir, resume=resume, needed=needed)  # creates the folder
            self._lock = RunLock(self.run_dir)
            # Again under the lock: "no run here" now stays true until this start writes its config.
            check_run_dir(self.run_dir, resume=resume, needed=needed)
            stored = self.run_dir / CONFIG_FILE
            if not (resume and stored.is_file()):
                dump_config(config, stored)
                self._started_here = True
                return []
            last = checkpoint.latest(self.run_dir / CHECKPOINTS)
            changes = check_resume_changes(
                load_config(stored), config, run_dir=self.run_dir, allowed=allowed, last=last
            )
            if changes:
                dump_config(config, stored)  # RUN/config.yaml says what the rest of the run trains with
            return changes
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def abandon(self) -> None:
        """A start that failed before training leaves the folder as it found it, so the same --out works again."""
        checkpoints = self.run_dir / CHECKPOINTS
        if self._started_here and checkpoint.latest(checkpoints) is None:
            (self.run_dir / CONFIG_FILE).unlink(missing_ok=True)
            (self.run_dir / LOCK_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                checkpoints.rmdir()
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()  # only if nothing else is in it
        self.release()
