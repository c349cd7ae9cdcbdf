"""`evaluate` module: full-ranking next-item metrics from target ranks.

Load it offline with ``hf_rec.evaluation.load_metric()`` (``evaluate.load`` on this file).

Inputs:
    predictions: the 0-based rank of each user's held-out item (int64), as returned by
        ``hf_rec.evaluation.target_ranks`` / ``rank_targets_by_embeddings``: the number of
        rankable, non-excluded items other than the target scored ``>=`` it (ties give no credit).
    references: the held-out item index of each user (int64). Only its length is checked; the
        metrics depend on the ranks alone.
    ks: the cut-offs (default ``(10,)``).

Output: the same dict as ``hf_rec.evaluation.metrics_from_ranks``: ``hr@K``, ``recall@K``,
``precision@K`` (= hit / K), ``f1@K``, ``ndcg@K``, ``mrr@K`` for each K, and ``num_users``.
"""

import datasets
import evaluate

from hf_rec.evaluation.metrics import check_ks, metrics_from_ranks

_CITATION = ""

_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): 0-based rank of each user's target (ties give no credit).
    references (list of int): each user's target item index (length check only).
    ks (int or list of int, optional): cut-offs, default (10,).
Returns:
    dict with hr@K, recall@K, precision@K, f1@K, ndcg@K, mrr@K per K and num_users.
Examples:
    >>> metric = hf_rec.evaluation.load_metric()
    >>> metric.compute(predictions=[0, 3, 50], references=[5, 7, 9], ks=[10])["hr@10"]
    0.6666666666666666
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RankingMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=[],
        )

    def _compute(self, predictions, references, ks=(10,)):
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
        return metrics_from_ranks(list(predictions), check_ks(ks))
