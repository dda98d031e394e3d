"""The three-head trainer: Adam, a per-epoch schedule, SWA over the last epochs, checkpoints, resume.

One epoch is a pure function of the state at its start — weights, Adam's moments, schedulers, the SWA
average, the RNG states — and of ``(seed, epoch)``, which fix the data order and the augmentation.
That state is checkpointed after every epoch, so a run killed at any moment and resumed ends with the
same weights, bit for bit on CPU, as one that never stopped.

After the last epoch the averaged weights get fresh batch-norm statistics (one pass over the training
data) and replace the live ones: the averaged model is the one evaluated and saved.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from mmfuse.errors import NonFiniteLossError
from mmfuse.fileio import write_csv_rows
from mmfuse.progress import format_duration
from mmfuse.runs import LOG_FILE, MODEL_DIR, SPLITS_FILE
from mmfuse.runtime.data import dataset_options, metadata_inputs
from mmfuse.runtime.device import autocast_context, parse_device, select_device
from mmfuse.threads import AUTO, ThreadChoice, choose_threads
from mmfuse.training import checkpoint
from mmfuse.training.batches import BatchSource, training_batches
from mmfuse.training.build import build_run_model, misfit_checkpoint_error, with_data_tasks
from mmfuse.training.claim import RunClaim
from mmfuse.training.config import absolute_paths
from mmfuse.training.distributed import DistContext, init_from_env, shutdown
from mmfuse.training.imbalance import balanced_class_weights
from mmfuse.training.losses import multitask_loss
from mmfuse.training.monitor import RunMonitor
from mmfuse.training.rundir import (
    CHECKPOINTS,
    RunDirError,
    check_allowed_changes,
    refuse_existing_run,
    required_bytes,
)
from mmfuse.training.schedule import rebase_lr, schedulers, swap_in_average

HEAD_LOSSES = ("primary", "auxiliary", "fusion")


@dataclass
class TrainResult:
    """What a run left behind. ``model`` and ``metrics`` are ``None`` on non-zero torchrun ranks."""

    run_dir: Path
    model: nn.Module | None = None
    metrics: dict | None = None
    history: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class RunEvaluator:
    """What a run measures; :data:`mmfuse.pipeline.RUN_EVALUATION` is :mod:`mmfuse.evaluation`'s.

    Training never imports evaluation: whoever starts a run hands the trainer these steps, and a
    trainer handed none (``evaluator=None``) trains and saves the model, nothing more.
    ``evaluate(model, config, out, *, device, progress)`` returns the content of ``metrics.json``;
    ``report(out)`` runs once the model is saved with those metrics (e.g. ``report.html``); without
    ``evaluate`` the run ends unevaluated. ``validation(model, config, *, device)`` is called once per
    run and returns ``validate(model)``: ``{head: report}`` on the validation split, quickly (no TTA),
    what the trackers show after each epoch (``train.validate_every``); it may prepare the split once.
    """

    evaluate: Callable[..., dict] | None = None
    report: Callable[[Path], object] | None = None
    validation: Callable[..., Callable[[nn.Module], dict]] | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Train one model from a resolved config into ``out``; see :func:`train`."""

    def __init__(
        self,
        config: Mapping,
        out: str | Path,
        *,
        resume: bool = False,
        progress: bool | None = None,
        allow_changes: Sequence[str] = (),
        evaluator: RunEvaluator | None = None,
        threads: ThreadChoice | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.allow_changes = check_allowed_changes(allow_changes)
        self._lr_changed = False
        self.config = absolute_paths(config)
        self.out = Path(out)
        self.claim = RunClaim(self.out)
        self.resume = resume
        self.train_cfg = self.config["train"]
        self.context = init_from_env(
            None if self.train_cfg["device"] == "auto" else parse_device(self.train_cfg["device"])
        )
        self.device = select_device(self.train_cfg["device"], self.context)
        self.threads = (
            threads
            or choose_threads(
                self.train_cfg.get("threads", AUTO), num_workers=int(self.config["data"]["num_workers"])
            )
        ).apply()
        self.progress = progress if progress is not None else (sys.stderr.isatty() or None)
        if not self.context.is_main:
            self.progress = False
        self.cuda = self.device.type == "cuda"
        self.amp = self.train_cfg["amp"] if self.cuda else "none"
        self.channels_last = bool(self.train_cfg["channels_last"]) and self.cuda
        self.seed = int(self.train_cfg["seed"])
        self.epochs = int(self.train_cfg["epochs"])
        self.swa_start = self.epochs - int(self.train_cfg["swa"]["epochs"])
        self.checkpoints = self.out / CHECKPOINTS
        self.history: list[dict] = []
        self.start_epoch = 0

        refuse_existing_run(self.out, resume=resume)  # before the dataset is read (docs/training.md)
        seed_everything(self.seed)
        self.config = with_data_tasks(self.config)
        self.model = build_run_model(self.config, self.device, announce=self.context.is_main)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._prepare_out()
        try:
            self._set_up()
        except BaseException:
            self.claim.abandon()
            raise

    def _set_up(self) -> None:
        """Everything after the run folder is claimed: data, optimizer, schedules, the resumed state."""
        self.tasks = self.model.tasks
        if self.context.is_main:
            self._write_splits()
        self.batches = self._batches(self.context)
        self.class_weights = None
        if self.train_cfg.get("class_weights") == "balanced":
            self.class_weights = balanced_class_weights(self.batches.dataset.label_matrix(), self.tasks)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=float(self.train_cfg["lr"]),
            weight_decay=float(self.train_cfg["weight_decay"]),
            fused=True if self.cuda else None,  # one kernel per step on GPUs; CPU keeps the reference path
        )
        self.scheduler, self.swa_scheduler = schedulers(self.optimizer, self.train_cfg, self.swa_start)
        self.swa_model = AveragedModel(self.model)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")
        if self.resume:
            self._load_latest()
            if self._lr_changed:
                rebase_lr(
                    self.optimizer,
                    self.scheduler,
                    self.train_cfg,
                    start_epoch=self.start_epoch,
                    swa_start=self.swa_start,
                )
        self.network: nn.Module = self.model
        if self.context.enabled:
            self.network = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.cuda else None,
                find_unused_parameters=float(self.train_cfg["modality_dropout"]) > 0,
            )
        if self.train_cfg["compile"]:
            self.network = torch.compile(self.network)

    # -- set-up ----------------------------------------------------------------------------------
    def _write_splits(self) -> None:
        """``RUN/splits.csv``: every case's split, so a run says which cases it trained and was tested on."""
        from mmfuse.data import load_table

        table = load_table(dataset_options(self.config))
        rows = [
            {"case_id": record.case_id, "split": split}
            for split in table.splits
            for record in table.split_records(split)
        ]
        write_csv_rows(self.out / SPLITS_FILE, rows)

    def _prepare_out(self) -> None:
        problem = None
        if self.context.is_main:
            parameters = sum(p.numel() for p in self.model.parameters())
            needed = required_bytes(parameters, int(self.train_cfg["keep_checkpoints"]))
            try:
                changes = self.claim.take(
                    self.config, resume=self.resume, needed=needed, allowed=self.allow_changes
                )
                self._lr_changed = any(c[0] in ("train.lr", "train.epochs") for c in changes)
            except (RunDirError, ValueError, OSError) as exc:
                problem = exc
        if self.context.broadcast_flag(problem is not None):
            raise (
                problem if problem is not None else RunDirError(f"rank 0 could not prepare --out {self.out}")
            )

    def _batches(self, context: DistContext) -> BatchSource:
        return training_batches(
            self.config, self.model, context=context, device=self.device, channels_last=self.channels_last
        )

    # -- checkpoints -----------------------------------------------------------------------------
    def _save(self, epoch: int) -> Path:
        optimizer_tensors, optimizer_meta = checkpoint.split_optimizer_state(self.optimizer.state_dict())
        state = {
            "epoch": epoch,
            "optimizer": optimizer_meta,
            "scheduler": self.scheduler.state_dict(),
            "swa_scheduler": self.swa_scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": checkpoint.rng_states(),
            "history": self.history,
            "threads": self.threads.threads,
        }
        tensors = {
            "model": self.model.state_dict(),
            "swa": self.swa_model.state_dict(),
            "optimizer": optimizer_tensors,
        }
        return checkpoint.save(
            self.checkpoints,
            epoch,
            tensors=tensors,
            state=state,
            keep=int(self.train_cfg["keep_checkpoints"]),
        )

    def _load_latest(self) -> None:
        path = checkpoint.latest(self.checkpoints)
        if path is None:
            return  # --resume on a run that never finished an epoch starts it from the beginning
        tensors, state = checkpoint.load(path)
        try:
            self._restore(tensors, state)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            weights = tensors.get("model", {})
            raise misfit_checkpoint_error(path, exc, self.config, self.out, weights) from None

    def _restore(self, tensors: Mapping[str, Mapping[str, torch.Tensor]], state: Mapping) -> None:
        self.model.load_state_dict(tensors["model"])
        self.swa_model.load_state_dict(tensors["swa"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.swa_scheduler.load_state_dict(state["swa_scheduler"])
        # The optimizer goes last: building the schedulers above rewrote its learning rates.
        optimizer_state = checkpoint.join_optimizer_state(tensors.get("optimizer", {}), state["optimizer"])
        self.optimizer.load_state_dict(optimizer_state)
        if state.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["scaler"])
        checkpoint.set_rng_states(state["rng"])
        self.history = list(state["history"])
        self.start_epoch = int(state["epoch"])
        self._resume_threads(state.get("threads"))

    def _resume_threads(self, threads: int | None) -> None:
        """An automatic thread count gives way to the resumed run's own: CPU sums split by thread, so the
        same count is what keeps a resumed run bit-exact. An explicit setting or OMP_NUM_THREADS wins."""
        if threads is not None and self.threads.automatic:
            self.threads = ThreadChoice(int(threads), "as in the run being resumed").apply()

    # -- training --------------------------------------------------------------------------------
    def _stop(self, value: float, epoch: int, step: int) -> None:
        last = checkpoint.latest(self.checkpoints)
        kept = (
            f"the last good checkpoint is {last} (epoch {int(last.name.split('_')[1])})"
            if last is not None
            else "no checkpoint had been written yet"
        )
        hint = "switch train.amp from fp16 to bf16 or " if self.amp == "fp16" else ""
        raise NonFiniteLossError(
            f"training stopped: the loss became {value} at epoch {epoch + 1}, step {step + 1}; {kept}. "
            f"Lower train.lr (or {hint}set train.grad_clip), then continue with --resume --allow-change train.lr "
            "(or train.grad_clip, train.amp)."
        )

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.network.train()
        dropout = float(self.train_cfg["modality_dropout"])
        # Modality dropout draws once per step from a generator of (seed, epoch), the same on every rank.
        draws = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        sums = torch.zeros(len(HEAD_LOSSES) + 1, device=self.device, dtype=torch.float64)
        steps = 0
        clip = self.train_cfg["grad_clip"]
        check_every = 1 if not self.cuda else max(1, int(self.train_cfg["log_every"]))
        bar = tqdm(
            self.batches.epoch(epoch),
            total=len(self.batches),
            desc=f"epoch {epoch + 1}/{self.epochs}",
            leave=False,
            disable=not self.progress,
        )
        for step, batch in enumerate(bar):
            primary_only = dropout > 0 and float(torch.rand((), generator=draws)) < dropout
            with autocast_context(self.device, self.amp):
                output = self.network(
                    primary=batch["primary"],
                    auxiliary=None if primary_only else batch["auxiliary"],
                    auxiliary_present=None if primary_only else batch["auxiliary_present"],
                    **metadata_inputs(self.model, batch, self.device),
                )
            loss, parts = multitask_loss(
                output.logits,
                batch["labels"],
                self.tasks,
                batch["auxiliary_present"],
                output.head_present,
                class_weights=self.class_weights,
            )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()
            sums += torch.stack(
                [loss.detach().double()]
                + [parts[h].detach().double() if h in parts else sums.new_zeros(()) for h in HEAD_LOSSES]
            )
            steps += 1
            if step % check_every == 0:
                value = float(loss.detach())
                if not math.isfinite(value):
                    self._stop(value, epoch, step)
                bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                self.monitor.step_loss(epoch * len(self.batches) + step + 1, value)
        totals = self.context.all_reduce_sum(torch.cat([sums, sums.new_tensor([steps])]))
        mean = (totals[:-1] / totals[-1].clamp(min=1)).tolist()
        if not all(math.isfinite(v) for v in mean):
            self._stop(mean[0], epoch, steps - 1)
        return {"loss": mean[0], **{f"loss_{h}": v for h, v in zip(HEAD_LOSSES, mean[1:], strict=True)}}

    def _log(self, epoch: int, losses: Mapping[str, float], lr: float, seconds: float) -> None:
        samples = len(self.batches.sampler) * self.context.world_size
        self.history.append(
            {
                "epoch": epoch + 1,
                "lr": lr,
                **{k: round(v, 6) for k, v in losses.items()},
                "swa": int(epoch >= self.swa_start),
                "seconds": round(seconds, 3),
                "pairs_per_s": round(samples / max(seconds, 1e-9), 2),
            }
        )

    def _progress_line(self, epoch: int) -> str:
        """One line per epoch for logs and CI, where no progress bar is drawn: loss, speed, time left."""
        entry = self.history[-1]
        done = [h["seconds"] for h in self.history[-5:]]  # recent epochs: the current speed
        left = (self.epochs - epoch - 1) * sum(done) / len(done)
        return (
            f"epoch {epoch + 1}/{self.epochs}  loss {entry['loss']:.4f}  {entry['pairs_per_s']:.1f} pairs/s  "
            f"{entry['seconds']:.1f} s  {format_duration(left)} left"
        )

    def fit(self) -> TrainResult:
        """Train the remaining epochs, then (rank 0) average, evaluate and save; see :func:`train`."""
        validation = self.evaluator.validation if self.evaluator is not None else None
        self.monitor = RunMonitor(validation, self.model, self.config, device=self.device)
        if self.context.is_main and self.train_cfg["track"]:
            first_step = self.start_epoch * len(self.batches) + 1
            self.monitor.start(self.train_cfg["track"], self.out, first_step=first_step)
        try:
            return self._fit()
        finally:
            self.monitor.close()

    def _fit(self) -> TrainResult:
        epochs_bar = tqdm(
            total=self.epochs, initial=self.start_epoch, desc="train", disable=not self.progress, unit="epoch"
        )
        try:
            for epoch in range(self.start_epoch, self.epochs):
                started = time.perf_counter()
                lr = self.optimizer.param_groups[0]["lr"]
                losses = self._train_epoch(epoch)
                if epoch >= self.swa_start:
                    self.swa_model.update_parameters(self.model)
                    self.swa_scheduler.step()
                else:
                    self.scheduler.step()
                self._log(epoch, losses, lr, time.perf_counter() - started)
                every = int(self.train_cfg["checkpoint_every"])
                checkpointed = self.context.is_main and ((epoch + 1) % every == 0 or epoch + 1 == self.epochs)
                if self.context.is_main:
                    if checkpointed:
                        self._save(epoch + 1)
                    write_csv_rows(self.out / LOG_FILE, self.history)
                last_step = (epoch + 1) * len(self.batches)
                self.monitor.end_epoch(
                    epoch, self.history[-1], last_step=last_step, checkpointed=checkpointed
                )
                epochs_bar.update(1)
                epochs_bar.set_postfix(loss=f"{losses['loss']:.4f}", refresh=False)
                if not self.progress and self.context.is_main:
                    print(self._progress_line(epoch), file=sys.stderr, flush=True)
            self.context.barrier()
        finally:
            epochs_bar.close()
            shutdown(self.context)
        if not self.context.is_main:
            return TrainResult(self.out, history=self.history)
        model = self.finish()
        metrics = None
        if self.evaluator is not None and self.evaluator.evaluate is not None:
            self.save_model(model, None)  # the trained weights survive an evaluation that fails
            model.to(self.device)
            metrics = self.evaluator.evaluate(
                model, self.config, self.out, device=self.device, progress=self.progress
            )
        self.save_model(model, metrics)
        if metrics is not None and self.evaluator.report is not None:
            self.evaluator.report(self.out)
        if metrics is not None:
            self.monitor.summary(metrics, self.out, self.epochs * len(self.batches))
        return TrainResult(self.out, model, metrics, self.history)

    def finish(self) -> nn.Module:
        """Swap the SWA average in, with batch-norm statistics recomputed on the training data."""
        if self.swa_start < self.epochs:
            source = self._batches(DistContext()) if self.context.enabled else self.batches
            swap_in_average(
                self.model, self.swa_model, source, epoch=self.epochs, device=self.device, amp=self.amp
            )
        return self.model.eval()

    def save_model(self, model: nn.Module, metrics: Mapping | None) -> Path:
        """``RUN/model/`` through :meth:`FusionModel.save_pretrained` (written aside, then renamed)."""
        import shutil

        final = self.out / MODEL_DIR
        staging = self.out / f".{MODEL_DIR}.tmp"
        if staging.exists():
            shutil.rmtree(staging)
        model.to("cpu").to(memory_format=torch.contiguous_format)
        model.save_pretrained(staging, metrics=metrics, training_config=self.config)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        return final


def train(
    config: Mapping,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool | None = None,
    allow_changes: Sequence[str] = (),
    evaluator: RunEvaluator | None = None,
    threads: ThreadChoice | None = None,
) -> TrainResult:
    """Train a model as ``config`` (from :func:`mmfuse.training.load_config`) says, into the run directory ``out``.

    ``resume`` continues from the last checkpoint in ``out``. ``evaluator`` ends the run
    (:class:`RunEvaluator`; :func:`mmfuse.pipeline.train` passes :mod:`mmfuse.evaluation`'s: TTA
    predictions, the head-weight search on the validation split, the report files); without one the
    run ends with the saved model. Under torchrun every process calls this; rank 0 writes every file.
    ``allow_changes`` names the recovery keys (:data:`~mmfuse.training.rundir.RECOVERY_KEYS`: learning
    rate, gradient clipping, AMP, epochs) that may differ from the run's stored config on ``resume``;
    every other difference is refused. ``threads``: the thread count decided when the run started
    (:func:`mmfuse.threads.choose_threads`); by default the trainer decides from ``train.threads``.
    """
    trainer = Trainer(
        config,
        out,
        resume=resume,
        progress=progress,
        allow_changes=allow_changes,
        evaluator=evaluator,
        threads=threads,
    )
    try:
        return trainer.fit()
    finally:
        trainer.claim.release()
