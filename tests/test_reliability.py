"""Issue #20, "nothing lost, nothing run that the user did not ask for": bad input is refused in one line that names
the file / key / value before any work starts, and no code from a model folder runs unless the caller asked for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import hf_rec.training
from hf_rec.cli import main as cli_main
from hf_rec.data import ItemTokenizer, load_sequential_dataset
from hf_rec.hub import load_recommender
from loopback_hub import FAKE_USER, LoopbackHub
from hf_rec.training import load_run_config
from hf_rec.training import main as train_main
from hub_fixtures import FAKE_TOKEN, hub_client_env
from hub_helpers import tiny_model, tiny_model_folder

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "sasrec-ml100k.yaml"


def one_line_exit(excinfo, *parts: str) -> str:
    """The message of a SystemExit raised with a message: one line holding every part."""
    message = str(excinfo.value.code)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


def run_python(code: str, cwd: Path, *args: str, stdin_text: str | None = None, **env: str):
    """`code` in a fresh interpreter in `cwd`, offline, with an empty HF cache; stdin is closed unless `stdin_text`."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(cwd / "hf_home"), "OMP_NUM_THREADS": "1", **env}
    stdin = {"input": stdin_text} if stdin_text is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=300, **stdin)  # fmt: skip


# ---- 3. non-finite numbers in interaction files ---------------------------------------------------------------
ROWS = [("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u2", "a", 1), ("u2", "c", 2), ("u2", "d", 3)]


@pytest.mark.parametrize("column", ["timestamp", "rating"])
@pytest.mark.parametrize("bad", ["inf", "-inf", "nan", "Infinity"])
def test_non_finite_numbers_in_a_csv_are_refused_with_file_line_and_column(tmp_path, column, bad):
    lines = [f"user_id,item_id,{column}"] + [f"{u},{i},{v}" for u, i, v in ROWS]
    lines[5] = lines[5].rsplit(",", 1)[0] + f",{bad}"  # file line 6
    path = tmp_path / "inter.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as err:
        load_sequential_dataset(path)
    message = str(err.value)
    for part in ("inter.csv", "line 6", column, repr(bad)):
        assert part in message, message


def test_non_finite_numbers_in_jsonl_and_parquet_are_refused(tmp_path):
    records = [json.dumps({"user_id": u, "item_id": i, "timestamp": t}) for u, i, t in ROWS]
    records[2] = '{"user_id": "u1", "item_id": "c", "timestamp": Infinity}'  # Python's json reads it as inf
    path = tmp_path / "inter.jsonl"
    path.write_text("\n".join(records) + "\n")
    with pytest.raises(ValueError, match=r"inter\.jsonl, line 3: timestamp must be a finite number"):
        load_sequential_dataset(path)
    numeric_ids = [json.dumps({"user_id": u, "item_id": n}) for n, (u, _, _) in enumerate(ROWS)]
    numeric_ids[4] = '{"user_id": "u2", "item_id": -Infinity}'
    path.write_text("\n".join(numeric_ids) + "\n")
    with pytest.raises(ValueError, match=r"inter\.jsonl, line 5: item_id must be an id, got -inf"):  # not an id
        load_sequential_dataset(path)

    frame = pd.DataFrame(ROWS, columns=["user_id", "item_id", "rating"]).astype({"rating": float})
    frame.loc[4, "rating"] = -np.inf
    frame.to_parquet(tmp_path / "inter.parquet", index=False)
    with pytest.raises(ValueError, match=r"inter\.parquet, row 5: rating must be a finite number"):
        load_sequential_dataset(tmp_path / "inter.parquet")
    frame.loc[4, "rating"] = 3.0
    frame.to_parquet(tmp_path / "inter.parquet", index=False)
    with pytest.raises(ValueError, match="min_rating must be a finite number"):
        load_sequential_dataset(tmp_path / "inter.parquet", min_rating=float("nan"))


# ---- 4. / 6. training and evaluation values ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, message",
    [
        (["training.max_grad_norm=-1"], "training.max_grad_norm must be a number > 0"),  # gradient ascent
        (["training.max_grad_norm=0"], "training.max_grad_norm must be a number > 0"),
        (["training.learning_rate=.inf"], "training.learning_rate must be a finite number, got inf"),
        (["training.learning_rate=.nan"], "training.learning_rate must be a finite number, got nan"),
        (["training.weight_decay=-0.1"], "training.weight_decay must be >= 0, got -0.1"),
        (["training.weight_decay=.inf"], "training.weight_decay must be a finite number"),
        (["training.adam_beta2=1.5"], "training.adam_beta2 must be in [0, 1)"),
        (["training.max_train_minutes=.inf"], "training.max_train_minutes must be a finite number"),
        (["data.min_rating=.nan"], "data.min_rating must be a finite number"),
        (["training.learning_rate=abc"], "training.learning_rate must be a finite number, got 'abc'"),
        (["evaluation.ks=10"], "evaluation.ks must be a list of integers, e.g. [10, 20], got 10"),
        (["evaluation.ks=[5, ten]"], "evaluation.ks must be a list of integers"),
        (["training.num_epochs=3.5"], "training.num_epochs must be an integer, got 3.5"),
        (["training.num_epochs=true"], "training.num_epochs must be an integer, got True"),  # bools are no numbers
        (["training.learning_rate=true"], "training.learning_rate must be a finite number, got True"),
        (["training.group_by_length=1"], "training.group_by_length must be true or false, got 1"),
        (["data.name=42"], "data.name must be a string, got 42"),
        (["model.hidden_size=abc"], "model.hidden_size must be an integer, got 'abc'"),
        (["evaluation.num_negatives=0"], "evaluation.num_negatives must be >= 1"),
        (["evaluation.sampling=popular"], "evaluation.sampling must be 'uniform' or 'popularity'"),
    ],
)
def test_bad_values_name_the_key_and_the_value(overrides, message):
    with pytest.raises(ValueError) as err:
        load_run_config(CONFIG, overrides)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert str(err.value).startswith(str(CONFIG)), "the message names the file"


def test_numbers_written_as_strings_become_floats_and_ints_are_accepted_for_floats():
    run = load_run_config(CONFIG, ["training.learning_rate=1e-3", "model.hidden_dropout_prob=1e-1",
                                   "training.max_grad_norm=5", "training.max_grad_norm=null"])  # fmt: skip
    assert run.training.learning_rate == 0.001 and isinstance(run.training.learning_rate, float)
    assert run.model["hidden_dropout_prob"] == 0.1
    assert run.training.max_grad_norm is None
    assert load_run_config(CONFIG, ["training.max_grad_norm=5"]).training.max_grad_norm == 5.0


@pytest.mark.parametrize("text", ["- model\n- data\n", "just a string\n", "42\n"])
def test_a_yaml_that_is_not_a_mapping_is_refused_with_overrides_too(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    for overrides in ([], ["training.num_epochs=3"]):
        with pytest.raises(ValueError, match="run.yaml: the top level must be a mapping"):
            load_run_config(path, overrides)
    path.write_text("model: {family: sasrec}\ntraining: 5\n")
    with pytest.raises(ValueError, match="run.yaml: section 'training' must be a mapping, got 5"):
        load_run_config(path, ["training.num_epochs=3"])


def test_string_values_in_a_yaml_file_name_the_key(tmp_path):
    raw = yaml.safe_load(CONFIG.read_text())
    raw["training"]["learning_rate"] = "abc"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=r"run\.yaml: training\.learning_rate must be a finite number, got 'abc'"):
        load_run_config(path)
    raw["training"]["learning_rate"] = "1e-3"  # what `learning_rate: 1e-3` reads as in PyYAML
    path.write_text(yaml.safe_dump(raw))
    assert load_run_config(path).training.learning_rate == 0.001


# ---- 5. metric_for_best_model must be a metric the evaluator computes --------------------------------------------
def test_metric_for_best_model_must_be_computed():
    with pytest.raises(ValueError, match=r"evaluation.metric_for_best_model='ndcg@10' is not computed with "
                                         r"evaluation.ks=\[5\].*e\.g\. 'ndcg@5'"):  # fmt: skip
        load_run_config(CONFIG, ["evaluation.ks=[5]"])
    with pytest.raises(ValueError, match="metric_for_best_model='recall@5'"):
        load_run_config(CONFIG, ["evaluation.metric_for_best_model=recall@5"])  # ks are [10, 20]
    assert load_run_config(CONFIG, ["evaluation.ks=[5]", "evaluation.metric_for_best_model=mrr@5"])
    # The sampled protocol's keys carry its prefix (Evaluator.evaluate): the default name would be a KeyError.
    with pytest.raises(ValueError, match="e.g. 'sampled100_ndcg@10'"):
        load_run_config(CONFIG, ["evaluation.protocol=sampled"])
    run = load_run_config(CONFIG, ["evaluation.protocol=sampled", "evaluation.sampling=popularity",
                                   "evaluation.num_negatives=10",
                                   "evaluation.metric_for_best_model=sampled10pop_hr@20"])  # fmt: skip
    from hf_rec.evaluation import Evaluator

    split = {"item_ids": [[1, 2], [2, 3]], "target": [3, 1]}
    model, _ = tiny_model("sasrec")
    ev = run.evaluation
    computed = Evaluator(split, ks=ev.ks, protocol=ev.protocol, num_negatives=ev.num_negatives, sampling=ev.sampling,
                         item_counts=np.ones(model.config.vocab_size), show_progress=False).evaluate(model)  # fmt: skip
    assert ev.metric_for_best_model in computed


# ---- 7. / 8. the train command line -----------------------------------------------------------------------------
@pytest.fixture
def fake_train(monkeypatch):
    calls = []
    monkeypatch.setattr(hf_rec.training, "train", lambda run, output_dir, **options: calls.append((run, output_dir)))
    return calls


def test_overrides_are_accepted_anywhere_on_the_command_line(fake_train, tmp_path):
    train_main(["--config", str(CONFIG), "training.num_epochs=3", "--output-dir", str(tmp_path / "out"),
                "training.batch_size=64", "--resume", "model.hidden_size=32"])  # fmt: skip
    (run, output_dir), = fake_train
    assert (run.training.num_epochs, run.training.batch_size, run.model["hidden_size"]) == (3, 64, 32)
    assert output_dir == str(tmp_path / "out")
    with pytest.raises(SystemExit) as exit_info:  # an unknown option is still an error
        train_main(["--config", str(CONFIG), "training.num_epochs=3", "--bogus", "training.batch_size=64"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("entry", ["hf-rec", "train.py"])
def test_config_and_data_errors_are_one_line_without_traceback(entry, fake_train, tmp_path):
    def run(*argv):
        with pytest.raises(SystemExit) as exit_info:
            cli_main(["train", *argv]) if entry == "hf-rec" else train_main(list(argv))
        return exit_info

    prog = "hf-rec train" if entry == "hf-rec" else "train.py"
    one_line_exit(run("--config", str(CONFIG), "training.learning_rate=abc"),
                  f"{prog}: ", str(CONFIG), "training.learning_rate", "'abc'")  # fmt: skip
    one_line_exit(run("--config", str(tmp_path / "missing.yaml")), f"{prog}: config file not found")
    assert not fake_train


def test_data_errors_of_a_real_run_are_one_line_and_come_before_training(tmp_path):
    data = tmp_path / "inter.csv"
    data.write_text("user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in ROWS[:-1]) + "u2,d,inf\n")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--config", str(CONFIG), f"data.name={data}", "--output-dir", str(tmp_path / "out"),
                  "training.num_epochs=1"])  # fmt: skip
    one_line_exit(exit_info, "hf-rec train: ", "inter.csv, line 7", "timestamp", "'inf'")
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_a_bug_deeper_in_training_keeps_its_traceback(monkeypatch):
    def broken(run, output_dir, **options):
        raise ValueError("a bug in the training loop")

    monkeypatch.setattr(hf_rec.training, "train", broken)
    with pytest.raises(ValueError, match="a bug in the training loop"):
        train_main(["--config", str(CONFIG)])


def test_train_py_prints_one_line_and_exits_1(tmp_path):
    proc = run_python(f"""
        import sys, runpy
        sys.argv = ["train.py", "--config", {str(CONFIG)!r}, "training.max_grad_norm=-1"]
        runpy.run_path({str(REPO / "train.py")!r}, run_name="__main__")
        """, tmp_path, PYTHONPATH=str(REPO))  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"train.py: {CONFIG}: training.max_grad_norm must be a number > 0, or null for no clipping, got -1.0"
    ]


# ---- 9. no code from a model folder runs unless asked ------------------------------------------------------------
def _folder_with_code(folder: Path, marker: Path, config: dict) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    for module in ("evil_config", "evil_model"):
        (folder / f"{module}.py").write_text(f"open({str(marker)!r}, 'a').write('{module} ran\\n')\n")
    ItemTokenizer(["a", "b"]).save_pretrained(folder)
    return folder


AUTO_MAP = {"AutoConfig": "evil_config.EvilConfig", "AutoModel": "evil_model.EvilModel",
            "AutoModelForSequentialRecommendation": "evil_model.EvilModel"}  # fmt: skip


@pytest.mark.parametrize("answer", [None, "y\n"], ids=["stdin-closed", "stdin-says-yes"])
def test_loading_a_folder_never_runs_its_code_or_prompts(tmp_path, answer):
    marker = tmp_path / "code-ran.txt"
    folders = [
        _folder_with_code(tmp_path / "unknown-type", marker, {"model_type": "evil", "auto_map": AUTO_MAP}),
        _folder_with_code(tmp_path / "no-type", marker, {"auto_map": AUTO_MAP}),
    ]
    proc = run_python(f"""
        import json
        from hf_rec import AutoModelForSequentialRecommendation
        from hf_rec.cli import main
        from hf_rec.hub import load_recommender

        out = {{}}
        for folder in {[str(f) for f in folders]!r}:
            calls = {{
                "auto": lambda: AutoModelForSequentialRecommendation.from_pretrained(folder),
                "load_recommender": lambda: load_recommender(folder),
                "cli": lambda: main(["recommend", "--model", folder, "--history", "a"]),
            }}
            for name, call in calls.items():
                try:
                    call()
                    out[folder + " " + name] = "loaded"
                except SystemExit as err:
                    out[folder + " " + name] = str(err.code)
                except Exception as err:
                    out[folder + " " + name] = type(err).__name__ + ": " + str(err)
        print(json.dumps(out))
        """, tmp_path, stdin_text=answer, PYTHONPATH=str(REPO))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Do you wish to run the custom code" not in proc.stdout + proc.stderr
    assert not marker.exists(), marker.read_text()
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 6
    for where, message in results.items():
        assert "not an hf_rec family" in message and "\n" not in message, (where, message)
    assert results[f"{folders[1]} cli"].startswith("hf-rec recommend: ")


def test_hf_rec_folders_load_with_hf_rec_classes_not_the_copied_files(tmp_path):
    model, tok = tiny_model("sasrec")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    marker = tmp_path / "copied-code-ran.txt"
    with open(tmp_path / "m" / "modeling_sasrec.py", "a") as f:  # a tampered copy must not be what loads
        f.write(f"\nopen({str(marker)!r}, 'w').write('ran')\n")
    for trust in (False, True):
        loaded, _ = load_recommender(tmp_path / "m", trust_remote_code=trust)
        assert type(loaded).__module__ == "hf_rec.models.modeling_sasrec"
        assert type(loaded).__name__ == "SASRecForSequentialRecommendation"
    assert not marker.exists()


# ---- 10. AutoModel gives the same class with or without hf_rec ------------------------------------------------
def test_automodel_gives_the_same_class_with_and_without_hf_rec(tmp_path):
    model, _ = tiny_model("sasrec")
    model.save_pretrained(tmp_path / "sasrec")
    script = f"""
        import sys
        if sys.argv[1:] == ["without"]:
            sys.modules["hf_rec"] = None  # `import hf_rec` fails: only the saved files can be used
        else:
            import hf_rec  # noqa: F401  (registers the families)
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path / "sasrec")!r}, trust_remote_code=True)
        print(type(model).__module__, type(model).__name__, hasattr(model, "recommend"))
        """
    classes = {}
    for mode, pythonpath in (("with", str(REPO)), ("without", "")):
        proc = run_python(script, tmp_path, mode, PYTHONPATH=pythonpath)
        assert proc.returncode == 0, proc.stderr[-3000:]
        classes[mode] = proc.stdout.split()[-3:]
    assert classes["with"][0] == "hf_rec.models.modeling_sasrec"
    assert classes["without"][0].startswith("transformers_modules")
    assert classes["with"][1:] == classes["without"][1:] == ["SASRecForSequentialRecommendation", "True"]


# ---- 11. the loopback Hub serves nothing outside its root ------------------------------------------------------
@pytest.mark.parametrize("oid", ["/etc/passwd", "../../secret.txt", "../" * 8 + "etc/passwd", "A" * 64, ""])
def test_loopback_hub_refuses_oids_that_are_not_sha256(tmp_path, oid):
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import EntryNotFoundError

    (tmp_path / "secret.txt").write_text("not for the Hub")
    with LoopbackHub(tmp_path / "hub") as hub, hub_client_env(hub.endpoint):
        api = HfApi(endpoint=hub.endpoint, token=FAKE_TOKEN)
        repo = api.create_repo(f"{FAKE_USER}/lfs").repo_id
        body = "\n".join(json.dumps(line) for line in [
            {"key": "header", "value": {"summary": "sneaky"}},
            {"key": "lfsFile", "value": {"path": "leak.txt", "algo": "sha256", "oid": oid, "size": 10}},
        ])  # fmt: skip
        headers = {"Authorization": f"Bearer {FAKE_TOKEN}", "Content-Type": "application/x-ndjson"}
        response = httpx2.post(f"{hub.endpoint}/api/models/{repo}/commit/main", content=body.encode(), headers=headers)
        assert response.status_code == 400, response.text
        assert "leak.txt" not in api.list_repo_files(repo)
        with pytest.raises(EntryNotFoundError):
            api.hf_hub_download(repo, "leak.txt", cache_dir=tmp_path / "cache")


def test_loopback_hub_store_keeps_every_path_inside_its_root(tmp_path):
    from loopback_hub import HubError

    with LoopbackHub(tmp_path / "hub") as hub:
        store = hub.store
        for call in (
            lambda: store.get_commit("model", f"{FAKE_USER}/x", "../../../../etc/passwd"),
            lambda: store.read_blob({"sha256": "/etc/passwd"}),
            lambda: store._repo_dir("model", "../../etc"),
            lambda: store._repo_dir("../model", f"{FAKE_USER}/x"),
        ):
            with pytest.raises(HubError) as err:
                call()
            assert err.value.status in (400, 404)


# ---- 12. a repo id without namespace is refused before anything is created ---------------------------------------
def test_push_to_a_bare_repo_name_creates_nothing(hub_server, hub_api):
    name = f"onlyname-{uuid.uuid4().hex[:8]}"
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["push", str(tiny_model_folder("sasrec")), name])
    one_line_exit(exit_info, "hf-rec push: ", repr(name), "namespace/name")
    assert not hub_api.repo_exists(f"{FAKE_USER}/{name}")
    for bad in ("a/b/c", "/name", "user/", "user/na me"):
        with pytest.raises(SystemExit, match="must look like 'namespace/name'"):
            cli_main(["push", str(tiny_model_folder("sasrec")), bad])


# ---- 13. recommend inputs -----------------------------------------------------------------------------------
def test_recommend_accepts_integral_k_and_refuses_fractional_indices():
    model, tok = tiny_model("sasrec")
    history = tok.encode(["i3", "i7"])
    indices, _ = model.recommend([history], k=np.int64(5))
    assert indices.shape == (1, 5)
    assert torch.equal(indices, model.recommend([history], k=5)[0])
    assert torch.equal(model.recommend([np.asarray(history)], k=5)[0], indices)  # numpy integer indices are fine
    with pytest.raises(ValueError, match=r"history 0 holds 5\.7, which is not an integer item index"):
        model.recommend([[3, 5.7]], k=5)
    for k in (True, 2.0, 0, "5"):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            model.recommend([history], k=k)


def test_pipeline_accepts_a_numpy_top_k():
    from transformers import pipeline

    import hf_rec.pipelines  # noqa: F401  (registers the task)

    recommender = pipeline("next-item-recommendation", model=str(tiny_model_folder("sasrec")))
    assert len(recommender({"history": ["i3", "i7"]}, top_k=np.int64(3))) == 3


def test_raw_ids_with_surrounding_spaces_are_stripped_with_a_warning():
    tok = ItemTokenizer(["a", "b", "c"])
    with pytest.warns(UserWarning, match=r"stripped surrounding whitespace from 2 raw item id\(s\), e.g. ' b'"):
        assert tok.encode([" b", "c ", "a"]) == tok.encode(["b", "c", "a"])
    assert " b" in tok
    with pytest.warns(UserWarning, match="add_items: stripped"):
        assert tok.add_items([" d"], texts={" d": "Dee"}) == tok.encode(["d"])
    assert tok.text(tok.convert_id_to_index("d")) == "Dee" and tok.num_items == 4
    with pytest.warns(UserWarning, match="ItemTokenizer: stripped"), pytest.raises(ValueError, match="duplicate"):
        ItemTokenizer(["x", " x"])


def test_revision_for_a_local_folder_is_an_error():
    folder = tiny_model_folder("sasrec")
    with pytest.raises(ValueError, match="revision 'v1' was given, but .* is a local folder, which has no revisions"):
        load_recommender(folder, revision="v1")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["recommend", "--model", str(folder), "--history", "i3", "--revision", "v1"])
    one_line_exit(exit_info, "hf-rec recommend: revision 'v1'", "local folder")
