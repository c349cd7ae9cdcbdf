"""Training losses of hf_rec's sequential recommenders, one function per `config.loss_type` (`LOSSES`).

Every loss takes the hidden states at the labelled positions only (`hidden`, `[N, H]`, in score space), their labels
(`[N]`, item indices), the item table (`[V, H]`), the model config, and optional `sampling_weights` (`[V]`, draws
negatives by weight instead of uniformly) and `candidate_mask` (`[V]` bool, the items that exist at training time).
A same-folder sibling of the modeling files (exported with them for `trust_remote_code`); imports only torch.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def sample_negative_ids(
    num: int, config, device, generator=None, sampling_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Draw `num` item indices from the training items `1 .. num_train_items`, uniformly or by `sampling_weights`."""
    if sampling_weights is not None:
        return torch.multinomial(sampling_weights, num, replacement=True, generator=generator)
    return torch.randint(1, config.num_train_items + 1, (num,), device=device, generator=generator)


def full_softmax_loss(hidden, labels, item_embeddings, config, sampling_weights=None, candidate_mask=None):
    """`ce`: cross-entropy over every training item (no sampling)."""
    # Score only the training items 1..num_train_items (a contiguous slice: no special-id masking, no copy).
    train_items = item_embeddings[1 : config.num_train_items + 1]
    logits = hidden @ train_items.T  # [N, num_train_items]
    if candidate_mask is not None:
        logits = logits.masked_fill(~candidate_mask[1 : config.num_train_items + 1], float("-inf"))
    return F.cross_entropy(logits.float(), labels - 1)


def bce_loss(hidden, labels, item_embeddings, config, sampling_weights=None, candidate_mask=None):
    """`bce`: binary cross-entropy with one sampled negative per position (the SASRec paper)."""
    positive_logits = (hidden * item_embeddings[labels]).sum(-1)  # [N]
    negatives = sample_negative_ids(labels.numel(), config, hidden.device, sampling_weights=sampling_weights)
    negative_logits = (hidden * item_embeddings[negatives]).sum(-1)
    valid = (negatives != labels).float()  # a negative that happens to be the positive is dropped
    negative_loss = F.binary_cross_entropy_with_logits(
        negative_logits.float(), torch.zeros_like(negative_logits, dtype=torch.float), reduction="none"
    )
    positive_loss = F.binary_cross_entropy_with_logits(
        positive_logits.float(), torch.ones_like(positive_logits, dtype=torch.float)
    )
    return positive_loss + (negative_loss * valid).sum() / valid.sum().clamp(min=1.0)


def shared_negative_logits(hidden, labels, item_embeddings, config, sampling_weights=None):
    """`num_negatives` negatives shared by the whole batch (one `[N, H] x [H, num_negatives]` matmul): `(negatives,
    logits)`, with a negative that is the position's own label at -inf."""
    negatives = sample_negative_ids(config.num_negatives, config, hidden.device, sampling_weights=sampling_weights)
    logits = hidden @ item_embeddings[negatives].T  # [N, num_negatives]
    return negatives, logits.masked_fill(negatives[None, :] == labels[:, None], float("-inf"))


def sampled_softmax_loss(hidden, labels, item_embeddings, config, sampling_weights=None, candidate_mask=None):
    """`sampled_softmax`: softmax over the positive and `num_negatives` shared negatives; with `logq_correction`,
    each negative's logit minus log(num_negatives * q(item)) (Bengio & Senecal 2008; Yi et al. 2019)."""
    positive_logits = (hidden * item_embeddings[labels]).sum(-1)  # [N]
    negatives, negative_logits = shared_negative_logits(hidden, labels, item_embeddings, config, sampling_weights)
    if config.logq_correction:
        if sampling_weights is None:
            log_q = -math.log(config.num_train_items) + math.log(config.num_negatives)
            negative_logits = negative_logits - log_q
        else:
            probabilities = sampling_weights[negatives] / sampling_weights.sum()
            negative_logits = negative_logits - torch.log(probabilities * config.num_negatives)[None, :]
    logits = torch.cat([positive_logits[:, None], negative_logits], dim=1).float()
    return F.cross_entropy(logits, torch.zeros(len(labels), dtype=torch.long, device=labels.device))


def gbce_loss(hidden, labels, item_embeddings, config, sampling_weights=None, candidate_mask=None):
    """`gbce` (gSASRec, Petrov & Macdonald, RecSys 2023): BCE with the positive probability raised to the power
    beta, which `gbce_t` calibrates for `num_negatives` negatives, averaged over the 1 + num_negatives logits."""
    positive_logits = (hidden * item_embeddings[labels]).sum(-1)  # [N]
    _, negative_logits = shared_negative_logits(hidden, labels, item_embeddings, config, sampling_weights)
    alpha = config.num_negatives / max(config.num_train_items - 1, 1)
    beta = alpha * (config.gbce_t * (1.0 - 1.0 / alpha) + 1.0 / alpha)
    positive_logits = positive_logits.double()
    eps = 1e-10
    positive_probs = torch.clamp(torch.sigmoid(positive_logits), eps, 1 - eps)
    positive_probs_adjusted = torch.clamp(positive_probs.pow(-beta), 1 + eps, torch.finfo(torch.float64).max)
    positive_logits = torch.log(torch.clamp(1.0 / (positive_probs_adjusted - 1), eps, torch.finfo(torch.float64).max))
    positive_loss = F.binary_cross_entropy_with_logits(positive_logits, torch.ones_like(positive_logits))
    valid = torch.isfinite(negative_logits)
    negative_loss = F.binary_cross_entropy_with_logits(
        negative_logits.float().masked_fill(~valid, 0.0), torch.zeros_like(negative_logits, dtype=torch.float),
        reduction="none",
    )
    negative_loss = (negative_loss * valid).sum(-1).mean()
    return (positive_loss.float() + negative_loss) / (1 + config.num_negatives)


LOSSES = {"ce": full_softmax_loss, "bce": bce_loss, "sampled_softmax": sampled_softmax_loss, "gbce": gbce_loss}


def recommendation_loss(
    hidden: torch.Tensor,
    labels: torch.Tensor,
    item_embeddings: torch.Tensor,
    config,
    sampling_weights: torch.Tensor | None = None,
    candidate_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss `config.loss_type` names (see `LOSSES`). `candidate_mask` limits the softmax and the negatives to the
    items that exist at training time (cold-start simulation: held-out items are never even negatives)."""
    if candidate_mask is not None:
        weights = torch.ones_like(candidate_mask, dtype=torch.float) if sampling_weights is None else sampling_weights
        sampling_weights = weights * candidate_mask
    return LOSSES[config.loss_type](hidden, labels, item_embeddings, config, sampling_weights, candidate_mask)


__all__ = ["LOSSES", "recommendation_loss", "sample_negative_ids"]
