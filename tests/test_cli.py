"""`hf-rec` subcommands through `main([...])`, plus the installed console script in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard, list_repo_files

from hf_rec.cli import build_parser, main
from hf_rec.hub import load_recommender
from hub_helpers import SHARED_DATA, tiny_model_folder, tiny_run_folder


def run_cli(capsys, *argv) -> str:
    capsys.readouterr()  # drop what earlier steps printed (e.g. training the shared run folder)
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["evaluate", "recommend", "push", "card"])
def test_every_option_is_documented(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        assert action.help, action.dest
        for flag in action.option_strings:
            assert flag in text


def test_train_help_is_train_py(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--config" in text and "--resume" in text and "--output-dir" in text


def test_recommend_table_and_json(capsys):
    folder = tiny_model_folder("sasrec")
    rows = json.loads(run_cli(capsys, "recommend", "--model", str(folder), "--history", "i3,i7", "--k", "4", "--json"))
    model, tok = load_recommender(folder)
    indices, _ = model.recommend([tok.encode(["i3", "i7"])], k=4)
    assert [r["item_id"] for r in rows] == tok.decode(indices[0].tolist())
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    table = run_cli(capsys, "recommend", "--model", str(folder), "--history", "i3,i7", "--k", "4")
    assert table.splitlines()[0].split()[:3] == ["rank", "item_id", "score"]
    assert rows[0]["item_id"] in table.splitlines()[1]
    seen = json.loads(run_cli(capsys, "recommend", "--model", str(folder), "--history", "i3", "--k", "31",
                              "--include-seen", "--json"))  # fmt: skip
    assert "i3" in [r["item_id"] for r in seen]
    with pytest.raises(SystemExit, match="hf-rec recommend: .*unknown item id.*'zz'"):  # one line, exit status 1
        main(["recommend", "--model", str(folder), "--history", "i3,zz"])
    assert json.loads(run_cli(capsys, "recommend", "--model", str(folder), "--history", "i3,zz", "--k", "4",
                              "--ignore-unknown", "--json")) == json.loads(  # fmt: skip
        run_cli(capsys, "recommend", "--model", str(folder), "--history", "i3", "--k", "4", "--json"))


def test_evaluate_reproduces_the_run_metrics(capsys, tmp_path):
    run = tiny_run_folder()
    out_file = tmp_path / "metrics.json"
    printed = json.loads(run_cli(capsys, "evaluate", "--model", str(run), "--data", "ml-100k", "--data-dir",
                                 str(SHARED_DATA / "ml-100k"), "--ks", "10", "--output", str(out_file)))  # fmt: skip
    assert json.loads(out_file.read_text()) == printed
    trained = json.loads((run / "metrics.json").read_text())["test"]
    for name in ("ndcg@10", "hr@10", "mrr@10"):
        assert printed["metrics"][name] == pytest.approx(trained[name], abs=1e-6)


def test_card_rerenders_with_repo_id(capsys, tmp_path):
    run = tiny_run_folder()
    out_file = tmp_path / "README.md"
    run_cli(capsys, "card", str(run), "--repo-id", "someone/sasrec-ml100k", "--output", str(out_file))
    card = ModelCard.load(out_file)
    assert card.data.library_name == "hf_rec" and card.data.eval_results
    assert 'load_recommender("someone/sasrec-ml100k")' in card.text
    assert "---" in run_cli(capsys, "card", str(run))  # stdout by default
    with pytest.raises(SystemExit, match="metrics.json"):
        main(["card", str(tiny_model_folder("sasrec"))])


def test_push_to_branch(capsys, hub_server, hub_repo_id):
    run = tiny_run_folder()
    info = json.loads(run_cli(capsys, "push", str(run), hub_repo_id, "--revision", "dev", "--message", "cli push"))
    assert len(info["commit"]) == 40
    files = list_repo_files(hub_repo_id, revision="dev")
    assert "model.safetensors" in files and not any(f.startswith("checkpoints/") for f in files)
    assert HfApi().list_repo_commits(hub_repo_id, revision="dev")[0].title == "cli push"


def test_console_script_lists_every_command():
    script = Path(sys.executable).with_name("hf-rec")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hf_rec.cli"]
    out = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120, check=True).stdout
    for name in ("train", "evaluate", "recommend", "push", "card", "study"):
        assert name in out
    assert "hub-server" not in out  # the loopback Hub is test scaffolding (tests/loopback_hub.py)
