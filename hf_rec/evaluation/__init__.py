"""Evaluation: full-catalogue ranking metrics, the sampled protocol, the `Evaluator`, segment and
beyond-accuracy metrics (:mod:`hf_rec.evaluation.segments`), and an
`evaluate` module. Every metric is a function of the target's 0-based rank (ties give no credit);
see :mod:`hf_rec.evaluation.metrics`."""

from __future__ import annotations

from pathlib import Path

from .evaluator import Evaluator, model_special_ids
from .metrics import (
    metrics_from_ranks,
    rank_targets_by_embeddings,
    ranking_metrics,
    target_ranks,
    topk_by_embeddings,
)
from .segments import (
    beyond_accuracy_metrics,
    evaluate_segments,
    history_length_groups,
    popularity_groups,
    segment_metrics,
    training_item_counts,
)
from .sampled import sample_negatives, sampled_ranking_metrics, sampled_target_ranks

METRIC_SCRIPT = Path(__file__).resolve().parent / "metric" / "ranking_metrics.py"


def load_metric(**kwargs):
    """``evaluate.load`` of the bundled ranking-metrics module (a local file: no network).

    ``evaluate`` copies the script into ``$HF_HOME/modules`` (``HF_MODULES_CACHE``) and writes its
    temporary prediction files under ``$HF_HOME/metrics`` unless ``keep_in_memory=True``; both
    paths are fixed when ``evaluate`` is first imported. Keyword arguments go to ``evaluate.load``.
    A local script needs no network, so the process's offline setting is left as the user set it.
    """
    import evaluate

    return evaluate.load(str(METRIC_SCRIPT), **kwargs)


__all__ = [
    "Evaluator",
    "METRIC_SCRIPT",
    "beyond_accuracy_metrics",
    "evaluate_segments",
    "history_length_groups",
    "popularity_groups",
    "segment_metrics",
    "training_item_counts",
    "load_metric",
    "metrics_from_ranks",
    "model_special_ids",
    "rank_targets_by_embeddings",
    "ranking_metrics",
    "sample_negatives",
    "sampled_ranking_metrics",
    "sampled_target_ranks",
    "target_ranks",
    "topk_by_embeddings",
]
