"""HSTU-specific checks: one block against the formulas, the relative position / time bias against hand-computed values
and Meta's reference construction, the time buckets, timestamps, causality, left padding, gradients, save / load and
the run configs. The contract every family meets (shapes, recommend, trust_remote_code, ...) is in test_models.py."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from hf_rec import AutoModelForSequentialRecommendation, HSTUConfig, HSTUForSequentialRecommendation
from hf_rec.data.collators import SequentialCollator
from hf_rec.models.modeling_hstu import HSTULayer, HSTURelativeAttentionBias, hstu_pointwise_attention, hstu_time_buckets

VOCAB_SIZE = 30  # padding 0, items 1..28, mask token 29
MAX_LENGTH = 12
TINY = dict(vocab_size=VOCAB_SIZE, hidden_size=16, max_position_embeddings=MAX_LENGTH, num_hidden_layers=2,
            num_attention_heads=2)  # fmt: skip
HISTORIES = [[3, 7, 1, 9, 12, 4, 4, 20, 5, 8, 2], [5, 6, 7], [28, 1, 14, 2, 9, 11, 3], [10, 11]]
DAY = 86_400


def make_model(seed: int = 0, **overrides) -> HSTUForSequentialRecommendation:
    torch.manual_seed(seed)
    return HSTUForSequentialRecommendation(HSTUConfig(**{**TINY, **overrides}))


def trained_like(model, scale: float = 0.3):
    """Noise on every parameter, so that nothing is at its (zero / symmetric) initial value."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))
    return model


def timestamps_for(input_ids: torch.Tensor, seed: int = 0, extra: int = 0) -> torch.Tensor:
    """Increasing unix times (gaps of seconds to weeks) for each row, left-padded like `input_ids` with 0."""
    generator = torch.Generator().manual_seed(seed)
    batch_size, seq_len = input_ids.shape
    gaps = torch.randint(1, 14 * DAY, (batch_size, seq_len + extra), generator=generator)
    times = 1_000_000_000 + gaps.cumsum(dim=1)
    padding = torch.cat([input_ids == 0, torch.zeros(batch_size, extra, dtype=torch.bool)], dim=1)
    return times.masked_fill(padding, 0)


# ----------------------------------------------------------------------------------------------------------------
# The pointwise attention and one block, against the formulas
# ----------------------------------------------------------------------------------------------------------------


def test_pointwise_attention_by_hand():
    """One head, dimension 1, two positions, n = 2: A = SiLU(q k + b) / n (no softmax, no 1/sqrt(d)), causal."""
    silu = lambda x: x / (1 + math.exp(-x))  # noqa: E731
    query = torch.tensor([1.0, 2.0]).view(1, 1, 2, 1)
    key = torch.tensor([1.0, 0.5]).view(1, 1, 2, 1)
    value = torch.tensor([3.0, 4.0]).view(1, 1, 2, 1)
    bias = torch.tensor([[[0.5, 9.0], [-1.0, 0.25]]])  # [1, L, L]; the 9.0 is above the diagonal (masked)
    mask = torch.tensor([[1, 0], [1, 1]], dtype=torch.bool).view(1, 1, 2, 2)
    out = hstu_pointwise_attention(query, key, value, bias, mask, normalizer=2.0)
    # position 0 reads itself: silu(1*1 + 0.5) / 2 * 3; position 1 reads both: silu(2*1 - 1)/2*3 + silu(2*0.5 + 0.25)/2*4
    expected = torch.tensor([silu(1.5) / 2 * 3, silu(1.0) / 2 * 3 + silu(1.25) / 2 * 4]).view(1, 2, 1)
    torch.testing.assert_close(out, expected)


def reference_block(layer: HSTULayer, x: torch.Tensor, valid: list[bool], timestamps=None) -> torch.Tensor:
    """One HSTU block written out position by position from the paper's / reference's formulas (one row)."""
    seq_len, hidden = x.shape
    heads, dqk, dv = layer.num_heads, layer.attention_dim, layer.linear_dim
    n = layer.normalizer
    bias = layer.relative_bias(seq_len, None if timestamps is None else timestamps[None])[0]  # [L, L]
    w_uvqk = layer.uvqk_proj.weight  # [2*heads*dv + 2*heads*dqk, hidden]
    u, v, q, k = [], [], [], []
    for i in range(seq_len):
        xi = x[i]
        normed = (xi - xi.mean()) / torch.sqrt(xi.var(unbiased=False) + layer.layer_norm_eps)
        projected = F.silu(w_uvqk @ normed)
        u.append(projected[: heads * dv])
        v.append(projected[heads * dv : 2 * heads * dv])
        q.append(projected[2 * heads * dv : 2 * heads * dv + heads * dqk])
        k.append(projected[2 * heads * dv + heads * dqk :])
    out = []
    for i in range(seq_len):
        per_head = []
        for h in range(heads):
            acc = torch.zeros(dv)
            for j in range(i + 1):  # causal: keys at or before i ...
                if not valid[j]:  # ... that are items
                    continue
                a_ij = F.silu(q[i][h * dqk : (h + 1) * dqk] @ k[j][h * dqk : (h + 1) * dqk] + bias[i, j]) / n
                acc = acc + a_ij * v[j][h * dv : (h + 1) * dv]
            per_head.append(acc)
        attn = torch.cat(per_head)
        normed_attn = (attn - attn.mean()) / torch.sqrt(attn.var(unbiased=False) + layer.layer_norm_eps)
        out.append(x[i] + layer.o_proj.weight @ (u[i] * normed_attn) + layer.o_proj.bias)
    return torch.stack(out)


@pytest.mark.parametrize("use_time_bias", [False, True])
def test_one_block_matches_the_formulas(use_time_bias):
    torch.manual_seed(0)
    config = HSTUConfig(vocab_size=VOCAB_SIZE, hidden_size=6, max_position_embeddings=5, num_attention_heads=2,
                        attention_dim=2, linear_dim=3, use_time_bias=use_time_bias)  # fmt: skip
    layer = HSTULayer(config).eval()
    with torch.no_grad():
        for param in layer.parameters():
            param.copy_(torch.randn(param.shape))
    x = torch.randn(2, 4, 6)
    attention_mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])  # row 0 is left-padded
    timestamps = torch.tensor([[0, 100, 5_000, 90_000], [10, 20, 3_000, 3_000]]) if use_time_bias else None
    allowed = torch.ones(4, 4, dtype=torch.bool).tril()[None, None] & attention_mask.bool()[:, None, None, :]
    with torch.no_grad():
        out = layer(x, allowed, timestamps)
        for row in range(2):
            expected = reference_block(
                layer, x[row], attention_mask[row].bool().tolist(), None if timestamps is None else timestamps[row]
            )
            torch.testing.assert_close(out[row], expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------------------
# Relative position and time bias
# ----------------------------------------------------------------------------------------------------------------


def reference_position_bias(weight: torch.Tensor, n: int) -> torch.Tensor:
    """RelativePositionalBias.forward of generative_recommenders/research/modeling/sequential/hstu.py, verbatim."""
    t = F.pad(weight[: 2 * n - 1], [0, n]).repeat(n)
    t = t[..., :-n].reshape(1, n, 3 * n - 2)
    r = (2 * n - 1) // 2
    return t[..., r:-r]


def reference_time_and_position_bias(pos_w, ts_w, all_timestamps, num_buckets):
    """RelativeBucketedTimeAndPositionBasedBias.forward of the reference, verbatim (N = the full length)."""
    B, N = all_timestamps.shape
    t = F.pad(pos_w[: 2 * N - 1], [0, N]).repeat(N)
    t = t[..., :-N].reshape(1, N, 3 * N - 2)
    r = (2 * N - 1) // 2
    ext_timestamps = torch.cat([all_timestamps, all_timestamps[:, N - 1 : N]], dim=1)
    bucketed_timestamps = torch.clamp(
        (torch.log(torch.abs(ext_timestamps[:, 1:].unsqueeze(2) - ext_timestamps[:, :-1].unsqueeze(1)).clamp(min=1))
         / 0.301).long(),
        min=0,
        max=num_buckets,
    ).detach()  # fmt: skip
    rel_pos_bias = t[:, :, r:-r]
    rel_ts_bias = torch.index_select(ts_w, dim=0, index=bucketed_timestamps.view(-1)).view(B, N, N)
    return rel_pos_bias + rel_ts_bias


def test_relative_position_bias_for_three_positions():
    bias = HSTURelativeAttentionBias(HSTUConfig(vocab_size=VOCAB_SIZE, max_position_embeddings=3))
    with torch.no_grad():
        bias.position_weight.copy_(torch.tensor([10.0, 11.0, 12.0, 13.0, 14.0]))  # w[0..4], w[2] = distance 0
    # bias[i, j] = w[n - 1 + j - i]: the diagonal is w[2], one step back in time w[1], two steps w[0].
    expected = torch.tensor([[12.0, 13.0, 14.0], [11.0, 12.0, 13.0], [10.0, 11.0, 12.0]])
    torch.testing.assert_close(bias(3)[0], expected)
    torch.testing.assert_close(bias(2)[0], torch.tensor([[12.0, 13.0], [11.0, 12.0]]))  # shorter batch: same offsets
    torch.testing.assert_close(bias(3), reference_position_bias(bias.position_weight, 3))


@pytest.mark.parametrize("n", [2, 5, 8])  # the reference construction is empty for n = 1 (r = 0)
def test_position_bias_equals_the_reference_construction(n):
    bias = HSTURelativeAttentionBias(HSTUConfig(vocab_size=VOCAB_SIZE, max_position_embeddings=n))
    with torch.no_grad():
        bias.position_weight.copy_(torch.randn(2 * n - 1))
    torch.testing.assert_close(bias(n), reference_position_bias(bias.position_weight, n))


def test_time_and_position_bias_equals_the_reference():
    n = 6
    bias = HSTURelativeAttentionBias(HSTUConfig(vocab_size=VOCAB_SIZE, max_position_embeddings=n, use_time_bias=True))
    with torch.no_grad():
        bias.position_weight.copy_(torch.randn(2 * n - 1))
        bias.time_weight.copy_(torch.randn(129))
    timestamps = torch.tensor([[0, 1, 60, 3_600, 3_601, 10 * DAY], [5, 5, 5, 2 * DAY, 400 * DAY, 401 * DAY]])
    expected = reference_time_and_position_bias(bias.position_weight, bias.time_weight, timestamps, 128)
    torch.testing.assert_close(bias(n, timestamps), expected)


@pytest.mark.parametrize(
    "gap, bucket",
    [
        (0, 0), (1, 0), (-1, 0),  # |gap| < 2 s: ln(max(1, |gap|)) = 0
        (2, 2),  # ln 2 / 0.301 = 2.30
        (3, 3),  # 3.65
        (10, 7),  # 7.65
        (60, 13),  # one minute: 13.60
        (-60, 13),  # the sign is ignored
        (3_600, 27),  # one hour: 27.20
        (DAY, 37),  # one day: 37.76
        (365 * DAY, 57),  # one year: 57.36
        (2**62, 128),  # 142.8, clamped to num_buckets
    ],
)  # fmt: skip
def test_time_buckets_on_hand_picked_gaps(gap, bucket):
    assert hstu_time_buckets(torch.tensor([gap]), num_buckets=128).item() == bucket
    assert bucket == min(128, math.floor(math.log(max(1, abs(gap))) / 0.301))


def test_time_buckets_clamp_to_num_buckets():
    buckets = hstu_time_buckets(torch.tensor([0, 60, DAY, 365 * DAY]), num_buckets=20)
    assert buckets.tolist() == [0, 13, 20, 20]


def test_time_bias_measures_from_the_next_items_time():
    bias = HSTURelativeAttentionBias(HSTUConfig(vocab_size=VOCAB_SIZE, max_position_embeddings=3, use_time_bias=True))
    with torch.no_grad():
        bias.position_weight.zero_()
        bias.time_weight.copy_(torch.arange(129, dtype=torch.float))  # bias = the bucket itself
    # Query i reads t[i + 1] - t[j]; the last query has no next item and reuses the last time (the reference's rule).
    # t = [0, 10, 100]: row 0 gaps [10, 0, -90], rows 1 and 2 gaps [100, 90, 0].
    expected = torch.tensor([[7.0, 0.0, 14.0], [15.0, 14.0, 0.0], [15.0, 14.0, 0.0]])
    torch.testing.assert_close(bias(3, torch.tensor([[0, 10, 100]]))[0], expected)
    # An extra column is the next event's time: the last row then measures from 1000 (gaps 1000, 990, 900).
    expected[2] = torch.tensor([22.0, 22.0, 22.0])
    torch.testing.assert_close(bias(3, torch.tensor([[0, 10, 100, 1000]]))[0], expected)


# ----------------------------------------------------------------------------------------------------------------
# Timestamps in the model
# ----------------------------------------------------------------------------------------------------------------


def test_timestamps_change_outputs_only_with_use_time_bias():
    input_ids, attention_mask = make_model().histories_to_inputs(HISTORIES)
    first, second = timestamps_for(input_ids, seed=0), timestamps_for(input_ids, seed=1)

    off = trained_like(make_model(use_time_bias=False)).eval()
    assert all(layer.relative_bias.time_weight is None for layer in off.model.layers)
    with torch.no_grad():
        plain = off(input_ids, attention_mask).logits
        torch.testing.assert_close(off(input_ids, attention_mask, timestamps=first).logits, plain, rtol=0, atol=0)

    on = trained_like(make_model(use_time_bias=True)).eval()
    with torch.no_grad():
        without = on.get_user_embeddings(input_ids, attention_mask)
        with_first = on.get_user_embeddings(input_ids, attention_mask, timestamps=first)
        with_second = on.get_user_embeddings(input_ids, attention_mask, timestamps=second)
        assert not torch.allclose(with_first, without)
        assert not torch.allclose(with_first, with_second)
        # timestamps=None is the position bias alone: the same as zero time biases.
        for layer in on.model.layers:
            layer.relative_bias.time_weight.zero_()
        torch.testing.assert_close(on.get_user_embeddings(input_ids, attention_mask, timestamps=first), without)


def test_forward_logits_with_timestamps_match_user_embeddings():
    model = trained_like(make_model(use_time_bias=True)).eval()
    input_ids, attention_mask = model.histories_to_inputs(HISTORIES)
    timestamps = timestamps_for(input_ids)
    with torch.no_grad():
        logits = model(input_ids, attention_mask, timestamps=timestamps).logits
        users = model.get_user_embeddings(input_ids, attention_mask, timestamps=timestamps)
    items = slice(1, model.config.mask_token_id)
    torch.testing.assert_close(logits[:, items], (users @ model.get_item_embeddings().T)[:, items])


def test_extra_timestamp_column_moves_only_the_last_position():
    model = trained_like(make_model(use_time_bias=True)).eval()
    input_ids, attention_mask = model.histories_to_inputs(HISTORIES)
    timestamps = timestamps_for(input_ids, extra=1)
    later = timestamps.clone()
    later[:, -1] += 300 * DAY
    with torch.no_grad():
        before = model._hidden_states(input_ids, attention_mask, timestamps=timestamps)
        after = model._hidden_states(input_ids, attention_mask, timestamps=later)
        torch.testing.assert_close(after[:, :-1], before[:, :-1], rtol=0, atol=0)
        assert not torch.allclose(after[:, -1], before[:, -1])


def test_recommend_with_timestamps_equals_the_hand_built_inputs():
    """`recommend(..., timestamps=)`: the most recent items' times (truncated with the history), then the request time
    (or the last item's time when none is given), left-padded; a model without the time bias ignores them."""
    model = trained_like(make_model(use_time_bias=True)).eval()
    histories = [list(range(1, 16)), [5, 6, 7]]  # the first is longer than MAX_LENGTH = 12
    times = [[1_000_000_000 + 3_600 * i * i for i in range(16)], [2_000_000_000, 2_000_100_000, 2_000_200_000]]
    indices, scores = model.recommend(histories, k=5, timestamps=times)
    input_ids, attention_mask = model.histories_to_inputs(histories)
    expected = torch.zeros(2, MAX_LENGTH + 1, dtype=torch.long)
    expected[0] = torch.tensor(times[0][-13:])  # 12 items + the request time
    expected[1, -4:] = torch.tensor(times[1] + [times[1][-1]])  # no request time: the last item's time again
    assert torch.equal(model.timestamps_to_inputs(times, histories), expected)
    with torch.no_grad():
        users = model.get_user_embeddings(input_ids, attention_mask, timestamps=expected)
        by_hand = users @ model.get_item_embeddings().T
    for row, history in enumerate(histories):
        by_hand[row, history + model.config.special_ids] = float("-inf")
    torch.testing.assert_close(scores, by_hand.topk(5).values)
    later = [[t + 30 * DAY * (i == len(row) - 1) for i, t in enumerate(row)] for row in times]
    assert not torch.allclose(model.recommend(histories, k=5, timestamps=later)[1], scores)
    no_time = trained_like(make_model(use_time_bias=False)).eval()
    assert torch.equal(no_time.recommend(histories, k=5, timestamps=times)[0], no_time.recommend(histories, k=5)[0])
    with pytest.raises(ValueError, match="timestamps 1 has 2 values for a history of 3 items"):
        model.recommend(histories, timestamps=[times[0], times[1][:2]])
    with pytest.raises(ValueError, match="timestamps 0 holds 1.5"):
        model.recommend(histories[:1], timestamps=[[1.5] * 15])


def test_timestamps_of_the_wrong_shape_raise():
    model = make_model(use_time_bias=True)
    input_ids, attention_mask = model.histories_to_inputs(HISTORIES)
    with pytest.raises(ValueError, match="timestamps must have shape"):
        model(input_ids, attention_mask, timestamps=torch.zeros(4, input_ids.shape[1] + 2, dtype=torch.long))


# ----------------------------------------------------------------------------------------------------------------
# Causality, left padding, gradients, save / load
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_time_bias", [False, True])
def test_a_future_item_does_not_change_earlier_outputs(use_time_bias):
    model = trained_like(make_model(use_time_bias=use_time_bias)).eval()
    input_ids, attention_mask = model.histories_to_inputs([HISTORIES[0]])
    timestamps = timestamps_for(input_ids) if use_time_bias else None
    changed = input_ids.clone()
    changed[0, -3] = 27
    with torch.no_grad():
        before = model._hidden_states(input_ids, attention_mask, timestamps=timestamps)
        after = model._hidden_states(changed, attention_mask, timestamps=timestamps)
    torch.testing.assert_close(after[:, :-3], before[:, :-3], rtol=0, atol=0)
    assert not torch.allclose(after[:, -3:], before[:, -3:])
    if use_time_bias:
        # A timestamp is read one position early (query i knows when item i + 1 happens, as in the reference).
        later = timestamps.clone()
        later[0, -3:] += 30 * DAY
        with torch.no_grad():
            moved = model._hidden_states(input_ids, attention_mask, timestamps=later)
        torch.testing.assert_close(moved[:, :-4], before[:, :-4], rtol=0, atol=0)
        assert not torch.allclose(moved[:, -4], before[:, -4])


@pytest.mark.parametrize("use_time_bias", [False, True])
def test_left_padding_does_not_change_user_embeddings(use_time_bias):
    model = trained_like(make_model(use_time_bias=use_time_bias)).eval()
    input_ids, attention_mask = model.histories_to_inputs([HISTORIES[1]])
    timestamps = timestamps_for(input_ids) if use_time_bias else None
    with torch.no_grad():
        reference = model.get_user_embeddings(input_ids, attention_mask, timestamps=timestamps)
        for extra in (1, 4, MAX_LENGTH - len(HISTORIES[1])):
            padded_ids = torch.cat([torch.zeros(1, extra, dtype=torch.long), input_ids], dim=1)
            padded_mask = torch.cat([torch.zeros(1, extra, dtype=torch.long), attention_mask], dim=1)
            padded_times = None
            if use_time_bias:  # arbitrary values under the padding: never read by an item position
                padded_times = torch.cat([torch.randint(0, 10**9, (1, extra)), timestamps], dim=1)
            torch.testing.assert_close(
                model.get_user_embeddings(padded_ids, padded_mask, timestamps=padded_times), reference,
                atol=1e-5, rtol=0,
            )  # fmt: skip
        batch_ids, batch_mask = model.histories_to_inputs(HISTORIES)
        batch_times = None
        if use_time_bias:
            batch_times = torch.zeros_like(batch_ids)
            batch_times[1, -input_ids.shape[1] :] = timestamps[0]
        batched = model.get_user_embeddings(batch_ids, batch_mask, timestamps=batch_times)
        torch.testing.assert_close(batched[1:2], reference, atol=1e-5, rtol=0)


def training_batch(model, with_timestamps: bool) -> dict[str, torch.Tensor]:
    collator = SequentialCollator("causal", max_length=MAX_LENGTH, pad_token_id=0,
                                  mask_token_id=model.config.mask_token_id, seed=0)  # fmt: skip
    batch = collator([{"item_ids": h} for h in HISTORIES])
    if with_timestamps:
        batch["timestamps"] = timestamps_for(batch["input_ids"], extra=1)
    return batch


@pytest.mark.parametrize("use_time_bias", [False, True])
def test_gradients_reach_every_parameter(use_time_bias):
    model = make_model(use_time_bias=use_time_bias).train()
    loss = model(**training_batch(model, with_timestamps=use_time_bias)).loss
    assert torch.isfinite(loss)
    loss.backward()
    names = [name for name, _ in model.named_parameters()]
    assert any("time_weight" in name for name in names) == use_time_bias
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


@pytest.mark.parametrize("loss_type", ["ce", "sampled_softmax"])
def test_loss_falls_with_timestamps(loss_type):
    model = make_model(use_time_bias=True, loss_type=loss_type, num_negatives=8).train()
    batch = training_batch(model, with_timestamps=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.98))
    losses = []
    for _ in range(30):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_save_and_load_give_identical_outputs(tmp_path):
    model = trained_like(make_model(use_time_bias=True)).eval()  # the default cosine / 0.05 scoring
    input_ids, attention_mask = model.histories_to_inputs(HISTORIES)
    timestamps = timestamps_for(input_ids)
    with torch.no_grad():
        expected = model(input_ids, attention_mask, timestamps=timestamps).logits
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "hstu" and saved["use_time_bias"] is True and saved["score_temperature"] == 0.05
    for loader in (HSTUForSequentialRecommendation, AutoModelForSequentialRecommendation):
        loaded = loader.from_pretrained(tmp_path).eval()
        assert type(loaded) is HSTUForSequentialRecommendation
        assert loaded._item_vectors().data_ptr() == loaded.get_input_embeddings().weight.data_ptr()  # still tied
        with torch.no_grad():
            got = loaded(input_ids, attention_mask, timestamps=timestamps).logits
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


REMOTE_SCRIPT = """
import sys; sys.modules["hf_rec"] = None  # everything comes from the saved files
import json, torch
from transformers import AutoModel
spec = json.load(open(sys.argv[1]))
model = AutoModel.from_pretrained(spec["path"], trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(torch.tensor(spec["input_ids"]), torch.tensor(spec["attention_mask"]),
                   timestamps=torch.tensor(spec["timestamps"])).logits
json.dump({"class": type(model).__module__, "logits": logits.masked_fill(torch.isinf(logits), 0.0).tolist()},
          open(sys.argv[2], "w"))
"""


def test_trust_remote_code_with_timestamps_and_default_scoring(tmp_path):
    model = trained_like(make_model(use_time_bias=True)).eval()
    input_ids, attention_mask = model.histories_to_inputs(HISTORIES)
    timestamps = timestamps_for(input_ids)
    with torch.no_grad():
        expected = model(input_ids, attention_mask, timestamps=timestamps).logits
    model.save_pretrained(tmp_path / "model")
    assert {"modeling_hstu.py", "configuration_hstu.py", "modeling_common.py"} <= {
        p.name for p in (tmp_path / "model").iterdir()
    }
    spec = {"path": str(tmp_path / "model"), "input_ids": input_ids.tolist(),
            "attention_mask": attention_mask.tolist(), "timestamps": timestamps.tolist()}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "remote.py").write_text(textwrap.dedent(REMOTE_SCRIPT))
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "remote.py"), str(tmp_path / "spec.json"), str(tmp_path / "out.json")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["class"].startswith("transformers_modules.")
    torch.testing.assert_close(
        torch.tensor(result["logits"]), expected.masked_fill(torch.isinf(expected), 0.0), rtol=1e-5, atol=1e-5
    )


# ----------------------------------------------------------------------------------------------------------------
# Config and initialisation
# ----------------------------------------------------------------------------------------------------------------


def test_defaults_are_the_reference_ml1m_settings():
    config = HSTUConfig(vocab_size=VOCAB_SIZE, hidden_size=50)
    assert (config.num_hidden_layers, config.num_attention_heads, config.attention_dim, config.linear_dim) == (2, 1, 50, 50)
    assert (config.hidden_dropout_prob, config.linear_dropout_prob, config.layer_norm_eps) == (0.2, 0.2, 1e-6)
    assert (config.score_temperature, config.num_time_buckets, config.use_time_bias) == (0.05, 128, False)
    large = HSTUConfig(vocab_size=VOCAB_SIZE, hidden_size=50, num_hidden_layers=8, num_attention_heads=2)
    assert (large.attention_dim, large.linear_dim) == (25, 25)
    model = HSTUForSequentialRecommendation(HSTUConfig(vocab_size=VOCAB_SIZE, hidden_size=50, max_position_embeddings=7))
    layer = model.model.layers[0]
    assert layer.uvqk_proj.weight.shape == (4 * 50, 50) and layer.uvqk_proj.bias is None
    assert layer.relative_bias.position_weight.shape == (2 * 7 - 1,)
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in model.modules())  # un-affine: no LayerNorm parameters


def test_initialisation_follows_the_reference():
    model = HSTUForSequentialRecommendation(HSTUConfig(vocab_size=2000, hidden_size=50, max_position_embeddings=200))
    items = model.get_input_embeddings().weight
    assert items[0].abs().sum() == 0  # padding row
    assert items.abs().max() <= 0.04 + 1e-6 and 0.015 < items[1:].std() < 0.02  # N(0, 0.02) truncated at 2 std
    assert abs(model.model.embeddings.position_embeddings.weight.std() - math.sqrt(2 / 250)) < 0.01  # xavier normal
    layer = model.model.layers[0]
    assert abs(layer.uvqk_proj.weight.std() - 0.02) < 0.002
    assert layer.o_proj.weight.abs().max() <= math.sqrt(6 / 100)  # xavier uniform
    assert abs(layer.relative_bias.position_weight.std() - 0.02) < 0.004


@pytest.mark.parametrize(
    "kwargs, shown",
    [
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"num_attention_heads": 3}, "not divisible"),  # hidden_size 16
        ({"attention_dim": 0, "linear_dim": 4}, "attention_dim"),
        ({"linear_dim": 2.5, "attention_dim": 4}, "linear_dim"),
        ({"hidden_dropout_prob": 1.0}, "hidden_dropout_prob"),
        ({"linear_dropout_prob": -0.1}, "linear_dropout_prob"),
        ({"layer_norm_eps": 0}, "layer_norm_eps"),
        ({"use_time_bias": "yes"}, "use_time_bias"),
        ({"num_time_buckets": 0}, "num_time_buckets"),
        ({"score_temperature": -1.0}, "score_temperature"),
    ],
)
def test_bad_config_values_raise(kwargs, shown):
    with pytest.raises(ValueError, match=shown):
        HSTUConfig(vocab_size=VOCAB_SIZE, hidden_size=16, **kwargs)


def test_explicit_head_sizes_need_no_divisibility():
    config = HSTUConfig(vocab_size=VOCAB_SIZE, hidden_size=16, num_attention_heads=3, attention_dim=4, linear_dim=5)
    model = HSTUForSequentialRecommendation(config).eval()
    input_ids, attention_mask = model.histories_to_inputs(HISTORIES)
    assert model(input_ids, attention_mask).logits.shape == (len(HISTORIES), VOCAB_SIZE)


@pytest.mark.parametrize(
    "path, layers, heads, dim",
    [("configs/hstu-ml1m.yaml", 2, 1, 50), ("configs/hstu-large-ml1m.yaml", 8, 2, 25)],
)
def test_run_configs_load(path, layers, heads, dim):
    from pathlib import Path

    from hf_rec.training import load_run_config

    run = load_run_config(Path(__file__).resolve().parents[1] / path)
    assert run.family == "hstu"
    config = HSTUConfig(vocab_size=VOCAB_SIZE, **run.model_kwargs())
    assert (config.num_hidden_layers, config.num_attention_heads, config.attention_dim, config.linear_dim) == (
        layers, heads, dim, dim,
    )  # fmt: skip
    assert (config.hidden_size, config.max_position_embeddings, config.hidden_dropout_prob) == (50, 200, 0.2)
    assert run.training.learning_rate == 1e-3 and run.training.batch_size == 128 and run.training.num_epochs == 101
