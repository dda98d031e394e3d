"""The three-head trainer: Adam, a per-epoch schedule, SWA over the last epochs, checkpoints, resume.

One epoch is a pure function of the state at its start — weights, Adam's moments, schedulers, the SWA
average, the RNG states — and of ``(seed, epoch)``, which fix the data order and the augmentation.
That state is checkpointed after every epoch, so a run killed at any moment and resumed ends with the
same weights, bit for bit on CPU, as one that never stopped.

After the last epoch the averaged weights get fresh batch-norm statistics (one pass over the training
data) and replace the live ones: the averaged model is the one evaluated and saved.
"""

from __future__ import annotations

import contextlib
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
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn
from tqdm.auto import tqdm

from mmfuse.data.build import fit_metadata_encoding
from mmfuse.errors import (
    BUILD_ERRORS,
    CheckpointError,
    ConfigError,
    DataError,
    MmfuseError,
    NonFiniteLossError,
    UsageError,
    describe_build_error,
)
from mmfuse.factory import build_model
from mmfuse.fileio import write_csv_rows
from mmfuse.presets import list_presets
from mmfuse.progress import format_duration
from mmfuse.runs import CONFIG_FILE, LOG_FILE, MODEL_DIR, SPLITS_FILE
from mmfuse.runtime.data import metadata_inputs
from mmfuse.runtime.device import autocast_context, parse_device, select_device
from mmfuse.threads import AUTO, set_threads
from mmfuse.tracking import Trackers, head_scalars
from mmfuse.training import checkpoint
from mmfuse.training.batches import BatchSource, DeviceCacheBatches, LoaderBatches, per_rank_batch_size
from mmfuse.training.config import absolute_paths, dataset_options, dump_config, model_spec
from mmfuse.training.distributed import DistContext, init_from_env, shutdown
from mmfuse.training.imbalance import balanced_class_weights
from mmfuse.training.losses import multitask_loss
from mmfuse.training.rundir import (
    CHECKPOINTS,
    LOCK_FILE,
    RECOVERY_KEYS,
    RunDirError,
    RunLock,
    changed_keys,
    check_allowed_changes,
    check_run_dir,
    refuse_existing_run,
    required_bytes,
)

# Appended on every --resume that changes a recovery key: what changed, when, and from which checkpoint.
CHANGES_FILE = "config_changes.log"

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
    """How a run ends when it is evaluated; :mod:`mmfuse.pipeline` gives :mod:`mmfuse.evaluation`'s.

    Training never imports evaluation: whoever starts a run hands the trainer these two steps.
    ``evaluate(model, config, out, *, device, progress)`` returns the content of ``metrics.json``;
    ``report(out)`` runs once the model is saved with those metrics (e.g. ``report.html``).
    ``validation(model, config, *, device)`` is called once per run and returns ``validate(model)``:
    ``{head: report}`` on the validation split, quickly (no TTA), what the trackers show after each
    epoch (``train.validate_every``); it may prepare the split once, for all epochs.
    """

    evaluate: Callable[..., dict]
    report: Callable[[Path], object] | None = None
    validation: Callable[..., Callable[[nn.Module], dict]] | None = None


def _one_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: message`` on one line (torch's state-dict errors span several), shortened to ``limit``."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_factor(epoch: int, train: Mapping) -> float:
    """The base schedule's multiplier of ``train.lr`` for ``epoch`` (SWA epochs follow SWALR instead)."""
    warmup = int(train["warmup_epochs"])
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    if train["schedule"] == "constant":
        return 1.0
    span = max(1, train["epochs"] - train["swa"]["epochs"] - warmup)
    progress = min(1.0, (epoch - warmup) / span)
    low = float(train["min_lr_ratio"])
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))


class _PairInput(nn.Module):
    """Lets :func:`torch.optim.swa_utils.update_bn` feed our dict batches to a two-input model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Mapping[str, torch.Tensor]):
        return self.model(
            primary=batch["primary"],
            auxiliary=batch["auxiliary"],
            auxiliary_present=batch["auxiliary_present"],
            **metadata_inputs(self.model, dict(batch), batch["primary"].device),
        )


class Trainer:
    """Train one model from a resolved config into ``out``; see :func:`train`."""

    def __init__(
        self,
        config: Mapping,
        out: str | Path,
        *,
        resume: bool = False,
        evaluate: bool = True,
        progress: bool | None = None,
        allow_changes: Sequence[str] = (),
        evaluator: RunEvaluator | None = None,
    ) -> None:
        if evaluate and evaluator is None:
            raise UsageError(
                "Trainer(evaluate=True) needs an evaluator: mmfuse.training.train passes mmfuse.evaluation's "
                "(mmfuse.pipeline.RUN_EVALUATION); or pass evaluate=False"
            )
        self.evaluator = evaluator
        self.allow_changes = check_allowed_changes(allow_changes)
        self._lock: RunLock | None = None
        self._started_here = False  # this start wrote RUN/config.yaml, so a failed start removes it
        self._lr_changed = False
        self.config = absolute_paths(config)
        self.out = Path(out)
        self.resume = resume
        self.evaluate = evaluate
        self.train_cfg = self.config["train"]
        self.context = init_from_env(
            None if self.train_cfg["device"] == "auto" else parse_device(self.train_cfg["device"])
        )
        self.device = select_device(self.train_cfg["device"], self.context)
        self.threads = set_threads(
            self.train_cfg.get("threads", AUTO), num_workers=int(self.config["data"]["num_workers"])
        )
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
        self.trackers = Trackers()
        self._step_losses: list[tuple[int, float]] = []  # (step, loss) of this epoch, for the trackers
        self._untracked: list[tuple[int, dict[str, float]]] = []  # (step, values) not yet checkpointed
        self._validate_fn: Callable[[nn.Module], dict] | None = None
        self._validation_failed = False

        refuse_existing_run(self.out, resume=resume)  # before the dataset is read (docs/training.md)
        seed_everything(self.seed)
        self._tasks_from_data()
        try:
            self.model = self._build_model().to(self.device)
        except MmfuseError:
            raise
        except BUILD_ERRORS as exc:
            # timm and torch reject some encoder options with their own exceptions.
            raise ConfigError(
                f"the model section cannot be built ({describe_build_error(exc)}); check its *_options "
                "against the component"
            ) from None
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._prepare_out()
        try:
            self._set_up()
        except BaseException:
            self._abandon_start()
            raise

    def _set_up(self) -> None:
        """Everything after the run folder is claimed: data, optimizer, schedules, the resumed state."""
        self.tasks = self.model.tasks
        if self.context.is_main:
            self._write_splits()
        self.batches = self._batch_source(self.context)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=float(self.train_cfg["lr"]),
            weight_decay=float(self.train_cfg["weight_decay"]),
            fused=True if self.cuda else None,  # one kernel per step on GPUs; CPU keeps the reference path
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda e: lr_factor(e, self.train_cfg)
        )
        swa_lr = self.train_cfg["swa"]["lr"]
        if swa_lr is None:
            swa_lr = float(self.train_cfg["lr"]) * lr_factor(self.swa_start, self.train_cfg)
        self.swa_scheduler = SWALR(
            self.optimizer,
            swa_lr=float(swa_lr),
            anneal_epochs=max(1, int(self.train_cfg["swa"]["anneal_epochs"])),
            anneal_strategy="cos",
        )
        self.swa_model = AveragedModel(self.model)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")
        if self.resume:
            self._load_latest()
            if self._lr_changed:
                self._apply_changed_lr()
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
    def _build_model(self) -> nn.Module:
        """The preset with its overrides, or (``model.from_pretrained``) a saved model with new heads if needed."""
        preset, pretrained, overrides = model_spec(self.config)
        source = overrides.pop("from_pretrained", None)
        if source is None:
            if self.config["data"].get("metadata"):
                # Fitted on the training split only; the model keeps it, so evaluation encodes the same way.
                encoding, report = fit_metadata_encoding(
                    dataset_options(self.config), self.config["data"]["train_split"]
                )
                overrides["metadata"] = encoding.to_dict()
                if self.context.is_main:
                    print(f"{self.config['data']['train_split']} split {report.describe()}", file=sys.stderr)
            return build_model(preset, pretrained=pretrained, **overrides)
        extra = sorted(set(overrides) - {"tasks"})
        if extra:
            raise ConfigError(
                f"model.from_pretrained ({source!r}) brings its own architecture; remove model.{', model.'.join(extra)} "
                "(only model.tasks may be given: new heads for another dataset)"
            )
        from mmfuse.hub import from_pretrained
        from mmfuse.runs import run_model_dir

        return from_pretrained(run_model_dir(source) or source, tasks=overrides.get("tasks")).train()

    def _tasks_from_data(self) -> None:
        """Without ``model.tasks`` the model learns the dataset's tasks; they are written into the run's config.

        The preset's tasks (Derm7pt's for the paper presets) would not fit another dataset's labels, and
        RUN/config.yaml then says exactly what was trained, so ``--resume`` rebuilds the same heads.
        """
        if self.config["model"].get("tasks") is not None:
            return
        from mmfuse.data import load_table
        from mmfuse.tasks import tasks_to_data

        table = load_table(dataset_options(self.config))
        self.config["model"] = {**self.config["model"], "tasks": tasks_to_data(table.tasks)}

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
            try:
                needed = required_bytes(
                    sum(p.numel() for p in self.model.parameters()), int(self.train_cfg["keep_checkpoints"])
                )
                check_run_dir(self.out, resume=self.resume, needed=needed)  # creates the folder
                self._lock = RunLock(self.out)
                # Again under the lock: "no run here" now stays true until this start writes its config.
                check_run_dir(self.out, resume=self.resume, needed=needed)
                stored = self.out / CONFIG_FILE
                if self.resume and stored.is_file():
                    self._check_resume_config(stored)
                else:
                    dump_config(self.config, stored)
                    self._started_here = True
            except (RunDirError, ValueError, OSError) as exc:
                problem = exc
                self._release_lock()
        if self.context.broadcast_flag(problem is not None):
            raise (
                problem if problem is not None else RunDirError(f"rank 0 could not prepare --out {self.out}")
            )

    def _check_resume_config(self, stored: Path) -> None:
        """Refuse any change but the recovery keys the user allowed; record the allowed ones in the run."""
        from mmfuse.training.config import load_config

        changes = changed_keys(load_config(stored), self.config)
        refused = [c for c in changes if c[0] not in self.allow_changes]
        if refused:
            allowed = [c for c in refused if c[0] in RECOVERY_KEYS]
            hint = (
                f"; to recover or extend the run, allow it explicitly: {' '.join('--allow-change ' + c[0] for c in allowed)}"
                if allowed
                else ""
            )
            raise RunDirError(
                f"--resume: the config differs from the one {self.out} was started with: "
                + "; ".join(f"{k}: {a!r} in the run, {b!r} given" for k, a, b in refused)
                + hint
            )
        if not changes:
            return
        last = checkpoint.latest(self.checkpoints)
        if ("train.epochs" in {c[0] for c in changes}) and last is not None:
            done = int(last.name.split("_")[1])
            if self.epochs < done:
                raise RunDirError(
                    f"--resume: train.epochs {self.epochs} is below the {done} epochs already trained"
                )
        with open(self.out / CHANGES_FILE, "a", encoding="utf-8") as log:
            for key, a, b in changes:
                print(f"--resume: {key} changed from {a!r} to {b!r}", file=sys.stderr)
                log.write(
                    f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {last.name if last else 'start'} {key}: {a!r} -> {b!r}\n"
                )
        self._lr_changed = any(c[0] in ("train.lr", "train.epochs") for c in changes)
        dump_config(self.config, stored)  # RUN/config.yaml says what the rest of the run trains with

    def _apply_changed_lr(self) -> None:
        """The checkpoint's optimizer and schedules carry the old learning rate: rebase them on the new one."""
        lr = float(self.train_cfg["lr"])
        swa_lr = self.train_cfg["swa"]["lr"]
        swa_lr = float(swa_lr) if swa_lr is not None else lr * lr_factor(self.swa_start, self.train_cfg)
        self.scheduler.base_lrs = [lr for _ in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            group["initial_lr"] = lr
            if "swa_lr" in group:
                group["swa_lr"] = swa_lr
            if self.start_epoch < self.swa_start:
                group["lr"] = lr * lr_factor(self.start_epoch, self.train_cfg)

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _abandon_start(self) -> None:
        """A start that failed before training leaves the folder as it found it, so the same --out works again."""
        if self._started_here and checkpoint.latest(self.checkpoints) is None:
            (self.out / CONFIG_FILE).unlink(missing_ok=True)
            (self.out / LOCK_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.checkpoints.rmdir()
            with contextlib.suppress(OSError):
                self.out.rmdir()  # only if nothing else is in it
        self._release_lock()

    def _dataset(self, split: str, *, train: bool):
        from mmfuse.data import build_dataset

        prep = self.model.preprocessing
        return build_dataset(
            dataset_options(self.config),
            split,
            train=train,
            img_size=prep["img_size"],
            mean=prep["mean"],
            std=prep["std"],
            seed=self.seed,
            metadata_encoding=self.model.metadata_encoding,
            tasks=self.model.tasks,
        )

    def _batch_source(self, context: DistContext) -> BatchSource:
        data = self.config["data"]
        dataset = self._dataset(data["train_split"], train=True)
        if len(dataset) == 0:
            raise DataError(f"the training split {data['train_split']!r} of {data['root']} is empty")
        batch_size = per_rank_batch_size(int(self.train_cfg["batch_size"]), context)
        self.class_weights = None
        if self.train_cfg.get("class_weights") == "balanced":
            self.class_weights = balanced_class_weights(dataset.label_matrix(), self.tasks)
        common = dict(
            batch_size=batch_size,
            seed=self.seed,
            context=context,
            device=self.device,
            sampler=self.train_cfg.get("sampler", "shuffle"),
        )
        if data["device_cache"]:
            prep = self.model.preprocessing
            return DeviceCacheBatches(
                dataset,
                mean=prep["mean"],
                std=prep["std"],
                augment=dataset_options(self.config).get("augment"),
                channels_last=self.channels_last,
                **common,
            )
        return LoaderBatches(
            dataset, num_workers=int(data["num_workers"]), channels_last=self.channels_last, **common
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
            renamed = self._preset_that_fits(tensors.get("model", {}))
            if renamed is not None:
                raise CheckpointError(
                    f"checkpoint {path} was trained with the architecture now named {renamed!r}: mmfuse "
                    f"versions before config_version 2 built it under the name {self.config['model']['preset']!r}, "
                    "which now builds the paper's model. Set model.preset to "
                    f"{renamed!r} in {self.out / CONFIG_FILE} (and in your config) and resume again"
                ) from None
            raise CheckpointError(
                f"checkpoint {path} does not fit this run ({_one_line(exc)}); it is damaged, or "
                "was written by another model or version. Start a new run, or restore the checkpoint"
            ) from None

    def _preset_that_fits(self, weights: Mapping[str, torch.Tensor]) -> str | None:
        """``<preset>-fast`` when it, not the run's paper preset, has exactly the checkpoint's tensors.

        A run started before the paper presets moved their fusion blocks (docs/architecture.md, "Where the
        paper's blocks sit") names the preset that then built today's ``-fast`` configuration.
        """
        preset, _, overrides = model_spec(self.config)
        fast = f"{preset}-fast" if isinstance(preset, str) else None
        if fast is None or fast not in list_presets():
            return None
        overrides.pop("pretrained_files", None)
        try:
            candidate = build_model(fast, pretrained=False, **overrides).state_dict()
        except (MmfuseError, *BUILD_ERRORS):  # only a hint: a model that cannot be built is not the answer
            return None
        fits = candidate.keys() == weights.keys() and all(
            candidate[k].shape == weights[k].shape for k in candidate
        )
        return fast if fits else None

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
        """``threads: auto`` resumes with the run's own thread count: CPU sums split by thread, so the
        same count is what keeps a resumed run bit-exact. An explicit setting or OMP_NUM_THREADS wins."""
        from mmfuse.threads import ThreadChoice, choose_threads

        if threads is None or self.train_cfg.get("threads", AUTO) != AUTO:
            return
        if not choose_threads(AUTO).reason.startswith("auto"):
            return  # OMP_NUM_THREADS
        torch.set_num_threads(int(threads))
        self.threads = ThreadChoice(int(threads), "as in the run being resumed")

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
                self._step_losses.append((epoch * len(self.batches) + step + 1, value))
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

    def _start_trackers(self) -> None:
        if self.context.is_main and self.train_cfg["track"]:
            first_step = self.start_epoch * len(self.batches) + 1
            self.trackers = Trackers.start(
                self.train_cfg["track"], self.out, self.config, first_step=first_step
            )

    def _track_epoch(self, epoch: int, checkpointed: bool) -> None:
        """Queue the epoch's step losses, summary row and (every ``validate_every``) validation metrics;
        hand the queue to the trackers once a checkpoint holds the epoch, so a resume never repeats a step."""
        steps, self._step_losses = self._step_losses, []
        if not self.trackers.active:
            return
        self._untracked += [(step, {"train/loss": loss}) for step, loss in steps]
        entry = self.history[-1]
        values = {f"train/epoch_{k}": v for k, v in entry.items() if k.startswith("loss")}
        values = {**values, "train/lr": entry["lr"], "train/pairs_per_s": entry["pairs_per_s"]}
        values["train/epoch"] = entry["epoch"]
        every = int(self.train_cfg["validate_every"])
        if every and not self._validation_failed and getattr(self.evaluator, "validation", None) is not None:
            if (epoch + 1) % every == 0 or epoch + 1 == self.epochs:
                try:
                    values.update(head_scalars(self._validate(), "valid"))
                except Exception as exc:  # noqa: BLE001 - what the trackers show never stops the training
                    print(
                        f"warning: validation for the trackers failed ({_one_line(exc)}); it is switched off "
                        "for this run, training goes on",
                        file=sys.stderr,
                        flush=True,
                    )
                    self._validation_failed = True
        self._untracked.append(((epoch + 1) * len(self.batches), values))
        if checkpointed:
            for step, logged in self._untracked:
                self.trackers.log_metrics(logged, step)
            self._untracked = []

    def _validate(self) -> dict:
        """Each head's metrics on the validation split, on a copy of the RNG state (a run with trackers
        trains the same weights as one without: loaders draw seeds from the global generator)."""
        states = checkpoint.rng_states()
        try:
            with torch.no_grad():
                if self._validate_fn is None:
                    self._validate_fn = self.evaluator.validation(self.model, self.config, device=self.device)
                return self._validate_fn(self.model.eval())
        finally:
            self.model.train()
            checkpoint.set_rng_states(states)

    def fit(self) -> TrainResult:
        """Train the remaining epochs, then (rank 0) average, evaluate and save; see :func:`train`."""
        self._start_trackers()
        try:
            return self._fit()
        finally:
            self.trackers.close()

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
                self._track_epoch(epoch, checkpointed)
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
        if self.evaluate:
            self.save_model(model, None)  # the trained weights survive an evaluation that fails
            model.to(self.device)
            metrics = self.evaluator.evaluate(
                model, self.config, self.out, device=self.device, progress=self.progress
            )
        self.save_model(model, metrics)
        if metrics is not None and self.evaluator.report is not None:
            self.evaluator.report(self.out)
        if metrics is not None:
            self.trackers.log_summary(head_scalars(metrics), self.out, self.epochs * len(self.batches))
        return TrainResult(self.out, model, metrics, self.history)

    def finish(self) -> nn.Module:
        """Swap the SWA average in, with batch-norm statistics recomputed on the training data."""
        model = self.model
        if self.swa_start < self.epochs:
            averaged = self.swa_model.module
            source = self._batch_source(DistContext()) if self.context.enabled else self.batches
            with torch.no_grad(), autocast_context(self.device, self.amp):
                update_bn(source.epoch(self.epochs), _PairInput(averaged))
            model.load_state_dict(averaged.state_dict())
        return model.eval()

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
    evaluate: bool = True,
    progress: bool | None = None,
    allow_changes: Sequence[str] = (),
    evaluator: RunEvaluator | None = None,
) -> TrainResult:
    """Train a model as ``config`` (from :func:`mmfuse.training.load_config`) says, into the run directory ``out``.

    ``resume`` continues from the last checkpoint in ``out``. With ``evaluate`` the run ends with TTA
    predictions, the head-weight search on the validation split and the report files. Under torchrun
    every process calls this; rank 0 writes every file. ``allow_changes`` names the recovery keys
    (:data:`~mmfuse.training.rundir.RECOVERY_KEYS`: learning rate, gradient clipping, AMP, epochs) that may
    differ from the run's stored config on ``resume``; every other difference is refused.

    ``evaluate`` needs the ``evaluator`` that ends the run (:class:`RunEvaluator`);
    :func:`mmfuse.training.train` is this function with :mod:`mmfuse.evaluation`'s.
    """
    trainer = Trainer(
        config,
        out,
        resume=resume,
        evaluate=evaluate,
        progress=progress,
        allow_changes=allow_changes,
        evaluator=evaluator,
    )
    try:
        return trainer.fit()
    finally:
        trainer._release_lock()
