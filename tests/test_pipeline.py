"""`pipeline("next-item-recommendation", ...)` on a local folder and on a repo pushed to the loopback Hub."""

from __future__ import annotations

import pytest
import torch
from transformers import pipeline

import hf_rec.pipelines  # noqa: F401  (registers the task)
from hf_rec.data import ItemTokenizer
from hf_rec.hub import load_recommender, push_to_hub
from hf_rec.pipelines import NextItemRecommendationPipeline
from hub_helpers import tiny_model_folder


@pytest.fixture(scope="module")
def folder():
    return tiny_model_folder("sasrec")


@pytest.fixture(scope="module")
def recommender(folder):
    return pipeline("next-item-recommendation", model=str(folder))


def reference(folder, history, k=10, exclude_seen=True):
    model, tok = load_recommender(folder)
    indices, scores = model.recommend([tok.encode(history)], k=k, exclude_seen=exclude_seen)
    return tok.decode(indices[0].tolist()), scores[0].tolist()


def assert_same_rows(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert [r["item_id"] for r in g] == [r["item_id"] for r in e]
        assert [r.get("text") for r in g] == [r.get("text") for r in e]
        assert [r["score"] for r in g] == pytest.approx([r["score"] for r in e], rel=1e-5, abs=1e-6)


def test_single_history_matches_recommend(recommender, folder):
    assert isinstance(recommender, NextItemRecommendationPipeline)
    out = recommender({"history": ["i3", "i7", "i1"]})
    ids, scores = reference(folder, ["i3", "i7", "i1"])
    assert [r["item_id"] for r in out] == ids and len(out) == 10
    assert [r["score"] for r in out] == pytest.approx(scores)
    assert not {"i3", "i7", "i1"} & {r["item_id"] for r in out}  # exclude_seen by default
    tok = recommender.item_tokenizer
    for r in out:  # texts where the tokenizer has them, no key otherwise
        text = tok.text(tok.convert_id_to_index(r["item_id"]))
        assert r.get("text") == text
    assert any("text" in r for r in out)


def test_batches_equal_single_calls(recommender):
    histories = [["i3", "i7", "i1"], ["i12"], ["i0", "i29"]]
    singles = [recommender({"history": h}, top_k=4) for h in histories]
    # Padding a batch changes float summation order: same items, scores equal to ~1e-6.
    assert_same_rows(recommender([{"history": h} for h in histories], top_k=4), singles)
    assert_same_rows(recommender(histories, top_k=4), singles)  # a bare list of lists is a batch


def test_options(recommender):
    out = recommender({"history": ["i3"]}, top_k=3, exclude_seen=False)
    assert len(out) == 3
    full = recommender({"history": ["i3"]}, top_k=len(recommender.item_tokenizer.item_ids), exclude_seen=False)
    assert "i3" in [r["item_id"] for r in full]
    with pytest.raises(ValueError, match="top_k"):
        recommender({"history": ["i3"]}, top_k=0)
    with pytest.raises(ValueError, match="unknown_items"):
        recommender({"history": ["i3"]}, unknown_items="skip")
    with pytest.raises(TypeError, match="batch"):
        recommender(["i3", "i4"])  # a flat list is not one history


def test_unknown_items_error_and_ignore(recommender):
    with pytest.raises(ValueError, match="'nope'.*'gone'|'gone'.*'nope'"):
        recommender({"history": ["i3", "nope", "gone"]})
    assert recommender({"history": ["i3", "nope"]}, unknown_items="ignore") == recommender({"history": ["i3"]})
    with pytest.raises(ValueError, match="no item the model knows"):
        recommender({"history": ["nope"]}, unknown_items="ignore")
    with pytest.raises(ValueError, match="empty"):
        recommender({"history": []})


def test_pipeline_from_pushed_repo(hub_server, hub_repo_id, folder, recommender):
    push_to_hub(folder, hub_repo_id)
    remote = pipeline("next-item-recommendation", model=hub_repo_id, top_k=5)
    assert remote.item_tokenizer == recommender.item_tokenizer
    history = {"history": ["i3", "i7"]}
    assert_same_rows([remote(history)], [recommender(history, top_k=5)])


def test_explicit_tokenizer_must_match_the_model(folder):
    with pytest.raises(ValueError, match="vocab_size"):
        pipeline("next-item-recommendation", model=str(folder), item_tokenizer=ItemTokenizer(["a", "b"]))


def test_scores_are_model_scores(recommender):
    out = recommender({"history": ["i3", "i7"]}, top_k=2)
    model, tok = recommender.model, recommender.item_tokenizer
    input_ids, mask = model.histories_to_inputs([tok.encode(["i3", "i7"])])
    with torch.no_grad():
        user = model.get_user_embeddings(input_ids, mask)
        scores = user @ model.get_item_embeddings().T
    for r in out:
        assert r["score"] == pytest.approx(scores[0, tok.convert_id_to_index(r["item_id"])].item(), rel=1e-5)


def test_timestamps_reach_a_time_aware_model(tmp_path):
    """A dict's "timestamps" go to `recommend` (item times, then the request time); with unknown_items="ignore" an
    unknown item's time is dropped with it; a batch gives them for every history or none."""
    from hf_rec import HSTUConfig, HSTUForSequentialRecommendation
    from hub_helpers import tiny_tokenizer

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    model = HSTUForSequentialRecommendation(HSTUConfig(
        vocab_size=tok.vocab_size, mask_token_id=tok.mask_token_id, hidden_size=16, max_position_embeddings=12,
        num_hidden_layers=1, num_attention_heads=2, use_time_bias=True)).eval()  # fmt: skip
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.3 * torch.randn_like(param))  # away from the zero-initialised time weights
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    recommender = pipeline("next-item-recommendation", model=str(tmp_path))
    history, times = ["i3", "i7", "i1"], [1_000_000_000, 1_000_086_400, 1_003_000_000, 1_010_000_000]
    out = recommender({"history": history, "timestamps": times}, top_k=5)
    indices, scores = model.recommend([tok.encode(history)], k=5, timestamps=[times])
    assert [r["item_id"] for r in out] == tok.decode(indices[0].tolist())
    assert [r["score"] for r in out] == pytest.approx(scores[0].tolist(), rel=1e-5)
    with_unknown = recommender({"history": ["i3", "nope", "i7", "i1"], "timestamps": [times[0], 7, *times[1:]]},
                               top_k=5, unknown_items="ignore")  # fmt: skip
    assert_same_rows([with_unknown], [out])
    assert [r["score"] for r in recommender({"history": history}, top_k=5)] != pytest.approx([r["score"] for r in out])
    with pytest.raises(ValueError, match="history 1 has no 'timestamps'"):
        recommender([{"history": history, "timestamps": times}, {"history": history}])
    with pytest.raises(ValueError, match="'timestamps' has 2 values for 3 items"):
        recommender({"history": history, "timestamps": times[:2]})
