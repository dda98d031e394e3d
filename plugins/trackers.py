"""Built-in trackers: ``tensorboard`` (on by default), ``mlflow`` and ``wandb``.

Registered through ``register_trackers``, the hook a third-party tracker uses. Each backend is imported
when a run starts it, so a missing package costs the run one warning line (see :mod:`mmfuse.tracking`).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import mmfuse
from mmfuse.tracking import Tracker, hyperparameters

TENSORBOARD_DIR = "tb"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
DEFAULT_PROJECT = "mmfuse"  # MLflow experiment / W&B project unless the backend's own variable names one
MODEL_DIR, REPORT_FILE = "model", "report.html"


def _run_files(run_dir: Path) -> tuple[Path | None, Path | None]:
    model, report = run_dir / MODEL_DIR, run_dir / REPORT_FILE
    return (model if model.is_dir() else None), (report if report.is_file() else None)


class TensorBoardTracker(Tracker):
    """Event files under ``RUN/tb/``; the run config on the HPARAMS tab.

    A resumed run writes into the same folder with ``purge_step``: TensorBoard then drops whatever an
    interrupted start wrote past the checkpoint, so each step has one value.
    """

    name = "tensorboard"

    def start(self, run_dir, config, *, state, first_step):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.writer = SummaryWriter(
            str(run_dir / TENSORBOARD_DIR), purge_step=first_step if state is not None else None
        )
        if state is None:
            heads = ("primary", "auxiliary", "fusion")
            declared = {f"valid/{h}/avg_auc": 0.0 for h in heads} | {f"valid/{h}/avg_acc": 0.0 for h in heads}
            for summary in hparams(hyperparameters(config), declared):
                self.writer.file_writer.add_summary(summary)
        return {"log_dir": TENSORBOARD_DIR}

    def log_metrics(self, values, step):
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # watched live: each epoch shows up when it ends

    def log_summary(self, metrics, run_dir, step):
        for key, value in metrics.items():
            self.writer.add_scalar(f"final/{key}", value, step)
        self.writer.flush()

    def close(self):
        self.writer.close()


class MLflowTracker(Tracker):
    """An MLflow run: params, per-step and per-epoch metrics, the model folder and report as artefacts.

    ``MLFLOW_TRACKING_URI`` chooses the store (a server, ``sqlite:``, ``file:``...); without it the run
    keeps a local store of its own, ``RUN/mlflow.db`` with artefacts in ``RUN/mlartifacts/`` (a database,
    not ``file:``, because MLflow 3 refuses new file stores unless ``MLFLOW_ALLOW_FILE_STORE=true``).
    ``MLFLOW_EXPERIMENT_NAME`` names the experiment (default ``mmfuse``).
    """

    name = "mlflow"

    def start(self, run_dir, config, *, state, first_step):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(run_dir / MLFLOW_DB).resolve()}"
        self.client = MlflowClient(tracking_uri=uri)
        self.finished = False
        if state and state.get("run_id") and state.get("tracking_uri") == uri:
            self.run_id = state["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return dict(state)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_PROJECT
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            artifacts = (
                None
                if "MLFLOW_TRACKING_URI" in os.environ
                else (run_dir / MLFLOW_ARTIFACTS).resolve().as_uri()
            )
            experiment_id = self.client.create_experiment(name, artifact_location=artifacts)
        self.run_id = self.client.create_run(
            experiment_id, run_name=run_dir.name, tags={"mmfuse.run_dir": str(run_dir.resolve())}
        ).info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in hyperparameters(config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        return {"run_id": self.run_id, "tracking_uri": uri}

    def log_metrics(self, values, step):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def log_summary(self, metrics, run_dir, step):
        self.log_metrics({f"final/{k}": v for k, v in metrics.items()}, step)
        model, report = _run_files(run_dir)
        if model is not None:
            self.client.log_artifacts(self.run_id, str(model), MODEL_DIR)
        if report is not None:
            self.client.log_artifact(self.run_id, str(report))
        self.finished = True

    def close(self):
        # An interrupted run is KILLED until its --resume sets it RUNNING again and finishes it.
        self.client.set_terminated(self.run_id, status="FINISHED" if self.finished else "KILLED")


class WandbTracker(Tracker):
    """A Weights & Biases run, online or offline (``WANDB_MODE=offline``) as wandb's own settings say.

    Files go to ``RUN/wandb/``; ``WANDB_PROJECT`` names the project (default ``mmfuse``). The run id is
    kept in ``RUN/tracking.json``, so ``--resume`` continues the same W&B run.
    """

    name = "wandb"

    def start(self, run_dir, config, *, state, first_step):
        import wandb

        run_id = (state or {}).get("run_id") or uuid.uuid4().hex[:12]
        self.run = wandb.init(
            dir=str(run_dir),
            id=run_id,
            resume="allow",
            project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
            name=run_dir.name,
            config=hyperparameters(config),
            settings=wandb.Settings(silent=True, console="off"),
        )
        return {"run_id": run_id}

    def log_metrics(self, values, step):
        self.run.log(dict(values), step=step)

    def log_summary(self, metrics, run_dir, step):
        import wandb

        self.run.summary.update({f"final/{k}": v for k, v in metrics.items()})
        model, report = _run_files(run_dir)
        if model is not None or report is not None:
            artifact = wandb.Artifact(f"model-{self.run.id}", type="model")
            if model is not None:
                artifact.add_dir(str(model), name=MODEL_DIR)
            if report is not None:
                artifact.add_file(str(report))
            self.run.log_artifact(artifact)

    def close(self):
        self.run.finish()


@mmfuse.hookimpl
def register_trackers(register):
    for cls in (TensorBoardTracker, MLflowTracker, WandbTracker):
        register(cls.name, cls)
