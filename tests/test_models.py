"""One case table across every model family: shapes, training signal, gradients, save/load (in process and with
`trust_remote_code` where hf_rec is not importable), causality, padding invariance and `recommend`."""

from __future__ import annotations

import math
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import hf_rec
from hf_rec import (
    AutoModelForSequentialRecommendation,
    BERT4RecConfig,
    BERT4RecForSequentialRecommendation,
    GRU4RecConfig,
    GRU4RecForSequentialRecommendation,
    HSTUConfig,
    HSTUForSequentialRecommendation,
    NARMConfig,
    NARMForSequentialRecommendation,
    SASRecConfig,
    SASRecForSequentialRecommendation,
    SequentialRecommenderOutput,
)
from hf_rec.data.collators import SequentialCollator

VOCAB_SIZE = 30  # padding 0, items 1..28, mask token 29
MAX_LENGTH = 12
COMMON = dict(vocab_size=VOCAB_SIZE, hidden_size=16, max_position_embeddings=MAX_LENGTH)
TRANSFORMER = dict(
    num_hidden_layers=2, num_attention_heads=2, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1
)

# family -> (config class, head class, tiny config kwargs). GRU widths differ from the embedding size so that the
# projections (GRU4Rec's output_proj, NARM's bilinear decoder) are exercised.
CASES = {
    "sasrec": (SASRecConfig, SASRecForSequentialRecommendation, {**COMMON, **TRANSFORMER}),
    "bert4rec": (BERT4RecConfig, BERT4RecForSequentialRecommendation, {**COMMON, **TRANSFORMER}),
    "gru4rec": (
        GRU4RecConfig,
        GRU4RecForSequentialRecommendation,
        {**COMMON, "num_hidden_layers": 2, "gru_hidden_size": 24, "embedding_dropout": 0.1, "hidden_dropout_prob": 0.1},
    ),
    "narm": (NARMConfig, NARMForSequentialRecommendation, {**COMMON, "num_hidden_layers": 2, "gru_hidden_size": 24}),
    # HSTU scores by cosine / 0.05 by default; here by dot product like the others (test_save_and_load checks the
    # tied table itself). The default is covered by test_score_temperature_* and tests/test_hstu.py.
    "hstu": (
        HSTUConfig,
        HSTUForSequentialRecommendation,
        {**COMMON, "num_hidden_layers": 2, "num_attention_heads": 2, "hidden_dropout_prob": 0.1,
         "linear_dropout_prob": 0.1, "score_temperature": None},  # fmt: skip
    ),
}
FAMILIES = list(CASES)
CAUSAL_FAMILIES = [f for f in FAMILIES if f != "bert4rec"]

# Histories of different lengths (item indices 1..28), oldest first.
HISTORIES = [
    [3, 7, 1, 9, 12, 4, 4, 20, 5, 8, 2],
    [5, 6, 7],
    [28, 1, 14, 2, 9, 11, 3],
    [10, 11],
]


def make_model(family: str, seed: int = 0, **overrides):
    config_class, head_class, kwargs = CASES[family]
    torch.manual_seed(seed)
    return head_class(config_class(**{**kwargs, **overrides}))


def trained_like(model, scale: float = 0.3):
    """Add noise to every parameter (biases, padding row included), as training would: a freshly initialised model
    has zero biases and a zero padding embedding, which would hide a GRU reading left padding."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))
    return model


def train_batch(model, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed training batch from the collator the model's objective names."""
    collator = SequentialCollator(
        model.training_objective,
        max_length=model.config.max_position_embeddings,
        pad_token_id=model.config.pad_token_id,
        mask_token_id=model.config.mask_token_id,
        mask_probability=0.3,
        seed=seed,
    )
    return collator([{"item_ids": h} for h in HISTORIES])


def inputs_for(model, histories=HISTORIES):
    return model.histories_to_inputs(histories)


# ----------------------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_registration_and_objective(family):
    config_class, head_class, kwargs = CASES[family]
    config = config_class(**kwargs)
    model = AutoModelForSequentialRecommendation.from_config(config)
    assert type(model) is head_class
    assert head_class.training_objective == ("cloze" if family == "bert4rec" else "causal")
    import hf_rec

    assert head_class.__name__ in hf_rec.__all__ and config_class.__name__ in hf_rec.__all__


@pytest.mark.parametrize(
    "config_class, kwargs, shown",
    [
        (BERT4RecConfig, {"mask_probability": 1.5}, "1.5"),
        (BERT4RecConfig, {"mask_probability": 0}, "0"),
        (BERT4RecConfig, {"last_item_mask_probability": -0.1}, "-0.1"),
        (BERT4RecConfig, {"max_position_embeddings": 1}, "1"),
        (BERT4RecConfig, {"layer_norm_position": "middle"}, "middle"),
        (GRU4RecConfig, {"num_hidden_layers": 0}, "0"),
        (GRU4RecConfig, {"gru_hidden_size": -3}, "-3"),
        (GRU4RecConfig, {"embedding_dropout": 1.0}, "1.0"),
        (NARMConfig, {"hidden_dropout_prob": -0.5}, "-0.5"),
        (NARMConfig, {"loss_type": "hinge"}, "hinge"),
    ],
)
def test_bad_config_values_raise(config_class, kwargs, shown):
    with pytest.raises(ValueError, match=shown):
        config_class(vocab_size=VOCAB_SIZE, **kwargs)


def test_paper_defaults():
    bert = BERT4RecConfig(vocab_size=VOCAB_SIZE)
    assert (bert.layer_norm_position, bert.hidden_act, bert.scale_embeddings, bert.mask_probability) == (
        "post",
        "gelu",
        False,
        0.2,
    )
    narm = NARMConfig(vocab_size=VOCAB_SIZE)
    assert (narm.embedding_dropout, narm.hidden_dropout_prob) == (0.25, 0.5)
    gru = GRU4RecConfig(vocab_size=VOCAB_SIZE, hidden_size=8)
    assert (gru.num_hidden_layers, gru.gru_hidden_size) == (1, 8)


# ----------------------------------------------------------------------------------------------------------------
# Forward, loss, gradients
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_shapes(family):
    model = make_model(family).eval()
    input_ids, attention_mask = inputs_for(model)
    out = model(input_ids, attention_mask)
    assert isinstance(out, SequentialRecommenderOutput)
    assert out.loss is None
    assert out.logits.shape == (len(HISTORIES), VOCAB_SIZE)
    assert torch.isinf(out.logits[:, model.config.special_ids]).all()
    assert torch.isfinite(out.logits[:, 1 : model.config.mask_token_id]).all()
    assert out.last_hidden_state.shape[0] == len(HISTORIES) and out.last_hidden_state.shape[-1] == 16
    # logits are exactly the user embeddings scored against the item table
    user = model.get_user_embeddings(input_ids, attention_mask)
    assert user.shape == (len(HISTORIES), 16)
    assert model.get_item_embeddings().shape == (VOCAB_SIZE, 16)
    expected = user @ model.get_item_embeddings().T
    items = slice(1, model.config.mask_token_id)
    torch.testing.assert_close(out.logits[:, items], expected[:, items])
    # attention_mask defaults to input_ids != pad
    torch.testing.assert_close(model(input_ids).logits, out.logits)

    batch = train_batch(model)
    out = model(**batch)
    assert out.logits is None
    assert out.loss.shape == () and torch.isfinite(out.loss)
    assert out.last_hidden_state.shape == (*batch["input_ids"].shape, 16)


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_decreases_on_a_fixed_batch(family):
    model = make_model(family).train()
    batch = train_batch(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses


def assert_gradients_everywhere(model, loss):
    model.zero_grad()
    loss.backward()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_reach_every_parameter(family):
    model = make_model(family).train()
    assert_gradients_everywhere(model, model(**train_batch(model)).loss)


@pytest.mark.parametrize("loss_type", ["ce", "bce", "sampled_softmax", "gbce"])
def test_every_loss_type_runs_for_sasrec(loss_type):
    torch.manual_seed(0)
    model = make_model("sasrec", loss_type=loss_type, num_negatives=8).train()
    loss = model(**train_batch(model)).loss
    assert loss.shape == () and torch.isfinite(loss)
    assert_gradients_everywhere(model, loss)


# ----------------------------------------------------------------------------------------------------------------
# Save / load
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_save_and_load_give_identical_logits(family, tmp_path):
    model = make_model(family).eval()
    input_ids, attention_mask = inputs_for(model)
    expected = model(input_ids, attention_mask).logits
    model.save_pretrained(tmp_path)
    for loader in (CASES[family][1], AutoModelForSequentialRecommendation):
        loaded = loader.from_pretrained(tmp_path).eval()
        assert type(loaded) is CASES[family][1]
        assert loaded.get_item_embeddings().data_ptr() == loaded.get_input_embeddings().weight.data_ptr()
        torch.testing.assert_close(loaded(input_ids, attention_mask).logits, expected, rtol=0, atol=0)


REMOTE_SCRIPT = """
import sys; sys.modules["hf_rec"] = None  # hf_rec must not be importable: everything comes from the saved files
import json
import torch
from transformers import AutoModel

spec = json.load(open(sys.argv[1]))
result = {}
for family, entry in spec.items():
    model = AutoModel.from_pretrained(entry["path"], trust_remote_code=True).eval()
    input_ids = torch.tensor(entry["input_ids"])
    attention_mask = torch.tensor(entry["attention_mask"])
    with torch.no_grad():
        logits = model(input_ids, attention_mask).logits
        indices, _ = model.recommend(entry["histories"], k=5)
    result[family] = {
        "class": type(model).__module__ + "." + type(model).__name__,
        "logits": logits.masked_fill(torch.isinf(logits), 0.0).tolist(),
        "recommend": indices.tolist(),
    }
json.dump(result, open(sys.argv[2], "w"))
"""


def test_trust_remote_code_load_without_hf_rec(tmp_path):
    """Every family exported by save_pretrained loads through transformers.AutoModel in a fresh interpreter where
    `import hf_rec` fails, and gives the in-process logits and recommendations (one subprocess for all families)."""
    spec, expected = {}, {}
    for family in FAMILIES:
        model = make_model(family).eval()
        path = tmp_path / family
        model.save_pretrained(path)
        input_ids, attention_mask = inputs_for(model)
        with torch.no_grad():
            logits = model(input_ids, attention_mask).logits
        spec[family] = {
            "path": str(path),
            "input_ids": input_ids.tolist(),
            "attention_mask": attention_mask.tolist(),
            "histories": HISTORIES,
        }
        expected[family] = (logits.masked_fill(torch.isinf(logits), 0.0), model.recommend(HISTORIES, k=5)[0])
        exported = {p.name for p in path.iterdir()}
        assert {f"modeling_{family}.py", f"configuration_{family}.py", "modeling_common.py", "layers.py", "losses.py",
                "retrieval.py"} <= exported  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "remote.py").write_text(textwrap.dedent(REMOTE_SCRIPT))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "remote.py"), str(tmp_path / "spec.json"), str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repo root, so the source tree is not on sys.path either
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    for family in FAMILIES:
        assert result[family]["class"].startswith("transformers_modules."), result[family]["class"]
        logits, recommended = expected[family]
        torch.testing.assert_close(torch.tensor(result[family]["logits"]), logits, rtol=1e-5, atol=1e-6)
        assert result[family]["recommend"] == recommended.tolist()


# ----------------------------------------------------------------------------------------------------------------
# Causality and padding
# ----------------------------------------------------------------------------------------------------------------


def _with_later_item_changed(model):
    input_ids, attention_mask = inputs_for(model, [HISTORIES[0]])
    changed = input_ids.clone()
    changed[0, -3] = 27 if changed[0, -3] != 27 else 26
    return input_ids, changed, attention_mask


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_causal_families_do_not_leak_the_future(family):
    model = trained_like(make_model(family)).eval()
    input_ids, changed, attention_mask = _with_later_item_changed(model)
    with torch.no_grad():
        before = model._hidden_states(input_ids, attention_mask)
        after = model._hidden_states(changed, attention_mask)
    torch.testing.assert_close(after[:, :-3], before[:, :-3], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, -3:], before[:, -3:])  # the changed position and later ones do move


def test_bert4rec_is_bidirectional():
    model = trained_like(make_model("bert4rec")).eval()
    input_ids, changed, attention_mask = _with_later_item_changed(model)
    with torch.no_grad():
        before = model._hidden_states(input_ids, attention_mask)
        after = model._hidden_states(changed, attention_mask)
    assert not torch.allclose(after[:, :-3], before[:, :-3])  # earlier positions see the later item


@pytest.mark.parametrize("family", FAMILIES)
def test_left_padding_does_not_change_user_embeddings(family):
    model = trained_like(make_model(family)).eval()
    history = HISTORIES[1]
    input_ids, attention_mask = inputs_for(model, [history])
    with torch.no_grad():
        reference = model.get_user_embeddings(input_ids, attention_mask)
        reference_logits = model(input_ids, attention_mask).logits
        for extra in (1, 4, model.max_history_length() - len(history)):
            padded_ids = torch.cat([torch.zeros(1, extra, dtype=torch.long), input_ids], dim=1)
            padded_mask = torch.cat([torch.zeros(1, extra, dtype=torch.long), attention_mask], dim=1)
            torch.testing.assert_close(model.get_user_embeddings(padded_ids, padded_mask), reference, atol=1e-5, rtol=0)
            torch.testing.assert_close(model(padded_ids, padded_mask).logits, reference_logits, atol=1e-5, rtol=0)
        # a batch mixing long and short histories gives each row what it gets alone
        batch_ids, batch_mask = inputs_for(model, HISTORIES)
        batched = model.get_user_embeddings(batch_ids, batch_mask)
        torch.testing.assert_close(batched[1:2], reference, atol=1e-5, rtol=0)


def test_bert4rec_keeps_one_position_for_the_mask_token():
    model = make_model("bert4rec").eval()
    assert model.max_history_length() == MAX_LENGTH - 1
    long_history = list(range(1, MAX_LENGTH + 4))  # longer than the model reads
    full = torch.tensor([long_history[-MAX_LENGTH:]])  # a batch that already fills every position
    with torch.no_grad():
        from_full = model.get_user_embeddings(full)
        from_kept = model.get_user_embeddings(torch.tensor([long_history[-(MAX_LENGTH - 1) :]]))
    torch.testing.assert_close(from_full, from_kept)
    appended, mask = model.append_mask_token(full)
    assert appended.shape == (1, MAX_LENGTH) and appended[0, -1] == model.config.mask_token_id
    assert mask.all()
    model.recommend([long_history], k=3)  # truncated to max_history_length, no position overflow


# ----------------------------------------------------------------------------------------------------------------
# recommend
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_recommend_never_returns_special_or_seen_items(family):
    model = make_model(family)
    special = set(model.config.special_ids)
    assert model.config.mask_token_id in special
    # k = the whole vocabulary: everything rankable is returned, the rest is -1 (k may be capped at the number of
    # non-special items).
    indices, scores = model.recommend(HISTORIES, k=VOCAB_SIZE, exclude_seen=True)
    assert indices.shape == scores.shape and indices.shape[0] == len(HISTORIES)
    for row, history in zip(indices.tolist(), HISTORIES):
        returned = [i for i in row if i >= 0]
        assert set(returned) == set(range(VOCAB_SIZE)) - special - set(history)
        assert len(returned) == len(set(returned))
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first
    indices, _ = model.recommend(HISTORIES, k=VOCAB_SIZE, exclude_seen=False)
    for row in indices.tolist():
        assert set(i for i in row if i >= 0) == set(range(VOCAB_SIZE)) - special
    assert model.training  # recommend restores the training flag


@pytest.mark.parametrize("family", ["sasrec", "narm"])
def test_recommend_excludes_further_items_per_history(family):
    model = make_model(family)
    extra = [[5, 6], [], [1, 2, 3], [7]]
    full, full_scores = model.recommend(HISTORIES, k=VOCAB_SIZE)
    indices, scores = model.recommend(HISTORIES, k=VOCAB_SIZE, exclude=extra)
    for row in range(len(HISTORIES)):
        kept = [(i, s) for i, s in zip(full[row].tolist(), full_scores[row].tolist()) if i >= 0 and i not in extra[row]]
        got = [(i, s) for i, s in zip(indices[row].tolist(), scores[row].tolist()) if i >= 0]
        assert [i for i, _ in got] == [i for i, _ in kept] and [s for _, s in got] == pytest.approx([s for _, s in kept])
    no_seen, _ = model.recommend(HISTORIES, k=VOCAB_SIZE, exclude_seen=False, exclude=extra)
    assert all(set(extra[r]).isdisjoint(no_seen[r].tolist()) for r in range(len(HISTORIES)))
    assert set(HISTORIES[0]) - set(extra[0]) <= set(no_seen[0].tolist())  # seen items come back without exclude_seen
    with pytest.raises(ValueError, match="3 exclusion lists for 4 histories"):
        model.recommend(HISTORIES, exclude=extra[:3])


@pytest.mark.parametrize("family", FAMILIES)
def test_recommend_rejects_empty_history(family):
    model = make_model(family)
    with pytest.raises(ValueError, match="empty"):
        model.recommend([[]])
    with pytest.raises(ValueError, match="empty"):
        model.recommend([[1, 2], []])


@pytest.mark.parametrize("family", FAMILIES)
def test_special_ids_never_recommended_even_when_they_score_best(family):
    model = make_model(family).eval()
    input_ids, attention_mask = inputs_for(model)
    with torch.no_grad():
        user = model.get_user_embeddings(input_ids, attention_mask)
    # Make padding and the mask token the best-scoring rows for every user: all user embeddings point along one
    # direction (the model's own mean user embedding) and the special rows are that direction scaled up.
    direction = user.mean(0) / user.mean(0).norm()
    aligned = user.norm(dim=-1, keepdim=True) * direction  # [B, H]
    table = model.get_item_embeddings().detach().clone()
    table[model.config.special_ids] = 100.0 * direction
    assert torch.isin((aligned @ table.T).argmax(-1), torch.tensor(model.config.special_ids)).all()
    model.get_user_embeddings = lambda input_ids, attention_mask=None: aligned[: len(input_ids)]
    model.get_item_embeddings = lambda: table
    indices, _ = model.recommend(HISTORIES, k=5, exclude_seen=False)
    assert not torch.isin(indices, torch.tensor(model.config.special_ids)).any()
    assert (indices >= 1).all()


# ----------------------------------------------------------------------------------------------------------------
# BERT4Rec cloze training
# ----------------------------------------------------------------------------------------------------------------


def test_cloze_collator_masks_at_least_one_item_per_row():
    model = make_model("bert4rec")
    for seed in range(5):
        batch = train_batch(model, seed=seed)
        is_mask = batch["input_ids"] == model.config.mask_token_id
        assert is_mask.any(dim=1).all()
        assert torch.equal(is_mask, batch["labels"] != -100)  # labels exactly at masked positions


def test_cloze_masks_differ_between_dataloader_workers():
    # Each worker gets a copy of the collator; without splitting the generator by worker id, two workers would
    # mask identical rows identically.
    from torch.utils.data import DataLoader

    from hf_rec.data.collators import SequentialCollator

    collator = SequentialCollator("cloze", max_length=50, mask_token_id=99, mask_probability=0.3, seed=0)
    rows = [{"item_ids": list(range(1, 51))} for _ in range(4)]
    loader = DataLoader(rows, batch_size=2, num_workers=2, collate_fn=collator)  # batch 0 -> worker 0, 1 -> worker 1
    first, second = [batch["input_ids"] for batch in loader]
    assert not torch.equal(first, second)
    # Still reproducible: the same seed gives the same masks.
    collator_again = SequentialCollator("cloze", max_length=50, mask_token_id=99, mask_probability=0.3, seed=0)
    again = [b["input_ids"] for b in DataLoader(rows, batch_size=2, num_workers=2, collate_fn=collator_again)]
    assert torch.equal(again[0], first) and torch.equal(again[1], second)


def test_cloze_last_item_masking():
    from hf_rec.data.collators import SequentialCollator

    rows = [{"item_ids": list(range(1, n + 1))} for n in (3, 8, 20, 50)]
    always = SequentialCollator("cloze", max_length=50, mask_token_id=99, last_item_mask_probability=1.0, seed=0)
    batch = always(rows)
    is_mask = batch["input_ids"] == 99
    assert is_mask.sum(dim=1).tolist() == [1, 1, 1, 1]  # one mask per row, at the newest item (left padding)
    assert is_mask[:, -1].all()
    assert batch["labels"][:, -1].tolist() == [3, 8, 20, 50]
    # At 0.5, over many rows, some rows are last-item-only and others are random cloze rows with several masks.
    half = SequentialCollator("cloze", max_length=50, mask_token_id=99, last_item_mask_probability=0.5, seed=0)
    masks_per_row = (half([rows[-1]] * 400)["input_ids"] == 99).sum(dim=1)
    last_only = (masks_per_row == 1).float().mean().item()
    assert 0.4 < last_only < 0.65  # 0.5 plus the rare random row with a single mask
    with pytest.raises(ValueError, match="last_item_mask_probability"):
        SequentialCollator("cloze", max_length=50, mask_token_id=99, last_item_mask_probability=1.5)


def test_bert4rec_loss_comes_only_from_masked_positions():
    model = make_model("bert4rec").eval()  # eval: no dropout, so two forwards are comparable
    batch = train_batch(model)
    is_mask = batch["input_ids"] == model.config.mask_token_id
    with torch.no_grad():
        loss = model(**batch).loss
        # Labels at -100 (unmasked) positions set to real items: ignored.
        noisy = batch["labels"].clone()
        noisy[~is_mask & batch["attention_mask"].bool()] = 7
        torch.testing.assert_close(model(**{**batch, "labels": noisy}).loss, loss, rtol=0, atol=0)
        # The same loss by hand: cross-entropy over the masked positions only.
        hidden = model._hidden_states(batch["input_ids"], batch["attention_mask"])[is_mask]
        logits = hidden @ model.get_item_embeddings().T
        logits[:, model.config.special_ids] = float("-inf")
        torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, batch["labels"][is_mask]))
        # Changing the target at a masked position does change the loss.
        changed = batch["labels"].clone()
        row, col = is_mask.nonzero()[0].tolist()
        changed[row, col] = changed[row, col] % (VOCAB_SIZE - 2) + 1
        assert not torch.allclose(model(**{**batch, "labels": changed}).loss, loss)


# ----------------------------------------------------------------------------------------------------------------
# Real data: every family and every SASRec loss learns on ML-100K
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ml100k_train(ml100k_dir):
    from hf_rec.data import load_sequential_dataset

    splits, tokenizer = load_sequential_dataset("ml-100k", ml100k_dir)
    return splits, tokenizer


REAL_CASES = [("sasrec", {"loss_type": t}) for t in ("ce", "bce", "sampled_softmax", "gbce")] + [
    (family, {}) for family in FAMILIES if family not in ("sasrec", "llmrec")
]


@pytest.mark.parametrize("family, overrides", REAL_CASES, ids=[f"{f}-{o.get('loss_type', 'default')}" for f, o in REAL_CASES])
def test_real_data_loss_decreases_and_ranks_better_than_chance(family, overrides, ml100k_train):
    """60 steps (gBCE: 240) on ML-100K users 0-799: the loss falls by > 5%, and full-ranking validation of the other 143 users
    puts the target in the top 50 more than twice as often as random scores would (~3%)."""
    from hf_rec.data import SequentialCollator
    from hf_rec.evaluation import Evaluator

    splits, tokenizer = ml100k_train
    config_class, head_class = hf_rec.FAMILIES[family]
    torch.manual_seed(0)
    config = config_class(vocab_size=tokenizer.vocab_size, mask_token_id=tokenizer.mask_token_id, hidden_size=32,
                          max_position_embeddings=30, num_negatives=64, **overrides)  # fmt: skip
    model = head_class(config).train()
    collator = SequentialCollator(model.training_objective, max_length=30, mask_token_id=tokenizer.mask_token_id,
                                  mask_probability=0.3, seed=0)  # fmt: skip
    rows = [{"item_ids": ids} for ids in splits["train"]["item_ids"][:800]]
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    losses = []
    # gBCE scales the positive's gradient by beta / (1 + num_negatives): it needs more steps to move the ranking.
    for step in range(240 if overrides.get("loss_type") == "gbce" else 60):
        batch = collator(rows[(step * 100) % 800 : (step * 100) % 800 + 100])
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.95 * sum(losses[:10]) / 10, losses
    metrics = Evaluator(splits["validation"].select(range(800, 943)), ks=(50,), show_progress=False).evaluate(model)
    # Random scores put the target in the top 50 of ~1,600 unseen items ~3% of the time.
    assert metrics["hr@50"] > 0.06, metrics


def test_loading_a_checkpoint_of_another_type_or_a_truncated_one_fails_clearly(tmp_path):
    model = make_model("sasrec")
    model.save_pretrained(tmp_path / "sasrec")
    with pytest.raises(ValueError, match="holds a 'sasrec' checkpoint, not 'bert4rec'"):
        BERT4RecForSequentialRecommendation.from_pretrained(tmp_path / "sasrec")
    # Weights of another architecture under a matching config: missing weights are an error, not random init.
    other = make_model("gru4rec")
    other.save_pretrained(tmp_path / "mixed")
    (tmp_path / "mixed" / "config.json").write_text((tmp_path / "sasrec" / "config.json").read_text())
    with pytest.raises(ValueError, match="lacks .* weight"):
        AutoModelForSequentialRecommendation.from_pretrained(tmp_path / "mixed")
    weights = tmp_path / "sasrec" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match="cannot read the weights file"):
        AutoModelForSequentialRecommendation.from_pretrained(tmp_path / "sasrec")


@pytest.mark.parametrize("loss_type", ["ce", "bce", "sampled_softmax", "gbce"])
def test_items_outside_the_training_set_get_no_gradient(loss_type):
    """set_training_items: a held-out (cold) item is neither in the softmax nor drawn as a negative."""
    torch.manual_seed(0)
    model = make_model("sasrec", loss_type=loss_type, num_negatives=16).train()
    batch = train_batch(model)
    cold = [i for i in range(1, VOCAB_SIZE - 1) if i not in set(batch["input_ids"].flatten().tolist())
            and i not in set(batch["labels"].flatten().tolist())]  # fmt: skip
    assert cold, "the test batch uses every item"
    model.set_training_items([i for i in range(1, VOCAB_SIZE - 1) if i not in cold])
    for _ in range(3):  # several draws of negatives
        model.zero_grad()
        model(**batch).loss.backward()
        item_grad = model.get_input_embeddings().weight.grad
        assert item_grad[cold].abs().sum() == 0
    model.set_training_items(None)
    model.zero_grad()
    model(**batch).loss.backward()
    if loss_type == "ce":  # without the restriction every item is in the softmax
        assert model.get_input_embeddings().weight.grad[cold].abs().sum() > 0


@pytest.mark.parametrize("family", FAMILIES)
def test_score_temperature_scores_by_cosine_over_temperature_everywhere(family, tmp_path):
    """With score_temperature=τ, logits = cos(user, item) / τ, and the embeddings the Evaluator and recommend use
    give the same scores; the setting survives save -> load."""
    model = trained_like(make_model(family, score_temperature=0.05)).eval()
    input_ids, attention_mask = inputs_for(model)
    with torch.no_grad():
        logits = model(input_ids, attention_mask).logits
        raw_users = model._prediction_hidden_states(input_ids, attention_mask)[:, -1]
        expected = torch.nn.functional.cosine_similarity(raw_users[:, None], model._item_vectors()[None], dim=-1) / 0.05
        expected[:, model.config.special_ids] = float("-inf")
        torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
        assert logits[torch.isfinite(logits)].abs().max() <= 1 / 0.05 + 1e-3
        scores = model.get_user_embeddings(input_ids, attention_mask) @ model.get_item_embeddings().T
        finite = torch.isfinite(logits)
        torch.testing.assert_close(scores[finite], logits[finite], rtol=1e-4, atol=1e-4)
        top, _ = model.recommend(HISTORIES, k=3, exclude_seen=False)
        assert top.tolist() == logits.topk(3).indices.tolist()
    loss = model.train()(**train_batch(model)).loss
    assert torch.isfinite(loss)
    model.eval().save_pretrained(tmp_path)
    loaded = AutoModelForSequentialRecommendation.from_pretrained(tmp_path).eval()
    assert loaded.config.score_temperature == 0.05
    torch.testing.assert_close(loaded(input_ids, attention_mask).logits, logits, rtol=0, atol=0)


@pytest.mark.parametrize("value", [0, -0.1, "warm", True])
def test_score_temperature_must_be_positive(value):
    with pytest.raises(ValueError, match="score_temperature"):
        SASRecConfig(vocab_size=30, score_temperature=value)


def _loss_with_fixed_negatives(monkeypatch, loss_type, negatives, **config_values):
    """recommendation_loss on hand-made vectors with the negatives fixed (no sampling)."""
    import types

    import hf_rec.models.losses as losses

    monkeypatch.setattr(losses, "sample_negative_ids", lambda *a, **k: negatives)
    torch.manual_seed(0)
    hidden, table = torch.randn(3, 4), torch.randn(9, 4)  # 3 positions; items 1..7 (0 padding, 8 mask)
    labels = torch.tensor([1, 4, 6])
    config = types.SimpleNamespace(loss_type=loss_type, num_negatives=len(negatives), num_train_items=7,
                                   **config_values)  # fmt: skip
    return losses.recommendation_loss(hidden, labels, table, config), hidden, table, labels


def test_every_configurable_loss_has_one_function():
    from hf_rec.models.configuration_common import LOSS_TYPES
    from hf_rec.models.losses import LOSSES

    assert set(LOSSES) == set(LOSS_TYPES)


def test_gbce_loss_equals_the_papers_formula(monkeypatch):
    """gSASRec (Petrov & Macdonald, RecSys 2023): per position (-beta log sigmoid(s+) - sum log(1 - sigmoid(s-)))
    / (1 + k), beta = alpha (t (1 - 1/alpha) + 1/alpha), alpha = k / (num_items - 1); a negative equal to the
    positive is left out."""
    negatives = torch.tensor([2, 4, 7])
    loss, hidden, table, labels = _loss_with_fixed_negatives(monkeypatch, "gbce", negatives, gbce_t=0.75)
    k, alpha = 3, 3 / 6
    beta = alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha)
    expected = 0.0
    for h, label in zip(hidden.double(), labels):
        positive = -beta * torch.log(torch.sigmoid(h @ table[label].double()))
        negative = sum(-torch.log(1 - torch.sigmoid(h @ table[n].double())) for n in negatives if n != label)
        expected += (positive + negative) / (1 + k)
    assert loss.item() == pytest.approx(expected.item() / 3, rel=1e-5)


def test_sampled_softmax_logq_correction_equals_the_formula(monkeypatch):
    """Uniform negatives with logQ: the negatives' logits are lowered by log(k / num_items) (each is drawn with
    probability k / num_items per batch), then softmax cross-entropy with the positive first."""
    negatives = torch.tensor([2, 3, 5, 7])
    loss, hidden, table, labels = _loss_with_fixed_negatives(monkeypatch, "sampled_softmax", negatives,
                                                             logq_correction=True)  # fmt: skip
    expected = 0.0
    for h, label in zip(hidden.double(), labels):
        logits = [h @ table[label].double()] + [h @ table[n].double() - math.log(4 / 7) for n in negatives if n != label]
        expected += -torch.log_softmax(torch.stack(logits), 0)[0]
    assert loss.item() == pytest.approx(expected.item() / 3, rel=1e-5)


@pytest.mark.parametrize("config_class", [GRU4RecConfig, NARMConfig])
def test_recurrent_history_window_is_max_history_length(tmp_path, config_class):
    """A GRU has no position embeddings: its window is `max_history_length`; configs saved with the old name load."""
    config = config_class(vocab_size=10, max_history_length=7)
    saved = config.to_dict()
    assert config.max_position_embeddings == 7 and saved["max_history_length"] == 7
    assert "max_position_embeddings" not in saved
    old = {k: v for k, v in saved.items() if k != "max_history_length"} | {"max_position_embeddings": 9}
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert config_class.from_pretrained(tmp_path).max_history_length == 9
    model = AutoModelForSequentialRecommendation.from_config(config_class(vocab_size=10, max_history_length=3))
    assert model.histories_to_inputs([[1, 2, 3, 4, 5]])[0].tolist() == [[3, 4, 5]]
    with pytest.raises(ValueError, match="name the same window"):
        config_class(vocab_size=10, max_history_length=7, max_position_embeddings=8)
