"""Round trips through the loopback Hub (tests/loopback_hub.py) with the real huggingface_hub / transformers clients."""

from __future__ import annotations

import socket

import pytest
import torch

from hub_fixtures import run_python_fresh  # fixtures: conftest

import huggingface_hub
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.errors import RevisionNotFoundError

from loopback_hub import FAKE_USER

INPUT_IDS = [[2, 15, 33, 7, 98, 0, 41, 5]]


def tiny_bert(seed: int):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=99)
    return BertModel(config).eval()


@torch.no_grad()
def hidden_states(model) -> torch.Tensor:
    return model(input_ids=torch.tensor(INPUT_IDS)).last_hidden_state


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------- fixture sanity
def test_network_guard_blocks_non_loopback():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        with pytest.raises(RuntimeError, match="loopback"):
            s.connect(("10.255.255.1", 80))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        with pytest.raises(RuntimeError, match="loopback"):
            s.connect_ex(("10.255.255.1", 80))


def test_fixture_points_client_at_loopback(hub_server):
    from huggingface_hub import constants
    from huggingface_hub.hf_api import api

    assert hub_server.endpoint.startswith("http://127.0.0.1:")
    assert constants.ENDPOINT == hub_server.endpoint == api.endpoint
    assert constants.HUGGINGFACE_CO_URL_TEMPLATE.startswith(hub_server.endpoint + "/")
    assert not huggingface_hub.is_offline_mode()
    assert huggingface_hub.whoami()["name"] == FAKE_USER  # fake HF_TOKEN from the fixture


def test_hub_offline_fixture_restores_offline_mode(hub_server, hub_api, hub_offline):
    assert huggingface_hub.is_offline_mode()
    with pytest.raises(huggingface_hub.errors.OfflineModeIsEnabled):
        hub_api.model_info("hf-rec-tester/anything")


# ---------------------------------------------------------------------------------------------- transformers
def test_push_to_hub_then_from_pretrained_in_fresh_process(hub_server, hub_repo_id, tmp_path):
    model = tiny_bert(seed=0)
    commit = model.push_to_hub(hub_repo_id)
    assert len(commit.oid) == 40
    files = huggingface_hub.list_repo_files(hub_repo_id)
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)

    expected = hidden_states(model)
    out_file = tmp_path / "outputs.pt"
    hf_home = tmp_path / "empty_hf_home"
    hf_home.mkdir()
    run_python_fresh(
        f"""
        import os, sys, torch
        from transformers import BertModel
        assert os.environ["HF_HUB_OFFLINE"] == "0"
        assert not any(os.scandir(os.environ["HF_HOME"])), "cache must start empty"
        model = BertModel.from_pretrained({hub_repo_id!r}).eval()
        with torch.no_grad():
            out = model(input_ids=torch.tensor({INPUT_IDS!r})).last_hidden_state
        torch.save(out, sys.argv[1])
        """,
        hub_server.endpoint,
        hf_home=hf_home,
        args=[str(out_file)],
    )
    got = torch.load(out_file)
    assert torch.equal(got, expected)
    assert (hf_home / "hub" / f"models--{hub_repo_id.replace('/', '--')}").is_dir()  # it really downloaded


def test_revisions_commit_sha_tag_and_branch(hub_server, hub_api, hub_repo_id):
    from transformers import BertModel

    first, second = tiny_bert(seed=1), tiny_bert(seed=2)
    c1 = first.push_to_hub(hub_repo_id, commit_message="first weights")
    c2 = second.push_to_hub(hub_repo_id, commit_message="second weights")
    assert c1.oid != c2.oid

    assert same_weights(BertModel.from_pretrained(hub_repo_id), second)
    assert same_weights(BertModel.from_pretrained(hub_repo_id, revision=c1.oid), first)

    hub_api.create_tag(hub_repo_id, tag="v1.0", revision=c1.oid)
    hub_api.create_branch(hub_repo_id, branch="exp/first", revision=c1.oid)  # '/' travels URL-encoded
    assert same_weights(BertModel.from_pretrained(hub_repo_id, revision="v1.0"), first)
    assert same_weights(BertModel.from_pretrained(hub_repo_id, revision="exp/first"), first)
    assert hub_api.model_info(hub_repo_id, revision="exp/first").sha == c1.oid
    assert hub_api.model_info(hub_repo_id, revision="v1.0").sha == c1.oid

    refs = hub_api.list_repo_refs(hub_repo_id)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": c2.oid, "exp/first": c1.oid}
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0": c1.oid}

    commits = hub_api.list_repo_commits(hub_repo_id)
    assert [c.commit_id for c in commits[:2]] == [c2.oid, c1.oid]
    assert commits[0].title == "second weights" and commits[-1].title == "initial commit"
    assert [c.commit_id for c in hub_api.list_repo_commits(hub_repo_id, revision="v1.0")][0] == c1.oid

    # a commit to the branch leaves main and the tag alone
    hub_api.upload_file(path_or_fileobj=b"branch only", path_in_repo="notes.txt", repo_id=hub_repo_id, revision="exp/first")
    assert "notes.txt" in hub_api.list_repo_files(hub_repo_id, revision="exp/first")
    assert "notes.txt" not in hub_api.list_repo_files(hub_repo_id)
    assert "notes.txt" not in hub_api.list_repo_files(hub_repo_id, revision="v1.0")

    hub_api.delete_tag(hub_repo_id, tag="v1.0")
    hub_api.delete_branch(hub_repo_id, branch="exp/first")
    refs = hub_api.list_repo_refs(hub_repo_id)
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []
    with pytest.raises(RevisionNotFoundError):
        hub_api.model_info(hub_repo_id, revision="v1.0")


# ---------------------------------------------------------------------------------------------- huggingface_hub API
def test_model_card_metadata_round_trip(hub_server, hub_api, hub_repo_id):
    hub_api.create_repo(hub_repo_id)
    data = ModelCardData(license="apache-2.0", library_name="hf_rec", tags=["sequential-recommendation", "sasrec"])
    card = ModelCard.from_template(data, model_id=hub_repo_id, model_description="A tiny SASRec for tests.")
    card.push_to_hub(hub_repo_id)

    loaded = ModelCard.load(hub_repo_id)
    assert loaded.data.license == "apache-2.0"
    assert loaded.data.tags == ["sequential-recommendation", "sasrec"]
    assert "A tiny SASRec for tests." in loaded.text

    info = hub_api.model_info(hub_repo_id)
    assert info.card_data is not None
    assert info.card_data.license == "apache-2.0"
    assert info.card_data.library_name == "hf_rec"
    assert "sasrec" in info.tags and info.library_name == "hf_rec"

    card.validate()  # POST /api/validate-yaml accepts it
    import httpx2

    bad = httpx2.post(f"{hub_server.endpoint}/api/validate-yaml", json={"repoType": "model", "content": "---\na: [x\n---\n"})
    assert bad.status_code == 400


# ---------------------------------------------------------------------------------------------- server itself
