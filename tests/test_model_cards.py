"""Every published model folder under model_cards/<name>/ reproduces its card: re-evaluated on ../shared/data with
hf_rec, and again in a fresh process where hf_rec cannot be imported (the folder's own modeling files through
`trust_remote_code=True`, ranking written out by hand here), both to 1e-6 of the card's test NDCG@10."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hf_rec import AutoModelForSequentialRecommendation
from hf_rec.data import ItemTokenizer, dataset_fingerprint, load_sequential_dataset
from hf_rec.evaluation import Evaluator

REPO = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p for p in (REPO / "model_cards").iterdir() if (p / "config.json").is_file())

# Full-catalogue NDCG@10 with seen items filtered and ties without credit, from the model's own next-item logits.
_PLAIN_NDCG = r"""
import json, math, sys
sys.modules["hf_rec"] = None  # the folder must work where hf_rec is absent
import torch
from transformers import AutoModel

folder, data = sys.argv[1], json.load(open(sys.argv[2]))
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
window, pad = model.config.max_position_embeddings, model.config.pad_token_id
total = 0.0
with torch.inference_mode():
    for start in range(0, len(data["targets"]), 256):
        histories, targets = data["histories"][start:start + 256], data["targets"][start:start + 256]
        rows = [h[-window:] for h in histories]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        extra = {}
        if getattr(model.config, "use_time_bias", False):  # item times, then the target's: [B, L + 1], left-padded
            times = [t[-window:] + [tt] for t, tt in zip(data["timestamps"][start:start + 256],
                                                         data["target_timestamps"][start:start + 256])]
            extra["timestamps"] = torch.tensor([[0] * (width + 1 - len(t)) + t for t in times])
        logits = model(input_ids=ids, attention_mask=(ids != pad).long(), **extra).logits.float()
        for scores, history, target in zip(logits, histories, targets):
            score = scores[target].item()
            scores[history] = float("-inf")
            scores[target] = float("-inf")  # the target is not counted against itself
            rank = int((scores >= score).sum())
            total += 1.0 / math.log2(rank + 2) if rank < 10 else 0.0
print(json.dumps({"ndcg@10": total / len(data["targets"])}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_published_folder_reproduces_its_card(folder, shared_data, tmp_path):
    metrics = json.loads((folder / "metrics.json").read_text())
    claimed = {r.metric_type: r.metric_value for r in ModelCard.load(folder / "README.md").data.eval_results}
    assert claimed["ndcg@10"] == pytest.approx(metrics["test"]["ndcg@10"], abs=1e-6)  # the card shows 6 decimals
    name, options = metrics["dataset"]["name"], metrics["dataset"]["options"]
    if not (shared_data / name).is_dir():
        pytest.skip(f"{name} not in {shared_data}")
    splits, tokenizer = load_sequential_dataset(name, shared_data / name, **options)
    assert dataset_fingerprint(splits, options) == metrics["dataset"]["fingerprint"]
    published = ItemTokenizer.from_pretrained(folder)
    assert published.item_ids == tokenizer.item_ids
    if name.startswith("ml-"):  # MovieLens terms: ids only, no titles in a published folder
        assert not any(published.item_texts or [])
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 10_000_000

    model = AutoModelForSequentialRecommendation.from_pretrained(folder)
    again = Evaluator(splits["test"], ks=(10,), show_progress=False).evaluate(model)
    assert again["ndcg@10"] == pytest.approx(claimed["ndcg@10"], abs=1e-6)
    assert again["ndcg@10"] == pytest.approx(metrics["test"]["ndcg@10"], abs=1e-9)

    data = tmp_path / "test.json"
    test = {"histories": [list(map(int, h)) for h in splits["test"]["item_ids"]],
            "targets": [int(t) for t in splits["test"]["target"]]}
    if "timestamps" in splits["test"].column_names:
        test["timestamps"] = [list(map(int, t)) for t in splits["test"]["timestamps"]]
        test["target_timestamps"] = [int(t) for t in splits["test"]["target_timestamp"]]
    data.write_text(json.dumps(test))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", _PLAIN_NDCG, str(folder), str(data)], capture_output=True,
                          text=True, timeout=1200, cwd=tmp_path, env={**env, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    plain = json.loads(done.stdout.strip().splitlines()[-1])
    assert plain["ndcg@10"] == pytest.approx(claimed["ndcg@10"], abs=1e-6)
    assert math.isfinite(plain["ndcg@10"])
