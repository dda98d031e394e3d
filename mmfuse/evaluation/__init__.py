"""Evaluation: the paper's metrics, TTA predictions, the head-weight search, run reports.

Names are imported on first use (PEP 562), so training and ``mmfuse predict`` do not pay for
torchmetrics' import until they compute a metric.
"""

from __future__ import annotations

from mmfuse._lazy import lazy_exports

_EXPORTS = {
    "MELANOMA_CLASSES": "derm7pt",
    "seven_point": "derm7pt",
    "evaluate_run": "evaluate",
    "evaluation_dataset": "evaluate",
    "predict_split": "evaluate",
    "tune_head_weights": "evaluate",
    "write_split_report": "evaluate",
    "Predictions": "inference",
    "collect_predictions": "inference",
    "head_metrics": "metrics",
    "scored_classes": "metrics",
    "task_metrics": "metrics",
    "evaluate_model": "model_evaluation",
    "predict_pair": "pair",
    "final_probabilities": "report",
    "format_table": "report",
    "split_metrics": "report",
    "SecondStage": "second_stage",
    "run_second_stage": "second_stage",
    "stage_features": "second_stage",
    "WeightSearchResult": "weight_search",
    "fusionm4net_candidates": "weight_search",
    "search_head_weights": "weight_search",
    "simplex_grid": "weight_search",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
