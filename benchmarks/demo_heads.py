"""Does fusion earn its place? Each head of finished demo runs against the primary head, paired.

    python benchmarks/demo_heads.py demo-s0/run demo-s1/run demo-s2/run

For each run: the test split's AVG AUC of every head and of the final prediction with the run's 95 %
bootstrap intervals (metrics.json), and the paired difference fusion − primary and final − primary over
1000 resamples of the cases (seed 0), recomputed from the saved model's TTA predictions. Prints one JSON
line per run; docs/training.md ("The demo") shows the table of three seeds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def head_gains(run: Path, resamples: int = 1000, seed: int = 0) -> dict:
    import mmfuse
    from mmfuse.evaluation.bootstrap import percentile_interval, resample_counts, resampled_metrics
    from mmfuse.evaluation.evaluate import evaluation_dataset, predict_split
    from mmfuse.evaluation.report import final_probabilities
    from mmfuse.training.config import dataset_options, load_config

    metrics = json.loads((run / "metrics.json").read_text())
    config = load_config(run / "config.yaml")
    model = mmfuse.from_pretrained(run)
    dataset = evaluation_dataset(model, dataset_options(config), "test")
    predictions = predict_split(model, dataset, tta=config["evaluation"]["tta"], progress=False)
    probabilities = {
        **predictions.probabilities,
        "final": final_probabilities(predictions, model.head_weights_dict),
    }
    counts = resample_counts(len(predictions.case_ids), resamples, seed)
    drawn = {
        h: resampled_metrics(p, predictions.labels, model.tasks, counts)["avg_auc"]
        for h, p in probabilities.items()
    }
    out = {"run": str(run), "head_weights": metrics["head_weights"]}
    for head in probabilities:
        report = metrics["test"][head]
        out[head] = {"avg_auc": 100 * report["avg_auc"], "ci": [100 * v for v in report["ci"]["avg_auc"]]}
    for head in ("fusion", "final"):
        gain = 100 * (metrics["test"][head]["avg_auc"] - metrics["test"]["primary"]["avg_auc"])
        interval = percentile_interval(drawn[head] - drawn["primary"])
        out[f"{head}-primary"] = {"avg_auc": gain, "ci": [100 * v for v in interval]}
    return out


if __name__ == "__main__":
    np.seterr(invalid="ignore")
    for path in sys.argv[1:]:
        print(json.dumps(head_gains(Path(path))), flush=True)
