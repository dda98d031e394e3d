"""Launchers: many independent trainings (seeds, folds, table rows) inline, in parallel, or on Slurm.

A study is a list of :class:`RunSpec` (a run folder and its resolved config); :func:`launch` trains them
with one of three launchers and returns what each produced:

- ``inline``: one after another in this process (a torchrun job trains each run on all its ranks);
- ``local``: ``jobs`` at a time, each in its own process, the CPU threads split between them and one GPU
  each when there are several; each run's output goes to ``FOLDER/launcher/<name>.log``;
- ``slurm``: one job per run through submitit; its options (``partition``, ``gpus_per_node``,
  ``timeout_min``...) as ``--launcher-option KEY=VALUE``, ``cluster=local`` running the jobs as local
  processes instead (submitit's own test mode), logs under ``FOLDER/submitit/``.

A run that fails is reported by name and the others go on; the caller decides what a partial study
writes. Resuming is each spec's own: callers skip finished runs and mark started ones ``resume``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

from mmfuse.errors import MmfuseError, UsageError, one_line

if TYPE_CHECKING:
    from mmfuse.training.trainer import RunEvaluator

LAUNCHERS = ("inline", "local", "slurm")
LOG_FOLDER = "launcher"  # local: one log per run
SUBMITIT_FOLDER = "submitit"  # slurm: submitit's pickles and job logs


class RunsFailedError(MmfuseError):
    """Some runs of a study failed; the others finished. The message names each failed run and why."""


@dataclass(frozen=True)
class RunSpec:
    """One independent training: ``config`` (resolved) into ``out``.

    ``resume`` continues the run already in ``out`` with the recovery keys ``allow_changes``;
    ``evaluator`` ends it (:data:`mmfuse.pipeline.RUN_EVALUATION` for evaluated runs; ``None``: not evaluated).
    """

    name: str
    config: Mapping
    out: Path
    resume: bool = False
    allow_changes: tuple[str, ...] = ()
    evaluator: RunEvaluator | None = None
    progress: bool | None = None


@dataclass
class Outcome:
    """``metrics`` of each finished run (``metrics.json``'s content; ``None`` when not evaluated) and a
    one-line reason for each failed one, both by :attr:`RunSpec.name`."""

    metrics: dict[str, dict | None] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def raise_failures(self, what: str = "runs") -> None:
        if self.failures:
            lines = "; ".join(f"{name}: {reason}" for name, reason in self.failures.items())
            raise RunsFailedError(
                f"{len(self.failures)} of {len(self.failures) + len(self.metrics)} {what} failed ({lines}); "
                "the others are finished: fix the cause and run the same command with --resume"
            )


def execute(spec: RunSpec) -> dict | None:
    """Train one spec (in whichever process the launcher chose); its metrics, ``None`` if not evaluated."""
    from mmfuse.training import trainer

    result = trainer.train(
        spec.config,
        spec.out,
        resume=spec.resume,
        progress=spec.progress,
        allow_changes=spec.allow_changes if spec.resume else (),
        evaluator=spec.evaluator,
    )
    return result.metrics


def _report(name: str, started: bool, extra: str = "") -> None:
    print(f"{'started' if started else 'finished':<9}{name}{extra}", file=sys.stderr, flush=True)


class Launcher:
    """Trains a list of specs; :meth:`run` returns an :class:`Outcome` once every one has ended."""

    name = "launcher"

    def run(self, specs: Sequence[RunSpec], folder: Path) -> Outcome:
        raise NotImplementedError


class InlineLauncher(Launcher):
    """One after another in this process: today's behaviour, and the one torchrun needs."""

    name = "inline"

    def run(self, specs, folder):
        from mmfuse.progress import Steps

        outcome = Outcome()
        # One line per ended run with the time the rest should take (each training draws its own bar).
        quiet = all(spec.progress is False for spec in specs)
        steps = Steps(len(specs), "runs", progress=False if quiet else "lines", unit="run")
        for spec in specs:
            try:
                outcome.metrics[spec.name] = execute(spec)
            except Exception as exc:  # noqa: BLE001 - reported by name; the other runs go on
                outcome.failures[spec.name] = one_line(exc)
                print(f"failed   {spec.name}: {one_line(exc)}", file=sys.stderr, flush=True)
            steps.step(spec.name)
        steps.close()
        return outcome


def _run_logged(spec: RunSpec, log: Path, env: Mapping[str, str]) -> dict | None:
    """The body of a ``local`` worker process: its slot's environment, its output into its log file."""
    os.environ.update(env)
    with open(log, "a", encoding="utf-8", buffering=1) as stream:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
            return execute(spec)


class LocalLauncher(Launcher):
    """``jobs`` runs at a time on this machine, each in a fresh process.

    Every process gets ``OMP_NUM_THREADS`` = usable cores // jobs (unless set already), and with several
    visible GPUs, one of them (``CUDA_VISIBLE_DEVICES``), in turn.
    """

    name = "local"

    def __init__(self, jobs: int = 1) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise UsageError(f"--jobs must be a positive integer, got {jobs!r}")
        self.jobs = jobs

    def slot_env(self, slot: int) -> dict[str, str]:
        """The environment of the process running in ``slot`` (0 .. jobs-1)."""
        from mmfuse.threads import usable_cores

        env = {}
        if not os.environ.get("OMP_NUM_THREADS"):
            env["OMP_NUM_THREADS"] = str(max(1, usable_cores() // self.jobs))
        gpus = _visible_gpus()
        if len(gpus) > 1:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        return env

    def run(self, specs, folder):
        logs = Path(folder) / LOG_FOLDER
        logs.mkdir(parents=True, exist_ok=True)
        free = list(range(self.jobs))
        lock = threading.Lock()

        def one(spec: RunSpec) -> dict | None:
            with lock:
                slot = free.pop()
            log = logs / f"{spec.name.replace('/', '_')}.log"
            _report(spec.name, True, f" (log: {log})")
            try:
                # A fresh process per run: its memory goes back when it ends, and a crash takes only it down.
                with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                    return pool.submit(_run_logged, spec, log, self.slot_env(slot)).result()
            finally:
                with lock:
                    free.append(slot)

        outcome = Outcome()
        with ThreadPoolExecutor(self.jobs) as threads:
            futures = {threads.submit(one, spec): spec for spec in specs}
            for future in as_completed(futures):
                _collect(outcome, futures[future].name, future)
        return outcome


def _visible_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no usable CUDA: no GPUs to share out
        return []


def _collect(outcome: Outcome, name: str, future) -> None:
    try:
        outcome.metrics[name] = future.result()
    except Exception as exc:  # noqa: BLE001 - reported by name; the other runs go on
        outcome.failures[name] = one_line(exc)
        print(f"failed   {name}: {one_line(exc)}", file=sys.stderr, flush=True)
    else:
        _report(name, False)


def parse_launcher_options(pairs: Sequence[str]) -> dict[str, object]:
    """``["partition=gpu", "timeout_min=600"]`` -> ``{"partition": "gpu", "timeout_min": 600}`` (YAML values)."""
    import yaml

    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--launcher-option expects KEY=VALUE (e.g. partition=gpu), got {pair!r}")
        try:
            options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            options[key.strip()] = value
    return options


class SlurmLauncher(Launcher):
    """One Slurm job per run through submitit's ``AutoExecutor``.

    ``options`` are submitit's parameters: the generic ones (``timeout_min``, ``gpus_per_node``,
    ``cpus_per_task``, ``mem_gb``...) as they are, Slurm's own (``partition``, ``account``, ``qos``,
    ``constraint``...) with or without their ``slurm_`` prefix; ``cluster`` picks submitit's backend
    (``slurm``, or ``local`` to run the jobs as local processes).
    """

    name = "slurm"

    def __init__(self, options: Mapping[str, object] | None = None) -> None:
        try:
            import submitit
        except ImportError:
            raise UsageError(
                "--launcher slurm needs submitit: pip install 'mmfuse[cluster]' (or pip install submitit)"
            ) from None
        options = dict(options or {})
        self.cluster = options.pop("cluster", None)
        self.parameters = {}
        generic = set(submitit.AutoExecutor._valid_parameters())
        for key, value in options.items():
            known = key in generic or key.split("_", 1)[0] in ("slurm", "local", "debug")
            self.parameters[key if known else f"slurm_{key}"] = value

    def executor(self, folder: Path):
        import submitit

        executor = submitit.AutoExecutor(folder=Path(folder) / SUBMITIT_FOLDER, cluster=self.cluster)
        try:
            executor.update_parameters(**self.parameters)
        except (NameError, ValueError, TypeError) as exc:
            raise UsageError(f"--launcher-option: {' '.join(str(exc).split())}") from None
        return executor

    def run(self, specs, folder):
        import submitit

        executor = self.executor(folder)
        jobs = {}
        for spec in specs:
            executor.update_parameters(name=f"mmfuse-{spec.name}")
            job = executor.submit(execute, spec)
            jobs[job] = spec.name
            _report(spec.name, True, f" (job {job.job_id}, log: {job.paths.stderr})")
        outcome = Outcome()
        poll = 1.0 if executor.cluster == "local" else 10.0  # a scheduler is asked less often
        for job in submitit.helpers.as_completed(list(jobs), poll_frequency=poll):
            _collect(outcome, jobs[job], _JobResult(job))
        return outcome


class _JobResult:
    """A submitit job seen as a future: its exception is the run's own last line, not the whole traceback."""

    def __init__(self, job) -> None:
        self.job = job

    def result(self):
        try:
            return self.job.result()
        except Exception as exc:  # noqa: BLE001 - submitit wraps the job's error with its traceback
            lines = [line for line in str(exc).splitlines() if line.strip()]
            raise RuntimeError(lines[-1].strip() if lines else type(exc).__name__) from None


def make_launcher(name: str = "inline", *, jobs: int = 1, options: Mapping[str, object] | None = None):
    """The launcher ``name`` (one of :data:`LAUNCHERS`) configured from the command line's options."""
    if name == "inline":
        if jobs != 1 or options:
            raise UsageError("--jobs and --launcher-option need --launcher local or slurm")
        return InlineLauncher()
    if name == "local":
        if options:
            raise UsageError("--launcher-option applies to --launcher slurm; --launcher local takes --jobs")
        return LocalLauncher(jobs)
    if name == "slurm":
        if jobs != 1:
            raise UsageError("--jobs applies to --launcher local; Slurm runs every job it can schedule")
        return SlurmLauncher(options)
    raise UsageError(f"unknown launcher {name!r}; choose from {', '.join(LAUNCHERS)}")


def launch(specs: Sequence[RunSpec], launcher: Launcher | None = None, *, folder: str | Path) -> Outcome:
    """Train every spec with ``launcher`` (inline by default); ``folder`` holds the launcher's logs.

    Names must be unique: they key the outcome and name the logs and jobs.
    """
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UsageError(f"run names must be unique, got {names}")
    if not specs:
        return Outcome()
    return (launcher or InlineLauncher()).run(list(specs), Path(folder))


def finished(run_dir: Path) -> bool:
    """A run whose evaluation and model are written: ``--resume`` keeps it as it is."""
    from mmfuse.runs import METRICS_FILE, MODEL_DIR

    return (run_dir / METRICS_FILE).is_file() and (run_dir / MODEL_DIR).is_dir()


def train_study(
    runs: Mapping[Path, Mapping],
    *,
    what: str,
    folder: Path,
    resume: bool = False,
    allow_changes: Sequence[str] = (),
    evaluator: RunEvaluator | None = None,
    progress: bool | None = None,
    launcher: Launcher | None = None,
) -> dict[Path, dict]:
    """Train the independent runs ``{run folder: config}`` of one study (seeds, folds) with ``launcher``.

    With ``resume``, a finished run is kept as it is and an unfinished one continues with the recovery keys
    ``allow_changes``. Returns ``{run folder: metrics.json}`` of every finished run (none on a non-zero
    torchrun rank: rank 0 evaluates); a failed run is named in the :class:`RunsFailedError` (``what``:
    "seeds", "folds") raised once the others have ended.
    """
    from mmfuse.runs import METRICS_FILE

    metrics: dict[Path, dict] = {}
    specs = []
    for run_dir, config in runs.items():
        if resume and finished(run_dir):
            metrics[run_dir] = json.loads((run_dir / METRICS_FILE).read_text())
            continue
        resuming = resume and run_dir.exists()
        specs.append(
            RunSpec(
                run_dir.name,
                config,
                run_dir,
                resume=resuming,
                allow_changes=tuple(allow_changes) if resuming else (),
                evaluator=evaluator,
                progress=progress,
            )
        )
    outcome = launch(specs, launcher, folder=folder)
    outcome.raise_failures(what)
    for run_dir in runs:
        if outcome.metrics.get(run_dir.name) is not None:
            metrics[run_dir] = outcome.metrics[run_dir.name]
    return metrics
