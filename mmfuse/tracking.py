"""Experiment trackers: the run as TensorBoard, MLflow or Weights & Biases show it, next to ``log.csv``.

A tracker is a plugin (hook ``register_trackers``); ``train.track`` names the ones a run uses
(``["tensorboard"]`` by default). The trainer talks to them only through :class:`Trackers`, which keeps
the run going when one of them cannot start or fails later: a tracker is a window on the run, never a
reason to lose it. What a tracker needs to continue its own run on ``--resume`` (MLflow's run id, W&B's
id) it returns from :meth:`Tracker.start` and finds again in ``RUN/tracking.json``.

Steps are the optimizer's steps counted from the start of the run (``epoch * steps_per_epoch + step``),
so a resumed run continues the same axis; the trainer hands a tracker an epoch's values only once the
epoch's checkpoint is written, so a run killed mid-epoch never logs the same step twice.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmfuse.errors import RunConfigError
from mmfuse.metrics_layout import HEADLINE_METRICS
from mmfuse.registry import TRACKERS, list_trackers, register_tracker

__all__ = ["TRACKING_FILE", "Tracker", "Trackers", "hyperparameters", "list_trackers", "register_tracker"]

TRACKING_FILE = "tracking.json"  # per tracker, what it needs to continue its run on --resume


class Tracker:
    """One tracking backend for one run. Subclasses override what they support; every method may raise.

    ``start`` opens (or, given its ``state`` from an earlier start of this run, reopens) the backend's run
    and returns the state to keep for the next resume (JSON-serialisable), e.g. ``{"run_id": ...}``.
    """

    name = "tracker"

    def start(self, run_dir: Path, config: Mapping, *, state: Mapping | None, first_step: int) -> dict:
        """Open the run; ``first_step`` is the next step the trainer will log (0 unless resumed)."""
        return {}

    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        """Scalars at one step; keys are ``/``-separated names (``train/loss``, ``valid/fusion/avg_auc``)."""

    def log_summary(self, metrics: Mapping[str, float], run_dir: Path, step: int) -> None:
        """The finished run at its last ``step``: final metrics (``split/head/avg_auc``...) and its files
        (the model folder, ``report.html``)."""

    def close(self) -> None:
        """Flush and close; called once, also when training fails."""


def flatten(tree: Mapping, prefix: str = "", sep: str = "/") -> dict[str, object]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``; lists become one comma-joined string."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name, sep))
        elif isinstance(value, (list, tuple)):
            flat[name] = ",".join(map(str, value))
        else:
            flat[name] = value
    return flat


def hyperparameters(config: Mapping) -> dict[str, object]:
    """The run config as flat ``section.key`` hyperparameters (what a tracker's parameter table shows)."""
    flat = flatten(config, sep=".")
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flat.items()}


def numeric(values: Mapping[str, object]) -> dict[str, float]:
    """Only the finite numbers (AUCs of classes absent from a split are NaN; trackers reject or hide them)."""
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def head_scalars(metrics: Mapping[str, Mapping], prefix: str = "") -> dict[str, float]:
    """``{split: {head: report}}`` or ``{head: report}`` -> ``prefix/.../head/avg_auc`` scalars.

    Per head: ``avg_auc``, ``avg_acc``, each task's accuracy (``acc/TASK``) and the group averages
    (``mel/auc``...); per-class detail stays in ``metrics.json``.
    """
    scalars: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if not isinstance(value, Mapping):
            scalars[name] = value
        elif "avg_auc" in value:
            scalars.update(_head_report(value, name))
        else:
            scalars.update(head_scalars(value, name))
    return numeric(scalars)


def _head_report(report: Mapping, prefix: str) -> dict[str, object]:
    values: dict[str, object] = {
        f"{prefix}/avg_auc": report["avg_auc"],
        f"{prefix}/avg_acc": report["avg_acc"],
    }
    for task, entry in report.get("tasks", {}).items():
        values[f"{prefix}/acc/{task}"] = entry["acc"]
    for name, group in report.items():
        if name not in (*HEADLINE_METRICS, "tasks", "ci") and isinstance(group, Mapping):
            values.update({f"{prefix}/{name}/{k}": v for k, v in group.items()})
    return values


class Trackers:
    """The trackers of one run, started together; each failure is one warning line and drops that tracker."""

    def __init__(self, trackers: Sequence[Tracker] = ()) -> None:
        self.active = list(trackers)

    @classmethod
    def start(cls, names: Sequence[str], run_dir: Path, config: Mapping, *, first_step: int) -> Trackers:
        """Create and start the trackers ``names`` for ``run_dir``, continuing their runs from ``tracking.json``."""
        states = _read_states(run_dir)
        started = []
        for name in names:
            try:
                tracker = TRACKERS.entry(name).obj()
                states[name] = dict(
                    tracker.start(run_dir, config, state=states.get(name), first_step=first_step)
                )
            except Exception as exc:  # noqa: BLE001 - any backend problem (missing package, no server) alike
                _warn(name, "could not start", exc)
                continue
            started.append(tracker)
        if started:
            _write_states(run_dir, states)
        return cls(started)

    def log_metrics(self, values: Mapping[str, float], step: int) -> None:
        self._each("log_metrics", numeric(values), step)

    def log_summary(self, metrics: Mapping[str, float], run_dir: Path, step: int) -> None:
        self._each("log_summary", numeric(metrics), run_dir, step)

    def close(self) -> None:
        self._each("close")
        self.active = []

    def _each(self, method: str, *args: object) -> None:
        for tracker in list(self.active):
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # noqa: BLE001 - a tracker that breaks mid-run is dropped, the run goes on
                _warn(tracker.name, f"failed in {method} and is switched off for this run", exc)
                self.active.remove(tracker)


def check_track(value: object) -> list[str]:
    """``train.track``: a list of tracker names (an empty list: no tracking beyond ``log.csv``)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise RunConfigError(
            f"train.track must be a list of tracker names (e.g. [tensorboard, mlflow]), got {value!r}"
        )
    unknown = [v for v in value if v not in TRACKERS]
    if unknown:
        raise RunConfigError(f"train.track: {TRACKERS.unknown_message(unknown[0])}")
    return list(dict.fromkeys(value))


def _warn(name: str, what: str, exc: BaseException) -> None:
    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    print(f"warning: tracker {name!r} {what} ({reason}); training goes on", file=sys.stderr, flush=True)


def _read_states(run_dir: Path) -> dict[str, dict]:
    try:
        states = json.loads((run_dir / TRACKING_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return states if isinstance(states, dict) else {}


def _write_states(run_dir: Path, states: Mapping) -> None:
    from mmfuse.fileio import write_json

    write_json(run_dir / TRACKING_FILE, dict(states))
