"""Model folders shared by test_hub_push.py, test_pipeline.py and test_cli.py, each built once per test session.

Plain cached functions rather than fixtures: a session fixture defined in (or imported into) several test modules
would run once per module, and conftest.py belongs to the lead.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import shutil
import tempfile
from pathlib import Path

import torch

_ROOT = Path(tempfile.mkdtemp(prefix="hf_rec_hub_tests_"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)

SHARED_DATA = Path(os.environ.get("HF_REC_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
NUM_ITEMS = 30
# A superset of tiny hyperparameters; each family's config takes the ones its __init__ names.
TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, gru_hidden_size=16,
            max_position_embeddings=12)  # fmt: skip
# Per-family extras for families whose configs need more than TINY (add new families here).
TINY_OVERRIDES: dict[str, dict] = {}


def tiny_tokenizer():
    from hf_rec.data import ItemTokenizer

    ids = [f"i{n}" for n in range(NUM_ITEMS)]
    return ItemTokenizer(ids, item_texts={i: f"Item {i} title" for i in ids[: NUM_ITEMS - 5]},
                         metadata={"dataset": "tiny"})  # fmt: skip


def tiny_model(family: str, seed: int = 0):
    from hf_rec.models import FAMILIES

    config_class, head_class = FAMILIES[family]
    tok = tiny_tokenizer()
    accepted = set(inspect.signature(config_class.__init__).parameters)
    kwargs = {k: v for k, v in TINY.items() if k in accepted}
    kwargs.update(TINY_OVERRIDES.get(family, {}))
    config = config_class(vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id, mask_token_id=tok.mask_token_id,
                          **kwargs)  # fmt: skip
    torch.manual_seed(seed)
    return head_class(config).eval(), tok


@functools.cache
def tiny_model_folder(family: str, seed: int = 0) -> Path:
    """`save_pretrained` output + item_tokenizer.json of a tiny, untrained model (no metrics, no card)."""
    model, tok = tiny_model(family, seed)
    folder = _ROOT / f"{family}-{seed}"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@functools.cache
def tiny_run_folder() -> Path:
    """A real run folder: one SASRec epoch on ML-100k (~10 s), with metrics, card, checkpoints/ and tensorboard/."""
    from hf_rec.training import train
    from hf_rec.training.config import RunConfig

    data_dir = SHARED_DATA / "ml-100k"
    if not data_dir.is_dir():
        import pytest

        pytest.skip(f"ML-100k not found at {data_dir} (set HF_REC_SHARED_DATA)")
    folder = _ROOT / "sasrec-run"
    if (folder / "metrics.json").is_file():  # trained once per test session
        return folder
    run = RunConfig.from_dict({
        "model": {"family": "sasrec", "hidden_size": 16, "num_attention_heads": 1, "max_position_embeddings": 20},
        "data": {"name": "ml-100k", "data_dir": str(data_dir)},
        "training": {"num_epochs": 1, "batch_size": 256},
        "evaluation": {"ks": [10]},
    })  # fmt: skip
    train(run, folder)
    return folder
