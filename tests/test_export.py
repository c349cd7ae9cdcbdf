"""Export and offline scoring: ONNX (run by a real onnxruntime) for every family, faiss indexes (real faiss) against
exact ranking, and batch scoring to Parquet, each checked against `model.recommend`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the export extra is not installed: pip install 'hf-rec[export]'")
pytest.importorskip("faiss", reason="the export extra is not installed: pip install 'hf-rec[export]'")

from hf_rec import HSTUConfig, HSTUForSequentialRecommendation  # noqa: E402
from hf_rec.models import FAMILIES  # noqa: E402
from hf_rec.serving.export import export_onnx  # noqa: E402
from hf_rec.serving.index import build_index, load_index, save_index, search_index  # noqa: E402
from hub_helpers import tiny_model  # noqa: E402


def noisy(model, scale=0.1):
    """Away from the initial values (zero time weights, identity norms), so that every part of the graph matters."""
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))
    return model.eval()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_onnx_export_matches_pytorch(family, tmp_path):
    model = noisy(tiny_model(family)[0])
    config = export_onnx(model, tmp_path, check_users=48, k=5)
    check = config["check"]
    assert check["users"] == 48 and check["same_top_k"] == 48, check
    assert check["max_abs_user_vector_diff"] < 1e-4
    saved = json.loads((tmp_path / "export_config.json").read_text())
    assert saved["max_history_length"] == model.max_history_length() and saved["inputs"] == ["input_ids",
                                                                                              "attention_mask"]
    # the files alone (onnxruntime + the item table) reproduce recommend, longest history included
    import onnxruntime as ort
    from safetensors.numpy import load_file

    session = ort.InferenceSession(str(tmp_path / "user_encoder.onnx"), providers=["CPUExecutionProvider"])
    items = load_file(str(tmp_path / "item_embeddings.safetensors"))["item_embeddings"]
    histories = [[1, 2, 3], list(range(1, 25))[-model.max_history_length() :], [7]]
    input_ids, attention_mask = model.histories_to_inputs(histories)
    users = session.run(None, {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})[0]
    scores = users @ items.T
    for row, history in enumerate(histories):
        scores[row, history + model.config.special_ids] = -np.inf
    expected = model.recommend(histories, k=5)[0].numpy()
    assert (np.argsort(-scores, axis=1, kind="stable")[:, :5] == expected).all()


def test_onnx_export_with_timestamps(tmp_path):
    torch.manual_seed(0)
    model = noisy(HSTUForSequentialRecommendation(HSTUConfig(vocab_size=40, hidden_size=16, max_position_embeddings=10,
                                                             num_hidden_layers=2, num_attention_heads=2,
                                                             use_time_bias=True)), scale=0.3)  # fmt: skip
    config = export_onnx(model, tmp_path, check_users=32, k=5)
    assert config["inputs"] == ["input_ids", "attention_mask", "timestamps"]
    assert config["check"]["same_top_k"] == 32 and config["check"]["max_abs_user_vector_diff"] < 1e-4


def test_faiss_indexes_against_exact_ranking(tmp_path):
    model = noisy(tiny_model("sasrec")[0], scale=0.5)
    items = model.get_item_embeddings()
    histories = [[1, 2, 3], [4], [5, 6, 7, 8, 9], [10, 11]]
    with torch.no_grad():
        users = model.get_user_embeddings(*model.histories_to_inputs(histories))
    expected_ids, expected_scores = model.recommend(histories, k=8)
    exact = build_index(items, model.config.special_ids, kind="flat")
    assert exact.ntotal == items.shape[0] - len(model.config.special_ids)
    ids, scores = search_index(exact, users, 8, exclude=histories)
    assert (ids == expected_ids.numpy()).all()
    np.testing.assert_allclose(scores, expected_scores.numpy(), rtol=1e-5, atol=1e-5)
    for kind in ("hnsw", "ivf"):  # tiny catalogue: the approximate indexes must find the same items
        index = build_index(items, model.config.special_ids, kind=kind, nlist=4, nprobe=4)
        assert (search_index(index, users, 8, exclude=histories)[0] == expected_ids.numpy()).all(), kind
    save_index(exact, tmp_path / "items.faiss")
    assert (search_index(load_index(tmp_path / "items.faiss"), users, 8, histories)[0] == ids).all()
    # more exclusions than items left: the rest is -1 / -inf
    everything = [list(range(1, items.shape[0]))] * 4
    ids, scores = search_index(exact, users, 3, exclude=everything)
    assert (ids == -1).all() and np.isneginf(scores).all()
    with pytest.raises(ValueError, match="index kind must be one of"):
        build_index(items, kind="lsh")


def test_batch_scoring_writes_recommend_to_parquet(tmp_path):
    import pyarrow.parquet as pq

    from hf_rec.serving.batch import jsonl_histories, write_recommendations

    model, tok = tiny_model("gru4rec")
    model = noisy(model)
    lines = [{"user_id": f"u{n}", "history": [f"i{(n * 7 + j) % 30}" for j in range(1 + n % 5)]} for n in range(23)]
    path = tmp_path / "histories.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    report = write_recommendations(model, tok, jsonl_histories(path, tok), tmp_path / "recs.parquet", k=4,
                                   chunk_size=5, progress=False)  # fmt: skip
    assert report["users"] == 23
    table = pq.read_table(tmp_path / "recs.parquet").to_pylist()
    indices, scores = model.recommend([tok.encode(line["history"]) for line in lines], k=4)
    assert [row["user_id"] for row in table] == [line["user_id"] for line in lines]
    assert [row["item_ids"] for row in table] == [tok.decode(row) for row in indices.tolist()]
    np.testing.assert_allclose([row["scores"] for row in table], scores.numpy(), rtol=1e-5)
    assert not (tmp_path / "recs.parquet.partial").exists()
    path.write_text(json.dumps(lines[0]) + "\n" + '{"user_id": "x", "history": ["nope"]}\n')
    with pytest.raises(ValueError, match=r"histories.jsonl, line 2: .*unknown item id"):
        write_recommendations(model, tok, jsonl_histories(path, tok), tmp_path / "bad.parquet", progress=False)


def test_cli_export_index_and_batch_score(tmp_path, capsys):
    import pyarrow.parquet as pq

    from hf_rec.cli import main
    from hub_helpers import tiny_model_folder

    folder = str(tiny_model_folder("sasrec"))
    assert main(["export", folder, str(tmp_path / "onnx"), "--check-users", "16"]) == 0
    assert json.loads(capsys.readouterr().out)["same_top_k"] == 16
    assert (tmp_path / "onnx" / "user_encoder.onnx").is_file()
    assert main(["index", folder, str(tmp_path / "items.faiss"), "--kind", "hnsw"]) == 0
    assert load_index(tmp_path / "items.faiss").ntotal == 30  # 30 items, padding and mask left out
    (tmp_path / "h.jsonl").write_text('{"user_id": "a", "history": ["i3", "i4"]}\n{"user_id": "b", "history": ["i9"]}\n')
    capsys.readouterr()
    assert main(["batch-score", folder, "--histories", str(tmp_path / "h.jsonl"), "--output",
                 str(tmp_path / "r.parquet"), "--k", "3"]) == 0  # fmt: skip
    rows = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert [r["user_id"] for r in rows] == ["a", "b"] and all(len(r["item_ids"]) == 3 for r in rows)
    with pytest.raises(SystemExit) as err:
        main(["index", folder, str(tmp_path / "x.faiss"), "--kind", "lsh"])
    assert err.value.code == 2 and "invalid choice: 'lsh'" in capsys.readouterr().err
