"""load_sequential_dataset: the real datasets, generic files, options, reports and bad input."""

from __future__ import annotations

import gzip
import json
import logging
import time

import numpy as np
import pandas as pd
import pytest

from hf_rec.data import (
    BUILTIN_DATASETS,
    ItemTokenizer,
    dataset_fingerprint,
    dataset_statistics,
    load_sequential_dataset,
)


def _full_sequences(splits, tok) -> dict[str, list[str]]:
    test = splits["test"]
    return {u: tok.decode(h + [t]) for u, h, t in zip(test["user_id"], test["item_ids"], test["target"])}


def _check_leave_one_out(splits):
    train, val, test = splits["train"], splits["validation"], splits["test"]
    assert len(train) == len(val) == len(test)
    assert train["user_id"] == val["user_id"] == test["user_id"]
    assert set(train["target"]) == {-1}
    for tr, va, te in zip(train.select(range(min(50, len(train)))), val, test):
        assert tr["item_ids"] == va["item_ids"]
        assert te["item_ids"] == va["item_ids"] + [va["target"]]
        assert len(tr["item_ids"]) >= 1


# =============================================================================== real data
@pytest.fixture(scope="module")
def ml1m(ml1m_dir):
    t0 = time.perf_counter()
    splits, tok = load_sequential_dataset("ml-1m", ml1m_dir)
    return splits, tok, time.perf_counter() - t0


def test_ml1m_counts(ml1m):
    splits, tok, seconds = ml1m
    assert seconds < 20, f"ML-1M took {seconds:.1f}s"
    assert tok.num_items == 3706 and tok.vocab_size == 3708 and tok.mask_token_id == 3707
    assert {name: len(ds) for name, ds in splits.items()} == {"train": 6040, "validation": 6040, "test": 6040}
    lengths = [len(x) for x in splits["train"]["item_ids"]]
    assert sum(lengths) == 988_129
    stats = dataset_statistics(splits)
    assert (stats["users"], stats["items"], stats["interactions"]) == (6040, 3706, 1_000_209)
    assert stats["sequence_length"]["min"] == 20 and stats["sequence_length"]["max"] == 2314
    assert stats["sequence_length"]["median"] == 96
    assert str(splits["train"].features["item_ids"].feature.dtype) == "int64"
    report = tok.metadata["report"]
    assert report["interactions"] == 1_000_209 and report["short_users_excluded"] == 0
    assert tok.metadata["fingerprint"] == dataset_fingerprint(splits, {"dataset": "ml-1m", **tok.metadata["options"]})
    assert len(tok.item_texts) == 3706
    assert tok.text(tok.encode(["1"])[0]) == "Toy Story (1995). Genres: Animation, Children's, Comedy"


def test_ml1m_targets_match_raw_file(ml1m, ml1m_dir):
    splits, tok, _ = ml1m
    raw = pd.read_csv(ml1m_dir / "ratings_seq.tsv.gz", sep="\t")
    test = splits["test"]
    val = splits["validation"]
    users = test["user_id"]
    assert users[:3] == ["1", "2", "3"]  # first-appearance order = file order
    for user in ("1", "2", "2999", "3000", "4169", "6040"):
        row = users.index(user)
        seq = raw[raw.user_id == int(user)].sort_values("seq_pos")["movie_id"].astype(str).tolist()
        assert tok.decode([test[row]["target"]]) == [seq[-1]]
        assert tok.decode([val[row]["target"]]) == [seq[-2]]
        assert tok.decode(test[row]["item_ids"]) == seq[:-1]
    # item indices: order of first appearance (user 1's first item gets index 1)
    first = raw[raw.user_id == 1].sort_values("seq_pos")["movie_id"].astype(str).tolist()
    assert tok.decode([1, 2]) == first[:2]


def test_ml100k(ml100k_dir):
    splits, tok = load_sequential_dataset("ml-100k", ml100k_dir)
    stats = dataset_statistics(splits)
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100_000)
    assert all(len(ds) == 943 for ds in splits.values())
    _check_leave_one_out(splits)
    raw = pd.read_csv(ml100k_dir / "u.data", sep="\t", names=["user", "item", "rating", "ts"])
    seqs = _full_sequences(splits, tok)
    # users with tied timestamps keep file order: compare to an independent pandas stable sort
    tied = raw[raw.duplicated(["user", "ts"], keep=False)]
    checked = 0
    for user in tied.user.unique()[:20]:
        expected = raw[raw.user == user].sort_values("ts", kind="stable")["item"].astype(str).tolist()
        assert seqs[str(user)] == expected
        checked += 1
    assert checked == 20
    assert list(seqs)[:3] == [str(u) for u in raw.user.unique()[:3]]
    assert tok.text(tok.encode(["1"])[0]) == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert len(tok.item_texts) == 1682


def test_amazon_scientific(scientific_dir):
    splits, tok = load_sequential_dataset("amazon-scientific", scientific_dir)
    stats = dataset_statistics(splits)
    assert (stats["users"], stats["items"], stats["interactions"]) == (8442, 4385, 59_427)
    assert len(tok.item_texts) == tok.num_items == 4385
    assert all(tok.text(i) for i in tok.item_indices)
    assert splits["test"][0]["user_id"] == "ABW8NXS7SV55K"
    # chronological order = line order of Scientific.full_seq.txt, mapped back to ASINs
    first_line = (scientific_dir / "Scientific.full_seq.txt").read_text().splitlines()[0].split()
    item_map = dict(line.split("\t")[::-1] for line in (scientific_dir / "Scientific.item2index").read_text().splitlines())
    expected = [item_map[i] for i in first_line[1:]]
    assert _full_sequences(splits, tok)["ABW8NXS7SV55K"] == expected


def test_amazon_beauty(beauty_dir):
    splits, tok = load_sequential_dataset("amazon-beauty", beauty_dir)
    stats = dataset_statistics(splits)
    assert (stats["users"], stats["items"], stats["interactions"]) == (22_363, 12_101, 198_502)
    assert tok.item_texts == {}
    assert splits["test"][0]["user_id"] == "A1YJEY40YUW4SE"  # ASINs via user_sequence.txt
    assert tok.decode([1]) == ["B004756YJA"]


def test_beauty_without_asin_file(tmp_path):
    (tmp_path / "Beauty.txt").write_text("1 1 2 3 4\n2 3 4 5\n")
    splits, tok = load_sequential_dataset("amazon-beauty", tmp_path)
    assert splits["test"]["user_id"] == ["1", "2"]
    assert tok.item_ids == ["1", "2", "3", "4", "5"]


def test_ml1m_official_layout(tmp_path):
    # ratings.dat with timestamps: ties keep file order, users in first-appearance order
    lines = ["2::10::5::300", "2::11::4::100", "2::12::3::100", "1::20::1::5", "1::21::5::4", "1::22::5::6"]
    (tmp_path / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="latin-1")
    (tmp_path / "movies.dat").write_bytes(
        "10::Am\xe9lie (2001)::Comedy|Romance\n11::B (1990)::Drama\n12::C (1991)::Drama\n20::D (1992)::Drama\n"
        "21::E (1993)::Drama\n22::F (1994)::Drama\n".encode("latin-1")
    )
    splits, tok = load_sequential_dataset("ml-1m", tmp_path, min_rating=2)
    assert tok.metadata["report"]["dropped_min_rating"] == 1
    assert tok.metadata["report"]["short_users_excluded"] == 1  # user 1 has 2 left
    assert _full_sequences(splits, tok) == {"2": ["11", "12", "10"]}
    assert tok.text(tok.encode(["10"])[0]) == "Amélie (2001). Genres: Comedy, Romance"


# =============================================================================== generic files
ROWS = [
    # user, item, timestamp, rating  (u1 has a tie at ts=20: file order i3 then i2)
    ("u1", "i1", 10, 5),
    ("u2", "i4", 5, 4),
    ("u1", "i3", 20, 3),
    ("u1", "i2", 20, 4),
    ("u2", "i1", 6, 2),
    ("u2", "i2", 7, 5),
    ("u1", "i5", 15, 1),
    ("u2", "i3", 8, 4),
]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=["user_id", "item_id", "timestamp", "rating"])


@pytest.fixture
def inter_files(tmp_path):
    df = _frame()
    paths = {
        "csv": tmp_path / "inter.csv",
        "tsv": tmp_path / "inter.tsv",
        "jsonl": tmp_path / "inter.jsonl",
        "parquet": tmp_path / "inter.parquet",
    }
    df.to_csv(paths["csv"], index=False)
    df.to_csv(paths["tsv"], index=False, sep="\t")
    df.to_json(paths["jsonl"], orient="records", lines=True)
    df.to_parquet(paths["parquet"], index=False)
    return paths


def test_generic_formats_agree(inter_files):
    fingerprints = set()
    for fmt, path in inter_files.items():
        splits, tok = load_sequential_dataset(str(path))
        seqs = _full_sequences(splits, tok)
        assert seqs == {"u1": ["i1", "i5", "i3", "i2"], "u2": ["i4", "i1", "i2", "i3"]}, fmt
        assert tok.item_ids == ["i1", "i5", "i3", "i2", "i4"]
        assert splits["train"]["item_ids"] == [[1, 2], [5, 1]]
        assert splits["validation"]["target"] == [3, 4] and splits["test"]["target"] == [4, 3]
        fingerprints.add(tok.metadata["fingerprint"])
    assert len(fingerprints) == 1


def test_generic_without_timestamp_keeps_file_order(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("user_id,item_id\na,x\nb,y\na,z\na,y\nb,x\nb,z\n")
    splits, tok = load_sequential_dataset(path)
    assert _full_sequences(splits, tok) == {"a": ["x", "z", "y"], "b": ["y", "x", "z"]}


def test_generic_iso_timestamps_and_item_text(tmp_path):
    path = tmp_path / "dates.csv"
    path.write_text(
        "user_id,item_id,timestamp\n1,a,2020-01-03\n1,b,2020-01-01T10:00:00\n1,c,2020-01-02\n"
    )
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"item_id": "a", "text": "Apple"}\n{"item_id": "c", "text": "Cherry"}\n')
    splits, tok = load_sequential_dataset(path, item_text_path=texts)
    assert _full_sequences(splits, tok) == {"1": ["b", "c", "a"]}
    assert tok.texts(tok.encode(["a", "b", "c"])) == ["Apple", None, "Cherry"]
    assert tok.metadata["report"]["items_without_text"] == 1


# =============================================================================== options + reports
def _write(tmp_path, rows, name="inter.csv"):
    path = tmp_path / name
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"]).to_csv(path, index=False)
    return path


def test_min_rating_reports(tmp_path, caplog):
    rows = [("u", f"i{k}", k, 1 + k % 5) for k in range(10)]
    path = _write(tmp_path, rows)
    with caplog.at_level(logging.INFO, logger="hf_rec.data"):
        splits, tok = load_sequential_dataset(path, min_rating=3)
    assert tok.metadata["report"]["dropped_min_rating"] == 4  # ratings 1, 2, 1, 2
    assert "min_rating=3 dropped 4" in caplog.text
    assert _full_sequences(splits, tok)["u"] == ["i2", "i3", "i4", "i7", "i8", "i9"]
    assert tok.metadata["options"]["min_rating"] == 3


def test_k_core_iterates_until_stable(tmp_path, caplog):
    # item z is seen only by user c; dropping it leaves c with 2 items (< 3), which then drops
    # c's items x, y below 3 users... iterate until stable
    rows = []
    t = 0
    for user, items in {"a": "xyw", "b": "xyw", "c": "xyz", "d": "xwy"}.items():
        for item in items:
            rows.append((user, item, t, 5))
            t += 1
    path = _write(tmp_path, rows)
    with caplog.at_level(logging.INFO, logger="hf_rec.data"):
        splits, tok = load_sequential_dataset(path, user_k_core=3, item_k_core=2)
    report = tok.metadata["report"]
    assert report["dropped_k_core"] == 3  # z, then c's x and y
    assert report["k_core_iterations"] >= 2
    assert report["k_core_dropped_users"] == 1 and report["k_core_dropped_items"] == 1
    assert "k-core" in caplog.text
    assert set(splits["test"]["user_id"]) == {"a", "b", "d"}


def test_max_history_keeps_most_recent(tmp_path):
    rows = [("u", f"i{k}", 100 - k, 5) for k in range(6)] + [("v", "i1", 1, 5), ("v", "i2", 2, 5), ("v", "i3", 3, 5)]
    path = _write(tmp_path, rows)
    splits, tok = load_sequential_dataset(path, max_history=4)
    assert _full_sequences(splits, tok) == {"u": ["i3", "i2", "i1", "i0"], "v": ["i1", "i2", "i3"]}
    assert tok.metadata["report"]["dropped_max_history"] == 2


def test_short_users_excluded_and_reported(tmp_path, caplog):
    rows = [("a", "x", 1, 5), ("a", "y", 2, 5), ("a", "z", 3, 5), ("b", "x", 1, 5), ("b", "q", 2, 5), ("c", "y", 1, 5)]
    path = _write(tmp_path, rows)
    with caplog.at_level(logging.WARNING, logger="hf_rec.data"):
        splits, tok = load_sequential_dataset(path)
    report = tok.metadata["report"]
    assert report["short_users_excluded"] == 2 and report["short_user_interactions_dropped"] == 3
    assert "2 user(s) with fewer than 3 interactions" in caplog.text
    assert all(ds["user_id"] == ["a"] for ds in splits.values())
    assert "q" not in tok and tok.num_items == 3


def test_nobody_left_raises(tmp_path):
    path = _write(tmp_path, [("a", "x", 1, 5), ("a", "y", 2, 5)])
    with pytest.raises(ValueError, match="no user"):
        load_sequential_dataset(path)


def test_fingerprint_stable_and_sensitive(inter_files):
    s1, t1 = load_sequential_dataset(inter_files["csv"])
    s2, t2 = load_sequential_dataset(inter_files["csv"])
    assert t1.metadata["fingerprint"] == t2.metadata["fingerprint"]
    fp = dataset_fingerprint(s1)
    assert fp == dataset_fingerprint(s2) and len(fp) == 64
    assert dataset_fingerprint(s1, {"a": 1}) != fp
    assert dataset_fingerprint({"train": s1["train"].select([1, 0]), "validation": s1["validation"], "test": s1["test"]}) != fp
    _, t3 = load_sequential_dataset(inter_files["csv"], min_rating=1)
    assert t3.metadata["fingerprint"] != t1.metadata["fingerprint"]


def test_tokenizer_metadata_round_trip(inter_files, tmp_path):
    _, tok = load_sequential_dataset(inter_files["csv"])
    tok.save_pretrained(tmp_path / "t")
    again = ItemTokenizer.from_pretrained(tmp_path / "t")
    assert again == tok and again.metadata["dataset"] == "inter"
    assert json.loads(json.dumps(tok.metadata)) == tok.metadata


def test_statistics_small(inter_files):
    splits, _ = load_sequential_dataset(inter_files["csv"])
    stats = dataset_statistics(splits)
    assert stats["users"] == 2 and stats["items"] == 5 and stats["interactions"] == 8
    assert stats["sequence_length"]["min"] == stats["sequence_length"]["max"] == 4
    assert stats["density"] == pytest.approx(8 / 10)


# =============================================================================== bad input
def _assert_error(fn, *parts):
    with pytest.raises(ValueError) as err:
        fn()
    msg = str(err.value)
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return msg


@pytest.mark.parametrize(
    "text, line, bad",
    [
        ("user_id,item_id,rating\nu,a,5\nu,b,4,9\n", "line 3", "4,9"),  # too many fields
        ("user_id,item_id,rating\nu,a,5\nu,b,4\nu,c\n", "line 4", "u,c"),  # too few fields
        ("user_id,item_id,rating\nu,a,5\nu,b,4\nu,c,abc\n", "line 4", "'abc'"),  # non-numeric rating
        ("user_id,item_id,timestamp\nu,a,5\nu,b,yesterday\n", "line 3", "'yesterday'"),
        ("user_id,item_id\n\nu,a\n\nu,,\n", "line 5", ""),  # blank lines count in line numbers
        ("user,item\nu,a\n", "line 1", "user_id"),  # missing columns
    ],
)
def test_bad_csv(tmp_path, text, line, bad):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    _assert_error(lambda: load_sequential_dataset(path), "bad.csv", line, bad)


def test_bad_jsonl_and_parquet(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"user_id": "u", "item_id": "a"}\n{"user_id": "u", "item_id": \n')
    _assert_error(lambda: load_sequential_dataset(path), "bad.jsonl", "line 2")
    path.write_text('{"user_id": "u", "item_id": "a", "rating": 3}\n{"user_id": "u", "item_id": "b", "rating": "x"}\n')
    _assert_error(lambda: load_sequential_dataset(path), "bad.jsonl", "line 2", "'x'")
    pq = tmp_path / "bad.parquet"
    pd.DataFrame({"user_id": ["u"], "item": ["a"]}).to_parquet(pq)
    _assert_error(lambda: load_sequential_dataset(pq), "bad.parquet", "item_id")


def test_empty_missing_unknown(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _assert_error(lambda: load_sequential_dataset(empty), "empty.csv", "line 1", "empty")
    header_only = tmp_path / "header.tsv"
    header_only.write_text("user_id\titem_id\n")
    _assert_error(lambda: load_sequential_dataset(header_only), "header.tsv", "empty")
    msg = _assert_error(lambda: load_sequential_dataset(tmp_path / "missing.csv"), "missing.csv")
    for name in BUILTIN_DATASETS:
        assert name in msg
    _assert_error(lambda: load_sequential_dataset("no-such-dataset"), "no-such-dataset", "ml-1m", "amazon-beauty")
    _assert_error(lambda: load_sequential_dataset("ml-100k", tmp_path / "nope"), "nope")
    (tmp_path / "x.xlsx").write_text("user_id,item_id\n")
    _assert_error(lambda: load_sequential_dataset(tmp_path / "x.xlsx"), "x.xlsx", "unsupported")


def test_directory_missing_files(tmp_path):
    (tmp_path / "u.item").write_text("1|A|||x" + "|0" * 19 + "\n")
    _assert_error(lambda: load_sequential_dataset("ml-100k", tmp_path), str(tmp_path), "u.data")
    _assert_error(lambda: load_sequential_dataset("ml-1m", tmp_path), "ratings.dat or ratings_seq.tsv.gz", "movies.dat")
    _assert_error(
        lambda: load_sequential_dataset("amazon-scientific", tmp_path),
        "Scientific.full_seq.txt", "Scientific.item2index", "Scientific.user2index", "Scientific.text",
    )  # fmt: skip
    _assert_error(lambda: load_sequential_dataset("amazon-beauty", tmp_path), "Beauty.txt")


def test_bad_fixed_format_files(tmp_path):
    d = tmp_path / "ml100k"
    d.mkdir()
    good = "1\t1\t5\t100\n1\t2\t4\t101\n"
    (d / "u.data").write_text(good + "1\t3\t4\n")
    _assert_error(lambda: load_sequential_dataset("ml-100k", d, item_text=False), "u.data", "line 3", "expected 4 fields")
    (d / "u.data").write_text(good + "1\t3\tfour\t102\n")
    _assert_error(lambda: load_sequential_dataset("ml-100k", d, item_text=False), "u.data", "line 3", "rating", "'four'")
    (d / "u.data").write_text(good + "1\t3\t4\t1.5e9\n")
    _assert_error(lambda: load_sequential_dataset("ml-100k", d, item_text=False), "u.data", "line 3", "timestamp", "'1.5e9'")
    (d / "u.data").write_text("")
    _assert_error(lambda: load_sequential_dataset("ml-100k", d, item_text=False), "u.data", "line 1", "empty")
    (d / "u.data").write_text(good + "1\t3\t4\t103\n")
    (d / "u.item").write_text("1|A|||x|0\n")
    _assert_error(lambda: load_sequential_dataset("ml-100k", d), "u.item", "line 1", "24")

    m = tmp_path / "ml1m"
    m.mkdir()
    (m / "ratings.dat").write_text("1::1::5::10\n1::2::5::11\n1::3::x::12\n")
    _assert_error(lambda: load_sequential_dataset("ml-1m", m, item_text=False), "ratings.dat", "line 3", "'x'")
    (m / "ratings.dat").unlink()
    with gzip.open(m / "ratings_seq.tsv.gz", "wt") as fh:
        fh.write("user_id\tmovie_id\trating\tseq_pos\n1\t1\t5\t0\n1\t2\t5\t1\n1\t3\t5\n")
    _assert_error(lambda: load_sequential_dataset("ml-1m", m, item_text=False), "ratings_seq.tsv.gz", "line 4")
    with gzip.open(m / "ratings_seq.tsv.gz", "wt") as fh:
        fh.write("user\tmovie\trating\tseq_pos\n1\t1\t5\t0\n")
    _assert_error(lambda: load_sequential_dataset("ml-1m", m, item_text=False), "ratings_seq.tsv.gz", "line 1", "header")

    b = tmp_path / "beauty"
    b.mkdir()
    (b / "Beauty.txt").write_text("1 1 2 3\n2 4 x 5\n")
    _assert_error(lambda: load_sequential_dataset("amazon-beauty", b), "Beauty.txt", "line 2", "'x'")
    (b / "Beauty.txt").write_text("1 1 2 3\n\n2\n")
    _assert_error(lambda: load_sequential_dataset("amazon-beauty", b), "Beauty.txt", "line 3", "at least one item")
    (b / "Beauty.txt").write_text("1 1 2 3\n2 2 3 4\n")
    (b / "user_sequence.txt").write_text("A x y z\nB y z\n")
    _assert_error(lambda: load_sequential_dataset("amazon-beauty", b), "user_sequence.txt", "line 2")


def test_bad_options(inter_files):
    with pytest.raises(ValueError, match="user_k_core"):
        load_sequential_dataset(inter_files["csv"], user_k_core=-1)
    with pytest.raises(ValueError, match="max_history"):
        load_sequential_dataset(inter_files["csv"], max_history=0)
    with pytest.raises(ValueError, match="no ratings"):
        p = inter_files["csv"].with_name("noratings.csv")
        _frame().drop(columns=["rating"]).to_csv(p, index=False)
        load_sequential_dataset(p, min_rating=3)


def test_fast_path_and_scan_agree(tmp_path):
    # a clean u.data goes through pandas; one with a blank line in the middle still parses the same
    d1, d2 = tmp_path / "a", tmp_path / "b"
    d1.mkdir()
    d2.mkdir()
    rng = np.random.default_rng(0)
    lines = [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in zip(rng.integers(1, 5, 60), rng.integers(1, 30, 60), rng.integers(1, 6, 60), rng.integers(0, 9, 60))]
    (d1 / "u.data").write_text("\n".join(lines) + "\n")
    (d2 / "u.data").write_text("\n".join(lines[:30]) + "\n   \n" + "\n".join(lines[30:]) + "\n")
    s1, t1 = load_sequential_dataset("ml-100k", d1, item_text=False)
    s2, t2 = load_sequential_dataset("ml-100k", d2, item_text=False)
    assert dataset_fingerprint(s1) == dataset_fingerprint(s2)
    assert t1.item_ids == t2.item_ids


def test_atomic_writes_have_ordinary_permissions_and_leave_nothing_on_failure(tmp_path):
    import os
    import stat

    from hf_rec.atomic import atomic_open, atomic_write_text

    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644  # not mkstemp's 0600
        with pytest.raises(RuntimeError):
            with atomic_open(tmp_path / "a.json", "w") as f:
                f.write("half")
                raise RuntimeError("killed mid-write")
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").read_text() == "{}"  # the old content survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]  # no temporary file left


def test_atomic_directory_replaces_a_folder_whole_or_not_at_all(tmp_path):
    from hf_rec.atomic import atomic_directory

    target = tmp_path / "best_model"
    with atomic_directory(target) as folder:
        (folder / "a.txt").write_text("1")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as folder:
            (folder / "a.txt").write_text("half")
            raise RuntimeError("killed mid-save")
    assert (target / "a.txt").read_text() == "1"  # the old folder survives a failed save
    with atomic_directory(target) as folder:
        (folder / "b.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]  # replaced whole: no file of the old one left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best_model"]  # no temporary folder left
