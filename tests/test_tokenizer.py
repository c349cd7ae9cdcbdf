"""ItemTokenizer: layout, encode/decode, cold-start items, JSON round trip and validation."""

from __future__ import annotations

import json

import pytest

from hf_rec.data import TOKENIZER_FILE_NAME, ItemTokenizer


@pytest.fixture
def tok() -> ItemTokenizer:
    return ItemTokenizer(["a", "b", "c"], {"a": "Alpha", "c": "Gamma"}, metadata={"dataset": "toy"})


def test_layout(tok):
    assert tok.pad_token_id == 0
    assert tok.num_items == 3
    assert tok.mask_token_id == 4
    assert tok.vocab_size == 5 == len(tok)
    assert tok.special_ids == [0, 4]
    assert tok.item_ids == ["a", "b", "c"]
    assert tok.item_indices == [1, 2, 3]
    assert "a" in tok and "z" not in tok and 3 not in tok


def test_encode_decode(tok):
    assert tok.encode(["c", "a", "b"]) == [3, 1, 2]
    assert tok.decode([3, 1, 2]) == ["c", "a", "b"]
    assert ItemTokenizer(["1", "2"]).encode([2, "1"]) == [2, 1]  # integer raw ids are accepted as strings


def test_unknown_ids(tok):
    with pytest.raises(ValueError, match=r"'zz'.*'yy'|unknown"):
        tok.encode(["a", "zz", "yy"])
    with pytest.raises(ValueError) as err:
        tok.encode(["a", "zz"])
    assert "'zz'" in str(err.value)
    assert tok.encode(["a", "zz", "c"], unknown="ignore") == [1, 3]
    with pytest.raises(ValueError):
        tok.encode(["a"], unknown="skip")
    with pytest.raises(TypeError):
        tok.encode("abc")


@pytest.mark.parametrize("bad", [0, 4, 5, -1, 100])
def test_decode_rejects_special_and_out_of_range(tok, bad):
    with pytest.raises(ValueError):
        tok.decode([1, bad])


def test_texts(tok):
    assert tok.item_texts == {1: "Alpha", 3: "Gamma"}
    assert tok.text(1) == "Alpha" and tok.text(2) is None
    assert tok.texts([3, 2]) == ["Gamma", None]
    with pytest.raises(ValueError):
        tok.text(0)
    aligned = ItemTokenizer(["x", "y"], ["X", None])
    assert aligned.item_texts == {1: "X"}


def test_add_items_after_mask(tok):
    new = tok.add_items(["d", "e"], texts=["Delta", None])
    assert new == [5, 6]
    assert tok.mask_token_id == 4  # never moves
    assert tok.num_items == 5 and tok.vocab_size == 7 and tok.num_added_items == 2
    assert tok.encode(["e", "a", "d"]) == [6, 1, 5]
    assert tok.decode([5, 6, 3]) == ["d", "e", "c"]
    assert tok.text(5) == "Delta"
    assert tok.item_indices == [1, 2, 3, 5, 6]
    with pytest.raises(ValueError):
        tok.add_items(["a"])
    assert tok.add_items(["a", "f"], exist_ok=True) == [1, 7]
    with pytest.raises(ValueError):
        tok.add_items(["g", "g"])


def test_duplicate_ids_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        ItemTokenizer(["a", "b", "a"])


def test_save_load_round_trip(tok, tmp_path):
    tok.add_items(["d"], texts={"d": "Délta ✓"})
    tok.metadata["fingerprint"] = "abc"
    path = tok.save_pretrained(tmp_path / "tok")
    assert path.endswith(TOKENIZER_FILE_NAME)
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == [TOKENIZER_FILE_NAME]  # no temp file left
    data = json.loads((tmp_path / "tok" / TOKENIZER_FILE_NAME).read_text("utf-8"))
    assert data["format_version"] == 1 and data["item_ids"] == ["a", "b", "c", "d"]
    for source in (tmp_path / "tok", tmp_path / "tok" / TOKENIZER_FILE_NAME):
        loaded = ItemTokenizer.from_pretrained(source)
        assert loaded == tok
        assert loaded.mask_token_id == 4 and loaded.encode(["d"]) == [5]
        assert loaded.item_texts == tok.item_texts
        assert loaded.metadata == {"dataset": "toy", "fingerprint": "abc"}
    # saving again overwrites atomically
    tok.save_pretrained(tmp_path / "tok")
    assert ItemTokenizer.from_pretrained(tmp_path / "tok") == tok


def test_truncated_json(tok, tmp_path):
    path = tok.save_pretrained(tmp_path)
    text = open(path, encoding="utf-8").read()
    open(path, "w", encoding="utf-8").write(text[: len(text) // 2])
    with pytest.raises(ValueError) as err:
        ItemTokenizer.from_pretrained(tmp_path)
    assert TOKENIZER_FILE_NAME in str(err.value) and "JSON" in str(err.value)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(format_version=99), "format_version"),
        (lambda d: d.update(item_ids=["a", "b", "a"]), "duplicate"),
        (lambda d: d.update(mask_token_id=1), "mask_token_id"),
        (lambda d: d.update(item_texts=["x"]), "item_texts"),
        (lambda d: d.update(format="something-else"), "format"),
    ],
)
def test_invalid_files(tok, tmp_path, mutate, message):
    data = tok.to_dict()
    mutate(data)
    path = tmp_path / TOKENIZER_FILE_NAME
    path.write_text(json.dumps(data), "utf-8")
    with pytest.raises(ValueError, match=message) as err:
        ItemTokenizer.from_pretrained(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        ItemTokenizer.from_pretrained(tmp_path)
