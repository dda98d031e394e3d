"""What the experiment trackers see while a run trains: step losses, each epoch's row and, every
``train.validate_every`` epochs, each head's metrics on the validation split.

Values wait in a queue until a checkpoint holds their epoch, so a resumed run never logs a step twice.
Validation runs on a copy of the RNG state (loaders draw seeds from the global generator), so a run with
trackers trains the same weights as one without; a validation that fails is one warning line, and the
training goes on without it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from mmfuse.errors import one_line
from mmfuse.tracking import Trackers, head_scalars
from mmfuse.training import checkpoint

Validation = Callable[..., Callable[[nn.Module], dict]]


class RunMonitor:
    """The trackers of one run and the queue of what they have not been handed yet.

    ``validation(model, config, *, device)`` (:attr:`RunEvaluator.validation`, or ``None``) prepares
    ``validate(model) -> {head: report}`` on the first epoch that validates.
    """

    def __init__(
        self,
        validation: Validation | None,
        model: nn.Module,
        config: Mapping,
        *,
        device: torch.device,
    ) -> None:
        self.trackers = Trackers()
        self._validation = validation
        self._model, self._config, self._device = model, config, device
        self._every = int(config["train"]["validate_every"])
        self._epochs = int(config["train"]["epochs"])
        self._validate_fn: Callable[[nn.Module], dict] | None = None
        self._step_losses: list[tuple[int, float]] = []  # (step, loss) of this epoch
        self._untracked: list[tuple[int, dict[str, float]]] = []  # (step, values) not yet checkpointed

    def start(self, names: Sequence[str], run_dir: Path, *, first_step: int) -> None:
        self.trackers = Trackers.start(names, run_dir, self._config, first_step=first_step)

    def step_loss(self, step: int, loss: float) -> None:
        self._step_losses.append((step, loss))

    def end_epoch(self, epoch: int, entry: Mapping, *, last_step: int, checkpointed: bool) -> None:
        """Queue the epoch's step losses, its ``log.csv`` row ``entry`` and (when due) validation metrics;
        hand the queue to the trackers when ``checkpointed``."""
        steps, self._step_losses = self._step_losses, []
        if not self.trackers.active:
            return
        self._untracked += [(step, {"train/loss": loss}) for step, loss in steps]
        values = {f"train/epoch_{k}": v for k, v in entry.items() if k.startswith("loss")}
        values = {**values, "train/lr": entry["lr"], "train/pairs_per_s": entry["pairs_per_s"]}
        values["train/epoch"] = entry["epoch"]
        if self._validation and self._every and ((epoch + 1) % self._every == 0 or epoch + 1 == self._epochs):
            try:
                values.update(head_scalars(self._validate(), "valid"))
            except Exception as exc:  # noqa: BLE001 - what the trackers show never stops the training
                print(
                    f"warning: validation for the trackers failed ({one_line(exc)}); it is switched off "
                    "for this run, training goes on",
                    file=sys.stderr,
                    flush=True,
                )
                self._validation = None
        self._untracked.append((last_step, values))
        if checkpointed:
            for step, logged in self._untracked:
                self.trackers.log_metrics(logged, step)
            self._untracked = []

    def _validate(self) -> dict:
        states = checkpoint.rng_states()
        try:
            with torch.no_grad():
                if self._validate_fn is None:
                    self._validate_fn = self._validation(self._model, self._config, device=self._device)
                return self._validate_fn(self._model.eval())
        finally:
            self._model.train()
            checkpoint.set_rng_states(states)

    def summary(self, metrics: Mapping, run_dir: Path, step: int) -> None:
        """The evaluated run's final metrics."""
        self.trackers.log_summary(head_scalars(metrics), run_dir, step)

    def close(self) -> None:
        self.trackers.close()
