"""Round trips through the loopback Hub (hf_rec.hub.LoopbackHub) with the real huggingface_hub / transformers clients."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from hub_fixtures import FAKE_TOKEN, hub_client_env, run_python_fresh, unique_repo_id  # fixtures: conftest

import huggingface_hub
from huggingface_hub import ModelCard, ModelCardData
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from hf_rec.hub import FAKE_USER, LoopbackHub

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
def test_file_api_round_trip(hub_server, hub_api, hub_repo_id, tmp_path):
    url = hub_api.create_repo(hub_repo_id)
    assert url.repo_id == hub_repo_id and url.startswith(hub_server.endpoint)
    assert hub_api.create_repo(hub_repo_id, exist_ok=True).repo_id == hub_repo_id
    with pytest.raises(huggingface_hub.errors.HfHubHTTPError) as exc:
        hub_api.create_repo(hub_repo_id)
    assert exc.value.response.status_code == 409

    payload = bytes(range(256)) * 40
    hub_api.upload_file(path_or_fileobj=payload, path_in_repo="data/blob.bin", repo_id=hub_repo_id)
    local = tmp_path / "nested" / "x y.txt"
    local.parent.mkdir()
    local.write_text("spaces and unicode: é")
    info = hub_api.upload_folder(folder_path=tmp_path / "nested", path_in_repo="docs", repo_id=hub_repo_id)
    assert set(hub_api.list_repo_files(hub_repo_id)) == {".gitattributes", "data/blob.bin", "docs/x y.txt"}

    path = huggingface_hub.hf_hub_download(hub_repo_id, "data/blob.bin")
    assert Path(path).read_bytes() == payload
    assert Path(huggingface_hub.hf_hub_download(hub_repo_id, "docs/x y.txt")).read_text() == "spaces and unicode: é"
    snap = Path(huggingface_hub.snapshot_download(hub_repo_id))
    assert snap.name == info.oid
    assert (snap / "data" / "blob.bin").read_bytes() == payload

    mi = hub_api.model_info(hub_repo_id, files_metadata=True)
    assert mi.id == hub_repo_id and mi.sha == info.oid and mi.private is False
    sizes = {s.rfilename: s.size for s in mi.siblings}
    assert sizes["data/blob.bin"] == len(payload)

    tree = {e.path: e for e in hub_api.list_repo_tree(hub_repo_id, recursive=True)}
    assert set(tree) == {".gitattributes", "data", "data/blob.bin", "docs", "docs/x y.txt"}
    assert tree["data/blob.bin"].size == len(payload)
    assert [e.path for e in hub_api.list_repo_tree(hub_repo_id, path_in_repo="docs")] == ["docs/x y.txt"]
    paths = hub_api.get_paths_info(hub_repo_id, ["data", "docs/x y.txt", "missing"])
    assert [type(p).__name__ for p in paths] == ["RepoFolder", "RepoFile"]

    # unchanged content is detected through the preupload oid => no new commit
    again = hub_api.upload_file(path_or_fileobj=payload, path_in_repo="data/blob.bin", repo_id=hub_repo_id)
    assert again.oid == info.oid

    hub_api.delete_file("data/blob.bin", repo_id=hub_repo_id)
    assert not hub_api.file_exists(hub_repo_id, "data/blob.bin")
    assert hub_api.file_exists(hub_repo_id, "data/blob.bin", revision=info.oid)  # history is kept
    hub_api.delete_folder("docs", repo_id=hub_repo_id)
    assert hub_api.list_repo_files(hub_repo_id) == [".gitattributes"]

    hub_api.delete_repo(hub_repo_id)
    assert not hub_api.repo_exists(hub_repo_id)
    with pytest.raises(RepositoryNotFoundError):
        hub_api.delete_repo(hub_repo_id)
    hub_api.delete_repo(hub_repo_id, missing_ok=True)


def test_error_paths(hub_server, hub_api, hub_repo_id):
    hub_api.create_repo(hub_repo_id)
    hub_api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=hub_repo_id)
    missing_repo = unique_repo_id("does-not-exist")

    with pytest.raises(RepositoryNotFoundError):
        huggingface_hub.hf_hub_download(missing_repo, "config.json")
    with pytest.raises(RepositoryNotFoundError):
        hub_api.model_info(missing_repo)
    with pytest.raises(EntryNotFoundError):  # RemoteEntryNotFoundError in 2.x
        huggingface_hub.hf_hub_download(hub_repo_id, "nope.txt")
    with pytest.raises(RevisionNotFoundError):
        huggingface_hub.hf_hub_download(hub_repo_id, "x.txt", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        huggingface_hub.hf_hub_download(hub_repo_id, "x.txt", revision="0" * 40)
    with pytest.raises(RevisionNotFoundError):
        huggingface_hub.snapshot_download(hub_repo_id, revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hub_api.delete_file("nope.txt", repo_id=hub_repo_id)
    with pytest.raises(RevisionNotFoundError):
        hub_api.upload_file(path_or_fileobj=b"y", path_in_repo="y.txt", repo_id=hub_repo_id, revision="no-such-branch")

    # stale parent_commit => 412, nothing written
    head = hub_api.model_info(hub_repo_id).sha
    hub_api.upload_file(path_or_fileobj=b"x2", path_in_repo="x.txt", repo_id=hub_repo_id)
    with pytest.raises(huggingface_hub.errors.HfHubHTTPError) as exc:
        hub_api.upload_file(path_or_fileobj=b"x3", path_in_repo="x.txt", repo_id=hub_repo_id, parent_commit=head)
    assert exc.value.response.status_code == 412

    from transformers import BertModel

    with pytest.raises(OSError):
        BertModel.from_pretrained(missing_repo)


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


def test_dataset_repo_round_trip(hub_server, hub_api):
    repo_id = unique_repo_id("dataset")
    hub_api.create_repo(repo_id, repo_type="dataset")
    hub_api.upload_file(path_or_fileobj=b"user,item\n1,2\n", path_in_repo="train.csv", repo_id=repo_id, repo_type="dataset")
    path = huggingface_hub.hf_hub_download(repo_id, "train.csv", repo_type="dataset")
    assert Path(path).read_bytes() == b"user,item\n1,2\n"
    assert hub_api.dataset_info(repo_id).id == repo_id
    assert not hub_api.repo_exists(repo_id)  # it is not a model repo
    hub_api.delete_repo(repo_id, repo_type="dataset")


def test_concurrent_commits_are_serialized(hub_server, hub_api, hub_repo_id):
    hub_api.create_repo(hub_repo_id)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            hub_api.upload_file(path_or_fileobj=f"{i}".encode(), path_in_repo=f"f{i}.txt", repo_id=hub_repo_id)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {f"f{i}.txt" for i in range(8)} <= set(hub_api.list_repo_files(hub_repo_id))
    assert len(hub_api.list_repo_commits(hub_repo_id)) == 9


# ---------------------------------------------------------------------------------------------- server itself
def test_server_persists_across_restarts_and_ranges(tmp_path):
    import httpx2  # the HTTP client huggingface_hub itself uses

    from huggingface_hub import HfApi

    with LoopbackHub(tmp_path / "hub") as hub, hub_client_env(hub.endpoint):
        api = HfApi(endpoint=hub.endpoint, token=FAKE_TOKEN)
        repo = api.create_repo(f"{FAKE_USER}/persist").repo_id
        oid = api.upload_file(path_or_fileobj=b"0123456789", path_in_repo="digits.txt", repo_id=repo).oid
    with LoopbackHub(tmp_path / "hub") as hub, hub_client_env(hub.endpoint):  # new port, same storage
        api = HfApi(endpoint=hub.endpoint, token=FAKE_TOKEN)
        assert api.model_info(repo).sha == oid
        url = f"{hub.endpoint}/{repo}/resolve/{oid}/digits.txt"
        r = httpx2.get(url, headers={"Range": "bytes=3-5"})
        assert r.status_code == 206 and r.content == b"345" and r.headers["Content-Range"] == "bytes 3-5/10"
        head = httpx2.head(f"{hub.endpoint}/{repo}/resolve/main/digits.txt")
        assert head.headers["X-Repo-Commit"] == oid and head.headers["Content-Length"] == "10"
        assert head.headers["ETag"].startswith('"') and head.headers["ETag"].endswith('"')
        missing = httpx2.head(f"{hub.endpoint}/{repo}/resolve/main/nope")
        assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
    assert not hub.running


def test_cli_serves(tmp_path):
    cmd = [sys.executable, "-m", "hf_rec.hub.server", "--root", str(tmp_path / "cli_hub"), "--port", "0"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        try:
            line = proc.stdout.readline()
            assert " at http://127.0.0.1:" in line, line
            endpoint = line.rsplit(" at ", 1)[1].strip()
            from huggingface_hub import HfApi

            with hub_client_env(endpoint):
                api = HfApi(endpoint=endpoint, token=FAKE_TOKEN)
                assert api.whoami()["name"] == FAKE_USER
                assert api.create_repo("cli-demo").repo_id == f"{FAKE_USER}/cli-demo"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
