"""Side information as inputs (hf_rec/models/features.py): context ids by hand, every family with features on
(gradients, outputs that move with each feature, save/load), features off = the plain model, tokenizer vocabularies
round trip, unknown values, the real datasets' features and a training run that reloads to its own metrics."""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timezone

import numpy as np
import pytest
import torch
from test_models import CASES, FAMILIES, HISTORIES, VOCAB_SIZE, make_model, trained_like

from hf_rec import AutoModelForSequentialRecommendation
from hf_rec.data import ItemTokenizer
from hf_rec.data import load_sequential_dataset
from hf_rec.data.collators import SequentialCollator
from hf_rec.models.features import context_feature_ids

FEATURES = dict(
    item_features={"genre": {"vocab_size": 6, "max_values": 3}, "decade": {"vocab_size": 4, "max_values": 1}},
    user_features={"gender": {"vocab_size": 3}, "age": {"vocab_size": 5}},  # columns: age, gender (sorted)
    context_features=["hour", "weekday", "gap"],
    interaction_features={"rating": {"vocab_size": 6}, "device": {"vocab_size": 3}},  # columns: device, rating
    item_features_in_scores=True,
)
USERS = torch.tensor([[1, 2], [4, 1], [0, 0], [2, 2]])  # one row per history of HISTORIES: (age, gender) value ids
TIMES = [[1_700_000_000 + 5_000 * j * (row + 1) for j in range(len(h))] for row, h in enumerate(HISTORIES)]
# per history item: (device, rating) value ids
INTERACTIONS = [[[(row + j) % 3, (row * 7 + j) % 6] for j in range(len(h))] for row, h in enumerate(HISTORIES)]


def featured_model(family: str, seed: int = 0):
    model = make_model(family, seed=seed, **FEATURES)
    generator = torch.Generator().manual_seed(seed)
    for name, spec in FEATURES["item_features"].items():
        ids = torch.randint(0, spec["vocab_size"], (VOCAB_SIZE, spec["max_values"]), generator=generator)
        ids[model.config.special_ids] = 0
        model.features.set_item_feature_ids(name, ids)
    return trained_like(model)


def user_embeddings(model, users=USERS, times=TIMES, histories=HISTORIES, interactions=INTERACTIONS):
    model.eval()
    input_ids, attention_mask = model.histories_to_inputs(histories)
    inputs = {"user_features": users}
    if times is not None:
        inputs["timestamps"] = model.timestamps_to_inputs(times, histories)
    if interactions is not None and model.reads_interaction_features:
        inputs["interaction_features"] = model.interaction_features_to_inputs(interactions, histories)
    with torch.no_grad():
        return model.get_user_embeddings(input_ids, attention_mask, **inputs)


def test_context_ids_by_hand():
    monday = int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp())  # 00:00 UTC on a Monday
    # causal layout [B, L + 1]: position j reads the time of what it predicts (j + 1) and the gap from time j
    times = torch.tensor([[0, monday, monday + 3600 * 13 + 5, monday + 86400 * 5 + 3600 * 23]])
    ids = context_feature_ids(times, seq_len=3)
    assert ids["hour"].tolist() == [[1, 14, 24]]  # 0 h, 13 h, 23 h (+1: id 0 is unknown)
    assert ids["weekday"].tolist() == [[1, 1, 6]]  # Monday, Monday, Saturday (Monday = 0, +1)
    # gap buckets: unknown (no earlier time), floor(log2(46805 + 1)) = 15, floor(log2(82795 + 79200 + 1)) ... by hand:
    gap2 = (monday + 86400 * 5 + 3600 * 23) - (monday + 3600 * 13 + 5)
    assert ids["gap"].tolist() == [[0, int(np.floor(np.log2(3600 * 13 + 5 + 1))) + 1, int(np.floor(np.log2(gap2 + 1))) + 1]]
    assert ids["gap"][0, 1].item() == 16  # 46805 s: 2**15 <= 46806 < 2**16
    # aligned layout [B, L] (cloze): its own time and the gap from the previous one; unknown times (<= 0) give 0
    aligned = context_feature_ids(torch.tensor([[monday, -1, monday + 1]]), seq_len=3)
    assert aligned["hour"].tolist() == [[1, 0, 1]] and aligned["gap"].tolist() == [[0, 0, 0]]
    with pytest.raises(ValueError, match="columns"):
        context_feature_ids(torch.zeros(1, 2, dtype=torch.long), seq_len=3)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradients_reach_every_feature_table(family):
    model = featured_model(family).train()
    collator = SequentialCollator(model.training_objective, max_length=model.config.max_position_embeddings,
                                  mask_token_id=model.config.mask_token_id, mask_probability=0.5, seed=0)  # fmt: skip
    batch = collator([{"item_ids": h, "timestamps": t, "interaction_features": f}
                      for h, t, f in zip(HISTORIES, TIMES, INTERACTIONS)])  # fmt: skip
    model(**batch, user_features=USERS).loss.backward()
    tables = dict(model.features.named_parameters())
    assert sorted(tables) == sorted(
        [f"item_tables.{n}.weight" for n in ("genre", "decade")] + [f"user_tables.{n}.weight" for n in ("age", "gender")]
        + [f"context_tables.{n}.weight" for n in ("hour", "weekday", "gap")]
        + [f"interaction_tables.{n}.weight" for n in ("rating", "device")]
    )
    for name, param in tables.items():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
        assert param.grad[0].abs().sum() == 0, f"{name}: the 'unknown' row must get no gradient"


@pytest.mark.parametrize("family", FAMILIES)
def test_each_feature_moves_the_outputs_and_only_when_on(family):
    model = featured_model(family)
    base = user_embeddings(model)
    changed = {
        "user features": user_embeddings(model, users=USERS.flip(0)),
        "timestamps": user_embeddings(model, times=[[t + 7 * 3600 + 1234 * j for j, t in enumerate(row)] for row in TIMES]),
        "interaction features": user_embeddings(model, interactions=[[[(d + 1) % 3, (r + 2) % 6] for d, r in row]
                                                                    for row in INTERACTIONS]),  # fmt: skip
    }
    shuffled = model.features.item_feature_ids("genre")[torch.randperm(VOCAB_SIZE, generator=torch.Generator().manual_seed(0))]
    model.features.set_item_feature_ids("genre", shuffled)
    changed["item features"] = user_embeddings(model)
    for what, out in changed.items():
        assert (out - base).abs().max() > 1e-4, f"{what} did not change the user embeddings"
    # the same model without features reads neither user features nor timestamps: they change nothing
    plain = trained_like(make_model(family))
    a = user_embeddings(plain, users=None, times=TIMES)
    b = user_embeddings(plain, users=USERS, times=[[t + 999 for t in row] for row in TIMES])
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_features_off_is_the_plain_model(family):
    """A config without features builds no feature module: same weights, same outputs, same checkpoint keys, so
    models saved before features existed load unchanged. A featured model given the plain one's weights and zero
    feature tables gives the plain model's outputs exactly (the features add nothing else)."""
    plain = trained_like(make_model(family)).eval()
    assert "features" not in dict(plain.named_children()) and not any(k.startswith("features.") for k in plain.state_dict())
    featured = make_model(family, seed=1, **FEATURES).eval()
    missing, unexpected = featured.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("features.") for k in missing)
    with torch.no_grad():
        for param in featured.features.parameters():
            param.zero_()
    input_ids, attention_mask = plain.histories_to_inputs(HISTORIES)
    expected = plain(input_ids, attention_mask).logits
    got = featured(input_ids, attention_mask, user_features=USERS, timestamps=plain.timestamps_to_inputs(TIMES, HISTORIES),
                   interaction_features=featured.interaction_features_to_inputs(INTERACTIONS, HISTORIES)).logits  # fmt: skip
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_keeps_item_features_and_outputs(family, tmp_path):
    model = featured_model(family)
    expected = user_embeddings(model)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequentialRecommendation.from_pretrained(tmp_path)
    assert (tmp_path / "features.py").is_file()
    torch.testing.assert_close(loaded.features.item_feature_ids("genre"), model.features.item_feature_ids("genre"))
    torch.testing.assert_close(user_embeddings(loaded), expected, rtol=0, atol=0)
    indices, _ = loaded.recommend(HISTORIES, k=5, timestamps=TIMES, user_features=USERS.tolist(),
                                  interaction_features=INTERACTIONS)  # fmt: skip
    again, scores = model.recommend(HISTORIES, k=5, timestamps=TIMES, user_features=USERS.tolist(),
                                    interaction_features=INTERACTIONS)  # fmt: skip
    assert indices.tolist() == again.tolist()
    other, _ = model.recommend(HISTORIES, k=5, timestamps=TIMES, user_features=USERS.flip(0).tolist(),
                               interaction_features=INTERACTIONS)  # fmt: skip
    assert other.tolist() != again.tolist()
    _, without = model.recommend(HISTORIES, k=5, timestamps=TIMES, user_features=USERS.tolist())
    assert (without - scores).abs().max() > 1e-4  # the interaction features were read


def test_interaction_features_are_hidden_with_a_masked_item():
    """A mask token's (BERT4Rec's hidden item's) interaction features are not read: they would reveal the interaction
    being predicted; the collator carries each input item's features, the causal window without its last item's."""
    model = featured_model("bert4rec").eval()
    mask = model.config.mask_token_id
    input_ids = torch.tensor([[0, 3, mask, 5], [2, mask, 4, mask]])
    attention_mask = (input_ids != 0).long()
    a = model.features(input_ids, attention_mask, interaction_features=torch.ones(2, 4, 2, dtype=torch.long))
    b = model.features(input_ids, attention_mask, interaction_features=torch.full((2, 4, 2), 2, dtype=torch.long))
    hidden = (input_ids == mask) | (input_ids == 0)
    torch.testing.assert_close(a[hidden], b[hidden], rtol=0, atol=0)
    assert (a[~hidden] - b[~hidden]).abs().amax(-1).min() > 0
    causal = SequentialCollator("causal", max_length=3)
    batch = causal([{"item_ids": [7, 8, 9, 10, 11], "interaction_features": [[1, 1], [1, 2], [1, 3], [1, 4], [1, 5]]},
                    {"item_ids": [7, 8], "interaction_features": [[2, 1], [2, 2]]}])  # fmt: skip
    assert batch["input_ids"].tolist() == [[8, 9, 10], [0, 0, 7]]
    assert batch["interaction_features"].tolist() == [[[1, 2], [1, 3], [1, 4]], [[0, 0], [0, 0], [2, 1]]]


def test_bad_feature_inputs_are_refused():
    model = featured_model("sasrec")
    with pytest.raises(ValueError, match="user_features column 1 .'gender'. holds value ids outside"):
        user_embeddings(model, users=torch.tensor([[1, 3]] * len(HISTORIES)))
    with pytest.raises(ValueError, match="shape"):
        user_embeddings(model, users=torch.tensor([[1]] * len(HISTORIES)))
    with pytest.raises(ValueError, match="genre"):
        model.features.set_item_feature_ids("genre", torch.full((VOCAB_SIZE, 3), 6))
    with pytest.raises(ValueError, match="interaction_features column 1 .'rating'. holds value ids outside"):
        user_embeddings(model, interactions=[[[0, 6]] * len(h) for h in HISTORIES])
    with pytest.raises(ValueError, match="interaction_features 0: each item needs 2 value ids .device, rating."):
        user_embeddings(model, interactions=[[[1]] * len(h) for h in HISTORIES])
    with pytest.raises(ValueError, match="interaction_features 1 has 2 rows for a history of 3 items"):
        model.recommend(HISTORIES, interaction_features=[[[1, 1]] * len(h) for h in HISTORIES[:1]] + [[[1, 1]] * 2] * 3)
    for bad in ({"genre": {"vocab_size": 1, "max_values": 1}}, {"genre": {"vocab_size": 4}}, ["genre"]):
        with pytest.raises(ValueError, match="item_features"):
            CASES["sasrec"][0](vocab_size=VOCAB_SIZE, item_features=bad)
    with pytest.raises(ValueError, match="context_features"):
        CASES["sasrec"][0](vocab_size=VOCAB_SIZE, context_features=["month"])


def test_tokenizer_features_round_trip_and_unknown_values(tmp_path):
    tok = ItemTokenizer(
        ["a", "b", "c"],
        item_features={"genre": {"a": ["Drama", "Comedy"], "c": ["Drama"]}, "decade": [["1990s"], [], ["1980s"]]},
        user_feature_vocabularies={"gender": ["F", "M"], "age": ["1", "18", "25"]},
    )
    assert tok.feature_vocabulary("item", "genre") == ["Comedy", "Drama"]  # sorted; id = position + 1
    assert tok.item_feature_ids("genre").tolist() == [[0, 0], [2, 1], [0, 0], [2, 0], [0, 0]]  # pad, a, b, c, mask
    assert tok.feature_config() == {
        "item_features": {"decade": {"vocab_size": 3, "max_values": 1}, "genre": {"vocab_size": 3, "max_values": 2}},
        "user_features": {"age": {"vocab_size": 4}, "gender": {"vocab_size": 3}},
    }
    assert tok.user_feature_names == ["age", "gender"]
    assert tok.encode_user_features({"gender": "M", "age": "25"}) == [3, 2]
    assert tok.encode_user_features({"gender": "F"}) == [0, 1]  # a feature not given is unknown
    with pytest.warns(UserWarning, match="'X' was not seen"):
        assert tok.encode_user_features({"gender": "X", "age": "18"}) == [2, 0]
    with pytest.raises(ValueError, match="unknown user feature"):
        tok.encode_user_features({"zip": "55455"})
    tok.save_pretrained(tmp_path)
    loaded = ItemTokenizer.from_pretrained(tmp_path)
    assert loaded == tok and loaded.item_feature_ids("genre").tolist() == tok.item_feature_ids("genre").tolist()
    data = json.loads((tmp_path / "item_tokenizer.json").read_text())
    data["item_features"]["genre"]["values"][0] = [7]
    (tmp_path / "item_tokenizer.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"item_features\['genre'\]\['values'\]\[0\]"):
        ItemTokenizer.from_pretrained(tmp_path)
    plain = ItemTokenizer(["a"])  # without features the file is that of earlier versions
    assert "item_features" not in plain.to_dict() and "user_features" not in plain.to_dict()


def test_ml1m_features_match_the_files(ml1m_dir):
    splits, tok = load_sequential_dataset("ml-1m", ml1m_dir, item_features=True, user_features=True)
    # users.dat: 4,331 men and 1,709 women, every one of the 6,040 users in the data
    gender = np.asarray(splits["test"]["user_features"])[:, tok.user_feature_names.index("gender")]
    vocab = tok.feature_vocabulary("user", "gender")
    assert vocab == ["F", "M"] and np.bincount(gender).tolist() == [0, 1709, 4331]
    # movies.dat lists Drama for 1,603 of its 3,883 films; 1,493 of them are among the 3,706 rated ones (counted
    # with pandas from ratings_seq.tsv.gz and movies.dat)
    genres = tok.item_feature_ids("genre")
    drama = tok.feature_vocabulary("item", "genre").index("Drama") + 1
    assert tok.num_items == 3706 and len(tok.feature_vocabulary("item", "genre")) == 18
    assert int((genres == drama).any(axis=1).sum()) == 1493
    toy_story = tok.convert_id_to_index("1")  # Toy Story (1995): Animation|Children's|Comedy
    names = tok.feature_vocabulary("item", "genre")
    assert sorted(names[v - 1] for v in genres[toy_story] if v) == ["Animation", "Children's", "Comedy"]
    assert tok.feature_vocabulary("item", "decade")[tok.item_feature_ids("decade")[toy_story][0] - 1] == "1990s"


def test_ml100k_ratings_as_interaction_features_line_up_with_u_data(ml100k_dir):
    """`interaction_features=True` on ML-100K: each history item's rating from u.data, in the history's order
    (timestamp, ties in file order); the test row's history is all but the last item, the validation one all but two."""
    import pandas as pd

    splits, tok = load_sequential_dataset("ml-100k", ml100k_dir, interaction_features=True)
    assert tok.interaction_feature_names == ["rating"] and tok.feature_vocabulary("interaction", "rating") == list("12345")
    data = pd.read_csv(ml100k_dir / "u.data", sep="\t", names=["user", "item", "rating", "time"])
    data["row"] = range(len(data))
    for split, cut in (("test", 1), ("validation", 2)):
        for row in (0, 500, 942):
            entry = splits[split][row]
            mine = data[data.user == int(entry["user_id"])].sort_values(["time", "row"], kind="stable")
            expected = mine.iloc[:-cut]
            assert tok.decode(entry["item_ids"]) == [str(i) for i in expected["item"]]
            assert [r[0] for r in entry["interaction_features"]] == expected["rating"].tolist()  # value id r = rating r
    counts = np.bincount(np.concatenate([np.asarray(f).reshape(-1) for f in splits["test"]["interaction_features"]]))
    # every interaction but each user's last (the test target): u.data's ratings counted with pandas
    histories = data.sort_values(["user", "time", "row"], kind="stable").groupby("user").head(-1)
    assert counts[0] == 0 and counts[1:].tolist() == histories["rating"].value_counts().sort_index().tolist()
    assert counts.sum() == 100_000 - 943
    with pytest.raises(ValueError, match="dataset 'amazon-beauty' has no per-interaction features"):
        load_sequential_dataset("amazon-beauty", ml100k_dir, interaction_features=True)


def test_interaction_feature_columns_of_a_file(tmp_path):
    """A file's `interaction_feature_columns` (categorical, or numeric with `numeric_feature_buckets`): one value per
    line, vocabularies saved with the tokenizer; the pipeline encodes raw values per history item."""
    path = tmp_path / "interactions.csv"
    path.write_text(
        "user_id,item_id,timestamp,device,seconds\n"
        "u1,a,1,web,10\nu1,b,2,app,20\nu1,c,3,,30\nu1,d,4,app,40\n"
        "u2,a,4,tv,50\nu2,c,5,web,\nu2,b,6,web,70\n"
    )
    options = dict(interaction_features=True, interaction_feature_columns=["device", "seconds"],
                   numeric_feature_buckets={"seconds": 2})  # fmt: skip
    splits, tok = load_sequential_dataset(path, **options)
    assert tok.interaction_feature_names == ["device", "seconds"]
    assert tok.feature_vocabulary("interaction", "device") == ["app", "tv", "web"]
    assert tok.feature_vocabulary("interaction", "seconds") == ["< 35", ">= 35"]  # the median of 10, 20, 30, 40, 50, 70
    test = dict(zip(splits["test"]["user_id"], splits["test"]["interaction_features"]))
    assert test == {"u1": [[3, 1], [1, 1], [0, 1]], "u2": [[2, 2], [3, 0]]}
    tok.save_pretrained(tmp_path / "tok")
    loaded = ItemTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.to_dict() == tok.to_dict()
    assert loaded.feature_config()["interaction_features"] == {"device": {"vocab_size": 4}, "seconds": {"vocab_size": 3}}
    with pytest.warns(UserWarning, match="interaction feature 'device': value 'fridge' was not seen"):
        assert loaded.encode_interaction_features([{"device": "app", "seconds": 45}, {"device": "fridge"}]) == [[1, 2], [0, 0]]
    with pytest.raises(ValueError, match=r"unknown interaction feature\(s\) \['os'\]"):
        loaded.encode_interaction_features([{"os": "linux"}])
    with pytest.raises(ValueError, match="interaction_feature_columns=.'device'. is given but interaction_features is not True"):
        load_sequential_dataset(path, interaction_feature_columns=["device"])


def test_scientific_item_features(scientific_dir):
    _, tok = load_sequential_dataset("amazon-scientific", scientific_dir, item_features=True)
    brands = tok.feature_vocabulary("item", "brand")
    first = tok.convert_id_to_index("B0000223SI")  # "... Sanding Roll. Industrial & Scientific ... Sanding Rolls. PORTER-CABLE."
    assert brands[tok.item_feature_ids("brand")[first][0] - 1] == "PORTER-CABLE"
    assert tok.feature_vocabulary("item", "category")[tok.item_feature_ids("category")[first][0] - 1].endswith("Sanding Rolls")
    with pytest.raises(ValueError, match="no user features"):
        load_sequential_dataset("amazon-scientific", scientific_dir, user_features=True)


def test_training_with_every_feature_reloads_to_its_metrics(ml100k_dir, tmp_path):
    """A short ML-100K run with item, user, context and interaction (rating) features: the saved folder holds the
    feature buffers and vocabularies, and re-evaluates to the run's own test NDCG@10."""
    from hf_rec.evaluation import Evaluator
    from hf_rec.training import RunConfig, train

    run = RunConfig.from_dict({
        "model": {"family": "sasrec", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 1,
                  "max_position_embeddings": 20, "context_features": ["hour", "weekday", "gap"],
                  "item_features_in_scores": True},
        "data": {"name": "ml-100k", "data_dir": str(ml100k_dir), "timestamps": True, "item_features": True,
                 "user_features": True, "interaction_features": True},
        "training": {"num_epochs": 1, "batch_size": 256, "seed": 0},
        "evaluation": {"ks": [10]},
    })  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(run, tmp_path / "run")
    folder = tmp_path / "run"
    model = AutoModelForSequentialRecommendation.from_pretrained(folder)
    tok = ItemTokenizer.from_pretrained(folder)
    assert model.config.user_features == tok.feature_config()["user_features"]
    assert model.features.item_feature_ids("genre").tolist() == tok.item_feature_ids("genre").tolist()
    assert model.config.interaction_features == {"rating": {"vocab_size": 6}}
    splits, _ = load_sequential_dataset("ml-100k", ml100k_dir, timestamps=True, item_features=True, user_features=True,
                                        interaction_features=True)  # fmt: skip
    metrics = Evaluator(splits["test"], ks=(10,), show_progress=False).evaluate(model)
    assert metrics["ndcg@10"] == pytest.approx(result["test"]["ndcg@10"], abs=1e-6)
    unrated = Evaluator(splits["test"].remove_columns("interaction_features"), ks=(10,), show_progress=False)
    assert unrated.evaluate(model)["ndcg@10"] != pytest.approx(metrics["ndcg@10"], abs=1e-6)  # the ratings are read
    card = (folder / "README.md").read_text()
    assert ("Side information read by the model: item features decade (8 values), genre (19 values), also in the "
            "scored item vectors; user features age (7 values), gender (2 values), occupation (21 values); context "
            "hour, weekday, gap from each interaction's time (0 = unknown); interaction features rating (5 values) of "
            "each history item") in card  # fmt: skip
    assert "new items can be added by their item features" in " ".join(card.split())


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_export_takes_the_feature_inputs(family, tmp_path):
    pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install 'hf-rec[export]'")
    from hf_rec.serving.export import export_onnx

    config = export_onnx(featured_model(family), tmp_path, check_users=32, k=5)
    assert config["inputs"] == ["input_ids", "attention_mask", "timestamps", "user_features", "interaction_features"]
    assert config["check"]["same_top_k"] == 32 and config["check"]["max_abs_user_vector_diff"] < 1e-4


def test_featured_models_load_with_trust_remote_code_without_hf_rec(tmp_path):
    """The feature module and the item-feature buffers travel with the folder: AutoModel loads every family in a
    fresh interpreter where `import hf_rec` fails, and gives the in-process logits and recommendations."""
    import os
    import subprocess
    import sys
    import textwrap

    from test_models import REMOTE_SCRIPT

    spec, expected = {}, {}
    for family in FAMILIES:
        model = featured_model(family).eval()
        model.save_pretrained(tmp_path / family)
        input_ids, attention_mask = model.histories_to_inputs(HISTORIES)
        with torch.no_grad():
            logits = model(input_ids, attention_mask).logits
        spec[family] = {"path": str(tmp_path / family), "input_ids": input_ids.tolist(),
                        "attention_mask": attention_mask.tolist(), "histories": HISTORIES}  # fmt: skip
        expected[family] = (logits.masked_fill(torch.isinf(logits), 0.0), model.recommend(HISTORIES, k=5)[0])
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "remote.py").write_text(textwrap.dedent(REMOTE_SCRIPT))
    proc = subprocess.run([sys.executable, str(tmp_path / "remote.py"), str(tmp_path / "spec.json"),
                           str(tmp_path / "out.json")], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "out.json").read_text())
    for family in FAMILIES:
        logits, recommended = expected[family]
        torch.testing.assert_close(torch.tensor(result[family]["logits"]), logits, rtol=1e-5, atol=1e-6)
        assert result[family]["recommend"] == recommended.tolist()


def featured_folder(tmp_path):
    """A SASRec folder with features and its tokenizer: items "i1".."i28", user features age and gender, interaction
    features device and rating."""
    model = featured_model("sasrec")
    tok = ItemTokenizer([f"i{n}" for n in range(1, 29)],
                        user_feature_vocabularies={"age": ["1", "18", "25", "35"], "gender": ["F", "M"]},
                        interaction_feature_vocabularies={"device": ["app", "web"], "rating": list("12345")})  # fmt: skip
    assert tok.vocab_size == VOCAB_SIZE
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return model.eval(), tok


def test_pipeline_and_rest_service_take_user_and_interaction_features(tmp_path):
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'hf-rec[serve]'")
    from fastapi.testclient import TestClient

    from hf_rec.pipelines import NextItemRecommendationPipeline
    from hf_rec.serving import create_app

    model, tok = featured_folder(tmp_path)
    history = ["i3", "i7", "i1", "i9"]
    recommender = NextItemRecommendationPipeline(model=model, item_tokenizer=tok)
    new_user = recommender({"history": history, "user_features": {"age": "25", "gender": "F"}}, top_k=5)
    unrated = [[[0, 0]] * len(history)]  # no interaction features given: each is unknown (value id 0)
    want, _ = model.recommend([tok.encode(history)], k=5, user_features=[[3, 1]], interaction_features=unrated)
    assert [r["item_id"] for r in new_user] == tok.decode(want[0])
    unknown, _ = model.recommend([tok.encode(history)], k=5, user_features=[[0, 0]], interaction_features=unrated)
    assert [r["item_id"] for r in recommender({"history": history}, top_k=5)] == tok.decode(unknown[0])
    with pytest.warns(UserWarning, match="not seen in training"):
        recommender({"history": history, "user_features": {"age": "99"}}, top_k=5)
    with pytest.raises(ValueError, match="unknown user feature"):
        recommender({"history": history, "user_features": {"zip": "55455"}}, top_k=5)
    # per history item; an unknown item is dropped with its interaction features
    rated = [{"device": "web", "rating": 5}, {"rating": "1"}, {}, {"device": "app", "rating": 4}]
    want_rated, _ = model.recommend([tok.encode(history)], k=5, user_features=[[0, 0]],
                                    interaction_features=[[[2, 5], [0, 1], [0, 0], [1, 4]]])  # fmt: skip
    got = recommender({"history": history + ["nope"], "interaction_features": rated + [{"rating": 3}]}, top_k=5,
                      unknown_items="ignore")  # fmt: skip
    assert [r["item_id"] for r in got] == tok.decode(want_rated[0])
    with pytest.raises(ValueError, match="'interaction_features' has 1 entries for 4 items"):
        recommender({"history": history, "interaction_features": rated[:1]}, top_k=5)

    client = TestClient(create_app(str(tmp_path)))
    health = client.get("/health").json()
    assert health["user_features"] == ["age", "gender"] and health["interaction_features"] == ["device", "rating"]
    body = {"users": [{"history": history, "user_features": {"age": "25", "gender": "F"}}], "k": 5}
    response = client.post("/recommend", json=body)
    assert response.status_code == 200
    assert [r["item_id"] for r in response.json()["recommendations"][0]] == tok.decode(want[0])
    bad = client.post("/recommend", json={"users": [{"history": history, "user_features": {"zip": "1"}}], "k": 5})
    assert bad.status_code == 422 and "unknown user feature" in bad.json()["detail"]
    body = {"users": [{"history": history, "interaction_features": rated}], "k": 5}
    response = client.post("/recommend", json=body)
    assert [r["item_id"] for r in response.json()["recommendations"][0]] == tok.decode(want_rated[0])


def test_cli_recommend_takes_user_features(tmp_path, capsys):
    from hf_rec.cli import main

    model, tok = featured_folder(tmp_path)
    history = ["i3", "i7", "i1", "i9"]
    assert main(["recommend", "--model", str(tmp_path), "--history", ",".join(history), "--k", "5", "--json",
                 "--user-feature", "age=25", "--user-feature", "gender=F"]) == 0  # fmt: skip
    got = [row["item_id"] for row in json.loads(capsys.readouterr().out)]
    want, _ = model.recommend([tok.encode(history)], k=5, user_features=[[3, 1]])
    assert got == tok.decode(want[0])
    with pytest.raises(SystemExit, match="--user-feature 'age' is not NAME=VALUE"):
        main(["recommend", "--model", str(tmp_path), "--history", "i3", "--user-feature", "age"])
    with pytest.raises(SystemExit, match=r"unknown user feature\(s\) \['zip'\]"):
        main(["recommend", "--model", str(tmp_path), "--history", "i3", "--user-feature", "zip=1"])


def test_ml1m_partial_timestamps_give_unknown_context_where_the_files_have_no_time(ml1m_dir, beauty_dir):
    """`timestamps="partial"`: ML-1M's times for users 1-2,999 (ratings_users0001-2999.dat.gz, 487,650 lines joined
    on user and movie), 0 for the other 512,559 interactions, whose context ids are then all "unknown"."""
    from hf_rec.training import RunConfig

    splits, tok = load_sequential_dataset("ml-1m", ml1m_dir, timestamps="partial")
    assert tok.metadata["report"]["interactions_without_timestamp"] == 1_000_209 - 487_650
    test = splits["test"]
    first = test[0]  # user 1: timed, in order, last rating 2001-01-06 23:39:11 UTC
    assert first["user_id"] == "1" and first["target_timestamp"] == 978824351
    assert all(a <= b for a, b in zip(first["timestamps"], first["timestamps"][1:] + [first["target_timestamp"]]))
    late = test[test["user_id"].index("3000")]
    assert set(late["timestamps"]) == {0} and late["target_timestamp"] == 0
    times = torch.tensor([late["timestamps"][-5:] + [late["target_timestamp"]]])
    assert all(ids.abs().sum() == 0 for ids in context_feature_ids(times, seq_len=5).values())
    with pytest.raises(ValueError, match="use_time_bias: true needs data.timestamps: true"):
        RunConfig.from_dict({"model": {"family": "hstu", "use_time_bias": True}, "data": {"name": "ml-1m", "timestamps": "partial"}})
    with pytest.raises(ValueError, match="no timestamps at all"):
        load_sequential_dataset("amazon-beauty", beauty_dir, timestamps="partial")


def test_truncate_histories_makes_cold_users():
    from datasets import Dataset

    from hf_rec.evaluation.cold_start import truncate_histories

    split = Dataset.from_dict({"user_id": ["u", "v"], "item_ids": [[1, 2, 3, 4], [5]], "timestamps": [[10, 20, 30, 40], [50]],
                               "target": [6, 7], "user_features": [[1, 2], [0, 1]]})  # fmt: skip
    cut = truncate_histories(split, 2)
    assert cut["item_ids"] == [[3, 4], [5]] and cut["timestamps"] == [[30, 40], [50]]
    assert cut["target"] == [6, 7] and cut["user_features"] == [[1, 2], [0, 1]]
    with pytest.raises(ValueError, match="keep must be an integer >= 1"):
        truncate_histories(split, 0)


def test_feature_columns_of_an_interaction_file(tmp_path):
    path = tmp_path / "interactions.csv"
    path.write_text(
        "user_id,item_id,timestamp,genre,age\n"
        "u1,a,1,Drama|Comedy,25\nu1,b,2,Action,25\nu1,c,3,,25\nu1,d,4,Drama,25\n"
        "u2,a,4,Drama|Comedy,\nu2,c,5,,\nu2,b,6,Action,\nu2,d,7,Drama,\n"
    )
    options = dict(item_features=True, item_feature_columns=["genre"], user_features=True, user_feature_columns=["age"])
    splits, tok = load_sequential_dataset(path, **options)
    assert tok.feature_vocabulary("item", "genre") == ["Action", "Comedy", "Drama"]
    # items a, b, c, d: Drama|Comedy, Action, none (empty cell), Drama
    assert tok.item_feature_ids("genre")[tok.encode(["a", "b", "c", "d"])].tolist() == [[3, 2], [1, 0], [0, 0], [3, 0]]
    assert splits["test"]["user_features"] == [[1], [0]]  # u2's age is empty: unknown
    with pytest.raises(ValueError, match="item_features=True needs item_feature_columns"):
        load_sequential_dataset(path, item_features=True)
    with pytest.raises(ValueError, match="item_feature_columns=.'genre'. is given but item_features is not True"):
        load_sequential_dataset(path, item_feature_columns=["genre"])
    with pytest.raises(ValueError, match="built-in datasets know their features"):
        load_sequential_dataset("ml-100k", tmp_path, item_features=True, item_feature_columns=["genre"])
    path.write_text(path.read_text().replace("u1,b,2,Action,25", "u1,b,2,Action,30"))
    with pytest.raises(ValueError, match=r"interactions.csv, line 3: user 'u1' has age='30', but '25' on an earlier"):
        load_sequential_dataset(path, **options)
    with pytest.raises(ValueError, match=r"has no column\(s\) \['brand'\]"):
        load_sequential_dataset(path, item_features=True, item_feature_columns=["genre", "brand", "age"])


def test_numeric_feature_columns_are_bucketed_by_quantiles(tmp_path):
    """`numeric_feature_buckets`: a numeric column becomes a categorical feature over quantile buckets whose edges are
    saved with the tokenizer, which puts a new user's number in its bucket."""
    from hf_rec.data import load_dataset_like
    from hf_rec.training import RunConfig

    path = tmp_path / "interactions.csv"
    prices = {"a": "1", "b": "2", "c": "3.0", "d": "4", "e": ""}
    ages = {"u1": "20", "u2": "30", "u3": "40", "u4": ""}
    lines = [f"{u},{i},{t},{prices[i]},{age}" for u, age in ages.items() for t, i in enumerate("abcde")]
    path.write_text("user_id,item_id,timestamp,price,age\n" + "\n".join(lines) + "\n")
    options = dict(item_features=True, item_feature_columns=["price"], user_features=True, user_feature_columns=["age"],
                   numeric_feature_buckets={"price": 2, "age": 2})  # fmt: skip
    splits, tok = load_sequential_dataset(path, **options)
    # price: the median of 1, 2, 3, 4 is 2.5; age: the median of 20, 30, 40 is 30 (a number equal to an edge is above)
    assert tok.feature_vocabulary("item", "price") == ["< 2.5", ">= 2.5"]
    assert tok.item_feature_ids("price")[tok.encode(list("abcde"))].tolist() == [[1], [1], [2], [2], [0]]
    assert tok.feature_vocabulary("user", "age") == ["< 30", ">= 30"]
    assert dict(zip(splits["test"]["user_id"], splits["test"]["user_features"])) == {"u1": [1], "u2": [2], "u3": [2], "u4": [0]}
    tok.save_pretrained(tmp_path / "tok")
    loaded = ItemTokenizer.from_pretrained(tmp_path / "tok")
    assert json.loads((tmp_path / "tok" / "item_tokenizer.json").read_text())["user_features"]["age"]["bucket_edges"] == [30.0]
    assert loaded.to_dict() == tok.to_dict() and loaded.feature_config() == tok.feature_config()
    assert [loaded.encode_user_features({"age": a}) for a in (25, "45", 30.0)] == [[1], [2], [2]]
    with pytest.warns(UserWarning, match="'age' is numeric; 'old' is not a number"):
        assert loaded.encode_user_features({"age": "old"}) == [0]
    again = load_dataset_like(loaded, path)
    assert again["test"]["user_features"] == splits["test"]["user_features"]
    with pytest.raises(ValueError, match="numeric_feature_buckets names .'rating'., which are not item_feature_columns"):
        load_sequential_dataset(path, **{**options, "numeric_feature_buckets": {"rating": 4}})
    with pytest.raises(ValueError, match="data.numeric_feature_buckets must map column names to a number of buckets >= 2"):
        RunConfig.from_dict({"model": {"family": "sasrec"}, "data": {"name": str(path), "item_features": True, "item_feature_columns": ["price"],
                                      "numeric_feature_buckets": {"price": 1}}})  # fmt: skip
    path.write_text(path.read_text().replace("u2,c,2,3.0", "u2,c,2,cheap"))
    with pytest.raises(ValueError, match=r"interactions.csv, line 9: price='cheap' is not a number"):
        load_sequential_dataset(path, **options)


def test_feature_vocabularies_round_trip_through_the_hub(hub_server, hub_repo_id, tmp_path):
    """push_to_hub + load_recommender (the loopback Hub): the tokenizer's vocabularies, the model's feature buffers
    and its outputs come back as they were."""
    from hf_rec.hub import load_recommender, push_to_hub

    model, _ = featured_folder(tmp_path)
    users = {"age": ["1", "18", "25", "35"], "gender": ["F", "M"]}
    tok = ItemTokenizer([f"i{n}" for n in range(1, 29)], item_features={"genre": [["a", "b"]] * 14 + [["c"]] * 14},
                        user_feature_vocabularies=users,
                        interaction_feature_vocabularies={"device": ["app", "web"], "rating": list("12345")})  # fmt: skip
    with pytest.raises(ValueError, match="the model reads user features"):  # a tokenizer without the vocabularies
        push_to_hub(model, hub_repo_id, tokenizer=ItemTokenizer([f"i{n}" for n in range(1, 29)]))
    with pytest.raises(ValueError, match="the model reads interaction features"):
        push_to_hub(model, hub_repo_id, tokenizer=ItemTokenizer([f"i{n}" for n in range(1, 29)],
                                                                user_feature_vocabularies=users))  # fmt: skip
    push_to_hub(model, hub_repo_id, tokenizer=tok)
    loaded, loaded_tok = load_recommender(hub_repo_id)
    assert loaded_tok == tok and loaded_tok.feature_vocabulary("user", "age") == ["1", "18", "25", "35"]
    assert loaded_tok.feature_vocabulary("interaction", "rating") == list("12345")
    assert loaded_tok.item_feature_ids("genre").tolist() == tok.item_feature_ids("genre").tolist()
    torch.testing.assert_close(loaded.features.item_feature_ids("genre"), model.features.item_feature_ids("genre"))
    torch.testing.assert_close(user_embeddings(loaded), user_embeddings(model), rtol=0, atol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_untrained_items_are_scored_from_their_features(family):
    """With item features in the scores, a held-out item's ID vector is zeroed (`map_untrained_items`), so its score
    is the user vector . its feature vector, by hand; without features the call changes nothing."""
    model = featured_model(family).eval()
    cold = [3, 11]
    model.map_untrained_items(cold)
    input_ids, attention_mask = model.histories_to_inputs(HISTORIES[:2])
    with torch.no_grad():
        users = model.get_user_embeddings(input_ids, attention_mask)
        logits = model(input_ids, attention_mask).logits
        features = model.features.item_vectors()[cold]
    torch.testing.assert_close(logits[:, cold], model._score_space(users) @ model._score_space(features).T)
    plain = trained_like(make_model(family))
    before = plain.get_item_embeddings().clone()
    plain.map_untrained_items(cold)
    assert torch.equal(plain.get_item_embeddings(), before)


def test_item_id_dropout_acts_in_training_only():
    model = make_model("sasrec", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, item_id_dropout=0.5, **FEATURES)
    model = trained_like(model)
    model.features.set_item_feature_ids("genre", torch.randint(0, 6, (VOCAB_SIZE, 3), generator=torch.Generator().manual_seed(0)))
    collator = SequentialCollator("causal", max_length=model.config.max_position_embeddings)
    batch = collator([{"item_ids": h} for h in HISTORIES])
    plain = make_model("sasrec", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       **{**FEATURES, "item_id_dropout": 0.0})  # fmt: skip
    plain.load_state_dict(model.state_dict())
    model.train(), plain.train()
    torch.manual_seed(0)
    dropped = model(**batch).loss
    assert not torch.allclose(dropped, plain(**batch).loss)  # some ID vectors left out of the scored table
    model.eval(), plain.eval()
    input_ids, attention_mask = model.histories_to_inputs(HISTORIES)
    torch.testing.assert_close(model(input_ids, attention_mask).logits, plain(input_ids, attention_mask).logits)
    with pytest.raises(ValueError, match="item_id_dropout needs item_features_in_scores"):
        CASES["sasrec"][0](vocab_size=VOCAB_SIZE, item_id_dropout=0.3)


def test_user_slot_by_hand():
    """`with_user_slot`: the padding right before the oldest item, the oldest item's position in a full row, the last
    position of an empty one; the slot's input is padding, attended to."""
    from hf_rec.models.features import with_user_slot

    input_ids = torch.tensor([[0, 0, 5, 6], [3, 4, 5, 6], [0, 0, 0, 0], [0, 0, 0, 9]])
    ids, mask = with_user_slot(input_ids, (input_ids != 0).long(), pad_token_id=0)
    assert ids.tolist() == [[0, 0, 5, 6], [0, 4, 5, 6], [0, 0, 0, 0], [0, 0, 0, 9]]
    assert mask.tolist() == [[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1], [0, 0, 1, 1]]


@pytest.mark.parametrize("family", FAMILIES)
def test_user_features_as_a_prefix_token(family, tmp_path):
    """`user_features_fusion="prefix"`: the user vector enters at the user's own position only (every other position's
    feature vector is that of a model without user features), moves the outputs, encodes a user without history, and
    survives save / load."""
    from hf_rec.models.features import with_user_slot
    from hf_rec.training import RunConfig

    model = trained_like(make_model(family, **FEATURES, user_features_fusion="prefix")).eval()
    base = user_embeddings(model)
    assert (user_embeddings(model, users=USERS.flip(0)) - base).abs().max() > 1e-4
    input_ids, attention_mask = with_user_slot(*model.histories_to_inputs(HISTORIES), model.config.pad_token_id)
    times = model.timestamps_to_inputs(TIMES, HISTORIES)
    with torch.no_grad():
        with_users = model.features(input_ids, attention_mask, USERS, times)
        without = model.features(input_ids, attention_mask, None, times)
    slot = (input_ids == 0) & attention_mask.bool()
    assert slot.sum(1).tolist() == [1] * len(HISTORIES)
    torch.testing.assert_close(with_users[~slot], without[~slot], rtol=0, atol=0)
    assert (with_users[slot] - without[slot]).abs().min() > 0
    # no history: the user token alone is encoded, so two users with different attributes get different vectors
    empty = torch.zeros(2, 4, dtype=torch.long)
    with torch.no_grad():
        users = model.get_user_embeddings(empty, torch.zeros_like(empty), user_features=USERS[:2])
    assert torch.isfinite(users).all() and (users[0] - users[1]).abs().max() > 1e-4
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequentialRecommendation.from_pretrained(tmp_path)
    assert loaded.config.user_features_fusion == "prefix"
    torch.testing.assert_close(user_embeddings(loaded), base, rtol=0, atol=0)
    with pytest.raises(ValueError, match="user_features_fusion"):
        make_model(family, user_features_fusion="token")
    with pytest.raises(ValueError, match="user_features_fusion: prefix needs data.user_features: true"):
        RunConfig.from_dict({"model": {"family": family, "user_features_fusion": "prefix"}, "data": {"name": "ml-100k"}})


def test_onnx_export_of_a_user_token_model(tmp_path):
    pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install 'hf-rec[export]'")
    from hf_rec.serving.export import export_onnx

    model = trained_like(make_model("sasrec", **FEATURES, user_features_fusion="prefix"))
    config = export_onnx(model, tmp_path, check_users=32, k=5)
    assert config["check"]["same_top_k"] == 32 and config["check"]["max_abs_user_vector_diff"] < 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_items_added_after_training_are_scored_from_their_features(family, tmp_path):
    """`add_items` on an ID model with item features in the scores: the old items' scores do not move, a new item is
    scored from its features alone (by hand: the mean of its genre vectors; no decade), exactly like a
    held-out item with the same features (`map_untrained_items`), and the grown model saves and reloads."""
    model = featured_model(family).eval()
    tables = model.features.item_tables
    with torch.no_grad():  # "no value" rows stay zero in training (padding_idx); trained_like moved them
        for table in tables.values():
            table.weight[0] = 0.0
    input_ids, attention_mask = model.histories_to_inputs(HISTORIES[:2])
    with torch.no_grad():
        before = model(input_ids, attention_mask).logits
    new = model.add_items(2, {"genre": [[1, 2], [5, 0]]})
    assert new == [VOCAB_SIZE, VOCAB_SIZE + 1] and model.config.vocab_size == VOCAB_SIZE + 2
    assert model.features.item_feature_ids("decade")[new].tolist() == [[0], [0]]  # not given: no value
    with torch.no_grad():
        after = model(input_ids, attention_mask).logits
        users = model._score_space(model.get_user_embeddings(input_ids, attention_mask))
        by_hand = torch.stack([(tables["genre"].weight[1] + tables["genre"].weight[2]) / 2, tables["genre"].weight[5]])
    torch.testing.assert_close(after[:, :VOCAB_SIZE], before, rtol=0, atol=1e-6)  # a wider matmul: rounding only
    torch.testing.assert_close(after[:, new], users @ model._score_space(by_hand).T)
    # a held-out item given the second new item's features scores the same
    held_out = 7
    with torch.no_grad():
        for name in ("genre", "decade"):
            model.features.item_feature_ids(name)[held_out] = model.features.item_feature_ids(name)[new[1]]
    model.map_untrained_items([held_out])
    with torch.no_grad():
        logits = model(input_ids, attention_mask).logits
    torch.testing.assert_close(logits[:, held_out], logits[:, new[1]], rtol=0, atol=1e-6)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequentialRecommendation.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids, attention_mask).logits, logits, rtol=0, atol=0)
    assert loaded.recommend([HISTORIES[0]], k=VOCAB_SIZE)[0].tolist()[0].count(new[0]) == 1  # recommendable


def test_adding_items_refuses_bad_input_and_changes_nothing():
    model = featured_model("sasrec")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for bad, match in [({"genre": [[1, 2, 3, 4]]}, "at most 3"), ({"colour": [[1]]}, "unknown item feature"),
                       ({"genre": [[9]]}, r"outside \[0, 6\)"), ({"genre": [[1], [2]]}, "expected 1 rows")]:  # fmt: skip
        with pytest.raises(ValueError, match=match):
            model.add_items(1, bad)
    with pytest.raises(ValueError, match="num_items must be >= 1"):
        model.add_items(0)
    assert model.config.vocab_size == VOCAB_SIZE
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    plain = make_model("sasrec", item_features=FEATURES["item_features"])  # features only on the input side
    with pytest.raises(ValueError, match="has none for a new item"):
        plain.add_items(1, {"genre": [[1]]})


def test_add_cold_items_keeps_model_and_tokenizer_in_sync(tmp_path):
    """`add_cold_items` on an ID model: the tokenizer encodes the new items' raw values with the training
    vocabularies (an unknown value warns and is left out), the model gets the same value ids, both save and reload."""
    from hf_rec.evaluation.cold_start import add_cold_items

    tok = ItemTokenizer(["a", "b", "c"], item_features={"genre": {"a": ["Drama", "Comedy"], "c": ["Drama"]},
                                                        "price": {"a": [5], "b": [15], "c": [25]}},
                        item_bucket_edges={"price": [10.0, 20.0]})  # fmt: skip
    model = make_model("sasrec", vocab_size=tok.vocab_size, mask_token_id=tok.mask_token_id,
                       item_features_in_scores=True, **tok.feature_config())  # fmt: skip
    for name in tok.item_feature_names:
        model.features.set_item_feature_ids(name, torch.from_numpy(tok.item_feature_ids(name)))
    with pytest.warns(UserWarning, match="'Horror' of new item 0 is unknown"):
        new = add_cold_items(model, tok, ["d", "e"], features=[{"genre": ["Comedy", "Horror"], "price": 12.5},
                                                                {"genre": "Drama"}])  # fmt: skip
    assert new == [5, 6] and tok.encode(["d", "e"]) == new  # after the mask token (4)
    assert tok.item_feature_ids("genre")[new].tolist() == [[1, 0], [2, 0]]  # Comedy = 1, Drama = 2
    assert tok.item_feature_ids("price")[new].tolist() == [[2], [0]]  # 12.5 in [10, 20): bucket 2
    for name in tok.item_feature_names:
        assert model.features.item_feature_ids(name).tolist() == tok.item_feature_ids(name).tolist()
    with pytest.raises(ValueError, match="already in the tokenizer"):
        add_cold_items(model, tok, ["d"], features=[{}])
    with pytest.raises(ValueError, match="at most 2 per item"):
        add_cold_items(model, tok, ["f"], features=[{"genre": ["Comedy", "Drama", "Comedy"]}])
    assert model.config.vocab_size == tok.vocab_size == 7  # the refused calls changed neither
    tok.save_pretrained(tmp_path)
    assert ItemTokenizer.from_pretrained(tmp_path).item_feature_ids("genre").tolist() == tok.item_feature_ids("genre").tolist()
